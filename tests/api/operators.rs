//! Operating restrictd: admin auth, overrides, expiry, tripwire controls and
//! revert, audit history, the live feed, stats (the dashboard page: `dashboard.rs`).

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{event, wait_for, Reply, TestApp, TestRedis};
use crate::sse::Subscriber;

const TOKEN: &str = "ops-token-0123456789";
const ADMIN: (&str, &str) = ("RESTRICTD_AUTH__ADMIN_TOKENS__OPS", TOKEN);
pub(crate) const FAST_FLUSH: (&str, &str) = ("RESTRICTD_PERSISTENCE__FLUSH_INTERVAL", "50ms");

fn admin(app: &TestApp, method: &str, path: &str, body: Value) -> Reply {
    let auth = format!("Bearer {TOKEN}");
    app.request(
        method,
        path,
        &[("Content-Type", "application/json"), ("Authorization", &auth)],
        body.to_string().as_bytes(),
    )
}

pub(crate) fn flag_twice(app: &TestApp, user: &str) {
    let e = event("scam_message_flagged", user, json!({}));
    assert_eq!(app.post("/v1/events?wait=applied", &json!([e.clone(), e])).status, 200);
}

fn history(app: &TestApp, user: &str, query: &str) -> Value {
    app.get(&format!("/v1/users/{user}/history?{query}")).json()
}

#[test]
fn admin_endpoints_refuse_a_missing_or_wrong_token_and_change_nothing() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[ADMIN, FAST_FLUSH]);
    flag_twice(&app, "guarded");
    let body = json!({"state": "allowed", "reason": "appeal"}).to_string();
    let path = "/v1/users/guarded/features/can_message";
    let none = app.request("PUT", path, &[("Content-Type", "application/json")], body.as_bytes());
    assert_eq!(none.status, 401, "{}", none.body);
    let wrong = app.request(
        "PUT",
        path,
        &[("Content-Type", "application/json"), ("Authorization", "Bearer ops-token-0123456780")],
        body.as_bytes(),
    );
    assert_eq!(wrong.status, 403, "{}", wrong.body);
    assert_eq!(app.request("DELETE", "/v1/stats", &[("Authorization", "Bearer nope")], b"").status, 403);
    assert_eq!(
        app.request(
            "POST",
            "/v1/rules/scam_message_rule/tripwire",
            &[("Content-Type", "application/json")],
            br#"{"action":"trip"}"#
        )
        .status,
        401
    );
    assert!(!app.can("message", "guarded"), "nothing changed");
    assert_eq!(app.get("/v1/rules").json()["rules"][1]["tripwire"]["state"], "armed");
    assert!(!app.log().contains(TOKEN), "tokens never appear in logs");
}

