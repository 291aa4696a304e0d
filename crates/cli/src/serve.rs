//! `portcullis serve`: the Streamable HTTP gateway for every server in the policy.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use clap::builder::TypedValueParser as _;
use portcullis_gateway::{DEFAULT_LISTEN, HostGuard, ServeOptions};

use crate::policy_file::DEFAULT_POLICY;

/// How long the runtime may take to stop after the gateway drained.
const RUNTIME_SHUTDOWN: Duration = Duration::from_millis(500);

/// Serve every server in the policy over MCP Streamable HTTP, with principals.
///
/// POST /mcp/NAME reaches server NAME with its own tool names; POST /mcp reaches all of them
/// with tools and prompts namespaced NAME__tool. Each client session gets its own server
/// processes, started from the policy (never from anything a client sends). Every message is
/// framed strictly, evaluated, and its decision made durable in the audit log before it is
/// forwarded, exactly as with `portcullis run`.
///
/// Clients authenticate with `Authorization: Bearer KEY` against the policy's
/// `auth: { api_keys: [{ principal, sha256 }] }`; without `auth`, serve only listens on a
/// loopback address and every request is principal `anonymous`. Host and Origin headers must
/// name loopback unless --allow-host / --allow-origin say otherwise (DNS rebinding protection).
/// Also: GET /healthz, GET /readyz, GET /.well-known/oauth-protected-resource.
///
/// Held calls (require_approval) are approved with `portcullis approvals` on the same state
/// directory, or on the approvals page and admin API that --admin serves on a separate,
/// loopback-only listener (token in the state directory's admin.token; docs/approvals.md).
///
/// GET /metrics is the Prometheus exposition, behind the Host check and the bearer token in
/// STATE_DIR/metrics.token. OpenTelemetry traces are exported over OTLP http/protobuf when
/// OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set.
///
/// SIGINT or SIGTERM stops accepting requests, drains the ones in flight and stops every server.
/// Logs go to standard error; set PORTCULLIS_LOG to change the level, --log-format json for
/// one JSON object per line.
///
/// Examples:
///   portcullis serve --policy portcullis.yaml
///   portcullis serve --policy portcullis.yaml --admin 127.0.0.1:8751
///   portcullis serve --policy team.yaml --listen 0.0.0.0:8750 --allow-host mcp.example.com \
///       --public-url https://mcp.example.com
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct ServeArgs {
    /// The policy file.
    #[arg(long, default_value = DEFAULT_POLICY, value_name = "FILE")]
    policy: PathBuf,
    /// The address to listen on.
    #[arg(long, default_value = DEFAULT_LISTEN, value_name = "ADDR")]
    listen: SocketAddr,
    /// Where the audit log and signing key live (default: the policy's `state_dir`, else
    /// `.portcullis/` beside the policy file).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Shared state on PostgreSQL, a `postgres://` URL (default: the policy's `store`, else
    /// SQLite in the state directory, which keeps the signing key either way). From
    /// $PORTCULLIS_STORE, so a password need not be on the command line.
    #[arg(
        long,
        value_name = "URL",
        env = "PORTCULLIS_STORE",
        hide_env_values = true
    )]
    store: Option<String>,
    /// Accept this Host name besides loopback (repeatable), e.g. the name behind a load balancer.
    #[arg(long = "allow-host", value_name = "HOST")]
    allow_hosts: Vec<String>,
    /// Accept this browser Origin besides loopback (repeatable), e.g. https://app.example.com.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    allow_origins: Vec<String>,
    /// The public base URL when behind a proxy (for the protected-resource metadata).
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// Serve the approvals admin API and web page on ADDR (`127.0.0.1:PORT`, port 0 picks one)
    /// or a unix socket path; requests need the token in the state directory's `admin.token`.
    /// Loopback only, separate from --listen.
    #[arg(long, value_name = "ADDR|SOCKET")]
    admin: Option<String>,
    /// Most client sessions at once; a new session past it is answered 503. Each session runs
    /// its own process of every stdio server it reaches (unless the server is `shared: true`),
    /// so size this to the machine.
    #[arg(long, default_value_t = portcullis_gateway::MAX_SESSIONS, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=100_000).map(|n| usize::try_from(n).unwrap_or(usize::MAX)))]
    max_sessions: usize,
    /// Threads that serve requests (default: one per CPU core). Durable audit writes run on a
    /// thread of their own besides these. Fewer threads than cores leaves room for other
    /// processes on the machine (the upstream servers, a load balancer), and one thread wakes
    /// less often per call, which lowers latency when the gateway shares a small machine.
    #[arg(long, value_name = "N", env = "PORTCULLIS_WORKERS",
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    workers: Option<u16>,
    /// Log format on standard error: `text`, or `json` (one object per line).
    #[arg(
        long,
        value_enum,
        default_value = "text",
        env = "PORTCULLIS_LOG_FORMAT",
        value_name = "FORMAT"
    )]
    log_format: crate::run::LogFormat,
}

pub(crate) fn run(args: ServeArgs) -> Result<u8> {
    crate::run::init_logging_as(args.log_format);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = args.workers {
        runtime.worker_threads(usize::from(workers));
    }
    let runtime = runtime
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let options = ServeOptions {
        policy: args.policy,
        listen: args.listen,
        state_dir: args.state_dir,
        store: args.store,
        guard: HostGuard {
            hosts: args
                .allow_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            origins: args.allow_origins,
        },
        public_url: args.public_url,
        admin: args.admin,
        max_sessions: args.max_sessions,
    };
    let result = runtime.block_on(portcullis_gateway::serve(options));
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    result.map_err(|error| anyhow::anyhow!("{error}\nportcullis: refusing to start"))?;
    Ok(crate::EXIT_OK)
}
