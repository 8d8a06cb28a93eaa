//! A windowed aggregate of one user: what the user's events of the last
//! `window` seconds add up to, exactly, at one-second resolution.
//!
//! Entries are (event second, value) in time order. A count keeps the events
//! of each second, a sum their amounts (micro-units); a distinct count keeps
//! each value's hash once, at the last second it was seen. The window ending
//! at second `end` holds the entries with `end - window < second <= end`;
//! older ones are dropped as the end moves, so memory follows the events
//! inside the window and an empty window frees everything.

use std::collections::VecDeque;

use super::rules::AggregateKind;

/// One windowed aggregate's state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Window {
    /// (event second, value) in time order.
    entries: VecDeque<(u32, u64)>,
    /// The count or sum of `entries` (saturating); unused for distinct.
    total: u64,
    /// Entries folded into a newer one (or, distinct, forgotten) because the
    /// window held more than `max_events`: the value is approximate while any
    /// of them is inside the window.
    merged: u32,
    /// The oldest and newest seconds held (0 when empty), kept beside the
    /// entries so that asking when the window next changes reads no entry.
    oldest: u32,
    newest: u32,
}

impl Window {
    /// Rebuilds a window from stored entries (time order is restored).
    pub fn from_parts(kind: AggregateKind, mut entries: Vec<(u32, u64)>, merged: u32) -> Self {
        entries.sort_by_key(|e| e.0);
        let mut w = Window { entries: entries.into(), total: 0, merged, oldest: 0, newest: 0 };
        if kind != AggregateKind::Distinct {
            w.total = w.recount();
        }
        w.bounds();
        w
    }

