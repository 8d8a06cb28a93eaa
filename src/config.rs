//! Configuration: a TOML file, then `RESTRICTD_<SECTION>__<KEY>` environment
//! overrides, parsed with unknown keys refused, then validated into typed
//! [`Settings`]. Errors name the key (and the line when it comes from the file).

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::Path;
use std::time::Duration;

use restrictd_actors::domain::rules::{AggregateDef, FeatureDef, RuleDef};
use restrictd_actors::domain::schema::EventDef;
use restrictd_actors::domain::{Model, ModelDef, TripwireSettings};
use restrictd_actors::link::Target;
use serde::Deserialize;

/// Prefix of environment overrides: `RESTRICTD_HTTP__ADDR=127.0.0.1:9000`.
pub const ENV_PREFIX: &str = "RESTRICTD_";

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub http: HttpSection,
    #[serde(default)]
    pub redis: RedisSection,
    #[serde(default)]
    pub shards: ShardsSection,
    #[serde(default)]
    pub instance: InstanceSection,
    #[serde(default)]
    pub ingest: IngestSection,
    #[serde(default)]
    pub reader: ReaderSection,
    #[serde(default)]
    pub persistence: PersistenceSection,
    #[serde(default)]
    pub admission: AdmissionSection,
    #[serde(default)]
    pub auth: AuthSection,
    #[serde(default)]
    pub feed: FeedSection,
    #[serde(default)]
    pub tripwire: TripwireSection,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub features: BTreeMap<String, FeatureDef>,
    #[serde(default)]
    pub events: BTreeMap<String, EventDef>,
    #[serde(default)]
    pub aggregates: BTreeMap<String, AggregateDef>,
    #[serde(default)]
    pub rules: BTreeMap<String, RuleDef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    pub addr: String,
    /// HTTP worker threads; 0 = one per core.
    pub workers: usize,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection { addr: "127.0.0.1:8080".into(), workers: 0 }
    }
}

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
            key_prefix: "rd".into(),
            cluster: false,
            nodes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InstanceSection {
    /// This instance's name in leases and logs; empty: `<hostname>/<http.addr>`.
    pub id: String,
    /// The shards this instance reads, applies and persists: "all", "0-31",
    /// "0-7,16,20-23", or a list of numbers and ranges.
    pub shards: ShardSpec,
    /// Wait for shards owned by another instance instead of refusing to start.
    pub standby: bool,
    /// How long a shard's lease lives without renewal.
    pub lease_ttl: String,
}

impl Default for InstanceSection {
    fn default() -> Self {
        InstanceSection {
            id: String::new(),
            shards: ShardSpec::Text("all".into()),
            standby: false,
            lease_ttl: "10s".into(),
        }
    }
}

/// `"0-31"` or `[0, "4-7"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ShardSpec {
    Number(i64),
    Text(String),
    List(Vec<toml::Value>),
}

impl ShardSpec {
    /// The shard numbers, ascending and without repeats.
    pub fn resolve(&self, count: u32) -> Result<Vec<u32>, String> {
        let parts: Vec<String> = match self {
            ShardSpec::Number(n) => vec![n.to_string()],
            ShardSpec::Text(t) => t.split(',').map(|p| p.trim().to_string()).collect(),
            ShardSpec::List(items) => items
                .iter()
                .map(|v| match v {
                    toml::Value::Integer(i) => Ok(i.to_string()),
                    toml::Value::String(s) => Ok(s.trim().to_string()),
                    other => Err(format!("{other} is neither a shard number nor a range")),
                })
                .collect::<Result<_, _>>()?,
        };
        let mut shards = std::collections::BTreeSet::new();
        for part in &parts {
            if part == "all" {
                shards.extend(0..count);
                continue;
            }
            let number = |n: &str| {
                n.trim().parse::<u32>().ok().filter(|n| *n < count).ok_or_else(|| {
                    format!("{n:?} is not a shard number below shards.count ({count}); write \"all\", \"0-31\" or \"0,4-7\"")
                })
            };
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (number(a)?, number(b)?);
                    if a > b {
                        return Err(format!("range {part:?} is backwards"));
                    }
                    shards.extend(a..=b);
                }
                None => {
                    shards.insert(number(part)?);
                }
            }
        }
        if shards.is_empty() {
            return Err("names no shard".into());
        }
        Ok(shards.into_iter().collect())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShardsSection {
    pub count: u32,
    /// Threads running shard actors and their readers; 0 = one per core.
    pub workers: usize,
    /// Niceness of those threads (Linux), -20..=19; HTTP workers keep 0.
    pub nice: i32,
}

