//! The tripwire supervisor: per rule, the users it restricted within a
//! sliding window against the population, deciding when a rule trips and
//! re-arms. It publishes the tripped set as bits in `Shared::tripped`; shards
//! read them and never wait for it.
//!
//! The counts are shared by every instance of a deployment, in Redis, under
//! one hash tag so a sync is one transaction:
//! * `<prefix>:{tripwire}:hits:<rule>` hash: restrictions per second of event
//!   time (field: the second, value: the count); every instance adds the
//!   restrictions of its shards (`HINCRBY`, one per rule and second per sync),
//!   and fields older than the window are deleted. Shards do not report
//!   restrictions re-made while replaying after a restart (already counted).
//! * `<prefix>:{tripwire}:population` hash: users per shard, from each owner.
//! * `<prefix>:{tripwire}:state` hash: rule → its state as JSON (`SharedRule`).
//!
//! A sync (on each report, at most one in flight, and every `tripwire.tick`)
//! adds the pending restrictions, counts each window and the population, reads
//! every rule's state, and evaluates. A transition is written with
//! compare-and-set: one instance decides it (and writes the audit entry); the
//! others see the new state at their next sync, within one tick. Every
//! instance then applies it locally: shared bits, metrics, feed, and with
//! `on_trip = "revert"` a revert on the shards it owns. Operators' trips and
//! resets go through the same compare-and-set. The state survives restarts.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use metrics::{counter, gauge};
use redis::Value;

use crate::domain::rules::OnTrip;
use crate::domain::{SharedRule, Transition, TripState, TripwireSettings};
use crate::link::Conn;
use crate::metrics::*;
use crate::shard::RevertRule;
use crate::shared::{FeedItem, FeedKind, Shared};

/// Rule `rule` restricted a user at event time `at_ms`.
#[derive(Debug, Clone, Copy)]
pub struct Fired {
    pub rule: u16,
    pub at_ms: u64,
}

/// Restrictions made by a shard's rules, for the windows.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RulesFired(pub Vec<Fired>);

/// The tripwire state of every rule.
#[derive(Message)]
#[rtype(result = "Vec<RuleStatus>")]
pub struct GetRuleStatus;

/// Where to send reverts, and the Redis link for the shared windows.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Connect {
    pub shards: Vec<Recipient<RevertRule>>,
    pub conn: Option<Conn>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Control {
    /// Re-arm with a fresh window.
    Reset,
    /// Switch off until reset.
    Trip,
}

