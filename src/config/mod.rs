//! Configuration: a TOML file, then `RESTRICTD_<SECTION>__<KEY>` environment
//! overrides, parsed into typed sections with unknown keys refused, then
//! checked and resolved into [`Settings`]. Errors name the key (and the line
//! when it comes from the file).
//!
//! To add a setting: a field in its section in `sections.rs` (typed, with
//! its default), a check in `Settings::validate` if the type does not say it
//! all, and a commented line in `config.toml`.

mod de;
mod env;
mod sections;
mod shard_spec;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use restrictd_actors::link::{redact, Target};
use restrictd_domain::rules::{AggregateDef, FeatureDef, RuleDef};
use restrictd_domain::schema::EventDef;
use restrictd_domain::{Model, ModelDef};
use serde::Deserialize;

pub use self::env::ENV_PREFIX;
pub use self::sections::*;
pub use self::shard_spec::ShardSpec;

/// The file, as written.
#[derive(Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    http: HttpSettings,
    #[serde(default)]
    redis: RedisSection,
    #[serde(default)]
    shards: ShardsSettings,
    #[serde(default)]
    instance: InstanceSection,
    #[serde(default)]
    ingest: IngestSettings,
    #[serde(default)]
    checks: ChecksSettings,
    #[serde(default)]
    reader: ReaderSection,
    #[serde(default)]
    persistence: PersistenceSettings,
    #[serde(default)]
    admission: AdmissionSettings,
    #[serde(default)]
    auth: AuthSection,
    #[serde(default)]
    feed: FeedSettings,
    #[serde(default)]
    tripwire: TripwireSection,
    #[serde(default)]
    gateway: crate::gateway::GatewaySection,
    #[serde(default)]
    log: LogSettings,
    #[serde(default)]
    features: BTreeMap<String, FeatureDef>,
    #[serde(default)]
    events: BTreeMap<String, EventDef>,
    #[serde(default)]
    aggregates: BTreeMap<String, AggregateDef>,
    #[serde(default)]
    rules: BTreeMap<String, RuleDef>,
}

/// Where Redis is and how keys are named.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// The server, or the cluster's seed nodes.
    pub target: Target,
    pub key_prefix: String,
}

/// Which shards this instance owns and how it holds them.
#[derive(Debug, Clone)]
pub struct InstanceSettings {
    /// This instance's name (leases, logs).
    pub id: String,
    /// The shards this instance owns, ascending.
    pub shards: Vec<u32>,
    pub standby: bool,
    pub lease_ttl: Duration,
}

