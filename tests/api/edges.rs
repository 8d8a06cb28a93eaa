//! Operator-grade edges: no credential in any output, detail only for
//! readers, checks that refuse rather than guess before recovery.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::helpers::{default_config, event, wait_for, TestApp, TestRedis};

/// Every output of the service and its CLI for a Redis URL with a password.
fn assert_hidden(secret: &str, outputs: &[(&str, String)]) {
    for (surface, text) in outputs {
        assert!(!text.contains(secret), "{surface} shows the password:\n{text}");
    }
}

fn check_config(env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_restrictd"));
    cmd.arg("check-config").arg("--config").arg(default_config()).envs(env.iter().copied());
    let out = cmd.output().unwrap();
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn a_password_in_an_unreachable_redis_url_appears_in_no_output() {
    let redis = TestRedis::not_started();
    let secret = "PASSWORD-unreachable-4d1";
    let url = format!("redis://default:{secret}@127.0.0.1:{}/0", redis.port);
    let app = TestApp::launch(&url, &default_config(), &[]);
    wait_for("the unreachable line", Duration::from_secs(20), || app.log().contains("redis unreachable").then_some(()));
    let ready = app.get("/ready");
    assert_eq!(ready.status, 503);
    assert!(ready.json()["redis"].as_str().unwrap().contains("***@127.0.0.1"), "{}", ready.body);
    let bad = format!("http://default:{secret}@127.0.0.1/0");
    assert_hidden(
        secret,
        &[
            ("/ready", ready.body),
            ("/health", app.get("/health").body),
            ("/metrics", app.get("/metrics").body),
            ("the log", app.log()),
            ("check-config", check_config(&[("RESTRICTD_REDIS__URL", &url)])),
            ("check-config of a bad URL", check_config(&[("RESTRICTD_REDIS__URL", &bad)])),
        ],
    );
}

#[test]
fn a_password_protected_redis_is_used_and_its_password_appears_in_no_output() {
    let redis = TestRedis::start();
    let secret = "PASSWORD-protected-9c2";
    redis.cli(&["CONFIG", "SET", "requirepass", secret]);
    let url = format!("redis://default:{secret}@127.0.0.1:{}/0", redis.port);
    let mut app = TestApp::launch(&url, &default_config(), &[]);
    app.wait_ready();
    app.post_applied(&event("scam_message_flagged", "pw", json!({})));
    app.post_applied(&event("scam_message_flagged", "pw", json!({})));
    assert!(!app.can("message", "pw"));
    let outputs = [
        ("/ready", app.get("/ready").body),
        ("/metrics", app.get("/metrics").body),
        ("/v1/users", app.get("/v1/users/pw").body),
        ("state --user", {
            let out = Command::new(env!("CARGO_BIN_EXE_restrictd"))
                .args(["state", "--user", "pw", "--config"])
                .arg(default_config())
                .env("RESTRICTD_REDIS__URL", &url)
                .output()
                .unwrap();
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
        }),
    ];
    assert_eq!(app.terminate(), Some(0));
    let mut all = outputs.to_vec();
    all.push(("the log", app.log()));
    assert_hidden(secret, &all);
}

#[test]
fn ready_and_health_give_the_status_alone_without_the_read_token() {
    let redis = TestRedis::start();
    let token = "reader-token-0123456789";
    let app = TestApp::spawn_with(
        &redis,
        &[("RESTRICTD_AUTH__REQUIRE_FOR_READS", "true"), ("RESTRICTD_AUTH__READ_TOKEN", token)],
    );
    assert_eq!(app.get("/ready").json(), json!({"status": "ready"}));
    assert_eq!(app.get("/health").json(), json!({"status": "ok"}));
    let bearer = format!("Bearer {token}");
    let detailed = app.request("GET", "/ready", &[("Authorization", &bearer)], b"").json();
    assert_eq!(detailed["status"], "ready");
    assert!(detailed["instance"].is_string(), "{detailed}");
}

#[test]
fn a_restart_during_a_redis_outage_refuses_checks_instead_of_allowing_restricted_users() {
    let mut redis = TestRedis::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut app = TestApp::spawn(&redis);
    app.post_applied(&event("scam_message_flagged", "scammer", json!({})));
    app.post_applied(&event("scam_message_flagged", "scammer", json!({})));
    assert!(!app.can("message", "scammer"));
    assert_eq!(app.terminate(), Some(0));

    redis.kill();
    let app = TestApp::launch(&redis.url(), &default_config(), &[]);
    let check = app.get("/canmessage?user_id=scammer");
    assert_eq!(check.status, 503, "a restricted user is not let through: {}", check.body);
    assert_eq!(check.header("Retry-After"), Some("1"));
    let explain = app.get("/v1/users/scammer");
    assert_eq!(explain.status, 503, "{}", explain.body);
    let stats = app.get("/v1/stats");
    assert_eq!(stats.status, 503);
    assert!(!stats.body.contains("nothing was accepted"), "a read accepted nothing: {}", stats.body);

    redis.launch();
    app.wait_ready();
    assert!(!app.can("message", "scammer"), "restricted again once recovered");
}

#[test]
fn before_recovery_allow_answers_from_what_is_known() {
    let redis = TestRedis::not_started();
    let app = TestApp::launch(&redis.url(), &default_config(), &[("RESTRICTD_CHECKS__BEFORE_RECOVERY", "allow")]);
    assert!(app.can("message", "anyone"));
}

#[test]
fn scripts_run_stops_the_redis_it_started_and_only_that() {
    let other = TestRedis::start();
    let (port, http_port) = (loadtest::spawn::free_port(), loadtest::spawn::free_port());
    let data = std::env::temp_dir().join(format!("restrictd-run-{}-{port}", std::process::id()));
    let addr = format!("127.0.0.1:{http_port}");
    let mut run = Command::new("bash")
        .arg("scripts/run")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUN_BIN", env!("CARGO_BIN_EXE_restrictd"))
        .env("RESTRICTD_REDIS__URL", format!("redis://127.0.0.1:{port}/0"))
        .env("RESTRICTD_HTTP__ADDR", &addr)
        .env("RUN_REDIS_DATA", &data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ready = || crate::helpers::http(&addr, "GET", "/ready", &[], b"").ok().filter(|r| r.status == 200);
    wait_for("scripts/run serving", Duration::from_secs(60), ready);
    let pong = |p: u16| Command::new("redis-cli").args(["-p", &p.to_string(), "ping"]).output().unwrap().stdout;
    assert_eq!(pong(port), b"PONG\n", "the script started a redis-server");

    Command::new("kill").args(["-TERM", &run.id().to_string()]).status().unwrap();
    let status = wait_for("scripts/run to exit", Duration::from_secs(30), || run.try_wait().unwrap());
    assert_eq!(status.code(), Some(0));
    wait_for("the started redis-server to stop", Duration::from_secs(10), || {
        (!pong(port).starts_with(b"PONG")).then_some(())
    });
    assert_eq!(other.cli(&["PING"]), "PONG", "a Redis the script did not start keeps running");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn scripts_read_the_port_of_a_url_without_one_as_6379_and_redact_credentials() {
    let out = Command::new("bash")
        .arg("-c")
        .arg(". scripts/lib.sh; redis_port redis://127.0.0.1/0; redis_port redis://u:p@h:7000/0; redact_url redis://u:s3cret@h:1/0")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "6379\n7000\nredis://***@h:1/0");
}

#[test]
fn event_ids_are_unique_in_the_deployment_and_the_same_everywhere_they_are_shown() {
    let redis = TestRedis::start();
    let app = TestApp::spawn(&redis);
    let batch: Vec<_> = (0..200).map(|i| event("purchase_made", &format!("buyer-{i}"), json!({"amount": 1}))).collect();
    let ids = app.post("/v1/events", &json!(batch)).json()["ids"].as_array().unwrap().clone();
    let unique: std::collections::BTreeSet<&str> = ids.iter().map(|i| i.as_str().unwrap()).collect();
    assert_eq!(unique.len(), 200, "every id of a 200-event batch is distinct: {ids:?}");
    let pair = json!([event("scam_message_flagged", "43", json!({})), event("scam_message_flagged", "44", json!({}))]);
    let r = app.post("/v1/events?wait=applied", &pair).json();
    assert_ne!(r["ids"][0], r["ids"][1], "{r}");

    app.post_applied(&event("scam_message_flagged", "idu", json!({})));
    let second = app.post_applied(&event("scam_message_flagged", "idu", json!({})));
    let id = second["id"].as_str().unwrap();
    let shard = app.get("/v1/users/idu").json()["shard"].as_u64().unwrap();
    assert!(id.starts_with(&format!("{shard}-")), "{id} names shard {shard}");
    assert_eq!(app.get("/v1/users/idu").json()["restrictions"][0]["event_id"], id);
    let history = wait_for("the history", Duration::from_secs(10), || {
        let h = app.get("/v1/users/idu/history").json();
        h["changes"].as_array().is_some_and(|c| !c.is_empty()).then_some(h)
    });
    assert_eq!(history["changes"][0]["entry_id"], id);
}

const TOKEN: &str = "ops-token-0123456789";

fn admin_app(redis: &TestRedis) -> TestApp {
    TestApp::spawn_with(redis, &[("RESTRICTD_AUTH__ADMIN_TOKENS__OPS", TOKEN)])
}

fn admin(app: &TestApp, method: &str, path: &str, body: serde_json::Value) -> crate::helpers::Reply {
    let auth = format!("Bearer {TOKEN}");
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let body = if body.is_null() { Vec::new() } else { body.to_string().into_bytes() };
    app.request(method, path, &headers, &body)
}

/// Every `<name>_ms` field of every object has its RFC 3339 sibling `<name>`.
fn assert_times_twice(where_: &str, v: &serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, value) in map {
                if let Some(name) = k.strip_suffix("_ms") {
                    let iso = map.get(name).unwrap_or_else(|| panic!("{where_}: {k} without {name}: {v}"));
                    assert_eq!(value.is_null(), iso.is_null(), "{where_}: {k} and {name}: {v}");
                    if let Some(ms) = value.as_u64() {
                        assert_eq!(iso.as_str(), Some(restrictd_domain::time::rfc3339_ms(ms).as_str()));
                    }
                }
                assert_times_twice(where_, value);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| assert_times_twice(where_, i)),
        _ => {}
    }
}

