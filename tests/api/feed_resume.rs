//! The feed's ids and resume: a consumer reconnecting with `Last-Event-ID`
//! (or `?after=`) gets every change after it once, in order, from any
//! instance and across restarts; a reset past what is kept; shutdown at once.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{event, wait_for, TestApp, TestRedis};
use crate::sse::Subscriber;

/// The tripwire off: these tests restrict a large share of their users.
const QUIET: [(&str, &str); 2] =
    [("RESTRICTD_TRIPWIRE__THRESHOLD", "1.0"), ("RESTRICTD_TRIPWIRE__MIN_RESTRICTED", "1000000000")];

/// Snapshots often: `wait=applied` on a shard owned elsewhere waits for one.
const FAST: (&str, &str) = ("RESTRICTD_PERSISTENCE__FLUSH_INTERVAL", "100ms");

/// Restricts each user (two scam flags), in one applied batch.
fn restrict(app: &TestApp, users: &[String]) {
    let batch: Vec<Value> =
        users.iter().flat_map(|u| [0, 1].map(|_| event("scam_message_flagged", u, json!({})))).collect();
    let r = app.post("/v1/events?wait=applied", &json!(batch));
    assert_eq!(r.status, 200, "{}", r.body);
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// Reads `rule_fired` changes until `want` users were seen (or 5 s of silence):
/// the users, in the order delivered, and every id delivered.
fn read_users(s: &mut Subscriber, want: usize) -> (Vec<String>, Vec<String>) {
    let (mut users, mut ids) = (Vec::new(), Vec::new());
    while users.len() < want {
        let Some((kind, data)) = s.next() else { break };
        if kind == "change" {
            let v: Value = serde_json::from_str(&data).unwrap();
            users.push(v["user_id"].as_str().unwrap().to_string());
            ids.push(s.last_id.clone().expect("a change has an id"));
        }
    }
    (users, ids)
}

/// A feed id as a pair of numbers, to compare.
fn id(text: &str) -> (u64, u64) {
    let (ms, seq) = text.split_once('-').unwrap();
    (ms.parse().unwrap(), seq.parse().unwrap())
}

#[test]
fn a_consumer_that_reconnects_with_its_last_id_misses_nothing_and_gets_nothing_twice() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &QUIET);
    let mut s = Subscriber::open(&app.addr, "changes=rule_fired");
    assert_eq!(s.retry.as_deref(), Some("1000"), "a retry hint comes first");
    restrict(&app, &names("first", 20));
    let (first, ids) = read_users(&mut s, 20);
    assert_eq!(first.iter().collect::<BTreeSet<_>>(), names("first", 20).iter().collect::<BTreeSet<_>>());
    assert!(ids.windows(2).all(|w| id(&w[0]) < id(&w[1])), "ids order the feed: {ids:?}");
    let last = s.last_id.clone().unwrap();
    drop(s);
    restrict(&app, &names("meanwhile", 40));
    let mut resumed = Subscriber::resume(&app.addr, "changes=rule_fired", &last);
    let (missed, ids) = read_users(&mut resumed, 40);
    assert_eq!(missed.iter().collect::<BTreeSet<_>>(), names("meanwhile", 40).iter().collect::<BTreeSet<_>>());
    assert_eq!(missed.len(), 40, "each once: {missed:?}");
    assert!(id(&ids[0]) > id(&last));
    // Live after the read-back, without a gap.
    restrict(&app, &names("live", 3));
    assert_eq!(read_users(&mut resumed, 3).0.len(), 3);
    // ?after= works as the header does.
    let mut by_query = Subscriber::open(&app.addr, &format!("changes=rule_fired&after={last}"));
    assert_eq!(read_users(&mut by_query, 43).0.len(), 43);
}

#[test]
fn a_thousand_forced_disconnects_lose_no_change_and_repeat_none() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[("RESTRICTD_PERSISTENCE__CHANGELOG_DELAY", "20ms"), QUIET[0], QUIET[1]]);
    let total = 6_000;
    let producer = {
        let addr = app.addr.clone();
        std::thread::spawn(move || {
            // About 1,000 changes a second: 100 users restricted every 100 ms.
            for b in 0..total / 100 {
                let started = Instant::now();
                let batch: Vec<Value> = (0..100)
                    .flat_map(|i| [0, 1].map(|_| event("scam_message_flagged", &format!("d{b}-{i}"), json!({}))))
                    .collect();
                let body = json!(batch).to_string();
                let r = crate::helpers::http(
                    &addr,
                    "POST",
                    "/v1/events",
                    &[("Content-Type", "application/json")],
                    body.as_bytes(),
                )
                .unwrap();
                assert_eq!(r.status, 202, "{}", r.body);
                std::thread::sleep(Duration::from_millis(100).saturating_sub(started.elapsed()));
            }
        })
    };
    let (mut seen, mut ids): (Vec<String>, Vec<(u64, u64)>) = (Vec::new(), Vec::new());
    let mut last: Option<String> = None;
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut disconnects = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.len() < total && Instant::now() < deadline {
        let mut s = match &last {
            Some(l) => Subscriber::resume(&app.addr, "changes=rule_fired", l),
            None => Subscriber::open(&app.addr, "changes=rule_fired"),
        };
        // Read a random number of changes (0 to 11), then drop the connection.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let take = if disconnects < 1000 { (rng % 12) as usize } else { total };
        let (users, got) = read_users(&mut s, take.min(total - seen.len()));
        seen.extend(users);
        ids.extend(got.iter().map(|g| id(g)));
        last = s.last_id.clone().or(last);
        disconnects += 1;
    }
    producer.join().unwrap();
    assert!(disconnects >= 1000, "{disconnects} disconnects");
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no change twice");
    assert_eq!(seen.len(), total, "every change once");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in the feed's order across every reconnect");
}

