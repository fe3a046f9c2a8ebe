//! JWKS key cache: keys are looked up by `kid` without any await (a `std` lock held only for a
//! pointer copy); an unknown `kid` triggers at most one refetch per refresh interval. The fetch
//! runs in its own task holding a `tokio` mutex, so callers with known kids never wait, callers
//! with unknown kids wait for the single in-flight fetch, and a caller that goes away does not
//! cancel the fetch.

use std::collections::HashMap;
use std::sync::{Arc, Once, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde_json::Value;

use super::{check_key, short, JwtConfigError, JwtError};

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, Arc<DecodingKey>>,
    /// The only usable key, when the set has exactly one (used for tokens without `kid`).
    sole: Option<Arc<DecodingKey>>,
    loaded: bool,
}

impl KeySet {
    fn get(&self, kid: Option<&str>) -> Option<Arc<DecodingKey>> {
        match kid {
            Some(kid) => self.by_kid.get(kid).cloned(),
            None => self.sole.clone(),
        }
    }
}

#[derive(Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    last_ok: bool,
}

struct Shared {
    url: String,
    algorithm: Algorithm,
    min_refetch: Duration,
    client: reqwest::Client,
    keys: RwLock<Arc<KeySet>>,
    fetch: Arc<tokio::sync::Mutex<FetchState>>,
}

pub(crate) struct JwksCache {
    shared: Arc<Shared>,
}

fn install_rustls_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means another provider is already installed, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl JwksCache {
    pub(crate) fn new(url: &str, algorithm: Algorithm, min_refetch: Duration) -> Result<Self, JwtConfigError> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| JwtConfigError::new("jwt.jwks_url", format!("invalid URL '{url}': {e}")))?;
        match parsed.scheme() {
            "https" => {}
            "http" => tracing::warn!(url, "jwt.jwks_url uses plain http"),
            other => {
                return Err(JwtConfigError::new(
                    "jwt.jwks_url",
                    format!("unsupported URL scheme '{other}' (use https)"),
                ))
            }
        }
        install_rustls_provider();
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| JwtConfigError::new("jwt.jwks_url", format!("cannot build HTTP client: {e}")))?;
        Ok(JwksCache {
            shared: Arc::new(Shared {
                url: url.to_string(),
                algorithm,
                min_refetch,
                client,
                keys: RwLock::new(Arc::new(KeySet::default())),
                fetch: Arc::new(tokio::sync::Mutex::new(FetchState::default())),
            }),
        })
    }

    pub(crate) fn url(&self) -> &str {
        &self.shared.url
    }

    pub(crate) async fn warm_up(&self) -> Result<(), JwtError> {
        if self.shared.current().loaded {
            return Ok(());
        }
        match self.refetch(None).await {
            Ok(_) => Ok(()),
            Err(JwtError::Invalid(_)) if self.shared.current().loaded => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The key for `kid` (or the sole key when the token has no `kid`).
    pub(crate) async fn key_for(&self, kid: Option<&str>) -> Result<Arc<DecodingKey>, JwtError> {
        if let Some(key) = self.shared.current().get(kid) {
            return Ok(key);
        }
        self.refetch(kid).await
    }

    async fn refetch(&self, kid: Option<&str>) -> Result<Arc<DecodingKey>, JwtError> {
        let unknown = || match kid {
            Some(kid) => JwtError::Invalid(format!("unknown kid {:?}", short(kid))),
            None => JwtError::Invalid("token has no kid and the JWKS has no single key".into()),
        };
        let shared = self.shared.clone();
        let mut guard = shared.fetch.clone().lock_owned().await;
        // Another caller may have fetched while we waited.
        if let Some(key) = shared.current().get(kid) {
            return Ok(key);
        }
        if let Some(last) = guard.last_attempt {
            if last.elapsed() < shared.min_refetch {
                return Err(if guard.last_ok { unknown() } else { JwtError::KeysUnavailable });
            }
        }
        guard.last_attempt = Some(Instant::now());
        let task_shared = shared.clone();
        let task = tokio::spawn(async move {
            let mut guard = guard;
            let result = task_shared.fetch_keys().await;
            match result {
                Ok(set) => {
                    tracing::info!(
                        url = %task_shared.url,
                        keys = set.by_kid.len(),
                        "JWKS fetched"
                    );
                    *task_shared.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(set);
                    guard.last_ok = true;
                    true
                }
                Err(reason) => {
                    tracing::warn!(url = %task_shared.url, %reason, "JWKS fetch failed");
                    guard.last_ok = false;
                    false
                }
            }
        });
        match task.await {
            Ok(true) => shared.current().get(kid).ok_or_else(unknown),
            Ok(false) | Err(_) => Err(JwtError::KeysUnavailable),
        }
    }
}

impl Shared {
    fn current(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    async fn fetch_keys(&self) -> Result<KeySet, String> {
        let mut response = self
            .client
            .get(&self.url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("HTTP status {status}"));
        }
        if response.content_length().is_some_and(|n| n > MAX_JWKS_BYTES as u64) {
            return Err("JWKS document too large".into());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("read failed: {e}"))? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err("JWKS document too large".into());
            }
            body.extend_from_slice(&chunk);
        }
        let doc: Value = serde_json::from_slice(&body).map_err(|e| format!("JWKS is not JSON: {e}"))?;
        let keys = doc.get("keys").and_then(Value::as_array).ok_or_else(|| "JWKS has no \"keys\" array".to_string())?;
        Ok(build_key_set(keys, self.algorithm))
    }
}

