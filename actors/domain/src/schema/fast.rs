//! The fast path of event validation: a valid event read straight from its
//! bytes, without building a `serde_json::Value`.

use serde::Deserialize;

use super::{
    at_most_chars, check_user_id, Event, EventKind, PropType, PropValue, Schema, MAX_EVENT_ID_CHARS, MAX_PROPERTIES,
};

/// The top level of an event, borrowed from its text (no string escapes).
#[derive(Deserialize)]
struct FastEvent<'a> {
    #[serde(borrow)]
    name: &'a str,
    #[serde(borrow)]
    event_properties: FastProps<'a>,
    #[serde(borrow, default)]
    event_id: Option<&'a str>,
    #[serde(borrow, default)]
    occurred_at: Option<&'a serde_json::value::RawValue>,
}

/// `event_properties` as (key, raw JSON text) pairs, in order; at most
/// `FAST_PROPS` of them (no allocation per event): an event with more takes
/// the `Value` path.
struct FastProps<'a> {
    len: usize,
    props: [(&'a str, &'a str); FAST_PROPS],
}

const FAST_PROPS: usize = 8;

impl<'de: 'a, 'a> Deserialize<'de> for FastProps<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = FastProps<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<FastProps<'a>, M::Error> {
                use serde::de::Error as _;
                let mut out = FastProps { len: 0, props: [("", ""); FAST_PROPS] };
                while let Some((key, value)) = map.next_entry::<&'de str, &'de serde_json::value::RawValue>()? {
                    let slot = out.props.get_mut(out.len).ok_or_else(|| M::Error::custom("too many properties"))?;
                    *slot = (key, value.get());
                    out.len += 1;
                }
                Ok(out)
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

impl<'a> FastProps<'a> {
    /// The last value of `key` (as a JSON object with repeated keys is read).
    fn get(&self, key: &str) -> Option<&'a str> {
        self.props[..self.len].iter().rev().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

/// The contents of a JSON string literal without escapes, borrowed.
fn plain_string(raw: &str) -> Option<&str> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains('\\')).then_some(inner)
}

impl Schema {
    /// The common case of [`Schema::validate`] straight from the event's bytes,
    /// without building a `serde_json::Value`: a valid event whose strings
    /// have no escapes.
    /// `None` for anything else; the caller then parses the event into a
    /// `Value` and calls `validate`, which gives the same result for what this
    /// accepts and the precise error for what it does not.
    pub fn validate_fast<'a>(&self, bytes: &'a [u8]) -> Option<Event<'a>> {
        let raw: FastEvent<'a> = serde_json::from_slice(bytes).ok()?;
        if raw.name.is_empty() || raw.name.contains('\\') {
            return None;
        }
        let user_id = check_user_id(plain_string(raw.event_properties.get("user_id")?)?).ok()?;
        if let Some(id) = raw.event_id {
            if id.is_empty() || !at_most_chars(id, MAX_EVENT_ID_CHARS) || id.contains('\\') {
                return None;
            }
        }
        let occurred_at_ms = match raw.occurred_at.map(|r| r.get()) {
            None | Some("null") => None,
            Some(text) => Some(match plain_string(text) {
                Some(s) => super::event_time::rfc3339_ms(s)?,
                None => text.parse::<u64>().ok()?,
            }),
        };
        let mut event = Event {
            name: raw.name,
            kind: EventKind::Unknown,
            user_id,
            event_id: raw.event_id,
            occurred_at_ms,
            values: [PropValue::Absent; MAX_PROPERTIES],
        };
        let Some(index) = self.event_index(raw.name) else {
            return self.accept_unknown.then_some(event);
        };
        event.kind = EventKind::Known(index);
        for (slot, (prop, ty)) in self.properties[usize::from(index)].iter().enumerate() {
            let text = raw.event_properties.get(prop)?;
            event.values[slot] = match ty {
                PropType::String => PropValue::Str(plain_string(text).filter(|s| !s.is_empty())?),
                PropType::Bool => PropValue::Bool(match text {
                    "true" => true,
                    "false" => false,
                    _ => return None,
                }),
                PropType::Integer => PropValue::Integer(text.parse::<i64>().ok()?),
                // Exact from the text, as `validate_bytes` reads it too.
                PropType::Money => PropValue::Money(crate::money::parse_decimal(text).ok()?),
            };
        }
        Some(event)
    }
}
