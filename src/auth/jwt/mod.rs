//! JWT verification for Switchyard.
//!
//! * [`JwtSettings`] — configuration (built by the server from `JWT_*` / `JWKS_URL` env vars).
//! * [`JwtVerifier`] — built once at start-up with [`JwtVerifier::from_settings`], cheap to clone
//!   (an `Arc` inside), verifies tokens with [`JwtVerifier::verify`].
//! * [`Claims`] — the verified claim set, with helpers to extract a [`ChatIdentity`].
//! * [`bearer_token`] — extracts the token from an `Authorization` header value.
//!
//! Security rules enforced here:
//! * the token header `alg` must equal the configured algorithm exactly (no algorithm
//!   confusion, `none` is never accepted);
//! * `exp` is required; `nbf` and `iat` are checked when present; `iss` / `aud` are required and
//!   checked when configured; the clock skew applies to `exp`, `nbf` and `iat`;
//! * tokens and secrets are never logged.

mod jwks;

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde_json::{Map, Value};

use self::jwks::JwksCache;

/// Default algorithm when `algorithm` is empty.
pub const DEFAULT_ALGORITHM: &str = "HS256";
/// Default clock skew (seconds) applied to `exp`, `nbf` and `iat`.
pub const DEFAULT_CLOCK_SKEW_SECONDS: u64 = 30;
/// Default minimum interval between JWKS refetches triggered by an unknown `kid`.
pub const DEFAULT_JWKS_REFRESH_INTERVAL_SECONDS: u64 = 60;
/// Largest accepted clock skew (one day); larger values are a configuration error.
pub const MAX_CLOCK_SKEW_SECONDS: u64 = 86_400;
/// Tokens longer than this are rejected without being parsed.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Session id used when the token carries no session claim.
pub const DEFAULT_SESSION_ID: &str = "default";

/// The algorithms a verifier may be configured with (there is no ES512 in jsonwebtoken 11, and
/// `none` is never allowed).
pub const SUPPORTED_ALGORITHMS: &[&str] =
    &["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

/// JWT configuration. Empty strings mean "unset".
#[derive(Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtSettings {
    /// HMAC secret; "" = unset. Never printed by `Debug`.
    pub secret: String,
    /// Public key: inline PEM, or a path to a PEM file; "" = unset.
    pub public_key: String,
    /// One of [`SUPPORTED_ALGORITHMS`]; default "HS256" ("" is treated as the default).
    pub algorithm: String,
    /// Expected `iss`; "" = not checked.
    pub issuer: String,
    /// Expected `aud` (the token's `aud` may be a string or an array containing it); "" = not checked.
    pub audience: String,
    /// Leeway in seconds for `exp`, `nbf` and `iat`; default 30.
    pub clock_skew_seconds: u64,
    /// URL of a JWKS document; "" = unset.
    pub jwks_url: String,
    /// Minimum interval between JWKS refetches on an unknown `kid`; default 60.
    pub jwks_refresh_interval_seconds: u64,
    /// Claim holding the tenant id; default "tenant_id".
    pub tenant_id_claim: String,
    /// Claim holding the user id; default "sub".
    pub user_id_claim: String,
    /// Claim holding the session id; default "session_id".
    pub session_id_claim: String,
    /// Claim holding the entity id (spaces gateway); default "sub".
    pub entity_claim: String,
}

impl Default for JwtSettings {
    fn default() -> Self {
        JwtSettings {
            secret: String::new(),
            public_key: String::new(),
            algorithm: DEFAULT_ALGORITHM.to_string(),
            issuer: String::new(),
            audience: String::new(),
            clock_skew_seconds: DEFAULT_CLOCK_SKEW_SECONDS,
            jwks_url: String::new(),
            jwks_refresh_interval_seconds: DEFAULT_JWKS_REFRESH_INTERVAL_SECONDS,
            tenant_id_claim: "tenant_id".to_string(),
            user_id_claim: "sub".to_string(),
            session_id_claim: "session_id".to_string(),
            entity_claim: "sub".to_string(),
        }
    }
}

