//! Metrics, the Grafana dashboard's queries (through a real Prometheus when it
//! is installed), the API document and docs page, the deployment files, logs.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{event, http, wait_for, wait_for_or, TestApp, TestRedis};

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn dashboard() -> Value {
    serde_json::from_str(&std::fs::read_to_string(repo("monitoring/grafana/dashboards/restrictd.json")).unwrap())
        .unwrap()
}

/// Every (panel title, query) of the dashboard.
fn dashboard_queries() -> Vec<(String, String)> {
    let d = dashboard();
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((p["title"].as_str().unwrap().to_string(), t["expr"].as_str().unwrap().to_string()));
        }
    }
    out
}

/// `restrictd_*` names in a query, histogram suffixes removed.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("restrictd_") {
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        let name = &tail[..end];
        let base = name.strip_suffix("_bucket").unwrap_or(name);
        names.insert(base.to_string());
        rest = &tail[end..];
    }
    names
}

/// A small workload touching every part: events applied and rejected, a
/// restriction, checks, a batch.
fn workload(app: &TestApp) {
    app.post_applied(&event("scam_message_flagged", "obs", json!({})));
    app.post_applied(&event("scam_message_flagged", "obs", json!({})));
    app.post_applied(&event("purchase_made", "obs2", json!({"amount": 10})));
    assert_eq!(app.post("/event", &event("nope", "x", json!({}))).status, 422);
    assert_eq!(
        app.post("/v1/events?wait=applied", &json!([event("purchase_made", "obs3", json!({"amount": 1}))])).status,
        200
    );
    for _ in 0..20 {
        app.can("message", "obs");
        app.can("purchase", "obs2");
    }
}

const FAST: &[(&str, &str)] =
    &[("RESTRICTD_PERSISTENCE__FLUSH_INTERVAL", "100ms"), ("RESTRICTD_TRIPWIRE__TICK", "100ms")];

#[test]
fn every_metric_the_dashboard_queries_is_exported() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, FAST);
    workload(&app);
    let wanted: BTreeSet<String> = dashboard_queries().iter().flat_map(|(_, q)| metric_names(q)).collect();
    assert!(wanted.len() >= 15, "{wanted:?}");
    wait_for("every dashboard metric in /metrics", Duration::from_secs(10), || {
        let exposition = app.get("/metrics").body;
        let missing: Vec<&String> = wanted
            .iter()
            .filter(|m| {
                !exposition.lines().any(|l| l.starts_with(m.as_str()) && l[m.len()..].starts_with(['{', ' ', '_']))
            })
            .collect();
        missing.is_empty().then_some(())
    });
    let exposition = app.get("/metrics").body;
    assert!(
        exposition.contains("restrictd_check_seconds_bucket{le=\"0.00005\"}"),
        "check buckets tell 50 µs from 500 µs"
    );
    assert!(!exposition.contains("obs2") && !exposition.contains("\"obs\""), "no user id in any label");
}

#[test]
fn requests_are_counted_by_route_pattern_and_status() {
    let redis = TestRedis::start();
    let app = TestApp::spawn(&redis);
    for _ in 0..3 {
        app.can("message", "counted");
    }
    assert_eq!(app.get("/canmessage").status, 400);
    assert_eq!(app.request("DELETE", "/event", &[], b"").status, 405);
    assert_eq!(app.get("/v1/users/counted/features").status, 200);
    assert_eq!(app.get("/no/such/route").status, 404);
    let count = |route: &str, status: u16| {
        app.metric(&format!("restrictd_http_requests_total{{route=\"{route}\",status=\"{status}\"}}"))
    };
    assert_eq!(count("/canmessage", 200), 3.0);
    assert_eq!(count("/canmessage", 400), 1.0);
    assert_eq!(count("/event", 405), 1.0);
    // The pattern, never the user id.
    assert_eq!(count("/v1/users/{user_id}/features", 200), 1.0);
    assert_eq!(count("unmatched", 404), 1.0);
}

/// Percent-encodes a query for a URL.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Prometheus(Child, std::path::PathBuf);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

