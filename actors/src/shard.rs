//! The shard actor: single writer of one logical shard's users.
//!
//! It takes batches of stream entries from its reader, applies them through the
//! domain, publishes restriction changes into the read view and its watermark,
//! and reports restrictions to the tripwire without waiting for it. Its only
//! Redis I/O is the write-behind of its snapshot, spawned so the mailbox keeps
//! moving; dead letters go back to the reader in the reply.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::link::Conn;
use actix::prelude::*;
use ahash::AHashMap;
use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};
use tokio::sync::watch;

use crate::domain::admin::{change_json, AdminCommand};
use crate::domain::schema::PropValue;
use crate::domain::shard_state::{Change, ChangeKind};
use crate::domain::snapshot::encode_user;
use crate::domain::user::Override;
use crate::domain::user::UserReport;
use crate::domain::{EntryId, EventKind, ShardState};
use crate::metrics::*;
use crate::persistence::{self, FlushBatch};
use crate::shared::{FeedItem, FeedKind, Shared};
use crate::tripwire::{Fired, RulesFired};

/// One stream entry as read from Redis.
#[derive(Debug, Clone)]
pub struct RawEntry {
    pub id: EntryId,
    pub payload: Payload,
}

/// What an entry carries.
#[derive(Debug, Clone)]
pub enum Payload {
    /// An event (`event` field).
    Event(Vec<u8>),
    /// An operator's command (`admin` field).
    Admin(Vec<u8>),
    /// A restriction change (`change` field, in a changelog).
    Change(Vec<u8>),
    /// Neither: written by someone else.
    Missing,
}

/// Lift the restrictions `rule` made at or after `since_ms` (tripwire revert).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RevertRule {
    pub rule: u16,
    pub since_ms: u64,
}

/// An entry that could not be applied, for the dead-letter stream.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub id: EntryId,
    pub reason: &'static str,
    pub message: String,
    pub payload: Option<Vec<u8>>,
}

/// Apply these entries, in order. Replies with what could not be applied.
#[derive(Message)]
#[rtype(result = "Vec<DeadLetter>")]
pub struct ApplyEntries(pub Vec<RawEntry>);

/// The shard is caught up once it has applied `target` (None: the stream was empty).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CatchUpTo(pub Option<EntryId>);

/// Start from this recovered state; persist through `conn`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Restore {
    pub state: ShardState,
    pub conn: Conn,
}

/// Persist through this connection from now on (after a reconnect).
#[derive(Message)]
#[rtype(result = "()")]
pub struct UseConnection(pub Conn);

/// Flush everything applied so far; resolves true once it is persisted.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct FlushNow;

/// Explain a user, or `None` when the shard has never seen them.
#[derive(Message)]
#[rtype(result = "Option<UserReport>")]
pub struct GetUser(pub String);

/// When and how the shard writes its snapshot.
#[derive(Debug, Clone, Copy)]
pub struct PersistSettings {
    pub flush_interval: Duration,
    /// Flush early once this many users are dirty.
    pub dirty_limit: usize,
    /// Trim the stream up to the persisted offset minus this margin; `None`: never trim.
    pub trim_margin_ms: Option<u64>,
    /// A restriction change is written (to the changelog other instances
    /// follow) at most this long after it happened.
    pub changelog_delay: Duration,
}

pub struct ShardActor {
    id: u32,
    state: ShardState,
    shared: Arc<Shared>,
    tripwire: Recipient<RulesFired>,
    /// Until caught up: the last entry of the stream at start-up.
    catch_up: Option<EntryId>,
    /// Entries applied while catching up (replayed after a restart).
    replayed: u64,
    metrics: ShardMetrics,
    persist: PersistSettings,
    /// `None` until the reader connected and restored this shard.
    conn: Option<Conn>,
    /// One flush in flight at a time, so the stored offset never outruns stored users.
    flushing: bool,
    /// A flush was asked for (shutdown, dirty limit) while one was in flight.
    urgent: bool,
    /// The offset of the last successful flush.
    persisted: watch::Sender<EntryId>,
    /// Flushes are failing: log the change once, not every retry.
    failing: bool,
    /// Changes since the last flush: (user, JSON), written with the state.
    audit: Vec<(Box<str>, Arc<str>)>,
    /// Per event (then undeclared): (count, amount in micro-units) since the last flush.
    stats: Vec<(u64, u64)>,
    /// Per event: the index of its `amount` property, if it has one (for stats).
    amount_property: Vec<Option<usize>>,
    /// Changelog entries not yet written (JSON, in order).
    changelog: Vec<Arc<str>>,
    /// Users whose restricted set changed since the last changelog write, with the set.
    restricted: AHashMap<Box<str>, u64>,
    /// The next changelog write rewrites the shard's restricted set whole (after recovery).
    restricted_rewrite: bool,
    /// A changelog write is scheduled within `changelog_delay`.
    changelog_scheduled: bool,
    /// One changelog write in flight at a time, so entries stay in order.
    changelog_writing: bool,
}

