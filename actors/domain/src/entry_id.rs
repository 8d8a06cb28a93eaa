//! Redis stream entry ids (`<ms>-<seq>`) as ordered values.
//!
//! The engine's clock is the millisecond part of the id of the entry it applies,
//! so a replay after a crash sees the same times as the first pass.

use std::fmt;

/// The id Redis gave a stream entry. Ordered as Redis orders them.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, bincode::Encode, bincode::Decode)]
pub struct EntryId {
    /// Milliseconds since the Unix epoch at which Redis appended the entry.
    pub ms: u64,
    /// Sequence number within that millisecond.
    pub seq: u64,
}

impl EntryId {
    /// Before every entry: a reader starting here reads the whole stream.
    pub const ZERO: EntryId = EntryId { ms: 0, seq: 0 };

    pub fn new(ms: u64, seq: u64) -> Self {
        EntryId { ms, seq }
    }

    /// Parses `<ms>-<seq>` (or a bare `<ms>`, which Redis reads as `<ms>-0`).
    pub fn parse(text: &str) -> Option<Self> {
        let (ms, seq) = match text.split_once('-') {
            Some((ms, seq)) => (ms, seq),
            None => (text, "0"),
        };
        Some(EntryId { ms: ms.parse().ok()?, seq: seq.parse().ok()? })
    }

    /// The longest text of an id: two `u64`s and a dash.
    pub const MAX_LEN: usize = 41;

    /// Writes `<ms>-<seq>` at the end of `buf` and returns it, without the
    /// formatting machinery or an allocation.
    pub fn encode<'b>(&self, buf: &'b mut [u8; Self::MAX_LEN]) -> &'b str {
        std::str::from_utf8(self.encode_bytes(buf)).expect("ASCII digits and a dash")
    }

    /// `encode` as bytes, for a Redis command: no UTF-8 check (a reader names
    /// every cursor of its shards in each XREAD; the check was half the cost).
    pub fn encode_bytes<'b>(&self, buf: &'b mut [u8; Self::MAX_LEN]) -> &'b [u8] {
        fn digits(buf: &mut [u8], mut end: usize, mut n: u64) -> usize {
            loop {
                end -= 1;
                buf[end] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    return end;
                }
            }
        }
        let mut start = digits(buf, Self::MAX_LEN, self.seq) - 1;
        buf[start] = b'-';
        start = digits(buf, start, self.ms);
        &buf[start..]
    }

    pub fn parse_bytes(bytes: &[u8]) -> Option<Self> {
        std::str::from_utf8(bytes).ok().and_then(Self::parse)
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// An event's id as clients see it: unique in the deployment, where a stream
/// entry id is unique only in its shard's stream. Written `<shard>-<ms>-<seq>`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct EventRef {
    pub shard: u32,
    pub entry: EntryId,
}

impl EventRef {
    pub fn new(shard: u32, entry: EntryId) -> Self {
        EventRef { shard, entry }
    }

    /// The longest text: a `u32`, a dash and an entry id.
    pub const MAX_LEN: usize = 10 + 1 + EntryId::MAX_LEN;

    /// Parses `<shard>-<ms>-<seq>`.
    pub fn parse(text: &str) -> Option<Self> {
        let (shard, entry) = text.split_once('-')?;
        let entry = entry.split_once('-').and_then(|(ms, seq)| Some(EntryId::new(ms.parse().ok()?, seq.parse().ok()?)));
        Some(EventRef { shard: shard.parse().ok()?, entry: entry? })
    }

    /// Writes `<shard>-<ms>-<seq>` into `buf` and returns it, without an allocation.
    pub fn encode<'b>(&self, buf: &'b mut [u8; Self::MAX_LEN]) -> &'b str {
        let mut entry = [0; EntryId::MAX_LEN];
        let entry = self.entry.encode_bytes(&mut entry);
        let mut shard = self.shard;
        let mut digits = [0u8; 10];
        let mut n = 0;
        loop {
            digits[n] = b'0' + (shard % 10) as u8;
            n += 1;
            shard /= 10;
            if shard == 0 {
                break;
            }
        }
        for (i, d) in digits[..n].iter().rev().enumerate() {
            buf[i] = *d;
        }
        buf[n] = b'-';
        buf[n + 1..n + 1 + entry.len()].copy_from_slice(entry);
        std::str::from_utf8(&buf[..n + 1 + entry.len()]).expect("ASCII digits and dashes")
    }
}

impl fmt::Display for EventRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.shard, self.entry)
    }
}

impl serde::Serialize for EventRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0; Self::MAX_LEN];
        s.serialize_str(self.encode(&mut buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_refs_are_shard_and_entry_and_read_back() {
        let mut buf = [0; EventRef::MAX_LEN];
        for (shard, ms, seq) in [(0, 0, 0), (7, 1_700_000_000_000, 11), (u32::MAX, u64::MAX, u64::MAX), (63, 5, 0)] {
            let r = EventRef::new(shard, EntryId::new(ms, seq));
            assert_eq!(r.encode(&mut buf), r.to_string());
            assert_eq!(EventRef::parse(&r.to_string()), Some(r));
        }
        assert_eq!(EventRef::new(3, EntryId::new(17, 2)).to_string(), "3-17-2");
        for bad in ["17-2", "x-1-2", "1-2-", "1--2", ""] {
            assert_eq!(EventRef::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn parses_and_orders_like_redis() {
        let a = EntryId::parse("1700000000000-0").unwrap();
        let b = EntryId::parse("1700000000000-11").unwrap();
        let c = EntryId::parse("1700000000001").unwrap();
        assert!(a < b && b < c);
        assert_eq!(b.to_string(), "1700000000000-11");
        assert_eq!(EntryId::parse("x-1"), None);
        assert_eq!(EntryId::parse("1-"), None);
    }

    #[test]
    fn encodes_as_it_displays() {
        let mut buf = [0; EntryId::MAX_LEN];
        for (ms, seq) in [(0, 0), (1, 0), (9, 10), (1_700_000_000_000, 11), (u64::MAX, u64::MAX), (10, 99_999)] {
            let id = EntryId::new(ms, seq);
            assert_eq!(id.encode(&mut buf), id.to_string());
            assert_eq!(id.encode_bytes(&mut buf), id.to_string().as_bytes());
            assert_eq!(EntryId::parse(id.encode(&mut buf)), Some(id));
        }
    }
}
