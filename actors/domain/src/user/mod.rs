//! One user's state: aggregates, the restrictions rules made, and operators'
//! overrides.
//!
//! Laid out for memory: counts and sums in one boxed slice, distinct values as
//! sorted 64-bit hashes, windowed aggregates, restrictions and overrides only
//! where there are some. Expiry is applied by `expire(now)` and windows move
//! with `advance_windows`, both called by the shard's sweep.

use thin_vec::ThinVec;
use xxhash_rust::xxh3::xxh3_64;

use super::entry_id::{EntryId, EventRef};
use super::rules::{AggregateKind, AggregateValues, Model, Slot};
use super::schema::{Event, EventKind, PropValue};
use super::window::Window;

/// A restriction made by a rule, kept so it can be explained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restriction {
    /// Index of the rule in `Model::rules`.
    pub rule: u16,
    /// The stream entry whose event made the condition hold.
    pub entry: EntryId,
    /// Event time of that entry, in ms since the epoch.
    pub at_ms: u64,
    /// When the rule's `restrict_for` lifts it; `None`: until lifted.
    pub expires_at_ms: Option<u64>,
    /// Not a restriction: the rule's condition held while its tripwire was
    /// tripped (kept so an operator may apply it; restricts nothing).
    pub suppressed: bool,
}

/// An operator's decision for one feature of one user; beats every rule while it lasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// Index into `Model::features`.
    pub feature: u8,
    /// `true`: allowed whatever the rules say; `false`: restricted.
    pub allowed: bool,
    pub reason: Box<str>,
    /// The admin token's name.
    pub by: Box<str>,
    pub at_ms: u64,
    pub expires_at_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserState {
    /// Counts and sums (micro-units for money), indexed by `Slot::Scalar`.
    pub scalars: Box<[u64]>,
    /// Distinct values as sorted xxh3 hashes, every set in one allocation:
    /// for each `Slot::Set` in order, its length and then its values. Not
    /// allocated (empty) until the user's first distinct value.
    pub sets: ThinVec<u64>,
    /// Windowed aggregates, indexed by `Slot::Window`; not allocated (empty)
    /// while every window of the user is empty.
    pub windows: ThinVec<Window>,
    /// Restrictions in the order rules made them. A rule that fired stays in
    /// force until it expires (`restrict_for`) or is lifted. A thin vector
    /// (one pointer; nothing allocated while empty), as most users have none.
    pub restrictions: ThinVec<Restriction>,
    /// Overrides, at most one per feature.
    pub overrides: ThinVec<Override>,
}

/// What `expire` removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Expired {
    pub restrictions: Vec<Restriction>,
    pub overrides: Vec<Override>,
}

impl UserState {
    pub fn new(model: &Model) -> Self {
        UserState {
            scalars: vec![0; model.scalar_count].into_boxed_slice(),
            sets: ThinVec::new(),
            windows: ThinVec::new(),
            restrictions: ThinVec::new(),
            overrides: ThinVec::new(),
        }
    }

    /// Updates the aggregates this event feeds; `at_ms` is its event time.
    /// Windows then end at the newest second the user has seen. Returns false
    /// for an event the model does not know (it changes nothing).
    pub fn apply(&mut self, model: &Model, event: &Event<'_>, at_ms: u64) -> bool {
        let EventKind::Known(kind) = event.kind else {
            return false;
        };
        for &a in &model.aggregates_by_event[usize::from(kind)] {
            let agg = &model.aggregates[usize::from(a)];
            match (agg.kind, agg.slot) {
                (AggregateKind::Count, Slot::Scalar(s)) => {
                    let v = &mut self.scalars[usize::from(s)];
                    *v = v.saturating_add(1);
                }
                (AggregateKind::Sum, Slot::Scalar(s)) => {
                    if let Some(PropValue::Money(m)) = agg.property.map(|p| event.values[p]) {
                        let v = &mut self.scalars[usize::from(s)];
                        *v = v.saturating_add(m.0);
                    }
                }
                (AggregateKind::Distinct, Slot::Set(s)) => {
                    if let Some(value) = agg.property.map(|p| event.values[p]) {
                        self.insert_into_set(model, usize::from(s), hash_value(value));
                    }
                }
                (kind, Slot::Window(w)) => {
                    let value = match (kind, agg.property.map(|p| event.values[p])) {
                        (AggregateKind::Count, _) => 1,
                        (AggregateKind::Sum, Some(PropValue::Money(m))) => m.0,
                        (AggregateKind::Distinct, Some(v)) => hash_value(v),
                        _ => continue,
                    };
                    let (window, max) = (agg.window.unwrap_or(1), agg.max_events);
                    self.window_mut(model, usize::from(w)).add(kind, window, max, seconds(at_ms), value);
                }
                _ => unreachable!("compile assigns slots by kind"),
            }
        }
        if !self.windows.is_empty() {
            let newest = self.windows.iter().filter_map(Window::newest).max().unwrap_or(seconds(at_ms));
            self.advance_windows(model, u64::from(newest) * 1000);
        }
        true
    }

