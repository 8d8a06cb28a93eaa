//! A TCP proxy between one instance and Redis that can hold the traffic of
//! every connection through it, both directions, and release it in order:
//! what a partition that delays packets, or a paused VM's network, does.
//! Held bytes are delivered once released, even to a server whose client
//! gave up on them meanwhile.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Default)]
struct Gate {
    held: Mutex<bool>,
    opened: Condvar,
    /// Chunks read while held and waiting to be forwarded.
    waiting: AtomicU64,
}

impl Gate {
    /// Blocks while the gate is held.
    fn pass(&self) {
        let mut held = self.held.lock().unwrap();
        if *held {
            self.waiting.fetch_add(1, Ordering::AcqRel);
            while *held {
                held = self.opened.wait(held).unwrap();
            }
            self.waiting.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

pub struct HoldingProxy {
    pub port: u16,
    gate: Arc<Gate>,
    stop: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<JoinHandle<()>>,
}

impl HoldingProxy {
    /// Listens on a free port and forwards each connection to `upstream_port`.
    pub fn start(upstream_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = listener.local_addr().unwrap().port();
        let (gate, stop, streams) = (Arc::new(Gate::default()), Arc::new(AtomicBool::new(false)), Arc::default());
        let accept = {
            let (gate, stop, streams) = (Arc::clone(&gate), Arc::clone(&stop), Arc::clone(&streams));
            std::thread::spawn(move || accept_loop(listener, upstream_port, &gate, &stop, &streams))
        };
        HoldingProxy { port, gate, stop, streams, accept: Some(accept) }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// From now on nothing passes, either way, on any connection.
    pub fn hold(&self) {
        *self.gate.held.lock().unwrap() = true;
    }

    /// Lets everything held through, each connection's bytes in the order sent.
    pub fn release(&self) {
        *self.gate.held.lock().unwrap() = false;
        self.gate.opened.notify_all();
    }

    /// Chunks of traffic held right now (read, not yet forwarded).
    pub fn held_chunks(&self) -> u64 {
        self.gate.waiting.load(Ordering::Acquire)
    }
}

impl Drop for HoldingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.release();
        for s in self.streams.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    upstream: u16,
    gate: &Arc<Gate>,
    stop: &AtomicBool,
    streams: &Mutex<Vec<TcpStream>>,
) {
    for client in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            return;
        }
        let Ok(client) = client else { continue };
        let Ok(server) = TcpStream::connect_timeout(&([127, 0, 0, 1], upstream).into(), Duration::from_secs(2)) else {
            continue;
        };
        let pairs = [(client.try_clone(), server.try_clone()), (server.try_clone(), client.try_clone())];
        for (from, to) in pairs {
            let (Ok(from), Ok(to)) = (from, to) else { continue };
            let gate = Arc::clone(gate);
            std::thread::spawn(move || pump(from, to, &gate));
        }
        let mut all = streams.lock().unwrap();
        all.push(client);
        all.push(server);
    }
}

/// Copies `from` to `to`, each chunk waiting at the gate; passes the end on.
fn pump(mut from: TcpStream, mut to: TcpStream, gate: &Gate) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => 0,
            Ok(n) => n,
        };
        gate.pass();
        if n == 0 {
            let _ = to.shutdown(Shutdown::Write);
            return;
        }
        if to.write_all(&buf[..n]).is_err() {
            let _ = from.shutdown(Shutdown::Read);
            return;
        }
    }
}
