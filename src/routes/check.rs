//! Checks: "can user X do Y?", answered from the published read view, never
//! waiting on event processing. The hot path allocates nothing it can avoid:
//! the two possible bodies per feature are built once at start-up.

use std::time::Instant;

use actix_web::http::header::{HeaderValue, CONTENT_TYPE};
use actix_web::{web, HttpRequest, HttpResponse};
use restrictd_actors::domain::schema::check_user_id;

use super::features_json;
use crate::error::ApiError;
use crate::state::AppState;

/// `GET /can<feature>?user_id=X` → `{"can_<feature>": true|false}`.
pub async fn check(req: HttpRequest, state: web::Data<AppState>, feature: usize) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let _slot = state.checks.enter()?;
    state.settings.auth.read(&req)?;
    let user = super::query_param(&req, "user_id").ok_or_else(|| {
        ApiError::bad_request(format!("query parameter user_id is required: {}?user_id=12345", req.path()))
    })?;
    check_user_id(&user).map_err(ApiError::bad_request)?;
    let restricted = state.shared.restricted(&user) & (1 << feature) != 0;
    let body = state.check_bodies[feature][usize::from(restricted)].clone();
    state.check_latency.record(started.elapsed().as_secs_f64());
    Ok(HttpResponse::Ok().insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json"))).body(body))
}

/// `GET /v1/users/{user_id}/features` → every feature of the user.
pub async fn user_features(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let _slot = state.checks.enter()?;
    let user = super::read_user(&req, &state, &path)?;
    let mask = state.shared.restricted(user);
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "user_id": user,
        "features": features_json(&state.shared.model, mask),
    })))
}
