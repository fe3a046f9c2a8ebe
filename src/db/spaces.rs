//! Repository functions for the spaces gateway. Every write that gives a message or an event its `seq`
//! runs in one transaction that first advances the space's counter row (`UPDATE … RETURNING`): the row
//! lock serialises concurrent posters on both backends, and a failed write rolls its seq back, so seqs
//! are unique and gap-free per space.

use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde_json::Value;

use super::schema::{
    smart_spaces, space_events, space_memberships, space_messages, space_runs, space_tool_results, spaces_agents,
    spaces_entities,
};
use super::{now_ms, Database, DbError};
use crate::with_conn;

/// A stored agent configuration; `config_hash` makes the same configuration one agent.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = spaces_agents)]
pub struct AgentRow {
    pub id: String,
    pub name: Option<String>,
    pub config: String,
    pub config_hash: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A participant of spaces: a human, a system (service) or an agent.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = spaces_entities)]
pub struct EntityRow {
    pub id: String,
    pub entity_type: String,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    pub metadata: Option<String>,
    pub agent_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A partial entity update; `None` leaves a column as it is.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = spaces_entities)]
pub struct EntityChanges {
    pub external_id: Option<Option<String>>,
    pub display_name: Option<Option<String>>,
    pub metadata: Option<Option<String>>,
    pub updated_at: Option<i64>,
}

/// A smart space with its two seq counters.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = smart_spaces)]
pub struct SpaceRow {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub metadata: Option<String>,
    pub message_seq: i64,
    pub event_seq: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A partial space update.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = smart_spaces)]
pub struct SpaceChanges {
    pub name: Option<Option<String>>,
    pub description: Option<Option<String>>,
    pub metadata: Option<Option<String>>,
    pub updated_at: Option<i64>,
}

/// An entity's membership in a space.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = space_memberships)]
pub struct MembershipRow {
    pub space_id: String,
    pub entity_id: String,
    pub role: Option<String>,
    pub joined_at: i64,
}

/// A message; `seq` is its place in the space.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = space_messages)]
pub struct MessageRow {
    pub id: String,
    pub space_id: String,
    pub seq: i64,
    pub entity_id: Option<String>,
    pub role: String,
    pub content: Option<String>,
    pub metadata: Option<String>,
    pub created_at: i64,
}

/// An agent run in a space.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = space_runs)]
pub struct RunRow {
    pub id: String,
    pub space_id: String,
    pub agent_entity_id: String,
    pub agent_id: Option<String>,
    pub status: String,
    pub trigger_message_id: Option<String>,
    pub metadata: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub completed_at: Option<i64>,
}

/// A stored stream event, replayed by seq. Serializable: the backplane carries it between nodes.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = space_events)]
pub struct EventRow {
    pub id: String,
    pub space_id: String,
    pub seq: i64,
    pub event_type: String,
    pub run_id: Option<String>,
    pub entity_id: Option<String>,
    pub entity_type: Option<String>,
    pub agent_entity_id: Option<String>,
    pub data: String,
    pub created_at: i64,
}

/// A tool call's accepted result.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = space_tool_results)]
pub struct ToolResultRow {
    pub run_id: String,
    pub call_id: String,
    pub result: String,
    pub source: Option<String>,
    pub created_at: i64,
}

/// Renders an event's `data` from the message written with it (if any).
pub type RenderData = Box<dyn Fn(Option<&MessageRow>) -> Value + Send + Sync>;

/// An event before it has its seq. `data` is rendered inside the transaction, once the message (if any)
/// has its seq, so that the stored event and the stored message always agree.
pub struct EventDraft {
    pub event_type: String,
    pub run_id: Option<String>,
    pub entity_id: Option<String>,
    pub entity_type: Option<String>,
    pub agent_entity_id: Option<String>,
    pub data: RenderData,
}

/// A message (without its seq) to write together with its events.
pub struct NewMessage {
    pub id: String,
    pub entity_id: Option<String>,
    pub role: String,
    pub content: Option<String>,
    pub metadata: Option<String>,
}

/// One atomic write to a space: optionally a message, runs, a run status change, a tool result, and the
/// events that announce them.
#[derive(Default)]
pub struct SpaceWrite {
    pub message: Option<NewMessage>,
    pub runs: Vec<RunRow>,
    /// (run id, new status, error): applied only while the run is not finished.
    pub run_status: Option<(String, String, Option<String>)>,
    pub tool_result: Option<ToolResultRow>,
    pub events: Vec<EventDraft>,
}

