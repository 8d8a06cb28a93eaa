//! Builds the running service: actors on their worker threads, the Redis
//! write link, and the HTTP server on an already-bound listener (so tests and
//! callers choose the port, including port 0).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_web::{web, App, HttpServer};
use anyhow::Context as _;
use metrics::Histogram;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use restrictd_actors::domain::ShardState;
use restrictd_actors::link::Target;
use restrictd_actors::messages::{Connect, FlushNow, StopReading};
use restrictd_actors::reader::{ReaderSettings, StreamReader};
use restrictd_actors::shard::{PersistSettings, ShardActor};
use restrictd_actors::shared::Shared;
use restrictd_actors::tripwire::Tripwire;

use crate::admission::Gate;
use crate::config::Settings;
use crate::ingest::Ingest;
use crate::metrics::{
    CHECK_SECONDS, EVENTS_REJECTED_TOTAL, EVENT_INGEST_SECONDS, HTTP_WORKER_LAG_SECONDS, INFLIGHT_REQUESTS,
    LATENCY_BUCKETS, PROCESS_RESIDENT_MEMORY_BYTES, RESTRICTED_USERS,
};
use crate::remote::RemoteOffsets;
use crate::routes;
use crate::stats::Rejects;

/// What every HTTP handler shares.
pub struct AppState {
    pub settings: Arc<Settings>,
    pub shared: Arc<Shared>,
    pub ingest: Arc<Ingest>,
    /// Indexed by shard: the actors of the shards this instance owns.
    pub shards: Vec<Option<Addr<ShardActor>>>,
    pub tripwire: Addr<Tripwire>,
    pub metrics: PrometheusHandle,
    /// Handles resolved once, so the hot path does no registry look-up.
    pub check_latency: Histogram,
    pub ingest_latency: Histogram,
    /// Per feature: the check's body when allowed, and when restricted.
    pub check_bodies: Vec<[web::Bytes; 2]>,
    /// The OpenAPI document, generated once.
    pub openapi: web::Bytes,
    /// Events refused at the edge, per reason (for `/v1/stats`).
    pub rejects: Arc<Rejects>,
    /// Admission control for writes and for checks.
    pub writes: Gate,
    pub checks: Gate,
    /// `wait=applied` on shards owned elsewhere.
    pub remote: Arc<RemoteOffsets>,
}

impl AppState {
    /// Gauges computed at scrape time.
    pub fn record_gauges(&self) {
        let counts = self.shared.view.count_by_feature(self.shared.model.features.len());
        for (f, n) in self.shared.model.features.iter().zip(counts) {
            metrics::gauge!(RESTRICTED_USERS, "feature" => f.to_string()).set(n as f64);
        }
        metrics::gauge!(INFLIGHT_REQUESTS, "kind" => "writes").set(self.writes.in_flight() as f64);
        metrics::gauge!(INFLIGHT_REQUESTS, "kind" => "checks").set(self.checks.in_flight() as f64);
        if let Some(rss) = resident_memory_bytes() {
            metrics::gauge!(PROCESS_RESIDENT_MEMORY_BYTES).set(rss as f64);
        }
    }
}

/// Resident memory of this process (VmRSS), bytes.
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Registers every series whose labels are known in advance at zero, so a
/// dashboard shows 0 rather than "no data" before the first occurrence.
fn register_known_series(model: &restrictd_actors::domain::Model) {
    use restrictd_actors::metrics::*;
    for op in ["xadd", "xread", "flush", "connect", "ping", crate::remote::OPERATION] {
        metrics::counter!(REDIS_ERRORS_TOTAL, "operation" => op).absolute(0);
    }
    for reason in restrictd_actors::domain::schema::REASONS.iter().chain(&["malformed_json", "missing_field"]) {
        metrics::counter!(DEAD_LETTERS_TOTAL, "reason" => *reason).absolute(0);
        metrics::counter!(EVENTS_REJECTED_TOTAL, "reason" => *reason).absolute(0);
    }
    metrics::counter!(EVENTS_REJECTED_TOTAL, "reason" => "batch_too_large").absolute(0);
    for rule in &model.rules {
        for change in ["tripped", "rearmed"] {
            metrics::counter!(TRIPWIRE_CHANGES_TOTAL, "rule" => rule.name.to_string(), "change" => change).absolute(0);
        }
        metrics::counter!(RULE_FIRED_TOTAL, "rule" => rule.name.to_string()).absolute(0);
    }
    metrics::counter!(TRIPWIRE_REPORTS_SHED_TOTAL).absolute(0);
    metrics::gauge!(SHARDS_OWNED).set(0.0);
    metrics::gauge!(CHANGELOG_STALENESS_SECONDS).set(0.0);
    metrics::counter!(CHANGELOG_RELOADS_TOTAL).absolute(0);
}

