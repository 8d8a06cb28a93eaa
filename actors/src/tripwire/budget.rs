//! The supervisor's side of the budget (`crate::budget`): the population
//! as of now, what each sync tells the shards, and the reservation of this
//! instance's part against the other instances'.

use std::sync::Arc;

use actix::prelude::*;
use metrics::counter;

use crate::budget::cap;
use crate::domain::TripState;
use crate::link::Conn;
use crate::metrics::REDIS_ERRORS_TOTAL;
use crate::store::tripwire as store;
use crate::store::{Fence, WriteError};

impl super::Tripwire {
    /// The population as of now: this instance's recovered shards counted
    /// live, the others as their owners last wrote them (within a tick).
    pub(super) fn population_now(&self, stored: &std::collections::HashMap<u32, u64>) -> u64 {
        let others: u64 = stored.iter().filter(|(s, _)| !self.shared.counts_live(**s)).map(|(_, n)| n).sum();
        self.shared.budget.others(others);
        others + self.shared.live_population()
    }

    /// Tells the shards' budget what this sync counted (see `budget`).
    pub(super) fn tell_budgets(&self) {
        let model = self.shared.model();
        for r in 0..model.rules.len() {
            let hits = self.hits.get(r).copied().unwrap_or(0);
            self.shared.budget.synced(r as u16, hits, self.synced.get(r).copied().unwrap_or(0));
        }
    }

    /// With other instances owning shards, reserves this instance's budget of
    /// each rule against theirs, so that together they stay within the bound.
    pub(super) fn reserve_budgets(&mut self, now: u64, mut conn: Conn, ctx: &mut Context<Self>) {
        let (owned, total) = (self.shared.owned.len() as u64, u64::from(self.shared.shard_count));
        if owned >= total {
            return;
        }
        let model = self.shared.model();
        let mut rules = Vec::new();
        for (r, rule) in model.rules.iter().enumerate() {
            if rule.shadow() || rule.retired {
                continue;
            }
            let armed = self.rules[r].state == TripState::Armed;
            let cap = cap(&self.settings, self.population);
            let left = if armed { cap.saturating_sub(self.hits[r]) } else { 0 };
            // Twice what is in flight or waiting: a busy instance's grant
            // doubles each sync, an idle one's is nothing.
            let unsynced = self.shared.budget.spent(r as u16).saturating_sub(self.synced[r]);
            let need = 2 * (unsynced + self.shared.budget.waiting(r as u16));
            rules.push((r as u16, store::Need { rule: rule.tripwire_key().into_owned(), left, need }));
        }
        let stale_ms = (4 * self.tick.as_millis() as u64).max(2_000);
        let (shared, instance) = (Arc::clone(&self.shared), self.instance.clone());
        let work = async move {
            let needs: Vec<store::Need> = rules.iter().map(|(_, n)| n.clone()).collect();
            let fences: Vec<Fence> = shared.fences().cloned().collect();
            match store::reserve(&mut conn, &shared.keys, (&instance, now, stale_ms), &fences, &needs).await {
                Ok(grants) => {
                    for ((rule, _), grant) in rules.iter().zip(grants) {
                        shared.budget.granted(*rule, grant);
                    }
                }
                Err(WriteError::Fenced { check, now }) => {
                    if let Some(fence) = fences.get(check) {
                        crate::lease::fenced_off(&shared, fence, "tripwire reservation", &now);
                    }
                }
                Err(e) => {
                    // Keep the last grants: they were reserved against the others'.
                    counter!(REDIS_ERRORS_TOTAL, "operation" => "tripwire").increment(1);
                    tracing::debug!(error = %e, "could not reserve the tripwire budgets");
                }
            }
        };
        ctx.spawn(work.into_actor(self));
    }
}
