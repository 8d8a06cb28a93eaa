//! Compiled conditions and their evaluation.
//!
//! A condition is written in the Common Expression Language (CEL) and
//! compiled (`cel.rs`) to the engine's own form: the top-level conjuncts of
//! the shapes `aggregate OP constant` and `aggregate / aggregate OP constant`
//! become pre-scaled integer comparisons (`Term`), the rest a small tree of
//! exact rational arithmetic (`Node`). Evaluation allocates nothing and uses
//! no floating point. As in CEL, an error (a division by zero, a value out of
//! range) is absorbed by `&&` and `||` when the other side decides, and a
//! condition that evaluates to an error is false.

pub(crate) mod cel;
mod ratio;

use super::AggregateValues;
use crate::schema::{Event, EventKind, PropValue};

pub use cel::Names;
pub use ratio::Ratio;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl Cmp {
    fn of(ord: std::cmp::Ordering, cmp: Cmp) -> bool {
        use std::cmp::Ordering::*;
        match cmp {
            Cmp::Gt => ord == Greater,
            Cmp::Ge => ord != Less,
            Cmp::Lt => ord == Less,
            Cmp::Le => ord != Greater,
            Cmp::Eq => ord == Equal,
            Cmp::Ne => ord != Equal,
        }
    }

    /// The comparison with its sides swapped (`a < b` is `b > a`).
    fn flipped(self) -> Cmp {
        match self {
            Cmp::Gt => Cmp::Lt,
            Cmp::Ge => Cmp::Le,
            Cmp::Lt => Cmp::Gt,
            Cmp::Le => Cmp::Ge,
            other => other,
        }
    }

    fn holds(self, lhs: Option<u128>, rhs: Option<u128>) -> bool {
        // `None` stands for a product too large for u128: larger than any Some.
        use std::cmp::Ordering::*;
        let ord = match (lhs, rhs) {
            (Some(a), Some(b)) => a.cmp(&b),
            (Some(_), None) => Less,
            (None, Some(_)) => Greater,
            (None, None) => return false,
        };
        Cmp::of(ord, self)
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

impl Term {
    fn holds(&self, values: &impl AggregateValues) -> bool {
        let num = u128::from(values.value(self.num));
        match self.den {
            None => self.cmp.holds(num.checked_mul(self.lhs_factor), Some(self.rhs_factor)),
            Some(d) => {
                let den = u128::from(values.value(d));
                den != 0 && self.cmp.holds(num.checked_mul(self.lhs_factor), den.checked_mul(self.rhs_factor))
            }
        }
    }
}

/// Where a property of the applied event is, per event the rule listens to.
#[derive(Debug, Clone)]
pub struct PropRef {
    /// (event index, slot in `Event::values`).
    slots: Box<[(u16, u8)]>,
}

impl PropRef {
    fn get<'e>(&self, event: Option<&Event<'e>>) -> Option<PropValue<'e>> {
        let event = event?;
        let EventKind::Known(kind) = event.kind else { return None };
        let &(_, slot) = self.slots.iter().find(|(e, _)| *e == kind)?;
        Some(event.values[usize::from(slot)])
    }
}

/// A number: exact, as a ratio of integers.
#[derive(Debug, Clone)]
pub enum Num {
    /// An aggregate, in stored units per displayed unit (`unit`).
    Aggregate {
        index: u16,
        unit: u64,
    },
    Property(PropRef),
    Const(Ratio),
    Neg(Box<Num>),
    Add(Box<[Num; 2]>),
    Sub(Box<[Num; 2]>),
    Mul(Box<[Num; 2]>),
    Div(Box<[Num; 2]>),
}

/// A string: a property of the event or a constant.
#[derive(Debug, Clone)]
pub enum Text {
    Property(PropRef),
    Const(Box<str>),
}

/// A boolean expression.
#[derive(Debug, Clone)]
pub enum Node {
    Const(bool),
    Property(PropRef),
    And(Box<[Node]>),
    Or(Box<[Node]>),
    Not(Box<Node>),
    /// `==` or `!=` of two booleans.
    Same(bool, Box<[Node; 2]>),
    Compare(Cmp, Box<[Num; 2]>),
    /// `==` (true) or `!=` (false) of two strings.
    Text(bool, Box<[Text; 2]>),
}

/// What a condition reads, while it is evaluated.
struct Scope<'a, 'e, V> {
    values: &'a V,
    event: Option<&'a Event<'e>>,
}

