//! Processes for measurements and tests: a private `redis-server` on a free
//! port in its own temp dir, and `restrictd` on port 0 (its address read from
//! its log). Waits are on conditions (PING, /ready, exit) with deadlines.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Polls `f` until it returns `Some`, or gives `None` after `timeout`.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        // The pause between two polls; callers wait on the condition, not on this.
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind port 0").local_addr().expect("local addr").port()
}

fn unique_dir(kind: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "restrictd-{kind}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A private redis-server.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    args: Vec<String>,
}

impl Redis {
    /// Starts redis-server without persistence.
    pub fn start() -> Redis {
        Redis::start_with(&[])
    }

    /// Starts redis-server with extra arguments (e.g. `["--appendonly", "yes"]`).
    pub fn start_with(args: &[&str]) -> Redis {
        let mut r = Redis::not_started();
        r.args = args.iter().map(|s| s.to_string()).collect();
        r.launch();
        r
    }

    /// Reserves a port and a directory without starting the server.
    pub fn not_started() -> Redis {
        Redis { child: None, port: free_port(), dir: unique_dir("redis"), args: Vec::new() }
    }

    /// Starts (or restarts) the server on its port and directory; waits for PING.
    pub fn launch(&mut self) {
        let child = crate::cpus::command("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
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
        poll(Duration::from_secs(10), || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
            s.write_all(b"PING\r\n").ok()?;
            let mut buf = [0u8; 7];
            s.read_exact(&mut buf).ok()?;
            (&buf == b"+PONG\r\n").then_some(())
        })
        .expect("redis-server answers PING within 10 s");
    }

    /// SIGKILL, and wait for the exit.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Redis's `used_memory` (INFO memory), bytes.
    pub fn used_memory(&self) -> u64 {
        let info = self.cli(&["INFO", "memory"]);
        info.lines().find_map(|l| l.strip_prefix("used_memory:")?.trim().parse().ok()).unwrap_or(0)
    }

    /// Bytes Redis holds for the keys matching `pattern` (`MEMORY USAGE
    /// SAMPLES 0`: every element counted).
    pub fn memory_usage(&self, pattern: &str) -> u64 {
        let keys = self.cli(&["--scan", "--pattern", pattern]);
        keys.lines().map(|k| self.cli(&["MEMORY", "USAGE", k, "SAMPLES", "0"]).parse::<u64>().unwrap_or(0)).sum()
    }

    /// Entries in the streams matching `pattern`.
    pub fn stream_entries(&self, pattern: &str) -> u64 {
        let keys = self.cli(&["--scan", "--pattern", pattern]);
        keys.lines().map(|k| self.cli(&["XLEN", k]).parse::<u64>().unwrap_or(0)).sum()
    }

    /// Runs redis-cli against this server; its stdout, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let out =
            Command::new("redis-cli").args(["-p", &self.port.to_string()]).args(args).output().expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running restrictd process.
pub struct Service {
    child: Option<Child>,
    pub addr: String,
    log: Arc<Mutex<String>>,
}

impl Service {
    /// Starts `bin --config config` with `RESTRICTD_*` overrides, on port 0, and
    /// returns once it logged its address (it may still be catching up).
    pub fn launch(bin: &Path, config: &Path, redis_url: &str, env: &[(&str, &str)]) -> Service {
        let mut cmd = crate::cpus::command(bin);
        cmd.arg("--config")
            .arg(config)
            .env_remove("RUST_LOG")
            .env("RESTRICTD_HTTP__ADDR", "127.0.0.1:0")
            .env("RESTRICTD_REDIS__URL", redis_url)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let (log, tx) = (Arc::clone(&log), tx.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(addr) = listening_addr(&line) {
                        let _ = tx.send(addr);
                    }
                    let mut l = log.lock().expect("log lock");
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let Ok(addr) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("restrictd did not report its address; log:\n{}", log.lock().expect("log lock"));
        };
        Service { child: Some(child), addr, log }
    }

    /// Waits until `/ready` answers 200; how long that took.
    pub fn wait_ready(&self, timeout: Duration) -> Duration {
        let started = Instant::now();
        poll(timeout, || (get_status(&self.addr, "/ready") == Some(200)).then_some(()))
            .unwrap_or_else(|| panic!("restrictd not ready within {timeout:?}; log:\n{}", self.log()));
        started.elapsed()
    }

    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Resident memory now and at its peak, in KiB (from /proc).
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = self.pid().and_then(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok());
        let field = |name: &str| {
            status
                .as_deref()
                .and_then(|s| s.lines().find(|l| l.starts_with(name)))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// SIGTERM, then waits for the exit; the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
        match poll(Duration::from_secs(60), || child.try_wait().expect("try_wait")) {
            Some(status) => status.code(),
            None => {
                let _ = child.kill();
                panic!("restrictd did not exit within 60 s of SIGTERM; log:\n{}", self.log());
            }
        }
    }

    /// SIGKILL, and wait for the exit.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for the process to exit by itself; its exit code (`None`: still running).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let child = self.child.as_mut()?;
        let status = poll(timeout, || child.try_wait().expect("try_wait"))?;
        self.child = None;
        status.code()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The address in restrictd's "listening" log line, human or JSON format.
fn listening_addr(line: &str) -> Option<String> {
    if let Some(rest) = line.split("listening addr=").nth(1) {
        return rest.split_whitespace().next().map(str::to_string);
    }
    if line.contains(r#""message":"listening""#) {
        let rest = line.split(r#""addr":""#).nth(1)?;
        return rest.split('"').next().map(str::to_string);
    }
    None
}

/// The body of a GET (HTTP/1.1, `Connection: close`), or `None` when the
/// server does not answer 200.
pub fn get_body(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// The status of a GET, or `None` when the server does not answer.
fn get_status(addr: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// A private Redis Cluster: `n` masters (no replicas) on free ports, each in
/// its own directory, joined with `redis-cli --cluster create`.
pub struct RedisCluster {
    pub nodes: Vec<Redis>,
}

impl RedisCluster {
    pub fn start(n: usize) -> RedisCluster {
        let mut nodes = Vec::with_capacity(n);
        while nodes.len() < n {
            let mut node = Redis::not_started();
            // The cluster bus listens on port + 10000: it must be free too.
            if node.port > 55_000 || TcpListener::bind(("127.0.0.1", node.port + 10_000)).is_err() {
                continue;
            }
            node.args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--appendonly", "no"]
                .map(String::from)
                .to_vec();
            node.launch();
            nodes.push(node);
        }
        let addrs: Vec<String> = nodes.iter().map(|r| format!("127.0.0.1:{}", r.port)).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(out.status.success(), "redis-cli --cluster create failed: {}", String::from_utf8_lossy(&out.stdout));
        for node in &nodes {
            poll(Duration::from_secs(20), || node.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok").then_some(()))
                .expect("the cluster reports cluster_state:ok within 20 s");
        }
        RedisCluster { nodes }
    }

    /// The seed nodes, as a TOML array for `RESTRICTD_REDIS__NODES`.
    pub fn nodes_toml(&self) -> String {
        let urls: Vec<String> = self.nodes.iter().map(|r| format!("\"redis://127.0.0.1:{}\"", r.port)).collect();
        format!("[{}]", urls.join(", "))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.nodes[0].port)
    }

    /// Runs `redis-cli -c` (follows redirections) against the first node.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-c", "-p", &self.nodes[0].port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}
