//! Event schemas: which events exist, which properties each requires and of
//! what type. Validation turns a JSON event into a borrowed, typed [`Event`]
//! without copying its strings; it is used both at the HTTP edge and again by
//! the shard before applying (entries may come from other producers).

use std::borrow::Cow;
use std::collections::HashMap;

use ahash::AHashMap;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::money::{parse_decimal, Money, MoneyError};

mod event_time;
mod fast;
use event_time::occurred_at_field;
pub use event_time::EventTimeLimits;

/// Properties an event may require besides `user_id`.
pub const MAX_PROPERTIES: usize = 8;
/// The longest accepted `user_id`, in characters (Unicode scalar values, as
/// JSON Schema's `maxLength` counts them).
pub const MAX_USER_ID_CHARS: usize = 256;
/// The longest accepted `event_id`, in characters.
pub const MAX_EVENT_ID_CHARS: usize = 256;

/// Whether `s` has at most `max` characters (counted only past `max` bytes).
pub fn at_most_chars(s: &str, max: usize) -> bool {
    s.len() <= max || s.chars().count() <= max
}

/// The type of a required property, as written in config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PropType {
    /// A non-empty string.
    String,
    /// A finite number >= 0, summed exactly (see [`Money`]).
    Money,
    /// A whole number.
    Integer,
    /// `true` or `false`.
    Bool,
}

/// One event as declared in config: `[events.<name>] properties = { amount = "money" }`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EventDef {
    /// Required properties (besides `user_id`, always required) and their types.
    #[serde(default)]
    pub properties: std::collections::BTreeMap<String, PropType>,
}

impl EventDef {
    /// An event with these required properties.
    pub fn of(properties: impl IntoIterator<Item = (String, PropType)>) -> Self {
        EventDef { properties: properties.into_iter().collect() }
    }
}

/// A typed property value borrowed from the JSON it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PropValue<'a> {
    #[default]
    Absent,
    Str(&'a str),
    Money(Money),
    Integer(i64),
    Bool(bool),
}

/// Which event an input is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A declared event: index into [`Schema::events`].
    Known(u16),
    /// Not declared; accepted only when `ingest.unknown_events = "accept"`.
    Unknown,
}

/// A validated event, borrowing from its JSON.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    pub name: &'a str,
    pub kind: EventKind,
    pub user_id: &'a str,
    /// Optional producer id: a repeated one (for the same user) is applied once.
    pub event_id: Option<&'a str>,
    /// When it happened (`occurred_at`), ms since the epoch; `None`: its arrival.
    pub occurred_at_ms: Option<u64>,
    /// Values of the declared properties, in [`Schema::properties`] order.
    pub values: [PropValue<'a>; MAX_PROPERTIES],
}

/// The reason of an event that is not JSON at all.
pub const MALFORMED_JSON: &str = "malformed_json";

/// Every `ValidationError::reason`, for metrics registered ahead of time.
pub const REASONS: &[&str] = &[
    "not_an_object",
    "missing_name",
    "missing_properties",
    "missing_user_id",
    "bad_user_id",
    "bad_event_id",
    "bad_occurred_at",
    "event_too_old",
    "event_in_future",
    "unknown_event",
    "missing_property",
    "bad_property",
];

/// Whether a bad input is malformed (400) or well-formed but unacceptable (422).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    Malformed,
    Unprocessable,
}

/// Why an event was refused, in words a producer can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValidationError {
    pub kind: Rejection,
    /// A short stable reason code, for metrics and dead letters.
    pub reason: &'static str,
    pub message: String,
}

impl ValidationError {
    fn malformed(reason: &'static str, message: impl Into<String>) -> Self {
        ValidationError { kind: Rejection::Malformed, reason, message: message.into() }
    }
    fn unprocessable(reason: &'static str, message: impl Into<String>) -> Self {
        ValidationError { kind: Rejection::Unprocessable, reason, message: message.into() }
    }
}

/// The compiled event schemas.
#[derive(Debug, Clone)]
pub struct Schema {
    /// Declared event names, indexed by `EventKind::Known`.
    pub events: Vec<Box<str>>,
    /// Per event: its required properties (name, type), at most [`MAX_PROPERTIES`].
    pub properties: Vec<Vec<(Box<str>, PropType)>>,
    by_name: AHashMap<Box<str>, u16>,
    accept_unknown: bool,
}

impl Schema {
    /// Whether undeclared events are accepted (`ingest.unknown_events`).
    pub fn accepts_unknown(&self) -> bool {
        self.accept_unknown
    }