impl fmt::Debug for JwtSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = if self.secret.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("JwtSettings")
            .field("secret", &secret)
            .field("public_key", &self.public_key)
            .field("algorithm", &self.algorithm)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("clock_skew_seconds", &self.clock_skew_seconds)
            .field("jwks_url", &self.jwks_url)
            .field("jwks_refresh_interval_seconds", &self.jwks_refresh_interval_seconds)
            .field("tenant_id_claim", &self.tenant_id_claim)
            .field("user_id_claim", &self.user_id_claim)
            .field("session_id_claim", &self.session_id_claim)
            .field("entity_claim", &self.entity_claim)
            .finish()
    }
}

fn claim_name<'a>(configured: &'a str, default: &'a str) -> &'a str {
    let trimmed = configured.trim();
    if trimmed.is_empty() {
        default
    } else {
        trimmed
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// A configuration error; `Display` is "<setting>: <message>", e.g.
/// "jwt.algorithm: unsupported algorithm 'ES512'". The server refuses to start with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct JwtConfigError {
    /// The offending setting, e.g. "jwt.public_key".
    pub setting: &'static str,
    /// What is wrong with it (never contains the secret).
    pub message: String,
}

impl JwtConfigError {
    pub(crate) fn new(setting: &'static str, message: impl Into<String>) -> Self {
        JwtConfigError { setting, message: message.into() }
    }
}

/// Why a token was refused. The `Display` texts are part of the API contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// `exp` (plus skew) is in the past; the signature was valid.
    #[error("Token has expired")]
    Expired,
    /// Bad signature, wrong/unsupported alg, malformed token, unknown kid, or an `nbf` / `iat` /
    /// `iss` / `aud` failure. The field is an internal reason for debug logs only: never show it
    /// to clients.
    #[error("Invalid token")]
    Invalid(String),
    /// A required identity claim is absent (or empty); the field is the claim name.
    #[error("Token missing required claim: {0}")]
    MissingClaim(String),
    /// The JWKS could not be fetched and no cached key matches the token.
    #[error("Invalid token")]
    KeysUnavailable,
}

impl JwtError {
    fn invalid(reason: impl Into<String>) -> Self {
        JwtError::Invalid(reason.into())
    }
}

/// Errors from [`bearer_token`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// No (or an empty) `Authorization` header.
    #[error("Authorization header required")]
    Missing,
    /// The header is not `Bearer <token>`.
    #[error("Invalid authorization header format. Expected: Bearer <token>")]
    Malformed,
}

/// Extracts the token from an `Authorization` header value of the form `Bearer <token>`.
/// The scheme is matched case-insensitively; the token must be non-empty and contain no
/// whitespace. An absent or blank header is [`BearerError::Missing`].
pub fn bearer_token(header_value: Option<&str>) -> Result<&str, BearerError> {
    let value = header_value.map(str::trim).unwrap_or("");
    if value.is_empty() {
        return Err(BearerError::Missing);
    }
    let (scheme, rest) = value.split_once(|c: char| c.is_ascii_whitespace()).ok_or(BearerError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::Malformed);
    }
    let token = rest.trim();
    if token.is_empty() || token.contains(|c: char| c.is_whitespace()) {
        return Err(BearerError::Malformed);
    }
    Ok(token)
}

// ---------------------------------------------------------------------------------------------
// Claims
// ---------------------------------------------------------------------------------------------

/// The identity a chat connection acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatIdentity {
    pub tenant_id: String,
    pub user_id: String,
    pub session_id: String,
}

/// A verified claim set.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    pub raw: Map<String, Value>,
}

impl Claims {
    /// The claim as a string: strings as-is, numbers rendered (`42`, `1.5`); anything else
    /// (absent, null, bool, array, object) is `None`.
    pub fn get_str(&self, name: &str) -> Option<String> {
        match self.raw.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    fn required(&self, name: &str) -> Result<String, JwtError> {
        match self.get_str(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(JwtError::MissingClaim(name.to_string())),
        }
    }

    /// Tenant and user claims are required (absent or empty → [`JwtError::MissingClaim`] with
    /// the configured claim name); the session claim defaults to "default". Empty claim-name
    /// settings fall back to the defaults ("tenant_id", "sub", "session_id").
    pub fn identity(&self, s: &JwtSettings) -> Result<ChatIdentity, JwtError> {
        let tenant_id = self.required(claim_name(&s.tenant_id_claim, "tenant_id"))?;
        let user_id = self.required(claim_name(&s.user_id_claim, "sub"))?;
        let session_id = self
            .get_str(claim_name(&s.session_id_claim, "session_id"))
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| DEFAULT_SESSION_ID.to_string());
        Ok(ChatIdentity { tenant_id, user_id, session_id })
    }

