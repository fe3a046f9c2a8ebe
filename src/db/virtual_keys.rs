//! Repository functions for virtual keys. Rows hold the key's SHA-256, never the key.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::virtual_keys;
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

/// Inserts a key and returns the stored row.
pub async fn insert(db: &Database, new: NewVirtualKey) -> Result<VirtualKeyRow, DbError> {
    with_conn!(db, |conn| {
        Ok(diesel::insert_into(virtual_keys::table)
            .values(&new)
            .returning(VirtualKeyRow::as_returning())
            .get_result(conn)
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

/// Applies a partial update; `None` when no key has that id.
pub async fn update(db: &Database, id: i64, changes: VirtualKeyChanges) -> Result<Option<VirtualKeyRow>, DbError> {
    with_conn!(db, |conn| {
        Ok(diesel::update(virtual_keys::table.find(id))
            .set(&changes)
            .returning(VirtualKeyRow::as_returning())
            .get_result(conn)
            .await
            .optional()?)
    })
}

/// Deletes a key; `false` when no key had that id.
pub async fn delete(db: &Database, id: i64) -> Result<bool, DbError> {
    with_conn!(db, |conn| {
        let n = diesel::delete(virtual_keys::table.find(id)).execute(conn).await?;
        Ok(n > 0)
    })
}

/// Adds to a key's spend atomically (in the database, not read-modify-write) and returns the new row.
pub async fn add_spend(db: &Database, id: i64, amount: f64) -> Result<Option<VirtualKeyRow>, DbError> {
    with_conn!(db, |conn| {
        Ok(diesel::update(virtual_keys::table.find(id))
            .set((
                virtual_keys::current_spend.eq(virtual_keys::current_spend + amount),
                virtual_keys::updated_at.eq(super::now_ms()),
            ))
            .returning(VirtualKeyRow::as_returning())
            .get_result(conn)
            .await
            .optional()?)
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
