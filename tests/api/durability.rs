//! Durable state: snapshots, recovery by replay, exactly once across crashes,
//! graceful shutdown, trimming, Redis restarts.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use restrictd_domain::shard_of;
use serde_json::json;

use crate::helpers::{default_config, event, wait_for, TestApp, TestRedis};
use crate::producers::{assert_state_matches, Producers};

/// Snapshots often, so crashes land between, during and after snapshots. The
/// stream keeps what was snapshotted (trim margin 60 s), so a stored offset
/// that lagged its users would show as events applied twice.
pub(crate) const EAGER: &[(&str, &str)] = &[
    ("RESTRICTD_PERSISTENCE__FLUSH_INTERVAL", "20ms"),
    ("RESTRICTD_PERSISTENCE__FLUSH_DIRTY_LIMIT", "50"),
    ("RESTRICTD_PERSISTENCE__TRIM_MARGIN", "60s"),
];

/// Like EAGER, and trims each stream right up to its snapshot.
const TRIMMING: &[(&str, &str)] = &[
    ("RESTRICTD_PERSISTENCE__FLUSH_INTERVAL", "20ms"),
    ("RESTRICTD_PERSISTENCE__FLUSH_DIRTY_LIMIT", "50"),
    ("RESTRICTD_PERSISTENCE__TRIM_MARGIN", "0s"),
];

/// Never snapshots while running (only at graceful shutdown).
const LAZY: &[(&str, &str)] = &[
    ("RESTRICTD_PERSISTENCE__FLUSH_INTERVAL", "1h"),
    ("RESTRICTD_PERSISTENCE__FLUSH_DIRTY_LIMIT", "1000000"),
    ("RESTRICTD_PERSISTENCE__CHANGELOG_DELAY", "1h"),
];

pub(crate) fn seed_users(app: &TestApp) {
    for _ in 0..2 {
        app.post_applied(&event("scam_message_flagged", "flagged", json!({})));
    }
    app.post_applied(&event("purchase_made", "buyer", json!({"amount": 100})));
    app.post_applied(&event("chargeback_occurred", "buyer", json!({"amount": 15.5})));
    app.post_applied(&event("purchase_made", "fine", json!({"amount": 40.25})));
}

pub(crate) fn assert_seeded(app: &TestApp) {
    assert!(!app.can("message", "flagged"));
    assert!(!app.can("purchase", "buyer"));
    assert!(app.can("purchase", "fine"));
    let buyer = app.get("/v1/users/buyer").json();
    assert_eq!(buyer["aggregates"]["spend"], "100");
    assert_eq!(buyer["aggregates"]["chargebacks"], "15.5");
    assert_eq!(buyer["restrictions"][0]["rule"], "chargeback_ratio_rule");
    assert_eq!(app.get("/v1/users/flagged").json()["aggregates"]["scam_flags"], 2);
}

#[test]
fn a_graceful_stop_snapshots_everything_and_a_restart_replays_nothing() {
    let redis = TestRedis::start();
    let mut app = TestApp::spawn_with(&redis, LAZY);
    seed_users(&app);
    assert_eq!(app.terminate(), Some(0), "SIGTERM exits 0; log:\n{}", app.log());
    assert!(app.log().contains("every owned shard flushed"), "{}", app.log());
    assert_eq!(redis.cli(&["HEXISTS", &format!("rd:{{{}}}:users", shard_of("buyer", 64)), "buyer"]), "1");

    let app = TestApp::spawn_with(&redis, LAZY);
    assert_seeded(&app);
    assert_eq!(app.metric("restrictd_recovery_entries_replayed_total"), 0.0);
    assert_eq!(app.metric("restrictd_recovery_users_loaded_total"), 3.0);
    assert!(app.log().contains("snapshots loaded"), "{}", app.log());
}

