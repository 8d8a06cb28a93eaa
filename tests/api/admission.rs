//! Admission control: past the in-flight bound, writes are refused at once
//! with 429, Retry-After and a JSON error; nothing refused is appended.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;

use crate::helpers::{event, wait_for, TestApp, TestRedis};

#[test]
fn writes_past_the_in_flight_bound_get_429_and_are_not_appended() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[("RESTRICTD_ADMISSION__MAX_INFLIGHT_WRITES", "1")]);
    // Hold the only write slot: a request whose body is still arriving.
    let body = event("scam_message_flagged", "held", json!({})).to_string();
    let mut slow = TcpStream::connect(&app.addr).unwrap();
    write!(
        slow,
        "POST /event HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        &body[..10]
    )
    .unwrap();
    wait_for("the held request to be in flight", Duration::from_secs(10), || {
        let metrics = app.get("/metrics").body;
        metrics.contains("restrictd_inflight_requests{kind=\"writes\"} 1").then_some(())
    });
    let refused = wait_for("a write to be refused", Duration::from_secs(10), || {
        let r = app.post("/event", &event("scam_message_flagged", "refused", json!({})));
        (r.status == 429).then_some(r)
    });
    assert_eq!(refused.header("Retry-After"), Some("1"));
    assert!(refused.json()["error"].as_str().unwrap().contains("too many writes in flight"));
    assert!(app.can("message", "refused"));
    // Checks are not writes: they still answer.
    assert_eq!(app.get("/canmessage?user_id=held").status, 200);

    // Finish the held request: it is accepted, and the slot is free again.
    slow.write_all(&body.as_bytes()[10..]).unwrap();
    let mut reply = String::new();
    use std::io::Read;
    slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 512];
    let n = slow.read(&mut buf).unwrap();
    reply.push_str(&String::from_utf8_lossy(&buf[..n]));
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    app.post_applied(&event("scam_message_flagged", "after", json!({})));
    assert_eq!(app.get("/v1/users/refused").status, 404, "the refused event was never appended");
    let metrics = app.get("/metrics").body;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("restrictd_admission_refused_total{kind=\"writes\"}") && !l.ends_with(" 0")),
        "{metrics}"
    );
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
