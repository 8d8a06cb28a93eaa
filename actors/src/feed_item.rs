//! What the feed carries to this instance's subscribers: a change, a
//! tripwire change, a rule-set version, an event; rendered once for all.

use std::sync::Arc;

use crate::domain::EntryId;

/// What the live feed carries: a change, a tripwire change, or an event.
#[derive(Debug, Clone)]
pub struct FeedItem {
    /// Its id in the deployment's feed (`store::feed`); events have none
    /// (they are live only, from the shards this instance owns).
    pub id: Option<EntryId>,
    pub kind: FeedKind,
    pub user_id: Option<Box<str>>,
    pub rule: Option<u16>,
    /// Features concerned (bit mask).
    pub features: u64,
    /// The event's index in the schema (events only; `None` for undeclared).
    pub event: Option<u16>,
    /// The item as JSON, rendered once for every subscriber (for a change, the
    /// same allocation as its changelog and audit entries).
    pub json: Arc<str>,
    /// A change's kind (`rule_fired`, `cleared`, ...), for filters.
    pub change: Option<Box<str>>,
    /// The item as a Server-Sent Event (`id:`, `event:`, `data:`), rendered
    /// once for every subscriber.
    pub frame: Arc<str>,
}

impl FeedItem {
    /// The Server-Sent Event of an item of `kind` with `id` and `json`.
    pub fn frame(id: Option<EntryId>, kind: FeedKind, json: &str) -> Arc<str> {
        let id = id.map(|i| format!("id: {i}\n")).unwrap_or_default();
        format!("{id}event: {}\ndata: {json}\n\n", kind.as_str()).into()
    }
}

impl FeedKind {
    /// As its consumers read it.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedKind::Change => "change",
            FeedKind::Tripwire => "tripwire",
            FeedKind::Event => "event",
            FeedKind::Rules => "rules",
            FeedKind::Subscription => "subscription",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedKind {
    Change,
    Tripwire,
    Event,
    /// A new rule-set version became current.
    Rules,
    /// A stored subscription changed (named in `user_id`): never delivered;
    /// its connected consumers reload it.
    Subscription,
}