/// An operator's action on a rule's tripwire; replies with its status after
/// (or the reason it could not be recorded: Redis unreachable).
#[derive(Message)]
#[rtype(result = "Result<RuleStatus, String>")]
pub struct ControlTripwire {
    pub rule: u16,
    pub action: Control,
    /// The admin token's name.
    pub by: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleStatus {
    pub state: TripState,
    /// Users the rule restricted within the window, over every instance.
    pub restricted_in_window: u64,
    /// Users known over every instance: the share's denominator.
    pub population: u64,
    /// Since when the rule is in its state (ms since the epoch; 0: never changed).
    pub since_ms: u64,
    pub trips: u64,
    /// Tripped by an operator (no automatic re-arm).
    pub forced: bool,
}

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
async fn compare_and_set(
    conn: &mut Conn,
    key: &str,
    rule: &str,
    expected: &str,
    json: &str,
) -> redis::RedisResult<bool> {
    let won: i64 =
        redis::cmd("EVAL").arg(CAS).arg(1).arg(key).arg(rule).arg(expected).arg(json).query_async(conn).await?;
    Ok(won == 1)
}

/// Restrictions held back while Redis is unreachable, at most.
const PENDING_LIMIT: usize = 100_000;

pub struct Tripwire {
    settings: TripwireSettings,
    tick: Duration,
    shared: Arc<Shared>,
    shards: Vec<Recipient<RevertRule>>,
    conn: Option<Conn>,
    /// Per rule: the shared state as last read (or written) here.
    rules: Vec<SharedRule>,
    /// Per rule: the state as JSON as read from Redis ("" when absent), for compare-and-set.
    stored: Vec<String>,
    /// Per rule: restrictions in the window at the last sync.
    hits: Vec<u64>,
    population: u64,
    /// Restrictions not yet added to the shared windows.
    pending: Vec<Fired>,
    syncing: bool,
    /// A report arrived during a sync: sync again right after.
    again: bool,
    failing: bool,
    /// When the last sync started: reports sync at most every `REPORT_GAP`.
    last_sync: Option<std::time::Instant>,
    /// A sync is scheduled for the end of the gap.
    scheduled: bool,
    /// When this instance's population was last written (once per tick is enough).
    population_written: Option<std::time::Instant>,
    /// Per rule: window seconds to delete at the next sync.
    stale: Vec<Vec<u64>>,
}

/// Reports sync at most this often: a runaway rule still stops within tens
/// of milliseconds, and Redis is not asked on every shard batch.
const REPORT_GAP: Duration = Duration::from_millis(20);

/// Mailbox size: past it shards shed reports (counted) rather than block.
pub const MAILBOX: usize = 4096;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// What one sync read back.
struct Counts {
    hits: Vec<u64>,
    population: u64,
    stored: Vec<String>,
    /// Per rule: seconds that fell out of the window (deleted by the next sync).
    stale: Vec<Vec<u64>>,
}

impl Tripwire {
    pub fn new(settings: TripwireSettings, tick: Duration, shared: Arc<Shared>) -> Self {
        let n = shared.model.rules.len();
        Tripwire {
            settings,
            tick,
            shared,
            shards: Vec::new(),
            conn: None,
            rules: vec![SharedRule::default(); n],
            stored: vec![String::new(); n],
            hits: vec![0; n],
            population: 0,
            pending: Vec::new(),
            syncing: false,
            again: false,
            failing: false,
            last_sync: None,
            scheduled: false,
            population_written: None,
            stale: vec![Vec::new(); n],
        }
    }

    fn status(&self, r: usize) -> RuleStatus {
        let rule = &self.rules[r];
        RuleStatus {
            state: rule.state,
            restricted_in_window: self.hits[r],
            population: self.population,
            since_ms: rule.since_ms,
            trips: rule.trips,
            forced: rule.forced,
        }
    }

    /// Starts a sync unless one is in flight (then one follows it).
    fn sync(&mut self, ctx: &mut Context<Self>) {
        if self.syncing {
            self.again = true;
            return;
        }
        let Some(mut conn) = self.conn.clone() else { return };
        if let Some(wait) = self.last_sync.and_then(|l| REPORT_GAP.checked_sub(l.elapsed())) {
            if !self.scheduled {
                self.scheduled = true;
                ctx.run_later(wait, |act, ctx| {
                    act.scheduled = false;
                    act.sync(ctx);
                });
            }
            return;
        }
        self.last_sync = Some(std::time::Instant::now());
        self.syncing = true;
        self.again = false;
        let pending = std::mem::take(&mut self.pending);
        let stale = std::mem::replace(&mut self.stale, vec![Vec::new(); self.rules.len()]);
        let (shared, settings, rules) = (Arc::clone(&self.shared), self.settings, self.rules.clone());
        let now = now_ms();
        let write_population = self.population_written.is_none_or(|w| w.elapsed() >= self.tick);
        if write_population {
            self.population_written = Some(std::time::Instant::now());
        }
        let work = async move {
            let sync = Sync { pending: &pending, stale: &stale, now, write_population };
            let counts = read_counts(&mut conn, &shared, &settings, &rules, sync).await;
            (counts, pending, conn)
        };
        ctx.spawn(work.into_actor(self).map(move |(counts, pending, conn), act, ctx| {
            act.syncing = false;
            match counts {
                Ok(counts) => {
                    if act.failing {
                        act.failing = false;
                        tracing::info!("tripwire windows reachable again");
                    }
                    act.apply_counts(counts, now, conn, ctx);
                }
                Err(e) => {
                    counter!(REDIS_ERRORS_TOTAL, "operation" => "tripwire").increment(1);
                    if !act.failing {
                        act.failing = true;
                        tracing::warn!(error = %e, "cannot reach the shared tripwire windows; holding reports");
                    }
                    let mut kept = pending;
                    kept.append(&mut act.pending);
                    if kept.len() > PENDING_LIMIT {
                        let shed = kept.len() - PENDING_LIMIT;
                        kept.drain(..shed);
                        counter!(TRIPWIRE_REPORTS_SHED_TOTAL).increment(shed as u64);
                    }
                    act.pending = kept;
                }
            }
            if act.again {
                act.sync(ctx);
            }
        }));
    }

