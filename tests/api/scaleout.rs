//! Scale-out: instances with disjoint shard sets on one Redis, leases against
//! overlap, takeover by a standby, and the same service on a Redis Cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use loadtest::spawn::RedisCluster;
use restrictd_domain::shard_of;
use serde_json::{json, Value};

use crate::durability::{assert_seeded, crash_cycles_with, seed_users, EAGER};
use crate::helpers::{default_config, event, wait_for, TestApp, TestRedis};
use crate::producers::{assert_state_matches, Producers};

/// Quick changelog and tripwire, so that the waits below are short.
const FAST: &[(&str, &str)] = &[
    ("RESTRICTD_PERSISTENCE__CHANGELOG_DELAY", "20ms"),
    ("RESTRICTD_PERSISTENCE__FLUSH_INTERVAL", "100ms"),
    ("RESTRICTD_TRIPWIRE__TICK", "100ms"),
];

fn instance(redis: &TestRedis, id: &str, shards: &str, extra: &[(&str, &str)]) -> TestApp {
    let mut env = vec![("RESTRICTD_INSTANCE__ID", id), ("RESTRICTD_INSTANCE__SHARDS", shards)];
    env.extend_from_slice(FAST);
    env.extend_from_slice(extra);
    TestApp::spawn_with(redis, &env)
}

fn can_message(app: &TestApp, user: &str) -> bool {
    app.can("message", user)
}

#[test]
fn three_instances_with_disjoint_shards_answer_every_check_alike_and_trip_once() {
    let redis = TestRedis::start();
    let tripwire = [("RESTRICTD_TRIPWIRE__MIN_RESTRICTED", "5"), ("RESTRICTD_TRIPWIRE__THRESHOLD", "0.05")];
    let apps = [
        instance(&redis, "a", "0-20", &tripwire),
        instance(&redis, "b", "21-41", &tripwire),
        instance(&redis, "c", "42-63", &tripwire),
    ];

    // 60 users flagged once (not restricted), 4 flagged twice (restricted), posted round-robin.
    let mut expected: BTreeMap<String, bool> = BTreeMap::new();
    let mut n = 0;
    let mut post = |user: &str| {
        let r = apps[n % 3].post("/event", &event("scam_message_flagged", user, json!({})));
        assert_eq!(r.status, 200, "{}", r.body);
        n += 1;
    };
    for i in 0..60 {
        post(&format!("ok{i}"));
        expected.insert(format!("ok{i}"), true);
    }
    for i in 0..4 {
        post(&format!("bad{i}"));
        post(&format!("bad{i}"));
        expected.insert(format!("bad{i}"), false);
    }
    let owners: Vec<u32> = expected.keys().map(|u| shard_of(u, 64)).collect();
    assert!(owners.iter().any(|s| *s <= 20) && owners.iter().any(|s| *s >= 42), "users spread over the instances");

    // Once the changelog caught up, every instance answers every check alike.
    for (i, app) in apps.iter().enumerate() {
        for (user, allowed) in &expected {
            wait_for(&format!("instance {i} to answer {user} = {allowed}"), Duration::from_secs(10), || {
                (can_message(app, user) == *allowed).then_some(())
            });
        }
    }
    // A user of another instance's shard is explained from Redis, and says so.
    // The changelog is written ahead of the snapshot: wait for the snapshot
    // that holds both flags.
    let foreign = expected.keys().find(|u| shard_of(u, 64) > 20 && u.starts_with("bad")).expect("a bad user off a");
    let report = wait_for("the persisted report", Duration::from_secs(10), || {
        let r = apps[0].get(&format!("/v1/users/{foreign}"));
        (r.status == 200 && r.json()["aggregates"]["scam_flags"] == 2).then(|| r.json())
    });
    assert_eq!(report["source"], "redis");
    assert_eq!(report["features"]["can_message"], false);
    let owner = &apps[(shard_of(foreign, 64) / 21).min(2) as usize];
    assert_eq!(owner.get(&format!("/v1/users/{foreign}")).json()["source"], "memory");

    // The fifth restriction: 5 of 65 users (7.7 %) over the whole deployment. No
    // instance holds 5 of them alone; the tripwire counts across instances.
    post("bad4");
    post("bad4");
    for (i, app) in apps.iter().enumerate() {
        wait_for(&format!("instance {i} to see the trip"), Duration::from_secs(5), || {
            let rules = app.get("/v1/rules").json();
            let rule = rules["rules"].as_array()?.iter().find(|r| r["name"] == "scam_message_rule")?.clone();
            (rule["tripwire"]["state"] == "tripped").then_some(())
        });
    }
    for app in &apps {
        let rules = app.get("/v1/rules").json();
        let rule =
            rules["rules"].as_array().unwrap().iter().find(|r| r["name"] == "scam_message_rule").unwrap().clone();
        assert_eq!(rule["tripwire"]["trips"], 1, "one trip for the deployment: {rule}");
    }
    let audit = redis.cli(&["XRANGE", "rd:audit:tripwire", "-", "+"]);
    assert_eq!(audit.matches("\"change\":\"tripped\"").count(), 1, "one instance decided the trip:\n{audit}");
    // Tripped everywhere: a new user meeting the condition is restricted by no instance.
    post("late");
    post("late");
    for app in &apps {
        let r = app.post("/event?wait=applied", &event("purchase_made", "late", json!({"amount": 1})));
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["features"]["can_message"], true);
    }
    same_counts_everywhere(&apps, 72, 3);
}

