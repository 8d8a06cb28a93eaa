//! Bad input gets a clear JSON error with the right status, nothing enters the
//! log, and the service answers normally afterwards.

use serde_json::json;

use crate::helpers::{event, TestApp, TestRedis};

/// One bad request: (what is wrong, headers, body, expected status, a phrase the error names).
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str);

/// Total entries across every shard stream.
fn logged(redis: &TestRedis) -> usize {
    (0..64).map(|s| redis.cli(&["XLEN", &format!("rd:{{{s}}}:events")]).parse::<usize>().unwrap()).sum()
}

/// Each bad event: (what, headers, body, status, a word of the error).
fn bad_events(long_user: &str) -> Vec<Case<'_>> {
    let json = || vec![("Content-Type", "application/json")];
    let raw = |what, body: &[u8], status, needle| (what, json(), body.to_vec(), status, needle);
    let ev = |what, e: serde_json::Value, status, needle| (what, json(), e.to_string().into_bytes(), status, needle);
    vec![
        raw("malformed JSON", b"{\"name\": ", 400, "malformed JSON"),
        raw("empty body", b"", 400, "empty"),
        raw("not an object", b"[1,2]", 400, "JSON object"),
        raw("missing user_id", br#"{"name":"scam_message_flagged","event_properties":{}}"#, 400, "user_id"),
        raw("empty user_id", br#"{"name":"scam_message_flagged","event_properties":{"user_id":""}}"#, 400, "empty"),
        raw("numeric user_id", br#"{"name":"scam_message_flagged","event_properties":{"user_id":5}}"#, 400, "string"),
        ev("user_id too long", event("scam_message_flagged", long_user, json!({})), 400, "256 characters"),
        raw(
            "control character",
            br#"{"name":"scam_message_flagged","event_properties":{"user_id":"a\u0007b"}}"#,
            400,
            "control",
        ),
        ("wrong content type", vec![("Content-Type", "text/plain")], b"{}".to_vec(), 415, "application/json"),
        raw("body over the limit", &[b' '; 4096], 413, "larger than 2048"),
        ev("unknown event", event("teleported", "u", json!({})), 422, "unknown event"),
        ev("missing amount", event("purchase_made", "u", json!({})), 422, "amount"),
        ev("amount as string", event("purchase_made", "u", json!({"amount": "10"})), 422, "number"),
        ev("negative amount", event("purchase_made", "u", json!({"amount": -3})), 422, "negative"),
        raw(
            "non-finite amount",
            br#"{"name":"purchase_made","event_properties":{"user_id":"u","amount":1e400}}"#,
            400,
            "malformed JSON",
        ),
        ev("too precise amount", event("purchase_made", "u", json!({"amount": 0.0000001})), 422, "decimal places"),
        ev("empty card id", event("credit_card_added", "u", json!({"card_id": "", "zip_code": "1"})), 422, "empty"),
        raw("bad wait", b"{}", 400, "wait"),
    ]
}

#[test]
fn each_bad_input_gets_its_status_and_a_json_error_and_nothing_is_logged() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[("RESTRICTD_INGEST__BODY_LIMIT_BYTES", "2048")]);
    let long_user = "x".repeat(257);
    let cases = bad_events(&long_user);
    for (what, headers, body, status, needle) in cases {
        let path = if what == "bad wait" { "/event?wait=forever" } else { "/event" };
        let r = app.request("POST", path, &headers, &body);
        assert_eq!(r.status, status, "{what}: {}", r.body);
        let error = r.json()["error"].as_str().unwrap_or_else(|| panic!("{what}: no error field")).to_string();
        assert!(error.contains(needle), "{what}: {error:?} should mention {needle:?}");
    }
    assert_eq!(logged(&redis), 0, "no bad input may enter the log");

    // Checks with bad input.
    assert_eq!(app.get("/canmessage").status, 400);
    assert_eq!(app.get("/canmessage?user_id=").status, 400);
    assert_eq!(app.get(&format!("/canmessage?user_id={long_user}")).status, 400);
    let r = app.get("/nowhere");
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].as_str().unwrap().contains("no route"));
    assert_eq!(app.request("DELETE", "/event", &[], b"").status, 405);

    // The service goes on as normal.
    app.post_applied(&event("scam_message_flagged", "after", json!({})));
    app.post_applied(&event("scam_message_flagged", "after", json!({})));
    assert!(!app.can("message", "after"));
    assert_eq!(logged(&redis), 2);
}

#[test]
fn a_missing_content_type_is_read_as_json_like_the_reference() {
    let redis = TestRedis::start();
    let app = TestApp::spawn(&redis);
    let body = event("scam_message_flagged", "nohdr", json!({})).to_string();
    let r = app.request("POST", "/event?wait=applied", &[], body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["applied"], true);
}

#[test]
fn extra_properties_are_accepted_and_percent_encoded_user_ids_are_read() {
    let redis = TestRedis::start();
    let app = TestApp::spawn(&redis);
    let user = "user one/ü";
    app.post_applied(&event("scam_message_flagged", user, json!({"channel": "chat", "score": 0.9})));
    app.post_applied(&event("scam_message_flagged", user, json!({})));
    let r = app.get("/canmessage?user_id=user%20one%2F%C3%BC");
    assert_eq!(r.json()["can_message"], false);
}

#[test]
fn unknown_events_can_be_accepted_by_config_without_touching_rules() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[("RESTRICTD_INGEST__UNKNOWN_EVENTS", "accept")]);
    let r = app.post_applied(&event("profile_viewed", "viewer", json!({})));
    assert_eq!(r["features"], json!({"can_message": true, "can_purchase": true}));
    assert_eq!(app.get("/v1/users/viewer").status, 404, "an unknown event creates no user");
    let metrics = app.get("/metrics").body;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("restrictd_events_total") && l.contains("unknown") && l.contains("ignored")),
        "{metrics}"
    );
}

#[test]
fn a_repeated_event_id_is_applied_once() {
    let redis = TestRedis::start();
    let app = TestApp::spawn(&redis);
    let mut e = event("scam_message_flagged", "retrier", json!({}));
    e["event_id"] = json!("evt-1");
    app.post_applied(&e);
    let again = app.post_applied(&e);
    assert_eq!(again["features"]["can_message"], true, "the retry was not counted twice");
    assert_eq!(app.get("/v1/users/retrier").json()["aggregates"]["scam_flags"], 1);
    e["event_id"] = json!("evt-2");
    assert_eq!(app.post_applied(&e)["features"]["can_message"], false);
}
