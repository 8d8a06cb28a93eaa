//! What an analyst expects of one user after a step, and the comparison.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::Value;

use crate::money::{parse_decimal, Money};
use crate::rules::Model;
use crate::shard_state::{Change, ChangeKind};
use crate::user::UserReport;

/// Each field is checked only when given. Lists of rules are exact sets;
/// `restricted` and `allowed` name features that must be so (others may be
/// either).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Features restricted now (overrides included).
    #[serde(default)]
    pub restricted: Option<Vec<String>>,
    /// Features the user may use now.
    #[serde(default)]
    pub allowed: Option<Vec<String>>,
    /// The enforced rules restricting the user now (exactly these).
    #[serde(default)]
    pub rules: Option<Vec<String>>,
    /// The shadow rules that would restrict the user (exactly these).
    #[serde(default)]
    pub would_restrict: Option<Vec<String>>,
    /// Aggregate values now (windows aged to the clock): counts as integers,
    /// sums as exact decimals (a string, `"12.50"`, or a number).
    #[serde(default)]
    pub aggregates: BTreeMap<String, Value>,
    /// Windowed aggregates: how many seconds (or values) they hold.
    #[serde(default)]
    pub windows: BTreeMap<String, WindowExpect>,
    /// Rules that restricted the user during this step (exactly these).
    #[serde(default)]
    pub fired: Option<Vec<String>>,
    /// `until = "condition_clears"` rules whose restriction this step lifted.
    #[serde(default)]
    pub cleared: Option<Vec<String>>,
    /// Rules whose restriction expired (`restrict_for`) during this step.
    #[serde(default)]
    pub expired: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WindowExpect {
    pub entries: usize,
}

impl Expect {
    /// Every expectation that does not hold, as "what: expected ..., actual ...".
    pub fn check(&self, model: &Model, report: &UserReport, changes: &[Change], user: &str) -> Vec<String> {
        let mut failures = Vec::new();
        let mut unknown = |kind: &str, names: &[String], known: &dyn Fn(&str) -> bool| {
            for n in names.iter().filter(|n| !known(n)) {
                failures.push(format!("{kind} {n:?} is not in the rule set"));
            }
        };
        let feature = |n: &str| model.feature_index(n).is_some();
        let rule = |n: &str| model.rule_index(n).is_some();
        for (kind, list, known) in [
            ("feature", &self.restricted, &feature as &dyn Fn(&str) -> bool),
            ("feature", &self.allowed, &feature),
            ("rule", &self.rules, &rule),
            ("rule", &self.would_restrict, &rule),
            ("rule", &self.fired, &rule),
            ("rule", &self.cleared, &rule),
            ("rule", &self.expired, &rule),
        ] {
            unknown(kind, list.as_deref().unwrap_or_default(), known);
        }
        if !failures.is_empty() {
            return failures;
        }
        let restricted: BTreeSet<String> = crate::user::features_of(model, report.restricted).into_iter().collect();
        if let Some(want) = &self.restricted {
            let missing: Vec<&String> = want.iter().filter(|f| !restricted.contains(*f)).collect();
            if !missing.is_empty() {
                failures.push(format!("restricted: expected {missing:?} restricted, actual restricted {restricted:?}"));
            }
        }
        if let Some(want) = &self.allowed {
            let denied: Vec<&String> = want.iter().filter(|f| restricted.contains(*f)).collect();
            if !denied.is_empty() {
                failures.push(format!("allowed: expected {denied:?} allowed, actual restricted {restricted:?}"));
            }
        }
        let rules = |list: &[crate::user::RestrictionReport]| list.iter().map(|r| r.rule.clone()).collect();
        exact(&mut failures, "rules", &self.rules, rules(&report.restrictions));
        exact(&mut failures, "would_restrict", &self.would_restrict, rules(&report.would_restrict));
        let changed = |kind: ChangeKind| -> BTreeSet<String> {
            changes
                .iter()
                .filter(|c| c.kind == kind && &*c.user_id == user)
                .filter_map(|c| c.rule.map(|r| model.rules[usize::from(r)].name.to_string()))
                .collect()
        };
        exact(&mut failures, "fired", &self.fired, changed(ChangeKind::RuleFired));
        exact(&mut failures, "cleared", &self.cleared, changed(ChangeKind::Cleared));
        exact(&mut failures, "expired", &self.expired, changed(ChangeKind::Expired));
        for (name, want) in &self.aggregates {
            match report.aggregates.get(name) {
                None => failures.push(format!("aggregate {name:?} is not in the rule set")),
                Some(actual) if !same_value(want, actual) => {
                    failures.push(format!("aggregates.{name}: expected {want}, actual {actual}"))
                }
                Some(_) => {}
            }
        }
        for (name, want) in &self.windows {
            let windowed = model.aggregates.iter().any(|a| &*a.name == name && a.window.is_some());
            match report.windows.get(name).map(|w| w.entries) {
                _ if !windowed => failures.push(format!("windows: {name:?} is not a windowed aggregate")),
                actual if actual.unwrap_or(0) != want.entries => failures.push(format!(
                    "windows.{name}.entries: expected {}, actual {}",
                    want.entries,
                    actual.unwrap_or(0)
                )),
                _ => {}
            }
        }
        failures
    }
}

/// An exact set of names: the difference, when there is one.
fn exact(failures: &mut Vec<String>, what: &str, want: &Option<Vec<String>>, actual: BTreeSet<String>) {
    if let Some(want) = want {
        let want: BTreeSet<String> = want.iter().cloned().collect();
        if want != actual {
            failures.push(format!("{what}: expected {want:?}, actual {actual:?}"));
        }
    }
}

/// A count against an integer, a sum against an exact decimal.
fn same_value(want: &Value, actual: &Value) -> bool {
    let money = |v: &Value| -> Option<Money> {
        match v {
            Value::String(s) => parse_decimal(s).ok(),
            Value::Number(_) => Money::from_json(v).ok(),
            _ => None,
        }
    };
    match actual {
        Value::String(_) => money(want).is_some_and(|w| Some(w) == money(actual)),
        _ => want.as_u64().is_some_and(|w| actual.as_u64() == Some(w)),
    }
}
