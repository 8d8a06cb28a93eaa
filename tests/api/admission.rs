//! Admission control: writes past the working slots wait in a queue; past the
//! queue's delay bound or the in-flight cap they are refused at once with 429,
//! Retry-After and a JSON error; nothing refused is appended. And the write
//! path under a burst of clients.

use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use serde_json::json;

use crate::helpers::{event, http, wait_for, TestApp, TestRedis};

#[test]
fn a_burst_of_first_writes_opens_one_redis_connection_per_http_worker() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[("RESTRICTD_HTTP__WORKERS", "2")]);
    let received = || -> u64 {
        let info = redis.cli(&["INFO", "stats"]);
        info.lines().find_map(|l| l.strip_prefix("total_connections_received:")).unwrap().trim().parse().unwrap()
    };
    let before = received();
    // 64 producers send their first events at the same moment, before either
    // worker has its write connection.
    let start = Arc::new(Barrier::new(64));
    let producers: Vec<_> = (0..64)
        .map(|i| {
            let (addr, start) = (app.addr.clone(), Arc::clone(&start));
            std::thread::spawn(move || {
                let body = event("scam_message_flagged", &format!("burst{i}"), json!({})).to_string();
                start.wait();
                http(&addr, "POST", "/event", &[("Content-Type", "application/json")], body.as_bytes()).unwrap().status
            })
        })
        .collect();
    for p in producers {
        assert_eq!(p.join().unwrap(), 200);
    }
    // One per worker (the service's other connections were opened at start);
    // the second `redis-cli INFO` counts its own connection.
    let opened = received() - before - 1;
    assert!(opened <= 2, "{opened} Redis connections opened for the first 64 writes");
}

#[test]
fn writes_past_the_in_flight_bound_get_429_and_are_not_appended() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[("RESTRICTD_ADMISSION__MAX_INFLIGHT_WRITES", "1")]);
    // Hold the only write slot: a request whose body is still arriving.
    let (slow, body) = hold_a_slot(&app, "held");
    let refused = wait_for("a write to be refused", Duration::from_secs(10), || {
        let r = app.post("/event", &event("scam_message_flagged", "refused", json!({})));
        (r.status == 429).then_some(r)
    });
    assert_eq!(refused.header("Retry-After"), Some("1"));
    assert!(refused.json()["error"].as_str().unwrap().contains("too many writes in flight"));
    assert!(app.can("message", "refused"));
    // Checks are not writes: they still answer.
    assert_eq!(app.get("/canmessage?user_id=held").status, 200);
    // A refused client keeps its connection: its next request (a retry, a
    // check) goes on the same one.
    let mut conn = TcpStream::connect(&app.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let refused_body = event("scam_message_flagged", "refused", json!({})).to_string();
    let head = exchange(
        &mut conn,
        &format!(
            "POST /event HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{refused_body}",
            refused_body.len()
        ),
    );
    assert!(head.starts_with("HTTP/1.1 429"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("connection: close"), "{head}");
    let head = exchange(&mut conn, "GET /canmessage?user_id=held HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200"), "the next request on the refused connection: {head}");

    // Finish the held request: it is accepted, and the slot is free again.
    assert!(finish(slow, &body).starts_with("HTTP/1.1 200"));
    app.post_applied(&event("scam_message_flagged", "after", json!({})));
    assert_eq!(app.get("/v1/users/refused").status, 404, "the refused event was never appended");
    assert!(app.metric("restrictd_admission_refused_total{kind=\"writes\",reason=\"in_flight\"}") >= 1.0);
}

/// Opens a POST /event whose body stops after 10 bytes: it holds a write slot
/// until the rest is sent with [`finish`].
fn hold_a_slot(app: &TestApp, user: &str) -> (TcpStream, String) {
    hold_a_slot_with(app, "", user)
}

