use super::*;
use serde_json::json;
use std::collections::BTreeMap;

fn schema() -> Schema {
    let mut defs = BTreeMap::new();
    defs.insert("scam_message_flagged".to_string(), EventDef::default());
    let mut props = BTreeMap::new();
    props.insert("amount".to_string(), PropType::Money);
    defs.insert("purchase_made".to_string(), EventDef { properties: props });
    Schema::compile(&defs, false).unwrap()
}

#[test]
fn a_valid_event_borrows_its_values() {
    let v = json!({"name": "purchase_made", "event_properties": {"user_id": "u1", "amount": 12.5}});
    let e = schema().validate(&v).unwrap();
    assert_eq!(e.user_id, "u1");
    assert_eq!(e.values[0], PropValue::Money(Money(12_500_000)));
}

fn rich_schema(accept_unknown: bool) -> Schema {
    let mut defs = BTreeMap::new();
    let props: BTreeMap<String, PropType> =
        [("amount", PropType::Money), ("zip", PropType::String), ("n", PropType::Integer), ("ok", PropType::Bool)]
            .into_iter()
            .map(|(k, t)| (k.to_string(), t))
            .collect();
    defs.insert("e".to_string(), EventDef { properties: props });
    Schema::compile(&defs, accept_unknown).unwrap()
}

#[test]
fn the_fast_path_agrees_with_validate_or_steps_aside() {
    let cases = [
        r#"{"name":"e","event_properties":{"user_id":"u1","amount":12.5,"zip":"94105","n":-3,"ok":true}}"#,
        r#"{"name":"e","event_properties":{"user_id":"u1","amount":0.1,"zip":"z","n":0,"ok":false},"event_id":"x"}"#,
        r#"{"event_id":null,"name":"e","extra":[1],"event_properties":{"ok":true,"n":7,"zip":"a","amount":1e2,"user_id":"u"}}"#,
        r#"{"name":"e","event_properties":{"user_id":"u","amount":1,"zip":"a","n":1,"ok":true,"user_id":"v"}}"#,
        r#"{"name":"e","event_properties":{"user_id":"ué","amount":1,"zip":"a","n":1,"ok":true}}"#,
        r#"{"name":"e","event_properties":{"user_id":"u","amount":123456789012.123456,"zip":"a","n":1,"ok":true}}"#,
        r#"{"name":"e","event_properties":{"user_id":"u","amount":0.0000001,"zip":"a","n":1,"ok":true}}"#,
        r#"{"name":"e","event_properties":{"user_id":"u","amount":-1,"zip":"a","n":1,"ok":true}}"#,
        r#"{"name":"e","event_properties":{"user_id":"u","amount":"1","zip":"a","n":1.5,"ok":1}}"#,
        r#"{"name":"e","event_properties":{"user_id":"","amount":1,"zip":"","n":1,"ok":true}}"#,
        r#"{"name":"e","event_properties":{"user_id":42,"amount":1,"zip":"a","n":1,"ok":true}}"#,
        r#"{"name":"e","event_properties":{"amount":1,"zip":"a","n":1,"ok":true}}"#,
        r#"{"name":"other","event_properties":{"user_id":"u"}}"#,
        r#"{"name":"","event_properties":{"user_id":"u"}}"#,
        r#"{"name":"e","name":"e","event_properties":{"user_id":"u"}}"#,
        r#"{"name":"e","event_properties":{"user_id":"u","amount":1,"zip":"a","n":1,"ok":true},"event_id":""}"#,
        r#"[1,2]"#,
        r#"{"name":"e","event_properties":{"user_id":"u"}} trailing"#,
    ];
    for accept_unknown in [false, true] {
        let s = rich_schema(accept_unknown);
        let mut fast_taken = 0;
        for case in cases {
            let mut scratch = None;
            let slow = s.validate_full(case.as_bytes(), &mut scratch);
            if let Some(fast) = s.validate_fast(case.as_bytes()) {
                fast_taken += 1;
                let Ok(slow) = slow else { panic!("fast accepted what validate refuses: {case}") };
                assert_eq!(
                    (fast.name, fast.kind, fast.user_id, fast.event_id, fast.values),
                    (slow.name, slow.kind, slow.user_id, slow.event_id, slow.values),
                    "{case}"
                );
            }
        }
        assert!(fast_taken >= 4 + usize::from(accept_unknown), "the common case takes the fast path");
    }
}

#[test]
fn an_event_with_more_properties_than_the_fast_path_holds_is_still_valid() {
    let s = rich_schema(false);
    let case = r#"{"name":"e","event_properties":{"user_id":"u","amount":1,"zip":"a","n":1,"ok":true,
        "x1":1,"x2":2,"x3":3,"x4":4}}"#;
    assert!(s.validate_fast(case.as_bytes()).is_none(), "nine properties: the Value path");
    let value: Value = serde_json::from_str(case).unwrap();
    let event = s.validate(&value).expect("extra properties are allowed");
    assert_eq!(event.user_id, "u");
}

#[test]
fn bad_events_say_what_is_wrong() {
    let s = schema();
    let cases = [
        (json!([1]), Rejection::Malformed, "JSON object"),
        (json!({"name": "x"}), Rejection::Malformed, "event_properties"),
        (json!({"name": "purchase_made", "event_properties": {}}), Rejection::Malformed, "user_id"),
        (json!({"name": "purchase_made", "event_properties": {"user_id": ""}}), Rejection::Malformed, "empty"),
        (json!({"name": "purchase_made", "event_properties": {"user_id": 5}}), Rejection::Malformed, "string"),
        (json!({"name": "nope", "event_properties": {"user_id": "u"}}), Rejection::Unprocessable, "unknown event"),
        (
            json!({"name": "purchase_made", "event_properties": {"user_id": "u"}}),
            Rejection::Unprocessable,
            "requires property \"amount\"",
        ),
        (
            json!({"name": "purchase_made", "event_properties": {"user_id": "u", "amount": -1}}),
            Rejection::Unprocessable,
            "negative",
        ),
        (
            json!({"name": "purchase_made", "event_properties": {"user_id": "u", "amount": "5"}}),
            Rejection::Unprocessable,
            "must be a number",
        ),
        (
            json!({"name": "purchase_made", "event_properties": {"user_id": "a\u{0}b", "amount": 1}}),
            Rejection::Malformed,
            "control",
        ),
    ];
    for (input, kind, needle) in cases {
        let err = s.validate(&input).unwrap_err();
        assert_eq!(err.kind, kind, "{input}");
        assert!(err.message.contains(needle), "{input}: {}", err.message);
    }
}
