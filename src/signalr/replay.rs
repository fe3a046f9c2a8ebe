//! The bookkeeping of SignalR's stateful reconnect: a client whose WebSocket drops comes back on the same
//! connection, and neither side may lose or repeat a message. So the server numbers what it sends (message
//! types 1–5, from 1) and keeps it until the client acks it, to replay it after the client's return
//! (within a byte budget: what falls out of it the client learns of from the Sequence id); and it numbers
//! what it receives, to drop what the client sends again after a reconnect. The Connection actor owns one
//! of these per stateful connection and does the sending and the timing.

use std::collections::VecDeque;

use bytes::Bytes;

/// Numbering and replay of stateful reconnect (types 1–5 only, from 1).
pub(super) struct Replay {
    next_outgoing: u64,
    buffer: VecDeque<(u64, Bytes)>,
    buffered_bytes: usize,
    latest_received: u64,
    next_incoming: u64,
    ack_scheduled: bool,
}

impl Replay {
    /// A fresh connection's: both directions start at 1.
    pub(super) fn new() -> Self {
        Replay {
            next_outgoing: 1,
            buffer: VecDeque::new(),
            buffered_bytes: 0,
            latest_received: 0,
            next_incoming: 1,
            ack_scheduled: false,
        }
    }

    /// Numbers an outgoing sequenced message and keeps it for replay, dropping the oldest kept ones while
    /// more than `budget` bytes are kept (the newest is always kept).
    pub(super) fn record(&mut self, bytes: &Bytes, budget: usize) {
        let id = self.next_outgoing;
        self.next_outgoing += 1;
        self.buffered_bytes += bytes.len();
        self.buffer.push_back((id, bytes.clone()));
        while self.buffered_bytes > budget && self.buffer.len() > 1 {
            // The client learns of the gap from the Sequence id sent on reconnect (the oldest kept).
            if let Some((_, b)) = self.buffer.pop_front() {
                self.buffered_bytes -= b.len();
            }
        }
    }

    /// The client's Ack: it has everything up to `sequence_id`, which need not be replayed any more.
    pub(super) fn ack(&mut self, sequence_id: u64) {
        while self.buffer.front().is_some_and(|(id, _)| *id <= sequence_id) {
            if let Some((_, b)) = self.buffer.pop_front() {
                self.buffered_bytes -= b.len();
            }
        }
    }

    /// Numbers an incoming sequenced message; `false` when it is one already received (the client sends
    /// again what it had sent before a reconnect).
    pub(super) fn accept_incoming(&mut self) -> bool {
        let id = self.next_incoming;
        self.next_incoming += 1;
        if id <= self.latest_received {
            return false;
        }
        self.latest_received = id;
        true
    }

    /// Whether an Ack must be scheduled now (`false` while one is already due); marks it scheduled.
    pub(super) fn schedule_ack(&mut self) -> bool {
        !std::mem::replace(&mut self.ack_scheduled, true)
    }

    /// The scheduled Ack is due: the id it acknowledges. The next accepted message schedules another.
    pub(super) fn ack_due(&mut self) -> u64 {
        self.ack_scheduled = false;
        self.latest_received
    }

    /// The client's Sequence message after a reconnect: the id of the first message it sends (again).
    /// `false`, and nothing changes, when that is later than the next one expected: something was lost.
    #[must_use]
    pub(super) fn resume_incoming(&mut self, sequence_id: u64) -> bool {
        if sequence_id > self.latest_received + 1 {
            return false;
        }
        self.next_incoming = sequence_id;
        true
    }

    /// What to send a returning client: the id of the first message kept (for its Sequence message),
    /// then the kept messages in order.
    pub(super) fn pending(&self) -> (u64, Vec<Bytes>) {
        (
            self.buffer.front().map(|(id, _)| *id).unwrap_or(self.next_outgoing),
            self.buffer.iter().map(|(_, b)| b.clone()).collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn nothing_sent_yet_replays_nothing_from_one() {
        assert_eq!(Replay::new().pending(), (1, vec![]));
    }

    #[test]
    fn unacked_messages_are_replayed_from_the_first_kept() {
        let mut r = Replay::new();
        for m in ["a", "b", "c"] {
            r.record(&msg(m), 1000);
        }
        assert_eq!(r.pending(), (1, vec![msg("a"), msg("b"), msg("c")]));
        r.ack(2);
        assert_eq!(r.pending(), (3, vec![msg("c")]));
        r.ack(3);
        assert_eq!(r.pending(), (4, vec![]), "all acked: the next message will be 4");
    }

    #[test]
    fn the_budget_drops_the_oldest_but_keeps_the_newest() {
        let mut r = Replay::new();
        r.record(&msg("aaaa"), 8);
        r.record(&msg("bbbb"), 8);
        r.record(&msg("cccc"), 8);
        assert_eq!(r.pending(), (2, vec![msg("bbbb"), msg("cccc")]), "message 1 fell out of 8 bytes");
        r.record(&msg("a message over the budget by itself"), 8);
        assert_eq!(r.pending(), (4, vec![msg("a message over the budget by itself")]));
        r.ack(4);
        r.record(&msg("e"), 8);
        assert_eq!(r.pending(), (5, vec![msg("e")]), "acked bytes no longer count");
    }

    #[test]
    fn incoming_messages_sent_again_after_a_reconnect_are_dropped() {
        let mut r = Replay::new();
        assert!(r.accept_incoming());
        assert!(r.accept_incoming());
        assert!(r.accept_incoming());
        // The client reconnects and says it starts again from its message 2.
        assert!(r.resume_incoming(2));
        assert!(!r.accept_incoming(), "2 again");
        assert!(!r.accept_incoming(), "3 again");
        assert!(r.accept_incoming(), "4 is new");
    }

    #[test]
    fn a_sequence_past_what_was_received_is_a_gap() {
        let mut r = Replay::new();
        assert!(r.accept_incoming());
        assert!(!r.resume_incoming(3), "message 2 never arrived");
        assert!(r.resume_incoming(2), "nothing lost: the client starts at the next one");
        assert!(r.accept_incoming());
    }

    #[test]
    fn one_ack_is_scheduled_at_a_time_and_acknowledges_the_latest() {
        let mut r = Replay::new();
        assert!(r.accept_incoming());
        assert!(r.schedule_ack());
        assert!(r.accept_incoming());
        assert!(!r.schedule_ack(), "one is already due");
        assert_eq!(r.ack_due(), 2);
        assert!(r.schedule_ack(), "after it went out, the next message schedules another");
    }
}
