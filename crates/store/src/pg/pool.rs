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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use postgres::{Client, Config, NoTls};

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

/// One worker's connection, made on demand.
struct Slot {
    config: Arc<Config>,
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
            let mut client = self
                .config
                .connect(NoTls)
                .map_err(|e| StoreError::postgres(&self.target, "connecting", e))?;
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
}

impl Pool {
    /// Starts `settings.size` workers for the database of `config`. Nothing connects yet.
    pub(crate) fn start(
        config: &Config,
        target: &str,
        settings: &Settings,
    ) -> Result<Pool, StoreError> {
        let size = settings.size.max(1);
        let (tasks, queue) = std::sync::mpsc::sync_channel::<Task>(size.saturating_mul(64));
        let queue = Arc::new(Mutex::new(queue));
        let config = Arc::new(config.clone());
        let target: Arc<str> = Arc::from(target);
        let generation = Arc::new(AtomicU64::new(0));
        let mut workers = Vec::with_capacity(size);
        for n in 0..size {
            let queue = Arc::clone(&queue);
            let slot = Slot {
                config: Arc::clone(&config),
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
        })
    }

    /// The database, for messages (never the password).
    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    /// Runs `f` on a pooled connection and waits for its result, at most the pool's wait time.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        during: &'static str,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, result) = std::sync::mpsc::channel();
        let task: Task = Box::new(move |slot: &mut Slot| {
            let outcome = slot.client().and_then(f);
            slot.check();
            // A caller that stopped waiting is not an error here.
            let _ = reply.send(outcome);
        });
        let timeout = || StoreError::PostgresTimeout {
            target: self.target.to_string(),
            during,
            seconds: self.wait.as_secs().max(1),
        };
        let tasks = self.tasks.as_ref().ok_or(StoreError::WriterStopped)?;
        tasks.try_send(task).map_err(|e| match e {
            // Every worker is busy and the queue is full: the database is not keeping up.
            TrySendError::Full(_) => timeout(),
            TrySendError::Disconnected(_) => StoreError::WriterStopped,
        })?;
        result.recv_timeout(self.wait).map_err(|_| timeout())?
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
