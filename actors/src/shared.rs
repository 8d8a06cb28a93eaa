//! What the actors publish and HTTP handlers read without asking them: the
//! read view of restrictions, per-shard watermarks, tripped rules, user counts.
//!
//! The shard actor is the single writer of its part of each; readers never
//! wait on event processing (view locks are held for one map operation).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use ahash::AHashMap;
use tokio::sync::{broadcast, watch};

use crate::domain::{shard_of, EntryId, Model};

/// Restricted features per user (only users with a restriction), by shard.
pub struct ReadView {
    shards: Box<[RwLock<AHashMap<Box<str>, u64>>]>,
}

impl ReadView {
    fn new(count: u32) -> Self {
        ReadView { shards: (0..count).map(|_| RwLock::new(AHashMap::new())).collect() }
    }

    /// The restricted-features mask of a user of shard `shard` (0: none).
    pub fn restricted(&self, shard: u32, user_id: &str) -> u64 {
        let map = self.shards[shard as usize].read().unwrap_or_else(|e| e.into_inner());
        map.get(user_id).copied().unwrap_or(0)
    }

    /// Publishes a user's mask. Written only by the shard's actor.
    pub fn set(&self, shard: u32, user_id: &str, mask: u64) {
        let mut map = self.shards[shard as usize].write().unwrap_or_else(|e| e.into_inner());
        if mask == 0 {
            map.remove(user_id);
        } else if let Some(m) = map.get_mut(user_id) {
            *m = mask;
        } else {
            map.insert(user_id.into(), mask);
        }
    }

    /// Users restricted per feature bit, over all shards.
    pub fn count_by_feature(&self, features: usize) -> Vec<u64> {
        let mut counts = vec![0u64; features];
        for shard in self.shards.iter() {
            let map = shard.read().unwrap_or_else(|e| e.into_inner());
            for mask in map.values() {
                for (i, c) in counts.iter_mut().enumerate() {
                    *c += (mask >> i) & 1;
                }
            }
        }
        counts
    }
}

/// Redis key names. Every key of shard S carries the hash tag `{S}`.
#[derive(Debug, Clone)]
pub struct Keys {
    pub prefix: String,
    /// Per shard: [events, users, offset, dedup, audit, stats].
    names: Box<[[String; 6]]>,
}

impl Keys {
    pub fn new(prefix: &str, shards: u32) -> Self {
        Keys {
            prefix: prefix.to_string(),
            names: (0..shards)
                .map(|s| {
                    ["events", "users", "offset", "dedup", "audit", "stats"].map(|k| format!("{prefix}:{{{s}}}:{k}"))
                })
                .collect(),
        }
    }
    /// The stream of shard `s`: `<prefix>:{S}:events`.
    pub fn events(&self, s: u32) -> &str {
        &self.names[s as usize][0]
    }
    /// Snapshot of shard `s`'s users: `<prefix>:{S}:users`.
    pub fn users(&self, s: u32) -> &str {
        &self.names[s as usize][1]
    }
    /// Last entry reflected in the snapshot: `<prefix>:{S}:offset`.
    pub fn offset(&self, s: u32) -> &str {
        &self.names[s as usize][2]
    }
    /// Remembered producer event ids: `<prefix>:{S}:dedup`.
    pub fn dedup(&self, s: u32) -> &str {
        &self.names[s as usize][3]
    }
    /// The audit trail of shard `s`'s users: `<prefix>:{S}:audit`.
    pub fn audit(&self, s: u32) -> &str {
        &self.names[s as usize][4]
    }
    /// Event counts and amounts of shard `s`: `<prefix>:{S}:stats`.
    pub fn stats(&self, s: u32) -> &str {
        &self.names[s as usize][5]
    }
    /// A user's changes, newest first: `<prefix>:{S}:history:<user>`.
    pub fn history(&self, s: u32, user_id: &str) -> String {
        format!("{}:{{{s}}}:history:{user_id}", self.prefix)
    }
    /// Edge rejections per reason (not per shard).
    pub fn rejects(&self) -> String {
        format!("{}:stats:rejects", self.prefix)
    }
    /// When the stats were last reset (ms).
    pub fn stats_since(&self) -> String {
        format!("{}:stats:since", self.prefix)
    }
    /// The tripwire's audit trail.
    pub fn tripwire_audit(&self) -> String {
        format!("{}:audit:tripwire", self.prefix)
    }
    /// Where unparseable entries go, with the reason.
    pub fn deadletter(&self) -> String {
        format!("{}:deadletter", self.prefix)
    }
}

