//! Fenced writes: an owner's writes for a shard are applied by Redis only
//! while the shard's lease still names that owner and the epoch it took the
//! lease at, checked in the same atomic unit as the writes.
//!
//! A lease's value is its fencing token, `"<epoch> <owner>"`; the epoch comes
//! from `<prefix>:{S}:epoch`, incremented by every acquisition (a takeover,
//! or a restart of the same instance). A write composed while the lease was
//! valid can reach Redis long after (a paused process, a partition that holds
//! packets): the check in the process (`Shared::lease_valid`) cannot see that,
//! the check here can. Two forms, one meaning:
//! * `exec_watched`, for a shard's own writes (snapshots, changelog) on a
//!   single Redis: `WATCH` the epoch, a small script that spoils the watch
//!   unless the lease holds the token, then `MULTI`/`EXEC`, in one pipeline.
//!   `EXEC` runs only if the lease held the token and no acquisition (which
//!   increments the epoch) came in between. The payload is not copied
//!   through a script, which keeps the fence's cost within noise.
//! * `exec`: the commands carried into one Lua script that first compares
//!   each token. For writes made on many shards' behalf (the tripwire's),
//!   and for a shard's own writes on a Redis Cluster, whose client splits a
//!   pipeline by slot and cannot carry `WATCH`, `MULTI` and `EXEC` in one.
//!
//! `exec_shard` picks between the two for a shard's own writes.
//!
//! A refusal writes nothing and reads as `WriteError::Fenced`. Keys the
//! commands name share the checked key's hash tag, so this holds on Redis
//! Cluster.

use std::sync::Arc;

use redis::aio::ConnectionLike;
use redis::Arg;

use super::keys::Keys;
use crate::link::Conn;

/// An owner's fencing token for one shard: the lease's value as it took it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub shard: u32,
    pub epoch: u64,
    /// `"<epoch> <owner>"`, the lease's value while it is ours.
    pub token: Arc<str>,
}

impl Fence {
    pub fn new(shard: u32, epoch: u64, owner: &str) -> Self {
        Fence { shard, epoch, token: format!("{epoch} {owner}").into() }
    }

    /// The owner named by the token.
    pub fn owner(&self) -> &str {
        holder(&self.token).1
    }
}

/// A lease value read as (epoch, owner); a value without an epoch (written
/// by a version that had none) is all owner.
pub fn holder(value: &str) -> (Option<u64>, &str) {
    match value.split_once(' ') {
        Some((epoch, owner)) if epoch.bytes().all(|b| b.is_ascii_digit()) => (epoch.parse().ok(), owner),
        _ => (None, value),
    }
}

/// KEYS: the keys checked. ARGV[1]: the number of checks; then per check a
/// hash field ("" for a string key) and the value it must hold; then the
/// commands, each as its argument count followed by its arguments.
const EXEC: &str = r"
local checks = tonumber(ARGV[1])
for i = 1, checks do
  local field, want = ARGV[2 * i], ARGV[2 * i + 1]
  local cur
  if field == '' then cur = redis.call('GET', KEYS[i]) else cur = redis.call('HGET', KEYS[i], field) end
  if cur ~= want then
    return redis.error_reply('FENCED ' .. i .. ' ' .. (cur or 'none'))
  end
end
local i = 2 * checks + 2
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return checks";

/// Items of a variadic command carried in one call of the script (Lua's
/// `unpack` is bounded by its stack); longer ones are split.
const CHUNK: usize = 1000;

/// What a check compares: `key` (a string), or `field` of hash `key`, must
/// hold `want`.
#[derive(Debug, Clone)]
pub struct Check<'a> {
    pub key: &'a str,
    pub field: Option<String>,
    pub want: &'a str,
}

impl<'a> Check<'a> {
    /// Each shard's newest owner, as recorded in hash `owners` when it took
    /// the lease (`lease::announce`), is still the one of `fences`: for
    /// writes on the shards' behalf outside their hash tag (the tripwire's).
    pub fn owners(owners: &'a str, fences: &'a [Fence]) -> Vec<Self> {
        fences.iter().map(|f| Check { key: owners, field: Some(f.shard.to_string()), want: &f.token }).collect()
    }
}