fn build_key_set(keys: &[Value], algorithm: Algorithm) -> KeySet {
    let mut set = KeySet { loaded: true, ..KeySet::default() };
    let mut usable = Vec::new();
    for value in keys {
        let kid = value.get("kid").and_then(Value::as_str).map(str::to_string);
        let jwk: Jwk = match serde_json::from_value(value.clone()) {
            Ok(jwk) => jwk,
            Err(e) => {
                tracing::debug!(?kid, error = %e, "JWKS key skipped: unparseable");
                continue;
            }
        };
        match usable_key(&jwk, algorithm) {
            Ok(key) => {
                let key = Arc::new(key);
                if let Some(kid) = &jwk.common.key_id {
                    set.by_kid.entry(kid.clone()).or_insert_with(|| key.clone());
                }
                usable.push(key);
            }
            Err(reason) => tracing::debug!(?kid, %reason, "JWKS key skipped"),
        }
    }
    if usable.len() == 1 {
        set.sole = usable.pop();
    }
    if set.by_kid.is_empty() && set.sole.is_none() {
        tracing::warn!("JWKS contains no key usable for the configured algorithm");
    }
    set
}

/// A JWK is usable when it is a signature key whose type/curve fits the configured algorithm
/// and whose own `alg` (if any) equals it. Symmetric (`oct`) keys are never taken from a JWKS.
fn usable_key(jwk: &Jwk, algorithm: Algorithm) -> Result<DecodingKey, String> {
    if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return Err("key use is not \"sig\"".into());
    }
    if let Some(ops) = &jwk.common.key_operations {
        if !ops.contains(&KeyOperations::Verify) {
            return Err("key_ops lacks \"verify\"".into());
        }
    }
    if let Some(alg) = jwk.common.key_algorithm {
        if alg != KeyAlgorithm::from(algorithm) {
            return Err(format!("key alg {alg} does not match the configured algorithm"));
        }
    }
    let fits = match (&jwk.algorithm, algorithm.family()) {
        (AlgorithmParameters::RSA(_), AlgorithmFamily::Rsa) => true,
        (AlgorithmParameters::EllipticCurve(p), AlgorithmFamily::Ec) => {
            let want = if algorithm == Algorithm::ES256 { EllipticCurve::P256 } else { EllipticCurve::P384 };
            p.curve == want
        }
        (AlgorithmParameters::OctetKeyPair(p), AlgorithmFamily::Ed) => p.curve == EllipticCurve::Ed25519,
        _ => false,
    };
    if !fits {
        return Err("key type/curve does not fit the configured algorithm".into());
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("bad key: {e}"))?;
    check_key(&key, algorithm)?;
    Ok(key)
}
