//! Stored feed subscriptions: `PUT`/`GET`/`DELETE /v1/subscriptions/{name}`,
//! `GET /v1/subscriptions`, and `POST /v1/subscriptions/{name}/ack` (the id
//! its consumer has handled: where a consumer without a cursor resumes).
//! A change reaches the subscription's connected consumers at once, on
//! every instance (a feed entry tells them).

use actix_web::{web, HttpRequest, HttpResponse};
use restrictd_actors::clock::now_ms;
use restrictd_actors::store::feed as store;
use serde::Deserialize;
use serde_json::{json, Value};

use super::access::Operator;
use super::body;
use crate::error::ApiError;
use crate::feed::subscription::{self, check_name, Stored};
use crate::feed::{read_id, FilterDef};
use crate::state::AppState;

fn reply(name: &str, s: &Stored) -> Value {
    json!({
        "name": name,
        "filter": s.filter,
        "acked": s.acked,
        "by": s.by,
        "at_ms": s.at_ms,
        "at": restrictd_domain::time::rfc3339_ms(s.at_ms),
    })
}

/// A body of type `T`, from a JSON object: 400 when it is not JSON, 422
/// when it is not such an object (serde would take a struct from an array too).
fn object<T: serde::de::DeserializeOwned>(bytes: &[u8], expected: &str) -> Result<T, ApiError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
    let refuse = |why: String| ApiError::unprocessable(format!("expected {expected}: {why}"));
    let Some(fields) = value.as_object() else { return Err(refuse("the body must be a JSON object".into())) };
    if let Some((name, _)) = fields.iter().find(|(_, v)| v.is_null()) {
        return Err(refuse(format!("{name:?} is null: leave it out instead")));
    }
    serde_json::from_value(value).map_err(|e| refuse(e.to_string()))
}

fn missing(name: &str) -> ApiError {
    ApiError::not_found(format!("no subscription {name:?}: PUT /v1/subscriptions/{name} stores one"))
}

/// `PUT /v1/subscriptions/{name}` with a filter: stored (its acknowledged id kept).
pub async fn put(
    req: HttpRequest,
    Operator(by): Operator,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    check_name(&path)?;
    let bytes = body::read_json(&req, payload, state.settings.ingest.body_limit_bytes).await?;
    let expected =
        "{\"events\"?, \"rules\"?, \"features\"?, \"users\"?, \"changes\"? (lists of names), \"condition\"?}";
    let filter: FilterDef = object(&bytes, expected)?;
    filter.compile(&state.shared.model()).map_err(ApiError::unprocessable)?;
    let acked = subscription::load(&state, &path).await?.and_then(|s| s.acked);
    let stored = Stored { filter, acked, by, at_ms: now_ms() };
    subscription::save(&state, &path, &stored).await?;
    Ok(HttpResponse::Ok().json(reply(&path, &stored)))
}

/// `GET /v1/subscriptions/{name}`.
pub async fn get(path: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    check_name(&path)?;
    let stored = subscription::load(&state, &path).await?.ok_or_else(|| missing(&path))?;
    Ok(HttpResponse::Ok().json(reply(&path, &stored)))
}

/// `GET /v1/subscriptions`: every stored subscription, by name.
pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let keys = &state.shared.keys;
    let mut all = state.ingest.call("hgetall", async |c| store::subscriptions(c, keys).await).await?;
    all.sort();
    let items: Vec<Value> = all
        .iter()
        .filter_map(|(name, json)| serde_json::from_str::<Stored>(json).ok().map(|s| reply(name, &s)))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "subscriptions": items })))
}

/// `DELETE /v1/subscriptions/{name}`: its connected consumers' streams end.
pub async fn delete(
    Operator(_by): Operator,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    check_name(&path)?;
    let keys = &state.shared.keys;
    let name = path.as_str();
    let removed = state.ingest.call_write("hdel", async |c| store::delete_subscription(c, keys, name).await).await?;
    if !removed {
        return Err(missing(name));
    }
    Ok(HttpResponse::Ok().json(json!({ "name": name, "deleted": true })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Ack {
    id: String,
}

/// `POST /v1/subscriptions/{name}/ack` with `{"id": "<feed id>"}`: kept when
/// later than the one kept (an acknowledgement never moves back).
pub async fn ack(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    check_name(&path)?;
    let bytes = body::read_json(&req, payload, state.settings.ingest.body_limit_bytes).await?;
    let ack: Ack = object(&bytes, "{\"id\": \"<feed id>\"}")?;
    let id = read_id(&ack.id).map_err(ApiError::unprocessable)?;
    let mut stored = subscription::load(&state, &path).await?.ok_or_else(|| missing(&path))?;
    let kept = stored.acked.as_deref().and_then(|a| read_id(a).ok());
    if kept.is_none_or(|k| id > k) {
        stored.acked = Some(id.to_string());
        let keys = &state.shared.keys;
        let json = serde_json::to_string(&stored).unwrap_or_default();
        let name = path.as_str();
        state.ingest.call_write("hset", async |c| store::ack_subscription(c, keys, name, &json).await).await?;
    }
    Ok(HttpResponse::Ok().json(reply(&path, &stored)))
}
