//! The Streamable HTTP transport: keep-alive HTTP/1.1 connections, one MCP session each.
//!
//! A small blocking client of its own rather than an HTTP library: the driver must add as little
//! time and as few thread wake-ups as possible, and the same client drives every target (the
//! echo server directly, `portcullis serve`, peer gateways), so whatever it costs is the same on
//! both sides of a comparison. It speaks just what the targets answer: `Content-Length` or
//! chunked bodies, `application/json` or `text/event-stream` (the answer is the `data` of the
//! event that carries the call's id).
//!
//! Each connection thread opens its own session (`initialize`, `notifications/initialized`),
//! then:
//! - **closed loop**: `concurrency` connections, each sends a call as soon as the previous one
//!   is answered;
//! - **open loop**: a pacing thread puts call `i` on a queue at `start + i / rate`; `connections`
//!   threads take calls from it, and each call's latency is measured from its scheduled time,
//!   so a call waiting for a free connection is charged for the wait (no coordinated omission).
//!
//! `idle_sessions` more sessions are opened before the run and kept (their connections open,
//! nothing sent) until it ends: the "many sessions" scale test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::report::{Report, Tally, histogram};
use super::stdio::{Answer, Requests, classify, nanos};
use super::{DRAIN_GRACE, HANDSHAKE_TIMEOUT, LoadError, Options, Schedule};

/// The largest response head or body accepted.
const MAX_BODY: usize = 1 << 20;

/// The protocol version the driver asks for.
const PROTOCOL_VERSION: &str = "2025-06-18";

/// Where the target listens: `http://HOST:PORT/PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Target {
    authority: String,
    path: String,
}

impl Target {
    pub(super) fn parse(url: &str) -> Result<Self, LoadError> {
        let rest = url
            .strip_prefix("http://")
            .ok_or(LoadError::Options("the URL must start with http://"))?;
        let (authority, path) = match rest.find('/') {
            Some(slash) => rest.split_at(slash),
            None => (rest, "/"),
        };
        if authority.is_empty() || !authority.contains(':') {
            return Err(LoadError::Options("the URL must name a host and a port"));
        }
        Ok(Target {
            authority: authority.to_owned(),
            path: path.to_owned(),
        })
    }
}

pub(super) fn run(options: &Options, url: &str) -> Result<Report, LoadError> {
    let target = Target::parse(url)?;
    let call_timeout = options.time_limit + DRAIN_GRACE;
    let mut idle = Vec::new();
    for _ in 0..options.idle_sessions {
        idle.push(Connection::open(&target, call_timeout)?);
    }
    let requests = Arc::new(Requests::new(&options.text));
    let tally = match options.schedule {
        Schedule::Closed { concurrency } => {
            closed_loop(options, &target, concurrency, &requests, call_timeout)?
        }
        Schedule::Open { rate } => open_loop(options, &target, rate, &requests, call_timeout)?,
    };
    drop(idle);
    Ok(Report::new(options, tally, false))
}

/// Opens `n` sessions, each on its own connection, before any call is timed.
fn connect_all(target: &Target, n: u32, timeout: Duration) -> Result<Vec<Connection>, LoadError> {
    (0..n).map(|_| Connection::open(target, timeout)).collect()
}

fn closed_loop(
    options: &Options,
    target: &Target,
    concurrency: u32,
    requests: &Arc<Requests>,
    timeout: Duration,
) -> Result<Tally, LoadError> {
    let connections = connect_all(target, concurrency, timeout)?;
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let send_deadline = start + options.time_limit;
    let threads: Vec<_> = connections
        .into_iter()
        .map(|mut connection| {
            let (next, requests) = (Arc::clone(&next), Arc::clone(requests));
            let (calls, warmup) = (options.calls, options.warmup);
            std::thread::spawn(move || {
                let mut tally = Tally::new(warmup);
                let mut sent = 0_u64;
                let mut lost = 0_u64;
                loop {
                    let id = next.fetch_add(1, Ordering::SeqCst);
                    if id >= calls || Instant::now() >= send_deadline {
                        break;
                    }
                    sent += 1;
                    if !timed_call(&mut connection, &requests, id, Instant::now(), &mut tally) {
                        lost += 1;
                        break;
                    }
                }
                tally.finish(sent, lost, false);
                tally
            })
        })
        .collect();
    let mut total = Tally::new(options.warmup);
    for thread in threads {
        total.merge(thread.join().map_err(|_| LoadError::Thread)?);
    }
    let sent = next.load(Ordering::SeqCst).min(options.calls);
    total.time_limited = sent < options.calls;
    Ok(total)
}

