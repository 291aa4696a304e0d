//! Prometheus metrics of `portcullis serve` (`GET /metrics`, OpenMetrics text).
//!
//! Every label value comes from a bounded set the operator controls, so a client cannot grow the
//! series count or read anything back through it:
//!
//! - `server`: a server name from the policy (requests for other names never reach a session);
//! - `rule`: a rule id from the policy, or one of the gateway's own fixed ids (`default-deny`,
//!   `internal-error`, `unroutable-tool`, the vetting ids);
//! - `tool`: the tool's name only when the policy's `tools:` table has an entry for exactly
//!   `server.tool`, else `other`;
//! - `decision`: the closed set `allow`, `require_approval`, `deny`, `kill_session`;
//! - HTTP `route`, `method` and `status`: fixed names and the status codes the gateway sends.
//!
//! Other tool names, arguments, principals and session ids are never labels: they come from
//! clients (or from the servers being guarded) and are unbounded, and arguments may hold secrets.
//!
//! Recording never fails and never blocks a call: the registry is in memory, and a scrape that
//! cannot read the approvals store only leaves the pending-approvals gauge at its last value.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The `Content-Type` of the exposition (what `prometheus-client` writes).
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Bucket bounds (seconds) of the decision latency histogram: 50 µs to ~1.6 s. A decision is
/// policy evaluation plus limit reservation; the audit write is not part of it.
const DECISION_BUCKETS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_2, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0,
    1.5, 2.0,
];

