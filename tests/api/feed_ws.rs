//! The feed over a WebSocket, read by a real client (Python's `websockets`),
//! and stored subscriptions: a CEL condition over events, an update reaching
//! a connected consumer, an acknowledgement to resume from, a deletion.

use std::process::Command;

use serde_json::{json, Value};

use crate::helpers::{event, Reply, TestApp, TestRedis};
use crate::sse::Subscriber;

const TOKEN: &str = "feed-admin-token-0123";
const QUIET: [(&str, &str); 2] =
    [("RESTRICTD_TRIPWIRE__THRESHOLD", "1.0"), ("RESTRICTD_TRIPWIRE__MIN_RESTRICTED", "1000000000")];

/// Reads `n` changes from `url` with the `websockets` client; every message, in order.
const CLIENT: &str = r#"
import json, sys
from websockets.sync.client import connect
url, n = sys.argv[1], int(sys.argv[2])
with connect(url, open_timeout=10) as ws:
    got = 0
    while got < n:
        m = json.loads(ws.recv(timeout=10))
        print(json.dumps(m), flush=True)
        got += m["event"] == "change"
"#;

fn ws_read(url: &str, changes: usize) -> Vec<Value> {
    let out = Command::new("python3").args(["-c", CLIENT, url, &changes.to_string()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("No module named"), "Python's websockets is needed: scripts/test installs it\n{err}");
    assert!(out.status.success(), "{err}");
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn restrict(app: &TestApp, user: &str) {
    let e = event("scam_message_flagged", user, json!({}));
    assert_eq!(app.post("/v1/events?wait=applied", &json!([e.clone(), e])).status, 200);
}

fn admin(app: &TestApp, method: &str, path: &str, body: &Value) -> Reply {
    let auth = format!("Bearer {TOKEN}");
    let headers = [("Content-Type", "application/json"), ("Authorization", auth.as_str())];
    app.request(method, path, &headers, body.to_string().as_bytes())
}

/// The next item of `kind` (others skipped): its data.
fn next_of(s: &mut Subscriber, kind: &str) -> Value {
    loop {
        let (k, data) = s.next().unwrap_or_else(|| panic!("a {kind}"));
        if k == kind {
            return serde_json::from_str(&data).unwrap();
        }
    }
}

#[test]
fn a_websocket_consumer_resumes_after_an_id_with_a_real_client() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &QUIET);
    let mut sse = Subscriber::open(&app.addr, "changes=rule_fired");
    for u in ["w1", "w2", "w3", "w4", "w5"] {
        restrict(&app, u);
    }
    // (id, user) in the feed's order (shards commit in their own time).
    let mut seen = Vec::new();
    for _ in 0..5 {
        let user = next_of(&mut sse, "change")["user_id"].as_str().unwrap().to_string();
        seen.push((sse.last_id.clone().unwrap(), user));
    }
    let url = format!("ws://{}/v1/feed/ws?changes=rule_fired&after={}", app.addr, seen[1].0);
    let messages = ws_read(&url, 3);
    assert_eq!(messages[0]["event"], "subscribed", "{messages:?}");
    let changes: Vec<&Value> = messages.iter().filter(|m| m["event"] == "change").collect();
    let got: Vec<(String, String)> = changes
        .iter()
        .map(|m| (m["id"].as_str().unwrap().to_string(), m["data"]["user_id"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(got, seen[2..], "the three after the id, in order");
    let r = app.get("/v1/feed/ws");
    assert_eq!(r.status, 400, "not an upgrade: {}", r.body);
}

#[test]
fn a_stored_subscription_filters_by_its_condition_follows_its_updates_and_resumes_from_its_ack() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[("RESTRICTD_AUTH__ADMIN_TOKENS__OPS", TOKEN), QUIET[0], QUIET[1]]);
    let big = json!({"events": ["purchase_made"], "condition": "event.amount >= 100"});
    let r = admin(&app, "PUT", "/v1/subscriptions/big", &big);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["by"], "admin:ops");
    let bad = admin(
        &app,
        "PUT",
        "/v1/subscriptions/big",
        &json!({"events": ["purchase_made"], "condition": "event.nope > 1"}),
    );
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert_eq!(app.get("/v1/subscriptions/big").json()["filter"], big, "a refused update changes nothing");
    let mut s = Subscriber::open(&app.addr, "subscription=big");
    for (user, amount) in [("small", 50), ("large", 150)] {
        app.post_applied(&event("purchase_made", user, json!({"amount": amount})));
    }
    assert_eq!(next_of(&mut s, "event")["user_id"], "large", "only what the condition holds for");
    // The update reaches the connected consumer: after it, a change marks the point.
    let wider = json!({"events": ["purchase_made"], "condition": "event.amount >= 10"});
    assert_eq!(admin(&app, "PUT", "/v1/subscriptions/big", &wider).status, 200);
    restrict(&app, "marker");
    assert_eq!(next_of(&mut s, "change")["user_id"], "marker");
    let marker = s.last_id.clone().unwrap();
    app.post_applied(&event("purchase_made", "medium", json!({"amount": 50})));
    assert_eq!(next_of(&mut s, "event")["user_id"], "medium", "the updated condition holds for 50");
    // A consumer without a cursor resumes after the acknowledged id.
    let r = app.post("/v1/subscriptions/big/ack", &json!({"id": marker}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["acked"], marker.as_str());
    restrict(&app, "after-ack");
    let mut fresh = Subscriber::open(&app.addr, "subscription=big");
    assert_eq!(next_of(&mut fresh, "change")["user_id"], "after-ack", "nothing before the ack, nothing missed");
    assert_eq!(app.get("/v1/subscriptions").json()["subscriptions"][0]["name"], "big");
    // Deleted: its consumers' streams end.
    assert_eq!(admin(&app, "DELETE", "/v1/subscriptions/big", &json!({})).status, 200);
    let last = next_of(&mut s, "disconnect");
    assert!(last["reason"].as_str().unwrap().contains("deleted"), "{last}");
    assert!(s.next().is_none(), "then the end");
    assert_eq!(app.get("/v1/subscriptions/big").status, 404);
    assert_eq!(app.get("/v1/feed?subscription=big").status, 404);
}
