//! A Server-Sent Events subscriber for tests: reads the chunked stream of
//! `GET /v1/feed` and yields (event, data) pairs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub struct Subscriber {
    reader: BufReader<TcpStream>,
    pending: String,
    /// The `id:` of the last event that had one (what `Last-Event-ID` resumes after).
    pub last_id: Option<String>,
    /// The `retry:` hint, when the stream gave one.
    pub retry: Option<String>,
}

impl Subscriber {
    /// Subscribes with `query` (e.g. `users=a,b`) and waits for `subscribed`.
    pub fn open(addr: &str, query: &str) -> Subscriber {
        Self::open_on(TcpStream::connect(addr).expect("connect"), addr, query, "")
    }

    /// Like `open`, resuming after `last_id` (sent as `Last-Event-ID`).
    pub fn resume(addr: &str, query: &str, last_id: &str) -> Subscriber {
        let header = format!("Last-Event-ID: {last_id}\r\n");
        Self::open_on(TcpStream::connect(addr).expect("connect"), addr, query, &header)
    }

    /// Like `open`, with a 4 KiB receive buffer: a client that stops reading
    /// stalls the server's writes soon.
    pub fn open_small(addr: &str, query: &str) -> Subscriber {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(&addr.parse::<SocketAddr>().unwrap().into()).unwrap();
        Self::open_on(socket.into(), addr, query, "")
    }

    fn open_on(mut stream: TcpStream, addr: &str, query: &str, headers: &str) -> Subscriber {
        write!(stream, "GET /v1/feed?{query} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{headers}\r\n")
            .unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "{line}");
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
        }
        let mut s = Subscriber { reader, pending: String::new(), last_id: None, retry: None };
        let (kind, _) = s.next().expect("a first event");
        assert_eq!(kind, "subscribed");
        s
    }

    /// The next event, or `None` at the end of the stream or after 5 s of silence.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<(String, String)> {
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let block: String = self.pending.drain(..end + 2).collect();
                let mut kind = String::new();
                let mut data = String::new();
                for l in block.lines() {
                    if let Some(id) = l.strip_prefix("id: ") {
                        self.last_id = Some(id.to_string());
                    } else if let Some(r) = l.strip_prefix("retry: ") {
                        self.retry = Some(r.to_string());
                    } else if let Some(k) = l.strip_prefix("event: ") {
                        kind = k.to_string();
                    } else if let Some(d) = l.strip_prefix("data: ") {
                        data = d.to_string();
                    }
                }
                if kind.is_empty() {
                    continue; // a heartbeat comment
                }
                return Some((kind, data));
            }
            // Chunked transfer: a size line, the bytes, CRLF.
            let mut size = String::new();
            if self.reader.read_line(&mut size).ok()? == 0 {
                return None;
            }
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            if n == 0 {
                return None;
            }
            let mut buf = vec![0u8; n + 2];
            self.reader.read_exact(&mut buf).ok()?;
            self.pending.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }

    /// The next `count` events of kind `kind` (other kinds are skipped).
    pub fn take(&mut self, kind: &str, count: usize) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        while out.len() < count {
            let Some((k, data)) = self.next() else { break };
            if k == kind {
                out.push(serde_json::from_str(&data).unwrap());
            }
        }
        out
    }
}