#[test]
fn reads_and_ingestion_can_require_tokens_too() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(
        &redis,
        &[
            ADMIN,
            ("RESTRICTD_AUTH__REQUIRE_FOR_READS", "true"),
            ("RESTRICTD_AUTH__INGEST_TOKEN", "ingest-token-0123456"),
        ],
    );
    assert_eq!(app.get("/canmessage?user_id=x").status, 401);
    assert_eq!(app.get("/v1/rules/scam_message_rule/suppressed").status, 401);
    assert_eq!(app.post("/event", &event("scam_message_flagged", "x", json!({}))).status, 401);
    let r = app.request("GET", "/canmessage?user_id=x", &[("Authorization", &format!("Bearer {TOKEN}"))], b"");
    assert_eq!(r.status, 200);
    let body = event("scam_message_flagged", "x", json!({})).to_string();
    let r = app.request(
        "POST",
        "/event",
        &[("Content-Type", "application/json"), ("Authorization", "Bearer ingest-token-0123456")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(app.get("/health").status, 200, "health stays open");
}

#[test]
fn an_override_beats_the_rules_and_expires_on_time() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[ADMIN, FAST_FLUSH]);
    flag_twice(&app, "appealed");
    assert!(!app.can("message", "appealed"));
    let r = admin(
        &app,
        "PUT",
        "/v1/users/appealed/features/can_message",
        json!({"state": "allowed", "reason": "appeal 17 accepted", "expires_in": "1s"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["features"]["can_message"], true);
    assert!(app.can("message", "appealed"), "the override lifts the rule's restriction");
    let explained = app.get("/v1/users/appealed").json();
    assert_eq!(explained["overrides"][0]["state"], "allowed");
    assert_eq!(explained["overrides"][0]["by"], "admin:ops");
    assert_eq!(explained["restrictions"][0]["rule"], "scam_message_rule", "the rule's restriction is still recorded");
    wait_for("the override to expire", Duration::from_secs(5), || (!app.can("message", "appealed")).then_some(()));

    // A restricting override on a clean user, then removed.
    let r = admin(
        &app,
        "PUT",
        "/v1/users/clean/features/can_purchase",
        json!({"state": "restricted", "reason": "manual review"}),
    );
    assert_eq!(r.json()["features"]["can_purchase"], false);
    assert!(!app.can("purchase", "clean"));
    let r = admin(&app, "DELETE", "/v1/users/clean/features/can_purchase", json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(app.can("purchase", "clean"));
    let bad = admin(&app, "PUT", "/v1/users/clean/features/can_fly", json!({"state": "allowed", "reason": "x"}));
    assert_eq!(bad.status, 404);
    let bad = admin(&app, "PUT", "/v1/users/clean/features/can_message", json!({"state": "maybe", "reason": "x"}));
    assert_eq!(bad.status, 422);
}

#[test]
fn a_rule_with_restrict_for_lifts_its_restrictions_when_they_expire() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[("RESTRICTD_RULES__SCAM_MESSAGE_RULE__RESTRICT_FOR", "1s"), FAST_FLUSH]);
    flag_twice(&app, "temp");
    assert!(!app.can("message", "temp"));
    let r = app.get("/v1/users/temp").json();
    assert!(r["restrictions"][0]["expires_at_ms"].as_u64().is_some());
    wait_for("the restriction to expire", Duration::from_secs(5), || app.can("message", "temp").then_some(()));
    let changes = wait_for("the expiry in the history", Duration::from_secs(5), || {
        let h = history(&app, "temp", "");
        (h["changes"].as_array().unwrap().len() == 2).then_some(h["changes"].clone())
    });
    assert_eq!(changes[0]["change"], "expired");
    assert_eq!(changes[1]["change"], "rule_fired");
}

#[test]
fn operators_trip_and_reset_a_rule() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[ADMIN]);
    let r = admin(&app, "POST", "/v1/rules/scam_message_rule/tripwire", json!({"action": "trip"}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["tripwire"]["state"], "tripped");
    assert_eq!(r.json()["tripwire"]["forced"], true);
    flag_twice(&app, "while_off");
    assert!(app.can("message", "while_off"), "a tripped rule restricts nobody new");
    let r = admin(&app, "POST", "/v1/rules/scam_message_rule/tripwire", json!({"action": "reset"}));
    assert_eq!(r.json()["tripwire"]["state"], "armed");
    flag_twice(&app, "after_reset");
    assert!(!app.can("message", "after_reset"));
    assert_eq!(admin(&app, "POST", "/v1/rules/nope/tripwire", json!({"action": "reset"})).status, 404);
    assert_eq!(admin(&app, "POST", "/v1/rules/scam_message_rule/tripwire", json!({"action": "explode"})).status, 422);
}

#[test]
fn revert_lifts_exactly_the_restrictions_made_in_the_window() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(
        &redis,
        &[
            ADMIN,
            FAST_FLUSH,
            ("RESTRICTD_RULES__SCAM_MESSAGE_RULE__ON_TRIP", "revert"),
            ("RESTRICTD_TRIPWIRE__WINDOW", "2s"),
        ],
    );
    flag_twice(&app, "old");
    // The window is shared through Redis: wait until it counts "old", then until "old" is out of it.
    wait_for("the window to count old", Duration::from_secs(5), || {
        let rules = app.get("/v1/rules").json();
        (rules["rules"][1]["tripwire"]["restricted_in_window"] == 1).then_some(())
    });
    wait_for("the window to slide past old", Duration::from_secs(10), || {
        let rules = app.get("/v1/rules").json();
        (rules["rules"][1]["tripwire"]["restricted_in_window"] == 0).then_some(())
    });
    flag_twice(&app, "new1");
    flag_twice(&app, "new2");
    // An unrelated rule's restriction inside the window stays too.
    app.post_applied(&event("purchase_made", "buyer", json!({"amount": 10})));
    app.post_applied(&event("chargeback_occurred", "buyer", json!({"amount": 5})));
    let r = admin(&app, "POST", "/v1/rules/scam_message_rule/tripwire", json!({"action": "trip"}));
    assert_eq!(r.status, 200);
    wait_for("new1 and new2 to be lifted", Duration::from_secs(5), || {
        (app.can("message", "new1") && app.can("message", "new2")).then_some(())
    });
    assert!(!app.can("message", "old"), "a restriction older than the window stays");
    assert!(!app.can("purchase", "buyer"), "another rule's restriction stays");
    let changes = wait_for("the revert in new1's history", Duration::from_secs(5), || {
        let h = history(&app, "new1", "");
        (h["changes"].as_array().unwrap().len() == 2).then_some(h["changes"].clone())
    });
    assert_eq!(changes[0]["change"], "tripwire_revert");
    assert_eq!(changes[0]["who"], "tripwire");
}

