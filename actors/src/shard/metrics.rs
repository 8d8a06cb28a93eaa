//! The shard's metric handles, resolved once so applying an event formats no label.

use std::sync::Arc;

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

use crate::domain::Model;
use crate::metrics::RuleMetrics;
use crate::metrics::*;

pub(super) struct ShardMetrics {
    /// Per declared event, then one for undeclared events: [applied, duplicate, ignored].
    pub events: Vec<[Counter; 3]>,
    /// Per rule; the same for every shard, resolved once per rule-set version.
    pub rules: Arc<RuleMetrics>,
    pub users: Gauge,
    pub dirty: Gauge,
    pub lag: Histogram,
    pub batch: Histogram,
    pub flush: Histogram,
    pub replayed: Counter,
}

impl ShardMetrics {
    pub fn new(shard: u32, model: &Model, rules: Arc<RuleMetrics>) -> Self {
        let names = model.schema.events.iter().map(|e| e.to_string()).chain(["unknown".to_string()]);
        ShardMetrics {
            events: names
                .map(|n| {
                    ["applied", "duplicate", "ignored"]
                        .map(|o| counter!(EVENTS_TOTAL, "event" => n.clone(), "outcome" => o))
                })
                .collect(),
            rules,
            users: gauge!(SHARD_USERS, "shard" => shard.to_string()),
            dirty: gauge!(WRITEBEHIND_PENDING_USERS, "shard" => shard.to_string()),
            flush: histogram!(FLUSH_SECONDS),
            replayed: counter!(RECOVERY_ENTRIES_REPLAYED_TOTAL),
            lag: histogram!(EVENT_APPLY_LAG_SECONDS),
            batch: histogram!(APPLY_BATCH_SECONDS),
        }
    }
}
