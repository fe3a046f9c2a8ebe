//! SSE streams of the spaces gateway. Each open stream is a [`StreamConnection`] actor registered with the
//! groups of its spaces in [`SpaceFanout`](super::fanout::SpaceFanout).
//!
//! Replay and live delivery meet without loss or repetition: the actor subscribes first, buffering live
//! events, then reads the stored events after the resume point, then drains the buffer, skipping seqs it
//! already sent. Live events are also delivered strictly in seq order per space: an event that arrives
//! ahead of a missing seq waits, and the gap is filled from storage if it does not close by itself.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::auth::{authenticate, authenticate_secret};
use super::error::{parse_query, SpacesError, SpacesResult};
use super::event_json;
use super::fanout::{Register, StreamSignal, Unregister};
use crate::db::spaces::{self as repo, EventRow};
use crate::db::Database;
use crate::state::AppState;

/// Frames queued for one stream before it is closed as a slow consumer.
const QUEUE: usize = 4096;
/// How long an out-of-order event waits for the missing seqs before they are read from storage.
const GAP_WAIT: Duration = Duration::from_millis(200);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StreamQuery {
    after_seq: Option<i64>,
    since: Option<String>,
}

/// Where a stream starts in each space.
#[derive(Debug, Clone, Copy)]
enum Start {
    /// Only events written after the stream opened.
    Live,
    /// Every stored event with a greater seq.
    AfterSeq(i64),
    /// Every stored event created after this Unix-ms time.
    Since(i64),
    /// From the stream entity's (latest) join of the space on, its smartSpace.member.joined included.
    FromJoin,
}

/// Per-space delivery state.
struct SpaceCursor {
    /// The last seq sent; `None` until the replay has established the start.
    last: Option<i64>,
    /// Live events held back: during replay, or while an earlier seq is missing.
    held: BTreeMap<i64, Arc<EventRow>>,
    gap_check: bool,
}

/// One SSE connection.
pub struct StreamConnection {
    db: Database,
    fanout: Addr<super::fanout::SpaceFanout>,
    entity_id: Option<String>,
    follows_entity: bool,
    /// Only events of this run (the run stream).
    run_filter: Option<String>,
    /// A space stream ends when its space is taken away; an entity stream just stops receiving it.
    end_on_revoke: bool,
    /// The spaces at open, each with where it starts.
    initial: Vec<(String, Start)>,
    /// An entity stream's ids are cursors over all its spaces (`spaceId:seq,…`), so that one
    /// Last-Event-ID resumes every space exactly; a space or run stream's id is the seq.
    cursor_ids: bool,
    spaces: HashMap<String, SpaceCursor>,
    registration: Option<u64>,
    tx: mpsc::Sender<Bytes>,
    keep_alive: Duration,
    replay_batch: i64,
}

impl Actor for StreamConnection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        for (space, _) in &self.initial {
            self.spaces.insert(space.clone(), SpaceCursor { last: None, held: BTreeMap::new(), gap_check: false });
        }
        let register = Register {
            entity_id: self.entity_id.clone(),
            follows_entity: self.follows_entity,
            spaces: self.initial.iter().map(|(space, _)| space.clone()).collect(),
            recipient: ctx.address().recipient(),
        };
        // Subscribe first; replay only once the subscription is in place.
        self.fanout
            .send(register)
            .into_actor(self)
            .map(|result, act, ctx| match result {
                Ok(id) => {
                    act.registration = Some(id);
                    // A live start is settled before the response begins, so nothing written after the
                    // client got its response is missed; replays of history run in the background.
                    for (space, start) in act.initial.clone() {
                        let blocking = matches!(start, Start::Live);
                        act.replay(space, start, blocking, ctx);
                    }
                }
                Err(_) => ctx.stop(),
            })
            .wait(ctx);
        let every = self.keep_alive;
        ctx.run_interval(every, |act, ctx| act.emit(Bytes::from_static(b": keep-alive\n\n"), ctx));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(id) = self.registration.take() {
            self.fanout.do_send(Unregister(id));
        }
    }
}