#[test]
fn the_history_lists_a_users_changes_newest_first_paginated() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[ADMIN, FAST_FLUSH]);
    flag_twice(&app, "storied");
    admin(&app, "PUT", "/v1/users/storied/features/can_message", json!({"state": "allowed", "reason": "appeal"}));
    admin(&app, "DELETE", "/v1/users/storied/features/can_message", json!({}));
    let all = wait_for("three changes", Duration::from_secs(5), || {
        let h = history(&app, "storied", "");
        (h["changes"].as_array().unwrap().len() == 3).then_some(h)
    });
    let kinds: Vec<&str> = all["changes"].as_array().unwrap().iter().map(|c| c["change"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["override_removed", "override_set", "rule_fired"]);
    assert_eq!(all["changes"][1]["who"], "admin:ops");
    assert_eq!(all["changes"][1]["why"], "appeal");
    assert_eq!(all["changes"][2]["who"], "rule:scam_message_rule");
    assert_eq!(all["changes"][2]["why"], "scam_flags >= 2");
    let page1 = history(&app, "storied", "limit=2");
    assert_eq!(page1["changes"].as_array().unwrap().len(), 2);
    assert_eq!(page1["next_offset"], 2);
    let page2 = history(&app, "storied", "limit=2&offset=2");
    assert_eq!(page2["changes"][0]["change"], "rule_fired");
    assert_eq!(page2["next_offset"], Value::Null);
    assert_eq!(app.get("/v1/users/nobody/history").status, 404, "a user never seen, as GET /v1/users/nobody");
}

#[test]
fn feed_filters_deliver_exactly_the_matching_changes() {
    let redis = TestRedis::start();
    let app = TestApp::spawn(&redis);
    let mut by_user = Subscriber::open(&app.addr, "users=fa");
    let mut by_feature = Subscriber::open(&app.addr, "features=can_purchase");
    let mut by_rule = Subscriber::open(&app.addr, "rules=scam_message_rule");
    let mut with_events = Subscriber::open(&app.addr, "events=purchase_made");
    flag_twice(&app, "fa");
    app.post_applied(&event("purchase_made", "fb", json!({"amount": 100})));
    app.post_applied(&event("chargeback_occurred", "fb", json!({"amount": 20})));
    flag_twice(&app, "fc");
    let three_cards = |user: &str| {
        for (c, z) in [("c1", "z1"), ("c2", "z2"), ("c3", "z3")] {
            app.post_applied(&event("credit_card_added", user, json!({"card_id": c, "zip_code": z})));
        }
    };
    three_cards("fd");
    // A marker every filter lets through: fa's third card restricts purchasing.
    three_cards("fa");

    // Each subscriber's items in order, up to and including the marker.
    let items = |s: &mut Subscriber, n: usize| -> Vec<String> {
        (0..n)
            .map(|_| {
                let (kind, data) = s.next().expect("an item");
                let v: Value = serde_json::from_str(&data).unwrap();
                match kind.as_str() {
                    "event" => format!("event {} {}", v["name"].as_str().unwrap(), v["user_id"].as_str().unwrap()),
                    _ => format!("{kind} {} {}", v["user_id"].as_str().unwrap(), v["rule"].as_str().unwrap_or("")),
                }
            })
            .collect()
    };
    // One user's changes come in order; different users' as their shards
    // committed them, and events live, beside them.
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(items(&mut by_user, 2), ["change fa scam_message_rule", "change fa unique_zip_code_rule"]);
    assert_eq!(
        sorted(items(&mut by_feature, 3)),
        ["change fa unique_zip_code_rule", "change fb chargeback_ratio_rule", "change fd unique_zip_code_rule"]
    );
    assert_eq!(sorted(items(&mut by_rule, 2)), ["change fa scam_message_rule", "change fc scam_message_rule"]);
    assert_eq!(
        sorted(items(&mut with_events, 6)),
        [
            "change fa scam_message_rule",
            "change fa unique_zip_code_rule",
            "change fb chargeback_ratio_rule",
            "change fc scam_message_rule",
            "change fd unique_zip_code_rule",
            "event purchase_made fb",
        ]
    );
    let bad = app.get("/v1/feed?rules=nope");
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"].as_str().unwrap().contains("nope"));
}

