//! Rules, compiled from config once at start-up.
//!
//! An aggregate is a per-user count of an event, a sum of a numeric property, or
//! a distinct count of a property, over all time or over a sliding window of
//! event time. A rule listens to events, tests a condition (CEL, see
//! `condition`) over aggregates and the applied event, and restricts features.

mod compile;
pub mod condition;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::money::SCALE;
use crate::schema::{Event, EventDef, Schema};
pub use compile::is_rule_name;
pub use condition::{Cmp, Condition};

/// Most rules a deployment may hold over every version of its rule set.
pub const MAX_RULES: usize = 4096;
/// Most features (each is a bit of a `u64` mask in the read view).
pub const MAX_FEATURES: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AggregateKind {
    Count,
    Sum,
    Distinct,
}

/// `[aggregates.<name>]` in config.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateDef {
    pub kind: AggregateKind,
    /// The event whose occurrences are counted or whose property is read.
    pub event: String,
    /// The property summed or counted distinct (not for `count`).
    #[serde(default)]
    pub property: Option<String>,
    /// A sliding window of event time (`"24h"`, from 1s to 90d); absent: all time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// Most events a user keeps inside the window; beyond, the oldest merge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_events: Option<u32>,
}

/// Events a windowed aggregate keeps per user unless `max_events` says otherwise.
pub const DEFAULT_MAX_EVENTS: u32 = 10_000;
/// The shortest and longest windows, in seconds.
pub const WINDOW_RANGE_S: std::ops::RangeInclusive<u32> = 1..=90 * 24 * 3600;

/// `[rules.<name>]` in config.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    /// Event names that make the rule evaluate.
    pub on: Vec<String>,
    /// The condition, e.g. `"chargebacks / spend > 0.10"`.
    pub when: String,
    /// Features restricted when the condition holds.
    pub restrict: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// How long a restriction lasts (`"30d"`); absent: until lifted.
    #[serde(default)]
    pub restrict_for: Option<String>,
    /// When the tripwire trips this rule: `keep` its restrictions, or `revert`
    /// (lift) those it made within the window.
    #[serde(default)]
    pub on_trip: OnTrip,
    /// `enforce` (restrict), or `shadow`: evaluate and record whom it would
    /// restrict, restricting nobody and counting in no tripwire.
    #[serde(default, skip_serializing_if = "Mode::is_enforce")]
    pub mode: Mode,
    /// How long a restriction lasts besides `restrict_for`: `lifted` (by an
    /// operator; the default) or `condition_clears` (lifted when an event or
    /// the window's sweep finds the condition false again).
    #[serde(default, skip_serializing_if = "Until::is_lifted")]
    pub until: Until,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Until {
    #[default]
    Lifted,
    ConditionClears,
}

impl Until {
    pub fn is_lifted(&self) -> bool {
        *self == Until::Lifted
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Enforce,
    Shadow,
}

impl Mode {
    pub fn is_enforce(&self) -> bool {
        *self == Mode::Enforce
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Shadow => "shadow",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnTrip {
    #[default]
    Keep,
    Revert,
    /// Revert, and publish the rule's definition from before the version that
    /// introduced or changed it, when that version is recent
    /// (`tripwire.rollback_within`).
    Rollback,
}

/// `[features.<name>]` in config.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FeatureDef {
    #[serde(default)]
    pub description: Option<String>,
}

/// Where bits stand: feature and rule names in bit order (a published
/// version keeps them in place, `ruleset::next_layout`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub features: Vec<String>,
    /// Rule identities in bit order: active rules by name, retired ones as
    /// `<name>@<version retired>`.
    pub rules: Vec<String>,
}

/// Everything the engine needs from config, as written.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct ModelDef {
    #[serde(default)]
    pub features: BTreeMap<String, FeatureDef>,
    #[serde(default)]
    pub events: BTreeMap<String, EventDef>,
    #[serde(default)]
    pub aggregates: BTreeMap<String, AggregateDef>,
    #[serde(default)]
    pub rules: BTreeMap<String, RuleDef>,
}

/// Where an aggregate lives in a user's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Index into `UserState::scalars` (counts and sums).
    Scalar(u16),
    /// Index into `UserState::sets` (distinct counts).
    Set(u16),
    /// Index into `UserState::windows` (windowed aggregates of any kind).
    Window(u16),
}

