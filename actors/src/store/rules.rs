//! Rule-set versions in Redis: every published version (`<prefix>:{rules}:versions`,
//! version → JSON) and the current one (`<prefix>:{rules}:current`), changed
//! together by compare-and-set; and the switch entries that bring a version
//! into every shard's stream.

use redis::aio::ConnectionLike;

use super::keys::Keys;
use super::stream::Field;
use crate::domain::ruleset::VersionRecord;
use crate::domain::EntryId;

/// KEYS[1] versions hash, KEYS[2] current; ARGV expected current ("" when
/// none), new version, its JSON. Returns 1 when published.
const PUBLISH: &str = r"
local cur = redis.call('GET', KEYS[2])
if (cur == false and ARGV[1] == '') or cur == ARGV[1] then
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
  redis.call('SET', KEYS[2], ARGV[2])
  return 1
end
return 0";

/// Publishes `record` if the current version is still `expected` (`None`:
/// there is none yet); false when another publish came first.
pub async fn publish(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    record: &VersionRecord,
    expected: Option<u64>,
) -> redis::RedisResult<bool> {
    let json = serde_json::to_string(record).expect("records serialize");
    let won: i64 = redis::cmd("EVAL")
        .arg(PUBLISH)
        .arg(2)
        .arg(keys.rule_versions())
        .arg(keys.rules_current())
        .arg(expected.map(|v| v.to_string()).unwrap_or_default())
        .arg(record.version)
        .arg(json)
        .query_async(conn)
        .await?;
    Ok(won == 1)
}

/// The current version's number, if any was published.
pub async fn current_version(conn: &mut impl ConnectionLike, keys: &Keys) -> redis::RedisResult<Option<u64>> {
    let v: Option<String> = redis::cmd("GET").arg(keys.rules_current()).query_async(conn).await?;
    Ok(v.and_then(|v| v.parse().ok()))
}

/// Version `n`, if it exists (an unreadable record is an error).
pub async fn version(conn: &mut impl ConnectionLike, keys: &Keys, n: u64) -> redis::RedisResult<Option<VersionRecord>> {
    let json: Option<String> = redis::cmd("HGET").arg(keys.rule_versions()).arg(n).query_async(conn).await?;
    json.map(|j| {
        serde_json::from_str(&j).map_err(|e| {
            redis::RedisError::from((redis::ErrorKind::Parse, "unreadable rule-set version", e.to_string()))
        })
    })
    .transpose()
}

/// The current version, if any.
pub async fn current(conn: &mut impl ConnectionLike, keys: &Keys) -> redis::RedisResult<Option<VersionRecord>> {
    match current_version(conn, keys).await? {
        Some(n) => version(conn, keys, n).await,
        None => Ok(None),
    }
}

/// Appends the switch to `record` to every shard stream; the entry ids by shard.
pub async fn append_switch(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    record: &VersionRecord,
) -> redis::RedisResult<Vec<EntryId>> {
    let json = serde_json::to_vec(record).expect("records serialize");
    let mut pipe = redis::pipe();
    for s in 0..keys.shard_count() {
        pipe.cmd("XADD").arg(keys.events(s)).arg("*").arg(Field::Rules.as_str()).arg(json.as_slice());
    }
    let ids: Vec<String> = pipe.query_async(conn).await?;
    Ok(ids.iter().map(|id| EntryId::parse(id).unwrap_or(EntryId::ZERO)).collect())
}

/// The version shard `s`'s snapshot was taken under (0: none recorded).
pub async fn shard_version(conn: &mut impl ConnectionLike, keys: &Keys, s: u32) -> redis::RedisResult<u64> {
    let v: Option<u64> = redis::cmd("GET").arg(keys.shard_rules(s)).query_async(conn).await?;
    Ok(v.unwrap_or(0))
}
