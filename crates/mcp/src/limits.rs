//! Size and nesting limits applied to every message before and while it is parsed.

/// Default largest message accepted, in bytes: 4 MiB.
///
/// Tool results with embedded images or file contents reach a few hundred KiB; 4 MiB leaves room
/// for those while bounding the memory one hostile line can make the gateway allocate (the parsed
/// `Value` and its copy in the typed message are several times the input size).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Default deepest nesting of objects and arrays accepted; the envelope object counts as 1.
///
/// Real MCP messages nest fewer than 20 levels. 64 stays well below `serde_json`'s own recursion
/// limit of 128, so this check always fires first and the parser never recurses deep enough to
/// threaten the stack.
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// Limits applied by [`parse_json`](crate::parse_json) and [`parse_message`](crate::parse_message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted input in bytes, checked before parsing starts.
    pub max_message_bytes: usize,
    /// Deepest accepted nesting of objects and arrays (a bare scalar is depth 0, `[]` depth 1).
    ///
    /// `serde_json` refuses nesting beyond 128 on its own, so values above 127 behave as 127.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }
}
