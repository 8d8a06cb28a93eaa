//! Enforcement at the gateway: a real nginx and a real Caddy (from the OS
//! packages) run the README's snippets in front of a trivial backend and ask
//! the real binary; Envoy's and Traefik's header contracts, and what bad
//! input gets, are called directly.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::helpers::{event, http, wait_for, Reply, TestApp, TestRedis};

/// The first block of `lang` after the README's gateway heading.
fn readme_block(lang: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let after = &readme[readme.find("### At the gateway").expect("README has ### At the gateway")..];
    let fence = format!("```{lang}\n");
    let start = after.find(&fence).unwrap_or_else(|| panic!("a {lang} block")) + fence.len();
    let end = after[start..].find("```").expect("the block ends");
    after[start..start + end].to_string()
}

/// A backend that answers every request 200 `backend`, on its own thread.
fn backend() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nbackend");
        }
    });
    addr
}

/// A gateway process, killed when dropped.
struct Gateway {
    child: Child,
    addr: String,
    dir: PathBuf,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Gateway {
    fn start(name: &str, program: &str, args: &[&str], config: (&str, String)) -> Gateway {
        let dir = std::env::temp_dir().join(format!(
            "restrictd-{name}-{}-{}",
            std::process::id(),
            loadtest::spawn::free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(config.0), &config.1).unwrap();
        let port = config.1.split("#port ").nth(1).and_then(|s| s.lines().next()).unwrap().to_string();
        let child = Command::new(program)
            .args(args.iter().map(|a| a.replace("{dir}", &dir.display().to_string())))
            .env("HOME", &dir)
            .env("XDG_DATA_HOME", &dir)
            .env("XDG_CONFIG_HOME", &dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} runs ({e}): scripts/test installs it from the OS packages"));
        let gw = Gateway { child, addr: format!("127.0.0.1:{port}"), dir };
        wait_for(&format!("{name} to listen"), Duration::from_secs(20), || {
            http(&gw.addr, "GET", "/about", &[], b"").ok().filter(|r| r.status == 200)
        });
        gw
    }

    fn send(&self, method: &str, path: &str, user: &str) -> Reply {
        http(&self.addr, method, path, &[("X-User-Id", user)], b"").unwrap()
    }
}

/// `snippet` with the README's addresses swapped for the test's.
fn swap(snippet: &str, port: u16, backend: &str, app: &TestApp) -> String {
    snippet.replace("8000", &port.to_string()).replace("127.0.0.1:9000", backend).replace("127.0.0.1:8080", &app.addr)
}

fn nginx(app: &TestApp, backend: &str) -> Gateway {
    let port = loadtest::spawn::free_port();
    let server = swap(&readme_block("nginx"), port, backend, app)
        .replace(&format!("listen {port};"), &format!("listen 127.0.0.1:{port};"));
    // Paths relative to the prefix (`-p`): the test's directory.
    let conf = format!(
        "#port {port}\npid nginx.pid;\nerror_log error.log;\nevents {{ worker_connections 64; }}\nhttp {{\n\
         access_log off;\nclient_body_temp_path body;\nproxy_temp_path proxy;\n\
         fastcgi_temp_path fastcgi;\nuwsgi_temp_path uwsgi;\nscgi_temp_path scgi;\n{server}}}\n"
    );
    let program = if Path::new("/usr/sbin/nginx").exists() { "/usr/sbin/nginx" } else { "nginx" };
    let args = ["-p", "{dir}/", "-e", "{dir}/error.log", "-c", "{dir}/nginx.conf", "-g", "daemon off;"];
    Gateway::start("nginx", program, &args, ("nginx.conf", conf))
}

fn caddy(app: &TestApp, backend: &str) -> Gateway {
    let port = loadtest::spawn::free_port();
    let site = swap(&readme_block("caddyfile"), port, backend, app);
    let file = format!("#port {port}\n{{\n\tadmin off\n\tauto_https off\n}}\n{site}");
    Gateway::start(
        "caddy",
        "caddy",
        &["run", "--config", "{dir}/Caddyfile", "--adapter", "caddyfile"],
        ("Caddyfile", file),
    )
}

/// A service where `bad` is restricted from messaging by scam_message_rule.
fn restricted_app(redis: &TestRedis, env: &[(&str, &str)]) -> TestApp {
    let app = TestApp::spawn_with(redis, env);
    app.post_applied(&event("scam_message_flagged", "bad", json!({})));
    let applied = app.post_applied(&event("scam_message_flagged", "bad", json!({})));
    assert_eq!(applied["features"]["can_message"], false, "{applied}");
    app
}

/// What the README promises of a gateway in front of the backend.
fn enforces(gw: &Gateway, who: &str) {
    let refused = gw.send("POST", "/api/messages", "bad");
    assert_eq!(refused.status, 403, "{who}: a restricted user is refused: {refused:?}");
    assert_eq!(refused.header("X-Restrictd-Rule"), Some("scam_message_rule"), "{who}: the rule reaches the client");
    assert_eq!(refused.header("X-Restrictd-Feature"), Some("can_message"), "{who}");
    let clean = gw.send("POST", "/api/messages/7", "good");
    assert_eq!((clean.status, clean.body.as_str()), (200, "backend"), "{who}: a clean user passes");
    let ungoverned = gw.send("GET", "/about", "bad");
    assert_eq!((ungoverned.status, ungoverned.body.as_str()), (200, "backend"), "{who}: an ungoverned route passes");
    let other = gw.send("POST", "/api/checkout", "bad");
    assert_eq!((other.status, other.body.as_str()), (200, "backend"), "{who}: a route of another feature passes");
    let spelled = gw.send("POST", "/api//%6Dessages", "bad");
    assert_ne!(spelled.status, 200, "{who}: another spelling of the path is no way past: {spelled:?}");
}

#[test]
fn nginx_and_caddy_running_the_readme_snippets_enforce_restrictions() {
    let redis = TestRedis::start();
    let app = restricted_app(&redis, &[]);
    let backend = backend();
    enforces(&nginx(&app, &backend), "nginx");
    enforces(&caddy(&app, &backend), "caddy");
}

fn ask(app: &TestApp, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    app.request(method, path, headers, b"")
}

#[test]
fn envoy_and_traefik_contracts_and_bad_input_get_documented_answers() {
    let redis = TestRedis::start();
    let app = restricted_app(&redis, &[]);
    let bad = ("X-User-Id", "bad");
    // Envoy: the original method, the original path after /v1/authz.
    let envoy = ask(&app, "POST", "/v1/authz/api/messages/3?draft=1", &[bad]);
    assert_eq!(envoy.status, 403, "{envoy:?}");
    assert_eq!(envoy.header("X-Restrictd-Rule"), Some("scam_message_rule"));
    let body = envoy.json();
    assert_eq!((body["feature"].as_str(), body["rule"].as_str()), (Some("can_message"), Some("scam_message_rule")));
    assert_eq!(ask(&app, "GET", "/v1/authz/api/messages", &[bad]).status, 200, "a POST route does not govern GET");
    assert_eq!(ask(&app, "DELETE", "/v1/authz/api/checkout/1", &[bad]).status, 200, "another feature");
    // Traefik and Caddy: X-Forwarded-Method + X-Forwarded-Uri, escapes decoded.
    let traefik = |uri: &str, method: &str| {
        ask(&app, "GET", "/v1/authz", &[bad, ("X-Forwarded-Method", method), ("X-Forwarded-Uri", uri)])
    };
    assert_eq!(traefik("/api/%6Dessages?x=1", "POST").status, 403);
    assert_eq!(traefik("/api//messages", "post").status, 403, "slashes merged, the method in any case");
    assert_eq!(traefik("/api/messages", "BREW").status, 200, "an unknown method matches routes of any method only");
    // Bad input: 400 with what is wrong (a gateway refuses the request).
    for (uri, method, why) in [
        ("/api/../admin", "POST", "\"..\" segment"),
        ("/api/%2e%2e/admin", "POST", "\"..\" segment"),
        ("/api/%zz", "POST", "malformed percent-escape"),
        ("/api/messages", "GET POST", "not an HTTP method"),
        ("api/messages", "POST", "must start with /"),
    ] {
        let reply = traefik(uri, method);
        assert_eq!(reply.status, 400, "{uri} {method}: {reply:?}");
        assert!(reply.json()["error"].as_str().unwrap().contains(why), "{uri}: {}", reply.body);
    }
    let nginx_without_method = ask(&app, "GET", "/v1/authz", &[bad, ("X-Original-URI", "/api/messages")]);
    assert_eq!(nginx_without_method.status, 400, "a URI header without its method header");
    // No user header: allowed by default (gateway.missing_user = "allow").
    let anonymous = ask(&app, "POST", "/v1/authz/api/messages", &[]);
    assert_eq!((anonymous.status, anonymous.header("X-Restrictd-Feature")), (200, Some("can_message")));
    assert_eq!(anonymous.body, "", "a 200 is headers only");
    let bad_id = ask(&app, "POST", "/v1/authz/api/messages", &[("X-User-Id", "")]);
    assert_eq!(bad_id.status, 400, "an empty user id: {bad_id:?}");
    let unicode = ask(&app, "POST", "/v1/authz/api/messages", &[("X-User-Id", "zoë")]);
    assert_eq!(unicode.status, 200, "a user id in UTF-8: {unicode:?}");
}

#[test]
fn deny_policies_and_the_read_token_apply() {
    let redis = TestRedis::start();
    let token = "read-token-0123456789";
    let app = restricted_app(
        &redis,
        &[
            ("RESTRICTD_GATEWAY__UNMATCHED", "deny"),
            ("RESTRICTD_GATEWAY__MISSING_USER", "deny"),
            ("RESTRICTD_AUTH__REQUIRE_FOR_READS", "true"),
            ("RESTRICTD_AUTH__READ_TOKEN", token),
        ],
    );
    let bearer = format!("Bearer {token}");
    let with_token = |path: &str, user: Option<&str>| {
        let mut headers = vec![("Authorization", bearer.as_str())];
        headers.extend(user.map(|u| ("X-User-Id", u)));
        ask(&app, "POST", path, &headers)
    };
    assert_eq!(ask(&app, "POST", "/v1/authz/api/messages", &[("X-User-Id", "good")]).status, 401, "no read token");
    assert_eq!(with_token("/v1/authz/api/messages", Some("good")).status, 200);
    let unmatched = with_token("/v1/authz/about", Some("good"));
    assert_eq!(unmatched.status, 403, "gateway.unmatched = deny: {unmatched:?}");
    assert!(unmatched.json()["error"].as_str().unwrap().contains("no gateway route matches POST /about"));
    let anonymous = with_token("/v1/authz/api/messages", None);
    assert_eq!(anonymous.status, 403, "gateway.missing_user = deny: {anonymous:?}");
    assert_eq!(anonymous.header("X-Restrictd-Feature"), Some("can_message"));
}

#[test]
fn bulk_checks_keep_order_see_applied_restrictions_and_refuse_whole() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[("RESTRICTD_CHECKS__BATCH_LIMIT", "4")]);
    let checks = |items: &[(&str, &str)]| {
        let items: Vec<_> = items.iter().map(|(u, f)| json!({"user_id": u, "feature": f})).collect();
        app.post("/v1/checks", &json!({ "checks": items }))
    };
    let items = [("a", "can_message"), ("b", "can_message"), ("a", "can_purchase"), ("c", "can_message")];
    let before = checks(&items).json();
    assert!(before["results"].as_array().unwrap().iter().all(|r| r == &json!({"allowed": true})), "{before}");
    for _ in 0..2 {
        app.post_applied(&event("scam_message_flagged", "b", json!({})));
    }
    let after = checks(&items).json();
    let allowed: Vec<bool> = after["results"].as_array().unwrap().iter().map(|r| r["allowed"] == true).collect();
    assert_eq!(allowed, [true, false, true, true], "in order, b restricted once applied: {after}");
    assert_eq!(after["results"][1]["rule"], "scam_message_rule");
    let too_many = checks(&[("a", "can_message"); 5]);
    assert_eq!(too_many.status, 413, "over checks.batch_limit: {too_many:?}");
    let invalid = checks(&[("a", "can_message"), ("", "can_message"), ("c", "can_fly")]);
    assert_eq!(invalid.status, 422, "{invalid:?}");
    let indices: Vec<u64> =
        invalid.json()["invalid"].as_array().unwrap().iter().map(|i| i["index"].as_u64().unwrap()).collect();
    assert_eq!(indices, [1, 2], "each invalid item listed: {}", invalid.body);
    assert_eq!(app.post("/v1/checks", &json!({"checks": "all"})).status, 422);
    assert_eq!(app.request("POST", "/v1/checks", &[("Content-Type", "application/json")], b"{").status, 400);
}