    /// The entity id for the spaces gateway (`entity_claim`, default "sub"); required.
    pub fn entity(&self, s: &JwtSettings) -> Result<String, JwtError> {
        self.required(claim_name(&s.entity_claim, "sub"))
    }
}

// ---------------------------------------------------------------------------------------------
// Verifier
// ---------------------------------------------------------------------------------------------

enum KeySource {
    Static(Arc<DecodingKey>),
    Jwks(JwksCache),
}

struct Inner {
    settings: JwtSettings,
    algorithm: Algorithm,
    alg_name: &'static str,
    skew: u64,
    validation: Validation,
    keys: KeySource,
}

/// Verifies JWTs against the configured key. Cheap to clone.
#[derive(Clone)]
pub struct JwtVerifier {
    inner: Arc<Inner>,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.inner.keys {
            KeySource::Static(_) if self.inner.algorithm.family() == AlgorithmFamily::Hmac => "secret".to_string(),
            KeySource::Static(_) => "public_key".to_string(),
            KeySource::Jwks(c) => format!("jwks({})", c.url()),
        };
        f.debug_struct("JwtVerifier").field("algorithm", &self.inner.alg_name).field("keys", &source).finish()
    }
}

fn parse_algorithm(name: &str) -> Result<(Algorithm, &'static str), JwtConfigError> {
    let name = if name.trim().is_empty() { DEFAULT_ALGORITHM } else { name.trim() };
    let alg = match name {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        other => {
            let mut message = format!("unsupported algorithm '{other}'");
            if other.eq_ignore_ascii_case("none") {
                message.push_str(" (unsigned tokens are never accepted)");
            }
            message.push_str(&format!("; supported: {}", SUPPORTED_ALGORITHMS.join(", ")));
            return Err(JwtConfigError::new("jwt.algorithm", message));
        }
    };
    Ok((alg, alg_name(alg)))
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::EdDSA => "EdDSA",
        // `Algorithm` is non_exhaustive; parse_algorithm never produces anything else.
        #[allow(unreachable_patterns)]
        _ => "unsupported",
    }
}

/// Checks that `key` is usable for `alg` (right family, parseable, right curve).
pub(crate) fn check_key(key: &DecodingKey, alg: Algorithm) -> Result<(), String> {
    if key.family() != alg.family() {
        return Err(format!("key family {:?} does not fit {}", key.family(), alg_name(alg)));
    }
    // Builds the verifier: EC / Ed keys are parsed here (an error means a bad key); RSA keys
    // are parsed lazily, so they are checked through their components below.
    jsonwebtoken::crypto::verify("AA", b"probe", key, alg).map_err(|e| format!("unusable key: {e}"))?;
    match alg.family() {
        AlgorithmFamily::Rsa => {
            let jwk = Jwk::from_decoding_key(key, None).map_err(|e| format!("bad RSA key: {e}"))?;
            if let AlgorithmParameters::RSA(p) = &jwk.algorithm {
                let bits = URL_SAFE_NO_PAD.decode(&p.n).map(|n| n.len() * 8).unwrap_or(0);
                if bits < 2048 {
                    tracing::warn!(bits, "JWT RSA key is shorter than 2048 bits");
                }
            }
        }
        AlgorithmFamily::Ec => {
            let jwk = Jwk::from_decoding_key(key, None).map_err(|e| format!("bad EC key: {e}"))?;
            let want = if alg == Algorithm::ES256 { EllipticCurve::P256 } else { EllipticCurve::P384 };
            match &jwk.algorithm {
                AlgorithmParameters::EllipticCurve(p) if p.curve == want => {}
                AlgorithmParameters::EllipticCurve(p) => {
                    return Err(format!("curve {:?} does not fit {}", p.curve, alg_name(alg)))
                }
                _ => return Err("not an EC key".to_string()),
            }
        }
        AlgorithmFamily::Ed | AlgorithmFamily::Hmac => {}
    }
    Ok(())
}