    /// Moves every window's end to `end_ms` (second resolution), dropping what
    /// falls out; frees the windows once all are empty. Returns whether
    /// anything was dropped.
    pub fn advance_windows(&mut self, model: &Model, end_ms: u64) -> bool {
        if self.windows.is_empty() {
            return false;
        }
        let mut dropped = false;
        for &(a, w, window) in &model.windowed {
            dropped |=
                self.windows[usize::from(w)].advance(model.aggregates[usize::from(a)].kind, window, seconds(end_ms));
        }
        if self.windows.iter().all(Window::is_empty) {
            self.windows = ThinVec::new();
        }
        dropped
    }

    /// When the oldest event of one of the user's windows leaves it, in ms.
    pub fn next_window_aging(&self, model: &Model) -> Option<u64> {
        if self.windows.is_empty() {
            return None;
        }
        let aging = model.windowed.iter().filter_map(|&(_, w, window)| self.windows[usize::from(w)].next_aging(window));
        aging.min().map(|s| u64::from(s) * 1000)
    }

    /// Window `w`, allocating the windows on first use.
    pub fn window_mut(&mut self, model: &Model, w: usize) -> &mut Window {
        if self.windows.is_empty() {
            self.windows = (0..model.window_count).map(|_| Window::default()).collect();
        }
        &mut self.windows[w]
    }

    /// The features restricted, as a bit mask over `Model::features`:
    /// what the rules restricted, then the overrides on top.
    pub fn restricted(&self, model: &Model) -> u64 {
        let by_rules = self
            .restrictions
            .iter()
            .filter(|r| !r.suppressed)
            .fold(0, |mask, r| mask | model.rules[usize::from(r.rule)].restricts);
        self.overrides.iter().fold(by_rules, |mask, o| {
            let bit = 1u64 << o.feature;
            if o.allowed {
                mask & !bit
            } else {
                mask | bit
            }
        })
    }

    /// The earliest time something of this user expires, or the sweep
    /// should move its windows (`window_due`).
    pub fn next_expiry(&self, model: &Model) -> Option<u64> {
        let r = self.restrictions.iter().filter_map(|r| r.expires_at_ms);
        let o = self.overrides.iter().filter_map(|o| o.expires_at_ms);
        r.chain(o).chain(self.window_due(model)).min()
    }

    /// Whether an `until = "condition_clears"` rule over windows restricts the user.
    pub fn clearing(&self, model: &Model) -> bool {
        self.restrictions.iter().filter(|r| !r.suppressed).any(|r| {
            let rule = &model.rules[usize::from(r.rule)];
            rule.clears && rule.windowed
        })
    }

    /// When the sweep should move this user's windows: as soon as the oldest
    /// event ages out while an `until = "condition_clears"` rule over windows
    /// restricts the user (so the restriction ends on time); otherwise once
    /// every window would be empty (to free them), since an event moves the
    /// windows anyway.
    pub fn window_due(&self, model: &Model) -> Option<u64> {
        if self.windows.is_empty() {
            return None;
        }
        if self.clearing(model) {
            return self.next_window_aging(model);
        }
        let empty_at = model.windowed.iter().filter_map(|&(_, w, window)| {
            self.windows[usize::from(w)].newest().map(|newest| newest.saturating_add(window))
        });
        empty_at.max().map(|s| u64::from(s) * 1000)
    }

    /// Removes restrictions and overrides that expired by `now_ms`.
    pub fn expire(&mut self, now_ms: u64) -> Expired {
        let due = |e: Option<u64>| e.is_some_and(|t| t <= now_ms);
        let mut out = Expired::default();
        self.restrictions.retain(|r| {
            let keep = !due(r.expires_at_ms);
            if !keep {
                out.restrictions.push(*r);
            }
            keep
        });
        self.overrides.retain(|o| {
            let keep = !due(o.expires_at_ms);
            if !keep {
                out.overrides.push(o.clone());
            }
            keep
        });
        out
    }

