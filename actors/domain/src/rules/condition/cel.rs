//! Compiling a condition written in CEL (parsed by the `cel` crate) into a
//! [`Condition`]: names resolved to aggregates and event properties, types
//! checked, constants made exact. Every error says where in the condition.

use ahash::AHashMap;
use cel::common::ast::{CallExpr, Expr, LiteralValue, SourceInfo};
use cel::IdedExpr;

use super::{Cmp, Condition, Node, Num, PropRef, Ratio, Term, Text};
use crate::rules::Aggregate;
use crate::schema::{PropType, Schema};

/// The names a condition may use.
pub struct Names<'a> {
    pub aggregates: &'a [Aggregate],
    pub by_name: &'a AHashMap<&'a str, u16>,
    pub schema: &'a Schema,
    /// The events the rule listens to (`event.<property>` must be in each).
    pub on: &'a [u16],
}

enum Typed {
    Bool(Node),
    Num(Num),
    Text(Text),
}

impl Typed {
    fn kind(&self) -> &'static str {
        match self {
            Typed::Bool(_) => "a boolean",
            Typed::Num(_) => "a number",
            Typed::Text(_) => "a string",
        }
    }
}

/// Compiles `text`. Conditions written before CEL, joined by `and`, read the same.
pub fn compile(text: &str, names: &Names<'_>) -> Result<Condition, String> {
    let text = legacy_and(text);
    if text.trim().is_empty() {
        return Err("empty condition".into());
    }
    check_size(&text)?;
    let (expr, info) = cel::parser::Parser::new().max_recursion_depth(64).parse_with_source_info(&text).map_err(
        |errors| match errors.errors.first() {
            // The parser's recursion limit surfaces as an opaque error.
            Some(e) if e.msg.contains("OtherError") => "the condition nests deeper than 64 levels".into(),
            Some(e) => format!("{}: {}", position(e.pos.0.max(1) as usize, e.pos.1.max(0) as usize + 1), e.msg),
            None => errors.to_string(),
        },
    )?;
    let c = Compiler { names, info: &info };
    let mut conjuncts = Vec::new();
    flatten("_&&_", &expr, &mut conjuncts);
    let mut condition = Condition::default();
    let mut rest = Vec::new();
    for conjunct in conjuncts {
        match c.typed(conjunct)? {
            Typed::Bool(Node::Compare(cmp, sides)) => {
                for side in sides.iter() {
                    collect(side, &mut condition);
                }
                match fast_term(cmp, &sides) {
                    Some(term) => condition.terms.push(term),
                    None => rest.push(Node::Compare(cmp, sides)),
                }
            }
            Typed::Bool(node) => {
                collect_node(&node, &mut condition);
                rest.push(node);
            }
            other => return Err(format!("{}: a condition is true or false, not {}", c.at(conjunct), other.kind())),
        }
    }
    condition.rest = match rest.len() {
        0 => None,
        1 => rest.pop(),
        _ => Some(Node::And(rest.into_boxed_slice())),
    };
    condition.aggregates.sort_unstable();
    condition.aggregates.dedup();
    Ok(condition)
}

/// The longest condition, in bytes.
const MAX_CONDITION_BYTES: usize = 4096;
/// The most operator and parenthesis characters in a condition: they bound
/// how deep its expression nests, and so the recursion of the parser, the
/// compiler and the evaluation.
const MAX_OPERATORS: usize = 256;

fn check_size(text: &str) -> Result<(), String> {
    if text.len() > MAX_CONDITION_BYTES {
        return Err(format!("a condition is at most {MAX_CONDITION_BYTES} bytes; this one is {}", text.len()));
    }
    let operators = text.chars().filter(|c| "&|!+-*/%(<>=?:[{".contains(*c)).count();
    if operators > MAX_OPERATORS {
        return Err(format!(
            "a condition holds at most {MAX_OPERATORS} operator and parenthesis characters; this one has {operators} \
             (split it into aggregates or rules)"
        ));
    }
    Ok(())
}

/// `a >= 2 and b > 1` (the syntax before CEL, words separated by any
/// whitespace) as `a >= 2 && b > 1`, keeping lines and columns; left alone
/// when the text has string literals.
fn legacy_and(text: &str) -> String {
    if text.contains(['"', '\'']) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let word_len = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (word, after) = rest.split_at(word_len);
        out.push_str(if word.eq_ignore_ascii_case("and") { "&& " } else { word });
        let space_len = after.find(|c: char| !c.is_whitespace()).unwrap_or(after.len());
        out.push_str(&after[..space_len]);
        rest = &after[space_len..];
    }
    out
}

/// Where in the condition: "at column C of the condition", with the line
/// when the condition spans lines.
fn position(line: usize, column: usize) -> String {
    if line == 1 {
        format!("at column {column} of the condition")
    } else {
        format!("at line {line}, column {column} of the condition")
    }
}

fn flatten<'e>(op: &str, e: &'e IdedExpr, out: &mut Vec<&'e IdedExpr>) {
    match &e.expr {
        Expr::Call(CallExpr { func_name, target: None, args }) if func_name == op && args.len() == 2 => {
            flatten(op, &args[0], out);
            flatten(op, &args[1], out);
        }
        _ => out.push(e),
    }
}

