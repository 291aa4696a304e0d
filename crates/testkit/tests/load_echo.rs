//! `portcullis-load` against the real echo server binary: every call is answered, in both
//! schedules. (Counts only: tests never assert wall-clock time.)

use std::time::Duration;

use portcullis_testkit::load::{Options, Schedule, run};

fn options(schedule: Schedule) -> Options {
    Options {
        command: vec![env!("CARGO_BIN_EXE_portcullis-echo-server").into()],
        calls: 300,
        warmup: 50,
        schedule,
        time_limit: Duration::from_secs(60),
        text: "hello".to_owned(),
        label: "echo".to_owned(),
        server_stderr: None,
        url: None,
        connections: 4,
        idle_sessions: 0,
    }
}

#[test]
fn closed_loop_answers_every_call() {
    let report = run(&options(Schedule::Closed { concurrency: 4 })).unwrap();
    assert_eq!(
        (report.sent, report.ok, report.errors, report.lost),
        (250, 250, 0, 0)
    );
    assert_eq!(report.unexpected, 0);
    assert!(report.clean(), "{report:?}");
    assert!(report.latency_us.is_some());
}

#[test]
fn open_loop_answers_every_call_and_reports_send_lag() {
    let report = run(&options(Schedule::Open { rate: 1000.0 })).unwrap();
    assert_eq!(
        (report.sent, report.ok, report.errors, report.lost),
        (250, 250, 0, 0)
    );
    assert!(report.clean(), "{report:?}");
    assert!(report.send_lag_us.is_some());
}

#[test]
fn a_missing_command_is_a_spawn_error() {
    let mut o = options(Schedule::Closed { concurrency: 1 });
    o.command = vec!["/nonexistent/portcullis-no-such-server".into()];
    let error = run(&o).unwrap_err().to_string();
    assert!(
        error.starts_with("cannot start the server `/nonexistent/portcullis-no-such-server`: "),
        "{error}"
    );
}

/// The echo binary in HTTP mode, on a free port; killed when dropped.
struct HttpEcho {
    child: std::process::Child,
    url: String,
}

impl HttpEcho {
    fn start() -> std::io::Result<Self> {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis-echo-server"))
            .args(["--http", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .ok_or_else(|| std::io::Error::other(format!("unexpected first line {line:?}")))?
            .to_owned();
        Ok(HttpEcho { child, url })
    }
}

impl Drop for HttpEcho {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn http_mode_answers_every_call_in_both_schedules() {
    let echo = HttpEcho::start().unwrap();
    let mut o = options(Schedule::Closed { concurrency: 4 });
    o.command = Vec::new();
    o.url = Some(echo.url.clone());
    o.idle_sessions = 3;
    let report = run(&o).unwrap();
    assert_eq!(report.transport, "http");
    assert_eq!(
        (report.sent, report.ok, report.errors, report.lost),
        (250, 250, 0, 0)
    );
    assert!(report.clean(), "{report:?}");
    o.schedule = Schedule::Open { rate: 1000.0 };
    let report = run(&o).unwrap();
    assert_eq!(
        (report.sent, report.ok, report.errors, report.lost),
        (250, 250, 0, 0)
    );
    assert!(report.clean(), "{report:?}");
}
