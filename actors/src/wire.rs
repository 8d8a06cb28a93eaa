//! The stream wire: what an entry of a Redis stream carries, how it is
//! written (field names) and read back (XREAD replies into typed entries).
//!
//! Shard streams (`<prefix>:{S}:events`) carry events (field `event`) and
//! operators' commands (field `admin`); changelogs (`<prefix>:{S}:changes`)
//! carry restriction changes (field `change`). The stream reader and the
//! changelog follower both read through here; each gets the entry type of
//! its own stream and never sees the other's.

use std::time::Duration;

use futures_util::future::join_all;
use redis::Value;

use crate::domain::EntryId;
use crate::link::{Conn, Target};
use crate::store::stream::id_of;
pub use crate::store::stream::{info_id, newest_id, Field};

/// One entry of a stream, with its payload decoded as `P`.
#[derive(Debug, Clone)]
pub struct Entry<P> {
    pub id: EntryId,
    pub payload: P,
}

/// What an entry of a shard stream carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Event(Vec<u8>),
    Admin(Vec<u8>),
    Rules(Vec<u8>),
    /// None of these fields: written by someone else (dead-lettered by the shard).
    Missing,
}

impl Payload {
    /// The raw bytes, for a dead letter.
    pub fn into_bytes(self) -> Option<Vec<u8>> {
        match self {
            Payload::Event(b) | Payload::Admin(b) | Payload::Rules(b) => Some(b),
            Payload::Missing => None,
        }
    }
}

/// What an entry of a changelog carries: the change's JSON, if the entry has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangePayload(pub Option<Vec<u8>>);

/// Decoding an entry's field list (RESP2 array or RESP3 map of name, value).
pub trait FromFields: Sized {
    fn from_fields(fields: Value) -> Self;
}

impl FromFields for Payload {
    fn from_fields(fields: Value) -> Self {
        for (name, value) in field_pairs(fields) {
            match name.as_slice() {
                b"event" => return Payload::Event(value),
                b"admin" => return Payload::Admin(value),
                b"rules" => return Payload::Rules(value),
                _ => {}
            }
        }
        Payload::Missing
    }
}

impl FromFields for ChangePayload {
    fn from_fields(fields: Value) -> Self {
        ChangePayload(field_pairs(fields).find(|(name, _)| name == b"change").map(|(_, v)| v))
    }
}

/// The (name, value) pairs of an entry whose name and value are strings.
fn field_pairs(fields: Value) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> {
    let items: Vec<Value> = match fields {
        Value::Array(items) => items,
        Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => Vec::new(),
    };
    let mut items = items.into_iter();
    std::iter::from_fn(move || loop {
        match (items.next()?, items.next()?) {
            (Value::BulkString(k), Value::BulkString(v)) => return Some((k, v)),
            _ => continue,
        }
    })
}

/// Why reading a stream (and recovering what it applies to) stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("unexpected XREAD reply: {0}")]
    Reply(&'static str),
    #[error("{0}")]
    Load(#[from] crate::store::LoadError),
    #[error("shard actor stopped")]
    Stopped,
}

/// Entries of one stream: (stream key, entries).
pub type StreamEntries<P> = (Vec<u8>, Vec<Entry<P>>);

/// The next entries (at most `batch` each) of `keys` after `cursors`. On a
/// single Redis: one `XREAD BLOCK` over all of them. On a cluster a command
/// cannot name keys of several slots, and blocking reads would queue behind
/// each other on a node's connection, so each stream is read without blocking
/// (the reads run concurrently) and an idle reader backs off from 1 to 25 ms.
pub async fn read_streams<'k, P: FromFields>(
    conn: &mut Conn,
    target: &Target,
    keys: impl Iterator<Item = &'k str>,
    cursors: &[EntryId],
    batch: usize,
    block: Duration,
    idle: &mut IdleBackoff,
) -> Result<Vec<StreamEntries<P>>, ReadError> {
    // Sized for every key and cursor (streams are named `<prefix>:{S}:events`).
    let xread = |block: Option<u64>| {
        let mut cmd = redis::Cmd::with_capacity(6 + 2 * cursors.len(), 16 + 72 * cursors.len());
        cmd.arg("XREAD");
        cmd.arg("COUNT").arg(batch);
        if let Some(ms) = block {
            cmd.arg("BLOCK").arg(ms);
        }
        cmd.arg("STREAMS");
        cmd
    };
    let mut id = [0; EntryId::MAX_LEN];
    if !target.is_cluster() {
        let mut cmd = xread(Some(block.as_millis() as u64));
        for key in keys {
            cmd.arg(key);
        }
        for c in cursors {
            cmd.arg(c.encode_bytes(&mut id));
        }
        return streams(xread_reply(conn, &cmd).await?);
    }
    let reads = keys.zip(cursors).map(|(key, c)| {
        let mut cmd = xread(None);
        cmd.arg(key).arg(c.encode_bytes(&mut id));
        let mut conn = conn.clone();
        async move { xread_reply(&mut conn, &cmd).await }
    });
    let mut out = Vec::new();
    for reply in join_all(reads).await {
        out.extend(streams(reply?)?);
    }
    if out.is_empty() {
        idle.wait().await;
    }
    Ok(out)
}