fn load_public_key(value: &str, alg: Algorithm) -> Result<DecodingKey, JwtConfigError> {
    let name = alg_name(alg);
    let invalid =
        |detail: &str| JwtConfigError::new("jwt.public_key", format!("not a valid PEM key for {name}{detail}"));
    let trimmed = value.trim();
    let pem = if trimmed.starts_with("-----BEGIN") {
        // Env vars often carry PEMs with literal "\n" sequences.
        trimmed.replace("\\n", "\n")
    } else {
        std::fs::read_to_string(trimmed).map_err(|e| {
            JwtConfigError::new(
                "jwt.public_key",
                format!("cannot read PEM file '{trimmed}' (expected inline PEM or a file path): {e}"),
            )
        })?
    };
    if pem.contains("PRIVATE KEY-----") {
        return Err(invalid(" (it is a private key; configure the public key)"));
    }
    let parsed = match alg.family() {
        AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(pem.as_bytes()),
        AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem.as_bytes()),
        AlgorithmFamily::Ed => DecodingKey::from_ed_pem(pem.as_bytes()),
        AlgorithmFamily::Hmac => return Err(invalid("")),
    };
    let key = parsed.map_err(|_| invalid(""))?;
    check_key(&key, alg).map_err(|detail| invalid(&format!(" ({detail})")))?;
    Ok(key)
}

struct RawHeader {
    alg: String,
    kid: Option<String>,
}

fn parse_header(token: &str) -> Result<RawHeader, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::invalid("token too large"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::invalid("malformed token: expected 3 segments"));
    };
    let bytes =
        URL_SAFE_NO_PAD.decode(header).map_err(|_| JwtError::invalid("malformed token: header is not base64url"))?;
    let header: Map<String, Value> = serde_json::from_slice(&bytes)
        .map_err(|_| JwtError::invalid("malformed token: header is not a JSON object"))?;
    let alg = match header.get("alg") {
        Some(Value::String(a)) => a.clone(),
        _ => return Err(JwtError::invalid("malformed token: header has no alg")),
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err(JwtError::invalid("unsigned token (alg none) rejected"));
    }
    if header.contains_key("crit") {
        return Err(JwtError::invalid("unsupported critical header extensions"));
    }
    let kid = match header.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(JwtError::invalid("malformed token: kid is not a string")),
    };
    Ok(RawHeader { alg, kid })
}

