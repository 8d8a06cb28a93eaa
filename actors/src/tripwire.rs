//! The tripwire supervisor: one sliding window per rule, fed by the shards'
//! reports, deciding when a rule trips and re-arms. It publishes the tripped
//! set as bits in `Shared::tripped`; shards read them and never wait for it.
//!
//! Decisions happen on each report (so a runaway rule stops fast) and on a
//! tick (so windows slide and rules re-arm when nothing is reported).
//! Operators can trip (it then stays tripped) or reset a rule. Tripping a rule
//! with `on_trip = "revert"` asks every shard to lift what it restricted
//! within the window. Every state change goes to the live feed and the
//! tripwire audit stream.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::link::Conn;
use actix::prelude::*;
use metrics::{counter, gauge};

use crate::domain::rules::OnTrip;
use crate::domain::{RuleWindow, Transition, TripState, TripwireSettings};
use crate::metrics::*;
use crate::shard::RevertRule;
use crate::shared::{FeedItem, FeedKind, Shared};

/// Rule `r` restricted a user at event time `ms`, for each pair.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RulesFired(pub Vec<(u16, u64)>);

/// The tripwire state of every rule.
#[derive(Message)]
#[rtype(result = "Vec<RuleStatus>")]
pub struct GetRuleStatus;

/// Where to send reverts, and how to write the audit trail.
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

/// An operator's action on a rule's tripwire; replies with its status after.
#[derive(Message)]
#[rtype(result = "RuleStatus")]
pub struct ControlTripwire {
    pub rule: u16,
    pub action: Control,
    /// The admin token's name.
    pub by: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleStatus {
    pub state: TripState,
    /// Users the rule restricted within the window.
    pub restricted_in_window: u64,
    /// Users known: the share's denominator.
    pub population: u64,
    /// Since when the rule is in its state (ms since the epoch; 0: since start).
    pub since_ms: u64,
    pub trips: u64,
    /// Tripped by an operator (no automatic re-arm).
    pub forced: bool,
}

pub struct Tripwire {
    windows: Vec<RuleWindow>,
    settings: TripwireSettings,
    tick: Duration,
    shared: Arc<Shared>,
    shards: Vec<Recipient<RevertRule>>,
    conn: Option<Conn>,
}

/// Mailbox size: past it shards shed reports (counted) rather than block.
pub const MAILBOX: usize = 4096;

impl Tripwire {
    pub fn new(settings: TripwireSettings, tick: Duration, shared: Arc<Shared>) -> Self {
        let rules = shared.model.rules.len();
        Tripwire { windows: vec![RuleWindow::default(); rules], settings, tick, shared, shards: Vec::new(), conn: None }
    }

    fn now_ms() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }

    fn status(&mut self, r: usize, now: u64) -> RuleStatus {
        let w = &mut self.windows[r];
        RuleStatus {
            state: w.state,
            restricted_in_window: w.in_window(now, &self.settings),
            population: self.shared.population(),
            since_ms: w.since_ms,
            trips: w.trips,
            forced: w.forced,
        }
    }

    fn evaluate(&mut self, ctx: &mut Context<Self>) {
        let now = Self::now_ms();
        let population = self.shared.population();
        for r in 0..self.windows.len() {
            if let Some(change) = self.windows[r].evaluate_unless_forced(now, population, &self.settings) {
                self.changed(r, change, now, "tripwire", ctx);
            }
        }
    }

    /// Publishes a state change: shared bits, metrics, log, feed, audit, revert.
    fn changed(&mut self, r: usize, change: Transition, now: u64, by: &str, ctx: &mut Context<Self>) {
        let rule = self.shared.model.rules[r].name.to_string();
        let status = self.status(r, now);
        let (restricted, population) = (status.restricted_in_window, status.population);
        let word = match change {
            Transition::Tripped => {
                self.shared.tripped.fetch_or(1 << r, Ordering::AcqRel);
                tracing::warn!(rule, restricted, population, by, "tripwire tripped: rule restricts nobody new");
                gauge!(TRIPWIRE_TRIPPED, "rule" => rule.clone()).set(1.0);
                if self.shared.model.rules[r].def.on_trip == OnTrip::Revert {
                    let since_ms = now.saturating_sub(self.settings.window_ms);
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
        counter!(TRIPWIRE_CHANGES_TOTAL, "rule" => rule.clone(), "change" => word).increment(1);
        let json = serde_json::json!({
            "type": "tripwire",
            "rule": rule,
            "change": word,
            "restricted_in_window": restricted,
            "population": population,
            "who": by,
            "at_ms": now,
        })
        .to_string();
        let _ = self.shared.feed.send(Arc::new(FeedItem {
            kind: FeedKind::Tripwire,
            user_id: None,
            rule: Some(r as u16),
            features: self.shared.model.rules[r].features,
            event: None,
            json: json.clone(),
        }));
        if let Some(mut conn) = self.conn.clone() {
            let key = self.shared.keys.tripwire_audit();
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
}

impl Actor for Tripwire {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX);
        for rule in &self.shared.model.rules {
            gauge!(TRIPWIRE_TRIPPED, "rule" => rule.name.to_string()).set(0.0);
        }
        ctx.run_interval(self.tick, |this, ctx| this.evaluate(ctx));
    }
}

impl Handler<RulesFired> for Tripwire {
    type Result = ();

    fn handle(&mut self, msg: RulesFired, ctx: &mut Context<Self>) {
        for (rule, at_ms) in msg.0 {
            if let Some(w) = self.windows.get_mut(usize::from(rule)) {
                w.record(at_ms);
            }
        }
        self.evaluate(ctx);
    }
}

impl Handler<Connect> for Tripwire {
    type Result = ();

    fn handle(&mut self, msg: Connect, _: &mut Context<Self>) {
        self.shards = msg.shards;
        if msg.conn.is_some() {
            self.conn = msg.conn;
        }
    }
}

impl Handler<ControlTripwire> for Tripwire {
    type Result = MessageResult<ControlTripwire>;

    fn handle(&mut self, msg: ControlTripwire, ctx: &mut Context<Self>) -> Self::Result {
        let r = usize::from(msg.rule);
        let now = Self::now_ms();
        let change = match msg.action {
            Control::Trip => self.windows[r].force_trip(now),
            Control::Reset => self.windows[r].reset(now),
        };
        if let Some(change) = change {
            self.changed(r, change, now, &format!("admin:{}", msg.by), ctx);
        }
        MessageResult(self.status(r, now))
    }
}

impl Handler<GetRuleStatus> for Tripwire {
    type Result = MessageResult<GetRuleStatus>;

    fn handle(&mut self, _: GetRuleStatus, _: &mut Context<Self>) -> Self::Result {
        let now = Self::now_ms();
        MessageResult((0..self.windows.len()).map(|r| self.status(r, now)).collect())
    }
}