/// Milliseconds since the epoch, by the wall clock.
fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// How often expired restrictions and overrides are lifted.
const SWEEP_INTERVAL: Duration = Duration::from_millis(250);

/// Metric handles resolved once, so applying an event formats no label.
struct ShardMetrics {
    /// Per declared event, then one for undeclared events: [applied, duplicate, ignored].
    events: Vec<[Counter; 3]>,
    fired: Vec<Counter>,
    suppressed: Vec<Counter>,
    users: Gauge,
    dirty: Gauge,
    lag: Histogram,
    batch: Histogram,
    flush: Histogram,
    replayed: Counter,
}

impl ShardMetrics {
    fn new(shard: u32, model: &crate::domain::Model) -> Self {
        let names = model.schema.events.iter().map(|e| e.to_string()).chain(["unknown".to_string()]);
        let rule = |name: &'static str| -> Vec<Counter> {
            model.rules.iter().map(|r| counter!(name, "rule" => r.name.to_string())).collect()
        };
        ShardMetrics {
            events: names
                .map(|n| {
                    ["applied", "duplicate", "ignored"]
                        .map(|o| counter!(EVENTS_TOTAL, "event" => n.clone(), "outcome" => o))
                })
                .collect(),
            fired: rule(RULE_FIRED_TOTAL),
            suppressed: rule(RULE_SUPPRESSED_TOTAL),
            users: gauge!(SHARD_USERS, "shard" => shard.to_string()),
            dirty: gauge!(WRITEBEHIND_PENDING_USERS, "shard" => shard.to_string()),
            flush: histogram!(FLUSH_SECONDS),
            replayed: counter!(RECOVERY_ENTRIES_REPLAYED_TOTAL),
            lag: histogram!(EVENT_APPLY_LAG_SECONDS),
            batch: histogram!(APPLY_BATCH_SECONDS),
        }
    }
}

impl ShardActor {
    pub fn new(
        id: u32,
        state: ShardState,
        shared: Arc<Shared>,
        tripwire: Recipient<RulesFired>,
        persist: PersistSettings,
    ) -> Self {
        let metrics = ShardMetrics::new(id, &shared.model);
        let events = shared.model.schema.events.len();
        let amount_property =
            (0..events as u16).map(|k| shared.model.schema.property_index(k, "amount").map(|(p, _)| p)).collect();
        ShardActor {
            id,
            state,
            shared,
            tripwire,
            catch_up: None,
            replayed: 0,
            metrics,
            persist,
            conn: None,
            flushing: false,
            urgent: false,
            persisted: watch::channel(EntryId::ZERO).0,
            failing: false,
            audit: Vec::new(),
            stats: vec![(0, 0); events + 1],
            amount_property,
            changelog: Vec::new(),
            restricted: AHashMap::new(),
            restricted_rewrite: false,
            changelog_scheduled: false,
            changelog_writing: false,
        }
    }

