//! What the actors publish and HTTP handlers read without asking them: the
//! read view of restrictions, per-shard watermarks, tripped rules, user counts.
//!
//! The shard actor is the single writer of its part of each; readers never
//! wait on event processing (view locks are held for one map operation).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use ahash::AHashMap;
use tokio::sync::{broadcast, watch};

pub use crate::budget::RuleBudget;
use crate::domain::{shard_of, EntryId, Model};
pub use crate::feed_item::{FeedItem, FeedKind};
use crate::store::{Fence, Keys};

/// Restricted features per user (only users with a restriction), by shard.
/// A shard this instance owns is written by its shard actor; any other shard
/// by the changelog follower.
pub struct ReadView {
    shards: Box<[RwLock<ShardView>]>,
}

#[derive(Default)]
struct ShardView {
    /// Written by this instance's shard actor: the follower leaves it alone.
    owned: bool,
    map: AHashMap<Box<str>, Restricted>,
}

/// A restricted user in the view: the mask checks read, and what restricts
/// each of its features (`domain::user::causes`), for refusals that name it.
struct Restricted {
    mask: u64,
    causes: Box<str>,
}

impl ReadView {
    fn new(count: u32) -> Self {
        ReadView { shards: (0..count).map(|_| RwLock::default()).collect() }
    }

    /// The restricted-features mask of a user of shard `shard` (0: none).
    pub fn restricted(&self, shard: u32, user_id: &str) -> u64 {
        let view = self.shards[shard as usize].read().unwrap_or_else(|e| e.into_inner());
        view.map.get(user_id).map_or(0, |r| r.mask)
    }

    /// Shard `shard`'s view held still: every user read through it is read
    /// at one moment of the shard (its writers wait while it lives).
    pub fn shard(&self, shard: u32) -> ShardRead<'_> {
        ShardRead(self.shards[shard as usize].read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The shard's actor takes the shard over: what the follower put there goes.
    pub fn take_over(&self, shard: u32) {
        let mut view = self.shards[shard as usize].write().unwrap_or_else(|e| e.into_inner());
        view.owned = true;
        view.map.clear();
    }

    /// The follower's write: ignored once the shard is owned here.
    pub fn follow(&self, shard: u32, user_id: &str, mask: u64, causes: &str) {
        let mut view = self.shards[shard as usize].write().unwrap_or_else(|e| e.into_inner());
        if !view.owned {
            Self::put(&mut view.map, user_id, mask, causes);
        }
    }

    /// The follower starts the shard over (after missing part of its changelog).
    pub fn forget_followed(&self, shard: u32) {
        let mut view = self.shards[shard as usize].write().unwrap_or_else(|e| e.into_inner());
        if !view.owned {
            view.map.clear();
        }
    }

    /// Publishes a user's mask and its causes. Written only by the shard's actor.
    pub fn set(&self, shard: u32, user_id: &str, mask: u64, causes: &str) {
        let mut view = self.shards[shard as usize].write().unwrap_or_else(|e| e.into_inner());
        Self::put(&mut view.map, user_id, mask, causes);
    }

    fn put(map: &mut AHashMap<Box<str>, Restricted>, user_id: &str, mask: u64, causes: &str) {
        if mask == 0 {
            map.remove(user_id);
        } else if let Some(r) = map.get_mut(user_id) {
            *r = Restricted { mask, causes: causes.into() };
        } else {
            map.insert(user_id.into(), Restricted { mask, causes: causes.into() });
        }
    }

    /// Users restricted per feature bit, over all shards.
    pub fn count_by_feature(&self, features: usize) -> Vec<u64> {
        let mut counts = vec![0u64; features];
        for shard in self.shards.iter() {
            let view = shard.read().unwrap_or_else(|e| e.into_inner());
            for mask in view.map.values().map(|r| r.mask) {
                for (i, c) in counts.iter_mut().enumerate() {
                    *c += (mask >> i) & 1;
                }
            }
        }
        counts
    }
}

/// One shard's view, held still (see [`ReadView::shard`]).
pub struct ShardRead<'a>(std::sync::RwLockReadGuard<'a, ShardView>);

