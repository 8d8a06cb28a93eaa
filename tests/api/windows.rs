//! Windowed aggregates, event time and CEL conditions, through the API.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::helpers::{event, wait_for, TestApp, TestRedis};
use crate::rulesets::{admin, ADMIN};

const H: u64 = 3_600_000;
const D: u64 = 24 * H;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// `event(...)` that happened at `at_ms`.
fn at(name: &str, user: &str, props: Value, at_ms: u64) -> Value {
    let mut e = event(name, user, props);
    e["occurred_at"] = json!(at_ms);
    e
}

/// Publishes a rule set written in TOML and waits until every shard applies it.
fn publish(app: &TestApp, toml: &str) {
    let r = admin(app, "PUT", "/v1/rules?wait=applied", "application/toml", toml.as_bytes(), &[]);
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Posts events in one batch and waits until they are applied.
fn post_all(app: &TestApp, events: &[Value]) {
    let r = app.post("/v1/events?wait=applied", &json!(events));
    assert_eq!(r.status, 200, "{}", r.body);
}

fn velocity() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/velocity.toml")).unwrap()
}

#[test]
fn the_velocity_examples_restrict_inside_their_windows_and_not_wider() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[ADMIN, ("RESTRICTD_INGEST__MAX_EVENT_AGE", "40d")]);
    publish(&app, &velocity());
    let now = now_ms() - 1000;
    let flag = |u: &str, t| at("scam_message_flagged", u, json!({}), t);
    let card = |u: &str, n: u64, zip: &str, t| {
        at("credit_card_added", u, json!({"card_id": format!("c{n}"), "zip_code": zip}), t)
    };
    let money = |name: &str, u: &str, amount: u64, t| at(name, u, json!({"amount": amount}), t);
    let mut events = vec![
        // 3 scam flags in 24 hours; the wide user's first flag is 25 hours old.
        flag("flags-in", now - 23 * H),
        flag("flags-in", now - 12 * H),
        flag("flags-in", now),
        flag("flags-wide", now - 25 * H),
        flag("flags-wide", now - 12 * H),
        flag("flags-wide", now),
        // Chargebacks above 10 % of 30 days' spend: 25 of 200 in the window,
        // 25 of 300 when the older purchase is 29 days old.
        money("purchase_made", "ratio-in", 100, now - 31 * D),
        money("purchase_made", "ratio-in", 200, now - D),
        money("chargeback_occurred", "ratio-in", 25, now),
        money("purchase_made", "ratio-wide", 100, now - 29 * D),
        money("purchase_made", "ratio-wide", 200, now - D),
        money("chargeback_occurred", "ratio-wide", 25, now),
    ];
    for i in 0..6 {
        // More than 5 cards in an hour: six in 50 minutes, or six over 100.
        events.push(card("cards-in", i, "10001", now - 50 * 60_000 + i * 10 * 60_000));
        events.push(card("cards-wide", i, "10001", now - 100 * 60_000 + i * 20 * 60_000));
    }
    for (i, zip) in ["10001", "20002", "30003", "40004"].iter().enumerate() {
        // 4 distinct zip codes in a day: within 21 hours, or over 30.
        events.push(card("zips-in", 10 + i as u64, zip, now - 21 * H + i as u64 * 7 * H));
        events.push(card("zips-wide", 10 + i as u64, zip, now - 30 * H + i as u64 * 10 * H));
    }
    post_all(&app, &events);
    assert!(!app.can("message", "flags-in"));
    assert!(app.can("message", "flags-wide"));
    for user in ["ratio-in", "cards-in", "zips-in"] {
        assert!(!app.can("purchase", user), "{user} is restricted");
    }
    for user in ["ratio-wide", "cards-wide", "zips-wide"] {
        assert!(app.can("purchase", user), "{user} is allowed");
    }
    let report = app.get("/v1/users/zips-wide").json();
    assert_eq!(report["aggregates"]["zip_codes_24h"], 3, "{report}");
    assert_eq!(report["windows"]["zip_codes_24h"]["window"], "24h", "{report}");
    assert_eq!(app.get("/v1/users/ratio-in").json()["aggregates"]["spend_30d"], "200", "money stays exact");
}

