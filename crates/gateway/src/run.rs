//! `portcullis run`: start-up checks, the upstream server, the session, and the exit status.

use std::sync::Arc;

use portcullis_policy::Mode;
use portcullis_transport::stdio::{ShutdownGrace, StdioChild, exit_code_for};
use portcullis_transport::{
    BoundedLineReader, DEFAULT_MAX_LINE_BYTES, LineWriter, SignalForwarder,
};

use crate::config::{RunOptions, child_spec, load_policy, open_store, select_server};
use crate::error::GatewayError;
use crate::selftest::self_test;
use crate::session::{Session, SessionEnd, SessionParts};

/// The exit status after a `kill_session` decision ended the session: 1, "denied", whatever the
/// server's own status, so a wrapper script can tell a policy kill from a server failure.
pub const KILLED_EXIT_CODE: i32 = 1;

/// Runs one stdio session and returns the process exit code: the server's status (`128 + n` when
/// it died of signal `n`), or [`KILLED_EXIT_CODE`] after `kill_session`.
///
/// Refuses to start (an `Err`) when the policy does not load, no server can be selected, the
/// state directory cannot be opened, the self-test fails or the server cannot be spawned.
/// Must be called within a Tokio runtime.
///
/// # Errors
///
/// A [`GatewayError`] saying why the gateway did not start.
pub async fn run(options: RunOptions) -> Result<i32, GatewayError> {
    let (policy, policy_text) = load_policy(&options.policy)?;
    let server = select_server(&policy, options.server.as_deref())?.clone();
    let spec = child_spec(&server, options.command.as_deref())?;
    self_test(&policy).map_err(GatewayError::SelfTest)?;

    let (store, state) = open_store(
        &options.policy,
        &policy,
        options.state_dir.as_deref(),
        options.store.as_deref(),
    )?;
    let store = Arc::new(store);
    // approvals: begin
    let approvals = Arc::clone(&store);
    let _admin = match &options.admin {
        Some(listen) => Some(crate::admin::serve(listen, &state, Arc::clone(&approvals)).await?),
        None => None,
    };
    // approvals: end

    let mode = server.mode;
    if mode == Mode::Observe {
        eprintln!(
            "portcullis: WARNING: observe mode for server `{}`: every call is forwarded whatever the policy decides; decisions are only recorded (enforced=false)",
            server.name
        );
    }
    let mode_name = match mode {
        Mode::Enforce => "enforce",
        Mode::Observe => "observe",
    };
    let sha = policy
        .sha256()
        .get(..12)
        .unwrap_or(policy.sha256())
        .to_owned();
    if options.command.is_some() {
        tracing::warn!(server = %server.name, "the server's configured command is replaced by the one given after `--`");
    }

    let mut signals = SignalForwarder::install().map_err(|source| GatewayError::Io {
        what: "cannot install signal handlers",
        source,
    })?;
    let mut child = StdioChild::spawn(spec, DEFAULT_MAX_LINE_BYTES)?;
    let Some(mut server_out) = child.take_stdout() else {
        return Err(GatewayError::Io {
            what: "the server's output is missing; this is a bug, please report",
            source: std::io::Error::other("stdout already taken"),
        });
    };
    eprintln!(
        "portcullis: serving {} under policy {} (sha256 {sha}), mode {mode_name}, audit in {}",
        server.name,
        options.policy.display(),
        state.display()
    );

    // The client's pipes are read and written from the runtime, not the blocking pool: one thread
    // hand-off less per message in each direction (see `client_input`).
    let mut client_in = BoundedLineReader::new(
        portcullis_transport::stdio::client_input(),
        DEFAULT_MAX_LINE_BYTES,
    );
    let mut session = Session::new(SessionParts {
        server: server.name.clone(),
        policy,
        policy_path: options.policy.clone(),
        policy_text,
        store: Arc::clone(&store),
        principal: options.principal.clone(),
        agent: None,
        upstream: child.stdin(),
        client: LineWriter::new(portcullis_transport::stdio::client_output()),
        approvals,
        // `run` has no metrics endpoint; the counters are kept and never read.
        metrics: Arc::default(),
    });
    let end = session
        .run(
            &mut client_in,
            &mut server_out,
            Some((&mut signals, &child)),
        )
        .await;
    drop(session);

    let status = match child.shutdown(ShutdownGrace::default()).await {
        Ok(outcome) => exit_code_for(outcome.status),
        Err(error) => {
            tracing::error!(%error, "the server did not stop cleanly");
            1
        }
    };
    // Dropping the store waits for queued outcome records to be written.
    drop(store);
    Ok(match end {
        SessionEnd::Killed => KILLED_EXIT_CODE,
        SessionEnd::ClientGone | SessionEnd::ServerGone => status,
    })
}
