//! The rule lifecycle, as the HTTP API and the command line drive it:
//! publish a version (checked, compare-and-set, then a switch entry in every
//! shard stream), roll back (publish a copy of an earlier version), seed
//! version 1 from the configuration file, and keep this instance's HTTP side
//! on the newest version (`watch`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use restrictd_actors::clock::now_ms;
use restrictd_actors::domain::ruleset::{diff, next_layout, Diff, VersionRecord};
use restrictd_actors::domain::{EntryId, ModelDef};
use restrictd_actors::link::{Conn, Target};
use restrictd_actors::retry::{self, RetryParams};
use restrictd_actors::shared::Shared;
use restrictd_actors::store::{rules, Keys};

/// Why a publish did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the current version is {current:?}, not the {expected} this publish was based on (If-Match)")]
    Conflict { expected: u64, current: Option<u64> },
    #[error("{0}")]
    Invalid(String),
    #[error("no version {0} was published")]
    Unknown(u64),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// What a publish did.
#[derive(Debug)]
pub struct Published {
    pub record: VersionRecord,
    pub diff: Diff,
    /// Per shard: the entry that switches it to the new version.
    pub switches: Vec<EntryId>,
}

/// Who publishes, why, and against which version.
pub struct Publish<'a> {
    pub by: &'a str,
    pub message: Option<String>,
    pub source: String,
    /// `If-Match`: publish only if the current version is still this one.
    pub expected: Option<u64>,
    pub accept_unknown_events: bool,
}

/// Publishes `content` as the next version and switches every shard to it.
pub async fn publish(
    conn: &mut Conn,
    keys: &Keys,
    content: ModelDef,
    p: Publish<'_>,
) -> Result<Published, PublishError> {
    let current = rules::current(conn, keys).await?;
    let current_version = current.as_ref().map(|c| c.version);
    if let Some(expected) = p.expected {
        if current_version != Some(expected) {
            return Err(PublishError::Conflict { expected, current: current_version });
        }
    }
    let version = current_version.unwrap_or(0) + 1;
    let (layout, retired) = next_layout(current.as_ref(), &content, version).map_err(PublishError::Invalid)?;
    let record = VersionRecord {
        version,
        by: p.by.to_string(),
        at_ms: now_ms(),
        message: p.message,
        source: p.source,
        content,
        layout,
        retired,
    };
    record.compile(p.accept_unknown_events).map_err(PublishError::Invalid)?;
    if !rules::publish(conn, keys, &record, current_version).await? {
        let now = rules::current_version(conn, keys).await?;
        return Err(PublishError::Conflict { expected: current_version.unwrap_or(0), current: now });
    }
    // Version 1 is what every shard already applies (the file it started
    // with, see `reader::rules_of`): only later versions switch shards.
    let switches = if version > 1 { rules::append_switch(conn, keys, &record).await? } else { Vec::new() };
    let diff = diff(current.as_ref().map(|c| &c.content), &record.content);
    tracing::info!(version, by = p.by, "rule set published");
    Ok(Published { record, diff, switches })
}

/// Publishes a copy of version `to` as the next version.
pub async fn rollback(conn: &mut Conn, keys: &Keys, to: u64, p: Publish<'_>) -> Result<Published, PublishError> {
    let old = rules::version(conn, keys, to).await?.ok_or(PublishError::Unknown(to))?;
    publish(conn, keys, old.content, Publish { source: format!("rollback to {to}"), ..p }).await
}

/// The current version; on a deployment's first start, version 1 from the
/// configuration file (published once, whoever starts first).
pub async fn seed(
    conn: &mut Conn,
    keys: &Keys,
    file: &ModelDef,
    accept_unknown: bool,
) -> Result<VersionRecord, PublishError> {
    if let Some(current) = rules::current(conn, keys).await? {
        return Ok(current);
    }
    let p = Publish {
        by: "file",
        message: None,
        source: "seed".into(),
        expected: None,
        accept_unknown_events: accept_unknown,
    };
    match publish(conn, keys, file.clone(), p).await {
        Ok(published) => Ok(published.record),
        // Another instance seeded first.
        Err(PublishError::Conflict { .. }) => rules::current(conn, keys).await?.ok_or(PublishError::Unknown(1)),
        Err(e) => Err(e),
    }
}

/// Whether the configuration file's rule set differs from the current version.
pub fn differs(file: &ModelDef, current: &VersionRecord) -> bool {
    serde_json::to_value(file).ok() != serde_json::to_value(&current.content).ok()
}

/// Keeps this instance's HTTP side on the newest version: seeds version 1 on
/// a new deployment, then looks for a newer version every second. Sets
/// `file_differs` when the file is not the current version.
pub fn watch(shared: Arc<Shared>, target: Target, file: ModelDef, file_differs: Arc<AtomicBool>) {
    actix_rt::spawn(async move {
        let connect = || target.connect(Duration::from_secs(2), Duration::from_secs(5));
        let mut conn = retry::until_ok(RetryParams::REDIS, connect, |_| {}).await;
        let accept_unknown = shared.model().schema.accepts_unknown();
        let mut reported = false;
        loop {
            match seed(&mut conn, &shared.keys, &file, accept_unknown).await {
                Ok(current) => {
                    let differ = differs(&file, &current);
                    file_differs.store(differ, Ordering::Release);
                    if differ && !std::mem::replace(&mut reported, true) {
                        tracing::warn!(
                            version = current.version,
                            "the configuration file's rules differ from the current version; `restrictd rules publish` makes it the next"
                        );
                    }
                    if current.version > shared.model_version() {
                        match current.compile(accept_unknown) {
                            Ok(model) => {
                                shared.set_model(current.version, Arc::new(model));
                            }
                            Err(e) => {
                                tracing::error!(version = current.version, error = %e, "the current rule set does not compile")
                            }
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "cannot read the current rule set yet"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

/// A candidate compiled at the positions the current version gives its
/// features and rules (so that its masks read like today's).
pub fn candidate(
    current: Option<&VersionRecord>,
    content: &ModelDef,
    accept_unknown: bool,
) -> Result<restrictd_actors::domain::Model, String> {
    let version = current.map_or(1, |c| c.version + 1);
    let (layout, retired) = next_layout(current, content, version)?;
    restrictd_actors::domain::Model::compile_laid_out(content, &layout, &retired, accept_unknown)
}

/// A simulation as people read it: per rule its share of `population` and
/// whether that share would trip the tripwire at once.
pub fn simulation_json(
    sim: &restrictd_actors::domain::simulate::Simulation,
    tripwire: &restrictd_actors::domain::TripwireSettings,
) -> serde_json::Value {
    let population = sim.users.max(1);
    let rules: Vec<serde_json::Value> = sim
        .rules
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            v["share"] = serde_json::json!(r.would_restrict as f64 / population as f64);
            v["would_trip"] = serde_json::json!(
                r.mode == "enforce"
                    && r.would_restrict >= tripwire.min_restricted
                    && r.would_restrict * 1_000_000 >= tripwire.threshold_ppm * population
            );
            v
        })
        .collect();
    serde_json::json!({"population": sim.users, "released_if_lifted": sim.released_if_lifted, "rules": rules})
}