/// A rule over a window of seconds, published on top of the default events.
fn seconds_rules(window: &str, when: &str, until: &str) -> String {
    format!(
        r#"{features}
[aggregates.flags]
kind = "count"
event = "scam_message_flagged"
window = "{window}"

[aggregates.last_two]
kind = "count"
event = "scam_message_flagged"
window = "{window}"
max_events = 2

[aggregates.zips]
kind = "distinct"
event = "credit_card_added"
property = "zip_code"
window = "{window}"

[rules.burst]
on = ["scam_message_flagged", "credit_card_added"]
when = "{when}"
restrict = ["can_message"]
{until}
"#,
        features = velocity().split("[aggregates.").next().unwrap(),
    )
}

#[test]
fn flags_inside_a_window_of_seconds_restrict_and_flags_spread_wider_do_not() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[ADMIN]);
    // A window of 30 s; `tight`'s events 10 s apart ending 5 s ago, so they
    // are all inside the window (read as of now) when the test reads them.
    publish(&app, &seconds_rules("30s", "flags >= 3 || zips >= 3", ""));
    let t0 = now_ms() - 42_000;
    let t1 = now_ms() - 25_000;
    let flag = |u: &str, t| at("scam_message_flagged", u, json!({}), t);
    let zip = |u: &str, z: &str, t| at("credit_card_added", u, json!({"card_id": "c", "zip_code": z}), t);
    post_all(
        &app,
        &[
            flag("tight", t1),
            flag("tight", t1 + 10000),
            flag("tight", t1 + 20000),
            flag("spread", t0),
            flag("spread", t0 + 20000),
            flag("spread", t0 + 40000),
            zip("zips", "a", t0),
            zip("zips", "b", t0 + 10000),
            zip("zips", "a", t0 + 20000),
            zip("zips", "c", t0 + 25000),
            zip("zips-spread", "a", t0),
            zip("zips-spread", "b", t0 + 10000),
            zip("zips-spread", "c", t0 + 30000),
        ],
    );
    assert!(!app.can("message", "tight"), "three flags within 30 s");
    assert!(app.can("message", "spread"), "never three within 30 s");
    assert!(!app.can("message", "zips"), "a, b, c within 30 s");
    assert!(app.can("message", "zips-spread"), "a left before c came");
    let report = app.get("/v1/users/tight").json();
    assert_eq!(report["aggregates"]["last_two"], 3, "merged, not dropped: {report}");
    assert_eq!(report["windows"]["last_two"]["entries"], 2, "{report}");
    assert_eq!(report["windows"]["last_two"]["merged"], 1, "beyond max_events the value says so: {report}");
    assert_eq!(report["windows"]["flags"]["merged"], 0, "{report}");
}

