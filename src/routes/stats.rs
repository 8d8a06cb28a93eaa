//! `GET /v1/stats`, `GET /v1/stats/{event_name}`, `DELETE /v1/stats` (admin):
//! count and exact sum of `amount` per event name, rejections per reason, since
//! the first start or the last reset. They survive restarts (kept in Redis).

use super::access::Operator;
use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use restrictd_actors::clock::now_ms;
use restrictd_actors::store::{reads, EventStat};
use restrictd_domain::Money;
use serde_json::{json, Value};

use super::rfc3339_ms;
use crate::error::ApiError;
use crate::state::AppState;

async fn collect(state: &AppState) -> Result<Value, ApiError> {
    let keys = &state.shared.keys;
    let stored = state.ingest.call("stats", async |c| reads::stats(c, keys).await).await?;
    let mut events: BTreeMap<String, EventStat> =
        state.shared.model().schema.events.iter().map(|e| (e.to_string(), EventStat::default())).collect();
    for (name, stat) in stored.events {
        let e = events.entry(name).or_default();
        e.count += stat.count;
        e.amount += stat.amount;
    }
    let restricted = state.shared.view.count_by_feature(state.shared.model().features.len());
    Ok(json!({
        "since_ms": stored.since_ms,
        "since": stored.since_ms.map(rfc3339_ms),
        "events": events
            .into_iter()
            .map(|(name, s)| (name, json!({"count": s.count, "amount": Money(s.amount).to_string()})))
            .collect::<serde_json::Map<_, _>>(),
        "rejects": stored.rejects,
        "restricted_users": state
            .shared
            .model()
            .features
            .iter()
            .zip(restricted)
            .map(|(f, n)| (f.to_string(), json!(n)))
            .collect::<serde_json::Map<_, _>>(),
    }))
}

pub async fn get_stats(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(collect(&state).await?))
}

pub async fn get_event_stats(path: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let all = collect(&state).await?;
    let stats = all["events"].get(path.as_str()).cloned().ok_or_else(|| {
        ApiError::not_found(format!("no stats for event {:?}: it is not declared and was never seen", path.as_str()))
    })?;
    Ok(HttpResponse::Ok().json(json!({
        "event": path.as_str(),
        "since_ms": all["since_ms"],
        "since": all["since"],
        "count": stats["count"],
        "amount": stats["amount"],
    })))
}

pub async fn reset_stats(Operator(by): Operator, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let keys = &state.shared.keys;
    let now = now_ms();
    state.ingest.call_write("stats_reset", async |c| reads::reset_stats(c, keys, now).await).await?;
    tracing::info!(by, "stats reset");
    Ok(HttpResponse::Ok().json(json!({ "reset": true, "since_ms": now, "since": rfc3339_ms(now), "by": by })))
}
