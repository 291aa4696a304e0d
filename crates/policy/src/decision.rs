//! The closed sets: decisions, effects, modes and reason classes (DESIGN §3.2, §3.5, §4).

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A verdict. Ordered from loosest to strictest so that `max` picks the strictest.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Forward the call.
    Allow,
    /// Hold or refuse the call until a human approves this exact call.
    RequireApproval,
    /// Refuse the call.
    Deny,
    /// Refuse this call and end the session.
    KillSession,
}

impl Decision {
    /// The strictest of two decisions.
    #[must_use]
    pub fn strictest(self, other: Decision) -> Decision {
        self.max(other)
    }

    /// The stable snake_case name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::RequireApproval => "require_approval",
            Decision::Deny => "deny",
            Decision::KillSession => "kill_session",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a call does to the world. `Unknown` is treated as a mutation.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Reads data, changes nothing.
    Read,
    /// Creates or modifies data.
    Write,
    /// Removes data.
    Delete,
    /// Runs code or commands.
    Exec,
    /// Talks to other hosts.
    Network,
    /// Sends a message to a person or channel.
    Message,
    /// Changes a deployed system.
    Deploy,
    /// Moves money.
    Payment,
    /// Signs something with a key.
    Sign,
    /// Changes identities, permissions or credentials.
    Identity,
    /// Not declared: treated as a mutation.
    Unknown,
}

impl Effect {
    /// Every effect, in declaration order.
    pub const ALL: [Effect; 11] = [
        Effect::Read,
        Effect::Write,
        Effect::Delete,
        Effect::Exec,
        Effect::Network,
        Effect::Message,
        Effect::Deploy,
        Effect::Payment,
        Effect::Sign,
        Effect::Identity,
        Effect::Unknown,
    ];

    /// The stable snake_case name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Effect::Read => "read",
            Effect::Write => "write",
            Effect::Delete => "delete",
            Effect::Exec => "exec",
            Effect::Network => "network",
            Effect::Message => "message",
            Effect::Deploy => "deploy",
            Effect::Payment => "payment",
            Effect::Sign => "sign",
            Effect::Identity => "identity",
            Effect::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether decisions are enforced or only recorded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Decisions are enforced (the default).
    #[default]
    Enforce,
    /// Everything is forwarded; what would have been decided is recorded. Never a default.
    Observe,
}

/// Why a call was not allowed, as a closed set the agent and dashboards can rely on (DESIGN §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ReasonClass {
    /// The server or tool is unknown, hidden or changed.
    ToolIdentity,
    /// An argument matched a rule or could not be normalized.
    Argument,
    /// The session carries a label that forbids the call.
    TaintedSession,
    /// A rate limit or budget is exhausted.
    RateLimit,
    /// A human must approve the call.
    Approval,
    /// The arguments do not fit the declared types.
    Schema,
    /// The request broke the protocol.
    Protocol,
    /// Portcullis itself failed; failing closed.
    Internal,
    /// No rule allowed the call.
    Default,
}

impl ReasonClass {
    /// The stable kebab-case name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ReasonClass::ToolIdentity => "tool-identity",
            ReasonClass::Argument => "argument",
            ReasonClass::TaintedSession => "tainted-session",
            ReasonClass::RateLimit => "rate-limit",
            ReasonClass::Approval => "approval",
            ReasonClass::Schema => "schema",
            ReasonClass::Protocol => "protocol",
            ReasonClass::Internal => "internal",
            ReasonClass::Default => "default",
        }
    }
}

impl fmt::Display for ReasonClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictest_order_is_kill_deny_approval_allow() {
        assert!(Decision::KillSession > Decision::Deny);
        assert!(Decision::Deny > Decision::RequireApproval);
        assert!(Decision::RequireApproval > Decision::Allow);
        assert_eq!(Decision::Allow.strictest(Decision::Deny), Decision::Deny);
    }
}
