//! The shard actor: single writer of one logical shard's users.
//!
//! It takes batches of stream entries from its reader, applies them through
//! the domain (`apply.rs`), publishes restriction changes into the read view
//! and its watermark, and reports restrictions to the tripwire without
//! waiting for it. Its only Redis I/O is the write-behind (`persist.rs`,
//! state in `write_behind`), spawned so the mailbox keeps moving; dead
//! letters go back to the reader in the reply.

mod apply;
mod metrics;
mod persist;
pub mod write_behind;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use self::metrics::ShardMetrics;
pub use self::write_behind::PersistSettings;
use self::write_behind::WriteBehind;
use crate::clock::now_ms;
use crate::domain::{EntryId, Model, ShardState};
use crate::link::Conn;
use crate::messages::*;
use crate::metrics::EVENTS_TOTAL;
use crate::shared::Shared;
use crate::store::DeadLetter;
use crate::wire::Payload;

/// How often expired restrictions and overrides are lifted.
const SWEEP_INTERVAL: Duration = Duration::from_millis(250);

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
    /// `None` until the reader connected and restored this shard.
    conn: Option<Conn>,
    write: WriteBehind,
    /// Per declared event: the index of its `amount` property, if any (for stats).
    amount_property: Vec<Option<usize>>,
    /// The rule set this shard applies, switched at its position in the stream.
    model: Arc<Model>,
    /// Its version (0: the configuration file's, before any was published).
    model_version: u64,
    /// Restrictions decided while their rule had no budget left: made when
    /// budget comes, suppressed if the rule trips first.
    held: Vec<apply::Held>,
}

impl ShardActor {
    pub fn new(
        id: u32,
        state: ShardState,
        shared: Arc<Shared>,
        tripwire: Recipient<RulesFired>,
        persist: PersistSettings,
    ) -> Self {
        let (model, model_version) = (shared.model(), shared.model_version());
        let metrics = ShardMetrics::new(id, &model, shared.rule_metrics(model_version, &model));
        let write = WriteBehind::new(persist, model.schema.events.len());
        let schema = &model.schema;
        let amount_property =
            (0..schema.events.len() as u16).map(|k| schema.property_index(k, "amount").map(|(p, _)| p)).collect();
        ShardActor {
            id,
            state,
            shared,
            tripwire,
            catch_up: None,
            replayed: 0,
            held: Vec::new(),
            metrics,
            conn: None,
            write,
            amount_property,
            model_version,
            model,
        }
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

    /// Applies rule set `model` (version `version`) from now on.
    fn set_model(&mut self, version: u64, model: Arc<Model>) {
        let schema = &model.schema;
        self.amount_property =
            (0..schema.events.len() as u16).map(|k| schema.property_index(k, "amount").map(|(p, _)| p)).collect();
        self.metrics = ShardMetrics::new(self.id, &model, self.shared.rule_metrics(version, &model));
        self.model = model;
        self.model_version = version;
        self.shared.set_model(version, Arc::clone(&self.model));
    }

    /// Publishes the shard's user count and watermark.
    fn publish_progress(&self) {
        let users = self.state.users.len() as u64;
        self.shared.users[self.id as usize].store(users, Ordering::Relaxed);
        self.metrics.users.set(users as f64);
        self.shared.applied[self.id as usize].send_replace(self.state.applied);
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
                Payload::Rules(bytes) => self.apply_rules(entry.id, bytes),
                Payload::Missing => Err(("missing_field", "entry has no \"event\" or \"admin\" field".to_string())),
            };
            if let Err((reason, message)) = result {
                dead.push(DeadLetter { id: entry.id, reason, message, payload: entry.payload.into_bytes() });
            }
        }
        for d in &dead {
            ::metrics::counter!(EVENTS_TOTAL, "event" => "unparsed", "outcome" => "dead_lettered").increment(1);
            tracing::warn!(shard = self.id, id = %d.id, reason = d.reason, "entry dead-lettered: {}", d.message);
        }
        self.retry_held(&mut fired);
        self.publish_progress();
        self.check_caught_up();
        // Restrictions re-made while replaying after a restart were counted before it.
        let replaying = self.catch_up.is_some();
        if !replaying {
            self.report(fired);
        }
        self.metrics.batch.record(started.elapsed().as_secs_f64());
        self.metrics.dirty.set(self.state.dirty.len() as f64);
        if self.state.dirty.len() >= self.write.settings.dirty_limit {
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
        let now = crate::clock::now_ms();
        MessageResult(self.state.users.get(msg.0.as_str()).map(|u| u.report_at(&self.model, self.id, now)))
    }
}

