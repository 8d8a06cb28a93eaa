//! The tripwire supervisor: one sliding window per rule, fed by the shards'
//! reports, deciding when a rule trips and re-arms. It publishes the tripped
//! set as bits in `Shared::tripped`; shards read them and never wait for it.
//!
//! Decisions happen on each report (so a runaway rule stops fast) and on a
//! tick (so windows slide and rules re-arm when nothing is reported).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use metrics::{counter, gauge};

use crate::domain::{RuleWindow, Transition, TripState, TripwireSettings};
use crate::metrics::*;
use crate::shared::Shared;

/// Rule `r` restricted a user at event time `ms`, for each pair.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RulesFired(pub Vec<(u16, u64)>);

/// The tripwire state of every rule.
#[derive(Message)]
#[rtype(result = "Vec<RuleStatus>")]
pub struct GetRuleStatus;

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
}

pub struct Tripwire {
    windows: Vec<RuleWindow>,
    settings: TripwireSettings,
    tick: Duration,
    shared: Arc<Shared>,
}

/// Mailbox size: past it shards shed reports (counted) rather than block.
pub const MAILBOX: usize = 4096;

impl Tripwire {
    pub fn new(settings: TripwireSettings, tick: Duration, shared: Arc<Shared>) -> Self {
        let rules = shared.model.rules.len();
        Tripwire {
            windows: vec![RuleWindow::default(); rules],
            settings,
            tick,
            shared,
        }
    }

    fn now_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    fn evaluate(&mut self) {
        let now = Self::now_ms();
        let population = self.shared.population();
        for (r, w) in self.windows.iter_mut().enumerate() {
            let Some(change) = w.evaluate(now, population, &self.settings) else {
                continue;
            };
            let rule = self.shared.model.rules[r].name.to_string();
            let restricted = w.in_window(now, &self.settings);
            match change {
                Transition::Tripped => {
                    self.shared.tripped.fetch_or(1 << r, Ordering::AcqRel);
                    tracing::warn!(
                        rule,
                        restricted,
                        population,
                        "tripwire tripped: rule restricts nobody new"
                    );
                    counter!(TRIPWIRE_CHANGES_TOTAL, "rule" => rule.clone(), "change" => "tripped")
                        .increment(1);
                    gauge!(TRIPWIRE_TRIPPED, "rule" => rule).set(1.0);
                }
                Transition::Rearmed => {
                    self.shared.tripped.fetch_and(!(1 << r), Ordering::AcqRel);
                    tracing::info!(rule, restricted, population, "tripwire re-armed");
                    counter!(TRIPWIRE_CHANGES_TOTAL, "rule" => rule.clone(), "change" => "rearmed")
                        .increment(1);
                    gauge!(TRIPWIRE_TRIPPED, "rule" => rule).set(0.0);
                }
            }
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
        ctx.run_interval(self.tick, |this, _| this.evaluate());
    }
}

impl Handler<RulesFired> for Tripwire {
    type Result = ();

    fn handle(&mut self, msg: RulesFired, _: &mut Context<Self>) {
        for (rule, at_ms) in msg.0 {
            if let Some(w) = self.windows.get_mut(usize::from(rule)) {
                w.record(at_ms);
            }
        }
        self.evaluate();
    }
}

impl Handler<GetRuleStatus> for Tripwire {
    type Result = MessageResult<GetRuleStatus>;

    fn handle(&mut self, _: GetRuleStatus, _: &mut Context<Self>) -> Self::Result {
        let now = Self::now_ms();
        let population = self.shared.population();
        let settings = self.settings;
        MessageResult(
            self.windows
                .iter_mut()
                .map(|w| RuleStatus {
                    state: w.state,
                    restricted_in_window: w.in_window(now, &settings),
                    population,
                    since_ms: w.since_ms,
                    trips: w.trips,
                })
                .collect(),
        )
    }
}
