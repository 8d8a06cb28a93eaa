//! The tripwire switches off a rule that restricts too large a share of users
//! too fast, and re-arms it when the share falls back under the threshold.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::TestRedis;
use crate::helpers::{event, wait_for, TestApp};
use crate::rulesets::admin;

fn scam_rule_state(app: &TestApp) -> Value {
    let rules = app.get("/v1/rules").json();
    rules["rules"].as_array().unwrap().iter().find(|r| r["name"] == "scam_message_rule").unwrap()["tripwire"].clone()
}

/// Posts events for many users in one batch and waits until applied.
fn post_all(app: &TestApp, events: Vec<Value>) {
    let r = app.post("/v1/events?wait=applied", &json!(events));
    assert_eq!(r.status, 200, "{}", r.body);
}

fn flag_twice(app: &TestApp, user: &str) -> bool {
    let e = event("scam_message_flagged", user, json!({}));
    post_all(app, vec![e.clone(), e]);
    app.can("message", user)
}

#[test]
fn a_rule_restricting_too_large_a_share_trips_then_rearms_when_the_share_falls() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(
        &redis,
        &[("RESTRICTD_TRIPWIRE__MIN_RESTRICTED", "5"), ("RESTRICTD_TRIPWIRE__THRESHOLD", "0.05")],
    );
    // A population of 40 users, none restricted.
    post_all(&app, (0..40).map(|i| event("scam_message_flagged", &format!("ok{i}"), json!({}))).collect());
    // The population is shared through Redis: it shows within a tripwire tick.
    wait_for("the population to count 40 users", Duration::from_secs(5), || {
        (scam_rule_state(&app)["population"] == 40).then_some(())
    });

    // Four restrictions: under the minimum volume, the rule stays armed.
    for i in 0..4 {
        assert!(!flag_twice(&app, &format!("bad{i}")), "bad{i} is restricted while armed");
    }
    assert_eq!(scam_rule_state(&app)["state"], "armed");

    // The fifth: 5 of 45 users (11 %) within the window, at the minimum: it trips.
    assert!(!flag_twice(&app, "bad4"));
    let tripped = wait_for("the scam rule to trip", Duration::from_secs(10), || {
        let s = scam_rule_state(&app);
        (s["state"] == "tripped").then_some(s)
    });
    assert_eq!(tripped["restricted_in_window"], 5);
    assert!(tripped["since"].is_string());

    // Tripped: a new user meeting the condition is not restricted; earlier restrictions stay.
    assert!(flag_twice(&app, "late"), "a tripped rule restricts nobody new");
    assert!(!app.can("message", "bad0"));
    let metrics = app.get("/metrics").body;
    assert!(metrics.contains("restrictd_tripwire_tripped{rule=\"scam_message_rule\"} 1"), "{metrics}");

    // The population grows to 146: 5 of 146 is under 5 %, so it re-arms.
    post_all(&app, (0..100).map(|i| event("scam_message_flagged", &format!("new{i}"), json!({}))).collect());
    wait_for("the scam rule to re-arm", Duration::from_secs(10), || {
        (scam_rule_state(&app)["state"] == "armed").then_some(())
    });
    assert!(!flag_twice(&app, "after_rearm"), "an armed rule restricts again");
    assert_eq!(scam_rule_state(&app)["trips"], 1);
}

