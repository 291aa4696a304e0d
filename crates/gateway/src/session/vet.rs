//! Tool vetting in the session: the gateway's own `tools/list`, the pinning decision for every
//! listed tool, `tools/list` filtering, and the check of each `tools/call` against the result.
//!
//! Under `pin:` the gateway lists the server's tools itself as soon as the client has sent
//! `notifications/initialized`, and again whenever the server sends
//! `notifications/tools/list_changed`. A `tools/call` that arrives while such a listing is under
//! way waits for it; a call to a tool the last listing did not approve is denied
//! (`tool-identity`), and a call to an approved tool is checked against its pinned input schema
//! (`schema`). A `tools/list` the client asks for is vetted the same way and filtered.

use std::collections::HashMap;
use std::sync::Arc;

use portcullis_mcp::Id;
use portcullis_policy::model::PinMode;
use portcullis_policy::{ReasonClass, ToolHints};
use portcullis_store::{PinRecord, PinStatus};
use portcullis_transport::LineSink;
use serde_json::{Map, Value, json};

use super::Session;
use crate::vetting::pins::{LockFile, Observed, decide, fingerprint};
use crate::vetting::poison;
use crate::vetting::schema::InputSchema;

/// The most pages of the gateway's own `tools/list` it follows.
const MAX_LIST_PAGES: usize = 64;

/// Where one tool stands after vetting.
#[derive(Debug, Clone)]
pub(crate) enum Vetted {
    /// Approved; calls are checked against this schema.
    Usable(Arc<InputSchema>),
    /// Approved by a human, but its schema cannot be used to check calls.
    Unvalidatable(String),
    /// Pending or quarantined.
    Held(String),
}

/// The vetting state of a session.
#[derive(Debug, Default)]
pub(crate) struct VetState {
    /// The tools of the last listing, by name.
    pub(crate) tools: HashMap<String, Vetted>,
    /// The id of the gateway's own `tools/list` under way, with the tools of earlier pages.
    pub(crate) listing: Option<(Id, Vec<Value>, usize)>,
    /// Client lines that wait for the listing.
    pub(crate) parked: Vec<Vec<u8>>,
    /// The annotations of the tools last listed (by the gateway under `pin:`, or relayed to the
    /// client), marked vetted when their definition is approved by pinning. Evaluation lets them
    /// tighten a tool's effect, and loosen it only when vetted and trusted
    /// (`portcullis_policy::ToolHints`).
    pub(crate) hints: HashMap<String, ToolHints>,
    counter: u64,
}

/// Why a call is refused by vetting.
pub(crate) struct VetDenial {
    pub(crate) class: ReasonClass,
    pub(crate) rule: &'static str,
    pub(crate) public: &'static str,
    pub(crate) reason: String,
}

impl<W: LineSink> Session<W> {
    fn pin_mode(&self) -> Option<PinMode> {
        self.policy.pin_mode(&self.server)
    }

    /// Starts the gateway's own `tools/list` (under `pin:` only).
    pub(super) async fn start_vetting(&mut self) {
        if self.pin_mode().is_none() {
            return;
        }
        self.request_tools_page(Vec::new(), 0, None).await;
    }

    async fn request_tools_page(&mut self, seen: Vec<Value>, pages: usize, cursor: Option<&str>) {
        self.vet.counter = self.vet.counter.saturating_add(1);
        let id = Id::String(format!("portcullis-vet-{}", self.vet.counter));
        let request = match cursor {
            Some(cursor) => {
                json!({"jsonrpc": "2.0", "id": id, "method": "tools/list", "params": {"cursor": cursor}})
            }
            None => json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"}),
        };
        self.vet.listing = Some((id, seen, pages));
        let bytes = request.to_string().into_bytes();
        if let Err(error) = self.upstream.write_line(&bytes).await {
            tracing::error!(%error, "cannot ask the server for its tools; every tool stays unvetted");
            self.vet.listing = None;
            self.vet.tools.clear();
            self.vet.hints.clear();
            self.replay_parked().await;
        }
    }

    /// Whether `id` is the gateway's own listing.
    pub(super) fn is_vet_response(&self, id: &Id) -> bool {
        self.vet
            .listing
            .as_ref()
            .is_some_and(|(own, _, _)| own == id)
    }

