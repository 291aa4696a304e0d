//! The append queue in front of an audit writer thread, shared by both engines.
//!
//! Appends are queued; the writer thread takes everything waiting (up to [`MAX_BATCH`]), hands it
//! to the engine's batch writer, which writes it in one transaction and commits, and only then
//! answers every waiter. If the batch fails every waiter of the batch gets the error, so no caller
//! is told a record is durable when it is not; the thread then goes on with the next batch.
//!
//! A *deferred* job (an outcome record: nothing waits on it before forwarding) does not start a
//! commit of its own while the writer is idle: it waits up to [`DEFER_MAX`] for an urgent job (a
//! decision, which gates a call) to share its transaction. One call then costs one commit and one
//! fsync instead of two, and the next call's decision no longer queues behind the previous call's
//! outcome. Deferred records are still committed in queue order, within `DEFER_MAX`, and at once
//! when the store closes.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::StoreError;
use crate::event::{AuditEntry, AuditEvent};

/// How many appends may wait for the writer. Past this an append is refused (and the gateway
/// denies the call) rather than memory growing without bound behind a slow disk or database.
pub const QUEUE_CAPACITY: usize = 16_384;

/// The most records one transaction takes; bounds the time one commit holds the write lock.
pub(crate) const MAX_BATCH: usize = 1024;

/// The longest a deferred record waits for an urgent one to share its commit.
pub(crate) const DEFER_MAX: Duration = Duration::from_millis(5);

/// The result an appender waits for.
pub(crate) type AppendResult = Result<AuditEntry, StoreError>;

/// Where to send the answer to one append.
enum Reply {
    /// An async caller awaiting a oneshot.
    Async(tokio::sync::oneshot::Sender<AppendResult>),
    /// A blocking caller waiting on a std channel (usable outside any async runtime).
    Blocking(Sender<AppendResult>),
}

impl Reply {
    fn send(self, result: AppendResult) {
        // A caller that stopped waiting (its future was dropped: the session ended) is not an
        // error of the store, and its record is still written. That caller was never told the
        // append failed, so nothing acted on a failure: no call was denied because of it, and
        // the record claims no more than what happened. A decision record says what the policy
        // decided; whether the call was forwarded is the outcome record's to say, and there is
        // none for a call that was not. Dropping such records would lose, for instance, the
        // denials of a client that disconnected. A caller that *was* told the append failed
        // (the batch failed or timed out) never has its record committed later: the engine's
        // batch writer rolls a batch back once its waiters were told it failed (`pg/pool.rs`).
        match self {
            Reply::Async(tx) => {
                let _ = tx.send(result);
            }
            Reply::Blocking(tx) => {
                let _ = tx.send(result);
            }
        }
    }
}

/// One queued append.
struct Job {
    event: AuditEvent,
    reply: Reply,
    /// Nothing waits on this record before acting; it may wait for company (see the module).
    deferred: bool,
}

/// An engine's way of writing one batch: all of `events` in one committed transaction, in
/// order, or none of them.
pub(crate) trait BatchWriter: Send + 'static {
    /// Writes and commits the batch; the entries come back in the order of `events`.
    fn write_batch(&mut self, events: Vec<AuditEvent>) -> Result<Vec<AuditEntry>, StoreError>;
}

/// The queue and its writer thread. Dropping it lets the writer finish what is queued and joins it.
pub(crate) struct AppendQueue {
    queue: Option<SyncSender<Job>>,
    writer: Option<JoinHandle<()>>,
    commits: Arc<AtomicU64>,
}

