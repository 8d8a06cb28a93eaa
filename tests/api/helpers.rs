//! Test helpers: a real `redis-server` on a free port in its own temp dir, the
//! real `restrictd` binary on port 0, and a small HTTP/1.1 client that can also
//! send what a well-behaved client would not. Every wait is on a condition with
//! a deadline, never a sleep.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use loadtest::spawn::Service;

use serde_json::Value;

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    wait_for_or(timeout, f).unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Polls `f` until it returns `Some`, or gives `None` after `timeout`.
pub use loadtest::spawn::poll as wait_for_or;

/// A private redis-server for one test (shared with the load generator).
pub use loadtest::spawn::Redis as TestRedis;

/// A reply: status, headers, body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Sends one HTTP/1.1 request with `Connection: close` and reads the reply.
pub fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    if headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked")) {
        body = dechunk(&body);
    }
    Ok(Reply { status, headers, body: String::from_utf8_lossy(&body).to_string() })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&data[..end]).unwrap_or("0").trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 2 + size + 2..];
    }
    out
}

/// The repository's default config.toml.
pub fn default_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml")
}

/// A running restrictd process, with the HTTP helpers tests use.
pub struct TestApp {
    svc: Service,
    pub addr: String,
}

impl TestApp {
    /// Starts restrictd with the default config against `redis`, and waits until ready.
    pub fn spawn(redis: &TestRedis) -> Self {
        Self::spawn_with(redis, &[])
    }

    /// Like `spawn`, with extra `RESTRICTD_*` environment overrides.
    pub fn spawn_with(redis: &TestRedis, env: &[(&str, &str)]) -> Self {
        let app = Self::launch(&redis.url(), &default_config(), env);
        app.wait_ready();
        app
    }

    /// Starts restrictd without waiting for readiness (it may be waiting for Redis).
    pub fn launch(redis_url: &str, config: &Path, env: &[(&str, &str)]) -> Self {
        let mut all = vec![
            ("RESTRICTD_HTTP__WORKERS", "2"),
            ("RESTRICTD_SHARDS__WORKERS", "2"),
            ("RESTRICTD_READER__BLOCK", "200ms"),
            // Many services share the test machine's cores: a worker running
            // late there says nothing of the service, and a write refused for
            // it would fail a test of something else. admission.rs tests it.
            ("RESTRICTD_ADMISSION__MAX_WRITE_DELAY", "10s"),
        ];
        all.extend_from_slice(env);
        let svc = Service::launch(Path::new(env!("CARGO_BIN_EXE_restrictd")), config, redis_url, &all);
        let addr = svc.addr.clone();
        TestApp { svc, addr }
    }

    pub fn wait_ready(&self) {
        self.svc.wait_ready(Duration::from_secs(30));
    }

    pub fn log(&self) -> String {
        self.svc.log()
    }

    pub fn pid(&self) -> u32 {
        self.svc.pid().expect("the service is running")
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        http(&self.addr, method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path} failed: {e}\nlog:\n{}", self.log()))
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], b"")
    }

    pub fn post(&self, path: &str, body: &Value) -> Reply {
        self.request("POST", path, &[("Content-Type", "application/json")], body.to_string().as_bytes())
    }

    /// One series of `/metrics`, named with its labels as exported
    /// (`restrictd_redis_errors_total{operation="xadd"}`); panics when absent.
    pub fn metric(&self, series: &str) -> f64 {
        let body = self.get("/metrics").body;
        loadtest::metric_value(&body, series).unwrap_or_else(|| panic!("metric {series} not exported:\n{body}"))
    }

    /// Posts an event and waits until it is applied; panics unless 200.
    pub fn post_applied(&self, event: &Value) -> Value {
        let r = self.post("/event?wait=applied", event);
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }

    /// `GET /can<feature>?user_id=<user>` → the boolean.
    pub fn can(&self, feature: &str, user: &str) -> bool {
        let r = self.get(&format!("/can{feature}?user_id={user}"));
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()[format!("can_{feature}")].as_bool().expect("boolean answer")
    }

    /// SIGTERM, then waits for the exit; the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        self.svc.terminate()
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        self.svc.kill();
    }

    /// Waits for the process to exit by itself; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        self.svc.wait_exit(timeout)
    }
}

/// `{"name": name, "event_properties": {"user_id": user, ...props}}`.
pub fn event(name: &str, user: &str, props: Value) -> Value {
    let mut p = serde_json::json!({ "user_id": user });
    if let Value::Object(extra) = props {
        for (k, v) in extra {
            p[k] = v;
        }
    }
    serde_json::json!({ "name": name, "event_properties": p })
}
