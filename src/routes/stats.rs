//! `GET /v1/stats`, `GET /v1/stats/{event_name}`, `DELETE /v1/stats` (admin):
//! count and exact sum of `amount` per event name, rejections per reason, since
//! the first start or the last reset. They survive restarts (kept in Redis).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{web, HttpRequest, HttpResponse};
use restrictd_actors::domain::Money;
use serde_json::{json, Value};

use super::rfc3339_ms;
use crate::error::ApiError;
use crate::startup::AppState;

async fn collect(state: &AppState) -> Result<Value, ApiError> {
    let keys = &state.shared.keys;
    let mut pipe = redis::pipe();
    for s in 0..state.shared.shard_count {
        pipe.cmd("HGETALL").arg(keys.stats(s));
    }
    pipe.cmd("HGETALL").arg(keys.rejects());
    pipe.cmd("GET").arg(keys.stats_since());
    let mut replies: Vec<redis::Value> = state.ingest.run(&pipe, "stats").await?;
    let since: Option<String> = replies.pop().and_then(|v| redis::from_redis_value(v).ok());
    let rejects: BTreeMap<String, u64> =
        replies.pop().and_then(|v| redis::from_redis_value(v).ok()).unwrap_or_default();
    let mut events: BTreeMap<String, (u64, u64)> =
        state.shared.model.schema.events.iter().map(|e| (e.to_string(), (0, 0))).collect();
    for reply in replies {
        let fields: BTreeMap<String, u64> = redis::from_redis_value(reply).unwrap_or_default();
        for (field, n) in fields {
            if let Some((kind, name)) = field.split_once(':') {
                let e = events.entry(name.to_string()).or_default();
                if kind == "count" {
                    e.0 += n;
                } else {
                    e.1 += n;
                }
            }
        }
    }
    let restricted = state.shared.view.count_by_feature(state.shared.model.features.len());
    Ok(json!({
        "since": since.and_then(|s| s.parse::<u64>().ok()).map(rfc3339_ms),
        "events": events
            .into_iter()
            .map(|(name, (count, amount))| (name, json!({"count": count, "amount": Money(amount).to_string()})))
            .collect::<serde_json::Map<_, _>>(),
        "rejects": rejects,
        "restricted_users": state
            .shared
            .model
            .features
            .iter()
            .zip(restricted)
            .map(|(f, n)| (f.to_string(), json!(n)))
            .collect::<serde_json::Map<_, _>>(),
    }))
}

pub async fn get_stats(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.settings.auth.read(&req)?;
    Ok(HttpResponse::Ok().json(collect(&state).await?))
}

pub async fn get_event_stats(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.settings.auth.read(&req)?;
    let all = collect(&state).await?;
    let stats = all["events"].get(path.as_str()).cloned().ok_or_else(|| {
        ApiError::not_found(format!("no stats for event {:?}: it is not declared and was never seen", path.as_str()))
    })?;
    Ok(HttpResponse::Ok().json(
        json!({ "event": path.as_str(), "since": all["since"], "count": stats["count"], "amount": stats["amount"] }),
    ))
}

pub async fn reset_stats(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let by = state.settings.auth.admin(&req)?;
    let keys = &state.shared.keys;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let mut pipe = redis::pipe();
    for s in 0..state.shared.shard_count {
        pipe.cmd("DEL").arg(keys.stats(s)).ignore();
    }
    pipe.cmd("DEL").arg(keys.rejects()).ignore();
    pipe.cmd("SET").arg(keys.stats_since()).arg(now).ignore();
    state.ingest.run::<()>(&pipe, "stats_reset").await?;
    tracing::info!(by, "stats reset");
    Ok(HttpResponse::Ok().json(json!({ "reset": true, "since": rfc3339_ms(now), "by": by })))
}
