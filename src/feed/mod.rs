//! A feed consumer's stream, whatever carries it (Server-Sent Events or a
//! WebSocket): what it resumes after, the entries it missed read back from
//! the deployment's feed in Redis, then this instance's live items, each
//! delivered once and in the feed's order (an item at or before the last id
//! delivered is skipped), keep-alives, a final item at shutdown.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use restrictd_actors::shared::{FeedItem, FeedKind, Shared};
use restrictd_actors::store::feed as store;
use restrictd_domain::EntryId;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, watch};

use crate::error::ApiError;
use crate::state::AppState;

pub mod filter;
pub mod subscription;

pub use filter::{Filter, FilterDef};

/// A comment line keeps idle connections open through proxies.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Entries read back from Redis at a time while resuming.
const PAGE: usize = 500;

/// What a consumer is sent next.
pub enum Out {
    /// First: the buffer its consumer may fall behind by.
    Subscribed {
        buffer: usize,
    },
    /// The id resumed after is older than the feed keeps: `oldest` is the
    /// oldest id kept (every entry from it on is delivered).
    Reset {
        requested: EntryId,
        oldest: Option<EntryId>,
    },
    Item(Arc<FeedItem>),
    KeepAlive,
    /// Too slow: the buffer overflowed; reconnect after the last id.
    Disconnect {
        missed: u64,
        last: Option<EntryId>,
    },
    /// The process is closing; reconnect (to another instance) after the last id.
    Shutdown {
        last: Option<EntryId>,
    },
    /// The stored subscription was deleted.
    Gone {
        name: String,
    },
    /// A subscription changed (internal: `next` reloads it, nothing is sent).
    Reload(Arc<FeedItem>),
}

/// Counts a consumer that wants events, for as long as it lives.
struct EventInterest(Option<Arc<Shared>>);

