//! The state of one logical shard and how an event changes it.
//!
//! Single-threaded by construction (its actor is the only writer). Applying an
//! event updates the user's aggregates, evaluates the rules listening to the
//! event, and records restrictions, skipping rules that the tripwire has off.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use ahash::AHashSet;

pub use super::dedup::{Dedup, DedupChanges};

mod judge;
mod switch;
mod users;
mod withheld;
use judge::judge;
pub(crate) use switch::{carried_slots, migrate};
pub use users::Users;
pub use withheld::suppressed_change;

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
    /// Rules whose condition held but had no budget left: decided later.
    pub held: RuleBits,
    /// Shadow rules whose condition held: recorded, restricting nothing.
    pub shadowed: RuleBits,
    /// `until = "condition_clears"` rules whose restriction this event lifted.
    pub cleared: RuleBits,
    /// Of `fired` and `shadowed`, the rules whose features an enforced rule
    /// already restricted for this user.
    pub overlap: RuleBits,
    /// Restricted features after the event (bit mask), valid unless duplicate/ignored.
    pub features: u64,
}

/// Whether an enforced rule whose condition holds may restrict the user now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Restrict,
    /// The rule is tripped: the restriction is withheld (suppressed).
    Tripped,
    /// The rule has no restriction budget left on this instance: decide later.
    Hold,
}

/// Users of one shard and the position of the last applied entry.
#[derive(Debug, Default)]
pub struct ShardState {
    pub users: Users,
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
    /// An `until = "condition_clears"` rule's condition no longer holds.
    Cleared,
    /// A rule's condition held while its tripwire was tripped: the
    /// restriction was withheld (the user is not restricted).
    Suppressed,
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
            ChangeKind::Cleared => "cleared",
            ChangeKind::Suppressed => "suppressed",
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
        let gate = |r| if tripped(r) { Gate::Tripped } else { Gate::Restrict };
        self.apply_gated(model, id, event, &gate, changes)
    }

    /// `apply`, asking `gate` whether an enforced rule whose condition holds
    /// may restrict now, is tripped (`suppressed`), or must wait for budget
    /// (`held`: the caller restricts later with `restrict_held`).
    pub fn apply_gated(
        &mut self,
        model: &Model,
        id: EntryId,
        event: &Event<'_>,
        gate: &dyn Fn(u16) -> Gate,
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
                self.users.get_or_insert_with(event.user_id, || UserState::new(model))
            }
        };
        // Event time: as the producer said, or the arrival. Replay reads the same.
        let at_ms = event.occurred_at_ms.unwrap_or(id.ms);
        // When the sweep is due for this user's windows only moves earlier
        // when the windows start, or when (or while) a clearing rule
        // restricts the user: only then is it worked out.
        let windows_before = !user.windows.is_empty();
        let clearing_before = user.clearing(model);
        let due_before = if clearing_before { user.window_due(model) } else { None };
        user.apply(model, event, at_ms);
        if !self.dirty.contains(event.user_id) {
            self.dirty.insert(event.user_id.into());
        }
        for at in judge(model, user, (kind, id, event), gate, &mut out) {
            self.expiries.push(Reverse((at, event.user_id.into())));
        }
        let clearing = clearing_before || out.fired.iter().any(|r| model.rules[usize::from(r)].clears);
        if let Some(due) = (!windows_before || clearing).then(|| user.window_due(model)).flatten() {
            if due_before.is_none_or(|before| due < before) {
                self.expiries.push(Reverse((due, event.user_id.into())));
            }
        }
        out.features = user.restricted(model);
        push_rule_changes(model, event.user_id, id, &out, changes);
        out
    }

    /// Marks a user changed, for the next snapshot.
    fn touch(&mut self, user_id: &str) {
        if !self.dirty.contains(user_id) {
            self.dirty.insert(user_id.into());
        }
    }

    /// Rebuilds the expiry queue from the users (after a restore).
    pub fn index_expiries(&mut self, model: &Model) {
        self.expiries =
            self.users.iter().filter_map(|(u, s)| s.next_expiry(model).map(|t| Reverse((t, u.into())))).collect();
    }

    /// Lifts what expired by `now_ms`, and moves windows whose oldest event
    /// aged out, lifting what `until = "condition_clears"` rules no longer
    /// hold. Returns the changes.
    pub fn sweep(&mut self, model: &Model, now_ms: u64) -> Vec<Change> {
        let mut changes = Vec::new();
        while let Some(Reverse((at, _))) = self.expiries.peek() {
            if *at > now_ms {
                break;
            }
            let Some(Reverse((_, user_id))) = self.expiries.pop() else { break };
            let Some(user) = self.users.get_mut(&user_id) else { continue };
            let expired = user.expire(now_ms);
            let moved = user.advance_windows(model, now_ms);
            let cleared = if moved { clear_windowed(model, user) } else { Vec::new() };
            if let Some(next) = user.next_expiry(model) {
                self.expiries.push(Reverse((next, user_id.clone())));
            }
            if expired.restrictions.is_empty() && expired.overrides.is_empty() && cleared.is_empty() {
                if moved {
                    self.touch(&user_id);
                }
                continue;
            }
            let after = user.restricted(model);
            for r in cleared {
                changes.push(cleared_change(model, &user_id, &r, now_ms, after));
            }
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
        let user = self.users.get_or_insert_with(user_id, || UserState::new(model));
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
}

/// Lifts the restrictions of `until = "condition_clears"` rules over windows
/// whose condition no longer holds (after the windows moved). Returns them.
fn clear_windowed(model: &Model, user: &mut UserState) -> Vec<Restriction> {
    let clears = |r: &Restriction| {
        let rule = &model.rules[usize::from(r.rule)];
        rule.clears && rule.windowed && !rule.retired && !r.suppressed
    };
    if !user.restrictions.iter().any(clears) {
        return Vec::new();
    }
    let values = Values { user, model };
    let lifted: Vec<Restriction> = user
        .restrictions
        .iter()
        .filter(|r| clears(r) && !model.rules[usize::from(r.rule)].holds(&values, None))
        .copied()
        .collect();
    user.restrictions.retain(|r| !lifted.contains(r));
    lifted
}

fn cleared_change(model: &Model, user_id: &str, r: &Restriction, at_ms: u64, after: u64) -> Change {
    Change {
        user_id: user_id.into(),
        kind: ChangeKind::Cleared,
        features: model.rules[usize::from(r.rule)].features,
        rule: Some(r.rule),
        entry: r.entry,
        at_ms,
        by: None,
        reason: Some("the condition no longer holds (until = condition_clears)".into()),
        restricted_after: after,
    }
}

/// The changes one event's rules made: `rule_fired` for what restricted,
/// `would_restrict` for shadow rules, `cleared` for what no longer holds.
fn push_rule_changes(model: &Model, user_id: &str, id: EntryId, out: &Outcome, changes: &mut Vec<Change>) {
    for r in out.cleared.iter() {
        let lifted = Restriction { rule: r, entry: id, at_ms: id.ms, expires_at_ms: None, suppressed: false };
        changes.push(cleared_change(model, user_id, &lifted, id.ms, out.features));
    }
    for r in out.suppressed.iter() {
        changes.push(suppressed_change(model, user_id, r, id, out.features));
    }
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

#[cfg(test)]
mod tests;
