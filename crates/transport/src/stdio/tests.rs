use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::{Layer, Registry};

use super::{
    ChildSpec, ENV_ALLOW_LIST, Escalation, ShutdownGrace, SpawnError, StdioChild, exit_code_for,
    stderr::sanitize,
};
use crate::framing::{DEFAULT_MAX_LINE_BYTES, Line, WriteLineError};
use crate::signal::{Signal, SignalError};

/// For children expected to exit at the first step: `shutdown` returns as soon as they do, so a
/// generous grace costs nothing and keeps a loaded machine from escalating by accident.
const PATIENT: ShutdownGrace = ShutdownGrace {
    after_stdin_close: Duration::from_secs(5),
    after_sigterm: Duration::from_secs(5),
};
/// For children that ignore stdin close and must be signalled; they die on SIGTERM within ~0.1 s.
const TERM_AFTER_300MS: ShutdownGrace = ShutdownGrace {
    after_stdin_close: Duration::from_millis(300),
    after_sigterm: Duration::from_secs(5),
};
/// For children that ignore SIGTERM too.
const KILL_AFTER_300MS: ShutdownGrace = ShutdownGrace {
    after_stdin_close: Duration::from_millis(300),
    after_sigterm: Duration::from_millis(300),
};
/// Upper bound for anything a test waits on, so a bug fails the test instead of hanging it.
const TEST_LIMIT: Duration = Duration::from_secs(10);

fn sh(script: &str) -> ChildSpec {
    ChildSpec::new("test-server", "sh").args(["-c", script])
}

fn spawn(spec: ChildSpec) -> StdioChild {
    StdioChild::spawn(spec, DEFAULT_MAX_LINE_BYTES).unwrap()
}

/// Spawns and waits for the child to print `ready`, so its traps are in place before it is signalled.
async fn spawn_ready(spec: ChildSpec) -> StdioChild {
    let mut child = spawn(spec);
    let mut stdout = child.take_stdout().unwrap();
    assert_eq!(
        bounded(stdout.next_line()).await.unwrap(),
        Some(Line::Complete(b"ready".to_vec()))
    );
    child
}

async fn bounded<F: std::future::Future>(fut: F) -> F::Output {
    tokio::time::timeout(TEST_LIMIT, fut).await.unwrap()
}

/// Records `(server, message)` for every event with target `upstream`.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<(String, String)>>>);

struct Fields {
    server: String,
    message: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        match field.name() {
            "server" => self.server = format!("{value:?}"),
            "message" => self.message = format!("{value:?}"),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() == "upstream" {
            let mut fields = Fields {
                server: String::new(),
                message: String::new(),
            };
            event.record(&mut fields);
            self.0.lock().unwrap().push((fields.server, fields.message));
        }
    }
}

impl Capture {
    /// Installs the capture for the current thread (the tests' runtime is single-threaded, so the
    /// child's stderr task logs on this thread too).
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        tracing::subscriber::set_default(Registry::default().with(self.clone()))
    }

    fn messages(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, m)| m.clone())
            .collect()
    }
}

