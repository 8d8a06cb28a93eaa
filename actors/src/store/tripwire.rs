//! The tripwire's shared state in Redis, under one hash tag so a sync is one
//! transaction:
//! * `<prefix>:{tripwire}:hits:<rule>` hash: restrictions per second of event
//!   time (field: the second, value: the count);
//! * `<prefix>:{tripwire}:population` hash: users per shard, from each owner;
//! * `<prefix>:{tripwire}:state` hash: rule → its state as JSON (`SharedRule`);
//! * `<prefix>:audit:tripwire` stream: every transition, once.

use std::collections::{BTreeMap, HashMap};

use redis::Value;

use super::fence::{self, Check, Fence, WriteError};
use super::keys::Keys;
use crate::domain::{Model, SharedRule, TripwireSettings};
use crate::link::Conn;

/// Compare-and-set of one rule's state: KEYS[1] state hash, ARGV rule,
/// expected JSON ("" when absent), new JSON. Returns 1 when it was set.
const CAS: &str = r"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if (cur == false and ARGV[2] == '') or cur == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  return 1
end
return 0";

/// Sets rule `rule`'s state to `json` if it is still `expected` ("": absent).
pub async fn compare_and_set(
    conn: &mut Conn,
    keys: &Keys,
    rule: &str,
    expected: &str,
    json: &str,
) -> redis::RedisResult<bool> {
    let won: i64 = redis::cmd("EVAL")
        .arg(CAS)
        .arg(1)
        .arg(keys.tripwire_state())
        .arg(rule)
        .arg(expected)
        .arg(json)
        .query_async(conn)
        .await?;
    Ok(won == 1)
}

/// Reserves each rule's restriction budget for one instance, atomically
/// against every other instance's: KEYS[1] the reservations hash, KEYS[2] the
/// owners hash; ARGV instance, now (ms), stale (ms), the number of fences and
/// per fence a shard and the token its owner must hold there (else `FENCED`,
/// as `store::fence`), then per rule its key, what is left of its cap and
/// what this instance needs. An instance gets what it needs of what
/// is left once the others' reservations (younger than `stale`) are taken
/// off; older ones are dropped (an instance that stopped).
const RESERVE: &str = r"
local id, now, stale = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local fences = tonumber(ARGV[4])
for i = 1, fences do
  local cur = redis.call('HGET', KEYS[2], ARGV[3 + 2 * i])
  if cur ~= ARGV[4 + 2 * i] then return redis.error_reply('FENCED ' .. i .. ' ' .. (cur or 'none')) end
