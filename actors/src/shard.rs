//! The shard actor: single writer of one logical shard's users.
//!
//! It takes batches of stream entries from its reader, applies them through the
//! domain, publishes restriction changes into the read view and its watermark,
//! and reports restrictions to the tripwire without waiting for it. It does no
//! Redis I/O: dead letters go back to the reader in the reply.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

use crate::domain::user::UserReport;
use crate::domain::{EntryId, EventKind, ShardState};
use crate::metrics::*;
use crate::shared::Shared;
use crate::tripwire::RulesFired;

/// One stream entry as read from Redis.
#[derive(Debug, Clone)]
pub struct RawEntry {
    pub id: EntryId,
    /// The `event` field, or `None` when the entry has none.
    pub payload: Option<Vec<u8>>,
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

/// Where the reader should start: the last applied entry.
#[derive(Message)]
#[rtype(result = "EntryId")]
pub struct GetApplied;

/// Explain a user, or `None` when the shard has never seen them.
#[derive(Message)]
#[rtype(result = "Option<UserReport>")]
pub struct GetUser(pub String);

pub struct ShardActor {
    id: u32,
    state: ShardState,
    shared: Arc<Shared>,
    tripwire: Recipient<RulesFired>,
    /// Until caught up: the last entry of the stream at start-up.
    catch_up: Option<EntryId>,
    metrics: ShardMetrics,
}

/// Metric handles resolved once, so applying an event formats no label.
struct ShardMetrics {
    /// Per declared event, then one for undeclared events: [applied, duplicate, ignored].
    events: Vec<[Counter; 3]>,
    fired: Vec<Counter>,
    suppressed: Vec<Counter>,
    users: Gauge,
    lag: Histogram,
    batch: Histogram,
}

impl ShardMetrics {
    fn new(shard: u32, model: &crate::domain::Model) -> Self {
        let names = model
            .schema
            .events
            .iter()
            .map(|e| e.to_string())
            .chain(["unknown".to_string()]);
        let rule = |name: &'static str| -> Vec<Counter> {
            model
                .rules
                .iter()
                .map(|r| counter!(name, "rule" => r.name.to_string()))
                .collect()
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
    ) -> Self {
        let metrics = ShardMetrics::new(id, &shared.model);
        ShardActor {
            id,
            state,
            shared,
            tripwire,
            catch_up: None,
            metrics,
        }
    }

    fn check_caught_up(&mut self) {
        if let Some(target) = self.catch_up {
            if self.state.applied >= target {
                self.catch_up = None;
                self.shared.caught_up[self.id as usize].store(true, Ordering::Release);
                tracing::debug!(shard = self.id, applied = %self.state.applied, "shard caught up");
            }
        }
    }
}

impl Actor for ShardActor {
    type Context = Context<Self>;
}

impl Handler<ApplyEntries> for ShardActor {
    type Result = MessageResult<ApplyEntries>;

    fn handle(&mut self, msg: ApplyEntries, _: &mut Context<Self>) -> Self::Result {
        let started = Instant::now();
        let model = Arc::clone(&self.shared.model);
        let mut dead = Vec::new();
        let mut fired = Vec::new();
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        for entry in msg.0 {
            self.state.applied = self.state.applied.max(entry.id);
            let Some(payload) = entry.payload.as_deref() else {
                dead.push(DeadLetter {
                    id: entry.id,
                    reason: "missing_field",
                    message: "entry has no \"event\" field".into(),
                    payload: None,
                });
                continue;
            };
            let value: serde_json::Value = match serde_json::from_slice(payload) {
                Ok(v) => v,
                Err(e) => {
                    dead.push(DeadLetter {
                        id: entry.id,
                        reason: "malformed_json",
                        message: format!("event is not valid JSON: {e}"),
                        payload: entry.payload,
                    });
                    continue;
                }
            };
            let event = match model.schema.validate(&value) {
                Ok(e) => e,
                Err(e) => {
                    dead.push(DeadLetter {
                        id: entry.id,
                        reason: e.reason,
                        message: e.message,
                        payload: entry.payload.clone(),
                    });
                    continue;
                }
            };
            let tripped = self.shared.tripped.load(Ordering::Relaxed);
            let out = self.state.apply(&model, entry.id, &event, tripped);
            let kind = match event.kind {
                EventKind::Known(k) => usize::from(k),
                EventKind::Unknown => model.schema.events.len(),
            };
            let outcome = usize::from(out.duplicate) + 2 * usize::from(out.ignored);
            self.metrics.events[kind][outcome].increment(1);
            self.metrics
                .lag
                .record(now_ms.saturating_sub(entry.id.ms) as f64 / 1000.0);
            if out.fired != 0 {
                self.shared.view.set(self.id, event.user_id, out.features);
                let mut bits = out.fired;
                while bits != 0 {
                    let r = bits.trailing_zeros() as u16;
                    bits &= bits - 1;
                    fired.push((r, entry.id.ms));
                    self.metrics.fired[usize::from(r)].increment(1);
                }
            }
            let mut bits = out.suppressed;
            while bits != 0 {
                let r = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                self.metrics.suppressed[r].increment(1);
            }
        }
        for d in &dead {
            counter!(EVENTS_TOTAL, "event" => "unparsed", "outcome" => "dead_lettered")
                .increment(1);
            tracing::warn!(shard = self.id, id = %d.id, reason = d.reason, "entry dead-lettered: {}", d.message);
        }
        let users = self.state.users.len() as u64;
        self.shared.users[self.id as usize].store(users, Ordering::Relaxed);
        self.metrics.users.set(users as f64);
        self.shared.applied[self.id as usize].send_replace(self.state.applied);
        self.check_caught_up();
        if !fired.is_empty() && self.tripwire.try_send(RulesFired(fired)).is_err() {
            counter!(TRIPWIRE_REPORTS_SHED_TOTAL).increment(1);
        }
        self.metrics.batch.record(started.elapsed().as_secs_f64());
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
                self.shared.caught_up[self.id as usize].store(true, Ordering::Release);
            }
        }
    }
}

impl Handler<GetApplied> for ShardActor {
    type Result = MessageResult<GetApplied>;

    fn handle(&mut self, _: GetApplied, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.state.applied)
    }
}

impl Handler<GetUser> for ShardActor {
    type Result = MessageResult<GetUser>;

    fn handle(&mut self, msg: GetUser, _: &mut Context<Self>) -> Self::Result {
        MessageResult(
            self.state
                .users
                .get(msg.0.as_str())
                .map(|u| u.report(&self.shared.model)),
        )
    }
}
