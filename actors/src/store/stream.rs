//! How a stream entry is written (the field its payload goes under) and
//! the ids Redis returns about streams. `wire` reads entries through these.

use redis::Value;

use crate::domain::EntryId;

/// The field an entry's payload is written under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// A producer's event, as posted (JSON), in a shard stream.
    Event,
    /// An operator's command (JSON, `domain::admin::AdminCommand`), in a shard stream.
    Admin,
    /// A restriction change with the user's whole restricted set (JSON), in a changelog.
    Change,
    /// A switch to a rule-set version (`VersionRecord` as JSON), in a shard stream.
    Rules,
}

impl Field {
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Event => "event",
            Field::Admin => "admin",
            Field::Change => "change",
            Field::Rules => "rules",
        }
    }
}

/// The id of the newest entry in an `XREVRANGE key + - COUNT 1` reply.
pub fn newest_id(reply: &Value) -> Option<EntryId> {
    match reply {
        Value::Array(items) => items.first().and_then(|e| match e {
            Value::Array(parts) => parts.first().and_then(id_of),
            _ => None,
        }),
        _ => None,
    }
}

/// A stream id field of an `XINFO STREAM` reply (RESP2 array or RESP3 map).
pub fn info_id(reply: &Value, field: &str) -> Option<EntryId> {
    let pairs: Vec<(&Value, &Value)> = match reply {
        Value::Array(items) => items.chunks(2).filter_map(|kv| Some((kv.first()?, kv.get(1)?))).collect(),
        Value::Map(m) => m.iter().map(|(k, v)| (k, v)).collect(),
        _ => return None,
    };
    pairs.into_iter().find_map(|(k, v)| {
        let key: &[u8] = match k {
            Value::BulkString(b) => b,
            Value::SimpleString(s) => s.as_bytes(),
            _ => return None,
        };
        (key == field.as_bytes()).then(|| id_of(v)).flatten()
    })
}

pub fn id_of(v: &Value) -> Option<EntryId> {
    match v {
        Value::BulkString(b) => EntryId::parse_bytes(b),
        Value::SimpleString(s) => EntryId::parse(s),
        _ => None,
    }
}