/// A shard of more users than `persistence.load_whole_hash_limit` loads in
/// `HSCAN` chunks; one of fewer in one `HGETALL`. Both come back whole.
#[test]
fn a_shard_loads_whole_in_chunks_or_in_one_read() {
    let redis = TestRedis::start();
    let one_shard = [LAZY, &[("RESTRICTD_SHARDS__COUNT", "1")]].concat();
    let mut app = TestApp::spawn_with(&redis, &one_shard);
    let users = 20_500;
    for start in (0..users).step_by(1000) {
        let batch: Vec<_> = (start..(start + 1000).min(users))
            .map(|i| event("purchase_made", &format!("u{i}"), json!({"amount": i})))
            .collect();
        let reply = app.post("/v1/events?wait=applied", &json!(batch));
        assert_eq!(reply.status, 200, "{}", reply.json());
    }
    seed_users(&app);
    assert_eq!(app.terminate(), Some(0), "SIGTERM exits 0; log:\n{}", app.log());
    assert_eq!(redis.cli(&["HLEN", "rd:{0}:users"]), (users + 3).to_string());

    for limit in ["10000", "30000"] {
        let env = [&one_shard[..], &[("RESTRICTD_PERSISTENCE__LOAD_WHOLE_HASH_LIMIT", limit)]].concat();
        let mut app = TestApp::spawn_with(&redis, &env);
        assert_eq!(app.metric("restrictd_recovery_users_loaded_total"), f64::from(users + 3), "limit {limit}");
        assert_seeded(&app);
        for i in [0, 1, 12_345, users - 1] {
            assert_eq!(app.get(&format!("/v1/users/u{i}")).json()["aggregates"]["spend"], i.to_string(), "u{i}");
        }
        assert_eq!(app.terminate(), Some(0), "{}", app.log());
    }
}

#[test]
fn events_applied_but_not_snapshotted_are_replayed_after_kill_9() {
    let redis = TestRedis::start();
    let mut app = TestApp::spawn_with(&redis, LAZY);
    seed_users(&app);
    app.kill();
    assert_eq!(redis.cli(&["KEYS", "rd:*:users"]), "", "nothing was snapshotted");

    let app = TestApp::spawn_with(&redis, LAZY);
    assert_seeded(&app);
    assert_eq!(app.metric("restrictd_recovery_entries_replayed_total"), 5.0);
}

#[test]
fn an_event_id_is_remembered_across_restarts() {
    let redis = TestRedis::start();
    let mut app = TestApp::spawn_with(&redis, LAZY);
    let mut e = event("scam_message_flagged", "idem", json!({}));
    e["event_id"] = json!("retry-me");
    app.post_applied(&e);
    assert_eq!(app.terminate(), Some(0));
    let mut app = TestApp::spawn_with(&redis, LAZY);
    assert_eq!(app.post_applied(&e)["features"]["can_message"], true, "not applied twice after a graceful restart");
    app.kill();
    let app = TestApp::spawn_with(&redis, LAZY);
    assert_eq!(app.post_applied(&e)["features"]["can_message"], true, "not applied twice after a crash");
    assert_eq!(app.get("/v1/users/idem").json()["aggregates"]["scam_flags"], 1);
}

#[test]
fn state_inspects_offline_with_the_cli() {
    let redis = TestRedis::start();
    let mut app = TestApp::spawn_with(&redis, LAZY);
    seed_users(&app);
    assert_eq!(app.terminate(), Some(0));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_restrictd"))
        .args(["state", "--user", "buyer", "--config"])
        .arg(default_config())
        .env("RESTRICTD_REDIS__URL", redis.url())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["snapshot"]["aggregates"]["chargebacks"], "15.5");
    assert_eq!(v["snapshot"]["restrictions"][0]["rule"], "chargeback_ratio_rule");
    assert_eq!(v["shard"], shard_of("buyer", 64));

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_restrictd"))
        .args(["state", "--shard", &shard_of("buyer", 64).to_string(), "--config"])
        .arg(default_config())
        .env("RESTRICTD_REDIS__URL", redis.url())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["users"].as_u64().unwrap() >= 1);
    assert_eq!(v["entries_after_offset"], 0);
    assert!(v["offset"].is_string());
}

