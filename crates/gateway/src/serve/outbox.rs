//! Server-initiated messages of one client session, on their way to the HTTP client.
//!
//! A server's notifications (progress, logging, list changes) and requests (elicitation — also
//! the gateway's own approval questions —, roots, ping) reach the client as SSE events:
//!
//! - a progress notification on the POST stream of the request that asked for it (its
//!   `progressToken`);
//! - anything else on the GET stream once the client opened one (kept, numbered, for
//!   `Last-Event-ID` resumption, also while the client reconnects);
//! - otherwise on the most recent POST stream still open (the spec lets a server send requests
//!   and notifications there before the response);
//! - otherwise nowhere: a notification is dropped, a request is refused by the caller.
//!
//! Requests get an id of the gateway's own (`portcullis-N`), so servers behind the aggregate
//! endpoint cannot collide, and the client's answer is routed back to the server that asked,
//! with that server's id. An answer to an id the gateway did not send is dropped.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use axum::body::Bytes;
use portcullis_mcp::Id;
use serde_json::Value;
use tokio::sync::mpsc;

/// Events kept for resuming the GET stream.
const HISTORY: usize = 256;
/// Events queued for one stream before newer ones are dropped (a client that does not read).
pub(crate) const STREAM_QUEUE: usize = 64;
/// Server requests awaiting the client's answer, at most.
const MAX_OUTSTANDING: usize = 1024;

/// The server-initiated messages of one client session.
#[derive(Default)]
pub(crate) struct Outbox {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    seq: u64,
    /// The GET stream, once the client opened one (the sender may be closed while it reconnects).
    get: Option<mpsc::Sender<Bytes>>,
    history: VecDeque<(u64, Bytes)>,
    posts: Vec<PostStream>,
    next_post: u64,
    /// Our request ids → the server that asked and its own id.
    requests: HashMap<String, (String, Id)>,
}

struct PostStream {
    key: u64,
    progress: Option<Value>,
    tx: mpsc::Sender<Bytes>,
}

/// Unregisters a POST stream when dropped.
pub(crate) struct PostGuard {
    outbox: Arc<Outbox>,
    key: u64,
}

impl Drop for PostGuard {
    fn drop(&mut self) {
        self.outbox.state().posts.retain(|p| p.key != self.key);
    }
}

/// One SSE event carrying `value`, with `id` if given.
pub(crate) fn frame(id: Option<u64>, value: &Value) -> Bytes {
    let data = serde_json::to_string(value).unwrap_or_default();
    let text = match id {
        Some(id) => format!("id: {id}\nevent: message\ndata: {data}\n\n"),
        None => format!("event: message\ndata: {data}\n\n"),
    };
    Bytes::from(text)
}

impl Outbox {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers the SSE stream of a POSTed request whose `_meta.progressToken` is `progress`.
    pub(crate) fn open_post(
        self: &Arc<Self>,
        progress: Option<Value>,
        tx: mpsc::Sender<Bytes>,
    ) -> PostGuard {
        let mut state = self.state();
        state.next_post = state.next_post.wrapping_add(1);
        let key = state.next_post;
        state.posts.push(PostStream { key, progress, tx });
        PostGuard {
            outbox: Arc::clone(self),
            key,
        }
    }

    /// Makes `tx` the GET stream (replacing an earlier one) and replays the kept events after
    /// `last_event_id`.
    pub(crate) fn open_get(&self, tx: mpsc::Sender<Bytes>, last_event_id: Option<u64>) {
        let mut state = self.state();
        if let Some(after) = last_event_id {
            for (_, bytes) in state.history.iter().filter(|(seq, _)| *seq > after) {
                if tx.try_send(bytes.clone()).is_err() {
                    tracing::warn!("the resumed GET stream is full; older events were dropped");
                    break;
                }
            }
        }
        state.get = Some(tx);
    }

    /// Ends the GET stream: the gateway is stopping, and an open stream would otherwise hold
    /// the shutdown for its whole drain time. (Its keep-alive holds only a weak sender.)
    pub(crate) fn close_get(&self) {
        self.state().get = None;
    }

    /// A server notification for the client; `false` if no stream could take it.
    pub(crate) fn notify(&self, value: &Value) -> bool {
        let progress = value
            .get("params")
            .and_then(|p| p.get("progressToken"))
            .cloned();
        self.deliver(value, progress.as_ref())
    }

    /// A server request for the client, from `server` with its id `id`. The client sees our id;
    /// `false` if no stream could take it (the caller refuses the request).
    pub(crate) fn request(&self, server: &str, id: &Id, value: &Value) -> bool {
        let ours = {
            let mut state = self.state();
            if state.requests.len() >= MAX_OUTSTANDING {
                return false;
            }
            state.seq = state.seq.wrapping_add(1);
            let ours = format!("portcullis-{}", state.seq);
            state
                .requests
                .insert(ours.clone(), (server.to_owned(), id.clone()));
            ours
        };
        let mut value = value.clone();
        if let Some(object) = value.as_object_mut() {
            object.insert("id".into(), Value::String(ours.clone()));
        }
        let delivered = self.deliver(&value, None);
        if !delivered {
            self.state().requests.remove(&ours);
        }
        delivered
    }

