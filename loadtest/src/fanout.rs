//! `fanout`: the feed with many subscribers. A spawned service restricts new
//! users at a given rate (two scam flags each, tripwire off) for a stretch
//! without subscribers, then again with `subscribers` Server-Sent Events
//! consumers of its feed. Reports change-to-delivery latency (the event's
//! arrival to its change read by a subscriber), the service's CPU per
//! delivered change, and the checks' p99 (from a process of their own) with
//! and without the subscribers. The subscribers read on threads of the
//! lowest priority, as if they ran elsewhere.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::Conn;
use crate::overload::Prober;
use crate::scenarios::Population;
use crate::spawn::{free_port, Redis, Service};

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub subscribers: usize,
    pub changes_per_second_offered: f64,
    /// Users restricted while the subscribers listened.
    pub changes: u64,
    pub changes_per_second: f64,
    /// Changes read by the subscribers, in all (every change times each subscriber that got it).
    pub delivered: u64,
    /// Subscribers cut off for falling behind (`disconnect`).
    pub disconnected: u64,
    /// From the event's arrival to its change read by a subscriber, ms.
    pub delivery_ms: BTreeMap<String, f64>,
    /// The service's CPU (user + system) per delivered change, µs: all of
    /// it, and beyond the same load without subscribers.
    pub cpu_us_per_delivered: f64,
    pub extra_cpu_us_per_delivered: f64,
    pub checks_p99_us_without: f64,
    pub checks_p99_us_with: f64,
    pub checks_ratio: f64,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The service's CPU time so far (user + system), µs.
fn cpu_us(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: u64 = fields.get(11..13).map_or(0, |f| f.iter().filter_map(|t| t.parse::<u64>().ok()).sum());
    ticks * 1_000_000 / 100
}

