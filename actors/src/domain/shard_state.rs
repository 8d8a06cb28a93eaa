//! The state of one logical shard and how an event changes it.
//!
//! Single-threaded by construction (its actor is the only writer). Applying an
//! event updates the user's aggregates, evaluates the rules listening to the
//! event, and records restrictions, skipping rules that the tripwire has off.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use ahash::{AHashMap, AHashSet};

pub use super::dedup::{Dedup, DedupChanges};

use super::bits::RuleBits;
use super::entry_id::EntryId;
use super::rules::{Aggregate, Model, Slot};
use super::schema::{Event, EventKind};
use super::user::{Override, Restriction, UserState, Values};

/// What applying one event did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// The event's `event_id` was seen before for this user: nothing changed.
    pub duplicate: bool,
    /// The event is not declared (accepted by config): nothing changed.
    pub ignored: bool,
    /// The user was not known before this event.
    pub new_user: bool,
    /// Rules that restricted the user because of this event.
    pub fired: RuleBits,
    /// Rules whose condition held but which were tripped.
    pub suppressed: RuleBits,
    /// Shadow rules whose condition held: recorded, restricting nothing.
    pub shadowed: RuleBits,
    /// Of `fired` and `shadowed`, the rules whose features an enforced rule
    /// already restricted for this user.
    pub overlap: RuleBits,
    /// Restricted features after the event (bit mask), valid unless duplicate/ignored.
    pub features: u64,
}

/// Users of one shard and the position of the last applied entry.
#[derive(Debug, Default)]
pub struct ShardState {
    pub users: AHashMap<Box<str>, UserState>,
    pub dedup: Dedup,
    /// The last stream entry applied (the next read starts after it).
    pub applied: EntryId,
    /// Users changed since the last snapshot.
    pub dirty: AHashSet<Box<str>>,
    /// When something of a user may expire (entries may be stale: checked on pop).
    expiries: BinaryHeap<Reverse<(u64, Box<str>)>>,
}

/// A change of what a user may do, for the audit trail and the live feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub user_id: Box<str>,
    pub kind: ChangeKind,
    /// Features the change is about (bit mask).
    pub features: u64,
    /// The rule, for changes made by or for a rule.
    pub rule: Option<u16>,
    /// Stream entry that caused it (an event, or an operator's command).
    pub entry: EntryId,
    /// When it happened (event time, or the sweep's clock for expiries), ms.
    pub at_ms: u64,
    /// Who: the rule's name is implied by `rule`; an operator's token name otherwise.
    pub by: Option<Box<str>>,
    pub reason: Option<Box<str>>,
    /// Restricted features after the change.
    pub restricted_after: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A rule restricted the user.
    RuleFired,
    /// A shadow rule's condition held: it would have restricted the user.
    WouldRestrict,
    /// A published rule set removed the rule and lifted its restrictions.
    RuleRemoved,
    /// A rule's restriction reached its `restrict_for`.
    Expired,
    /// The tripwire lifted a restriction of a tripped `on_trip = "revert"` rule.
    Reverted,
    OverrideSet,
    OverrideRemoved,
    OverrideExpired,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::RuleFired => "rule_fired",
            ChangeKind::WouldRestrict => "would_restrict",
            ChangeKind::RuleRemoved => "rule_removed",
            ChangeKind::Expired => "expired",
            ChangeKind::Reverted => "tripwire_revert",
            ChangeKind::OverrideSet => "override_set",
            ChangeKind::OverrideRemoved => "override_removed",
            ChangeKind::OverrideExpired => "override_expired",
        }
    }
}

impl ShardState {
    pub fn new(dedup_window_ms: u64) -> Self {
        ShardState { dedup: Dedup::new(dedup_window_ms), ..Default::default() }
    }

