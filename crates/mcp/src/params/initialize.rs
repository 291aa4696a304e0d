//! The minimal view of `initialize` params the gateway needs.

use serde_json::{Map, Value};

use super::{ParamsError, Reader};
use crate::error::FrameError;
use crate::jsonrpc::Id;

/// Params of `initialize`: the protocol version, capabilities and identity the client declares.
#[derive(Debug, Clone, PartialEq)]
pub struct InitializeParams {
    /// The protocol version the client asks for, such as `2025-06-18`.
    pub protocol_version: String,
    /// The client's capabilities object.
    pub capabilities: Map<String, Value>,
    /// The client's self-description.
    pub client_info: ClientInfo,
    /// Any other members.
    pub extra: Map<String, Value>,
}

/// The `clientInfo` member of `initialize` params (an MCP `Implementation`).
#[derive(Debug, Clone, PartialEq)]
pub struct ClientInfo {
    /// The client's name.
    pub name: String,
    /// The client's version.
    pub version: String,
    /// Any other members (`title`, `icons`, `websiteUrl`, ...).
    pub extra: Map<String, Value>,
}

impl InitializeParams {
    /// Reads `initialize` params for request `id`.
    ///
    /// # Errors
    ///
    /// A [`FrameError`] with code `-32602` when `protocolVersion`, `capabilities` or `clientInfo`
    /// (with its `name` and `version`) is missing or of the wrong type.
    pub fn parse(id: &Id, params: Option<&Map<String, Value>>) -> Result<Self, FrameError> {
        Self::read(params).map_err(|err| FrameError::invalid_params(id, err))
    }

    fn read(params: Option<&Map<String, Value>>) -> Result<Self, ParamsError> {
        let mut reader = Reader::new(params, "protocolVersion")?;
        let protocol_version = reader.string("protocolVersion")?;
        let capabilities = reader.object("capabilities")?;
        let client_info = reader.object("clientInfo")?;
        let mut info = Reader {
            members: client_info,
        };
        let name = info.string("name").map_err(|err| nest(err, "clientInfo"))?;
        let version = info
            .string("version")
            .map_err(|err| nest(err, "clientInfo"))?;
        Ok(Self {
            protocol_version,
            capabilities,
            client_info: ClientInfo {
                name,
                version,
                extra: info.rest(),
            },
            extra: reader.rest(),
        })
    }

    /// Whether the client declared `elicitation` (so the gateway may ask the human through it).
    #[must_use]
    pub fn has_elicitation(&self) -> bool {
        self.has_capability("elicitation")
    }

    /// Whether the client declared `sampling`.
    #[must_use]
    pub fn has_sampling(&self) -> bool {
        self.has_capability("sampling")
    }

    /// Whether the client declared `roots`.
    #[must_use]
    pub fn has_roots(&self) -> bool {
        self.has_capability("roots")
    }

    /// A capability counts only when declared as an object, as the schema types it.
    fn has_capability(&self, name: &str) -> bool {
        self.capabilities.get(name).is_some_and(Value::is_object)
    }
}

/// Prefixes the member path of an error found inside `parent`.
fn nest(err: ParamsError, parent: &str) -> ParamsError {
    match err {
        ParamsError::Missing { member } => ParamsError::Missing {
            member: format!("{parent}.{member}"),
        },
        ParamsError::Empty { member } => ParamsError::Empty {
            member: format!("{parent}.{member}"),
        },
        ParamsError::WrongType {
            member,
            expected,
            found,
        } => ParamsError::WrongType {
            member: format!("{parent}.{member}"),
            expected,
            found,
        },
        other @ ParamsError::NotAnObject { .. } => other,
    }
}
