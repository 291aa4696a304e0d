//! A small MCP server for tests; see `portcullis_testkit::echo`.
//!
//! Without arguments it serves stdio. `--http ADDR` serves Streamable HTTP on ADDR instead
//! (`127.0.0.1:0` picks a free port; the first line of standard output names it); see
//! `portcullis_testkit::echo_http`.
//!
//! Environment (stdio): `PORTCULLIS_ECHO_RECORD=FILE` appends every received line to FILE
//! (`{pid}` in FILE becomes the process id); `PORTCULLIS_ECHO_HOLD_INITIALIZE=FILE` holds back
//! the answer to `initialize` while FILE exists (at most 60 s); `PORTCULLIS_ECHO_VARIANT` picks
//! a variant of the tool list. See `portcullis_testkit::echo`.
#![forbid(unsafe_code)]

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let status = match args.as_slice() {
        [] => portcullis_testkit::echo::serve(),
        [flag, addr] if flag == "--http" => match addr.parse() {
            Ok(addr) => match portcullis_testkit::echo_http::serve(addr) {
                Ok(()) => 0,
                Err(error) => {
                    eprintln!("portcullis-echo-server: {error}");
                    2
                }
            },
            Err(_) => {
                eprintln!("portcullis-echo-server: `{addr}` is not an address like 127.0.0.1:0");
                2
            }
        },
        _ => {
            eprintln!("usage: portcullis-echo-server [--http ADDR]");
            eprintln!(
                "environment (stdio): PORTCULLIS_ECHO_RECORD=FILE (`{{pid}}` becomes the process id), PORTCULLIS_ECHO_HOLD_INITIALIZE=FILE, PORTCULLIS_ECHO_VARIANT=NAME"
            );
            2
        }
    };
    std::process::exit(status);
}