fn open_loop(
    options: &Options,
    target: &Target,
    rate: f64,
    requests: &Arc<Requests>,
    timeout: Duration,
) -> Result<Tally, LoadError> {
    let connections = connect_all(target, options.connections.max(1), timeout)?;
    let start = Instant::now() + Duration::from_millis(10);
    let due = move |id: u64| start + Duration::from_secs_f64(id as f64 / rate);
    let (queue, calls) = channel::<u64>();
    let calls = Arc::new(Mutex::new(calls));
    let warmup = options.warmup;
    let workers: Vec<_> = connections
        .into_iter()
        .map(|mut connection| {
            let (calls, requests) = (Arc::clone(&calls), Arc::clone(requests));
            std::thread::spawn(move || {
                let mut tally = Tally::new(warmup);
                let mut lag = histogram();
                let (mut sent, mut lost) = (0_u64, 0_u64);
                while let Some(id) = take(&calls) {
                    let at = due(id);
                    let now = Instant::now();
                    if id >= warmup {
                        lag.saturating_record(nanos(now.saturating_duration_since(at)));
                    }
                    sent += 1;
                    if !timed_call(&mut connection, &requests, id, at, &mut tally) {
                        lost += 1;
                        break;
                    }
                }
                tally.finish(sent, lost, false);
                tally.lag = Some(lag);
                tally
            })
        })
        .collect();
    let send_deadline = start + options.time_limit;
    let mut queued = 0_u64;
    super::stdio::precise_sleeps();
    for id in 0..options.calls {
        let at = due(id);
        if at > send_deadline {
            break;
        }
        super::stdio::sleep_until(at);
        if queue.send(id).is_err() {
            break;
        }
        queued += 1;
    }
    drop(queue);
    let mut total = Tally::new(options.warmup);
    total.first_measured_send = Some(due(options.warmup));
    for worker in workers {
        total.merge(worker.join().map_err(|_| LoadError::Thread)?);
    }
    // Calls queued but taken by no worker (every worker's connection failed) are lost too.
    total.add_lost(queued.saturating_sub(total.sent_count()));
    total.time_limited = queued < options.calls;
    Ok(total)
}

/// Sends call `id` and tallies its answer, its latency measured from `from` (when it was sent,
/// or due); `false` when the connection failed (the call is lost).
fn timed_call(
    connection: &mut Connection,
    requests: &Requests,
    id: u64,
    from: Instant,
    tally: &mut Tally,
) -> bool {
    tally.sent(id, from);
    match connection.call(requests, id) {
        Ok(ok) => {
            let done = Instant::now();
            tally.answered(id, ok, done, done.saturating_duration_since(from));
            true
        }
        Err(_) => false,
    }
}

fn take(calls: &Mutex<Receiver<u64>>) -> Option<u64> {
    calls
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .recv()
        .ok()
}

/// One keep-alive connection with its MCP session.
struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    target: Target,
    session: Option<String>,
    request: Vec<u8>,
}

/// What one response carried.
struct Response {
    status: u16,
    session: Option<String>,
    body: Vec<u8>,
}

