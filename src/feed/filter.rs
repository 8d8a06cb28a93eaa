//! What a feed consumer asked for: events (by name), rules, features, users,
//! change kinds, and a CEL condition over the events; from the query string
//! (`events=&rules=&features=&users=&changes=`, comma-separated) or from a
//! stored subscription (the same names, as JSON lists, and `condition`).

use restrictd_actors::shared::{FeedItem, FeedKind};
use restrictd_domain::rules::condition::{compile_over_events, Condition};
use restrictd_domain::Model;
use serde::{Deserialize, Serialize};

/// Change kinds a filter may name (`changes=`).
pub const CHANGE_KINDS: &[&str] = &[
    "rule_fired",
    "would_restrict",
    "rule_removed",
    "expired",
    "tripwire_revert",
    "cleared",
    "suppressed",
    "override_set",
    "override_removed",
    "override_expired",
];

/// A filter as written: in a stored subscription, or read from the query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FilterDef {
    /// Also stream these events (`["all"]` for every one); none unless named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<String>>,
    /// Change kinds (`rule_fired`, `cleared`, ...); every kind unless named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<String>>,
    /// A CEL condition over the streamed events (`event.amount >= 100`):
    /// events for which it does not hold are left out. Needs `events`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

/// A filter compiled against the current rule set.
#[derive(Default)]
pub struct Filter {
    /// `None`: no events; `Some(None)`: all events; `Some(Some(set))`: these.
    events: Option<Option<Vec<u16>>>,
    rules: Option<Vec<u16>>,
    features: Option<u64>,
    users: Option<Vec<String>>,
    changes: Option<Vec<String>>,
    condition: Option<Condition>,
}

/// Each name of `names` resolved by `find`, or 400 naming the unknown one.
fn resolve<T>(what: &str, names: &[String], find: impl Fn(&str) -> Option<T>) -> Result<Vec<T>, String> {
    if names.is_empty() || names.iter().any(String::is_empty) {
        return Err(format!("{what} is a list of names, at least one, none of them empty"));
    }
    names.iter().map(|n| find(n).ok_or_else(|| format!("unknown {what} {n:?}"))).collect()
}

impl FilterDef {
    /// Compiles the filter against `model`: what is wrong (an unknown name, a bad condition).
    pub fn compile(&self, model: &Model) -> Result<Filter, String> {
        let mut f = Filter::default();
        if let Some(events) = &self.events {
            f.events = Some(if events.iter().any(|e| e == "all") {
                None
            } else {
                Some(resolve("event", events, |e| model.schema.event_index(e))?)
            });
        }
        if let Some(rules) = &self.rules {
            f.rules = Some(resolve("rule", rules, |r| model.rule_index(r).map(|i| i as u16))?);
        }
        if let Some(features) = &self.features {
            f.features =
                Some(resolve("feature", features, |n| model.feature_index(n))?.iter().fold(0, |m, i| m | 1 << i));
        }
        if let Some(users) = &self.users {
            if users.is_empty() {
                return Err("user is a list of names, at least one, none of them empty".into());
            }
            if let Some(bad) = users.iter().find_map(|u| restrictd_domain::schema::check_user_id(u).err()) {
                return Err(format!("users: {bad}"));
            }
            f.users = Some(users.clone());
        }
        if let Some(changes) = &self.changes {
            resolve("change", changes, |c| CHANGE_KINDS.contains(&c).then_some(()))?;
            f.changes = Some(changes.clone());
        }
        if let Some(text) = &self.condition {
            let on: Vec<u16> = match &f.events {
                Some(Some(on)) => on.clone(),
                _ => return Err("a condition needs the events it reads, by name (events=...)".into()),
            };
            let condition = compile_over_events(text, &model.schema, &on).map_err(|e| format!("condition: {e}"))?;
            f.condition = Some(condition);
        }
        Ok(f)
    }
}

impl Filter {
    /// Whether `item` is delivered; `model` validates a streamed event for the condition.
    pub fn matches(&self, item: &FeedItem, model: &Model) -> bool {
        match item.kind {
            // About no rule, feature or user: only an unfiltered feed carries it.
            FeedKind::Rules => self.rules.is_none() && self.features.is_none() && self.users.is_none(),
            FeedKind::Subscription => false,
            FeedKind::Event => self.event_matches(item, model),
            FeedKind::Change | FeedKind::Tripwire => self.change_matches(item),
        }
    }

    fn event_matches(&self, item: &FeedItem, model: &Model) -> bool {
        let named = match &self.events {
            None => false,
            Some(None) => true,
            Some(Some(set)) => item.event.is_some_and(|e| set.contains(&e)),
        };
        if !named || !self.user_matches(item) {
            return false;
        }
        let Some(condition) = &self.condition else { return true };
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&item.json) else { return false };
        model.schema.validate(&value).is_ok_and(|event| condition.holds_for_event(&event))
    }

    fn change_matches(&self, item: &FeedItem) -> bool {
        if let Some(rules) = &self.rules {
            if !item.rule.is_some_and(|r| rules.contains(&r)) {
                return false;
            }
        }
        if self.features.is_some_and(|mask| item.features & mask == 0) {
            return false;
        }
        if item.kind == FeedKind::Tripwire {
            return self.users.is_none() && self.changes.is_none();
        }
        if let Some(changes) = &self.changes {
            let kind = item.change.as_deref().unwrap_or("");
            if !changes.iter().any(|c| c == kind) {
                return false;
            }
        }
        self.user_matches(item)
    }

    fn user_matches(&self, item: &FeedItem) -> bool {
        self.users.as_ref().is_none_or(|users| item.user_id.as_deref().is_some_and(|u| users.iter().any(|x| x == u)))
    }

    /// Whether the consumer streams events (they are published only then).
    pub fn wants_events(&self) -> bool {
        self.events.is_some()
    }
}
