//! `GET /v1/feed`: Server-Sent Events of the deployment's restriction
//! changes, tripwire changes and rule-set versions, each with its feed id
//! (`id:`), resumable with `Last-Event-ID` or `?after=`; this instance's
//! events too when asked with `events=` (live only, no id). Filtered by
//! `events=&rules=&features=&users=&changes=`, or by a stored subscription
//! (`?subscription=<name>`). A `retry:` hint first, a comment line every
//! 15 s, `event: shutdown` when the instance closes.

use actix_web::{web, HttpRequest, HttpResponse};
use restrictd_domain::EntryId;

use super::query_param;
use crate::error::ApiError;
use crate::feed::{parse_id, subscription, FilterDef, Out, Source};
use crate::state::AppState;

/// What a consumer asked for: its filter, its stored subscription, where it resumes.
pub(crate) struct Asked {
    pub filter: crate::feed::Filter,
    pub subscription: Option<String>,
    pub after: Option<EntryId>,
}

/// Reads a feed request: filters or a subscription, and the id to resume
/// after (`Last-Event-ID`, else `after=`, else the subscription's acknowledged id).
pub(crate) async fn asked(req: &HttpRequest, state: &AppState) -> Result<Asked, ApiError> {
    let filters = ["events", "rules", "features", "users", "changes"];
    super::only_params(req, &[&filters[..], &["after", "subscription"]].concat())?;
    let list = |name: &str| query_param(req, name).map(|v| v.split(',').map(str::to_string).collect());
    let mut after = match req.headers().get("Last-Event-ID") {
        Some(v) => Some(parse_id(v.to_str().unwrap_or("?"))?),
        None => query_param(req, "after").map(|a| parse_id(&a)).transpose()?,
    };
    let model = state.shared.model();
    let Some(name) = query_param(req, "subscription") else {
        let def = FilterDef {
            events: list("events"),
            rules: list("rules"),
            features: list("features"),
            users: list("users"),
            changes: list("changes"),
            condition: None,
        };
        let filter = def.compile(&model).map_err(ApiError::bad_request)?;
        return Ok(Asked { filter, subscription: None, after });
    };
    if filters.iter().any(|f| query_param(req, f).is_some()) {
        return Err(ApiError::bad_request("a subscription's filters are stored with it: give subscription= alone"));
    }
    subscription::check_name(&name)?;
    let stored = subscription::load(state, &name).await?.ok_or_else(|| {
        ApiError::not_found(format!("no subscription {name:?}: PUT /v1/subscriptions/{name} stores one"))
    })?;
    if after.is_none() {
        after = stored.acked.as_deref().map(parse_id).transpose()?;
    }
    let filter = stored.filter.compile(&model).map_err(ApiError::bad_request)?;
    Ok(Asked { filter, subscription: Some(name.to_string()), after })
}

/// An item's rendered event, as the bytes of a response chunk.
struct Frame(std::sync::Arc<str>);

impl AsRef<[u8]> for Frame {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// The reconnection delay a browser's EventSource waits, ms.
const RETRY_MS: u64 = 1000;

fn sse(id: Option<EntryId>, kind: &str, data: &str) -> web::Bytes {
    let id = id.map(|i| format!("id: {i}\n")).unwrap_or_default();
    web::Bytes::from(format!("{id}event: {kind}\ndata: {data}\n\n"))
}

/// The last id, as the final events name it.
fn last_json(last: Option<EntryId>) -> String {
    last.map_or("null".into(), |l| format!("\"{l}\""))
}

/// One thing to send, as Server-Sent Events.
fn render(out: Out) -> web::Bytes {
    match out {
        Out::Subscribed { buffer } => {
            web::Bytes::from(format!("retry: {RETRY_MS}\nevent: subscribed\ndata: {{\"buffer\":{buffer}}}\n\n"))
        }
        Out::Reset { requested, oldest } => {
            let data = format!("{{\"requested\":\"{requested}\",\"oldest\":{}}}", last_json(oldest));
            sse(None, "reset", &data)
        }
        // Rendered once for every subscriber, sent without a copy.
        Out::Item(item) => web::Bytes::from_owner(Frame(std::sync::Arc::clone(&item.frame))),
        Out::KeepAlive => web::Bytes::from_static(b": keep-alive\n\n"),
        Out::Disconnect { missed, last } => sse(
            None,
            "disconnect",
            &format!(
                "{{\"reason\":\"too slow: {missed} items were dropped; reconnect with Last-Event-ID and read faster\",\"last_id\":{}}}",
                last_json(last)
            ),
        ),
        Out::Shutdown { last } => sse(
            None,
            "shutdown",
            &format!(
                "{{\"reason\":\"this instance is closing; reconnect with Last-Event-ID\",\"last_id\":{}}}",
                last_json(last)
            ),
        ),
        Out::Reload(_) => web::Bytes::new(),
        Out::Gone { name } => sse(
            None,
            "disconnect",
            &serde_json::json!({"reason": format!("subscription {name:?} was deleted")}).to_string(),
        ),
    }
}

pub async fn feed(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let Asked { filter, subscription, after } = asked(&req, &state).await?;
    let source = Source::open(state, filter, subscription, after).await?;
    // Each item is its own chunk, the shared rendering itself: actix-web
    // copies what is ready into the connection's buffer (up to 32 KiB) and
    // writes it at once, so what arrived together still goes out in one write.
    let stream = futures_util::stream::unfold(source, |mut source| async move {
        let out = match source.ready() {
            Some(out) => out,
            None => source.next().await?,
        };
        Some((Ok::<_, actix_web::Error>(render(out)), source))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream))
}
