//! Entries another producer wrote that restrictd cannot apply go to the
//! dead-letter stream with the reason, and the shard goes on.

use restrictd_domain::shard_of;
use serde_json::json;

use crate::helpers::{event, TestApp, TestRedis};

#[test]
fn unparseable_entries_are_dead_lettered_and_the_shard_goes_on() {
    let redis = TestRedis::start();
    let app = TestApp::spawn(&redis);
    let stream = format!("rd:{{{}}}:events", shard_of("dl", 64));
    redis.cli(&["XADD", &stream, "*", "event", "not json at all"]);
    redis.cli(&["XADD", &stream, "*", "payload", "{}"]);
    redis.cli(&["XADD", &stream, "*", "event", r#"{"name":"teleported","event_properties":{"user_id":"dl"}}"#]);
    redis.cli(&[
        "XADD",
        &stream,
        "*",
        "event",
        r#"{"name":"purchase_made","event_properties":{"user_id":"dl","amount":-5}}"#,
    ]);

    // A valid event behind them is applied.
    app.post_applied(&event("scam_message_flagged", "dl", json!({})));
    app.post_applied(&event("scam_message_flagged", "dl", json!({})));
    assert!(!app.can("message", "dl"));

    assert_eq!(redis.cli(&["XLEN", "rd:deadletter"]), "4");
    let dead = redis.cli(&["XRANGE", "rd:deadletter", "-", "+"]);
    for reason in ["malformed_json", "missing_field", "unknown_event", "bad_property"] {
        assert!(dead.contains(reason), "{reason} missing from:\n{dead}");
    }
    assert!(dead.contains("not json at all"), "the original payload is kept:\n{dead}");
    let metrics = app.get("/metrics").body;
    assert!(metrics.contains("restrictd_dead_letters_total{reason=\"malformed_json\"} 1"), "{metrics}");
}
