//! The state of one logical shard and how an event changes it.
//!
//! Single-threaded by construction (its actor is the only writer). Applying an
//! event updates the user's aggregates, evaluates the rules listening to the
//! event, and records restrictions, skipping rules that the tripwire has off.

use std::collections::VecDeque;

use ahash::{AHashMap, AHashSet};
use xxhash_rust::xxh3::Xxh3;

use super::entry_id::EntryId;
use super::rules::Model;
use super::schema::{Event, EventKind};
use super::user::{Restriction, UserState, Values};

/// What applying one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcome {
    /// The event's `event_id` was seen before for this user: nothing changed.
    pub duplicate: bool,
    /// The event is not declared (accepted by config): nothing changed.
    pub ignored: bool,
    /// The user was not known before this event.
    pub new_user: bool,
    /// Rules that restricted the user because of this event (bit mask).
    pub fired: u64,
    /// Rules whose condition held but which were tripped (bit mask).
    pub suppressed: u64,
    /// Restricted features after the event (bit mask), valid unless duplicate/ignored.
    pub features: u64,
}

/// Remembers producer `event_id`s for a time window, to apply each once.
#[derive(Debug, Default, Clone)]
pub struct Dedup {
    seen: AHashMap<u128, u64>,
    order: VecDeque<(u64, u128)>,
    window_ms: u64,
    /// Changes since the last snapshot: remembered, and forgotten.
    changes: DedupChanges,
}

/// Dedup entries to add to and remove from the snapshot.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DedupChanges {
    pub added: Vec<(u128, u64)>,
    pub removed: Vec<u128>,
}

impl Dedup {
    pub fn new(window_ms: u64) -> Self {
        Dedup {
            window_ms,
            ..Default::default()
        }
    }

    fn key(user_id: &str, event_id: &str) -> u128 {
        let mut h = Xxh3::new();
        h.update(user_id.as_bytes());
        h.update(&[0]);
        h.update(event_id.as_bytes());
        h.digest128()
    }

    /// True when the pair was seen within the window; records it otherwise.
    pub fn check_and_insert(&mut self, user_id: &str, event_id: &str, now_ms: u64) -> bool {
        let cutoff = now_ms.saturating_sub(self.window_ms);
        while let Some(&(at, key)) = self.order.front() {
            if at >= cutoff {
                break;
            }
            self.order.pop_front();
            if self.seen.get(&key) == Some(&at) {
                self.seen.remove(&key);
                self.changes.removed.push(key);
            }
        }
        let key = Self::key(user_id, event_id);
        if self.seen.contains_key(&key) {
            return true;
        }
        self.seen.insert(key, now_ms);
        self.order.push_back((now_ms, key));
        self.changes.added.push((key, now_ms));
        false
    }

    /// Takes the changes since the last call, for a snapshot.
    pub fn take_changes(&mut self) -> DedupChanges {
        std::mem::take(&mut self.changes)
    }

    /// Gives back changes whose snapshot failed, to be written next time
    /// (additions before removals, as they happened).
    pub fn put_back(&mut self, mut failed: DedupChanges) {
        failed.added.append(&mut self.changes.added);
        failed.removed.append(&mut self.changes.removed);
        self.changes = failed;
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// The remembered ids with the time each was seen, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = (u128, u64)> + '_ {
        self.order
            .iter()
            .filter(|(at, k)| self.seen.get(k) == Some(at))
            .map(|&(at, k)| (k, at))
    }

    /// Restores a remembered id (from a snapshot).
    pub fn restore(&mut self, key: u128, at_ms: u64) {
        self.seen.insert(key, at_ms);
        self.order.push_back((at_ms, key));
    }
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
}

impl ShardState {
    pub fn new(dedup_window_ms: u64) -> Self {
        ShardState {
            dedup: Dedup::new(dedup_window_ms),
            ..Default::default()
        }
    }

    /// Applies one validated event carried by entry `id`. `tripped` is the mask
    /// of rules that may not restrict anyone new.
    pub fn apply(
        &mut self,
        model: &Model,
        id: EntryId,
        event: &Event<'_>,
        tripped: u64,
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
                self.users
                    .entry(event.user_id.into())
                    .or_insert_with(|| UserState::new(model))
            }
        };
        user.apply(model, event);
        if !self.dirty.contains(event.user_id) {
            self.dirty.insert(event.user_id.into());
        }
        let listening = model.rules_by_event[usize::from(kind)] & !user.fired_rules();
        let mut bits = listening;
        while bits != 0 {
            let r = bits.trailing_zeros() as u16;
            bits &= bits - 1;
            if !model.rules[usize::from(r)].holds(&Values { user, model }) {
                continue;
            }
            if tripped & (1 << r) != 0 {
                out.suppressed |= 1 << r;
                continue;
            }
            user.restrictions.push(Restriction {
                rule: r,
                entry: id,
                at_ms: id.ms,
            });
            out.fired |= 1 << r;
        }
        out.features = user.restricted(model);
        out
    }
}
