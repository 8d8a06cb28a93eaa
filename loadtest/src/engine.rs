//! Drives requests over N keep-alive connections, open- or closed-loop, and
//! records latencies in HDR histograms.
//!
//! Open loop (constant rate): request i of a connection is due at
//! `start + i * interval`. When the previous reply came back after that time,
//! latency counts from the due time (the service held the request up: no
//! coordinated omission); when the connection was idle, from the send itself,
//! so the timer's 1 ms granularity is not counted against the service.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::client::{Conn, Reply};

/// One request a scenario wants sent.
pub enum Op {
    Get(String),
    Post(String, Vec<u8>),
    /// Any method; a body or none.
    Other(&'static str, String, Option<Vec<u8>>),
}

/// Produces requests and sees their replies. One generator per connection.
pub trait Generator: Send + 'static {
    fn next(&mut self) -> Op;
    /// The reply (or `None` on an I/O error) to the last request.
    fn done(&mut self, _reply: Option<&Reply>) {}
    /// Units of work in one request (events in a batch), for throughput.
    fn weight(&self) -> u64 {
        1
    }
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub addr: String,
    pub connections: usize,
    /// Requests per second over all connections; `None`: closed loop, as fast as possible.
    pub rate: Option<f64>,
    pub duration: Duration,
    pub label: String,
    /// After a reply with `Retry-After`, the connection waits that long
    /// before its next request, as a well-behaved producer does.
    pub honour_retry_after: bool,
    /// Open loop: a request falling due while its connection still waits for
    /// the previous reply is not sent (counted in `unsent`), as a producer
    /// with one request in flight drops or defers what it cannot send; the
    /// next one counts from its send. Without it, latency counts from the due
    /// time (no coordinated omission).
    pub skip_when_busy: bool,
    /// `Authorization: Bearer` on every request (a producer's ingest token).
    pub bearer: Option<String>,
    /// More headers on every request: (name, value).
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub label: String,
    pub connections: usize,
    pub target_rate: Option<f64>,
    pub seconds: f64,
    pub requests: u64,
    pub requests_per_second: f64,
    /// Work units per second (events per second for batches).
    pub units_per_second: f64,
    pub latency_us: BTreeMap<String, f64>,
    /// Latency of the accepted requests (2xx) alone, and of the refused ones
    /// (429, 503): under overload the two tell different stories.
    pub accepted_latency_us: BTreeMap<String, f64>,
    pub refused_latency_us: BTreeMap<String, f64>,
    /// Replies by status; "io" counts connection errors.
    pub statuses: BTreeMap<String, u64>,
    pub errors: u64,
    /// Requests not sent because their connection was busy (`skip_when_busy`).
    #[serde(default)]
    pub unsent: u64,
}

struct Tally {
    hist: Histogram<u64>,
    /// Refused (429, 503) and other non-2xx replies; allocated on first use
    /// (most runs have none): the accepted are `hist` less both.
    refused: Option<Histogram<u64>>,
    failed: Option<Histogram<u64>>,
    statuses: BTreeMap<String, u64>,
    units: u64,
    unsent: u64,
}

