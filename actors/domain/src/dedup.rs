//! Producers' `event_id`s remembered for a time window, so that an event sent
//! twice is applied once; with the changes since the last snapshot.

use std::collections::VecDeque;

use ahash::AHashMap;
use xxhash_rust::xxh3::Xxh3;

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
        Dedup { window_ms, ..Default::default() }
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
        self.order.iter().filter(|(at, k)| self.seen.get(k) == Some(at)).map(|&(at, k)| (k, at))
    }

    /// Restores a remembered id (from a snapshot).
    pub fn restore(&mut self, key: u128, at_ms: u64) {
        self.seen.insert(key, at_ms);
        self.order.push_back((at_ms, key));
    }
}
