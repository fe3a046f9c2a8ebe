//! Repository functions for virtual keys. Rows hold the key's SHA-256, never the key.
//!
//! Every change to a key also appends a row to the key change log (`virtual_key_changes`) in the same
//! transaction, naming who wrote it ([`ChangeWriter`]). Server nodes poll that log
//! (`admin::key_changes`), so a change made by another process or node is announced and enforced
//! everywhere, and a change is never logged without happening (or the other way round).

use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::schema::{virtual_key_changes, virtual_keys};
use super::{Database, DbError};
use crate::with_conn;

/// A stored virtual key.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = virtual_keys)]
pub struct VirtualKeyRow {
    pub id: i64,
    pub key_name: String,
    pub key_hash: String,
    pub key_prefix: String,
    pub description: Option<String>,
    pub is_enabled: bool,
    pub expires_at: Option<i64>,
    pub allowed_models: Option<String>,
    pub rate_limit_rpm: Option<i32>,
    pub rate_limit_rpd: Option<i32>,
    pub max_connections: Option<i32>,
    pub max_budget: Option<f64>,
    pub current_spend: f64,
    pub metadata: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A key to insert; the hash and prefix are computed by the caller from the fresh secret.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = virtual_keys)]
pub struct NewVirtualKey {
    pub key_name: String,
    pub key_hash: String,
    pub key_prefix: String,
    pub description: Option<String>,
    pub is_enabled: bool,
    pub expires_at: Option<i64>,
    pub allowed_models: Option<String>,
    pub rate_limit_rpm: Option<i32>,
    pub rate_limit_rpd: Option<i32>,
    pub max_connections: Option<i32>,
    pub max_budget: Option<f64>,
    pub current_spend: f64,
    pub metadata: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A partial update: `None` leaves a column as it is, `Some(None)` clears a nullable one.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = virtual_keys)]
pub struct VirtualKeyChanges {
    pub key_name: Option<String>,
    pub description: Option<Option<String>>,
    pub is_enabled: Option<bool>,
    pub expires_at: Option<Option<i64>>,
    pub allowed_models: Option<Option<String>>,
    pub rate_limit_rpm: Option<Option<i32>>,
    pub rate_limit_rpd: Option<Option<i32>>,
    pub max_connections: Option<Option<i32>>,
    pub max_budget: Option<Option<f64>>,
    pub current_spend: Option<f64>,
    pub metadata: Option<Option<String>>,
    pub updated_at: Option<i64>,
}

/// What happened to a key, as stored in the change log's `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Created,
    Updated,
    Deleted,
    /// Spend reached the budget: the key stopped working (its writer announced the alerts itself).
    BudgetExceeded,
}

impl ChangeKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::Updated => "updated",
            ChangeKind::Deleted => "deleted",
            ChangeKind::BudgetExceeded => "budget_exceeded",
        }
    }

    /// The kind of a stored name; `None` for a name this version does not know (a newer writer's).
    pub fn parse(name: &str) -> Option<ChangeKind> {
        [ChangeKind::Created, ChangeKind::Updated, ChangeKind::Deleted, ChangeKind::BudgetExceeded]
            .into_iter()
            .find(|k| k.as_str() == name)
    }
}

/// Who makes a key change. Recorded with it, so that pollers skip their own changes and know whether
/// operators were already told.
#[derive(Debug, Clone)]
pub struct ChangeWriter {
    /// The writing server node's id, or a one-off command's.
    pub origin: String,
    /// Whether the writer sends the admin hub event itself: a server node does, the CLI cannot.
    pub announces: bool,
}

impl ChangeWriter {
    /// A server node, which announces and enforces its own changes at once.
    pub fn node(node_id: &str) -> ChangeWriter {
        ChangeWriter { origin: node_id.to_string(), announces: true }
    }