#[tokio::test]
async fn round_trip_through_cat() {
    let mut child = spawn(ChildSpec::new("cat", "cat"));
    assert!(child.pid().is_some());
    let stdin = child.stdin();
    let mut stdout = child.take_stdout().unwrap();
    assert!(child.take_stdout().is_none());
    stdin
        .write_line(br#"{"jsonrpc":"2.0","id":1}"#)
        .await
        .unwrap();
    stdin.write_line(b"second\r").await.unwrap();
    assert_eq!(
        bounded(stdout.next_line()).await.unwrap(),
        Some(Line::Complete(br#"{"jsonrpc":"2.0","id":1}"#.to_vec()))
    );
    assert_eq!(
        bounded(stdout.next_line()).await.unwrap(),
        Some(Line::Complete(b"second\r".to_vec()))
    );
    let outcome = bounded(child.shutdown(PATIENT)).await.unwrap();
    assert_eq!(outcome.escalation, Escalation::None);
    assert!(outcome.status.success());
    assert_eq!(bounded(stdout.next_line()).await.unwrap(), None);
    // The session's handle sees the closed stdin.
    let err = stdin.write_line(b"late").await.unwrap_err();
    assert!(matches!(err, WriteLineError::Closed), "{err:?}");
}

#[tokio::test]
async fn stdout_lines_over_the_limit_are_reported_too_long() {
    let spec = sh("printf '0123456789\\nok\\n'");
    let mut child = StdioChild::spawn(spec, 4).unwrap();
    let mut stdout = child.take_stdout().unwrap();
    assert_eq!(
        bounded(stdout.next_line()).await.unwrap(),
        Some(Line::TooLong {
            bytes_discarded: 10
        })
    );
    assert_eq!(
        bounded(stdout.next_line()).await.unwrap(),
        Some(Line::Complete(b"ok".to_vec()))
    );
    assert_eq!(exit_code_for(bounded(child.wait()).await.unwrap()), 0);
}

#[tokio::test]
async fn stderr_lines_are_logged_with_the_server_name_and_escaped() {
    let capture = Capture::default();
    let _guard = capture.install();
    let child = spawn(sh(
        "echo 'hello from stderr' >&2; printf 'evil\\033[2J\\r\\n' >&2",
    ));
    let outcome = bounded(child.shutdown(PATIENT)).await.unwrap();
    assert_eq!(exit_code_for(outcome.status), 0);
    let events = capture.0.lock().unwrap().clone();
    assert!(
        events.contains(&("test-server".to_owned(), "hello from stderr".to_owned())),
        "{events:?}"
    );
    assert!(
        events.contains(&("test-server".to_owned(), "evil\\u{1b}[2J".to_owned())),
        "{events:?}"
    );
}

#[test]
fn sanitize_escapes_control_characters_but_keeps_text() {
    assert_eq!(sanitize(b"tab\there\r"), "tab\there");
    assert_eq!(sanitize(b"a\x07b\xffc"), "a\\u{7}b\u{fffd}c");
}

/// Runs in a child test process that has `PORTCULLIS_TEST_SECRET` and `PORTCULLIS_TEST_SHARED` set
/// (see `environment_is_cleared_to_the_allow_list`); does nothing when run directly.
#[tokio::test]
async fn env_probe_in_child_test_process() {
    if std::env::var_os("PORTCULLIS_TEST_SECRET").is_none() {
        return;
    }
    let mut spec = ChildSpec::new("env", "env");
    spec.inherit_env = vec![
        "PORTCULLIS_TEST_SHARED".to_owned(),
        "NOT_SET_ANYWHERE".to_owned(),
    ];
    spec.env = vec![("EXPLICIT".to_owned(), "yes".to_owned())];
    let mut child = spawn(spec);
    let mut stdout = child.take_stdout().unwrap();
    let mut names = Vec::new();
    while let Some(Line::Complete(line)) = bounded(stdout.next_line()).await.unwrap() {
        let line = String::from_utf8(line).unwrap();
        names.push(line);
    }
    assert!(bounded(child.wait()).await.unwrap().success());
    assert!(names.iter().any(|l| l.starts_with("PATH=")), "{names:?}");
    assert!(
        names.contains(&"PORTCULLIS_TEST_SHARED=shared".to_owned()),
        "{names:?}"
    );
    assert!(names.contains(&"EXPLICIT=yes".to_owned()), "{names:?}");
    assert!(
        !names.iter().any(|l| l.contains("PORTCULLIS_TEST_SECRET")),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|l| l.starts_with("NOT_SET_ANYWHERE")),
        "{names:?}"
    );
    let allowed = |line: &String| {
        let name = line.split('=').next().unwrap();
        ENV_ALLOW_LIST.contains(&name) || ["PORTCULLIS_TEST_SHARED", "EXPLICIT"].contains(&name)
    };
    assert!(names.iter().all(allowed), "{names:?}");
    println!("env probe ran");
}

#[test]
fn environment_is_cleared_to_the_allow_list() {
    // Setting variables in this process needs `unsafe` (edition 2024), so the check runs in a copy
    // of this test binary started with them.
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "stdio::tests::env_probe_in_child_test_process",
            "--nocapture",
        ])
        .env("PORTCULLIS_TEST_SECRET", "hunter2")
        .env("PORTCULLIS_TEST_SHARED", "shared")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("env probe ran"), "{stdout}");
}

