//! Many producers and overload, against the service's own capacity measured
//! in the same run: what admission control does with more work than the
//! service can do.
//!
//! `overload`: the closed-loop capacity of single `POST /event` from 100
//! producers, then 1x, 2x and 4x that rate offered open-loop from 1,000
//! connections, with checks at 1,000/s alongside and `/ready` polled. A
//! connection has one request in flight (HTTP/1.1 without pipelining): a
//! request due while its connection waits is not sent (`unsent`), so what
//! reaches the service is bounded by how long it holds each request.
//!
//! `producers`: 10, 100 and 1,000 closed-loop producers that honour
//! `Retry-After`, and 1,000 that do not.
//!
//! The correctness check runs after the rows in both; then the trivial
//! handler answers from 100 and from 1,000 connections, for what ten times
//! the connections cost the platform itself ([`Trivial`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::client::Conn;
use crate::engine::{self, Plan, Summary};
use crate::scenarios::{Checks, Events, Model, Population, Rng};

/// Reasons a write can be refused for (`restrictd_admission_refused_total`).
const REASONS: [&str; 2] = ["queue_delay", "in_flight"];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub label: String,
    pub producers: usize,
    /// Open loop: events per second offered.
    pub offered_per_second: Option<f64>,
    pub accepted_per_second: f64,
    pub refused_per_second: f64,
    /// Accepted events per second over the capacity (overload) or over the
    /// 100-producer row (producers).
    pub goodput_ratio: f64,
    /// Refusals by reason, as the service counted them during the row.
    pub refused_by_reason: BTreeMap<String, f64>,
    /// Checks at 1,000/s alongside (overload).
    pub checks: Option<Summary>,
    /// `/ready` polls during the row that were not 200.
    pub not_ready: u64,
    pub events: Summary,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Closed-loop accepted events per second from 100 producers.
    pub capacity: f64,
    /// Checks at 1,000/s on the idle service.
    pub unloaded_checks: Option<Summary>,
    pub rows: Vec<Row>,
    /// Sampled users whose features matched the model of acknowledged events.
    pub verified_users: usize,
    /// The trivial handler from 100 and from 1,000 connections, in the same run.
    pub trivial: Trivial,
}

/// The trivial handler (`serve-ceiling`, a process of its own on the servers'
/// CPUs) answering from 100 and from 1,000 connections, closed loop: what the
/// kernel and actix-web themselves lose to ten times the connections on the
/// same cores, beside the service's rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trivial {
    pub per_second_100: f64,
    pub per_second_1000: f64,
    /// 1,000 connections over 100.
    pub ratio: f64,
}

/// Measures [`Trivial`]: `duration` from each connection count. From a
/// library caller that is not the `loadtest` binary (the test suite), the
/// handler runs on a thread of the caller.
async fn trivial(pop: &Population, duration: Duration) -> anyhow::Result<Trivial> {
    let workers = crate::cpus::server_count()?;
    let (addr, _server) = crate::ceiling::start(workers, !crate::is_loadtest_binary())?;
    let mut rate = [0.0; 2];
    for (r, connections) in rate.iter_mut().zip([100, 1000]) {
        let p = plan(&addr, &format!("trivial {connections}"), connections, duration);
        *r = engine::run(&p, |i| Checks { pop: pop.clone(), rng: Rng::new(31 + i as u64) }).await.units_per_second;
    }
    let [per_second_100, per_second_1000] = rate;
    Ok(Trivial { per_second_100, per_second_1000, ratio: per_second_1000 / per_second_100 })
}

fn events(pop: &Population, model: &Arc<Model>, seed: u64) -> Events {
    Events { pop: pop.clone(), rng: Rng::new(seed), model: Arc::clone(model), last: Vec::new() }
}

fn plan(addr: &str, label: &str, connections: usize, duration: Duration) -> Plan {
    Plan { addr: addr.to_string(), connections, duration, label: label.to_string(), ..Default::default() }
}

/// The service's count of refused writes, by reason.
async fn refusals(addr: &str) -> anyhow::Result<BTreeMap<String, f64>> {
    let metrics = Conn::new(addr).get("/metrics").await?;
    let text = String::from_utf8_lossy(&metrics.body);
    Ok(REASONS
        .iter()
        .map(|r| {
            let series = format!("restrictd_admission_refused_total{{kind=\"writes\",reason=\"{r}\"}}");
            (r.to_string(), crate::metric_value(&text, &series).unwrap_or(0.0))
        })
        .collect())
}