    /// A one-off command (`switchyard keys …`): the running servers announce and enforce its changes.
    pub fn command() -> ChangeWriter {
        ChangeWriter {
            origin: format!("cli-{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            announces: false,
        }
    }
}

/// One entry of the key change log.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = virtual_key_changes)]
pub struct KeyChangeRow {
    pub id: i64,
    pub key_id: i64,
    pub kind: String,
    /// For updates: the fields the request set (JSON), never a secret.
    pub details: Option<String>,
    pub origin: String,
    pub announced: bool,
    pub created_at: i64,
}

#[derive(Insertable)]
#[diesel(table_name = virtual_key_changes)]
struct NewKeyChange<'a> {
    key_id: i64,
    kind: &'static str,
    details: Option<&'a str>,
    origin: &'a str,
    announced: bool,
    created_at: i64,
}

fn change<'a>(key_id: i64, kind: ChangeKind, details: Option<&'a str>, writer: &'a ChangeWriter) -> NewKeyChange<'a> {
    NewKeyChange {
        key_id,
        kind: kind.as_str(),
        details,
        origin: &writer.origin,
        announced: writer.announces,
        created_at: super::now_ms(),
    }
}

/// Inserts a key (and its log entry) and returns the stored row.
pub async fn insert(db: &Database, new: NewVirtualKey, writer: &ChangeWriter) -> Result<VirtualKeyRow, DbError> {
    with_conn!(db, |conn| {
        Ok(conn
            .transaction::<_, diesel::result::Error, _>(async |conn| {
                let row: VirtualKeyRow = diesel::insert_into(virtual_keys::table)
                    .values(&new)
                    .returning(VirtualKeyRow::as_returning())
                    .get_result(conn)
                    .await?;
                diesel::insert_into(virtual_key_changes::table)
                    .values(change(row.id, ChangeKind::Created, None, writer))
                    .execute(conn)
                    .await?;
                Ok(row)
            })
            .await?)
    })
}

/// One key by id.
pub async fn get(db: &Database, id: i64) -> Result<Option<VirtualKeyRow>, DbError> {
    with_conn!(db, |conn| {
        Ok(virtual_keys::table.find(id).select(VirtualKeyRow::as_select()).first(conn).await.optional()?)
    })
}

/// The key whose SHA-256 is `hash`: how a presented key is authenticated.
pub async fn find_by_hash(db: &Database, hash: &str) -> Result<Option<VirtualKeyRow>, DbError> {
    with_conn!(db, |conn| {
        Ok(virtual_keys::table
            .filter(virtual_keys::key_hash.eq(hash))
            .select(VirtualKeyRow::as_select())
            .first(conn)
            .await
            .optional()?)
    })
}

/// A page of keys in id order, with the total count.
pub async fn list(db: &Database, offset: i64, limit: i64) -> Result<(Vec<VirtualKeyRow>, i64), DbError> {
    with_conn!(db, |conn| {
        let total: i64 = virtual_keys::table.count().get_result(conn).await?;
        let rows = virtual_keys::table
            .order(virtual_keys::id.asc())
            .offset(offset)
            .limit(limit)
            .select(VirtualKeyRow::as_select())
            .load(conn)
            .await?;
        Ok((rows, total))
    })
}

/// Applies a partial update (logged with `details`, the fields the caller set); `None` when no key has
/// that id.
pub async fn update(
    db: &Database,
    id: i64,
    changes: VirtualKeyChanges,
    details: &str,
    writer: &ChangeWriter,
) -> Result<Option<VirtualKeyRow>, DbError> {
    with_conn!(db, |conn| {
        Ok(conn
            .transaction::<_, diesel::result::Error, _>(async |conn| {
                let row: Option<VirtualKeyRow> = diesel::update(virtual_keys::table.find(id))
                    .set(&changes)
                    .returning(VirtualKeyRow::as_returning())
                    .get_result(conn)
                    .await
                    .optional()?;
                if row.is_some() {
                    diesel::insert_into(virtual_key_changes::table)
                        .values(change(id, ChangeKind::Updated, Some(details), writer))
                        .execute(conn)
                        .await?;
                }
                Ok(row)
            })
            .await?)
    })
}