/// Runs the plan with one generator per connection. Every connection is
/// opened before the clock starts: producers keep their connections, and 500
/// connects in the first milliseconds of a run are a burst no steady load has.
pub async fn run<G: Generator>(plan: &Plan, mut make: impl FnMut(usize) -> G) -> Summary {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (connected_tx, mut connected_rx) = tokio::sync::mpsc::channel::<()>(plan.connections.max(1));
    let (start_tx, start_rx) = tokio::sync::watch::channel(None::<Instant>);
    let interval = plan.rate.map(|r| Duration::from_secs_f64(plan.connections as f64 / r));
    let mut tasks = Vec::with_capacity(plan.connections);
    for c in 0..plan.connections {
        let generator = make(c);
        let (connected, start_rx) = (connected_tx.clone(), start_rx.clone());
        // Spread the connections' schedules over one interval.
        let offset = interval.map(|i| i.mul_f64(c as f64 / plan.connections as f64)).unwrap_or_default();
        let pacing = Pacing { interval, offset, skip: plan.skip_when_busy, honour: plan.honour_retry_after };
        let (plan, done) = (plan.clone(), Arc::clone(&done));
        tasks.push(tokio::spawn(connection(plan, generator, pacing, connected, start_rx, done)));
    }
    drop(connected_tx);
    for _ in 0..plan.connections {
        connected_rx.recv().await;
    }
    let start = Instant::now();
    start_tx.send_replace(Some(start));
    let progress =
        tokio::spawn(progress(plan.label.clone(), start, plan.duration, Arc::clone(&done), Arc::clone(&stop)));
    let (mut hist, mut refused, mut failed) = (histogram(), histogram(), histogram());
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    let (mut units, mut unsent) = (0, 0);
    for t in tasks {
        let tally = t.await.expect("connection task");
        hist.add(&tally.hist).expect("same bounds");
        for (sum, part) in [(&mut refused, &tally.refused), (&mut failed, &tally.failed)] {
            if let Some(part) = part {
                sum.add(part).expect("same bounds");
            }
        }
        units += tally.units;
        unsent += tally.unsent;
        for (k, v) in tally.statuses {
            *statuses.entry(k).or_default() += v;
        }
    }
    // Before the progress bar's last tick (up to a second later), which is
    // not part of the run.
    let seconds = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Release);
    let _ = progress.await;
    let requests = hist.len();
    let mut accepted = hist.clone();
    accepted.subtract(&refused).expect("same bounds");
    accepted.subtract(&failed).expect("same bounds");
    let errors = statuses.iter().filter(|(k, _)| !k.starts_with('2')).map(|(_, v)| v).sum();
    Summary {
        label: plan.label.clone(),
        connections: plan.connections,
        target_rate: plan.rate,
        seconds,
        requests,
        requests_per_second: requests as f64 / seconds,
        units_per_second: units as f64 / seconds,
        latency_us: percentiles(&hist),
        accepted_latency_us: percentiles(&accepted),
        refused_latency_us: percentiles(&refused),
        statuses,
        errors,
        unsent,
    }
}

/// How one connection paces its requests.
struct Pacing {
    /// Open loop: the time between its requests.
    interval: Option<Duration>,
    /// Its first request's delay after the start.
    offset: Duration,
    skip: bool,
    honour: bool,
}

/// One connection of a run: connects, waits for the clock, sends until the end.
async fn connection<G: Generator>(
    plan: Plan,
    mut generator: G,
    pacing: Pacing,
    connected: tokio::sync::mpsc::Sender<()>,
    mut start_rx: tokio::sync::watch::Receiver<Option<Instant>>,
    done: Arc<AtomicU64>,
) -> Tally {
    let mut conn = Conn::new(&plan.addr);
    if let Some(token) = &plan.bearer {
        conn = conn.with_bearer(token);
    }
    for (name, value) in &plan.headers {
        conn = conn.with_header(name, value);
    }
    conn.connect().await;
    let _ = connected.send(()).await;
    let start = start_rx.wait_for(Option::is_some).await.ok().and_then(|s| *s).expect("the clock started");
    let end = start + plan.duration;
    let mut tally =
        Tally { hist: histogram(), refused: None, failed: None, statuses: BTreeMap::new(), units: 0, unsent: 0 };
    let mut due = start + pacing.offset;
    let mut last_reply_at = start;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let sent_at = match pacing.interval {
            Some(i) => {
                if pacing.skip && due < now {
                    // The requests that fell due while the connection was busy.
                    let missed = ((now - due).as_secs_f64() / i.as_secs_f64()) as u32;
                    tally.unsent += u64::from(missed);
                    due += i * missed;
                }
                if due >= end {
                    break;
                }
                if due > now {
                    tokio::time::sleep_until(due.into()).await;
                }
                let sent = Instant::now();
                // Held up by the previous reply: count from when it was due.
                let from = if last_reply_at > due && !pacing.skip { due } else { sent };
                due += i;
                from
            }
            None => now,
        };
        let reply = match &generator.next() {
            Op::Get(path) => conn.get(path).await,
            Op::Post(path, body) => conn.post(path, body).await,
            Op::Other(method, path, body) => conn.request(method, path, body.as_deref()).await,
        };
        last_reply_at = Instant::now();
        tally.record((last_reply_at - sent_at).as_nanos().max(1_000) as u64, &reply, generator.weight());
        generator.done(reply.as_ref().ok());
        done.fetch_add(1, Ordering::Relaxed);
        if let (true, Ok(Some(wait))) = (pacing.honour, reply.as_ref().map(|r| r.retry_after)) {
            tokio::time::sleep(Duration::from_secs(wait).min(end.saturating_duration_since(Instant::now()))).await;
        }
    }
    tally
}