    /// The stored entries, oldest first.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = (u32, u64)> + '_ {
        self.entries.iter().copied()
    }

    /// Events merged because of `max_events` (0 while the value is exact).
    pub fn merged(&self) -> u32 {
        self.merged
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The newest second held.
    pub fn newest(&self) -> Option<u32> {
        (!self.entries.is_empty()).then_some(self.newest)
    }

    /// The second at which the oldest entry leaves a window of `window` seconds.
    pub fn next_aging(&self, window: u32) -> Option<u32> {
        (!self.entries.is_empty()).then_some(self.oldest.saturating_add(window))
    }

    fn bounds(&mut self) {
        self.oldest = self.entries.front().map_or(0, |e| e.0);
        self.newest = self.entries.back().map_or(0, |e| e.0);
    }

    /// The aggregate's value: count, sum in micro-units, or distinct values.
    pub fn value(&self, kind: AggregateKind) -> u64 {
        match kind {
            AggregateKind::Distinct => self.entries.len() as u64,
            _ => self.total,
        }
    }

    /// Adds an event of second `at` carrying `value` (1 for a count, the
    /// amount for a sum, the value's hash for a distinct count). An event
    /// already outside the window ending at the newest second is not kept.
    pub fn add(&mut self, kind: AggregateKind, window: u32, max_events: u32, at: u32, value: u64) {
        if self.newest().is_some_and(|newest| u64::from(at) + u64::from(window) <= u64::from(newest)) {
            return;
        }
        match kind {
            AggregateKind::Distinct => {
                if let Some(i) = self.entries.iter().position(|e| e.1 == value) {
                    if self.entries[i].0 >= at {
                        return;
                    }
                    self.entries.remove(i);
                }
                self.insert(at, value);
            }
            _ => {
                self.total = self.total.saturating_add(value);
                match self.entries.back_mut() {
                    // In order, the common case: no search.
                    None => self.entries.push_back((at, value)),
                    Some(last) if last.0 == at => last.1 = last.1.saturating_add(value),
                    Some(last) if last.0 < at => self.entries.push_back((at, value)),
                    Some(_) => {
                        let at_or_after = self.entries.partition_point(|e| e.0 < at);
                        match self.entries.get_mut(at_or_after) {
                            Some(e) if e.0 == at => e.1 = e.1.saturating_add(value),
                            _ => self.entries.insert(at_or_after, (at, value)),
                        }
                    }
                }
            }
        }
        while self.entries.len() > max_events.max(1) as usize {
            self.merge_oldest(kind);
        }
        self.bounds();
    }

    fn insert(&mut self, at: u32, value: u64) {
        if self.newest().is_none_or(|newest| newest <= at) {
            self.entries.push_back((at, value));
        } else {
            let i = self.entries.partition_point(|e| e.0 <= at);
            self.entries.insert(i, (at, value));
        }
    }

    /// Folds the oldest entry into the next one (a count or sum stays
    /// complete but leaves the window later); a distinct value is forgotten.
    fn merge_oldest(&mut self, kind: AggregateKind) {
        let Some((_, v)) = self.entries.pop_front() else { return };
        self.merged = self.merged.saturating_add(1);
        if kind != AggregateKind::Distinct {
            if let Some(next) = self.entries.front_mut() {
                next.1 = next.1.saturating_add(v);
            }
        }
    }

    /// Moves the window's end to second `end`: drops what falls out. Returns
    /// whether anything was dropped.
    pub fn advance(&mut self, kind: AggregateKind, window: u32, end: u32) -> bool {
        if self.entries.is_empty() || u64::from(self.oldest) + u64::from(window) > u64::from(end) {
            return false;
        }
        let mut dropped = false;
        while let Some(&(at, v)) = self.entries.front() {
            if u64::from(at) + u64::from(window) > u64::from(end) {
                break;
            }
            self.entries.pop_front();
            dropped = true;
            if kind != AggregateKind::Distinct && self.total != u64::MAX {
                self.total -= v;
            }
        }
        if dropped {
            if kind != AggregateKind::Distinct && self.total == u64::MAX {
                self.total = self.recount();
            }
            if self.entries.is_empty() {
                *self = Window::default();
            }
            self.bounds();
        }
        dropped
    }

    fn recount(&self) -> u64 {
        self.entries.iter().fold(0u64, |t, e| t.saturating_add(e.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use AggregateKind::*;

    #[test]
    fn a_count_forgets_what_leaves_the_window() {
        let mut w = Window::default();
        for at in [100, 101, 101, 103] {
            w.add(Count, 3, 100, at, 1);
        }
        assert_eq!(w.value(Count), 4);
        w.advance(Count, 3, 103);
        assert_eq!(w.value(Count), 3, "second 100 is out of (100, 103]");
        w.advance(Count, 3, 104);
        assert_eq!(w.value(Count), 1);
        w.advance(Count, 3, 200);
        assert_eq!(w, Window::default(), "an empty window holds nothing");
    }

    #[test]
    fn a_distinct_count_keeps_each_value_at_its_last_second() {
        let mut w = Window::default();
        w.add(Distinct, 10, 100, 1, 7);
        w.add(Distinct, 10, 100, 5, 8);
        w.add(Distinct, 10, 100, 9, 7);
        assert_eq!(w.value(Distinct), 2);
        w.advance(Distinct, 10, 15);
        assert_eq!(w.value(Distinct), 1, "8 was last seen at 5, 7 at 9");
    }

    #[test]
    fn beyond_max_events_the_oldest_merge_and_say_so() {
        let mut w = Window::default();
        for at in 0..5 {
            w.add(Sum, 100, 3, at, 10);
        }
        assert_eq!((w.value(Sum), w.entries().len(), w.merged()), (50, 3, 2));
    }

    #[derive(Debug, Clone)]
    struct Step {
        advance: u32,
        value: u64,
    }

    fn steps() -> impl Strategy<Value = Vec<Step>> {
        prop::collection::vec((0u32..4, 0u64..6).prop_map(|(advance, value)| Step { advance, value }), 1..80)
    }

    proptest! {
        /// Against the plain definition: every event kept, the window
        /// recomputed from scratch at each step.
        #[test]
        fn windows_agree_with_a_plain_model(steps in steps(), window in 1u32..8, late in 0u32..3) {
            let mut windows = [Window::default(), Window::default(), Window::default()];
            let mut all: Vec<(u32, u64)> = Vec::new();
            let mut now = 1_000u32;
            for (i, s) in steps.iter().enumerate() {
                now += s.advance;
                // Every third event arrives late by up to `late` seconds.
                let at = if i % 3 == 2 { now - late } else { now };
                let newest = all.iter().map(|e| e.0).max().unwrap_or(at).max(at);
                if at + window > newest {
                    all.push((at, s.value));
                }
                let end = newest;
                for (w, kind) in windows.iter_mut().zip([Count, Sum, Distinct]) {
                    let v = if kind == Count { 1 } else { s.value };
                    w.add(kind, window, 10_000, at, v);
                    w.advance(kind, window, end);
                }
                let inside: Vec<_> = all.iter().filter(|e| e.0 + window > end && e.0 <= end).collect();
                let distinct: std::collections::BTreeSet<u64> = inside.iter().map(|e| e.1).collect();
                prop_assert_eq!(windows[0].value(Count), inside.len() as u64);
                prop_assert_eq!(windows[1].value(Sum), inside.iter().map(|e| e.1).sum::<u64>());
                prop_assert_eq!(windows[2].value(Distinct), distinct.len() as u64);
            }
        }
    }
}