/// A compiled aggregate.
#[derive(Debug, Clone)]
pub struct Aggregate {
    pub name: Box<str>,
    pub kind: AggregateKind,
    pub event: u16,
    /// Index of the property in the event's declared properties.
    pub property: Option<usize>,
    pub slot: Slot,
    /// Stored units per displayed unit: `SCALE` for sums of money, 1 otherwise.
    pub unit: u64,
    /// The window in seconds; `None`: all time.
    pub window: Option<u32>,
    /// Most events kept inside the window per user.
    pub max_events: u32,
    /// As written in config.
    pub def: AggregateDef,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: Box<str>,
    pub def: RuleDef,
    pub condition: Condition,
    /// Features it restricts, as a bit mask over `Model::features`.
    pub features: u64,
    /// `restrict_for`, in ms.
    pub restrict_for_ms: Option<u64>,
    /// Removed by a later version of the rule set: kept for the restrictions
    /// it made, never evaluated.
    pub retired: bool,
    /// What its restrictions restrict: `features`, or nothing for a shadow rule.
    pub restricts: u64,
    /// `until = "condition_clears"`: its restrictions end when the condition
    /// is found false again.
    pub clears: bool,
    /// Its condition reads a windowed aggregate.
    pub windowed: bool,
}

impl Rule {
    pub fn shadow(&self) -> bool {
        self.def.mode == Mode::Shadow
    }

    /// The aggregates its condition reads.
    pub fn aggregates(&self) -> impl Iterator<Item = u16> + '_ {
        self.condition.aggregates().iter().copied()
    }

    /// The rule's name in the tripwire's shared state: a shadow rule counts
    /// apart, so that what it would have restricted never trips the rule
    /// it is promoted to.
    pub fn tripwire_key(&self) -> std::borrow::Cow<'_, str> {
        if self.shadow() {
            format!("{}#shadow", self.name).into()
        } else {
            (&*self.name).into()
        }
    }
}

/// The compiled model: schema, aggregates, rules and features.
#[derive(Debug, Clone)]
pub struct Model {
    pub schema: Schema,
    pub features: Vec<Box<str>>,
    pub feature_descriptions: Vec<Option<String>>,
    pub aggregates: Vec<Aggregate>,
    pub rules: Vec<Rule>,
    /// Per event: the aggregates it updates.
    pub aggregates_by_event: Vec<Vec<u16>>,
    /// Per event: the rules that listen to it.
    pub rules_by_event: Vec<Box<[u16]>>,
    pub scalar_count: usize,
    pub set_count: usize,
    pub window_count: usize,
    /// The windowed aggregates: (aggregate, window slot, window in seconds).
    pub windowed: Vec<(u16, u16, u32)>,
}

impl Model {
    /// The sections this model was compiled from (active rules only).
    pub fn def(&self) -> ModelDef {
        let schema = &self.schema;
        ModelDef {
            features: self
                .features
                .iter()
                .zip(&self.feature_descriptions)
                .map(|(f, d)| (f.to_string(), FeatureDef { description: d.clone() }))
                .collect(),
            events: schema
                .events
                .iter()
                .zip(&schema.properties)
                .map(|(e, props)| (e.to_string(), EventDef::of(props.iter().map(|(p, t)| (p.to_string(), *t)))))
                .collect(),
            aggregates: self.aggregates.iter().map(|a| (a.name.to_string(), a.def.clone())).collect(),
            rules: self.rules.iter().filter(|r| !r.retired).map(|r| (r.name.to_string(), r.def.clone())).collect(),
        }
    }

    pub fn feature_index(&self, name: &str) -> Option<usize> {
        self.features.iter().position(|f| &**f == name)
    }

    pub fn rule_index(&self, name: &str) -> Option<usize> {
        self.rules.iter().position(|r| &*r.name == name)
    }
}

/// The stored value of an aggregate, given a reader of the user's aggregates.
pub trait AggregateValues {
    fn value(&self, aggregate: u16) -> u64;
}

impl Rule {
    /// Whether the condition holds, for the aggregates `values` and the
    /// event being applied (`None` outside an event). Allocates nothing.
    pub fn holds(&self, values: &impl AggregateValues, event: Option<&Event<'_>>) -> bool {
        self.condition.holds(values, event)
    }
}
