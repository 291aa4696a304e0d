//! The JSON-RPC 2.0 message model and the strict reading of one message.

mod id;

use serde_json::{Map, Value};

use crate::error::{FrameError, FrameErrorKind, describe, kind_of, shorten};
use crate::json::parse_json;
use crate::limits::Limits;
use crate::params::ParamsError;

pub use id::{Id, MAX_SAFE_INTEGER};

/// The members a JSON-RPC 2.0 message may have; any other top-level member is rejected.
const MEMBERS: [&str; 6] = ["jsonrpc", "id", "method", "params", "result", "error"];

/// One JSON-RPC 2.0 message, as read.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A call that expects a response.
    Request {
        /// The request id.
        id: Id,
        /// The method name.
        method: String,
        /// Named parameters; MCP never uses positional (array) params.
        params: Option<Map<String, Value>>,
    },
    /// A call without an id, which gets no response.
    Notification {
        /// The method name.
        method: String,
        /// Named parameters.
        params: Option<Map<String, Value>>,
    },
    /// A successful response.
    Response {
        /// The id of the request answered.
        id: Id,
        /// The result, any JSON value (MCP results are objects; the gateway checks per method).
        result: Value,
    },
    /// An error response.
    ErrorResponse {
        /// The id of the request answered; `None` (sent as `null`) only when the request's id
        /// could not be read.
        id: Option<Id>,
        /// The error.
        error: RpcError,
    },
}

impl Message {
    /// The method of a request or notification.
    #[must_use]
    pub fn method(&self) -> Option<&str> {
        match self {
            Self::Request { method, .. } | Self::Notification { method, .. } => Some(method),
            Self::Response { .. } | Self::ErrorResponse { .. } => None,
        }
    }

    /// The id of a request or response.
    #[must_use]
    pub fn id(&self) -> Option<&Id> {
        match self {
            Self::Request { id, .. } | Self::Response { id, .. } => Some(id),
            Self::ErrorResponse { id, .. } => id.as_ref(),
            Self::Notification { .. } => None,
        }
    }
}

/// The `error` member of an error response.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// The error code, an integer.
    pub code: i64,
    /// A short description.
    pub message: String,
    /// Optional details.
    pub data: Option<Value>,
}

/// A message that passed framing: the typed [`Message`] and the exact [`Value`] it was read from.
///
/// Forward [`Parsed::to_bytes`], the re-serialization of what was evaluated, never the input
/// bytes: that way the peer cannot read anything the gateway did not.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    message: Message,
    value: Value,
}

impl Parsed {
    /// The typed message.
    #[must_use]
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The parsed JSON value, key order and number text as received.
    #[must_use]
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// Both parts.
    #[must_use]
    pub fn into_parts(self) -> (Message, Value) {
        (self.message, self.value)
    }

    /// The compact serialization of [`Parsed::value`], the bytes to forward (without newline).
    ///
    /// # Errors
    ///
    /// Only if `serde_json` fails to serialize a `Value`, which it does not for parsed values.
    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(&self.value)
    }
}

/// Reads one JSON-RPC 2.0 message from `bytes` (one line of a stdio stream or one HTTP body).
///
/// # Errors
///
/// A [`FrameError`] with the code to answer with and, where it could be read, the message's id:
/// see [`FrameErrorKind`] for every reason.
pub fn parse_message(bytes: &[u8], limits: &Limits) -> Result<Parsed, FrameError> {
    let value = parse_json(bytes, limits).map_err(|err| FrameError::new(None, err.into()))?;
    let message = read_message(&value)?;
    Ok(Parsed { message, value })
}

