//! Tripwire arithmetic: per rule, the users it restricted within a sliding
//! window against the population. Pure: `now` is an argument.
//!
//! Like a circuit breaker, a rule trips only once a minimum number of users
//! were restricted in the window and their share of the population reaches the
//! threshold; a tripped rule restricts nobody new; it re-arms when the share
//! falls back under the threshold, or after a cool-down when one is set.

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// A rule's tripwire state as every instance shares it (in Redis, next to a
/// sorted set of the rule's restrictions that all instances add to). Each
/// instance evaluates it over the shared counts; a transition is written with
/// compare-and-set, so one instance decides it and every other one sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SharedRule {
    pub state: TripState,
    /// When the current state began (ms since the epoch; 0: never changed).
    pub since_ms: u64,
    pub trips: u64,
    /// Tripped by an operator: stays tripped until an operator resets it.
    pub forced: bool,
    /// Restrictions before this instant do not count (a reset or a cool-down
    /// starts a fresh window).
    pub window_from_ms: u64,
}

impl Default for SharedRule {
    fn default() -> Self {
        SharedRule { state: TripState::Armed, since_ms: 0, trips: 0, forced: false, window_from_ms: 0 }
    }
}

impl SharedRule {
    /// Where the window starts at `now_ms`: restrictions at or after it count.
    pub fn window_start(&self, now_ms: u64, s: &TripwireSettings) -> u64 {
        now_ms.saturating_sub(s.window_ms).max(self.window_from_ms)
    }

    /// Decides whether the rule trips or re-arms, given the restrictions in
    /// its window (`hits`, counted from `window_start`) and the population.
    pub fn evaluate(&mut self, hits: u64, population: u64, now_ms: u64, s: &TripwireSettings) -> Option<Transition> {
        if self.forced {
            return None;
        }
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
                        self.window_from_ms = now_ms;
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
        self.window_from_ms = now_ms;
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

    #[test]
    fn shared_rule_trips_once_and_rearms_with_a_fresh_window_after_cooldown() {
        let s = TripwireSettings { cooldown_ms: Some(60_000), ..S };
        let mut r = SharedRule::default();
        assert_eq!(r.evaluate(9, 100, 1_000, &s), None, "9 < min_restricted");
        assert_eq!(r.evaluate(10, 200, 1_000, &s), Some(Transition::Tripped), "10/200 = 5 %");
        assert_eq!(r.evaluate(10, 200, 2_000, &s), None);
        assert_eq!(r.trips, 1);
        assert_eq!(r.evaluate(10, 200, 61_000, &s), Some(Transition::Rearmed));
        assert_eq!(r.window_start(61_500, &s), 61_000, "the cool-down starts a fresh window");
        assert_eq!(r.window_start(400_000, &s), 100_000);
    }

    #[test]
    fn shared_rule_operator_trip_holds_and_reset_starts_a_fresh_window() {
        let mut r = SharedRule::default();
        assert_eq!(r.force_trip(5), Some(Transition::Tripped));
        assert_eq!(r.evaluate(0, 1_000_000, 10, &S), None, "no automatic re-arm");
        assert_eq!(r.reset(20), Some(Transition::Rearmed));
        assert_eq!(r.window_start(30, &S), 20);
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<SharedRule>(&json).unwrap(), r);
    }

    const S: TripwireSettings =
        TripwireSettings { window_ms: 300_000, threshold_ppm: 50_000, min_restricted: 10, cooldown_ms: None };
}