/// Polls `/ready` every 100 ms until stopped; the polls that were not 200.
fn watch_ready(addr: &str) -> (Arc<AtomicBool>, tokio::task::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let (flag, addr) = (Arc::clone(&stop), addr.to_string());
    let task = tokio::spawn(async move {
        let (mut conn, failures) = (Conn::new(&addr), AtomicU64::new(0));
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        while !flag.load(Ordering::Acquire) {
            tick.tick().await;
            if !matches!(conn.get("/ready").await, Ok(r) if r.status == 200) {
                failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        failures.into_inner()
    });
    (stop, task)
}

/// Runs `p` (events, seeds from `seed`) with checks at 1,000/s alongside when
/// `checks` is set; the row, its ratio to `base` left at 0.
async fn row(p: Plan, pop: &Population, model: &Arc<Model>, seed: u64, checks: Option<&str>) -> anyhow::Result<Row> {
    let addr = p.addr.clone();
    let before = refusals(&addr).await?;
    let (stop, ready) = watch_ready(&addr);
    let alongside = checks.map(|checks_addr| Prober::start(checks_addr, pop, p.duration)).transpose()?;
    let events = engine::run(&p, |i| events(pop, model, seed + i as u64)).await;
    let checks = match alongside {
        Some(prober) => Some(prober.finish()?),
        None => None,
    };
    stop.store(true, Ordering::Release);
    let not_ready = ready.await?;
    let after = refusals(&addr).await?;
    let refused_by_reason = after.iter().map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0))).collect();
    let refused = ["429", "503"].iter().filter_map(|s| events.statuses.get(*s)).sum::<u64>();
    Ok(Row {
        label: p.label.clone(),
        producers: p.connections,
        offered_per_second: p.rate,
        accepted_per_second: events.units_per_second,
        refused_per_second: refused as f64 / events.seconds,
        goodput_ratio: 0.0,
        refused_by_reason,
        checks,
        not_ready,
        events,
    })
}

/// Checks at 1,000/s from one connection (`loadtest probe`, run by the
/// overload scenario as a process of its own).
pub async fn probe(addr: &str, prefix: &str, users: u64, duration: Duration, rate: Option<f64>) -> Summary {
    let pop = Population::new(users, prefix, false);
    let p = Plan { rate: Some(rate.unwrap_or(1_000.0)), ..plan(addr, "checks", 1, duration) };
    engine::run(&p, |i| Checks { pop: pop.clone(), rng: Rng::new(77 + i as u64) }).await
}

/// Checks measured from a process of their own, as a client service would
/// send them: a flood from this process starves its own threads, which would
/// then report the generator's delay as the service's. From a library caller
/// that is not the `loadtest` binary (the test suite), a thread of its own.
pub(crate) enum Prober {
    Process(std::process::Child),
    Thread(std::thread::JoinHandle<Summary>),
}

impl Prober {
    pub(crate) fn start(addr: &str, pop: &Population, duration: Duration) -> anyhow::Result<Prober> {
        if crate::is_loadtest_binary() {
            let child = std::process::Command::new(std::env::current_exe()?)
                .args(["probe", addr, "--prefix", &pop.prefix, "--users", &pop.users.to_string()])
                .args(["--duration", &format!("{}ms", duration.as_millis())])
                .stdout(std::process::Stdio::piped())
                .spawn()?;
            return Ok(Prober::Process(child));
        }
        let (addr, prefix, users) = (addr.to_string(), pop.prefix.to_string(), pop.users);
        Ok(Prober::Thread(std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            rt.block_on(probe(&addr, &prefix, users, duration, None))
        })))
    }

    pub(crate) fn finish(self) -> anyhow::Result<Summary> {
        match self {
            Prober::Process(child) => {
                let out = child.wait_with_output()?;
                anyhow::ensure!(out.status.success(), "the checks' prober failed: {}", out.status);
                Ok(serde_json::from_slice(&out.stdout)?)
            }
            Prober::Thread(t) => t.join().map_err(|_| anyhow::anyhow!("the checks' thread panicked")),
        }
    }
}

