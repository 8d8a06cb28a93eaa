//! Every metric the engine records, named in one place (Prometheus conventions:
//! base units, `_total` for counters, static labels only, never a user id).

/// Counter, labels `event` (declared name or `unknown`), `outcome`
/// (applied | duplicate | ignored | dead_lettered).
pub const EVENTS_TOTAL: &str = "restrictd_events_total";
/// Histogram: acknowledged (entry id time) to applied, seconds.
pub const EVENT_APPLY_LAG_SECONDS: &str = "restrictd_event_apply_lag_seconds";
/// Histogram: time a shard spends applying one batch, seconds.
pub const APPLY_BATCH_SECONDS: &str = "restrictd_apply_batch_seconds";
/// Counter, label `rule`: users restricted by the rule.
pub const RULE_FIRED_TOTAL: &str = "restrictd_rule_fired_total";
/// Counter, label `rule`: condition held but the rule was tripped.
pub const RULE_SUPPRESSED_TOTAL: &str = "restrictd_rule_suppressed_total";
/// Gauge, label `rule`: 1 when tripped.
pub const TRIPWIRE_TRIPPED: &str = "restrictd_tripwire_tripped";
/// Counter, labels `rule`, `change` (tripped | rearmed).
pub const TRIPWIRE_CHANGES_TOTAL: &str = "restrictd_tripwire_changes_total";
/// Counter: tripwire reports shed because the supervisor's mailbox was full.
pub const TRIPWIRE_REPORTS_SHED_TOTAL: &str = "restrictd_tripwire_reports_shed_total";
/// Gauge, label `shard`: users held.
pub const SHARD_USERS: &str = "restrictd_shard_users";
/// Counter, label `reason`: entries moved to the dead-letter stream.
pub const DEAD_LETTERS_TOTAL: &str = "restrictd_dead_letters_total";
/// Counter, label `operation`: Redis commands that failed.
pub const REDIS_ERRORS_TOTAL: &str = "restrictd_redis_errors_total";
/// Gauge, label `shard`: users changed since the last snapshot write.
pub const WRITEBEHIND_PENDING_USERS: &str = "restrictd_writebehind_pending_users";
/// Histogram: one snapshot write (MULTI/EXEC), seconds.
pub const FLUSH_SECONDS: &str = "restrictd_flush_seconds";
/// Counter: users loaded from snapshots at start-up.
pub const RECOVERY_USERS_LOADED_TOTAL: &str = "restrictd_recovery_users_loaded_total";
/// Counter: stream entries applied while catching up after start-up.
pub const RECOVERY_ENTRIES_REPLAYED_TOTAL: &str = "restrictd_recovery_entries_replayed_total";
/// Gauge: shards caught up with their stream since start-up.
pub const SHARDS_CAUGHT_UP: &str = "restrictd_shards_caught_up";
/// Gauge: seconds from start to every shard caught up (0 until then).
pub const RECOVERY_SECONDS: &str = "restrictd_recovery_seconds";
/// Gauge, label `shard`: seconds between the newest entry of the stream and the last one read.
pub const STREAM_LAG_SECONDS: &str = "restrictd_stream_lag_seconds";
/// Gauge, label `shard`: entries not yet read (exact up to 1000, capped there).
pub const STREAM_LAG_ENTRIES: &str = "restrictd_stream_lag_entries";
/// Gauge: seconds the changelog follower is behind the newest change of the
/// shards this instance does not own (how stale a non-owner's answer is).
pub const CHANGELOG_STALENESS_SECONDS: &str = "restrictd_changelog_staleness_seconds";
/// Histogram: from the event that caused a change (or the change itself) to
/// the change being visible on this instance as a non-owner, seconds.
pub const CHANGELOG_DELAY_SECONDS: &str = "restrictd_changelog_delay_seconds";
/// Counter: times the follower reloaded a shard's restricted users (start-up,
/// or after missing trimmed changelog entries).
pub const CHANGELOG_RELOADS_TOTAL: &str = "restrictd_changelog_reloads_total";
/// Gauge: shards this instance owns (lease held and applying).
pub const SHARDS_OWNED: &str = "restrictd_shards_owned";
