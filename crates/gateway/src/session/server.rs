//! Messages from the server: responses routed back by id, requests to the client vetted, and
//! `tools/list` filtered.

use portcullis_mcp::{
    INTERNAL_ERROR, INVALID_REQUEST, Id, METHOD_NOT_FOUND, Message, ServerRequest, error_response,
    parse_message,
};
use portcullis_transport::Line;
use portcullis_transport::LineSink;
use serde_json::Value;

use super::client::shorten;
use super::{Session, Stage, is_blank};

impl<W: LineSink> Session<W> {
    /// One line from the server; `head` is the start of the line when it was over-long.
    pub(super) async fn on_server_line(&mut self, line: Line, head: &[u8]) {
        if is_blank(&line) {
            return;
        }
        let bytes = match line {
            Line::Complete(bytes) => bytes,
            Line::TooLong { bytes_discarded } => {
                tracing::warn!(
                    bytes_discarded,
                    "dropped an over-long message from the server"
                );
                // When its id can be read from its first bytes and names a forwarded call, that
                // call gets an error rather than waiting for an answer that will never come.
                if let Some(id) = leading_id(head) {
                    self.fail_forwarded(
                        &id,
                        "the server's response is over the message size limit",
                        "oversized_response",
                    )
                    .await;
                }
                return;
            }
        };
        let parsed = match parse_message(&bytes, &self.limits) {
            Ok(parsed) => parsed,
            Err(error) => {
                tracing::warn!(code = error.code(), %error, "dropped a malformed message from the server");
                if let Some(id) = error.id().cloned() {
                    self.fail_forwarded(
                        &id,
                        "the server sent a malformed response",
                        "malformed_response",
                    )
                    .await;
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

    /// A malformed or over-long answer whose id names a forwarded call: that call gets an
    /// internal error, so the client is not left waiting for an answer that will never be valid.
    async fn fail_forwarded(&mut self, id: &Id, message: &str, outcome: &str) {
        let forwarded = matches!(self.pending.get(id), Some(entry) if matches!(entry.stage, Stage::Forwarded(_)));
        if !forwarded {
            return;
        }
        if let Some(entry) = self.pending.remove(id) {
            self.send_client(&error_response(Some(id), INTERNAL_ERROR, message, None))
                .await;
            if let (Some(call), Stage::Forwarded(start)) = (&entry.call, &entry.stage) {
                self.record_outcome(call, &entry.method, outcome, *start);
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

/// The top-level `id` of a JSON object from its first bytes, when they hold every member up to
/// and including the `id` whole (`{"jsonrpc":"2.0","id":7,"result":…` cut anywhere after `7,`).
/// `None` when the bytes end earlier or are not the start of an object.
fn leading_id(head: &[u8]) -> Option<Id> {
    let mut at = skip_space(head, 0);
    if head.get(at) != Some(&b'{') {
        return None;
    }
    at = at.saturating_add(1);
    loop {
        at = skip_space(head, at);
        let key_end = string_end(head, at)?;
        let key = head.get(at..key_end)?;
        at = skip_space(head, key_end);
        if head.get(at) != Some(&b':') {
            return None;
        }
        at = skip_space(head, at.saturating_add(1));
        let value_end = value_end(head, at)?;
        if key == b"\"id\"" {
            return match serde_json::from_slice(head.get(at..value_end)?).ok()? {
                Value::String(id) => Some(Id::String(id)),
                Value::Number(number) => number
                    .as_i64()
                    .filter(|id| id.to_string() == number.to_string())
                    .map(Id::Number),
                _ => None,
            };
        }
        at = skip_space(head, value_end);
        if head.get(at) != Some(&b',') {
            return None;
        }
        at = at.saturating_add(1);
    }
}

fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while matches!(bytes.get(at), Some(b' ' | b'\t' | b'\r' | b'\n')) {
        at = at.saturating_add(1);
    }
    at
}

/// The index just after the string starting at `at`.
fn string_end(bytes: &[u8], at: usize) -> Option<usize> {
    if bytes.get(at) != Some(&b'"') {
        return None;
    }
    let mut i = at.saturating_add(1);
    loop {
        match bytes.get(i)? {
            b'\\' => i = i.saturating_add(2),
            b'"' => return Some(i.saturating_add(1)),
            _ => i = i.saturating_add(1),
        }
    }
}

/// The index just after the value starting at `at`, if it ends within `bytes`.
fn value_end(bytes: &[u8], at: usize) -> Option<usize> {
    match bytes.get(at)? {
        b'"' => string_end(bytes, at),
        b'{' | b'[' => {
            let mut depth = 0_usize;
            let mut i = at;
            loop {
                match bytes.get(i)? {
                    b'"' => {
                        i = string_end(bytes, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth = depth.saturating_add(1),
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            return Some(i.saturating_add(1));
                        }
                    }
                    _ => {}
                }
                i = i.saturating_add(1);
            }
        }
        _ => {
            let mut i = at;
            // A scalar ends at a delimiter; one cut off by the end of the bytes is incomplete.
            while !matches!(
                bytes.get(i)?,
                b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n'
            ) {
                i = i.saturating_add(1);
            }
            Some(i)
        }
    }
}

#[cfg(test)]
mod leading_id_tests {
    use super::leading_id;
    use portcullis_mcp::Id;

    #[test]
    fn reads_an_id_before_the_cut() {
        let id = |s: &str| leading_id(s.as_bytes());
        assert_eq!(
            id(r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"te"#),
            Some(Id::Number(7))
        );
        assert_eq!(
            id(r#"{"id":"a\"b","result":"xxx"#),
            Some(Id::String("a\"b".to_owned()))
        );
        assert_eq!(
            id(r#" { "x" : {"id": 1, "y": [1, "]"]} , "id" : 3 , "r"#),
            Some(Id::Number(3))
        );
    }

    #[test]
    fn gives_up_when_the_id_is_cut_or_missing() {
        let id = |s: &str| leading_id(s.as_bytes());
        assert_eq!(id(r#"{"jsonrpc":"2.0","id":12"#), None);
        assert_eq!(id(r#"{"result":{"text":"xxxxxxxx"#), None);
        assert_eq!(id(r#"{"jsonrpc":"2.0","id":"abc"#), None);
        assert_eq!(id(r#"["id",1]"#), None);
        assert_eq!(id(""), None);
    }
}
