//! The feed's stream (`<prefix>:feed`): every restriction change, tripwire
//! change and rule-set version of the deployment, in one order, with the
//! stream id as the feed's id. Shard owners append changes in the same
//! transaction as the shard's changelog (on one Redis: exactly once, in the
//! shard's order); the deciding instance appends tripwire changes, the
//! publisher rule-set versions. Every instance reads it back for its
//! subscribers, and a consumer resumes after an id from any instance.
//!
//! Stored subscriptions (`<prefix>:subscriptions`, a hash: name → JSON) are
//! kept here too, with the id each one's consumer acknowledged.

use redis::Value;

use super::keys::Keys;
use crate::domain::EntryId;
use crate::link::Conn;

/// Entries the feed keeps at most (about: trimmed with `MAXLEN ~`); older
/// ones also leave once past `feed.replay_window` (`trim`).
pub const FEED_MAXLEN: u64 = 1_000_000;

/// What a feed entry is about (its `kind` field).
pub mod kind {
    pub const CHANGE: &str = "change";
    pub const TRIPWIRE: &str = "tripwire";
    pub const RULES: &str = "rules";
    /// A stored subscription changed: its connected consumers reload it.
    pub const SUBSCRIPTION: &str = "subscription";
}

/// Appends one item (`kind`, its JSON) to the feed in `pipe`.
pub fn add(pipe: &mut redis::Pipeline, keys: &Keys, kind: &str, json: &str) {
    pipe.cmd("XADD").arg(keys.feed()).arg("MAXLEN").arg("~").arg(FEED_MAXLEN);
    pipe.arg("*").arg("kind").arg(kind).arg("item").arg(json).ignore();
}

/// Appends items outside any transaction (tripwire changes, versions,
/// subscription updates; a shard's changes on a Redis Cluster).
pub async fn append(conn: &mut Conn, keys: &Keys, items: &[(&str, &str)]) -> redis::RedisResult<()> {
    if items.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for (kind, json) in items {
        add(&mut pipe, keys, kind, json);
    }
    pipe.query_async::<()>(conn).await
}

/// One entry read back: (id, kind, JSON).
pub type Entry = (EntryId, String, String);

fn entries(reply: Value) -> Vec<Entry> {
    let Value::Array(items) = reply else { return Vec::new() };
    items
        .into_iter()
        .filter_map(|e| {
            let Value::Array(mut parts) = e else { return None };
            let fields = parts.pop()?;
            let id = super::stream::id_of(parts.first()?)?;
            let (mut kind, mut item) = (None, None);
            let pairs: Vec<Value> = match fields {
                Value::Array(v) => v,
                Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect(),
                _ => return None,
            };
            for pair in pairs.chunks(2) {
                if let [Value::BulkString(k), Value::BulkString(v)] = pair {
                    match k.as_slice() {
                        b"kind" => kind = String::from_utf8(v.clone()).ok(),
                        b"item" => item = String::from_utf8(v.clone()).ok(),
                        _ => {}
                    }
                }
            }
            Some((id, kind?, item?))
        })
        .collect()
}

/// At most `count` entries after `after`, oldest first.
pub async fn after(conn: &mut Conn, keys: &Keys, after: EntryId, count: usize) -> redis::RedisResult<Vec<Entry>> {
    let start = format!("({after}");
    let reply: Value =
        redis::cmd("XRANGE").arg(keys.feed()).arg(start).arg("+").arg("COUNT").arg(count).query_async(conn).await?;
    Ok(entries(reply))
}

/// Entries after `after`, waiting up to `block_ms` for one (the live tail).
pub async fn tail(conn: &mut Conn, keys: &Keys, after: EntryId, block_ms: u64) -> redis::RedisResult<Vec<Entry>> {
    let reply: Value = redis::cmd("XREAD")
        .arg("COUNT")
        .arg(1000)
        .arg("BLOCK")
        .arg(block_ms)
        .arg("STREAMS")
        .arg(keys.feed())
        .arg(after.to_string())
        .query_async(conn)
        .await?;
    // [[key, entries]] (RESP2) or {key: entries} (RESP3).
    let streams = match reply {
        Value::Array(s) => s,
        Value::Map(m) => m.into_iter().map(|(k, v)| Value::Array(vec![k, v])).collect(),
        _ => return Ok(Vec::new()),
    };
    Ok(streams
        .into_iter()
        .filter_map(|s| match s {
            Value::Array(mut kv) if kv.len() == 2 => kv.pop(),
            _ => None,
        })
        .flat_map(entries)
        .collect())
}

/// The oldest and newest ids the feed keeps (`None`: empty).
pub async fn bounds(conn: &mut Conn, keys: &Keys) -> redis::RedisResult<Option<(EntryId, EntryId)>> {
    let first: Value =
        redis::cmd("XRANGE").arg(keys.feed()).arg("-").arg("+").arg("COUNT").arg(1).query_async(conn).await?;
    let last: Value =
        redis::cmd("XREVRANGE").arg(keys.feed()).arg("+").arg("-").arg("COUNT").arg(1).query_async(conn).await?;
    let (first, last) = (entries(first), entries(last));
    Ok(first.first().zip(last.first()).map(|(f, l)| (f.0, l.0)))
}

/// Drops what is older than `min_ms` (about: whole nodes of the stream).
pub async fn trim(conn: &mut Conn, keys: &Keys, min_ms: u64) -> redis::RedisResult<()> {
    redis::cmd("XTRIM").arg(keys.feed()).arg("MINID").arg("~").arg(min_ms).query_async::<u64>(conn).await.map(drop)
}

/// A stored subscription's JSON, if there is one.
pub async fn subscription(conn: &mut Conn, keys: &Keys, name: &str) -> redis::RedisResult<Option<String>> {
    redis::cmd("HGET").arg(keys.subscriptions()).arg(name).query_async(conn).await
}

/// Every stored subscription: (name, JSON).
pub async fn subscriptions(conn: &mut Conn, keys: &Keys) -> redis::RedisResult<Vec<(String, String)>> {
    redis::cmd("HGETALL").arg(keys.subscriptions()).query_async(conn).await
}

/// Stores a subscription and tells its connected consumers (a feed entry).
pub async fn put_subscription(conn: &mut Conn, keys: &Keys, name: &str, json: &str) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    pipe.atomic().cmd("HSET").arg(keys.subscriptions()).arg(name).arg(json).ignore();
    add(&mut pipe, keys, kind::SUBSCRIPTION, &serde_json::json!({ "name": name }).to_string());
    pipe.query_async::<()>(conn).await
}

/// Removes a subscription (and its consumers' streams end); whether it existed.
pub async fn delete_subscription(conn: &mut Conn, keys: &Keys, name: &str) -> redis::RedisResult<bool> {
    let mut pipe = redis::pipe();
    pipe.atomic().cmd("HDEL").arg(keys.subscriptions()).arg(name);
    add(&mut pipe, keys, kind::SUBSCRIPTION, &serde_json::json!({ "name": name }).to_string());
    let (removed,): (u64,) = pipe.query_async(conn).await?;
    Ok(removed > 0)
}

/// Keeps a subscription's new acknowledged id (its consumers need not reload).
pub async fn ack_subscription(conn: &mut Conn, keys: &Keys, name: &str, json: &str) -> redis::RedisResult<()> {
    redis::cmd("HSET").arg(keys.subscriptions()).arg(name).arg(json).query_async::<u64>(conn).await.map(drop)
}
