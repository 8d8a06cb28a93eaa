//! Access as the route table declares it, operation by operation: generated
//! from the OpenAPI document (itself generated from the table, `x-access` on
//! each operation), so an endpoint added to the table is tested here with no
//! edit. Admin routes refuse without an admin token; read routes honour
//! `auth.require_for_reads`; ingest routes honour `auth.ingest_token`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{TestApp, TestRedis};
use crate::openapi::example_request;

const READ: &str = "read-token-0123456789";
const INGEST: &str = "ingest-token-0123456789";
const ADMIN: &str = "admin-token-0123456789";

/// The status of one request (read from the status line alone, so that a
/// stream answers too), with `token` as a bearer token when given.
fn status(addr: &str, method: &str, path: &str, body: Option<&str>, token: Option<&str>) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.unwrap_or("");
    let mut req = format!("{} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n", method.to_uppercase());
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if method != "get" {
        req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("{method} {path}: {line:?}"))
}

/// Every operation of the document: (method, concrete path, body, access).
fn operations(app: &TestApp) -> Vec<(String, String, Option<String>, String)> {
    let doc: Value = app.get("/openapi.json").json();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let (concrete, body) = example_request(path, op);
            let access = op["x-access"].as_str().unwrap_or_else(|| panic!("{method} {path}: no x-access")).to_string();
            ops.push((method.clone(), concrete, body, access));
        }
    }
    assert!(ops.len() > 20, "the document lists the endpoints: {}", ops.len());
    ops
}

fn denied(code: u16) -> bool {
    code == 401 || code == 403
}

#[test]
fn every_route_enforces_the_access_its_row_declares() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(
        &redis,
        &[
            ("RESTRICTD_AUTH__ADMIN_TOKENS__OPS", ADMIN),
            ("RESTRICTD_AUTH__REQUIRE_FOR_READS", "true"),
            ("RESTRICTD_AUTH__READ_TOKEN", READ),
            ("RESTRICTD_AUTH__INGEST_TOKEN", INGEST),
        ],
    );
    let mut seen = std::collections::BTreeSet::new();
    for (method, path, body, access) in operations(&app) {
        let at = |token| status(&app.addr, &method, &path, body.as_deref(), token);
        let what = format!("{method} {path} ({access})");
        match access.as_str() {
            "admin" => {
                assert_eq!(at(None), 401, "{what}: without a token");
                assert_eq!(at(Some(READ)), 403, "{what}: with the read token");
                assert_eq!(at(Some(INGEST)), 403, "{what}: with the ingest token");
            }
            "read" => {
                assert_eq!(at(None), 401, "{what}: without a token, reads closed");
                assert_eq!(at(Some(INGEST)), 403, "{what}: with the ingest token");
                assert!(!denied(at(Some(READ))), "{what}: with the read token");
                assert!(!denied(at(Some(ADMIN))), "{what}: with an admin token");
            }
            "ingest" => {
                assert_eq!(at(None), 401, "{what}: without a token");
                assert_eq!(at(Some(READ)), 403, "{what}: with the read token");
                assert!(!denied(at(Some(INGEST))), "{what}: with the ingest token");
            }
            "open" => assert!(!denied(at(None)), "{what}: open"),
            other => panic!("{what}: unknown access {other}"),
        }
        seen.insert(access);
    }
    assert_eq!(seen.len(), 4, "every kind of access was exercised: {seen:?}");
}

#[test]
fn with_reads_open_every_read_route_answers_without_a_token_and_admin_routes_still_refuse() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[("RESTRICTD_AUTH__ADMIN_TOKENS__OPS", ADMIN)]);
    for (method, path, body, access) in operations(&app) {
        let code = status(&app.addr, &method, &path, body.as_deref(), None);
        match access.as_str() {
            "admin" => assert_eq!(code, 401, "{method} {path}: admin without a token"),
            _ => assert!(!denied(code), "{method} {path} ({access}): open in this configuration, got {code}"),
        }
    }
}