/// The validated configuration: one field per section of the file.
#[derive(Debug, Clone)]
pub struct Settings {
    pub http: HttpSettings,
    pub redis: RedisSettings,
    pub shards: ShardsSettings,
    pub instance: InstanceSettings,
    pub ingest: IngestSettings,
    pub checks: ChecksSettings,
    pub reader: ReaderSection,
    pub persistence: PersistenceSettings,
    pub admission: AdmissionSettings,
    pub auth: crate::auth::Auth,
    pub feed: FeedSettings,
    pub tripwire: TripwireSection,
    /// `/v1/authz`'s routes, checked against the file's features.
    pub gateway: crate::gateway::Gateway,
    pub log: LogSettings,
    /// The file's `features`, `events`, `aggregates` and `rules`, as written:
    /// version 1 of a new deployment (afterwards the published versions rule).
    pub rules: ModelDef,
    /// `rules` compiled.
    pub model: Arc<Model>,
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

/// A key's error: `key: message`.
fn invalid(key: &str, why: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid(format!("{key}: {why}"))
}

/// Deserializes the file, naming the key of any error.
fn parse<'de, D>(de: D) -> Result<FileConfig, (String, String)>
where
    D: serde::Deserializer<'de>,
    D::Error: std::fmt::Display,
{
    serde_path_to_error::deserialize(de).map_err(|e| (e.path().to_string(), e.inner().to_string()))
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
        let keyed = |(key, message): (String, String)| match key.as_str() {
            "." | "" => message,
            _ => format!("{key}: {message}"),
        };
        // Parse the file alone first, so its errors carry line numbers.
        let de = toml::de::Deserializer::parse(text).map_err(|e| parse_err(e.to_string()))?;
        let file = parse(de).map_err(|e| parse_err(keyed(e)))?;
        let overrides: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect();
        let located = |e: ConfigError| match e {
            // A semantic error names its key: point at it in the file.
            ConfigError::Invalid(message) => match message.split_once(": ").and_then(|(k, _)| locate(text, k)) {
                Some((line, column)) => parse_err(format!("line {line}, column {column}: {message}")),
                None => ConfigError::Invalid(message),
            },
            other => other,
        };
        if overrides.is_empty() {
            return Self::validate(file).map_err(located);
        }
        let mut table: toml::Table = toml::from_str(text).map_err(|e| parse_err(e.to_string()))?;
        for (key, value) in &overrides {
            env::apply_override(&mut table, key, value)?;
        }
        let names: Vec<&str> = overrides.iter().map(|(k, _)| k.as_str()).collect();
        let file = parse(toml::Value::Table(table)).map_err(|e| {
            ConfigError::Invalid(format!("after environment overrides ({}): {}", names.join(", "), keyed(e)))
        })?;
        Self::validate(file).map_err(|e| {
            // Where the key was set by an override, the file's line would mislead.
            let overridden = |key: &str| {
                overrides.iter().any(|(k, _)| {
                    let path = k[ENV_PREFIX.len()..].to_ascii_lowercase().replace("__", ".");
                    key == path || key.starts_with(&format!("{path}."))
                })
            };
            match e {
                ConfigError::Invalid(m) if m.split_once(": ").is_some_and(|(k, _)| overridden(k)) => {
                    ConfigError::Invalid(m)
                }
                other => located(other),
            }
        })
    }

    /// Checks what the types do not say, and resolves what depends on
    /// another section or on the machine.
    fn validate(file: FileConfig) -> Result<Settings, ConfigError> {
        let mut shards = file.shards;
        if shards.count.get() > 16384 {
            return Err(invalid("shards.count", "must be between 1 and 16384"));
        }
        if !(-20..=19).contains(&shards.nice) {
            return Err(invalid("shards.nice", "a niceness from -20 to 19 (0: as the HTTP workers)"));
        }
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        if shards.workers == 0 {
            shards.workers = cores;
        }
        let mut http = file.http;
        if http.workers == 0 {
            http.workers = cores;
        }
        if http.checks_addr.as_deref().is_some_and(|a| a.trim().is_empty()) {
            http.checks_addr = None;
        }
        if http.checks_workers == 0 {
            return Err(invalid("http.checks_workers", "at least 1"));
        }
        if !(-20..=19).contains(&http.nice) {
            return Err(invalid("http.nice", "a niceness from -20 to 19"));
        }
        let redis = redis_settings(file.redis)?;
        let instance = instance_settings(file.instance, &shards, &http)?;
        if file.ingest.body_limit_bytes < 1024 {
            return Err(invalid("ingest.body_limit_bytes", "must be at least 1024"));
        }
        if file.admission.max_write_delay.is_zero() {
            return Err(invalid("admission.max_write_delay", "must be above zero"));
        }
        if let Some((name, _)) = file.auth.admin_tokens.iter().find(|(_, t)| t.len() < 16) {
            return Err(invalid(&format!("auth.admin_tokens.{name}"), "a token must be at least 16 characters"));
        }
        if let Some((name, _)) = file.auth.ingest_tokens.iter().find(|(_, t)| t.len() < 16) {
            return Err(invalid(&format!("auth.ingest_tokens.{name}"), "a token must be at least 16 characters"));
        }
        let t = &file.tripwire;
        if !(t.threshold > 0.0 && t.threshold <= 1.0) {
            return Err(invalid("tripwire.threshold", "a share in (0, 1], e.g. 0.05 for 5 %"));
        }
        let def =
            ModelDef { features: file.features, events: file.events, aggregates: file.aggregates, rules: file.rules };
        let model =
            Model::compile(&def, file.ingest.unknown_events == UnknownEvents::Accept).map_err(ConfigError::Invalid)?;
        if model.features.is_empty() {
            return Err(invalid("features", "declare at least one feature, e.g. [features.can_message]"));
        }
        let gateway =
            crate::gateway::Gateway::new(file.gateway, &model.features).map_err(|(key, why)| invalid(&key, why))?;
        let a = file.auth;
        Ok(Settings {
            http,
            redis,
            shards,
            instance,
            ingest: file.ingest,
            checks: file.checks,
            reader: file.reader,
            persistence: file.persistence,
            admission: file.admission,
            auth: crate::auth::Auth {
                admin: a.admin_tokens.into_iter().collect(),
                require_for_reads: a.require_for_reads,
                read_token: a.read_token.filter(|t| !t.is_empty()),
                ingest_token: a.ingest_token.filter(|t| !t.is_empty()),
                producers: a.ingest_tokens.into_iter().collect(),
            },
            feed: file.feed,
            tripwire: file.tripwire,
            gateway,
            log: file.log,
            rules: def,
            model: Arc::new(model),
        })
    }
}