/// Why a [`SpaceWrite`] did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteRefused {
    #[error("space not found")]
    NoSpace,
    #[error("run is already finished")]
    RunFinished,
    #[error("tool result already submitted")]
    Duplicate,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for WriteRefused {
    fn from(e: diesel::result::Error) -> Self {
        WriteRefused::Db(DbError::Query(e))
    }
}

/// Run statuses after which a run never changes.
pub const RUN_TERMINAL: [&str; 3] = ["completed", "failed", "canceled"];

/// Performs a [`SpaceWrite`] in one transaction; returns the message and the events with their seqs.
pub async fn write(
    db: &Database,
    space_id: &str,
    w: SpaceWrite,
) -> Result<(Option<MessageRow>, Vec<EventRow>), WriteRefused> {
    let space_id = space_id.to_string();
    with_conn!(db, |conn| {
        let w = &w;
        let space_id = &space_id;
        conn.transaction::<_, WriteRefused, _>(async |conn| {
            {
                let now = now_ms();
                let bump_messages: i64 = if w.message.is_some() { 1 } else { 0 };
                let count = w.events.len() as i64;
                // The counter row first: its lock orders every writer of this space.
                let (message_seq, event_seq): (i64, i64) = diesel::update(smart_spaces::table.find(space_id))
                    .set((
                        smart_spaces::message_seq.eq(smart_spaces::message_seq + bump_messages),
                        smart_spaces::event_seq.eq(smart_spaces::event_seq + count),
                    ))
                    .returning((smart_spaces::message_seq, smart_spaces::event_seq))
                    .get_result(conn)
                    .await
                    .optional()?
                    .ok_or(WriteRefused::NoSpace)?;
                if let Some((run_id, status, error)) = &w.run_status {
                    let finished = RUN_TERMINAL.contains(&status.as_str()).then_some(now);
                    let n = diesel::update(
                        space_runs::table
                            .filter(space_runs::id.eq(run_id))
                            .filter(space_runs::status.ne_all(RUN_TERMINAL)),
                    )
                    .set((
                        space_runs::status.eq(status),
                        space_runs::error.eq(error),
                        space_runs::updated_at.eq(now),
                        space_runs::completed_at.eq(finished),
                    ))
                    .execute(conn)
                    .await?;
                    if n == 0 {
                        return Err(WriteRefused::RunFinished);
                    }
                }
                if let Some(result) = &w.tool_result {
                    let n = diesel::insert_into(space_tool_results::table)
                        .values(result)
                        .on_conflict_do_nothing()
                        .execute(conn)
                        .await?;
                    if n == 0 {
                        return Err(WriteRefused::Duplicate);
                    }
                }
                let message = match &w.message {
                    Some(m) => {
                        let row = MessageRow {
                            id: m.id.clone(),
                            space_id: space_id.clone(),
                            seq: message_seq,
                            entity_id: m.entity_id.clone(),
                            role: m.role.clone(),
                            content: m.content.clone(),
                            metadata: m.metadata.clone(),
                            created_at: now,
                        };
                        diesel::insert_into(space_messages::table).values(&row).execute(conn).await?;
                        Some(row)
                    }
                    None => None,
                };
                for run in &w.runs {
                    diesel::insert_into(space_runs::table).values(run).execute(conn).await?;
                }
                let first = event_seq - count + 1;
                let mut events = Vec::with_capacity(w.events.len());
                for (i, draft) in w.events.iter().enumerate() {
                    let row = EventRow {
                        id: uuid::Uuid::new_v4().to_string(),
                        space_id: space_id.clone(),
                        seq: first + i as i64,
                        event_type: draft.event_type.clone(),
                        run_id: draft.run_id.clone(),
                        entity_id: draft.entity_id.clone(),
                        entity_type: draft.entity_type.clone(),
                        agent_entity_id: draft.agent_entity_id.clone(),
                        data: (draft.data)(message.as_ref()).to_string(),
                        created_at: now,
                    };
                    diesel::insert_into(space_events::table).values(&row).execute(conn).await?;
                    events.push(row);
                }
                Ok((message, events))
            }
        })
        .await
    })
}

// ----- agents -----