end
local others = {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  local field, value = flat[i], flat[i + 1]
  local sep = string.find(field, '\n', 1, true)
  local grant, at = string.match(value, '(%d+) (%d+)')
  if sep == nil or grant == nil or now - tonumber(at) > stale then
    redis.call('HDEL', KEYS[1], field)
  elseif string.sub(field, sep + 1) ~= id then
    local rule = string.sub(field, 1, sep - 1)
    others[rule] = (others[rule] or 0) + tonumber(grant)
  end
end
local out = {}
for k = 5 + 2 * fences, #ARGV, 3 do
  local rule, left, need = ARGV[k], tonumber(ARGV[k + 1]), tonumber(ARGV[k + 2])
  local grant = math.max(0, math.min(left - (others[rule] or 0), need))
  redis.call('HSET', KEYS[1], rule .. '\n' .. id, grant .. ' ' .. now)
  out[#out + 1] = grant
end
return out";

/// One rule's reservation request: its key, what is left of its cap, and
/// what this instance needs.
#[derive(Debug, Clone)]
pub struct Need {
    pub rule: String,
    pub left: u64,
    pub need: u64,
}

/// Reserves this instance's budget of each rule (`instance` as it is known
/// there, reservations older than `stale_ms` dropped); the grants, in order.
pub async fn reserve(
    conn: &mut Conn,
    keys: &Keys,
    (instance, now_ms, stale_ms): (&str, u64, u64),
    fences: &[Fence],
    rules: &[Need],
) -> Result<Vec<u64>, WriteError> {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(RESERVE).arg(2).arg(keys.tripwire_reserved()).arg(keys.tripwire_owners());
    cmd.arg(instance).arg(now_ms).arg(stale_ms).arg(fences.len());
    for f in fences {
        cmd.arg(f.shard).arg(&*f.token);
    }
    for n in rules {
        cmd.arg(&n.rule).arg(n.left).arg(n.need);
    }
    cmd.query_async(conn).await.map_err(WriteError::from_redis)
}

/// Rule `rule`'s stored state as JSON ("" when absent).
pub async fn rule_state(conn: &mut Conn, keys: &Keys, rule: &str) -> redis::RedisResult<String> {
    let stored: Option<String> = redis::cmd("HGET").arg(keys.tripwire_state()).arg(rule).query_async(conn).await?;
    Ok(stored.unwrap_or_default())
}

/// Records a transition (JSON) in the tripwire's audit stream and the feed
/// (`kind`: a tripwire change, or a rule-set version).
pub async fn audit(conn: &mut Conn, keys: &Keys, kind: &str, json: &str) -> redis::RedisResult<()> {
    let field = super::stream::Field::Change.as_str();
    let mut pipe = redis::pipe();
    pipe.cmd("XADD").arg(keys.tripwire_audit()).arg("*").arg(field).arg(json).ignore();
    super::feed::add(&mut pipe, keys, kind, json);
    pipe.query_async::<()>(conn).await
}

/// Rule `rule` restricted a user (or, a shadow rule, would have) at event
/// time `at_ms`; `overlap`: an enforced rule already restricted the user's
/// features it restricts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fired {
    pub rule: u16,
    pub at_ms: u64,
    pub overlap: bool,
    /// Withheld because the rule was tripped: counted apart, in no window.
    pub suppressed: bool,
}

/// What one sync sends.
pub struct Sync<'a> {
    pub pending: &'a [Fired],
    /// Per rule: window seconds to delete.
    pub stale: &'a [Vec<u64>],
    pub now_ms: u64,
    /// (shard, users) of the shards this instance has recovered, when it is
    /// time to write them.
    pub population: Vec<(u32, u64)>,
    /// The tokens of the shards this instance holds: its writes are applied
    /// only while each is still its shard's newest owner.
    pub fences: &'a [Fence],
}

/// A rule's counts over all time, shared by every instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub restricted: u64,
    pub overlap: u64,
    pub suppressed: u64,
}

/// What one sync read back.
pub struct Counts {
    /// Per rule: restrictions in its window.
    pub hits: Vec<u64>,
    /// Users per shard, as the owners last wrote them.
    pub population: HashMap<u32, u64>,
    /// Per rule: the stored state as JSON ("" when absent).
    pub stored: Vec<String>,
    /// Per rule: seconds that fell out of the window (deleted by the next sync).
    pub stale: Vec<Vec<u64>>,
    /// Per rule: users restricted (for a shadow rule: that would have been),
    /// all time; of those, the users an enforced rule already restricted;
    /// restrictions withheld while tripped.
    pub totals: Vec<Totals>,
}