impl ShardRead<'_> {
    /// A user's restricted-features mask (0: none) and their causes
    /// (`domain::user::causes`; empty: none).
    pub fn get(&self, user_id: &str) -> (u64, &str) {
        self.0.map.get(user_id).map_or((0, ""), |r| (r.mask, &*r.causes))
    }
}

/// Tripped rules as bits any shard reads without a lock (one word per 64 rules).
pub struct TrippedRules {
    words: Box<[AtomicU64]>,
}

impl Default for TrippedRules {
    fn default() -> Self {
        let n = crate::domain::rules::MAX_RULES.div_ceil(64);
        TrippedRules { words: (0..n).map(|_| AtomicU64::new(0)).collect() }
    }
}

impl TrippedRules {
    pub fn contains(&self, r: u16) -> bool {
        self.words.get(usize::from(r) / 64).is_some_and(|w| w.load(Ordering::Relaxed) & (1 << (r % 64)) != 0)
    }

    pub fn set(&self, r: u16) {
        if let Some(w) = self.words.get(usize::from(r) / 64) {
            w.fetch_or(1 << (r % 64), Ordering::AcqRel);
        }
    }

    pub fn clear(&self, r: u16) {
        if let Some(w) = self.words.get(usize::from(r) / 64) {
            w.fetch_and(!(1 << (r % 64)), Ordering::AcqRel);
        }
    }
}

/// State shared by the shard actors, the tripwire and the HTTP handlers.
pub struct Shared {
    /// The newest rule set this instance knows (`model()`), with its version.
    model: RwLock<(u64, Arc<Model>)>,
    rule_metrics: std::sync::Mutex<Option<(u64, Arc<crate::metrics::RuleMetrics>)>>,
    pub shard_count: u32,
    pub keys: Keys,
    pub view: ReadView,
    /// Per shard: the id of the last entry applied (`wait=applied` waits on it).
    pub applied: Box<[watch::Sender<EntryId>]>,
    /// Per shard: users held.
    pub users: Box<[AtomicU64]>,
    /// Per shard: replayed the stream up to where it ended at start-up.
    pub caught_up: Box<[AtomicBool]>,
    /// The shards this instance is configured to own, ascending.
    pub owned: Vec<u32>,
    /// Per shard: owned by this instance (configured, lease held).
    owned_mask: Box<[bool]>,
    /// Leases are valid until this instant (ms since `started`); past it the
    /// readers and flushes pause, because another instance may own the shards.
    lease_until_ms: AtomicU64,
    /// The changelog of every other shard has been loaded (any-instance checks).
    pub followed: AtomicBool,
    /// A standby: until it holds their leases, its own shards are answered
    /// from the changelog too.
    standby: bool,
    /// The leases of every owned shard are taken (a standby: not yet).
    pub leased: AtomicBool,
    /// Per shard: the fencing token this process took its lease with.
    fences: Box<[std::sync::OnceLock<Fence>]>,
    /// Called once a write for a shard was fenced off (`lease::fenced_off`),
    /// after the leases were marked invalid: exits the process (code 3);
    /// in-process tests record it instead.
    pub on_fenced: Box<dyn Fn(u32) + Send + Sync>,
    /// A write was fenced off: the leases are lost for good.
    fenced_off: AtomicBool,
    /// The leases were given back (graceful shutdown): a write or renewal
    /// refused after that is expected, not a fence.
    released: AtomicBool,
    /// The rules tripped: they restrict nobody new.
    pub tripped: TrippedRules,
    /// Per rule: restrictions this instance may make before the next sync.
    pub budget: RuleBudget,
    /// The deployment's feed as this instance reads it (`feed::FeedReader`).
    /// Sending never blocks.
    pub feed: broadcast::Sender<Arc<FeedItem>>,
    /// The events this instance applies, for subscribers that asked for them
    /// (a channel of its own: a flood of events never crowds the feed).
    pub events: broadcast::Sender<Arc<FeedItem>>,
    /// Set once the process is closing: feed streams end at once.
    pub closing: watch::Sender<bool>,
    /// Subscribers that asked for events too (events are published only then).
    pub event_subscribers: std::sync::atomic::AtomicUsize,
    /// Entries replayed by shards before they caught up, in all.
    replayed: AtomicU64,
    started: std::time::Instant,
}

