//! The stdio transport: spawn the server, handshake, run the schedule, shut down.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::Value;

use super::report::{Report, Tally};
use super::{DRAIN_GRACE, HANDSHAKE_TIMEOUT, LoadError, Options, Schedule};

/// The longest line accepted from the server; the echo server's answers are far smaller.
pub(super) const MAX_LINE: u64 = 1 << 20;

/// How long the server may take to exit once its input is closed before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// The id of the handshake request.
const INIT_ID: &str = "init";

/// The id of the `ping` the open loop sends after its last call (see [`open_loop`]).
const FENCE_ID: &str = "fence";

pub(super) fn run(options: &Options) -> Result<Report, LoadError> {
    let mut command = Command::new(
        options
            .command
            .first()
            .ok_or(LoadError::Options("no server command given"))?,
    );
    command
        .args(options.command.iter().skip(1))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    if let Some(path) = &options.server_stderr {
        command.stderr(File::create(path)?);
    }
    let spawn_error = |source| LoadError::Spawn {
        command: options
            .command
            .iter()
            .map(|arg| arg.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" "),
        source,
    };
    let mut child = command.spawn().map_err(spawn_error)?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        return Err(LoadError::Handshake(
            "the server's pipes are missing".to_owned(),
        ));
    };
    let child = Arc::new(Mutex::new(child));
    let watchdog = Watchdog::start(Arc::clone(&child), Instant::now() + HANDSHAKE_TIMEOUT);
    let result = drive(options, stdin, stdout, &watchdog);
    watchdog.stop();
    stop_child(&child);
    result
}

/// Handshake, then the schedule; the server's input is closed when this returns.
fn drive(
    options: &Options,
    mut stdin: ChildStdin,
    stdout: ChildStdout,
    watchdog: &Watchdog,
) -> Result<Report, LoadError> {
    let mut reader = Lines::new(stdout);
    handshake(&mut stdin, &mut reader)?;
    let requests = Requests::new(&options.text);
    let start = Instant::now();
    watchdog.rearm(start + options.time_limit + DRAIN_GRACE);
    let tally = match options.schedule {
        Schedule::Closed { concurrency } => {
            closed_loop(options, concurrency, &requests, stdin, &mut reader, start)?
        }
        Schedule::Open { rate } => open_loop(options, rate, requests, stdin, &mut reader, start)?,
    };
    Ok(Report::new(options, tally, watchdog.fired()))
}

fn handshake(stdin: &mut ChildStdin, reader: &mut Lines) -> Result<(), LoadError> {
    let init = serde_json::json!({
        "jsonrpc": "2.0", "id": INIT_ID, "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "portcullis-load", "version": env!("CARGO_PKG_VERSION")}
        }
    });
    writeln!(stdin, "{init}")?;
    loop {
        let Some(line) = reader.next()? else {
            return Err(LoadError::Handshake(
                "the server closed its output before answering `initialize`".to_owned(),
            ));
        };
        let Ok(message) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if message.get("id").and_then(Value::as_str) != Some(INIT_ID) {
            continue;
        }
        if message.get("result").is_none() {
            return Err(LoadError::Handshake(format!(
                "`initialize` was refused: {message}"
            )));
        }
        break;
    }
    writeln!(
        stdin,
        r#"{{"jsonrpc":"2.0","method":"notifications/initialized"}}"#
    )?;
    Ok(())
}

/// Calls in flight are refilled from the thread that reads the answers.
fn closed_loop(
    options: &Options,
    concurrency: u32,
    requests: &Requests,
    mut stdin: ChildStdin,
    reader: &mut Lines,
    start: Instant,
) -> Result<Tally, LoadError> {
    let send_deadline = start + options.time_limit;
    let calls = options.calls;
    let mut sent_at: Vec<Option<Instant>> =
        vec![None; usize::try_from(calls).unwrap_or(usize::MAX)];
    let mut tally = Tally::new(options.warmup);
    let mut sent = 0_u64;
    while sent < calls.min(u64::from(concurrency)) {
        send(sent, requests, &mut stdin, &mut sent_at, &mut tally)?;
        sent += 1;
    }
    let mut pending = sent;
    while pending > 0 {
        let Some(line) = reader.next()? else { break };
        let now = Instant::now();
        let Answer::Call { id, ok } = classify(line) else {
            tally.unexpected += 1;
            continue;
        };
        let slot = usize::try_from(id).ok().and_then(|i| sent_at.get_mut(i));
        let Some(started) = slot.and_then(Option::take) else {
            tally.unexpected += 1;
            continue;
        };
        pending -= 1;
        tally.answered(id, ok, now, now.saturating_duration_since(started));
        if sent < calls && Instant::now() < send_deadline {
            send(sent, requests, &mut stdin, &mut sent_at, &mut tally)?;
            sent += 1;
            pending += 1;
        }
    }
    tally.finish(sent, pending, sent < calls);
    Ok(tally)
}