/// What the live feed carries: a change, a tripwire change, or an event.
#[derive(Debug, Clone)]
pub struct FeedItem {
    pub kind: FeedKind,
    pub user_id: Option<Box<str>>,
    pub rule: Option<u16>,
    /// Features concerned (bit mask).
    pub features: u64,
    /// The event's index in the schema (events only; `None` for undeclared).
    pub event: Option<u16>,
    /// The item as JSON, rendered once for every subscriber.
    pub json: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedKind {
    Change,
    Tripwire,
    Event,
}

/// State shared by the shard actors, the tripwire and the HTTP handlers.
pub struct Shared {
    pub model: Arc<Model>,
    pub shard_count: u32,
    pub keys: Keys,
    pub view: ReadView,
    /// Per shard: the id of the last entry applied (`wait=applied` waits on it).
    pub applied: Box<[watch::Sender<EntryId>]>,
    /// Per shard: users held.
    pub users: Box<[AtomicU64]>,
    /// Per shard: replayed the stream up to where it ended at start-up.
    pub caught_up: Box<[AtomicBool]>,
    /// Bit r set: rule r is tripped and restricts nobody new.
    pub tripped: AtomicU64,
    /// The live feed. Sending never blocks; with no subscriber nothing is built.
    pub feed: broadcast::Sender<Arc<FeedItem>>,
    /// Subscribers that asked for events too (events are published only then).
    pub event_subscribers: std::sync::atomic::AtomicUsize,
    /// Entries replayed by shards before they caught up, in all.
    replayed: AtomicU64,
    started: std::time::Instant,
}

impl Shared {
    /// `feed_buffer`: items the live feed holds; a subscriber further behind is
    /// disconnected (it never slows the engine).
    pub fn new(model: Arc<Model>, shard_count: u32, key_prefix: &str, feed_buffer: usize) -> Self {
        let n = shard_count as usize;
        Shared {
            model,
            shard_count,
            keys: Keys::new(key_prefix, shard_count),
            view: ReadView::new(shard_count),
            applied: (0..n).map(|_| watch::channel(EntryId::ZERO).0).collect(),
            users: (0..n).map(|_| AtomicU64::new(0)).collect(),
            caught_up: (0..n).map(|_| AtomicBool::new(false)).collect(),
            tripped: AtomicU64::new(0),
            feed: broadcast::channel(feed_buffer.max(1)).0,
            event_subscribers: Default::default(),
            replayed: AtomicU64::new(0),
            started: std::time::Instant::now(),
        }
    }

    pub fn shard_of(&self, user_id: &str) -> u32 {
        shard_of(user_id, self.shard_count)
    }

    /// The restricted-features mask of any user.
    pub fn restricted(&self, user_id: &str) -> u64 {
        self.view.restricted(self.shard_of(user_id), user_id)
    }

    /// Users known across all shards: the tripwire's population.
    pub fn population(&self) -> u64 {
        self.users.iter().map(|u| u.load(Ordering::Relaxed)).sum()
    }

    /// Records that shard `s` caught up after replaying `replayed` entries;
    /// logs once when the last shard does.
    pub fn mark_caught_up(&self, s: u32, replayed: u64) {
        if self.caught_up[s as usize].swap(true, Ordering::AcqRel) {
            return;
        }
        self.replayed.fetch_add(replayed, Ordering::Relaxed);
        let done = self.caught_up.iter().filter(|c| c.load(Ordering::Acquire)).count();
        metrics::gauge!(crate::metrics::SHARDS_CAUGHT_UP).set(done as f64);
        if done == self.caught_up.len() {
            let seconds = self.started.elapsed().as_secs_f64();
            metrics::gauge!(crate::metrics::RECOVERY_SECONDS).set(seconds);
            tracing::info!(
                shards = done,
                users = self.population(),
                replayed = self.replayed.load(Ordering::Relaxed),
                seconds = format!("{seconds:.3}"),
                "all shards caught up; ready"
            );
        }
    }

    /// Shards still replaying their stream.
    pub fn catching_up(&self) -> Vec<u32> {
        (0..self.shard_count).filter(|&s| !self.caught_up[s as usize].load(Ordering::Acquire)).collect()
    }
}
