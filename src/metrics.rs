//! Metrics recorded by the HTTP layer, named in one place. The engine's are in
//! `restrictd_actors::metrics`.

/// Histogram buckets for latencies, seconds: fine enough to tell 50 µs from 500 µs.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

/// The process-wide Prometheus recorder, installed on first use (once per
/// process), with explicit latency buckets.
pub fn recorder() -> anyhow::Result<metrics_exporter_prometheus::PrometheusHandle> {
    use anyhow::Context as _;
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> = std::sync::OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .context("latency buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// Registers every series whose labels are known in advance at zero, so a
/// dashboard shows 0 rather than "no data" before the first occurrence.
pub fn register_known_series(model: &restrictd_domain::Model) {
    use restrictd_actors::metrics::*;
    for op in ["xadd", "xread", "flush", "connect", "ping", crate::remote::OPERATION] {
        metrics::counter!(REDIS_ERRORS_TOTAL, "operation" => op).absolute(0);
    }
    for reason in restrictd_domain::schema::REASONS.iter().chain(&["malformed_json", "missing_field"]) {
        metrics::counter!(DEAD_LETTERS_TOTAL, "reason" => *reason).absolute(0);
        metrics::counter!(EVENTS_REJECTED_TOTAL, "reason" => *reason).absolute(0);
    }
    metrics::counter!(EVENTS_REJECTED_TOTAL, "reason" => "batch_too_large").absolute(0);
    for rule in &model.rules {
        for change in ["tripped", "rearmed"] {
            metrics::counter!(TRIPWIRE_CHANGES_TOTAL, "rule" => rule.name.to_string(), "change" => change).absolute(0);
        }
        metrics::counter!(RULE_FIRED_TOTAL, "rule" => rule.name.to_string(), "mode" => rule.def.mode.as_str())
            .absolute(0);
    }
    metrics::counter!(TRIPWIRE_REPORTS_SHED_TOTAL).absolute(0);
    metrics::counter!(TRIPWIRE_SYNCS_TOTAL).absolute(0);
    metrics::gauge!(SHARDS_OWNED).set(0.0);
    metrics::gauge!(RULES_VERSION).set(0.0);
    metrics::gauge!(CHANGELOG_STALENESS_SECONDS).set(0.0);
    metrics::counter!(CHANGELOG_RELOADS_TOTAL).absolute(0);
}

/// Gauge `restrictd_build_info{version, commit}` = 1: which build runs.
pub const BUILD_INFO: &str = "restrictd_build_info";

/// Registers every metric's help text and the build's identity.
pub fn describe_all() {
    restrictd_actors::metrics::describe(restrictd_actors::metrics::DECLARED);
    restrictd_actors::metrics::describe(DECLARED);
    metrics::describe_gauge!(BUILD_INFO, "The build that runs (labels version and commit); always 1.");
    let commit = option_env!("RD_BUILD_COMMIT").unwrap_or("unknown");
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "commit" => commit).set(1.0);
}

restrictd_actors::declare_metrics! {
    /// Histogram: time to answer a check (GET /can*), seconds.
    Histogram CHECK_SECONDS = "restrictd_check_seconds";
    /// Histogram: POST received to Redis acknowledged, seconds.
    Histogram EVENT_INGEST_SECONDS = "restrictd_event_ingest_seconds";
    /// Counter, label `reason`: events refused at the edge.
    Counter EVENTS_REJECTED_TOTAL = "restrictd_events_rejected_total";
    /// Counter, labels `kind` (writes | checks) and `reason` (in_flight: past the
    /// in-flight bound; queue_delay: the writes queued ahead had waited longer
    /// than admission.max_write_delay, or this one waited too long): requests
    /// refused with 429 by admission control.
    Counter ADMISSION_REFUSED_TOTAL = "restrictd_admission_refused_total";
    /// Histogram: how long an admitted write waited for a slot, seconds.
    Histogram ADMISSION_WAIT_SECONDS = "restrictd_admission_wait_seconds";
    /// Gauge: writes waiting for a slot, at scrape time.
    Gauge QUEUED_WRITES = "restrictd_queued_writes";
    /// Histogram: how long a task that yields on an HTTP worker waits to be run
    /// again, measured every millisecond, seconds; the wait a request has between
    /// its socket and its handler.
    Histogram HTTP_WORKER_LAG_SECONDS = "restrictd_http_worker_lag_seconds";
    /// Gauge, label `kind` (writes | checks): requests in flight, at scrape time.
    Gauge INFLIGHT_REQUESTS = "restrictd_inflight_requests";
    /// Counter, labels `route` (the route pattern, `unmatched` for none) and `status`.
    Counter HTTP_REQUESTS_TOTAL = "restrictd_http_requests_total";
    /// Gauge: resident memory of the process, bytes (read at scrape time).
    Gauge PROCESS_RESIDENT_MEMORY_BYTES = "restrictd_process_resident_memory_bytes";
    /// Gauge, label `feature`: users currently restricted over the whole
    /// deployment, as this instance sees them (its shards, and the others'
    /// through the changelog): aggregate across instances with `max`, not `sum`.
    Gauge RESTRICTED_USERS = "restrictd_restricted_users";
}