struct Compiler<'a> {
    names: &'a Names<'a>,
    info: &'a SourceInfo,
}

impl Compiler<'_> {
    /// "line L, column C" of an expression in the condition.
    fn at(&self, e: &IdedExpr) -> String {
        let Some((start, _)) = self.info.offset_for(e.id) else { return "in the condition".into() };
        let before: String = self.info.source.chars().take(start as usize).collect();
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        position(line, column)
    }

    fn typed(&self, e: &IdedExpr) -> Result<Typed, String> {
        match &e.expr {
            Expr::Literal(l) => self.literal(e, l),
            Expr::Ident(name) => self.aggregate(e, name),
            Expr::Select(s) if !s.test && matches!(&s.operand.expr, Expr::Ident(root) if root == "event") => {
                self.property(e, &s.field)
            }
            Expr::Call(call) if call.target.is_none() => self.call(e, call),
            _ => Err(format!(
                "{}: not supported in a condition (use aggregates, event.<property>, constants, \
                 && || ! ( ), + - * / and comparisons)",
                self.at(e)
            )),
        }
    }

    fn literal(&self, e: &IdedExpr, l: &LiteralValue) -> Result<Typed, String> {
        let number = |r: Option<Ratio>| {
            r.map(|r| Typed::Num(Num::Const(r))).ok_or_else(|| format!("{}: constant out of range", self.at(e)))
        };
        match l {
            LiteralValue::Boolean(b) => Ok(Typed::Bool(Node::Const(*b.inner()))),
            LiteralValue::Int(i) => number(Some(Ratio::int(i128::from(*i.inner())))),
            LiteralValue::UInt(u) => number(Some(Ratio::int(i128::from(*u.inner())))),
            // The shortest decimal that reads back as the same double: the
            // literal as written, for up to 15 significant digits.
            LiteralValue::Double(d) => number(Ratio::parse_decimal(&format!("{}", d.inner()))),
            LiteralValue::String(s) => Ok(Typed::Text(Text::Const(s.inner().into()))),
            _ => Err(format!("{}: null and bytes are not supported in a condition", self.at(e))),
        }
    }

    fn aggregate(&self, e: &IdedExpr, name: &str) -> Result<Typed, String> {
        if name == "event" {
            return Err(format!("{}: `event` is the applied event; read a property: event.amount", self.at(e)));
        }
        let index = *self.names.by_name.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.names.aggregates.iter().map(|a| &*a.name).collect();
            format!("{}: {name:?} is not a declared aggregate (known: {})", self.at(e), known.join(", "))
        })?;
        let unit = self.names.aggregates[usize::from(index)].unit;
        Ok(Typed::Num(Num::Aggregate { index, unit }))
    }

    fn property(&self, e: &IdedExpr, field: &str) -> Result<Typed, String> {
        let schema = self.names.schema;
        let mut slots = Vec::new();
        let mut ty = None;
        for &event in self.names.on {
            let name = &schema.events[usize::from(event)];
            let (slot, t) = schema.property_index(event, field).ok_or_else(|| {
                format!("{}: event.{field}: event {name:?} (in `on`) declares no property {field:?}", self.at(e))
            })?;
            if ty.is_some_and(|ty| ty != t) {
                return Err(format!("{}: event.{field} has different types in the rule's events", self.at(e)));
            }
            ty = Some(t);
            slots.push((event, slot as u8));
        }
        let p = PropRef { slots: slots.into_boxed_slice() };
        Ok(match ty {
            Some(PropType::Money | PropType::Integer) => Typed::Num(Num::Property(p)),
            Some(PropType::String) => Typed::Text(Text::Property(p)),
            Some(PropType::Bool) => Typed::Bool(Node::Property(p)),
            None => return Err(format!("{}: event.{field}: the rule listens to no event", self.at(e))),
        })
    }

    fn call(&self, e: &IdedExpr, call: &CallExpr) -> Result<Typed, String> {
        let f = call.func_name.as_str();
        let args: Vec<Typed> = call.args.iter().map(|a| self.typed(a)).collect::<Result<_, _>>()?;
        let mismatch =
            |what: &str, a: &Typed| format!("{}: {what} takes numbers; this side is {}", self.at(e), a.kind());
        let cmp = match f {
            "_==_" => Some(Cmp::Eq),
            "_!=_" => Some(Cmp::Ne),
            "_<_" => Some(Cmp::Lt),
            "_<=_" => Some(Cmp::Le),
            "_>_" => Some(Cmp::Gt),
            "_>=_" => Some(Cmp::Ge),
            _ => None,
        };
        let mut args = args.into_iter();
        let (a, b) = (args.next(), args.next());
        Ok(match (f, a, b) {
            ("!_", Some(Typed::Bool(x)), None) => Typed::Bool(Node::Not(Box::new(x))),
            ("-_", Some(Typed::Num(x)), None) => Typed::Num(Num::Neg(Box::new(x))),
            ("_&&_" | "_||_", Some(Typed::Bool(x)), Some(Typed::Bool(y))) => {
                let both = vec![x, y].into_boxed_slice();
                Typed::Bool(if f == "_&&_" { Node::And(both) } else { Node::Or(both) })
            }
            ("_+_" | "_-_" | "_*_" | "_/_", Some(Typed::Num(x)), Some(Typed::Num(y))) => {
                let both = Box::new([x, y]);
                Typed::Num(match f {
                    "_+_" => Num::Add(both),
                    "_-_" => Num::Sub(both),
                    "_*_" => Num::Mul(both),
                    _ => Num::Div(both),
                })
            }
            (_, Some(Typed::Num(x)), Some(Typed::Num(y))) if cmp.is_some() => {
                Typed::Bool(Node::Compare(cmp.unwrap_or(Cmp::Eq), Box::new([x, y])))
            }
            ("_==_" | "_!=_", Some(Typed::Text(x)), Some(Typed::Text(y))) => {
                Typed::Bool(Node::Text(f == "_==_", Box::new([x, y])))
            }
            ("_==_" | "_!=_", Some(Typed::Bool(x)), Some(Typed::Bool(y))) => {
                Typed::Bool(Node::Same(f == "_==_", Box::new([x, y])))
            }
            ("_==_" | "_!=_", Some(a), Some(b)) => {
                return Err(format!("{}: cannot compare {} with {}", self.at(e), a.kind(), b.kind()))
            }
            (_, Some(a), Some(b)) if cmp.is_some() => {
                let odd = if matches!(a, Typed::Num(_)) { b } else { a };
                return Err(mismatch("an ordering comparison", &odd));
            }
            ("_+_" | "_-_" | "_*_" | "_/_", Some(a), Some(b)) => {
                let odd = if matches!(a, Typed::Num(_)) { b } else { a };
                return Err(mismatch("arithmetic", &odd));
            }
            ("!_" | "_&&_" | "_||_", ..) => {
                return Err(format!("{}: ! && || take true or false (comparisons)", self.at(e)))
            }
            ("-_", ..) => return Err(mismatch("`-`", &Typed::Bool(Node::Const(true)))),
            _ => {
                return Err(format!(
                    "{}: {f:?} is not supported in a condition (use && || ! ( ), + - * / and comparisons)",
                    self.at(e)
                ))
            }
        })
    }
}

