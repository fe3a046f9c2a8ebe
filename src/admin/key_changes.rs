//! The KeyChangeWatcher actor: every node reads the virtual key change log (`virtual_key_changes`, written
//! in the same transaction as each change by `db::virtual_keys`) every `ops.key_changes_poll_ms`. For an
//! entry written by another process or node it does here what the admin API does on the writer's node:
//! a key that is deleted, disabled, expired or out of budget loses its live connections on this node, and
//! operators are told (`VirtualKeyCreated`, `VirtualKeyUpdated`, `VirtualKeyDeleted`) when the writer
//! could not tell them itself (the CLI). Announcing is claimed in storage, so exactly one node announces
//! such an entry. Entries this node wrote are skipped: the admin API already acted on them.
//!
//! Ids are assigned before commit, so on PostgreSQL an entry may become visible after a newer one. The
//! watcher therefore re-reads the ids above its floor that it has not handled, and moves the floor past
//! an id only a while after handling it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::web;

use crate::db::virtual_keys::{self as repo, ChangeKind, KeyChangeRow};
use crate::db::{now_ms, DbError};
use crate::state::AppState;
use crate::virtual_keys::{self, KeyInfo};

/// A handled id stays in the re-read window this long, so that entries committed late are still seen.
const LATE_COMMIT_GRACE: Duration = Duration::from_secs(30);
/// At most this many handled ids are remembered; beyond it the floor moves on sooner.
const MAX_REMEMBERED: usize = 2_000;
/// Entries read per poll.
const BATCH: i64 = 500;
/// How often old entries are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// See the module documentation.
pub struct KeyChangeWatcher {
    state: web::Data<AppState>,
    /// Every id at or below this was handled, or is older than the grace window.
    floor: Option<i64>,
    /// Ids above the floor already handled, with when.
    handled: BTreeMap<i64, Instant>,
    busy: bool,
    last_prune: Option<Instant>,
}

impl KeyChangeWatcher {
    /// A watcher for this node; it starts from the newest entry at its start (older ones were dealt
    /// with by the nodes running then).
    pub fn new(state: web::Data<AppState>) -> KeyChangeWatcher {
        KeyChangeWatcher { state, floor: None, handled: BTreeMap::new(), busy: false, last_prune: None }
    }

    fn forget_old(&mut self) {
        let now = Instant::now();
        let excess = self.handled.len().saturating_sub(MAX_REMEMBERED);
        let old: Vec<i64> = self
            .handled
            .iter()
            .enumerate()
            .filter(|(i, (_, at))| *i < excess || now.duration_since(**at) > LATE_COMMIT_GRACE)
            .map(|(_, (id, _))| *id)
            .collect();
        for id in old {
            self.handled.remove(&id);
            self.floor = Some(self.floor.unwrap_or(0).max(id));
        }
    }

    fn poll(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        let state = self.state.clone();
        let floor = self.floor;
        let skip: Vec<i64> = self.handled.keys().copied().collect();
        let prune = self.last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY);
        let work = async move {
            if prune {
                let retention = i64::try_from(state.config.ops.key_changes_retention_seconds).unwrap_or(i64::MAX);
                let before = now_ms().saturating_sub(retention.saturating_mul(1000));
                match repo::prune_changes(&state.db, before).await {
                    Ok(n) if n > 0 => tracing::debug!(entries = n, "key change log pruned"),
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "key change log prune failed; retrying later"),
                }
            }
            let mut done = Vec::new();
            let Some(floor) = floor else {
                return match repo::last_change_id(&state.db).await {
                    Ok(id) => (Some(id), done, None),
                    Err(e) => (None, done, Some(e)),
                };
            };
            let rows = match repo::changes_after(&state.db, floor, &skip, BATCH).await {
                Ok(rows) => rows,
                Err(e) => return (None, done, Some(e)),
            };
            for row in rows {
                let id = row.id;
                if let Err(e) = apply(&state, row).await {
                    return (None, done, Some(e));
                }
                done.push(id);
            }
            (None, done, None)
        };
        ctx.spawn(work.into_actor(self).map(move |(start, done, error), act, _| {
            act.busy = false;
            if prune {
                act.last_prune = Some(Instant::now());
            }
            if let Some(start) = start {
                act.floor = Some(start);
            }
            let now = Instant::now();
            act.handled.extend(done.into_iter().map(|id| (id, now)));
            act.forget_old();
            if let Some(e) = error {
                crate::ops::metrics::STORAGE_ERRORS.inc();
                tracing::debug!(error = %e, "key change log read failed; retrying");
            }
        }));
    }
}

impl Actor for KeyChangeWatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.poll(ctx);
        let every = Duration::from_millis(self.state.config.ops.key_changes_poll_ms);
        ctx.run_interval(every, |act, ctx| act.poll(ctx));
    }
}

/// Acts on one entry of the log. An error leaves it unhandled, to be read again.
async fn apply(state: &AppState, row: KeyChangeRow) -> Result<(), DbError> {
    if row.origin == state.node_id {
        return Ok(());
    }
    let Some(kind) = ChangeKind::parse(&row.kind) else {
        tracing::debug!(kind = %row.kind, "unknown key change kind skipped");
        return Ok(());
    };
    let key = match kind {
        ChangeKind::Deleted => None,
        _ => repo::get(&state.db, row.key_id).await?,
    };
    match (kind, &key) {
        // Every node reads the log: each closes its own connections.
        (ChangeKind::Deleted, _) => virtual_keys::close_local_connections(state, row.key_id, "Virtual key was deleted"),
        (_, Some(key)) => virtual_keys::enforce_locally(state, key),
        // Deleted since; the deletion's own entry closes its connections.
        (_, None) => {}
    }
    if row.announced || !repo::claim_announcement(&state.db, row.id).await? {
        return Ok(());
    }
    tracing::info!(key_id = row.key_id, kind = %row.kind, origin = %row.origin, "key change from elsewhere announced");
    match (kind, key) {
        (ChangeKind::Created, Some(key)) => virtual_keys::notify_created(state, &KeyInfo::from(&key)),
        (ChangeKind::Updated, Some(key)) => {
            let details = row.details.as_deref().and_then(|d| serde_json::from_str(d).ok()).unwrap_or_default();
            virtual_keys::notify_updated(state, &key, details);
        }
        (ChangeKind::Deleted, _) => virtual_keys::notify_deleted(state, row.key_id),
        // Spend alerts are sent by the node that recorded the spend; a key deleted since is announced
        // by its deletion's entry.
        _ => {}
    }
    Ok(())
}
