//! Rule-set switches at scale: publish-to-applied latency on a loaded
//! deployment, and what checks see while versions switch.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use crate::client::Conn;
use crate::engine::{self, Plan, Summary};
use crate::scenarios::{populate, settle, Checks, Model, Population, Rng};
use crate::spawn::{Redis, Service};

const TOKEN: &str = "loadtest-switch-token-0123456789";

#[derive(Debug, Serialize)]
pub struct SwitchReport {
    pub users: u64,
    pub rules: usize,
    pub change: Change,
    /// `PUT /v1/rules?wait=applied`: from sending to every shard running the version, ms.
    pub publish_to_applied_ms: Vec<f64>,
    pub publish_to_applied_p99_ms: f64,
    pub checks_without_publishes: Summary,
    pub checks_with_publishes: Summary,
    pub rss_after_kib: u64,
}

/// What each publish changes.
#[derive(Debug, Clone, Copy, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// `scam_message_rule`'s threshold, 2 ↔ 3: users are stored as before.
    Threshold,
    /// The threshold and a new aggregate: every user is moved and written again.
    Aggregate,
}

/// Loads `users` users, then runs checks at `rate` for `duration` twice:
/// without publishes, and with `publishes` publishes spread over the run.
pub fn switch(
    bin: &Path,
    config: &Path,
    users: u64,
    (publishes, change): (usize, Change),
    rate: f64,
    duration: Duration,
) -> anyhow::Result<SwitchReport> {
    let redis = Redis::start();
    let env = [
        ("RESTRICTD_TRIPWIRE__THRESHOLD", "1.0"),
        ("RESTRICTD_TRIPWIRE__MIN_RESTRICTED", "1000000000"),
        ("RESTRICTD_AUTH__ADMIN_TOKENS__LOADTEST", TOKEN),
    ];
    let mut svc = Service::launch(bin, config, &redis.url(), &env);
    svc.wait_ready(Duration::from_secs(60));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let pop = Population::new(users, "sw", false);
    eprintln!("switch: loading {users} users through {}", svc.addr);
    runtime.block_on(populate(&svc.addr, &pop, &Model::new(u64::MAX), 4))?;
    runtime.block_on(settle(&svc.addr, Duration::from_secs(120)))?;
    let report = runtime.block_on(async {
        let version = Conn::new(&svc.addr).get("/v1/rules/versions/1").await?;
        anyhow::ensure!(version.status == 200, "GET /v1/rules/versions/1: {}", version.status);
        let content: Value = serde_json::from_slice::<Value>(&version.body)?["content"].clone();
        let rules = content["rules"].as_object().map_or(0, |r| r.len());
        let plan = |label: &str| Plan {
            addr: svc.addr.clone(),
            connections: 50,
            rate: Some(rate),
            duration,
            label: label.into(),
            ..Default::default()
        };
        let checks = |i: usize| Checks { pop: pop.clone(), rng: Rng::new(i as u64) };
        let without = engine::run(&plan("checks, no publish"), checks).await;
        let publisher = tokio::spawn(publish_during(svc.addr.clone(), content, (publishes, change), duration));
        let with = engine::run(&plan("checks, publishes"), checks).await;
        let mut ms = publisher.await??;
        ms.sort_by(f64::total_cmp);
        let p99 = ms[((ms.len() as f64 * 0.99).ceil() as usize).clamp(1, ms.len()) - 1];
        Ok::<_, anyhow::Error>((rules, ms, p99, without, with))
    })?;
    let (rules, publish_to_applied_ms, publish_to_applied_p99_ms, without, with) = report;
    let rss_after_kib = svc.memory_kib().0;
    svc.terminate();
    Ok(SwitchReport {
        users,
        rules,
        change,
        publish_to_applied_ms,
        publish_to_applied_p99_ms,
        checks_without_publishes: without,
        checks_with_publishes: with,
        rss_after_kib,
    })
}

/// Publishes `n` versions spread over `over`; the time each took to apply, ms.
async fn publish_during(
    addr: String,
    mut content: Value,
    (n, change): (usize, Change),
    over: Duration,
) -> anyhow::Result<Vec<f64>> {
    let mut conn = Conn::new(&addr).with_bearer(TOKEN);
    let gap = over / (n as u32 + 1);
    let mut took = Vec::with_capacity(n);
    let started = Instant::now();
    for k in 0..n {
        tokio::time::sleep_until((started + gap * (k as u32 + 1)).into()).await;
        content["rules"]["scam_message_rule"]["when"] = json!(format!("scam_flags >= {}", 3 - k % 2));
        if let Change::Aggregate = change {
            content["aggregates"][format!("purchases_{k}")] = json!({"kind": "count", "event": "purchase_made"});
        }
        let sent = Instant::now();
        let r = conn.put("/v1/rules?wait=applied", content.to_string().as_bytes()).await?;
        anyhow::ensure!(r.status == 200, "publish {k}: {} {}", r.status, String::from_utf8_lossy(&r.body));
        took.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(took)
}
