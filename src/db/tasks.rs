//! Repository functions for generation tasks.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::generation_tasks;
use super::{Database, DbError};
use crate::with_conn;

/// A stored task: its owner and its latest state.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = generation_tasks)]
pub struct TaskRow {
    pub id: String,
    pub kind: String,
    pub virtual_key_id: i64,
    pub model: String,
    pub request: String,
    pub status: String,
    pub progress: i32,
    pub message: Option<String>,
    pub result: Option<String>,
    pub error: Option<String>,
    pub cost: Option<f64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The base URL the client used when it started the task, for links in a result made later.
    pub base_url: Option<String>,
}

/// A state change. Only non-terminal tasks change: the update is conditional on the status in storage,
/// so two writers cannot both finish a task.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = generation_tasks)]
pub struct TaskChanges {
    pub status: Option<String>,
    pub progress: Option<i32>,
    pub message: Option<Option<String>>,
    pub result: Option<Option<String>>,
    pub error: Option<Option<String>>,
    pub cost: Option<Option<f64>>,
    pub updated_at: Option<i64>,
}

/// Statuses after which a task never changes.
pub const TERMINAL: [&str; 4] = ["completed", "failed", "cancelled", "timedout"];

pub async fn insert(db: &Database, row: TaskRow) -> Result<TaskRow, DbError> {
    with_conn!(db, |conn| {
        diesel::insert_into(generation_tasks::table).values(&row).execute(conn).await?;
        Ok(row)
    })
}

pub async fn get(db: &Database, id: &str) -> Result<Option<TaskRow>, DbError> {
    with_conn!(db, |conn| {
        Ok(generation_tasks::table.find(id).select(TaskRow::as_select()).first(conn).await.optional()?)
    })
}

/// Applies `changes` if the task is not finished; `None` when it is finished or does not exist.
pub async fn update_unfinished(db: &Database, id: &str, changes: TaskChanges) -> Result<Option<TaskRow>, DbError> {
    with_conn!(db, |conn| {
        Ok(diesel::update(
            generation_tasks::table
                .filter(generation_tasks::id.eq(id))
                .filter(generation_tasks::status.ne_all(TERMINAL)),
        )
        .set(&changes)
        .returning(TaskRow::as_returning())
        .get_result(conn)
        .await
        .optional()?)
    })
}

/// Unfinished tasks of the simulated provider (models `sim-…`) that nobody touched since `before` (Unix
/// ms): their runner stopped (a restart, a crashed node). Oldest first.
pub async fn abandoned_simulated(db: &Database, before: i64, limit: i64) -> Result<Vec<TaskRow>, DbError> {
    with_conn!(db, |conn| {
        Ok(generation_tasks::table
            .filter(generation_tasks::status.ne_all(TERMINAL))
            .filter(generation_tasks::updated_at.lt(before))
            .filter(diesel::dsl::sql::<diesel::sql_types::Bool>("lower(model) LIKE 'sim-%'"))
            .order(generation_tasks::updated_at.asc())
            .limit(limit)
            .select(TaskRow::as_select())
            .load(conn)
            .await?)
    })
}

/// Takes on an abandoned task: succeeds for exactly one caller, and only if nobody touched the task since
/// it was seen at `seen_updated_at`.
pub async fn claim_abandoned(db: &Database, id: &str, seen_updated_at: i64, now: i64) -> Result<bool, DbError> {
    with_conn!(db, |conn| {
        let n = diesel::update(
            generation_tasks::table
                .filter(generation_tasks::id.eq(id))
                .filter(generation_tasks::updated_at.eq(seen_updated_at))
                .filter(generation_tasks::status.ne_all(TERMINAL)),
        )
        .set(generation_tasks::updated_at.eq(now))
        .execute(conn)
        .await?;
        Ok(n == 1)
    })
}
