//! Classification of MCP methods (protocol revisions 2025-06-18 and 2025-11-25).
//!
//! The sets are closed: a method not named here is `Unknown` and denied, so a method added by a
//! later revision is refused until someone decides how the gateway should treat it.

/// What the gateway does with a client-to-server request, by method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientMethod {
    /// `initialize`: the lifecycle handshake, passed.
    Initialize,
    /// `ping`, passed.
    Ping,
    /// A list method, passed (and filtered by the gateway).
    List(ListMethod),
    /// `tools/call`, evaluated.
    ToolsCall,
    /// `resources/read`, evaluated.
    ResourcesRead,
    /// `prompts/get`, evaluated.
    PromptsGet,
    /// A method passed without evaluation: `completion/complete`, `logging/setLevel`,
    /// `resources/subscribe`, `resources/unsubscribe`.
    Passthrough,
    /// `server/discover` of the 2026 revision: answered with `-32601` so that dual-era clients
    /// fall back to `initialize`.
    ServerDiscover,
    /// Anything else, including `tasks/*` of 2025-11-25: denied with `-32601`.
    Unknown,
}

/// The list methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListMethod {
    /// `tools/list`.
    Tools,
    /// `resources/list`.
    Resources,
    /// `resources/templates/list`.
    ResourceTemplates,
    /// `prompts/list`.
    Prompts,
}

impl ClientMethod {
    /// Classifies the method of a client-to-server request. Matching is exact and
    /// case-sensitive, as in the spec.
    #[must_use]
    pub fn classify(method: &str) -> Self {
        match method {
            "initialize" => Self::Initialize,
            "ping" => Self::Ping,
            "tools/list" => Self::List(ListMethod::Tools),
            "resources/list" => Self::List(ListMethod::Resources),
            "resources/templates/list" => Self::List(ListMethod::ResourceTemplates),
            "prompts/list" => Self::List(ListMethod::Prompts),
            "tools/call" => Self::ToolsCall,
            "resources/read" => Self::ResourcesRead,
            "prompts/get" => Self::PromptsGet,
            "completion/complete"
            | "logging/setLevel"
            | "resources/subscribe"
            | "resources/unsubscribe" => Self::Passthrough,
            "server/discover" => Self::ServerDiscover,
            _ => Self::Unknown,
        }
    }

    /// Whether the policy evaluates requests of this method before they are forwarded.
    #[must_use]
    pub fn is_evaluated(self) -> bool {
        matches!(
            self,
            Self::ToolsCall | Self::ResourcesRead | Self::PromptsGet
        )
    }
}

/// A client-to-server notification, by method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientNotification {
    /// `notifications/initialized`.
    Initialized,
    /// `notifications/cancelled`.
    Cancelled,
    /// `notifications/progress`.
    Progress,
    /// `notifications/roots/list_changed`.
    RootsListChanged,
    /// Anything else (including `notifications/tasks/status`): the gateway drops and logs it.
    UnknownNotification,
}

impl ClientNotification {
    /// Classifies the method of a client-to-server notification.
    #[must_use]
    pub fn classify(method: &str) -> Self {
        match method {
            "notifications/initialized" => Self::Initialized,
            "notifications/cancelled" => Self::Cancelled,
            "notifications/progress" => Self::Progress,
            "notifications/roots/list_changed" => Self::RootsListChanged,
            _ => Self::UnknownNotification,
        }
    }
}

/// A server-to-client request, by method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerRequest {
    /// `ping`, passed.
    Ping,
    /// `roots/list`, passed.
    RootsList,
    /// `elicitation/create`, passed.
    ElicitationCreate,
    /// `sampling/createMessage`, denied unless the policy allows it.
    SamplingCreateMessage,
    /// Anything else: denied with `-32601`.
    Unknown,
}

impl ServerRequest {
    /// Classifies the method of a server-to-client request.
    #[must_use]
    pub fn classify(method: &str) -> Self {
        match method {
            "ping" => Self::Ping,
            "roots/list" => Self::RootsList,
            "elicitation/create" => Self::ElicitationCreate,
            "sampling/createMessage" => Self::SamplingCreateMessage,
            _ => Self::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_client_requests() {
        let cases = [
            ("initialize", ClientMethod::Initialize),
            ("ping", ClientMethod::Ping),
            ("tools/list", ClientMethod::List(ListMethod::Tools)),
            ("resources/list", ClientMethod::List(ListMethod::Resources)),
            (
                "resources/templates/list",
                ClientMethod::List(ListMethod::ResourceTemplates),
            ),
            ("prompts/list", ClientMethod::List(ListMethod::Prompts)),
            ("tools/call", ClientMethod::ToolsCall),
            ("resources/read", ClientMethod::ResourcesRead),
            ("prompts/get", ClientMethod::PromptsGet),
            ("completion/complete", ClientMethod::Passthrough),
            ("logging/setLevel", ClientMethod::Passthrough),
            ("resources/subscribe", ClientMethod::Passthrough),
            ("resources/unsubscribe", ClientMethod::Passthrough),
            ("server/discover", ClientMethod::ServerDiscover),
            ("tasks/get", ClientMethod::Unknown),
            ("Tools/Call", ClientMethod::Unknown),
            ("tools/call ", ClientMethod::Unknown),
            ("", ClientMethod::Unknown),
            ("sampling/createMessage", ClientMethod::Unknown),
        ];
        for (method, expected) in cases {
            assert_eq!(ClientMethod::classify(method), expected, "{method}");
        }
        assert!(ClientMethod::ToolsCall.is_evaluated());
        assert!(!ClientMethod::Passthrough.is_evaluated());
    }

    #[test]
    fn classifies_client_notifications() {
        let cases = [
            ("notifications/initialized", ClientNotification::Initialized),
            ("notifications/cancelled", ClientNotification::Cancelled),
            ("notifications/progress", ClientNotification::Progress),
            (
                "notifications/roots/list_changed",
                ClientNotification::RootsListChanged,
            ),
            (
                "notifications/tools/list_changed",
                ClientNotification::UnknownNotification,
            ),
            ("initialized", ClientNotification::UnknownNotification),
        ];
        for (method, expected) in cases {
            assert_eq!(ClientNotification::classify(method), expected, "{method}");
        }
    }

    #[test]
    fn classifies_server_requests() {
        let cases = [
            ("ping", ServerRequest::Ping),
            ("roots/list", ServerRequest::RootsList),
            ("elicitation/create", ServerRequest::ElicitationCreate),
            (
                "sampling/createMessage",
                ServerRequest::SamplingCreateMessage,
            ),
            ("tools/call", ServerRequest::Unknown),
        ];
        for (method, expected) in cases {
            assert_eq!(ServerRequest::classify(method), expected, "{method}");
        }
    }
}
