//! `soak`: days of running, compressed. A spawned service is loaded at half
//! its capacity (measured first, in the same run) with the mixed workload
//! (one event to two checks; see [`request`]) while its population grows to `users` over the
//! first third of the run and then stays; halfway it is stopped gracefully
//! and started again. Every interval it samples RSS, Redis's `used_memory`,
//! the streams' lengths, check p99 and post-to-visible p99 into a CSV and a
//! PNG ([`plot`]), and fails if RSS per user or the streams grow once
//! the population is steady, or a p99 drifts by more than 2x between the
//! first and the last stretch of the run.

mod plot;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::client::Conn;
use crate::engine::{self, Plan};
use crate::scenarios::{Checks, Effect, Events, Mixed, Model, Population, Rng};
use crate::spawn::{free_port, Redis, Service};

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub t_s: f64,
    pub users: u64,
    pub rss_bytes: u64,
    pub rss_per_user: f64,
    pub redis_used_memory: u64,
    pub redis_per_user: f64,
    /// Entries of the shard streams (trimmed behind the snapshots).
    pub stream_entries: u64,
    /// Entries of the changelogs (capped at 100,000 a shard, approximately).
    pub changelog_entries: u64,
    pub check_p99_us: f64,
    pub visible_p99_us: f64,
    pub events_per_s: f64,
    pub checks_per_s: f64,
    pub failed_per_s: f64,
}

#[derive(Debug, Serialize)]
pub struct Verdict {
    pub what: String,
    pub first: f64,
    pub last: f64,
    pub ok: bool,
}

#[derive(Debug, Serialize)]
pub struct SoakReport {
    pub capacity_per_s: f64,
    pub rate_per_s: f64,
    pub users: u64,
    pub seconds: f64,
    pub verdicts: Vec<Verdict>,
    pub passed: bool,
    pub csv: PathBuf,
    pub png: PathBuf,
    pub samples: Vec<Sample>,
}

/// What the load tasks and the probes share with the sampler.
struct Shared {
    created: AtomicU64,
    events: AtomicU64,
    checks: AtomicU64,
    failed: AtomicU64,
    check_us: Mutex<Histogram<u64>>,
    visible_us: Mutex<Histogram<u64>>,
    stop: AtomicBool,
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("bounds")
}

