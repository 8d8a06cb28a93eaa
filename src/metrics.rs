//! Metrics recorded by the HTTP layer, named in one place. The engine's are in
//! `restrictd_actors::metrics`.

/// Histogram: time to answer a check (GET /can*), seconds.
pub const CHECK_SECONDS: &str = "restrictd_check_seconds";
/// Histogram: POST received to Redis acknowledged, seconds.
pub const EVENT_INGEST_SECONDS: &str = "restrictd_event_ingest_seconds";
/// Counter, label `reason`: events refused at the edge.
pub const EVENTS_REJECTED_TOTAL: &str = "restrictd_events_rejected_total";
/// Counter, labels `kind` (writes | checks) and `reason` (in_flight: past the
/// in-flight bound; worker_lag: the HTTP worker ran late): requests refused
/// with 429 by admission control.
pub const ADMISSION_REFUSED_TOTAL: &str = "restrictd_admission_refused_total";
/// Histogram: how long a task that yields on an HTTP worker waits to be run
/// again, measured every millisecond, seconds; the wait a request has between
/// its socket and its handler.
pub const HTTP_WORKER_LAG_SECONDS: &str = "restrictd_http_worker_lag_seconds";
/// Gauge, label `kind` (writes | checks): requests in flight, at scrape time.
pub const INFLIGHT_REQUESTS: &str = "restrictd_inflight_requests";
/// Counter, labels `route` (the route pattern, `unmatched` for none) and `status`.
pub const HTTP_REQUESTS_TOTAL: &str = "restrictd_http_requests_total";
/// Gauge: resident memory of the process, bytes (read at scrape time).
pub const PROCESS_RESIDENT_MEMORY_BYTES: &str = "restrictd_process_resident_memory_bytes";
/// Gauge, label `feature`: users currently restricted over the whole
/// deployment, as this instance sees them (its shards, and the others'
/// through the changelog): aggregate across instances with `max`, not `sum`.
pub const RESTRICTED_USERS: &str = "restrictd_restricted_users";

/// Histogram buckets for latencies, seconds: fine enough to tell 50 µs from 500 µs.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];