/// Pending reports per (rule, second) of the window, and per (rule, total
/// suffix: "" restricted, ":overlap", ":suppressed").
type Tallies = (BTreeMap<(u16, u64), u64>, BTreeMap<(u16, &'static str), u64>);

fn tallies(pending: &[Fired]) -> Tallies {
    let (mut per_second, mut totals) = (BTreeMap::new(), BTreeMap::new());
    for f in pending {
        if f.suppressed {
            *totals.entry((f.rule, ":suppressed")).or_default() += 1;
            continue;
        }
        *per_second.entry((f.rule, f.at_ms / 1000)).or_default() += 1;
        *totals.entry((f.rule, "")).or_default() += 1;
        if f.overlap {
            *totals.entry((f.rule, ":overlap")).or_default() += 1;
        }
    }
    (per_second, totals)
}

/// The first second a window counts: it slides by whole seconds; a reset
/// (or a cool-down) starts it at the first second that began at or after it.
fn first_second(state: &SharedRule, now_ms: u64, settings: &TripwireSettings) -> u64 {
    let sliding = now_ms.saturating_sub(settings.window_ms);
    if state.window_from_ms > sliding {
        state.window_from_ms.div_ceil(1000)
    } else {
        sliding / 1000
    }
}

/// One sync's round trip: add the pending restrictions (per rule and second)
/// and this instance's population, delete seconds out of the window, read each
/// rule's seconds, the population and the states. One transaction. Each
/// window is counted from the state read in the same transaction (a reset
/// made elsewhere, or before a restart, starts it), never from a state this
/// instance held before. The writes are fenced (`store::fence`): refused
/// whole, with `FENCED`, once another instance took one of this one's shards.
pub async fn sync(
    conn: &mut Conn,
    keys: &Keys,
    model: &Model,
    settings: &TripwireSettings,
    sync: Sync<'_>,
) -> Result<Counts, WriteError> {
    let (per_second, totals) = tallies(sync.pending);
    let mut pipe = redis::pipe();
    for ((r, suffix), n) in totals {
        let Some(rule) = model.rules.get(usize::from(r)) else { continue };
        let field = format!("{}{suffix}", rule.tripwire_key());
        pipe.cmd("HINCRBY").arg(keys.tripwire_totals()).arg(field).arg(n).ignore();
    }
    for ((r, second), n) in per_second {
        let Some(rule) = model.rules.get(usize::from(r)) else { continue };
        pipe.cmd("HINCRBY").arg(keys.tripwire_hits(&rule.tripwire_key())).arg(second).arg(n).ignore();
    }
    for (rule, stale) in model.rules.iter().zip(sync.stale) {
        if !stale.is_empty() {
            pipe.cmd("HDEL").arg(keys.tripwire_hits(&rule.tripwire_key())).arg(stale).ignore();
        }
    }
    let population = keys.tripwire_population();
    if !sync.population.is_empty() {
        let cmd = pipe.cmd("HSET").arg(&population);
        for (s, users) in &sync.population {
            cmd.arg(*s).arg(*users);
        }
        cmd.ignore();
    }
    let owners = keys.tripwire_owners();
    let mut reads = redis::pipe();
    reads.atomic();
    if pipe.cmd_iter().next().is_some() {
        reads.add_command(fence::script(&Check::owners(&owners, sync.fences), &pipe)).ignore();
    }
    let mut pipe = reads;
    for rule in &model.rules {
        pipe.cmd("HGETALL").arg(keys.tripwire_hits(&rule.tripwire_key()));
    }
    pipe.cmd("HGETALL").arg(&population);
    pipe.cmd("HGETALL").arg(keys.tripwire_state());
    pipe.cmd("HGETALL").arg(keys.tripwire_totals());
    let mut replies: Vec<Value> = pipe.query_async(conn).await.map_err(WriteError::from_redis)?;
    let totals: HashMap<String, u64> = redis::from_redis_value(replies.pop().unwrap_or(Value::Nil))?;
    let states: HashMap<String, String> = redis::from_redis_value(replies.pop().unwrap_or(Value::Nil))?;
    let per_shard: HashMap<u32, u64> = redis::from_redis_value(replies.pop().unwrap_or(Value::Nil))?;
    let cutoff_second = sync.now_ms.saturating_sub(settings.window_ms) / 1000;
    let (mut hits, mut stale) = (Vec::new(), Vec::new());
    for (reply, rule) in replies.into_iter().zip(&model.rules) {
        let seconds: HashMap<u64, u64> = redis::from_redis_value(reply)?;
        let state: SharedRule =
            states.get(&*rule.tripwire_key()).and_then(|json| serde_json::from_str(json).ok()).unwrap_or_default();
        let from_second = first_second(&state, sync.now_ms, settings);
        hits.push(seconds.iter().filter(|(s, _)| **s >= from_second).map(|(_, n)| n).sum());
        stale.push(seconds.keys().copied().filter(|s| *s < cutoff_second).collect());
    }
    let total = |name: &str| totals.get(name).copied().unwrap_or(0);
    Ok(Counts {
        totals: model
            .rules
            .iter()
            .map(|r| Totals {
                restricted: total(&r.tripwire_key()),
                overlap: total(&format!("{}:overlap", r.tripwire_key())),
                suppressed: total(&format!("{}:suppressed", r.tripwire_key())),
            })
            .collect(),
        hits,
        population: per_shard,
        stored: model.rules.iter().map(|r| states.get(&*r.tripwire_key()).cloned().unwrap_or_default()).collect(),
        stale,
    })
}