/// [`hold_a_slot`] with extra header lines (`headers`: each ending in CRLF).
fn hold_a_slot_with(app: &TestApp, headers: &str, user: &str) -> (TcpStream, String) {
    let body = event("scam_message_flagged", user, json!({})).to_string();
    let mut slow = TcpStream::connect(&app.addr).unwrap();
    write!(
        slow,
        "POST /event HTTP/1.1\r\nHost: x\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        &body[..10]
    )
    .unwrap();
    wait_for("the held request to be in flight", Duration::from_secs(10), || {
        let metrics = app.get("/metrics").body;
        metrics.contains("restrictd_inflight_requests{kind=\"writes\"} 1").then_some(())
    });
    (slow, body)
}

/// Sends the rest of a held request's body; its reply's head.
fn finish(mut slow: TcpStream, body: &str) -> String {
    use std::io::Read;
    slow.write_all(&body.as_bytes()[10..]).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 512];
    let n = slow.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Posts an event for `user` from another thread (it may wait in the queue).
fn post_aside(app: &TestApp, user: &str) -> std::thread::JoinHandle<crate::helpers::Reply> {
    let addr = app.addr.clone();
    let body = event("scam_message_flagged", user, json!({})).to_string();
    std::thread::spawn(move || {
        http(&addr, "POST", "/event", &[("Content-Type", "application/json")], body.as_bytes()).unwrap()
    })
}

#[test]
fn a_write_past_the_working_slots_waits_for_one_and_is_accepted() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(
        &redis,
        &[("RESTRICTD_ADMISSION__CONCURRENT_WRITES", "1"), ("RESTRICTD_ADMISSION__MAX_WRITE_DELAY", "30s")],
    );
    let (slow, body) = hold_a_slot(&app, "held");
    let queued = post_aside(&app, "queued");
    wait_for("the second write to wait in the queue", Duration::from_secs(10), || {
        (app.metric("restrictd_queued_writes") == 1.0).then_some(())
    });
    assert_eq!(app.get("/canmessage?user_id=queued").status, 200, "checks answer while writes wait");
    assert!(finish(slow, &body).starts_with("HTTP/1.1 200"));
    assert_eq!(queued.join().unwrap().status, 200, "the waiting write got the freed slot");
    app.post_applied(&event("scam_message_flagged", "after", json!({})));
    assert_eq!(app.get("/v1/users/queued").status, 200, "the queued event was appended and applied");
    assert_eq!(app.metric("restrictd_admission_refused_total{kind=\"writes\",reason=\"queue_delay\"}"), 0.0);
    assert!(app.metric("restrictd_admission_wait_seconds_count") >= 3.0, "admitted writes' waits are exported");
}

#[test]
fn writes_are_refused_at_once_when_the_queue_has_waited_past_the_delay_bound_and_checks_still_answer() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(
        &redis,
        &[("RESTRICTD_ADMISSION__CONCURRENT_WRITES", "1"), ("RESTRICTD_ADMISSION__MAX_WRITE_DELAY", "200ms")],
    );
    let (slow, body) = hold_a_slot(&app, "held");
    // A write that waits behind the held one; it gives up after 4 x 200 ms.
    let queued = post_aside(&app, "queued");
    wait_for("the second write to wait in the queue", Duration::from_secs(10), || {
        (app.metric("restrictd_queued_writes") >= 1.0).then_some(())
    });
    // Once it has waited 200 ms, a newcomer is refused without joining it.
    let refused = wait_for("a write refused for the queue's delay", Duration::from_secs(10), || {
        let r = app.post("/event", &event("scam_message_flagged", "late", json!({})));
        (r.status == 429).then_some(r)
    });
    assert_eq!(refused.header("Retry-After"), Some("1"));
    let message = refused.json()["error"].as_str().unwrap().to_string();
    assert!(message.contains("overloaded") && message.contains("longer than 200ms"), "{message}");
    assert_eq!(app.get("/canmessage?user_id=late").status, 200, "checks are not refused");
    let queued = queued.join().unwrap();
    assert_eq!(queued.status, 429, "the waiting write gave up");
    assert!(finish(slow, &body).starts_with("HTTP/1.1 200"));
    app.post_applied(&event("scam_message_flagged", "after", json!({})));
    for user in ["late", "queued"] {
        assert_eq!(app.get(&format!("/v1/users/{user}")).status, 404, "{user}: a refused write was never appended");
    }
    assert!(app.metric("restrictd_admission_refused_total{kind=\"writes\",reason=\"queue_delay\"}") >= 2.0);
    assert_eq!(app.metric("restrictd_admission_refused_total{kind=\"checks\",reason=\"in_flight\"}"), 0.0);
}

