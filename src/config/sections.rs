//! The sections of the configuration file, typed as they are parsed. Each
//! component receives its own section; `mod.rs` resolves the few values that
//! depend on another section or on the machine.

use std::collections::BTreeMap;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use restrictd_domain::TripwireSettings;
use serde::Deserialize;

use super::de;
use super::shard_spec::ShardSpec;

fn nonzero(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).expect("a default above zero")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    pub addr: String,
    /// HTTP worker threads; 0 in the file = one per core (resolved at load).
    pub workers: usize,
    /// A listener of the checks' own (`GET /can<feature>`, a user's
    /// features, health, readiness), with workers of its own.
    pub checks_addr: Option<String>,
    /// The checks listener's worker threads.
    pub checks_workers: usize,
    /// Niceness of the main listener's workers when the checks have a
    /// listener of their own: under a write flood the checks' workers run first.
    pub nice: i32,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings { addr: "127.0.0.1:8080".into(), workers: 0, checks_addr: None, checks_workers: 1, nice: 10 }
    }
}

/// `[redis]` as written; resolved into `RedisSettings`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSection {
    pub url: String,
    pub key_prefix: String,
    /// Use the cluster client, seeded with `url` (or `nodes` when given).
    pub cluster: bool,
    /// Seed nodes of a Redis Cluster (`redis://host:port`); implies `cluster`.
    pub nodes: Vec<String>,
}