#[test]
fn a_tripwire_has_one_shape_with_the_state_after_the_action_and_who_acted_has_one_form() {
    let redis = TestRedis::start();
    let app = admin_app(&redis);
    for u in ["a", "b"] {
        app.post_applied(&event("scam_message_flagged", u, json!({})));
        app.post_applied(&event("scam_message_flagged", u, json!({})));
    }
    let in_rules = |app: &TestApp| app.get("/v1/rules").json()["rules"][1]["tripwire"].clone();
    wait_for("the window to count 2", Duration::from_secs(10), || {
        (in_rules(&app)["restricted_in_window"] == 2).then_some(())
    });
    let tripped = admin(&app, "POST", "/v1/rules/scam_message_rule/tripwire", json!({"action": "trip"})).json();
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&tripped["tripwire"]), keys(&in_rules(&app)), "one shape: {tripped}");
    let reset = admin(&app, "POST", "/v1/rules/scam_message_rule/tripwire", json!({"action": "reset"})).json();
    assert_eq!(reset["tripwire"]["state"], "armed");
    assert_eq!(reset["tripwire"]["restricted_in_window"], 0, "the window after the reset: {reset}");
    assert_times_twice("the reset reply", &reset);
    assert_times_twice("GET /v1/rules", &app.get("/v1/rules").json());

    let put = admin(&app, "PUT", "/v1/users/a/features/can_message", json!({"state": "allowed", "reason": "appeal"}));
    assert_eq!(put.json()["overrides"][0]["by"], "admin:ops");
    let audit = redis.cli(&["XRANGE", "rd:audit:tripwire", "-", "+"]);
    assert!(audit.contains(r#""who":"admin:ops""#), "{audit}");
    let history = wait_for("the override in the history", Duration::from_secs(10), || {
        let h = app.get("/v1/users/a/history").json();
        (h["changes"][0]["change"] == "override_set").then_some(h)
    });
    assert_eq!(history["changes"][0]["who"], "admin:ops");
    assert_times_twice("the history", &history);
    assert_times_twice("the user", &app.get("/v1/users/a").json());
    assert_times_twice("the stats", &app.get("/v1/stats").json());
}

#[test]
fn unknown_users_are_404_on_every_read_that_explains_and_an_override_removal_creates_nobody() {
    let redis = TestRedis::start();
    let app = admin_app(&redis);
    app.post_applied(&event("purchase_made", "known", json!({"amount": 1})));
    assert_eq!(app.get("/v1/users/ghost").status, 404);
    assert_eq!(app.get("/v1/users/ghost/history").status, 404);
    assert_eq!(app.get("/v1/users/known/history").status, 200, "a user without changes has an empty history");
    assert!(app.can("message", "ghost"), "checks answer allowed for a user never seen");

    let removed = admin(&app, "DELETE", "/v1/users/ghost/features/can_message", serde_json::Value::Null);
    assert_eq!(removed.status, 404, "{}", removed.body);
    assert_eq!(app.get("/v1/users/ghost").status, 404, "nothing was created");
}

#[test]
fn an_override_that_expires_at_once_is_refused_and_changes_nothing() {
    let redis = TestRedis::start();
    let app = admin_app(&redis);
    let set = admin(&app, "PUT", "/v1/users/o/features/can_message", json!({"state": "restricted", "reason": "r"}));
    assert_eq!(set.status, 200, "{}", set.body);
    for bad in ["0s", "-1s", "0ms"] {
        let r = admin(
            &app,
            "PUT",
            "/v1/users/o/features/can_message",
            json!({"state": "allowed", "reason": "x", "expires_in": bad}),
        );
        assert_eq!(r.status, 422, "{bad}: {}", r.body);
        assert!(r.json()["error"].as_str().unwrap().contains("expires_in"), "{}", r.body);
    }
    assert!(!app.can("message", "o"), "the override in force is untouched");
}

#[test]
fn an_unknown_query_parameter_on_the_feed_or_history_is_named_in_a_400() {
    let redis = TestRedis::start();
    let app = TestApp::spawn(&redis);
    let r = app.get("/v1/feed?feature=can_purchase");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.json()["error"].as_str().unwrap().contains("\"feature\""), "{}", r.body);
    let r = app.get("/v1/users/x/history?limt=5");
    assert_eq!(r.status, 400);
    assert!(r.body.contains("limt"));
}