/// Writes a request on a kept-alive connection and reads one reply (framed by
/// Content-Length); returns its head.
fn exchange(conn: &mut TcpStream, request: &str) -> String {
    use std::io::Read;
    conn.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")))
                .map_or(0, |(_, v)| v.trim().parse().unwrap());
            if raw.len() >= end + 4 + length {
                return head;
            }
        }
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "the connection was closed: {}", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&buf[..n]);
    }
}

/// The niceness of each thread of a process, from /proc (Linux).
fn thread_niceness(pid: u32) -> Vec<i64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc/<pid>/task");
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stat")).ok())
        .map(|stat| {
            // After the command name (in parentheses, may hold spaces): state is
            // field 3 of stat(5), niceness field 19.
            let rest = &stat[stat.rfind(')').expect("comm") + 1..];
            rest.split_whitespace().nth(16).and_then(|n| n.parse().ok()).expect("niceness field")
        })
        .collect()
}

#[test]
fn shard_threads_run_at_the_configured_niceness_and_http_workers_do_not() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[("RESTRICTD_SHARDS__WORKERS", "3"), ("RESTRICTD_SHARDS__NICE", "7")]);
    // The arbiters lower themselves as their first task; they run it at once.
    let niceness = wait_for("three threads at niceness 7", Duration::from_secs(10), || {
        let n = thread_niceness(app.pid());
        (n.iter().filter(|v| **v == 7).count() == 3).then_some(n)
    });
    assert!(niceness.iter().all(|v| *v == 0 || *v == 7), "{niceness:?}");
    assert!(niceness.iter().filter(|v| **v == 0).count() >= 3, "main thread and 2 HTTP workers at 0: {niceness:?}");
    // And the service works at that niceness.
    let reply = app.post_applied(&event("scam_message_flagged", "nice", json!({})));
    assert_eq!(reply["applied"], true, "{reply}");
}

