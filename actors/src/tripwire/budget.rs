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
