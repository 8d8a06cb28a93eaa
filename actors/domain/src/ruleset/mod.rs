//! Versioned rule sets: the `features`, `events`, `aggregates` and `rules`
//! sections as published, with who, when and why, and the layout that keeps
//! bit positions stable across versions.
//!
//! Features and rules are bits in `u64` masks shared by every shard and the
//! read view, so their positions never change: a new version keeps the
//! previous version's order and appends what is new. A rule removed by a
//! version stays as a *retired* rule (it listens to nothing, restricts nobody
//! new), so the restrictions it made keep their meaning; a feature cannot be
//! removed. A rule whose restricted features change is a new rule under the
//! same name (its old restrictions stay with the retired one).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use super::rules::Layout;
use super::rules::{AggregateDef, Model, ModelDef, RuleDef, MAX_FEATURES, MAX_RULES};

/// One published version of the rule set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionRecord {
    pub version: u64,
    /// Who published it: `admin:<token>`, `file` (the first version), `cli`.
    pub by: String,
    pub at_ms: u64,
    #[serde(default)]
    pub message: Option<String>,
    /// What made it: `publish`, `rollback to <n>`, `seed`.
    pub source: String,
    pub content: ModelDef,
    pub layout: Layout,
    /// Rules no longer in `content` whose restrictions stay, by layout identity.
    #[serde(default)]
    pub retired: BTreeMap<String, RuleDef>,
    /// Lift the restrictions of the rules this version removes or re-targets
    /// (recorded in each user's history as `rule_removed`).
    #[serde(default)]
    pub lift_removed: bool,
    /// An automatic rollback of a rule that tripped: each shard lifts the
    /// restrictions that rule made since `since_ms` where it switches to this
    /// version, so those decided while the rollback was on its way go too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert: Option<Revert>,
}

/// A rule's restrictions to lift at a switch (`VersionRecord::revert`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revert {
    pub rule: String,
    pub since_ms: u64,
}

impl VersionRecord {
    /// Positions of the rules this version retires.
    pub fn retired_here(&self) -> Vec<u16> {
        let suffix = format!("@{}", self.version);
        self.layout.rules.iter().enumerate().filter(|(_, r)| r.ends_with(&suffix)).map(|(i, _)| i as u16).collect()
    }
}

/// What a new version changes against the current one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diff {
    pub rules_added: Vec<String>,
    pub rules_removed: Vec<String>,
    pub rules_changed: Vec<String>,
    pub aggregates_added: Vec<String>,
    pub aggregates_carried_over: Vec<String>,
    pub aggregates_dropped: Vec<String>,
    pub events_added: Vec<String>,
    pub events_removed: Vec<String>,
    pub features_added: Vec<String>,
}

fn same<T: Serialize>(a: &T, b: &T) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}

/// What `new` changes against `old` (`None`: everything is added).
pub fn diff(old: Option<&ModelDef>, new: &ModelDef) -> Diff {
    let empty = ModelDef::default();
    let old = old.unwrap_or(&empty);
    let mut d = Diff::default();
    for (name, r) in &new.rules {
        match old.rules.get(name) {
            None => d.rules_added.push(name.clone()),
            Some(o) if !same(o, r) => d.rules_changed.push(name.clone()),
            Some(_) => {}
        }
    }
    d.rules_removed = old.rules.keys().filter(|n| !new.rules.contains_key(*n)).cloned().collect();
    for (name, a) in &new.aggregates {
        match old.aggregates.get(name) {
            Some(o) if same(o, a) => d.aggregates_carried_over.push(name.clone()),
            _ => d.aggregates_added.push(name.clone()),
        }
    }
    d.aggregates_dropped = old
        .aggregates
        .iter()
        .filter(|(n, o)| !new.aggregates.get(*n).is_some_and(|a: &AggregateDef| same(*o, a)))
        .map(|(n, _)| n.clone())
        .collect();
    d.events_added = new.events.keys().filter(|n| !old.events.contains_key(*n)).cloned().collect();
    d.events_removed = old.events.keys().filter(|n| !new.events.contains_key(*n)).cloned().collect();
    d.features_added = new.features.keys().filter(|n| !old.features.contains_key(*n)).cloned().collect();
    d
}

/// The layout and retired rules of a version with `content`, after `prev`.
pub fn next_layout(
    prev: Option<&VersionRecord>,
    content: &ModelDef,
    version: u64,
) -> Result<(Layout, BTreeMap<String, RuleDef>), String> {
    let (mut layout, mut retired) = prev.map(|p| (p.layout.clone(), p.retired.clone())).unwrap_or_default();
    if let Some(gone) = layout.features.iter().find(|f| !content.features.contains_key(*f)) {
        return Err(format!("features.{gone}: a published rule set keeps every feature (clients check it by name)"));
    }
    for f in content.features.keys() {
        if !layout.features.contains(f) {
            layout.features.push(f.clone());
        }
    }
    let prev_rules = prev.map(|p| &p.content.rules);
    for (i, identity) in layout.rules.clone().iter().enumerate() {
        if retired.contains_key(identity) {
            continue;
        }
        let old = prev_rules.and_then(|r| r.get(identity)).cloned().unwrap_or_else(empty_rule);
        // Same features, same mode: the same rule (its restrictions keep their meaning).
        let kept = content.rules.get(identity).is_some_and(|r| r.restrict == old.restrict && r.mode == old.mode);
        if !kept {
            let retired_as = format!("{identity}@{version}");
            layout.rules[i] = retired_as.clone();
            retired.insert(retired_as, old);
        }
    }
    for (name, rule) in &content.rules {
        if layout.rules.contains(name) {
            continue;
        }
        // A rule back with the features and mode it had when it retired takes
        // its place again (its restrictions mean what they meant): removing and
        // re-adding a rule, or a rollback, takes no new place.
        let revived = layout.rules.iter().position(|slot| {
            slot.split_once('@').is_some_and(|(base, _)| base == name)
                && retired.get(slot).is_some_and(|old| old.restrict == rule.restrict && old.mode == rule.mode)
        });
        match revived {
            Some(i) => {
                retired.remove(&layout.rules[i]);
                layout.rules[i] = name.clone();
            }
            None => layout.rules.push(name.clone()),
        }
    }
    if layout.features.len() > MAX_FEATURES {
        return Err(format!("features: at most {MAX_FEATURES} features over every version"));
    }
    if layout.rules.len() > MAX_RULES {
        return Err(format!(
            "rules: at most {MAX_RULES} rules over every version, retired ones included ({} now)",
            layout.rules.len()
        ));
    }
    Ok((layout, retired))
}

fn empty_rule() -> RuleDef {
    RuleDef {
        on: Vec::new(),
        when: String::new(),
        restrict: Vec::new(),
        description: None,
        restrict_for: None,
        on_trip: Default::default(),
        mode: Default::default(),
        until: Default::default(),
    }
}

impl VersionRecord {
    /// The first version of a deployment, from its configuration file.
    pub fn seed(content: ModelDef, at_ms: u64) -> Result<VersionRecord, String> {
        let (layout, retired) = next_layout(None, &content, 1)?;
        Ok(VersionRecord {
            version: 1,
            by: "file".into(),
            at_ms,
            message: Some("the configuration file's rules".into()),
            source: "seed".into(),
            content,
            layout,
            retired,
            lift_removed: false,
            revert: None,
        })
    }

    /// Compiles this version with its layout.
    pub fn compile(&self, accept_unknown_events: bool) -> Result<Model, String> {
        Model::compile_laid_out(&self.content, &self.layout, &self.retired, accept_unknown_events)
    }
}

#[cfg(test)]
mod tests;
