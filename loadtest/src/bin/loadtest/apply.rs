//! How fast a backlog is applied: replayed from the streams after a kill.

use std::time::{Duration, Instant};

use loadtest::engine::Plan;
use loadtest::scenarios::{Batches, Model, Population};
use loadtest::spawn::{get_body, Redis, RedisCluster, Service};
use restrictd_actors::store::{Keys, DEFAULT_PREFIX};
use serde_json::json;

use crate::cli::Common;
use crate::run::events_gen;
use crate::target::QUIET_TRIPWIRE;

/// Shards of the services `apply` starts.
pub(crate) const SHARDS: u32 = 64;

/// Events applied per second: post a backlog to a service that does not
/// snapshot, kill it, restart it and time the replay until ready.
pub(crate) fn apply_rate(
    runtime: &tokio::runtime::Runtime,
    bin: &std::path::Path,
    c: &Common,
    events: u64,
    instances: usize,
    cluster: bool,
) -> anyhow::Result<serde_json::Value> {
    let (_redis, _cluster, url, nodes) = if cluster {
        let cluster = RedisCluster::start(3);
        let (url, nodes) = (cluster.url(), cluster.nodes_toml());
        (None, Some(cluster), url, nodes)
    } else {
        let redis = Redis::start();
        let url = redis.url();
        (Some(redis), None, url, String::new())
    };
    let mut base = QUIET_TRIPWIRE.to_vec();
    // The leases are cleared below by their names: the shard count and prefix they were made with.
    let shards = SHARDS.to_string();
    base.extend([("RESTRICTD_SHARDS__COUNT", shards.as_str()), ("RESTRICTD_REDIS__KEY_PREFIX", DEFAULT_PREFIX)]);
    if cluster {
        base.push(("RESTRICTD_REDIS__NODES", nodes.as_str()));
    }
    let mut lazy = base.clone();
    lazy.extend([
        ("RESTRICTD_PERSISTENCE__FLUSH_INTERVAL", "1h"),
        ("RESTRICTD_PERSISTENCE__FLUSH_DIRTY_LIMIT", "100000000"),
        ("RESTRICTD_PERSISTENCE__CHANGELOG_DELAY", "1h"),
    ]);
    let mut svc = Service::launch(bin, &c.config, &url, &lazy);
    svc.wait_ready(Duration::from_secs(60));
    let pop = Population::new(c.users, "ap", false);
    let model = Model::new(u64::MAX);
    eprintln!("apply: posting {events} events");
    let p = Plan {
        addr: svc.addr.clone(),
        connections: 4,
        rate: None,
        duration: Duration::from_secs(3600),
        label: "backlog".into(),
        ..Default::default()
    };
    let posted = post_backlog(runtime, &p, &pop, &model, events)?;
    // Nothing was snapshotted (flush interval 1 h): the restart replays the whole backlog.
    svc.kill();
    clear_leases(_redis.as_ref(), _cluster.as_ref());
    let specs = split_shards(instances);
    let launched = Instant::now();
    let services: Vec<Service> = specs
        .iter()
        .map(|(shards, id)| {
            let mut env = base.clone();
            env.extend([("RESTRICTD_INSTANCE__SHARDS", shards.as_str()), ("RESTRICTD_INSTANCE__ID", id.as_str())]);
            Service::launch(bin, &c.config, &url, &env)
        })
        .collect();
    for s in &services {
        s.wait_ready(Duration::from_secs(600));
    }
    let seconds = launched.elapsed().as_secs_f64();
    // The first instance's snapshot writes while replaying (each fenced by its lease).
    let exposition = services.first().and_then(|s| get_body(&s.addr, "/metrics")).unwrap_or_default();
    let flush = |q| loadtest::histogram_quantile(&exposition, "restrictd_flush_seconds", q).map(|s| s * 1000.0);
    Ok(json!({
        "instances": services.len(),
        "flush_ms_p50_bucket": flush(0.5),
        "flush_ms_p99_bucket": flush(0.99),
        "redis": if cluster { "cluster of 3 masters" } else { "one redis-server" },
        "events_replayed": posted,
        "seconds_to_ready": seconds,
        "events_applied_per_second": posted as f64 / seconds,
        "note": "includes process start, XREAD, JSON parsing, validation and rule evaluation",
    }))
}

/// Posts `events` in batches of 1,000 from the plan's connections; how many were accepted.
fn post_backlog(
    runtime: &tokio::runtime::Runtime,
    p: &Plan,
    pop: &Population,
    model: &std::sync::Arc<Model>,
    events: u64,
) -> anyhow::Result<u64> {
    runtime.block_on(async {
        let per_request = 1000u64;
        let requests = events.div_ceil(per_request);
        let mut conns: Vec<_> = (0..p.connections).map(|_| loadtest::client::Conn::new(&p.addr)).collect();
        let mut gens: Vec<_> = (0..p.connections)
            .map(|i| Batches { events: events_gen(pop, model, i as u64), size: per_request as usize })
            .collect();
        let mut tasks = Vec::new();
        for (i, (mut conn, mut g)) in conns.drain(..).zip(gens.drain(..)).enumerate() {
            let share = requests / p.connections as u64 + u64::from((i as u64) < requests % p.connections as u64);
            tasks.push(tokio::spawn(async move {
                for _ in 0..share {
                    let loadtest::engine::Op::Post(path, body) = loadtest::engine::Generator::next(&mut g) else {
                        unreachable!()
                    };
                    let r = conn.post_until_admitted(&path, &body).await?;
                    anyhow::ensure!(r.status == 202, "backlog post: {}", r.status);
                }
                Ok::<u64, anyhow::Error>(share * per_request)
            }));
        }
        let mut n = 0;
        for t in tasks {
            n += t.await??;
        }
        Ok::<u64, anyhow::Error>(n)
    })
}

/// Deletes the leases a killed owner left, as an operator does once sure the
/// process is dead (they would hold the shards for their TTL).
fn clear_leases(redis: Option<&Redis>, cluster: Option<&RedisCluster>) {
    let keys = Keys::new(DEFAULT_PREFIX, SHARDS);
    for s in 0..SHARDS {
        let key = keys.lease(s);
        match (redis, cluster) {
            (Some(r), _) => r.cli(&["DEL", key]),
            (_, Some(cl)) => cl.cli(&["DEL", key]),
            _ => String::new(),
        };
    }
}

/// (shards, instance id) of each instance: the shards split evenly, 0-31 and 32-63 for two.
fn split_shards(instances: usize) -> Vec<(String, String)> {
    let (count, n) = (SHARDS as usize, instances.max(1));
    (0..n)
        .map(|i| {
            let (from, to) = (i * count / n, (i + 1) * count / n - 1);
            (format!("{from}-{to}"), format!("bench-{i}"))
        })
        .collect()
}
