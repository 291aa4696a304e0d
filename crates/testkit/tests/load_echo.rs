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
