use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::error::{INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR};
use crate::json::JsonError;
use crate::limits::DEFAULT_MAX_MESSAGE_BYTES;

fn parse(text: &str) -> Result<Parsed, FrameError> {
    parse_message(text.as_bytes(), &Limits::default())
}

fn parse_bytes(bytes: &[u8]) -> Result<Parsed, FrameError> {
    parse_message(bytes, &Limits::default())
}

fn rejected(text: &str) -> FrameError {
    match parse(text) {
        Ok(parsed) => panic!("accepted {text}: {:?}", parsed.message()),
        Err(err) => err,
    }
}

/// Asserts the code, the readable id and the message of a rejection.
fn assert_rejected(text: &str, code: i64, id: Option<Id>, message: &str) {
    let err = rejected(text);
    assert_eq!(
        (err.code(), err.id(), err.to_string().as_str()),
        (code, id.as_ref(), message),
        "{text}"
    );
}

fn num(id: i64) -> Option<Id> {
    Some(Id::Number(id))
}

fn request(id: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#)
}

// ---- accepted shapes ----

#[test]
fn reads_a_request() {
    let parsed =
        parse(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}"#).unwrap();
    let mut params = Map::new();
    params.insert("name".into(), json!("x"));
    assert_eq!(
        parsed.message(),
        &Message::Request {
            id: Id::Number(1),
            method: "tools/call".into(),
            params: Some(params),
        }
    );
    assert_eq!(parsed.message().method(), Some("tools/call"));
    assert_eq!(parsed.message().id(), Some(&Id::Number(1)));
}

#[test]
fn reads_a_notification() {
    let parsed = parse(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
    assert_eq!(
        parsed.message(),
        &Message::Notification {
            method: "notifications/initialized".into(),
            params: None,
        }
    );
    assert_eq!(parsed.message().id(), None);
}

#[test]
fn reads_a_response() {
    let parsed = parse(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#).unwrap();
    assert_eq!(
        parsed.message(),
        &Message::Response {
            id: Id::String("a".into()),
            result: json!({}),
        }
    );
}

#[test]
fn reads_an_error_response_with_and_without_id() {
    let parsed =
        parse(r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"no","data":[1]}}"#)
            .unwrap();
    assert_eq!(
        parsed.message(),
        &Message::ErrorResponse {
            id: num(3),
            error: RpcError {
                code: -32601,
                message: "no".into(),
                data: Some(json!([1])),
            },
        }
    );
    let parsed =
        parse(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"bad"}}"#).unwrap();
    assert_eq!(parsed.message().id(), None);
}

#[test]
fn accepts_ids_at_the_safe_integer_edges_and_strings() {
    for (text, id) in [
        ("9007199254740991", Id::Number(MAX_SAFE_INTEGER)),
        ("-9007199254740991", Id::Number(-MAX_SAFE_INTEGER)),
        ("0", Id::Number(0)),
        (r#""abc""#, Id::String("abc".into())),
        (r#""""#, Id::String(String::new())),
    ] {
        assert_eq!(parse(&request(text)).unwrap().message().id(), Some(&id));
    }
}

#[test]
fn accepts_trailing_whitespace_and_cr() {
    let line = format!("{}\r", request("1"));
    assert!(parse(&line).is_ok());
    let line = format!("  {} \t\r\n", request("1"));
    assert!(parse(&line).is_ok());
}

// ---- round trip ----

#[test]
fn forwards_compact_input_byte_for_byte() {
    for text in [
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"calc","arguments":{"z":1.0,"a":18446744073709551616,"m":-0,"f":0.1000000000000000055511151231257827,"s":"é\n"}}}"#,
        r#"{"method":"tools/call","params":{"arguments":{"b":[1.50,2],"a":{}},"name":"x"},"id":"q","jsonrpc":"2.0"}"#,
        r#"{"id":2,"jsonrpc":"2.0","result":{"content":[],"big":123456789012345678901234567890}}"#,
    ] {
        let parsed = parse(text).unwrap();
        assert_eq!(String::from_utf8(parsed.to_bytes().unwrap()).unwrap(), text);
    }
}