    /// Applies one validated event carried by entry `id`. `tripped` tells the
    /// rules that may not restrict anyone new. Each restriction made is
    /// pushed to `changes` (`RuleFired`).
    pub fn apply(
        &mut self,
        model: &Model,
        id: EntryId,
        event: &Event<'_>,
        tripped: &dyn Fn(u16) -> bool,
        changes: &mut Vec<Change>,
    ) -> Outcome {
        let mut out = Outcome::default();
        if id > self.applied {
            self.applied = id;
        }
        let EventKind::Known(kind) = event.kind else {
            out.ignored = true;
            return out;
        };
        if let Some(eid) = event.event_id {
            if self.dedup.check_and_insert(event.user_id, eid, id.ms) {
                out.duplicate = true;
                return out;
            }
        }
        let user = match self.users.get_mut(event.user_id) {
            Some(u) => u,
            None => {
                out.new_user = true;
                self.users.entry(event.user_id.into()).or_insert_with(|| UserState::new(model))
            }
        };
        user.apply(model, event);
        if !self.dirty.contains(event.user_id) {
            self.dirty.insert(event.user_id.into());
        }
        // The rules listening to this event (the cost follows them, not every rule).
        let mut before = None;
        for &r in model.rules_by_event[usize::from(kind)].iter() {
            if user.has_fired(r) {
                continue;
            }
            let rule = &model.rules[usize::from(r)];
            if !rule.holds(&Values { user, model }) {
                continue;
            }
            if *before.get_or_insert_with(|| user.restricted(model)) & rule.features != 0 {
                out.overlap.insert(r);
            }
            if rule.shadow() {
                // Kept like a restriction (it does not fire again) that restricts nothing.
                user.restrictions.push(Restriction { rule: r, entry: id, at_ms: id.ms, expires_at_ms: None });
                out.shadowed.insert(r);
                continue;
            }
            if tripped(r) {
                out.suppressed.insert(r);
                continue;
            }
            let expires_at_ms = model.rules[usize::from(r)].restrict_for_ms.map(|d| id.ms.saturating_add(d));
            user.restrictions.push(Restriction { rule: r, entry: id, at_ms: id.ms, expires_at_ms });
            if let Some(at) = expires_at_ms {
                self.expiries.push(Reverse((at, event.user_id.into())));
            }
            out.fired.insert(r);
        }
        out.features = user.restricted(model);
        push_rule_changes(model, event.user_id, id, &out, changes);
        out
    }

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
                self.dirty.insert(id.clone());
            }
        }
    }

    /// Lifts every restriction made by one of `rules` (removed by a
    /// published rule set that asked for it). Returns the changes.
    pub fn lift_rules(&mut self, model: &Model, rules: &[u16], entry: EntryId) -> Vec<Change> {
        let mut changes = Vec::new();
        for (user_id, user) in self.users.iter_mut() {
            let lifted: Vec<Restriction> =
                user.restrictions.iter().filter(|r| rules.contains(&r.rule)).copied().collect();
            if lifted.is_empty() {
                continue;
            }
            user.restrictions.retain(|r| !rules.contains(&r.rule));
            let after = user.restricted(model);
            for r in lifted {
                changes.push(Change {
                    user_id: user_id.clone(),
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
                self.dirty.insert(user_id.clone());
            }
        }
        changes
    }

    /// Marks a user changed, for the next snapshot.
    fn touch(&mut self, user_id: &str) {
        if !self.dirty.contains(user_id) {
            self.dirty.insert(user_id.into());
        }
    }

    /// Rebuilds the expiry queue from the users (after a restore).
    pub fn index_expiries(&mut self) {
        self.expiries =
            self.users.iter().filter_map(|(u, s)| s.next_expiry().map(|t| Reverse((t, u.clone())))).collect();
    }

    /// Lifts what expired by `now_ms`. Returns the changes.
    pub fn sweep(&mut self, model: &Model, now_ms: u64) -> Vec<Change> {
        let mut changes = Vec::new();
        while let Some(Reverse((at, _))) = self.expiries.peek() {
            if *at > now_ms {
                break;
            }
            let Some(Reverse((_, user_id))) = self.expiries.pop() else { break };
            let Some(user) = self.users.get_mut(&user_id) else { continue };
            let expired = user.expire(now_ms);
            if let Some(next) = user.next_expiry() {
                self.expiries.push(Reverse((next, user_id.clone())));
            }
            if expired.restrictions.is_empty() && expired.overrides.is_empty() {
                continue;
            }
            let after = user.restricted(model);
            for r in expired.restrictions {
                changes.push(Change {
                    user_id: user_id.clone(),
                    kind: ChangeKind::Expired,
                    features: model.rules[usize::from(r.rule)].features,
                    rule: Some(r.rule),
                    entry: r.entry,
                    at_ms: now_ms,
                    by: None,
                    reason: Some("restrict_for elapsed".into()),
                    restricted_after: after,
                });
            }
            for o in expired.overrides {
                changes.push(Change {
                    user_id: user_id.clone(),
                    kind: ChangeKind::OverrideExpired,
                    features: 1 << o.feature,
                    rule: None,
                    entry: EntryId::ZERO,
                    at_ms: now_ms,
                    by: Some(o.by),
                    reason: Some(o.reason),
                    restricted_after: after,
                });
            }
            self.touch(&user_id);
        }
        changes
    }

    /// Applies an operator's override (set when `o` is `Some`, removed when
    /// `None`) carried by entry `id`. A user never seen is created.
    pub fn set_override(
        &mut self,
        model: &Model,
        id: EntryId,
        user_id: &str,
        feature: u8,
        o: Option<Override>,
        by: &str,
    ) -> Option<Change> {
        if id > self.applied {
            self.applied = id;
        }
        // Removing an override of a user never seen creates nobody.
        if o.is_none() && !self.users.contains_key(user_id) {
            return None;
        }
        let user = self.users.entry(user_id.into()).or_insert_with(|| UserState::new(model));
        let (kind, reason) = match o {
            Some(o) => {
                if let Some(at) = o.expires_at_ms {
                    self.expiries.push(Reverse((at, user_id.into())));
                }
                let reason = o.reason.clone();
                user.set_override(o);
                (ChangeKind::OverrideSet, Some(reason))
            }
            None => {
                let removed = user.clear_override(feature)?;
                (ChangeKind::OverrideRemoved, Some(removed.reason))
            }
        };
        let after = user.restricted(model);
        self.touch(user_id);
        Some(Change {
            user_id: user_id.into(),
            kind,
            features: 1 << feature,
            rule: None,
            entry: id,
            at_ms: id.ms,
            by: Some(by.into()),
            reason,
            restricted_after: after,
        })
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
                let lift = r.rule == rule && r.at_ms >= since_ms;
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
                    user_id: user_id.clone(),
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
            touched.push(user_id.clone());
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
        && (old.scalar_count, old.set_count) == (new.scalar_count, new.set_count)
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
                    *next.set_mut(new, usize::from(t)) = values.into();
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
    a.name == b.name && a.kind == b.kind && event(old, a) == event(new, b) && property(old, a) == property(new, b)
}

/// The changes one event's rules made: `rule_fired` for what restricted,
/// `would_restrict` for shadow rules.
fn push_rule_changes(model: &Model, user_id: &str, id: EntryId, out: &Outcome, changes: &mut Vec<Change>) {
    for r in out.fired.union(&out.shadowed).iter() {
        let shadow = out.shadowed.contains(r);
        changes.push(Change {
            user_id: user_id.into(),
            kind: if shadow { ChangeKind::WouldRestrict } else { ChangeKind::RuleFired },
            features: model.rules[usize::from(r)].features,
            rule: Some(r),
            entry: id,
            at_ms: id.ms,
            by: None,
            reason: None,
            restricted_after: out.features,
        });
    }
}
