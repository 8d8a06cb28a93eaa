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
use std::time::{Duration, Instant};

use actix::prelude::*;
use metrics::{counter, gauge};

use crate::clock::now_ms;
use crate::domain::rules::OnTrip;
use crate::domain::time::rfc3339_ms;
use crate::domain::{SharedRule, Transition, TripState, TripwireSettings};
use crate::lease;
use crate::link::Conn;
use crate::messages::*;
use crate::metrics::*;
use crate::retry::LogOnce;
use crate::shared::Shared;
use crate::store::tripwire::{self as store, Counts, Sync, Totals};
use crate::store::{Fence, WriteError};

pub(crate) mod budget;
mod control;
mod handlers;

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
    /// Per rule: counts over all time.
    totals: Vec<Totals>,
    /// `on_trip = "rollback"` rolls back versions at most this old.
    rollback_within: Duration,
    population: u64,
    /// Restrictions not yet added to the shared windows.
    pending: Vec<Fired>,
    syncing: bool,
    /// A report arrived during a sync: sync again right after.
    again: bool,
    /// The shared windows are unreachable (logged once).
    failing: LogOnce,
    /// When the last sync started: reports sync at most every `REPORT_GAP`.
    last_sync: Option<Instant>,
    /// A sync is scheduled for the end of the gap.
    scheduled: bool,
    /// When this instance's population was last written (once per tick is enough).
    population_written: Option<Instant>,
    /// Per rule: window seconds to delete at the next sync.
    stale: Vec<Vec<u64>>,
    /// Per rule: this instance's restrictions (budget taken) counted by
    /// completed syncs.
    synced: Vec<u64>,
    /// This process in the shared budget reservations.
    instance: String,
}

/// Reports sync at most this often: a runaway rule still stops within tens
/// of milliseconds, and Redis is not asked on every shard batch.
const REPORT_GAP: Duration = Duration::from_millis(20);

/// Mailbox size: past it shards shed reports (counted) rather than block.
pub const MAILBOX: usize = 4096;

impl Tripwire {
    pub fn new(settings: TripwireSettings, tick: Duration, shared: Arc<Shared>) -> Self {
        let n = shared.model().rules.len();
        let tripwire = Tripwire {
            settings,
            tick,
            shared,
            shards: Vec::new(),
            conn: None,
            rules: vec![SharedRule::default(); n],
            stored: vec![String::new(); n],
            hits: vec![0; n],
            totals: vec![Totals::default(); n],
            rollback_within: Duration::from_secs(3600),
            population: 0,
            pending: Vec::new(),
            syncing: false,
            again: false,
            failing: LogOnce::default(),
            last_sync: None,
            scheduled: false,
            population_written: None,
            stale: vec![Vec::new(); n],
            synced: vec![0; n],
            instance: format!("{}-{}", std::process::id(), now_ms()),
        };
        let alone = tripwire.shared.owned.len() as u32 >= tripwire.shared.shard_count;
        tripwire.shared.budget.bound(settings, !alone);
        tripwire
    }

    /// How old a version `on_trip = "rollback"` may roll back (default 1 h).
    pub fn rolling_back_within(mut self, within: Duration) -> Self {
        self.rollback_within = within;
        self
    }

    fn status(&self, r: usize) -> RuleStatus {
        let rule = &self.rules[r];
        let since_ms = (rule.since_ms > 0).then_some(rule.since_ms);
        let s = &self.settings;
        let totals = self.totals.get(r).copied().unwrap_or_default();
        let shadow = self.shared.model().rules.get(r).is_some_and(|rule| rule.shadow());
        RuleStatus {
            mode: if shadow { "shadow" } else { "enforce" },
            state: rule.state,
            forced: rule.forced,
            restricted_in_window: self.hits[r],
            restricted_total: totals.restricted,
            overlap_total: totals.overlap,
            suppressed_total: totals.suppressed,
            population: self.population,
            since_ms,
            since: since_ms.map(rfc3339_ms),
            trips: rule.trips,
            threshold: s.threshold_ppm as f64 / 1_000_000.0,
            min_restricted: s.min_restricted,
            window_seconds: s.window_ms as f64 / 1000.0,
        }
    }