    /// Writes the users changed since the last flush and the offset, unless a
    /// flush is in flight (then it runs again when that one ends).
    fn flush(&mut self, ctx: &mut Context<Self>) {
        // After a changelog write in flight, so changes reach Redis in order.
        if self.flushing || self.changelog_writing {
            self.urgent = true;
            return;
        }
        let Some(mut conn) = self.conn.clone() else {
            return;
        };
        if !self.shared.lease_valid() {
            // Another instance may own the shard by now: write nothing.
            return;
        }
        let persisted = *self.persisted.borrow();
        if self.state.dirty.is_empty()
            && self.state.applied == persisted
            && self.audit.is_empty()
            && !self.restricted_rewrite
            && self.changelog.is_empty()
        {
            return;
        }
        let ShardState { users, dirty, dedup, applied, .. } = &mut self.state;
        let model = &self.shared.model;
        let batch = FlushBatch {
            users: dirty
                .drain()
                .filter_map(|u| users.get(&u).map(|state| encode_user(model, state)).map(|b| (u, b)))
                .collect(),
            dedup: dedup.take_changes(),
            offset: *applied,
            audit: std::mem::take(&mut self.audit),
            stats: self
                .stats
                .iter_mut()
                .enumerate()
                .filter(|(_, (count, _))| *count > 0)
                .flat_map(|(k, stat)| {
                    let name: &str = model.schema.events.get(k).map_or("unknown", |n| n);
                    let (count, amount) = std::mem::take(stat);
                    [(format!("count:{name}"), count), (format!("amount:{name}"), amount)]
                })
                .filter(|(_, v)| *v > 0)
                .collect(),
            changes: Self::take_changes(model, &mut self.changelog, &mut self.restricted, &mut self.restricted_rewrite),
            trim_below: self
                .persist
                .trim_margin_ms
                .filter(|_| *applied > EntryId::ZERO)
                .map(|m| EntryId::new(applied.ms.saturating_sub(m), 0)),
        };
        self.flushing = true;
        self.urgent = false;
        let (shared, shard, started) = (Arc::clone(&self.shared), self.id, Instant::now());
        let write = async move {
            let result = persistence::write(&mut conn, &shared.keys, shard, &batch).await;
            (batch, result)
        };
        ctx.spawn(write.into_actor(self).map(move |(batch, result), act, ctx| {
            act.flushing = false;
            match result {
                Ok(()) => {
                    act.metrics.flush.record(started.elapsed().as_secs_f64());
                    act.persisted.send_replace(batch.offset);
                    if act.failing {
                        act.failing = false;
                        tracing::info!(shard = act.id, "snapshot writes resumed");
                    }
                    if act.urgent || act.state.dirty.len() >= act.persist.dirty_limit {
                        act.flush(ctx);
                    }
                }
                Err(e) => {
                    // Give the batch back: the next flush writes these users'
                    // current state with a later offset.
                    for (user, _) in batch.users {
                        act.state.dirty.insert(user);
                    }
                    act.state.dedup.put_back(batch.dedup);
                    act.put_back_changes(batch.changes);
                    let mut audit = batch.audit;
                    audit.append(&mut act.audit);
                    act.audit = audit;
                    for (field, delta) in batch.stats {
                        if let Some((kind, name)) = field.split_once(':') {
                            let k = act.shared.model.schema.event_index(name).map_or(act.stats.len() - 1, usize::from);
                            let stat = &mut act.stats[k];
                            if kind == "count" { stat.0 += delta } else { stat.1 += delta }
                        }
                    }
                    counter!(REDIS_ERRORS_TOTAL, "operation" => "flush").increment(1);
                    if !act.failing {
                        act.failing = true;
                        tracing::warn!(shard = act.id, error = %e, "snapshot write failed; retrying on the next interval");
                    }
                }
            }
            act.metrics.dirty.set(act.state.dirty.len() as f64);
        }));
    }

