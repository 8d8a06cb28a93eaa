//! Stored encodings that are not snapshots: restricted sets (feature names
//! with their causes, joined by commas, in `<prefix>:{S}:restricted`) and per-event stats
//! (`count:<event>` and `amount:<event>` fields of `<prefix>:{S}:stats`).
//! Snapshots are versioned in `domain::snapshot`.

use std::collections::BTreeMap;

use crate::domain::Model;

/// A feature mask from a stored restricted set: names joined by commas, each
/// with its cause (`domain::user::causes`) or without (unknown names are
/// skipped: a feature removed from the configuration restricts nothing).
pub fn mask_of(model: &Model, features: &str) -> u64 {
    mask_of_names(model, crate::domain::user::causes::decode(features).map(|(f, _)| f))
}

/// A feature mask from feature names (unknown names are skipped).
pub fn mask_of_names<'a>(model: &Model, names: impl IntoIterator<Item = &'a str>) -> u64 {
    names.into_iter().filter_map(|f| model.feature_index(f)).fold(0, |m, f| m | 1 << f)
}

/// The name stats use for events that are not declared.
pub const UNDECLARED: &str = "unknown";

/// One event name's count and exact sum of `amount` (micro-units).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventStat {
    pub count: u64,
    pub amount: u64,
}

/// Counts and amounts per event kind (declared events by index, then one
/// slot for undeclared events), accumulated between two snapshots; and,
/// once taken for a snapshot (or carried over a rule-set switch), by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventStats {
    per_kind: Vec<EventStat>,
    named: Vec<(Box<str>, EventStat)>,
}

impl EventStats {
    /// Slots for `declared` events and the undeclared ones.
    pub fn new(declared: usize) -> Self {
        EventStats { per_kind: vec![EventStat::default(); declared + 1], named: Vec::new() }
    }

    /// An event of kind `kind` (`declared` for an undeclared one) was applied.
    pub fn record(&mut self, kind: usize, amount: u64) {
        let stat = &mut self.per_kind[kind];
        stat.count += 1;
        stat.amount += amount;
    }

    pub fn is_empty(&self) -> bool {
        self.per_kind.iter().all(|s| s.count == 0) && self.named.is_empty()
    }

    /// Moves what was recorded under `model` to names, leaving zeros.
    fn name_all(&mut self, model: &Model) {
        for (k, stat) in self.per_kind.iter_mut().enumerate() {
            if stat.count > 0 || stat.amount > 0 {
                let name = model.schema.events.get(k).map_or(UNDECLARED, |n| n);
                self.named.push((name.into(), std::mem::take(stat)));
            }
        }
    }

    /// Takes what was recorded (under `model`), by name, leaving zeros.
    pub fn take(&mut self, model: &Model) -> EventStats {
        self.name_all(model);
        EventStats { per_kind: Vec::new(), named: std::mem::take(&mut self.named) }
    }

    /// The rule set changes from `old` to one with `declared` events: what was
    /// recorded is kept by name.
    pub fn switch(&mut self, old: &Model, declared: usize) {
        self.name_all(old);
        self.per_kind = vec![EventStat::default(); declared + 1];
    }

    /// Adds back stats whose write failed.
    pub fn merge(&mut self, other: &EventStats) {
        self.named.extend(other.named.iter().cloned());
    }

    /// The `HINCRBY` increments of stats taken by `take`: (field, delta), zeros left out.
    pub fn fields(&self) -> Vec<(String, u64)> {
        let mut by_name: BTreeMap<&str, EventStat> = BTreeMap::new();
        for (name, stat) in &self.named {
            let total = by_name.entry(name).or_default();
            total.count += stat.count;
            total.amount += stat.amount;
        }
        let mut out = Vec::new();
        for (name, stat) in by_name {
            if stat.count > 0 {
                out.push((format!("count:{name}"), stat.count));
            }
            if stat.amount > 0 {
                out.push((format!("amount:{name}"), stat.amount));
            }
        }
        out
    }
}

/// Adds the fields of one shard's stats hash to totals by event name.
pub fn add_stats_fields(fields: BTreeMap<String, u64>, totals: &mut BTreeMap<String, EventStat>) {
    for (field, n) in fields {
        let Some((kind, name)) = field.split_once(':') else { continue };
        let stat = totals.entry(name.to_string()).or_default();
        match kind {
            "count" => stat.count = stat.count.saturating_add(n),
            "amount" => stat.amount = stat.amount.saturating_add(n),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        let def: crate::domain::ModelDef = toml::from_str(include_str!("../../../config.toml")).unwrap();
        Model::compile(&def, false).unwrap()
    }

    #[test]
    fn stats_round_trip_through_their_fields() {
        let model = model();
        let declared = model.schema.events.len();
        let mut stats = EventStats::new(declared);
        assert!(stats.is_empty());
        stats.record(0, 5);
        stats.record(0, 7);
        stats.record(declared, 0);
        let fields: BTreeMap<String, u64> = stats.take(&model).fields().into_iter().collect();
        let mut totals = BTreeMap::new();
        add_stats_fields(fields, &mut totals);
        let first = model.schema.events[0].to_string();
        assert_eq!(totals[&first], EventStat { count: 2, amount: 12 });
        assert_eq!(totals[UNDECLARED], EventStat { count: 1, amount: 0 });
    }

    #[test]
    fn failed_stats_are_merged_back() {
        let model = model();
        let mut stats = EventStats::new(model.schema.events.len());
        stats.record(1, 3);
        let taken = stats.take(&model);
        assert!(stats.is_empty());
        stats.record(1, 1);
        stats.merge(&taken);
        let name = model.schema.events[1].to_string();
        let fields = stats.take(&model).fields();
        assert_eq!(fields.iter().filter(|(f, _)| *f == format!("count:{name}")).map(|(_, n)| n).sum::<u64>(), 2);
        assert_eq!(fields.iter().filter(|(f, _)| *f == format!("amount:{name}")).map(|(_, n)| n).sum::<u64>(), 4);
    }
}
