//! `POST /v1/rules/{name}/tripwire` with `{"action": "reset" | "trip"}`; a
//! reset may add `"apply_suppressed": true`: the restrictions the tripwire
//! withheld in the window are then made, through every shard stream.

use super::access::Operator;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use restrictd_actors::clock::now_ms;
use restrictd_actors::messages::{Control, ControlTripwire, ListByRule};
use restrictd_actors::wire::Field;
use restrictd_domain::admin::AdminCommand;
use restrictd_domain::time::rfc3339_ms;
use restrictd_domain::EventRef;
use serde::Deserialize;
use serde_json::json;

use super::body;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Action {
    action: Control,
    #[serde(default)]
    apply_suppressed: bool,
}

/// The position of the rule `name`, or 404.
fn rule_named(state: &AppState, name: &str) -> Result<usize, ApiError> {
    let rule = state.shared.model().rule_index(name);
    rule.ok_or_else(|| ApiError::not_found(format!("no rule {name:?}; see GET /v1/rules")))
}

/// Users of this instance's shards by `rule` since `since_ms` (restricted,
/// or withheld with `suppressed`): how many, and the page `offset..offset +
/// limit` of them, newest first, as JSON.
async fn by_rule(
    state: &AppState,
    rule: usize,
    suppressed: bool,
    since_ms: u64,
    (offset, limit): (usize, usize),
) -> Result<(usize, Vec<serde_json::Value>), ApiError> {
    let (mut total, mut found) = (0, Vec::new());
    for (shard, actor) in state.shards.iter().enumerate() {
        let Some(actor) = actor else { continue };
        let ask = ListByRule { rule: rule as u16, suppressed, since_ms, limit: offset + limit };
        let (count, users) = actor
            .send(ask)
            .await
            .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("shard {shard} unavailable: {e}")))?;
        total += count;
        found.extend(users.into_iter().map(|(user, entry, at_ms)| (at_ms, EventRef::new(shard as u32, entry), user)));
    }
    found.sort_unstable_by(|a, b| (b.0, &b.2).cmp(&(a.0, &a.2)));
    let page = found.into_iter().skip(offset).take(limit).map(|(at_ms, event, user_id)| {
        json!({ "user_id": user_id, "event_id": event, "at_ms": at_ms, "at": rfc3339_ms(at_ms) })
    });
    Ok((total, page.collect()))
}

/// `GET /v1/rules/{name}/suppressed`: the users of this instance's shards
/// whose restriction by the rule the tripwire withheld (and nobody applied yet).
pub async fn suppressed(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::only_params(&req, &["limit"])?;
    let limit = super::number_param(&req, "limit", 1000)?.min(10_000);
    let rule = rule_named(&state, &path)?;
    let (_, users) = by_rule(&state, rule, true, 0, (0, limit)).await?;
    Ok(HttpResponse::Ok().json(json!({ "rule": path.as_str(), "users": users, "limit": limit })))
}

/// `GET /v1/rules/{name}/users`: the users of this instance's shards the rule
/// restricted within the tripwire window (still restricted by it), newest
/// first, a page at a time.
pub async fn users(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::only_params(&req, &["limit", "offset"])?;
    let limit = super::number_param(&req, "limit", 50)?.clamp(1, 500);
    let offset = super::number_param(&req, "offset", 0)?.min(1_000_000);
    let rule = rule_named(&state, &path)?;
    let window = state.settings.tripwire.window.as_millis() as u64;
    let since_ms = now_ms().saturating_sub(window);
    let (total, users) = by_rule(&state, rule, false, since_ms, (offset, limit)).await?;
    let next = (offset + users.len() < total).then_some(offset + users.len());
    Ok(HttpResponse::Ok().json(json!({
        "rule": path.as_str(),
        "since_ms": since_ms,
        "since": rfc3339_ms(since_ms),
        "total": total,
        "offset": offset,
        "users": users,
        "next_offset": next,
    })))
}

pub async fn control(
    req: HttpRequest,
    Operator(by): Operator,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let rule = rule_named(&state, &path)?;
    let bytes = body::read_json(&req, payload, state.settings.ingest.body_limit_bytes).await?;
    let a: Action = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::unprocessable(format!(
            "expected {{\"action\": \"reset\" | \"trip\", \"apply_suppressed\"?: true}}: {e}"
        ))
    })?;
    if a.apply_suppressed && a.action != Control::Reset {
        return Err(ApiError::unprocessable("\"apply_suppressed\" goes with \"action\": \"reset\""));
    }
    // The window before the reset: what the tripwire withheld in it.
    let since_ms = now_ms().saturating_sub(state.settings.tripwire.window.as_millis() as u64);
    let status = state
        .tripwire
        .send(ControlTripwire { rule: rule as u16, action: a.action, by: by.clone() })
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("tripwire unavailable: {e}")))?
        .map_err(|e| ApiError::redis_unavailable(format!("the tripwire change was not recorded: {e}")))?;
    if !a.apply_suppressed {
        return Ok(HttpResponse::Ok().json(json!({ "rule": path.as_str(), "tripwire": status })));
    }
    let command = AdminCommand::ApplySuppressed { rule: path.to_string(), since_ms, by };
    let bytes = serde_json::to_vec(&command).expect("commands serialize");
    for shard in 0..state.shared.shard_count {
        state.ingest.append_field(state.shared.keys.events(shard), Field::Admin, &bytes).await?;
    }
    Ok(HttpResponse::Ok().json(json!({
        "rule": path.as_str(),
        "tripwire": status,
        "apply_suppressed": { "since_ms": since_ms, "shards": state.shared.shard_count },
    })))
}
