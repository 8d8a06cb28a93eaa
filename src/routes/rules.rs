//! `GET /v1/rules`: every rule, its definition and its tripwire state.

use actix_web::{web, HttpRequest, HttpResponse};
use restrictd_actors::messages::GetRuleStatus;
use serde_json::json;

use super::rfc3339_ms;
use crate::error::ApiError;
use crate::state::AppState;

pub async fn get_rules(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.settings.auth.read(&req)?;
    let status = state.tripwire.send(GetRuleStatus).await.map_err(|e| {
        ApiError::new(actix_web::http::StatusCode::SERVICE_UNAVAILABLE, format!("tripwire unavailable: {e}"))
    })?;
    let t = &state.settings.tripwire.domain();
    let rules: Vec<_> = state
        .shared
        .model
        .rules
        .iter()
        .zip(status)
        .map(|(rule, s)| {
            json!({
                "name": rule.name,
                "description": rule.def.description,
                "on": rule.def.on,
                "when": rule.def.when,
                "restrict": rule.def.restrict,
                "tripwire": {
                    "state": s.state,
                    "restricted_in_window": s.restricted_in_window,
                    "population": s.population,
                    "since": (s.since_ms > 0).then(|| rfc3339_ms(s.since_ms)),
                    "trips": s.trips,
                    "threshold": t.threshold_ppm as f64 / 1_000_000.0,
                    "min_restricted": t.min_restricted,
                    "window_seconds": t.window_ms as f64 / 1000.0,
                },
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "rules": rules })))
}
