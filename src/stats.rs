//! Edge rejections per reason, counted in memory and added to Redis once a
//! second (so `/v1/stats` survives restarts). Event counts and amounts are
//! recorded by the shards with their snapshots.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use restrictd_actors::store::{reads, Keys};

use crate::ingest::Ingest;
use crate::metrics::EVENTS_REJECTED_TOTAL;

pub struct Rejects {
    counts: Vec<(&'static str, AtomicU64, metrics::Counter)>,
}

impl Rejects {
    pub fn new() -> Self {
        let reasons = restrictd_domain::schema::REASONS.iter().copied().chain(["malformed_json", "batch_too_large"]);
        Rejects {
            counts: reasons
                .map(|r| (r, AtomicU64::new(0), metrics::counter!(EVENTS_REJECTED_TOTAL, "reason" => r)))
                .collect(),
        }
    }

    pub fn add(&self, reason: &str) {
        if let Some((_, n, metric)) = self.counts.iter().find(|(r, _, _)| *r == reason) {
            n.fetch_add(1, Ordering::Relaxed);
            metric.increment(1);
        }
    }

    /// Adds the counts since the last call to `<prefix>:stats:rejects`, every second.
    pub fn spawn_flusher(self: &Arc<Self>, ingest: Arc<Ingest>, keys: Keys) {
        let this = Arc::clone(self);
        actix_rt::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let deltas: Vec<(&'static str, u64)> = this
                    .counts
                    .iter()
                    .map(|(r, n, _)| (*r, n.swap(0, Ordering::AcqRel)))
                    .filter(|(_, d)| *d > 0)
                    .collect();
                if deltas.is_empty() {
                    continue;
                }
                let added = ingest.call_write("hincrby", async |c| reads::add_rejects(c, &keys, &deltas).await).await;
                if added.is_err() {
                    for (r, d) in deltas {
                        if let Some((_, n, _)) = this.counts.iter().find(|(x, _, _)| *x == r) {
                            n.fetch_add(d, Ordering::AcqRel);
                        }
                    }
                }
            }
        });
    }
}

impl Default for Rejects {
    fn default() -> Self {
        Self::new()
    }
}
