//! The adversarial suite: attacks by class, each a call (or a raw line) and its expected verdict,
//! run through the real `portcullis run` with the testkit echo server as a *recording upstream*.
//!
//! The cases live in `tests/adversarial/*.yaml`, one file per attack class, beside the policy they
//! run under (`tests/adversarial/policy.yaml`). A case passes only when the verdict matches **and**
//! the upstream's recording agrees: a denied or refused case must leave no line at the server (the
//! gateway's own `tools/list` aside), an allowed control case must arrive there. At the end of each
//! session a barrier call flushes the pipe and every `tools/call` the server ever saw must belong to
//! an allowed case. See `tests/adversarial/README.md` for the case format.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

#[path = "support/gateway.rs"]
mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use support::{Gateway, Setup, echo_server};

/// The directory of the suite's data.
fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/adversarial")
}

/// Every attack class: the `*.yaml` files of the data directory but the policy.
fn classes() -> Vec<String> {
    let mut classes: Vec<String> = std::fs::read_dir(data_dir())
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let class = name.strip_suffix(".yaml")?;
            (class != "policy").then(|| class.to_owned())
        })
        .collect();
    classes.sort();
    classes
}

/// One class file, parsed.
fn load(class: &str) -> Value {
    let path = data_dir().join(format!("{class}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The sessions of a class: `sessions: [...]`, or one session of the top-level `cases`.
fn sessions(data: &Value) -> Vec<Value> {
    match data.get("sessions") {
        Some(Value::Array(list)) => list.clone(),
        _ => vec![json!({"cases": data["cases"].clone()})],
    }
}

/// Paths of one run of a class.
struct World {
    setup: Setup,
    home: PathBuf,
}

impl World {
    fn new() -> World {
        let setup = Setup::new();
        let home = setup.root.join("home");
        std::fs::create_dir_all(&home).unwrap();
        World { setup, home }
    }

    /// `{WS}`, `{ROOT}`, `{HOME}`, `{ID}` and `{REPEAT:N:text}` (`<lb>`/`<rb>` in `text` are
    /// braces) replaced.
    fn expand(&self, text: &str, id: i64) -> String {
        let mut out = text
            .replace("{WS}", &self.setup.ws.display().to_string())
            .replace("{ROOT}", &self.setup.root.display().to_string())
            .replace("{HOME}", &self.home.display().to_string())
            .replace("{ID}", &id.to_string());
        while let Some(start) = out.find("{REPEAT:") {
            let rest = &out[start + 8..];
            let colon = rest.find(':').expect("{REPEAT:N:text}");
            let count: usize = rest[..colon].parse().expect("REPEAT count");
            let close = rest[colon + 1..]
                .find('}')
                .expect("closing brace of REPEAT");
            let unit = rest[colon + 1..colon + 1 + close]
                .replace("<lb>", "{")
                .replace("<rb>", "}");
            let end = start + 8 + colon + 1 + close + 1;
            out = format!("{}{}{}", &out[..start], unit.repeat(count), &out[end..]);
        }
        out
    }

    /// Every string (and key) in `value` expanded.
    fn expand_value(&self, value: &Value, id: i64) -> Value {
        match value {
            Value::String(s) => Value::String(self.expand(s, id)),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.expand_value(v, id)).collect())
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (self.expand(k, id), self.expand_value(v, id)))
                    .collect::<Map<_, _>>(),
            ),
            other => other.clone(),
        }
    }

    /// A raw line: expanded, then `<x:HH>` turned into the byte `HH`.
    fn raw_bytes(&self, text: &str, id: i64) -> Vec<u8> {
        let text = self.expand(text, id);
        let mut out = Vec::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some(at) = rest.find("<x:") {
            out.extend_from_slice(&rest.as_bytes()[..at]);
            let hex = &rest[at + 3..at + 5];
            out.push(u8::from_str_radix(hex, 16).expect("<x:HH>"));
            rest = &rest[at + 6..];
        }
        out.extend_from_slice(rest.as_bytes());
        out
    }

    /// The class's `setup`: `dirs`, `files` (path → content) and `symlinks` (link → target),
    /// relative to the temp root.
    fn prepare(&self, setup: &Value) {
        let root = &self.setup.root;
        for dir in setup["dirs"].as_array().into_iter().flatten() {
            std::fs::create_dir_all(root.join(dir.as_str().unwrap())).unwrap();
        }
        for (file, content) in setup["files"].as_object().into_iter().flatten() {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content.as_str().unwrap()).unwrap();
        }
        for (link, target) in setup["symlinks"].as_object().into_iter().flatten() {
            let target = self.expand(target.as_str().unwrap(), 0);
            std::os::unix::fs::symlink(target, root.join(link)).unwrap();
        }
    }

    /// Writes the suite's policy for one session.
    fn write_policy(&self, session: &Value) {
        let template = std::fs::read_to_string(data_dir().join("policy.yaml")).unwrap();
        let pin = match session["pin"].as_str() {
            Some(mode) => format!("pin: {mode}"),
            None => "resolve_symlinks: true".to_owned(),
        };
        let text = template
            .replace("{BIN}", &echo_server().display().to_string())
            .replace("{RECORD}", &self.setup.record.display().to_string())
            .replace("{VARIANT}", session["variant"].as_str().unwrap_or(""))
            .replace("{PIN}", &pin);
        std::fs::write(&self.setup.policy, self.expand(&text, 0)).unwrap();
    }

    fn recording_lines(&self) -> Vec<String> {
        self.setup.recording().lines().map(str::to_owned).collect()
    }
}

