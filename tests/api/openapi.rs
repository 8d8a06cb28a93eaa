//! The OpenAPI document: valid by the ecosystem's validator, and every
//! operation's example works against the real binary.

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{TestApp, TestRedis};

const TOKEN: &str = "openapi-token-0123456789";

/// The order examples run in, by method: events first, removals last.
const ORDER: [&str; 8] = ["post", "get", "head", "options", "trace", "put", "patch", "delete"];

/// Validates the document with `openapi-spec-validator` (Python).
fn validate(doc: &str) {
    let path = std::env::temp_dir().join(format!("restrictd-openapi-{}.json", std::process::id()));
    std::fs::write(&path, doc).unwrap();
    let script = "import sys\nfrom openapi_spec_validator import validate\nfrom openapi_spec_validator.readers import read_from_filename\nvalidate(read_from_filename(sys.argv[1])[0])\n";
    let out = Command::new("python3").arg("-c").arg(script).arg(&path).output().expect("python3 runs");
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "the OpenAPI document is invalid, or the validator is missing (scripts/test installs openapi-spec-validator):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The example request of an operation: path, query and body from its examples.
pub(crate) fn example_request(path: &str, op: &Value) -> (String, Option<String>) {
    let mut concrete = path.to_string();
    let mut query = Vec::new();
    for p in op["parameters"].as_array().into_iter().flatten() {
        let example = p["example"].as_u64().map(|n| n.to_string());
        let (name, value) = (p["name"].as_str().unwrap(), p["example"].as_str().or(example.as_deref()));
        match (p["in"].as_str(), value) {
            (Some("path"), Some(v)) => concrete = concrete.replace(&format!("{{{name}}}"), v),
            (Some("path"), None) => panic!("{path}: path parameter {name} has no example"),
            (Some("query"), Some(v)) => query.push(format!("{name}={v}")),
            _ => assert!(p["required"] != true, "{path}: required {name} has no example"),
        }
    }
    if !query.is_empty() {
        concrete = format!("{concrete}?{}", query.join("&"));
    }
    let body = op["requestBody"]["content"]["application/json"]["example"].clone();
    (concrete, (!body.is_null()).then(|| body.to_string()))
}

/// A WebSocket handshake to `path` is answered 101 Switching Protocols.
fn upgrades(addr: &str, path: &str) -> bool {
    use std::io::{BufRead, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut line = String::new();
    std::io::BufReader::new(s).read_line(&mut line).unwrap();
    line.starts_with("HTTP/1.1 101")
}

/// The feed answers its example with a stream that starts with `subscribed`.
fn subscribes(addr: &str, path: &str) -> bool {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let (mut seen, mut buf, deadline) = (String::new(), [0u8; 4096], Instant::now() + Duration::from_secs(10));
    while Instant::now() < deadline && !seen.contains("event: subscribed") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    seen.starts_with("HTTP/1.1 200") && seen.contains("event: subscribed")
}

#[test]
fn the_api_document_is_valid_openapi_and_every_example_works_against_the_binary() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[("RESTRICTD_AUTH__ADMIN_TOKENS__OPS", TOKEN)]);
    let text = app.get("/openapi.json").body;
    validate(&text);
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert_eq!(doc["servers"], serde_json::json!([{"url": "/"}]), "the address it was fetched from");
    let user = &doc["components"]["schemas"]["User"];
    assert!(!user["required"].as_array().unwrap().contains(&serde_json::json!("windows")), "absent without windows");
    let wait =
        doc["paths"]["/event"]["post"]["parameters"].as_array().unwrap().iter().find(|p| p["name"] == "wait").cloned();
    assert_eq!(wait.unwrap()["schema"]["enum"], serde_json::json!(["applied"]));
    let mut ops: Vec<(&str, &str, &Value)> = Vec::new();
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for (method, op) in methods.as_object().unwrap() {
            ops.push((method, path, op));
        }
    }
    assert!(ops.len() >= 20, "every operation: {}", ops.len());
    // Events first, so that the other examples find their user; removals last.
    let rank = |m: &str| ORDER.iter().position(|x| *x == m).unwrap();
    ops.sort_by_key(|(m, p, _)| (rank(m), p.starts_with("/v1/rules"), p.to_string()));
    let auth = format!("Bearer {TOKEN}");
    // A second version, so that the rollback's example (to version 1) has something to undo.
    let v2 = crate::rulesets::rules_with("scam_flags >= 2").to_string();
    let r = app.request(
        "PUT",
        "/v1/rules",
        &[("Content-Type", "application/json"), ("Authorization", &auth)],
        v2.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // The subscription the examples name, so that acknowledging it (a post, run first) finds it.
    let r = app.request(
        "PUT",
        "/v1/subscriptions/case-tool",
        &[("Content-Type", "application/json"), ("Authorization", &auth)],
        br#"{"changes": ["rule_fired"]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    for (method, path, op) in ops {
        let description = op["description"].as_str().unwrap_or("");
        assert!(description.contains("curl"), "{method} {path}: no example command");
        let admin = op["security"] == serde_json::json!([{"bearer": []}]);
        assert_eq!(admin, description.contains("Authorization: Bearer"), "{method} {path}: the example's header");
        documents_every_reply(method, path, op);
        let (concrete, body) = example_request(path, op);
        if op["responses"].get("101").is_some() {
            assert!(upgrades(&app.addr, &concrete), "{method} {path}: the WebSocket's example");
            continue;
        }
        if op["responses"]["200"]["content"].get("text/event-stream").is_some() {
            assert!(subscribes(&app.addr, &concrete), "{method} {path}: the feed's example");
            continue;
        }
        let mut headers = vec![("Content-Type", "application/json")];
        if admin {
            headers.push(("Authorization", auth.as_str()));
        }
        let r = app.request(&method.to_uppercase(), &concrete, &headers, body.as_deref().unwrap_or("").as_bytes());
        let documented: Vec<&String> =
            op["responses"].as_object().unwrap().keys().filter(|s| s.starts_with('2')).collect();
        assert!(
            documented.contains(&&r.status.to_string()),
            "{method} {concrete} answered {} (documented {documented:?}): {}",
            r.status,
            r.body
        );
    }
}

/// Every reply of an operation names a schema (a gateway's 200 has no body).
fn documents_every_reply(method: &str, path: &str, op: &Value) {
    for (status, r) in op["responses"].as_object().unwrap() {
        // A gateway's 200 is headers only.
        if path.starts_with("/v1/authz") && status == "200" {
            assert!(r.get("content").is_none(), "{method} {path}: no body documented");
            continue;
        }
        let content = r["content"].as_object().unwrap_or_else(|| panic!("{method} {path} {status}: no content"));
        for (_, media) in content {
            assert_ne!(
                media["schema"],
                serde_json::json!({"type": "object"}),
                "{method} {path} {status}: a bare object"
            );
        }
    }
}
