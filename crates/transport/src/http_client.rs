//! The client side of the MCP Streamable HTTP transport (2025-11-25), for servers the gateway
//! reaches by URL.
//!
//! Like the stdio side this moves bytes and knows no message types: each message the gateway
//! forwards is POSTed as one JSON body, and what comes back (an `application/json` body, or the
//! `message` events of a `text/event-stream`) is handed over as [`Line`]s, each bounded in size.
//! [`one_line`] turns any raw line break into a space (JSON allows one only as whitespace between
//! tokens), so the session frames an HTTP server's messages exactly as a stdio server's lines. A
//! raw line break inside a JSON string, which makes the message invalid, becomes a control
//! character, so it stays invalid.
//!
//! The client keeps the server's `Mcp-Session-Id` and, once set, sends `MCP-Protocol-Version` on
//! every request. The policy's headers are the gateway's own credentials; nothing a client of the
//! gateway sent is ever added. Redirects are not followed (they would carry those credentials
//! elsewhere) and no proxy from the environment is used.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use crate::framing::Line;

/// The session header.
pub const SESSION_HEADER: &str = "mcp-session-id";
/// The protocol version header.
pub const PROTOCOL_VERSION_HEADER: &str = "mcp-protocol-version";
/// The SSE resumption header.
pub const LAST_EVENT_ID_HEADER: &str = "last-event-id";
/// How long connecting to a server may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest session id or event id accepted from a server.
pub const MAX_ID_BYTES: usize = 1024;

/// Headers the policy may not set for an HTTP server: the transport owns them.
const RESERVED_HEADERS: &[&str] = &[
    SESSION_HEADER,
    PROTOCOL_VERSION_HEADER,
    LAST_EVENT_ID_HEADER,
    "accept",
    "content-type",
    "content-length",
    "host",
    "connection",
    "transfer-encoding",
];

/// Why an HTTP server could not be reached or answered badly.
#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    /// The configured URL is not `http://` or `https://`.
    #[error("server `{server}`: `{url}` is not an http:// or https:// URL")]
    BadUrl {
        /// The configured server name.
        server: String,
        /// The URL as configured.
        url: String,
    },
    /// A configured header is not a valid HTTP header or is one the transport sets itself.
    #[error(
        "server `{server}`: header `{name}` cannot be sent (invalid, or set by the transport itself)"
    )]
    BadHeader {
        /// The configured server name.
        server: String,
        /// The header name.
        name: String,
    },
    /// The HTTP client could not be built (for example no TLS roots).
    #[error("server `{server}`: the HTTP client cannot be built: {source}")]
    Build {
        /// The configured server name.
        server: String,
        /// What failed.
        source: reqwest::Error,
    },
    /// The request failed on the network.
    #[error("server `{server}`: the request failed: {source}")]
    Request {
        /// The configured server name.
        server: String,
        /// What failed.
        source: reqwest::Error,
    },
    /// The server answered with an error status.
    #[error("server `{server}` answered HTTP {status}")]
    Status {
        /// The configured server name.
        server: String,
        /// The HTTP status.
        status: u16,
    },
    /// The server no longer knows the session (`404` to a request with `Mcp-Session-Id`).
    #[error("server `{server}` ended its session (HTTP 404)")]
    SessionExpired {
        /// The configured server name.
        server: String,
    },
    /// The server answered with something that is neither JSON nor an event stream.
    #[error("server `{server}` answered with content type `{content_type}`")]
    ContentType {
        /// The configured server name.
        server: String,
        /// The content type it sent.
        content_type: String,
    },
}

/// What reaches a server by URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpClientConfig {
    /// The configured server name, for messages.
    pub server: String,
    /// The server's endpoint.
    pub url: String,
    /// Headers sent on every request (the gateway's own credentials).
    pub headers: Vec<(String, String)>,
    /// The largest message accepted; larger ones are [`Line::TooLong`].
    pub max_message_bytes: usize,
}

/// A Streamable HTTP client for one server session. Clones share the session.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    server: String,
    url: reqwest::Url,
    client: reqwest::Client,
    headers: HeaderMap,
    session_id: Mutex<Option<HeaderValue>>,
    protocol_version: Mutex<Option<HeaderValue>>,
    max: usize,
}

/// The answer to a POST.
#[derive(Debug)]
pub enum PostReply {
    /// `202 Accepted`: nothing comes back (notifications and responses).
    Accepted,
    /// Messages: one JSON body, or an event stream.
    Messages(Box<MessageStream>),
}