/// Inserts an agent unless one with the same configuration hash exists; `true` when inserted.
pub async fn insert_agent(db: &Database, row: AgentRow) -> Result<(AgentRow, bool), DbError> {
    with_conn!(db, |conn| {
        let n = diesel::insert_into(spaces_agents::table).values(&row).on_conflict_do_nothing().execute(conn).await?;
        let stored = spaces_agents::table
            .filter(spaces_agents::config_hash.eq(&row.config_hash))
            .select(AgentRow::as_select())
            .first(conn)
            .await?;
        Ok((stored, n > 0))
    })
}

/// Every agent, oldest first.
pub async fn list_agents(db: &Database) -> Result<Vec<AgentRow>, DbError> {
    with_conn!(db, |conn| {
        Ok(spaces_agents::table.order(spaces_agents::created_at.asc()).select(AgentRow::as_select()).load(conn).await?)
    })
}

/// One agent by id.
pub async fn get_agent(db: &Database, id: &str) -> Result<Option<AgentRow>, DbError> {
    with_conn!(db, |conn| {
        Ok(spaces_agents::table.find(id).select(AgentRow::as_select()).first(conn).await.optional()?)
    })
}

/// Deletes an agent (its agent entities go with it); `false` when there was none.
pub async fn delete_agent(db: &Database, id: &str) -> Result<bool, DbError> {
    with_conn!(db, |conn| Ok(diesel::delete(spaces_agents::table.find(id)).execute(conn).await? > 0))
}

// ----- entities -----

/// Inserts an entity.
pub async fn insert_entity(db: &Database, row: EntityRow) -> Result<EntityRow, DbError> {
    with_conn!(db, |conn| {
        diesel::insert_into(spaces_entities::table).values(&row).execute(conn).await?;
        Ok(row)
    })
}

/// One entity by id.
pub async fn get_entity(db: &Database, id: &str) -> Result<Option<EntityRow>, DbError> {
    with_conn!(db, |conn| {
        Ok(spaces_entities::table.find(id).select(EntityRow::as_select()).first(conn).await.optional()?)
    })
}

/// The entity a JWT names: matched on its external id.
pub async fn entity_by_external_id(db: &Database, external_id: &str) -> Result<Option<EntityRow>, DbError> {
    with_conn!(db, |conn| {
        Ok(spaces_entities::table
            .filter(spaces_entities::external_id.eq(external_id))
            .select(EntityRow::as_select())
            .first(conn)
            .await
            .optional()?)
    })
}

