//! How many users a rule may still restrict, and this instance's share.
//!
//! A rule trips once the users it restricted in the window reach
//! `limit = max(min_restricted, threshold × population)`. Restrictions are
//! decided by shards without waiting, so the tripwire bounds them instead:
//! the deployment may restrict at most `cap = limit × 1.1` (rounded down) in
//! the window, at the population as of the decision, and each instance may
//! take, between two syncs, the part of what is left that its shards are of
//! all shards (rounded up: at most one more per instance). A shard with no
//! budget holds its decision until a sync allows it or the rule trips; the
//! rule trips at the sync that sees the cap reached, because the cap is at
//! or above the limit. (`Shared::take_budget` decides; the supervisor tells
//! it, after each sync, the window's count and the population of the shards
//! it does not count live.)

use std::sync::atomic::{AtomicU64, Ordering};

use crate::domain::TripwireSettings;

/// The most users a rule may restrict in its window at this population.
pub fn cap(s: &TripwireSettings, population: u64) -> u64 {
    let share = (u128::from(s.threshold_ppm) * u128::from(population)).div_ceil(1_000_000) as u64;
    let limit = s.min_restricted.max(share);
    limit + limit / 10
}

/// This instance's budget: its shards' part of what is left of the cap.
pub fn share(s: &TripwireSettings, hits: u64, population: u64, owned: u64, total: u64) -> u64 {
    let left = cap(s, population).saturating_sub(hits);
    if total == 0 {
        return left;
    }
    (u128::from(left) * u128::from(owned)).div_ceil(u128::from(total)) as u64
}

/// Per rule, whether this instance's shards may restrict one more user now,
/// decided without waiting: the tripwire's bound (`tripwire::budget`) over
/// the deployment's window as of the last sync, this instance's restrictions
/// since, and the population as of the decision. A shard that may not holds
/// its decision until the next sync allows it or the rule trips.
pub struct RuleBudget {
    /// The tripwire's settings; unset: unbounded (no supervisor).
    settings: std::sync::OnceLock<TripwireSettings>,
    /// Per rule: the deployment's restrictions in the window at the last sync.
    hits: Box<[AtomicU64]>,
    /// Per rule: this instance's restrictions counted by completed syncs.
    synced: Box<[AtomicU64]>,
    /// Per rule: this instance's restrictions, all time.
    spent: Box<[AtomicU64]>,
    /// Users of the shards this instance does not count live, at the last sync.
    others: AtomicU64,
    /// Per rule: what this instance reserved against the other instances'
    /// reservations (`store::tripwire::reserve`); unbounded while it owns
    /// every shard.
    granted: Box<[AtomicU64]>,
    /// Per rule: decisions shards hold for budget.
    waiting: Box<[AtomicU64]>,
}

impl Default for RuleBudget {
    fn default() -> Self {
        let n = crate::domain::rules::MAX_RULES;
        let zeros = || (0..n).map(|_| AtomicU64::new(0)).collect();
        RuleBudget {
            settings: Default::default(),
            hits: zeros(),
            synced: zeros(),
            spent: zeros(),
            others: AtomicU64::new(0),
            granted: (0..n).map(|_| AtomicU64::new(u64::MAX)).collect(),
            waiting: zeros(),
        }
    }
}

impl RuleBudget {
    /// Bounds restrictions from now on (the supervisor calls it once).
    /// `shared`: other instances own shards too, so nothing is restricted
    /// before this instance reserved its budget against theirs.
    pub fn bound(&self, settings: TripwireSettings, shared: bool) {
        let _ = self.settings.set(settings);
        if shared {
            for g in self.granted.iter() {
                g.store(0, Ordering::Release);
            }
        }
    }

    /// Takes one restriction of rule `r` if the bound allows it at this
    /// population; false: hold the decision.
    pub(crate) fn take(&self, r: u16, population: u64, owned: u64, total: u64) -> bool {
        let Some(s) = self.settings.get() else { return true };
        let i = usize::from(r);
        let (Some(hits), Some(synced), Some(spent)) = (self.hits.get(i), self.synced.get(i), self.spent.get(i)) else {
            return true;
        };
        let shared = share(s, hits.load(Ordering::Acquire), population, owned, total);
        let allowed = shared.min(self.granted.get(i).map_or(u64::MAX, |g| g.load(Ordering::Acquire)));
        let mut current = spent.load(Ordering::Acquire);
        loop {
            if current.saturating_sub(synced.load(Ordering::Acquire)) >= allowed {
                return false;
            }
            match spent.compare_exchange_weak(current, current + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(now) => current = now,
            }
        }
    }

    /// Gives back a restriction taken but not made (the user was already
    /// restricted), or made but never reported (its report was shed).
    pub fn give_back(&self, r: u16) {
        if let Some(spent) = self.spent.get(usize::from(r)) {
            spent.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// After a sync: the deployment's count in rule `r`'s window, and how
    /// many of this instance's restrictions it includes.
    pub fn synced(&self, r: u16, hits: u64, synced: u64) {
        if let (Some(h), Some(s)) = (self.hits.get(usize::from(r)), self.synced.get(usize::from(r))) {
            // Hits first: a shard reading between the two stores counts
            // some restrictions twice (it holds), never none.
            h.store(hits, Ordering::Release);
            s.store(synced, Ordering::Release);
        }
    }

    /// A shard holds (`true`) or no longer holds (`false`) a decision of rule `r`.
    pub fn wait(&self, r: u16, holding: bool) {
        if let Some(w) = self.waiting.get(usize::from(r)) {
            if holding {
                w.fetch_add(1, Ordering::AcqRel);
            } else {
                w.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    /// This instance's restrictions of rule `r`, all time.
    pub fn spent(&self, r: u16) -> u64 {
        self.spent.get(usize::from(r)).map_or(0, |s| s.load(Ordering::Acquire))
    }

    /// Decisions of rule `r` held for budget.
    pub fn waiting(&self, r: u16) -> u64 {
        self.waiting.get(usize::from(r)).map_or(0, |w| w.load(Ordering::Acquire))
    }

    /// What this instance reserved of rule `r`'s budget.
    pub fn granted(&self, r: u16, grant: u64) {
        if let Some(g) = self.granted.get(usize::from(r)) {
            g.store(grant, Ordering::Release);
        }
    }

    /// The users of shards this instance does not count live, at the last sync.
    pub fn others_population(&self) -> u64 {
        self.others.load(Ordering::Acquire)
    }

    /// After a sync: the users of shards this instance does not count live.
    pub fn others(&self, users: u64) {
        self.others.store(users, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: TripwireSettings =
        TripwireSettings { window_ms: 300_000, threshold_ppm: 50_000, min_restricted: 10, cooldown_ms: None };

    #[test]
    fn the_cap_is_a_tenth_above_the_share_that_trips() {
        assert_eq!(cap(&S, 0), 11, "min_restricted rules a young deployment");
        assert_eq!(cap(&S, 200), 11);
        assert_eq!(cap(&S, 20_000), 1_100);
        assert_eq!(cap(&S, 100_000), 5_500);
    }

    #[test]
    fn instances_share_what_is_left_by_their_shards_rounding_up() {
        assert_eq!(share(&S, 0, 20_000, 64, 64), 1_100);
        assert_eq!(share(&S, 1_000, 20_000, 64, 64), 100);
        assert_eq!(share(&S, 2_000, 20_000, 64, 64), 0);
        let three: Vec<u64> = [22, 21, 21].iter().map(|&o| share(&S, 0, 200, o, 64)).collect();
        assert_eq!(three, [4, 4, 4], "11 left: 12 in all, at most one more per instance");
    }
}