/// One message from a server, with the SSE event id it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// The event id (SSE only), for resuming with `Last-Event-ID`.
    pub event_id: Option<String>,
    /// The message as one line (no raw line breaks), or how much was discarded.
    pub line: Line,
}

/// The messages of one HTTP response.
#[derive(Debug)]
pub struct MessageStream {
    server: String,
    response: Option<reqwest::Response>,
    sse: Option<SseParser>,
    max: usize,
    queued: VecDeque<Incoming>,
}

impl HttpClient {
    /// A client for `config`'s server. Nothing is sent yet.
    ///
    /// # Errors
    ///
    /// [`HttpClientError::BadUrl`], [`HttpClientError::BadHeader`] or
    /// [`HttpClientError::Build`].
    pub fn new(config: &HttpClientConfig) -> Result<Self, HttpClientError> {
        let server = config.server.clone();
        let url = reqwest::Url::parse(&config.url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| HttpClientError::BadUrl {
                server: server.clone(),
                url: config.url.clone(),
            })?;
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let bad = || HttpClientError::BadHeader {
                server: server.clone(),
                name: name.clone(),
            };
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
            if RESERVED_HEADERS.contains(&header.as_str()) {
                return Err(bad());
            }
            let mut value = HeaderValue::from_str(value).map_err(|_| bad())?;
            value.set_sensitive(true);
            headers.append(header, value);
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|source| HttpClientError::Build {
                server: server.clone(),
                source,
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                server,
                url,
                client,
                headers,
                session_id: Mutex::new(None),
                protocol_version: Mutex::new(None),
                max: config.max_message_bytes,
            }),
        })
    }

    /// The configured server name.
    pub fn server(&self) -> &str {
        &self.inner.server
    }

    /// Sends `MCP-Protocol-Version: version` from now on (after `initialize` negotiated it). A
    /// value that is not a valid header is ignored.
    pub fn set_protocol_version(&self, version: &str) {
        if let Ok(value) = HeaderValue::from_str(version) {
            *self
                .inner
                .protocol_version
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(value);
        }
    }

    /// Whether the server gave this client a session id.
    pub fn has_session(&self) -> bool {
        self.inner
            .session_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    fn request(&self, method: reqwest::Method, accept: &'static str) -> reqwest::RequestBuilder {
        let mut builder = self
            .inner
            .client
            .request(method, self.inner.url.clone())
            .headers(self.inner.headers.clone())
            .header(ACCEPT, accept);
        let session = self
            .inner
            .session_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(id) = session {
            builder = builder.header(SESSION_HEADER, id);
        }
        let version = self
            .inner
            .protocol_version
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(version) = version {
            builder = builder.header(PROTOCOL_VERSION_HEADER, version);
        }
        builder
    }

    /// POSTs one message (`body`, a JSON object).
    ///
    /// # Errors
    ///
    /// The request failed, the status is an error (`404` with a session:
    /// [`HttpClientError::SessionExpired`]), or the content type is neither JSON nor SSE.
    pub async fn post(&self, body: Vec<u8>) -> Result<PostReply, HttpClientError> {
        let response = self
            .request(reqwest::Method::POST, "application/json, text/event-stream")
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|source| self.request_error(source))?;
        let response = self.check_status(response)?;
        self.keep_session_id(&response);
        if response.status() == reqwest::StatusCode::ACCEPTED {
            return Ok(PostReply::Accepted);
        }
        match self.stream(response, true)? {
            Some(stream) => Ok(PostReply::Messages(Box::new(stream))),
            None => Ok(PostReply::Accepted),
        }
    }

    /// Opens the GET stream for server-initiated messages, resuming after `last_event_id` if
    /// given. `None` if the server offers no such stream (`405`).
    ///
    /// # Errors
    ///
    /// As [`post`](Self::post).
    pub async fn get_stream(
        &self,
        last_event_id: Option<&str>,
    ) -> Result<Option<MessageStream>, HttpClientError> {
        let mut builder = self.request(reqwest::Method::GET, "text/event-stream");
        if let Some(id) = last_event_id.and_then(|id| HeaderValue::from_str(id).ok()) {
            builder = builder.header(LAST_EVENT_ID_HEADER, id);
        }
        let response = builder
            .send()
            .await
            .map_err(|source| self.request_error(source))?;
        if response.status() == reqwest::StatusCode::METHOD_NOT_ALLOWED {
            return Ok(None);
        }
        let response = self.check_status(response)?;
        self.stream(response, false)
    }

    /// Ends the server's session (`DELETE`), if it gave one. Failures are only logged: the
    /// server may not allow clients to end sessions, and it will expire them.
    pub async fn delete_session(&self) {
        if !self.has_session() {
            return;
        }
        let sent = self
            .request(reqwest::Method::DELETE, "application/json")
            .timeout(CONNECT_TIMEOUT)
            .send()
            .await;
        match sent {
            Ok(response) => {
                tracing::debug!(target: "upstream", server = %self.inner.server, status = %response.status(), "ended the server's HTTP session")
            }
            Err(error) => {
                tracing::debug!(target: "upstream", server = %self.inner.server, %error, "could not end the server's HTTP session")
            }
        }
    }

    fn request_error(&self, source: reqwest::Error) -> HttpClientError {
        HttpClientError::Request {
            server: self.inner.server.clone(),
            source: source.without_url(),
        }
    }

    fn check_status(
        &self,
        response: reqwest::Response,
    ) -> Result<reqwest::Response, HttpClientError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status == reqwest::StatusCode::NOT_FOUND && self.has_session() {
            return Err(HttpClientError::SessionExpired {
                server: self.inner.server.clone(),
            });
        }
        Err(HttpClientError::Status {
            server: self.inner.server.clone(),
            status: status.as_u16(),
        })
    }

    /// Keeps the session id the server assigned (on its answer to `initialize`). A later,
    /// different id is ignored: a session does not change its id.
    fn keep_session_id(&self, response: &reqwest::Response) {
        let Some(value) = response.headers().get(SESSION_HEADER) else {
            return;
        };
        let valid = value.len() <= MAX_ID_BYTES
            && value.as_bytes().iter().all(|b| (0x21..=0x7e).contains(b));
        if !valid {
            tracing::warn!(target: "upstream", server = %self.inner.server, "ignored a malformed Mcp-Session-Id from the server");
            return;
        }
        let mut session = self
            .inner
            .session_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if session.is_none() {
            *session = Some(value.clone());
        }
    }

    fn stream(
        &self,
        response: reqwest::Response,
        json_allowed: bool,
    ) -> Result<Option<MessageStream>, HttpClientError> {
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let sse = if content_type.starts_with("text/event-stream") {
            true
        } else if json_allowed && content_type.starts_with("application/json") {
            false
        } else if content_type.is_empty() && response.content_length() == Some(0) {
            return Ok(None);
        } else {
            return Err(HttpClientError::ContentType {
                server: self.inner.server.clone(),
                content_type: content_type.chars().take(100).collect(),
            });
        };
        Ok(Some(MessageStream {
            server: self.inner.server.clone(),
            response: Some(response),
            sse: sse.then(|| SseParser::new(self.inner.max)),
            max: self.inner.max,
            queued: VecDeque::new(),
        }))
    }
}