#[test]
fn a_consumer_resumes_on_another_instance_and_across_a_restart() {
    let redis = TestRedis::start();
    let a_env = [("RESTRICTD_INSTANCE__ID", "a"), ("RESTRICTD_INSTANCE__SHARDS", "0-31"), QUIET[0], QUIET[1], FAST];
    let b_env = [("RESTRICTD_INSTANCE__ID", "b"), ("RESTRICTD_INSTANCE__SHARDS", "32-63"), QUIET[0], QUIET[1], FAST];
    let mut a = TestApp::spawn_with(&redis, &a_env);
    let b = TestApp::spawn_with(&redis, &b_env);
    let mut on_a = Subscriber::open(&a.addr, "changes=rule_fired");
    restrict(&a, &names("x", 30));
    let (first, _) = read_users(&mut on_a, 30);
    assert_eq!(first.len(), 30, "every instance's changes reach a consumer of one");
    let last = on_a.last_id.clone().unwrap();
    drop(on_a);
    restrict(&b, &names("y", 30));
    let mut on_b = Subscriber::resume(&b.addr, "changes=rule_fired", &last);
    let (then, _) = read_users(&mut on_b, 30);
    assert_eq!(then.iter().collect::<BTreeSet<_>>(), names("y", 30).iter().collect::<BTreeSet<_>>());
    let last = on_b.last_id.clone().unwrap();
    drop(on_b);
    assert_eq!(a.terminate(), Some(0));
    // While a is down, its shards' events wait in their streams (no wait=applied).
    let batch: Vec<Value> =
        names("z", 10).iter().flat_map(|u| [0, 1].map(|_| event("scam_message_flagged", u, json!({})))).collect();
    assert_eq!(b.post("/v1/events", &json!(batch)).status, 202);
    let a = TestApp::spawn_with(&redis, &a_env);
    restrict(&a, &names("w", 10));
    let mut again = Subscriber::resume(&a.addr, "changes=rule_fired", &last);
    let (after_restart, _) = read_users(&mut again, 20);
    let want: BTreeSet<String> = names("z", 10).into_iter().chain(names("w", 10)).collect();
    assert_eq!(after_restart.into_iter().collect::<BTreeSet<_>>(), want);
}

#[test]
fn an_id_past_what_is_kept_gets_a_reset_and_an_unreadable_one_is_400() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &QUIET);
    let mut s = Subscriber::open(&app.addr, "");
    restrict(&app, &names("old", 3));
    read_users(&mut s, 3);
    let old = s.last_id.clone().unwrap();
    // Everything kept goes (as the replay window would take it), then one more change.
    redis.cli(&["XTRIM", "rd:feed", "MAXLEN", "0"]);
    restrict(&app, &names("new", 1));
    wait_for("the new change in the feed", Duration::from_secs(10), || {
        (redis.cli(&["XLEN", "rd:feed"]).trim() == "1").then_some(())
    });
    let mut late = Subscriber::resume(&app.addr, "", &old);
    let (kind, data) = late.next().unwrap();
    assert_eq!(kind, "reset", "{data}");
    let reset: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(reset["requested"], old.as_str());
    assert!(reset["oldest"].as_str().is_some_and(|o| id(o) > id(&old)), "{reset}");
    assert_eq!(read_users(&mut late, 1).0, ["new0"], "then what is kept, then live");
    for bad in ["/v1/feed?after=yesterday", "/v1/feed?after=12-"] {
        let r = app.get(bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(r.json()["error"].as_str().unwrap().contains("feed id"), "{}", r.body);
    }
    let r = app.request("GET", "/v1/feed", &[("Last-Event-ID", "not-an-id")], b"");
    assert_eq!(r.status, 400, "{}", r.body);
}

#[test]
fn a_graceful_shutdown_ends_every_stream_and_blocked_read_at_once_with_a_last_event() {
    let redis = TestRedis::start();
    // Stream readers block in Redis far longer than the stop may take.
    let mut app = TestApp::spawn_with(&redis, &[("RESTRICTD_READER__BLOCK", "60s")]);
    let mut subscribers: Vec<Subscriber> = (0..200).map(|_| Subscriber::open(&app.addr, "")).collect();
    let started = Instant::now();
    assert_eq!(app.terminate(), Some(0));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "a graceful stop waits on neither feed streams nor blocked reads: {took:?}");
    assert!(app.log().contains("every owned shard flushed"), "{}", app.log());
    for s in &mut subscribers {
        let (kind, data) = s.next().expect("a last event");
        assert_eq!(kind, "shutdown", "{data}");
        assert!(s.next().is_none(), "then the end");
    }
}