#[test]
fn two_hundred_subscribers_get_every_change_and_a_stalled_one_is_cut_off() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(
        &redis,
        &[
            ("RESTRICTD_FEED__BUFFER", "256"),
            ("RESTRICTD_TRIPWIRE__THRESHOLD", "1.0"),
            ("RESTRICTD_TRIPWIRE__MIN_RESTRICTED", "1000000"),
        ],
    );
    let mut stalled = Subscriber::open_small(&app.addr, "events=all");
    let subscribers: Vec<Subscriber> = (0..200).map(|_| Subscriber::open(&app.addr, "")).collect();
    let readers: Vec<_> =
        subscribers.into_iter().map(|mut s| std::thread::spawn(move || s.take("change", 10).len())).collect();
    for u in 0..10 {
        flag_twice(&app, &format!("crowd{u}"));
    }
    // Flood while the stalled subscriber reads nothing: the engine does not wait for it.
    for b in 0..20 {
        let batch: Vec<Value> =
            (0..1000).map(|i| event("purchase_made", &format!("flood{b}-{i}"), json!({"amount": 1}))).collect();
        let r = app.post("/v1/events?wait=applied", &json!(batch));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    for r in readers {
        assert_eq!(r.join().unwrap(), 10, "every subscriber got every change");
    }
    // Reading again, it finds what was buffered, then a final message and the end.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut last = None;
    while std::time::Instant::now() < deadline {
        match stalled.next() {
            Some((kind, data)) if kind == "disconnect" => {
                last = Some(data);
                break;
            }
            Some(_) => {}
            None => break,
        }
    }
    let data = last.expect("the stalled subscriber is disconnected with a final message");
    assert!(data.contains("too slow"), "{data}");
    assert!(stalled.next().is_none(), "and the stream ends");
}

#[test]
fn stats_count_and_sum_exactly_survive_restarts_and_reset() {
    let redis = TestRedis::start();
    let mut app = TestApp::spawn_with(&redis, &[ADMIN, FAST_FLUSH]);
    for _ in 0..3 {
        app.post_applied(&event("purchase_made", "spender", json!({"amount": 0.1})));
    }
    app.post_applied(&event("scam_message_flagged", "spender", json!({})));
    assert_eq!(app.post("/event", &event("purchase_made", "spender", json!({"amount": -1}))).status, 422);
    let stats = wait_for("stats to be recorded", Duration::from_secs(5), || {
        let s = app.get("/v1/stats").json();
        (s["events"]["purchase_made"]["count"] == 3 && s["rejects"]["bad_property"] == 1).then_some(s)
    });
    assert_eq!(stats["events"]["purchase_made"]["amount"], "0.3", "0.1 + 0.1 + 0.1 is exactly 0.3");
    assert_eq!(stats["events"]["scam_message_flagged"]["count"], 1);
    let one = app.get("/v1/stats/purchase_made").json();
    assert_eq!(one["count"], 3);
    assert_eq!(app.get("/v1/stats/teleported").status, 404);

    app.kill();
    let app = TestApp::spawn_with(&redis, &[ADMIN, FAST_FLUSH]);
    assert_eq!(app.get("/v1/stats").json()["events"]["purchase_made"]["count"], 3, "stats survive restarts");

    assert_eq!(app.request("DELETE", "/v1/stats", &[], b"").status, 401);
    let r = admin(&app, "DELETE", "/v1/stats", json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    let after = app.get("/v1/stats").json();
    assert_eq!(after["events"]["purchase_made"]["count"], 0);
    assert!(after["since"].is_string());
}