/// Installs the process-wide Prometheus recorder, with explicit latency buckets.
pub fn install_metrics() -> anyhow::Result<PrometheusHandle> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .context("latency buckets")?
        .install_recorder()
        .context("installing the metrics recorder")
}

/// Runs the service until SIGINT/SIGTERM, then shuts down gracefully: stop
/// accepting, finish in-flight requests, stop the readers, flush every shard.
/// A second signal exits at once. Must run inside an actix `System`.
pub async fn serve(settings: Settings, listener: TcpListener, metrics: PrometheusHandle) -> anyhow::Result<()> {
    let settings = Arc::new(settings);
    let count = settings.shard_count.get();
    let model = Arc::new(settings.model.clone());
    let shared = Arc::new(Shared::new(
        Arc::clone(&model),
        count,
        &settings.key_prefix,
        settings.feed_buffer,
        settings.owned_shards.clone(),
    ));

    register_known_series(&model);
    let tripwire = Tripwire::new(settings.tripwire, settings.tripwire_tick, Arc::clone(&shared)).start();

    let workers = settings.shard_workers.max(1);
    let arbiters: Vec<Arbiter> = (0..workers).map(|_| Arbiter::new()).collect();
    for a in &arbiters {
        let nice = settings.shard_nice;
        a.spawn_fn(move || set_thread_nice(nice));
    }
    let dedup_ms = settings.dedup_window.as_millis() as u64;
    let persist = PersistSettings {
        flush_interval: settings.flush_interval,
        dirty_limit: settings.flush_dirty_limit,
        trim_margin: settings.trim_margin,
        changelog_delay: settings.changelog_delay,
    };
    let worker_of = |s: u32| worker_of_owned(&settings.owned_shards, s, workers);
    let shards: Vec<Option<Addr<ShardActor>>> = (0..count)
        .map(|s| {
            shared.owns(s).then(|| {
                let shared = Arc::clone(&shared);
                let report = tripwire.clone().recipient();
                ShardActor::start_in_arbiter(&arbiters[worker_of(s)].handle(), move |_| {
                    ShardActor::new(s, ShardState::new(dedup_ms), shared, report, persist)
                })
            })
        })
        .collect();
    let reader_settings = ReaderSettings {
        redis: settings.redis.clone(),
        batch: settings.reader_batch,
        block: settings.reader_block,
        linger: settings.reader_linger,
        dedup_window_ms: dedup_ms,
    };
    let readers = Arc::new(std::sync::Mutex::new(Vec::<Addr<StreamReader>>::new()));
    let start_readers = {
        let (readers, shards, shared) = (Arc::clone(&readers), shards.clone(), Arc::clone(&shared));
        let handles: Vec<_> = arbiters.iter().map(|a| a.handle()).collect();
        move || {
            let mut started = readers.lock().unwrap_or_else(|e| e.into_inner());
            for (w, handle) in handles.iter().enumerate() {
                let group: Vec<_> = shards
                    .iter()
                    .enumerate()
                    .filter_map(|(s, a)| a.clone().map(|a| (s as u32, a)))
                    .filter(|(s, _)| worker_of_owned(&shared.owned, *s, handles.len()) == w)
                    .collect();
                if group.is_empty() {
                    continue;
                }
                let (rs, shared) = (reader_settings.clone(), Arc::clone(&shared));
                started.push(StreamReader::start_in_arbiter(handle, move |_| StreamReader::new(group, rs, shared)));
            }
        }
    };
    let held = crate::ownership::claim(Arc::clone(&settings), Arc::clone(&shared), start_readers);
    let follow: Vec<u32> = (0..count).filter(|s| settings.standby || !shared.owns(*s)).collect();
    actix_rt::spawn(
        restrictd_actors::changelog::Follower {
            shared: Arc::clone(&shared),
            target: settings.redis.clone(),
            shards: follow,
            batch: settings.reader_batch,
            block: settings.reader_block,
        }
        .run(),
    );

    let ingest = Ingest::start(settings.redis.clone());
    let remote = Arc::new(RemoteOffsets::new(Arc::clone(&shared), Arc::clone(&ingest)));
    let upkeep = metrics.clone();
    actix_rt::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });

    let rejects = Arc::new(Rejects::new());
    rejects.spawn_flusher(Arc::clone(&ingest), shared.keys.clone());
    connect_tripwire(&tripwire, &shards, settings.redis.clone());

    let check_bodies = model
        .features
        .iter()
        .map(|f| [false, true].map(|restricted| web::Bytes::from(format!("{{\"{f}\":{}}}", !restricted))))
        .collect();
    let state = web::Data::new(AppState {
        settings: Arc::clone(&settings),
        shared: Arc::clone(&shared),
        ingest,
        shards: shards.clone(),
        tripwire,
        metrics,
        check_latency: metrics::histogram!(CHECK_SECONDS),
        ingest_latency: metrics::histogram!(EVENT_INGEST_SECONDS),
        check_bodies,
        openapi: web::Bytes::from(routes::api::openapi(&model).to_string()),
        rejects,
        writes: Gate::new("writes", settings.max_inflight_writes, settings.max_worker_lag),
        checks: Gate::new("checks", settings.max_inflight_checks, None),
        remote,
    });
    let addr = listener.local_addr().context("listener address")?;
    let app_state = state.clone();
    let server = HttpServer::new(move || {
        // Runs on each HTTP worker, on its runtime.
        crate::admission::start_lag_probe(metrics::histogram!(HTTP_WORKER_LAG_SECONDS));
        let state = app_state.clone();
        App::new()
            .wrap(crate::http_metrics::CountRequests)
            .app_data(state.clone())
            .configure(|cfg| routes::configure(cfg, &state))
            .default_service(web::to(routes::not_found))
    })
    .workers(settings.http_workers)
    .disable_signals()
    .shutdown_timeout(settings.shutdown_timeout.as_secs().max(1))
    .listen(listener)
    .context("serving on the listener")?
    .run();
    let handle = server.handle();
    actix_rt::spawn(async move {
        shutdown_signal().await;
        tracing::info!(
            "shutdown requested: finishing in-flight requests, then flushing (a second signal exits at once)"
        );
        actix_rt::spawn(async {
            shutdown_signal().await;
            tracing::warn!("second signal: exiting now; unflushed state will be replayed from the streams");
            std::process::exit(130);
        });
        handle.stop(true).await;
    });
    tracing::info!(
        addr = %addr,
        shards = count,
        owned = settings.owned_shards.len(),
        instance = %settings.instance_id,
        workers,
        "listening"
    );
    server.await.context("http server")?;

    let readers: Vec<_> = readers.lock().unwrap_or_else(|e| e.into_inner()).clone();
    futures_util::future::join_all(readers.iter().map(|r| r.send(StopReading))).await;
    let flushes = futures_util::future::join_all(shards.iter().flatten().map(|s| s.send(FlushNow)));
    match tokio::time::timeout(settings.shutdown_timeout, flushes).await {
        Ok(results) if results.iter().all(|r| matches!(r, Ok(true))) => {
            crate::ownership::release(&settings, &shared, &held).await;
            tracing::info!(shards = settings.owned_shards.len(), "every owned shard flushed; leases released; bye")
        }
        _ => tracing::warn!(
            "not every shard could be flushed (is Redis down?); the unflushed events are replayed from the streams at the next start"
        ),
    }
    for a in arbiters {
        a.stop();
        let _ = a.join();
    }
    Ok(())
}