impl AppendQueue {
    /// Starts the writer thread around `writer`.
    pub(crate) fn start(writer: impl BatchWriter) -> Result<Self, StoreError> {
        let (queue, jobs) = std::sync::mpsc::sync_channel(QUEUE_CAPACITY);
        let commits = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&commits);
        let handle = std::thread::Builder::new()
            .name("portcullis-audit-writer".to_owned())
            .spawn(move || run(writer, &jobs, &counted))
            .map_err(|_| StoreError::WriterStopped)?;
        Ok(AppendQueue {
            queue: Some(queue),
            writer: Some(handle),
            commits,
        })
    }

    /// How many batches the writer has committed.
    pub(crate) fn batches_committed(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Queues `event`; the future resolves when its batch committed or failed.
    pub(crate) fn append(
        &self,
        event: AuditEvent,
    ) -> impl Future<Output = AppendResult> + Send + 'static {
        self.append_async(event, false)
    }

    /// Queues `event` as deferred (see the module); the future resolves when its batch
    /// committed or failed.
    pub(crate) fn append_deferred(
        &self,
        event: AuditEvent,
    ) -> impl Future<Output = AppendResult> + Send + 'static {
        self.append_async(event, true)
    }

    fn append_async(
        &self,
        event: AuditEvent,
        deferred: bool,
    ) -> impl Future<Output = AppendResult> + Send + 'static {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let queued = self.enqueue(Job {
            event,
            reply: Reply::Async(tx),
            deferred,
        });
        async move {
            queued?;
            match rx.await {
                Ok(result) => result,
                Err(_) => Err(StoreError::WriterStopped),
            }
        }
    }

    /// Queues `event` and blocks the thread until its batch committed or failed.
    pub(crate) fn append_blocking(&self, event: AuditEvent) -> AppendResult {
        let (tx, rx) = std::sync::mpsc::channel();
        self.enqueue(Job {
            event,
            reply: Reply::Blocking(tx),
            deferred: false,
        })?;
        rx.recv().map_err(|_| StoreError::WriterStopped)?
    }

    fn enqueue(&self, job: Job) -> Result<(), StoreError> {
        let queue = self.queue.as_ref().ok_or(StoreError::WriterStopped)?;
        queue.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => StoreError::QueueFull {
                limit: QUEUE_CAPACITY,
            },
            TrySendError::Disconnected(_) => StoreError::WriterStopped,
        })
    }
}

impl Drop for AppendQueue {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what is queued and exit; joining it means the
        // database is closed when `drop` returns, so the state can be reopened at once.
        drop(self.queue.take());
        if let Some(handle) = self.writer.take() {
            let _ = handle.join();
        }
    }
}

/// Serves batches until every sender is gone.
fn run(mut writer: impl BatchWriter, jobs: &Receiver<Job>, commits: &AtomicU64) {
    let mut events = Vec::new();
    let mut replies = Vec::new();
    // When the oldest waiting deferred job was queued.
    let mut deferred_since: Option<Instant> = None;
    let mut open = true;
    while open || !events.is_empty() {
        let next = match deferred_since {
            None => jobs.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(since) => {
                jobs.recv_timeout((since + DEFER_MAX).saturating_duration_since(Instant::now()))
            }
        };
        let mut urgent = false;
        match next {
            Ok(job) => {
                urgent |= !job.deferred;
                events.push(job.event);
                replies.push(job.reply);
            }
            Err(RecvTimeoutError::Timeout) => urgent = true,
            Err(RecvTimeoutError::Disconnected) => {
                open = false;
                urgent = true;
            }
        }
        while events.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => {
                    urgent |= !job.deferred;
                    events.push(job.event);
                    replies.push(job.reply);
                }
                Err(_) => break,
            }
        }
        if !urgent && events.len() < MAX_BATCH {
            deferred_since.get_or_insert_with(Instant::now);
            continue;
        }
        deferred_since = None;
        if events.is_empty() {
            continue;
        }
        match writer.write_batch(std::mem::take(&mut events)) {
            Ok(entries) => {
                commits.fetch_add(1, Ordering::Relaxed);
                // Equal lengths by construction; a reply left over would be dropped, and its
                // caller would see an error, never a false success.
                for (reply, entry) in replies.drain(..).zip(entries) {
                    reply.send(Ok(entry));
                }
            }
            Err(e) => {
                for reply in replies.drain(..) {
                    reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// The current time, RFC 3339 in UTC with microseconds (`2026-01-02T03:04:05.678901Z`).
pub(crate) fn now_rfc3339() -> String {
    format!("{:.6}", jiff::Timestamp::now())
}
