//! The changelog follower: how an instance answers checks for users of shards
//! it does not own, from memory.
//!
//! Each shard's owner writes its restriction changes (restrict, lift, expire,
//! override, revert) to `<prefix>:{S}:changes` and the resulting restricted
//! set to `<prefix>:{S}:restricted`, at most `persistence.changelog_delay`
//! after they happen (or with its snapshot, whichever comes first; see
//! `store::snapshot::write_changes`). The follower loads the restricted users of every shard it
//! follows (the set is sparse), then reads the changelogs and puts each user's
//! `restricted_after` into the read view. Entries carry the whole set, so
//! applying one twice or out of a reload is harmless.
//!
//! A non-owner's answer is behind the owner's by the owner's changelog delay
//! (`persistence.changelog_delay`, 100 ms by default) plus one read; the
//! `restrictd_changelog_staleness_seconds` gauge shows it. If the follower
//! falls so far behind that trimmed changelog entries were never read, it
//! reloads the shard.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{counter, gauge, histogram};
use redis::Value;

use crate::clock::now_ms;
use crate::domain::user::causes::{self, Cause};
use crate::domain::EntryId;
use crate::link::{Conn, Target};
use crate::metrics::*;
use crate::retry::RetryParams;
use crate::shared::Shared;
use crate::store::{codec, snapshot};
use crate::wire::{self, ChangePayload, IdleBackoff, ReadError};

pub struct Follower {
    pub shared: Arc<Shared>,
    pub target: Target,
    /// The shards to follow.
    pub shards: Vec<u32>,
    pub batch: usize,
    pub block: Duration,
}

/// What a change entry says about its user.
#[derive(serde::Deserialize)]
struct ChangeRecord<'a> {
    #[serde(borrow)]
    user_id: std::borrow::Cow<'a, str>,
    #[serde(default)]
    restricted_after: Vec<std::borrow::Cow<'a, str>>,
    /// What restricts each feature: a rule's name, or null for an override
    /// (absent from entries written before causes were recorded).
    #[serde(default, borrow)]
    restricted_by: std::collections::HashMap<std::borrow::Cow<'a, str>, Option<std::borrow::Cow<'a, str>>>,
    #[serde(default)]
    at_ms: u64,
}

impl Follower {
    /// Runs until the process ends, reconnecting with backoff.
    pub async fn run(self) {
        if self.shards.is_empty() {
            return;
        }
        let mut cursors = vec![EntryId::ZERO; self.shards.len()];
        let mut loaded = false;
        let mut backoff = RetryParams::REDIS.backoff();
        loop {
            // Runs until an error; then reconnects after a backoff.
            let Err(e): Result<std::convert::Infallible, ReadError> = async {
                let mut conn = self.target.connect(Duration::from_secs(2), self.block + Duration::from_secs(5)).await?;
                let mut side = self.target.connect(Duration::from_secs(2), Duration::from_secs(10)).await?;
                backoff.reset();
                if !loaded {
                    let started = Instant::now();
                    let mut users = 0;
                    for i in 0..self.shards.len() {
                        users += self.reload(&mut side, i, &mut cursors).await?;
                    }
                    loaded = true;
                    gauge!(CHANGELOG_STALENESS_SECONDS).set(0.0);
                    self.shared.followed.store(true, Ordering::Release);
                    tracing::info!(
                        shards = self.shards.len(),
                        restricted_users = users,
                        seconds = format!("{:.3}", started.elapsed().as_secs_f64()),
                        "changelog loaded for the shards this instance does not own"
                    );
                }
                let mut idle = IdleBackoff::default();
                let mut probed = Instant::now();
                loop {
                    self.read_round(&mut conn, &mut cursors, &mut idle).await?;
                    if probed.elapsed() >= Duration::from_secs(1) {
                        self.probe(&mut side, &mut cursors).await?;
                        probed = Instant::now();
                    }
                }
            }
            .await;
            counter!(REDIS_ERRORS_TOTAL, "operation" => "changelog").increment(1);
            tracing::debug!(error = %e, "changelog follower retrying");
            backoff.wait().await;
        }
    }