    /// A newer rule set has more rules (positions are append-only): give
    /// them their state.
    fn grow(&mut self) -> Arc<crate::domain::Model> {
        let model = self.shared.model();
        let n = model.rules.len();
        if n == self.rules.len() {
            return model;
        }
        // Fewer only when the rules read from Redis replace the file's at start.
        for rule in model.rules.iter().skip(self.rules.len()) {
            gauge!(TRIPWIRE_TRIPPED, "rule" => rule.name.to_string()).set(0.0);
        }
        self.rules.resize(n, SharedRule::default());
        self.pending.retain(|f| usize::from(f.rule) < n);
        self.stored.resize(n, String::new());
        self.hits.resize(n, 0);
        self.totals.resize(n, Totals::default());
        self.stale.resize(n, Vec::new());
        self.synced.resize(n, 0);
        model
    }

    /// Starts a sync unless one is in flight (then one follows it).
    fn sync(&mut self, ctx: &mut Context<Self>) {
        // The rules are sized for this model (positions only ever grow).
        let model = self.grow();
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
        self.last_sync = Some(Instant::now());
        self.syncing = true;
        self.again = false;
        let pending = std::mem::take(&mut self.pending);
        let stale = std::mem::replace(&mut self.stale, vec![Vec::new(); self.rules.len()]);
        let (shared, settings) = (Arc::clone(&self.shared), self.settings);
        let now = now_ms();
        let population = self.population_to_write();
        let fences: Vec<Fence> = shared.fences().cloned().collect();
        let work = async move {
            let sync = Sync { pending: &pending, stale: &stale, now_ms: now, population, fences: &fences };
            let counts = store::sync(&mut conn, &shared.keys, &model, &settings, sync).await;
            (counts, pending, conn, fences)
        };
        ctx.spawn(work.into_actor(self).map(move |(counts, pending, conn, fences), act, ctx| {
            act.syncing = false;
            if let Err(WriteError::Fenced { check, now }) = &counts {
                // Never retried: the instance stops (its reports are dropped).
                if let Some(fence) = fences.get(*check) {
                    lease::fenced_off(&act.shared, fence, "tripwire sync", now);
                }
                return;
            }
            act.synced(counts, pending, now, conn, ctx);
            if act.again {
                act.sync(ctx);
            }
        }));
    }

    /// Users per shard this instance has recovered, once per tick (else
    /// nothing). A standby's shards, or shards still loading, would write 0
    /// over their owner's count.
    fn population_to_write(&mut self) -> Vec<(u32, u64)> {
        if self.population_written.is_some_and(|w| w.elapsed() < self.tick) {
            return Vec::new();
        }
        self.population_written = Some(Instant::now());
        let shared = &self.shared;
        if !shared.leased.load(Ordering::Acquire) {
            return Vec::new();
        }
        shared
            .owned
            .iter()
            .filter(|&&s| shared.caught_up[s as usize].load(Ordering::Acquire))
            .map(|&s| (s, shared.users[s as usize].load(Ordering::Relaxed)))
            .collect()
    }

    /// A sync ended: evaluate what it read, or hold its reports for the next.
    fn synced(
        &mut self,
        counts: Result<Counts, WriteError>,
        pending: Vec<Fired>,
        now: u64,
        conn: Conn,
        ctx: &mut Context<Self>,
    ) {
        match counts {
            Ok(counts) => {
                if self.failing.end() {
                    tracing::info!("tripwire windows reachable again");
                }
                let model = self.shared.model();
                for f in &pending {
                    if !f.suppressed && model.rules.get(usize::from(f.rule)).is_some_and(|r| !r.shadow()) {
                        self.synced[usize::from(f.rule)] += 1;
                    }
                }
                self.apply_counts(counts, now, conn, ctx);
                counter!(TRIPWIRE_SYNCS_TOTAL).increment(1);
            }
            Err(e) => {
                counter!(REDIS_ERRORS_TOTAL, "operation" => "tripwire").increment(1);
                if self.failing.start() {
                    tracing::warn!(error = %e, "cannot reach the shared tripwire windows; holding reports");
                }
                let mut kept = pending;
                kept.append(&mut self.pending);
                if kept.len() > PENDING_LIMIT {
                    let shed = kept.len() - PENDING_LIMIT;
                    kept.drain(..shed);
                    counter!(TRIPWIRE_REPORTS_SHED_TOTAL).increment(shed as u64);
                }
                self.pending = kept;
            }
        }
    }