/// Writes call `id`, noting when.
fn send(
    id: u64,
    requests: &Requests,
    stdin: &mut ChildStdin,
    sent_at: &mut [Option<Instant>],
    tally: &mut Tally,
) -> std::io::Result<()> {
    let now = Instant::now();
    if let Some(slot) = usize::try_from(id).ok().and_then(|i| sent_at.get_mut(i)) {
        *slot = Some(now);
    }
    tally.sent(id, now);
    stdin.write_all(requests.line(id).as_bytes())
}

/// A writer thread sends call `i` at `start + i / rate`; this thread reads the answers and
/// measures each from that scheduled time.
///
/// When the writer is done it sends a `ping` (the fence). The reader stops once the writer is
/// done and every call is answered; the fence's answer guarantees it is woken up to see that even
/// when the last call was answered before the writer marked itself done.
fn open_loop(
    options: &Options,
    rate: f64,
    requests: Requests,
    stdin: ChildStdin,
    reader: &mut Lines,
    start: Instant,
) -> Result<Tally, LoadError> {
    let due = move |id: u64| start + Duration::from_secs_f64(id as f64 / rate);
    let sent = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (sent, done) = (Arc::clone(&sent), Arc::clone(&done));
        let (calls, warmup) = (options.calls, options.warmup);
        let send_deadline = start + options.time_limit;
        std::thread::spawn(move || {
            write_scheduled(
                stdin,
                &requests,
                calls,
                warmup,
                &due,
                send_deadline,
                &sent,
                &done,
            )
        })
    };
    let mut answered = vec![false; usize::try_from(options.calls).unwrap_or(usize::MAX)];
    let mut tally = Tally::new(options.warmup);
    tally.first_measured_send = Some(due(options.warmup));
    let mut received = 0_u64;
    let read_result = loop {
        let line = match reader.next() {
            Ok(Some(line)) => line,
            Ok(None) => break Ok(()),
            Err(error) => break Err(error),
        };
        let now = Instant::now();
        match classify(line) {
            Answer::Call { id, ok } => {
                let slot = usize::try_from(id).ok().and_then(|i| answered.get_mut(i));
                match slot {
                    Some(seen) if !*seen && id < sent.load(Ordering::SeqCst) => {
                        *seen = true;
                        received += 1;
                        tally.answered(id, ok, now, now.saturating_duration_since(due(id)));
                    }
                    _ => tally.unexpected += 1,
                }
            }
            Answer::Fence => {}
            Answer::Other => tally.unexpected += 1,
        }
        if done.load(Ordering::SeqCst) && received == sent.load(Ordering::SeqCst) {
            break Ok(());
        }
    };
    let (stdin, lag) = writer.join().map_err(|_| LoadError::Thread)??;
    drop(stdin);
    read_result?;
    let sent = sent.load(Ordering::SeqCst);
    tally.lag = Some(lag);
    tally.finish(sent, sent.saturating_sub(received), sent < options.calls);
    Ok(tally)
}

#[expect(
    clippy::too_many_arguments,
    reason = "one call site; a struct would only rename them"
)]
fn write_scheduled(
    mut stdin: ChildStdin,
    requests: &Requests,
    calls: u64,
    warmup: u64,
    due: &dyn Fn(u64) -> Instant,
    send_deadline: Instant,
    sent: &AtomicU64,
    done: &AtomicBool,
) -> Result<(ChildStdin, Histogram<u64>), LoadError> {
    let mut lag = super::report::histogram();
    precise_sleeps();
    for id in 0..calls {
        let at = due(id);
        if at > send_deadline {
            break;
        }
        let now = sleep_until(at);
        // Counted before the write so that an answer can never arrive for an id not yet counted.
        sent.store(id + 1, Ordering::SeqCst);
        if let Err(error) = stdin.write_all(requests.line(id).as_bytes()) {
            done.store(true, Ordering::SeqCst);
            return Err(error.into());
        }
        if id >= warmup {
            lag.saturating_record(nanos(now.saturating_duration_since(at)));
        }
    }
    done.store(true, Ordering::SeqCst);
    writeln!(
        stdin,
        r#"{{"jsonrpc":"2.0","id":"{FENCE_ID}","method":"ping"}}"#
    )?;
    Ok((stdin, lag))
}

