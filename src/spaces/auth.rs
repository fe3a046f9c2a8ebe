//! Who is calling the spaces gateway. Credentials are read here and nowhere else: the secret key (may do
//! everything, optionally naming a caller with a user JWT), or the public key together with a user JWT
//! (acts only as the entity the JWT names). Keys are compared in constant time; tokens are never logged.

use actix_web::http::header::{HeaderMap, AUTHORIZATION};
use actix_web::HttpRequest;

use super::error::SpacesError;
use super::Spaces;
use crate::auth::jwt::{bearer_token, JwtError};
use crate::auth::secrets::constant_time_eq;
use crate::db::spaces::{self as repo, EntityRow};
use crate::db::Database;

pub const MISSING_SECRET: &str = "Missing x-secret-key header";
pub const INVALID_SECRET: &str = "Invalid secret key";
pub const MISSING_PUBLIC: &str = "Missing x-public-key header";
pub const INVALID_PUBLIC: &str = "Invalid public key";
pub const BAD_AUTHORIZATION: &str = "Missing or invalid Authorization header";
pub const BAD_JWT: &str = "Invalid or expired JWT";
pub const AUTH_REQUIRED: &str =
    "Authentication required. Provide x-secret-key, or x-public-key + Authorization header.";
pub const NO_ENTITY: &str = "No entity found for this user";
pub const NOT_MEMBER: &str = "Entity is not a member of this SmartSpace";
pub const SECRET_ONLY: &str = "This operation requires the secret key";

/// An authenticated caller.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The secret key; `entity` is the caller a Bearer JWT named, if one was sent.
    Secret { entity: Option<EntityRow> },
    /// The public key with a user JWT: acts only as this entity.
    Public { entity: EntityRow },
}

impl Caller {
    /// The entity the caller acts as, if known.
    pub fn entity(&self) -> Option<&EntityRow> {
        match self {
            Caller::Secret { entity } => entity.as_ref(),
            Caller::Public { entity } => Some(entity),
        }
    }

    /// 403 unless this is the secret key: every route a public-key caller may not use calls this.
    pub fn require_secret(&self) -> Result<(), SpacesError> {
        match self {
            Caller::Secret { .. } => Ok(()),
            Caller::Public { .. } => Err(SpacesError::forbidden(SECRET_ONLY)),
        }
    }

    /// 403 unless the caller may read and write in `space`: the secret key always may, a public-key
    /// caller only as a member.
    pub async fn require_member(&self, db: &Database, space: &str) -> Result<(), SpacesError> {
        match self {
            Caller::Secret { .. } => Ok(()),
            Caller::Public { entity } => match repo::membership(db, space, &entity.id).await? {
                Some(_) => Ok(()),
                None => Err(SpacesError::forbidden(NOT_MEMBER)),
            },
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// Compares a presented key with the configured one; an unset configured key matches nothing.
fn key_matches(presented: &str, configured: &str) -> bool {
    !configured.is_empty() && constant_time_eq(presented, configured)
}

/// Authenticates a request on a route the public key may use.
pub async fn authenticate(req: &HttpRequest, spaces: &Spaces, db: &Database) -> Result<Caller, SpacesError> {
    let headers = req.headers();
    let authorization = header(headers, AUTHORIZATION.as_str()).filter(|v| !v.is_empty());
    if let Some(secret) = header(headers, "x-secret-key") {
        if !key_matches(secret, &spaces.config.secret_key) {
            return Err(SpacesError::unauthorized(INVALID_SECRET));
        }
        let entity = match authorization {
            Some(value) => Some(entity_from_jwt(value, spaces, db).await?),
            None => None,
        };
        return Ok(Caller::Secret { entity });
    }
    if let Some(public) = header(headers, "x-public-key") {
        if !key_matches(public, &spaces.config.public_key) {
            return Err(SpacesError::unauthorized(INVALID_PUBLIC));
        }
        let value = authorization.ok_or_else(|| SpacesError::unauthorized(BAD_AUTHORIZATION))?;
        let entity = entity_from_jwt(value, spaces, db).await?;
        return Ok(Caller::Public { entity });
    }
    if authorization.is_some() {
        return Err(SpacesError::unauthorized(MISSING_PUBLIC));
    }
    Err(SpacesError::unauthorized(AUTH_REQUIRED))
}

/// Authenticates a secret-key-only route: no credentials answers "Missing x-secret-key header", a valid
/// public-key caller 403.
pub async fn authenticate_secret(req: &HttpRequest, spaces: &Spaces, db: &Database) -> Result<Caller, SpacesError> {
    let headers = req.headers();
    if header(headers, "x-secret-key").is_none() && header(headers, "x-public-key").is_none() {
        return Err(SpacesError::unauthorized(MISSING_SECRET));
    }
    let caller = authenticate(req, spaces, db).await?;
    caller.require_secret()?;
    Ok(caller)
}

/// Verifies `Bearer <jwt>` and finds the entity whose externalId the configured claim names.
async fn entity_from_jwt(authorization: &str, spaces: &Spaces, db: &Database) -> Result<EntityRow, SpacesError> {
    let token = bearer_token(Some(authorization)).map_err(|_| SpacesError::unauthorized(BAD_AUTHORIZATION))?;
    let verifier = spaces.verifier.as_ref().ok_or_else(|| SpacesError::unauthorized(BAD_JWT))?;
    let claims = verifier.verify(token).await.map_err(|_| SpacesError::unauthorized(BAD_JWT))?;
    let external_id = claims.entity(verifier.settings()).map_err(|e| match e {
        JwtError::MissingClaim(claim) => SpacesError::Unauthorized(format!("JWT missing claim: {claim}")),
        _ => SpacesError::unauthorized(BAD_JWT),
    })?;
    repo::entity_by_external_id(db, &external_id).await?.ok_or_else(|| SpacesError::forbidden(NO_ENTITY))
}

/// A fresh pair of system keys: `sk_` and `pk_`, each followed by 48 random hex characters.
pub fn new_system_keys() -> Result<(String, String), String> {
    let random = || crate::auth::secrets::random_hex(24).map_err(|_| "the system random generator failed".to_string());
    Ok((format!("sk_{}", random()?), format!("pk_{}", random()?)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn system_keys_have_prefix_and_48_hex() {
        let (sk, pk) = super::new_system_keys().unwrap();
        for (key, prefix) in [(&sk, "sk_"), (&pk, "pk_")] {
            let rest = key.strip_prefix(prefix).unwrap();
            assert_eq!(rest.len(), 48);
            assert!(rest.chars().all(|c| c.is_ascii_hexdigit()));
        }
        assert_ne!(sk[3..], pk[3..]);
    }
}