impl StreamConnection {
    /// Queues bytes for the client; a gone or hopelessly slow client ends the actor.
    fn emit(&mut self, bytes: Bytes, ctx: &mut Context<Self>) {
        if self.tx.try_send(bytes).is_err() {
            ctx.stop();
        }
    }

    fn send_event(&mut self, event: &EventRow, ctx: &mut Context<Self>) {
        if self.run_filter.as_ref().is_some_and(|run| event.run_id.as_deref() != Some(run.as_str())) {
            return;
        }
        let id = if self.cursor_ids { self.cursor() } else { event.seq.to_string() };
        let frame = format!("id: {id}\nevent: hsafa\ndata: {}\n\n", event_json(event));
        self.emit(Bytes::from(frame), ctx);
    }

    /// Where every space of the stream stands: `spaceId:seq` pairs in space order.
    fn cursor(&self) -> String {
        let mut pairs: Vec<(&String, i64)> =
            self.spaces.iter().filter_map(|(space, c)| c.last.map(|last| (space, last))).collect();
        pairs.sort();
        pairs.iter().map(|(space, seq)| format!("{space}:{seq}")).collect::<Vec<_>>().join(",")
    }

    /// Reads stored events of `space` after the start point, then switches the space to live.
    fn replay(&mut self, space: String, start: Start, blocking: bool, ctx: &mut Context<Self>) {
        let db = self.db.clone();
        let batch = self.replay_batch;
        let entity = self.entity_id.clone();
        let fut = async move {
            let start = match (start, entity) {
                (Start::FromJoin, Some(entity)) => match repo::join_seq(&db, &space, &entity).await? {
                    Some(seq) => Start::AfterSeq(seq - 1),
                    // Not written yet: everything from now on includes it.
                    None => Start::Live,
                },
                (start, _) => start,
            };
            // Read before the page: an event committed after this read is delivered live (the
            // subscription is already in place), one committed before it is in the page.
            let current = repo::get_space(&db, &space).await?.map(|s| s.event_seq).unwrap_or(0);
            let (after, since) = match start {
                Start::Live | Start::FromJoin => {
                    return Ok::<_, crate::db::DbError>((space, current, Vec::new(), false))
                }
                Start::AfterSeq(s) => (Some(s), None),
                Start::Since(t) => (None, Some(t)),
            };
            let page = repo::events_after(&db, &space, after, since, batch).await?;
            let base = match (page.first(), after) {
                (Some(first), _) => first.seq - 1,
                (None, Some(a)) => a,
                (None, None) => current,
            };
            let more = page.len() as i64 == batch;
            Ok((space, base, page, more))
        };
        let fut = fut.into_actor(self).map(|result, act, ctx| match result {
            Ok((space, base, events, more)) => {
                let Some(cursor) = act.spaces.get_mut(&space) else { return };
                if cursor.last.is_none() {
                    cursor.last = Some(base);
                }
                for e in events {
                    act.deliver_in_order(Arc::new(e), ctx);
                }
                act.drain(&space, ctx);
                if more {
                    if let Some(last) = act.spaces.get(&space).and_then(|c| c.last) {
                        act.next_page(space, Start::AfterSeq(last), ctx);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "stream replay failed; closing the stream");
                ctx.stop();
            }
        });
        if blocking {
            ctx.wait(fut);
        } else {
            ctx.spawn(fut);
        }
    }

    /// Reads the next page of a long replay once the client has taken most of the previous one.
    fn next_page(&mut self, space: String, start: Start, ctx: &mut Context<Self>) {
        let room = (self.replay_batch as usize).min(QUEUE / 2);
        if self.tx.capacity() >= room {
            self.replay(space, start, false, ctx);
        } else {
            ctx.run_later(Duration::from_millis(20), move |act, ctx| act.next_page(space, start, ctx));
        }
    }

    /// Sends `event` if it is the next seq of its space, holds it if it is early, drops it if already sent.
    fn deliver_in_order(&mut self, event: Arc<EventRow>, ctx: &mut Context<Self>) {
        let Some(cursor) = self.spaces.get_mut(&event.space_id) else { return };
        match cursor.last {
            None => {
                cursor.held.insert(event.seq, event);
            }
            Some(last) if event.seq <= last => {}
            Some(last) if event.seq == last + 1 => {
                cursor.last = Some(event.seq);
                let space = event.space_id.clone();
                self.send_event(&event, ctx);
                self.drain(&space, ctx);
            }
            Some(_) => {
                let space = event.space_id.clone();
                cursor.held.insert(event.seq, event);
                if !cursor.gap_check {
                    cursor.gap_check = true;
                    ctx.run_later(GAP_WAIT, move |act, ctx| act.fill_gap(space, ctx));
                }
            }
        }
    }

    /// Sends held events that now follow on without a gap.
    fn drain(&mut self, space: &str, ctx: &mut Context<Self>) {
        loop {
            let Some(cursor) = self.spaces.get_mut(space) else { return };
            let Some(last) = cursor.last else { return };
            let Some((&seq, _)) = cursor.held.first_key_value() else { return };
            let Some(event) = cursor.held.remove(&seq) else { return };
            if seq <= last {
                continue;
            }
            if seq != last + 1 {
                cursor.held.insert(seq, event);
                if !cursor.gap_check {
                    cursor.gap_check = true;
                    let space = space.to_string();
                    ctx.run_later(GAP_WAIT, move |act, ctx| act.fill_gap(space, ctx));
                }
                return;
            }
            cursor.last = Some(seq);
            self.send_event(&event, ctx);
        }
    }

    /// A seq is still missing after a wait: read it (and what follows) from storage.
    fn fill_gap(&mut self, space: String, ctx: &mut Context<Self>) {
        let Some(cursor) = self.spaces.get_mut(&space) else { return };
        cursor.gap_check = false;
        let (Some(last), Some((&next, _))) = (cursor.last, cursor.held.first_key_value()) else { return };
        if next == last + 1 {
            return self.drain(&space, ctx);
        }
        let db = self.db.clone();
        let limit = (next - last - 1).min(self.replay_batch);
        async move { repo::events_after(&db, &space, Some(last), None, limit).await.map(|e| (space, e)) }
            .into_actor(self)
            .map(|result, act, ctx| match result {
                Ok((space, events)) => {
                    for e in events {
                        act.deliver_in_order(Arc::new(e), ctx);
                    }
                    act.drain(&space, ctx);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "stream gap fill failed; closing the stream");
                    ctx.stop();
                }
            })
            .spawn(ctx);
    }
}

