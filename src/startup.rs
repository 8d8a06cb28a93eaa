//! Builds the running service on an already-bound listener (so tests and
//! callers choose the port, including port 0) and runs it until a shutdown
//! future resolves: signals belong to the caller (`main`).

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use anyhow::Context as _;

use crate::admission::{Gate, WriteGate};
use crate::config::Settings;
use crate::engine::Engine;
use crate::ingest::Ingest;
use crate::metrics::{CHECK_SECONDS, EVENT_INGEST_SECONDS, HTTP_WORKER_LAG_SECONDS};
use crate::remote::RemoteOffsets;
use crate::routes;
use crate::state::AppState;
use crate::stats::Rejects;

pub struct Application {
    settings: Arc<Settings>,
    engine: Engine,
    server: Server,
    /// The checks listener's server (`http.checks_addr`), if configured.
    checks: Option<Server>,
    port: u16,
}

impl Application {
    /// Starts the engine and the HTTP server on `listener`. Must run inside an
    /// actix `System`.
    pub fn build(settings: Settings, listener: TcpListener) -> anyhow::Result<Application> {
        let metrics = crate::metrics::recorder()?;
        let settings = Arc::new(settings);
        crate::metrics::describe_all();
        crate::metrics::register_known_series(&settings.model);
        let engine = Engine::start(&settings);
        let shared = Arc::clone(&engine.shared);
        let ingest = Ingest::start(settings.redis.target.clone());
        let upkeep = metrics.clone();
        actix_rt::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                upkeep.run_upkeep();
            }
        });
        let file_differs = Arc::default();
        crate::rulesets::watch(
            Arc::clone(&shared),
            settings.redis.target.clone(),
            settings.rules.clone(),
            Arc::clone(&file_differs),
        );
        let rejects = Arc::new(Rejects::new());
        rejects.spawn_flusher(Arc::clone(&ingest), shared.keys.clone());
        let model = &settings.model;
        let check_bodies = model
            .features
            .iter()
            .map(|f| [false, true].map(|restricted| web::Bytes::from(format!("{{\"{f}\":{}}}", !restricted))))
            .collect();
        let a = &settings.admission;
        let state = web::Data::new(AppState {
            settings: Arc::clone(&settings),
            remote: Arc::new(RemoteOffsets::new(Arc::clone(&shared), Arc::clone(&ingest))),
            shared,
            ingest,
            shards: engine.shards.clone(),
            tripwire: engine.tripwire.clone(),
            metrics,
            check_latency: metrics::histogram!(CHECK_SECONDS),
            ingest_latency: metrics::histogram!(EVENT_INGEST_SECONDS),
            check_bodies,
            openapi: web::Bytes::from(
                routes::openapi::openapi(model, settings.ingest.batch_limit.get(), settings.checks.batch_limit.get())
                    .to_string(),
            ),
            rejects,
            writes: WriteGate::new(a.concurrent_writes.get(), a.max_inflight_writes.get(), a.max_write_delay),
            checks: Gate::new("checks", a.max_inflight_checks.get()),
            file_differs,
        });
        let addr = listener.local_addr().context("listener address")?;
        let checks = match &settings.http.checks_addr {
            Some(checks_addr) => {
                let listener = TcpListener::bind(checks_addr)
                    .with_context(|| format!("cannot listen on http.checks_addr {checks_addr}"))?;
                let local = listener.local_addr().context("checks listener address")?;
                tracing::info!(checks_addr = %local, workers = settings.http.checks_workers, "serving checks on a listener of their own");
                Some(checks_server(state.clone(), &settings, listener)?)
            }
            None => None,
        };
        let server = http_server(state, &settings, listener)?;
        tracing::info!(
            addr = %addr,
            shards = settings.shards.count.get(),
            owned = settings.instance.shards.len(),
            instance = %settings.instance.id,
            workers = settings.shards.workers,
            "listening"
        );
        Ok(Application { settings, engine, server, checks, port: addr.port() })
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` resolves, then stops gracefully: stop
    /// accepting, finish in-flight requests, stop the readers, flush every
    /// shard, release the leases.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + 'static) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let checks = self.checks.as_ref().map(Server::handle);
        let shared = std::sync::Arc::clone(&self.engine.shared);
        actix_rt::spawn(async move {
            shutdown.await;
            // Feed streams end at once (each with a last event), so the
            // graceful stop does not wait on them.
            shared.closing.send_replace(true);
            // Checks keep being answered until the writes are done.
            handle.stop(true).await;
            if let Some(checks) = checks {
                checks.stop(true).await;
            }
        });
        if let Some(checks) = self.checks {
            actix_rt::spawn(checks);
        }
        self.server.await.context("http server")?;
        self.engine.stop(&self.settings).await;
        Ok(())
    }
}

/// Which routes a listener serves, with how many workers at what niceness.
struct Listener {
    configure: fn(&mut web::ServiceConfig, &AppState),
    workers: usize,
    nice: i32,
    /// The main listener measures its workers' lag (the write queue adds it).
    lag_probe: bool,
}

fn http_server(state: web::Data<AppState>, settings: &Settings, listener: TcpListener) -> anyhow::Result<Server> {
    // With a listener of their own for checks, these workers may yield to it.
    let nice = if settings.http.checks_addr.is_some() { settings.http.nice } else { 0 };
    let main = Listener { configure: routes::configure, workers: settings.http.workers, nice, lag_probe: true };
    serve(state, settings, listener, main).context("serving on the listener")
}

/// The checks listener: the checks' routes alone, on workers of their own.
fn checks_server(state: web::Data<AppState>, settings: &Settings, listener: TcpListener) -> anyhow::Result<Server> {
    let checks = Listener {
        configure: routes::configure_checks,
        workers: settings.http.checks_workers,
        nice: 0,
        lag_probe: false,
    };
    serve(state, settings, listener, checks).context("serving on the checks listener")
}

fn serve(state: web::Data<AppState>, settings: &Settings, socket: TcpListener, l: Listener) -> std::io::Result<Server> {
    let Listener { configure, workers, nice, lag_probe } = l;
    Ok(HttpServer::new(move || {
        // Runs on each HTTP worker, on its runtime.
        if lag_probe {
            crate::admission::start_lag_probe(metrics::histogram!(HTTP_WORKER_LAG_SECONDS));
        }
        nice_once(nice);
        let state = state.clone();
        App::new()
            .wrap(crate::http_metrics::CountRequests)
            .app_data(state.clone())
            .configure(|cfg| configure(cfg, &state))
            .default_service(web::to(routes::not_found))
    })
    .workers(workers)
    .disable_signals()
    .shutdown_timeout(settings.persistence.shutdown_timeout.as_secs().max(1))
    .listen(socket)?
    .run())
}

/// Sets the calling worker thread's niceness, once (the app factory runs
/// once per worker, on the worker's thread).
fn nice_once(nice: i32) {
    thread_local!(static DONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
    if nice != 0 && !DONE.with(|d| d.replace(true)) {
        crate::engine::set_thread_nice(nice);
    }
}