    /// Compiles the `[events]` table. Errors name the event and property.
    pub fn compile(
        defs: &std::collections::BTreeMap<String, EventDef>,
        accept_unknown: bool,
    ) -> Result<Schema, String> {
        let mut schema = Schema {
            events: Vec::with_capacity(defs.len()),
            properties: Vec::with_capacity(defs.len()),
            by_name: AHashMap::with_capacity(defs.len()),
            accept_unknown,
        };
        if defs.len() > usize::from(u16::MAX) {
            return Err("too many events".into());
        }
        for (name, def) in defs {
            if name.is_empty() {
                return Err("events: an event name is empty".into());
            }
            if def.properties.len() > MAX_PROPERTIES {
                return Err(format!("events.{name}: at most {MAX_PROPERTIES} properties besides user_id"));
            }
            if def.properties.contains_key("user_id") {
                return Err(format!(
                    "events.{name}.properties: user_id is always required and is a string; do not declare it"
                ));
            }
            schema.by_name.insert(name.as_str().into(), schema.events.len() as u16);
            schema.events.push(name.as_str().into());
            schema.properties.push(def.properties.iter().map(|(p, t)| (p.as_str().into(), *t)).collect());
        }
        Ok(schema)
    }

    /// The index of a declared event.
    pub fn event_index(&self, name: &str) -> Option<u16> {
        self.by_name.get(name).copied()
    }

    /// The index of a property within an event's declared properties.
    pub fn property_index(&self, event: u16, property: &str) -> Option<(usize, PropType)> {
        self.properties[usize::from(event)]
            .iter()
            .enumerate()
            .find(|(_, (p, _))| &**p == property)
            .map(|(i, (_, t))| (i, *t))
    }

    /// Validates `{"name": ..., "event_properties": {...}, "event_id"?: ...}`.
    /// Validates an event from its bytes: the one entry point, used at the
    /// HTTP edge and by the shard before applying. Most events validate
    /// straight from their text (`validate_fast`); the others are parsed into
    /// `scratch`, which the returned event then borrows from.
    pub fn validate_bytes<'a>(
        &self,
        bytes: &'a [u8],
        scratch: &'a mut Option<Value>,
    ) -> Result<Event<'a>, ValidationError> {
        if let Some(event) = self.validate_fast(bytes) {
            return Ok(event);
        }
        self.validate_full(bytes, scratch)
    }

    /// `validate_bytes` without the fast path: the precise error, or the
    /// same event the fast path would give.
    fn validate_full<'a>(&self, bytes: &'a [u8], scratch: &'a mut Option<Value>) -> Result<Event<'a>, ValidationError> {
        let value = serde_json::from_slice(bytes).map_err(|e| {
            let message = if bytes.iter().all(u8::is_ascii_whitespace) {
                "request body is empty; send a JSON event".to_string()
            } else {
                format!("malformed JSON: {e}")
            };
            ValidationError::malformed(MALFORMED_JSON, message)
        })?;
        // Amounts are read from their text, exactly: a `Value` holds them as `f64`.
        let texts: Option<RawProperties<'_>> = serde_json::from_slice(bytes).ok();
        self.validate_with(scratch.insert(value), texts.as_ref().and_then(|t| t.event_properties.as_ref()))
    }

    /// Validates an event already parsed into a `Value` (see `validate_bytes`);
    /// an amount with more than 15 significant digits is read through `f64`.
    pub fn validate<'a>(&self, value: &'a Value) -> Result<Event<'a>, ValidationError> {
        self.validate_with(value, None)
    }

    /// `validate`, reading amounts from `texts` (each property's JSON text) when given.
    fn validate_with<'a>(
        &self,
        value: &'a Value,
        texts: Option<&HashMap<Cow<'_, str>, &RawValue>>,
    ) -> Result<Event<'a>, ValidationError> {
        let Value::Object(obj) = value else {
            return Err(ValidationError::malformed(
                "not_an_object",
                "an event must be a JSON object with \"name\" and \"event_properties\"",
            ));
        };
        let name = match obj.get("name") {
            Some(Value::String(s)) if !s.is_empty() => s.as_str(),
            Some(Value::String(_)) => {
                return Err(ValidationError::malformed("missing_name", "\"name\" must not be empty"))
            }
            Some(_) => return Err(ValidationError::malformed("missing_name", "\"name\" must be a string")),
            None => return Err(ValidationError::malformed("missing_name", "\"name\" is required")),
        };
        let props = match obj.get("event_properties") {
            Some(Value::Object(p)) => p,
            Some(_) => {
                return Err(ValidationError::malformed("missing_properties", "\"event_properties\" must be an object"))
            }
            None => {
                return Err(ValidationError::malformed(
                    "missing_properties",
                    "\"event_properties\" is required and must contain \"user_id\"",
                ))
            }
        };
        let user_id = validate_user_id(props.get("user_id"))?;
        let event_id = match obj.get("event_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() && at_most_chars(s, MAX_EVENT_ID_CHARS) => Some(s.as_str()),
            Some(_) => {
                return Err(ValidationError::unprocessable(
                    "bad_event_id",
                    format!("\"event_id\" must be a non-empty string of at most {MAX_EVENT_ID_CHARS} characters"),
                ))
            }
        };
        let occurred_at_ms = occurred_at_field(obj.get("occurred_at"))?;
        let mut event = Event {
            name,
            kind: EventKind::Unknown,
            user_id,
            event_id,
            occurred_at_ms,
            values: [PropValue::Absent; MAX_PROPERTIES],
        };
        let Some(index) = self.event_index(name) else {
            if self.accept_unknown {
                return Ok(event);
            }
            return Err(ValidationError::unprocessable(
                "unknown_event",
                format!(
                    "unknown event name {name:?}; known events: {}",
                    self.events.iter().map(|e| &**e).collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        event.kind = EventKind::Known(index);
        for (slot, (prop, ty)) in self.properties[usize::from(index)].iter().enumerate() {
            let Some(raw) = props.get(&**prop) else {
                return Err(ValidationError::unprocessable(
                    "missing_property",
                    format!("event {name:?} requires property {prop:?} ({})", type_name(*ty)),
                ));
            };
            let text = texts.and_then(|t| t.get(&**prop)).map(|t| t.get());
            event.values[slot] = typed(raw, *ty, text).map_err(|why| {
                ValidationError::unprocessable("bad_property", format!("property {prop:?} of event {name:?} {why}"))
            })?;
        }
        Ok(event)
    }
}

fn validate_user_id(value: Option<&Value>) -> Result<&str, ValidationError> {
    let id = match value {
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Number(_)) => {
            return Err(ValidationError::malformed(
                "bad_user_id",
                "\"event_properties.user_id\" must be a string (quote it: \"12345\")",
            ))
        }
        Some(_) => {
            return Err(ValidationError::malformed("bad_user_id", "\"event_properties.user_id\" must be a string"))
        }
        None => return Err(ValidationError::malformed("missing_user_id", "\"event_properties.user_id\" is required")),
    };
    check_user_id(id).map_err(|why| ValidationError::malformed("bad_user_id", why))
}

/// The rules for a user id, shared by events and checks.
pub fn check_user_id(id: &str) -> Result<&str, &'static str> {
    if id.is_empty() {
        Err("user_id must not be empty")
    } else if !at_most_chars(id, MAX_USER_ID_CHARS) {
        Err("user_id must be at most 256 characters")
    } else if id.chars().any(char::is_control) {
        Err("user_id must not contain control characters")
    } else {
        Ok(id)
    }
}