/// Runs the soak; `out` is the directory for `soak.csv` and `soak.png`.
/// `limits`: how long, and by what factor a p99 may drift.
pub fn soak(bin: &Path, config: &Path, users: u64, limits: (Duration, f64), out: &Path) -> anyhow::Result<SoakReport> {
    let (duration, max_drift) = limits;
    let redis = Redis::start();
    let addr = format!("127.0.0.1:{}", free_port());
    // Streams are trimmed to the snapshots less this margin (60 s by
    // default): a short soak shortens it to reach its steady length early.
    let margin = format!("{}ms", (duration / 20).min(Duration::from_secs(60)).as_millis());
    let env = [
        ("RESTRICTD_TRIPWIRE__THRESHOLD", "1.0"),
        ("RESTRICTD_TRIPWIRE__MIN_RESTRICTED", "1000000000"),
        ("RESTRICTD_HTTP__ADDR", addr.as_str()),
        ("RESTRICTD_PERSISTENCE__TRIM_MARGIN", margin.as_str()),
    ];
    let mut svc = Service::launch(bin, config, &redis.url(), &env);
    svc.wait_ready(Duration::from_secs(60));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let capacity =
        runtime.block_on(capacity(&addr, (duration / 12).clamp(Duration::from_secs(2), Duration::from_secs(10))));
    let rate = capacity / 2.0;
    eprintln!("soak: capacity {capacity:.0} requests/s (mixed, closed loop); offering {rate:.0}/s for {duration:?}");
    let shared = Arc::new(Shared {
        created: AtomicU64::new(0),
        events: AtomicU64::new(0),
        checks: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        check_us: Mutex::new(hist()),
        visible_us: Mutex::new(hist()),
        stop: AtomicBool::new(false),
    });
    let grow = duration / 3;
    let started = Instant::now();
    let tasks = spawn_load(&runtime, &addr, rate, users, grow, started, &shared);
    let interval = (duration / 60).clamp(Duration::from_secs(1), Duration::from_secs(10));
    let mut samples = Vec::new();
    let (mut restarted, mut last) = (false, Instant::now());
    while started.elapsed() < duration {
        std::thread::sleep(interval.saturating_sub(last.elapsed()));
        samples.push(sample(&svc, &redis, &shared, started, last.elapsed()));
        last = Instant::now();
        if !restarted && started.elapsed() >= duration / 2 {
            restarted = true;
            eprintln!("soak: graceful restart at {:.0} s", started.elapsed().as_secs_f64());
            anyhow::ensure!(svc.terminate() == Some(0), "graceful stop failed:\n{}", svc.log());
            svc = Service::launch(bin, config, &redis.url(), &env);
            svc.wait_ready(Duration::from_secs(600));
        }
    }
    shared.stop.store(true, Ordering::Release);
    runtime.block_on(async {
        for t in tasks {
            let _ = t.await;
        }
    });
    let restart_at = duration.as_secs_f64() / 2.0;
    let verdicts = judge(&samples, (grow.as_secs_f64(), restart_at, duration.as_secs_f64()), max_drift);
    std::fs::create_dir_all(out)?;
    let (csv, png) = (out.join("soak.csv"), out.join("soak.png"));
    write_csv(&csv, &samples)?;
    plot::soak_png(&png, &samples, restart_at)?;
    Ok(SoakReport {
        capacity_per_s: capacity,
        rate_per_s: rate,
        users,
        seconds: started.elapsed().as_secs_f64(),
        passed: verdicts.iter().all(|v| v.ok),
        verdicts,
        csv,
        png,
        samples,
    })
}

/// Closed-loop mixed requests per second from 50 connections.
async fn capacity(addr: &str, time: Duration) -> f64 {
    let (pop, model) = (Population::new(100_000, "soakcap", false), Model::new(u64::MAX));
    let p = Plan { addr: addr.into(), connections: 50, duration: time, label: "capacity".into(), ..Default::default() };
    let s = engine::run(&p, |i| {
        let events = Events { pop: pop.clone(), rng: Rng::new(i as u64), model: Arc::clone(&model), last: Vec::new() };
        Mixed::new(events, Checks { pop: pop.clone(), rng: Rng::new(900 + i as u64) })
    })
    .await;
    s.requests_per_second
}

/// 50 connections at `rate` in all (one event to two checks), and a prober.
fn spawn_load(
    runtime: &tokio::runtime::Runtime,
    addr: &str,
    rate: f64,
    users: u64,
    grow: Duration,
    started: Instant,
    shared: &Arc<Shared>,
) -> Vec<tokio::task::JoinHandle<()>> {
    const CONNECTIONS: u32 = 50;
    let every = Duration::from_secs_f64(f64::from(CONNECTIONS) / rate.max(1.0));
    let mut tasks: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let (addr, shared) = (addr.to_string(), Arc::clone(shared));
            runtime.spawn(async move {
                let (mut conn, mut rng) = (Conn::new(&addr), Rng::new(u64::from(c) + 1));
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                for n in 0u64.. {
                    tick.tick().await;
                    if shared.stop.load(Ordering::Acquire) {
                        break;
                    }
                    let due = (users as f64 * (started.elapsed().as_secs_f64() / grow.as_secs_f64()).min(1.0)) as u64;
                    request(&mut conn, &mut rng, &shared, due, n % 3 == 0).await;
                }
            })
        })
        .collect();
    let (addr, shared) = (addr.to_string(), Arc::clone(shared));
    tasks.push(runtime.spawn(async move { probe(&addr, &shared).await }));
    tasks
}

