//! Messages from the server: responses routed back by id, requests to the client vetted, and
//! `tools/list` filtered.

use portcullis_mcp::{
    INTERNAL_ERROR, INVALID_REQUEST, Id, METHOD_NOT_FOUND, Message, ServerRequest, error_response,
    parse_message,
};
use portcullis_transport::Line;
use serde_json::Value;
use tokio::io::AsyncWrite;

use super::client::shorten;
use super::{Session, Stage, is_blank};

impl<W: AsyncWrite + Unpin> Session<W> {
    pub(super) async fn on_server_line(&mut self, line: Line) {
        if is_blank(&line) {
            return;
        }
        let bytes = match line {
            Line::Complete(bytes) => bytes,
            Line::TooLong { bytes_discarded } => {
                // Its id is unreadable, so no pending call can be told; the call waits for a
                // well-formed answer or for the server to exit.
                tracing::warn!(
                    bytes_discarded,
                    "dropped an over-long message from the server"
                );
                return;
            }
        };
        let parsed = match parse_message(&bytes, &self.limits) {
            Ok(parsed) => parsed,
            Err(error) => {
                tracing::warn!(code = error.code(), %error, "dropped a malformed message from the server");
                if let Some(id) = error.id().cloned() {
                    self.answer_malformed(&id).await;
                }
                return;
            }
        };
        let (message, value) = parsed.into_parts();
        match message {
            Message::Response { id, .. } => self.on_server_response(&id, value, true).await,
            Message::ErrorResponse { id: Some(id), .. } => {
                self.on_server_response(&id, value, false).await;
            }
            Message::ErrorResponse { id: None, error } => {
                tracing::warn!(code = error.code, message = %shorten(&error.message), "dropped an error response with a null id from the server");
            }
            Message::Request { id, method, .. } => {
                self.on_server_request(id, &method, &value).await
            }
            Message::Notification { method, .. } => {
                self.send_client(&value).await;
                if method == "notifications/tools/list_changed" {
                    tracing::info!("the server's tools changed; vetting them again");
                    self.start_vetting().await;
                }
            }
        }
    }

    /// A malformed answer whose id names a forwarded call: that call gets an internal error, so
    /// the client is not left waiting for an answer that will never be valid.
    async fn answer_malformed(&mut self, id: &Id) {
        let forwarded = matches!(self.pending.get(id), Some(entry) if matches!(entry.stage, Stage::Forwarded(_)));
        if !forwarded {
            return;
        }
        if let Some(entry) = self.pending.remove(id) {
            let message = "the server sent a malformed response";
            self.send_client(&error_response(Some(id), INTERNAL_ERROR, message, None))
                .await;
            if let (Some(call), Stage::Forwarded(start)) = (&entry.call, &entry.stage) {
                self.record_outcome(call, &entry.method, "malformed_response", *start);
            }
        }
    }

    async fn on_server_response(&mut self, id: &Id, mut value: Value, success: bool) {
        if self.is_vet_response(id) {
            self.on_vet_response(value, success).await;
            return;
        }
        let forwarded = matches!(self.pending.get(id), Some(entry) if matches!(entry.stage, Stage::Forwarded(_)));
        if !forwarded {
            // Ids the gateway did not forward are never answered on the server's behalf.
            tracing::warn!(%id, "dropped a response from the server to a request that is not pending");
            return;
        }
        let Some(entry) = self.pending.remove(id) else {
            return;
        };
        if entry.method == "initialize" {
            self.initializing = false;
            self.initialized = success;
        }
        if entry.method == "tools/list" && success {
            self.filter_listed(&mut value);
        }
        let is_error = !success
            || value
                .get("result")
                .and_then(|result| result.get("isError"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
        self.send_client(&value).await;
        if let (Some(call), Stage::Forwarded(start)) = (&entry.call, &entry.stage) {
            let outcome = match (success, is_error) {
                (false, _) => "rpc_error",
                (true, true) => "tool_error",
                (true, false) => "ok",
            };
            self.record_outcome(call, &entry.method, outcome, *start);
            if outcome == "rpc_error" {
                crate::limits::release(&self.store, call.grants.clone());
            }
            // Response taint: a result that carries a credential labels the session, so a
            // policy can deny what could carry it out (the lethal trifecta).
            if success
                && !self.labels.contains(crate::vetting::SECRET_LABEL)
                && value
                    .get("result")
                    .is_some_and(crate::vetting::response_carries_secret)
            {
                tracing::info!(
                    "a response carried a credential; the session is now labelled `secret`"
                );
                self.labels.insert(crate::vetting::SECRET_LABEL.to_owned());
            }
            if outcome == "ok" && !call.taint.is_empty() {
                tracing::info!(labels = ?call.taint, "the session is now tainted");
                self.labels.extend(call.taint.iter().cloned());
            }
        }
    }

    async fn on_server_request(&mut self, id: Id, method: &str, value: &Value) {
        let refuse = |code, message: &str| error_response(Some(&id), code, message, None);
        let answer = match ServerRequest::classify(method) {
            ServerRequest::Ping | ServerRequest::RootsList | ServerRequest::ElicitationCreate => {
                if self.server_requests.insert(id.clone()) {
                    self.send_client(value).await;
                    return;
                }
                refuse(
                    INVALID_REQUEST,
                    "a request with this id is already in flight",
                )
            }
            ServerRequest::SamplingCreateMessage => {
                tracing::warn!(%id, "refused a sampling request from the server");
                refuse(
                    METHOD_NOT_FOUND,
                    "sampling/createMessage is denied by policy: portcullis does not pass sampling requests to the client",
                )
            }
            ServerRequest::Unknown => {
                tracing::warn!(%id, method = %shorten(method), "refused an unknown request from the server");
                refuse(METHOD_NOT_FOUND, "method not available through portcullis")
            }
        };
        match serde_json::to_vec(&answer) {
            Ok(bytes) => {
                if let Err(error) = self.upstream.write_line(&bytes).await {
                    tracing::warn!(%error, "cannot answer the server");
                }
            }
            Err(error) => {
                tracing::error!(%error, "cannot serialize an answer; this is a bug, please report")
            }
        }
    }
}
