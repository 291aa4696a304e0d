use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::json::pointer::Segment;

fn parse(text: &[u8]) -> Result<Value, JsonError> {
    parse_json(text, &Limits::default())
}

fn nested_arrays(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn syntax_message(result: Result<Value, JsonError>) -> String {
    match result {
        Err(JsonError::Syntax { message, .. }) => message,
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn parses_a_plain_object_keeping_key_order() {
    let value = parse(br#"{"b":1,"a":[true,null,"x"]}"#).unwrap();
    let keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["b", "a"]);
    assert_eq!(value, json!({"b": 1, "a": [true, null, "x"]}));
}

#[test]
fn keeps_number_text() {
    for text in [
        "1.0",
        "1e+400",
        "1e-7",
        "18446744073709551616",
        "-0",
        "-0.0",
        "0.1",
        "-9223372036854775809",
        "123456789012345678901234567890.5e-7",
    ] {
        let value = parse(text.as_bytes()).unwrap();
        assert_eq!(serde_json::to_string(&value).unwrap(), text);
    }
}

#[test]
fn normalizes_only_the_exponent_marker() {
    // serde_json's arbitrary-precision scanner writes the exponent as `e` with an explicit sign;
    // `serde_json::Number` offers no public way to keep the original spelling. Both spellings are
    // the same number to every JSON parser, so no differential arises.
    for (text, kept) in [
        ("1e400", "1e+400"),
        ("1E400", "1e+400"),
        ("2.5E-3", "2.5e-3"),
    ] {
        let value = parse(text.as_bytes()).unwrap();
        assert_eq!(serde_json::to_string(&value).unwrap(), kept);
    }
}

#[test]
fn rejects_duplicate_key_at_top_level() {
    assert_eq!(
        parse(br#"{"a":1,"b":2,"a":3}"#),
        Err(JsonError::DuplicateKey {
            key: "a".into(),
            pointer: Pointer::default(),
        })
    );
}

#[test]
fn rejects_duplicate_key_nested_with_pointer() {
    let err = parse(br#"{"p":{"x":[{"ok":1},{"a/b":{"k":1,"k":2}}]}}"#).unwrap_err();
    assert_eq!(
        err,
        JsonError::DuplicateKey {
            key: "k".into(),
            pointer: Pointer::from_segments(&[
                Segment::Key("p".into()),
                Segment::Key("x".into()),
                Segment::Index(1),
                Segment::Key("a/b".into()),
            ]),
        }
    );
    assert_eq!(
        err.to_string(),
        "duplicate key `k` in the object at `/p/x/1/a~1b`"
    );
}

#[test]
fn rejects_duplicate_key_spelled_with_an_escape() {
    assert_eq!(
        parse(br#"{"a":1,"\u0061":2}"#),
        Err(JsonError::DuplicateKey {
            key: "a".into(),
            pointer: Pointer::default(),
        })
    );
}

#[test]
fn accepts_depth_at_the_limit_and_rejects_one_more() {
    let limits = Limits::default();
    assert!(parse_json(nested_arrays(64).as_bytes(), &limits).is_ok());
    let err = parse_json(nested_arrays(65).as_bytes(), &limits).unwrap_err();
    let JsonError::TooDeep { limit, pointer } = err else {
        panic!("expected too deep, got {err:?}");
    };
    assert_eq!(limit, 64);
    assert_eq!(pointer.as_str(), "/0".repeat(64));
}

#[test]
fn counts_objects_and_arrays_alike_for_depth() {
    let limits = Limits {
        max_depth: 3,
        ..Limits::default()
    };
    assert!(parse_json(br#"{"a":[{}]}"#, &limits).is_ok());
    assert!(parse_json(br#"{"a":[{"b":1.5}]}"#, &limits).is_ok());
    assert_eq!(
        parse_json(br#"{"a":[{"b":[]}]}"#, &limits),
        Err(JsonError::TooDeep {
            limit: 3,
            pointer: Pointer::from_segments(&[
                Segment::Key("a".into()),
                Segment::Index(0),
                Segment::Key("b".into()),
            ]),
        })
    );
}

#[test]
fn rejects_deep_input_without_overflowing_the_stack() {
    let deep = "[".repeat(100_000);
    assert!(matches!(
        parse(deep.as_bytes()),
        Err(JsonError::TooDeep { limit: 64, .. })
    ));
    let deep_objects = "{\"a\":".repeat(100_000);
    assert!(matches!(
        parse(deep_objects.as_bytes()),
        Err(JsonError::TooDeep { limit: 64, .. })
    ));
}

#[test]
fn serde_json_recursion_limit_is_an_error_when_the_configured_limit_is_higher() {
    let limits = Limits {
        max_depth: 10_000,
        ..Limits::default()
    };
    let message = syntax_message(parse_json("[".repeat(100_000).as_bytes(), &limits));
    assert!(message.starts_with("recursion limit exceeded"), "{message}");
}

#[test]
fn size_limit_is_inclusive() {
    let limits = Limits {
        max_message_bytes: 10,
        ..Limits::default()
    };
    assert!(parse_json(br#"{"a":"12"}"#, &limits).is_ok());
    assert_eq!(
        parse_json(br#"{"a":"123"}"#, &limits),
        Err(JsonError::TooLarge {
            size: 11,
            limit: 10
        })
    );
}

#[test]
fn rejects_byte_order_mark() {
    assert_eq!(parse(b"\xEF\xBB\xBF{}"), Err(JsonError::ByteOrderMark));
}

#[test]
fn rejects_invalid_utf8() {
    assert_eq!(
        parse(b"{\"a\":\"\xff\"}"),
        Err(JsonError::InvalidUtf8 { offset: 6 })
    );
    // An overlong encoding of `.`.
    assert_eq!(
        parse(b"{\"a\":\"\xC0\xAE\"}"),
        Err(JsonError::InvalidUtf8 { offset: 6 })
    );
    assert_eq!(parse(b"\xff"), Err(JsonError::InvalidUtf8 { offset: 0 }));
}

#[test]
fn rejects_lone_surrogates() {
    for text in [
        r#"{"a":"\ud800"}"#,
        r#"{"a":"\udc00"}"#,
        r#"{"a":"\ud800x"}"#,
        r#"{"\ud800":1}"#,
    ] {
        let message = syntax_message(parse(text.as_bytes()));
        assert!(
            message.contains("surrogate") || message.contains("hex escape"),
            "{text}: {message}"
        );
    }
    assert_eq!(
        parse(br#""\ud83d\ude00""#),
        Ok(Value::String("\u{1F600}".into()))
    );
}

#[test]
fn rejects_non_finite_numbers_and_comments() {
    for text in [
        "NaN",
        "{\"a\":NaN}",
        "{\"a\":Infinity}",
        "{\"a\":-Infinity}",
        "{\"a\":1} // comment",
        "// comment\n{}",
        "/* c */ {}",
        "{\"a\":01}",
        "{\"a\":1.}",
        "{'a':1}",
        "{\"a\":1,}",
    ] {
        assert!(
            matches!(
                parse(text.as_bytes()),
                Err(JsonError::Syntax { .. } | JsonError::TrailingData { .. })
            ),
            "{text}"
        );
    }
}

#[test]
fn rejects_two_values_on_one_line() {
    assert_eq!(
        parse(br#"{"a":1}{"a":2}"#),
        Err(JsonError::TrailingData { line: 1, column: 8 })
    );
    assert_eq!(
        parse(b"{} x"),
        Err(JsonError::TrailingData { line: 1, column: 4 })
    );
}

#[test]
fn accepts_surrounding_whitespace_including_cr() {
    assert_eq!(parse(b" \t{}\r\n"), Ok(json!({})));
    assert_eq!(parse(b"{}\r"), Ok(json!({})));
}

#[test]
fn rejects_empty_input() {
    let message = syntax_message(parse(b""));
    assert!(
        message.starts_with("EOF while parsing a value"),
        "{message}"
    );
    assert!(matches!(parse(b"  \r\n"), Err(JsonError::Syntax { .. })));
}

#[test]
fn rejects_the_reserved_number_key() {
    for text in [
        r#"{"$serde_json::private::Number":"1"}"#,
        r#"{"$serde_json::private::Number":1}"#,
        r#"{"$serde_json::private::Number":"1","b":2}"#,
        r#"{"a":1,"$serde_json::private::Number":"1"}"#,
        r#"{"\u0024serde_json::private::Number":"1"}"#,
    ] {
        assert!(
            matches!(parse(text.as_bytes()), Err(JsonError::ReservedKey { .. })),
            "{text}"
        );
    }
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse(&bytes);
    }

    #[test]
    fn never_panics_on_json_like_text(text in r#"[\[\]{}":,0-9a-z\\ .eE+-]{0,128}"#) {
        let _ = parse(text.as_bytes());
    }
}

#[test]
fn long_keys_and_pointers_are_cut_in_messages() {
    let key = "k".repeat(10_000);
    let text = format!(r#"{{"{key}":{{"{key}":1,"{key}":2}}}}"#);
    let err = parse(text.as_bytes()).unwrap_err();
    let JsonError::DuplicateKey { key: got, pointer } = &err else {
        panic!("expected a duplicate key, got {err:?}");
    };
    assert_eq!((got.len(), pointer.as_str().len()), (10_000, 10_001));
    let message = err.to_string();
    assert!(message.len() < 400, "{} bytes", message.len());
    assert!(message.starts_with(&format!("duplicate key `{}…`", "k".repeat(64))));
}

#[test]
fn pointer_display_cuts_on_char_boundaries() {
    let pointer = Pointer::from_segments(&[Segment::Key("é".repeat(500))]);
    let shown = pointer.to_string();
    assert!(shown.starts_with("/é"));
    assert!(shown.contains('…'));
    assert!(shown.len() <= 210);
}