/// The JSON text of each property of an event, for reading amounts exactly.
#[derive(serde::Deserialize)]
struct RawProperties<'a> {
    #[serde(borrow, default)]
    event_properties: Option<HashMap<Cow<'a, str>, &'a RawValue>>,
}

/// A property as its declared type; an amount from its JSON `text` when
/// known (exact), else from the `Value`.
fn typed<'a>(raw: &'a Value, ty: PropType, text: Option<&str>) -> Result<PropValue<'a>, String> {
    match (ty, raw) {
        (PropType::String, Value::String(s)) if !s.is_empty() => Ok(PropValue::Str(s)),
        (PropType::String, Value::String(_)) => Err("must not be empty".into()),
        (PropType::Money, v) => {
            let money = match (v, text) {
                (Value::Number(_), Some(text)) => parse_decimal(text),
                _ => Money::from_json(v),
            };
            money.map(PropValue::Money).map_err(|e| match e {
                MoneyError::NotANumber => "must be a number".to_string(),
                other => other.to_string(),
            })
        }
        (PropType::Integer, Value::Number(n)) => {
            n.as_i64().map(PropValue::Integer).ok_or_else(|| "must be a whole number".into())
        }
        (PropType::Bool, Value::Bool(b)) => Ok(PropValue::Bool(*b)),
        (ty, _) => Err(format!("must be {}", type_name(ty))),
    }
}

fn type_name(ty: PropType) -> &'static str {
    match ty {
        PropType::String => "a non-empty string",
        PropType::Money => "a number >= 0",
        PropType::Integer => "a whole number",
        PropType::Bool => "true or false",
    }
}

#[cfg(test)]
mod tests;