impl MessageStream {
    /// The next message; `None` at the end of the response.
    ///
    /// # Errors
    ///
    /// [`HttpClientError::Request`] when the connection fails mid-response.
    pub async fn next(&mut self) -> Result<Option<Incoming>, HttpClientError> {
        loop {
            if let Some(incoming) = self.queued.pop_front() {
                return Ok(Some(incoming));
            }
            let Some(response) = self.response.as_mut() else {
                return Ok(None);
            };
            let chunk = match response.chunk().await {
                Ok(chunk) => chunk,
                Err(source) => {
                    self.response = None;
                    return Err(HttpClientError::Request {
                        server: self.server.clone(),
                        source: source.without_url(),
                    });
                }
            };
            match (&mut self.sse, chunk) {
                (Some(parser), Some(chunk)) => parser.feed(&chunk, &mut self.queued),
                (Some(_), None) => self.response = None,
                (None, first) => {
                    // One JSON body: read it whole, bounded.
                    let mut body = first.map(|c| c.to_vec()).unwrap_or_default();
                    let mut discarded = 0usize;
                    let mut too_long = body.len() > self.max;
                    while let Some(chunk) =
                        response
                            .chunk()
                            .await
                            .map_err(|source| HttpClientError::Request {
                                server: self.server.clone(),
                                source: source.without_url(),
                            })?
                    {
                        if too_long || body.len().saturating_add(chunk.len()) > self.max {
                            too_long = true;
                            discarded = discarded.saturating_add(chunk.len());
                        } else {
                            body.extend_from_slice(&chunk);
                        }
                    }
                    self.response = None;
                    let line = if too_long {
                        Line::TooLong {
                            bytes_discarded: discarded.saturating_add(body.len()),
                        }
                    } else if body.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    } else {
                        one_line(&mut body);
                        Line::Complete(body)
                    };
                    self.queued.push_back(Incoming {
                        event_id: None,
                        line,
                    });
                }
            }
        }
    }

    /// The id of the last event seen (SSE), for resuming with `Last-Event-ID`.
    pub fn last_event_id(&self) -> Option<&str> {
        self.sse.as_ref().and_then(|p| p.last_id.as_deref())
    }

    /// The reconnection delay the server asked for (`retry:`), if any.
    pub fn retry(&self) -> Option<Duration> {
        self.sse.as_ref().and_then(|p| p.retry)
    }
}