#[test]
fn every_dashboard_query_returns_data_through_a_real_prometheus() {
    if Command::new("prometheus").arg("--version").output().is_err() {
        // scripts/test installs it (Debian package `prometheus`); without it this cannot run.
        eprintln!("SKIPPED: prometheus is not installed (apt-get install prometheus; scripts/test does it)");
        return;
    }
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, FAST);
    let dir = std::env::temp_dir().join(format!("restrictd-prom-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: restrictd\n    static_configs:\n      - targets: [\"{}\"]\n",
            app.addr
        ),
    )
    .unwrap();
    let port = loadtest::spawn::free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus starts");
    let _prom = Prometheus(child, dir);
    let prom = format!("127.0.0.1:{port}");

    // Keep traffic flowing while the queries are evaluated, so rates have data.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (stop, addr) = (stop.clone(), app.addr.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Acquire) {
                n += 1;
                let e = event("purchase_made", &format!("t{}", n % 50), json!({"amount": 1}));
                let _ =
                    http(&addr, "POST", "/event", &[("Content-Type", "application/json")], e.to_string().as_bytes());
                let _ = http(&addr, "GET", &format!("/canmessage?user_id=t{}", n % 50), &[], b"");
            }
        })
    };
    workload(&app);

    let mut empty = Vec::new();
    for (title, expr) in dashboard_queries() {
        let q = expr.replace("$instance", ".*");
        let path = format!("/api/v1/query?query={}", encode(&q));
        let found = wait_for_or(Duration::from_secs(60), || {
            let r = http(&prom, "GET", &path, &[], b"").ok()?;
            let v: Value = serde_json::from_str(&r.body).ok()?;
            let result = v["data"]["result"].as_array()?;
            (!result.is_empty()).then_some(())
        });
        if found.is_none() {
            empty.push(format!("{title}: {q}"));
        }
    }
    let label = wait_for("the instance template variable", Duration::from_secs(30), || {
        let r = http(&prom, "GET", "/api/v1/label/instance/values?match%5B%5D=restrictd_shard_users", &[], b"").ok()?;
        let v: Value = serde_json::from_str(&r.body).ok()?;
        v["data"].as_array().filter(|a| !a.is_empty()).cloned()
    });
    stop.store(true, Ordering::Release);
    traffic.join().unwrap();
    assert!(empty.is_empty(), "dashboard queries without data:\n{}", empty.join("\n"));
    assert_eq!(label, vec![json!(app.addr)]);
}

#[test]
fn the_api_document_covers_every_route_and_the_docs_page_is_offline() {
    let redis = TestRedis::start();
    let app = TestApp::spawn(&redis);
    let doc = app.get("/openapi.json").json();
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/event",
        "/v1/events",
        "/canmessage",
        "/canpurchase",
        "/v1/users/{user_id}/features",
        "/v1/users/{user_id}",
        "/v1/rules",
        "/health",
        "/ready",
        "/metrics",
        "/openapi.json",
        "/docs",
        "/v1/users/{user_id}/features/{feature}",
        "/v1/users/{user_id}/history",
        "/v1/rules/{name}/tripwire",
        "/v1/feed",
        "/v1/stats",
        "/v1/stats/{event_name}",
        "/",
    ] {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
    // Every documented operation is served (not the "no route" fallback).
    // The feed is a stream that does not end: the feed tests cover it.
    for (path, ops) in paths.iter().filter(|(p, _)| *p != "/v1/feed") {
        for method in ops.as_object().unwrap().keys() {
            let concrete = path
                .replace("{user_id}", "someone")
                .replace("{feature}", "can_message")
                .replace("{name}", "scam_message_rule")
                .replace("{event_name}", "purchase_made");
            let r = app.request(&method.to_uppercase(), &concrete, &[("Content-Type", "application/json")], b"{}");
            assert!(!r.body.contains("no route"), "{method} {path} is documented but not served: {}", r.body);
            assert!(ops[method]["responses"].is_object());
        }
    }
    // And a route that is not documented is not served.
    assert!(app.get("/v2/events").body.contains("no route"));
    let event_schema = &doc["components"]["schemas"]["Event"]["oneOf"];
    assert_eq!(event_schema.as_array().unwrap().len(), 4, "one schema per configured event");

    let page = app.get("/docs");
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    assert!(page.body.contains("/openapi.json"));
    for remote in ["src=\"http", "href=\"http", "src='http", "@import", "cdn"] {
        assert!(!page.body.to_lowercase().contains(remote), "the docs page loads {remote}: it must work offline");
    }
}

