//! `POST /v1/rules/{name}/tripwire` with `{"action": "reset" | "trip"}`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use restrictd_actors::messages::{Control, ControlTripwire};
use serde::Deserialize;
use serde_json::json;

use super::body;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Action {
    action: Control,
}

pub async fn control(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = state.settings.auth.admin(&req)?.to_string();
    let rule = state
        .shared
        .model()
        .rule_index(&path)
        .ok_or_else(|| ApiError::not_found(format!("no rule {:?}; see GET /v1/rules", path.as_str())))?;
    let bytes = body::read_json(&req, payload, state.settings.ingest.body_limit_bytes).await?;
    let a: Action = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::unprocessable(format!("expected {{\"action\": \"reset\" | \"trip\"}}: {e}")))?;
    let status = state
        .tripwire
        .send(ControlTripwire { rule: rule as u16, action: a.action, by })
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("tripwire unavailable: {e}")))?
        .map_err(|e| ApiError::redis_unavailable(format!("the tripwire change was not recorded: {e}")))?;
    Ok(HttpResponse::Ok().json(json!({ "rule": path.as_str(), "tripwire": status })))
}
