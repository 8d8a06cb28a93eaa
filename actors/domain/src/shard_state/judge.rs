//! What the rules listening to an event decide for its user.

use super::*;

/// Evaluates the rules listening to the event (the cost follows them, not
/// every rule) for `user`, after its aggregates took the event: records what
/// restricted, cleared, shadowed, was withheld or held in `out`. Returns the
/// expiry times of the restrictions made.
pub(super) fn judge(
    model: &Model,
    user: &mut UserState,
    (kind, id, event): (u16, EntryId, &Event<'_>),
    gate: &dyn Fn(u16) -> Gate,
    out: &mut Outcome,
) -> Vec<u64> {
    let mut expiries = Vec::new();
    let mut before = None;
    for &r in model.rules_by_event[usize::from(kind)].iter() {
        let rule = &model.rules[usize::from(r)];
        if user.has_fired(r) {
            if rule.clears && !rule.holds(&Values { user, model }, Some(event)) {
                user.restrictions.retain(|x| x.rule != r);
                out.cleared.insert(r);
            }
            continue;
        }
        if !rule.holds(&Values { user, model }, Some(event)) {
            continue;
        }
        if *before.get_or_insert_with(|| user.restricted(model)) & rule.features != 0 {
            out.overlap.insert(r);
        }
        if rule.shadow() {
            // Kept like a restriction (it does not fire again) that restricts nothing.
            user.restrictions.push(Restriction {
                rule: r,
                entry: id,
                at_ms: id.ms,
                expires_at_ms: None,
                suppressed: false,
            });
            out.shadowed.insert(r);
            continue;
        }
        match gate(r) {
            Gate::Restrict => {}
            Gate::Tripped => {
                out.suppressed.insert(r);
                user.mark_suppressed(r, id);
                continue;
            }
            Gate::Hold => {
                out.held.insert(r);
                continue;
            }
        }
        let expires_at_ms = model.rules[usize::from(r)].restrict_for_ms.map(|d| id.ms.saturating_add(d));
        user.unmark_suppressed(r);
        user.restrictions.push(Restriction { rule: r, entry: id, at_ms: id.ms, expires_at_ms, suppressed: false });
        expiries.extend(expires_at_ms);
        out.fired.insert(r);
    }
    expiries
}