/// A pseudo-random number from the clock, to vary kill points between runs.
fn jitter(bound: u64) -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    nanos.wrapping_mul(6364136223846793005) % bound
}

fn crash_cycles(cycles: usize) {
    let redis = TestRedis::start();
    crash_cycles_with(cycles, || TestApp::spawn_with(&redis, EAGER));
}

/// Kills the service (`spawn` starts it) at random points under load, then
/// compares every user with the reference model of acknowledged events.
pub(crate) fn crash_cycles_with(cycles: usize, spawn: impl Fn() -> TestApp) {
    let mut app = spawn();
    let producers = Producers::start(&app, 4, 25);
    for cycle in 0..cycles {
        producers.wait_acked(100 + jitter(300));
        app.kill();
        app = spawn();
        producers.target.set(&app.addr);
        eprintln!("crash cycle {cycle}: {} acknowledged so far", producers.acked.load(Ordering::Relaxed));
    }
    producers.wait_acked(100);
    let expected = producers.finish();
    assert_state_matches(&app, &expected);
}

#[test]
fn kill_9_at_random_points_loses_no_acknowledged_event_and_applies_none_twice() {
    crash_cycles(5);
}

#[test]
#[ignore = "long: 30 crash cycles; run with --ignored"]
fn kill_9_thirty_times_loses_nothing_and_applies_nothing_twice() {
    crash_cycles(30);
}

#[test]
fn a_redis_restart_under_load_loses_no_acknowledged_event_and_checks_never_fail() {
    let mut redis = TestRedis::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let app = TestApp::spawn_with(&redis, EAGER);
    seed_users(&app);
    let producers = Producers::start(&app, 2, 20);

    // A client checking throughout: every check must answer, from memory.
    let stop = Arc::new(AtomicBool::new(false));
    let (checked, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let checker = {
        let (stop, checked, failed, addr) = (stop.clone(), checked.clone(), failed.clone(), app.addr.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                match crate::helpers::http(&addr, "GET", "/canmessage?user_id=flagged", &[], b"") {
                    Ok(r) if r.status == 200 && r.body.contains("false") => checked.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };

    producers.wait_acked(200);
    redis.kill();
    let during = checked.load(Ordering::Relaxed);
    wait_for("checks during the outage", Duration::from_secs(10), || {
        (checked.load(Ordering::Relaxed) > during + 100).then_some(())
    });
    redis.launch();
    producers.target.set(&app.addr); // wake producers parked by a failed write
    producers.wait_acked(200);
    let expected = producers.finish();
    stop.store(true, Ordering::Release);
    checker.join().unwrap();
    assert_eq!(failed.load(Ordering::Relaxed), 0, "a check failed during the Redis restart");
    assert_state_matches(&app, &expected);
    assert_seeded(&app);
}

#[test]
fn streams_stay_bounded_under_steady_load() {
    let redis = TestRedis::start();
    let mut app = TestApp::spawn_with(&redis, TRIMMING);
    let stream = format!("rd:{{{}}}:events", shard_of("hot", 64));
    for _ in 0..30 {
        let batch: Vec<_> = (0..100).map(|_| event("purchase_made", "hot", json!({"amount": 1}))).collect();
        assert_eq!(app.post("/v1/events?wait=applied", &json!(batch)).status, 200);
    }
    wait_for("the hot stream to be trimmed", Duration::from_secs(10), || {
        let len: u64 = redis.cli(&["XLEN", &stream]).parse().unwrap();
        (len <= 100).then_some(())
    });
    app.kill();
    let app = TestApp::spawn_with(&redis, TRIMMING);
    assert_eq!(app.get("/v1/users/hot").json()["aggregates"]["spend"], "3000");
}
