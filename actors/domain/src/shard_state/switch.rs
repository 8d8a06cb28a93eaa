//! Changes to a whole shard: moving users to another rule set, lifting the
//! restrictions of removed rules, and reverting a tripped rule's window.

use super::*;

impl ShardState {
    /// Moves every user to the rule set `new` (from `old`): an aggregate whose
    /// definition is unchanged carries its value over, a new one starts empty,
    /// a dropped one is freed. Restrictions and overrides keep their bits
    /// (positions are stable across versions). Every user is written again,
    /// unless `new` stores users exactly as `old` did (same aggregates in the
    /// same slots, same rule names at every old position): then nothing moves.
    pub fn switch(&mut self, old: &Model, new: &Model) {
        let carried = carried_slots(old, new);
        if stored_alike(old, new, &carried) {
            return;
        }
        for (id, user) in self.users.iter_mut() {
            let mut next = migrate(user, &carried, new);
            next.restrictions = std::mem::take(&mut user.restrictions);
            next.overrides = std::mem::take(&mut user.overrides);
            *user = next;
            if !self.dirty.contains(id) {
                self.dirty.insert(id.into());
            }
        }
    }

    /// Lifts every restriction made by one of `rules` (removed by a
    /// published rule set that asked for it). Returns the changes.
    pub fn lift_rules(&mut self, model: &Model, rules: &[u16], entry: EntryId) -> Vec<Change> {
        let mut changes = Vec::new();
        for (user_id, user) in self.users.iter_mut() {
            let lifted: Vec<Restriction> =
                user.restrictions.iter().filter(|r| rules.contains(&r.rule) && !r.suppressed).copied().collect();
            if lifted.is_empty() {
                continue;
            }
            user.restrictions.retain(|r| !rules.contains(&r.rule));
            let after = user.restricted(model);
            for r in lifted {
                changes.push(Change {
                    user_id: user_id.into(),
                    kind: ChangeKind::RuleRemoved,
                    features: model.rules[usize::from(r.rule)].features,
                    rule: Some(r.rule),
                    entry,
                    at_ms: entry.ms,
                    by: Some("rules".into()),
                    reason: Some("removed by a published rule set (lift_removed)".into()),
                    restricted_after: after,
                });
            }
            if !self.dirty.contains(user_id) {
                self.dirty.insert(user_id.into());
            }
        }
        changes
    }

    /// Lifts the restrictions rule `rule` made at or after `since_ms` (a
    /// tripped `on_trip = "revert"` rule's window). Returns the changes.
    pub fn revert(&mut self, model: &Model, rule: u16, since_ms: u64, now_ms: u64) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut touched = Vec::new();
        for (user_id, user) in self.users.iter_mut() {
            let before = user.restrictions.len();
            let mut lifted = Vec::new();
            user.restrictions.retain(|r| {
                let lift = r.rule == rule && r.at_ms >= since_ms && !r.suppressed;
                if lift {
                    lifted.push(*r);
                }
                !lift
            });
            if user.restrictions.len() == before {
                continue;
            }
            let after = user.restricted(model);
            for r in lifted {
                changes.push(Change {
                    user_id: user_id.into(),
                    kind: ChangeKind::Reverted,
                    features: model.rules[usize::from(rule)].features,
                    rule: Some(rule),
                    entry: r.entry,
                    at_ms: now_ms,
                    by: Some("tripwire".into()),
                    reason: Some("rule tripped with on_trip = revert".into()),
                    restricted_after: after,
                });
            }
            touched.push(Box::<str>::from(user_id));
        }
        for u in touched {
            self.touch(&u);
        }
        changes
    }
}

/// (slot in `old`, slot in `new`) of every aggregate `new` carries over from `old`.
pub(crate) fn carried_slots(old: &Model, new: &Model) -> Vec<(Slot, Slot)> {
    new.aggregates
        .iter()
        .filter_map(|a| old.aggregates.iter().find(|o| same_aggregate(old, o, new, a)).map(|o| (o.slot, a.slot)))
        .collect()
}

/// Whether a user's state and snapshot under `old` are already what `new`
/// would hold and write: every aggregate carried to its own slot, and every
/// rule of `old` under the same name at the same position.
fn stored_alike(old: &Model, new: &Model, carried: &[(Slot, Slot)]) -> bool {
    old.aggregates.len() == new.aggregates.len()
        && carried.len() == new.aggregates.len()
        && (old.scalar_count, old.set_count, old.window_count) == (new.scalar_count, new.set_count, new.window_count)
        && carried.iter().all(|(from, to)| from == to)
        && old.rules.iter().zip(new.rules.iter()).all(|(a, b)| a.name == b.name)
        && old.rules.len() <= new.rules.len()
}

/// A user's aggregates under `new`, carried over slot by slot (no restrictions, no overrides).
pub(crate) fn migrate(user: &UserState, carried: &[(Slot, Slot)], new: &Model) -> UserState {
    let mut next = UserState::new(new);
    for &(from, to) in carried {
        match (from, to) {
            (Slot::Scalar(f), Slot::Scalar(t)) => next.scalars[usize::from(t)] = user.scalars[usize::from(f)],
            (Slot::Set(f), Slot::Set(t)) => {
                let values = user.set(usize::from(f));
                if !values.is_empty() {
                    next.replace_set(new, usize::from(t), values);
                }
            }
            (Slot::Window(f), Slot::Window(t)) => {
                if let Some(w) = user.windows.get(usize::from(f)).filter(|w| !w.is_empty()) {
                    *next.window_mut(new, usize::from(t)) = w.clone();
                }
            }
            _ => {}
        }
    }
    next
}

/// The same aggregate in two rule sets: same name, kind, event and property.
fn same_aggregate(old: &Model, a: &Aggregate, new: &Model, b: &Aggregate) -> bool {
    fn event<'m>(m: &'m Model, x: &Aggregate) -> &'m str {
        &m.schema.events[usize::from(x.event)]
    }
    fn property<'m>(m: &'m Model, x: &Aggregate) -> Option<&'m str> {
        x.property.map(|p| &*m.schema.properties[usize::from(x.event)][p].0)
    }
    a.name == b.name
        && a.kind == b.kind
        && a.window == b.window
        && event(old, a) == event(new, b)
        && property(old, a) == property(new, b)
}