impl Handler<StreamSignal> for StreamConnection {
    type Result = ();
    fn handle(&mut self, msg: StreamSignal, ctx: &mut Context<Self>) {
        match msg {
            StreamSignal::Event(event) => self.deliver_in_order(event, ctx),
            StreamSignal::SpaceAdded(space, _joined_at) => {
                if !self.spaces.contains_key(&space) {
                    self.spaces
                        .insert(space.clone(), SpaceCursor { last: None, held: BTreeMap::new(), gap_check: false });
                    // Everything of the new space from the moment of joining, written before or after this.
                    self.replay(space, Start::FromJoin, false, ctx);
                }
            }
            StreamSignal::SpaceRemoved(space) => {
                self.spaces.remove(&space);
                if self.end_on_revoke {
                    ctx.stop();
                }
            }
        }
    }
}

/// Stops the actor when the client goes away (the response stream is dropped).
struct StopOnDrop(Addr<StreamConnection>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.do_send(StopStream);
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct StopStream;

/// Answered once the connection is subscribed and its live start is settled (the actor's start-up
/// futures block its mailbox until then).
#[derive(Message)]
#[rtype(result = "()")]
struct Ready;

impl Handler<Ready> for StreamConnection {
    type Result = ();
    fn handle(&mut self, _: Ready, _: &mut Context<Self>) {}
}

impl Handler<StopStream> for StreamConnection {
    type Result = ();
    fn handle(&mut self, _: StopStream, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// The resume point from `?afterSeq=`, `?since=` (RFC 3339 or Unix ms) or `Last-Event-ID`.
fn start_point(req: &HttpRequest) -> Result<Start, SpacesError> {
    let q: StreamQuery = parse_query(req.query_string())?;
    if let Some(s) = q.after_seq {
        return Ok(Start::AfterSeq(s));
    }
    if let Some(since) = q.since.filter(|s| !s.is_empty()) {
        return since_start(&since);
    }
    if let Some(id) = last_event_id(req) {
        let seq = id.parse::<i64>().map_err(|_| SpacesError::bad_request(BAD_LAST_EVENT_ID))?;
        return Ok(Start::AfterSeq(seq));
    }
    Ok(Start::Live)
}

/// `?since=`: `$` is "from now on" (the SDK's sendAndWait sends it, as for a Redis stream), otherwise an
/// RFC 3339 time, Unix milliseconds, or a Redis-stream-style id `<ms>-<n>` (its time part counts).
fn since_start(since: &str) -> Result<Start, SpacesError> {
    if since == "$" {
        return Ok(Start::Live);
    }
    let millis = |s: &str| s.parse::<i64>().ok().filter(|ms| *ms >= 0);
    since
        .split_once('-')
        .filter(|(ms, n)| millis(ms).is_some() && n.parse::<u64>().is_ok())
        .and_then(|(ms, _)| millis(ms))
        .or_else(|| millis(since))
        .or_else(|| chrono::DateTime::parse_from_rfc3339(since).ok().map(|t| t.timestamp_millis()))
        .map(Start::Since)
        .ok_or_else(|| SpacesError::bad_request("since must be $, an RFC 3339 time or Unix milliseconds"))
}

const BAD_LAST_EVENT_ID: &str = "Last-Event-ID must be an event id of this stream";

fn last_event_id(req: &HttpRequest) -> Option<&str> {
    req.headers().get("last-event-id").and_then(|v| v.to_str().ok()).map(str::trim).filter(|id| !id.is_empty())
}

/// An entity stream's Last-Event-ID: `spaceId:seq` pairs.
fn parse_cursor(id: &str) -> Result<HashMap<String, i64>, SpacesError> {
    id.split(',')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (space, seq) = pair.rsplit_once(':').ok_or_else(|| SpacesError::bad_request(BAD_LAST_EVENT_ID))?;
            let seq = seq.parse::<i64>().map_err(|_| SpacesError::bad_request(BAD_LAST_EVENT_ID))?;
            Ok((space.to_string(), seq))
        })
        .collect()
}

/// What a stream listens to.
struct StreamSpec {
    entity_id: Option<String>,
    follows_entity: bool,
    run_filter: Option<String>,
    end_on_revoke: bool,
    spaces: Vec<(String, Start)>,
    cursor_ids: bool,
}

async fn open(state: &AppState, spec: StreamSpec) -> SpacesResult {
    let (tx, rx) = mpsc::channel::<Bytes>(QUEUE);
    let _ = tx.try_send(Bytes::from_static(b": connected\n\n"));
    let actor = StreamConnection {
        db: state.db.clone(),
        fanout: state.spaces.fanout.clone(),
        entity_id: spec.entity_id,
        follows_entity: spec.follows_entity,
        run_filter: spec.run_filter,
        end_on_revoke: spec.end_on_revoke,
        initial: spec.spaces,
        cursor_ids: spec.cursor_ids,
        spaces: HashMap::new(),
        registration: None,
        tx,
        keep_alive: Duration::from_secs(state.spaces.config.keep_alive_seconds),
        replay_batch: state.spaces.config.replay_batch,
    }
    .start();
    if actor.send(Ready).await.is_err() {
        return Err(SpacesError::Unavailable("The stream could not be opened".into()));
    }
    let guard = StopOnDrop(actor);
    let closing = state.spaces.closing.subscribe();
    // Frames until the actor ends (a clean end: revoked, deleted), or an error at shutdown, which makes
    // the server cut the connection: the SDK reconnects after an error, never after a clean end.
    let body =
        futures_util::stream::unfold((rx, guard, closing, false), |(mut rx, guard, mut closing, cut)| async move {
            if cut {
                return None;
            }
            tokio::select! {
                biased;
                _ = async { drop(closing.wait_for(|closing| *closing).await) } => {
                    let err = actix_web::error::ErrorServiceUnavailable("Server is shutting down");
                    Some((Err::<Bytes, actix_web::Error>(err), (rx, guard, closing, true)))
                }
                bytes = rx.recv() => Some((Ok(bytes?), (rx, guard, closing, false))),
            }
        });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

/// The entity a public-key caller acts as: its stream ends when that entity's membership is revoked.
/// A secret-key stream belongs to no entity, whatever its JWT names.
fn public_entity_id(caller: &super::auth::Caller) -> Option<String> {
    match caller {
        super::auth::Caller::Public { entity } => Some(entity.id.clone()),
        super::auth::Caller::Secret { .. } => None,
    }
}

/// GET /api/smart-spaces/:id/stream (member).
pub(super) async fn space_stream(req: HttpRequest, id: web::Path<String>, state: web::Data<AppState>) -> SpacesResult {
    let caller = authenticate(&req, &state.spaces, &state.db).await?;
    caller.require_member(&state.db, &id).await?;
    repo::get_space(&state.db, &id).await?.ok_or_else(|| SpacesError::not_found("SmartSpace not found"))?;
    let start = start_point(&req)?;
    let entity_id = public_entity_id(&caller);
    open(
        &state,
        StreamSpec {
            entity_id,
            follows_entity: false,
            run_filter: None,
            end_on_revoke: true,
            spaces: vec![(id.to_string(), start)],
            cursor_ids: false,
        },
    )
    .await
}

/// GET /api/entities/:id/stream (secret key): every space the entity belongs to, following its joins.
pub(super) async fn entity_stream(req: HttpRequest, id: web::Path<String>, state: web::Data<AppState>) -> SpacesResult {
    authenticate_secret(&req, &state.spaces, &state.db).await?;
    repo::get_entity(&state.db, &id).await?.ok_or_else(|| SpacesError::not_found("Entity not found"))?;
    let memberships = repo::memberships_of(&state.db, &id).await?;
    let spaces: Vec<(String, Start)> = match last_event_id(&req).filter(|id| id.contains(':')) {
        // Resume each space after its seq in the cursor; a space joined since starts at the join.
        Some(cursor) => {
            let cursor = parse_cursor(cursor)?;
            memberships
                .into_iter()
                .map(|m| {
                    let start = match cursor.get(&m.space_id) {
                        Some(seq) => Start::AfterSeq(*seq),
                        None => Start::FromJoin,
                    };
                    (m.space_id, start)
                })
                .collect()
        }
        None => {
            let start = start_point(&req)?;
            memberships.into_iter().map(|m| (m.space_id, start)).collect()
        }
    };
    open(
        &state,
        StreamSpec {
            entity_id: Some(id.to_string()),
            follows_entity: true,
            run_filter: None,
            end_on_revoke: false,
            spaces,
            cursor_ids: true,
        },
    )
    .await
}

/// GET /api/runs/:id/stream (member of the run's space): the run's events.
pub(super) async fn run_stream(req: HttpRequest, id: web::Path<String>, state: web::Data<AppState>) -> SpacesResult {
    let caller = authenticate(&req, &state.spaces, &state.db).await?;
    let run = super::runs::visible_run(&state, &caller, &id).await?;
    let start = start_point(&req)?;
    let entity_id = public_entity_id(&caller);
    open(
        &state,
        StreamSpec {
            entity_id,
            follows_entity: false,
            run_filter: Some(run.id),
            end_on_revoke: true,
            spaces: vec![(run.space_id, start)],
            cursor_ids: false,
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::{since_start, Start};

    #[test]
    fn since_accepts_dollar_millis_redis_ids_and_rfc3339() {
        assert!(matches!(since_start("$"), Ok(Start::Live)));
        assert!(matches!(since_start("1700000000000"), Ok(Start::Since(1700000000000))));
        assert!(matches!(since_start("1700000000000-3"), Ok(Start::Since(1700000000000))));
        assert!(matches!(since_start("2023-11-14T22:13:20Z"), Ok(Start::Since(1700000000000))));
        for bad in ["yesterday", "-5", "17-x", "1700000000000-"] {
            assert!(since_start(bad).is_err(), "{bad}");
        }
    }
}