    /// The answer to the gateway's own `tools/list`.
    pub(super) async fn on_vet_response(&mut self, value: Value, success: bool) {
        let Some((_, mut seen, pages)) = self.vet.listing.take() else {
            return;
        };
        let result = value.get("result");
        let page = result
            .and_then(|r| r.get("tools"))
            .and_then(Value::as_array);
        match (success, page) {
            (true, Some(tools)) => {
                seen.extend(tools.iter().cloned());
                let next = result
                    .and_then(|r| r.get("nextCursor"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                if let Some(cursor) = next
                    && pages + 1 < MAX_LIST_PAGES
                {
                    self.request_tools_page(seen, pages + 1, Some(&cursor))
                        .await;
                    return;
                }
                self.vet.tools = self.vet_tools(&seen);
                self.vet.hints.clear();
                self.record_hints(&seen);
                tracing::info!(
                    tools = seen.len(),
                    usable = self
                        .vet
                        .tools
                        .values()
                        .filter(|v| matches!(v, Vetted::Usable(_)))
                        .count(),
                    "vetted the server's tools"
                );
            }
            _ => {
                tracing::error!(
                    "the server did not answer the gateway's tools/list; every tool stays unvetted"
                );
                self.vet.tools.clear();
                self.vet.hints.clear();
            }
        }
        self.replay_parked().await;
    }

    async fn replay_parked(&mut self) {
        for line in std::mem::take(&mut self.vet.parked) {
            Box::pin(self.on_client_line(portcullis_transport::Line::Complete(line))).await;
        }
    }

    /// Decides a tool's pin and records it. A tool without a pin is recorded only if no other
    /// gateway (sharing the store) recorded it meanwhile; if one did, the decision is made again
    /// on that pin, so every instance agrees on the first definition seen.
    fn record_pin(
        &self,
        mode: PinMode,
        lock: Option<&LockFile>,
        stored: Option<PinRecord>,
        first_contact: bool,
        seen: &Observed,
    ) -> Result<PinRecord, portcullis_store::StoreError> {
        let record = decide(mode, lock, stored.as_ref(), first_contact, seen);
        if stored.is_some() {
            self.store.put_pin(&record)?;
            return Ok(record);
        }
        let agreed = self.store.first_pin(&record)?;
        if agreed.seen_sha == record.seen_sha && agreed.approved_sha == record.approved_sha {
            return Ok(agreed);
        }
        let record = decide(mode, lock, Some(&agreed), false, seen);
        self.store.put_pin(&record)?;
        Ok(record)
    }

    /// Runs the pinning decision for every tool of a listing and records it in the store.
    fn vet_tools(&self, tools: &[Value]) -> HashMap<String, Vetted> {
        let Some(mode) = self.pin_mode() else {
            return HashMap::new();
        };
        let lock = match mode {
            PinMode::Lock => match LockFile::read(&self.lock_path) {
                Ok(lock) => Some(lock),
                Err(error) => {
                    tracing::error!(%error, "cannot read the lock file; no tool is approved");
                    None
                }
            },
            PinMode::Tofu => None,
        };
        let first_contact = match self.store.pins(Some(&self.server)) {
            Ok(pins) => pins.is_empty(),
            Err(error) => {
                tracing::error!(%error, "cannot read tool pins; no tool is approved");
                return HashMap::new();
            }
        };
        let others = poison::other_servers(&self.server, self.policy.servers().keys());
        let mut names: HashMap<&str, usize> = HashMap::new();
        for tool in tools {
            if let Some(name) = tool.get("name").and_then(Value::as_str) {
                *names.entry(name).or_default() += 1;
            }
        }
        let mut out = HashMap::new();
        for tool in tools {
            let Some(name) = tool.get("name").and_then(Value::as_str) else {
                continue;
            };
            if names.get(name).copied().unwrap_or(0) > 1 {
                out.insert(
                    name.to_owned(),
                    Vetted::Held("the server lists this name more than once".to_owned()),
                );
                continue;
            }
            let (canonical, sha) = fingerprint(tool);
            let schema = InputSchema::compile(tool.get("inputSchema"));
            let mut findings = poison::scan(tool, &others);
            if let Err(problem) = &schema {
                findings.push(format!("inputSchema: {problem}"));
            }
            let seen = Observed {
                server: self.server.clone(),
                tool: name.to_owned(),
                sha,
                canonical,
                findings,
            };
            let stored = match self.store.pin(&self.server, name) {
                Ok(stored) => stored,
                Err(error) => {
                    tracing::error!(%error, "cannot read a tool pin; the tool is held back");
                    out.insert(name.to_owned(), Vetted::Held(error.to_string()));
                    continue;
                }
            };
            let record = self.record_pin(mode, lock.as_ref(), stored, first_contact, &seen);
            let record = match record {
                Ok(record) => record,
                Err(error) => {
                    tracing::error!(%error, "cannot record a tool pin; the tool is held back");
                    out.insert(name.to_owned(), Vetted::Held(error.to_string()));
                    continue;
                }
            };
            let vetted = match (record.status, schema) {
                (PinStatus::Approved, Ok(schema)) => Vetted::Usable(Arc::new(schema)),
                (PinStatus::Approved, Err(problem)) => Vetted::Unvalidatable(problem),
                (PinStatus::Pending | PinStatus::Quarantined, _) => {
                    let finding = record.finding.unwrap_or_default();
                    tracing::warn!(
                        tool = %super::client::shorten(name),
                        status = record.status.as_str(),
                        finding = %finding,
                        "a tool is held back until `portcullis pin approve`"
                    );
                    Vetted::Held(finding)
                }
            };
            out.insert(name.to_owned(), vetted);
        }
        out
    }

    /// Records the annotations of listed tools; vetted only for tools pinning approved.
    fn record_hints(&mut self, tools: &[Value]) {
        for tool in tools {
            let Some(name) = tool.get("name").and_then(Value::as_str) else {
                continue;
            };
            let vetted = matches!(
                self.vet.tools.get(name),
                Some(Vetted::Usable(_) | Vetted::Unvalidatable(_))
            );
            match ToolHints::from_tool(tool, vetted) {
                Some(hints) => self.vet.hints.insert(name.to_owned(), hints),
                None => self.vet.hints.remove(name),
            };
        }
    }

    /// Filters a `tools/list` result the client asked for: hidden tools, tools the policy can
    /// never allow and (under `pin:`) tools that are not approved are left out.
    pub(super) fn filter_listed(&mut self, value: &mut Value) {
        let pinned = self.pin_mode().is_some();
        if let Some(tools) = value
            .get("result")
            .and_then(|r| r.get("tools"))
            .and_then(Value::as_array)
        {
            if pinned {
                let page = self.vet_tools(tools);
                self.vet.tools.extend(page);
            }
            self.record_hints(tools);
        }
        let Some(tools) = value
            .get_mut("result")
            .and_then(|result| result.get_mut("tools"))
            .and_then(Value::as_array_mut)
        else {
            return;
        };
        let before = tools.len();
        tools.retain(|tool| match tool.get("name").and_then(Value::as_str) {
            Some(name) => {
                self.policy
                    .can_ever_allow(&self.server, name, self.vet.hints.get(name))
                    && (!pinned || matches!(self.vet.tools.get(name), Some(Vetted::Usable(_))))
            }
            None => false,
        });
        if tools.len() != before {
            tracing::info!(
                left_out = before - tools.len(),
                "left tools out of tools/list (hidden, never allowed, or not approved)"
            );
        }
    }

    /// Under `pin:`, parks a call while a listing is under way, so it is decided on the fresh
    /// listing. True when the line was parked.
    pub(super) fn park_if_listing(&mut self, tool: &str, line: &[u8]) -> bool {
        if self.pin_mode().is_some()
            && self.vet.listing.is_some()
            && !self.vet.tools.contains_key(tool)
        {
            self.vet.parked.push(line.to_vec());
            return true;
        }
        false
    }

    /// The vetting verdict on a `tools/call` of `tool` with `arguments`.
    pub(super) fn vet_call(&self, tool: &str, arguments: &Map<String, Value>) -> Option<VetDenial> {
        self.pin_mode()?;
        let held = |reason: String| VetDenial {
            class: ReasonClass::ToolIdentity,
            rule: "tool-identity",
            public: "this tool's definition has not been approved; a human must review it first",
            reason,
        };
        match self.vet.tools.get(tool) {
            None => Some(held(format!(
                "tool `{}` was not in the server's last vetted tools/list",
                super::client::shorten(tool)
            ))),
            Some(Vetted::Held(finding)) => Some(held(format!(
                "tool `{}` is held back: {finding}",
                super::client::shorten(tool)
            ))),
            Some(Vetted::Unvalidatable(problem)) => Some(VetDenial {
                class: ReasonClass::Schema,
                rule: "input-schema",
                public: "the gateway cannot check this tool's arguments",
                reason: problem.clone(),
            }),
            Some(Vetted::Usable(schema)) => {
                schema.check(arguments).err().map(|problem| VetDenial {
                    class: ReasonClass::Schema,
                    rule: "input-schema",
                    public: "the arguments do not fit the tool's input schema",
                    reason: problem,
                })
            }
        }
    }
}
