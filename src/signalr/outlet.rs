//! The outgoing queue between a Connection and its streaming transport (WebSocket or SSE). The
//! connection must never wait on a slow socket, and a client that stops reading must not make the server
//! hold an ever-growing backlog: so the queue itself is unbounded (bursts are fine), but the connection
//! checks its size in bytes and frames before queuing, and past that the client counts as a slow consumer
//! and is dropped at once ([`Outlet::abort`]) rather than after its backlog has been written.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};

/// A frame for a streaming transport (WebSocket, SSE).
#[derive(Debug, Clone)]
pub enum OutFrame {
    Text(Bytes),
    Binary(Bytes),
    /// Answer to a WebSocket ping.
    Pong(Bytes),
    /// End the transport (WebSocket close frame with this code, end of SSE stream).
    Close(u16),
}

impl OutFrame {
    fn len(&self) -> usize {
        match self {
            OutFrame::Text(b) | OutFrame::Binary(b) | OutFrame::Pong(b) => b.len(),
            OutFrame::Close(_) => 0,
        }
    }
}

/// What the writing and the draining ends of a streaming transport share.
#[derive(Default)]
struct OutletShared {
    queued_bytes: AtomicUsize,
    queued_frames: AtomicUsize,
    aborted: AtomicBool,
    wake: Notify,
}

/// The connection's end of a streaming transport's queue. Bursts are fine; what bounds the queue is its
/// size in bytes and frames, beyond which the client counts as a slow consumer.
#[derive(Clone)]
pub struct Outlet {
    tx: mpsc::UnboundedSender<OutFrame>,
    shared: Arc<OutletShared>,
}

/// The transport's end: the frames to write, in order, until the queue closes or is aborted.
pub struct Inlet {
    rx: mpsc::UnboundedReceiver<OutFrame>,
    shared: Arc<OutletShared>,
}

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum OutletError {
    Full,
    Closed,
}

/// A new queue for a streaming transport.
pub fn outlet() -> (Outlet, Inlet) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(OutletShared::default());
    (Outlet { tx, shared: shared.clone() }, Inlet { rx, shared })
}

impl Outlet {
    /// Queues a frame unless the queue would then hold more than `max_bytes` or `max_frames`; an empty
    /// frame is always queued.
    pub(super) fn send(&self, frame: OutFrame, max_bytes: usize, max_frames: usize) -> Result<(), OutletError> {
        let len = frame.len();
        let bytes = self.shared.queued_bytes.load(Ordering::Relaxed);
        let frames = self.shared.queued_frames.load(Ordering::Relaxed);
        if len > 0 && (bytes + len > max_bytes || frames + 1 > max_frames) {
            return Err(OutletError::Full);
        }
        self.shared.queued_bytes.fetch_add(len, Ordering::Relaxed);
        self.shared.queued_frames.fetch_add(1, Ordering::Relaxed);
        self.tx.send(frame).map_err(|_| OutletError::Closed)
    }

    /// Queues a frame the transport itself must send (a pong, a close frame), outside the budget.
    pub fn control(&self, frame: OutFrame) {
        self.shared.queued_frames.fetch_add(1, Ordering::Relaxed);
        self.shared.queued_bytes.fetch_add(frame.len(), Ordering::Relaxed);
        let _ = self.tx.send(frame);
    }

    /// Ends the transport now, without writing what is still queued (a slow consumer).
    pub(super) fn abort(&self) {
        self.shared.aborted.store(true, Ordering::Relaxed);
        self.shared.wake.notify_one();
    }
}

