//! Tripwire arithmetic: per rule, the users it restricted within a sliding
//! window against the population. Pure: `now` is an argument.
//!
//! Like a circuit breaker, a rule trips only once a minimum number of users
//! were restricted in the window and their share of the population reaches the
//! threshold; a tripped rule restricts nobody new; it re-arms when the share
//! falls back under the threshold, or after a cool-down when one is set.

use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TripwireSettings {
    pub window_ms: u64,
    /// The share that trips, in parts per million (5 % = 50_000).
    pub threshold_ppm: u64,
    /// Restrictions within the window needed before the rule may trip.
    pub min_restricted: u64,
    /// Re-arm this long after tripping, even if the share is still high.
    pub cooldown_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TripState {
    Armed,
    Tripped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Tripped,
    Rearmed,
}

/// The window of one rule.
#[derive(Debug, Clone)]
pub struct RuleWindow {
    /// Event times of the restrictions within the window, ascending.
    hits: VecDeque<u64>,
    pub state: TripState,
    /// When the current state began (ms since the epoch).
    pub since_ms: u64,
    pub trips: u64,
    /// Tripped by an operator: stays tripped until an operator resets it.
    pub forced: bool,
}

impl Default for RuleWindow {
    fn default() -> Self {
        RuleWindow { hits: VecDeque::new(), state: TripState::Armed, since_ms: 0, trips: 0, forced: false }
    }
}

impl RuleWindow {
    /// Records that the rule restricted a user at `at_ms`.
    pub fn record(&mut self, at_ms: u64) {
        // Reports from several shards arrive slightly out of order.
        match self.hits.back() {
            Some(&last) if at_ms < last => {
                let at = self.hits.partition_point(|&h| h <= at_ms);
                self.hits.insert(at, at_ms);
            }
            _ => self.hits.push_back(at_ms),
        }
    }

    /// Restrictions within the window ending at `now_ms`.
    pub fn in_window(&mut self, now_ms: u64, s: &TripwireSettings) -> u64 {
        let cutoff = now_ms.saturating_sub(s.window_ms);
        while self.hits.front().is_some_and(|&h| h < cutoff) {
            self.hits.pop_front();
        }
        self.hits.len() as u64
    }

    /// Decides whether the rule trips or re-arms now.
    pub fn evaluate_unless_forced(&mut self, now_ms: u64, population: u64, s: &TripwireSettings) -> Option<Transition> {
        if self.forced {
            return None;
        }
        self.evaluate(now_ms, population, s)
    }

    pub fn evaluate(&mut self, now_ms: u64, population: u64, s: &TripwireSettings) -> Option<Transition> {
        let hits = self.in_window(now_ms, s);
        // share >= threshold  <=>  hits * 1e6 >= threshold_ppm * population
        let over = u128::from(hits) * 1_000_000 >= u128::from(s.threshold_ppm) * u128::from(population);
        match self.state {
            TripState::Armed if population > 0 && hits >= s.min_restricted && over => {
                self.set(TripState::Tripped, now_ms);
                self.trips += 1;
                Some(Transition::Tripped)
            }
            TripState::Tripped => {
                let cooled = s.cooldown_ms.is_some_and(|c| now_ms >= self.since_ms.saturating_add(c));
                if !over || cooled {
                    self.set(TripState::Armed, now_ms);
                    // A cool-down starts a fresh window, or the rule would trip again at once.
                    if cooled {
                        self.hits.clear();
                    }
                    Some(Transition::Rearmed)
                } else {
                    None
                }
            }
            TripState::Armed => None,
        }
    }

    /// An operator switches the rule off; it stays off until reset.
    pub fn force_trip(&mut self, now_ms: u64) -> Option<Transition> {
        self.forced = true;
        if self.state == TripState::Tripped {
            return None;
        }
        self.set(TripState::Tripped, now_ms);
        self.trips += 1;
        Some(Transition::Tripped)
    }

    /// An operator re-arms the rule with a fresh window.
    pub fn reset(&mut self, now_ms: u64) -> Option<Transition> {
        self.forced = false;
        self.hits.clear();
        if self.state == TripState::Armed {
            return None;
        }
        self.set(TripState::Armed, now_ms);
        Some(Transition::Rearmed)
    }

    fn set(&mut self, state: TripState, now_ms: u64) {
        self.state = state;
        self.since_ms = now_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: TripwireSettings =
        TripwireSettings { window_ms: 300_000, threshold_ppm: 50_000, min_restricted: 10, cooldown_ms: None };

    #[test]
    fn one_restriction_in_a_young_deployment_does_not_trip() {
        let mut w = RuleWindow::default();
        w.record(1_000);
        assert_eq!(w.evaluate(1_000, 1, &S), None);
        assert_eq!(w.state, TripState::Armed);
    }

    #[test]
    fn trips_at_the_share_once_the_minimum_is_reached_and_rearms_when_it_falls() {
        let mut w = RuleWindow::default();
        for i in 0..9 {
            w.record(1_000 + i);
        }
        assert_eq!(w.evaluate(2_000, 100, &S), None, "9 < min_restricted");
        w.record(1_010);
        assert_eq!(w.evaluate(2_000, 200, &S), Some(Transition::Tripped), "10/200 = 5 %");
        assert_eq!(w.evaluate(2_000, 200, &S), None);
        assert_eq!(w.evaluate(2_000, 201, &S), Some(Transition::Rearmed), "10/201 < 5 %");
    }

    #[test]
    fn the_window_slides() {
        let mut w = RuleWindow::default();
        for i in 0..10 {
            w.record(i);
        }
        assert_eq!(w.evaluate(10, 100, &S), Some(Transition::Tripped));
        assert_eq!(w.evaluate(300_006, 100, &S), Some(Transition::Rearmed));
        assert_eq!(w.in_window(300_006, &S), 4);
    }

    #[test]
    fn an_operators_trip_holds_until_reset() {
        let mut w = RuleWindow::default();
        assert_eq!(w.force_trip(5), Some(Transition::Tripped));
        assert_eq!(w.evaluate_unless_forced(10, 1_000_000, &S), None, "no automatic re-arm");
        assert_eq!(w.state, TripState::Tripped);
        assert_eq!(w.reset(20), Some(Transition::Rearmed));
        assert_eq!(w.state, TripState::Armed);
        assert_eq!(w.reset(30), None);
    }

    #[test]
    fn a_cooldown_rearms_with_a_fresh_window() {
        let s = TripwireSettings { cooldown_ms: Some(60_000), ..S };
        let mut w = RuleWindow::default();
        for i in 0..10 {
            w.record(i);
        }
        assert_eq!(w.evaluate(10, 10, &s), Some(Transition::Tripped));
        assert_eq!(w.evaluate(30_000, 10, &s), None);
        assert_eq!(w.evaluate(60_010, 10, &s), Some(Transition::Rearmed));
        assert_eq!(w.in_window(60_010, &s), 0);
    }
}