/// One request of the mix: an event or a check. While the population is
/// behind `due` an event goes to a new user and is any of the mix (flags,
/// purchases, chargebacks, cards); once a user exists it gets purchases,
/// which add to a sum and change no restriction and no set. State per user is
/// then constant once the population is, so RSS per user that still grows is
/// the process's own (a leak, fragmentation), not more data. (With every kind
/// of event for every user, restrictions accumulate at a steady population and
/// memory grows with them, as it should.)
async fn request(conn: &mut Conn, rng: &mut Rng, shared: &Shared, due: u64, event: bool) {
    let created = shared.created.load(Ordering::Relaxed);
    let started = Instant::now();
    let ok = if event {
        let (user, effect) = if created < due {
            (shared.created.fetch_add(1, Ordering::Relaxed), Effect::random(rng))
        } else {
            (rng.below(created.max(1)), Effect::Purchase(100 + rng.below(9_900)))
        };
        let body = effect.json(&format!("soak-{user}"));
        let ok = matches!(conn.post("/event", body.as_bytes()).await, Ok(r) if r.status == 200);
        shared.events.fetch_add(u64::from(ok), Ordering::Relaxed);
        ok
    } else {
        let ok = matches!(conn.get(&format!("/canmessage?user_id=soak-{}", rng.below(created.max(1)))).await, Ok(r) if r.status == 200);
        if ok {
            shared.checks.fetch_add(1, Ordering::Relaxed);
            let _ = shared.check_us.lock().expect("lock").record(started.elapsed().as_micros() as u64);
        }
        ok
    };
    shared.failed.fetch_add(u64::from(!ok), Ordering::Relaxed);
}

/// Five times a second: a fresh user's second scam flag, then checks until
/// `can_message` turns false; the time from the post to that check.
async fn probe(addr: &str, shared: &Shared) {
    let (mut post, mut check) = (Conn::new(addr), Conn::new(addr));
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    for n in 0u64.. {
        tick.tick().await;
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let user = format!("soakprobe-{n}");
        let flag = Effect::Flag.json(&user);
        if !matches!(post.post("/event", flag.as_bytes()).await, Ok(r) if r.status == 200) {
            continue;
        }
        let sent = Instant::now();
        if !matches!(post.post("/event", flag.as_bytes()).await, Ok(r) if r.status == 200) {
            continue;
        }
        while sent.elapsed() < Duration::from_secs(10) {
            match check.get(&format!("/canmessage?user_id={user}")).await {
                Ok(r) if r.status == 200 && r.body.windows(5).any(|w| w == b"false") => {
                    let _ = shared.visible_us.lock().expect("lock").record(sent.elapsed().as_micros() as u64);
                    break;
                }
                Ok(_) => tokio::task::yield_now().await,
                Err(_) => break,
            }
        }
    }
}

/// Entries of every shard's stream of one kind (`events`, `changes`).
fn stream_entries(redis: &Redis, kind: &str) -> u64 {
    let script = "local n = 0 for i = 0, 63 do n = n + redis.call('XLEN', 'rd:{' .. i .. '}:' .. ARGV[1]) end return n";
    redis.cli(&["EVAL", script, "0", kind]).trim().parse().unwrap_or(0)
}