impl Inlet {
    /// The next frame to write; `None` when the queue is closed or aborted.
    pub async fn next(&mut self) -> Option<OutFrame> {
        loop {
            if self.shared.aborted.load(Ordering::Relaxed) {
                return None;
            }
            tokio::select! {
                biased;
                _ = self.shared.wake.notified() => continue,
                frame = self.rx.recv() => {
                    let frame = frame?;
                    self.shared.queued_bytes.fetch_sub(frame.len(), Ordering::Relaxed);
                    self.shared.queued_frames.fetch_sub(1, Ordering::Relaxed);
                    return Some(frame);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &'static str) -> OutFrame {
        OutFrame::Text(Bytes::from_static(s.as_bytes()))
    }

    fn payload(frame: Option<OutFrame>) -> Option<Bytes> {
        match frame {
            Some(OutFrame::Text(b) | OutFrame::Binary(b) | OutFrame::Pong(b)) => Some(b),
            _ => None,
        }
    }

    #[tokio::test]
    async fn frames_come_out_in_order_and_draining_frees_the_budget() {
        let (tx, mut rx) = outlet();
        assert_eq!(tx.send(text("abc"), 6, 10), Ok(()));
        assert_eq!(tx.send(text("def"), 6, 10), Ok(()));
        assert_eq!(tx.send(text("g"), 6, 10), Err(OutletError::Full), "7 bytes is over a 6-byte budget");
        assert_eq!(payload(rx.next().await).as_deref(), Some(&b"abc"[..]));
        assert_eq!(tx.send(text("g"), 6, 10), Ok(()), "a drained frame no longer counts");
        assert_eq!(payload(rx.next().await).as_deref(), Some(&b"def"[..]));
        assert_eq!(payload(rx.next().await).as_deref(), Some(&b"g"[..]));
    }

    #[tokio::test]
    async fn the_frame_count_bounds_the_queue_too() {
        let (tx, mut rx) = outlet();
        assert_eq!(tx.send(text("a"), 1000, 2), Ok(()));
        assert_eq!(tx.send(text("b"), 1000, 2), Ok(()));
        assert_eq!(tx.send(text("c"), 1000, 2), Err(OutletError::Full));
        assert!(rx.next().await.is_some());
        assert_eq!(tx.send(text("c"), 1000, 2), Ok(()));
    }

    #[tokio::test]
    async fn control_frames_skip_the_budget_but_count_against_later_frames() {
        let (tx, mut rx) = outlet();
        tx.control(OutFrame::Pong(Bytes::from_static(b"ping-data")));
        assert_eq!(tx.send(text("a"), 4, 10), Err(OutletError::Full), "the queued pong fills the budget");
        assert!(matches!(rx.next().await, Some(OutFrame::Pong(_))));
        assert_eq!(tx.send(text("a"), 4, 10), Ok(()));
    }

    #[tokio::test]
    async fn a_close_frame_is_queued_even_when_full() {
        let (tx, mut rx) = outlet();
        assert_eq!(tx.send(text("abcd"), 4, 1), Ok(()));
        assert_eq!(tx.send(OutFrame::Close(1000), 4, 1), Ok(()), "an empty frame always fits");
        assert!(rx.next().await.is_some());
        assert!(matches!(rx.next().await, Some(OutFrame::Close(1000))));
    }

    #[tokio::test]
    async fn abort_ends_the_transport_without_writing_the_backlog() {
        let (tx, mut rx) = outlet();
        tx.send(text("queued"), 100, 10).ok();
        tx.abort();
        assert!(rx.next().await.is_none());
    }

    #[tokio::test]
    async fn abort_wakes_a_waiting_transport() {
        let (tx, mut rx) = outlet();
        let writer = tokio::spawn(async move { rx.next().await.is_none() });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        tx.abort();
        let ended = tokio::time::timeout(std::time::Duration::from_secs(5), writer).await;
        assert!(matches!(ended, Ok(Ok(true))), "the waiting transport saw the abort");
    }

    #[tokio::test]
    async fn the_ends_see_each_other_go() {
        let (tx, rx) = outlet();
        drop(rx);
        assert_eq!(tx.send(text("a"), 100, 10), Err(OutletError::Closed));
        let (tx, mut rx) = outlet();
        drop(tx);
        assert!(rx.next().await.is_none());
    }
}