/// Sends an XREAD and returns its reply as is. `query_async` would first walk
/// the whole reply looking for nested errors, rebuilding every array (a few
/// percent of the service's CPU under load); an XREAD reply is either an
/// error or data, and `streams` rejects any shape it does not expect.
async fn xread_reply(conn: &mut Conn, cmd: &redis::Cmd) -> redis::RedisResult<Value> {
    use redis::aio::ConnectionLike;
    match conn.req_packed_command(cmd).await? {
        Value::ServerError(e) => Err(e.into()),
        reply => Ok(reply),
    }
}

/// How long a polling reader (on a cluster) waits when it found nothing.
#[derive(Debug, Default)]
pub struct IdleBackoff {
    rounds: u32,
}

impl IdleBackoff {
    const MAX: Duration = Duration::from_millis(25);

    pub fn reset(&mut self) {
        self.rounds = 0;
    }

    async fn wait(&mut self) {
        let wait = Duration::from_millis(1 << self.rounds.min(5)).min(Self::MAX);
        self.rounds = self.rounds.saturating_add(1);
        tokio::time::sleep(wait).await;
    }
}

/// Splits an XREAD reply into (stream key, entries). Handles RESP2 arrays and RESP3 maps.
fn streams<P: FromFields>(reply: Value) -> Result<Vec<StreamEntries<P>>, ReadError> {
    let pairs: Vec<(Value, Value)> = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Map(m) => m,
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Array(mut kv) if kv.len() == 2 => {
                    let v = kv.pop().unwrap_or(Value::Nil);
                    let k = kv.pop().unwrap_or(Value::Nil);
                    Ok((k, v))
                }
                _ => Err(ReadError::Reply("stream item is not [key, entries]")),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(ReadError::Reply("not an array or map")),
    };
    let mut out = Vec::with_capacity(pairs.len());
    for (key, entries) in pairs {
        let Value::BulkString(key) = key else {
            return Err(ReadError::Reply("stream key is not a string"));
        };
        let Value::Array(entries) = entries else {
            return Err(ReadError::Reply("entries are not an array"));
        };
        let mut parsed = Vec::with_capacity(entries.len());
        for e in entries {
            let Value::Array(mut parts) = e else {
                return Err(ReadError::Reply("entry is not [id, fields]"));
            };
            if parts.len() != 2 {
                return Err(ReadError::Reply("entry is not [id, fields]"));
            }
            let fields = parts.pop().unwrap_or(Value::Nil);
            let id = id_of(&parts[0]).ok_or(ReadError::Reply("entry id"))?;
            parsed.push(Entry { id, payload: P::from_fields(fields) });
        }
        out.push((key, parsed));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn reply(fields: Vec<Value>) -> Value {
        let entry = Value::Array(vec![bulk("5-1"), Value::Array(fields)]);
        Value::Array(vec![Value::Array(vec![bulk("rd:{0}:events"), Value::Array(vec![entry])])])
    }

    #[test]
    fn a_shard_stream_entry_decodes_its_event_or_command() {
        let read: Vec<StreamEntries<Payload>> = streams(reply(vec![bulk("event"), bulk("{}")])).unwrap();
        assert_eq!(read[0].0, b"rd:{0}:events");
        assert_eq!(read[0].1[0].id, EntryId::new(5, 1));
        assert_eq!(read[0].1[0].payload, Payload::Event(b"{}".to_vec()));
        let read: Vec<StreamEntries<Payload>> = streams(reply(vec![bulk("admin"), bulk("{}")])).unwrap();
        assert_eq!(read[0].1[0].payload, Payload::Admin(b"{}".to_vec()));
    }

    #[test]
    fn a_change_in_a_shard_stream_is_missing_its_field_and_an_event_in_a_changelog_has_no_change() {
        let read: Vec<StreamEntries<Payload>> = streams(reply(vec![bulk("change"), bulk("{}")])).unwrap();
        assert_eq!(read[0].1[0].payload, Payload::Missing);
        let read: Vec<StreamEntries<ChangePayload>> = streams(reply(vec![bulk("event"), bulk("{}")])).unwrap();
        assert_eq!(read[0].1[0].payload, ChangePayload(None));
        let read: Vec<StreamEntries<ChangePayload>> =
            streams(reply(vec![bulk("x"), bulk("y"), bulk("change"), bulk("{}")])).unwrap();
        assert_eq!(read[0].1[0].payload, ChangePayload(Some(b"{}".to_vec())));
    }

    #[test]
    fn replies_of_an_unexpected_shape_are_errors() {
        assert!(streams::<Payload>(Value::Int(3)).is_err());
        assert!(streams::<Payload>(Value::Array(vec![Value::Int(3)])).is_err());
        assert!(streams::<Payload>(Value::Nil).unwrap().is_empty());
    }
}
