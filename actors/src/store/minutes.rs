//! Counters per minute for the console's charts: events applied by name, and
//! per rule its restrictions (`fired`), shadow decisions (`would_restrict`)
//! and withheld ones (`suppressed`). A shard counts between two snapshots
//! (`Minutes`) and its flush adds the counts to one hash per series and hour,
//! `<prefix>:{minutes}:<series>:<hour>` (field: the minute within the hour),
//! which lives `KEEP_HOURS`. The keys share one hash tag, so a chart's reads
//! are one pipeline on a Redis Cluster too.
//!
//! On a single Redis the counts go in the flush's transaction (counted once,
//! whatever crashes); on a Cluster they are added after it, like the feed (an
//! owner that dies between the two leaves one flush's counts out).

use std::collections::BTreeMap;

use ahash::AHashMap;
use redis::Value;

use super::keys::Keys;
use crate::domain::Model;
use crate::link::Conn;

/// Hours a series' hash is kept after its last count: a chart of the last
/// 24 hours always finds its oldest hour.
pub const KEEP_HOURS: u64 = 26;
const MINUTE_MS: u64 = 60_000;

/// What a rule's series counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuleSeries {
    Fired,
    WouldRestrict,
    Suppressed,
}

impl RuleSeries {
    pub const ALL: [RuleSeries; 3] = [RuleSeries::Fired, RuleSeries::WouldRestrict, RuleSeries::Suppressed];

    pub fn as_str(self) -> &'static str {
        match self {
            RuleSeries::Fired => "fired",
            RuleSeries::WouldRestrict => "would_restrict",
            RuleSeries::Suppressed => "suppressed",
        }
    }
}

/// A series by position in the shard's rule set (named when taken).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Slot {
    /// A declared event by index; the schema's length for undeclared ones.
    Event(usize),
    Rule(u16, RuleSeries),
}

/// The name a series is stored under: `event:<name>` or `<kind>:<rule>`.
pub fn event_series(name: &str) -> String {
    format!("event:{name}")
}

pub fn rule_series(kind: RuleSeries, rule: &str) -> String {
    format!("{}:{rule}", kind.as_str())
}

/// Counts per (series, minute) since the last snapshot.
#[derive(Debug, Default)]
pub struct Minutes {
    counts: AHashMap<(Slot, u64), u64>,
    /// Counts taken under an earlier rule set, or given back by a failed write.
    named: Vec<(String, u64, u64)>,
}

impl Minutes {
    /// An event of kind `kind` applied at `at_ms`.
    pub fn event(&mut self, kind: usize, at_ms: u64) {
        *self.counts.entry((Slot::Event(kind), at_ms / MINUTE_MS)).or_default() += 1;
    }

    /// A decision of `rule` at `at_ms`.
    pub fn rule(&mut self, rule: u16, kind: RuleSeries, at_ms: u64) {
        *self.counts.entry((Slot::Rule(rule, kind), at_ms / MINUTE_MS)).or_default() += 1;
    }

    fn name_all(&mut self, model: &Model) {
        for ((slot, minute), n) in self.counts.drain() {
            let name = match slot {
                Slot::Event(k) => event_series(model.schema.events.get(k).map_or(super::codec::UNDECLARED, |n| n)),
                Slot::Rule(r, kind) => rule_series(kind, &model.rules[usize::from(r)].name),
            };
            self.named.push((name, minute, n));
        }
    }

    /// Takes what was counted (under `model`): (series, minute, count).
    pub fn take(&mut self, model: &Model) -> Vec<(String, u64, u64)> {
        self.name_all(model);
        std::mem::take(&mut self.named)
    }

    /// The rule set changes: what was counted under `old` keeps its names.
    pub fn switch(&mut self, old: &Model) {
        self.name_all(old);
    }

    /// Counts whose write failed, to be written with the next.
    pub fn put_back(&mut self, counts: Vec<(String, u64, u64)>) {
        self.named.extend(counts);
    }
}

/// Adds `counts` to `pipe` (each command `ignore`d).
pub fn add(pipe: &mut redis::Pipeline, keys: &Keys, counts: &[(String, u64, u64)]) {
    let mut by_key: BTreeMap<(&str, u64), Vec<(u64, u64)>> = BTreeMap::new();
    for (series, minute, n) in counts {
        by_key.entry((series, minute / 60)).or_default().push((minute % 60, *n));
    }
    for ((series, hour), fields) in by_key {
        let key = keys.minutes(series, hour);
        for (field, n) in fields {
            pipe.cmd("HINCRBY").arg(&key).arg(field).arg(n).ignore();
        }
        pipe.cmd("EXPIRE").arg(&key).arg(KEEP_HOURS * 3600).ignore();
    }
}

/// Adds `counts` outside a transaction (a Redis Cluster's flush).
pub async fn append(conn: &mut Conn, keys: &Keys, counts: &[(String, u64, u64)]) -> redis::RedisResult<()> {
    if counts.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    add(&mut pipe, keys, counts);
    pipe.query_async::<()>(conn).await
}

/// The counts of each series in `series` from minute `from` to minute `to`
/// (both included): series name → (minute, count), minutes in order, zeros
/// left out.
pub async fn read(
    conn: &mut Conn,
    keys: &Keys,
    series: &[String],
    from: u64,
    to: u64,
) -> redis::RedisResult<BTreeMap<String, Vec<(u64, u64)>>> {
    let hours: Vec<u64> = (from / 60..=to / 60).collect();
    let mut pipe = redis::pipe();
    for name in series {
        for hour in &hours {
            pipe.cmd("HGETALL").arg(keys.minutes(name, *hour));
        }
    }
    let mut replies: Vec<Value> = if series.is_empty() { Vec::new() } else { pipe.query_async(conn).await? };
    let mut out = BTreeMap::new();
    for (i, name) in series.iter().enumerate() {
        let mut points = Vec::new();
        for (h, hour) in hours.iter().enumerate() {
            let reply = replies.get_mut(i * hours.len() + h).map_or(Value::Nil, std::mem::take);
            let fields: BTreeMap<u64, u64> = redis::from_redis_value(reply).unwrap_or_default();
            points.extend(
                fields.into_iter().map(|(m, n)| (hour * 60 + m, n)).filter(|(m, n)| (from..=to).contains(m) && *n > 0),
            );
        }
        out.insert(name.clone(), points);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_kept_by_series_and_minute_and_written_per_hour() {
        let mut m = Minutes::default();
        m.event(0, 60_000 * 61 + 5);
        m.event(0, 60_000 * 61 + 59_999);
        m.rule(0, RuleSeries::Suppressed, 60_000 * 120);
        let def: crate::domain::ModelDef = toml::from_str(include_str!("../../../config.toml")).unwrap();
        let model = Model::compile(&def, false).unwrap();
        let mut taken = m.take(&model);
        taken.sort();
        let event = event_series(&model.schema.events[0]);
        let rule = rule_series(RuleSeries::Suppressed, &model.rules[0].name);
        assert_eq!(taken, vec![(event, 61, 2), (rule, 120, 1)]);
        assert!(m.take(&model).is_empty(), "taking empties it");
        let keys = Keys::new("rd", 4);
        let mut pipe = redis::pipe();
        add(&mut pipe, &keys, &taken);
        let packed = String::from_utf8_lossy(&pipe.get_packed_pipeline()).into_owned();
        assert!(packed.contains("rd:{minutes}:suppressed:"), "{packed}");
    }
}