    /// Takes in what a sync read: observes changes made elsewhere, then
    /// evaluates each rule and proposes its transitions.
    fn apply_counts(&mut self, counts: Counts, now: u64, conn: Conn, ctx: &mut Context<Self>) {
        self.hits = counts.hits;
        self.population = counts.population;
        self.stale = counts.stale;
        for (r, stored) in counts.stored.into_iter().enumerate() {
            self.observe(r, stored, ctx);
        }
        for r in 0..self.rules.len() {
            let mut next = self.rules[r].clone();
            if let Some(change) = next.evaluate(self.hits[r], self.population, now, &self.settings) {
                self.propose(r, next, change, "tripwire".to_string(), conn.clone(), ctx);
            }
        }
    }

    /// Takes the stored state of rule `r`; applies it locally if it changed.
    fn observe(&mut self, r: usize, stored: String, ctx: &mut Context<Self>) {
        if stored == self.stored[r] {
            return;
        }
        let next: SharedRule = if stored.is_empty() {
            SharedRule::default()
        } else {
            match serde_json::from_str(&stored) {
                Ok(rule) => rule,
                Err(e) => {
                    tracing::warn!(rule = %self.shared.model.rules[r].name, error = %e, "unreadable tripwire state ignored");
                    return;
                }
            }
        };
        self.stored[r] = stored;
        let before = self.rules[r].state;
        self.rules[r] = next;
        let change = match (before, self.rules[r].state) {
            (TripState::Armed, TripState::Tripped) => Transition::Tripped,
            (TripState::Tripped, TripState::Armed) => Transition::Rearmed,
            _ => return,
        };
        self.changed(r, change, "elsewhere", ctx);
    }

    /// Writes a transition with compare-and-set; if it wins, applies it here
    /// and records it in the audit trail (if it loses, the next sync reads
    /// what another instance wrote).
    fn propose(
        &mut self,
        r: usize,
        next: SharedRule,
        change: Transition,
        by: String,
        mut conn: Conn,
        ctx: &mut Context<Self>,
    ) {
        let expected = self.stored[r].clone();
        let json = serde_json::to_string(&next).unwrap_or_default();
        let key = self.shared.keys.tripwire_state();
        let rule = self.shared.model.rules[r].name.to_string();
        let cas = async move {
            let won = compare_and_set(&mut conn, &key, &rule, &expected, &json).await;
            (won, json)
        };
        ctx.spawn(cas.into_actor(self).map(move |(won, json), act, ctx| {
            if let Ok(true) = won {
                act.stored[r] = json;
                act.rules[r] = next;
                act.changed(r, change, &by, ctx);
                act.audit(r, change, &by, ctx);
            }
            // Lost (another instance changed it first) or failed: the next sync reads the state.
        }));
    }

    /// Applies a state change here: shared bits, metrics, log, feed, revert.
    fn changed(&mut self, r: usize, change: Transition, by: &str, _ctx: &mut Context<Self>) {
        let rule = self.shared.model.rules[r].name.to_string();
        let (restricted, population) = (self.hits[r], self.population);
        let word = match change {
            Transition::Tripped => {
                self.shared.tripped.fetch_or(1 << r, Ordering::AcqRel);
                tracing::warn!(rule, restricted, population, by, "tripwire tripped: rule restricts nobody new");
                gauge!(TRIPWIRE_TRIPPED, "rule" => rule.clone()).set(1.0);
                if self.shared.model.rules[r].def.on_trip == OnTrip::Revert {
                    let since_ms = self.rules[r].since_ms.saturating_sub(self.settings.window_ms);
                    for shard in &self.shards {
                        let _ = shard.try_send(RevertRule { rule: r as u16, since_ms });
                    }
                }
                "tripped"
            }
            Transition::Rearmed => {
                self.shared.tripped.fetch_and(!(1 << r), Ordering::AcqRel);
                tracing::info!(rule, restricted, population, by, "tripwire re-armed");
                gauge!(TRIPWIRE_TRIPPED, "rule" => rule.clone()).set(0.0);
                "rearmed"
            }
        };
        counter!(TRIPWIRE_CHANGES_TOTAL, "rule" => rule, "change" => word).increment(1);
        let _ = self.shared.feed.send(Arc::new(FeedItem {
            kind: FeedKind::Tripwire,
            user_id: None,
            rule: Some(r as u16),
            features: self.shared.model.rules[r].features,
            event: None,
            json: self.change_json(r, change, by).into(),
        }));
    }

