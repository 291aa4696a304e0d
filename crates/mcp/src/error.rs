//! Framing errors and the JSON-RPC error codes they are answered with.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::json::JsonError;
use crate::jsonrpc::Id;
use crate::params::ParamsError;

/// JSON-RPC 2.0: invalid JSON was received.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC 2.0: the JSON sent is not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC 2.0: the method does not exist or is not available.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC 2.0: invalid method parameters.
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC 2.0: internal error.
pub const INTERNAL_ERROR: i64 = -32603;

/// A message that cannot be accepted, with the JSON-RPC error to answer it with.
///
/// The code follows from the kind: everything that stops the bytes from being one trustworthy
/// JSON value (syntax, encoding, byte-order mark, duplicate keys, depth, size, trailing data) is
/// [`PARSE_ERROR`], because no part of such a message may be relied on, not even its id; a JSON
/// value of the wrong shape is [`INVALID_REQUEST`]; `params` of the wrong type is
/// [`INVALID_PARAMS`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{kind}")]
pub struct FrameError {
    id: Option<Id>,
    kind: FrameErrorKind,
}

impl FrameError {
    pub(crate) fn new(id: Option<Id>, kind: FrameErrorKind) -> Self {
        Self { id, kind }
    }

    /// Builds the error for params that did not parse, answering request `id`.
    #[must_use]
    pub fn invalid_params(id: &Id, error: ParamsError) -> Self {
        Self::new(Some(id.clone()), FrameErrorKind::InvalidParams(error))
    }

    /// The JSON-RPC error code to answer with.
    #[must_use]
    pub fn code(&self) -> i64 {
        self.kind.code()
    }

    /// The id of the offending message when it could be read; `None` means answer with `null`.
    #[must_use]
    pub fn id(&self) -> Option<&Id> {
        self.id.as_ref()
    }

    /// What was wrong.
    #[must_use]
    pub fn kind(&self) -> &FrameErrorKind {
        &self.kind
    }

    /// The JSON-RPC error response for this error.
    #[must_use]
    pub fn to_response(&self) -> Value {
        error_response(self.id(), self.code(), &self.to_string(), None)
    }
}

/// What was wrong with a message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameErrorKind {
    /// The bytes are not one acceptable JSON value.
    #[error(transparent)]
    Json(#[from] JsonError),
    /// The message is an array; batching was removed from MCP in 2025-06-18.
    #[error("batch arrays are not supported")]
    Batch,
    /// The message is a JSON scalar, not an object.
    #[error("message must be an object, found {found}")]
    NotAnObject {
        /// The kind of JSON value found.
        found: &'static str,
    },
    /// A member required here is missing.
    #[error("missing member `{member}`")]
    MissingMember {
        /// The member's name.
        member: &'static str,
    },
    /// `jsonrpc` is not exactly the string `"2.0"`.
    #[error("`jsonrpc` must be \"2.0\", found {found}")]
    WrongVersion {
        /// The value found, as JSON.
        found: String,
    },
    /// A top-level member JSON-RPC does not define.
    #[error("unknown member `{}`", shorten(member))]
    UnknownMember {
        /// The member's name.
        member: String,
    },
    /// A member JSON-RPC defines, in a message that must not have it.
    #[error("member `{member}` is not allowed in a {message}")]
    MemberNotAllowed {
        /// The member's name.
        member: &'static str,
        /// The kind of message (`request`, `notification`, `response`).
        message: &'static str,
    },
    /// The id is not a string or an integer within ±(2^53−1).
    #[error("`id` must be a string or an integer within ±(2^53-1), found {found}")]
    InvalidId {
        /// The value found, as JSON.
        found: String,
    },
    /// `method` is not a string.
    #[error("`method` must be a string, found {found}")]
    MethodNotString {
        /// The kind of JSON value found.
        found: &'static str,
    },
    /// A message with `id` but neither `method`, `result` nor `error`.
    #[error("message is neither a request, a notification nor a response")]
    NotAMessage,
    /// A response carries both `result` and `error`.
    #[error("response has both `result` and `error`")]
    ResultAndError,
    /// The `error` member of an error response is malformed.
    #[error("invalid error object: {reason}")]
    InvalidErrorObject {
        /// What is wrong with it.
        reason: String,
    },
    /// `params` or a member of it has the wrong type.
    #[error(transparent)]
    InvalidParams(#[from] ParamsError),
}

impl FrameErrorKind {
    /// The JSON-RPC error code for this kind.
    #[must_use]
    pub fn code(&self) -> i64 {
        match self {
            Self::Json(_) => PARSE_ERROR,
            Self::InvalidParams(_) => INVALID_PARAMS,
            Self::Batch
            | Self::NotAnObject { .. }
            | Self::MissingMember { .. }
            | Self::WrongVersion { .. }
            | Self::UnknownMember { .. }
            | Self::MemberNotAllowed { .. }
            | Self::InvalidId { .. }
            | Self::MethodNotString { .. }
            | Self::NotAMessage
            | Self::ResultAndError
            | Self::InvalidErrorObject { .. } => INVALID_REQUEST,
        }
    }
}

/// Builds a JSON-RPC error response: `{"jsonrpc":"2.0","id":…,"error":{"code":…,"message":…}}`,
/// with `"data"` when given and `"id": null` when `id` is `None` (the request id was unreadable).
#[must_use]
pub fn error_response(id: Option<&Id>, code: i64, message: &str, data: Option<Value>) -> Value {
    let mut error = Map::new();
    error.insert("code".into(), Value::from(code));
    error.insert("message".into(), Value::from(message));
    if let Some(data) = data {
        error.insert("data".into(), data);
    }
    let mut response = Map::new();
    response.insert("jsonrpc".into(), Value::from("2.0"));
    response.insert("id".into(), id.map_or(Value::Null, Id::to_value));
    response.insert("error".into(), Value::Object(error));
    Value::Object(response)
}

/// Names the kind of a JSON value for messages (`a string`, `an array`, ...).
pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Longest piece of peer-controlled text (a key, a member name, a value) quoted in a message.
const MAX_QUOTED_CHARS: usize = 64;

/// Cuts peer-controlled text quoted in an error message to [`MAX_QUOTED_CHARS`] characters, so a
/// hostile message cannot make the error (echoed to the peer and logged) as large as itself.
pub(crate) fn shorten(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => Cow::Owned(format!("{}…", text.get(..cut).unwrap_or_default())),
        None => Cow::Borrowed(text),
    }
}

/// Describes a value for an error message: scalars as JSON text in backticks (cut to 64
/// characters), containers by their kind, so a hostile message cannot make errors huge.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Array(_) | Value::Object(_) => kind_of(value).to_owned(),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {
            format!("`{}`", shorten(&value.to_string()))
        }
    }
}
