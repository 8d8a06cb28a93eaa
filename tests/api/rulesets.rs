//! The rule lifecycle: publish, switch through the streams, roll back.

use serde_json::{json, Value};

use crate::helpers::{default_config, event, Reply, TestApp, TestRedis};

const TOKEN: &str = "rules-token-0123456789";
pub(crate) const ADMIN: (&str, &str) = ("RESTRICTD_AUTH__ADMIN_TOKENS__OPS", TOKEN);

pub(crate) fn admin(
    app: &TestApp,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
    extra: &[(&str, &str)],
) -> Reply {
    let auth = format!("Bearer {TOKEN}");
    let mut headers = vec![("Authorization", auth.as_str()), ("Content-Type", content_type)];
    headers.extend_from_slice(extra);
    app.request(method, path, &headers, body)
}

/// The default rule set with scam_message_rule's condition replaced.
pub(crate) fn rules_with(when: &str) -> Value {
    let text = std::fs::read_to_string(default_config()).unwrap().replace("scam_flags >= 2", when);
    let table: toml::Table = toml::from_str(&text).unwrap();
    let mut out = serde_json::Map::new();
    for section in ["features", "events", "aggregates", "rules"] {
        out.insert(section.into(), serde_json::to_value(&table[section]).unwrap());
    }
    Value::Object(out)
}

pub(crate) fn flag(app: &TestApp, user: &str) -> bool {
    let r = app.post_applied(&event("scam_message_flagged", user, json!({})));
    r["features"]["can_message"].as_bool().unwrap()
}

