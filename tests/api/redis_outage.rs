//! Without Redis the service still starts and answers checks from memory;
//! writes answer 503 with Retry-After; it resumes when Redis is back.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{default_config, event, wait_for, TestApp, TestRedis};

#[test]
fn started_without_redis_it_is_alive_not_ready_and_says_so_then_recovers() {
    let mut redis = TestRedis::not_started();
    let app = TestApp::launch(&redis.url(), &default_config(), &[]);
    assert_eq!(app.get("/health").status, 200);
    let ready = app.get("/ready");
    assert_eq!(ready.status, 503);
    assert!(ready.json()["redis"].as_str().unwrap().contains(&redis.url()), "{}", ready.body);
    let r = app.post("/event", &event("scam_message_flagged", "early", json!({})));
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.header("Retry-After"), Some("1"));
    assert!(r.json()["error"].as_str().unwrap().contains("unavailable"));
    // Nothing is known of any user yet: a check says so instead of "allowed".
    let check = app.get("/canmessage?user_id=early");
    assert_eq!(check.status, 503, "{}", check.body);
    assert_eq!(check.header("Retry-After"), Some("1"));
    assert!(check.json()["error"].as_str().unwrap().contains("not ready"), "{}", check.body);
    wait_for("the unreachable line", Duration::from_secs(20), || app.log().contains("redis unreachable").then_some(()));
    assert!(app.log().contains(&redis.url()));

    redis.launch();
    app.wait_ready();
    app.post_applied(&event("scam_message_flagged", "early", json!({})));
    // Every failed attempt of the whole outage made one line, not one each.
    let log = app.log();
    let warnings = log.lines().filter(|l| l.contains("redis unreachable")).count();
    assert_eq!(warnings, 1, "{log}");
    assert!(log.contains("connected to redis"), "{log}");
}

#[test]
fn when_redis_goes_away_writes_get_503_and_checks_keep_answering() {
    // With its data kept (AOF), as deployed: a Redis that came back empty
    // would hold no lease, and the owner's fenced writes would stop it.
    let mut redis = TestRedis::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let app = TestApp::spawn(&redis);
    app.post_applied(&event("scam_message_flagged", "kept", json!({})));
    app.post_applied(&event("scam_message_flagged", "kept", json!({})));
    redis.kill();

    let r = app.post("/event", &event("purchase_made", "kept", json!({"amount": 1})));
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.header("Retry-After"), Some("1"));
    for _ in 0..50 {
        assert!(!app.can("message", "kept"), "checks answer from memory during the outage");
    }
    assert_eq!(app.get("/ready").status, 503);

    redis.launch();
    wait_for("writes to succeed again", Duration::from_secs(20), || {
        let r = app.post("/event?wait=applied", &event("purchase_made", "back", json!({"amount": 1})));
        (r.status == 200).then_some(())
    });
    let log = app.log();
    assert!(log.contains("redis went away"), "{log}");
    assert!(log.contains("redis is back"), "{log}");
}