/// Lowers (or raises) the calling thread's priority. Shard threads run at a
/// positive niceness by default: when an HTTP worker (an acknowledgement, a
/// check) and a shard thread are runnable at once on a busy machine, the
/// request goes first, and the shard catches up in a slightly larger batch.
/// At 10,000 mixed requests/s on 2 cores, niceness 5 against 0: p99 1.6-2.1
/// ms against 2.2-2.3 ms, single events 27-29k/s against 25k/s, and a lower
/// post-to-visible p99.
fn set_thread_nice(nice: i32) {
    if nice == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // On Linux, PRIO_PROCESS with id 0 sets the niceness of the calling thread alone.
        // SAFETY: setpriority takes plain integers and touches no memory of ours.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } != 0 {
            tracing::warn!(nice, error = %std::io::Error::last_os_error(), "cannot set the shard threads' niceness (shards.nice); they run at the default");
        }
    }
    #[cfg(not(target_os = "linux"))]
    tracing::warn!(nice, "shards.nice is supported on Linux only; ignored");
}

/// The worker (thread) of owned shard `s`: owned shards are dealt out in turn.
fn worker_of_owned(owned: &[u32], s: u32, workers: usize) -> usize {
    owned.iter().position(|o| *o == s).unwrap_or(0) % workers.max(1)
}

/// Gives the tripwire the shards (for reverts) now, and a Redis connection
/// (for its audit trail) once Redis answers.
fn connect_tripwire(tripwire: &Addr<Tripwire>, shards: &[Option<Addr<ShardActor>>], redis: Target) {
    let recipients = || shards.iter().flatten().map(|s| s.clone().recipient()).collect::<Vec<_>>();
    tripwire.do_send(Connect { shards: recipients(), conn: None });
    let (tripwire, shards) = (tripwire.clone(), recipients());
    actix_rt::spawn(async move {
        let mut delay = Duration::from_millis(100);
        loop {
            if let Ok(conn) = redis.connect(Duration::from_secs(2), Duration::from_secs(5)).await {
                tripwire.do_send(Connect { shards, conn: Some(conn) });
                return;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    });
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
