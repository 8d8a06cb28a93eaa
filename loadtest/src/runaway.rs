//! A runaway rule: a population, then a rule that restricts every user it
//! sees, driven as fast as the service accepts events (batches, or single
//! events). Reports how many users the rule restricted against the
//! tripwire's bound, and fails above it.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::client::Conn;
use crate::spawn::{poll, Redis, Service};

const SHARDS: u64 = 64;

#[derive(Debug, Serialize)]
pub struct RunawayReport {
    pub instances: usize,
    pub mode: &'static str,
    pub population: u64,
    /// Users the runaway rule restricted (in its window, as the tripwire counts).
    pub restricted: u64,
    /// `max(min_restricted, threshold × population) × 1.1` plus one per shard.
    pub bound: u64,
    /// What the threshold alone allows: `max(min_restricted, threshold × population)`.
    pub allowed_by_threshold: u64,
    pub restricted_over_allowed: f64,
    /// Flag events posted per second while the rule ran away.
    pub events_per_second: f64,
    pub tripped: bool,
}

/// Loads `users` users into `instances` instances (the shards split evenly),
/// then flags each of them once under `when = "scam_flags >= 1"`: in batches
/// of 1,000 from 4 connections, or (`single`) as single events from 64.
pub fn runaway(bin: &Path, config: &Path, users: u64, instances: usize, single: bool) -> anyhow::Result<RunawayReport> {
    let redis = Redis::start();
    let n = instances.max(1);
    let services: Vec<Service> = (0..n)
        .map(|i| {
            let shards = format!("{}-{}", i as u64 * SHARDS / n as u64, (i as u64 + 1) * SHARDS / n as u64 - 1);
            let id = format!("runaway-{i}");
            let env = [
                ("RESTRICTD_RULES__SCAM_MESSAGE_RULE__WHEN", "scam_flags >= 1"),
                ("RESTRICTD_INSTANCE__SHARDS", shards.as_str()),
                ("RESTRICTD_INSTANCE__ID", id.as_str()),
                ("RESTRICTD_ADMISSION__MAX_WRITE_DELAY", "10s"),
            ];
            Service::launch(bin, config, &redis.url(), &env)
        })
        .collect();
    for s in &services {
        s.wait_ready(Duration::from_secs(60));
    }
    let addrs: Vec<String> = services.iter().map(|s| s.addr.clone()).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    eprintln!("runaway: {users} users on {n} instance(s)");
    let purchase = |u: u64| format!(r#"{{"name":"purchase_made","event_properties":{{"user_id":"r{u}","amount":1}}}}"#);
    runtime.block_on(post_batches(&addrs, users, 4, &purchase, "/v1/events?wait=applied"))?;
    let rule = || runtime.block_on(scam_rule(&addrs[0]));
    poll(Duration::from_secs(30), || rule().ok().filter(|r| r["population"] == users).map(|_| ()))
        .ok_or_else(|| anyhow::anyhow!("the population never reached {users}"))?;
    let flag = |u: u64| format!(r#"{{"name":"scam_message_flagged","event_properties":{{"user_id":"r{u}"}}}}"#);
    let started = Instant::now();
    if single {
        runtime.block_on(post_singles(&addrs, users, 64, &flag))?;
    } else {
        runtime.block_on(post_batches(&addrs, users, 4, &flag, "/v1/events"))?;
    }
    let seconds = started.elapsed().as_secs_f64();
    // Every flag decided and counted: restricted or withheld, the rule tripped.
    let settled = poll(Duration::from_secs(60), || {
        let r = rule().ok()?;
        let decided = r["restricted_in_window"].as_u64()? + r["suppressed_total"].as_u64()?;
        (decided >= users && r["state"] == "tripped").then_some(r)
    })
    .ok_or_else(|| anyhow::anyhow!("the runaway rule's flags were never all decided: {:?}", rule().ok()))?;
    let (threshold, min) =
        (settled["threshold"].as_f64().unwrap_or(0.05), settled["min_restricted"].as_u64().unwrap_or(10));
    let allowed = min.max((threshold * users as f64).ceil() as u64);
    let bound = allowed + allowed / 10 + SHARDS;
    let restricted = settled["restricted_in_window"].as_u64().unwrap_or(0);
    let report = RunawayReport {
        instances: n,
        mode: if single { "single events" } else { "batches of 1,000" },
        population: users,
        restricted,
        bound,
        allowed_by_threshold: allowed,
        restricted_over_allowed: restricted as f64 / allowed as f64,
        events_per_second: users as f64 / seconds,
        tripped: settled["state"] == "tripped",
    };
    anyhow::ensure!(report.tripped, "the runaway rule did not trip: {report:?}");
    anyhow::ensure!(restricted <= bound, "restricted {restricted} users, above the bound {bound}: {report:?}");
    Ok(report)
}

/// `scam_message_rule`'s tripwire as `GET /v1/rules` shows it.
async fn scam_rule(addr: &str) -> anyhow::Result<Value> {
    let reply = Conn::new(addr).get("/v1/rules").await?;
    let rules: Value = serde_json::from_slice(&reply.body)?;
    let rule = rules["rules"].as_array().and_then(|r| r.iter().find(|r| r["name"] == "scam_message_rule")).cloned();
    Ok(rule.ok_or_else(|| anyhow::anyhow!("no scam_message_rule"))?["tripwire"].clone())
}

/// Posts `users` events, one per user, in batches of 1,000 over `connections`
/// connections spread over `addrs`.
async fn post_batches(
    addrs: &[String],
    users: u64,
    connections: usize,
    event: &dyn Fn(u64) -> String,
    path: &str,
) -> anyhow::Result<()> {
    let batches: Vec<Vec<u8>> = (0..users.div_ceil(1000))
        .map(|b| {
            let items: Vec<String> = (b * 1000..((b + 1) * 1000).min(users)).map(event).collect();
            format!("[{}]", items.join(",")).into_bytes()
        })
        .collect();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let mine: Vec<Vec<u8>> = batches.iter().skip(c).step_by(connections).cloned().collect();
        let (addr, path) = (addrs[c % addrs.len()].clone(), path.to_string());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(&addr);
            for body in mine {
                let r = conn.post_until_admitted(&path, &body).await?;
                anyhow::ensure!(
                    r.status == 200 || r.status == 202,
                    "batch: {} {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                );
            }
            Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Posts one event per user as single `POST /event`s over `connections` connections.
async fn post_singles(
    addrs: &[String],
    users: u64,
    connections: usize,
    event: &dyn Fn(u64) -> String,
) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    for c in 0..connections as u64 {
        let bodies: Vec<Vec<u8>> = (c..users).step_by(connections).map(|u| event(u).into_bytes()).collect();
        let addr = addrs[c as usize % addrs.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(&addr);
            for body in bodies {
                let r = conn.post_until_admitted("/event", &body).await?;
                anyhow::ensure!(r.status == 200, "event: {}", r.status);
            }
            Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}