async fn verify(addr: &str, pop: &Population, model: &Model) -> anyhow::Result<usize> {
    let mismatches = model.verify(addr, pop, Duration::from_secs(60)).await;
    eprintln!("correctness: {} sampled users checked, {} mismatches", model.sample_size(), mismatches.len());
    anyhow::ensure!(mismatches.is_empty(), "correctness check failed:\n{}", mismatches.join("\n"));
    Ok(model.sample_size())
}

/// The multiples of capacity offered, in order, unless told otherwise.
pub const OFFERED: [f64; 3] = [1.0, 2.0, 4.0];

/// The `overload` scenario; `connections` producers in the open-loop rows
/// (1,000), one row per multiple of capacity in `offered` ([`OFFERED`]).
/// `addrs`: where events go, and where checks go (the checks listener).
pub async fn overload(
    addrs: (&str, &str),
    users: u64,
    duration: Duration,
    connections: usize,
    offered: &[f64],
) -> anyhow::Result<Report> {
    let (addr, checks_addr) = addrs;
    let (pop, model) = (Population::new(users, "ov", false), Model::new(97));
    let capacity = row(plan(addr, "capacity", 100, duration), &pop, &model, 1, None).await?.accepted_per_second;
    eprintln!("overload: capacity {capacity:.0} events/s (closed loop, 100 producers)");
    let unloaded = Prober::start(checks_addr, &pop, duration.min(Duration::from_secs(5)))?.finish()?;
    let mut rows = Vec::new();
    for &times in offered {
        let p = Plan {
            rate: Some(times * capacity),
            skip_when_busy: true,
            ..plan(addr, &format!("offered {times}x"), connections, duration)
        };
        let mut r = row(p, &pop, &model, 1000 * times as u64, Some(checks_addr)).await?;
        r.goodput_ratio = r.accepted_per_second / capacity;
        rows.push(r);
    }
    let verified_users = verify(addr, &pop, &model).await?;
    let trivial = trivial(&pop, duration).await?;
    Ok(Report { capacity, unloaded_checks: Some(unloaded), rows, verified_users, trivial })
}

/// The `producers` scenario.
pub async fn producers(addr: &str, users: u64, duration: Duration) -> anyhow::Result<Report> {
    let (pop, model) = (Population::new(users, "pr", false), Model::new(97));
    let mut rows = Vec::new();
    for (n, honour) in [(10, true), (100, true), (1000, true), (1000, false)] {
        let label = format!("{n} {}", if honour { "honouring" } else { "not honouring" });
        let p = Plan { honour_retry_after: honour, ..plan(addr, &label, n, duration) };
        rows.push(row(p, &pop, &model, 10_000 * n as u64 + u64::from(honour), None).await?);
    }
    let base = rows[1].accepted_per_second;
    for r in &mut rows {
        r.goodput_ratio = r.accepted_per_second / base;
    }
    let verified_users = verify(addr, &pop, &model).await?;
    let trivial = trivial(&pop, duration).await?;
    Ok(Report { capacity: base, unloaded_checks: None, rows, verified_users, trivial })
}

/// The ingest token of the flooding producer in `fairness`.
pub const FLOOD_TOKEN: &str = "loadtest-flood-token-0";

/// The ingest token of fair producer `i` in `fairness`.
pub fn fair_token(i: usize) -> String {
    format!("loadtest-fair-token-{i}")
}

/// The `RESTRICTD_AUTH__INGEST_TOKENS__*` a service needs for `fairness`.
pub fn fairness_env() -> Vec<(String, String)> {
    let mut env = vec![("RESTRICTD_AUTH__INGEST_TOKENS__FLOOD".to_string(), FLOOD_TOKEN.to_string())];
    env.extend((0..FAIR_PRODUCERS).map(|i| (format!("RESTRICTD_AUTH__INGEST_TOKENS__FAIR{i}"), fair_token(i))));
    env
}

const FAIR_PRODUCERS: usize = 10;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FairnessReport {
    /// One producer (one ingest token) from many connections, closed loop,
    /// ignoring `Retry-After`.
    pub flood: Summary,
    /// Ten producers at 100 events/s each, one connection each.
    pub fair: Vec<Summary>,
    /// The share of the ten's events accepted.
    pub fair_accepted_share: f64,
    pub verified_users: usize,
}

