//! `GET /v1/rules`: every rule, its definition and its tripwire state.

use actix_web::{web, HttpResponse};
use restrictd_actors::messages::GetRuleStatus;
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

pub async fn get_rules(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let status = state.tripwire.send(GetRuleStatus).await.map_err(|e| {
        ApiError::new(actix_web::http::StatusCode::SERVICE_UNAVAILABLE, format!("tripwire unavailable: {e}"))
    })?;
    let rules: Vec<_> = state
        .shared
        .model()
        .rules
        .iter()
        .zip(status)
        .filter(|(rule, _)| !rule.retired)
        .map(|(rule, s)| {
            json!({
                "name": rule.name,
                "description": rule.def.description,
                "on": rule.def.on,
                "when": rule.def.when,
                "restrict": rule.def.restrict,
                "tripwire": s,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "version": state.shared.model_version(),
        "file_differs": state.file_differs.load(std::sync::atomic::Ordering::Acquire),
        "rules": rules,
    })))
}