impl Default for RedisSection {
    fn default() -> Self {
        RedisSection {
            url: "redis://127.0.0.1:6379/0".into(),
            key_prefix: restrictd_actors::store::DEFAULT_PREFIX.into(),
            cluster: false,
            nodes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShardsSettings {
    pub count: NonZeroU32,
    /// Threads running shard actors and their readers; 0 in the file = one per core (resolved at load).
    pub workers: usize,
    /// Niceness of those threads (Linux), -20..=19; HTTP workers keep 0.
    pub nice: i32,
}

impl Default for ShardsSettings {
    fn default() -> Self {
        ShardsSettings { count: NonZeroU32::new(64).expect("64"), workers: 0, nice: 5 }
    }
}

/// `[instance]` as written; resolved into `InstanceSettings`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InstanceSection {
    /// This instance's name in leases and logs; empty: `<hostname>/<http.addr>`.
    pub id: String,
    pub shards: ShardSpec,
    pub standby: bool,
    #[serde(deserialize_with = "de::duration")]
    pub lease_ttl: Duration,
}

impl Default for InstanceSection {
    fn default() -> Self {
        InstanceSection {
            id: String::new(),
            shards: ShardSpec::Text("all".into()),
            standby: false,
            lease_ttl: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownEvents {
    Reject,
    Accept,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestSettings {
    pub unknown_events: UnknownEvents,
    pub batch_limit: NonZeroUsize,
    pub body_limit_bytes: usize,
    #[serde(deserialize_with = "de::duration")]
    pub wait_timeout: Duration,
    #[serde(deserialize_with = "de::duration")]
    pub dedup_window: Duration,
    /// An event whose `occurred_at` is older than this is refused (422).
    #[serde(deserialize_with = "de::duration")]
    pub max_event_age: Duration,
    /// An event whose `occurred_at` is further than this in the future is refused (422).
    #[serde(deserialize_with = "de::duration")]
    pub max_clock_skew: Duration,
}

impl IngestSettings {
    /// The limits on `occurred_at`, for the validator.
    pub fn event_time_limits(&self) -> restrictd_domain::schema::EventTimeLimits {
        restrictd_domain::schema::EventTimeLimits {
            max_age_ms: self.max_event_age.as_millis() as u64,
            max_skew_ms: self.max_clock_skew.as_millis() as u64,
        }
    }
}

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings {
            unknown_events: UnknownEvents::Reject,
            batch_limit: nonzero(1000),
            body_limit_bytes: 1 << 20,
            wait_timeout: Duration::from_secs(5),
            dedup_window: Duration::from_secs(24 * 3600),
            max_event_age: Duration::from_secs(7 * 24 * 3600),
            max_clock_skew: Duration::from_secs(5),
        }
    }
}

/// What a check answers for a user whose shard this instance has not
/// recovered yet (after a start, until its stream is replayed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BeforeRecovery {
    /// "allowed", from what is known so far.
    Allow,
    /// 503 with `Retry-After`: the caller applies its own fallback.
    Refuse,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChecksSettings {
    pub before_recovery: BeforeRecovery,
    /// The most checks a `POST /v1/checks` may hold.
    pub batch_limit: NonZeroUsize,
}

impl Default for ChecksSettings {
    fn default() -> Self {
        ChecksSettings { before_recovery: BeforeRecovery::Refuse, batch_limit: nonzero(1000) }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReaderSection {
    /// Entries per shard per read.
    pub batch: NonZeroUsize,
    #[serde(deserialize_with = "de::duration")]
    pub block: Duration,
    /// After a busy read (at least 8 entries, no stream full), wait this long
    /// before the next one, so each read takes more entries; "0s": never.
    #[serde(deserialize_with = "de::duration")]
    pub linger: Duration,
}

impl Default for ReaderSection {
    fn default() -> Self {
        ReaderSection { batch: nonzero(512), block: Duration::from_secs(1), linger: Duration::ZERO }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedSettings {
    /// Items the live feed buffers; a subscriber further behind is disconnected.
    pub buffer: usize,
    /// How far back a consumer may resume (the feed's stream is trimmed to
    /// it, and to `store::feed::FEED_MAXLEN` entries).
    #[serde(deserialize_with = "de::duration")]
    pub replay_window: Duration,
}

impl Default for FeedSettings {
    fn default() -> Self {
        FeedSettings { buffer: 4096, replay_window: Duration::from_secs(24 * 3600) }
    }
}

/// `[auth]` as written; resolved into `crate::auth::Auth`. (No `Debug`: it holds tokens.)
#[derive(Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// Admin tokens by name; the name is recorded as who acted.
    pub admin_tokens: BTreeMap<String, String>,
    pub require_for_reads: bool,
    pub read_token: Option<String>,
    pub ingest_token: Option<String>,
    /// Ingest tokens by producer: each producer's writes take turns with the
    /// others' (see `admission::queue`).
    pub ingest_tokens: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdmissionSettings {
    /// Writes in the service, waiting or worked on: a safety cap.
    pub max_inflight_writes: NonZeroUsize,
    /// Writes worked on at once; the others wait in a queue.
    pub concurrent_writes: NonZeroUsize,
    /// A write is refused at once when the queue ahead of it has waited longer.
    #[serde(deserialize_with = "de::duration")]
    pub max_write_delay: Duration,
    pub max_inflight_checks: NonZeroUsize,
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        AdmissionSettings {
            max_inflight_writes: nonzero(4096),
            concurrent_writes: nonzero(32),
            max_write_delay: Duration::from_millis(50),
            max_inflight_checks: nonzero(16384),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PersistenceSettings {
    #[serde(deserialize_with = "de::duration")]
    pub flush_interval: Duration,
    pub flush_dirty_limit: NonZeroUsize,
    /// Restriction changes reach the changelog (other instances) within this.
    #[serde(deserialize_with = "de::duration")]
    pub changelog_delay: Duration,
    /// `None` ("off"): never trim streams.
    #[serde(deserialize_with = "de::duration_or_off")]
    pub trim_margin: Option<Duration>,
    /// How long shutdown waits for in-flight requests, and again for the final flush.
    #[serde(deserialize_with = "de::duration")]
    pub shutdown_timeout: Duration,
    /// Loading a shard at start: at most this many users in one `HGETALL`.
    pub load_whole_hash_limit: usize,
}

impl Default for PersistenceSettings {
    fn default() -> Self {
        PersistenceSettings {
            flush_interval: Duration::from_secs(1),
            flush_dirty_limit: nonzero(10_000),
            changelog_delay: Duration::from_millis(100),
            trim_margin: Some(Duration::from_secs(60)),
            shutdown_timeout: Duration::from_secs(10),
            load_whole_hash_limit: 20_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TripwireSection {
    #[serde(deserialize_with = "de::duration")]
    pub window: Duration,
    /// A share in (0, 1].
    pub threshold: f64,
    pub min_restricted: u64,
    #[serde(deserialize_with = "de::optional_duration")]
    pub cooldown: Option<Duration>,
    /// How often the supervisor syncs with Redis when no report comes.
    #[serde(deserialize_with = "de::duration")]
    pub tick: Duration,
    /// A rule with `on_trip = "rollback"` that trips at most this long after
    /// the version that introduced or changed it is rolled back.
    #[serde(deserialize_with = "de::duration")]
    pub rollback_within: Duration,
}

impl Default for TripwireSection {
    fn default() -> Self {
        TripwireSection {
            window: Duration::from_secs(300),
            threshold: 0.05,
            min_restricted: 10,
            cooldown: None,
            tick: Duration::from_millis(250),
            rollback_within: Duration::from_secs(3600),
        }
    }
}

impl TripwireSection {
    /// The domain's view of the section.
    pub fn domain(&self) -> TripwireSettings {
        TripwireSettings {
            window_ms: self.window.as_millis() as u64,
            threshold_ppm: (self.threshold * 1_000_000.0).round() as u64,
            min_restricted: self.min_restricted,
            cooldown_ms: self.cooldown.map(|c| c.as_millis() as u64),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A tracing filter (`info`, `restrictd=debug,info`); `RUST_LOG` wins.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings { format: LogFormat::Human, level: "info".into() }
    }
}
