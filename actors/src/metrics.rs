//! Every metric the engine records, named in one place (Prometheus conventions:
//! base units, `_total` for counters, static labels only, never a user id),
//! each with the help text `/metrics` shows.

/// What a metric is, for the `describe_*` that registers its help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Declares metrics with their help text (their doc comments): a `pub const`
/// name per metric and `DECLARED`, the list `describe` registers.
#[macro_export]
macro_rules! declare_metrics {
    ($( $(#[doc = $doc:literal])+ $kind:ident $name:ident = $value:literal; )*) => {
        $( $(#[doc = $doc])+ pub const $name: &str = $value; )*
        /// Every metric declared here: (kind, name, help).
        pub const DECLARED: &[($crate::metrics::Kind, &str, &str)] =
            &[ $( ($crate::metrics::Kind::$kind, $value, concat!($($doc),+)) ),* ];
    };
}

/// Registers each metric's help text with the recorder (`# HELP` lines).
pub fn describe(declared: &[(Kind, &'static str, &'static str)]) {
    for &(kind, name, help) in declared {
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        match kind {
            Kind::Counter => ::metrics::describe_counter!(name, help),
            Kind::Gauge => ::metrics::describe_gauge!(name, help),
            Kind::Histogram => ::metrics::describe_histogram!(name, help),
        }
    }
}

crate::declare_metrics! {
    /// Counter, labels `event` (declared name or `unknown`), `outcome`
    /// (applied | duplicate | ignored | dead_lettered).
    Counter EVENTS_TOTAL = "restrictd_events_total";
    /// Histogram: acknowledged (entry id time) to applied, seconds.
    Histogram EVENT_APPLY_LAG_SECONDS = "restrictd_event_apply_lag_seconds";
    /// Histogram: time a shard spends applying one batch, seconds.
    Histogram APPLY_BATCH_SECONDS = "restrictd_apply_batch_seconds";
    /// Gauge: the newest rule-set version this instance knows (0: the
    /// configuration file's, before any was published).
    Gauge RULES_VERSION = "restrictd_rules_version";
    /// Counter, labels `rule`, `mode` (enforce | shadow): users restricted by
    /// the rule (by a shadow rule: users it would have restricted).
    Counter RULE_FIRED_TOTAL = "restrictd_rule_fired_total";
    /// Counter, label `rule`: condition held but the rule was tripped.
    Counter RULE_SUPPRESSED_TOTAL = "restrictd_rule_suppressed_total";
    /// Gauge, label `rule`: 1 when tripped.
    Gauge TRIPWIRE_TRIPPED = "restrictd_tripwire_tripped";
    /// Counter, labels `rule`, `change` (tripped | rearmed).
    Counter TRIPWIRE_CHANGES_TOTAL = "restrictd_tripwire_changes_total";
    /// Counter: tripwire syncs completed (counts read from Redis and evaluated).
    Counter TRIPWIRE_SYNCS_TOTAL = "restrictd_tripwire_syncs_total";
    /// Counter: tripwire reports shed because the supervisor's mailbox was full.
    Counter TRIPWIRE_REPORTS_SHED_TOTAL = "restrictd_tripwire_reports_shed_total";
    /// Gauge, label `shard`: users held.
    Gauge SHARD_USERS = "restrictd_shard_users";
    /// Counter, label `reason`: entries moved to the dead-letter stream.
    Counter DEAD_LETTERS_TOTAL = "restrictd_dead_letters_total";
    /// Counter, label `operation`: Redis commands that failed.
    Counter REDIS_ERRORS_TOTAL = "restrictd_redis_errors_total";
    /// Counter, label `shard`: writes for a shard (snapshot, changelog, lease
    /// renewal, tripwire) that Redis refused because the shard's lease no
    /// longer names this instance and epoch; the instance then stops.
    Counter FENCED_WRITES_TOTAL = "restrictd_fenced_writes_total";
    /// Gauge, label `shard`: users changed since the last snapshot write.
    Gauge WRITEBEHIND_PENDING_USERS = "restrictd_writebehind_pending_users";
    /// Histogram: one snapshot write (MULTI/EXEC), seconds.
    Histogram FLUSH_SECONDS = "restrictd_flush_seconds";
    /// Counter: users loaded from snapshots at start-up.
    Counter RECOVERY_USERS_LOADED_TOTAL = "restrictd_recovery_users_loaded_total";
    /// Counter: stream entries applied while catching up after start-up.
    Counter RECOVERY_ENTRIES_REPLAYED_TOTAL = "restrictd_recovery_entries_replayed_total";
    /// Gauge: shards caught up with their stream since start-up.
    Gauge SHARDS_CAUGHT_UP = "restrictd_shards_caught_up";
    /// Gauge: seconds from start to every shard caught up (0 until then).
    Gauge RECOVERY_SECONDS = "restrictd_recovery_seconds";
    /// Gauge, label `shard`: seconds between the newest entry of the stream and the last one read.
    Gauge STREAM_LAG_SECONDS = "restrictd_stream_lag_seconds";
    /// Gauge, label `shard`: entries not yet read (exact up to 1000, capped there).
    Gauge STREAM_LAG_ENTRIES = "restrictd_stream_lag_entries";
    /// Gauge: seconds the changelog follower is behind the newest change of the
    /// shards this instance does not own (how stale a non-owner's answer is).
    Gauge CHANGELOG_STALENESS_SECONDS = "restrictd_changelog_staleness_seconds";
    /// Histogram: from the event that caused a change (or the change itself) to
    /// the change being visible on this instance as a non-owner, seconds.
    Histogram CHANGELOG_DELAY_SECONDS = "restrictd_changelog_delay_seconds";
    /// Counter: times the follower reloaded a shard's restricted users (start-up,
    /// or after missing trimmed changelog entries).
    Counter CHANGELOG_RELOADS_TOTAL = "restrictd_changelog_reloads_total";
    /// Gauge: shards this instance owns (lease held and applying).
    Gauge SHARDS_OWNED = "restrictd_shards_owned";
}

/// Each rule's counters, by position: the same for every shard, resolved
/// once per rule-set version (`Shared::rule_metrics`).
pub struct RuleMetrics {
    pub fired: Vec<metrics::Counter>,
    pub suppressed: Vec<metrics::Counter>,
}

impl RuleMetrics {
    pub fn new(model: &crate::domain::Model) -> Self {
        let fired = model
            .rules
            .iter()
            .map(|r| metrics::counter!(RULE_FIRED_TOTAL, "rule" => r.name.to_string(), "mode" => r.def.mode.as_str()))
            .collect();
        let suppressed = model
            .rules
            .iter()
            .map(|r| metrics::counter!(RULE_SUPPRESSED_TOTAL, "rule" => r.name.to_string()))
            .collect();
        RuleMetrics { fired, suppressed }
    }
}
