use std::time::{Duration, Instant};

use super::http;
use super::report::{Tally, histogram};
use super::stdio::{Answer, Requests, classify};
use super::*;

fn options(schedule: Schedule) -> Options {
    Options {
        command: vec!["server".into()],
        calls: 10,
        warmup: 2,
        schedule,
        time_limit: Duration::from_secs(1),
        text: "hi".to_owned(),
        label: "test".to_owned(),
        server_stderr: None,
        url: None,
        connections: 4,
        idle_sessions: 0,
    }
}

#[test]
fn request_lines_are_echo_calls_with_the_id_and_a_newline() {
    let requests = Requests::new("a \"quoted\" text");
    assert_eq!(
        requests.line(42),
        "{\"jsonrpc\":\"2.0\",\"id\":42,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\
         \"arguments\":{\"text\":\"a \\\"quoted\\\" text\"}}}\n"
    );
}

#[test]
fn classifies_results_tool_errors_fence_and_noise() {
    assert_eq!(
        classify(r#"{"jsonrpc":"2.0","id":7,"result":{"content":[],"isError":false}}"#),
        Answer::Call { id: 7, ok: true }
    );
    assert_eq!(
        classify(r#"{"jsonrpc":"2.0","id":7,"result":{"content":[],"isError":true}}"#),
        Answer::Call { id: 7, ok: false }
    );
    assert_eq!(
        classify(r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32601,"message":"no"}}"#),
        Answer::Call { id: 7, ok: false }
    );
    assert_eq!(
        classify(r#"{"jsonrpc":"2.0","id":"fence","result":{}}"#),
        Answer::Fence
    );
    assert_eq!(
        classify(r#"{"jsonrpc":"2.0","id":"srv-1","method":"roots/list"}"#),
        Answer::Other
    );
    assert_eq!(
        classify(r#"{"jsonrpc":"2.0","id":-1,"result":{}}"#),
        Answer::Other
    );
    assert_eq!(classify("{not json"), Answer::Other);
}

#[test]
fn percentiles_are_microseconds_with_one_decimal() {
    let mut h = histogram();
    for us in 1..=1000_u64 {
        h.record(us * 1_000).unwrap();
    }
    let p = Percentiles::of(&h).unwrap();
    // hdrhistogram with 3 significant digits: values are exact to within 0.1%.
    assert!((p.p50 - 500.0).abs() <= 0.5, "{p:?}");
    assert!((p.p99 - 990.0).abs() <= 1.0, "{p:?}");
    assert!((p.max - 1000.0).abs() <= 1.0, "{p:?}");
    assert_eq!(Percentiles::of(&histogram()), None);
}

#[test]
fn warmup_calls_are_not_measured() {
    let t0 = Instant::now();
    let mut tally = Tally::new(2);
    for id in 0..4 {
        tally.sent(id, t0);
    }
    tally.answered(0, true, t0, Duration::from_micros(5));
    tally.answered(1, false, t0, Duration::from_micros(5));
    tally.answered(
        2,
        true,
        t0 + Duration::from_secs(1),
        Duration::from_micros(100),
    );
    tally.answered(
        3,
        false,
        t0 + Duration::from_secs(2),
        Duration::from_micros(100),
    );
    tally.finish(4, 0, false);
    let report = Report::new(&options(Schedule::Closed { concurrency: 1 }), tally, false);
    assert_eq!(
        (report.sent, report.ok, report.errors, report.lost),
        (2, 1, 1, 0)
    );
    assert_eq!(report.elapsed_s, 2.0);
    assert_eq!(report.throughput, 0.5);
    assert!(!report.clean());
    assert_eq!(report.load(), "c=1");
}

#[test]
fn compare_subtracts_percentiles_and_divides_throughput() {
    let report = |label: &str, p50: f64, p99: f64, throughput: f64| Report {
        label: label.to_owned(),
        transport: "stdio".to_owned(),
        schedule: "open".to_owned(),
        concurrency: None,
        rate: Some(2000.0),
        calls: 10,
        warmup: 0,
        sent: 10,
        ok: 10,
        errors: 0,
        lost: 0,
        unexpected: 0,
        time_limited: false,
        killed: false,
        elapsed_s: 1.0,
        throughput,
        latency_us: Some(Percentiles {
            p50,
            p90: p50,
            p99,
            p999: p99,
            max: p99,
            mean: p50,
        }),
        send_lag_us: None,
    };
    let table = compare_table(
        &[
            (
                report("direct", 20.0, 50.0, 2000.0),
                report("gateway", 120.0, 450.0, 1000.0),
            ),
            (
                report("direct", 20.0, 50.0, 2000.0),
                report("slow", 120.0, 450.0, 20.0),
            ),
        ],
        false,
    );
    let row = table.lines().nth(1).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells,
        [
            "gateway", "2000/s", "20.0", "120.0", "100.0", "50.0", "450.0", "400.0", "6.00×",
            "2000", "1000", "0.50×"
        ]
    );
    let slow = table.lines().nth(2).unwrap();
    assert!(slow.ends_with("  0.010×"), "{slow}");
}

#[test]
fn rejects_options_that_make_no_sense() {
    let mut o = options(Schedule::Closed { concurrency: 0 });
    assert_eq!(
        run(&o).unwrap_err().to_string(),
        "invalid options: concurrency must be at least 1"
    );
    o.schedule = Schedule::Open { rate: 0.0 };
    assert_eq!(
        run(&o).unwrap_err().to_string(),
        "invalid options: rate must be a positive number"
    );
    o.warmup = 10;
    assert_eq!(
        run(&o).unwrap_err().to_string(),
        "invalid options: calls must be greater than warmup"
    );
}

#[test]
fn http_targets_need_a_host_and_a_port() {
    assert!(http::Target::parse("http://127.0.0.1:8750/mcp/echo").is_ok());
    assert_eq!(
        http::Target::parse("https://example.com/mcp")
            .unwrap_err()
            .to_string(),
        "invalid options: the URL must start with http://"
    );
    assert_eq!(
        http::Target::parse("http://localhost/mcp")
            .unwrap_err()
            .to_string(),
        "invalid options: the URL must name a host and a port"
    );
}

#[test]
fn http_answers_are_json_bodies_or_the_sse_event_with_the_id() {
    let ok = r#"{"jsonrpc":"2.0","id":7,"result":{"content":[],"isError":false}}"#;
    assert!(http::answers(ok, 7));
    assert!(!http::answers(ok, 8));
    let sse = format!(
        "event: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}}\n\n\
         id: 3\ndata: {ok}\n\n"
    );
    assert!(http::answers(&sse, 7));
    let tool_error = r#"data: {"jsonrpc":"2.0","id":7,"result":{"isError":true}}"#;
    assert!(!http::answers(tool_error, 7));
}

#[test]
fn drives_the_http_echo_server_closed_and_open_loop() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || crate::echo_http::serve_listener(listener));
    let mut o = options(Schedule::Closed { concurrency: 3 });
    o.calls = 200;
    o.warmup = 20;
    o.time_limit = Duration::from_secs(30);
    o.url = Some(format!("http://{addr}/mcp"));
    o.idle_sessions = 2;
    let report = run(&o).unwrap();
    assert_eq!(report.transport, "http");
    assert_eq!(
        (report.sent, report.ok, report.errors, report.lost),
        (180, 180, 0, 0)
    );
    assert!(report.clean(), "{report:?}");
    o.schedule = Schedule::Open { rate: 2000.0 };
    let report = run(&o).unwrap();
    assert_eq!(
        (report.sent, report.ok, report.errors, report.lost),
        (180, 180, 0, 0)
    );
    assert!(report.send_lag_us.is_some());
}

#[test]
fn the_disk_probe_measures_every_write_and_leaves_no_file() {
    let dir =
        std::env::temp_dir().join(format!("portcullis-disk-probe-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let latency = disk::commit_latency(&dir, 20).unwrap();
    assert!(
        latency.p50 > 0.0 && latency.p50 <= latency.max,
        "{latency:?}"
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "the scratch file is removed"
    );
    assert!(
        disk::commit_latency(&dir, 0).is_err(),
        "no writes is an error, not zeros"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        disk::commit_latency(&dir, 5).is_err(),
        "a missing directory is an error"
    );
}
