//! The shard's write-behind: what changed since the last snapshot (users,
//! audit records, event stats, changelog entries, restricted sets), what is
//! being written, and the give-back when a write fails.
//!
//! One write is in flight at a time, a snapshot or a changelog write, so
//! changes reach Redis in order and a snapshot's offset never outruns its
//! users. A failed write gives everything back, in front of what came
//! since, and the next write carries it with a later offset. This type does
//! no I/O: the actor spawns the writes and reports how they ended.

use std::sync::Arc;
use std::time::Duration;

use ahash::AHashMap;
use tokio::sync::watch;

use crate::domain::snapshot::encode_user;
use crate::domain::{EntryId, Model, ShardState};
use crate::retry::LogOnce;
use crate::store::minutes::{Minutes, RuleSeries};
use crate::store::{ChangeBatch, EventStats, FlushBatch};

/// Slots the dirty set keeps between two snapshots at most.
const SPARE_DIRTY: usize = 1024;

/// When and how the shard writes its snapshot.
#[derive(Debug, Clone, Copy)]
pub struct PersistSettings {
    pub flush_interval: Duration,
    /// Flush early once this many users are dirty.
    pub dirty_limit: usize,
    /// Trim the stream up to the persisted offset minus this margin; `None`: never trim.
    pub trim_margin: Option<Duration>,
    /// A restriction change is written (to the changelog other instances
    /// follow) at most this long after it happened.
    pub changelog_delay: Duration,
}

/// The write in flight, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InFlight {
    Idle,
    Snapshot,
    Changelog,
}

pub struct WriteBehind {
    pub settings: PersistSettings,
    in_flight: InFlight,
    /// A snapshot was asked for (shutdown, dirty limit) while a write was in flight.
    flush_wanted: bool,
    /// A changelog write is scheduled within `changelog_delay`.
    pub changelog_scheduled: bool,
    /// Snapshot writes are failing (logged once).
    pub failing: LogOnce,
    /// The offset of the last successful snapshot.
    persisted: watch::Sender<EntryId>,
    /// Changes since the last snapshot: (user, JSON), for the audit stream and histories.
    audit: Vec<(Box<str>, Arc<str>)>,
    stats: EventStats,
    /// Counts per minute for the charts.
    minutes: Minutes,
    /// Changelog entries not yet written (JSON, in order).
    changelog: Vec<Arc<str>>,
    /// Users whose restricted set changed since the last changelog write,
    /// with the set and its causes (`user::causes`; empty: none restricted).
    restricted: AHashMap<Box<str>, String>,
    /// The next changelog write rewrites the shard's restricted set whole (after recovery).
    rewrite: bool,
    /// The rule-set version the shard applies, recorded with its snapshot.
    rules_version: u64,
}

/// How a finished snapshot write leaves things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// Written; `again`: another snapshot should start now.
    Written { again: bool },
    /// Failed and given back; `first`: the first failure of a run (log it).
    Failed { first: bool },
}

impl WriteBehind {
    pub fn new(settings: PersistSettings, declared_events: usize) -> Self {
        WriteBehind {
            settings,
            in_flight: InFlight::Idle,
            flush_wanted: false,
            changelog_scheduled: false,
            failing: LogOnce::default(),
            persisted: watch::channel(EntryId::ZERO).0,
            audit: Vec::new(),
            stats: EventStats::new(declared_events),
            minutes: Minutes::default(),
            changelog: Vec::new(),
            restricted: AHashMap::new(),
            rewrite: false,
            rules_version: 0,
        }
    }

    /// The shard switched rule sets (stats recorded so far keep their names).
    pub fn switch(&mut self, old: &Model, new: &Model, version: u64) {
        self.stats.switch(old, new.schema.events.len());
        self.minutes.switch(old);
        self.rules_version = version;
    }

    /// An event of kind `kind` was applied (stats), accepted at `at_ms`.
    pub fn record_event(&mut self, kind: usize, amount: u64, at_ms: u64) {
        self.stats.record(kind, amount);
        self.minutes.event(kind, at_ms);
    }

    /// A rule decided (restricted, would have, or was withheld) at `at_ms`.
    pub fn record_decision(&mut self, rule: u16, kind: RuleSeries, at_ms: u64) {
        self.minutes.rule(rule, kind, at_ms);
    }

    /// A change of `user`'s restrictions, rendered once as `json`.
    pub fn record_change(&mut self, user: Box<str>, causes: String, json: Arc<str>) {
        if let Some(set) = self.restricted.get_mut(&user) {
            *set = causes;
        } else {
            self.restricted.insert(user.clone(), causes);
        }
        self.changelog.push(Arc::clone(&json));
        self.audit.push((user, json));
    }

