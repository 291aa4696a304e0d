//! The `portcullis` command line: a fail-closed policy gateway for MCP tool calls.
//!
//! `main` only parses arguments and dispatches; each subcommand lives in its own module.
#![forbid(unsafe_code)]

mod approvals;
mod audit;
mod check;
mod demo;
mod explain;
mod lease;
mod pack;
mod pin;
mod policy_file;
mod run;
mod scan;
mod schema;
mod serve;
mod store;
mod suggest;
mod test_cases;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc malloc: under load the gateway spent about a fifth of its CPU in
/// malloc and free, partly waiting on glibc's arena locks (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status: success, or a decision/check/test that did not pass.
pub(crate) const EXIT_OK: u8 = 0;
/// Exit status: a check or test failed, or a call was denied.
pub(crate) const EXIT_FAILED: u8 = 1;
/// Exit status: usage or runtime error (bad flags, unreadable files, a policy that does not load).
pub(crate) const EXIT_ERROR: u8 = 2;

const AFTER_HELP: &str = "\
EXIT STATUS:
    0  success
    1  check or test failed, a drift was found, or (for `audit verify`) the chain is broken
    2  usage or runtime error: bad flags, unreadable files, a policy that does not load

Every command that reads a policy takes --policy FILE (default ./portcullis.yaml).
Documentation: docs/policy.md (policy language), docs/cli.md (this command line).";

/// Portcullis puts a fail-closed policy on every MCP tool call.
///
/// A call goes through only when the policy positively allows it: no matching rule, a parse
/// error, an odd encoding or a missing field all mean deny.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about, long_about, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Check(check::CheckArgs),
    Explain(explain::ExplainArgs),
    Test(test_cases::TestArgs),
    Pack(pack::PackArgs),
    Schema(schema::SchemaArgs),
    Run(run::RunArgs),
    Serve(serve::ServeArgs),
    Audit(audit::AuditArgs),
    Approvals(approvals::ApprovalsArgs),
    Lease(lease::LeaseArgs),
    Demo(demo::DemoArgs),
    #[command(hide = true)]
    DemoServer(demo::DemoServerArgs),
    Pin(pin::PinArgs),
    Scan(scan::ScanArgs),
    Suggest(suggest::SuggestArgs),
    Store(store::StoreArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Explain(args) => explain::run(&args),
        Command::Test(args) => test_cases::run(&args),
        Command::Pack(args) => pack::run(&args),
        Command::Schema(args) => schema::run(&args),
        Command::Run(args) => run::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Audit(args) => audit::run(&args),
        Command::Approvals(args) => approvals::run(&args),
        Command::Lease(args) => lease::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::DemoServer(args) => demo::serve(&args),
        Command::Pin(args) => pin::run(&args),
        Command::Scan(args) => scan::run(&args),
        Command::Suggest(args) => suggest::run(&args),
        Command::Store(args) => store::run(&args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
