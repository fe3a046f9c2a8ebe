//! The spaces gateway: entities, agents, smart spaces, memberships, messages and runs over REST, streamed
//! over SSE, for backends (secret key) and browsers (public key + user JWT). Routes, field names and the
//! stream format are the contract of the @hsafa/node SDK.
//!
//! Every write that others must see goes through [`db::spaces::write`](crate::db::spaces::write) (which
//! gives it its seq) and then to [`fanout::SpaceFanout`], which delivers to the stream actors registered
//! with the space's group.

pub mod agents;
pub mod auth;
pub mod entities;
pub mod error;
pub mod fanout;
pub mod members;
pub mod messages;
pub mod routes;
pub mod runs;
pub mod smart_spaces;
pub mod stream;

use std::sync::Arc;

use serde_json::Value;

use crate::auth::jwt::JwtVerifier;
use crate::config::SpacesConfig;
use crate::db::ms_to_rfc3339;
use crate::db::spaces::EventRow;

/// What the spaces handlers share: the keys, the user-JWT verifier and the fan-out actor.
#[derive(Clone)]
pub struct Spaces {
    pub config: Arc<SpacesConfig>,
    /// `None` when no JWT key is configured: every public-key caller is refused.
    pub verifier: Option<JwtVerifier>,
    pub fanout: actix::Addr<fanout::SpaceFanout>,
}

impl Spaces {
    /// Builds the context; the fan-out actor starts on the current arbiter.
    pub fn new(config: &crate::config::Config) -> Spaces {
        // The configuration was validated at load, so an error here cannot happen; refuse JWTs if it does.
        let verifier = JwtVerifier::from_settings(&config.jwt).ok().flatten();
        Spaces {
            config: Arc::new(config.spaces.clone()),
            verifier,
            fanout: actix::Actor::start(fanout::SpaceFanout::default()),
        }
    }
}

/// A stored JSON column as a value (`null` when unset or unreadable).
pub fn json_column(text: &Option<String>) -> Value {
    text.as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or(Value::Null)
}

/// A JSON value as a column: `null` is stored as NULL.
pub fn to_column(value: &Option<Value>) -> Option<String> {
    value.as_ref().filter(|v| !v.is_null()).map(Value::to_string)
}

/// The wire form of a stream event (the `data:` of an SSE event), as the SDK parses it.
pub fn event_json(e: &EventRow) -> Value {
    let mut out = serde_json::json!({
        "id": e.id,
        "type": e.event_type,
        "ts": ms_to_rfc3339(e.created_at),
        "data": serde_json::from_str::<Value>(&e.data).unwrap_or(Value::Null),
        "smartSpaceId": e.space_id,
        "seq": e.seq.to_string(),
    });
    if let Some(map) = out.as_object_mut() {
        for (name, value) in [
            ("runId", &e.run_id),
            ("entityId", &e.entity_id),
            ("entityType", &e.entity_type),
            ("agentEntityId", &e.agent_entity_id),
        ] {
            if let Some(v) = value {
                map.insert(name.into(), Value::String(v.clone()));
            }
        }
    }
    out
}

/// A new UUID as text: the id of every spaces row.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Hands stored events to the fan-out of every node (through the backplane), which delivers them to
/// the streams of their spaces.
pub fn publish(state: &crate::state::AppState, events: Vec<EventRow>) {
    if !events.is_empty() {
        state.backplane.do_send(crate::backplane::Broadcast::SpaceEvents { events });
    }
}
