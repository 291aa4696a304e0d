//! `portcullis-load`: drive an MCP stdio server with `echo` tool calls and report latency; see
//! `portcullis_testkit::load`.
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use portcullis_testkit::load::{self, Options, Report, Schedule};

/// Load driver for MCP servers (stdio or Streamable HTTP): measures tools/call latency and
/// throughput.
///
/// `run` spawns COMMAND (or connects to --url, one MCP session per connection), does the MCP
/// handshake and sends `tools/call` requests for the `echo`
/// tool, either closed-loop (--concurrency C calls in flight) or open-loop at a fixed --rate
/// (latency measured from each call's scheduled send time, so a stalled server is charged for
/// the calls it delayed). It stops by itself after --calls calls or --time-limit.
///
/// `disk` measures the durable-commit latency of the disk under a directory.
///
/// `compare` reads the JSON reports of pairs of runs (direct, then through the gateway) and
/// prints them side by side with the added latency.
///
/// Examples:
///   portcullis-load run --calls 20000 --concurrency 1 -- portcullis-echo-server
///   portcullis-load run --rate 2000 --calls 20000 --json -- portcullis run --policy p.yaml
///   portcullis-load run --concurrency 8 --url http://127.0.0.1:8750/mcp/echo
///   portcullis-load compare direct-c1.json gateway-c1.json direct-c8.json gateway-c8.json
///
/// EXIT STATUS: 0 when every measured call succeeded, 1 when some failed, were lost or the time
/// limit cut the run short, 2 on usage or start-up errors.
#[derive(Debug, Parser)]
#[command(name = "portcullis-load", verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load a server and report latency percentiles and throughput.
    Run(RunArgs),
    /// Print runs side by side: pairs of JSON reports, direct first, then through the gateway.
    Compare(CompareArgs),
    /// Measure the disk's own durable-commit latency in DIR: one 4 KiB page overwritten and
    /// fsync'd at a time, as the audit log's write-ahead log is in its steady state. The floor
    /// under any durable-audit gateway latency on that disk.
    Disk(DiskArgs),
}

#[derive(Debug, Args)]
struct DiskArgs {
    /// Commits to measure.
    #[arg(long, default_value_t = 2_000)]
    writes: u32,
    /// Print the percentiles (µs) as JSON instead of a line of text.
    #[arg(long)]
    json: bool,
    /// A directory on the disk to measure (the gateway's state directory's parent).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Calls to send, warm-up included.
    #[arg(long, default_value_t = 20_000)]
    calls: u64,
    /// Calls at the start that are not measured.
    #[arg(long, default_value_t = 1_000)]
    warmup: u64,
    /// Closed loop: keep this many calls in flight (default 1 unless --rate is given).
    #[arg(long, conflicts_with = "rate")]
    concurrency: Option<u32>,
    /// Open loop: send this many calls per second.
    #[arg(long)]
    rate: Option<f64>,
    /// Stop sending after this many seconds (calls in flight then get a grace period).
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    time_limit: f64,
    /// The `text` argument of each `echo` call.
    #[arg(long, default_value = "hello")]
    text: String,
    /// A name for the run in the report.
    #[arg(long, default_value = "run")]
    label: String,
    /// Write the server's standard error to this file (default: inherited).
    #[arg(long, value_name = "FILE")]
    server_stderr: Option<PathBuf>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Drive the Streamable HTTP server at this URL (http://HOST:PORT/PATH) instead of
    /// spawning COMMAND.
    #[arg(long, value_name = "URL", conflicts_with = "command")]
    url: Option<String>,
    /// HTTP open loop: connections (each with its own MCP session) taking the scheduled calls.
    #[arg(long, default_value_t = 16)]
    connections: u32,
    /// HTTP: open this many more sessions before the run and leave them idle until it ends.
    #[arg(long, default_value_t = 0, value_name = "N")]
    idle_sessions: u32,
    /// The server command and its arguments.
    #[arg(last = true, required_unless_present = "url", value_name = "COMMAND")]
    command: Vec<OsString>,
}

#[derive(Debug, Args)]
struct CompareArgs {
    /// Render Markdown tables.
    #[arg(long)]
    markdown: bool,
    /// JSON reports: direct, gateway, direct, gateway, ...
    #[arg(required = true, value_name = "REPORT")]
    reports: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Run(args) => run(args),
        Command::Compare(args) => compare(&args),
        Command::Disk(args) => disk(&args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("portcullis-load: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: RunArgs) -> Result<bool> {
    let schedule = match (args.concurrency, args.rate) {
        (_, Some(rate)) => Schedule::Open { rate },
        (concurrency, None) => Schedule::Closed {
            concurrency: concurrency.unwrap_or(1),
        },
    };
    if !(args.time_limit.is_finite() && args.time_limit > 0.0) {
        bail!("--time-limit must be a positive number of seconds");
    }
    let options = Options {
        command: args.command,
        calls: args.calls,
        warmup: args.warmup,
        schedule,
        time_limit: Duration::from_secs_f64(args.time_limit),
        text: args.text,
        label: args.label,
        server_stderr: args.server_stderr,
        url: args.url,
        connections: args.connections,
        idle_sessions: args.idle_sessions,
    };
    let report = load::run(&options)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", load::runs_table(std::slice::from_ref(&report), false));
        if let Some(lag) = &report.send_lag_us {
            println!(
                "driver send lag (µs): p50 {:.1}  p99 {:.1}  max {:.1}",
                lag.p50, lag.p99, lag.max
            );
        }
    }
    Ok(report.clean())
}

fn disk(args: &DiskArgs) -> Result<bool> {
    let latency = load::disk::commit_latency(&args.dir, args.writes)
        .with_context(|| format!("probing the disk under `{}`", args.dir.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&latency)?);
    } else {
        println!(
            "disk commit (write 4 KiB + fsync, µs): p50 {:.1}  p99 {:.1}  max {:.1}",
            latency.p50, latency.p99, latency.max
        );
    }
    Ok(true)
}

fn compare(args: &CompareArgs) -> Result<bool> {
    if !args.reports.len().is_multiple_of(2) {
        bail!(
            "reports come in pairs (direct, gateway); got {}",
            args.reports.len()
        );
    }
    let reports = args
        .reports
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading `{}`", path.display()))?;
            serde_json::from_str::<Report>(&text)
                .with_context(|| format!("parsing `{}`", path.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let pairs: Vec<(Report, Report)> = reports
        .chunks_exact(2)
        .filter_map(|pair| match pair {
            [direct, gateway] => Some((direct.clone(), gateway.clone())),
            _ => None,
        })
        .collect();
    // A direct run may be paired with several gateway runs; show it once.
    let mut runs: Vec<Report> = Vec::new();
    for report in &reports {
        if !runs
            .iter()
            .any(|seen| seen.label == report.label && seen.load() == report.load())
        {
            runs.push(report.clone());
        }
    }
    println!("Runs (latency in µs):\n");
    print!("{}", load::runs_table(&runs, args.markdown));
    println!("\nGateway overhead (µs; added = gateway percentile − direct percentile):\n");
    print!("{}", load::compare_table(&pairs, args.markdown));
    Ok(reports.iter().all(Report::clean))
}