impl Default for ShardsSection {
    fn default() -> Self {
        ShardsSection { count: 64, workers: 0, nice: 5 }
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
pub struct IngestSection {
    pub unknown_events: UnknownEvents,
    pub batch_limit: usize,
    pub body_limit_bytes: usize,
    pub wait_timeout: String,
    pub dedup_window: String,
}

impl Default for IngestSection {
    fn default() -> Self {
        IngestSection {
            unknown_events: UnknownEvents::Reject,
            batch_limit: 1000,
            body_limit_bytes: 1 << 20,
            wait_timeout: "5s".into(),
            dedup_window: "24h".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReaderSection {
    pub batch: usize,
    pub block: String,
    /// After a busy read (at least 8 entries, no stream full), wait this long
    /// before the next one, so each read takes more entries; "0s": never.
    pub linger: String,
}

impl Default for ReaderSection {
    fn default() -> Self {
        ReaderSection { batch: 512, block: "1s".into(), linger: "0s".into() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedSection {
    /// Items the live feed buffers; a subscriber further behind is disconnected.
    pub buffer: usize,
}

impl Default for FeedSection {
    fn default() -> Self {
        FeedSection { buffer: 4096 }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// Admin tokens by name; the name is recorded as who acted.
    pub admin_tokens: BTreeMap<String, String>,
    pub require_for_reads: bool,
    pub read_token: Option<String>,
    pub ingest_token: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdmissionSection {
    pub max_inflight_writes: usize,
    pub max_inflight_checks: usize,
    /// A duration, or "off".
    pub max_worker_lag: String,
}

impl Default for AdmissionSection {
    fn default() -> Self {
        AdmissionSection { max_inflight_writes: 128, max_inflight_checks: 16384, max_worker_lag: "5ms".into() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PersistenceSection {
    pub flush_interval: String,
    pub flush_dirty_limit: usize,
    /// Restriction changes reach the changelog (other instances) within this.
    pub changelog_delay: String,
    /// A duration, or "off" to never trim.
    pub trim_margin: String,
    pub shutdown_timeout: String,
}

impl Default for PersistenceSection {
    fn default() -> Self {
        PersistenceSection {
            flush_interval: "1s".into(),
            flush_dirty_limit: 10_000,
            changelog_delay: "100ms".into(),
            trim_margin: "60s".into(),
            shutdown_timeout: "10s".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TripwireSection {
    pub window: String,
    pub threshold: f64,
    pub min_restricted: u64,
    pub cooldown: Option<String>,
    pub tick: String,
}

impl Default for TripwireSection {
    fn default() -> Self {
        TripwireSection {
            window: "300s".into(),
            threshold: 0.05,
            min_restricted: 10,
            cooldown: None,
            tick: "250ms".into(),
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
pub struct LogSection {
    pub format: LogFormat,
    /// A tracing filter (`info`, `restrictd=debug,info`); `RUST_LOG` wins.
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection { format: LogFormat::Human, level: "info".into() }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub http_addr: String,
    pub http_workers: usize,
    /// The server, or the cluster's seed nodes.
    pub redis: Target,
    pub key_prefix: String,
    pub shard_count: NonZeroU32,
    /// This instance's name (leases, logs).
    pub instance_id: String,
    /// The shards this instance owns, ascending.
    pub owned_shards: Vec<u32>,
    pub standby: bool,
    pub lease_ttl: Duration,
    pub shard_workers: usize,
    pub shard_nice: i32,
    pub unknown_events: UnknownEvents,
    pub batch_limit: usize,
    pub body_limit_bytes: usize,
    pub wait_timeout: Duration,
    pub dedup_window: Duration,
    pub reader_batch: usize,
    pub reader_block: Duration,
    pub reader_linger: Duration,
    pub flush_interval: Duration,
    pub flush_dirty_limit: usize,
    pub changelog_delay: Duration,
    /// `None`: never trim streams.
    pub trim_margin: Option<Duration>,
    /// How long shutdown waits for in-flight requests, and again for the final flush.
    pub shutdown_timeout: Duration,
    pub max_inflight_writes: usize,
    pub max_inflight_checks: usize,
    /// Writes are refused while the HTTP worker's event loop runs later than
    /// this; `None`: no such bound.
    pub max_worker_lag: Option<Duration>,
    pub auth: crate::auth::Auth,
    pub feed_buffer: usize,
    pub tripwire: TripwireSettings,
    pub tripwire_tick: Duration,
    pub log: LogSection,
    pub model_def: ModelDef,
    pub model: Model,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

impl Settings {
    /// Reads the file, applies environment overrides, validates.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Self::from_toml(&text, &path.display().to_string(), std::env::vars())
    }

    pub fn from_toml(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let parse_err = |message: String| ConfigError::Parse { path: origin.to_string(), message };
        // Parse the file alone first, so its errors carry line numbers.
        let raw: RawConfig = toml::from_str(text).map_err(|e| parse_err(e.to_string()))?;
        let overrides: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect();
        let raw = if overrides.is_empty() {
            raw
        } else {
            let mut table: toml::Table = toml::from_str(text).map_err(|e| parse_err(e.to_string()))?;
            for (key, value) in &overrides {
                apply_override(&mut table, key, value)?;
            }
            let names: Vec<&str> = overrides.iter().map(|(k, _)| k.as_str()).collect();
            toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| {
                ConfigError::Invalid(format!("after environment overrides ({}): {}", names.join(", "), e.message()))
            })?
        };
        Self::validate(raw)
    }

    fn validate(raw: RawConfig) -> Result<Settings, ConfigError> {
        let invalid = |key: &str, why: String| ConfigError::Invalid(format!("{key}: {why}"));
        let duration = |key: &str, text: &str| {
            humantime::parse_duration(text)
                .map_err(|e| invalid(key, format!("{text:?} is not a duration like \"300s\" or \"5m\" ({e})")))
        };
        let shard_count = NonZeroU32::new(raw.shards.count)
            .filter(|c| c.get() <= 16384)
            .ok_or_else(|| invalid("shards.count", "must be between 1 and 16384".into()))?;
        if raw.redis.key_prefix.is_empty() || raw.redis.key_prefix.contains(['{', '}', ' ']) {
            return Err(invalid("redis.key_prefix", "must be non-empty, without braces or spaces".into()));
        }
        redis::parse_redis_url(&raw.redis.url)
            .ok_or_else(|| invalid("redis.url", format!("{:?} is not a redis:// URL", raw.redis.url)))?;
        for node in &raw.redis.nodes {
            redis::parse_redis_url(node)
                .ok_or_else(|| invalid("redis.nodes", format!("{node:?} is not a redis:// URL")))?;
        }
        let redis_target = match (raw.redis.cluster, raw.redis.nodes.is_empty()) {
            (false, true) => Target::Single(raw.redis.url.clone()),
            (_, false) => Target::Cluster(raw.redis.nodes.clone()),
            (true, true) => Target::Cluster(vec![raw.redis.url.clone()]),
        };
        let owned_shards = raw.instance.shards.resolve(shard_count.get()).map_err(|e| invalid("instance.shards", e))?;
        let lease_ttl = duration("instance.lease_ttl", &raw.instance.lease_ttl)?;
        if lease_ttl < Duration::from_secs(1) {
            return Err(invalid("instance.lease_ttl", "must be at least 1s".into()));
        }
        let instance_id = if raw.instance.id.is_empty() {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            // Stable across restarts, so a restarted instance reclaims its own
            // leases at once; distinct for instances on one host (distinct addresses).
            format!("{}/{}", host.trim(), raw.http.addr)
        } else {
            raw.instance.id.clone()
        };
        if !(-20..=19).contains(&raw.shards.nice) {
            return Err(invalid("shards.nice", "a niceness from -20 to 19 (0: as the HTTP workers)".into()));
        }
        if raw.ingest.batch_limit == 0 {
            return Err(invalid("ingest.batch_limit", "must be at least 1".into()));
        }
        if raw.ingest.body_limit_bytes < 1024 {
            return Err(invalid("ingest.body_limit_bytes", "must be at least 1024".into()));
        }
        if raw.admission.max_inflight_writes == 0 || raw.admission.max_inflight_checks == 0 {
            return Err(invalid("admission", "max_inflight_writes and max_inflight_checks must be at least 1".into()));
        }
        if let Some((name, _)) = raw.auth.admin_tokens.iter().find(|(_, t)| t.len() < 16) {
            return Err(invalid(&format!("auth.admin_tokens.{name}"), "a token must be at least 16 characters".into()));
        }
        if raw.persistence.flush_dirty_limit == 0 {
            return Err(invalid("persistence.flush_dirty_limit", "must be at least 1".into()));
        }
        let max_worker_lag = match raw.admission.max_worker_lag.as_str() {
            "off" => None,
            m => match duration("admission.max_worker_lag", m)? {
                d if d.is_zero() => {
                    return Err(invalid(
                        "admission.max_worker_lag",
                        "must be above zero (\"off\": no such bound)".into(),
                    ))
                }
                d => Some(d),
            },
        };
        let p = &raw.persistence;
        let trim_margin = match p.trim_margin.as_str() {
            "off" => None,
            m => Some(duration("persistence.trim_margin", m)?),
        };
        if raw.reader.batch == 0 {
            return Err(invalid("reader.batch", "must be at least 1".into()));
        }
        let t = &raw.tripwire;
        if !(t.threshold > 0.0 && t.threshold <= 1.0) {
            return Err(invalid("tripwire.threshold", "a share in (0, 1], e.g. 0.05 for 5 %".into()));
        }
        let tripwire = TripwireSettings {
            window_ms: duration("tripwire.window", &t.window)?.as_millis() as u64,
            threshold_ppm: (t.threshold * 1_000_000.0).round() as u64,
            min_restricted: t.min_restricted,
            cooldown_ms: t
                .cooldown
                .as_deref()
                .map(|c| duration("tripwire.cooldown", c).map(|d| d.as_millis() as u64))
                .transpose()?,
        };
        let model_def =
            ModelDef { features: raw.features, events: raw.events, aggregates: raw.aggregates, rules: raw.rules };
        let model = Model::compile(&model_def, raw.ingest.unknown_events == UnknownEvents::Accept)
            .map_err(ConfigError::Invalid)?;
        if model.features.is_empty() {
            return Err(invalid("features", "declare at least one feature, e.g. [features.can_message]".into()));
        }
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Settings {
            http_addr: raw.http.addr,
            http_workers: if raw.http.workers == 0 { cores } else { raw.http.workers },
            redis: redis_target,
            key_prefix: raw.redis.key_prefix,
            shard_count,
            instance_id,
            owned_shards,
            standby: raw.instance.standby,
            lease_ttl,
            shard_workers: if raw.shards.workers == 0 { cores } else { raw.shards.workers },
            shard_nice: raw.shards.nice,
            unknown_events: raw.ingest.unknown_events,
            batch_limit: raw.ingest.batch_limit,
            body_limit_bytes: raw.ingest.body_limit_bytes,
            wait_timeout: duration("ingest.wait_timeout", &raw.ingest.wait_timeout)?,
            dedup_window: duration("ingest.dedup_window", &raw.ingest.dedup_window)?,
            reader_batch: raw.reader.batch,
            reader_block: duration("reader.block", &raw.reader.block)?,
            reader_linger: duration("reader.linger", &raw.reader.linger)?,
            flush_interval: duration("persistence.flush_interval", &p.flush_interval)?,
            flush_dirty_limit: p.flush_dirty_limit,
            changelog_delay: duration("persistence.changelog_delay", &p.changelog_delay)?,
            max_inflight_writes: raw.admission.max_inflight_writes,
            max_inflight_checks: raw.admission.max_inflight_checks,
            max_worker_lag,
            feed_buffer: raw.feed.buffer.max(1),
            auth: crate::auth::Auth {
                admin: raw.auth.admin_tokens.into_iter().collect(),
                require_for_reads: raw.auth.require_for_reads,
                read_token: raw.auth.read_token.filter(|t| !t.is_empty()),
                ingest_token: raw.auth.ingest_token.filter(|t| !t.is_empty()),
            },
            trim_margin,
            shutdown_timeout: duration("persistence.shutdown_timeout", &p.shutdown_timeout)?,
            tripwire,
            tripwire_tick: duration("tripwire.tick", &t.tick)?,
            log: raw.log,
            model_def,
            model,
        })
    }
}

/// `RESTRICTD_TRIPWIRE__THRESHOLD=0.1` sets `tripwire.threshold`. The value is
/// read as a TOML value when it is one (numbers, booleans, arrays), else as a string.
fn apply_override(table: &mut toml::Table, key: &str, value: &str) -> Result<(), ConfigError> {
    let path: Vec<String> = key[ENV_PREFIX.len()..].split("__").map(str::to_ascii_lowercase).collect();
    if path.len() < 2 || path.iter().any(String::is_empty) {
        return Err(ConfigError::Invalid(format!(
            "{key}: write {ENV_PREFIX}<SECTION>__<KEY>, e.g. {ENV_PREFIX}HTTP__ADDR"
        )));
    }
    let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let (last, parents) = path.split_last().expect("at least two parts");
    let mut node = table;
    for part in parents {
        let entry = node.entry(part.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = match entry {
            toml::Value::Table(t) => t,
            _ => return Err(ConfigError::Invalid(format!("{key}: {part} is not a section"))),
        };
    }
    node.insert(last.clone(), parsed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = include_str!("../config.toml");

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_default_config_compiles_the_three_classic_rules() {
        let s = Settings::from_toml(DEFAULT, "config.toml", env(&[])).unwrap();
        let names: Vec<&str> = s.model.rules.iter().map(|r| &*r.name).collect();
        assert_eq!(names, ["chargeback_ratio_rule", "scam_message_rule", "unique_zip_code_rule"]);
        assert_eq!(s.shard_count.get(), 64);
        assert_eq!(s.key_prefix, "rd");
        assert_eq!(s.shard_nice, 5);
        assert_eq!(s.max_worker_lag, Some(Duration::from_millis(5)));
    }

    #[test]
    fn the_worker_lag_bound_can_be_off_but_not_zero() {
        let lag = |v: &str| Settings::from_toml(DEFAULT, "f", env(&[("RESTRICTD_ADMISSION__MAX_WORKER_LAG", v)]));
        assert_eq!(lag("off").unwrap().max_worker_lag, None);
        assert_eq!(lag("500us").unwrap().max_worker_lag, Some(Duration::from_micros(500)));
        for bad in ["0s", "soon"] {
            let err = lag(bad).unwrap_err().to_string();
            assert!(err.contains("admission.max_worker_lag"), "{bad}: {err}");
        }
    }

    #[test]
    fn environment_overrides_win() {
        let s = Settings::from_toml(
            DEFAULT,
            "config.toml",
            env(&[
                ("RESTRICTD_HTTP__ADDR", "127.0.0.1:9999"),
                ("RESTRICTD_SHARDS__COUNT", "16"),
                ("RESTRICTD_TRIPWIRE__WINDOW", "5m"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(s.http_addr, "127.0.0.1:9999");
        assert_eq!(s.shard_count.get(), 16);
        assert_eq!(s.tripwire.window_ms, 300_000);
    }

    #[test]
    fn instance_shards_take_ranges_lists_and_all() {
        let shards = |spec: &str| {
            Settings::from_toml(
                DEFAULT,
                "f",
                env(&[("RESTRICTD_SHARDS__COUNT", "64"), ("RESTRICTD_INSTANCE__SHARDS", spec)]),
            )
            .map(|s| s.owned_shards)
        };
        assert_eq!(shards("all").unwrap(), (0..64).collect::<Vec<_>>());
        assert_eq!(shards("0-3").unwrap(), [0, 1, 2, 3]);
        assert_eq!(shards("60-63,2, 4").unwrap(), [2, 4, 60, 61, 62, 63]);
        assert_eq!(shards("[1, \"8-9\"]").unwrap(), [1, 8, 9]);
        let err = shards("0-64").unwrap_err().to_string();
        assert!(err.contains("instance.shards") && err.contains("64"), "{err}");
        assert!(shards("5-2").unwrap_err().to_string().contains("backwards"));
        assert!(shards("x").is_err());
    }

    #[test]
    fn errors_name_the_key_and_line() {
        let err = Settings::from_toml("[http]\naddr = \"x\"\nbogus = 1\n", "f.toml", env(&[])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("line 3") && text.contains("bogus"), "{text}");

        let err = Settings::from_toml(DEFAULT, "f", env(&[("RESTRICTD_TRIPWIRE__WINDOW", "soon")])).unwrap_err();
        assert!(err.to_string().contains("tripwire.window"), "{err}");

        let err = Settings::from_toml(DEFAULT, "f", env(&[("RESTRICTD_SHARDS__COUNT", "many")])).unwrap_err();
        assert!(err.to_string().contains("RESTRICTD_SHARDS__COUNT"), "{err}");

        let err = Settings::from_toml(DEFAULT, "f", env(&[("RESTRICTD_SHARDS__NICE", "20")])).unwrap_err();
        assert!(err.to_string().contains("shards.nice"), "{err}");
    }
}
