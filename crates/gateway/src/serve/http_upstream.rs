//! A server reached by URL (Streamable HTTP) behind the unchanged session pipeline.
//!
//! The session writes what it forwards as lines into an in-process line channel and reads the
//! server's messages as lines from another, exactly as with a stdio server. The bridge between
//! them and the server POSTs each forwarded line, and writes every message that comes back (a
//! JSON body or the events of an SSE response, each made one line by the transport) into the
//! session's input, where it is framed strictly like a stdio server's line. After
//! `notifications/initialized` it also listens on the server's GET stream for server-initiated
//! messages, resuming it with `Last-Event-ID` when it breaks.
//!
//! What the server is sent: the policy's `headers` (the gateway's own credentials), the server's
//! `Mcp-Session-Id` and the negotiated `MCP-Protocol-Version`, never anything from the gateway's
//! own client's HTTP request.

use std::sync::Arc;
use std::time::Duration;

use portcullis_mcp::{INTERNAL_ERROR, Id, Limits, Message, error_response, parse_message};
use portcullis_policy::ServerInfo;
use portcullis_transport::http_client::{
    HttpClient, HttpClientConfig, HttpClientError, MessageStream, PostReply,
};
use portcullis_transport::stdio::StdinWriter;
use portcullis_transport::{DEFAULT_MAX_LINE_BYTES, Line, LineReceiver, line_channel};
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::upstream::{PIPE_BYTES, REQUEST_TIMEOUT};
use crate::error::GatewayError;

/// Most POSTs in flight to one server session at once; more wait (back-pressure).
const MAX_IN_FLIGHT: usize = 32;
/// How long a POST of a notification or response may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a broken stream is resumed before the call is failed (or the GET stream dropped).
const MAX_RESUMES: u32 = 5;
/// The wait before resuming a broken stream when the server named none.
const DEFAULT_RETRY: Duration = Duration::from_secs(1);

/// The server side of one session on an HTTP server: what the session writes to and reads from.
pub(crate) struct HttpServer {
    /// Where the session writes what it forwards.
    pub(crate) upstream: StdinWriter,
    /// Where the session reads the server's messages.
    pub(crate) server_out: LineReceiver,
    /// Ends the bridge (and the server's HTTP session).
    pub(crate) bridge: Bridge,
}

/// The running bridge.
pub(crate) struct Bridge {
    task: tokio::task::JoinHandle<()>,
    client: HttpClient,
}

impl Bridge {
    /// Stops the bridge and ends the server's HTTP session (`DELETE`).
    pub(crate) async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
        self.client.delete_session().await;
    }
}

/// Connects a session to server `info` by its URL. Nothing is sent until the session forwards
/// the client's `initialize`.
pub(crate) fn connect(info: &ServerInfo) -> Result<HttpServer, GatewayError> {
    let url = info.spec.url.clone().ok_or_else(|| {
        GatewayError::ServerSelection(format!("server `{}` has no `url`", info.name))
    })?;
    let config = HttpClientConfig {
        server: info.name.clone(),
        url,
        headers: info
            .spec
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        max_message_bytes: DEFAULT_MAX_LINE_BYTES,
    };
    let client = HttpClient::new(&config)
        .map_err(|error| GatewayError::ServerSelection(error.to_string()))?;
    let (session_w, bridge_r) = line_channel(PIPE_BYTES, DEFAULT_MAX_LINE_BYTES);
    let (bridge_w, session_r) = line_channel(PIPE_BYTES, DEFAULT_MAX_LINE_BYTES);
    let to_session = StdinWriter::from_sender(bridge_w);
    let task = tokio::spawn(run(client.clone(), bridge_r, to_session));
    tracing::info!(target: "upstream", server = %info.name, "connected a session to an HTTP server");
    Ok(HttpServer {
        upstream: StdinWriter::from_sender(session_w),
        server_out: session_r,
        bridge: Bridge { task, client },
    })
}