impl Drop for EventInterest {
    fn drop(&mut self) {
        if let Some(s) = &self.0 {
            s.event_subscribers.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

pub struct Source {
    state: actix_web::web::Data<AppState>,
    rx: broadcast::Receiver<Arc<FeedItem>>,
    /// This instance's events, when the filter streams them.
    events: Option<broadcast::Receiver<Arc<FeedItem>>>,
    closing: watch::Receiver<bool>,
    filter: Filter,
    /// The stored subscription it streams, reloaded when it changes.
    subscription: Option<String>,
    _interest: EventInterest,
    /// The last feed id delivered (or resumed after).
    last: Option<EntryId>,
    /// Entries read back from Redis, not yet delivered; `replaying` until
    /// a page comes back short.
    pending: VecDeque<Out>,
    replaying: bool,
    started: bool,
    done: bool,
}

impl Source {
    /// A consumer of `filter` (of `subscription`), resuming after `after`
    /// when given. Subscribes before reading back, so nothing falls between.
    pub async fn open(
        state: actix_web::web::Data<AppState>,
        filter: Filter,
        subscription: Option<String>,
        after: Option<EntryId>,
    ) -> Result<Source, ApiError> {
        let rx = state.shared.feed.subscribe();
        let mut pending = VecDeque::new();
        if let Some(requested) = after {
            let keys = &state.shared.keys;
            let bounds = state.ingest.call("xrange", async |c| store::bounds(c, keys).await).await?;
            // Trimmed past it: the consumer missed entries that are gone.
            if bounds.map_or(requested > EntryId::ZERO, |(oldest, _)| oldest > requested) {
                let oldest = bounds.map(|(o, _)| o);
                pending.push_back(Out::Reset { requested, oldest });
            }
        }
        let interest = EventInterest(filter.wants_events().then(|| {
            state.shared.event_subscribers.fetch_add(1, Ordering::AcqRel);
            Arc::clone(&state.shared)
        }));
        let closing = state.shared.closing.subscribe();
        let events = filter.wants_events().then(|| state.shared.events.subscribe());
        Ok(Source {
            state,
            rx,
            events,
            closing,
            filter,
            subscription,
            _interest: interest,
            last: after,
            pending,
            replaying: after.is_some(),
            started: false,
            done: false,
        })
    }

    /// The next thing to send; `None` once the stream is over.
    pub async fn next(&mut self) -> Option<Out> {
        if self.done {
            return None;
        }
        if !self.started {
            self.started = true;
            return Some(Out::Subscribed { buffer: self.state.settings.feed.buffer });
        }
        loop {
            match self.pending.pop_front() {
                Some(Out::Reload(item)) => {
                    if let Some(out) = self.accept(item).await {
                        return Some(out);
                    }
                    continue;
                }
                Some(out) => return Some(out),
                None => {}
            }
            if self.replaying {
                if let Err(out) = self.read_back().await {
                    self.done = true;
                    return Some(out);
                }
                continue;
            }
            return self.live().await;
        }
    }

    /// A page of the feed after the last id into `pending` (every id there is
    /// skipped when it comes live); the end of the read-back when short.
    async fn read_back(&mut self) -> Result<(), Out> {
        let after = self.last.unwrap_or(EntryId::ZERO);
        let keys = &self.state.shared.keys;
        let page = self.state.ingest.call("xrange", async |c| store::after(c, keys, after, PAGE).await).await;
        // Redis is away: the consumer reconnects after its last id later.
        let Ok(page) = page else { return Err(Out::Shutdown { last: self.last }) };
        self.replaying = page.len() == PAGE;
        let model = self.state.shared.model();
        for entry in page {
            let id = entry.0;
            self.last = Some(id);
            if let Some(item) = restrictd_actors::feed::item(&model, entry) {
                if let Some(out) = self.accept(Arc::new(item)).await {
                    self.pending.push_back(out);
                }
            }
        }
        Ok(())
    }

    /// The next live item that passes, a keep-alive, or the end.
    async fn live(&mut self) -> Option<Out> {
        loop {
            let item = tokio::select! {
                _ = self.closing.wait_for(|c| *c) => {
                    self.done = true;
                    return Some(Out::Shutdown { last: self.last });
                }
                item = tokio::time::timeout(KEEP_ALIVE, recv(&mut self.rx, self.events.as_mut())) => item,
            };
            match item {
                Err(_) => return Some(Out::KeepAlive),
                Ok(Ok(item)) => {
                    if item.id.is_some_and(|id| self.last.is_some_and(|last| id <= last)) {
                        continue;
                    }
                    if let Some(id) = item.id {
                        self.last = Some(id);
                    }
                    if let Some(out) = self.accept(item).await {
                        return Some(out);
                    }
                }
                Ok(Err(RecvError::Lagged(missed))) => {
                    self.done = true;
                    return Some(Out::Disconnect { missed, last: self.last });
                }
                Ok(Err(RecvError::Closed)) => return None,
            }
        }
    }

    /// What is ready now without waiting: a read-back item, or a live item
    /// already in the buffer (`None`: wait with `next`). Lets a transport
    /// send what arrived together in one write.
    pub fn ready(&mut self) -> Option<Out> {
        if self.done || !self.started {
            return None;
        }
        if let Some(out) = self.pending.pop_front() {
            if let Out::Reload(item) = out {
                self.pending.push_front(Out::Reload(item));
                return None;
            }
            return Some(out);
        }
        if self.replaying {
            return None;
        }
        loop {
            let item = match self.rx.try_recv() {
                Ok(item) => item,
                Err(TryRecvError::Lagged(missed)) => {
                    self.done = true;
                    return Some(Out::Disconnect { missed, last: self.last });
                }
                // Closed or empty: `next` says so, or waits.
                Err(_) => return None,
            };
            if item.id.is_some_and(|id| self.last.is_some_and(|last| id <= last)) {
                continue;
            }
            if let Some(id) = item.id {
                self.last = Some(id);
            }
            if item.kind == FeedKind::Subscription {
                // A reload reads Redis: left for `next`.
                self.pending.push_back(Out::Reload(item));
                return None;
            }
            if self.filter.matches(&item, &self.state.shared.model()) {
                return Some(Out::Item(item));
            }
        }
    }

    /// What an item becomes for this consumer: itself when its filter passes
    /// it; a reload (or the end) when it says the subscription changed.
    async fn accept(&mut self, item: Arc<FeedItem>) -> Option<Out> {
        if item.kind == FeedKind::Subscription {
            let name = self.subscription.clone()?;
            if item.user_id.as_deref() != Some(name.as_str()) {
                return None;
            }
            match subscription::load(&self.state, &name).await {
                Ok(Some(sub)) => {
                    if let Ok(filter) = sub.filter.compile(&self.state.shared.model()) {
                        self.filter = filter;
                    }
                    return None;
                }
                Ok(None) => {
                    self.done = true;
                    return Some(Out::Gone { name });
                }
                Err(_) => return None,
            }
        }
        self.filter.matches(&item, &self.state.shared.model()).then_some(Out::Item(item))
    }

    /// The last feed id delivered or resumed after.
    pub fn last(&self) -> Option<EntryId> {
        self.last
    }
}

/// The next item of the feed or, when given, of the events, whichever comes first.
async fn recv(
    feed: &mut broadcast::Receiver<Arc<FeedItem>>,
    events: Option<&mut broadcast::Receiver<Arc<FeedItem>>>,
) -> Result<Arc<FeedItem>, RecvError> {
    match events {
        None => feed.recv().await,
        Some(events) => tokio::select! {
            item = feed.recv() => item,
            item = events.recv() => item,
        },
    }
}

/// A feed id as a consumer sends it back (`Last-Event-ID`, `after=`): 400 when unreadable.
pub fn parse_id(text: &str) -> Result<EntryId, ApiError> {
    read_id(text).map_err(ApiError::bad_request)
}

/// A feed id, `<ms>-<seq>` (each at most 19 digits), or what is wrong with it.
pub fn read_id(text: &str) -> Result<EntryId, String> {
    let digits = |s: &str| !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit());
    let well_formed = text.split_once('-').is_some_and(|(ms, seq)| digits(ms) && digits(seq));
    well_formed
        .then(|| EntryId::parse(text))
        .flatten()
        .ok_or_else(|| format!("{text:?} is not a feed id (the `id` of a feed event, like 1796014770608-0)"))
}