#[test]
fn the_deployment_files_hold_together() {
    let compose: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(repo("docker-compose.yml")).unwrap()).unwrap();
    let services = compose["services"].as_mapping().unwrap();
    for s in ["redis", "restrictd", "prometheus", "grafana"] {
        assert!(services.contains_key(s), "service {s} missing");
    }
    let redis_cmd: Vec<&str> =
        compose["services"]["redis"]["command"].as_sequence().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(redis_cmd.windows(2).any(|w| w == ["--appendonly", "yes"]), "redis keeps an AOF");
    assert!(compose["volumes"].as_mapping().unwrap().contains_key("redis-data"));
    assert_eq!(compose["services"]["restrictd"]["ports"][0], "8080:8080");
    let restrictd = &compose["services"]["restrictd"];
    assert_eq!(restrictd["environment"]["RESTRICTD_REDIS__URL"], "redis://redis:6379/0");
    assert_eq!(restrictd["restart"], "unless-stopped");
    assert_eq!(restrictd["environment"]["RESTRICTD_INSTANCE__ID"], "restrictd-1", "stable across re-creations");
    let token = restrictd["environment"]["RESTRICTD_AUTH__ADMIN_TOKENS__OPS"].as_str().unwrap();
    assert!(token.starts_with("${ADMIN_TOKEN:?"), "the admin token comes from the environment, no default: {token}");
    // Every file or folder a service mounts from the repository exists.
    let mut mounts = 0;
    for (_, service) in services {
        for v in service["volumes"].as_sequence().into_iter().flatten() {
            let source = v.as_str().unwrap().split(':').next().unwrap();
            if let Some(rel) = source.strip_prefix("./") {
                assert!(repo(rel).exists(), "mounted {source} does not exist");
                mounts += 1;
            }
        }
    }
    assert_eq!(mounts, 3);
    // Prometheus scrapes the compose service; Grafana's datasource and dashboard paths match the mounts.
    let prom: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(repo("monitoring/prometheus.yml")).unwrap()).unwrap();
    assert_eq!(prom["scrape_configs"][0]["static_configs"][0]["targets"][0], "restrictd:8080");
    let ds: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo("monitoring/grafana/provisioning/datasources/prometheus.yml")).unwrap(),
    )
    .unwrap();
    assert_eq!(ds["datasources"][0]["url"], "http://prometheus:9090");
    let provider: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo("monitoring/grafana/provisioning/dashboards/restrictd.yml")).unwrap(),
    )
    .unwrap();
    assert_eq!(provider["providers"][0]["options"]["path"], "/var/lib/grafana/dashboards");
    assert_eq!(
        compose["services"]["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"],
        "/var/lib/grafana/dashboards/restrictd.json"
    );
    // Every panel queries through the provisioned datasource and the instance variable.
    for (title, q) in dashboard_queries() {
        assert!(q.contains("$instance"), "panel {title} is not templated by instance");
    }

    let dockerfile = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    assert!(dockerfile.lines().filter(|l| l.starts_with("FROM ")).count() >= 2, "multi-stage");
    let healthcheck = dockerfile.lines().skip_while(|l| !l.starts_with("HEALTHCHECK")).take(2).collect::<String>();
    assert!(healthcheck.contains("/ready"), "healthy means ready: {healthcheck}");
    assert!(dockerfile.lines().any(|l| l.starts_with("USER ") && !l.contains("root")), "runs as a non-root user");
    assert!(dockerfile.contains("--mount=type=cache"), "caches dependencies between builds");
    assert!(dockerfile.contains("COPY config.toml") && repo("config.toml").exists());
}

#[test]
fn json_logs_are_one_object_per_line_and_requests_log_at_debug_only() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[("RESTRICTD_LOG__FORMAT", "json")]);
    for _ in 0..5 {
        app.can("message", "quiet");
    }
    let log = app.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["fields"]["message"].is_string(), "{line}");
    }
    assert!(!log.contains("\"message\":\"request\""), "request logs are debug, not info:\n{log}");
}
