//! Fault injection from the upstream side of `portcullis run`: the server floods the gateway with
//! thousands of responses to ids nobody asked for and notifications, with unsolicited lines over
//! the 4 MiB message limit, and answers a call with an over-long line. The gateway's memory must
//! stay bounded, over-long lines are dropped and logged, the call whose answer was too long gets
//! an error, and the gateway keeps serving with every forwarded call recorded.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

#[path = "support/gateway.rs"]
mod support;

#[path = "support/faults.rs"]
mod faults;

use std::time::Duration;

use faults::{assert_every_forwarded_call_was_recorded, assert_verifies, audit_records, rss_kib};
use serde_json::json;
use support::Setup;

/// 5 MiB: over the gateway's 4 MiB line limit.
const HUGE: u64 = 5 * 1024 * 1024;

/// A generous bound on the gateway's resident memory: one 4 MiB line buffer plus the runtime, far
/// below what the flood carries (over 100 MiB).
const RSS_BOUND_KIB: u64 = 96 * 1024;

fn setup() -> Setup {
    let setup = Setup::new();
    let text = support::policy_text(&setup.ws, &setup.record, "enforce")
        .replace("tool: [echo, ", "tool: [echo, flood, huge_reply, ");
    std::fs::write(&setup.policy, text).unwrap();
    setup
}

#[test]
fn an_upstream_flood_keeps_memory_bounded_and_the_gateway_serving() {
    let setup = setup();
    let mut gw = setup.start();
    gw.init();
    let pid = gw.child.id();
    assert_eq!(
        gw.call(1, "echo", json!({"text": "before"}))["result"]["isError"],
        json!(false)
    );
    let baseline = rss_kib(pid);

    // Sample the gateway's memory while the flood passes through it.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid));
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        })
    };
    // 5,000 unknown-id responses, 5,000 notifications, 20 unsolicited 5 MiB lines (100 MiB).
    gw.send(
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "flood",
        "arguments": {"responses": 5000, "notifications": 5000, "huge": 20, "huge_bytes": HUGE}}}),
    );
    let answer = loop {
        let line = gw.recv();
        if line.get("method").is_none() {
            break line;
        }
        assert_eq!(line["method"], json!("notifications/message"), "{line}");
    };
    assert_eq!(answer["id"], json!(2), "{answer}");
    assert_eq!(
        answer["result"]["content"][0]["text"],
        json!("after flood"),
        "{answer}"
    );

    // A call whose answer is over the limit gets an error, not silence.
    let answer = gw.call(3, "huge_reply", json!({"bytes": HUGE}));
    assert_eq!(answer["error"]["code"], json!(-32603), "{answer}");

    // Still serving.
    let answer = gw.call(4, "echo", json!({"text": "after"}));
    assert_eq!(
        answer["result"]["content"][0]["text"],
        json!("after"),
        "{answer}"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    let log = setup.log();
    assert!(
        log.contains("dropped an over-long message from the server"),
        "{log}"
    );
    assert!(
        log.contains("dropped a response from the server to a request that is not pending"),
        "{log}"
    );
    eprintln!("gateway RSS: {baseline} KiB before the flood, peak {peak} KiB");
    assert!(
        peak < RSS_BOUND_KIB,
        "the gateway's memory grew to {peak} KiB under the flood (bound {RSS_BOUND_KIB} KiB, \
         {baseline} KiB before)"
    );
    assert_eq!(gw.finish(), 0);

    let state = setup.state_dir();
    assert_verifies(&state);
    let records = audit_records(&state);
    assert_eq!(
        assert_every_forwarded_call_was_recorded(&setup.recording(), &records),
        4
    );
    // The over-long answer left an outcome record saying so.
    assert!(
        records
            .iter()
            .any(|r| r["event"]["kind"] == json!("outcome")
                && r["event"]["tool"] == json!("huge_reply")
                && r["event"]["outcome"] == json!("oversized_response")),
        "no outcome record for the over-long answer"
    );
}