impl Handler<Restore> for ShardActor {
    type Result = ();

    fn handle(&mut self, msg: Restore, ctx: &mut Context<Self>) {
        self.state = msg.state;
        self.set_model(msg.version, msg.model);
        self.shared.view.take_over(self.id);
        let model = &self.model;
        let mut restricted = Vec::new();
        for (user, state) in self.state.users.iter() {
            let mask = state.restricted(model);
            if mask != 0 {
                let causes = state.causes(model);
                self.shared.view.set(self.id, user, mask, &causes);
                restricted.push((Box::<str>::from(user), causes));
            }
        }
        self.write.restored(restricted.into_iter(), self.state.applied, self.model_version);
        self.publish_progress();
        self.state.index_expiries(&self.model);
        self.conn = Some(msg.conn);
        // Shards restored together would otherwise all flush in the same
        // millisecond: a burst of encoding here and of MULTI/EXECs in Redis
        // that every append waits behind. Each shard starts at its own phase.
        let interval = self.write.settings.flush_interval;
        let phase = interval.mul_f64(f64::from(self.id) / f64::from(self.shared.shard_count.max(1)));
        ctx.run_later(phase, move |act, ctx| {
            act.flush(ctx);
            ctx.run_interval(interval, |act, ctx| act.flush(ctx));
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
        let mut persisted = self.write.persisted();
        Box::pin(async move { persisted.wait_for(|p| *p >= target).await.is_ok() })
    }
}

impl Handler<Simulate> for ShardActor {
    type Result = MessageResult<Simulate>;

    fn handle(&mut self, msg: Simulate, _: &mut Context<Self>) -> Self::Result {
        let now = crate::clock::now_ms();
        MessageResult(crate::domain::simulate::simulate(&self.state, &self.model, &msg.candidate, msg.sample, now))
    }
}

impl Handler<ListByRule> for ShardActor {
    type Result = MessageResult<ListByRule>;

    fn handle(&mut self, msg: ListByRule, _: &mut Context<Self>) -> Self::Result {
        let mut found: Vec<(String, crate::domain::EntryId, u64)> = Vec::new();
        let mut count = 0;
        for (user, state) in self.state.users.iter() {
            let made = state
                .restrictions
                .iter()
                .filter(|r| r.suppressed == msg.suppressed && r.rule == msg.rule && r.at_ms >= msg.since_ms);
            for r in made {
                count += 1;
                found.push((user.to_string(), r.entry, r.at_ms));
                if found.len() >= 2 * msg.limit.max(64) {
                    newest(&mut found, msg.limit);
                }
            }
        }
        newest(&mut found, msg.limit);
        MessageResult((count, found))
    }
}

/// Keeps the newest `limit` of `found` (by time, then entry, then user), newest first.
fn newest(found: &mut Vec<(String, crate::domain::EntryId, u64)>, limit: usize) {
    found.sort_unstable_by(|a, b| (b.2, b.1, &b.0).cmp(&(a.2, a.1, &a.0)));
    found.truncate(limit);
}

impl Handler<RevertRule> for ShardActor {
    type Result = ();

    fn handle(&mut self, msg: RevertRule, ctx: &mut Context<Self>) {
        let model = Arc::clone(&self.model);
        for change in self.state.revert(&model, msg.rule, msg.since_ms, now_ms()) {
            self.publish(change);
        }
        self.schedule_changelog(ctx);
    }
}