#[test]
fn forwards_exponents_with_an_explicit_sign() {
    let parsed = parse(r#"{"jsonrpc":"2.0","method":"x","params":{"a":1e400,"b":1E-2}}"#).unwrap();
    assert_eq!(
        String::from_utf8(parsed.to_bytes().unwrap()).unwrap(),
        r#"{"jsonrpc":"2.0","method":"x","params":{"a":1e+400,"b":1e-2}}"#
    );
}

#[test]
fn forwards_pretty_input_compacted_with_order_kept() {
    let parsed =
        parse("{ \"jsonrpc\" : \"2.0\",\n \"method\": \"x\", \"params\": {\"b\": 1.0, \"a\": 2} }")
            .unwrap();
    assert_eq!(
        parsed.to_bytes().unwrap(),
        br#"{"jsonrpc":"2.0","method":"x","params":{"b":1.0,"a":2}}"#
    );
    let (message, value) = parsed.into_parts();
    assert_eq!(message.method(), Some("x"));
    assert_eq!(value["params"]["b"].to_string(), "1.0");
}

// ---- framing errors: -32700 ----

#[test]
fn invalid_json_is_a_parse_error() {
    let err = rejected(r#"{"jsonrpc":"2.0","id":1,"method":"ping""#);
    assert_eq!((err.code(), err.id()), (PARSE_ERROR, None));
    assert!(matches!(
        err.kind(),
        FrameErrorKind::Json(JsonError::Syntax { .. })
    ));
}

#[test]
fn non_utf8_is_a_parse_error() {
    for bytes in [
        &b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\"}"[..],
        &b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xC0\xAE\"}"[..],
    ] {
        let err = parse_bytes(bytes).unwrap_err();
        assert_eq!(
            (err.code(), err.id(), err.kind()),
            (
                PARSE_ERROR,
                None,
                &FrameErrorKind::Json(JsonError::InvalidUtf8 { offset: 34 })
            )
        );
    }
}

#[test]
fn bom_is_a_parse_error() {
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(request("1").as_bytes());
    let err = parse_bytes(&bytes).unwrap_err();
    assert_eq!(
        (err.code(), err.id(), err.to_string().as_str()),
        (PARSE_ERROR, None, "message starts with a byte-order mark")
    );
}

#[test]
fn duplicate_keys_are_parse_errors() {
    assert_rejected(
        r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#,
        PARSE_ERROR,
        None,
        "duplicate key `id` in the object at ``",
    );
    assert_rejected(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"ping"}"#,
        PARSE_ERROR,
        None,
        "duplicate key `method` in the object at ``",
    );
    assert_rejected(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"rm","arguments":{"path":"/ws/a","path":"/etc/passwd"}}}"#,
        PARSE_ERROR,
        None,
        "duplicate key `path` in the object at `/params/arguments`",
    );
}

fn nested_request(depth: usize) -> String {
    // The envelope is depth 1, params 2, arguments 3; the arrays fill the rest.
    let arrays = depth - 3;
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"x","arguments":{{"a":{}{}}}}}}}"#,
        "[".repeat(arrays),
        "]".repeat(arrays)
    )
}

#[test]
fn depth_limit_is_inclusive() {
    assert!(parse(&nested_request(64)).is_ok());
    let err = rejected(&nested_request(65));
    assert_eq!((err.code(), err.id()), (PARSE_ERROR, None));
    assert!(
        err.to_string()
            .starts_with("nesting exceeds the depth limit of 64 at `/params/arguments/a/0/0"),
        "{err}"
    );
}

#[test]
fn deeply_nested_input_is_an_error_not_a_crash() {
    let err = parse_bytes("[".repeat(100_000).as_bytes()).unwrap_err();
    assert_eq!(err.code(), PARSE_ERROR);
    assert!(matches!(
        err.kind(),
        FrameErrorKind::Json(JsonError::TooDeep { .. })
    ));
}

fn padded_request(size: usize) -> Vec<u8> {
    let head = r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":""#;
    let tail = r#""}}"#;
    let pad = size - head.len() - tail.len();
    format!("{head}{}{tail}", "x".repeat(pad)).into_bytes()
}

#[test]
fn size_limit_is_inclusive() {
    let exact = padded_request(DEFAULT_MAX_MESSAGE_BYTES);
    assert_eq!(exact.len(), 4 * 1024 * 1024);
    assert!(parse_bytes(&exact).is_ok());
    let over = padded_request(DEFAULT_MAX_MESSAGE_BYTES + 1);
    let err = parse_bytes(&over).unwrap_err();
    assert_eq!(
        (err.code(), err.id(), err.to_string().as_str()),
        (
            PARSE_ERROR,
            None,
            "message of 4194305 bytes exceeds the limit of 4194304 bytes"
        )
    );
}