#[test]
fn child_env_applies_allow_list_then_inherited_then_explicit() {
    let mut spec = ChildSpec::new("s", "p");
    spec.inherit_env = vec!["EXTRA".to_owned()];
    spec.env = vec![("HOME".to_owned(), "/override".to_owned())];
    let lookup = |name: &str| match name {
        "PATH" => Some("/bin".into()),
        "HOME" => Some("/home/gw".into()),
        "EXTRA" => Some("x".into()),
        "SECRET" => Some("s3cret".into()),
        _ => None,
    };
    let env: Vec<(String, String)> = spec
        .child_env(lookup)
        .into_iter()
        .map(|(k, v)| (k.into_string().unwrap(), v.into_string().unwrap()))
        .collect();
    let expected: Vec<(String, String)> = [
        ("PATH", "/bin"),
        ("HOME", "/home/gw"),
        ("EXTRA", "x"),
        ("HOME", "/override"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    assert_eq!(env, expected);
}

#[test]
fn debug_output_redacts_env_values() {
    let mut spec = ChildSpec::new("s", "p");
    spec.env = vec![("API_TOKEN".to_owned(), "hunter2".to_owned())];
    let shown = format!("{spec:?}");
    assert!(shown.contains("API_TOKEN"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[tokio::test]
async fn missing_program_names_it_and_says_how_to_fix() {
    let err = StdioChild::spawn(
        ChildSpec::new("fs", "portcullis-no-such-program"),
        DEFAULT_MAX_LINE_BYTES,
    )
    .unwrap_err();
    assert!(matches!(err, SpawnError::NotOnPath { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "cannot start server `fs`: `portcullis-no-such-program` not found on PATH; \
         install it or give its full path"
    );
}

#[tokio::test]
async fn missing_program_path_and_working_dir_are_told_apart() {
    let err = StdioChild::spawn(ChildSpec::new("fs", "/nonexistent/server"), 1024).unwrap_err();
    assert!(matches!(err, SpawnError::NoSuchFile { .. }), "{err:?}");
    let mut spec = ChildSpec::new("fs", "cat");
    spec.cwd = Some("/nonexistent/dir".into());
    let err = StdioChild::spawn(spec, 1024).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot start server `fs`: working directory `/nonexistent/dir` does not exist or is not a directory"
    );
}

#[tokio::test]
async fn non_executable_program_is_reported() {
    let err = StdioChild::spawn(ChildSpec::new("fs", "/etc"), 1024).unwrap_err();
    assert!(matches!(err, SpawnError::NotExecutable { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("cannot start server `fs`: `/etc` is not executable ("),
        "{err}"
    );
    // An executable text file without `#!` fails with ENOEXEC, reported the same way.
    let path = std::env::temp_dir().join(format!("portcullis-noexec-{}", std::process::id()));
    std::fs::write(&path, "not a program\n").unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let result = StdioChild::spawn(ChildSpec::new("fs", path.to_str().unwrap()), 1024);
    std::fs::remove_file(&path).unwrap();
    let err = result.unwrap_err();
    assert!(matches!(err, SpawnError::NotExecutable { .. }), "{err:?}");
}

#[tokio::test]
async fn invalid_env_name_is_refused_before_spawning() {
    let mut spec = ChildSpec::new("fs", "cat");
    spec.env = vec![("A=B".to_owned(), "c".to_owned())];
    let err = StdioChild::spawn(spec, 1024).unwrap_err();
    assert!(
        matches!(&err, SpawnError::InvalidEnvName { name, .. } if name == "A=B"),
        "{err:?}"
    );
}

#[tokio::test]
async fn shutdown_of_a_well_behaved_child_sends_no_signal() {
    let capture = Capture::default();
    let _guard = capture.install();
    let child = spawn(ChildSpec::new("cat", "cat"));
    let outcome = bounded(child.shutdown(PATIENT)).await.unwrap();
    assert_eq!(outcome.escalation, Escalation::None);
    assert_eq!(outcome.status.code(), Some(0));
    assert!(
        !capture.messages().iter().any(|m| m.contains("SIG")),
        "{:?}",
        capture.messages()
    );
}

#[tokio::test]
async fn child_that_ignores_stdin_close_gets_sigterm() {
    let capture = Capture::default();
    let _guard = capture.install();
    let child = spawn_ready(sh(
        r#"trap "exit 3" TERM; echo ready; while :; do sleep 0.1; done"#,
    ))
    .await;
    let outcome = bounded(child.shutdown(TERM_AFTER_300MS)).await.unwrap();
    assert_eq!(outcome.escalation, Escalation::Sigterm);
    assert_eq!(exit_code_for(outcome.status), 3);
    let messages = capture.messages();
    assert!(
        messages.contains(
            &"server still running 300 ms after its stdin closed; sending SIGTERM".to_owned()
        ),
        "{messages:?}"
    );
}

#[tokio::test]
async fn child_that_ignores_sigterm_gets_sigkill() {
    let capture = Capture::default();
    let _guard = capture.install();
    let child = spawn_ready(sh(
        r#"trap "" TERM; echo ready; while :; do sleep 0.1; done"#,
    ))
    .await;
    let outcome = bounded(child.shutdown(KILL_AFTER_300MS)).await.unwrap();
    assert_eq!(outcome.escalation, Escalation::Sigkill);
    assert_eq!(exit_code_for(outcome.status), 137);
    assert!(
        capture
            .messages()
            .contains(&"server still running 300 ms after SIGTERM; sending SIGKILL".to_owned()),
        "{:?}",
        capture.messages()
    );
}

#[tokio::test]
async fn exit_code_passes_through() {
    let mut child = spawn(sh("exit 7"));
    let status = bounded(child.wait()).await.unwrap();
    assert_eq!(exit_code_for(status), 7);
    // Once the exit is collected the pid is gone and signals are refused, never sent to a reused pid.
    assert_eq!(child.pid(), None);
    assert!(matches!(
        child.signal(Signal::Terminate),
        Err(SignalError::Exited {
            signal: Signal::Terminate
        })
    ));
    // Shutting down an already-exited child is immediate and signal-free.
    let outcome = bounded(child.shutdown(PATIENT)).await.unwrap();
    assert_eq!(outcome.escalation, Escalation::None);
    assert_eq!(exit_code_for(outcome.status), 7);
}

#[tokio::test]
async fn forwarded_signal_reaches_the_child() {
    let mut child = spawn(sh(
        r#"trap "exit 42" HUP; echo ready; while :; do sleep 0.1; done"#,
    ));
    let mut stdout = child.take_stdout().unwrap();
    // Wait until the trap is installed before signalling.
    assert_eq!(
        bounded(stdout.next_line()).await.unwrap(),
        Some(Line::Complete(b"ready".to_vec()))
    );
    child.signal(Signal::Hangup).unwrap();
    assert_eq!(exit_code_for(bounded(child.wait()).await.unwrap()), 42);
    assert_eq!(child.try_status().unwrap().and_then(|s| s.code()), Some(42));
}

#[tokio::test]
async fn try_status_is_none_while_running() {
    let mut child = spawn(ChildSpec::new("cat", "cat"));
    assert!(child.try_status().unwrap().is_none());
    child.signal(Signal::Interrupt).unwrap();
    let status = bounded(child.wait()).await.unwrap();
    assert_eq!(exit_code_for(status), 130);
}
