//! Simulation: a candidate rule set evaluated against a shard's users as
//! they are now, without changing anything. Per rule, the users whose
//! condition would hold and how many of them are not restricted today; per
//! shard, the users today's restrictions would leave if the candidate's
//! removed rules were lifted.

use serde::Serialize;

use super::rules::Model;
use super::shard_state::{carried_slots, migrate, ShardState};
use super::user::Values;

/// One candidate rule over one shard's users.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RuleSim {
    pub rule: String,
    pub mode: &'static str,
    /// Users whose condition holds now.
    pub would_restrict: u64,
    /// Of those, users none of whose features the rule restricts is restricted today.
    pub newly_restricted: u64,
    /// Some of the users, to look at.
    pub sample: Vec<String>,
    /// Its condition reads an aggregate that does not exist yet: only
    /// events from now on can tell (publish it in shadow mode).
    pub needs_shadow_mode: bool,
}

/// A candidate over one shard (or, added up, over many).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Simulation {
    pub users: u64,
    /// Users restricted today only by rules the candidate drops (released if lifted).
    pub released_if_lifted: u64,
    pub rules: Vec<RuleSim>,
}

impl Simulation {
    /// Adds another shard's simulation of the same candidate.
    pub fn add(&mut self, other: Simulation, sample: usize) {
        self.users += other.users;
        self.released_if_lifted += other.released_if_lifted;
        if self.rules.is_empty() {
            self.rules = other.rules;
            return;
        }
        for (mine, theirs) in self.rules.iter_mut().zip(other.rules) {
            mine.would_restrict += theirs.would_restrict;
            mine.newly_restricted += theirs.newly_restricted;
            mine.sample.extend(theirs.sample.into_iter().take(sample.saturating_sub(mine.sample.len())));
        }
    }
}

/// Evaluates `candidate`'s active rules against every user of `state` (who
/// lives under `current`), keeping at most `sample` user ids per rule.
/// Windowed aggregates are aged to `now_ms` first (a quiet user's events
/// that left their window count for nothing).
pub fn simulate(state: &ShardState, current: &Model, candidate: &Model, sample: usize, now_ms: u64) -> Simulation {
    let carried = carried_slots(current, candidate);
    let carried_aggregates: Vec<u16> = candidate
        .aggregates
        .iter()
        .enumerate()
        .filter(|(_, a)| carried.iter().any(|(_, to)| *to == a.slot))
        .map(|(i, _)| i as u16)
        .collect();
    let active: Vec<usize> = (0..candidate.rules.len()).filter(|&r| !candidate.rules[r].retired).collect();
    let mut sim = Simulation {
        users: state.users.len() as u64,
        released_if_lifted: 0,
        rules: active
            .iter()
            .map(|&r| {
                let rule = &candidate.rules[r];
                RuleSim {
                    rule: rule.name.to_string(),
                    mode: rule.def.mode.as_str(),
                    needs_shadow_mode: rule.aggregates().any(|a| !carried_aggregates.contains(&a)),
                    ..RuleSim::default()
                }
            })
            .collect(),
    };
    let kept = |name: &str| candidate.rules.iter().any(|r| !r.retired && &*r.name == name);
    for (id, user) in state.users.iter() {
        let today = user.restricted(current);
        let by_kept = user
            .restrictions
            .iter()
            .filter(|r| kept(&current.rules[usize::from(r.rule)].name))
            .fold(0, |m, r| m | current.rules[usize::from(r.rule)].restricts);
        if today != 0 && by_kept == 0 && user.overrides.is_empty() {
            sim.released_if_lifted += 1;
        }
        let mut migrated = migrate(user, &carried, candidate);
        migrated.advance_windows(candidate, now_ms);
        for (s, &r) in sim.rules.iter_mut().zip(&active) {
            let rule = &candidate.rules[r];
            if s.needs_shadow_mode || !rule.holds(&Values { user: &migrated, model: candidate }, None) {
                continue;
            }
            s.would_restrict += 1;
            if today & rule.features == 0 {
                s.newly_restricted += 1;
            }
            if s.sample.len() < sample {
                s.sample.push(id.to_string());
            }
        }
    }
    sim
}