#[test]
fn a_condition_clears_restriction_is_lifted_once_the_window_empties() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[ADMIN]);
    publish(&app, &seconds_rules("2s", "flags >= 2", r#"until = "condition_clears""#));
    post_all(&app, &[event("scam_message_flagged", "u", json!({})), event("scam_message_flagged", "u", json!({}))]);
    assert!(!app.can("message", "u"), "two flags restrict");
    wait_for("the window to empty and the restriction to clear", Duration::from_secs(10), || {
        app.can("message", "u").then_some(())
    });
    let changes = wait_for("the clearing in the history", Duration::from_secs(5), || {
        let h = app.get("/v1/users/u/history").json();
        (h["changes"].as_array().unwrap().len() == 2).then_some(h["changes"].clone())
    });
    let kinds: Vec<&str> = changes.as_array().unwrap().iter().map(|c| c["change"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"rule_fired") && kinds.contains(&"cleared"), "{changes}");
    let report = app.get("/v1/users/u").json();
    assert_eq!(report["aggregates"]["flags"], 0, "{report}");
}

#[test]
fn occurred_at_outside_the_accepted_range_is_refused_with_the_reason() {
    let redis = TestRedis::start();
    let app = TestApp::spawn(&redis);
    let now = now_ms();
    let flag = |when: Value| {
        let mut e = event("scam_message_flagged", "t", json!({}));
        e["occurred_at"] = when;
        app.post("/event", &e)
    };
    assert_eq!(flag(json!(now - 3_600_000)).status, 200, "an hour ago is fine");
    assert_eq!(flag(json!("2026-01-01T10:00:00+02:00")).status, 422, "older than 7 days");
    let old = flag(json!(now - 8 * D));
    assert_eq!((old.status, old.json()["reason"].as_str()), (422, Some("event_too_old")), "{}", old.body);
    let ahead = flag(json!(now + 60_000));
    assert_eq!((ahead.status, ahead.json()["reason"].as_str()), (422, Some("event_in_future")), "{}", ahead.body);
    let bad = flag(json!("yesterday"));
    assert_eq!((bad.status, bad.json()["reason"].as_str()), (422, Some("bad_occurred_at")), "{}", bad.body);
    let recent = time_rfc3339(now - 60_000);
    assert_eq!(flag(json!(recent)).status, 200, "RFC 3339: {recent}");
    let batch = app.post(
        "/v1/events",
        &json!([event("scam_message_flagged", "t", json!({})), {
        "name": "scam_message_flagged", "event_properties": {"user_id": "t"}, "occurred_at": now - 8 * D}]),
    );
    assert_eq!(batch.status, 422, "{}", batch.body);
    assert_eq!(batch.json()["invalid"][0]["reason"], "event_too_old");
}

/// `ms` as RFC 3339 with an offset of +01:00.
fn time_rfc3339(ms: u64) -> String {
    let s = (ms / 1000) as i64 + 3600;
    let (days, rem) = (s.div_euclid(86_400), s.rem_euclid(86_400));
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}+01:00", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[test]
fn windowed_state_after_kill_9_and_replay_matches_a_reference_model() {
    let redis = TestRedis::start();
    let mut app = TestApp::spawn_with(&redis, &[ADMIN]);
    publish(&app, &seconds_rules("1h", "flags >= 1000", ""));
    // Each user's flags at pseudo-random whole minutes over three hours, in
    // order, the last one just now: the window ends there whether an event
    // or the sweep's clock moved it last.
    let start = now_ms() - 3 * H - 5_000;
    let mut events = Vec::new();
    let mut reference = Vec::new();
    for u in 0..20u64 {
        let mut times: Vec<u64> = (0..11).map(|i| start + (i * 15 + (u * 7 + i * 3) % 13) * 60_000).collect();
        times.push(start + 3 * H);
        let newest = *times.last().unwrap() / 1000;
        let in_window = times.iter().filter(|t| *t / 1000 + 3600 > newest).count();
        reference.push((format!("w{u}"), in_window));
        events.extend(times.into_iter().map(|t| at("scam_message_flagged", &format!("w{u}"), json!({}), t)));
    }
    let (first, second) = events.split_at(events.len() / 2);
    post_all(&app, first);
    post_all(&app, second);
    app.kill();
    let app = TestApp::spawn_with(&redis, &[ADMIN]);
    for (user, expected) in reference {
        let report = app.get(&format!("/v1/users/{user}")).json();
        assert_eq!(report["aggregates"]["flags"], json!(expected), "{user}: {report}");
    }
}

#[test]
fn a_quiet_users_windows_are_read_as_of_now_by_the_explanation_and_the_simulation() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[ADMIN]);
    // No clearing rule: nothing queues this user for the sweep, yet its
    // flags leave the 60 s window about two seconds after they are posted.
    let rules = seconds_rules("60s", "flags >= 5", "");
    publish(&app, &rules);
    let t = now_ms() - 58_000;
    post_all(
        &app,
        &[at("scam_message_flagged", "quiet", json!({}), t), at("scam_message_flagged", "quiet", json!({}), t)],
    );
    assert_eq!(app.get("/v1/users/quiet").json()["aggregates"]["flags"], 2, "both inside the window at first");
    let report = wait_for("the flags to age out of the explanation", Duration::from_secs(10), || {
        let r = app.get("/v1/users/quiet").json();
        (r["aggregates"]["flags"] == 0).then_some(r)
    });
    assert!(report["windows"]["flags"]["next_aging_at_ms"].is_null(), "nothing left to age: {report}");
    // The same rule set with a threshold of two, simulated now, restricts nobody.
    let candidate = seconds_rules("60s", "flags >= 2", "");
    let sim = admin(&app, "POST", "/v1/rules/simulate", "application/toml", candidate.as_bytes(), &[]);
    assert_eq!(sim.status, 200, "{}", sim.body);
    let burst = sim.json()["rules"].as_array().unwrap().iter().find(|r| r["rule"] == "burst").cloned().unwrap();
    assert_eq!(burst["would_restrict"], 0, "aged to the present before judging: {burst}");
}