/// Restricts `rate` new users a second for `duration`: batches of 100
/// users (200 events) from four connections.
async fn restrict(addr: &str, prefix: &str, rate: f64, duration: Duration) -> anyhow::Result<u64> {
    let batches_per_s = (rate / 100.0).max(0.1);
    let every = Duration::from_secs_f64(4.0 / batches_per_s);
    let sent = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..4u64 {
        let (addr, prefix, sent) = (addr.to_string(), prefix.to_string(), Arc::clone(&sent));
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(&addr);
            let started = Instant::now();
            let mut tick = tokio::time::interval(every);
            let mut b = 0u64;
            while started.elapsed() < duration {
                tick.tick().await;
                let batch: Vec<serde_json::Value> = (0..100)
                    .flat_map(|i| {
                        let user = format!("{prefix}{c}-{b}-{i}");
                        [0, 1].map(|_| serde_json::json!({"name": "scam_message_flagged", "event_properties": {"user_id": user}}))
                    })
                    .collect();
                let r = conn.post_until_admitted("/v1/events", serde_json::to_string(&batch)?.as_bytes()).await?;
                anyhow::ensure!(r.status == 202, "a batch answered {}", r.status);
                sent.fetch_add(100, Ordering::Relaxed);
                b += 1;
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(sent.load(Ordering::Relaxed))
}

/// What the subscribers saw.
#[derive(Default)]
struct Seen {
    /// Subscribers whose stream began.
    subscribed: AtomicU64,
    delivered: AtomicU64,
    disconnected: AtomicU64,
    latency: Mutex<Option<Histogram<u64>>>,
}

/// One subscriber: reads its stream until `stop`, timing each change.
async fn subscribe(addr: String, seen: Arc<Seen>, mut stop: tokio::sync::watch::Receiver<bool>) -> anyhow::Result<()> {
    let mut s = tokio::net::TcpStream::connect(&addr).await?;
    let req = format!("GET /v1/feed?changes=rule_fired HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000, 3)?;
    let (mut buf, mut pending) = (vec![0u8; 64 * 1024], Vec::new());
    loop {
        let n = tokio::select! {
            n = s.read(&mut buf) => n?,
            _ = stop.wait_for(|s| *s) => break,
        };
        if n == 0 {
            break;
        }
        if pending.is_empty() && find(&buf[..n], b"event: subscribed").is_some() {
            seen.subscribed.fetch_add(1, Ordering::Relaxed);
        }
        pending.extend_from_slice(&buf[..n]);
        let now = now_ms();
        let mut start = 0;
        while let Some(at) = find(&pending[start..], b"\"at_ms\":") {
            let from = start + at + 8;
            let digits = pending[from..].iter().take_while(|b| b.is_ascii_digit()).count();
            if from + digits >= pending.len() {
                break;
            }
            let ms: u64 = std::str::from_utf8(&pending[from..from + digits])?.parse()?;
            hist.saturating_record(now.saturating_sub(ms).max(1));
            seen.delivered.fetch_add(1, Ordering::Relaxed);
            start = from + digits;
        }
        if find(&pending, b"event: disconnect").is_some() {
            seen.disconnected.fetch_add(1, Ordering::Relaxed);
            break;
        }
        pending.drain(..start);
    }
    let mut all = seen.latency.lock().unwrap_or_else(|e| e.into_inner());
    match all.as_mut() {
        Some(h) => h.add(&hist)?,
        None => *all = Some(hist),
    }
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Two threads of the lowest priority, for the subscribers.
fn lowest_priority_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .on_thread_start(|| {
            // SAFETY: setpriority on the calling thread (who 0), no memory involved.
            unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
        })
        .enable_all()
        .build()
}

/// The scenario: a stretch without subscribers, then one with them.
pub async fn fanout(
    bin: &std::path::Path,
    config: &std::path::Path,
    subscribers: usize,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<Report> {
    let redis = Redis::start();
    let checks_addr = format!("127.0.0.1:{}", free_port());
    let env = [
        ("RESTRICTD_TRIPWIRE__THRESHOLD", "1.0"),
        ("RESTRICTD_TRIPWIRE__MIN_RESTRICTED", "1000000000"),
        ("RESTRICTD_HTTP__CHECKS_ADDR", checks_addr.as_str()),
    ];
    let svc = Service::launch(bin, config, &redis.url(), &env);
    svc.wait_ready(Duration::from_secs(60));
    let pid = svc.pid().ok_or_else(|| anyhow::anyhow!("the service has no pid"))?;
    let pop = Population::new(100_000, "fo", false);
    // Without subscribers.
    let probe = Prober::start(&checks_addr, &pop, duration)?;
    let cpu = cpu_us(pid);
    restrict(&svc.addr, "alone", rate, duration).await?;
    let cpu_alone = cpu_us(pid) - cpu;
    let without = probe.finish()?;
    // With them, read on threads of the lowest priority: the consumers of a
    // feed run elsewhere, and here they share two cores with the service and
    // the checks' prober, whose delay would otherwise be theirs.
    let readers = lowest_priority_runtime()?;
    let seen = Arc::new(Seen::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let subs: Vec<_> = (0..subscribers)
        .map(|_| readers.spawn(subscribe(svc.addr.clone(), Arc::clone(&seen), stopped.clone())))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.subscribed.load(Ordering::Relaxed) < subscribers as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let probe = Prober::start(&checks_addr, &pop, duration)?;
    let (cpu, started) = (cpu_us(pid), Instant::now());
    let changes = restrict(&svc.addr, "with", rate, duration).await?;
    // The last changes reach the feed within the changelog delay.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu_with, seconds) = (cpu_us(pid) - cpu, started.elapsed().as_secs_f64());
    let with = probe.finish()?;
    stop.send_replace(true);
    for s in subs {
        let _ = s.await;
    }
    readers.shutdown_background();
    let delivered = seen.delivered.load(Ordering::Relaxed);
    let latency = seen.latency.lock().unwrap_or_else(|e| e.into_inner()).take();
    let q = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64;
    let delivery_ms = latency
        .map(|h| {
            [("p50", q(&h, 0.5)), ("p99", q(&h, 0.99)), ("max", h.max() as f64)].map(|(k, v)| (k.to_string(), v)).into()
        })
        .unwrap_or_default();
    let p99 = |s: &crate::engine::Summary| s.latency_us.get("p99").copied().unwrap_or(0.0);
    let per = |cpu: u64| cpu as f64 / delivered.max(1) as f64;
    Ok(Report {
        subscribers,
        changes_per_second_offered: rate,
        changes,
        changes_per_second: changes as f64 / duration.as_secs_f64(),
        delivered,
        disconnected: seen.disconnected.load(Ordering::Relaxed),
        delivery_ms,
        cpu_us_per_delivered: per(cpu_with),
        extra_cpu_us_per_delivered: per(cpu_with.saturating_sub(cpu_alone * seconds as u64 / duration.as_secs().max(1))),
        checks_p99_us_without: p99(&without),
        checks_p99_us_with: p99(&with),
        checks_ratio: p99(&with) / p99(&without).max(1.0),
    })
}