/// The console's charts read Redis: every instance draws the same counts
/// (`flags` scam flags, and some event counted `other` times).
fn same_counts_everywhere(apps: &[TestApp], flags: u64, other: u64) {
    let totals = |app: &TestApp| -> Option<Vec<(String, String, u64)>> {
        let s = app.get("/v1/timeseries?hours=1").json();
        s["series"]
            .as_array()?
            .iter()
            .map(|x| Some((x["name"].to_string(), x["kind"].to_string(), x["total"].as_u64()?)))
            .collect()
    };
    let flagged = |t: &[(String, String, u64)]| t.iter().find(|x| x.0 == "\"scam_message_flagged\"").map(|x| x.2);
    let all = wait_for("every flag counted", Duration::from_secs(10), || {
        totals(&apps[0]).filter(|t| flagged(t) == Some(flags)).filter(|t| t.iter().any(|x| x.2 == other))
    });
    for app in &apps[1..] {
        assert_eq!(totals(app), Some(all.clone()), "the same counts on every instance");
    }
}

#[test]
fn an_instance_whose_shards_overlap_another_refuses_to_start() {
    let redis = TestRedis::start();
    let _a = instance(&redis, "alpha", "0-31", &[]);
    let mut b = TestApp::launch(
        &redis.url(),
        &default_config(),
        &[("RESTRICTD_INSTANCE__ID", "beta"), ("RESTRICTD_INSTANCE__SHARDS", "31-40")],
    );
    let code = b.wait_exit(Duration::from_secs(20));
    assert_eq!(code, Some(2), "the second instance exits with code 2; log:\n{}", b.log());
    let log = b.log();
    assert!(log.contains("shard 31") && log.contains("\"alpha\""), "names the shard and the owner:\n{log}");
    let refusals: Vec<&str> = log.lines().filter(|l| l.contains("refusing to start")).collect();
    assert_eq!(refusals.len(), 1, "one line:\n{log}");
    assert!(refusals[0].len() < 400 && refusals[0].contains("leases expire within"), "{}", refusals[0]);
    // Every shard of a whole range held by one owner: still one short line, the shards as a range.
    let mut d = TestApp::launch(
        &redis.url(),
        &default_config(),
        &[("RESTRICTD_INSTANCE__ID", "delta"), ("RESTRICTD_INSTANCE__SHARDS", "all")],
    );
    assert_eq!(d.wait_exit(Duration::from_secs(20)), Some(2));
    let refusals: Vec<String> = d.log().lines().filter(|l| l.contains("refusing to start")).map(String::from).collect();
    assert_eq!(refusals.len(), 1, "{}", d.log());
    assert!(
        refusals[0].contains("shards 0-31 owned by instance \"alpha\"") && refusals[0].len() < 400,
        "{}",
        refusals[0]
    );
    // Disjoint shards start fine beside it.
    let c = instance(&redis, "gamma", "32-63", &[]);
    assert_eq!(c.get("/ready").status, 200);
}

#[test]
fn a_standby_takes_over_a_killed_owner_losing_nothing_and_applying_nothing_twice() {
    let redis = TestRedis::start();
    let lease = [("RESTRICTD_INSTANCE__LEASE_TTL", "2s")];
    let mut env: Vec<(&str, &str)> = EAGER.to_vec();
    env.extend_from_slice(&lease);
    let mut owner = instance(&redis, "owner", "all", &env);
    env.push(("RESTRICTD_INSTANCE__STANDBY", "true"));
    let standby = instance(&redis, "standby", "all", &env);
    assert!(standby.get("/ready").json()["status"] == "ready", "a standby serves checks from the changelog");

    // Producers post to the standby (any instance accepts any event); the owner applies.
    let producers = Producers::start(&standby, 4, 25);
    producers.wait_acked(300);
    owner.kill();
    wait_for("the standby to take the shards over", Duration::from_secs(20), || {
        standby.log().contains("shard leases taken").then_some(())
    });
    producers.wait_acked(300);
    let expected = producers.finish();
    assert_state_matches(&standby, &expected);
    let user = expected.keys().next().unwrap();
    assert_eq!(standby.get(&format!("/v1/users/{user}")).json()["source"], "memory");
}