/// Sleeps until `at` (high-resolution: nanosleep, which may overshoot by the kernel's timer
/// slack); returns the time it woke.
pub(super) fn sleep_until(at: Instant) -> Instant {
    let mut now = Instant::now();
    while now < at {
        std::thread::sleep(at - now);
        now = Instant::now();
    }
    now
}

/// Asks the kernel to wake this thread on time: the default timer slack of 50 µs would make
/// every paced call up to 50 µs late, a tenth of the interval at 2,000 calls/s. Best effort.
pub(super) fn precise_sleeps() {
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_timerslack(1);
}

pub(super) fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// The `tools/call` lines, with the constant parts serialized once.
pub(super) struct Requests {
    prefix: &'static str,
    suffix: String,
}

impl Requests {
    pub(super) fn new(text: &str) -> Self {
        Requests {
            prefix: r#"{"jsonrpc":"2.0","id":"#,
            suffix: format!(
                r#","method":"tools/call","params":{{"name":"echo","arguments":{{"text":{}}}}}}}"#,
                Value::String(text.to_owned())
            ) + "\n",
        }
    }

    pub(super) fn line(&self, id: u64) -> String {
        format!("{}{id}{}", self.prefix, self.suffix)
    }
}

/// What one line from the server is.
#[derive(Debug, PartialEq)]
pub(super) enum Answer {
    /// The answer to call `id`: a result that is not a tool error (`ok`), or anything else.
    Call { id: u64, ok: bool },
    /// The answer to the fence `ping`.
    Fence,
    /// Anything else: unparseable, a notification, a server request, an unknown id.
    Other,
}

pub(super) fn classify(line: &str) -> Answer {
    let Ok(message) = serde_json::from_str::<Value>(line) else {
        return Answer::Other;
    };
    if message.get("method").is_some() {
        return Answer::Other;
    }
    match message.get("id") {
        Some(Value::Number(id)) => match id.as_u64() {
            Some(id) => {
                let ok = message
                    .get("result")
                    .is_some_and(|result| result.get("isError") != Some(&Value::Bool(true)));
                Answer::Call { id, ok }
            }
            None => Answer::Other,
        },
        Some(Value::String(id)) if id == FENCE_ID => Answer::Fence,
        _ => Answer::Other,
    }
}

/// Bounded lines from the server's output.
struct Lines {
    reader: BufReader<ChildStdout>,
    line: String,
}

impl Lines {
    fn new(stdout: ChildStdout) -> Self {
        Lines {
            reader: BufReader::with_capacity(64 * 1024, stdout),
            line: String::new(),
        }
    }

    /// The next line, `None` at end of output.
    fn next(&mut self) -> Result<Option<&str>, LoadError> {
        self.line.clear();
        let read = (&mut self.reader)
            .take(MAX_LINE + 1)
            .read_line(&mut self.line)?;
        if read == 0 {
            return Ok(None);
        }
        if read as u64 > MAX_LINE {
            return Err(LoadError::Io(std::io::Error::other(format!(
                "the server sent a line longer than {MAX_LINE} bytes"
            ))));
        }
        Ok(Some(self.line.trim_end()))
    }
}

/// Kills the server when a deadline passes, which ends any blocking read of its output.
struct Watchdog {
    deadlines: Sender<Instant>,
    fired: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Watchdog {
    fn start(child: Arc<Mutex<Child>>, first: Instant) -> Self {
        let (deadlines, rx) = channel();
        let fired = Arc::new(AtomicBool::new(false));
        let thread = {
            let fired = Arc::clone(&fired);
            std::thread::spawn(move || watch(&child, &rx, first, &fired))
        };
        Watchdog {
            deadlines,
            fired,
            thread,
        }
    }

    fn rearm(&self, deadline: Instant) {
        let _ = self.deadlines.send(deadline);
    }

    fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    fn stop(self) {
        drop(self.deadlines);
        let _ = self.thread.join();
    }
}

fn watch(child: &Mutex<Child>, rx: &Receiver<Instant>, first: Instant, fired: &AtomicBool) {
    let mut deadline = first;
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(next) => deadline = next,
            Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {
                fired.store(true, Ordering::SeqCst);
                let _ = child.lock().unwrap_or_else(PoisonError::into_inner).kill();
                return;
            }
        }
    }
}

/// Waits for the server to exit on its own (its input is closed by now), then kills it.
fn stop_child(child: &Mutex<Child>) {
    let mut child = child.lock().unwrap_or_else(PoisonError::into_inner);
    let deadline = Instant::now() + EXIT_GRACE;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}
