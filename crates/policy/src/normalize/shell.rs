//! POSIX shell word parsing for the `command` condition. CONTRACT STUB.

use super::Uncertain;

/// Split `raw` into the words of exactly one simple command, or say why it is more than that.
pub fn simple_command_words(raw: &str) -> Result<Vec<String>, Uncertain> {
    let _ = raw;
    Err(Uncertain::new("shell normalizer not implemented"))
}

/// A compiled `command` pattern such as `"git status"` or `"ls *"`.
#[derive(Clone, Debug)]
pub struct CommandPattern {
    source: String,
}

impl CommandPattern {
    /// Compile a pattern, or explain why it is not valid.
    pub fn new(pattern: &str) -> Result<Self, String> {
        Ok(CommandPattern { source: pattern.to_owned() })
    }

    /// The pattern as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the words of a simple command match this pattern.
    pub fn matches(&self, words: &[String]) -> bool {
        let _ = words;
        false
    }
}
