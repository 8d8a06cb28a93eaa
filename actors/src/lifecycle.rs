//! The rule lifecycle's writes: publish a version (checked, compare-and-set,
//! then a switch entry in every shard stream), roll back (publish a copy of
//! an earlier version, or of one rule's earlier definition), seed version 1
//! from the configuration file. Used by the HTTP API, the command line and
//! the tripwire (`on_trip = "rollback"`).

use crate::clock::now_ms;
use crate::domain::ruleset::{diff, next_layout, Diff, Revert, VersionRecord};
use crate::domain::{EntryId, ModelDef};
use crate::link::Conn;
use crate::store::{rules, Keys};

/// Why a publish did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{}", conflict(*expected, *current))]
    Conflict { expected: u64, current: Option<u64> },
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error("no version {0} was published")]
    Unknown(u64),
    #[error("version {0} is the current version already; nothing to roll back, nothing changed")]
    Current(u64),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// A compare-and-set that found another version, as a sentence.
fn conflict(expected: u64, current: Option<u64>) -> String {
    match current {
        Some(v) => format!("the current version is {v}, not {expected} as If-Match says; nothing changed"),
        None => format!("no version is published yet, not {expected} as If-Match says; nothing changed"),
    }
}

/// Publishes without `If-Match` that meet another publish are laid out again
/// on top of it, at most this many times.
const PUBLISH_ATTEMPTS: usize = 32;

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
    /// Lift the restrictions of the rules this version removes.
    pub lift_removed: bool,
    pub accept_unknown_events: bool,
}

/// Publishes `content` as the next version and switches every shard to it.
pub async fn publish(
    conn: &mut Conn,
    keys: &Keys,
    content: ModelDef,
    p: Publish<'_>,
) -> Result<Published, PublishError> {
    publish_reverting(conn, keys, content, p, None).await
}

/// `publish`, with a rule's restrictions to lift where each shard switches.
async fn publish_reverting(
    conn: &mut Conn,
    keys: &Keys,
    content: ModelDef,
    p: Publish<'_>,
    revert: Option<Revert>,
) -> Result<Published, PublishError> {
    let mut attempt = 0;
    let (record, diff) = loop {
        attempt += 1;
        let current = rules::current(conn, keys).await?;
        let current_version = current.as_ref().map(|c| c.version);
        if let Some(expected) = p.expected {
            if current_version != Some(expected) {
                return Err(PublishError::Conflict { expected, current: current_version });
            }
        }
        let record = VersionRecord {
            version: current_version.unwrap_or(0) + 1,
            by: p.by.to_string(),
            at_ms: now_ms(),
            message: p.message.clone(),
            source: p.source.clone(),
            content: content.clone(),
            layout: Default::default(),
            retired: Default::default(),
            lift_removed: p.lift_removed,
            revert: revert.clone(),
        };
        // Laying out and compiling a large rule set takes milliseconds: off the
        // caller's thread (an HTTP worker answering checks).
        let accept_unknown = p.accept_unknown_events;
        let (record, diff) = tokio::task::spawn_blocking(move || prepare(current, record, accept_unknown))
            .await
            .map_err(|e| PublishError::Invalid(vec![format!("the rule set could not be checked: {e}")]))??;
        if rules::publish(conn, keys, &record, current_version).await? {
            break (record, diff);
        }
        // Another publish came first. With If-Match that is a conflict; without,
        // this one becomes the version after it.
        if p.expected.is_some() || attempt >= PUBLISH_ATTEMPTS {
            let now = rules::current_version(conn, keys).await?;
            return Err(PublishError::Conflict { expected: current_version.unwrap_or(0), current: now });
        }
    };
    let version = record.version;
    // Version 1 is what every shard already applies (the file it started
    // with, see `reader::rules_of`): only later versions switch shards.
    let switches = if version > 1 { rules::append_switch(conn, keys, &record).await? } else { Vec::new() };
    let audit = serde_json::json!({
        "type": "rules", "version": version, "by": record.by, "source": record.source,
        "message": record.message, "at_ms": record.at_ms, "at": crate::domain::time::rfc3339_ms(record.at_ms),
    });
    let audited = crate::store::tripwire::audit(conn, keys, crate::store::feed::kind::RULES, &audit.to_string()).await;
    if let Err(e) = audited {
        tracing::warn!(version, error = %e, "could not record the version in the audit stream and the feed");
    }
    tracing::info!(version, by = p.by, "rule set published");
    Ok(Published { record, diff, switches })
}

