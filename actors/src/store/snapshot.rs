//! Snapshots of shard state in Redis, written behind the shard actor, and
//! the changelog written ahead of them.
//!
//! Per shard S (all keys share the hash tag `{S}`, so one MULTI/EXEC covers
//! them on a single Redis or a cluster):
//! * `<prefix>:{S}:users`  hash: user id → snapshot (version byte + bincode)
//! * `<prefix>:{S}:dedup`  hash: 16-byte event-id key → event time (ms)
//! * `<prefix>:{S}:offset` string: id of the last entry reflected in the above
//!
//! A flush writes the users changed since the last one, the dedup changes and
//! the offset in one atomic unit, and trims the stream up to the offset minus
//! the safety margin in the same unit. Every write here is fenced
//! (`store::fence`): Redis applies it only while the shard's lease holds the
//! writer's token. Recovery loads the hashes in
//! chunks (HSCAN) and the reader replays the stream after the offset, so every
//! event is reflected exactly once.

use std::sync::Arc;

use redis::Value;

use super::codec::EventStats;
use super::fence::{self, Fence, WriteError};
use super::keys::Keys;
use super::stream::Field;
use crate::domain::shard_state::DedupChanges;
use crate::domain::snapshot::decode_user;
use crate::domain::{EntryId, Model, ShardState};
use crate::link::Conn;

/// What one flush writes.
#[derive(Debug, Default)]
pub struct FlushBatch {
    /// Changed users, encoded.
    pub users: Vec<(Box<str>, Vec<u8>)>,
    pub dedup: DedupChanges,
    /// The last entry applied when the batch was encoded.
    pub offset: EntryId,
    /// Trim the stream below this id (`XTRIM MINID`), when trimming is on.
    pub trim_below: Option<EntryId>,
    /// Changes since the last flush: (user, JSON), for the audit stream and
    /// the users' histories. In the same transaction as the state, so each is
    /// recorded exactly once across crashes.
    pub audit: Vec<(Box<str>, Arc<str>)>,
    /// Event counts and amounts since the last flush, by name.
    pub stats: EventStats,
    /// Counts per minute for the charts: (series, minute, count).
    pub minutes: Vec<(String, u64, u64)>,
    /// The rule-set version the shard applies (0: the configuration file's).
    pub rules_version: u64,
    /// Changelog entries not yet written by `write_changes`.
    pub changes: ChangeBatch,
}

/// Restriction changes for the instances that do not own the shard.
#[derive(Debug, Default)]
pub struct ChangeBatch {
    /// Changes as JSON (with the user's whole restricted set), in order.
    pub entries: Vec<Arc<str>>,
    /// Users whose restricted set changed: (user, its features with their
    /// causes as `user::causes` encodes them, empty when none), for
    /// `<prefix>:{S}:restricted`.
    pub restricted: Vec<(Box<str>, String)>,
    /// Rewrite `<prefix>:{S}:restricted` from scratch with `restricted`
    /// (the first write after a shard is recovered).
    pub rewrite: bool,
}

impl ChangeBatch {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.restricted.is_empty() && !self.rewrite
    }
}

/// Entries kept in a shard's changelog.
pub const CHANGES_MAXLEN: u64 = 100_000;

/// Appends a change to a stream kept at about `maxlen` entries.
fn add_change(pipe: &mut redis::Pipeline, stream: &str, maxlen: u64, json: &str) {
    let cmd = pipe.cmd("XADD").arg(stream).arg("MAXLEN").arg("~").arg(maxlen);
    cmd.arg("*").arg(Field::Change.as_str()).arg(json).ignore();
}

/// A batch's changelog entries and restricted sets; with `feed`, its
/// entries in the feed too (in the same transaction: one Redis only, a
/// cluster cannot put the feed's key in the shard's slot).
fn add_changes(pipe: &mut redis::Pipeline, keys: &Keys, shard: u32, batch: &ChangeBatch, feed: bool) {
    for json in &batch.entries {
        add_change(pipe, keys.changes(shard), CHANGES_MAXLEN, json);
        if feed {
            super::feed::add(pipe, keys, super::feed::kind::CHANGE, json);
        }
    }
    if batch.rewrite {
        pipe.cmd("DEL").arg(keys.restricted(shard)).ignore();
    }
    let (set, lifted): (Vec<_>, Vec<_>) = batch.restricted.iter().partition(|(_, features)| !features.is_empty());
    if !set.is_empty() {
        let cmd = pipe.cmd("HSET").arg(keys.restricted(shard));
        for (user, features) in set {
            cmd.arg(user.as_bytes()).arg(features.as_str());
        }
        cmd.ignore();
    }
    if !lifted.is_empty() {
        let cmd = pipe.cmd("HDEL").arg(keys.restricted(shard));
        for (user, _) in lifted {
            cmd.arg(user.as_bytes());
        }
        cmd.ignore();
    }
}

