//! `GET /v1/feed`: Server-Sent Events of restriction changes and tripwire
//! changes (and events, when asked with `events=`), filtered by
//! `events=&rules=&features=&users=` (comma-separated; `events=all`).
//!
//! Subscribers share one bounded broadcast buffer; a subscriber that falls
//! further behind than it holds gets a final `disconnect` event and is closed.
//! The engine never waits for a subscriber.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use restrictd_actors::shared::{FeedItem, FeedKind, Shared};
use tokio::sync::broadcast::error::RecvError;

use super::query_param;
use crate::error::ApiError;
use crate::state::AppState;

/// A comment line keeps idle connections open through proxies.
const HEARTBEAT: Duration = Duration::from_secs(15);

#[derive(Default)]
struct Filter {
    /// `None`: no events; `Some(None)`: all events; `Some(Some(set))`: these.
    events: Option<Option<Vec<u16>>>,
    rules: Option<Vec<u16>>,
    features: Option<u64>,
    users: Option<Vec<String>>,
}

impl Filter {
    fn parse(req: &HttpRequest, state: &AppState) -> Result<Filter, ApiError> {
        let model = &state.shared.model();
        super::only_params(req, &["events", "rules", "features", "users"])?;
        // A comma-separated list of at least one name; an empty one is refused
        // (a filter that can match nothing is a mistake).
        let list = |name: &str| -> Result<Option<Vec<String>>, ApiError> {
            let Some(v) = query_param(req, name) else { return Ok(None) };
            let items: Vec<String> = v.split(',').map(str::to_string).collect();
            if items.iter().any(String::is_empty) {
                return Err(ApiError::bad_request(format!(
                    "{name} is a comma-separated list of names, none of them empty"
                )));
            }
            Ok(Some(items))
        };
        let mut f = Filter::default();
        if let Some(events) = list("events")? {
            f.events = Some(if events.iter().any(|e| e == "all") {
                None
            } else {
                Some(
                    events
                        .iter()
                        .map(|e| {
                            model
                                .schema
                                .event_index(e)
                                .ok_or_else(|| ApiError::bad_request(format!("unknown event {e:?}")))
                        })
                        .collect::<Result<_, _>>()?,
                )
            });
        }
        if let Some(rules) = list("rules")? {
            f.rules = Some(
                rules
                    .iter()
                    .map(|r| {
                        model
                            .rule_index(r)
                            .map(|i| i as u16)
                            .ok_or_else(|| ApiError::bad_request(format!("unknown rule {r:?}")))
                    })
                    .collect::<Result<_, _>>()?,
            );
        }
        if let Some(features) = list("features")? {
            let mut mask = 0;
            for name in features {
                let i = model
                    .feature_index(&name)
                    .ok_or_else(|| ApiError::bad_request(format!("unknown feature {name:?}")))?;
                mask |= 1u64 << i;
            }
            f.features = Some(mask);
        }
        if let Some(users) = list("users")? {
            for user in &users {
                restrictd_domain::schema::check_user_id(user).map_err(ApiError::bad_request)?;
            }
            f.users = Some(users);
        }
        Ok(f)
    }

    fn matches(&self, item: &FeedItem) -> bool {
        if item.kind == FeedKind::Rules {
            // About no rule, feature or user: only an unfiltered feed carries it.
            return self.rules.is_none() && self.features.is_none() && self.users.is_none();
        }
        if item.kind == FeedKind::Event {
            match &self.events {
                None => return false,
                Some(None) => {}
                Some(Some(set)) => {
                    if !item.event.is_some_and(|e| set.contains(&e)) {
                        return false;
                    }
                }
            }
        } else if let Some(rules) = &self.rules {
            if !item.rule.is_some_and(|r| rules.contains(&r)) {
                return false;
            }
        }
        if let Some(mask) = self.features {
            if item.kind != FeedKind::Event && item.features & mask == 0 {
                return false;
            }
        }
        if let Some(users) = &self.users {
            if item.kind == FeedKind::Tripwire || !item.user_id.as_deref().is_some_and(|u| users.iter().any(|x| x == u))
            {
                return false;
            }
        }
        true
    }
}

/// Counts a subscriber that wants events, for as long as it lives.
struct EventInterest(Option<Arc<Shared>>);

impl Drop for EventInterest {
    fn drop(&mut self) {
        if let Some(s) = &self.0 {
            s.event_subscribers.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

fn sse(kind: &str, data: &str) -> web::Bytes {
    web::Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
}

pub async fn feed(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let filter = Filter::parse(&req, &state)?;
    let rx = state.shared.feed.subscribe();
    let interest = EventInterest(filter.events.is_some().then(|| {
        state.shared.event_subscribers.fetch_add(1, Ordering::AcqRel);
        Arc::clone(&state.shared)
    }));
    struct Sub {
        rx: tokio::sync::broadcast::Receiver<Arc<FeedItem>>,
        filter: Filter,
        _interest: EventInterest,
        started: bool,
        done: bool,
        buffer: usize,
    }
    let buffer = state.settings.feed.buffer;
    let sub = Sub { rx, filter, _interest: interest, started: false, done: false, buffer };
    let stream = futures_util::stream::unfold(sub, |mut sub| async move {
        if sub.done {
            return None;
        }
        if !sub.started {
            sub.started = true;
            let hello = format!("{{\"buffer\":{}}}", sub.buffer);
            return Some((Ok::<_, actix_web::Error>(sse("subscribed", &hello)), sub));
        }
        loop {
            match tokio::time::timeout(HEARTBEAT, sub.rx.recv()).await {
                Err(_) => return Some((Ok(web::Bytes::from_static(b": heartbeat\n\n")), sub)),
                Ok(Ok(item)) => {
                    if sub.filter.matches(&item) {
                        let kind = match item.kind {
                            FeedKind::Change => "change",
                            FeedKind::Tripwire => "tripwire",
                            FeedKind::Event => "event",
                            FeedKind::Rules => "rules",
                        };
                        return Some((Ok(sse(kind, &item.json)), sub));
                    }
                }
                Ok(Err(RecvError::Lagged(missed))) => {
                    sub.done = true;
                    let bye =
                        format!("{{\"reason\":\"too slow: {missed} items were dropped; reconnect and read faster\"}}");
                    return Some((Ok(sse("disconnect", &bye)), sub));
                }
                Ok(Err(RecvError::Closed)) => return None,
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream))
}