/// Makes a JSON text one line: raw CR and LF outside strings (whitespace) become spaces; inside
/// a string (where JSON forbids them) they become U+001F, which keeps the message invalid.
pub fn one_line(bytes: &mut [u8]) {
    let mut in_string = false;
    let mut escaped = false;
    for byte in bytes.iter_mut() {
        let line_break = *byte == b'\n' || *byte == b'\r';
        if in_string {
            if line_break {
                *byte = 0x1f;
                escaped = false;
            } else if escaped {
                escaped = false;
            } else if *byte == b'\\' {
                escaped = true;
            } else if *byte == b'"' {
                in_string = false;
            }
        } else if *byte == b'"' {
            in_string = true;
        } else if line_break {
            *byte = b' ';
        }
    }
}

/// An incremental, bounded `text/event-stream` parser (WHATWG HTML §9.2). Only `message` events
/// with data are yielded.
#[derive(Debug)]
struct SseParser {
    max: usize,
    /// The current, incomplete line.
    line: Vec<u8>,
    /// The line is over the limit and is being skipped to its end.
    skipping_line: bool,
    /// The last line ended with CR: a following LF belongs to it.
    after_cr: bool,
    data: Vec<u8>,
    has_data: bool,
    /// The event's data went over the limit.
    too_long: usize,
    event: Vec<u8>,
    last_id: Option<String>,
    retry: Option<Duration>,
}

impl SseParser {
    fn new(max: usize) -> Self {
        Self {
            max,
            line: Vec::new(),
            skipping_line: false,
            after_cr: false,
            data: Vec::new(),
            has_data: false,
            too_long: 0,
            event: Vec::new(),
            last_id: None,
            retry: None,
        }
    }

    fn feed(&mut self, chunk: &[u8], out: &mut VecDeque<Incoming>) {
        for &byte in chunk {
            if self.after_cr {
                self.after_cr = false;
                if byte == b'\n' {
                    continue;
                }
            }
            match byte {
                b'\r' | b'\n' => {
                    self.after_cr = byte == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if self.skipping_line {
                        // An over-long line can only be data: the event is reported too long.
                        self.skipping_line = false;
                        self.has_data = true;
                        self.too_long = self.too_long.saturating_add(line.len()).max(1);
                    } else {
                        self.on_line(&line, out);
                    }
                }
                _ if self.skipping_line => {
                    self.too_long = self.too_long.saturating_add(1);
                }
                _ => {
                    // A field line holds at most the event's data plus its field name.
                    if self.line.len() > self.max.saturating_add(16) {
                        self.skipping_line = true;
                        self.too_long = self.too_long.saturating_add(self.line.len());
                        self.line.clear();
                    } else {
                        self.line.push(byte);
                    }
                }
            }
        }
    }

