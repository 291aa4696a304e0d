//! Messages from the client: framing, the lifecycle gate, and routing by method.

use portcullis_mcp::{
    ClientMethod, ClientNotification, INVALID_REQUEST, Id, InitializeParams, METHOD_NOT_FOUND,
    Message, PARSE_ERROR, Parsed, error_response, parse_message,
};
use portcullis_transport::Line;
use portcullis_transport::LineSink;

use super::{Pending, Session, Stage, is_blank};

impl<W: LineSink> Session<W> {
    pub(super) async fn on_client_line(&mut self, line: Line) {
        if is_blank(&line) {
            return;
        }
        let bytes = match line {
            Line::Complete(bytes) => bytes,
            Line::TooLong { bytes_discarded } => {
                tracing::warn!(
                    bytes_discarded,
                    "refused an over-long message from the client"
                );
                let message = format!(
                    "message of {bytes_discarded} bytes exceeds the limit of {} bytes",
                    self.limits.max_message_bytes
                );
                self.send_client(&error_response(None, PARSE_ERROR, &message, None))
                    .await;
                return;
            }
        };
        let parsed = match parse_message(&bytes, &self.limits) {
            Ok(parsed) => parsed,
            Err(error) => {
                tracing::warn!(code = error.code(), %error, "refused a malformed message from the client");
                self.send_client(&error.to_response()).await;
                return;
            }
        };
        match parsed.message().clone() {
            Message::Request { id, method, params } => {
                self.on_client_request(id, &method, params.as_ref(), &parsed)
                    .await;
            }
            Message::Notification { method, .. } => {
                self.on_client_notification(&method, &parsed).await
            }
            Message::Response { id, .. } => self.on_client_response(Some(id), &parsed).await,
            Message::ErrorResponse { id, .. } => self.on_client_response(id, &parsed).await,
        }
    }

    async fn on_client_request(
        &mut self,
        id: Id,
        method: &str,
        params: Option<&serde_json::Map<String, serde_json::Value>>,
        parsed: &Parsed,
    ) {
        if self.pending.contains_key(&id) {
            tracing::warn!(%id, method, "refused a request whose id is already in flight");
            let message = format!("a request with id {id} is already in flight; use a new id");
            self.send_client(&error_response(Some(&id), INVALID_REQUEST, &message, None))
                .await;
            return;
        }
        let class = ClientMethod::classify(method);
        match class {
            ClientMethod::ServerDiscover | ClientMethod::Unknown => {
                tracing::info!(%id, method, "refused an unsupported method");
                let message = format!(
                    "method `{}` is not available through portcullis",
                    shorten(method)
                );
                self.send_client(&error_response(Some(&id), METHOD_NOT_FOUND, &message, None))
                    .await;
                return;
            }
            ClientMethod::Initialize => {
                if self.initialized || self.initializing {
                    let message = "the session is already initialized";
                    self.send_client(&error_response(Some(&id), INVALID_REQUEST, message, None))
                        .await;
                    return;
                }
                match InitializeParams::parse(&id, params) {
                    Err(error) => {
                        self.send_client(&error.to_response()).await;
                        return;
                    }
                    // approvals: elicitation needs the client's capabilities
                    Ok(init) => {
                        self.note_client_capabilities(&init.capabilities, &init.client_info.name)
                    }
                }
                self.initializing = true;
            }
            ClientMethod::Ping => {}
            ClientMethod::List(_)
            | ClientMethod::Passthrough
            | ClientMethod::ToolsCall
            | ClientMethod::ResourcesRead
            | ClientMethod::PromptsGet => {
                if !self.initialized {
                    tracing::info!(%id, method, "refused a request before initialize");
                    let message = "send initialize first: the session is not initialized";
                    self.send_client(&error_response(Some(&id), INVALID_REQUEST, message, None))
                        .await;
                    return;
                }
            }
        }
        if class.is_evaluated() {
            self.on_evaluated(id, class, method, params, parsed).await;
            return;
        }
        self.forward_request(id, method, parsed, None).await;
    }

    /// Sends a request the gateway does not evaluate, tracking it so the answer is routed back.
    pub(super) async fn forward_request(
        &mut self,
        id: Id,
        method: &str,
        parsed: &Parsed,
        call: Option<super::CallInfo>,
    ) {
        let bytes = match parsed.to_bytes() {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::error!(%error, "cannot serialize a parsed message; this is a bug, please report");
                return;
            }
        };
        self.pending.insert(
            id.clone(),
            Pending {
                method: method.to_owned(),
                stage: Stage::Forwarded(tokio::time::Instant::now()),
                call,
            },
        );
        self.send_upstream(&id, &bytes).await;
    }

    /// Writes `bytes` for request `id` to the server; on failure the request is answered with an
    /// internal error.
    pub(super) async fn send_upstream(&mut self, id: &Id, bytes: &[u8]) {
        if let Err(error) = self.upstream.write_line(bytes).await {
            tracing::error!(%error, %id, "cannot write to the server");
            if let Some(entry) = self.pending.remove(id) {
                let message = "the server is not accepting input";
                let response =
                    error_response(Some(id), portcullis_mcp::INTERNAL_ERROR, message, None);
                self.send_client(&response).await;
                if let (Some(call), Stage::Forwarded(start)) = (&entry.call, &entry.stage) {
                    self.record_outcome(call, &entry.method, "upstream_closed", *start);
                }
            }
        }
    }

    async fn on_client_notification(&mut self, method: &str, parsed: &Parsed) {
        if ClientNotification::classify(method) == ClientNotification::UnknownNotification {
            tracing::info!(method = %shorten(method), "dropped an unknown notification from the client");
            return;
        }
        match parsed.to_bytes() {
            Ok(bytes) => {
                if let Err(error) = self.upstream.write_line(&bytes).await {
                    tracing::warn!(%error, "cannot pass a notification to the server");
                }
            }
            Err(error) => {
                tracing::error!(%error, "cannot serialize a parsed message; this is a bug, please report")
            }
        }
        if method == "notifications/initialized" {
            self.start_vetting().await;
        }
    }

    /// A client's answer to a server-to-client request: passed only for ids the server sent.
    async fn on_client_response(&mut self, id: Option<Id>, parsed: &Parsed) {
        // approvals: answers to the gateway's own elicitation requests
        if self
            .on_elicitation_response(id.as_ref(), parsed.value())
            .await
        {
            return;
        }
        let Some(id) = id.filter(|id| self.server_requests.remove(id)) else {
            tracing::warn!(
                "dropped a response from the client to a request the server did not send"
            );
            return;
        };
        match parsed.to_bytes() {
            Ok(bytes) => {
                if let Err(error) = self.upstream.write_line(&bytes).await {
                    tracing::warn!(%error, %id, "cannot pass the client's response to the server");
                }
            }
            Err(error) => {
                tracing::error!(%error, "cannot serialize a parsed message; this is a bug, please report")
            }
        }
    }
}

/// Peer-controlled text in logs and messages is cut short.
pub(crate) fn shorten(text: &str) -> String {
    const MAX: usize = 64;
    if text.chars().count() > MAX {
        let cut: String = text.chars().take(MAX).collect();
        format!("{}…", cut.escape_debug())
    } else {
        text.escape_debug().to_string()
    }
}