    /// Applies one event entry; an entry that is not a valid event is an error
    /// (reason, message) for the dead-letter stream.
    fn apply_event(
        &mut self,
        id: EntryId,
        bytes: &[u8],
        now_ms: u64,
        fired: &mut Vec<Fired>,
    ) -> Result<(), (&'static str, String)> {
        let model = Arc::clone(&self.shared.model);
        let value: serde_json::Value;
        let event = match model.schema.validate_fast(bytes) {
            Some(event) => event,
            None => {
                value = serde_json::from_slice(bytes)
                    .map_err(|e| ("malformed_json", format!("event is not valid JSON: {e}")))?;
                model.schema.validate(&value).map_err(|e| (e.reason, e.message))?
            }
        };
        let tripped = self.shared.tripped.load(Ordering::Relaxed);
        let out = self.state.apply(&model, id, &event, tripped);
        let kind = match event.kind {
            EventKind::Known(k) => usize::from(k),
            EventKind::Unknown => model.schema.events.len(),
        };
        let outcome = usize::from(out.duplicate) + 2 * usize::from(out.ignored);
        self.metrics.events[kind][outcome].increment(1);
        self.metrics.lag.record(now_ms.saturating_sub(id.ms) as f64 / 1000.0);
        if !out.duplicate {
            let stats = &mut self.stats[kind];
            stats.0 += 1;
            if let EventKind::Known(k) = event.kind {
                if let Some(p) = self.amount_property[usize::from(k)] {
                    if let PropValue::Money(m) = event.values[p] {
                        stats.1 += m.0;
                    }
                }
            }
        }
        if self.shared.event_subscribers.load(Ordering::Relaxed) > 0 && !out.duplicate {
            let json = serde_json::json!({
                "type": "event", "name": event.name, "user_id": event.user_id, "entry_id": id.to_string(),
            });
            let _ = self.shared.feed.send(Arc::new(FeedItem {
                kind: FeedKind::Event,
                user_id: Some(event.user_id.into()),
                rule: None,
                features: 0,
                event: match event.kind {
                    EventKind::Known(k) => Some(k),
                    EventKind::Unknown => None,
                },
                json: json.to_string().into(),
            }));
        }
        let mut bits = out.fired;
        while bits != 0 {
            let r = bits.trailing_zeros() as u16;
            bits &= bits - 1;
            fired.push(Fired { rule: r, at_ms: id.ms });
            self.metrics.fired[usize::from(r)].increment(1);
            self.publish(Change {
                user_id: event.user_id.into(),
                kind: ChangeKind::RuleFired,
                features: model.rules[usize::from(r)].features,
                rule: Some(r),
                entry: id,
                at_ms: id.ms,
                by: None,
                reason: None,
                restricted_after: out.features,
            });
        }
        let mut bits = out.suppressed;
        while bits != 0 {
            let r = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            self.metrics.suppressed[r].increment(1);
        }
        Ok(())
    }

    /// Applies an operator's command entry.
    fn apply_admin(&mut self, id: EntryId, bytes: &[u8]) -> Result<(), (&'static str, String)> {
        let model = Arc::clone(&self.shared.model);
        let command: AdminCommand =
            serde_json::from_slice(bytes).map_err(|e| ("bad_admin_command", format!("not an admin command: {e}")))?;
        let feature_of = |name: &str| {
            model
                .feature_index(name)
                .map(|f| f as u8)
                .ok_or_else(|| ("bad_admin_command", format!("unknown feature {name:?}")))
        };
        let change = match &command {
            AdminCommand::SetOverride { user_id, feature, allowed, reason, by, expires_at_ms } => {
                let f = feature_of(feature)?;
                let o = Override {
                    feature: f,
                    allowed: *allowed,
                    reason: reason.as_str().into(),
                    by: by.as_str().into(),
                    at_ms: id.ms,
                    expires_at_ms: *expires_at_ms,
                };
                self.state.set_override(&model, id, user_id, f, Some(o), by)
            }
            AdminCommand::ClearOverride { user_id, feature, by } => {
                let f = feature_of(feature)?;
                self.state.set_override(&model, id, user_id, f, None, by)
            }
        };
        if let Some(change) = change {
            self.publish(change);
        }
        Ok(())
    }

    /// Publishes a change: into the read view, the pending audit and
    /// changelog, the live feed.
    fn publish(&mut self, change: Change) {
        self.shared.view.set(self.id, &change.user_id, change.restricted_after);
        self.restricted.insert(change.user_id.clone(), change.restricted_after);
        // One copy of the JSON for the changelog, the audit and the history.
        let json: Arc<str> = change_json(&self.shared.model, &change).into();
        self.changelog.push(Arc::clone(&json));
        if self.shared.feed.receiver_count() > 0 {
            let _ = self.shared.feed.send(Arc::new(FeedItem {
                kind: FeedKind::Change,
                user_id: Some(change.user_id.clone()),
                rule: change.rule,
                features: change.features,
                event: None,
                json: Arc::clone(&json),
            }));
        }
        self.audit.push((change.user_id, json));
    }

    /// Lifts what expired; visible to checks at once.
    fn sweep(&mut self, ctx: &mut Context<Self>) {
        let model = Arc::clone(&self.shared.model);
        for change in self.state.sweep(&model, now_ms()) {
            self.publish(change);
        }
        self.schedule_changelog(ctx);
    }