    /// Sets (replaces) the override of a feature.
    pub fn set_override(&mut self, o: Override) {
        self.overrides.retain(|x| x.feature != o.feature);
        self.overrides.push(o);
    }

    /// Removes the override of a feature, if any.
    pub fn clear_override(&mut self, feature: u8) -> Option<Override> {
        let i = self.overrides.iter().position(|o| o.feature == feature)?;
        Some(self.overrides.remove(i))
    }

    /// Rules that already restricted this user, as a bit mask.
    /// Whether rule `r` restricted (or, a shadow rule, recorded) this user.
    pub fn has_fired(&self, r: u16) -> bool {
        self.restrictions.iter().any(|x| x.rule == r && !x.suppressed)
    }

    /// Keeps (once) that rule `r` was withheld for the event of `entry`.
    pub fn mark_suppressed(&mut self, r: u16, entry: EntryId) {
        if !self.restrictions.iter().any(|x| x.rule == r) {
            let marker = Restriction { rule: r, entry, at_ms: entry.ms, expires_at_ms: None, suppressed: true };
            self.restrictions.push(marker);
        }
    }

    /// Drops the mark of rule `r` being withheld (it restricts now, or was applied).
    pub fn unmark_suppressed(&mut self, r: u16) {
        self.restrictions.retain(|x| !(x.rule == r && x.suppressed));
    }

    /// The value of aggregate `a` for display: count, sum in micro-units or distinct count.
    pub fn aggregate(&self, model: &Model, a: u16) -> u64 {
        match model.aggregates[usize::from(a)].slot {
            Slot::Scalar(s) => self.scalars[usize::from(s)],
            Slot::Set(s) => self.set(usize::from(s)).len() as u64,
            Slot::Window(w) => {
                self.windows.get(usize::from(w)).map_or(0, |x| x.value(model.aggregates[usize::from(a)].kind))
            }
        }
    }

    /// Distinct set `s` (empty while the sets are not allocated).
    pub fn set(&self, s: usize) -> &[u64] {
        let (start, len) = self.set_range(s);
        self.sets.get(start..start + len).unwrap_or(&[])
    }

    /// Where set `s`'s values are in `sets`: (first value, length).
    fn set_range(&self, s: usize) -> (usize, usize) {
        let mut at = 0;
        for _ in 0..s {
            at += 1 + self.sets.get(at).map_or(0, |&n| n as usize);
        }
        (at + 1, self.sets.get(at).map_or(0, |&n| n as usize))
    }

    /// Adds a hash to distinct set `s` (allocating the sets on first use).
    pub fn insert_into_set(&mut self, model: &Model, s: usize, h: u64) {
        if self.sets.is_empty() {
            self.sets = std::iter::repeat_n(0, model.set_count).collect();
        }
        let (start, len) = self.set_range(s);
        if let Err(i) = self.sets[start..start + len].binary_search(&h) {
            self.sets.reserve_exact(1);
            self.sets.insert(start + i, h);
            self.sets[start - 1] += 1;
        }
    }

    /// Replaces distinct set `s` with `values` (sorted, without repeats).
    pub fn replace_set(&mut self, model: &Model, s: usize, values: &[u64]) {
        let mut all: Vec<Vec<u64>> = (0..model.set_count).map(|i| self.set(i).to_vec()).collect();
        all[s] = values.to_vec();
        self.sets = ThinVec::new();
        if all.iter().any(|v| !v.is_empty()) {
            for v in all {
                self.sets.push(v.len() as u64);
                self.sets.extend(v);
            }
        }
    }
}

/// Event time at the windows' resolution: whole seconds since the epoch.
pub fn seconds(ms: u64) -> u32 {
    u32::try_from(ms / 1000).unwrap_or(u32::MAX)
}

/// Aggregate values of one user under one model, for rule evaluation.
pub struct Values<'a> {
    pub user: &'a UserState,
    pub model: &'a Model,
}

impl AggregateValues for Values<'_> {
    fn value(&self, a: u16) -> u64 {
        self.user.aggregate(self.model, a)
    }
}

fn hash_value(v: PropValue<'_>) -> u64 {
    match v {
        PropValue::Str(s) => xxh3_64(s.as_bytes()),
        PropValue::Integer(i) => xxh3_64(&i.to_le_bytes()),
        PropValue::Money(m) => xxh3_64(&m.0.to_le_bytes()),
        PropValue::Bool(b) => u64::from(b),
        PropValue::Absent => 0,
    }
}

pub mod causes;
mod report;
pub use report::{features_of, OverrideReport, RestrictionReport, UserReport, WindowReport};

#[cfg(test)]
mod tests;
