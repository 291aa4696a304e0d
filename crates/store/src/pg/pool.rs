//! A small connection pool: a fixed number of worker threads, each owning at most one
//! connection, taking closures from one bounded queue.
//!
//! Why threads and not a pool of clients handed out to callers: the synchronous `postgres` client
//! runs its own small runtime and must not be driven from a thread that is running async tasks,
//! and some callers of the store are (tool vetting runs inline in the session loop). Handing the
//! work to a thread of the pool and waiting on a plain channel works from any thread, and lets the
//! caller stop waiting after [`Settings::wait`] even when the database hangs.
//!
//! A worker connects on first use and again after its connection broke, so the store recovers by
//! itself when PostgreSQL comes back: the first call after an outage just connects anew.
//!
//! A caller that stopped waiting is told its operation failed, and the gateway acts on that (it
//! denies the call). So the work must not take effect later behind its back: an audit record
//! saying `allow` for a call that was denied, a counter charged or an approval used for a call
//! that never ran. Every task therefore carries its deadline and a [`Fence`] it shared with its
//! caller: a worker that picks the task up after the deadline does not run it, and a running
//! task passes the fence just before it commits (or runs a statement that commits by itself).
//! Passing and giving up are one atomic choice between the two sides: either the caller gave up
//! first, and the task rolls back, or the task passed first, and the caller waits for the commit's
//! answer (bounded by the statement timeout) instead of giving up. What remains is the case no
//! client can close: the connection breaks while `COMMIT` is under way, and the caller gets an
//! error for a commit that may have happened.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use postgres::Client;

use super::Endpoint;
use crate::error::StoreError;

/// Timeouts and sizes of one pool.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Connections (and worker threads).
    pub(crate) size: usize,
    /// `statement_timeout` set on every connection.
    pub(crate) statement_timeout: Duration,
    /// How long a caller waits for its work, queueing included.
    pub(crate) wait: Duration,
}

type Task = Box<dyn FnOnce(&mut Slot) + Send>;

/// The task may still be abandoned by its caller.
const OPEN: u8 = 0;
/// The task passed its fence: it commits, and its caller waits for the answer.
const COMMITTING: u8 = 1;
/// The caller gave up (or the deadline passed first): the task must not commit.
const ABANDONED: u8 = 2;

/// The point of no return of one task, shared by the task and its caller (see the module).
pub(crate) struct Fence {
    state: Arc<AtomicU8>,
    deadline: Instant,
    target: Arc<str>,
    during: &'static str,
    seconds: u64,
}

impl Fence {
    /// Call right before `COMMIT` (or a statement that commits by itself): `Ok` means the caller
    /// will wait for the answer; an error means the caller was or will be told the operation
    /// failed, so the work must be rolled back (dropping the transaction does that).
    pub(crate) fn pass(&self) -> Result<(), StoreError> {
        if Instant::now() >= self.deadline {
            // The caller is giving up at this moment; settle it here rather than race it.
            let _ =
                self.state
                    .compare_exchange(OPEN, ABANDONED, Ordering::AcqRel, Ordering::Acquire);
        }
        match self
            .state
            .compare_exchange(OPEN, COMMITTING, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) | Err(COMMITTING) => Ok(()),
            Err(_) => Err(self.timeout()),
        }
    }

    fn timeout(&self) -> StoreError {
        StoreError::PostgresTimeout {
            target: self.target.to_string(),
            during: self.during,
            seconds: self.seconds,
        }
    }
}

/// One worker's connection, made on demand.
struct Slot {
    endpoint: Arc<Endpoint>,
    target: Arc<str>,
    statement_timeout: Duration,
    client: Option<Client>,
    /// Bumped by any worker that finds its connection broken: after an outage every other
    /// connection of the pool is broken too (the server restarted), but a connection only learns
    /// that when a query on it fails. Reconnecting them all at once costs one failed call per
    /// outage instead of one per connection.
    generation: Arc<AtomicU64>,
    /// The generation this slot's connection was made in.
    made_in: u64,
}

impl Slot {
    fn client(&mut self) -> Result<&mut Client, StoreError> {
        let generation = self.generation.load(Ordering::Acquire);
        if self.client.as_ref().is_some_and(Client::is_closed) || self.made_in != generation {
            self.client = None;
        }
        if self.client.is_none() {
            let mut client = self.endpoint.connect()?;
            // Every statement is bounded, so a stuck lock or an overloaded server turns into an
            // error (and a denied call) rather than a gateway that hangs; a transaction left open
            // by a vanished client cannot hold locks for long either.
            let ms = self.statement_timeout.as_millis();
            client
                .batch_execute(&format!(
                    "SET statement_timeout = {ms}; SET lock_timeout = {ms}; \
                     SET idle_in_transaction_session_timeout = {}",
                    ms.saturating_mul(2)
                ))
                .map_err(|e| StoreError::postgres(&self.target, "setting timeouts", e))?;
            self.client = Some(client);
            self.made_in = generation;
        }
        self.client.as_mut().ok_or(StoreError::Bug {
            what: "a pool connection vanished",
        })
    }