/// Writes changelog entries and restricted sets ahead of the snapshot, so
/// other instances see them within `changelog_delay`. Entries carry whole
/// sets, so if the owner dies before its snapshot and the replay writes them
/// again, followers end in the same state.
pub async fn write_changes(conn: &mut Conn, keys: &Keys, fence: &Fence, batch: &ChangeBatch) -> Result<(), WriteError> {
    let single = !matches!(conn, Conn::Cluster(_));
    fence::exec_shard(conn, keys, fence, |pipe| add_changes(pipe, keys, fence.shard, batch, single)).await?;
    feed_after(conn, keys, batch, single).await;
    Ok(())
}

/// On a Redis Cluster, the feed's entries of a batch just committed (an
/// owner that dies between the two leaves them out of the feed).
async fn feed_after(conn: &mut Conn, keys: &Keys, batch: &ChangeBatch, single: bool) {
    if single || batch.entries.is_empty() {
        return;
    }
    let items: Vec<(&str, &str)> = batch.entries.iter().map(|j| (super::feed::kind::CHANGE, &**j)).collect();
    if let Err(e) = super::feed::append(conn, keys, &items).await {
        tracing::warn!(error = %e, entries = items.len(), "could not append changes to the feed");
    }
}

/// Entries kept in a shard's audit stream, and changes kept per user history.
pub const AUDIT_MAXLEN: u64 = 100_000;
pub const HISTORY_MAXLEN: i64 = 10_000;

/// Writes a flush in one atomic unit, fenced by the shard's lease
/// (`fence::exec_shard`).
pub async fn write(conn: &mut Conn, keys: &Keys, fence: &Fence, batch: &FlushBatch) -> Result<(), WriteError> {
    let single = !matches!(conn, Conn::Cluster(_));
    fence::exec_shard(conn, keys, fence, |pipe| add_flush(pipe, keys, fence.shard, batch, single)).await?;
    feed_after(conn, keys, &batch.changes, single).await;
    if !single {
        if let Err(e) = super::minutes::append(conn, keys, &batch.minutes).await {
            tracing::warn!(error = %e, "could not add the flush's counts per minute");
        }
    }
    Ok(())
}

/// A flush's commands, each `ignore`d.
fn add_flush(pipe: &mut redis::Pipeline, keys: &Keys, shard: u32, batch: &FlushBatch, feed: bool) {
    if !batch.users.is_empty() {
        let cmd = pipe.cmd("HSET").arg(keys.users(shard));
        for (user, blob) in &batch.users {
            cmd.arg(user.as_bytes()).arg(blob.as_slice());
        }
        cmd.ignore();
    }
    if !batch.dedup.added.is_empty() {
        let cmd = pipe.cmd("HSET").arg(keys.dedup(shard));
        for (key, at) in &batch.dedup.added {
            cmd.arg(&key.to_be_bytes()[..]).arg(*at);
        }
        cmd.ignore();
    }
    if !batch.dedup.removed.is_empty() {
        let cmd = pipe.cmd("HDEL").arg(keys.dedup(shard));
        for key in &batch.dedup.removed {
            cmd.arg(&key.to_be_bytes()[..]);
        }
        cmd.ignore();
    }
    for (user, json) in &batch.audit {
        add_change(pipe, keys.audit(shard), AUDIT_MAXLEN, json);
        let history = keys.history(shard, user);
        pipe.cmd("LPUSH").arg(&history).arg(&**json).ignore();
        pipe.cmd("LTRIM").arg(&history).arg(0).arg(HISTORY_MAXLEN - 1).ignore();
    }
    add_changes(pipe, keys, shard, &batch.changes, feed);
    for (field, delta) in batch.stats.fields() {
        pipe.cmd("HINCRBY").arg(keys.stats(shard)).arg(field).arg(delta).ignore();
    }
    if feed {
        super::minutes::add(pipe, keys, &batch.minutes);
    }
    if batch.rules_version > 0 {
        pipe.cmd("SET").arg(keys.shard_rules(shard)).arg(batch.rules_version).ignore();
    }
    pipe.cmd("SET").arg(keys.offset(shard)).arg(batch.offset.to_string()).ignore();
    if let Some(min) = batch.trim_below {
        pipe.cmd("XTRIM").arg(keys.events(shard)).arg("MINID").arg(min.to_string()).ignore();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("shard {shard}: offset {value:?} is not a stream id")]
    Offset { shard: u32, value: String },
    #[error(
        "shard {shard}: snapshot of user {user:?} cannot be read ({reason}); inspect it with `restrictd state --user`"
    )]
    User { shard: u32, user: String, reason: String },
    #[error("unexpected HSCAN reply")]
    Reply,
    #[error("shard {shard}: its snapshot was taken under rule-set version {version}, which cannot be used: {reason}")]
    Rules { shard: u32, version: u64, reason: String },
}

/// How a shard's snapshot is loaded.
#[derive(Debug, Clone, Copy)]
pub struct LoadLimits {
    /// For the restored dedup memory.
    pub dedup_window_ms: u64,
    /// A shard of at most this many users is read in one `HGETALL`: a
    /// third of the work `HSCAN` costs Redis (which copies each field and
    /// value before replying), during which Redis serves no one else
    /// (about 0.3 µs per user); a larger one in `HSCAN` chunks.
    pub whole_hash: usize,
}

