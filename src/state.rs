//! What every HTTP handler shares: the settings, the engine's shared view,
//! the write link, the actors a handler may ask, and handles resolved once.

use std::sync::Arc;

use actix::Addr;
use actix_web::web;
use metrics::Histogram;
use metrics_exporter_prometheus::PrometheusHandle;
use restrictd_actors::shard::ShardActor;
use restrictd_actors::shared::Shared;
use restrictd_actors::tripwire::Tripwire;

use crate::admission::{Gate, WriteGate};
use crate::config::Settings;
use crate::ingest::Ingest;
use crate::metrics::{INFLIGHT_REQUESTS, PROCESS_RESIDENT_MEMORY_BYTES, QUEUED_WRITES, RESTRICTED_USERS};
use crate::remote::RemoteOffsets;
use crate::stats::Rejects;

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
    pub writes: WriteGate,
    pub checks: Gate,
    /// `wait=applied` on shards owned elsewhere.
    pub remote: Arc<RemoteOffsets>,
    /// The configuration file's rules differ from the current version.
    pub file_differs: Arc<std::sync::atomic::AtomicBool>,
}

impl AppState {
    /// Gauges computed at scrape time.
    pub fn record_gauges(&self) {
        let counts = self.shared.view.count_by_feature(self.shared.model().features.len());
        for (f, n) in self.shared.model().features.iter().zip(counts) {
            metrics::gauge!(RESTRICTED_USERS, "feature" => f.to_string()).set(n as f64);
        }
        metrics::gauge!(INFLIGHT_REQUESTS, "kind" => "writes").set(self.writes.in_flight() as f64);
        metrics::gauge!(INFLIGHT_REQUESTS, "kind" => "checks").set(self.checks.in_flight() as f64);
        metrics::gauge!(QUEUED_WRITES).set(self.writes.queued() as f64);
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
