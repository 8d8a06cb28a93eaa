//! Answers that must be true and refusals that must be clear: rule names
//! and durations checked at publish, a rollback that would change nothing,
//! event times before 1970.

use serde_json::json;

use crate::helpers::{event, TestApp, TestRedis};
use crate::rulesets::{admin, rules_with, ADMIN};

#[test]
fn a_rule_name_outside_the_url_alphabet_and_a_zero_restrict_for_are_refused_with_their_key() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[ADMIN]);
    let mut named = rules_with("scam_flags >= 2");
    let rule = named["rules"]["scam_message_rule"].clone();
    named["rules"]["bad name!"] = rule.clone();
    let r = admin(&app, "PUT", "/v1/rules", "application/json", named.to_string().as_bytes(), &[]);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("rules.bad name!") && r.body.contains("letters, digits"), "{}", r.body);

    let mut zero = rules_with("scam_flags >= 2");
    zero["rules"]["scam_message_rule"]["restrict_for"] = json!("0s");
    let r = admin(&app, "PUT", "/v1/rules", "application/json", zero.to_string().as_bytes(), &[]);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("rules.scam_message_rule.restrict_for"), "{}", r.body);
    assert_eq!(app.get("/v1/rules").json()["version"], json!(1), "nothing was published");
}

#[test]
fn a_rollback_to_the_current_version_is_refused_and_publishes_nothing() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[ADMIN]);
    let two = rules_with("scam_flags >= 3").to_string();
    assert_eq!(admin(&app, "PUT", "/v1/rules", "application/json", two.as_bytes(), &[]).status, 200);
    let r = admin(&app, "POST", "/v1/rules/rollback", "application/json", br#"{"to": 2}"#, &[]);
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.json()["error"].as_str().unwrap().contains("current version already"), "{}", r.body);
    assert_eq!(redis.cli(&["HLEN", "rd:{rules}:versions"]), "2");
    let r = admin(&app, "POST", "/v1/rules/rollback", "application/json", br#"{"to": 1}"#, &[]);
    assert_eq!(r.status, 200, "an earlier version still rolls back: {}", r.body);
}

#[test]
fn an_event_time_before_1970_is_too_old_not_unreadable() {
    let redis = TestRedis::start();
    let app = TestApp::spawn(&redis);
    for at in [json!("1969-12-31T23:59:59Z"), json!(-5)] {
        let mut e = event("scam_message_flagged", "old", json!({}));
        e["occurred_at"] = at.clone();
        let r = app.post("/event", &e);
        assert_eq!(r.status, 422, "{at}: {}", r.body);
        assert_eq!(r.json()["reason"], json!("event_too_old"), "{at}: {}", r.body);
    }
}

#[test]
fn requests_that_cannot_be_parsed_get_400_and_write_no_log_line() {
    use std::io::{Read, Write};
    let redis = TestRedis::start();
    let app = TestApp::spawn(&redis);
    for _ in 0..20 {
        let mut s = std::net::TcpStream::connect(&app.addr).unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n").unwrap();
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    }
    // One more request that is logged normally, so the log is known to be flushed up to here.
    assert_eq!(app.get("/health").status, 200);
    let log = app.log();
    assert!(!log.contains("ERROR"), "a client's bad bytes fill no log:\n{log}");
}

#[test]
fn a_rollback_past_a_feature_keeps_it_and_re_added_rules_take_no_new_place() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[ADMIN]);
    let publish = |body: &serde_json::Value| {
        let r = admin(&app, "PUT", "/v1/rules?wait=applied", "application/json", body.to_string().as_bytes(), &[]);
        assert_eq!(r.status, 200, "{}", r.body);
    };
    // Version 2 adds a feature and a rule restricting it; version 3 removes
    // scam_message_rule, version 4 adds it back as it was.
    let mut two = rules_with("scam_flags >= 2");
    two["features"]["can_comment"] = json!({"description": "comment"});
    let mut comment_rule = two["rules"]["scam_message_rule"].clone();
    comment_rule["restrict"] = json!(["can_comment"]);
    two["rules"]["comment_rule"] = comment_rule;
    publish(&two);
    let mut three = two.clone();
    three["rules"].as_object_mut().unwrap().remove("scam_message_rule");
    publish(&three);
    publish(&two);
    let layout = |v: u32| -> usize {
        let record: serde_json::Value =
            serde_json::from_str(&redis.cli(&["HGET", "rd:{rules}:versions", &v.to_string()])).unwrap();
        record["layout"]["rules"].as_array().unwrap().len()
    };
    assert_eq!(layout(4), layout(2), "the re-added rule is back in its place");

    let r = admin(&app, "POST", "/v1/rules/rollback?wait=applied", "application/json", br#"{"to": 1}"#, &[]);
    assert_eq!(r.status, 200, "a rollback to before can_comment existed: {}", r.body);
    let five = app.get("/v1/rules/versions/5").json();
    assert!(five["content"]["features"]["can_comment"].is_object(), "the feature stays defined: {five}");
    assert!(five["content"]["rules"]["comment_rule"].is_null(), "the rule of version 2 is gone: {five}");
    assert!(app.can("comment", "anyone"), "with no rule restricting it");
    assert_eq!(layout(5), layout(2), "the rollback takes no new place either");
}