/// Reads a shard's snapshot: users, dedup memory and offset.
pub async fn load(
    conn: &mut Conn,
    keys: &Keys,
    shard: u32,
    model: &Model,
    limits: LoadLimits,
) -> Result<ShardState, LoadError> {
    let mut state = ShardState::new(limits.dedup_window_ms);
    state.applied = read_offset(conn, keys, shard).await?.unwrap_or(EntryId::ZERO);
    let users_key = keys.users(shard);
    // Sized once for every user stored: no rehash while loading.
    let stored: usize = redis::cmd("HLEN").arg(users_key).query_async(conn).await?;
    state.users.reserve(stored);
    read_hash(conn, users_key, stored <= limits.whole_hash, |field, value| {
        let user = String::from_utf8_lossy(&field);
        let decoded = decode_user(model, &value).map_err(|e| LoadError::User {
            shard,
            user: user.clone().into_owned(),
            reason: e.to_string(),
        })?;
        state.users.insert(&user, decoded);
        Ok(())
    })
    .await?;
    let mut dedup: Vec<(u64, u128)> = Vec::new();
    scan_hash(conn, keys.dedup(shard), |field, value| {
        let key: [u8; 16] = field.as_slice().try_into().map_err(|_| LoadError::Reply)?;
        let at = std::str::from_utf8(&value).ok().and_then(|v| v.parse().ok()).ok_or(LoadError::Reply)?;
        dedup.push((at, u128::from_be_bytes(key)));
        Ok(())
    })
    .await?;
    dedup.sort_unstable();
    for (at, key) in dedup {
        state.dedup.restore(key, at);
    }
    Ok(state)
}

/// The stored offset of a shard, if any.
pub async fn read_offset(conn: &mut Conn, keys: &Keys, shard: u32) -> Result<Option<EntryId>, LoadError> {
    let offset: Option<String> = redis::cmd("GET").arg(keys.offset(shard)).query_async(conn).await?;
    offset.map(|o| EntryId::parse(&o).ok_or(LoadError::Offset { shard, value: o })).transpose()
}

/// Entries asked for per `HSCAN` while loading: few round trips, and Redis
/// answers other clients between two.
const SCAN_COUNT: usize = 5_000;

/// Reads a hash, handing each field and value to `each`: at once when
/// `whole`, in chunks otherwise (`scan_hash`).
pub async fn read_hash(
    conn: &mut Conn,
    key: &str,
    whole: bool,
    mut each: impl FnMut(Vec<u8>, Vec<u8>) -> Result<(), LoadError>,
) -> Result<(), LoadError> {
    if !whole {
        return scan_hash(conn, key, each).await;
    }
    let reply: Value = redis::cmd("HGETALL").arg(key).query_async(conn).await?;
    let items = match reply {
        Value::Array(items) => items,
        Value::Map(pairs) => pairs.into_iter().flat_map(|(f, v)| [f, v]).collect(),
        _ => return Err(LoadError::Reply),
    };
    each_pair(items, &mut each)
}

fn each_pair(
    items: Vec<Value>,
    each: &mut impl FnMut(Vec<u8>, Vec<u8>) -> Result<(), LoadError>,
) -> Result<(), LoadError> {
    let mut items = items.into_iter();
    while let (Some(Value::BulkString(f)), Some(Value::BulkString(v))) = (items.next(), items.next()) {
        each(f, v)?;
    }
    Ok(())
}

/// Reads a whole hash in chunks, handing each field and value to `each`.
pub async fn scan_hash(
    conn: &mut Conn,
    key: &str,
    mut each: impl FnMut(Vec<u8>, Vec<u8>) -> Result<(), LoadError>,
) -> Result<(), LoadError> {
    let mut cursor: u64 = 0;
    loop {
        let reply: Value =
            redis::cmd("HSCAN").arg(key).arg(cursor).arg("COUNT").arg(SCAN_COUNT).query_async(conn).await?;
        let Value::Array(mut parts) = reply else {
            return Err(LoadError::Reply);
        };
        if parts.len() != 2 {
            return Err(LoadError::Reply);
        }
        let items = parts.pop().unwrap_or(Value::Nil);
        cursor = match &parts[0] {
            Value::BulkString(b) => std::str::from_utf8(b).ok().and_then(|c| c.parse().ok()).ok_or(LoadError::Reply)?,
            Value::Int(i) => *i as u64,
            _ => return Err(LoadError::Reply),
        };
        let Value::Array(items) = items else {
            return Err(LoadError::Reply);
        };
        each_pair(items, &mut each)?;
        if cursor == 0 {
            return Ok(());
        }
    }
}

/// The id of the newest entry of stream `key` (`None`: empty or absent).
pub async fn newest_entry(conn: &mut Conn, key: &str) -> redis::RedisResult<Option<EntryId>> {
    let reply: Value = redis::cmd("XREVRANGE").arg(key).arg("+").arg("-").arg("COUNT").arg(1).query_async(conn).await?;
    Ok(super::stream::newest_id(&reply))
}
