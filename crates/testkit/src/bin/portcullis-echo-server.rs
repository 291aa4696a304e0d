//! A small MCP server for tests; see `portcullis_testkit::echo`.
#![forbid(unsafe_code)]

fn main() {
    std::process::exit(portcullis_testkit::echo::serve());
}
