//! Repository functions for chat conversations and their messages. Every function that reads or
//! changes a conversation takes its owner (tenant and user) and filters on it, so another tenant's or
//! user's conversation is indistinguishable from one that does not exist.

use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::schema::{chat_conversations, chat_messages};
use super::{now_ms, Database, DbError};
use crate::with_conn;

/// Who a conversation belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    pub tenant_id: &'a str,
    pub user_id: &'a str,
}

/// A stored conversation.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = chat_conversations)]
pub struct ConversationRow {
    pub id: String,
    pub tenant_id: String,
    pub user_id: String,
    pub title: String,
    pub message_count: i32,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A stored message.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = chat_messages)]
pub struct MessageRow {
    pub id: i64,
    pub conversation_id: String,
    pub role: String,
    pub content: String,
    pub created_at: i64,
}

#[derive(Insertable)]
#[diesel(table_name = chat_messages)]
struct NewMessage<'a> {
    conversation_id: &'a str,
    role: &'a str,
    content: &'a str,
    created_at: i64,
}

/// Creates an empty conversation with a fresh id.
pub async fn create(db: &Database, owner: Owner<'_>, title: &str) -> Result<ConversationRow, DbError> {
    let now = now_ms();
    let row = ConversationRow {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: owner.tenant_id.to_string(),
        user_id: owner.user_id.to_string(),
        title: title.to_string(),
        message_count: 0,
        created_at: now,
        updated_at: now,
    };
    with_conn!(db, |conn| {
        diesel::insert_into(chat_conversations::table).values(&row).execute(conn).await?;
        Ok(row)
    })
}

/// The owner's conversation with this id, if there is one.
pub async fn get(db: &Database, owner: Owner<'_>, id: &str) -> Result<Option<ConversationRow>, DbError> {
    with_conn!(db, |conn| {
        Ok(chat_conversations::table
            .filter(chat_conversations::id.eq(id))
            .filter(chat_conversations::tenant_id.eq(owner.tenant_id))
            .filter(chat_conversations::user_id.eq(owner.user_id))
            .select(ConversationRow::as_select())
            .first(conn)
            .await
            .optional()?)
    })
}

/// The owner's conversations, most recently active first.
pub async fn list(db: &Database, owner: Owner<'_>, offset: i64, limit: i64) -> Result<Vec<ConversationRow>, DbError> {
    with_conn!(db, |conn| {
        Ok(chat_conversations::table
            .filter(chat_conversations::tenant_id.eq(owner.tenant_id))
            .filter(chat_conversations::user_id.eq(owner.user_id))
            .order((chat_conversations::updated_at.desc(), chat_conversations::id.asc()))
            .offset(offset)
            .limit(limit)
            .select(ConversationRow::as_select())
            .load(conn)
            .await?)
    })
}

/// The last `limit` messages of the owner's conversation, oldest first; `None` if it is not theirs.
pub async fn messages(
    db: &Database,
    owner: Owner<'_>,
    id: &str,
    limit: i64,
) -> Result<Option<Vec<MessageRow>>, DbError> {
    if get(db, owner, id).await?.is_none() {
        return Ok(None);
    }
    with_conn!(db, |conn| {
        let mut rows = chat_messages::table
            .filter(chat_messages::conversation_id.eq(id))
            .order(chat_messages::id.desc())
            .limit(limit)
            .select(MessageRow::as_select())
            .load(conn)
            .await?;
        rows.reverse();
        Ok(Some(rows))
    })
}

/// Appends a message to the owner's conversation and returns the new message count; `None` if the
/// conversation is not theirs (or was deleted meanwhile). Count and message change together.
pub async fn append(
    db: &Database,
    owner: Owner<'_>,
    id: &str,
    role: &str,
    content: &str,
) -> Result<Option<i32>, DbError> {
    let now = now_ms();
    let (tenant, user) = (owner.tenant_id, owner.user_id);
    with_conn!(db, |conn| {
        Ok(conn
            .transaction::<_, diesel::result::Error, _>(async |conn| {
                let count: Option<i32> = diesel::update(
                    chat_conversations::table
                        .filter(chat_conversations::id.eq(id))
                        .filter(chat_conversations::tenant_id.eq(tenant))
                        .filter(chat_conversations::user_id.eq(user)),
                )
                .set((
                    chat_conversations::message_count.eq(chat_conversations::message_count + 1),
                    chat_conversations::updated_at.eq(now),
                ))
                .returning(chat_conversations::message_count)
                .get_result(conn)
                .await
                .optional()?;
                if count.is_some() {
                    diesel::insert_into(chat_messages::table)
                        .values(NewMessage { conversation_id: id, role, content, created_at: now })
                        .execute(conn)
                        .await?;
                }
                Ok(count)
            })
            .await?)
    })
}

/// Deletes the owner's conversation and its messages; `false` if it was not theirs.
pub async fn delete(db: &Database, owner: Owner<'_>, id: &str) -> Result<bool, DbError> {
    with_conn!(db, |conn| {
        let n = diesel::delete(
            chat_conversations::table
                .filter(chat_conversations::id.eq(id))
                .filter(chat_conversations::tenant_id.eq(owner.tenant_id))
                .filter(chat_conversations::user_id.eq(owner.user_id)),
        )
        .execute(conn)
        .await?;
        Ok(n > 0)
    })
}
