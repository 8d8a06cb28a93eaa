//! Shard ownership across instances: one lease per shard in Redis
//! (`<prefix>:{S}:lease` = the owner's fencing token `"<epoch> <owner>"`,
//! with a TTL), taken by a script that increments the shard's epoch
//! (`<prefix>:{S}:epoch`), and renewed by its owner every third of the TTL.
//!
//! An instance applies and persists a shard only while its lease is valid by
//! its own clock: it counts the TTL (less a fifth) from the moment it *sent*
//! the last confirmed renewal, so it stops before any other instance could
//! take the lease over. That check is in the process; Redis checks again:
//! every write an owner makes for its shard carries its token and is applied
//! only while the lease still holds it (`store::fence`), so a write that
//! arrives late (a paused process, held packets) after another instance took
//! over is refused. A renewal or a write that finds the lease gone or held by
//! someone else means another instance may have taken the shard: the process
//! exits (code 3) rather than become a second writer, and its supervisor
//! restarts it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Value;

use crate::link::Conn;
use crate::shared::Shared;
use crate::store::fence::{holder, Fence};
use crate::store::Keys;

/// Takes a lease that is free or names this owner (a restart within the
/// TTL), with a new epoch: KEYS[1] lease, KEYS[2] epoch counter; ARGV owner,
/// TTL (ms). Returns {1, epoch}, or {0, the holder's token, its PTTL}.
const ACQUIRE: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur then
  local sp = string.find(cur, ' ', 1, true)
  local owner = cur
  if sp and string.match(string.sub(cur, 1, sp - 1), '^%d+$') then owner = string.sub(cur, sp + 1) end
  if owner ~= ARGV[1] then return {0, cur, redis.call('PTTL', KEYS[1])} end
end
local epoch = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], epoch .. ' ' .. ARGV[1], 'PX', ARGV[2])
return {1, epoch}";

/// Renews a lease if it still holds our token; returns 1, or what it holds (or nil).
const RENEW: &str = r"
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return v";

/// Deletes a lease if it still holds our token.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

/// Records owners' tokens in the tripwire's hash, each only if its epoch is
/// newer than the one there: KEYS[1] the hash; ARGV shard, token pairs.
const ANNOUNCE: &str = r"
for i = 1, #ARGV, 2 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  local have = cur and tonumber(string.match(cur, '^(%d+) ')) or 0
  if tonumber(string.match(ARGV[i + 1], '^(%d+) ')) > have then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return 1";

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
/// (with the epoch each was taken at) to `held` and returns the ones another
/// instance holds. A lease already naming `me` (a restart within the TTL) is
/// taken again with a new epoch, which fences off the process that held it.
pub async fn acquire(
    conn: &mut Conn,
    keys: &Keys,
    shards: &[u32],
    held: &mut Vec<Fence>,
    me: &str,
    ttl: Duration,
) -> redis::RedisResult<Vec<Held>> {
    let wanted: Vec<u32> = shards.iter().copied().filter(|s| !held.iter().any(|f| f.shard == *s)).collect();
    let mut pipe = redis::pipe();
    for s in &wanted {
        pipe.cmd("EVAL").arg(ACQUIRE).arg(2).arg(keys.lease(*s)).arg(keys.epoch(*s));
        pipe.arg(me).arg(ttl.as_millis() as u64);
    }
    let replies: Vec<Vec<Value>> = pipe.query_async(conn).await?;
    let mut others = Vec::new();
    for (s, reply) in wanted.into_iter().zip(replies) {
        match reply.as_slice() {
            [Value::Int(1), Value::Int(epoch)] => held.push(Fence::new(s, *epoch as u64, me)),
            [Value::Int(0), Value::BulkString(token), Value::Int(pttl)] => {
                let token = String::from_utf8_lossy(token);
                others.push(Held {
                    shard: s,
                    owner: holder(&token).1.to_string(),
                    expires_in: Duration::from_millis((*pttl).max(0) as u64),
                })
            }
            _ => return Err(redis::RedisError::from((redis::ErrorKind::UnexpectedReturnType, "lease acquisition"))),
        }
    }
    held.sort_unstable_by_key(|f| f.shard);
    Ok(others)
}

