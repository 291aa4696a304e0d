//! Property of `jsonrpc_frame`: `parse_message` never panics on any bytes, and what the gateway
//! forwards (the re-serialization of a parsed message) parses again to the same message and the
//! same bytes: no parser differential between what was evaluated and what is forwarded.

use portcullis_mcp::{Limits, parse_message};

/// Panics when the property fails for `data`.
pub(crate) fn check(data: &[u8]) {
    let limits = Limits::default();
    let Ok(parsed) = parse_message(data, &limits) else {
        return;
    };
    let forwarded = parsed.to_bytes().expect("a parsed value serializes");
    let again = parse_message(&forwarded, &limits).expect("the forwarded bytes parse again");
    assert_eq!(
        again.message(),
        parsed.message(),
        "the message changed on the way"
    );
    assert_eq!(
        again.to_bytes().expect("serializes"),
        forwarded,
        "the forwarded bytes are not a fixed point"
    );
}
