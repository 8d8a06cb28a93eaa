//! Measurements beyond request rates: post-to-visible lag, and recovery time
//! and memory at a million users.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::client::Conn;
use crate::engine::{self, Plan, Summary};
use crate::scenarios::{populate, settle, Events, Model, Population, Rng};
use crate::spawn::{Redis, Service};

#[derive(Debug, Serialize)]
pub struct LagSummary {
    pub event_rate: f64,
    pub probes: u64,
    pub filler: Summary,
    /// From sending the event to the first check that shows its effect, µs.
    pub post_to_visible_us: std::collections::BTreeMap<String, f64>,
}

/// Posts filler events at `rate` and, alongside, probes: a user's second scam
/// flag is posted (no wait) and `/canmessage` is polled until it says false.
pub async fn lag(addr: &str, rate: f64, connections: usize, duration: Duration) -> anyhow::Result<LagSummary> {
    let pop = Population::new(100_000, "lagfill", false);
    let model = Model::new(u64::MAX);
    let plan = Plan {
        addr: addr.to_string(),
        connections,
        rate: Some(rate),
        duration,
        label: "lag filler".into(),
        ..Default::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let probe = {
        let (addr, stop) = (addr.to_string(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut conn = Conn::new(&addr);
            let mut hist = Histogram::<u64>::new_with_bounds(1_000, 60_000_000_000, 3).expect("bounds");
            let mut n = 0u64;
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            while !stop.load(Ordering::Acquire) {
                tick.tick().await;
                n += 1;
                let user = format!("lagprobe{n}");
                let flag = format!(r#"{{"name":"scam_message_flagged","event_properties":{{"user_id":"{user}"}}}}"#);
                conn.post_until_admitted("/event?wait=applied", flag.as_bytes()).await?;
                let sent = Instant::now();
                if conn.post("/event", flag.as_bytes()).await?.status == 429 {
                    // Refused by admission control: no sample (the filler's
                    // row counts refusals).
                    continue;
                }
                let check = format!("/canmessage?user_id={user}");
                loop {
                    let r = conn.get(&check).await?;
                    if r.body.ends_with(b"false}") {
                        break;
                    }
                    anyhow::ensure!(sent.elapsed() < Duration::from_secs(30), "probe {user} never became visible");
                }
                let _ = hist.record(sent.elapsed().as_nanos() as u64);
            }
            Ok::<_, anyhow::Error>(hist)
        })
    };
    let filler = engine::run(&plan, |c| Events {
        pop: pop.clone(),
        rng: Rng::new(c as u64 + 7),
        model: Arc::clone(&model),
        last: Vec::new(),
    })
    .await;
    stop.store(true, Ordering::Release);
    let hist = probe.await??;
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    Ok(LagSummary {
        event_rate: rate,
        probes: hist.len(),
        filler,
        post_to_visible_us: [("p50", us(0.5)), ("p99", us(0.99)), ("max", hist.max() as f64 / 1000.0)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    })
}

#[derive(Debug, Serialize)]
pub struct RecoveryReport {
    pub users: u64,
    pub load_seconds: f64,
    pub rss_before_kib: u64,
    pub rss_loaded_kib: u64,
    pub bytes_per_user: f64,
    /// Once every user is written behind (no snapshot pending) and RSS stopped dropping.
    pub rss_settled_kib: u64,
    pub bytes_per_user_settled: f64,
    pub graceful_stop_seconds: f64,
    pub ready_after_graceful_restart_seconds: f64,
    pub rss_after_restart_kib: u64,
    pub peak_rss_restart_kib: u64,
    pub replayed_events: u64,
    pub ready_after_kill_9_with_replay_seconds: f64,
    pub peak_rss_replay_kib: u64,
    /// Redis's `used_memory` empty and once the users are written behind
    /// (snapshots, streams, changelogs), and the difference per user.
    pub redis_used_memory_before: u64,
    pub redis_used_memory_settled: u64,
    pub redis_bytes_per_user: f64,
    /// The shard streams' part of `redis_used_memory_settled`: the load's
    /// events, kept `persistence.trim_margin` after their snapshot. It grows
    /// with the event rate times the margin, not with the users.
    pub redis_stream_bytes: u64,
    pub redis_stream_entries: u64,
    pub redis_bytes_per_stream_entry: f64,
    /// Redis per user, the streams left out: snapshots, changelogs, history.
    pub redis_bytes_per_user_without_streams: f64,
}

/// RSS once it stopped dropping: freed memory goes back to the system a
/// little after it is freed, so it is read once a second until it stops
/// dropping (10 s at most).
fn settled_rss(svc: &Service) -> u64 {
    let settled = Instant::now();
    let mut rss = svc.memory_kib().0;
    while settled.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_secs(1));
        let now = svc.memory_kib().0;
        let dropped = rss.saturating_sub(now) > 256;
        rss = now;
        if !dropped {
            break;
        }
    }
    rss
}

/// Loads `users` users through the service, restarts it, and measures.
pub fn recovery(bin: &Path, config: &Path, users: u64, replay: u64) -> anyhow::Result<RecoveryReport> {
    let redis = Redis::start();
    let quiet = [("RESTRICTD_TRIPWIRE__THRESHOLD", "1.0"), ("RESTRICTD_TRIPWIRE__MIN_RESTRICTED", "1000000000")];
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;

    let mut svc = Service::launch(bin, config, &redis.url(), &quiet);
    svc.wait_ready(Duration::from_secs(60));
    let (rss_before, _) = svc.memory_kib();
    let redis_before = redis.used_memory();
    let pop = Population::new(users, "rec", false);
    let started = Instant::now();
    eprintln!("recovery: loading {users} users through {}", svc.addr);
    runtime.block_on(populate(&svc.addr, &pop, &Model::new(u64::MAX), 4))?;
    let load_seconds = started.elapsed().as_secs_f64();
    let (rss_loaded, _) = svc.memory_kib();
    runtime.block_on(settle(&svc.addr, Duration::from_secs(120)))?;
    let rss_settled = settled_rss(&svc);
    let redis_settled = redis.used_memory();
    let stream_bytes = redis.memory_usage("*:events");
    let stream_entries = redis.stream_entries("*:events");
    let stopping = Instant::now();
    anyhow::ensure!(svc.terminate() == Some(0), "graceful stop failed:\n{}", svc.log());
    let graceful_stop_seconds = stopping.elapsed().as_secs_f64();

    eprintln!("recovery: restarting after a graceful stop");
    let launched = Instant::now();
    let lazy = [
        quiet[0],
        quiet[1],
        ("RESTRICTD_PERSISTENCE__FLUSH_INTERVAL", "1h"),
        ("RESTRICTD_PERSISTENCE__FLUSH_DIRTY_LIMIT", "100000000"),
        ("RESTRICTD_PERSISTENCE__CHANGELOG_DELAY", "1h"),
    ];
    let mut svc = Service::launch(bin, config, &redis.url(), &lazy);
    svc.wait_ready(Duration::from_secs(600));
    let ready_graceful = launched.elapsed().as_secs_f64();
    let (rss_restart, peak_restart) = svc.memory_kib();

    eprintln!("recovery: posting {replay} events that will not be snapshotted, then kill -9");
    let replay_pop = Population::new(replay, "rec", false);
    runtime.block_on(populate(&svc.addr, &replay_pop, &Model::new(u64::MAX), 4))?;
    let replayed: u64 = replay + replay.div_ceil(100) * 2;
    svc.kill();
    let launched = Instant::now();
    let svc = Service::launch(bin, config, &redis.url(), &quiet);
    svc.wait_ready(Duration::from_secs(600));
    let ready_replay = launched.elapsed().as_secs_f64();
    let (_, peak_replay) = svc.memory_kib();
    Ok(RecoveryReport {
        users,
        load_seconds,
        rss_before_kib: rss_before,
        rss_loaded_kib: rss_loaded,
        bytes_per_user: (rss_loaded.saturating_sub(rss_before) * 1024) as f64 / users as f64,
        rss_settled_kib: rss_settled,
        bytes_per_user_settled: (rss_settled.saturating_sub(rss_before) * 1024) as f64 / users as f64,
        graceful_stop_seconds,
        ready_after_graceful_restart_seconds: ready_graceful,
        rss_after_restart_kib: rss_restart,
        peak_rss_restart_kib: peak_restart,
        replayed_events: replayed,
        ready_after_kill_9_with_replay_seconds: ready_replay,
        peak_rss_replay_kib: peak_replay,
        redis_used_memory_before: redis_before,
        redis_used_memory_settled: redis_settled,
        redis_bytes_per_user: redis_settled.saturating_sub(redis_before) as f64 / users as f64,
        redis_stream_bytes: stream_bytes,
        redis_stream_entries: stream_entries,
        redis_bytes_per_stream_entry: stream_bytes as f64 / stream_entries.max(1) as f64,
        redis_bytes_per_user_without_streams: redis_settled.saturating_sub(redis_before + stream_bytes) as f64
            / users as f64,
    })
}

#[derive(Debug, Serialize)]
pub struct FollowerMemoryReport {
    pub restricted_users: u64,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    /// RSS growth of the instance that owns shard 0 only, per restricted user it sees.
    pub bytes_per_restricted_user: f64,
}

/// Memory a non-owner spends per restricted user: an owner of shards 1-63 and
/// a follower owning shard 0 on one Redis; `restricted` users are flagged
/// twice (restricted) through the owner; the follower's RSS is read before and
/// once its `restrictd_restricted_users` gauge shows them all. The 1/64 of
/// users on shard 0 are owned (full state) by the follower.
pub fn follower_memory(bin: &Path, config: &Path, restricted: u64) -> anyhow::Result<FollowerMemoryReport> {
    let redis = Redis::start();
    let quiet = [("RESTRICTD_TRIPWIRE__THRESHOLD", "1.0"), ("RESTRICTD_TRIPWIRE__MIN_RESTRICTED", "1000000000")];
    let instance = |shards: &str, id: &str| {
        let env = [quiet[0], quiet[1], ("RESTRICTD_INSTANCE__SHARDS", shards), ("RESTRICTD_INSTANCE__ID", id)];
        let svc = Service::launch(bin, config, &redis.url(), &env);
        svc.wait_ready(Duration::from_secs(60));
        svc
    };
    let owner = instance("1-63", "owner");
    let follower = instance("0", "follower");
    let (rss_before, _) = follower.memory_kib();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    eprintln!("follower-memory: restricting {restricted} users through the owner");
    runtime.block_on(async {
        let mut conn = Conn::new(&owner.addr);
        for start in (0..restricted).step_by(500) {
            let batch: Vec<serde_json::Value> = (start..(start + 500).min(restricted))
                .flat_map(|i| {
                    let e = serde_json::json!({"name": "scam_message_flagged",
                        "event_properties": {"user_id": format!("restricted-{i:08}")}});
                    [e.clone(), e]
                })
                .collect();
            let r = conn.post_until_admitted("/v1/events", serde_json::to_vec(&batch)?.as_slice()).await?;
            anyhow::ensure!(r.status == 202, "batch refused: {}", r.status);
        }
        let mut metrics = Conn::new(&follower.addr);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let body = metrics.get("/metrics").await?.body;
            let seen = crate::metric_value(
                &String::from_utf8_lossy(&body),
                "restrictd_restricted_users{feature=\"can_message\"}",
            )
            .unwrap_or(0.0);
            if seen >= restricted as f64 {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "the follower saw {seen} of {restricted} restricted users");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })?;
    let (rss_after, _) = follower.memory_kib();
    Ok(FollowerMemoryReport {
        restricted_users: restricted,
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        bytes_per_restricted_user: (rss_after.saturating_sub(rss_before) * 1024) as f64 / restricted as f64,
    })
}