#[test]
fn lone_surrogate_is_a_parse_error() {
    let err =
        rejected(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\ud800"}}"#);
    assert_eq!((err.code(), err.id()), (PARSE_ERROR, None));
}

#[test]
fn nan_and_comments_are_parse_errors() {
    for text in [
        r#"{"jsonrpc":"2.0","id":NaN,"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":Infinity}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"ping"} // comment"#,
        r#"// comment"#,
    ] {
        let err = rejected(text);
        assert_eq!((err.code(), err.id()), (PARSE_ERROR, None), "{text}");
    }
}

#[test]
fn two_objects_on_one_line_are_a_parse_error() {
    let line = format!("{}{}", request("1"), request("2"));
    let err = rejected(&line);
    assert_eq!((err.code(), err.id()), (PARSE_ERROR, None));
    let column = request("1").len() + 1;
    assert_eq!(
        err.kind(),
        &FrameErrorKind::Json(JsonError::TrailingData { line: 1, column })
    );
}

#[test]
fn empty_input_is_a_parse_error() {
    for text in ["", "\r\n", "   "] {
        let err = rejected(text);
        assert_eq!((err.code(), err.id()), (PARSE_ERROR, None), "{text:?}");
    }
}

// ---- shape errors: -32600 ----

#[test]
fn batch_is_an_invalid_request() {
    assert_rejected(
        &format!("[{}]", request("1")),
        INVALID_REQUEST,
        None,
        "batch arrays are not supported",
    );
    assert_rejected(
        "[]",
        INVALID_REQUEST,
        None,
        "batch arrays are not supported",
    );
}

#[test]
fn scalar_is_an_invalid_request() {
    assert_rejected(
        r#""hello""#,
        INVALID_REQUEST,
        None,
        "message must be an object, found a string",
    );
    assert_rejected(
        "null",
        INVALID_REQUEST,
        None,
        "message must be an object, found null",
    );
}

#[test]
fn wrong_or_missing_version_is_an_invalid_request_with_id() {
    assert_rejected(
        r#"{"jsonrpc":"1.0","id":5,"method":"ping"}"#,
        INVALID_REQUEST,
        num(5),
        r#"`jsonrpc` must be "2.0", found `"1.0"`"#,
    );
    assert_rejected(
        r#"{"jsonrpc":2.0,"id":5,"method":"ping"}"#,
        INVALID_REQUEST,
        num(5),
        r#"`jsonrpc` must be "2.0", found `2.0`"#,
    );
    assert_rejected(
        r#"{"id":"s","method":"ping"}"#,
        INVALID_REQUEST,
        Some(Id::String("s".into())),
        "missing member `jsonrpc`",
    );
}

#[test]
fn invalid_ids_are_invalid_requests_without_id() {
    for (text, found) in [
        ("null", "`null`"),
        (r#"{"a":1}"#, "an object"),
        ("[1]", "an array"),
        ("true", "`true`"),
        ("1.5", "`1.5`"),
        ("1e3", "`1e+3`"),
        ("1.0", "`1.0`"),
        ("-0", "`-0`"),
        ("9007199254740992", "`9007199254740992`"),
        ("-9007199254740992", "`-9007199254740992`"),
        ("18446744073709551616", "`18446744073709551616`"),
    ] {
        assert_rejected(
            &request(text),
            INVALID_REQUEST,
            None,
            &format!("`id` must be a string or an integer within ±(2^53-1), found {found}"),
        );
    }
}

#[test]
fn long_values_are_cut_in_messages() {
    let long = "x".repeat(1000);
    let err = rejected(&format!(r#"{{"jsonrpc":"{long}","id":1,"method":"ping"}}"#));
    assert!(err.to_string().len() < 120, "{err}");
    assert!(err.to_string().ends_with("…`"), "{err}");
}

#[test]
fn method_must_be_a_string() {
    assert_rejected(
        r#"{"jsonrpc":"2.0","id":1,"method":42}"#,
        INVALID_REQUEST,
        num(1),
        "`method` must be a string, found a number",
    );
}

#[test]
fn unknown_members_are_invalid_requests() {
    assert_rejected(
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","extra":true}"#,
        INVALID_REQUEST,
        num(1),
        "unknown member `extra`",
    );
    assert_rejected(
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","Params":{}}"#,
        INVALID_REQUEST,
        num(1),
        "unknown member `Params`",
    );
}

#[test]
fn members_of_the_wrong_message_kind_are_invalid_requests() {
    assert_rejected(
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}"#,
        INVALID_REQUEST,
        num(1),
        "member `result` is not allowed in a request",
    );
    assert_rejected(
        r#"{"jsonrpc":"2.0","method":"ping","error":{}}"#,
        INVALID_REQUEST,
        None,
        "member `error` is not allowed in a notification",
    );
    assert_rejected(
        r#"{"jsonrpc":"2.0","id":1,"result":{},"params":{}}"#,
        INVALID_REQUEST,
        num(1),
        "member `params` is not allowed in a response",
    );
}

#[test]
fn responses_need_exactly_one_of_result_and_error() {
    assert_rejected(
        r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"m"}}"#,
        INVALID_REQUEST,
        num(1),
        "response has both `result` and `error`",
    );
    assert_rejected(
        r#"{"jsonrpc":"2.0","id":1}"#,
        INVALID_REQUEST,
        num(1),
        "message is neither a request, a notification nor a response",
    );
    assert_rejected(
        r#"{"jsonrpc":"2.0"}"#,
        INVALID_REQUEST,
        None,
        "message is neither a request, a notification nor a response",
    );
}

#[test]
fn responses_need_an_id() {
    assert_rejected(
        r#"{"jsonrpc":"2.0","result":{}}"#,
        INVALID_REQUEST,
        None,
        "missing member `id`",
    );
    assert_rejected(
        r#"{"jsonrpc":"2.0","error":{"code":1,"message":"m"}}"#,
        INVALID_REQUEST,
        None,
        "missing member `id`",
    );
    let err = rejected(r#"{"jsonrpc":"2.0","id":null,"result":{}}"#);
    assert_eq!((err.code(), err.id()), (INVALID_REQUEST, None));
}

#[test]
fn error_objects_are_read_strictly() {
    for (error, reason) in [
        ("1", "`error` must be an object, found a number"),
        (r#"{"message":"m"}"#, "missing member `code`"),
        (r#"{"code":1}"#, "missing member `message`"),
        (
            r#"{"code":1.5,"message":"m"}"#,
            "`code` must be an integer, found `1.5`",
        ),
        (
            r#"{"code":"1","message":"m"}"#,
            "`code` must be an integer, found a string",
        ),
        (
            r#"{"code":1,"message":2}"#,
            "`message` must be a string, found a number",
        ),
        (r#"{"code":1,"message":"m","x":0}"#, "unknown member `x`"),
    ] {
        assert_rejected(
            &format!(r#"{{"jsonrpc":"2.0","id":9,"error":{error}}}"#),
            INVALID_REQUEST,
            num(9),
            &format!("invalid error object: {reason}"),
        );
    }
}

// ---- params: -32602 ----

#[test]
fn params_must_be_an_object() {
    for (params, found) in [
        ("[1,2]", "an array"),
        (r#""x""#, "a string"),
        ("null", "null"),
        ("3", "a number"),
    ] {
        assert_rejected(
            &format!(r#"{{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{params}}}"#),
            INVALID_PARAMS,
            num(4),
            &format!("`params` must be an object, found {found}"),
        );
    }
    let err = rejected(r#"{"jsonrpc":"2.0","method":"notifications/progress","params":[]}"#);
    assert_eq!((err.code(), err.id()), (INVALID_PARAMS, None));
}

// ---- error responses ----

#[test]
fn frame_errors_become_error_responses() {
    let err = rejected(r#"{"jsonrpc":"1.0","id":"r","method":"ping"}"#);
    assert_eq!(
        serde_json::to_string(&err.to_response()).unwrap(),
        r#"{"jsonrpc":"2.0","id":"r","error":{"code":-32600,"message":"`jsonrpc` must be \"2.0\", found `\"1.0\"`"}}"#
    );
    let err = rejected("{");
    assert_eq!(err.to_response()["id"], Value::Null);
    assert_eq!(err.to_response()["error"]["code"], json!(-32700));
}

#[test]
fn builds_error_response_with_data() {
    let value =
        crate::error::error_response(Some(&Id::Number(1)), -32601, "no", Some(json!({"m": "x"})));
    assert_eq!(
        serde_json::to_string(&value).unwrap(),
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no","data":{"m":"x"}}}"#
    );
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_bytes(&bytes);
    }

    #[test]
    fn never_panics_on_message_like_text(
        text in r#"\{("(jsonrpc|id|method|params|result|error|2\.0|x)"|[:,0-9.e\[\]{}-]|null|true){0,40}\}"#
    ) {
        let _ = parse(&text);
    }

    #[test]
    fn accepted_messages_reparse_to_the_same_value(id in -MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER, s in ".{0,20}") {
        let value = json!({"jsonrpc": "2.0", "id": id, "method": s, "params": {"s": s}});
        let bytes = serde_json::to_vec(&value).unwrap();
        let parsed = parse_bytes(&bytes).unwrap();
        prop_assert_eq!(parsed.to_bytes().unwrap(), bytes);
    }
}