#[test]
fn a_published_version_judges_the_events_after_its_switch_and_a_rollback_restores_the_old_rules() {
    let redis = TestRedis::start();
    let mut app = TestApp::spawn_with(&redis, &[ADMIN]);
    assert!(flag(&app, "early"), "one flag is not enough under version 1");
    assert_eq!(app.get("/v1/rules").json()["version"], 1);

    let v2 = rules_with("scam_flags >= 1");
    let r = admin(
        &app,
        "PUT",
        "/v1/rules?wait=applied&message=stricter",
        "application/json",
        v2.to_string().as_bytes(),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let published = r.json();
    assert_eq!((published["version"].as_u64(), published["applied"].as_bool()), (Some(2), Some(true)));
    assert_eq!(published["diff"]["rules_changed"], json!(["scam_message_rule"]));
    assert_eq!(published["by"], "admin:ops");

    assert!(!flag(&app, "late"), "one flag restricts under version 2");

    assert!(app.can("message", "early"), "an event before the switch was judged by version 1");
    assert_eq!(app.get("/v1/rules").json()["version"], 2);
    let versions = app.get("/v1/rules/versions").json();
    assert_eq!(versions["current"], 2);
    assert_eq!(versions["versions"][0]["message"], "stricter");
    let two = app.get("/v1/rules/versions/2").json();
    assert_eq!(two["content"]["rules"]["scam_message_rule"]["when"], "scam_flags >= 1");
    assert_eq!(two["diff"]["rules_changed"], json!(["scam_message_rule"]));

    // A publish based on an older version conflicts; an invalid one changes nothing.
    let stale = admin(&app, "PUT", "/v1/rules", "application/json", v2.to_string().as_bytes(), &[("If-Match", "1")]);
    assert_eq!(stale.status, 412, "{}", stale.body);
    assert!(stale.json()["error"].as_str().unwrap().starts_with("the current version is 2, not 1"), "{}", stale.body);
    assert!(!stale.body.contains("Some("), "a sentence, not Rust's Debug: {}", stale.body);
    let mut bad = rules_with("scam_flag >= 1");
    bad["aggregates"]["spend"]["property"] = json!("price");
    let r = admin(&app, "PUT", "/v1/rules", "application/json", bad.to_string().as_bytes(), &[]);
    assert_eq!(r.status, 422, "{}", r.body);
    let errors: Vec<String> = serde_json::from_value(r.json()["errors"].clone()).unwrap();
    for key in ["aggregates.spend.property", "rules.scam_message_rule.when", "rules.chargeback_ratio_rule.when"] {
        assert!(errors.iter().any(|e| e.starts_with(key)), "every error with its key, {key} too: {errors:?}");
    }
    assert_eq!(app.get("/v1/rules").json()["version"], 2, "nothing changed");

    let r = admin(&app, "POST", "/v1/rules/rollback?wait=applied", "application/json", br#"{"to": 1}"#, &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["version"], 3);
    assert!(flag(&app, "third"), "version 3 is a copy of version 1");

    // The current version outlives a restart, whatever the file says.
    assert_eq!(app.terminate(), Some(0));
    let app = TestApp::spawn_with(&redis, &[ADMIN]);
    assert!(flag(&app, "fourth"));
    assert!(!flag(&app, "third"), "the second flag of a user restricts under version 3");
    let toml = std::fs::read_to_string(default_config()).unwrap().replace("scam_flags >= 2", "scam_flags >= 1");
    // A whole configuration file: its rule-set sections are published, the others ignored.
    let r = admin(&app, "PUT", "/v1/rules?wait=applied", "application/toml", toml.as_bytes(), &[("If-Match", "3")]);
    assert_eq!(r.status, 200, "{}", r.body);
    let bad = toml.replace("scam_flags >= 1", "scam_flag >= 1");
    let line = bad.lines().position(|l| l.contains("scam_flag >= 1")).unwrap() + 1;
    let r = admin(&app, "PUT", "/v1/rules", "application/toml", bad.as_bytes(), &[]);
    let key = format!("rules.scam_message_rule.when (line {line}, column");
    assert!(r.status == 422 && r.json()["errors"][0].as_str().unwrap().starts_with(&key), "{key}: {}", r.body);
    let typo = json!({"rule": {}}).to_string();
    let r = admin(&app, "PUT", "/v1/rules", "application/json", typo.as_bytes(), &[]);
    assert_eq!(r.status, 422, "a JSON body is the four sections, nothing else: {}", r.body);
    assert!(!flag(&app, "fifth"), "version 4, published as TOML, is the stricter rule again");
}

#[test]
fn a_file_that_differs_from_the_current_version_is_reported_not_applied() {
    let redis = TestRedis::start();
    let mut app = TestApp::spawn_with(&redis, &[ADMIN]);
    assert_eq!(app.get("/v1/rules").json()["file_differs"], false);
    assert_eq!(app.terminate(), Some(0));
    let dir = std::env::temp_dir().join(format!("restrictd-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let changed = dir.join("config.toml");
    std::fs::write(
        &changed,
        std::fs::read_to_string(default_config()).unwrap().replace("scam_flags >= 2", "scam_flags >= 1"),
    )
    .unwrap();
    let app = TestApp::launch(&redis.url(), &changed, &[ADMIN]);
    app.wait_ready();
    crate::helpers::wait_for("the difference to be noticed", std::time::Duration::from_secs(10), || {
        (app.get("/v1/rules").json()["file_differs"] == true).then_some(())
    });
    assert!(flag(&app, "unchanged"), "the current version (1) still judges: one flag is not enough");
    assert!(app.log().contains("differ from the current version"), "{}", app.log());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_command_line_diffs_publishes_and_lists_versions_for_a_running_deployment() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[ADMIN]);
    let dir = std::env::temp_dir().join(format!("restrictd-rules-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stricter = dir.join("stricter.toml");
    std::fs::write(
        &stricter,
        std::fs::read_to_string(default_config()).unwrap().replace("scam_flags >= 2", "scam_flags >= 1"),
    )
    .unwrap();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_restrictd"))
            .args(args)
            .arg("--config")
            .arg(default_config())
            .env("RESTRICTD_REDIS__URL", redis.url())
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let path = stricter.to_str().unwrap();
    let mut feed = crate::sse::Subscriber::open(&app.addr, "");
    assert_eq!(cli(&["rules", "diff", path])["diff"]["rules_changed"], json!(["scam_message_rule"]));
    assert_eq!(cli(&["rules", "publish", path, "--message", "from git"])["version"], 2);
    let history = cli(&["rules", "history"]);
    assert_eq!(history["current"], 2);
    assert_eq!(history["versions"][0]["message"], "from git");
    assert_eq!(history["versions"][1]["by"], "file");
    crate::helpers::wait_for("the service to know version 2", std::time::Duration::from_secs(10), || {
        (app.get("/v1/rules").json()["version"] == 2).then_some(())
    });
    assert!(!flag(&app, "cli"), "the published rule judges the service's next events");
    let news = feed.take("rules", 1);
    assert_eq!(
        (news[0]["version"].as_u64(), news[0]["by"].as_str()),
        (Some(2), Some("cli")),
        "the feed says so: {news:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The default rule set plus a shadow rule that would restrict messaging at the first flag.
fn with_shadow(mode: &str) -> Value {
    let mut v = rules_with("scam_flags >= 2");
    v["rules"]["first_flag"] = json!({
        "on": ["scam_message_flagged"], "when": "scam_flags >= 1", "restrict": ["can_message"], "mode": mode,
    });
    v
}

#[test]
fn a_shadow_rule_restricts_nobody_counts_whom_it_would_and_is_promoted_by_publishing() {
    let redis = TestRedis::start();
    // Counting from the first restriction: the shadow rule's share (3 of 13) would trip, the enforced's (2) not.
    let tripwire = [("RESTRICTD_TRIPWIRE__MIN_RESTRICTED", "1"), ("RESTRICTD_TRIPWIRE__THRESHOLD", "0.2")];
    let app = TestApp::spawn_with(&redis, &[ADMIN, tripwire[0], tripwire[1]]);
    let others: Vec<Value> = (0..10).map(|i| event("scam_message_flagged", &format!("o{i}"), json!({}))).collect();
    assert_eq!(app.post("/v1/events?wait=applied", &json!(others)).status, 200);
    flag(&app, "already");
    assert!(!flag(&app, "already"), "restricted by the enforced rule before the shadow rule exists");
    let r = admin(
        &app,
        "PUT",
        "/v1/rules?wait=applied",
        "application/json",
        with_shadow("shadow").to_string().as_bytes(),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["diff"]["rules_added"], json!(["first_flag"]));

    assert!(flag(&app, "a"), "a shadow rule restricts nobody");
    assert!(flag(&app, "b"));
    assert!(!flag(&app, "b"), "the enforced rule still does");
    assert!(!flag(&app, "already"));
    let user = app.get("/v1/users/a").json();
    assert_eq!(user["would_restrict"][0]["rule"], "first_flag", "{user}");
    assert_eq!(user["restrictions"], json!([]));
    let shadow = crate::helpers::wait_for("the shadow rule's counts", std::time::Duration::from_secs(10), || {
        let rules = app.get("/v1/rules").json();
        let rule = rules["rules"].as_array().unwrap().iter().find(|r| r["name"] == "first_flag").cloned()?;
        (rule["tripwire"]["restricted_total"] == 3).then_some(rule)
    });
    assert_eq!(shadow["tripwire"]["mode"], "shadow");
    assert_eq!(shadow["tripwire"]["overlap_total"], 1, "`already` was restricted by the enforced rule: {shadow}");
    assert_eq!(shadow["tripwire"]["restricted_in_window"], 3);
    assert_eq!(shadow["tripwire"]["state"], "armed", "a shadow rule never trips: {shadow}");
    let history = crate::helpers::wait_for(
        "the would_restrict change in the history",
        std::time::Duration::from_secs(10),
        || {
            let h = app.get("/v1/users/a/history").json();
            (h["changes"][0]["change"] == "would_restrict").then_some(h)
        },
    );
    assert_eq!(history["changes"][0]["rule"], "first_flag");
    let metrics = app.get("/metrics").body;
    assert!(metrics.contains(r#"restrictd_rule_fired_total{rule="first_flag",mode="shadow"} 3"#), "{metrics}");

    // Promoting is publishing the same rule enforced: from then on it restricts.
    let r = admin(
        &app,
        "PUT",
        "/v1/rules?wait=applied",
        "application/json",
        with_shadow("enforce").to_string().as_bytes(),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(app.can("message", "a"), "promotion restricts nobody by itself");
    assert!(!flag(&app, "c"), "the promoted rule restricts at the first flag");
}

#[test]
fn a_simulation_counts_what_the_rules_then_do_from_the_service_and_from_the_snapshots() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[ADMIN, ("RESTRICTD_PERSISTENCE__FLUSH_INTERVAL", "100ms")]);
    for i in 0..10 {
        let amount = if i < 4 { 200 } else { 50 };
        app.post_applied(&event("purchase_made", &format!("s{i}"), json!({"amount": amount})));
    }
    let mut candidate = rules_with("scam_flags >= 2");
    candidate["rules"]["big_spender"] =
        json!({"on": ["purchase_made"], "when": "spend > 100", "restrict": ["can_purchase"]});
    candidate["aggregates"]["chargeback_count"] = json!({"kind": "count", "event": "chargeback_occurred"});
    candidate["rules"]["any_chargeback"] =
        json!({"on": ["chargeback_occurred"], "when": "chargeback_count >= 1", "restrict": ["can_purchase"]});
    let sim = app.post("/v1/rules/simulate", &candidate);
    assert_eq!(sim.status, 200, "{}", sim.body);
    let sim = sim.json();
    let rule =
        |sim: &Value, name: &str| sim["rules"].as_array().unwrap().iter().find(|r| r["rule"] == name).unwrap().clone();
    assert_eq!(sim["population"], 10);
    assert_eq!(sim["shards"], "0-63");
    let big = rule(&sim, "big_spender");
    assert_eq!((big["would_restrict"].as_u64(), big["newly_restricted"].as_u64()), (Some(4), Some(4)), "{big}");
    assert_eq!(big["share"], 0.4);
    assert_eq!(big["would_trip"], false, "4 is under min_restricted (10)");
    assert_eq!(rule(&sim, "any_chargeback")["needs_shadow_mode"], true, "its aggregate does not exist yet");

    // The same from the snapshots, by the command line.
    let dir = std::env::temp_dir().join(format!("restrictd-sim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("candidate.toml");
    std::fs::write(&file, toml::to_string(&candidate).unwrap()).unwrap();
    let offline = crate::helpers::wait_for("every user in the snapshots", std::time::Duration::from_secs(10), || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_restrictd"))
            .args(["rules", "simulate"])
            .arg(&file)
            .arg("--config")
            .arg(default_config())
            .env("RESTRICTD_REDIS__URL", redis.url())
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        (v["population"] == 10).then_some(v)
    });
    assert_eq!(rule(&offline, "big_spender")["would_restrict"], 4, "{offline}");

    // Promoted, the rule restricts exactly those users at their next purchase.
    let r = admin(&app, "PUT", "/v1/rules?wait=applied", "application/json", candidate.to_string().as_bytes(), &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    let restricted = (0..10)
        .filter(|i| {
            let r = app.post_applied(&event("purchase_made", &format!("s{i}"), json!({"amount": 0})));
            r["features"]["can_purchase"] == false
        })
        .count();
    assert_eq!(restricted, 4);
    let _ = std::fs::remove_dir_all(&dir);
}
