//! Normalizers: turn an argument string into every plausible reading a server might act on.
//!
//! A server does not act on the JSON string it receives but on what it makes of it: a path after
//! `..` is resolved and `%2e` decoded, a host after `127.1` is expanded, a command after the shell
//! splits it into words. Each normalizer here yields all the readings a real server might use, or
//! says the value is *uncertain* when it cannot know (DESIGN §3.4). Conditions are then evaluated
//! on every reading: true only when true for all.

pub mod ip;
pub mod path;
pub mod secret;
pub mod shell;
pub mod url;

use std::fmt;

/// Why a value could not be normalized with certainty. Carried into the decision trace so a
/// human can see which reading made a condition unknown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uncertain {
    /// What made the value uncertain, in words a human can act on.
    pub why: String,
}

impl Uncertain {
    /// An uncertainty with the given explanation.
    pub fn new(why: impl Into<String>) -> Self {
        Uncertain { why: why.into() }
    }
}

impl fmt::Display for Uncertain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.why)
    }
}
