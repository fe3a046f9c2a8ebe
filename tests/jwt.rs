//! Tests for `switchyard::auth::jwt`: real crypto with the keys in tests/fixtures/jwt, and a
//! real actix-web JWKS server on 127.0.0.1:0.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey, Header};
use serde_json::{json, Value};
use switchyard::auth::jwt::{bearer_token, BearerError, ChatIdentity, Claims, JwtError, JwtSettings, JwtVerifier};

const SECRET: &str = "an-hmac-secret-that-is-at-least-64-bytes-long-for-hs512-0123456789";

// ------------------------------------------------------------------------------------------
// helpers
// ------------------------------------------------------------------------------------------

fn fixture_path(name: &str) -> String {
    format!("{}/tests/fixtures/jwt/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixture_path(name)).expect("fixture")
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn claims() -> Value {
    json!({ "sub": "user-1", "tenant_id": "tenant-1", "exp": now() + 300, "iat": now() })
}

fn with(mut base: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

/// Private key (signing) fixture and public key fixture for an algorithm.
fn key_files(alg: Algorithm) -> (&'static str, &'static str) {
    match alg {
        Algorithm::ES256 => ("ec_p256_private.pem", "ec_p256_public.pem"),
        Algorithm::ES384 => ("ec_p384_private.pem", "ec_p384_public.pem"),
        Algorithm::EdDSA => ("ed25519_private.pem", "ed25519_public.pem"),
        _ => ("rsa_private.pem", "rsa_public.pem"),
    }
}

fn encoding_key(alg: Algorithm) -> EncodingKey {
    let (private, _) = key_files(alg);
    match alg.family() {
        AlgorithmFamily::Hmac => EncodingKey::from_secret(SECRET.as_bytes()),
        AlgorithmFamily::Rsa => EncodingKey::from_rsa_pem(fixture(private).as_bytes()).unwrap(),
        AlgorithmFamily::Ec => EncodingKey::from_ec_pem(fixture(private).as_bytes()).unwrap(),
        AlgorithmFamily::Ed => EncodingKey::from_ed_pem(fixture(private).as_bytes()).unwrap(),
    }
}

fn sign_with(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn sign(alg: Algorithm, claims: &Value) -> String {
    sign_with(alg, None, claims, &encoding_key(alg))
}

fn settings_for(alg: &str) -> JwtSettings {
    let mut s = JwtSettings { algorithm: alg.to_string(), ..JwtSettings::default() };
    let parsed: Algorithm = alg.parse().unwrap();
    if parsed.family() == AlgorithmFamily::Hmac {
        s.secret = SECRET.to_string();
    } else {
        s.public_key = fixture(key_files(parsed).1);
    }
    s
}

fn verifier(s: &JwtSettings) -> JwtVerifier {
    JwtVerifier::from_settings(s).expect("config ok").expect("verifier configured")
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn assert_invalid(r: Result<Claims, JwtError>) {
    match r {
        Err(e @ JwtError::Invalid(_)) => assert_eq!(e.to_string(), "Invalid token"),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// Invalid, and the internal (log-only) reason mentions `needle`.
fn assert_invalid_because(r: Result<Claims, JwtError>, needle: &str) {
    match r {
        Err(JwtError::Invalid(reason)) => {
            assert!(reason.contains(needle), "{reason:?} !~ {needle:?}")
        }
        other => panic!("expected Invalid({needle}), got {other:?}"),
    }
}

fn config_err(s: &JwtSettings) -> String {
    JwtVerifier::from_settings(s).expect_err("config must be rejected").to_string()
}

// ------------------------------------------------------------------------------------------
// valid tokens, one per algorithm
// ------------------------------------------------------------------------------------------

async fn roundtrip(alg_name: &str) {
    let alg: Algorithm = alg_name.parse().unwrap();
    let v = verifier(&settings_for(alg_name));
    let c = v.verify(&sign(alg, &claims())).await.unwrap_or_else(|e| panic!("{alg_name}: {e:?}"));
    assert_eq!(c.get_str("sub").as_deref(), Some("user-1"));
    assert_eq!(v.algorithm(), alg_name);
}

macro_rules! valid_alg_tests {
    ($($name:ident => $alg:literal),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() { roundtrip($alg).await; }
    )*};
}

valid_alg_tests! {
    valid_hs256 => "HS256", valid_hs384 => "HS384", valid_hs512 => "HS512",
    valid_rs256 => "RS256", valid_rs384 => "RS384", valid_rs512 => "RS512",
    valid_ps256 => "PS256", valid_ps384 => "PS384", valid_ps512 => "PS512",
    valid_es256 => "ES256", valid_es384 => "ES384", valid_eddsa => "EdDSA",
}

#[tokio::test]
async fn public_key_may_be_a_file_path() {
    let s = JwtSettings { algorithm: "RS256".into(), public_key: fixture_path("rsa_public.pem"), ..Default::default() };
    verifier(&s).verify(&sign(Algorithm::RS256, &claims())).await.unwrap();
}

#[tokio::test]
async fn inline_pem_with_escaped_newlines_is_accepted() {
    let s = JwtSettings {
        algorithm: "ES256".into(),
        public_key: fixture("ec_p256_public.pem").replace('\n', "\\n"),
        ..Default::default()
    };
    verifier(&s).verify(&sign(Algorithm::ES256, &claims())).await.unwrap();
}

// ------------------------------------------------------------------------------------------
// registered claims
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn expired_token_is_rejected_as_expired() {
    let v = verifier(&settings_for("HS256"));
    let t = sign(Algorithm::HS256, &with(claims(), json!({ "exp": now() - 120 })));
    let err = v.verify(&t).await.unwrap_err();
    assert_eq!(err, JwtError::Expired);
    assert_eq!(err.to_string(), "Token has expired");
}

#[tokio::test]
async fn expired_within_skew_passes() {
    let v = verifier(&settings_for("HS256")); // default skew 30s
    let t = sign(Algorithm::HS256, &with(claims(), json!({ "exp": now() - 10 })));
    v.verify(&t).await.unwrap();

    let strict = verifier(&JwtSettings { clock_skew_seconds: 0, ..settings_for("HS256") });
    assert_eq!(strict.verify(&t).await.unwrap_err(), JwtError::Expired);
}

#[tokio::test]
async fn expired_token_with_bad_signature_is_invalid_not_expired() {
    let v = verifier(&settings_for("HS256"));
    let t = sign_with(
        Algorithm::HS256,
        None,
        &with(claims(), json!({ "exp": now() - 120 })),
        &EncodingKey::from_secret(b"some-other-secret-some-other-secret"),
    );
    assert_invalid(v.verify(&t).await);
}

#[tokio::test]
async fn nbf_in_the_future_is_rejected() {
    let v = verifier(&settings_for("HS256"));
    let t = sign(Algorithm::HS256, &with(claims(), json!({ "nbf": now() + 120 })));
    assert_invalid_because(v.verify(&t).await, "Immature");
    let within_skew = sign(Algorithm::HS256, &with(claims(), json!({ "nbf": now() + 10 })));
    v.verify(&within_skew).await.unwrap();
}

#[tokio::test]
async fn iat_in_the_future_is_rejected() {
    let v = verifier(&settings_for("HS256"));
    let t = sign(Algorithm::HS256, &with(claims(), json!({ "iat": now() + 120 })));
    assert_invalid_because(v.verify(&t).await, "iat is in the future");
    let within_skew = sign(Algorithm::HS256, &with(claims(), json!({ "iat": now() + 10 })));
    v.verify(&within_skew).await.unwrap();
    let not_a_number = sign(Algorithm::HS256, &with(claims(), json!({ "iat": "yesterday" })));
    assert_invalid(v.verify(&not_a_number).await);
}

#[tokio::test]
async fn issuer_is_checked_when_configured() {
    let v = verifier(&JwtSettings { issuer: "https://idp.example".into(), ..settings_for("HS256") });
    let good = sign(Algorithm::HS256, &with(claims(), json!({ "iss": "https://idp.example" })));
    v.verify(&good).await.unwrap();
    let wrong = sign(Algorithm::HS256, &with(claims(), json!({ "iss": "https://evil.example" })));
    assert_invalid_because(v.verify(&wrong).await, "InvalidIssuer");
    let missing = sign(Algorithm::HS256, &claims());
    assert_invalid(v.verify(&missing).await);
}

#[tokio::test]
async fn audience_is_checked_when_configured() {
    let v = verifier(&JwtSettings { audience: "switchyard".into(), ..settings_for("HS256") });
    for ok in [json!("switchyard"), json!(["other", "switchyard"])] {
        let t = sign(Algorithm::HS256, &with(claims(), json!({ "aud": ok })));
        v.verify(&t).await.unwrap();
    }
    let wrong = sign(Algorithm::HS256, &with(claims(), json!({ "aud": "someone-else" })));
    assert_invalid_because(v.verify(&wrong).await, "InvalidAudience");
    assert_invalid(v.verify(&sign(Algorithm::HS256, &claims())).await);

    // Not configured: any aud is accepted.
    let open = verifier(&settings_for("HS256"));
    open.verify(&wrong).await.unwrap();
}

#[tokio::test]
async fn missing_exp_is_rejected() {
    let v = verifier(&settings_for("HS256"));
    let t = sign(Algorithm::HS256, &with(claims(), json!({ "exp": null })));
    assert_invalid_because(v.verify(&t).await, "exp");
    let t = sign(Algorithm::HS256, &with(claims(), json!({ "exp": "tomorrow" })));
    assert_invalid(v.verify(&t).await);
}

// ------------------------------------------------------------------------------------------
// algorithm attacks, signatures, malformed input
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn alg_none_is_rejected() {
    for configured in ["HS256", "RS256"] {
        let v = verifier(&settings_for(configured));
        for alg in ["none", "None", "NONE"] {
            let t = format!("{}.{}.", b64(&json!({ "alg": alg, "typ": "JWT" })), b64(&claims()));
            assert_invalid_because(v.verify(&t).await, "alg none");
            // Even with a signature segment attached.
            let t = format!("{t}c2lnbmF0dXJl");
            assert_invalid_because(v.verify(&t).await, "alg none");
        }
    }
}

#[tokio::test]
async fn algorithm_confusion_hs256_signed_with_public_pem_is_rejected() {
    let pem = fixture("rsa_public.pem");
    let v = verifier(&settings_for("RS256"));
    let forged = sign_with(Algorithm::HS256, None, &claims(), &EncodingKey::from_secret(pem.as_bytes()));
    assert_invalid_because(v.verify(&forged).await, "does not match configured RS256");
    // Also with the trimmed PEM (as the verifier stores it) and with kid games.
    let forged = sign_with(Algorithm::HS256, Some("x"), &claims(), &EncodingKey::from_secret(pem.trim().as_bytes()));
    assert_invalid(v.verify(&forged).await);
}

#[tokio::test]
async fn alg_mismatch_is_rejected() {
    // Correctly signed RS512 token, RS256 configured.
    let v = verifier(&settings_for("RS256"));
    assert_invalid(v.verify(&sign(Algorithm::RS512, &claims())).await);
    assert_invalid(v.verify(&sign(Algorithm::PS256, &claims())).await);
    // Correctly signed HS512 token (same secret), HS256 configured.
    let v = verifier(&settings_for("HS256"));
    assert_invalid(v.verify(&sign(Algorithm::HS512, &claims())).await);
    // ES384 configured, ES256 token.
    let v = verifier(&settings_for("ES384"));
    assert_invalid(v.verify(&sign(Algorithm::ES256, &claims())).await);
}

#[tokio::test]
async fn bad_signature_is_rejected() {
    let v = verifier(&settings_for("RS256"));
    let other_key = EncodingKey::from_rsa_pem(fixture("rsa2_private.pem").as_bytes()).unwrap();
    let forged = sign_with(Algorithm::RS256, None, &claims(), &other_key);
    assert_invalid_because(v.verify(&forged).await, "InvalidSignature");

    // Tampered payload with the original signature.
    let good = sign(Algorithm::RS256, &claims());
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = with(claims(), json!({ "sub": "admin" }));
    let t = format!("{}.{}.{}", parts[0], b64(&tampered), parts[2]);
    assert_invalid_because(v.verify(&t).await, "InvalidSignature");

    let v = verifier(&settings_for("HS256"));
    let t = sign_with(Algorithm::HS256, None, &claims(), &EncodingKey::from_secret(b"wrong"));
    assert_invalid(v.verify(&t).await);
}

#[tokio::test]
async fn malformed_tokens_are_rejected() {
    let v = verifier(&settings_for("HS256"));
    let good = sign(Algorithm::HS256, &claims());
    let huge = "a".repeat(20_000);
    let cases = [
        "".to_string(),
        "abc".to_string(),
        "a.b".to_string(),
        "a.b.c".to_string(),
        format!("{good}.extra"),
        "!!!.###.$$$".to_string(),
        format!("{}.{}.sig", URL_SAFE_NO_PAD.encode("not json"), b64(&claims())),
        format!("{}.{}.sig", b64(&json!({ "typ": "JWT" })), b64(&claims())),
        format!("{}.{}.sig", b64(&json!({ "alg": "HS256", "crit": ["exp"] })), b64(&claims())),
        format!("{}.not-base64!.sig", b64(&json!({ "alg": "HS256" }))),
        huge,
    ];
    for t in cases {
        assert_invalid(v.verify(&t).await);
    }
    // A correctly signed token whose payload is not a JSON object.
    let t = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!(["not", "an", "object"]),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert_invalid(v.verify(&t).await);
}

// ------------------------------------------------------------------------------------------
// claims helpers
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn missing_tenant_claim_is_reported_by_name() {
    let s = settings_for("HS256");
    let v = verifier(&s);
    let c = v.verify(&sign(Algorithm::HS256, &with(claims(), json!({ "tenant_id": null })))).await;
    let err = c.unwrap().identity(&s).unwrap_err();
    assert_eq!(err, JwtError::MissingClaim("tenant_id".into()));
    assert_eq!(err.to_string(), "Token missing required claim: tenant_id");

    let c = v.verify(&sign(Algorithm::HS256, &with(claims(), json!({ "sub": null })))).await;
    assert_eq!(c.unwrap().identity(v.settings()).unwrap_err().to_string(), "Token missing required claim: sub");
    let c = v.verify(&sign(Algorithm::HS256, &with(claims(), json!({ "tenant_id": "" })))).await;
    assert_eq!(c.unwrap().identity(&s).unwrap_err(), JwtError::MissingClaim("tenant_id".into()));
}

#[tokio::test]
async fn custom_claim_names() {
    let s = JwtSettings {
        tenant_id_claim: "org".into(),
        user_id_claim: "uid".into(),
        session_id_claim: "sid".into(),
        entity_claim: "entity".into(),
        ..settings_for("HS256")
    };
    let v = verifier(&s);
    let t =
        sign(Algorithm::HS256, &with(claims(), json!({ "org": "acme", "uid": 42, "sid": "s-9", "entity": "bot-7" })));
    let c = v.verify(&t).await.unwrap();
    assert_eq!(
        c.identity(&s).unwrap(),
        ChatIdentity { tenant_id: "acme".into(), user_id: "42".into(), session_id: "s-9".into() }
    );
    assert_eq!(c.entity(&s).unwrap(), "bot-7");
    // Default claim names are not consulted.
    let t = sign(Algorithm::HS256, &claims());
    let c = v.verify(&t).await.unwrap();
    assert_eq!(c.identity(&s).unwrap_err(), JwtError::MissingClaim("org".into()));
    assert_eq!(c.entity(&s).unwrap_err().to_string(), "Token missing required claim: entity");
}

#[tokio::test]
async fn session_defaults_to_default() {
    let s = settings_for("HS256");
    let c = verifier(&s).verify(&sign(Algorithm::HS256, &claims())).await.unwrap();
    let id = c.identity(&s).unwrap();
    assert_eq!(id.tenant_id, "tenant-1");
    assert_eq!(id.user_id, "user-1");
    assert_eq!(id.session_id, "default");
    assert_eq!(c.entity(&s).unwrap(), "user-1");
}

#[test]
fn get_str_renders_strings_and_numbers_only() {
    let raw = json!({ "s": "x", "i": 7, "f": 1.5, "b": true, "n": null, "a": [1], "o": {} });
    let c = Claims { raw: raw.as_object().unwrap().clone() };
    assert_eq!(c.get_str("s").as_deref(), Some("x"));
    assert_eq!(c.get_str("i").as_deref(), Some("7"));
    assert_eq!(c.get_str("f").as_deref(), Some("1.5"));
    for name in ["b", "n", "a", "o", "absent"] {
        assert_eq!(c.get_str(name), None, "{name}");
    }
}

// ------------------------------------------------------------------------------------------
// configuration
// ------------------------------------------------------------------------------------------

#[test]
fn nothing_configured_means_no_verifier() {
    assert!(JwtVerifier::from_settings(&JwtSettings::default()).unwrap().is_none());
    let s = JwtSettings { algorithm: "RS256".into(), issuer: "x".into(), ..Default::default() };
    assert!(JwtVerifier::from_settings(&s).unwrap().is_none());
}

#[test]
fn config_errors_name_the_setting() {
    let es512 = JwtSettings { algorithm: "ES512".into(), ..settings_for("ES256") };
    assert!(config_err(&es512).starts_with("jwt.algorithm: unsupported algorithm 'ES512'"));

    let none = JwtSettings { algorithm: "none".into(), ..settings_for("HS256") };
    assert!(config_err(&none).starts_with("jwt.algorithm: unsupported algorithm 'none'"));

    let no_secret = JwtSettings {
        algorithm: "HS256".into(),
        jwks_url: "https://idp.example/jwks.json".into(),
        ..Default::default()
    };
    assert!(config_err(&no_secret).starts_with("jwt.secret: required for HS256"));

    let garbage = JwtSettings {
        algorithm: "RS256".into(),
        public_key: "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n".into(),
        ..Default::default()
    };
    assert_eq!(config_err(&garbage), "jwt.public_key: not a valid PEM key for RS256");

    let ec_for_rsa = JwtSettings { public_key: fixture("ec_p256_public.pem"), ..settings_for("RS256") };
    assert!(config_err(&ec_for_rsa).starts_with("jwt.public_key: not a valid PEM key for RS256"));

    let p384_for_es256 = JwtSettings { public_key: fixture("ec_p384_public.pem"), ..settings_for("ES256") };
    assert!(config_err(&p384_for_es256).starts_with("jwt.public_key: not a valid PEM key for ES256"));

    let rsa_for_eddsa = JwtSettings { public_key: fixture("rsa_public.pem"), ..settings_for("EdDSA") };
    assert!(config_err(&rsa_for_eddsa).starts_with("jwt.public_key: not a valid PEM key for EdDSA"));

    let private = JwtSettings { public_key: fixture("rsa_private.pem"), ..settings_for("RS256") };
    assert!(config_err(&private).starts_with("jwt.public_key: not a valid PEM key for RS256"));

    let missing_file = JwtSettings { public_key: "/nonexistent/key.pem".into(), ..settings_for("RS256") };
    assert!(config_err(&missing_file).starts_with("jwt.public_key: cannot read PEM file"));

    let secret_with_rsa = JwtSettings { secret: SECRET.into(), ..settings_for("RS256") };
    assert!(config_err(&secret_with_rsa).starts_with("jwt.secret: "));

    let bad_url = JwtSettings { algorithm: "RS256".into(), jwks_url: "not a url".into(), ..Default::default() };
    assert!(config_err(&bad_url).starts_with("jwt.jwks_url: "));

    let huge_skew = JwtSettings { clock_skew_seconds: u64::MAX, ..settings_for("HS256") };
    assert!(config_err(&huge_skew).starts_with("jwt.clock_skew_seconds: "));
}

#[test]
fn settings_defaults_and_debug_redaction() {
    let d = JwtSettings::default();
    assert_eq!(d.algorithm, "HS256");
    assert_eq!(d.clock_skew_seconds, 30);
    assert_eq!(d.jwks_refresh_interval_seconds, 60);
    assert_eq!((d.tenant_id_claim.as_str(), d.user_id_claim.as_str()), ("tenant_id", "sub"));
    assert_eq!((d.session_id_claim.as_str(), d.entity_claim.as_str()), ("session_id", "sub"));

    let from_json: JwtSettings =
        serde_json::from_value(json!({ "secret": "top-secret-value", "issuer": "i" })).unwrap();
    assert_eq!(from_json.algorithm, "HS256");
    assert_eq!(from_json.clock_skew_seconds, 30);
    assert!(serde_json::from_value::<JwtSettings>(json!({ "secrett": "x" })).is_err());

    let dbg = format!("{from_json:?}");
    assert!(!dbg.contains("top-secret-value"), "{dbg}");
    assert!(dbg.contains("<redacted>"));
    let v = verifier(&JwtSettings { secret: "top-secret-value".into(), ..Default::default() });
    assert!(!format!("{v:?}").contains("top-secret-value"));
    assert!(!format!("{:?}", v.settings()).contains("top-secret-value"));
}

#[test]
fn bearer_token_parsing() {
    assert_eq!(bearer_token(Some("Bearer abc.def.ghi")), Ok("abc.def.ghi"));
    assert_eq!(bearer_token(Some("bearer abc")), Ok("abc"));
    assert_eq!(bearer_token(Some("BEARER   abc  ")), Ok("abc"));
    assert_eq!(bearer_token(None), Err(BearerError::Missing));
    assert_eq!(bearer_token(Some("")), Err(BearerError::Missing));
    for bad in ["Bearer", "Bearer ", "Basic abc", "Bearerabc", "Token abc", "Bearer a b", "abc"] {
        assert_eq!(bearer_token(Some(bad)), Err(BearerError::Malformed), "{bad:?}");
    }
    assert_eq!(BearerError::Missing.to_string(), "Authorization header required");
    assert_eq!(BearerError::Malformed.to_string(), "Invalid authorization header format. Expected: Bearer <token>");
    assert_eq!(JwtError::KeysUnavailable.to_string(), "Invalid token");
    assert_eq!(JwtError::Invalid("reason".into()).to_string(), "Invalid token");
}

// ------------------------------------------------------------------------------------------
// JWKS over real HTTP
// ------------------------------------------------------------------------------------------

struct ServerState {
    body: Mutex<Value>,
    status: AtomicU64,
    delay_ms: AtomicU64,
    hits: AtomicUsize,
}

struct JwksServer {
    url: String,
    state: Arc<ServerState>,
    handle: actix_web::dev::ServerHandle,
}

impl JwksServer {
    fn start(body: Value) -> JwksServer {
        use actix_web::{web, App, HttpResponse, HttpServer};

        async fn jwks(state: web::Data<Arc<ServerState>>) -> HttpResponse {
            state.hits.fetch_add(1, Ordering::SeqCst);
            let delay = state.delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                actix_rt::time::sleep(Duration::from_millis(delay)).await;
            }
            let status = state.status.load(Ordering::SeqCst) as u16;
            let body = state.body.lock().unwrap().to_string();
            HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                .content_type("application/json")
                .body(body)
        }

        let state = Arc::new(ServerState {
            body: Mutex::new(body),
            status: AtomicU64::new(200),
            delay_ms: AtomicU64::new(0),
            hits: AtomicUsize::new(0),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let server_state = state.clone();
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let port = listener.local_addr().unwrap().port();
                let data = web::Data::new(server_state);
                let server =
                    HttpServer::new(move || App::new().app_data(data.clone()).route("/jwks.json", web::get().to(jwks)))
                        .workers(1)
                        .disable_signals()
                        .listen(listener)
                        .unwrap()
                        .run();
                tx.send((port, server.handle())).unwrap();
                server.await.unwrap();
            })
        });
        let (port, handle) = rx.recv().unwrap();
        JwksServer { url: format!("http://127.0.0.1:{port}/jwks.json"), state, handle }
    }

    fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    fn set_body(&self, body: Value) {
        *self.state.body.lock().unwrap() = body;
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        // Fire-and-forget stop; the server thread exits on its own.
        drop(self.handle.stop(false));
    }
}

/// A JWK (with kid and alg) for the public key fixture of `alg`.
fn jwk(alg: Algorithm, public_file: &str, kid: &str) -> Value {
    let pem = fixture(public_file);
    let key = match alg.family() {
        AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(pem.as_bytes()),
        AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem.as_bytes()),
        AlgorithmFamily::Ed => DecodingKey::from_ed_pem(pem.as_bytes()),
        AlgorithmFamily::Hmac => unreachable!(),
    }
    .unwrap();
    let mut jwk = Jwk::from_decoding_key(&key, Some(alg)).unwrap();
    jwk.common.key_id = Some(kid.to_string());
    serde_json::to_value(jwk).unwrap()
}

fn jwks(keys: Vec<Value>) -> Value {
    json!({ "keys": keys })
}

fn rsa2_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(fixture("rsa2_private.pem").as_bytes()).unwrap()
}

fn jwks_settings(url: &str, alg: &str, interval: u64) -> JwtSettings {
    JwtSettings {
        algorithm: alg.into(),
        jwks_url: url.into(),
        jwks_refresh_interval_seconds: interval,
        ..Default::default()
    }
}

#[tokio::test]
async fn jwks_verifies_by_kid() {
    let server = JwksServer::start(jwks(vec![
        jwk(Algorithm::RS256, "rsa_public.pem", "k1"),
        jwk(Algorithm::RS256, "rsa2_public.pem", "k2"),
    ]));
    // The set must parse as a standard JwkSet too.
    let _: JwkSet = serde_json::from_value(server.state.body.lock().unwrap().clone()).unwrap();
    let v = verifier(&jwks_settings(&server.url, "RS256", 60));
    let k1 = encoding_key(Algorithm::RS256);
    v.verify(&sign_with(Algorithm::RS256, Some("k1"), &claims(), &k1)).await.unwrap();
    v.verify(&sign_with(Algorithm::RS256, Some("k2"), &claims(), &rsa2_key())).await.unwrap();
    // Right kid, wrong key.
    assert_invalid(v.verify(&sign_with(Algorithm::RS256, Some("k2"), &claims(), &k1)).await);
    // No kid and two keys: no way to choose.
    assert_invalid(v.verify(&sign_with(Algorithm::RS256, None, &claims(), &k1)).await);
    assert_eq!(server.hits(), 1, "keys are cached");
}

#[tokio::test]
async fn jwks_other_families_and_kidless_single_key() {
    for (alg, alg_name, public) in [
        (Algorithm::ES256, "ES256", "ec_p256_public.pem"),
        (Algorithm::ES384, "ES384", "ec_p384_public.pem"),
        (Algorithm::EdDSA, "EdDSA", "ed25519_public.pem"),
        (Algorithm::PS256, "PS256", "rsa_public.pem"),
    ] {
        let server = JwksServer::start(jwks(vec![jwk(alg, public, "only")]));
        let v = verifier(&jwks_settings(&server.url, alg_name, 60));
        let key = encoding_key(alg);
        v.verify(&sign_with(alg, Some("only"), &claims(), &key)).await.unwrap();
        v.verify(&sign_with(alg, None, &claims(), &key)).await.unwrap();
    }
}

#[tokio::test]
async fn jwks_key_with_incompatible_alg_is_not_used() {
    // The JWK says RS512 but RS256 is configured; a key of the wrong type is skipped too.
    let server = JwksServer::start(jwks(vec![
        jwk(Algorithm::RS512, "rsa_public.pem", "rs512-key"),
        jwk(Algorithm::ES256, "ec_p256_public.pem", "ec-key"),
        json!({ "kty": "oct", "kid": "hmac", "k": URL_SAFE_NO_PAD.encode(SECRET) }),
        json!({ "kty": "weird", "kid": "junk" }),
        jwk(Algorithm::RS256, "rsa2_public.pem", "good"),
    ]));
    let v = verifier(&jwks_settings(&server.url, "RS256", 60));
    let k1 = encoding_key(Algorithm::RS256);
    let t = sign_with(Algorithm::RS256, Some("rs512-key"), &claims(), &k1);
    assert_invalid_because(v.verify(&t).await, "unknown kid");
    let hmac = EncodingKey::from_secret(SECRET.as_bytes());
    assert_invalid(v.verify(&sign_with(Algorithm::HS256, Some("hmac"), &claims(), &hmac)).await);
    v.verify(&sign_with(Algorithm::RS256, Some("good"), &claims(), &rsa2_key())).await.unwrap();
}

#[tokio::test]
async fn jwks_key_rotation_refetches_once() {
    let server = JwksServer::start(jwks(vec![jwk(Algorithm::RS256, "rsa_public.pem", "old")]));
    let v = verifier(&jwks_settings(&server.url, "RS256", 1));
    let old_key = encoding_key(Algorithm::RS256);
    v.verify(&sign_with(Algorithm::RS256, Some("old"), &claims(), &old_key)).await.unwrap();
    assert_eq!(server.hits(), 1);

    server.set_body(jwks(vec![jwk(Algorithm::RS256, "rsa2_public.pem", "new")]));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let new_token = sign_with(Algorithm::RS256, Some("new"), &claims(), &rsa2_key());
    v.verify(&new_token).await.unwrap();
    assert_eq!(server.hits(), 2, "exactly one refetch");
    v.verify(&new_token).await.unwrap();
    assert_eq!(server.hits(), 2);
    // The rotated-out key is gone from the cache.
    let old_token = sign_with(Algorithm::RS256, Some("old"), &claims(), &old_key);
    assert_invalid(v.verify(&old_token).await);
}

#[tokio::test]
async fn jwks_unknown_kid_refetches_at_most_once_per_interval() {
    let server = JwksServer::start(jwks(vec![jwk(Algorithm::RS256, "rsa_public.pem", "k1")]));
    let v = verifier(&jwks_settings(&server.url, "RS256", 60));
    let key = encoding_key(Algorithm::RS256);
    let unknown = sign_with(Algorithm::RS256, Some("nope"), &claims(), &key);
    for _ in 0..5 {
        assert_invalid_because(v.verify(&unknown).await, "unknown kid");
    }
    assert_eq!(server.hits(), 1, "one fetch within the interval");
    v.verify(&sign_with(Algorithm::RS256, Some("k1"), &claims(), &key)).await.unwrap();
    assert_eq!(server.hits(), 1);

    // With a 1s interval a refetch is allowed again after it elapses, but only one.
    let server = JwksServer::start(jwks(vec![jwk(Algorithm::RS256, "rsa_public.pem", "k1")]));
    let v = verifier(&jwks_settings(&server.url, "RS256", 1));
    for _ in 0..3 {
        assert_invalid(v.verify(&unknown).await);
    }
    assert_eq!(server.hits(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..3 {
        assert_invalid(v.verify(&unknown).await);
    }
    assert_eq!(server.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_concurrent_first_use_shares_one_fetch() {
    let server = JwksServer::start(jwks(vec![jwk(Algorithm::RS256, "rsa_public.pem", "k1")]));
    server.state.delay_ms.store(300, Ordering::SeqCst);
    let v = verifier(&jwks_settings(&server.url, "RS256", 60));
    let token = sign_with(Algorithm::RS256, Some("k1"), &claims(), &encoding_key(Algorithm::RS256));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (v, t) = (v.clone(), token.clone());
            tokio::spawn(async move { v.verify(&t).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(server.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_fetch_in_flight_does_not_block_known_kids() {
    let server = JwksServer::start(jwks(vec![jwk(Algorithm::RS256, "rsa_public.pem", "k1")]));
    let v = verifier(&jwks_settings(&server.url, "RS256", 1));
    let key = encoding_key(Algorithm::RS256);
    let known = sign_with(Algorithm::RS256, Some("k1"), &claims(), &key);
    v.warm_up().await.unwrap();
    assert_eq!(server.hits(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;

    server.state.delay_ms.store(1500, Ordering::SeqCst);
    let unknown = sign_with(Algorithm::RS256, Some("k-unknown"), &claims(), &key);
    let (v2, u2) = (v.clone(), unknown.clone());
    let slow = tokio::spawn(async move { v2.verify(&u2).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.hits(), 2, "the refetch is in flight");

    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_millis(500), v.verify(&known))
        .await
        .expect("known kid must not wait for the in-flight fetch")
        .unwrap();
    assert!(started.elapsed() < Duration::from_millis(500));
    assert!(!slow.is_finished());
    assert_invalid(slow.await.unwrap());
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn jwks_unreachable_is_an_error_not_a_panic() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/jwks.json");
    let v = verifier(&jwks_settings(&url, "RS256", 60));
    let token = sign_with(Algorithm::RS256, Some("k1"), &claims(), &encoding_key(Algorithm::RS256));
    let err = v.verify(&token).await.unwrap_err();
    assert_eq!(err, JwtError::KeysUnavailable);
    assert_eq!(err.to_string(), "Invalid token");
    assert_eq!(v.verify(&token).await.unwrap_err(), JwtError::KeysUnavailable);
    assert_eq!(v.warm_up().await.unwrap_err(), JwtError::KeysUnavailable);
}

#[tokio::test]
async fn jwks_http_error_and_bad_documents_are_keys_unavailable() {
    let server = JwksServer::start(jwks(vec![]));
    server.state.status.store(500, Ordering::SeqCst);
    let v = verifier(&jwks_settings(&server.url, "RS256", 1));
    let token = sign_with(Algorithm::RS256, Some("k1"), &claims(), &encoding_key(Algorithm::RS256));
    assert_eq!(v.verify(&token).await.unwrap_err(), JwtError::KeysUnavailable);
    assert_eq!(v.verify(&token).await.unwrap_err(), JwtError::KeysUnavailable);
    assert_eq!(server.hits(), 1, "failed fetches are rate limited too");

    // Recovery after the interval, once the endpoint serves a proper document.
    server.state.status.store(200, Ordering::SeqCst);
    server.set_body(json!({ "not_keys": [] }));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(v.verify(&token).await.unwrap_err(), JwtError::KeysUnavailable);
    server.set_body(jwks(vec![jwk(Algorithm::RS256, "rsa_public.pem", "k1")]));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    v.verify(&token).await.unwrap();
    assert_eq!(server.hits(), 3);
}

/// The real server runs handlers on actix-rt's single-threaded runtime: JWKS fetching (which
/// spawns a tokio task) must work there too.
#[actix_rt::test]
async fn jwks_works_on_the_actix_runtime() {
    let server = JwksServer::start(jwks(vec![jwk(Algorithm::ES256, "ec_p256_public.pem", "e1")]));
    let v = verifier(&jwks_settings(&server.url, "ES256", 60));
    let token = sign_with(Algorithm::ES256, Some("e1"), &claims(), &encoding_key(Algorithm::ES256));
    let c = v.verify(&token).await.unwrap();
    assert_eq!(c.identity(v.settings()).unwrap().tenant_id, "tenant-1");
}