    /// After a task: a connection that broke is dropped, and the others are told.
    fn check(&mut self) {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// The pool. Dropping it lets the workers finish queued work and joins them.
pub(crate) struct Pool {
    tasks: Option<SyncSender<Task>>,
    workers: Vec<JoinHandle<()>>,
    target: Arc<str>,
    wait: Duration,
    /// How long a caller whose task passed its fence waits for the commit past its deadline.
    commit_wait: Duration,
}

impl Pool {
    /// Starts `settings.size` workers for the database at `endpoint`. Nothing connects yet.
    pub(crate) fn start(endpoint: &Endpoint, settings: &Settings) -> Result<Pool, StoreError> {
        let size = settings.size.max(1);
        let (tasks, queue) = std::sync::mpsc::sync_channel::<Task>(size.saturating_mul(64));
        let queue = Arc::new(Mutex::new(queue));
        let endpoint = Arc::new(endpoint.clone());
        let target: Arc<str> = Arc::from(endpoint.target.as_str());
        let generation = Arc::new(AtomicU64::new(0));
        let mut workers = Vec::with_capacity(size);
        for n in 0..size {
            let queue = Arc::clone(&queue);
            let slot = Slot {
                endpoint: Arc::clone(&endpoint),
                target: Arc::clone(&target),
                statement_timeout: settings.statement_timeout,
                client: None,
                generation: Arc::clone(&generation),
                made_in: 0,
            };
            let handle = std::thread::Builder::new()
                .name(format!("portcullis-pg-{n}"))
                .spawn(move || work(slot, &queue))
                .map_err(|_| StoreError::Bug {
                    what: "a database worker thread could not be started",
                })?;
            workers.push(handle);
        }
        Ok(Pool {
            tasks: Some(tasks),
            workers,
            target,
            wait: settings.wait,
            // The commit is one statement under `statement_timeout`; a second more for the answer.
            commit_wait: settings
                .statement_timeout
                .saturating_add(Duration::from_secs(1)),
        })
    }

    /// The database, for messages (never the password).
    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    /// Runs `f` on a pooled connection and waits for its result, at most the pool's wait time
    /// unless `f` passed its [`Fence`] (then until the commit answered). `f` must pass the fence
    /// before anything it does can commit; work that only reads need not.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        during: &'static str,
        f: impl FnOnce(&mut Client, &Fence) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let deadline = Instant::now() + self.wait;
        let state = Arc::new(AtomicU8::new(OPEN));
        let fence = Fence {
            state: Arc::clone(&state),
            deadline,
            target: Arc::clone(&self.target),
            during,
            seconds: self.wait.as_secs().max(1),
        };
        let timeout = fence.timeout();
        let (reply, result) = std::sync::mpsc::channel();
        let task: Task = Box::new(move |slot: &mut Slot| {
            // Picked up too late: the caller was told it failed, so it does not run at all
            // (dropping `reply` is all the answer it gets).
            if Instant::now() >= fence.deadline || fence.state.load(Ordering::Acquire) == ABANDONED
            {
                return;
            }
            let outcome = slot.client().and_then(|client| f(client, &fence));
            slot.check();
            // A caller that stopped waiting is not an error here: its task did not commit.
            let _ = reply.send(outcome);
        });
        let tasks = self.tasks.as_ref().ok_or(StoreError::WriterStopped)?;
        tasks.try_send(task).map_err(|e| match e {
            // Every worker is busy and the queue is full: the database is not keeping up.
            TrySendError::Full(_) => timeout.clone(),
            TrySendError::Disconnected(_) => StoreError::WriterStopped,
        })?;
        match result.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(outcome) => return outcome,
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
        }
        // Give up, unless the task already passed its fence: then it is committing, and what
        // the database answers is the truth the caller must get.
        match state.compare_exchange(OPEN, ABANDONED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) | Err(ABANDONED) => Err(timeout),
            Err(_) => result
                .recv_timeout(self.commit_wait)
                .unwrap_or(Err(timeout)),
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        drop(self.tasks.take());
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

fn work(mut slot: Slot, queue: &Mutex<Receiver<Task>>) {
    loop {
        // The lock is held only while waiting for the next task, never while running it.
        let task = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        match task {
            Ok(task) => task(&mut slot),
            Err(_) => return,
        }
    }
}