    /// After a restore: the restricted set is written whole by the next
    /// changelog write, so it is exact even if an older version wrote it.
    pub fn restored(&mut self, restricted: impl Iterator<Item = (Box<str>, String)>, applied: EntryId, version: u64) {
        self.rules_version = version;
        self.restricted.extend(restricted);
        self.rewrite = true;
        self.persisted.send_replace(applied);
    }

    /// Resolves once a snapshot at or past `target` is written.
    pub fn persisted(&self) -> watch::Receiver<EntryId> {
        self.persisted.subscribe()
    }

    pub fn has_changelog(&self) -> bool {
        !self.changelog.is_empty()
    }

    /// Whether anything is waiting to be written by a snapshot.
    fn has_changes(&self, state: &ShardState) -> bool {
        !state.dirty.is_empty()
            || state.applied != *self.persisted.borrow()
            || !self.audit.is_empty()
            || self.rewrite
            || !self.changelog.is_empty()
    }

    /// Takes what a snapshot writes now, or `None`: a write is in flight (the
    /// snapshot follows it) or nothing changed.
    pub fn begin_flush(&mut self, state: &mut ShardState, model: &Model) -> Option<FlushBatch> {
        if self.in_flight != InFlight::Idle {
            self.flush_wanted = true;
            return None;
        }
        if !self.has_changes(state) {
            return None;
        }
        let ShardState { users, dirty, dedup, applied, .. } = state;
        let batch = FlushBatch {
            users: dirty.drain().filter_map(|u| users.get(&u).map(|s| encode_user(model, s)).map(|b| (u, b))).collect(),
            dedup: dedup.take_changes(),
            offset: *applied,
            audit: std::mem::take(&mut self.audit),
            stats: self.stats.take(model),
            minutes: self.minutes.take(model),
            rules_version: self.rules_version,
            changes: self.take_changes(),
            trim_below: self
                .settings
                .trim_margin
                .filter(|_| *applied > EntryId::ZERO)
                .map(|m| EntryId::new(applied.ms.saturating_sub(m.as_millis() as u64), 0)),
        };
        // A burst of new users leaves the set's table large and empty: give
        // it back (it holds the users dirty until the next snapshot only).
        if state.dirty.capacity() > SPARE_DIRTY {
            state.dirty.shrink_to(SPARE_DIRTY);
        }
        self.in_flight = InFlight::Snapshot;
        self.flush_wanted = false;
        Some(batch)
    }

    /// The snapshot write of `batch` ended. On failure everything goes back,
    /// in front of what came since.
    pub fn end_flush(&mut self, batch: FlushBatch, ok: bool, state: &mut ShardState) -> Flushed {
        self.in_flight = InFlight::Idle;
        if ok {
            self.persisted.send_replace(batch.offset);
            let again = self.flush_wanted || state.dirty.len() >= self.settings.dirty_limit;
            return Flushed::Written { again };
        }
        for (user, _) in batch.users {
            state.dirty.insert(user);
        }
        state.dedup.put_back(batch.dedup);
        self.put_back_changes(batch.changes);
        let mut audit = batch.audit;
        audit.append(&mut self.audit);
        self.audit = audit;
        self.stats.merge(&batch.stats);
        self.minutes.put_back(batch.minutes);
        Flushed::Failed { first: self.failing.start() }
    }

    /// Takes the pending changelog for a write ahead of the snapshot, or
    /// `None`: a write is in flight or nothing is pending.
    pub fn begin_changelog(&mut self) -> Option<ChangeBatch> {
        if self.in_flight != InFlight::Idle {
            return None;
        }
        let batch = self.take_changes();
        if batch.is_empty() {
            return None;
        }
        self.in_flight = InFlight::Changelog;
        Some(batch)
    }

    /// The changelog write of `batch` ended; true when a snapshot is wanted now.
    pub fn end_changelog(&mut self, batch: ChangeBatch, ok: bool) -> bool {
        self.in_flight = InFlight::Idle;
        if !ok {
            self.put_back_changes(batch);
        }
        self.flush_wanted
    }

    /// Whether a changelog write could start now (else it is retried later).
    pub fn idle(&self) -> bool {
        self.in_flight == InFlight::Idle
    }

    fn take_changes(&mut self) -> ChangeBatch {
        ChangeBatch {
            entries: std::mem::take(&mut self.changelog),
            restricted: self.restricted.drain().collect(),
            rewrite: std::mem::take(&mut self.rewrite),
        }
    }

    /// A write failed: its changes go back in front of newer ones (a newer
    /// restricted set of the same user wins).
    fn put_back_changes(&mut self, batch: ChangeBatch) {
        let mut entries = batch.entries;
        entries.append(&mut self.changelog);
        self.changelog = entries;
        for (user, causes) in batch.restricted {
            self.restricted.entry(user).or_insert(causes);
        }
        self.rewrite |= batch.rewrite;
    }
}

#[cfg(test)]
mod tests;