    /// The server and its own id for the client's answer to our request `id`, once.
    pub(crate) fn answered(&self, id: &Id) -> Option<(String, Id)> {
        match id {
            Id::String(ours) => self.state().requests.remove(ours),
            Id::Number(_) => None,
        }
    }

    /// Forgets the requests `server` asked (its session ended).
    pub(crate) fn forget_server(&self, server: &str) {
        self.state().requests.retain(|_, (s, _)| s != server);
    }

    fn deliver(&self, value: &Value, progress: Option<&Value>) -> bool {
        let mut state = self.state();
        state.posts.retain(|p| !p.tx.is_closed());
        if let Some(progress) = progress
            && let Some(post) = state
                .posts
                .iter()
                .find(|p| p.progress.as_ref() == Some(progress))
        {
            return post.tx.try_send(frame(None, value)).is_ok();
        }
        if let Some(get) = state.get.clone() {
            state.seq = state.seq.wrapping_add(1);
            let seq = state.seq;
            let bytes = frame(Some(seq), value);
            if state.history.len() >= HISTORY {
                state.history.pop_front();
            }
            state.history.push_back((seq, bytes.clone()));
            if !get.is_closed() {
                if get.try_send(bytes).is_err() {
                    tracing::warn!("the client's GET stream is full; an event waits for a resume");
                }
                return true;
            }
            // Kept for the client's reconnect with Last-Event-ID.
            if state.posts.is_empty() {
                return true;
            }
        }
        match state.posts.last() {
            Some(post) => post.tx.try_send(frame(None, value)).is_ok(),
            None => false,
        }
    }
}

/// An SSE body: the frames sent into a channel, until every sender is gone.
pub(crate) struct FrameStream {
    pub(crate) rx: mpsc::Receiver<Bytes>,
}

impl futures_core::Stream for FrameStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|frame| frame.map(Ok))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]

    use serde_json::json;

    use super::*;

    fn text(bytes: &Bytes) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn progress_goes_to_its_post_other_messages_to_the_get_stream() {
        let outbox = Arc::new(Outbox::default());
        assert!(!outbox.notify(&json!({"jsonrpc": "2.0", "method": "notifications/message"})));
        let (post_tx, mut post_rx) = mpsc::channel(8);
        let guard = outbox.open_post(Some(json!("tok")), post_tx);
        let (get_tx, mut get_rx) = mpsc::channel(8);
        outbox.open_get(get_tx, None);
        let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": "tok", "progress": 1}});
        assert!(outbox.notify(&progress));
        assert!(text(&post_rx.recv().await.unwrap()).contains("\"progress\":1"));
        let request =
            json!({"jsonrpc": "2.0", "id": 7, "method": "elicitation/create", "params": {}});
        assert!(outbox.request("a", &Id::Number(7), &request));
        let event = text(&get_rx.recv().await.unwrap());
        assert!(event.starts_with("id: 2\n"), "{event}");
        assert!(event.contains("\"id\":\"portcullis-1\""), "{event}");
        assert_eq!(
            outbox.answered(&Id::String("portcullis-1".into())),
            Some(("a".to_owned(), Id::Number(7)))
        );
        assert_eq!(outbox.answered(&Id::String("portcullis-1".into())), None);
        drop(guard);
        assert!(outbox.state().posts.is_empty());
    }

    #[tokio::test]
    async fn a_reconnecting_get_stream_resumes_after_its_last_event() {
        let outbox = Outbox::default();
        let (tx, rx) = mpsc::channel(8);
        outbox.open_get(tx, None);
        drop(rx);
        for n in 1..=3 {
            assert!(outbox.notify(&json!({"jsonrpc": "2.0", "method": "n", "params": {"n": n}})));
        }
        let (tx, mut rx) = mpsc::channel(8);
        outbox.open_get(tx, Some(1));
        assert!(text(&rx.recv().await.unwrap()).starts_with("id: 2\n"));
        assert!(text(&rx.recv().await.unwrap()).starts_with("id: 3\n"));
    }

    #[tokio::test]
    async fn without_a_get_stream_messages_use_the_latest_post_stream() {
        let outbox = Arc::new(Outbox::default());
        let (tx1, mut rx1) = mpsc::channel(8);
        let (tx2, mut rx2) = mpsc::channel(8);
        let _g1 = outbox.open_post(None, tx1);
        let _g2 = outbox.open_post(None, tx2);
        let ping = json!({"jsonrpc": "2.0", "id": "x", "method": "ping"});
        assert!(outbox.request("s", &Id::String("x".into()), &ping));
        assert!(rx2.try_recv().is_ok());
        assert!(rx1.try_recv().is_err());
    }
}
