//! Restrictions the tripwire's budget or state held back: a decision held
//! for budget and made later, a withheld restriction kept on the user, and
//! an operator applying what was withheld.

use super::*;

impl ShardState {
    /// Restricts `user_id` by rule `r` for the event of entry `entry`, a
    /// decision held for budget; nothing when the user is gone or already
    /// restricted by the rule.
    pub fn restrict_held(&mut self, model: &Model, user_id: &str, r: u16, entry: EntryId) -> Option<Change> {
        let user = self.users.get_mut(user_id)?;
        if user.has_fired(r) {
            return None;
        }
        let rule = &model.rules[usize::from(r)];
        let expires_at_ms = rule.restrict_for_ms.map(|d| entry.ms.saturating_add(d));
        user.unmark_suppressed(r);
        user.restrictions.push(Restriction { rule: r, entry, at_ms: entry.ms, expires_at_ms, suppressed: false });
        if let Some(at) = expires_at_ms {
            self.expiries.push(Reverse((at, user_id.into())));
        }
        let after = user.restricted(model);
        self.touch(user_id);
        Some(Change {
            user_id: user_id.into(),
            kind: ChangeKind::RuleFired,
            features: rule.features,
            rule: Some(r),
            entry,
            at_ms: entry.ms,
            by: None,
            reason: None,
            restricted_after: after,
        })
    }

    /// Keeps that rule `r` was withheld from `user_id` for the event of `entry`
    /// (a held decision whose rule tripped).
    pub fn mark_suppressed(&mut self, user_id: &str, r: u16, entry: EntryId) {
        if let Some(user) = self.users.get_mut(user_id) {
            user.mark_suppressed(r, entry);
            self.touch(user_id);
        }
    }

    /// Applies the restrictions rule `r` withheld for events at or after
    /// `since_ms` (an operator's reset with `apply_suppressed`), carried by
    /// entry `id`. Returns the changes.
    pub fn apply_suppressed(&mut self, model: &Model, r: u16, since_ms: u64, id: EntryId, by: &str) -> Vec<Change> {
        let rule = &model.rules[usize::from(r)];
        let mut changes = Vec::new();
        let mut touched = Vec::new();
        for (user_id, user) in self.users.iter_mut() {
            let Some(marker) = user.restrictions.iter().find(|x| x.rule == r && x.suppressed).copied() else {
                continue;
            };
            if marker.at_ms < since_ms || rule.retired {
                continue;
            }
            user.unmark_suppressed(r);
            let expires_at_ms = rule.restrict_for_ms.map(|d| id.ms.saturating_add(d));
            let made = Restriction { rule: r, entry: marker.entry, at_ms: id.ms, expires_at_ms, suppressed: false };
            user.restrictions.push(made);
            if let Some(at) = expires_at_ms {
                self.expiries.push(Reverse((at, user_id.into())));
            }
            changes.push(Change {
                user_id: user_id.into(),
                kind: ChangeKind::RuleFired,
                features: rule.features,
                rule: Some(r),
                entry: marker.entry,
                at_ms: id.ms,
                by: Some(by.into()),
                reason: Some("withheld while the rule was tripped; applied with its reset (apply_suppressed)".into()),
                restricted_after: user.restricted(model),
            });
            touched.push(Box::<str>::from(user_id));
        }
        for u in touched {
            self.touch(&u);
        }
        changes
    }
}

/// A restriction the tripwire withheld, for the user's history.
pub fn suppressed_change(model: &Model, user_id: &str, r: u16, entry: EntryId, restricted: u64) -> Change {
    Change {
        user_id: user_id.into(),
        kind: ChangeKind::Suppressed,
        features: model.rules[usize::from(r)].features,
        rule: Some(r),
        entry,
        at_ms: entry.ms,
        by: Some("tripwire".into()),
        reason: Some("the rule's condition held while its tripwire was tripped: not restricted".into()),
        restricted_after: restricted,
    }
}