    fn change_json(&self, r: usize, change: Transition, by: &str) -> String {
        serde_json::json!({
            "type": "tripwire",
            "rule": &*self.shared.model.rules[r].name,
            "change": match change { Transition::Tripped => "tripped", Transition::Rearmed => "rearmed" },
            "restricted_in_window": self.hits[r],
            "population": self.population,
            "who": by,
            "at_ms": self.rules[r].since_ms,
        })
        .to_string()
    }

    /// The deciding instance records the change in the tripwire audit stream.
    fn audit(&mut self, r: usize, change: Transition, by: &str, ctx: &mut Context<Self>) {
        let Some(mut conn) = self.conn.clone() else { return };
        let key = self.shared.keys.tripwire_audit();
        let json = self.change_json(r, change, by);
        ctx.spawn(
            async move {
                let added: redis::RedisResult<String> =
                    redis::cmd("XADD").arg(key).arg("*").arg("change").arg(json).query_async(&mut conn).await;
                if let Err(e) = added {
                    counter!(REDIS_ERRORS_TOTAL, "operation" => "xadd").increment(1);
                    tracing::warn!(error = %e, "could not record a tripwire change in the audit stream");
                }
            }
            .into_actor(self),
        );
    }
}

/// What one sync sends.
struct Sync<'a> {
    pending: &'a [Fired],
    stale: &'a [Vec<u64>],
    now: u64,
    write_population: bool,
}

/// One sync's round trip: add the pending restrictions (per rule and second)
/// and this instance's population, delete seconds out of the window, read each
/// rule's seconds, the population and the states. One transaction (all keys
/// share the `{tripwire}` tag).
async fn read_counts(
    conn: &mut Conn,
    shared: &Shared,
    settings: &TripwireSettings,
    rules: &[SharedRule],
    sync: Sync<'_>,
) -> redis::RedisResult<Counts> {
    let keys = &shared.keys;
    let model = &shared.model;
    let mut per_second: std::collections::BTreeMap<(u16, u64), u64> = Default::default();
    for f in sync.pending {
        *per_second.entry((f.rule, f.at_ms / 1000)).or_default() += 1;
    }
    let mut pipe = redis::pipe();
    pipe.atomic();
    for ((r, second), n) in per_second {
        let Some(rule) = model.rules.get(usize::from(r)) else { continue };
        pipe.cmd("HINCRBY").arg(keys.tripwire_hits(&rule.name)).arg(second).arg(n).ignore();
    }
    for (rule, stale) in model.rules.iter().zip(sync.stale) {
        if !stale.is_empty() {
            pipe.cmd("HDEL").arg(keys.tripwire_hits(&rule.name)).arg(stale).ignore();
        }
    }
    let population = keys.tripwire_population();
    // Only shards this instance has recovered: a standby's shards, or shards
    // still loading, would write 0 over their owner's count.
    let counted: Vec<u32> = shared
        .owned
        .iter()
        .copied()
        .filter(|&s| shared.leased.load(Ordering::Acquire) && shared.caught_up[s as usize].load(Ordering::Acquire))
        .collect();
    if sync.write_population && !counted.is_empty() {
        let cmd = pipe.cmd("HSET").arg(&population);
        for s in counted {
            cmd.arg(s).arg(shared.users[s as usize].load(Ordering::Relaxed));
        }
        cmd.ignore();
    }
    for rule in &model.rules {
        pipe.cmd("HGETALL").arg(keys.tripwire_hits(&rule.name));
    }
    pipe.cmd("HVALS").arg(&population);
    pipe.cmd("HGETALL").arg(keys.tripwire_state());
    let mut replies: Vec<Value> = pipe.query_async(conn).await?;
    let states: std::collections::HashMap<String, String> =
        redis::from_redis_value(replies.pop().unwrap_or(Value::Nil))?;
    let per_shard: Vec<u64> = redis::from_redis_value(replies.pop().unwrap_or(Value::Nil))?;
    let cutoff_second = sync.now.saturating_sub(settings.window_ms) / 1000;
    let (mut hits, mut stale) = (Vec::new(), Vec::new());
    for (reply, state) in replies.into_iter().zip(rules) {
        let seconds: std::collections::HashMap<u64, u64> = redis::from_redis_value(reply)?;
        let from_second = state.window_start(sync.now, settings) / 1000;
        hits.push(seconds.iter().filter(|(s, _)| **s >= from_second).map(|(_, n)| n).sum());
        stale.push(seconds.keys().copied().filter(|s| *s < cutoff_second).collect());
    }
    Ok(Counts {
        hits,
        population: per_shard.iter().sum(),
        stored: model.rules.iter().map(|r| states.get(&*r.name).cloned().unwrap_or_default()).collect(),
        stale,
    })
}

