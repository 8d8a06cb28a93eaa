//! Rules, compiled from config once at start-up.
//!
//! An aggregate is a per-user count of an event, a sum of a numeric property, or
//! a distinct count of a property. A rule listens to events, tests a condition
//! over aggregates and restricts features. Conditions are conjunctions of
//! comparisons of an aggregate, or a ratio of two, with a decimal constant:
//! `scam_flags >= 2`, `spend > 0 and chargebacks / spend > 0.10`. Comparisons are
//! exact integer arithmetic; a ratio whose denominator is zero is false.

mod compile;

use std::collections::BTreeMap;

use ahash::AHashMap;
use serde::{Deserialize, Serialize};

use super::money::{self, SCALE};
use crate::domain::schema::{EventDef, Schema};

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
}

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
}

impl Cmp {
    fn holds(self, lhs: Option<u128>, rhs: Option<u128>) -> bool {
        // `None` stands for a product too large for u128: larger than any Some.
        use std::cmp::Ordering::*;
        let ord = match (lhs, rhs) {
            (Some(a), Some(b)) => a.cmp(&b),
            (Some(_), None) => Less,
            (None, Some(_)) => Greater,
            (None, None) => return false,
        };
        match self {
            Cmp::Gt => ord == Greater,
            Cmp::Ge => ord != Less,
            Cmp::Lt => ord == Less,
            Cmp::Le => ord != Greater,
            Cmp::Eq => ord == Equal,
        }
    }
}

/// One comparison: `num [/ den] cmp constant`, pre-scaled so evaluation is
/// `num * lhs_factor cmp den * rhs_factor` (or `num * lhs_factor cmp rhs_factor`).
#[derive(Debug, Clone)]
pub struct Term {
    pub num: u16,
    pub den: Option<u16>,
    pub cmp: Cmp,
    lhs_factor: u128,
    rhs_factor: u128,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: Box<str>,
    pub def: RuleDef,
    pub terms: Vec<Term>,
    /// Features it restricts, as a bit mask over `Model::features`.
    pub features: u64,
    /// `restrict_for`, in ms.
    pub restrict_for_ms: Option<u64>,
    /// Removed by a later version of the rule set: kept for the restrictions
    /// it made, never evaluated.
    pub retired: bool,
    /// What its restrictions restrict: `features`, or nothing for a shadow rule.
    pub restricts: u64,
}

impl Rule {
    pub fn shadow(&self) -> bool {
        self.def.mode == Mode::Shadow
    }

    /// The aggregates its condition reads.
    pub fn aggregates(&self) -> impl Iterator<Item = u16> + '_ {
        self.terms.iter().flat_map(|t| std::iter::once(t.num).chain(t.den))
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
            aggregates: self
                .aggregates
                .iter()
                .map(|a| {
                    let event = usize::from(a.event);
                    let property = a.property.map(|p| schema.properties[event][p].0.to_string());
                    (
                        a.name.to_string(),
                        AggregateDef { kind: a.kind, event: schema.events[event].to_string(), property },
                    )
                })
                .collect(),
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
    /// Whether the condition holds. Allocates nothing.
    pub fn holds(&self, values: &impl AggregateValues) -> bool {
        self.terms.iter().all(|t| {
            let num = u128::from(values.value(t.num));
            match t.den {
                None => t.cmp.holds(num.checked_mul(t.lhs_factor), Some(t.rhs_factor)),
                Some(d) => {
                    let den = u128::from(values.value(d));
                    den != 0 && t.cmp.holds(num.checked_mul(t.lhs_factor), den.checked_mul(t.rhs_factor))
                }
            }
        })
    }
}