/// A write refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("unexpected reply from redis: {0}")]
    Reply(#[from] redis::ParsingError),
    /// The lease no longer names this owner and epoch: nothing was written.
    #[error("fenced off: the lease now holds {now}")]
    Fenced {
        /// The check that failed, from 0.
        check: usize,
        /// What the checked key holds now (`"<epoch> <owner>"`, or `none`).
        now: String,
    },
}

impl WriteError {
    pub fn from_redis(e: redis::RedisError) -> Self {
        match fenced(&e) {
            Some((check, now)) => WriteError::Fenced { check, now: now.to_string() },
            None => WriteError::Redis(e),
        }
    }
}

/// A `FENCED` refusal (from `EXEC` or another fenced script): the check that
/// failed (from 0) and what its key holds now.
pub fn fenced(e: &redis::RedisError) -> Option<(usize, &str)> {
    if e.code() != Some("FENCED") {
        return None;
    }
    let (i, now) = e.detail()?.split_once(' ')?;
    Some((i.parse::<usize>().ok()?.checked_sub(1)?, now))
}

/// The script call that runs `writes` only if every check holds.
pub fn script(checks: &[Check<'_>], writes: &redis::Pipeline) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(EXEC).arg(checks.len());
    for c in checks {
        cmd.arg(c.key);
    }
    cmd.arg(checks.len());
    for c in checks {
        cmd.arg(c.field.as_deref().unwrap_or("")).arg(c.want);
    }
    for write in writes.cmd_iter() {
        let args: Vec<&[u8]> = write
            .args_iter()
            .filter_map(|a| match a {
                Arg::Simple(bytes) => Some(bytes),
                _ => None,
            })
            .collect();
        push_split(&mut cmd, &args);
    }
    cmd
}

/// Adds one command, split into calls of at most `CHUNK` items when it is a
/// variadic command on one key (`HSET key f v ...`, `HDEL key f ...`,
/// `LPUSH key v ...`), which means the same in pieces.
fn push_split(cmd: &mut redis::Cmd, args: &[&[u8]]) {
    let arity = match args.first().map(|n| n.to_ascii_uppercase()) {
        Some(n) if n == b"HSET" => 2,
        Some(n) if n == b"HDEL" || n == b"LPUSH" => 1,
        _ => 0,
    };
    if arity == 0 || args.len() <= 2 + CHUNK * arity {
        cmd.arg(args.len());
        for a in args {
            cmd.arg(*a);
        }
        return;
    }
    let (head, items) = args.split_at(2);
    for piece in items.chunks(CHUNK * arity) {
        cmd.arg(2 + piece.len()).arg(head[0]).arg(head[1]);
        for a in piece {
            cmd.arg(*a);
        }
    }
}

/// Makes the `EXEC` that follows abort unless the lease holds the token
/// (KEYS[1] lease, KEYS[2] this writer's spoil key, ARGV[1] token): on a
/// mismatch it writes the spoil key, which only this writer watches, so its
/// `WATCH` fails and no one else's does. Returns 1, or what the lease holds.
const GUARD: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then return 1 end
redis.call('SET', KEYS[2], '1', 'PX', 60000)
return cur or 'none'";

/// Runs `writes` in one `MULTI`/`EXEC` if the shard's lease holds `fence`'s
/// token and no other acquisition comes before the `EXEC`, in one round
/// trip: `WATCH` the epoch and this writer's spoil key, a guard that spoils
/// the watch when the lease is not ours, then the transaction. The pipeline
/// goes out as one piece, so on a multiplexed connection nothing of this
/// connection comes between the `WATCH` and its `EXEC`.
pub async fn exec_watched(
    conn: &mut impl ConnectionLike,
    (lease, epoch, spoil): (&str, &str, &str),
    fence: &Fence,
    writes: impl FnOnce(&mut redis::Pipeline),
) -> Result<(), WriteError> {
    let mut pipe = redis::pipe();
    pipe.cmd("WATCH").arg(epoch).arg(spoil).ignore();
    pipe.cmd("EVAL").arg(GUARD).arg(2).arg(lease).arg(spoil).arg(&*fence.token);
    pipe.cmd("MULTI").ignore();
    // Written in place (each command `ignore`d by the caller): the payload is
    // never copied.
    writes(&mut pipe);
    pipe.cmd("EXEC");
    let (guard, exec): (redis::Value, redis::Value) = pipe.query_async(conn).await?;
    match (guard, exec) {
        (_, redis::Value::Array(_)) => Ok(()),
        (redis::Value::BulkString(now), _) => {
            Err(WriteError::Fenced { check: 0, now: String::from_utf8_lossy(&now).into_owned() })
        }
        _ => {
            // The epoch moved between the guard and the EXEC: someone took
            // the lease. Were it still ours, nothing was written and the
            // write may be made again.
            let now: Option<String> = redis::cmd("GET").arg(lease).query_async(conn).await?;
            match now {
                Some(now) if now == *fence.token => {
                    Err(WriteError::Redis(redis::RedisError::from((redis::ErrorKind::Client, "transaction aborted"))))
                }
                now => Err(WriteError::Fenced { check: 0, now: now.unwrap_or_else(|| "none".into()) }),
            }
        }
    }
}

/// Runs a shard's own writes (added by `writes`, each `ignore`d) if its
/// lease still holds `fence`'s token, atomically (module doc).
pub async fn exec_shard(
    conn: &mut Conn,
    keys: &Keys,
    fence: &Fence,
    writes: impl FnOnce(&mut redis::Pipeline),
) -> Result<(), WriteError> {
    let (lease, epoch) = (keys.lease(fence.shard), keys.epoch(fence.shard));
    match conn {
        Conn::Cluster(_) => {
            let mut pipe = redis::pipe();
            writes(&mut pipe);
            exec(conn, &[Check { key: lease, field: None, want: &fence.token }], &pipe).await
        }
        Conn::Single(_) | Conn::Managed(_) => {
            let spoil = keys.spoil(fence.shard, fence.epoch);
            exec_watched(conn, (lease, epoch, &spoil), fence, writes).await
        }
    }
}

/// Runs `writes` if every check holds, atomically.
pub async fn exec(
    conn: &mut impl ConnectionLike,
    checks: &[Check<'_>],
    writes: &redis::Pipeline,
) -> Result<(), WriteError> {
    script(checks, writes).query_async::<redis::Value>(conn).await.map(drop).map_err(WriteError::from_redis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_value_reads_as_epoch_and_owner() {
        assert_eq!(holder("7 node a"), (Some(7), "node a"));
        assert_eq!(holder("node-a"), (None, "node-a"));
        assert_eq!(holder("x y"), (None, "x y"));
        let f = Fence::new(3, 12, "b");
        assert_eq!((&*f.token, f.owner()), ("12 b", "b"));
    }

    #[test]
    fn a_long_variadic_command_is_carried_in_pieces_of_the_same_meaning() {
        let mut pipe = redis::pipe();
        let cmd = pipe.cmd("HSET").arg("h");
        for i in 0..2500 {
            cmd.arg(i).arg(i);
        }
        pipe.cmd("SET").arg("k").arg("v");
        let script = script(&[Check { key: "lease", field: None, want: "1 a" }], &pipe);
        let args: Vec<Vec<u8>> = script
            .args_iter()
            .filter_map(|a| match a {
                Arg::Simple(b) => Some(b.to_vec()),
                _ => None,
            })
            .collect();
        // EVAL script 1 lease | 1 "" "1 a" | then the commands.
        let mut rest = &args[7..];
        let mut calls = Vec::new();
        while let Some((n, tail)) = rest.split_first() {
            let n: usize = std::str::from_utf8(n).unwrap().parse().unwrap();
            calls.push(tail[..n].to_vec());
            rest = &tail[n..];
        }
        let sizes: Vec<usize> = calls.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![2002, 2002, 1002, 3]);
        assert!(calls[..3].iter().all(|c| c[0] == b"HSET" && c[1] == b"h"));
        assert_eq!(calls[2][2], b"2000");
    }
}