fn sample(svc: &Service, redis: &Redis, shared: &Shared, started: Instant, since: Duration) -> Sample {
    let p99 = |h: &Mutex<Histogram<u64>>| {
        let mut h = h.lock().expect("lock");
        let v = if h.is_empty() { 0.0 } else { h.value_at_quantile(0.99) as f64 };
        h.reset();
        v
    };
    let users = shared.created.load(Ordering::Relaxed).max(1);
    let rss_bytes = svc.memory_kib().0 * 1024;
    let redis_used_memory = redis.used_memory();
    let per_s = |c: &AtomicU64| c.swap(0, Ordering::Relaxed) as f64 / since.as_secs_f64();
    Sample {
        t_s: started.elapsed().as_secs_f64(),
        users,
        rss_bytes,
        rss_per_user: rss_bytes as f64 / users as f64,
        redis_used_memory,
        redis_per_user: redis_used_memory as f64 / users as f64,
        stream_entries: stream_entries(redis, "events"),
        changelog_entries: stream_entries(redis, "changes"),
        check_p99_us: p99(&shared.check_us),
        visible_p99_us: p99(&shared.visible_us),
        events_per_s: per_s(&shared.events),
        checks_per_s: per_s(&shared.checks),
        failed_per_s: per_s(&shared.failed),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The verdicts: once the population is steady (from `grow` plus a tenth of
/// the run, leaving out the tenth after the restart), RSS per user and the
/// streams' length in the last quarter of that stretch against its first
/// quarter (at most 1.2x); each p99 over the last sixth of the run (at most
/// 5 minutes) against the first sixth's (within `max_drift`, 2 by default,
/// either way). `times`: when growth ends, the restart, the run's length (s).
fn judge(samples: &[Sample], times: (f64, f64, f64), max_drift: f64) -> Vec<Verdict> {
    let (grow, restart, total) = times;
    let settle = total / 10.0;
    let steady: Vec<&Sample> =
        samples.iter().filter(|s| s.t_s >= grow + settle && !(restart..restart + settle).contains(&s.t_s)).collect();
    let q = (steady.len() / 4).max(1);
    let mut verdicts = Vec::new();
    let mut compare = |what: &str, first: Vec<f64>, last: Vec<f64>, ok: &dyn Fn(f64, f64) -> bool| {
        let (first, last) = (median(first), median(last));
        verdicts.push(Verdict { what: what.into(), first, last, ok: ok(first, last) });
    };
    let grows = |first: f64, last: f64| last <= first * 1.2;
    let quarter = |f: fn(&Sample) -> f64| {
        (steady.iter().take(q).map(|s| f(s)).collect(), steady.iter().rev().take(q).map(|s| f(s)).collect())
    };
    let (a, b) = quarter(|s| s.rss_per_user);
    compare("RSS per user, steady population", a, b, &grows);
    let (a, b) = quarter(|s| s.stream_entries as f64);
    compare("shard stream entries, steady population", a, b, &grows);
    let stretch = (total / 6.0).min(300.0);
    let ends = |f: fn(&Sample) -> f64| {
        let pick = |keep: &dyn Fn(f64) -> bool| samples.iter().filter(|s| keep(s.t_s) && f(s) > 0.0).map(f).collect();
        (pick(&|t| t <= stretch), pick(&|t| t > total - stretch))
    };
    let drift = |first: f64, last: f64| last <= first * max_drift && first <= last * max_drift;
    let (a, b) = ends(|s| s.check_p99_us);
    compare("check p99, first and last stretch", a, b, &drift);
    let (a, b) = ends(|s| s.visible_p99_us);
    compare("post-to-visible p99, first and last stretch", a, b, &drift);
    verdicts
}

fn write_csv(path: &Path, samples: &[Sample]) -> std::io::Result<()> {
    let mut text = String::from(
        "t_s,users,rss_bytes,rss_per_user,redis_used_memory,redis_per_user,stream_entries,changelog_entries,\
         check_p99_us,visible_p99_us,events_per_s,checks_per_s,failed_per_s\n",
    );
    for s in samples {
        text.push_str(&format!(
            "{:.1},{},{},{:.1},{},{:.1},{},{},{:.0},{:.0},{:.0},{:.0},{:.1}\n",
            s.t_s,
            s.users,
            s.rss_bytes,
            s.rss_per_user,
            s.redis_used_memory,
            s.redis_per_user,
            s.stream_entries,
            s.changelog_entries,
            s.check_p99_us,
            s.visible_p99_us,
            s.events_per_s,
            s.checks_per_s,
            s.failed_per_s
        ));
    }
    std::fs::write(path, text)
}