/// Records the tokens of `held` where the tripwire's writes are fenced
/// (`Keys::tripwire_owners`), before this instance applies any of them.
pub async fn announce(conn: &mut Conn, keys: &Keys, held: &[Fence]) -> redis::RedisResult<()> {
    if held.is_empty() {
        return Ok(());
    }
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(ANNOUNCE).arg(1).arg(keys.tripwire_owners());
    for f in held {
        cmd.arg(f.shard).arg(&*f.token);
    }
    cmd.query_async(conn).await
}

/// Renews every lease in `held`; `Err` names a lease that is no longer ours.
pub async fn renew(conn: &mut Conn, keys: &Keys, held: &[Fence], ttl: Duration) -> Result<(), RenewError> {
    let mut pipe = redis::pipe();
    for f in held {
        pipe.cmd("EVAL").arg(RENEW).arg(1).arg(keys.lease(f.shard)).arg(&*f.token).arg(ttl.as_millis() as u64);
    }
    let replies: Vec<Value> = pipe.query_async(conn).await?;
    for (f, reply) in held.iter().zip(replies) {
        match reply {
            Value::Int(1) => {}
            Value::BulkString(now) => {
                return Err(RenewError::Lost { fence: f.clone(), now: String::from_utf8_lossy(&now).into_owned() })
            }
            _ => return Err(RenewError::Lost { fence: f.clone(), now: "none".into() }),
        }
    }
    Ok(())
}

/// Gives the leases back (graceful shutdown), so a successor starts at once.
pub async fn release(conn: &mut Conn, keys: &Keys, held: &[Fence]) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    for f in held {
        pipe.cmd("EVAL").arg(RELEASE).arg(1).arg(keys.lease(f.shard)).arg(&*f.token).ignore();
    }
    pipe.query_async(conn).await
}

#[derive(Debug, thiserror::Error)]
pub enum RenewError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("{}", lost(fence, now))]
    Lost { fence: Fence, now: String },
}

/// One line naming the shard, the epoch it was ours at and who holds it now.
pub fn lost(fence: &Fence, now: &str) -> String {
    let successor = match holder(now) {
        _ if now == "none" => "nobody holds it now".to_string(),
        (Some(epoch), owner) => format!("instance {owner:?} holds it now at epoch {epoch}"),
        (None, owner) => format!("instance {owner:?} holds it now"),
    };
    format!("shard {}: the lease taken at epoch {} is no longer ours: {successor}", fence.shard, fence.epoch)
}

/// A write for `fence`'s shard was refused by Redis (`store::fence`): logs
/// one line, counts it and stops applying the shard (by default the process
/// exits with code 3, as for a lost lease). Never retried.
pub fn fenced_off(shared: &Shared, fence: &Fence, what: &str, now: &str) {
    if shared.released() {
        // Given back on shutdown: the lease is gone because we released it.
        tracing::debug!(shard = fence.shard, "{what} after the leases were released: nothing written");
        return;
    }
    metrics::counter!(crate::metrics::FENCED_WRITES_TOTAL, "shard" => fence.shard.to_string()).increment(1);
    shared.leases_lost();
    tracing::error!(shard = fence.shard, epoch = fence.epoch, "{what} fenced off, stopping: {}", lost(fence, now));
    (shared.on_fenced)(fence.shard);
}

/// Renews `held` every third of the TTL for as long as the process lives and
/// tells `shared` until when they are valid. Exits the process when a lease
/// turns out to be lost.
pub async fn keep(mut conn: Conn, shared: Arc<Shared>, held: Vec<Fence>, ttl: Duration) {
    let mut tick = tokio::time::interval(ttl / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        if shared.released() {
            return;
        }
        let sent = Instant::now();
        match renew(&mut conn, &shared.keys, &held, ttl).await {
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
            Err(RenewError::Lost { fence, now }) => {
                fenced_off(&shared, &fence, "lease renewal", &now);
                return;
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
