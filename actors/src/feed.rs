//! The feed's reader: one per instance. It tails the deployment's feed
//! stream (`store::feed`) and hands each entry, with its id, to this
//! instance's subscribers (`Shared::feed`); it trims what is past the
//! replay window. Subscribers that resume read the stream itself first.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::clock::now_ms;
use crate::domain::{EntryId, Model};
use crate::link::Target;
use crate::retry::RetryParams;
use crate::shared::{FeedItem, FeedKind, Shared};
use crate::store::feed::{self, kind};

/// How often the feed is trimmed to the replay window.
const TRIM_EVERY: Duration = Duration::from_secs(60);

pub struct FeedReader {
    pub shared: Arc<Shared>,
    pub target: Target,
    /// How far back a consumer may resume (`feed.replay_window`).
    pub replay_window: Duration,
}

impl FeedReader {
    /// Runs until the process closes, reconnecting with backoff.
    pub async fn run(self) {
        let mut closing = self.shared.closing.subscribe();
        let mut last: Option<EntryId> = None;
        let mut backoff = RetryParams::REDIS.backoff();
        let mut trimmed = Instant::now() - TRIM_EVERY;
        loop {
            tokio::select! {
                Err(e) = self.tail(&mut last, &mut trimmed) => {
                    tracing::warn!(error = %e, "the feed's reader lost Redis; reconnecting");
                }
                _ = closing.wait_for(|c| *c) => return,
            }
            backoff.wait().await;
        }
    }

    /// Tails the feed after `last` (or from its end) until Redis fails.
    async fn tail(&self, last: &mut Option<EntryId>, trimmed: &mut Instant) -> redis::RedisResult<Infallible> {
        let keys = &self.shared.keys;
        let mut conn = self.target.connect(Duration::from_secs(2), Duration::from_secs(10)).await?;
        // Live from where the stream ends now (subscribers resume by reading it).
        let mut after = match *last {
            Some(id) => id,
            None => feed::bounds(&mut conn, keys).await?.map_or(EntryId::ZERO, |(_, newest)| newest),
        };
        loop {
            if trimmed.elapsed() >= TRIM_EVERY {
                let window = self.replay_window.as_millis() as u64;
                feed::trim(&mut conn, keys, now_ms().saturating_sub(window)).await?;
                *trimmed = Instant::now();
            }
            for entry in feed::tail(&mut conn, keys, after, 1000).await? {
                after = entry.0;
                *last = Some(after);
                if let Some(item) = item(&self.shared.model(), entry) {
                    let _ = self.shared.feed.send(Arc::new(item));
                }
            }
        }
    }
}

/// A feed entry as this instance's subscribers filter it.
pub fn item(model: &Model, (id, kind, json): feed::Entry) -> Option<FeedItem> {
    let v: Value = serde_json::from_str(&json).ok()?;
    let kind = match kind.as_str() {
        kind::CHANGE => FeedKind::Change,
        kind::TRIPWIRE => FeedKind::Tripwire,
        kind::RULES => FeedKind::Rules,
        kind::SUBSCRIPTION => FeedKind::Subscription,
        _ => return None,
    };
    let rule = v["rule"].as_str().and_then(|r| model.rule_index(r)).map(|r| r as u16);
    let features = match v["features"].as_array() {
        Some(names) => {
            names.iter().filter_map(Value::as_str).filter_map(|f| model.feature_index(f)).fold(0, |m, i| m | 1 << i)
        }
        None => rule.map_or(0, |r| model.rules[usize::from(r)].features),
    };
    let name = if kind == FeedKind::Subscription { v["name"].as_str() } else { v["user_id"].as_str() };
    let change = (kind == FeedKind::Change).then(|| v["change"].as_str().unwrap_or("").into());
    let frame = FeedItem::frame(Some(id), kind, &json);
    let (user_id, json) = (name.map(Into::into), json.into());
    Some(FeedItem { id: Some(id), kind, user_id, rule, features, event: None, json, change, frame })
}