    /// Takes in what a sync read: observes changes made elsewhere, then
    /// evaluates each rule and proposes its transitions.
    fn apply_counts(&mut self, counts: Counts, now: u64, conn: Conn, ctx: &mut Context<Self>) {
        self.hits = counts.hits;
        self.totals = counts.totals;
        self.population = self.population_now(&counts.population);
        let model = self.shared.model();
        self.stale = counts.stale;
        for (r, stored) in counts.stored.into_iter().enumerate() {
            self.observe(r, stored, ctx);
        }
        for r in 0..self.rules.len() {
            // A shadow rule restricts nobody: there is nothing to trip.
            if model.rules.get(r).is_none_or(|rule| rule.shadow()) {
                continue;
            }
            let mut next = self.rules[r].clone();
            if let Some(change) = next.evaluate(self.hits[r], self.population, now, &self.settings) {
                self.propose(r, next, change, "tripwire".to_string(), conn.clone(), ctx);
            }
        }
        self.tell_budgets();
        self.reserve_budgets(now, conn, ctx);
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
                    tracing::warn!(rule = %self.shared.model().rules[r].name, error = %e, "unreadable tripwire state ignored");
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
        let shared = Arc::clone(&self.shared);
        let cas = async move {
            let model = shared.model();
            let rule = model.rules[r].tripwire_key();
            let rule = &*rule;
            let won = store::compare_and_set(&mut conn, &shared.keys, rule, &expected, &json).await;
            (won, json)
        };
        ctx.spawn(cas.into_actor(self).map(move |(won, json), act, ctx| {
            if let Ok(true) = won {
                act.stored[r] = json;
                act.rules[r] = next;
                act.changed(r, change, &by, ctx);
                act.audit(r, change, &by, ctx);
                if change == Transition::Tripped && act.shared.model().rules[r].def.on_trip == OnTrip::Rollback {
                    act.roll_back(r, ctx);
                }
            }
            // Lost (another instance changed it first) or failed: the next sync reads the state.
        }));
    }

    /// Applies a state change here: shared bits, metrics, log, feed, revert.
    fn changed(&mut self, r: usize, change: Transition, by: &str, _ctx: &mut Context<Self>) {
        let rule = self.shared.model().rules[r].name.to_string();
        let (restricted, population) = (self.hits[r], self.population);
        let word = match change {
            Transition::Tripped => {
                self.shared.tripped.set(r as u16);
                tracing::warn!(rule, restricted, population, by, "tripwire tripped: rule restricts nobody new");
                gauge!(TRIPWIRE_TRIPPED, "rule" => rule.clone()).set(1.0);
                if matches!(self.shared.model().rules[r].def.on_trip, OnTrip::Revert | OnTrip::Rollback) {
                    let since_ms = self.rules[r].since_ms.saturating_sub(self.settings.window_ms);
                    for shard in &self.shards {
                        let _ = shard.try_send(RevertRule { rule: r as u16, since_ms });
                    }
                }
                "tripped"
            }
            Transition::Rearmed => {
                self.shared.tripped.clear(r as u16);
                tracing::info!(rule, restricted, population, by, "tripwire re-armed");
                gauge!(TRIPWIRE_TRIPPED, "rule" => rule.clone()).set(0.0);
                "rearmed"
            }
        };
        counter!(TRIPWIRE_CHANGES_TOTAL, "rule" => rule, "change" => word).increment(1);
    }

    fn change_json(&self, r: usize, change: Transition, by: &str) -> String {
        serde_json::json!({
            "type": "tripwire",
            "rule": &*self.shared.model().rules[r].name,
            "change": match change { Transition::Tripped => "tripped", Transition::Rearmed => "rearmed" },
            "restricted_in_window": self.hits[r],
            "population": self.population,
            "who": by,
            "at_ms": self.rules[r].since_ms,
            "at": rfc3339_ms(self.rules[r].since_ms),
        })
        .to_string()
    }

    /// The deciding instance records the change in the tripwire audit stream.
    fn audit(&mut self, r: usize, change: Transition, by: &str, ctx: &mut Context<Self>) {
        let Some(mut conn) = self.conn.clone() else { return };
        let shared = Arc::clone(&self.shared);
        let json = self.change_json(r, change, by);
        ctx.spawn(
            async move {
                if let Err(e) = store::audit(&mut conn, &shared.keys, crate::store::feed::kind::TRIPWIRE, &json).await {
                    counter!(REDIS_ERRORS_TOTAL, "operation" => "xadd").increment(1);
                    tracing::warn!(error = %e, "could not record a tripwire change in the audit stream");
                }
            }
            .into_actor(self),
        );
    }
}