/// Lays `record` out after `current` and checks that it compiles (every
/// error, each with its key); the diff against `current`.
fn prepare(
    current: Option<VersionRecord>,
    mut record: VersionRecord,
    accept_unknown: bool,
) -> Result<(VersionRecord, Diff), PublishError> {
    let (layout, retired) =
        next_layout(current.as_ref(), &record.content, record.version).map_err(|e| PublishError::Invalid(vec![e]))?;
    (record.layout, record.retired) = (layout, retired);
    if let Err(first) = record.compile(accept_unknown) {
        let mut all = crate::domain::Model::errors(&record.content, accept_unknown);
        if all.is_empty() {
            all.push(first);
        }
        return Err(PublishError::Invalid(all));
    }
    let diff = diff(current.as_ref().map(|c| &c.content), &record.content);
    Ok((record, diff))
}

/// Publishes a copy of version `to` as the next version.
pub async fn rollback(conn: &mut Conn, keys: &Keys, to: u64, p: Publish<'_>) -> Result<Published, PublishError> {
    let mut old = rules::version(conn, keys, to).await?.ok_or(PublishError::Unknown(to))?;
    let current = rules::current(conn, keys).await?;
    if current.as_ref().map(|c| c.version) == Some(to) {
        return Err(PublishError::Current(to));
    }
    // A feature added since stays defined (clients check it by name), with
    // no rule of the earlier version restricting it.
    for (name, feature) in current.map(|c| c.content.features).unwrap_or_default() {
        old.content.features.entry(name).or_insert(feature);
    }
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
        lift_removed: false,
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

/// A candidate compiled at the positions the current version gives its
/// features and rules (so that its masks read like today's).
pub fn candidate(
    current: Option<&VersionRecord>,
    content: &ModelDef,
    accept_unknown: bool,
) -> Result<crate::domain::Model, String> {
    let version = current.map_or(1, |c| c.version + 1);
    let (layout, retired) = next_layout(current, content, version)?;
    crate::domain::Model::compile_laid_out(content, &layout, &retired, accept_unknown)
}

/// Rolls rule `rule` back to its definition before the version that
/// introduced or last changed it (removes it if that version introduced it),
/// when that version is at most `within_ms` old. `None`: nothing to roll back.
/// Every shard lifts the restrictions `rule` made since `since_ms` where it
/// switches to the new version (`VersionRecord::revert`).
pub async fn rollback_rule(
    conn: &mut Conn,
    keys: &Keys,
    rule: &str,
    (within_ms, since_ms): (u64, u64),
    accept_unknown_events: bool,
) -> Result<Option<Published>, PublishError> {
    let Some(current) = rules::current(conn, keys).await? else { return Ok(None) };
    let same = |a: Option<&crate::domain::rules::RuleDef>, b: Option<&crate::domain::rules::RuleDef>| {
        serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
    };
    let mut v = current.version;
    let (changed_in, before) = loop {
        if v == 0 {
            return Ok(None);
        }
        let this = rules::version(conn, keys, v).await?.ok_or(PublishError::Unknown(v))?;
        let prev = if v > 1 { rules::version(conn, keys, v - 1).await? } else { None };
        let (now_def, prev_def) = (this.content.rules.get(rule), prev.as_ref().and_then(|p| p.content.rules.get(rule)));
        if now_def.is_some() && !same(now_def, prev_def) {
            break (this.version, (this.at_ms, prev_def.cloned()));
        }
        v -= 1;
    };
    if now_ms().saturating_sub(before.0) > within_ms {
        return Ok(None);
    }
    let mut content = current.content.clone();
    match before.1 {
        Some(def) => content.rules.insert(rule.to_string(), def),
        None => content.rules.remove(rule),
    };
    let p = Publish {
        by: "tripwire",
        message: Some(format!("{rule} tripped soon after version {changed_in} changed it")),
        source: format!("automatic rollback of {rule}"),
        expected: Some(current.version),
        accept_unknown_events,
        lift_removed: false,
    };
    let revert = Revert { rule: rule.to_string(), since_ms };
    publish_reverting(conn, keys, content, p, Some(revert)).await.map(Some)
}