#[test]
fn an_instance_that_does_not_own_the_user_names_the_rule_too() {
    let redis = TestRedis::start();
    let owner =
        TestApp::spawn_with(&redis, &[("RESTRICTD_INSTANCE__ID", "owner"), ("RESTRICTD_INSTANCE__SHARDS", "1-63")]);
    let users: Vec<String> =
        (0..).map(|i| format!("user-{i}")).filter(|u| restrictd_domain::shard_of(u, 64) != 0).take(2).collect();
    let restrict = |user: &str| {
        for _ in 0..2 {
            owner.post_applied(&event("scam_message_flagged", user, json!({})));
        }
    };
    // One restricted before the other instance starts (it loads the
    // restricted sets), one after (it follows the changelog).
    restrict(&users[0]);
    let other =
        TestApp::spawn_with(&redis, &[("RESTRICTD_INSTANCE__ID", "other"), ("RESTRICTD_INSTANCE__SHARDS", "0")]);
    restrict(&users[1]);
    for user in &users {
        let refused = wait_for("the other instance to see the restriction", Duration::from_secs(20), || {
            Some(ask(&other, "POST", "/v1/authz/api/messages", &[("X-User-Id", user)])).filter(|r| r.status == 403)
        });
        assert_eq!(refused.header("X-Restrictd-Rule"), Some("scam_message_rule"), "{user}: {refused:?}");
    }
}