/// Forwards the session's lines until the session closes its side or the server's session is
/// gone; then closes the session's input, so the session sees the server leave.
async fn run(client: HttpClient, mut from_session: LineReceiver, to_session: StdinWriter) {
    let limits = Limits::default();
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let (fatal_tx, mut fatal_rx) = mpsc::channel::<()>(1);
    let mut tasks = JoinSet::new();
    let mut listening = false;
    loop {
        let line = tokio::select! {
            line = from_session.recv_line() => line,
            _ = fatal_rx.recv() => break,
            Some(_) = tasks.join_next() => continue,
        };
        let bytes = match line {
            Some(Line::Complete(bytes)) => bytes,
            Some(Line::TooLong { .. }) => continue,
            None => break,
        };
        let (id, method) = match parse_message(&bytes, &limits).map(|p| p.into_parts().0) {
            Ok(Message::Request { id, method, .. }) => (Some(id), method),
            Ok(Message::Notification { method, .. }) => (None, method),
            Ok(_) => (None, String::new()),
            Err(_) => {
                tracing::error!(
                    "the session forwarded a malformed message; this is a bug, please report"
                );
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let start_listening = !listening && method == "notifications/initialized";
        listening |= start_listening;
        let (client, to_session, fatal) = (client.clone(), to_session.clone(), fatal_tx.clone());
        tasks.spawn(async move {
            let ok = post(&client, bytes, id.as_ref(), &method, &to_session).await;
            drop(permit);
            if !ok {
                let _ = fatal.try_send(());
            } else if start_listening {
                listen(&client, &to_session).await;
            }
        });
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    to_session.close().await;
}

/// POSTs one message and passes on what comes back. `false` when the server's session is gone.
async fn post(
    client: &HttpClient,
    bytes: Vec<u8>,
    id: Option<&Id>,
    method: &str,
    to_session: &StdinWriter,
) -> bool {
    let limit = if id.is_some() {
        REQUEST_TIMEOUT
    } else {
        SEND_TIMEOUT
    };
    let outcome = tokio::time::timeout(limit, async {
        let reply = client.post(bytes).await?;
        match reply {
            PostReply::Accepted => Ok(id.is_none()),
            PostReply::Messages(stream) => relay(client, *stream, id, method, to_session).await,
        }
    })
    .await;
    let failure = match outcome {
        Ok(Ok(true)) => return true,
        Ok(Ok(false)) => "the server sent no response".to_owned(),
        Ok(Err(error)) => {
            tracing::warn!(target: "upstream", %error, method, "an HTTP server request failed");
            let gone = matches!(error, HttpClientError::SessionExpired { .. });
            if let Some(id) = id {
                answer_error(to_session, id, &error.to_string()).await;
            }
            return !gone;
        }
        Err(_) => "the server did not answer in time".to_owned(),
    };
    tracing::warn!(target: "upstream", server = %client.server(), method, "{failure}");
    if let Some(id) = id {
        answer_error(
            to_session,
            id,
            &format!("server `{}`: {failure}", client.server()),
        )
        .await;
    }
    true
}

/// Passes on the messages of one response stream until it ends. For a request, `Ok(true)` once
/// its response came; a stream that broke before is resumed with `Last-Event-ID` (GET).
async fn relay(
    client: &HttpClient,
    mut stream: MessageStream,
    id: Option<&Id>,
    method: &str,
    to_session: &StdinWriter,
) -> Result<bool, HttpClientError> {
    let mut answered = id.is_none();
    let mut resumes = 0u32;
    loop {
        match stream.next().await {
            Ok(Some(incoming)) => {
                if let (Line::Complete(bytes), Some(id)) = (&incoming.line, id)
                    && answers(client, bytes, id, method)
                {
                    answered = true;
                }
                if !forward(to_session, incoming.line).await || (answered && id.is_some()) {
                    // The server ends the stream after the response (the spec says it SHOULD);
                    // nothing after it is waited for.
                    return Ok(answered);
                }
            }
            Ok(None) if answered => return Ok(true),
            Ok(None) | Err(HttpClientError::Request { .. }) if !answered => {
                let Some(last) = stream.last_event_id().map(str::to_owned) else {
                    return Ok(false);
                };
                resumes = resumes.saturating_add(1);
                if resumes > MAX_RESUMES {
                    return Ok(false);
                }
                tokio::time::sleep(stream.retry().unwrap_or(DEFAULT_RETRY)).await;
                tracing::info!(target: "upstream", server = %client.server(), method, "resuming a broken response stream");
                match client.get_stream(Some(&last)).await? {
                    Some(resumed) => stream = resumed,
                    None => return Ok(false),
                }
            }
            Ok(None) => return Ok(answered),
            Err(error) => return Err(error),
        }
    }
}

/// Whether `bytes` is the response to request `id`; the answer to `initialize` also sets the
/// protocol version for every later request.
fn answers(client: &HttpClient, bytes: &[u8], id: &Id, method: &str) -> bool {
    let Ok(parsed) = parse_message(bytes, &Limits::default()) else {
        return false;
    };
    let (message, value) = parsed.into_parts();
    let answered = matches!(&message, Message::Response { id: got, .. } | Message::ErrorResponse { id: Some(got), .. } if got == id);
    if answered
        && method == "initialize"
        && let Some(version) = value
            .get("result")
            .and_then(|r| r.get("protocolVersion"))
            .and_then(Value::as_str)
    {
        client.set_protocol_version(version);
    }
    answered
}

/// Listens on the server's GET stream for server-initiated messages, resuming it after breaks,
/// until the server offers none or it keeps failing.
async fn listen(client: &HttpClient, to_session: &StdinWriter) {
    let mut last: Option<String> = None;
    let mut failures = 0u32;
    let mut retry = DEFAULT_RETRY;
    loop {
        match client.get_stream(last.as_deref()).await {
            Ok(None) => {
                tracing::debug!(target: "upstream", server = %client.server(), "the server has no GET stream");
                return;
            }
            Ok(Some(mut stream)) => {
                while let Ok(Some(incoming)) = stream.next().await {
                    failures = 0;
                    if !forward(to_session, incoming.line).await {
                        return;
                    }
                }
                last = stream.last_event_id().map(str::to_owned).or(last);
                retry = stream.retry().unwrap_or(retry);
            }
            Err(HttpClientError::SessionExpired { .. }) => return,
            Err(error) => {
                tracing::debug!(target: "upstream", %error, "the GET stream failed");
            }
        }
        failures = failures.saturating_add(1);
        if failures > MAX_RESUMES {
            tracing::warn!(target: "upstream", server = %client.server(), "gave up on the server's GET stream");
            return;
        }
        tokio::time::sleep(retry).await;
    }
}

/// Writes one server message to the session; `false` once the session is gone.
async fn forward(to_session: &StdinWriter, line: Line) -> bool {
    match line {
        Line::Complete(bytes) => to_session.write_line(&bytes).await.is_ok(),
        Line::TooLong { bytes_discarded } => {
            tracing::warn!(target: "upstream", bytes_discarded, "dropped an over-long message from an HTTP server");
            true
        }
    }
}

/// Answers request `id` on the server's behalf with an internal error (the server could not be
/// reached, or gave no answer); the session treats it as the server's error response.
async fn answer_error(to_session: &StdinWriter, id: &Id, message: &str) {
    let answer = error_response(Some(id), INTERNAL_ERROR, message, None);
    if let Ok(bytes) = serde_json::to_vec(&answer) {
        let _ = to_session.write_line(&bytes).await;
    }
}
