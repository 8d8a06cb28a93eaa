//! The reference service's seed scenarios, through HTTP.

use serde_json::json;

use crate::helpers::{event, TestApp, TestRedis};

#[test]
fn two_scam_flags_restrict_messaging_and_only_messaging() {
    let redis = TestRedis::start();
    let app = TestApp::spawn(&redis);
    let first = app.post_applied(&event("scam_message_flagged", "12345", json!({})));
    assert_eq!(first["features"]["can_message"], true, "one flag is not enough");
    let second = app.post_applied(&event("scam_message_flagged", "12345", json!({})));
    assert_eq!(second["features"], json!({"can_message": false, "can_purchase": true}));
    assert!(!app.can("message", "12345"));
    assert!(app.can("purchase", "12345"));
}

#[test]
fn a_user_with_one_flag_can_still_message() {
    let redis = TestRedis::start();
    let app = TestApp::spawn(&redis);
    app.post_applied(&event("scam_message_flagged", "u1", json!({})));
    assert!(app.can("message", "u1"));
}

#[test]
fn purchase_then_chargeback_over_ten_percent_restricts_purchasing() {
    let redis = TestRedis::start();
    let app = TestApp::spawn(&redis);
    app.post_applied(&event("purchase_made", "buyer", json!({"amount": 100})));
    assert!(app.can("purchase", "buyer"));
    let r = app.post_applied(&event("chargeback_occurred", "buyer", json!({"amount": 15})));
    assert_eq!(r["features"]["can_purchase"], false);
    assert!(!app.can("purchase", "buyer"));
    assert!(app.can("message", "buyer"));
}

#[test]
fn a_chargeback_of_exactly_ten_percent_in_tenths_is_not_over_the_ratio() {
    // 0.1 summed ten times is exactly 1 here; in f64 it is 0.9999999999999999.
    let redis = TestRedis::start();
    let app = TestApp::spawn(&redis);
    app.post_applied(&event("purchase_made", "exact", json!({"amount": 10})));
    for _ in 0..10 {
        app.post_applied(&event("chargeback_occurred", "exact", json!({"amount": 0.1})));
    }
    assert!(app.can("purchase", "exact"), "1/10 is not > 0.10");
    let user = app.get("/v1/users/exact").json();
    assert_eq!(user["aggregates"]["chargebacks"], "1");
    app.post_applied(&event("chargeback_occurred", "exact", json!({"amount": 0.000001})));
    assert!(!app.can("purchase", "exact"));
}

#[test]
fn three_cards_from_three_zip_codes_restrict_purchasing() {
    let redis = TestRedis::start();
    let app = TestApp::spawn(&redis);
    for (card, zip) in [("c1", "10001"), ("c2", "94107"), ("c3", "60601")] {
        app.post_applied(&event("credit_card_added", "carder", json!({"card_id": card, "zip_code": zip})));
    }
    assert!(!app.can("purchase", "carder"));
    let user = app.get("/v1/users/carder").json();
    assert_eq!(user["aggregates"]["cards"], 3);
    assert_eq!(user["aggregates"]["zip_codes"], 3);
}

#[test]
fn the_zip_code_rule_waits_for_a_third_card_and_allows_cards_from_one_zip_code() {
    let redis = TestRedis::start();
    let app = TestApp::spawn(&redis);
    let card = |user: &str, card: &str, zip: &str| {
        app.post_applied(&event("credit_card_added", user, json!({"card_id": card, "zip_code": zip})));
    };
    card("newcomer", "c1", "10001");
    assert!(app.can("purchase", "newcomer"), "a first card restricts nothing");
    card("newcomer", "c2", "94107");
    assert!(app.can("purchase", "newcomer"), "two cards in two zip codes: not evaluated yet");
    for c in ["c1", "c2", "c3", "c4"] {
        card("family", c, "10001");
    }
    assert!(app.can("purchase", "family"), "four cards in one zip code (1/4)");
    let user = app.get("/v1/users/family").json();
    assert_eq!((user["aggregates"]["cards"].as_u64(), user["aggregates"]["zip_codes"].as_u64()), (Some(4), Some(1)));
}

#[test]
fn a_user_never_seen_is_allowed_everything_and_unknown_to_explain() {
    let redis = TestRedis::start();
    let app = TestApp::spawn(&redis);
    assert!(app.can("message", "stranger"));
    assert!(app.can("purchase", "stranger"));
    let features = app.get("/v1/users/stranger/features");
    assert_eq!(features.status, 200);
    assert_eq!(features.json()["features"], json!({"can_message": true, "can_purchase": true}));
    let explain = app.get("/v1/users/stranger");
    assert_eq!(explain.status, 404);
    assert!(explain.json()["error"].as_str().unwrap().contains("never been seen"));
}

#[test]
fn a_restriction_explains_its_rule_and_triggering_event() {
    let redis = TestRedis::start();
    let app = TestApp::spawn(&redis);
    app.post_applied(&event("scam_message_flagged", "explained", json!({})));
    let second = app.post_applied(&event("scam_message_flagged", "explained", json!({})));
    let user = app.get("/v1/users/explained").json();
    let restrictions = user["restrictions"].as_array().unwrap();
    assert_eq!(restrictions.len(), 1);
    assert_eq!(restrictions[0]["rule"], "scam_message_rule");
    assert_eq!(restrictions[0]["features"], json!(["can_message"]));
    assert_eq!(restrictions[0]["event_id"], second["id"]);
    assert!(restrictions[0]["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(user["aggregates"]["scam_flags"], 2);
    assert_eq!(user["features"]["can_message"], false);
}

#[test]
fn the_reference_reply_to_a_posted_event_is_kept() {
    let redis = TestRedis::start();
    let app = TestApp::spawn(&redis);
    let r = app.post("/event", &event("purchase_made", "p", json!({"amount": 5})));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "Event 'purchase_made' added to the stream.");
    // The event is durable in the user's shard stream once acknowledged.
    let shard = restrictd_domain::shard_of("p", 64);
    assert_eq!(redis.cli(&["XLEN", &format!("rd:{{{shard}}}:events")]), "1");
}

#[test]
fn rules_are_listed_with_their_tripwire_state() {
    let redis = TestRedis::start();
    let app = TestApp::spawn(&redis);
    let rules = app.get("/v1/rules").json();
    let rules = rules["rules"].as_array().unwrap();
    let names: Vec<&str> = rules.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["chargeback_ratio_rule", "scam_message_rule", "unique_zip_code_rule"]);
    let scam = &rules[1];
    assert_eq!(scam["when"], "scam_flags >= 2");
    assert_eq!(scam["tripwire"]["state"], "armed");
    assert_eq!(scam["tripwire"]["threshold"], 0.05);
}