/// Deletes a key; `false` when no key had that id.
pub async fn delete(db: &Database, id: i64, writer: &ChangeWriter) -> Result<bool, DbError> {
    with_conn!(db, |conn| {
        Ok(conn
            .transaction::<_, diesel::result::Error, _>(async |conn| {
                let n = diesel::delete(virtual_keys::table.find(id)).execute(conn).await?;
                if n > 0 {
                    diesel::insert_into(virtual_key_changes::table)
                        .values(change(id, ChangeKind::Deleted, None, writer))
                        .execute(conn)
                        .await?;
                }
                Ok(n > 0)
            })
            .await?)
    })
}

/// Adds to a key's spend atomically (in the database, not read-modify-write) and returns the new row.
/// When this addition reaches the budget, the key stops working: that is logged, so that every node
/// closes the key's connections.
pub async fn add_spend(
    db: &Database,
    id: i64,
    amount: f64,
    writer: &ChangeWriter,
) -> Result<Option<VirtualKeyRow>, DbError> {
    with_conn!(db, |conn| {
        Ok(conn
            .transaction::<_, diesel::result::Error, _>(async |conn| {
                let row: Option<VirtualKeyRow> = diesel::update(virtual_keys::table.find(id))
                    .set((
                        virtual_keys::current_spend.eq(virtual_keys::current_spend + amount),
                        virtual_keys::updated_at.eq(super::now_ms()),
                    ))
                    .returning(VirtualKeyRow::as_returning())
                    .get_result(conn)
                    .await
                    .optional()?;
                if let Some(row) = &row {
                    let before = row.current_spend - amount;
                    if row.max_budget.is_some_and(|budget| before < budget && row.current_spend >= budget) {
                        diesel::insert_into(virtual_key_changes::table)
                            .values(change(id, ChangeKind::BudgetExceeded, None, writer))
                            .execute(conn)
                            .await?;
                    }
                }
                Ok(row)
            })
            .await?)
    })
}

/// The newest entry's id in the key change log (0 when it is empty): where a starting node begins.
pub async fn last_change_id(db: &Database) -> Result<i64, DbError> {
    with_conn!(db, |conn| {
        let id: Option<i64> =
            virtual_key_changes::table.select(diesel::dsl::max(virtual_key_changes::id)).first(conn).await?;
        Ok(id.unwrap_or(0))
    })
}

/// Log entries after `after`, except those in `skip` (already handled), oldest first.
pub async fn changes_after(db: &Database, after: i64, skip: &[i64], limit: i64) -> Result<Vec<KeyChangeRow>, DbError> {
    with_conn!(db, |conn| {
        Ok(virtual_key_changes::table
            .filter(virtual_key_changes::id.gt(after))
            .filter(virtual_key_changes::id.ne_all(skip))
            .order(virtual_key_changes::id.asc())
            .limit(limit)
            .select(KeyChangeRow::as_select())
            .load(conn)
            .await?)
    })
}

/// Takes on announcing an entry nobody announced yet. Exactly one caller gets `true`, however many
/// nodes try at once.
pub async fn claim_announcement(db: &Database, change_id: i64) -> Result<bool, DbError> {
    with_conn!(db, |conn| {
        let n = diesel::update(
            virtual_key_changes::table
                .filter(virtual_key_changes::id.eq(change_id))
                .filter(virtual_key_changes::announced.eq(false)),
        )
        .set(virtual_key_changes::announced.eq(true))
        .execute(conn)
        .await?;
        Ok(n == 1)
    })
}

/// Deletes log entries written before `before` (Unix ms); returns how many.
pub async fn prune_changes(db: &Database, before: i64) -> Result<usize, DbError> {
    with_conn!(db, |conn| {
        Ok(diesel::delete(virtual_key_changes::table.filter(virtual_key_changes::created_at.lt(before)))
            .execute(conn)
            .await?)
    })
}

/// Keys whose expiry fell in `(after, until]`: their live connections must be closed.
pub async fn expired_between(db: &Database, after: i64, until: i64) -> Result<Vec<i64>, DbError> {
    with_conn!(db, |conn| {
        Ok(virtual_keys::table
            .filter(virtual_keys::expires_at.gt(after))
            .filter(virtual_keys::expires_at.le(until))
            .select(virtual_keys::id)
            .load(conn)
            .await?)
    })
}