/// A page of entities, optionally of one type, oldest first.
pub async fn list_entities(
    db: &Database,
    entity_type: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<EntityRow>, DbError> {
    with_conn!(db, |conn| {
        let mut q = spaces_entities::table.select(EntityRow::as_select()).into_boxed();
        if let Some(t) = entity_type {
            q = q.filter(spaces_entities::entity_type.eq(t.to_string()));
        }
        Ok(q.order((spaces_entities::created_at.asc(), spaces_entities::id.asc()))
            .limit(limit)
            .offset(offset)
            .load(conn)
            .await?)
    })
}

/// Applies a partial update; `None` when no entity has that id.
pub async fn update_entity(db: &Database, id: &str, changes: EntityChanges) -> Result<Option<EntityRow>, DbError> {
    with_conn!(db, |conn| {
        Ok(diesel::update(spaces_entities::table.find(id))
            .set(&changes)
            .returning(EntityRow::as_returning())
            .get_result(conn)
            .await
            .optional()?)
    })
}

/// Deletes an entity and its memberships; `false` when there was none.
pub async fn delete_entity(db: &Database, id: &str) -> Result<bool, DbError> {
    with_conn!(db, |conn| Ok(diesel::delete(spaces_entities::table.find(id)).execute(conn).await? > 0))
}

// ----- spaces and memberships -----

/// Inserts a space.
pub async fn insert_space(db: &Database, row: SpaceRow) -> Result<SpaceRow, DbError> {
    with_conn!(db, |conn| {
        diesel::insert_into(smart_spaces::table).values(&row).execute(conn).await?;
        Ok(row)
    })
}

/// One space by id.
pub async fn get_space(db: &Database, id: &str) -> Result<Option<SpaceRow>, DbError> {
    with_conn!(db, |conn| {
        Ok(smart_spaces::table.find(id).select(SpaceRow::as_select()).first(conn).await.optional()?)
    })
}

/// A page of spaces, all or those `member` belongs to, oldest first.
pub async fn list_spaces(
    db: &Database,
    member: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<SpaceRow>, DbError> {
    with_conn!(db, |conn| {
        let mut q = smart_spaces::table.select(SpaceRow::as_select()).into_boxed();
        if let Some(entity) = member {
            let ids = space_memberships::table
                .filter(space_memberships::entity_id.eq(entity.to_string()))
                .select(space_memberships::space_id);
            q = q.filter(smart_spaces::id.eq_any(ids));
        }
        Ok(q.order((smart_spaces::created_at.asc(), smart_spaces::id.asc()))
            .limit(limit)
            .offset(offset)
            .load(conn)
            .await?)
    })
}

/// Applies a partial update; `None` when no space has that id.
pub async fn update_space(db: &Database, id: &str, changes: SpaceChanges) -> Result<Option<SpaceRow>, DbError> {
    with_conn!(db, |conn| {
        Ok(diesel::update(smart_spaces::table.find(id))
            .set(&changes)
            .returning(SpaceRow::as_returning())
            .get_result(conn)
            .await
            .optional()?)
    })
}

/// Deletes a space with everything in it; `false` when there was none.
pub async fn delete_space(db: &Database, id: &str) -> Result<bool, DbError> {
    with_conn!(db, |conn| Ok(diesel::delete(smart_spaces::table.find(id)).execute(conn).await? > 0))
}

/// The membership of `entity` in `space`, if any: the check behind every member-only route.
pub async fn membership(db: &Database, space: &str, entity: &str) -> Result<Option<MembershipRow>, DbError> {
    with_conn!(db, |conn| {
        Ok(space_memberships::table
            .find((space, entity))
            .select(MembershipRow::as_select())
            .first(conn)
            .await
            .optional()?)
    })
}

/// Adds a membership; `false` when the entity was already a member (nothing changes).
pub async fn add_member(db: &Database, row: &MembershipRow) -> Result<bool, DbError> {
    with_conn!(db, |conn| {
        let n =
            diesel::insert_into(space_memberships::table).values(row).on_conflict_do_nothing().execute(conn).await?;
        Ok(n > 0)
    })
}

/// Changes a member's role; `None` when not a member.
pub async fn update_member(
    db: &Database,
    space: &str,
    entity: &str,
    role: Option<String>,
) -> Result<Option<MembershipRow>, DbError> {
    with_conn!(db, |conn| {
        Ok(diesel::update(space_memberships::table.find((space, entity)))
            .set(space_memberships::role.eq(role))
            .returning(MembershipRow::as_returning())
            .get_result(conn)
            .await
            .optional()?)
    })
}

/// Removes a membership; `false` when there was none.
pub async fn remove_member(db: &Database, space: &str, entity: &str) -> Result<bool, DbError> {
    with_conn!(db, |conn| {
        Ok(diesel::delete(space_memberships::table.find((space, entity))).execute(conn).await? > 0)
    })
}

/// A space's members with their entities, in joining order.
pub async fn members(db: &Database, space: &str) -> Result<Vec<(MembershipRow, EntityRow)>, DbError> {
    with_conn!(db, |conn| {
        Ok(space_memberships::table
            .inner_join(spaces_entities::table)
            .filter(space_memberships::space_id.eq(space))
            .order((space_memberships::joined_at.asc(), space_memberships::entity_id.asc()))
            .select((MembershipRow::as_select(), EntityRow::as_select()))
            .load(conn)
            .await?)
    })
}

/// An entity's memberships, with when it joined each space.
pub async fn memberships_of(db: &Database, entity: &str) -> Result<Vec<MembershipRow>, DbError> {
    with_conn!(db, |conn| {
        Ok(space_memberships::table
            .filter(space_memberships::entity_id.eq(entity))
            .select(MembershipRow::as_select())
            .load(conn)
            .await?)
    })
}

/// The ids of the spaces an entity belongs to.
pub async fn spaces_of(db: &Database, entity: &str) -> Result<Vec<String>, DbError> {
    with_conn!(db, |conn| {
        Ok(space_memberships::table
            .filter(space_memberships::entity_id.eq(entity))
            .select(space_memberships::space_id)
            .load(conn)
            .await?)
    })
}

// ----- messages, runs, events -----

/// Messages of a space by seq: after `after`, before `before`; the newest `limit` when only `before` or
/// nothing is given, the oldest after `after` otherwise. Always returned in ascending seq.
pub async fn list_messages(
    db: &Database,
    space: &str,
    after: Option<i64>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<MessageRow>, DbError> {
    with_conn!(db, |conn| {
        let mut q = space_messages::table
            .filter(space_messages::space_id.eq(space.to_string()))
            .select(MessageRow::as_select())
            .into_boxed();
        if let Some(a) = after {
            q = q.filter(space_messages::seq.gt(a));
        }
        if let Some(b) = before {
            q = q.filter(space_messages::seq.lt(b));
        }
        let mut rows: Vec<MessageRow> = if after.is_some() {
            q.order(space_messages::seq.asc()).limit(limit).load(conn).await?
        } else {
            q.order(space_messages::seq.desc()).limit(limit).load(conn).await?
        };
        rows.sort_by_key(|m| m.seq);
        Ok(rows)
    })
}

/// One run by id.
pub async fn get_run(db: &Database, id: &str) -> Result<Option<RunRow>, DbError> {
    with_conn!(db, |conn| Ok(space_runs::table.find(id).select(RunRow::as_select()).first(conn).await.optional()?))
}

/// Filters of the run list.
#[derive(Debug, Default, Clone)]
pub struct RunFilter {
    pub space_id: Option<String>,
    pub agent_entity_id: Option<String>,
    pub agent_id: Option<String>,
    pub status: Option<String>,
}

/// Runs matching `f`, newest first.
pub async fn list_runs(db: &Database, f: &RunFilter, limit: i64) -> Result<Vec<RunRow>, DbError> {
    with_conn!(db, |conn| {
        let mut q = space_runs::table.select(RunRow::as_select()).into_boxed();
        if let Some(v) = &f.space_id {
            q = q.filter(space_runs::space_id.eq(v.clone()));
        }
        if let Some(v) = &f.agent_entity_id {
            q = q.filter(space_runs::agent_entity_id.eq(v.clone()));
        }
        if let Some(v) = &f.agent_id {
            q = q.filter(space_runs::agent_id.eq(v.clone()));
        }
        if let Some(v) = &f.status {
            q = q.filter(space_runs::status.eq(v.clone()));
        }
        Ok(q.order((space_runs::created_at.desc(), space_runs::id.asc())).limit(limit).load(conn).await?)
    })
}

/// Deletes a run; `false` when there was none.
pub async fn delete_run(db: &Database, id: &str) -> Result<bool, DbError> {
    with_conn!(db, |conn| Ok(diesel::delete(space_runs::table.find(id)).execute(conn).await? > 0))
}

/// Stored events of a space after `after_seq` (or created after `since_ms`), in seq order.
pub async fn events_after(
    db: &Database,
    space: &str,
    after_seq: Option<i64>,
    since_ms: Option<i64>,
    limit: i64,
) -> Result<Vec<EventRow>, DbError> {
    with_conn!(db, |conn| {
        let mut q = space_events::table
            .filter(space_events::space_id.eq(space.to_string()))
            .select(EventRow::as_select())
            .into_boxed();
        if let Some(s) = after_seq {
            q = q.filter(space_events::seq.gt(s));
        }
        if let Some(t) = since_ms {
            q = q.filter(space_events::created_at.gt(t));
        }
        Ok(q.order(space_events::seq.asc()).limit(limit).load(conn).await?)
    })
}

/// The seq of an entity's latest smartSpace.member.joined event in a space: where its history there begins.
pub async fn join_seq(db: &Database, space: &str, entity: &str) -> Result<Option<i64>, DbError> {
    with_conn!(db, |conn| {
        Ok(space_events::table
            .filter(space_events::space_id.eq(space))
            .filter(space_events::event_type.eq("smartSpace.member.joined"))
            .filter(space_events::entity_id.eq(entity))
            .select(diesel::dsl::max(space_events::seq))
            .first::<Option<i64>>(conn)
            .await?)
    })
}

/// A run's stored events in seq order.
pub async fn run_events(db: &Database, run: &str) -> Result<Vec<EventRow>, DbError> {
    with_conn!(db, |conn| {
        Ok(space_events::table
            .filter(space_events::run_id.eq(run))
            .order(space_events::seq.asc())
            .select(EventRow::as_select())
            .load(conn)
            .await?)
    })
}
