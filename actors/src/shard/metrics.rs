//! The shard's metric handles, resolved once so applying an event formats no label.

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

use crate::domain::Model;
use crate::metrics::*;

pub(super) struct ShardMetrics {
    /// Per declared event, then one for undeclared events: [applied, duplicate, ignored].
    pub events: Vec<[Counter; 3]>,
    pub fired: Vec<Counter>,
    pub suppressed: Vec<Counter>,
    pub users: Gauge,
    pub dirty: Gauge,
    pub lag: Histogram,
    pub batch: Histogram,
    pub flush: Histogram,
    pub replayed: Counter,
}

impl ShardMetrics {
    pub fn new(shard: u32, model: &Model) -> Self {
        let names = model.schema.events.iter().map(|e| e.to_string()).chain(["unknown".to_string()]);
        let rule = |name: &'static str| -> Vec<Counter> {
            model.rules.iter().map(|r| counter!(name, "rule" => r.name.to_string())).collect()
        };
        let fired = model
            .rules
            .iter()
            .map(|r| counter!(RULE_FIRED_TOTAL, "rule" => r.name.to_string(), "mode" => r.def.mode.as_str()))
            .collect();
        ShardMetrics {
            events: names
                .map(|n| {
                    ["applied", "duplicate", "ignored"]
                        .map(|o| counter!(EVENTS_TOTAL, "event" => n.clone(), "outcome" => o))
                })
                .collect(),
            fired,
            suppressed: rule(RULE_SUPPRESSED_TOTAL),
            users: gauge!(SHARD_USERS, "shard" => shard.to_string()),
            dirty: gauge!(WRITEBEHIND_PENDING_USERS, "shard" => shard.to_string()),
            flush: histogram!(FLUSH_SECONDS),
            replayed: counter!(RECOVERY_ENTRIES_REPLAYED_TOTAL),
            lag: histogram!(EVENT_APPLY_LAG_SECONDS),
            batch: histogram!(APPLY_BATCH_SECONDS),
        }
    }
}
