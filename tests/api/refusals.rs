//! A request answered 4xx changes nothing. Generated from the endpoint table
//! (the OpenAPI document): every state-changing operation, sent its example
//! with an unknown query parameter, a bad `wait`, or a malformed body, is
//! refused, and no stream, rule-set version, tripwire state, override or
//! stats reset moved.

use serde_json::{json, Value};

use crate::helpers::{event, TestApp, TestRedis};
use crate::openapi::example_request;

const TOKEN: &str = "refusals-token-0123456789";

/// Everything a state-changing request could move, as Redis holds it.
fn state(redis: &TestRedis) -> Value {
    let sum = "local n = 0 for s = 0, 63 do n = n + redis.call('XLEN', 'rd:{' .. s .. '}:events') end return n";
    let streams: u64 = redis.cli(&["EVAL", sum, "0"]).parse().unwrap();
    json!({
        "streams": streams,
        "rules": redis.cli(&["GET", "rd:{rules}:current"]),
        "versions": redis.cli(&["HLEN", "rd:{rules}:versions"]),
        "tripwires": redis.cli(&["HGETALL", "rd:{tripwire}:state"]),
        "stats_since": redis.cli(&["GET", "rd:stats:since"]),
    })
}

/// The URI with `wait=bogus` in place of its `wait`, or added.
fn with_bad_wait(uri: &str) -> String {
    match uri.split_once('?') {
        Some((path, query)) => {
            let kept: Vec<&str> = query.split('&').filter(|p| !p.starts_with("wait=")).collect();
            format!("{path}?{}", kept.into_iter().chain(["wait=bogus"]).collect::<Vec<_>>().join("&"))
        }
        None => format!("{uri}?wait=bogus"),
    }
}

#[test]
fn every_state_changing_operation_refused_4xx_changes_nothing() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[("RESTRICTD_AUTH__ADMIN_TOKENS__OPS", TOKEN)]);
    let doc: Value = app.get("/openapi.json").json();
    // The examples' users exist, so a refusal is not a 404 for want of them.
    for user in ["12345", "u1", "user-1"] {
        app.post_applied(&event("scam_message_flagged", user, json!({})));
    }
    let auth = format!("Bearer {TOKEN}");
    let headers = [("Content-Type", "application/json"), ("Authorization", auth.as_str())];
    let mut tried = 0;
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for (method, op) in methods.as_object().unwrap() {
            // A gateway's question changes nothing, and its query belongs to
            // the request it asks about.
            if method == "get" || path.starts_with("/v1/authz") {
                continue;
            }
            let (concrete, body) = example_request(path, op);
            let sep = if concrete.contains('?') { '&' } else { '?' };
            let example = body.clone().unwrap_or_default();
            let mut bad = vec![
                ("an unknown query parameter", format!("{concrete}{sep}bogus=1"), example.clone()),
                ("a bad wait", with_bad_wait(&concrete), example.clone()),
                ("a parameter given twice", format!("{concrete}{sep}message=a&message=b"), example.clone()),
            ];
            if body.is_some() {
                bad.push(("a malformed body", concrete.clone(), "{\"bogus\": ".to_string()));
            }
            for (what, uri, body) in bad {
                let before = state(&redis);
                let r = app.request(&method.to_uppercase(), &uri, &headers, body.as_bytes());
                assert!((400..500).contains(&r.status), "{method} {uri} with {what} answered {}: {}", r.status, r.body);
                assert!(r.json()["error"].is_string(), "{method} {uri}: a JSON error: {}", r.body);
                assert_eq!(state(&redis), before, "{method} {uri} with {what} was refused ({}) yet acted", r.status);
                tried += 1;
            }
        }
    }
    assert!(tried >= 15, "every state-changing operation: {tried} requests");
}

#[test]
fn a_rule_set_in_a_type_other_than_json_or_toml_is_refused() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[("RESTRICTD_AUTH__ADMIN_TOKENS__OPS", TOKEN)]);
    let auth = format!("Bearer {TOKEN}");
    for ct in ["text/plain", "application/xml"] {
        let r = app.request("PUT", "/v1/rules", &[("Content-Type", ct), ("Authorization", &auth)], b"{}");
        assert_eq!(r.status, 415, "{ct}: {}", r.body);
    }
    let r = app.request(
        "PUT",
        "/v1/rules?lift_removed=maybe",
        &[("Content-Type", "application/json"), ("Authorization", &auth)],
        b"{}",
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("lift_removed"), "{}", r.body);
}