fn read_message(value: &Value) -> Result<Message, FrameError> {
    let object = match value {
        Value::Object(object) => object,
        Value::Array(_) => return Err(FrameError::new(None, FrameErrorKind::Batch)),
        other => {
            let found = kind_of(other);
            return Err(FrameError::new(None, FrameErrorKind::NotAnObject { found }));
        }
    };
    let readable_id = object.get("id").and_then(|id| Id::from_value(id).ok());
    let fail = |kind| FrameError::new(readable_id.clone(), kind);

    if let Some(member) = object.keys().find(|key| !MEMBERS.contains(&key.as_str())) {
        let member = member.clone();
        return Err(fail(FrameErrorKind::UnknownMember { member }));
    }
    match object.get("jsonrpc") {
        None => return Err(fail(FrameErrorKind::MissingMember { member: "jsonrpc" })),
        Some(Value::String(version)) if version == "2.0" => {}
        Some(other) => {
            let found = describe(other);
            return Err(fail(FrameErrorKind::WrongVersion { found }));
        }
    }
    let id =
        |id: &Value| Id::from_value(id).map_err(|found| fail(FrameErrorKind::InvalidId { found }));

    if let Some(method) = object.get("method") {
        let Value::String(method) = method else {
            let found = kind_of(method);
            return Err(fail(FrameErrorKind::MethodNotString { found }));
        };
        let message = if object.contains_key("id") {
            "request"
        } else {
            "notification"
        };
        for member in ["result", "error"] {
            if object.contains_key(member) {
                return Err(fail(FrameErrorKind::MemberNotAllowed { member, message }));
            }
        }
        let params = match object.get("params") {
            None => None,
            Some(Value::Object(params)) => Some(params.clone()),
            Some(other) => {
                let found = kind_of(other);
                return Err(fail(ParamsError::NotAnObject { found }.into()));
            }
        };
        let method = method.clone();
        return Ok(match object.get("id") {
            Some(raw) => Message::Request {
                id: id(raw)?,
                method,
                params,
            },
            None => Message::Notification { method, params },
        });
    }

    if object.contains_key("params") {
        let member = "params";
        return Err(fail(FrameErrorKind::MemberNotAllowed {
            member,
            message: "response",
        }));
    }
    match (object.get("result"), object.get("error")) {
        (Some(_), Some(_)) => Err(fail(FrameErrorKind::ResultAndError)),
        (Some(result), None) => {
            let raw = object
                .get("id")
                .ok_or_else(|| fail(FrameErrorKind::MissingMember { member: "id" }))?;
            Ok(Message::Response {
                id: id(raw)?,
                result: result.clone(),
            })
        }
        (None, Some(error)) => {
            let id = match object.get("id") {
                None => return Err(fail(FrameErrorKind::MissingMember { member: "id" })),
                Some(Value::Null) => None,
                Some(raw) => Some(id(raw)?),
            };
            let error = read_error(error)
                .map_err(|reason| fail(FrameErrorKind::InvalidErrorObject { reason }))?;
            Ok(Message::ErrorResponse { id, error })
        }
        (None, None) => Err(fail(FrameErrorKind::NotAMessage)),
    }
}

/// Reads a JSON-RPC error object: exactly `code` (integer), `message` (string), optional `data`.
fn read_error(value: &Value) -> Result<RpcError, String> {
    let Value::Object(object) = value else {
        return Err(format!(
            "`error` must be an object, found {}",
            kind_of(value)
        ));
    };
    if let Some(member) = object
        .keys()
        .find(|key| !["code", "message", "data"].contains(&key.as_str()))
    {
        return Err(format!("unknown member `{}`", shorten(member)));
    }
    let code = match object.get("code") {
        None => return Err("missing member `code`".to_owned()),
        Some(Value::Number(number)) => match number.as_i64() {
            Some(code) if code.to_string() == number.to_string() => code,
            _ => return Err(format!("`code` must be an integer, found `{number}`")),
        },
        Some(other) => {
            return Err(format!(
                "`code` must be an integer, found {}",
                kind_of(other)
            ));
        }
    };
    let message = match object.get("message") {
        None => return Err("missing member `message`".to_owned()),
        Some(Value::String(message)) => message.clone(),
        Some(other) => {
            return Err(format!(
                "`message` must be a string, found {}",
                kind_of(other)
            ));
        }
    };
    Ok(RpcError {
        code,
        message,
        data: object.get("data").cloned(),
    })
}

#[cfg(test)]
mod tests;