impl Shared {
    /// Whether a shard may restrict one more user by rule `r` now (the
    /// tripwire's bound at the population as of now); false: hold it.
    pub fn take_budget(&self, r: u16) -> bool {
        let population = self.others_population() + self.live_population();
        self.budget.take(r, population, self.owned.len() as u64, u64::from(self.shard_count))
    }

    /// Users of this instance's shards that are counted live: owned, leased
    /// and recovered. Other shards count as their owners last wrote them.
    pub fn counts_live(&self, shard: u32) -> bool {
        self.leased.load(Ordering::Acquire) && self.caught_up[shard as usize].load(Ordering::Acquire)
    }

    /// Users of the shards counted live, now.
    pub fn live_population(&self) -> u64 {
        self.owned
            .iter()
            .filter(|&&s| self.counts_live(s))
            .map(|&s| self.users[s as usize].load(Ordering::Relaxed))
            .sum()
    }

    fn others_population(&self) -> u64 {
        self.budget.others_population()
    }

    /// `feed_buffer`: items the live feed holds; a subscriber further behind is
    /// disconnected (it never slows the engine).
    pub fn new(model: Arc<Model>, shard_count: u32, key_prefix: &str, feed_buffer: usize, owned: Vec<u32>) -> Self {
        let n = shard_count as usize;
        let mut owned_mask = vec![false; n].into_boxed_slice();
        for s in &owned {
            owned_mask[*s as usize] = true;
        }
        Shared {
            model: RwLock::new((0, model)),
            rule_metrics: Default::default(),
            shard_count,
            keys: Keys::new(key_prefix, shard_count),
            view: ReadView::new(shard_count),
            applied: (0..n).map(|_| watch::channel(EntryId::ZERO).0).collect(),
            users: (0..n).map(|_| AtomicU64::new(0)).collect(),
            caught_up: (0..n).map(|_| AtomicBool::new(false)).collect(),
            followed: AtomicBool::new(owned.len() == n),
            standby: false,
            leased: AtomicBool::new(false),
            fences: (0..n).map(|_| std::sync::OnceLock::new()).collect(),
            on_fenced: Box::new(|_| std::process::exit(3)),
            fenced_off: AtomicBool::new(false),
            released: AtomicBool::new(false),
            owned,
            owned_mask,
            lease_until_ms: AtomicU64::new(0),
            tripped: TrippedRules::default(),
            budget: RuleBudget::default(),
            feed: broadcast::channel(feed_buffer.max(1)).0,
            events: broadcast::channel(feed_buffer.max(1)).0,
            closing: watch::channel(false).0,
            event_subscribers: Default::default(),
            replayed: AtomicU64::new(0),
            started: std::time::Instant::now(),
        }
    }

    /// A standby instance (see `standby`).
    pub fn standing_by(mut self, standby: bool) -> Self {
        self.standby = standby;
        self
    }

    /// Whether the read view holds shard `s`'s restrictions: an owned shard
    /// once it replayed its stream, any other once the changelog is loaded.
    pub fn recovered(&self, s: u32) -> bool {
        if !self.owns(s) {
            return self.followed.load(Ordering::Acquire);
        }
        self.caught_up[s as usize].load(Ordering::Acquire)
            || (self.standby && !self.leased.load(Ordering::Acquire) && self.followed.load(Ordering::Acquire))
    }

    /// The newest rule set this instance knows: HTTP validates with it. Each
    /// shard applies its own, switched at its position in its stream.
    pub fn model(&self) -> Arc<Model> {
        Arc::clone(&self.model.read().unwrap_or_else(|e| e.into_inner()).1)
    }

    /// The version of `model()` (0: the configuration file's, before any is known).
    pub fn model_version(&self) -> u64 {
        self.model.read().unwrap_or_else(|e| e.into_inner()).0
    }