fn short(s: &str) -> String {
    let mut out: String = s.chars().take(32).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl JwtVerifier {
    /// Builds a verifier. `Ok(None)` when none of `secret`, `public_key`, `jwks_url` is set
    /// (JWT auth disabled); `Err` naming the setting on bad configuration.
    ///
    /// Key selection: HS* algorithms use `secret` (required). Other algorithms use `public_key`,
    /// else `jwks_url`; setting `secret` together with an asymmetric algorithm is an error (the
    /// secret would take priority, which cannot work with a public-key algorithm).
    pub fn from_settings(s: &JwtSettings) -> Result<Option<JwtVerifier>, JwtConfigError> {
        let has_secret = !s.secret.is_empty();
        let has_public_key = !s.public_key.trim().is_empty();
        let has_jwks = !s.jwks_url.trim().is_empty();
        if !has_secret && !has_public_key && !has_jwks {
            return Ok(None);
        }
        let (algorithm, name) = parse_algorithm(&s.algorithm)?;
        if s.clock_skew_seconds > MAX_CLOCK_SKEW_SECONDS {
            return Err(JwtConfigError::new(
                "jwt.clock_skew_seconds",
                format!("{} is too large (at most {MAX_CLOCK_SKEW_SECONDS})", s.clock_skew_seconds),
            ));
        }

        let keys = if algorithm.family() == AlgorithmFamily::Hmac {
            if !has_secret {
                return Err(JwtConfigError::new(
                    "jwt.secret",
                    format!(
                        "required for {name} (jwt.public_key / jwt.jwks_url need an asymmetric \
                         jwt.algorithm such as RS256)"
                    ),
                ));
            }
            if has_public_key || has_jwks {
                tracing::warn!(algorithm = name, "jwt.secret is set: jwt.public_key / jwt.jwks_url are ignored");
            }
            let min_len = match algorithm {
                Algorithm::HS384 => 48,
                Algorithm::HS512 => 64,
                _ => 32,
            };
            if s.secret.len() < min_len {
                tracing::warn!(
                    algorithm = name,
                    min_bytes = min_len,
                    "jwt.secret is shorter than recommended for this algorithm"
                );
            }
            KeySource::Static(Arc::new(DecodingKey::from_secret(s.secret.as_bytes())))
        } else {
            if has_secret {
                return Err(JwtConfigError::new(
                    "jwt.secret",
                    format!(
                        "is set, but jwt.algorithm is {name}, which verifies with a public key; \
                         unset the secret or use HS256/HS384/HS512"
                    ),
                ));
            }
            if has_public_key {
                if has_jwks {
                    tracing::warn!("jwt.public_key is set: jwt.jwks_url is ignored");
                }
                KeySource::Static(Arc::new(load_public_key(&s.public_key, algorithm)?))
            } else if has_jwks {
                KeySource::Jwks(JwksCache::new(
                    s.jwks_url.trim(),
                    algorithm,
                    std::time::Duration::from_secs(s.jwks_refresh_interval_seconds),
                )?)
            } else {
                return Err(JwtConfigError::new(
                    "jwt.public_key",
                    format!("jwt.public_key or jwt.jwks_url is required for {name}"),
                ));
            }
        };

        let mut validation = Validation::new(algorithm);
        validation.leeway = s.clock_skew_seconds;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required: HashSet<String> = HashSet::from(["exp".to_string()]);
        let issuer = s.issuer.trim();
        if !issuer.is_empty() {
            validation.set_issuer(&[issuer]);
            required.insert("iss".to_string());
        }
        let audience = s.audience.trim();
        if audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&[audience]);
            validation.validate_aud = true;
            required.insert("aud".to_string());
        }
        validation.required_spec_claims = required;

        Ok(Some(JwtVerifier {
            inner: Arc::new(Inner {
                settings: s.clone(),
                algorithm,
                alg_name: name,
                skew: s.clock_skew_seconds,
                validation,
                keys,
            }),
        }))
    }

    /// The settings this verifier was built from (e.g. for [`Claims::identity`]).
    pub fn settings(&self) -> &JwtSettings {
        &self.inner.settings
    }

    /// The configured algorithm name, e.g. "RS256".
    pub fn algorithm(&self) -> &'static str {
        self.inner.alg_name
    }

    /// For a JWKS verifier, fetches the key set if it was never loaded (subject to the refetch
    /// interval); a no-op for static keys. Optional: `verify` fetches lazily anyway.
    pub async fn warm_up(&self) -> Result<(), JwtError> {
        match &self.inner.keys {
            KeySource::Static(_) => Ok(()),
            KeySource::Jwks(cache) => cache.warm_up().await,
        }
    }

    /// Verifies signature, algorithm and registered claims; returns the claim set.
    pub async fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        let result = self.verify_inner(token).await;
        if let Err(e) = &result {
            // The reason is internal; the token itself is never logged.
            tracing::debug!(error = ?e, "JWT rejected");
        }
        result
    }

    async fn verify_inner(&self, token: &str) -> Result<Claims, JwtError> {
        let inner = &*self.inner;
        let header = parse_header(token.trim())?;
        if header.alg != inner.alg_name {
            return Err(JwtError::invalid(format!(
                "token alg {:?} does not match configured {}",
                short(&header.alg),
                inner.alg_name
            )));
        }
        let key = match &inner.keys {
            KeySource::Static(key) => key.clone(),
            KeySource::Jwks(cache) => cache.key_for(header.kid.as_deref()).await?,
        };
        let data = jsonwebtoken::decode::<Map<String, Value>>(token.trim(), &key, &inner.validation).map_err(|e| {
            match e.kind() {
                ErrorKind::ExpiredSignature => JwtError::Expired,
                _ => JwtError::invalid(e.to_string()),
            }
        })?;
        let claims = data.claims;
        if let Some(iat) = claims.get("iat") {
            let Some(iat) = iat.as_f64() else {
                return Err(JwtError::invalid("iat is not a number"));
            };
            if iat > (now_secs() + inner.skew) as f64 {
                return Err(JwtError::invalid("iat is in the future"));
            }
        }
        Ok(Claims { raw: claims })
    }
}
