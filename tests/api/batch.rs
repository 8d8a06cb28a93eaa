//! `POST /v1/events`: many events in one request, all or nothing.

use serde_json::json;

use crate::helpers::{event, TestApp, TestRedis};

#[test]
fn a_batch_is_accepted_with_one_id_per_event() {
    let redis = TestRedis::start();
    let app = TestApp::spawn(&redis);
    let batch: Vec<_> = (0..50).map(|i| event("purchase_made", &format!("b{i}"), json!({"amount": i}))).collect();
    let r = app.post("/v1/events", &json!(batch));
    assert_eq!(r.status, 202, "{}", r.body);
    let body = r.json();
    assert_eq!(body["accepted"], 50);
    assert_eq!(body["ids"].as_array().unwrap().len(), 50);
}

#[test]
fn a_batch_with_wait_applied_returns_each_users_features() {
    let redis = TestRedis::start();
    let app = TestApp::spawn(&redis);
    let batch = json!([
        event("scam_message_flagged", "bw1", json!({})),
        event("purchase_made", "bw2", json!({"amount": 20})),
        event("scam_message_flagged", "bw1", json!({})),
        event("chargeback_occurred", "bw2", json!({"amount": 2.5})),
    ]);
    let r = app.post("/v1/events?wait=applied", &batch);
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(body["features"]["bw1"], json!({"can_message": false, "can_purchase": true}));
    assert_eq!(body["features"]["bw2"], json!({"can_message": true, "can_purchase": false}));
    assert!(!app.can("message", "bw1"));
}

#[test]
fn one_bad_item_rejects_the_whole_batch_and_names_each_bad_index() {
    let redis = TestRedis::start();
    let app = TestApp::spawn(&redis);
    let batch = json!([
        event("scam_message_flagged", "ok1", json!({})),
        event("purchase_made", "bad1", json!({"amount": -1})),
        event("scam_message_flagged", "", json!({})),
        event("scam_message_flagged", "ok2", json!({})),
    ]);
    let r = app.post("/v1/events", &batch);
    assert_eq!(r.status, 422, "{}", r.body);
    let body = r.json();
    let invalid = body["invalid"].as_array().unwrap();
    let indexes: Vec<u64> = invalid.iter().map(|i| i["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, [1, 2]);
    assert!(invalid[0]["error"].as_str().unwrap().contains("negative"));
    assert!(body["error"].as_str().unwrap().contains("none were accepted"));
    assert_eq!(app.get("/v1/users/ok1").status, 404);
}

#[test]
fn batch_limits_are_enforced_with_json_errors() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[("RESTRICTD_INGEST__BATCH_LIMIT", "3")]);
    let four: Vec<_> = (0..4).map(|i| event("scam_message_flagged", &format!("l{i}"), json!({}))).collect();
    let r = app.post("/v1/events", &json!(four));
    assert_eq!(r.status, 413);
    assert!(r.json()["error"].as_str().unwrap().contains("at most 3"));
    assert_eq!(app.post("/v1/events", &json!([])).status, 400);
    assert_eq!(app.post("/v1/events", &json!({"not": "an array"})).status, 400);
    let three: Vec<_> = (0..3).map(|i| event("scam_message_flagged", &format!("l{i}"), json!({}))).collect();
    assert_eq!(app.post("/v1/events", &json!(three)).status, 202);
}
