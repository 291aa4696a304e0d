//! Typed, strictly read params of the MCP methods the gateway evaluates or inspects.
//!
//! Each reader takes the request's `params` (already known to be an object or absent) and fails
//! with a [`ParamsError`], answered as `-32602`, on any member of the wrong type. Members the
//! reader does not know are kept in `extra` rather than rejected: MCP adds optional members over
//! time (`task` in 2025-11-25, for example), and the gateway, not the framing layer, decides
//! whether an unknown member is acceptable. The forwarded bytes always carry them unchanged.

mod initialize;

use serde_json::{Map, Value};

use crate::error::{FrameError, kind_of, shorten};
use crate::jsonrpc::Id;

pub use initialize::{ClientInfo, InitializeParams};

/// Why params were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// `params` is present but not an object (MCP uses named params only).
    #[error("`params` must be an object, found {found}")]
    NotAnObject {
        /// The kind of JSON value found.
        found: &'static str,
    },
    /// A required member is missing (or `params` is absent altogether).
    #[error("missing `{member}` in params")]
    Missing {
        /// Path of the member within params, such as `name` or `clientInfo.version`.
        member: String,
    },
    /// A member has the wrong type.
    #[error("`{}` must be {expected}, found {found}", shorten(member))]
    WrongType {
        /// Path of the member within params, such as `arguments` or `arguments.path`.
        member: String,
        /// What it must be.
        expected: &'static str,
        /// The kind of JSON value found.
        found: &'static str,
    },
    /// A string member that must not be empty is empty.
    #[error("`{member}` must not be empty")]
    Empty {
        /// Path of the member within params.
        member: String,
    },
}

/// Params of `tools/call`.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCallParams {
    /// The tool's name, non-empty.
    pub name: String,
    /// The tool's arguments; an object when present.
    pub arguments: Option<Map<String, Value>>,
    /// The request's `_meta`; an object when present.
    pub meta: Option<Map<String, Value>>,
    /// Any other members, kept for the gateway to judge (for example `task`).
    pub extra: Map<String, Value>,
}

impl ToolCallParams {
    /// Reads `tools/call` params for request `id`.
    ///
    /// # Errors
    ///
    /// A [`FrameError`] with code `-32602` when params are absent, `name` is missing, not a string
    /// or empty, or `arguments` or `_meta` is present but not an object (`null` included).
    pub fn parse(id: &Id, params: Option<&Map<String, Value>>) -> Result<Self, FrameError> {
        Self::read(params).map_err(|err| FrameError::invalid_params(id, err))
    }

    fn read(params: Option<&Map<String, Value>>) -> Result<Self, ParamsError> {
        let mut reader = Reader::new(params, "name")?;
        Ok(Self {
            name: reader.non_empty_string("name")?,
            arguments: reader.optional_object("arguments")?,
            meta: reader.optional_object("_meta")?,
            extra: reader.rest(),
        })
    }
}

/// Params of `resources/read`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceReadParams {
    /// The resource URI, non-empty (normalizing it is the policy engine's job).
    pub uri: String,
    /// The request's `_meta`; an object when present.
    pub meta: Option<Map<String, Value>>,
    /// Any other members.
    pub extra: Map<String, Value>,
}

impl ResourceReadParams {
    /// Reads `resources/read` params for request `id`.
    ///
    /// # Errors
    ///
    /// A [`FrameError`] with code `-32602` when `uri` is missing, not a string or empty, or
    /// `_meta` is not an object.
    pub fn parse(id: &Id, params: Option<&Map<String, Value>>) -> Result<Self, FrameError> {
        Self::read(params).map_err(|err| FrameError::invalid_params(id, err))
    }

    fn read(params: Option<&Map<String, Value>>) -> Result<Self, ParamsError> {
        let mut reader = Reader::new(params, "uri")?;
        Ok(Self {
            uri: reader.non_empty_string("uri")?,
            meta: reader.optional_object("_meta")?,
            extra: reader.rest(),
        })
    }
}

/// Params of `prompts/get`.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptGetParams {
    /// The prompt's name, non-empty.
    pub name: String,
    /// The prompt's arguments; every value is a string (the spec types them so).
    pub arguments: Option<Map<String, Value>>,
    /// The request's `_meta`; an object when present.
    pub meta: Option<Map<String, Value>>,
    /// Any other members.
    pub extra: Map<String, Value>,
}

impl PromptGetParams {
    /// Reads `prompts/get` params for request `id`.
    ///
    /// # Errors
    ///
    /// A [`FrameError`] with code `-32602` when `name` is missing, not a string or empty,
    /// `arguments` is not an object or holds a value that is not a string, or `_meta` is not an
    /// object.
    pub fn parse(id: &Id, params: Option<&Map<String, Value>>) -> Result<Self, FrameError> {
        Self::read(params).map_err(|err| FrameError::invalid_params(id, err))
    }

    fn read(params: Option<&Map<String, Value>>) -> Result<Self, ParamsError> {
        let mut reader = Reader::new(params, "name")?;
        let name = reader.non_empty_string("name")?;
        let arguments = reader.optional_object("arguments")?;
        if let Some((key, value)) = arguments
            .iter()
            .flatten()
            .find(|(_, value)| !value.is_string())
        {
            return Err(ParamsError::WrongType {
                member: format!("arguments.{key}"),
                expected: "a string",
                found: kind_of(value),
            });
        }
        Ok(Self {
            name,
            arguments,
            meta: reader.optional_object("_meta")?,
            extra: reader.rest(),
        })
    }
}

/// Takes members out of a copy of params one by one; what is left is `extra`.
struct Reader {
    members: Map<String, Value>,
}

impl Reader {
    /// Starts reading; absent params count as missing `required`.
    fn new(
        params: Option<&Map<String, Value>>,
        required: &'static str,
    ) -> Result<Self, ParamsError> {
        let members = params.cloned().ok_or_else(|| missing(required))?;
        Ok(Self { members })
    }

    fn string(&mut self, member: &'static str) -> Result<String, ParamsError> {
        match self.members.shift_remove(member) {
            None => Err(missing(member)),
            Some(Value::String(text)) => Ok(text),
            Some(other) => Err(wrong_type(member, "a string", &other)),
        }
    }

    fn non_empty_string(&mut self, member: &'static str) -> Result<String, ParamsError> {
        let text = self.string(member)?;
        if text.is_empty() {
            return Err(ParamsError::Empty {
                member: member.to_owned(),
            });
        }
        Ok(text)
    }

    fn object(&mut self, member: &'static str) -> Result<Map<String, Value>, ParamsError> {
        self.optional_object(member)?.ok_or_else(|| missing(member))
    }

    fn optional_object(
        &mut self,
        member: &'static str,
    ) -> Result<Option<Map<String, Value>>, ParamsError> {
        match self.members.shift_remove(member) {
            None => Ok(None),
            Some(Value::Object(object)) => Ok(Some(object)),
            Some(other) => Err(wrong_type(member, "an object", &other)),
        }
    }

    fn rest(self) -> Map<String, Value> {
        self.members
    }
}

fn missing(member: &str) -> ParamsError {
    ParamsError::Missing {
        member: member.to_owned(),
    }
}

fn wrong_type(member: &str, expected: &'static str, found: &Value) -> ParamsError {
    ParamsError::WrongType {
        member: member.to_owned(),
        expected,
        found: kind_of(found),
    }
}

#[cfg(test)]
mod tests;
