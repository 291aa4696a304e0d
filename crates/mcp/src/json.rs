//! A strict JSON parser: one value, UTF-8, no duplicate keys, bounded size and depth.
//!
//! `serde_json` on its own keeps the last of duplicate keys, so a message like
//! `{"name":"read","name":"delete"}` would be evaluated as one tool and executed by a server that
//! keeps the first as another. This parser rejects every input that two conforming JSON parsers
//! could read differently, and keeps exactly what it read (key order and number text, through
//! `preserve_order` and `arbitrary_precision`) so the gateway can forward the re-serialization of
//! the value it evaluated.

mod pointer;
mod value;

use serde::de::DeserializeSeed;
use serde_json::Value;

use crate::error::shorten;
use crate::limits::Limits;

pub use pointer::Pointer;

/// Why a byte string is not one acceptable JSON value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// The input is longer than [`Limits::max_message_bytes`]; checked before parsing.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size of the input in bytes.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The input starts with a UTF-8 byte-order mark, which RFC 8259 forbids on the wire.
    #[error("message starts with a byte-order mark")]
    ByteOrderMark,
    /// The input is not valid UTF-8.
    #[error("message is not valid utf-8 at byte {offset}")]
    InvalidUtf8 {
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// Objects and arrays nest deeper than [`Limits::max_depth`].
    #[error("nesting exceeds the depth limit of {limit} at `{pointer}`")]
    TooDeep {
        /// The configured limit.
        limit: usize,
        /// JSON pointer of the first container beyond the limit.
        pointer: Pointer,
    },
    /// An object has the same key twice.
    #[error("duplicate key `{}` in the object at `{pointer}`", shorten(key))]
    DuplicateKey {
        /// The repeated key.
        key: String,
        /// JSON pointer of the object holding it (empty for the top level).
        pointer: Pointer,
    },
    /// An object uses the key `serde_json` reserves for arbitrary-precision numbers, which
    /// cannot be represented faithfully.
    #[error("reserved key `{}` in the object at `{pointer}`", shorten(key))]
    ReservedKey {
        /// The reserved key.
        key: String,
        /// JSON pointer of the object holding it.
        pointer: Pointer,
    },
    /// More than whitespace follows the value (two values on one line, for example).
    #[error("unexpected data after the value at line {line} column {column}")]
    TrailingData {
        /// 1-based line of the first unexpected character.
        line: usize,
        /// 1-based column of the first unexpected character.
        column: usize,
    },
    /// The input is not JSON: a syntax error, an unpaired surrogate escape, `NaN`, a comment,
    /// or empty input.
    #[error("invalid json: {message}")]
    Syntax {
        /// The parser's description, with line and column.
        message: String,
        /// 1-based line of the error (0 when unknown).
        line: usize,
        /// 1-based column of the error (0 when unknown).
        column: usize,
    },
}

/// Parses `bytes` as exactly one JSON value under `limits`.
///
/// Leading and trailing JSON whitespace (space, tab, CR, LF) is accepted: a line-framed
/// transport may leave a `\r` before the newline, and whitespace cannot change the meaning.
///
/// # Errors
///
/// Returns a [`JsonError`] for oversized input, a byte-order mark, invalid UTF-8, invalid JSON
/// (including lone surrogates, `NaN`, `Infinity` and comments), nesting beyond the limit,
/// duplicate keys anywhere, and anything but whitespace after the value.
pub fn parse_json(bytes: &[u8], limits: &Limits) -> Result<Value, JsonError> {
    if bytes.len() > limits.max_message_bytes {
        return Err(JsonError::TooLarge {
            size: bytes.len(),
            limit: limits.max_message_bytes,
        });
    }
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        return Err(JsonError::ByteOrderMark);
    }
    let text = std::str::from_utf8(bytes).map_err(|err| JsonError::InvalidUtf8 {
        offset: err.valid_up_to(),
    })?;

    let mut state = value::State::new(limits.max_depth);
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = state.seed().deserialize(&mut de);
    let value = match parsed {
        Ok(value) => value,
        // A failure our visitor recorded is more precise than the message serde_json wraps it in.
        Err(err) => return Err(state.into_failure().unwrap_or_else(|| syntax(&err))),
    };
    de.end().map_err(|err| JsonError::TrailingData {
        line: err.line(),
        column: err.column(),
    })?;
    Ok(value)
}

fn syntax(err: &serde_json::Error) -> JsonError {
    JsonError::Syntax {
        message: err.to_string(),
        line: err.line(),
        column: err.column(),
    }
}

#[cfg(test)]
mod tests;
