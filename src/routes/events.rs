//! Ingestion: validate at the edge, append to the owning shard's stream, reply
//! once Redis acknowledged. With `?wait=applied`, reply once the shard applied
//! the event too, with the user's resulting features.

use std::collections::BTreeMap;
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage as _, HttpRequest, HttpResponse};
use restrictd_actors::clock::now_ms;
use restrictd_actors::store::reads;
use restrictd_domain::schema::MALFORMED_JSON;
use restrictd_domain::{EntryId, Event, EventRef, ValidationError};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::body::{self, wait_applied};
use super::features_json;
use crate::admission::queue::Producer;
use crate::admission::WriteSlot;
use crate::error::ApiError;
use crate::state::AppState;

/// What every write does first: take an admission slot (waiting for one, see
/// `admission::queue`), check the ingest token, read `?wait=` and the body.
/// The slot is held until the reply.
async fn accept_write<'a>(
    req: &HttpRequest,
    payload: web::Payload,
    state: &'a AppState,
) -> Result<(WriteSlot<'a>, Instant, bool, web::Bytes), ApiError> {
    // Found by the route's access check when ingestion takes tokens.
    let producer = req.extensions().get::<Producer>().copied().unwrap_or_else(|| state.settings.auth.producer(req));
    let slot = match state.writes.enter(producer).await {
        Ok(slot) => slot,
        Err(refused) => {
            // Read the refused body past, so the client's connection stays
            // open for its retry (an unread body makes actix close it).
            body::discard(req, payload, state.settings.ingest.body_limit_bytes).await;
            return Err(refused);
        }
    };
    let started = Instant::now();
    let wait = wait_applied(req)?;
    let bytes = body::read_json(req, payload, state.settings.ingest.body_limit_bytes).await?;
    Ok((slot, started, wait, bytes))
}

/// An event refused at the edge: counted, and answered as the reference did
/// (a body that is not JSON gets a plain 400, without a reason code).
fn refused(state: &AppState, e: ValidationError) -> ApiError {
    state.rejects.add(e.reason);
    if e.reason == MALFORMED_JSON {
        return ApiError::bad_request(e.message);
    }
    e.into()
}

/// `POST /event`: one event, the reference service's API.
pub async fn post_event(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (_slot, started, wait, bytes) = accept_write(&req, payload, &state).await?;
    let mut scratch = None;
    let event = state.shared.model().schema.validate_bytes(&bytes, &mut scratch).map_err(|e| refused(&state, e))?;
    event.check_time(now_ms(), state.settings.ingest.event_time_limits()).map_err(|e| refused(&state, e))?;
    let shard = state.shared.shard_of(event.user_id);
    let id = state.ingest.append(state.shared.keys.events(shard), &bytes).await?;
    state.ingest_latency.record(started.elapsed().as_secs_f64());
    let status = format!("Event '{}' added to the stream.", event.name);
    if !wait {
        // The reference service's reply, serialised straight from borrowed
        // fields (keys in the order the `json!` map wrote them).
        #[derive(serde::Serialize)]
        struct Appended<'a> {
            id: &'a str,
            status: &'a str,
        }
        let mut text = [0; EventRef::MAX_LEN];
        let id = EventRef::new(shard, id);
        return Ok(HttpResponse::Ok().json(Appended { id: id.encode(&mut text), status: &status }));
    }
    wait_until_applied(&state, shard, id).await?;
    let mask = masks_after_wait(&state, &[event.user_id]).await?[0];
    Ok(HttpResponse::Ok().json(json!({
        "status": status,
        "id": EventRef::new(shard, id),
        "applied": true,
        "user_id": event.user_id,
        "features": features_json(&state.shared.model(), mask),
    })))
}

