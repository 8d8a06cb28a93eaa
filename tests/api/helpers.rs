//! Test helpers: a real `redis-server` on a free port in its own temp dir, the
//! real `restrictd` binary on port 0, and a small HTTP/1.1 client that can also
//! send what a well-behaved client would not. Every wait is on a condition with
//! a deadline, never a sleep.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    wait_for_or(timeout, f)
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Polls `f` until it returns `Some`, or gives `None` after `timeout`.
pub fn wait_for_or<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        // The pause between two polls of the condition; the test waits on the
        // condition (with its deadline), never on the pause.
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn unique_dir(kind: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "restrictd-test-{kind}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A private redis-server for one test.
pub struct TestRedis {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
}

impl TestRedis {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts redis-server with extra arguments (e.g. `["--appendonly", "yes"]`).
    pub fn start_with(extra: &[&str]) -> Self {
        let mut r = TestRedis {
            child: None,
            port: free_port(),
            dir: unique_dir("redis"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        r.launch();
        r
    }

    /// A Redis that is not running yet: its port is reserved by number only.
    pub fn not_started() -> Self {
        TestRedis {
            child: None,
            port: free_port(),
            dir: unique_dir("redis"),
            extra: Vec::new(),
        }
    }

    pub fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}). Install it: `sudo apt-get install -y redis-server` \
                     (scripts/test does this for you)"
                )
            });
        self.child = Some(child);
        let port = self.port;
        wait_for(
            "redis-server to answer PING",
            Duration::from_secs(10),
            || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
                s.write_all(b"PING\r\n").ok()?;
                let mut buf = [0u8; 7];
                s.read_exact(&mut buf).ok()?;
                (&buf == b"+PONG\r\n").then_some(())
            },
        );
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Runs redis-cli against this server; returns its stdout, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

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
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one HTTP/1.1 request with `Connection: close` and reads the reply.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Reply> {
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
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Ok(Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
    })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..end]).unwrap_or("0").trim(), 16)
                .unwrap_or(0);
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

/// A running restrictd process.
pub struct TestApp {
    child: Option<Child>,
    pub addr: String,
    log: Arc<Mutex<String>>,
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
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_restrictd"));
        cmd.arg("--config")
            .arg(config)
            .env_remove("RUST_LOG")
            .env("RESTRICTD_HTTP__ADDR", "127.0.0.1:0")
            .env("RESTRICTD_REDIS__URL", redis_url)
            .env("RESTRICTD_HTTP__WORKERS", "2")
            .env("RESTRICTD_SHARDS__WORKERS", "2")
            .env("RESTRICTD_READER__BLOCK", "200ms")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("restrictd binary starts");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let (log, tx) = (Arc::clone(&log), tx.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(rest) = line.split("listening addr=").nth(1) {
                        let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
                    }
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "restrictd did not report its address; log:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        TestApp {
            child: Some(child),
            addr,
            log,
        }
    }

    pub fn wait_ready(&self) {
        wait_for("restrictd /ready", Duration::from_secs(30), || {
            (self.get("/ready").status == 200).then_some(())
        });
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        http(&self.addr, method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path} failed: {e}\nlog:\n{}", self.log()))
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], b"")
    }

    pub fn post(&self, path: &str, body: &Value) -> Reply {
        self.request(
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
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
        r.json()[format!("can_{feature}")]
            .as_bool()
            .expect("boolean answer")
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill runs");
        let exited = wait_for_or(Duration::from_secs(30), || {
            child.try_wait().expect("try_wait")
        });
        match exited {
            Some(status) => status.code(),
            None => {
                let _ = child.kill();
                panic!(
                    "restrictd did not exit within 30 s of SIGTERM; log:\n{}",
                    self.log()
                );
            }
        }
    }

    /// Kills the process with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.kill();
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