fn on_cluster(cluster: &RedisCluster, extra: &[(&str, &str)]) -> TestApp {
    let nodes = cluster.nodes_toml();
    let mut env = vec![("RESTRICTD_REDIS__NODES", nodes.as_str())];
    env.extend_from_slice(extra);
    let app = TestApp::launch(&cluster.url(), &default_config(), &env);
    app.wait_ready();
    app
}

#[test]
fn on_a_redis_cluster_the_seed_scenario_and_crashes_hold() {
    let cluster = RedisCluster::start(3);
    let mut app = on_cluster(&cluster, &[("RESTRICTD_PERSISTENCE__FLUSH_INTERVAL", "50ms")]);
    seed_users(&app);
    assert_seeded(&app);
    // The shards' keys are spread over the three masters, each shard's in one slot.
    let per_node: Vec<u64> = cluster.nodes.iter().map(|n| n.cli(&["DBSIZE"]).parse().unwrap()).collect();
    assert!(per_node.iter().filter(|n| **n > 0).count() >= 2, "keys on several masters: {per_node:?}");
    let slots: Vec<String> = ["events", "users", "offset"]
        .iter()
        .map(|k| cluster.cli(&["CLUSTER", "KEYSLOT", &format!("rd:{{7}}:{k}")]))
        .collect();
    assert!(slots.windows(2).all(|w| w[0] == w[1]), "one slot per shard: {slots:?}");
    // Counts per minute are added after each flush's transaction on a Cluster.
    let series = wait_for("the counts per minute", Duration::from_secs(5), || {
        let s = app.get("/v1/timeseries?hours=1").json();
        let total = |name: &str| {
            s["series"].as_array()?.iter().find(|x| x["name"] == name && x["kind"] == "event")?["total"].as_u64()
        };
        (total("scam_message_flagged") == Some(2) && total("purchase_made") == Some(2)).then_some(s)
    });
    let fired: Vec<&Value> =
        series["series"].as_array().unwrap().iter().filter(|x| x["kind"] == "fired" && x["total"] == 1).collect();
    assert_eq!(fired.len(), 2, "scam_message_rule and chargeback_ratio_rule fired once each: {series}");
    assert_eq!(app.terminate(), Some(0));
    let app = on_cluster(&cluster, &[]);
    assert_seeded(&app);
    drop(app);

    crash_cycles_with(3, || on_cluster(&cluster, EAGER));
}

#[test]
fn a_non_owner_sees_a_restriction_within_the_changelog_delay() {
    let redis = TestRedis::start();
    let owner = instance(&redis, "owner", "1-63", &[]);
    let reader = instance(&redis, "reader", "0", &[]);
    let user = (0..).map(|i| format!("u{i}")).find(|u| shard_of(u, 64) != 0).unwrap();
    for _ in 0..2 {
        owner.post_applied(&event("scam_message_flagged", &user, json!({})));
    }
    wait_for("the non-owner to see the restriction", Duration::from_secs(5), || {
        (!can_message(&reader, &user)).then_some(())
    });
    let metrics = reader.get("/metrics").body;
    let staleness: Value = metrics
        .lines()
        .find(|l| l.starts_with("restrictd_changelog_staleness_seconds "))
        .and_then(|l| l.rsplit(' ').next())
        .map(|v| json!(v.parse::<f64>().unwrap()))
        .expect("staleness gauge exported");
    assert!(staleness.as_f64().unwrap() < 5.0, "{staleness}");
}