/// `POST /v1/events`: a JSON array of events, all accepted or none.
pub async fn post_events(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (_slot, started, wait, bytes) = accept_write(&req, payload, &state).await?;
    let raw: Vec<&RawValue> = serde_json::from_slice(&bytes).map_err(|e| {
        state.rejects.add("malformed_json");
        ApiError::bad_request(format!("the body must be a JSON array of events: {e}"))
    })?;
    let limit = state.settings.ingest.batch_limit.get();
    if raw.is_empty() {
        return Err(ApiError::bad_request("the batch is empty; send at least one event"));
    }
    if raw.len() > limit {
        state.rejects.add("batch_too_large");
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a batch holds at most {limit} events; this one has {}", raw.len()),
        )
        .with("limit", limit));
    }
    let schema = &state.shared.model().schema;
    let mut scratch: Vec<Option<Value>> = vec![None; raw.len()];
    let mut events: Vec<Event<'_>> = Vec::with_capacity(raw.len());
    let mut invalid = Vec::new();
    let (now, limits) = (now_ms(), state.settings.ingest.event_time_limits());
    for (index, (r, scratch)) in raw.iter().zip(&mut scratch).enumerate() {
        match schema.validate_bytes(r.get().as_bytes(), scratch).and_then(|e| e.check_time(now, limits).map(|()| e)) {
            Ok(e) => events.push(e),
            Err(e) => {
                state.rejects.add(e.reason);
                invalid.push(json!({ "index": index, "reason": e.reason, "error": e.message }));
            }
        }
    }
    if !invalid.is_empty() {
        return Err(ApiError::unprocessable(format!(
            "{} of {} events are invalid; none were accepted",
            invalid.len(),
            raw.len()
        ))
        .with("invalid", invalid));
    }
    let shards: Vec<u32> = events.iter().map(|e| state.shared.shard_of(e.user_id)).collect();
    let items: Vec<(&str, &[u8])> =
        shards.iter().zip(&raw).map(|(&s, r)| (state.shared.keys.events(s), r.get().as_bytes())).collect();
    let ids = state.ingest.append_many(&items).await?;
    state.ingest_latency.record(started.elapsed().as_secs_f64());
    let id_strings: Vec<String> = shards.iter().zip(&ids).map(|(&s, &id)| EventRef::new(s, id).to_string()).collect();
    if !wait {
        return Ok(HttpResponse::Accepted().json(json!({ "accepted": ids.len(), "ids": id_strings })));
    }
    // Wait for the highest id of each shard involved.
    let mut highest: BTreeMap<u32, EntryId> = BTreeMap::new();
    for (&s, &id) in shards.iter().zip(&ids) {
        let h = highest.entry(s).or_insert(id);
        *h = (*h).max(id);
    }
    for (&s, &id) in &highest {
        wait_until_applied(&state, s, id).await?;
    }
    let users: Vec<&str> = events.iter().map(|e| e.user_id).collect();
    let masks = masks_after_wait(&state, &users).await?;
    let features: serde_json::Map<String, Value> =
        users.iter().zip(masks).map(|(u, mask)| (u.to_string(), features_json(&state.shared.model(), mask))).collect();
    Ok(HttpResponse::Ok().json(json!({
        "accepted": ids.len(),
        "ids": id_strings,
        "applied": true,
        "features": features,
    })))
}

/// The users' restricted features once their events were applied: from
/// memory for owned shards; for other shards from what the owner persisted
/// (the changelog may not have reached this instance yet).
pub(crate) async fn masks_after_wait(state: &AppState, users: &[&str]) -> Result<Vec<u64>, ApiError> {
    let mut masks: Vec<u64> = users.iter().map(|u| state.shared.restricted(u)).collect();
    let elsewhere: Vec<usize> =
        (0..users.len()).filter(|&i| !state.shared.owns(state.shared.shard_of(users[i]))).collect();
    if elsewhere.is_empty() {
        return Ok(masks);
    }
    let wanted: Vec<(u32, &str)> = elsewhere.iter().map(|&i| (state.shared.shard_of(users[i]), users[i])).collect();
    let (keys, model) = (&state.shared.keys, &state.shared.model());
    let persisted = state.ingest.call("hget", async |c| reads::restricted_masks(c, keys, model, &wanted).await).await?;
    for (i, mask) in elsewhere.into_iter().zip(persisted) {
        masks[i] = mask;
    }
    Ok(masks)
}

/// Waits until shard `shard` applied entry `id`, or answers 504. For a shard
/// another instance owns: until that instance persisted it (polls its offset).
pub(crate) async fn wait_until_applied(state: &AppState, shard: u32, id: EntryId) -> Result<(), ApiError> {
    let timeout = state.settings.ingest.wait_timeout;
    let mut rx = state.shared.applied[shard as usize].subscribe();
    let owned = state.shared.owns(shard);
    let applied = async {
        if owned {
            return rx.wait_for(|applied| *applied >= id).await.is_ok();
        }
        state.remote.wait(shard, id).await;
        true
    };
    match tokio::time::timeout(timeout, applied).await {
        Ok(true) => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "event {} was appended but not applied within {}; it is durable and will be applied",
                EventRef::new(shard, id),
                humantime::format_duration(timeout)
            ),
        )
        .with("id", EventRef::new(shard, id).to_string())),
    }
}