impl Actor for Tripwire {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX);
        for rule in &self.shared.model.rules {
            gauge!(TRIPWIRE_TRIPPED, "rule" => rule.name.to_string()).set(0.0);
        }
        ctx.run_interval(self.tick, |this, ctx| this.sync(ctx));
    }
}

impl Handler<RulesFired> for Tripwire {
    type Result = ();

    fn handle(&mut self, msg: RulesFired, ctx: &mut Context<Self>) {
        self.pending.extend(msg.0);
        self.sync(ctx);
    }
}

impl Handler<Connect> for Tripwire {
    type Result = ();

    fn handle(&mut self, msg: Connect, ctx: &mut Context<Self>) {
        self.shards = msg.shards;
        if msg.conn.is_some() {
            self.conn = msg.conn;
            self.sync(ctx);
        }
    }
}

impl Handler<ControlTripwire> for Tripwire {
    type Result = ResponseActFuture<Self, Result<RuleStatus, String>>;

    fn handle(&mut self, msg: ControlTripwire, _: &mut Context<Self>) -> Self::Result {
        let r = usize::from(msg.rule);
        let Some(conn) = self.conn.clone() else {
            return Box::pin(fut::ready(Err("redis is not reachable yet".to_string())));
        };
        let (key, rule) = (self.shared.keys.tripwire_state(), self.shared.model.rules[r].name.to_string());
        // Read the current state, change it, compare-and-set; again if someone else changed it first.
        let attempt = async move {
            let mut conn = conn;
            for _ in 0..10 {
                let stored: Option<String> = redis::cmd("HGET").arg(&key).arg(&rule).query_async(&mut conn).await?;
                let stored = stored.unwrap_or_default();
                let mut next: SharedRule = serde_json::from_str(&stored).unwrap_or_default();
                let now = now_ms();
                let change = match msg.action {
                    Control::Trip => next.force_trip(now),
                    Control::Reset => next.reset(now),
                };
                let json = serde_json::to_string(&next).unwrap_or_default();
                if compare_and_set(&mut conn, &key, &rule, &stored, &json).await? {
                    return Ok((stored, json, next, change));
                }
            }
            Err(redis::RedisError::from((redis::ErrorKind::Client, "the tripwire state kept changing; try again")))
        };
        let by = format!("admin:{}", msg.by);
        Box::pin(attempt.into_actor(self).map(move |result, act, ctx| {
            let (_, json, next, change) = result.map_err(|e: redis::RedisError| e.to_string())?;
            act.stored[r] = json;
            act.rules[r] = next;
            if let Some(change) = change {
                act.changed(r, change, &by, ctx);
                act.audit(r, change, &by, ctx);
            }
            Ok(act.status(r))
        }))
    }
}

impl Handler<GetRuleStatus> for Tripwire {
    type Result = MessageResult<GetRuleStatus>;

    fn handle(&mut self, _: GetRuleStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult((0..self.rules.len()).map(|r| self.status(r)).collect())
    }
}