/// A comparison of the shapes today's engine evaluates fastest: an
/// aggregate, or a ratio of two, against a constant >= 0.
fn fast_term(cmp: Cmp, sides: &[Num; 2]) -> Option<Term> {
    let (cmp, lhs, c) = match sides {
        [lhs, Num::Const(c)] => (cmp, lhs, c),
        [Num::Const(c), rhs] => (cmp.flipped(), rhs, c),
        _ => return None,
    };
    if cmp == Cmp::Ne || c.is_negative() {
        return None;
    }
    let (n, d) = c.parts();
    let (n, d) = (u128::try_from(n).ok()?, u128::try_from(d).ok()?);
    let (num, unit_num, den) = match lhs {
        Num::Aggregate { index, unit } => (*index, *unit, None),
        Num::Div(ab) => match &**ab {
            [Num::Aggregate { index, unit }, Num::Aggregate { index: b, unit: unit_b }] => {
                (*index, *unit, Some((*b, *unit_b)))
            }
            _ => return None,
        },
        _ => return None,
    };
    let rhs_factor = n.checked_mul(u128::from(unit_num))?;
    // (num/unit_num) cmp n/d  <=>  num*d cmp n*unit_num; a ratio multiplies
    // the left by the denominator's unit and the right by its value.
    let lhs_factor = match den {
        None => d,
        Some((_, unit_den)) => d.checked_mul(u128::from(unit_den))?,
    };
    Some(Term { num, den: den.map(|(b, _)| b), cmp, lhs_factor, rhs_factor })
}

fn collect(n: &Num, into: &mut Condition) {
    match n {
        Num::Aggregate { index, .. } => into.aggregates.push(*index),
        Num::Property(_) => into.reads_event = true,
        Num::Const(_) => {}
        Num::Neg(x) => collect(x, into),
        Num::Add(ab) | Num::Sub(ab) | Num::Mul(ab) | Num::Div(ab) => ab.iter().for_each(|x| collect(x, into)),
    }
}

fn collect_node(n: &Node, into: &mut Condition) {
    match n {
        Node::Const(_) => {}
        Node::Property(_) => into.reads_event = true,
        Node::And(all) | Node::Or(all) => all.iter().for_each(|x| collect_node(x, into)),
        Node::Not(x) => collect_node(x, into),
        Node::Same(_, ab) => ab.iter().for_each(|x| collect_node(x, into)),
        Node::Compare(_, ab) => ab.iter().for_each(|x| collect(x, into)),
        Node::Text(_, ab) => {
            if ab.iter().any(|t| matches!(t, Text::Property(_))) {
                into.reads_event = true;
            }
        }
    }
}