/// Bucket bounds (seconds) of the upstream call histogram: 1 ms to the request timeout.
const CALL_BUCKETS: [f64; 14] = [
    0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    decision: String,
    rule: String,
    server: String,
    tool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabels {
    server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    server: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric the gateway keeps, and the registry that exposes them.
pub(crate) struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    decision_seconds: Histograms<ServerLabels>,
    upstream_calls: Histograms<OutcomeLabels>,
    pending_approvals: Gauge,
    upstream_up: Family<ServerLabels, Gauge>,
    upstream_running: Family<ServerLabels, Gauge>,
    upstream_starts: Family<ServerLabels, Counter>,
    upstream_start_failures: Family<ServerLabels, Counter>,
    upstream_exits: Family<OutcomeLabels, Counter>,
    http_requests: Family<HttpLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn decision_histogram() -> Histogram {
    Histogram::new(DECISION_BUCKETS)
}

fn call_histogram() -> Histogram {
    Histogram::new(CALL_BUCKETS)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered (counters at zero).
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("portcullis");
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "decisions",
            "Decisions on evaluated requests (tools/call, resources/read, prompts/get) by decision, rule, server and configured tool",
            decisions.clone(),
        );
        let decision_seconds: Histograms<ServerLabels> =
            Family::new_with_constructor(decision_histogram);
        registry.register(
            "decision_duration_seconds",
            "Time to decide an evaluated request (policy evaluation and limit reservation), by server",
            decision_seconds.clone(),
        );
        let upstream_calls: Histograms<OutcomeLabels> =
            Family::new_with_constructor(call_histogram);
        registry.register(
            "upstream_call_duration_seconds",
            "Time from forwarding an evaluated request to its answer, by server and outcome",
            upstream_calls.clone(),
        );
        let pending_approvals = Gauge::default();
        registry.register(
            "pending_approvals",
            "Approvals waiting for a human (read from the state directory at scrape time)",
            pending_approvals.clone(),
        );
        let upstream_up = Family::<ServerLabels, Gauge>::default();
        registry.register(
            "upstream_up",
            "1 when the last attempt to start a server worked and it has not crashed since, else 0",
            upstream_up.clone(),
        );
        let upstream_running = Family::<ServerLabels, Gauge>::default();
        registry.register(
            "upstream_sessions",
            "Server sessions running now (stdio processes or HTTP server sessions), by server",
            upstream_running.clone(),
        );
        let upstream_starts = Family::<ServerLabels, Counter>::default();
        registry.register(
            "upstream_starts",
            "Server sessions started, by server",
            upstream_starts.clone(),
        );
        let upstream_start_failures = Family::<ServerLabels, Counter>::default();
        registry.register(
            "upstream_start_failures",
            "Server sessions that could not be started, by server",
            upstream_start_failures.clone(),
        );
        let upstream_exits = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "upstream_exits",
            "Server sessions that ended, by server and why (client_gone, server_gone = the server exited or crashed, killed)",
            upstream_exits.clone(),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route, method and status",
            http_requests.clone(),
        );
        Self {
            registry,
            decisions,
            decision_seconds,
            upstream_calls,
            pending_approvals,
            upstream_up,
            upstream_running,
            upstream_starts,
            upstream_start_failures,
            upstream_exits,
            http_requests,
        }
    }

    /// One decision on an evaluated request, and how long it took (`None` for refusals made
    /// before any evaluation, which would only skew the histogram). `tool` must already be
    /// bounded: a configured tool's name or [`OTHER_TOOL`] (see [`tool_label`]).
    pub(crate) fn decision(
        &self,
        (server, tool): (&str, &str),
        decision: &str,
        rule: &str,
        took: Option<Duration>,
    ) {
        self.decisions
            .get_or_create(&DecisionLabels {
                decision: decision.to_owned(),
                rule: rule.to_owned(),
                server: server.to_owned(),
                tool: tool.to_owned(),
            })
            .inc();
        if let Some(took) = took {
            self.decision_seconds
                .get_or_create(&ServerLabels {
                    server: server.to_owned(),
                })
                .observe(took.as_secs_f64());
        }
    }

    /// A forwarded request got its answer (`outcome`: `ok`, `error`, `upstream_closed`, ...).
    pub(crate) fn upstream_call(&self, server: &str, outcome: &str, took: Duration) {
        self.upstream_calls
            .get_or_create(&OutcomeLabels {
                server: server.to_owned(),
                outcome: outcome.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// A server session started (`ok`) or could not be started.
    pub(crate) fn upstream_started(&self, server: &str, ok: bool) {
        let labels = ServerLabels {
            server: server.to_owned(),
        };
        if ok {
            self.upstream_starts.get_or_create(&labels).inc();
            self.upstream_running.get_or_create(&labels).inc();
            self.upstream_up.get_or_create(&labels).set(1);
        } else {
            self.upstream_start_failures.get_or_create(&labels).inc();
            self.upstream_up.get_or_create(&labels).set(0);
        }
    }

    /// A server session ended; `reason` is `client_gone`, `server_gone` or `killed`. A server
    /// that went away on its own marks the server down until a start works again.
    pub(crate) fn upstream_ended(&self, server: &str, reason: &str) {
        let labels = ServerLabels {
            server: server.to_owned(),
        };
        self.upstream_running.get_or_create(&labels).dec();
        if reason == "server_gone" {
            self.upstream_up.get_or_create(&labels).set(0);
        }
        self.upstream_exits
            .get_or_create(&OutcomeLabels {
                server: server.to_owned(),
                outcome: reason.to_owned(),
            })
            .inc();
    }

    /// Declares `server` so its series exist (at zero) before its first session.
    pub(crate) fn declare_server(&self, server: &str) {
        let labels = ServerLabels {
            server: server.to_owned(),
        };
        let _ = self.upstream_running.get_or_create(&labels);
        let _ = self.upstream_starts.get_or_create(&labels);
    }

    /// One HTTP request answered.
    pub(crate) fn http_request(&self, route: &'static str, method: &'static str, status: u16) {
        self.http_requests
            .get_or_create(&HttpLabels {
                route,
                method,
                status,
            })
            .inc();
    }

    /// Sets the pending-approvals gauge.
    pub(crate) fn set_pending_approvals(&self, count: usize) {
        self.pending_approvals
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// The OpenMetrics text exposition of every metric.
    pub(crate) fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(%error, "cannot encode the metrics; this is a bug, please report");
        }
        text
    }
}

/// The `tool` label of a tool that has no entry of its own in the policy's `tools:` table.
pub(crate) const OTHER_TOOL: &str = "other";

/// The `tool` label of `server.tool`: its name when the policy's `tools:` table has exactly
/// that key (so the label set is bounded by the policy), else [`OTHER_TOOL`].
pub(crate) fn tool_label<'a>(
    policy: &portcullis_policy::CompiledPolicy,
    server: &str,
    tool: &'a str,
) -> &'a str {
    if policy.raw().tools.contains_key(&format!("{server}.{tool}")) {
        tool
    } else {
        OTHER_TOOL
    }
}

/// The shared handle sessions record into.
pub(crate) type SharedMetrics = Arc<Metrics>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_decisions_by_decision_rule_server_and_tool() {
        let metrics = Metrics::new();
        for _ in 0..2 {
            metrics.decision(
                ("fs", "other"),
                "deny",
                "deny-secrets",
                Some(Duration::from_micros(70)),
            );
        }
        let text = metrics.encode();
        assert!(
            text.contains(
                "portcullis_decisions_total{decision=\"deny\",rule=\"deny-secrets\",server=\"fs\",tool=\"other\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("portcullis_decision_duration_seconds_count{server=\"fs\"} 2\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn a_crashed_server_is_down_until_it_starts_again() {
        let metrics = Metrics::new();
        metrics.upstream_started("fs", true);
        metrics.upstream_ended("fs", "server_gone");
        let text = metrics.encode();
        assert!(
            text.contains("portcullis_upstream_up{server=\"fs\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("portcullis_upstream_sessions{server=\"fs\"} 0\n"),
            "{text}"
        );
        metrics.upstream_started("fs", true);
        let text = metrics.encode();
        assert!(
            text.contains("portcullis_upstream_up{server=\"fs\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "portcullis_upstream_exits_total{server=\"fs\",outcome=\"server_gone\"} 1\n"
            ),
            "{text}"
        );
    }
}