/// The `fairness` scenario: one producer floods from `connections`
/// connections (closed loop, ignoring `Retry-After`) beside ten producers
/// at 100 events/s each; each producer has its own ingest token
/// ([`fairness_env`]), so the service can tell them apart.
pub async fn fairness(
    addr: &str,
    users: u64,
    duration: Duration,
    connections: usize,
) -> anyhow::Result<FairnessReport> {
    let (pop, model) = (Population::new(users, "fa", false), Model::new(97));
    let flood = Plan { bearer: Some(FLOOD_TOKEN.into()), ..plan(addr, "flood", connections, duration) };
    let fair: Vec<Plan> = (0..FAIR_PRODUCERS)
        .map(|i| Plan {
            bearer: Some(fair_token(i)),
            rate: Some(100.0),
            ..plan(addr, &format!("fair {i}"), 1, duration)
        })
        .collect();
    let (pop2, model2) = (pop.clone(), Arc::clone(&model));
    let flood = tokio::spawn(async move { engine::run(&flood, |i| events(&pop2, &model2, 500 + i as u64)).await });
    let fair: Vec<_> = fair
        .into_iter()
        .enumerate()
        .map(|(n, p)| {
            let (pop, model) = (pop.clone(), Arc::clone(&model));
            tokio::spawn(
                async move { engine::run(&p, |i| events(&pop, &model, 50_000 * (n as u64 + 1) + i as u64)).await },
            )
        })
        .collect();
    let mut summaries = Vec::new();
    for f in fair {
        summaries.push(f.await?);
    }
    let fair = summaries;
    let flood = flood.await?;
    let (sent, accepted) = fair.iter().fold((0, 0), |(s, a), f| {
        let ok: u64 = f.statuses.iter().filter(|(k, _)| k.starts_with('2')).map(|(_, v)| v).sum();
        (s + f.requests, a + ok)
    });
    let verified_users = verify(addr, &pop, &model).await?;
    Ok(FairnessReport { flood, fair, fair_accepted_share: accepted as f64 / sent.max(1) as f64, verified_users })
}

/// The report as a table on stdout.
pub fn print(report: &Report) {
    let us = |s: &BTreeMap<String, f64>, k: &str| s.get(k).map_or("-".to_string(), |v| format!("{v:.0}"));
    println!(
        "{:<20} {:>5} {:>9} {:>9} {:>8} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>6}  refusals by reason",
        "row",
        "conns",
        "offered",
        "accepted",
        "refused",
        "ratio",
        "acc p50",
        "acc p99",
        "ref p50",
        "ref p99",
        "chk p99",
        "!ready"
    );
    for r in &report.rows {
        let e = &r.events;
        let reasons: Vec<String> =
            r.refused_by_reason.iter().filter(|(_, v)| **v > 0.0).map(|(k, v)| format!("{k}:{v:.0}")).collect();
        println!(
            "{:<20} {:>5} {:>9} {:>9.0} {:>8.0} {:>6.2} {:>9} {:>9} {:>9} {:>9} {:>9} {:>6}  {}",
            r.label,
            r.producers,
            r.offered_per_second.map_or("closed".into(), |o| format!("{o:.0}")),
            r.accepted_per_second,
            r.refused_per_second,
            r.goodput_ratio,
            us(&e.accepted_latency_us, "p50"),
            us(&e.accepted_latency_us, "p99"),
            us(&e.refused_latency_us, "p50"),
            us(&e.refused_latency_us, "p99"),
            r.checks.as_ref().map_or("-".into(), |c| us(&c.latency_us, "p99")),
            r.not_ready,
            reasons.join(" "),
        );
    }
    if let Some(u) = &report.unloaded_checks {
        println!("checks at 1,000/s on the idle service: p99 {} µs", us(&u.latency_us, "p99"));
    }
    println!(
        "latencies in µs; ratio: accepted over {}",
        if report.unloaded_checks.is_some() { "capacity" } else { "the 100-producer row" }
    );
    let t = &report.trivial;
    println!(
        "the trivial handler on the same CPUs: {:.0}/s from 1,000 connections, {:.0}/s from 100: ratio {:.2}",
        t.per_second_1000, t.per_second_100, t.ratio
    );
}
