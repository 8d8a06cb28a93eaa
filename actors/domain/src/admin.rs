//! Operators' commands and the audit record, as written to streams.
//!
//! An operator's command travels through the user's shard stream like an event,
//! so it is ordered with the user's events, durable once acknowledged, and
//! applied by the shard's single writer.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::entry_id::EventRef;
use super::rules::Model;
use super::shard_state::Change;
use super::user::causes::{decode, Cause};
use super::user::features_of;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AdminCommand {
    SetOverride {
        user_id: String,
        feature: String,
        allowed: bool,
        reason: String,
        /// The admin token's name.
        by: String,
        expires_at_ms: Option<u64>,
    },
    ClearOverride {
        user_id: String,
        feature: String,
        by: String,
    },
    /// Written to every shard stream: restrict the users rule `rule` was
    /// withheld from for events at or after `since_ms` (a reset with
    /// `apply_suppressed`).
    ApplySuppressed {
        rule: String,
        since_ms: u64,
        by: String,
    },
}

/// A change as people read it (audit trail, history, live feed): what, why,
/// who, when, under which rule-set `version`; `causes` (`user::causes`) says what restricts each feature
/// restricted after it: a rule's name, or null for an operator's override.
pub fn change_json(model: &Model, version: u64, shard: u32, c: &Change, causes: &str) -> String {
    let rule = c.rule.map(|r| &*model.rules[usize::from(r)].name);
    let who = match (&c.by, rule) {
        (Some(by), _) => by.to_string(),
        (None, Some(rule)) => format!("rule:{rule}"),
        (None, None) => "restrictd".to_string(),
    };
    let why = match (&c.reason, rule) {
        (Some(reason), _) => reason.to_string(),
        (None, Some(_)) => model.rules[usize::from(c.rule.unwrap_or(0))].def.when.clone(),
        (None, None) => String::new(),
    };
    json!({
        "type": "change",
        "user_id": &*c.user_id,
        "change": c.kind.as_str(),
        "features": features_of(model, c.features),
        "rule": rule,
        "why": why,
        "who": who,
        "at_ms": c.at_ms,
        "at": super::time::rfc3339_ms(c.at_ms),
        "version": version,
        "entry_id": (c.entry.ms > 0).then(|| EventRef::new(shard, c.entry).to_string()),
        "restricted_after": features_of(model, c.restricted_after),
        "restricted_by": decode(causes).map(|(feature, cause)| (feature.to_string(), match cause {
            Cause::Rule(rule) => json!(rule),
            Cause::Override => serde_json::Value::Null,
        })).collect::<serde_json::Map<_, _>>(),
    })
    .to_string()
}
