//! `GET /v1/users/{user_id}`: aggregates and restrictions, each with its rule,
//! the entry id of the event that triggered it and when. Asks the owning shard
//! when this instance owns it; otherwise reads what its owner persisted.

use actix_web::{web, HttpResponse};
use restrictd_actors::messages::GetUser;
use restrictd_actors::store::reads;
use restrictd_domain::snapshot::decode_user;
use restrictd_domain::user::UserReport;
use serde_json::json;

use super::{features_json, rfc3339_ms};
use crate::error::ApiError;
use crate::state::AppState;

pub async fn get_user(path: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let user = super::user_id(&path)?;
    let shard = state.shared.shard_of(user);
    if state.shards[shard as usize].is_some() && !state.shared.recovered(shard) {
        // Its actor would answer from a state still being replayed.
        let mut e = ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: shard {shard} of this user is still being recovered after a start; retry shortly"),
        );
        e.retry_after = Some(1);
        return Err(e);
    }
    let (report, source) = user_report(&state, user)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {user:?} has never been seen (every feature is allowed)")))?;
    let shown = |list: &[restrictd_domain::user::RestrictionReport]| -> Vec<serde_json::Value> {
        list.iter()
            .map(|r| {
                json!({
                    "rule": r.rule,
                    "features": r.features,
                    "event_id": r.event_id,
                    "at_ms": r.at_ms,
                    "at": rfc3339_ms(r.at_ms),
                    "expires_at_ms": r.expires_at_ms,
                    "expires_at": r.expires_at_ms.map(rfc3339_ms),
                })
            })
            .collect()
    };
    let restrictions = shown(&report.restrictions);
    let mut body = json!({
        "user_id": user,
        "shard": shard,
        "features": features_json(&state.shared.model(), report.restricted),
        "source": source,
        "aggregates": report.aggregates,
        "restrictions": restrictions,
        "would_restrict": shown(&report.would_restrict),
        "overrides": report.overrides,
    });
    if !report.windows.is_empty() {
        body["windows"] = json!(report.windows);
    }
    Ok(HttpResponse::Ok().json(body))
}

/// A user's report and where it came from: `"memory"` (this instance owns the
/// shard) or `"redis"` (the owner's last persisted snapshot, up to
/// `persistence.flush_interval` old).
pub(crate) async fn user_report(state: &AppState, user: &str) -> Result<Option<(UserReport, &'static str)>, ApiError> {
    let shard = state.shared.shard_of(user);
    if let Some(actor) = &state.shards[shard as usize] {
        let report = actor.send(GetUser(user.to_string())).await.map_err(|e| {
            ApiError::new(actix_web::http::StatusCode::SERVICE_UNAVAILABLE, format!("shard {shard} unavailable: {e}"))
        })?;
        return Ok(report.map(|r| (r, "memory")));
    }
    let keys = &state.shared.keys;
    let blob = state.ingest.call("hget", async |c| reads::user_snapshot(c, keys, shard, user).await).await?;
    let Some(blob) = blob else { return Ok(None) };
    let model = &state.shared.model();
    let user_state = decode_user(model, &blob).map_err(|e| {
        ApiError::new(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("the stored state of user {user:?} cannot be read: {e}"),
        )
    })?;
    Ok(Some((user_state.report_at(model, shard, restrictd_actors::clock::now_ms()), "redis")))
}
