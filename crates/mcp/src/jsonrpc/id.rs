//! JSON-RPC request ids.

use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::error::describe;

/// The largest integer id accepted, 2^53−1: the largest integer an IEEE double (and so a
/// JavaScript peer) holds exactly. Beyond it, two ids can collide in one peer and not the other.
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// A JSON-RPC request id: a string or an integer within ±[`MAX_SAFE_INTEGER`]. Never null
/// (MCP forbids it), never fractional or in exponent form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Id {
    /// A string id.
    String(String),
    /// An integer id.
    Number(i64),
}

impl Id {
    /// Reads an id; on failure returns a description of what was found, for the error message.
    pub(crate) fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::String(id) => Ok(Self::String(id.clone())),
            // With `arbitrary_precision` the number keeps its text: `1.0`, `1e3` and `-0` fail
            // the round trip below and are rejected, so the id we answer with is spelled exactly
            // as the one we were sent.
            Value::Number(number) => match number.as_i64() {
                Some(id)
                    if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&id)
                        && id.to_string() == number.to_string() =>
                {
                    Ok(Self::Number(id))
                }
                _ => Err(describe(value)),
            },
            Value::Null | Value::Bool(_) | Value::Array(_) | Value::Object(_) => {
                Err(describe(value))
            }
        }
    }

    /// The id as a JSON value.
    #[must_use]
    pub fn to_value(&self) -> Value {
        match self {
            Self::String(id) => Value::String(id.clone()),
            Self::Number(id) => Value::from(*id),
        }
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::String(id) => serializer.serialize_str(id),
            Self::Number(id) => serializer.serialize_i64(*id),
        }
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::String(id) => write!(f, "{}", Value::String(id.clone())),
            Self::Number(id) => write!(f, "{id}"),
        }
    }
}
