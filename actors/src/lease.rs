//! Shard ownership across instances: one lease per shard in Redis
//! (`<prefix>:{S}:lease` = the owner's id, with a TTL), taken with `SET NX`
//! and renewed by its owner every third of the TTL.
//!
//! An instance applies and persists a shard only while its lease is valid by
//! its own clock: it counts the TTL (less a fifth) from the moment it *sent*
//! the last confirmed renewal, so it stops before any other instance could
//! take the lease over. A renewal that finds the lease gone or held by someone
//! else means another instance may have taken the shard: the process exits
//! (code 3) rather than become a second writer, and its supervisor restarts it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Value;

use crate::link::Conn;
use crate::shared::Shared;
use crate::store::Keys;

/// Renews a lease if it is still ours; returns 1, or the other owner (or nil).
const RENEW: &str = r"
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return v";

/// Deletes a lease if it is still ours.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

/// A shard held by another instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub shard: u32,
    pub owner: String,
    /// Until the lease expires if its owner stops renewing it.
    pub expires_in: Duration,
}

/// Shard numbers as ranges: `0-31,40,42-43`.
pub fn ranges(shards: &[u32]) -> String {
    let mut sorted = shards.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        while i + 1 < sorted.len() && sorted[i + 1] == sorted[i] + 1 {
            i += 1;
        }
        out.push(if sorted[i] == start { start.to_string() } else { format!("{start}-{}", sorted[i]) });
        i += 1;
    }
    out.join(",")
}

/// The holders of leases another instance has, one clause per holder: the
/// shards as ranges and when their leases expire.
pub fn describe_holders(others: &[Held]) -> String {
    let mut owners: Vec<&str> = others.iter().map(|h| h.owner.as_str()).collect();
    owners.sort_unstable();
    owners.dedup();
    let clauses: Vec<String> = owners
        .into_iter()
        .map(|owner| {
            let held: Vec<&Held> = others.iter().filter(|h| h.owner == owner).collect();
            let shards: Vec<u32> = held.iter().map(|h| h.shard).collect();
            let expires = held.iter().map(|h| h.expires_in).max().unwrap_or_default();
            let noun = if shards.len() == 1 { "shard" } else { "shards" };
            format!(
                "{noun} {} owned by instance {owner:?} (leases expire within {:.1}s unless renewed)",
                ranges(&shards),
                expires.as_secs_f64()
            )
        })
        .collect();
    clauses.join("; ")
}

/// Tries to take the leases of `shards` not yet in `held`; adds those it got
/// to `held` and returns the ones another instance holds. A lease already
/// naming `me` (a restart within the TTL) is ours.
pub async fn acquire(
    conn: &mut Conn,
    keys: &Keys,
    shards: &[u32],
    held: &mut Vec<u32>,
    me: &str,
    ttl: Duration,
) -> redis::RedisResult<Vec<Held>> {
    let wanted: Vec<u32> = shards.iter().copied().filter(|s| !held.contains(s)).collect();
    let mut pipe = redis::pipe();
    for s in &wanted {
        pipe.cmd("SET").arg(keys.lease(*s)).arg(me).arg("NX").arg("PX").arg(ttl.as_millis() as u64);
    }
    let replies: Vec<Value> = pipe.query_async(conn).await?;
    let mut others = Vec::new();
    for (s, reply) in wanted.into_iter().zip(replies) {
        if matches!(reply, Value::Okay | Value::SimpleString(_)) {
            held.push(s);
            continue;
        }
        let (owner, pttl): (Option<String>, i64) =
            redis::pipe().cmd("GET").arg(keys.lease(s)).cmd("PTTL").arg(keys.lease(s)).query_async(conn).await?;
        match owner {
            Some(owner) if owner == me => {
                let _: () =
                    redis::cmd("PEXPIRE").arg(keys.lease(s)).arg(ttl.as_millis() as u64).query_async(conn).await?;
                held.push(s);
            }
            Some(owner) => others.push(Held { shard: s, owner, expires_in: Duration::from_millis(pttl.max(0) as u64) }),
            // Expired between the two commands: the next attempt takes it.
            None => {}
        }
    }
    held.sort_unstable();
    Ok(others)
}

/// Renews every lease in `held`; `Err` names a lease that is no longer ours.
pub async fn renew(conn: &mut Conn, keys: &Keys, held: &[u32], me: &str, ttl: Duration) -> Result<(), RenewError> {
    let mut pipe = redis::pipe();
    for s in held {
        pipe.cmd("EVAL").arg(RENEW).arg(1).arg(keys.lease(*s)).arg(me).arg(ttl.as_millis() as u64);
    }
    let replies: Vec<Value> = pipe.query_async(conn).await?;
    for (s, reply) in held.iter().zip(replies) {
        match reply {
            Value::Int(1) => {}
            Value::BulkString(owner) => {
                return Err(RenewError::Lost { shard: *s, owner: Some(String::from_utf8_lossy(&owner).into_owned()) })
            }
            _ => return Err(RenewError::Lost { shard: *s, owner: None }),
        }
    }
    Ok(())
}

/// Gives the leases back (graceful shutdown), so a successor starts at once.
pub async fn release(conn: &mut Conn, keys: &Keys, held: &[u32], me: &str) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    for s in held {
        pipe.cmd("EVAL").arg(RELEASE).arg(1).arg(keys.lease(*s)).arg(me).ignore();
    }
    pipe.query_async(conn).await
}

#[derive(Debug, thiserror::Error)]
pub enum RenewError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("the lease of shard {shard} is no longer ours (now held by {owner:?})")]
    Lost { shard: u32, owner: Option<String> },
}

/// Renews `held` every third of the TTL for as long as the process lives and
/// tells `shared` until when they are valid. Exits the process when a lease
/// turns out to be lost.
pub async fn keep(mut conn: Conn, shared: Arc<Shared>, held: Vec<u32>, me: String, ttl: Duration) {
    let mut tick = tokio::time::interval(ttl / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        let sent = Instant::now();
        match renew(&mut conn, &shared.keys, &held, &me, ttl).await {
            Ok(()) => {
                shared.leases_renewed(sent, ttl);
                if failing {
                    tracing::info!("shard leases renewed again");
                    failing = false;
                }
            }
            Err(RenewError::Redis(e)) => {
                metrics::counter!(crate::metrics::REDIS_ERRORS_TOTAL, "operation" => "lease").increment(1);
                if !failing {
                    tracing::warn!(error = %e, "cannot renew shard leases; shards pause when they run out");
                    failing = true;
                }
            }
            Err(e @ RenewError::Lost { .. }) => {
                tracing::error!(error = %e, "exiting: another instance may be applying this shard now");
                std::process::exit(3);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_read_as_ranges_and_holders_as_one_clause_each() {
        assert_eq!(ranges(&[3, 0, 1, 2, 7, 9, 10]), "0-3,7,9-10");
        assert_eq!(ranges(&[5]), "5");
        let held = |shard, owner: &str, ms| Held { shard, owner: owner.into(), expires_in: Duration::from_millis(ms) };
        let text = describe_holders(&[held(1, "a", 900), held(0, "a", 1500), held(9, "b", 100)]);
        assert_eq!(
            text,
            "shards 0-1 owned by instance \"a\" (leases expire within 1.5s unless renewed); \
             shard 9 owned by instance \"b\" (leases expire within 0.1s unless renewed)"
        );
    }
}