#[test]
fn a_checks_listener_of_their_own_answers_checks_while_writes_are_refused() {
    let redis = TestRedis::start();
    let checks_addr = format!("127.0.0.1:{}", loadtest::spawn::free_port());
    let app = TestApp::spawn_with(
        &redis,
        &[
            ("RESTRICTD_HTTP__CHECKS_ADDR", &checks_addr),
            ("RESTRICTD_HTTP__NICE", "6"),
            ("RESTRICTD_ADMISSION__CONCURRENT_WRITES", "1"),
            ("RESTRICTD_ADMISSION__MAX_WRITE_DELAY", "200ms"),
        ],
    );
    let get = |path: &str| http(&checks_addr, "GET", path, &[], b"").unwrap();
    app.post_applied(&event("scam_message_flagged", "u", json!({})));
    app.post_applied(&event("scam_message_flagged", "u", json!({})));
    assert_eq!(get("/canmessage?user_id=u").body, r#"{"can_message":false}"#, "the same answer as on http.addr");
    assert_eq!(get("/v1/users/u/features").json()["features"]["can_message"], false);
    assert_eq!(get("/ready").status, 200);
    // Only what client services ask: no writes, no admin, no reads of state.
    let json = [("Content-Type", "application/json")];
    let write = event("scam_message_flagged", "w", json!({})).to_string();
    assert_eq!(http(&checks_addr, "POST", "/event", &json, write.as_bytes()).unwrap().status, 404);
    assert_eq!(get("/v1/users/u").status, 404);
    // The main listener's workers yield to the checks' worker.
    let niceness = wait_for("the HTTP workers at niceness 6", Duration::from_secs(10), || {
        let n = thread_niceness(app.pid());
        (n.iter().filter(|v| **v == 6).count() == 2).then_some(n)
    });
    assert!(niceness.iter().filter(|v| **v == 0).count() >= 2, "the main thread and the checks' worker: {niceness:?}");
    // Writes held and refused on http.addr; the checks listener answers.
    let (slow, body) = hold_a_slot(&app, "held");
    let queued = post_aside(&app, "queued");
    let refused = wait_for("a write refused for the queue's delay", Duration::from_secs(10), || {
        let r = app.post("/event", &event("scam_message_flagged", "late", json!({})));
        (r.status == 429).then_some(r)
    });
    assert_eq!(refused.header("Retry-After"), Some("1"));
    for _ in 0..50 {
        assert_eq!(get("/canmessage?user_id=u").status, 200);
    }
    assert_eq!(queued.join().unwrap().status, 429);
    assert!(finish(slow, &body).starts_with("HTTP/1.1 200"));
}

const FLOOD: &str = "flood-token-0123456789";
const FAIR: &str = "fair-token-0123456789";

/// Posts an event for `user` with an ingest token from another thread.
fn post_as(app: &TestApp, token: &str, user: &str) -> std::thread::JoinHandle<crate::helpers::Reply> {
    let (addr, auth) = (app.addr.clone(), format!("Bearer {token}"));
    let body = event("scam_message_flagged", user, json!({})).to_string();
    std::thread::spawn(move || {
        let headers = [("Content-Type", "application/json"), ("Authorization", auth.as_str())];
        http(&addr, "POST", "/event", &headers, body.as_bytes()).unwrap()
    })
}

#[test]
fn a_producer_takes_its_turn_beside_a_flooding_one_and_is_not_refused_for_its_flood() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(
        &redis,
        &[
            ("RESTRICTD_AUTH__INGEST_TOKENS__FLOOD", FLOOD),
            ("RESTRICTD_AUTH__INGEST_TOKENS__FAIR", FAIR),
            ("RESTRICTD_ADMISSION__CONCURRENT_WRITES", "1"),
            ("RESTRICTD_ADMISSION__MAX_WRITE_DELAY", "1s"),
        ],
    );
    // Named ingest tokens close ingestion to everyone else.
    assert_eq!(app.post("/event", &event("scam_message_flagged", "anon", json!({}))).status, 401);
    let (slow, body) = hold_a_slot_with(&app, &format!("Authorization: Bearer {FLOOD}\r\n"), "held");
    // The flood: three writes wait for the one slot.
    let flood: Vec<_> = (0..3).map(|i| post_as(&app, FLOOD, &format!("flood-{i}"))).collect();
    wait_for("three flood writes waiting", Duration::from_secs(10), || {
        (app.metric("restrictd_queued_writes") >= 3.0).then_some(())
    });
    let queued_at = std::time::Instant::now();
    // Once the flood's oldest write has waited past the bound, the flood's
    // newcomers are refused at once...
    wait_for("the flood's writes to wait past the bound", Duration::from_secs(10), || {
        (queued_at.elapsed() > Duration::from_millis(1100)).then_some(())
    });
    let auth = format!("Bearer {FLOOD}");
    let headers = [("Content-Type", "application/json"), ("Authorization", auth.as_str())];
    let body_more = event("scam_message_flagged", "flood-more", json!({})).to_string();
    let refused = http(&app.addr, "POST", "/event", &headers, body_more.as_bytes()).unwrap();
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.header("Retry-After"), Some("1"));
    // ...while the other producer's write waits its turn instead.
    let fair = post_as(&app, FAIR, "fair");
    wait_for("the fair write waiting beside the flood", Duration::from_secs(10), || {
        (app.metric("restrictd_queued_writes") >= 4.0).then_some(())
    });
    assert!(finish(slow, &body).starts_with("HTTP/1.1 200"));
    let fair = fair.join().unwrap();
    assert_eq!(fair.status, 200, "the fair producer is served in its turn: {}", fair.body);
    for f in flood {
        let r = f.join().unwrap();
        assert!(r.status == 200 || r.status == 429, "{}", r.body);
    }
}