#[test]
fn a_non_owner_counts_failed_reads_of_the_owners_offset_and_the_wait_times_out() {
    let redis = TestRedis::start();
    let front = instance(&redis, "front", "0", &[("RESTRICTD_INGEST__WAIT_TIMEOUT", "1s")]);
    let user = (0..).map(|i| format!("o{i}")).find(|u| shard_of(u, 64) == 5).expect("a user of shard 5");
    // The owner's offset cannot be read: a hash where its string belongs.
    redis.cli(&["HSET", "rd:{5}:offset", "not", "an offset"]);
    let r = front.post("/event?wait=applied", &event("scam_message_flagged", &user, json!({})));
    assert_eq!(r.status, 504, "{}", r.body);
    assert!(r.json()["error"].as_str().unwrap().contains("durable"), "{}", r.body);
    assert_eq!(redis.cli(&["XLEN", "rd:{5}:events"]), "1", "the event was kept");
    let errors = front.metric("restrictd_redis_errors_total{operation=\"offset\"}");
    assert!(errors >= 1.0, "failed reads of the offset are counted: {errors}");
    let log = front.log();
    assert_eq!(log.matches("cannot read the owner's offset").count(), 1, "one warning, not one per poll:\n{log}");
}

#[test]
fn waiters_on_a_non_owner_share_one_poll_of_the_owners_offset() {
    let redis = TestRedis::start();
    // Snapshots (which carry the offset a non-owner waits for) every 2 s.
    let slow = [("RESTRICTD_PERSISTENCE__FLUSH_INTERVAL", "2s"), ("RESTRICTD_PERSISTENCE__CHANGELOG_DELAY", "2s")];
    let _owner = instance(&redis, "owner", "1-63", &slow);
    let front = instance(&redis, "front", "0", &slow);
    // Twenty users of one shard the front does not own.
    let users: Vec<String> = (0..).map(|i| format!("w{i}")).filter(|u| shard_of(u, 64) == 5).take(21).collect();
    // Answered right after one of the shard's snapshots: the next is 2 s away.
    let first = front.post("/event?wait=applied", &event("scam_message_flagged", &users[20], json!({})));
    assert_eq!(first.status, 200, "{}", first.body);
    let users = &users[..20];
    redis.cli(&["CONFIG", "RESETSTAT"]);
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for user in users {
            let front = &front;
            s.spawn(move || {
                let r = front.post("/event?wait=applied", &event("scam_message_flagged", user, json!({})));
                assert_eq!(r.status, 200, "{}", r.body);
                assert_eq!(r.json()["applied"], true);
            });
        }
    });
    let waited = started.elapsed();
    let stats = redis.cli(&["INFO", "commandstats"]);
    let calls = |command: &str| -> u64 {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    // A lease renewal is one EVAL per shard, and each runs one GET (Redis
    // counts a script's commands): every 3.3 s, 64 GETs that are not polls.
    let gets = calls("get").saturating_sub(calls("eval"));
    // One poller for the shard: one GET per 10 ms while anyone waits (plus
    // the round trips themselves), where one poll loop per waiter would make
    // twenty times as many.
    let one_poller = waited.as_millis() as u64 / 10 + 20;
    assert!(gets > 0, "the waiters read the owner's offset");
    assert!(gets <= one_poller, "{gets} GETs in {waited:?}: more than one poller ({one_poller})");
}

#[test]
fn three_instances_switch_rule_sets_together_and_answer_alike() {
    let redis = TestRedis::start();
    // Every user restricted is the point here, not the tripwire.
    let admin = [
        ("RESTRICTD_AUTH__ADMIN_TOKENS__OPS", "scale-token-0123456789"),
        ("RESTRICTD_TRIPWIRE__MIN_RESTRICTED", "1000"),
    ];
    let apps = [
        instance(&redis, "a", "0-20", &admin),
        instance(&redis, "b", "21-41", &admin),
        instance(&redis, "c", "42-63", &admin),
    ];
    let text = std::fs::read_to_string(default_config()).unwrap().replace("scam_flags >= 2", "scam_flags >= 1");
    let headers = [("Authorization", "Bearer scale-token-0123456789"), ("Content-Type", "application/toml")];
    let r = apps[1].request("PUT", "/v1/rules?wait=applied", &headers, text.as_bytes());
    assert_eq!(r.status, 200, "{}", r.body);
    for app in &apps {
        wait_for("every instance to know version 2", Duration::from_secs(10), || {
            (app.get("/v1/rules").json()["version"] == 2).then_some(())
        });
    }
    // Users of every shard, flagged once through every instance: all restricted by version 2.
    let users: Vec<String> = (0..30).map(|i| format!("switched-{i}")).collect();
    for (i, user) in users.iter().enumerate() {
        apps[i % 3].post_applied(&event("scam_message_flagged", user, json!({})));
    }
    for user in &users {
        wait_for("every instance to answer alike", Duration::from_secs(10), || {
            apps.iter().all(|app| !can_message(app, user)).then_some(())
        });
    }
}