/// What one case sent, for the verdict.
enum Sent {
    /// A request with this id.
    Request(i64),
    /// A raw line: its answer is the next response, whatever its id.
    Raw,
}

/// Reads messages until the answer to `sent`; returns it and every other message seen.
fn answer(gw: &mut Gateway, sent: &Sent) -> (Value, Vec<Value>) {
    let mut others = Vec::new();
    loop {
        let message = gw.recv();
        let is_response = message.get("method").is_none();
        let matches = match sent {
            Sent::Request(id) => is_response && message["id"] == json!(id),
            Sent::Raw => is_response,
        };
        if matches {
            return (message, others);
        }
        others.push(message);
    }
}

/// The structured denial in an answer, if it is one.
fn denial_of(answer: &Value) -> Option<&Value> {
    if let Some(meta) = answer["result"]["_meta"].get("io.portcullis/decision") {
        return Some(meta);
    }
    if answer["error"]["code"] == json!(-31001) {
        return Some(&answer["error"]["data"]);
    }
    None
}

/// Runs one case; returns an error message if it failed, and whether it let a call through.
fn run_case(world: &World, gw: &mut Gateway, case: &Value, id: i64) -> Result<bool, String> {
    let name = case["name"].as_str().unwrap_or("?");
    let before = world.recording_lines().len();
    let sent = if let Some(tool) = case.get("call").and_then(Value::as_str) {
        let args = world.expand_value(case.get("args").unwrap_or(&json!({})), id);
        gw.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": args}}));
        Sent::Request(id)
    } else if let Some(method) = case.get("request").and_then(Value::as_str) {
        let params = world.expand_value(case.get("params").unwrap_or(&json!({})), id);
        gw.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        Sent::Request(id)
    } else if let Some(raw) = case.get("raw").and_then(Value::as_str) {
        gw.send_raw(&world.raw_bytes(raw, id));
        Sent::Raw
    } else if let Some(request) = case.get("server_request") {
        let mut args = world.expand_value(request, id);
        args["id"] = json!(format!("srv-{id}"));
        gw.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "server_request", "arguments": args}}));
        Sent::Request(id)
    } else {
        return Err(format!(
            "{name}: a case needs call, request, raw or server_request"
        ));
    };
    let expect = case["expect"].as_str().unwrap_or("?");
    if expect == "silent" {
        // No answer at all (a response nobody asked for), and nothing at the server.
        gw.assert_silent(std::time::Duration::from_millis(300));
        let after = world.recording_lines();
        if after.len() > before {
            return Err(format!(
                "{name} (expect silent): it reached the server: {:?}",
                &after[before..]
            ));
        }
        return Ok(false);
    }
    let (answer, others) = answer(gw, &sent);
    let fail = |why: &str| {
        Err(format!(
            "{name} (expect {expect}): {why}\n  answer: {answer}"
        ))
    };

    // What reached the server while the case ran (the gateway's own listings aside).
    let delta: Vec<String> = world
        .recording_lines()
        .split_off(before.min(world.recording_lines().len()));
    // The gateway's own `tools/list` and the client's answers to server requests are not carried
    // by the case.
    let carried: Vec<&String> = delta
        .iter()
        .filter(|line| {
            serde_json::from_str::<Value>(line).map_or(true, |v| {
                let own_listing = v["method"] == json!("tools/list");
                let client_answer = v.get("method").is_none()
                    && v["id"].as_str().is_some_and(|id| id.starts_with("srv-"));
                !own_listing && !client_answer
            })
        })
        .collect();
    let reached_as_call = carried.iter().any(|line| {
        serde_json::from_str::<Value>(line).is_ok_and(|v| {
            v.get("method").is_some() && (v["id"] == json!(id) || matches!(sent, Sent::Raw))
        })
    });

    for path in case["absent"].as_array().into_iter().flatten() {
        let path = world.expand(path.as_str().unwrap(), id);
        if Path::new(&path).exists() || Path::new(&path).is_symlink() {
            return fail(&format!("{path} exists: the call had an effect"));
        }
    }

    let forwarded = match expect {
        "allow" => {
            if let Some(d) = denial_of(&answer) {
                return fail(&format!("denied by {}", d["rule"]));
            }
            if answer.get("error").is_some() {
                return fail("answered with an error");
            }
            if !reached_as_call {
                return fail("allowed, but the call never reached the server");
            }
            if let Some(text) = case.get("reply_contains").and_then(Value::as_str)
                && !answer.to_string().contains(&world.expand(text, id))
            {
                return fail(&format!("the reply does not contain {text:?}"));
            }
            true
        }
        "deny" | "error" => {
            if expect == "deny" {
                let Some(d) = denial_of(&answer) else {
                    return fail("not a policy denial");
                };
                if let Some(rule) = case.get("rule")
                    && d["rule"] != *rule
                {
                    return fail(&format!("denied by {} instead of {rule}", d["rule"]));
                }
                if let Some(class) = case.get("class")
                    && d["reason_class"] != *class
                {
                    return fail(&format!(
                        "reason class {} instead of {class}",
                        d["reason_class"]
                    ));
                }
            } else {
                if answer.get("error").is_none() {
                    return fail("not a JSON-RPC error");
                }
                if let Some(code) = case.get("code")
                    && answer["error"]["code"] != *code
                {
                    return fail(&format!(
                        "code {} instead of {code}",
                        answer["error"]["code"]
                    ));
                }
            }
            if !carried.is_empty() {
                return fail(&format!("it reached the server: {carried:?}"));
            }
            false
        }
        "forwarded" | "refused" => {
            let method = &case["server_request"]["method"];
            let srv_id = json!(format!("srv-{id}"));
            let seen = others
                .iter()
                .find(|m| m["method"] == *method && m["id"] == srv_id);
            if expect == "forwarded" {
                let Some(request) = seen else {
                    return fail(&format!("the client never saw {method}: {others:?}"));
                };
                // Answer it, as a client would.
                gw.send(&json!({"jsonrpc": "2.0", "id": request["id"], "result": {}}));
            } else {
                if seen.is_some() || others.iter().any(|m| m.get("method").is_some()) {
                    return fail(&format!("the client saw a server request: {others:?}"));
                }
                // The refusal goes to the server after the call's answer: wait for it.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
                loop {
                    let refused = world.recording_lines().iter().any(|line| {
                        serde_json::from_str::<Value>(line)
                            .is_ok_and(|v| v["id"] == srv_id && v.get("error").is_some())
                    });
                    if refused {
                        break;
                    }
                    if std::time::Instant::now() > deadline {
                        return fail("the server got no refusal");
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
            true
        }
        "listed" => {
            let names: BTreeSet<&str> = answer["result"]["tools"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["name"].as_str())
                .collect();
            for want in case["listed"].as_array().into_iter().flatten() {
                if !names.contains(want.as_str().unwrap()) {
                    return fail(&format!("{want} is not listed"));
                }
            }
            for never in case["unlisted"].as_array().into_iter().flatten() {
                if names.contains(never.as_str().unwrap()) {
                    return fail(&format!("{never} is listed"));
                }
            }
            false
        }
        other => return Err(format!("{name}: unknown expectation {other:?}")),
    };
    Ok(forwarded)
}

/// Runs every session of `class`; fails with every failing case listed.
fn run_class(class: &str) {
    let data = load(class);
    let world = World::new();
    world.prepare(&data["setup"]);
    let mut failures = Vec::new();
    let mut count = 0;
    for (s, session) in sessions(&data).iter().enumerate() {
        if session["fresh_state"] == json!(true) {
            let _ = std::fs::remove_dir_all(world.setup.state_dir());
        }
        world.write_policy(session);
        let mut gw = world.setup.start();
        gw.init();
        // `notifications/initialized` is forwarded without an answer: let it land before the
        // first case looks at the recording.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !world
            .setup
            .recording()
            .contains("notifications/initialized")
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let mut allowed_ids = BTreeSet::new();
        for (i, case) in session["cases"]
            .as_array()
            .expect("cases")
            .iter()
            .enumerate()
        {
            count += 1;
            let id = 1000 * (i64::try_from(s).unwrap() + 1) + i64::try_from(i).unwrap();
            match run_case(&world, &mut gw, case, id) {
                Ok(true) => {
                    allowed_ids.insert(id);
                }
                Ok(false) => {}
                Err(why) => failures.push(why),
            }
        }
        // Barrier: a call that must pass, then the whole recording is checked.
        let barrier = gw.call(999_999, "echo", json!({"text": "barrier"}));
        allowed_ids.insert(999_999);
        if barrier["result"]["isError"] != json!(false) && session["pin"].is_null() {
            failures.push(format!("session {s}: the barrier call failed: {barrier}"));
        }
        for line in world.recording_lines() {
            let Ok(message) = serde_json::from_str::<Value>(&line) else {
                failures.push(format!(
                    "session {s}: the server got a non-JSON line: {line}"
                ));
                continue;
            };
            let evaluated = ["tools/call", "resources/read", "prompts/get"]
                .iter()
                .any(|m| message["method"] == json!(m));
            let id = message["id"].as_i64().unwrap_or(-1);
            if evaluated && !allowed_ids.contains(&id) && (1000..999_999).contains(&id) {
                failures.push(format!(
                    "session {s}: the server got a call no case allowed: {line}"
                ));
            }
        }
        drop(gw);
        // The recording is per world; start each session on a clean one.
        let _ = std::fs::remove_file(&world.setup.record);
    }
    eprintln!("adversarial {class}: {count} cases");
    assert!(
        failures.is_empty(),
        "{} of {count} {class} cases failed:\n{}\n--- gateway log ---\n{}",
        failures.len(),
        failures.join("\n"),
        last_lines(&world.setup.log(), 30)
    );
}

/// The last `n` lines of `text`.
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[test]
fn cases_are_plentiful() {
    let mut total = 0;
    for class in classes() {
        let data = load(&class);
        let n: usize = sessions(&data)
            .iter()
            .map(|s| s["cases"].as_array().map_or(0, Vec::len))
            .sum();
        assert!(n >= 5, "{class} has only {n} cases");
        for session in sessions(&data) {
            for case in session["cases"].as_array().into_iter().flatten() {
                assert!(
                    case["name"].is_string(),
                    "{class}: a case without a name: {case}"
                );
                assert!(case["expect"].is_string(), "{class}: {case} has no expect");
            }
        }
        total += n;
    }
    eprintln!("{total} adversarial cases in {} classes", classes().len());
    assert!(total >= 150, "only {total} adversarial cases");
}

#[test]
fn paths() {
    run_class("paths");
}

#[test]
fn symlinks() {
    run_class("symlinks");
}

#[test]
fn shapes() {
    run_class("shapes");
}

#[test]
fn framing() {
    run_class("framing");
}

#[test]
fn ssrf() {
    run_class("ssrf");
}

#[test]
fn shell() {
    run_class("shell");
}

#[test]
fn vetting() {
    run_class("vetting");
}

#[test]
fn taint() {
    run_class("taint");
}

#[test]
fn server_to_client() {
    run_class("server_to_client");
}
