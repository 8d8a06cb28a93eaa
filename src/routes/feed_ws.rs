//! `GET /v1/feed/ws`: the feed over a WebSocket, with the same filters,
//! subscriptions, ids and resume (`?after=` or `Last-Event-ID`) as the
//! Server-Sent Events one, and the same bounded buffer. Each message is a
//! JSON text: `{"event": "change", "id": "<feed id>", "data": {...}}`
//! (`subscribed`, `reset`, `disconnect` and `shutdown` as in the SSE feed);
//! a ping every 15 s while idle.

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message};
use futures_util::StreamExt as _;
use serde_json::{json, Value};

use super::feed::{asked, Asked};
use crate::error::ApiError;
use crate::feed::{Out, Source};
use crate::state::AppState;

/// One thing to send as a message's JSON; `None` for a keep-alive (a ping).
fn message(out: &Out) -> Option<Value> {
    let last = |l: &Option<restrictd_domain::EntryId>| l.map(|l| l.to_string());
    Some(match out {
        Out::Subscribed { buffer } => json!({"event": "subscribed", "data": {"buffer": buffer}}),
        Out::Reset { requested, oldest } => {
            json!({"event": "reset", "data": {"requested": requested.to_string(), "oldest": last(oldest)}})
        }
        Out::Item(item) => {
            let data: Value = serde_json::from_str(&item.json).unwrap_or(Value::Null);
            json!({"event": item.kind.as_str(), "id": item.id.map(|i| i.to_string()), "data": data})
        }
        Out::KeepAlive | Out::Reload(_) => return None,
        Out::Disconnect { missed, last: l } => json!({"event": "disconnect", "data": {
            "reason": format!("too slow: {missed} items were dropped; reconnect with after=<last_id> and read faster"),
            "last_id": last(l)}}),
        Out::Shutdown { last: l } => json!({"event": "shutdown", "data": {
            "reason": "this instance is closing; reconnect with after=<last_id>", "last_id": last(l)}}),
        Out::Gone { name } => {
            json!({"event": "disconnect", "data": {"reason": format!("subscription {name:?} was deleted")}})
        }
    })
}

/// Whether the stream ends after `out`.
fn last_message(out: &Out) -> bool {
    matches!(out, Out::Disconnect { .. } | Out::Shutdown { .. } | Out::Gone { .. })
}

pub async fn feed_ws(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let Asked { filter, subscription, after } = asked(&req, &state).await?;
    let (response, mut session, mut incoming) =
        actix_ws::handle(&req, body).map_err(|e| ApiError::bad_request(format!("not a WebSocket upgrade: {e}")))?;
    let mut source = Source::open(state, filter, subscription, after).await?;
    actix_web::rt::spawn(async move {
        let mut close = None;
        'stream: loop {
            // Polled to the end even while messages come in: nothing it took is lost.
            let next = source.next();
            tokio::pin!(next);
            let out = loop {
                tokio::select! {
                    out = &mut next => break out,
                    msg = incoming.next() => match msg {
                        Some(Ok(Message::Ping(bytes))) => {
                            if session.pong(&bytes).await.is_err() {
                                break 'stream;
                            }
                        }
                        Some(Ok(Message::Close(reason))) => {
                            close = reason;
                            break 'stream;
                        }
                        None | Some(Err(_)) => break 'stream,
                        Some(Ok(_)) => {}
                    },
                }
            };
            let Some(out) = out else { break };
            let sent = match message(&out) {
                Some(json) => session.text(json.to_string()).await,
                None => session.ping(b"").await,
            };
            if sent.is_err() {
                return;
            }
            if last_message(&out) {
                close = Some(CloseReason { code: CloseCode::Normal, description: None });
                break;
            }
        }
        let _ = session.close(close).await;
    });
    Ok(response)
}