    /// Loads shard `i`'s restricted users; the changelog is then read from
    /// where it ended before the load (changes in between are applied twice,
    /// which is harmless). Returns the users loaded.
    async fn reload(&self, conn: &mut Conn, i: usize, cursors: &mut [EntryId]) -> Result<usize, ReadError> {
        let s = self.shards[i];
        let keys = &self.shared.keys;
        cursors[i] = snapshot::newest_entry(conn, keys.changes(s)).await?.unwrap_or(EntryId::ZERO);
        self.shared.view.forget_followed(s);
        let model = &self.shared.model();
        let mut users = 0;
        snapshot::scan_hash(conn, keys.restricted(s), |user, features| {
            let user = String::from_utf8_lossy(&user);
            let causes = String::from_utf8_lossy(&features);
            let mask = codec::mask_of(model, &causes);
            self.shared.view.follow(s, &user, mask, &causes);
            users += 1;
            Ok(())
        })
        .await?;
        counter!(CHANGELOG_RELOADS_TOTAL).increment(1);
        Ok(users)
    }

    async fn read_round(
        &self,
        conn: &mut Conn,
        cursors: &mut [EntryId],
        idle: &mut IdleBackoff,
    ) -> Result<(), ReadError> {
        let keys = self.shards.iter().map(|s| self.shared.keys.changes(*s));
        let replies =
            wire::read_streams::<ChangePayload>(conn, &self.target, keys, cursors, self.batch, self.block, idle)
                .await?;
        if replies.is_empty() {
            return Ok(());
        }
        idle.reset();
        let now = now_ms();
        let delay = histogram!(CHANGELOG_DELAY_SECONDS);
        for (key, entries) in replies {
            let Some(i) = self.shards.iter().position(|s| self.shared.keys.changes(*s).as_bytes() == key) else {
                continue;
            };
            let s = self.shards[i];
            for entry in entries {
                cursors[i] = entry.id;
                let ChangePayload(Some(bytes)) = &entry.payload else { continue };
                let Ok(change) = serde_json::from_slice::<ChangeRecord>(bytes) else {
                    tracing::warn!(shard = s, id = %entry.id, "unreadable changelog entry skipped");
                    continue;
                };
                let mask = codec::mask_of_names(&self.shared.model(), change.restricted_after.iter().map(|f| &**f));
                let causes = causes::encode(change.restricted_after.iter().map(|f| {
                    let rule = change.restricted_by.get(f).and_then(|r| r.as_deref());
                    (&**f, rule.map_or(Cause::Override, Cause::Rule))
                }));
                self.shared.view.follow(s, &change.user_id, mask, &causes);
                if change.at_ms > 0 {
                    delay.record(now.saturating_sub(change.at_ms) as f64 / 1000.0);
                }
            }
        }
        Ok(())
    }

    /// Publishes how far behind the follower is, and reloads a shard whose
    /// changelog lost entries the follower had not read (trimmed).
    async fn probe(&self, conn: &mut Conn, cursors: &mut [EntryId]) -> Result<(), ReadError> {
        let mut pipe = redis::pipe();
        for s in &self.shards {
            pipe.cmd("XINFO").arg("STREAM").arg(self.shared.keys.changes(*s));
        }
        // A stream that does not exist yet answers an error: read replies one by one.
        let replies: Vec<Value> = pipe.ignore_errors().query_async(conn).await?;
        let mut behind_ms = 0u64;
        for (i, reply) in replies.iter().enumerate() {
            let (last, deleted) =
                (wire::info_id(reply, "last-generated-id"), wire::info_id(reply, "max-deleted-entry-id"));
            if let Some(last) = last {
                behind_ms = behind_ms.max(last.ms.saturating_sub(cursors[i].ms));
            }
            if deleted.is_some_and(|d| d > cursors[i]) {
                tracing::warn!(shard = self.shards[i], "changelog entries were trimmed before being read; reloading");
                self.reload(conn, i, cursors).await?;
            }
        }
        gauge!(CHANGELOG_STALENESS_SECONDS).set(behind_ms as f64 / 1000.0);
        Ok(())
    }
}
