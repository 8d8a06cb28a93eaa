//! A minimal HTTP/1.1 keep-alive client: one request at a time per connection,
//! responses framed by Content-Length (what restrictd and actix-web send).
//! Kept small on purpose: the load generator must cost little CPU per request.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Conn {
    addr: String,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    req: Vec<u8>,
    /// `Authorization: Bearer` sent with every request (admin calls).
    bearer: Option<String>,
    /// More header lines sent with every request, each ending in CRLF.
    extra: Vec<u8>,
}

pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    /// `Retry-After`, seconds.
    pub retry_after: Option<u64>,
}

impl Conn {
    pub fn new(addr: &str) -> Self {
        Conn {
            addr: addr.to_string(),
            stream: None,
            buf: Vec::with_capacity(4096),
            req: Vec::with_capacity(1024),
            bearer: None,
            extra: Vec::new(),
        }
    }

    /// Sends `name: value` with every request.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.extra.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        self
    }

    /// A request of any method, with a body or none.
    pub async fn request(&mut self, method: &str, path: &str, body: Option<&[u8]>) -> io::Result<Reply> {
        self.send(method, path, body).await
    }

    /// Sends `Authorization: Bearer <token>` with every request.
    pub fn with_bearer(mut self, token: &str) -> Self {
        self.bearer = Some(token.to_string());
        self
    }

    pub async fn put(&mut self, path: &str, body: &[u8]) -> io::Result<Reply> {
        self.send("PUT", path, Some(body)).await
    }

    pub async fn get(&mut self, path: &str) -> io::Result<Reply> {
        self.send("GET", path, None).await
    }

    pub async fn post(&mut self, path: &str, body: &[u8]) -> io::Result<Reply> {
        self.send("POST", path, Some(body)).await
    }

    /// Posts as a producer that must get its events in does: a write refused
    /// by admission control (429) is sent again after the service's
    /// `Retry-After` (1 s), up to 30 times. For set-up steps, not for
    /// measured traffic, where a refusal is a result.
    pub async fn post_until_admitted(&mut self, path: &str, body: &[u8]) -> io::Result<Reply> {
        let mut reply = self.post(path, body).await?;
        for _ in 0..30 {
            if reply.status != 429 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            reply = self.post(path, body).await?;
        }
        Ok(reply)
    }

    /// Opens the connection now rather than with the first request; an error
    /// is left for that request to meet (it connects again).
    pub async fn connect(&mut self) {
        if self.stream.is_none() {
            self.stream = Self::open(&self.addr).await.ok();
        }
    }

    async fn open(addr: &str) -> io::Result<TcpStream> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(s)
    }

    async fn send(&mut self, method: &str, path: &str, body: Option<&[u8]>) -> io::Result<Reply> {
        // A kept-alive connection the server closed fails once; retry on a fresh one
        // only when nothing of the reply was read (the request was not processed).
        match self.try_send(method, path, body).await {
            Err(e) if self.buf.is_empty() && e.kind() == io::ErrorKind::UnexpectedEof => {
                self.stream = None;
                self.try_send(method, path, body).await
            }
            other => other,
        }
    }

    async fn try_send(&mut self, method: &str, path: &str, body: Option<&[u8]>) -> io::Result<Reply> {
        if self.stream.is_none() {
            self.stream = Some(Self::open(&self.addr).await?);
        }
        let stream = self.stream.as_mut().expect("connected");
        self.req.clear();
        self.req.extend_from_slice(method.as_bytes());
        self.req.push(b' ');
        self.req.extend_from_slice(path.as_bytes());
        self.req.extend_from_slice(b" HTTP/1.1\r\nHost: restrictd\r\n");
        if let Some(token) = &self.bearer {
            self.req.extend_from_slice(format!("Authorization: Bearer {token}\r\n").as_bytes());
        }
        self.req.extend_from_slice(&self.extra);
        if let Some(b) = body {
            self.req.extend_from_slice(b"Content-Type: application/json\r\nContent-Length: ");
            self.req.extend_from_slice(b.len().to_string().as_bytes());
            self.req.extend_from_slice(b"\r\n\r\n");
            self.req.extend_from_slice(b);
        } else {
            self.req.extend_from_slice(b"\r\n");
        }
        let result = async {
            stream.write_all(&self.req).await?;
            self.buf.clear();
            read_reply(stream, &mut self.buf).await
        }
        .await;
        if result.is_err() {
            self.stream = None;
        }
        result
    }
}

async fn read_reply(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Reply> {
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..header_end]).map_err(|_| invalid("non-UTF-8 headers"))?;
    let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).ok_or_else(|| invalid("status line"))?;
    let header = |name: &str| -> Option<u64> {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().parse().ok())?
        })
    };
    let length = header("content-length").unwrap_or(0) as usize;
    let retry_after = header("retry-after");
    while buf.len() < header_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed in the body"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[header_end..header_end + length].to_vec();
    buf.clear();
    Ok(Reply { status, body, retry_after })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}