impl Tally {
    /// One reply (or I/O error) and its latency, ns.
    fn record(&mut self, latency: u64, reply: &std::io::Result<crate::client::Reply>, weight: u64) {
        let _ = self.hist.record(latency);
        let class = match reply.as_ref().map(|r| r.status) {
            Ok(s) if s < 300 => None,
            Ok(429 | 503) => Some(&mut self.refused),
            _ => Some(&mut self.failed),
        };
        if let Some(h) = class {
            let _ = h.get_or_insert_with(histogram).record(latency);
        }
        let key = match reply {
            Ok(r) => r.status.to_string(),
            Err(_) => "io".to_string(),
        };
        *self.statuses.entry(key).or_default() += 1;
        if matches!(reply, Ok(r) if r.status < 300) {
            self.units += weight;
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("histogram bounds")
}

/// p50 to max in µs; empty for an empty histogram.
fn percentiles(hist: &Histogram<u64>) -> BTreeMap<String, f64> {
    if hist.is_empty() {
        return BTreeMap::new();
    }
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    BTreeMap::from([
        ("p50".to_string(), us(0.5)),
        ("p90".to_string(), us(0.9)),
        ("p99".to_string(), us(0.99)),
        ("p99.9".to_string(), us(0.999)),
        ("max".to_string(), hist.max() as f64 / 1000.0),
    ])
}

/// A progress bar on stderr, once a second.
async fn progress(label: String, start: Instant, total: Duration, done: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    let mut last = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    while !stop.load(Ordering::Acquire) {
        tick.tick().await;
        let elapsed = start.elapsed();
        let frac = (elapsed.as_secs_f64() / total.as_secs_f64()).min(1.0);
        let n = done.load(Ordering::Relaxed);
        let bar: String = (0..30).map(|i| if (i as f64) < frac * 30.0 { '#' } else { '.' }).collect();
        eprint!("\r{label:<14} [{bar}] {:>3.0}%  {n:>9} req  {:>8} req/s ", frac * 100.0, n - last);
        let _ = std::io::stderr().flush();
        last = n;
    }
    eprintln!();
}

/// The table printed after a run.
pub fn print_table(rows: &[Summary]) {
    println!(
        "{:<16} {:>5} {:>10} {:>11} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9}  errors",
        "scenario", "conns", "target/s", "achieved/s", "units/s", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "max µs"
    );
    for s in rows {
        let l = |k: &str| s.latency_us.get(k).copied().unwrap_or(0.0);
        let errors: Vec<String> =
            s.statuses.iter().filter(|(k, _)| !k.starts_with('2')).map(|(k, v)| format!("{k}:{v}")).collect();
        println!(
            "{:<16} {:>5} {:>10} {:>11.0} {:>11.0} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>9.0}  {}",
            s.label,
            s.connections,
            s.target_rate.map_or("max".to_string(), |r| format!("{r:.0}")),
            s.requests_per_second,
            s.units_per_second,
            l("p50"),
            l("p90"),
            l("p99"),
            l("p99.9"),
            l("max"),
            if errors.is_empty() { "0".to_string() } else { errors.join(" ") }
        );
        // With refusals, the accepted and the refused requests on lines of their own.
        if s.refused_latency_us.is_empty() {
            continue;
        }
        for (what, latency) in [("accepted", &s.accepted_latency_us), ("refused", &s.refused_latency_us)] {
            let l = |k: &str| latency.get(k).copied().unwrap_or(0.0);
            println!(
                "  {what:<48} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>9.0}",
                l("p50"),
                l("p90"),
                l("p99"),
                l("p99.9"),
                l("max")
            );
        }
    }
}