/// Where a dotted key (or the deepest part of it that is written) stands in
/// the file: (line, column), from 1. A part may index an array
/// (`gateway.routes[1].feature`).
pub(crate) fn locate(text: &str, key: &str) -> Option<(usize, usize)> {
    use toml::de::DeValue;
    let root = toml::de::DeTable::parse(text).ok()?;
    let mut table = root.get_ref();
    let mut start = None;
    'parts: for part in key.split('.') {
        let (name, indices) = part.split_once('[').map_or((part, ""), |(n, rest)| (n, rest));
        let Some((k, mut v)) = table.iter().find(|(k, _)| k.get_ref() == name) else { break };
        start = Some(k.span().start);
        for index in indices.split('[').filter_map(|i| i.trim_end_matches(']').parse::<usize>().ok()) {
            let DeValue::Array(items) = v.get_ref() else { break 'parts };
            let Some(item) = items.get(index) else { break 'parts };
            v = item;
            // An array's table has no key of its own: its first key stands for it.
            if let DeValue::Table(t) = v.get_ref() {
                start = t.iter().next().map(|(first, _)| first.span().start).or(start);
            }
        }
        match v.get_ref() {
            DeValue::Table(t) => table = t,
            _ => {
                start = Some(v.span().start);
                break;
            }
        }
    }
    let start = start?;
    let line = text[..start].matches('\n').count() + 1;
    let column = start - text[..start].rfind('\n').map_or(0, |i| i + 1) + 1;
    Some((line, column))
}

fn redis_settings(r: RedisSection) -> Result<RedisSettings, ConfigError> {
    if r.key_prefix.is_empty() || r.key_prefix.contains(['{', '}', ' ']) {
        return Err(invalid("redis.key_prefix", "must be non-empty, without braces or spaces"));
    }
    redis::parse_redis_url(&r.url)
        .ok_or_else(|| invalid("redis.url", format!("{:?} is not a redis:// URL", redact(&r.url))))?;
    for node in &r.nodes {
        redis::parse_redis_url(node)
            .ok_or_else(|| invalid("redis.nodes", format!("{:?} is not a redis:// URL", redact(node))))?;
    }
    let target = match (r.cluster, r.nodes.is_empty()) {
        (false, true) => Target::Single(r.url),
        (_, false) => Target::Cluster(r.nodes),
        (true, true) => Target::Cluster(vec![r.url]),
    };
    Ok(RedisSettings { target, key_prefix: r.key_prefix })
}

fn instance_settings(
    i: InstanceSection,
    shards: &ShardsSettings,
    http: &HttpSettings,
) -> Result<InstanceSettings, ConfigError> {
    let owned = i.shards.resolve(shards.count.get()).map_err(|e| invalid("instance.shards", e))?;
    if i.lease_ttl < Duration::from_secs(1) {
        return Err(invalid("instance.lease_ttl", "must be at least 1s"));
    }
    let id = if i.id.is_empty() {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        // Stable across restarts, so a restarted instance reclaims its own
        // leases at once; distinct for instances on one host (distinct addresses).
        format!("{}/{}", host.trim(), http.addr)
    } else {
        i.id
    };
    Ok(InstanceSettings { id, shards: owned, standby: i.standby, lease_ttl: i.lease_ttl })
}

#[cfg(test)]
mod tests;