#[test]
fn state_of_a_user_shows_its_active_override() {
    let redis = TestRedis::start();
    let mut app = admin_app(&redis);
    let put = admin(
        &app,
        "PUT",
        "/v1/users/ov/features/can_purchase",
        json!({"state": "restricted", "reason": "chargeback spree"}),
    );
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(app.terminate(), Some(0));
    let out = Command::new(env!("CARGO_BIN_EXE_restrictd"))
        .args(["state", "--user", "ov", "--config"])
        .arg(default_config())
        .env("RESTRICTD_REDIS__URL", redis.url())
        .output()
        .unwrap();
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let o = &state["snapshot"]["overrides"][0];
    assert_eq!((o["feature"].as_str(), o["state"].as_str()), (Some("can_purchase"), Some("restricted")), "{state}");
    assert_eq!(o["reason"], "chargeback spree");
}

#[test]
fn every_metric_has_help_text_the_build_is_named_and_a_405_says_what_is_allowed() {
    let redis = TestRedis::start();
    let app = TestApp::spawn(&redis);
    app.post_applied(&event("scam_message_flagged", "m", json!({})));
    let body = app.get("/metrics").body;
    let families: Vec<&str> =
        body.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.split(' ').next()).collect();
    assert!(families.len() > 20, "{body}");
    for family in families {
        let help = format!("# HELP {family} ");
        let line = body.lines().find(|l| l.starts_with(&help)).unwrap_or_else(|| panic!("{family} has no # HELP"));
        assert!(line.len() > help.len() + 10, "{line}");
    }
    let info = body.lines().find(|l| l.starts_with("restrictd_build_info{")).expect("restrictd_build_info");
    assert!(
        info.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))) && info.contains("commit=\""),
        "{info}"
    );
    assert!(info.ends_with(" 1"), "{info}");

    let r = app.request("DELETE", "/event", &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("POST"));
    let r = app.request("POST", "/v1/users/x/features/can_message", &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("PUT, DELETE"));
    assert!(r.json()["error"].as_str().unwrap().contains("PUT, DELETE"));
}