    /// Changes are waiting: write them to the changelog within
    /// `changelog_delay`, so that other instances see them soon (not only at
    /// the next snapshot).
    fn schedule_changelog(&mut self, ctx: &mut Context<Self>) {
        if self.changelog.is_empty() || self.changelog_scheduled {
            return;
        }
        self.changelog_scheduled = true;
        ctx.run_later(self.persist.changelog_delay, |act, ctx| {
            act.changelog_scheduled = false;
            act.write_changelog(ctx);
        });
    }

    fn take_changes(
        model: &crate::domain::Model,
        changelog: &mut Vec<Arc<str>>,
        restricted: &mut AHashMap<Box<str>, u64>,
        rewrite: &mut bool,
    ) -> persistence::ChangeBatch {
        persistence::ChangeBatch {
            entries: std::mem::take(changelog),
            restricted: restricted.drain().map(|(u, mask)| (u, persistence::names_of(model, mask))).collect(),
            rewrite: std::mem::take(rewrite),
        }
    }

    /// A write failed: its changes go back in front of newer ones.
    fn put_back_changes(&mut self, batch: persistence::ChangeBatch) {
        let mut entries = batch.entries;
        entries.append(&mut self.changelog);
        self.changelog = entries;
        for (user, names) in batch.restricted {
            let mask = persistence::mask_of(&self.shared.model, &names);
            self.restricted.entry(user).or_insert(mask);
        }
        self.restricted_rewrite |= batch.rewrite;
    }

    /// Writes the pending changelog ahead of the snapshot (a snapshot in
    /// flight or a failed write leaves them to the next one).
    fn write_changelog(&mut self, ctx: &mut Context<Self>) {
        if self.changelog_writing || self.flushing || !self.shared.lease_valid() {
            self.schedule_changelog(ctx);
            return;
        }
        let Some(mut conn) = self.conn.clone() else { return };
        let model = Arc::clone(&self.shared.model);
        let batch = Self::take_changes(&model, &mut self.changelog, &mut self.restricted, &mut self.restricted_rewrite);
        if batch.is_empty() {
            return;
        }
        self.changelog_writing = true;
        let (shared, shard) = (Arc::clone(&self.shared), self.id);
        let write = async move {
            let result = persistence::write_changes(&mut conn, &shared.keys, shard, &batch).await;
            (batch, result)
        };
        ctx.spawn(write.into_actor(self).map(|(batch, result), act, ctx| {
            act.changelog_writing = false;
            if result.is_err() {
                counter!(REDIS_ERRORS_TOTAL, "operation" => "changelog").increment(1);
                act.put_back_changes(batch);
            }
            if act.urgent {
                act.flush(ctx);
            }
            act.schedule_changelog(ctx);
        }));
    }

    fn check_caught_up(&mut self) {
        if let Some(target) = self.catch_up {
            if self.state.applied >= target {
                self.catch_up = None;
                self.shared.mark_caught_up(self.id, self.replayed);
                tracing::debug!(shard = self.id, applied = %self.state.applied, replayed = self.replayed, "shard caught up");
            }
        }
    }
}

impl Actor for ShardActor {
    type Context = Context<Self>;
}

impl Handler<ApplyEntries> for ShardActor {
    type Result = MessageResult<ApplyEntries>;

