//! The reads and small writes that the HTTP layer, the CLI and the stream
//! reader need, each one function over a connection: appends, dead letters,
//! a user's snapshot and history, persisted restricted sets, stats.

use std::collections::BTreeMap;

use redis::aio::ConnectionLike;
use redis::Value;

use super::codec::{self, EventStat};
use super::keys::Keys;
use super::stream::Field;
use crate::domain::{EntryId, Model};

/// Appends one entry with one field; returns its id once Redis acknowledged it.
pub async fn append(
    conn: &mut impl ConnectionLike,
    key: &str,
    field: Field,
    value: &[u8],
) -> redis::RedisResult<String> {
    redis::cmd("XADD").arg(key).arg("*").arg(field.as_str()).arg(value).query_async(conn).await
}

/// Appends many events in one pipeline (one round trip); ids in input order.
pub async fn append_events(conn: &mut impl ConnectionLike, items: &[(&str, &[u8])]) -> redis::RedisResult<Vec<String>> {
    let mut pipe = redis::pipe();
    for (key, event) in items {
        pipe.cmd("XADD").arg(*key).arg("*").arg(Field::Event.as_str()).arg(*event);
    }
    pipe.query_async(conn).await
}

/// An entry that could not be applied, for `<prefix>:deadletter`.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub id: EntryId,
    pub reason: &'static str,
    pub message: String,
    pub payload: Option<Vec<u8>>,
}

pub async fn dead_letter(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    shard: u32,
    d: &DeadLetter,
) -> redis::RedisResult<()> {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(keys.deadletter())
        .arg("*")
        .arg("shard")
        .arg(shard)
        .arg("id")
        .arg(d.id.to_string())
        .arg("reason")
        .arg(d.reason)
        .arg("message")
        .arg(&d.message);
    if let Some(p) = &d.payload {
        cmd.arg(Field::Event.as_str()).arg(p.as_slice());
    }
    cmd.query_async::<Value>(conn).await.map(drop)
}

/// A user's stored snapshot (undecoded), if any.
pub async fn user_snapshot(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    shard: u32,
    user: &str,
) -> redis::RedisResult<Option<Vec<u8>>> {
    redis::cmd("HGET").arg(keys.users(shard)).arg(user).query_async(conn).await
}

/// A page of a user's changes (JSON), newest first.
pub async fn history(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    shard: u32,
    user: &str,
    offset: usize,
    limit: usize,
) -> redis::RedisResult<Vec<String>> {
    // LRANGE takes signed 64-bit indexes; past the end is an empty page.
    let last = i64::MAX as usize;
    let (offset, end) = (offset.min(last), offset.saturating_add(limit).saturating_sub(1).min(last));
    redis::cmd("LRANGE").arg(keys.history(shard, user)).arg(offset).arg(end).query_async(conn).await
}

/// The persisted restricted features of users, by (shard, user), as masks.
pub async fn restricted_masks(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    model: &Model,
    users: &[(u32, &str)],
) -> redis::RedisResult<Vec<u64>> {
    let mut pipe = redis::pipe();
    for (shard, user) in users {
        pipe.cmd("HGET").arg(keys.restricted(*shard)).arg(*user);
    }
    let names: Vec<Option<String>> = pipe.query_async(conn).await?;
    Ok(names.into_iter().map(|n| n.map_or(0, |n| codec::mask_of(model, &n))).collect())
}

/// What `/v1/stats` reports, over every shard.
#[derive(Debug, Default)]
pub struct StoredStats {
    /// When the stats were last reset (ms), if ever.
    pub since_ms: Option<u64>,
    /// Per event name seen or declared.
    pub events: BTreeMap<String, EventStat>,
    /// Edge rejections per reason.
    pub rejects: BTreeMap<String, u64>,
}

pub async fn stats(conn: &mut impl ConnectionLike, keys: &Keys) -> redis::RedisResult<StoredStats> {
    let mut pipe = redis::pipe();
    for s in 0..keys.shard_count() {
        pipe.cmd("HGETALL").arg(keys.stats(s));
    }
    pipe.cmd("HGETALL").arg(keys.rejects());
    pipe.cmd("GET").arg(keys.stats_since());
    let mut replies: Vec<Value> = pipe.query_async(conn).await?;
    let since: Option<String> = replies.pop().and_then(|v| redis::from_redis_value(v).ok());
    let rejects = replies.pop().and_then(|v| redis::from_redis_value(v).ok()).unwrap_or_default();
    let mut events = BTreeMap::new();
    for reply in replies {
        codec::add_stats_fields(redis::from_redis_value(reply).unwrap_or_default(), &mut events);
    }
    Ok(StoredStats { since_ms: since.and_then(|s| s.parse().ok()), events, rejects })
}

/// Forgets every shard's stats and the rejections; they count from `now_ms`.
pub async fn reset_stats(conn: &mut impl ConnectionLike, keys: &Keys, now_ms: u64) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    for s in 0..keys.shard_count() {
        pipe.cmd("DEL").arg(keys.stats(s)).ignore();
    }
    pipe.cmd("DEL").arg(keys.rejects()).ignore();
    pipe.cmd("SET").arg(keys.stats_since()).arg(now_ms).ignore();
    pipe.query_async(conn).await
}

/// Adds edge rejections per reason.
pub async fn add_rejects(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    deltas: &[(&'static str, u64)],
) -> redis::RedisResult<()> {
    let key = keys.rejects();
    let mut pipe = redis::pipe();
    for (reason, delta) in deltas {
        pipe.cmd("HINCRBY").arg(&key).arg(*reason).arg(*delta).ignore();
    }
    pipe.query_async(conn).await
}

/// What `restrictd state --shard` shows.
#[derive(Debug, serde::Serialize)]
pub struct ShardSummary {
    pub offset: Option<String>,
    pub users: u64,
    pub dedup_ids: u64,
    pub stream_length: u64,
    pub entries_after_offset: u64,
}

pub async fn shard_summary(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    shard: u32,
    offset: Option<EntryId>,
) -> redis::RedisResult<ShardSummary> {
    let users: u64 = redis::cmd("HLEN").arg(keys.users(shard)).query_async(conn).await?;
    let dedup_ids: u64 = redis::cmd("HLEN").arg(keys.dedup(shard)).query_async(conn).await?;
    let stream_length: u64 = redis::cmd("XLEN").arg(keys.events(shard)).query_async(conn).await?;
    let entries_after_offset = match offset {
        Some(o) => {
            let ids: Vec<Value> =
                redis::cmd("XRANGE").arg(keys.events(shard)).arg(format!("({o}")).arg("+").query_async(conn).await?;
            ids.len() as u64
        }
        None => stream_length,
    };
    Ok(ShardSummary { offset: offset.map(|o| o.to_string()), users, dedup_ids, stream_length, entries_after_offset })
}