    fn on_line(&mut self, line: &[u8], out: &mut VecDeque<Incoming>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line.first() == Some(&b':') {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(at) => {
                let (field, rest) = line.split_at(at);
                let value = rest.get(1..).unwrap_or_default();
                (field, value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match field {
            b"data" => {
                let needed = self
                    .data
                    .len()
                    .saturating_add(value.len())
                    .saturating_add(1);
                if self.too_long > 0 || needed > self.max {
                    self.too_long = self.too_long.saturating_add(value.len()).max(1);
                    self.data.clear();
                } else {
                    if self.has_data {
                        self.data.push(b'\n');
                    }
                    self.data.extend_from_slice(value);
                }
                self.has_data = true;
            }
            b"event" => {
                self.event.clear();
                self.event
                    .extend_from_slice(value.get(..64).unwrap_or(value));
            }
            b"id" => {
                if !value.contains(&0)
                    && value.len() <= MAX_ID_BYTES
                    && let Ok(id) = std::str::from_utf8(value)
                {
                    self.last_id = Some(id.to_owned());
                }
            }
            b"retry" => {
                if let Some(ms) = std::str::from_utf8(value)
                    .ok()
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse::<u64>().ok())
                {
                    self.retry = Some(Duration::from_millis(ms.min(60_000)));
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut VecDeque<Incoming>) {
        let is_message = self.event.is_empty() || self.event == b"message";
        let data = std::mem::take(&mut self.data);
        let has_data = std::mem::replace(&mut self.has_data, false);
        let too_long = std::mem::replace(&mut self.too_long, 0);
        self.event.clear();
        if !is_message || !has_data {
            return;
        }
        let line = if too_long > 0 {
            Line::TooLong {
                bytes_discarded: too_long,
            }
        } else {
            let mut data = data;
            if data.iter().all(u8::is_ascii_whitespace) {
                return;
            }
            one_line(&mut data);
            Line::Complete(data)
        };
        out.push_back(Incoming {
            event_id: self.last_id.clone(),
            line,
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]

    use super::*;

    fn parse(chunks: &[&[u8]], max: usize) -> Vec<Incoming> {
        let mut parser = SseParser::new(max);
        let mut out = VecDeque::new();
        for chunk in chunks {
            parser.feed(chunk, &mut out);
        }
        out.into_iter().collect()
    }

    fn complete(id: Option<&str>, data: &str) -> Incoming {
        Incoming {
            event_id: id.map(str::to_owned),
            line: Line::Complete(data.as_bytes().to_vec()),
        }
    }

    #[test]
    fn events_split_across_chunks_and_line_endings() {
        let events = parse(
            &[
                b"id: 1\r\nevent: message\r\ndata: {\"a\":\r",
                b"\ndata: 1}\r\n\r\n: comment\n\nid: 2\ndata: {}\n",
                b"\n",
            ],
            1000,
        );
        assert_eq!(
            events,
            vec![complete(Some("1"), "{\"a\": 1}"), complete(Some("2"), "{}")]
        );
    }

    #[test]
    fn priming_events_and_other_types_yield_nothing_but_keep_the_id() {
        let mut parser = SseParser::new(1000);
        let mut out = VecDeque::new();
        parser.feed(b"id: p0\ndata:\n\nevent: ping\ndata: x\n\n", &mut out);
        assert!(out.is_empty());
        assert_eq!(parser.last_id.as_deref(), Some("p0"));
        parser.feed(b"retry: 250\n\n", &mut out);
        assert_eq!(parser.retry, Some(Duration::from_millis(250)));
    }

    #[test]
    fn over_long_events_are_reported_not_buffered() {
        let big = format!("data: {}\n\n", "x".repeat(100));
        let events = parse(&[big.as_bytes(), b"data: {}\n\n"], 20);
        assert!(matches!(events[0].line, Line::TooLong { .. }));
        assert_eq!(events[1], complete(None, "{}"));
        let split = parse(&[b"data: {\"a\":1}\ndata: ", &[b'y'; 30], b"\n\n"], 20);
        assert!(matches!(split[0].line, Line::TooLong { .. }));
    }

    #[test]
    fn line_breaks_become_spaces_outside_strings_only() {
        let mut text = b"{\n\"a\":\r\n\"x\\\"\ny\"}".to_vec();
        one_line(&mut text);
        assert_eq!(text, b"{ \"a\":  \"x\\\"\x1fy\"}".to_vec());
    }

    #[test]
    fn configuration_is_checked() {
        let config = |url: &str, headers: Vec<(String, String)>| HttpClientConfig {
            server: "s".into(),
            url: url.into(),
            headers,
            max_message_bytes: 1000,
        };
        assert!(matches!(
            HttpClient::new(&config("file:///etc/passwd", vec![])),
            Err(HttpClientError::BadUrl { .. })
        ));
        assert!(matches!(
            HttpClient::new(&config(
                "http://127.0.0.1:1/mcp",
                vec![("Mcp-Session-Id".into(), "x".into())]
            )),
            Err(HttpClientError::BadHeader { .. })
        ));
        assert!(matches!(
            HttpClient::new(&config(
                "http://127.0.0.1:1/mcp",
                vec![("X-Key".into(), "a\nb".into())]
            )),
            Err(HttpClientError::BadHeader { .. })
        ));
        assert!(
            HttpClient::new(&config(
                "https://example.invalid/mcp",
                vec![("Authorization".into(), "Bearer k".into())]
            ))
            .is_ok()
        );
    }
}