    fn handle(&mut self, msg: ApplyEntries, ctx: &mut Context<Self>) -> Self::Result {
        let started = Instant::now();
        if self.catch_up.is_some() {
            self.replayed += msg.0.len() as u64;
            self.metrics.replayed.increment(msg.0.len() as u64);
        }
        let mut dead = Vec::new();
        let mut fired = Vec::new();
        let now_ms = now_ms();
        for entry in msg.0 {
            self.state.applied = self.state.applied.max(entry.id);
            let result = match &entry.payload {
                Payload::Event(bytes) => self.apply_event(entry.id, bytes, now_ms, &mut fired),
                Payload::Admin(bytes) => self.apply_admin(entry.id, bytes),
                Payload::Missing | Payload::Change(_) => {
                    Err(("missing_field", "entry has no \"event\" field".to_string()))
                }
            };
            if let Err((reason, message)) = result {
                let payload = match entry.payload {
                    Payload::Event(b) | Payload::Admin(b) | Payload::Change(b) => Some(b),
                    Payload::Missing => None,
                };
                dead.push(DeadLetter { id: entry.id, reason, message, payload });
            }
        }
        for d in &dead {
            counter!(EVENTS_TOTAL, "event" => "unparsed", "outcome" => "dead_lettered").increment(1);
            tracing::warn!(shard = self.id, id = %d.id, reason = d.reason, "entry dead-lettered: {}", d.message);
        }
        let users = self.state.users.len() as u64;
        self.shared.users[self.id as usize].store(users, Ordering::Relaxed);
        self.metrics.users.set(users as f64);
        self.shared.applied[self.id as usize].send_replace(self.state.applied);
        self.check_caught_up();
        // Restrictions re-made while replaying after a restart were counted before it.
        let replaying = self.catch_up.is_some();
        if !fired.is_empty() && !replaying && self.tripwire.try_send(RulesFired(fired)).is_err() {
            counter!(TRIPWIRE_REPORTS_SHED_TOTAL).increment(1);
        }
        self.metrics.batch.record(started.elapsed().as_secs_f64());
        self.metrics.dirty.set(self.state.dirty.len() as f64);
        if self.state.dirty.len() >= self.persist.dirty_limit {
            self.flush(ctx);
        }
        self.schedule_changelog(ctx);
        MessageResult(dead)
    }
}

impl Handler<CatchUpTo> for ShardActor {
    type Result = ();

    fn handle(&mut self, msg: CatchUpTo, _: &mut Context<Self>) {
        match msg.0 {
            Some(target) if target > self.state.applied => self.catch_up = Some(target),
            _ => {
                self.catch_up = None;
                self.shared.mark_caught_up(self.id, 0);
            }
        }
    }
}

impl Handler<GetUser> for ShardActor {
    type Result = MessageResult<GetUser>;

    fn handle(&mut self, msg: GetUser, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.state.users.get(msg.0.as_str()).map(|u| u.report(&self.shared.model)))
    }
}

impl Handler<Restore> for ShardActor {
    type Result = ();

    fn handle(&mut self, msg: Restore, ctx: &mut Context<Self>) {
        self.state = msg.state;
        self.shared.view.take_over(self.id);
        for (user, state) in &self.state.users {
            let mask = state.restricted(&self.shared.model);
            if mask != 0 {
                self.shared.view.set(self.id, user, mask);
                self.restricted.insert(user.clone(), mask);
            }
        }
        // Rewritten whole by the first flush: it is then exact even if it was
        // written by an older version, or not at all.
        self.restricted_rewrite = true;
        let users = self.state.users.len() as u64;
        self.shared.users[self.id as usize].store(users, Ordering::Relaxed);
        self.metrics.users.set(users as f64);
        self.shared.applied[self.id as usize].send_replace(self.state.applied);
        self.persisted.send_replace(self.state.applied);
        self.state.index_expiries();
        self.conn = Some(msg.conn);
        // Shards restored together would otherwise all flush in the same
        // millisecond: a burst of encoding here and of MULTI/EXECs in Redis
        // that every append waits behind. Each shard starts at its own phase.
        let phase = self.persist.flush_interval.mul_f64(f64::from(self.id) / f64::from(self.shared.shard_count.max(1)));
        ctx.run_later(phase, |act, ctx| {
            act.flush(ctx);
            ctx.run_interval(act.persist.flush_interval, |act, ctx| act.flush(ctx));
        });
        ctx.run_interval(SWEEP_INTERVAL, |act, ctx| act.sweep(ctx));
    }
}

impl Handler<UseConnection> for ShardActor {
    type Result = ();

    fn handle(&mut self, msg: UseConnection, _: &mut Context<Self>) {
        self.conn = Some(msg.0);
    }
}

impl Handler<FlushNow> for ShardActor {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, _: FlushNow, ctx: &mut Context<Self>) -> Self::Result {
        let target = self.state.applied;
        self.flush(ctx);
        let mut persisted = self.persisted.subscribe();
        Box::pin(async move { persisted.wait_for(|p| *p >= target).await.is_ok() })
    }
}

impl Handler<RevertRule> for ShardActor {
    type Result = ();

    fn handle(&mut self, msg: RevertRule, ctx: &mut Context<Self>) {
        let model = Arc::clone(&self.shared.model);
        for change in self.state.revert(&model, msg.rule, msg.since_ms, now_ms()) {
            self.publish(change);
        }
        self.schedule_changelog(ctx);
    }
}
