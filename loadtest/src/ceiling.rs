//! The machine's ceiling: a trivial actix-web handler with the same worker
//! count as restrictd, so a run can report restrictd as a share of it.
//!
//! By default the handler runs in a process of its own (`loadtest
//! serve-ceiling`), as restrictd does: a reply then crosses processes as
//! restrictd's do, which costs a wake-up of another address space on each
//! request. `--in-process` serves it from a thread of the generator instead.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Stdio};

use actix_web::{web, App, HttpResponse, HttpServer};

/// Serves `GET /*` → `{"ok":true}` on `listener` until the process ends.
pub async fn run(listener: TcpListener, workers: usize) -> std::io::Result<()> {
    HttpServer::new(|| {
        App::new().default_service(web::to(|| async {
            HttpResponse::Ok().content_type("application/json").body(r#"{"ok":true}"#)
        }))
    })
    .workers(workers)
    .disable_signals()
    .listen(listener)?
    .run()
    .await
}

/// Serves the handler on a free port in a thread of this process; its address.
pub fn serve(workers: usize) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    std::thread::spawn(move || actix_rt::System::new().block_on(run(listener, workers)));
    Ok(addr)
}

/// Starts the trivial handler with `workers` workers: on a thread of this
/// process when `in_process`, else in a process of its own. Its address, and
/// the process (stopped when dropped) to keep while it is used.
pub fn start(workers: usize, in_process: bool) -> anyhow::Result<(String, Option<Process>)> {
    if in_process {
        return Ok((serve(workers)?, None));
    }
    let p = Process::start(workers)?;
    Ok((p.addr.clone(), Some(p)))
}

/// The handler in a child process (`<this executable> serve-ceiling`); killed on drop.
pub struct Process {
    child: Child,
    pub addr: String,
}

impl Process {
    pub fn start(workers: usize) -> anyhow::Result<Process> {
        let mut child = crate::cpus::command(std::env::current_exe()?)
            .args(["serve-ceiling", "--workers", &workers.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        // The child's first line is its address; it prints nothing else.
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let addr = line.trim().strip_prefix("listening ").map(str::to_string);
        match addr {
            Some(addr) => Ok(Process { child, addr }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!("serve-ceiling did not report its address (got {line:?})")
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