impl Connection {
    /// Connects and does the handshake.
    fn open(target: &Target, timeout: Duration) -> Result<Self, LoadError> {
        let stream = TcpStream::connect(&target.authority)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
        let mut connection = Connection {
            reader: BufReader::with_capacity(64 * 1024, stream.try_clone()?),
            writer: stream,
            target: target.clone(),
            session: None,
            request: Vec::with_capacity(1024),
        };
        let init = serde_json::json!({
            "jsonrpc": "2.0", "id": "init", "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "portcullis-load", "version": env!("CARGO_PKG_VERSION")}
            }
        })
        .to_string();
        let reply = connection.post(init.as_bytes())?;
        if reply.status != 200 {
            return Err(LoadError::Handshake(format!(
                "`initialize` was answered with HTTP {}: {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            )));
        }
        connection.session = reply.session;
        let reply =
            connection.post(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)?;
        if !(200..300).contains(&reply.status) {
            return Err(LoadError::Handshake(format!(
                "`notifications/initialized` was answered with HTTP {}",
                reply.status
            )));
        }
        connection.writer.set_read_timeout(Some(timeout))?;
        Ok(connection)
    }

    /// Sends call `id`; whether it succeeded (a result that is not a tool error).
    fn call(&mut self, requests: &Requests, id: u64) -> Result<bool, LoadError> {
        let line = requests.line(id);
        let reply = self.post(line.trim_end().as_bytes())?;
        if reply.status != 200 {
            return Ok(false);
        }
        Ok(answer(&reply.body, id))
    }

    fn post(&mut self, body: &[u8]) -> Result<Response, LoadError> {
        self.request.clear();
        let _ = write!(
            self.request,
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: {}\r\n",
            self.target.path, self.target.authority, PROTOCOL_VERSION
        );
        if let Some(session) = &self.session {
            let _ = write!(self.request, "Mcp-Session-Id: {session}\r\n");
        }
        let _ = write!(self.request, "Content-Length: {}\r\n\r\n", body.len());
        self.request.extend_from_slice(body);
        self.writer.write_all(&self.request)?;
        read_response(&mut self.reader)
    }
}

impl Drop for Connection {
    /// Ends the session (`DELETE`), as a well-behaved client does, so that runs one after the
    /// other against one gateway do not pile up sessions. Best effort.
    fn drop(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        let request = format!(
            "DELETE {} HTTP/1.1\r\nHost: {}\r\nMcp-Session-Id: {session}\r\n\
             MCP-Protocol-Version: {PROTOCOL_VERSION}\r\nContent-Length: 0\r\n\r\n",
            self.target.path, self.target.authority
        );
        let _ = self.writer.set_read_timeout(Some(Duration::from_secs(2)));
        if self.writer.write_all(request.as_bytes()).is_ok() {
            let _ = read_response(&mut self.reader);
        }
    }
}

/// Whether a response body (JSON, or SSE events) answers call `id` successfully.
fn answer(body: &[u8], id: u64) -> bool {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        return classify(trimmed.trim_end()) == Answer::Call { id, ok: true };
    }
    // SSE: `data:` lines; an event's data lines are joined by newlines.
    let mut data = String::new();
    for line in text.lines().chain(std::iter::once("")) {
        if line.is_empty() {
            if !data.is_empty() {
                match classify(&data) {
                    Answer::Call { id: got, ok } if got == id => return ok,
                    _ => data.clear(),
                }
            }
        } else if let Some(value) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(value.strip_prefix(' ').unwrap_or(value));
        }
    }
    false
}

fn bad(what: &str) -> LoadError {
    LoadError::Io(std::io::Error::other(format!("bad HTTP response: {what}")))
}

/// Reads one HTTP/1.1 response (status, the session header, the whole body).
fn read_response(reader: &mut BufReader<TcpStream>) -> Result<Response, LoadError> {
    let mut line = String::new();
    let head_line = |reader: &mut BufReader<TcpStream>, line: &mut String| {
        line.clear();
        let read = reader.take(MAX_BODY as u64).read_line(line)?;
        if read == 0 {
            return Err(bad("the connection closed"));
        }
        Ok::<(), LoadError>(())
    };
    head_line(reader, &mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| bad("no status"))?;
    let (mut length, mut chunked, mut session) = (None, false, None);
    loop {
        head_line(reader, &mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            return Err(bad("a header without a colon"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().map_err(|_| bad("content-length"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("mcp-session-id") {
            session = Some(value.to_owned());
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            head_line(reader, &mut line)?;
            let size = line.trim_end().split(';').next().unwrap_or_default();
            let size = usize::from_str_radix(size, 16).map_err(|_| bad("chunk size"))?;
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    head_line(reader, &mut line)?;
                    if line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            if body.len() + size > MAX_BODY {
                return Err(bad("body too large"));
            }
            let old = body.len();
            body.resize(old + size, 0);
            reader.read_exact(body.get_mut(old..).unwrap_or_default())?;
            head_line(reader, &mut line)?;
        }
    } else if let Some(length) = length {
        if length > MAX_BODY {
            return Err(bad("body too large"));
        }
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    } else if status != 202 && status != 204 && status != 304 {
        // No length and not chunked: the body runs to the end of the connection.
        reader.take(MAX_BODY as u64).read_to_end(&mut body)?;
    }
    Ok(Response {
        status,
        session,
        body,
    })
}

#[cfg(test)]
pub(super) fn answers(body: &str, id: u64) -> bool {
    answer(body.as_bytes(), id)
}