impl<'e, V: AggregateValues> Scope<'_, 'e, V> {
    /// `None`: an error (division by zero, out of range, no such property).
    fn num(&self, n: &Num) -> Option<Ratio> {
        match n {
            Num::Aggregate { index, unit } => {
                Some(Ratio::new(i128::from(self.values.value(*index)), i128::from(*unit)))
            }
            Num::Property(p) => match p.get(self.event)? {
                PropValue::Money(m) => Some(Ratio::new(i128::from(m.0), i128::from(crate::money::SCALE))),
                PropValue::Integer(i) => Some(Ratio::int(i128::from(i))),
                _ => None,
            },
            Num::Const(c) => Some(*c),
            Num::Neg(a) => self.num(a)?.checked_neg(),
            Num::Add(ab) => self.num(&ab[0])?.checked_add(self.num(&ab[1])?),
            Num::Sub(ab) => self.num(&ab[0])?.checked_add(self.num(&ab[1])?.checked_neg()?),
            Num::Mul(ab) => self.num(&ab[0])?.checked_mul(self.num(&ab[1])?),
            Num::Div(ab) => self.num(&ab[0])?.checked_div(self.num(&ab[1])?),
        }
    }

    fn text<'t>(&self, t: &'t Text) -> Option<&'t str>
    where
        'e: 't,
    {
        match t {
            Text::Const(s) => Some(s),
            Text::Property(p) => match p.get(self.event)? {
                PropValue::Str(s) => Some(s),
                _ => None,
            },
        }
    }

    /// `&&` (`decisive` false) or `||` (true): `decisive` as soon as one side
    /// is; else an error if one side is (CEL's absorption); else the other value.
    fn decided(&self, nodes: &[Node], decisive: bool) -> Option<bool> {
        let mut error = false;
        for x in nodes {
            match self.truth(x) {
                Some(b) if b == decisive => return Some(decisive),
                None => error = true,
                Some(_) => {}
            }
        }
        (!error).then_some(!decisive)
    }

    /// `None`: an error, absorbed by `&&` / `||` where the other side decides.
    fn truth(&self, n: &Node) -> Option<bool> {
        match n {
            Node::Const(b) => Some(*b),
            Node::Property(p) => match p.get(self.event)? {
                PropValue::Bool(b) => Some(b),
                _ => None,
            },
            Node::And(all) => self.decided(all, false),
            Node::Or(any) => self.decided(any, true),
            Node::Not(x) => self.truth(x).map(|b| !b),
            Node::Same(eq, ab) => Some((self.truth(&ab[0])? == self.truth(&ab[1])?) == *eq),
            Node::Compare(cmp, ab) => Some(Cmp::of(self.num(&ab[0])?.cmp(&self.num(&ab[1])?), *cmp)),
            Node::Text(eq, ab) => Some((self.text(&ab[0])? == self.text(&ab[1])?) == *eq),
        }
    }
}

/// A compiled condition: the fast conjuncts, and the rest as a tree.
#[derive(Debug, Clone, Default)]
pub struct Condition {
    terms: Vec<Term>,
    rest: Option<Node>,
    /// Every aggregate it reads.
    aggregates: Vec<u16>,
    /// Whether it reads the applied event (`event.<property>`).
    reads_event: bool,
}

impl Condition {
    /// Whether the condition holds for these aggregate values and, for
    /// `event.<property>`, the event being applied (`None`: read outside an
    /// event, where such a condition is false). Allocates nothing.
    pub fn holds(&self, values: &impl AggregateValues, event: Option<&Event<'_>>) -> bool {
        self.terms.iter().all(|t| t.holds(values))
            && self.rest.as_ref().is_none_or(|n| Scope { values, event }.truth(n) == Some(true))
    }

    /// The aggregates it reads.
    pub fn aggregates(&self) -> &[u16] {
        &self.aggregates
    }

    pub fn reads_event(&self) -> bool {
        self.reads_event
    }

    /// Whether every part compiled to the fast integer comparisons.
    pub fn is_fast(&self) -> bool {
        self.rest.is_none()
    }
}

pub use cel::compile;

#[cfg(test)]
mod tests;

/// A condition over an event alone, as a feed subscription filters with:
/// `event.<property>` of the events `on` (each must have it); no aggregate.
pub fn compile_over_events(text: &str, schema: &crate::schema::Schema, on: &[u16]) -> Result<Condition, String> {
    let by_name = ahash::AHashMap::new();
    compile(text, &Names { aggregates: &[], by_name: &by_name, schema, on })
}

/// No aggregate: what a condition over an event alone reads.
struct NoAggregates;

impl AggregateValues for NoAggregates {
    fn value(&self, _: u16) -> u64 {
        0
    }
}

impl Condition {
    /// Whether a condition compiled by `compile_over_events` holds for `event`.
    pub fn holds_for_event(&self, event: &Event<'_>) -> bool {
        self.holds(&NoAggregates, Some(event))
    }
}