#[test]
fn a_reset_then_a_graceful_restart_a_kill_9_and_a_redis_restart_add_no_trip() {
    let mut redis = TestRedis::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let env = [crate::rulesets::ADMIN];
    let mut app = TestApp::spawn_with(&redis, &env);
    let twice = |i: u32| {
        let e = event("scam_message_flagged", &format!("u{i}"), json!({}));
        [e.clone(), e]
    };
    post_all(&app, (0..20).flat_map(twice).collect());
    wait_for("the scam rule to trip", Duration::from_secs(10), || {
        (scam_rule_state(&app)["state"] == "tripped").then_some(())
    });
    let body = br#"{"action": "reset"}"#;
    let r = crate::rulesets::admin(&app, "POST", "/v1/rules/scam_message_rule/tripwire", "application/json", body, &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    let after = &r.json()["tripwire"];
    assert_eq!((after["state"].as_str(), after["restricted_in_window"].as_u64()), (Some("armed"), Some(0)), "{after}");
    let audit = |redis: &TestRedis| redis.cli(&["XLEN", "rd:audit:tripwire"]);
    let audited = audit(&redis);
    for restart in ["graceful", "kill -9", "redis"] {
        let syncs = match restart {
            "graceful" => {
                assert_eq!(app.terminate(), Some(0));
                app = TestApp::spawn_with(&redis, &env);
                0.0
            }
            "kill -9" => {
                app.kill();
                app = TestApp::spawn_with(&redis, &env);
                0.0
            }
            _ => {
                redis.kill();
                redis.launch();
                app.metric("restrictd_tripwire_syncs_total")
            }
        };
        // Three syncs: the windows were counted and evaluated after the restart.
        wait_for("three tripwire syncs", Duration::from_secs(20), || {
            (app.metric("restrictd_tripwire_syncs_total") >= syncs + 3.0).then_some(())
        });
        let state = scam_rule_state(&app);
        assert_eq!(
            (state["state"].as_str(), state["trips"].as_u64()),
            (Some("armed"), Some(1)),
            "after the {restart} restart: {state}"
        );
        assert_eq!(audit(&redis), audited, "no trip was audited after the {restart} restart");
        assert_eq!(app.metric(r#"restrictd_tripwire_changes_total{rule="scam_message_rule",change="tripped"}"#), 0.0);
    }
}

#[test]
fn thirty_flagged_users_of_two_hundred_stop_at_the_bound_and_the_rule_trips() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[crate::rulesets::ADMIN]);
    // 200 users, applied: they count in the population before the reply.
    let buyers: Vec<Value> = (0..200).map(|i| event("purchase_made", &format!("p{i}"), json!({"amount": 1}))).collect();
    post_all(&app, buyers);
    // 30 of them flagged twice, each second flag applied before the next user's.
    for i in 0..30 {
        let flag = event("scam_message_flagged", &format!("p{i}"), json!({}));
        assert_eq!(app.post("/event", &flag).status, 200);
        app.post_applied(&flag);
    }
    let tripped = wait_for("the scam rule to trip", Duration::from_secs(10), || {
        let s = scam_rule_state(&app);
        (s["state"] == "tripped").then_some(s)
    });
    assert_eq!(tripped["population"], 200, "{tripped}");
    let restricted = (0..30).filter(|i| !app.can("message", &format!("p{i}"))).count();
    // 5 % of 200 is 10; the bound is a tenth above it.
    assert!((10..=12).contains(&restricted), "{restricted} of 30 restricted: {tripped}");
    assert_eq!(tripped["restricted_in_window"].as_u64(), Some(restricted as u64), "{tripped}");
    // Every withheld restriction is kept: counted, and in the user's history.
    let spared = 30 - restricted as u64;
    wait_for("every withheld restriction counted", Duration::from_secs(10), || {
        (scam_rule_state(&app)["suppressed_total"].as_u64() == Some(spared)).then_some(())
    });
    let unrestricted = (0..30).map(|i| format!("p{i}")).find(|u| app.can("message", u)).unwrap();
    let history = wait_for("the suppressed change in the history", Duration::from_secs(10), || {
        let h = app.get(&format!("/v1/users/{unrestricted}/history")).json();
        (h["changes"][0]["change"] == "suppressed").then_some(h)
    });
    let change = &history["changes"][0];
    assert_eq!((change["rule"].as_str(), change["who"].as_str()), (Some("scam_message_rule"), Some("tripwire")));
    assert!(change["entry_id"].is_string(), "the event it was withheld for: {change}");

    // A reset re-arms the rule and applies nothing by default.
    let reset = |body: &[u8]| {
        let r = admin(&app, "POST", "/v1/rules/scam_message_rule/tripwire", "application/json", body, &[]);
        assert_eq!(r.status, 200, "{}", r.body);
    };
    reset(br#"{"action": "reset"}"#);
    assert!(app.can("message", &unrestricted), "a plain reset applies nothing");
    let listed = app.get("/v1/rules/scam_message_rule/suppressed").json();
    let users: Vec<&str> = listed["users"].as_array().unwrap().iter().map(|u| u["user_id"].as_str().unwrap()).collect();
    assert_eq!(users.len() as u64, spared, "every spared user is listed: {listed}");
    assert!(users.contains(&unrestricted.as_str()), "{listed}");
    for bad in ["limit=ten", "rule=x"] {
        let r = app.get(&format!("/v1/rules/scam_message_rule/suppressed?{bad}"));
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(r.json()["error"].is_string(), "{}", r.body);
    }
    // With apply_suppressed, every withheld restriction is made, once.
    reset(br#"{"action": "reset", "apply_suppressed": true}"#);
    wait_for("the withheld restrictions applied", Duration::from_secs(10), || {
        (0..30).all(|i| !app.can("message", &format!("p{i}"))).then_some(())
    });
    reset(br#"{"action": "reset", "apply_suppressed": true}"#);
    let history = wait_for("the applied restriction in the history", Duration::from_secs(10), || {
        let h = app.get(&format!("/v1/users/{unrestricted}/history")).json();
        (h["changes"][0]["change"] == "rule_fired").then_some(h)
    });
    let fired: Vec<&Value> =
        history["changes"].as_array().unwrap().iter().filter(|c| c["change"] == "rule_fired").collect();
    assert_eq!(fired.len(), 1, "applied once: {history}");
    assert_eq!(fired[0]["who"], "admin:ops", "{history}");
    let report = app.get(&format!("/v1/users/{unrestricted}")).json();
    assert!(report.get("suppressed").is_none(), "nothing left withheld: {report}");
    assert_eq!(app.get("/v1/rules/scam_message_rule/suppressed").json()["users"], json!([]));
}