fn parse_condition(text: &str, by_name: &AHashMap<&str, u16>, aggregates: &[Aggregate]) -> Result<Vec<Term>, String> {
    let mut terms = Vec::new();
    let tokens: Vec<&str> = text.split_whitespace().collect();
    if tokens.is_empty() {
        return Err("empty condition".into());
    }
    for part in tokens.split(|t| t.eq_ignore_ascii_case("and")) {
        let agg = |name: &str| -> Result<u16, String> {
            by_name.get(name).copied().ok_or_else(|| {
                format!(
                    "{name:?} is not a declared aggregate (known: {})",
                    aggregates.iter().map(|a| &*a.name).collect::<Vec<_>>().join(", ")
                )
            })
        };
        let (num, den, cmp, constant) = match part {
            [a, op, c] => (agg(a)?, None, *op, *c),
            [a, "/", b, op, c] => (agg(a)?, Some(agg(b)?), *op, *c),
            _ => {
                return Err(format!(
                "cannot read {:?}: write `aggregate OP number` or `aggregate / aggregate OP number`, joined by `and`",
                part.join(" ")
            ))
            }
        };
        let cmp = match cmp {
            ">" => Cmp::Gt,
            ">=" => Cmp::Ge,
            "<" => Cmp::Lt,
            "<=" => Cmp::Le,
            "==" => Cmp::Eq,
            other => return Err(format!("unknown comparison {other:?} (use > >= < <= ==)")),
        };
        // constant = p / q exactly; p, q fit well inside u128.
        let p = u128::from(money::parse_decimal(constant).map_err(|e| format!("constant {constant:?} {e}"))?.0);
        let q = u128::from(SCALE);
        let unit_num = u128::from(aggregates[usize::from(num)].unit);
        let (lhs_factor, rhs_factor) = match den {
            // (num/unit_num) cmp p/q  <=>  num*q cmp p*unit_num
            None => (q, p * unit_num),
            // (num/unit_num)/(den/unit_den) cmp p/q  <=>  num*unit_den*q cmp den*p*unit_num
            Some(d) => (u128::from(aggregates[usize::from(d)].unit) * q, p * unit_num),
        };
        terms.push(Term { num, den, cmp, lhs_factor, rhs_factor });
    }
    Ok(terms)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Vals(Vec<u64>);
    impl AggregateValues for Vals {
        fn value(&self, a: u16) -> u64 {
            self.0[usize::from(a)]
        }
    }

    fn model(when: &str) -> Model {
        let def: ModelDef = toml::from_str(&format!(
            r#"
            [features.can_purchase]
            [events.purchase_made]
            properties = {{ amount = "money" }}
            [events.chargeback_occurred]
            properties = {{ amount = "money" }}
            [aggregates.chargebacks]
            kind = "sum"
            event = "chargeback_occurred"
            property = "amount"
            [aggregates.purchases]
            kind = "count"
            event = "purchase_made"
            [aggregates.spend]
            kind = "sum"
            event = "purchase_made"
            property = "amount"
            [rules.r]
            on = ["purchase_made", "chargeback_occurred"]
            when = "{when}"
            restrict = ["can_purchase"]
            "#
        ))
        .unwrap();
        Model::compile(&def, false).unwrap()
    }

    #[test]
    fn ratio_of_sums_is_exact_at_the_boundary() {
        // aggregates sorted by name: chargebacks=0, purchases=1, spend=2
        let m = model("chargebacks / spend > 0.10");
        let r = &m.rules[0];
        assert!(!r.holds(&Vals(vec![10 * SCALE, 1, 100 * SCALE])), "10/100 is not > 0.10");
        assert!(r.holds(&Vals(vec![10 * SCALE + 1, 1, 100 * SCALE])));
        assert!(!r.holds(&Vals(vec![5 * SCALE, 0, 0])), "zero denominator is false");
    }

    #[test]
    fn plain_comparisons_scale_money_and_counts() {
        let m = model("spend >= 100 and purchases >= 2");
        let r = &m.rules[0];
        assert!(r.holds(&Vals(vec![0, 2, 100 * SCALE])));
        assert!(!r.holds(&Vals(vec![0, 1, 100 * SCALE])));
        assert!(!r.holds(&Vals(vec![0, 2, 100 * SCALE - 1])));
    }

    #[test]
    fn huge_values_do_not_overflow_into_wrong_answers() {
        let m = model("chargebacks / spend > 0.10");
        assert!(m.rules[0].holds(&Vals(vec![u64::MAX, 0, u64::MAX / 2])));
        assert!(!m.rules[0].holds(&Vals(vec![1, 0, u64::MAX])));
    }

    #[test]
    fn bad_conditions_name_the_problem() {
        let def: ModelDef = toml::from_str(
            r#"
            [features.can_x]
            [events.e]
            [aggregates.n]
            kind = "count"
            event = "e"
            [rules.r]
            on = ["e"]
            when = "m >= 2"
            restrict = ["can_x"]
            "#,
        )
        .unwrap();
        let err = Model::compile(&def, false).unwrap_err();
        assert!(err.contains("rules.r.when") && err.contains("\"m\""), "{err}");
    }
}
