//! A rule set of 1,000 rules loads, switches and applies.

use serde_json::{json, Value};

use crate::helpers::{event, TestApp, TestRedis};
use crate::rulesets::{admin, rules_with, ADMIN};

/// The default rule set (3 rules) and 997 generated ones: rule `g{i}`
/// listens to `e{i % 20}` and fires at `2 + i / 20` events. Each event's
/// last rule restricts `can_e{k}`; the others restrict `can_message`.
fn thousand_rules() -> Value {
    let mut set = rules_with("scam_flags >= 2");
    let last_of = |k: usize| (0..997).filter(|i| i % 20 == k).max().unwrap();
    for k in 0..20 {
        set["features"][format!("can_e{k}")] = json!({"description": format!("the feature of e{k}")});
        set["events"][format!("e{k}")] = json!({"properties": {}});
        set["aggregates"][format!("n{k}")] = json!({"kind": "count", "event": format!("e{k}")});
    }
    for i in 0..997 {
        let k = i % 20;
        let feature = if i == last_of(k) { format!("can_e{k}") } else { "can_message".into() };
        set["rules"][format!("g{i}")] =
            json!({"on": [format!("e{k}")], "when": format!("n{k} >= {}", 2 + i / 20), "restrict": [feature]});
    }
    assert_eq!(set["rules"].as_object().unwrap().len(), 1000);
    set
}

fn publish(app: &TestApp, set: &Value) -> Value {
    let r = admin(app, "PUT", "/v1/rules?wait=applied", "application/json", set.to_string().as_bytes(), &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// Posts `n` events `name` for `user`; the features after the last.
fn post_n(app: &TestApp, name: &str, user: &str, n: usize) -> Value {
    let mut last = Value::Null;
    for _ in 0..n {
        last = app.post_applied(&event(name, user, json!({})));
    }
    last["features"].clone()
}

#[test]
fn a_rule_set_of_a_thousand_rules_loads_switches_and_applies() {
    let redis = TestRedis::start();
    let mut app = TestApp::spawn_with(&redis, &[ADMIN]);
    let mut set = thousand_rules();
    let published = publish(&app, &set);
    assert_eq!((published["version"].as_u64(), published["applied"].as_bool()), (Some(2), Some(true)));
    assert_eq!(app.get("/v1/rules").json()["rules"].as_array().map(|r| r.len()), Some(1000));

    // e19's rules are g19, g39, .. g979 (thresholds 2 .. 50); g979 restricts can_e19.
    let features = post_n(&app, "e19", "deep", 49);
    assert_eq!((features["can_message"].as_bool(), features["can_e19"].as_bool()), (Some(false), Some(true)));
    let features = post_n(&app, "e19", "deep", 1);
    assert_eq!(features["can_e19"], false, "the 50th e19 fires g979");
    assert!(app.can("message", "other") && app.can("e0", "deep"), "only the user's own rules fired");
    assert_eq!(post_n(&app, "scam_message_flagged", "flagged", 2)["can_message"], false, "the default rules too");

    // The set outlives a restart (loaded from Redis), and switches to a next
    // version of 1,000 rules: g979 now fires at 3 events.
    assert_eq!(app.terminate(), Some(0));
    let app = TestApp::spawn_with(&redis, &[ADMIN]);
    assert!(!app.can("e19", "deep"), "restrictions outlive the restart");
    set["rules"]["g979"]["when"] = json!("n19 >= 3");
    let published = publish(&app, &set);
    assert_eq!(published["version"], 3);
    assert_eq!(published["diff"]["rules_changed"], json!(["g979"]));
    assert_eq!(post_n(&app, "e19", "quick", 3)["can_e19"], false, "version 3 judges the events after its switch");
    assert!(app.can("e18", "quick"));
}