    /// A newer rule set is known (published here or elsewhere, or switched to
    /// by a shard); an older one is ignored.
    /// The rule counters of version `version` (compiled as `model`), resolved
    /// once for every shard of the process.
    pub fn rule_metrics(&self, version: u64, model: &Model) -> Arc<crate::metrics::RuleMetrics> {
        let mut cached = self.rule_metrics.lock().unwrap_or_else(|e| e.into_inner());
        match &*cached {
            Some((v, m)) if *v == version && m.fired.len() == model.rules.len() => Arc::clone(m),
            _ => {
                let m = Arc::new(crate::metrics::RuleMetrics::new(model));
                *cached = Some((version, Arc::clone(&m)));
                m
            }
        }
    }

    /// `model()` if it is version `version`.
    pub fn model_of(&self, version: u64) -> Option<Arc<Model>> {
        let current = self.model.read().unwrap_or_else(|e| e.into_inner());
        (current.0 == version).then(|| Arc::clone(&current.1))
    }

    pub fn set_model(&self, version: u64, model: Arc<Model>) -> bool {
        let mut current = self.model.write().unwrap_or_else(|e| e.into_inner());
        if version <= current.0 && current.0 != 0 {
            return false;
        }
        *current = (version, model);
        metrics::gauge!(crate::metrics::RULES_VERSION).set(version as f64);
        true
    }

    pub fn shard_of(&self, user_id: &str) -> u32 {
        shard_of(user_id, self.shard_count)
    }

    /// Whether this instance owns shard `s`.
    pub fn owns(&self, s: u32) -> bool {
        self.owned_mask[s as usize]
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The leases were confirmed at `confirmed` (an instant taken before the
    /// renewal was sent) for `ttl`: valid until then, less a safety margin.
    pub fn leases_renewed(&self, confirmed: std::time::Instant, ttl: std::time::Duration) {
        let at = confirmed.saturating_duration_since(self.started).as_millis() as u64;
        let until = at + ttl.as_millis() as u64 * 4 / 5;
        self.lease_until_ms.fetch_max(until, Ordering::AcqRel);
    }

    /// The lease of shard `s` was taken with `fence` (once per process: a
    /// lease lost is never taken again by the same process).
    pub fn set_fence(&self, fence: Fence) {
        let _ = self.fences[fence.shard as usize].set(fence);
    }

    /// The fencing token of shard `s`, once its lease is held.
    pub fn fence(&self, s: u32) -> Option<&Fence> {
        self.fences.get(s as usize).and_then(|f| f.get())
    }

    /// The tokens of every shard whose lease this process took.
    pub fn fences(&self) -> impl Iterator<Item = &Fence> {
        self.fences.iter().filter_map(|f| f.get())
    }

    /// A write was fenced off: every lease counts as lost from now on, so
    /// nothing more is read, applied or written for any owned shard.
    pub fn leases_lost(&self) {
        self.fenced_off.store(true, Ordering::Release);
    }

    /// The leases are being given back (graceful shutdown): from now on
    /// nothing is written for the shards, and a refusal is no fence.
    pub fn leases_released(&self) {
        self.released.store(true, Ordering::Release);
        self.fenced_off.store(true, Ordering::Release);
    }

    /// Whether the leases were given back.
    pub fn released(&self) -> bool {
        self.released.load(Ordering::Acquire)
    }

    /// A write was fenced off: this process owns no shard any more.
    pub fn fenced(&self) -> bool {
        self.fenced_off.load(Ordering::Acquire)
    }

    /// Whether this instance may apply and persist its shards now.
    pub fn lease_valid(&self) -> bool {
        !self.fenced_off.load(Ordering::Acquire) && self.elapsed_ms() < self.lease_until_ms.load(Ordering::Acquire)
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
        if done == self.owned.len() {
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

    /// Owned shards still replaying their stream (or waiting for their lease).
    pub fn catching_up(&self) -> Vec<u32> {
        self.owned.iter().copied().filter(|&s| !self.caught_up[s as usize].load(Ordering::Acquire)).collect()
    }
}
