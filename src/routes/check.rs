//! Checks: "can user X do Y?", answered from the published read view, never
//! waiting on event processing. The hot path allocates nothing it can avoid:
//! the two possible bodies per feature are built once at start-up.

use std::time::Instant;

use actix_web::http::header::{HeaderValue, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use restrictd_domain::schema::check_user_id;
use restrictd_domain::Model;

use super::features_json;
use crate::config::BeforeRecovery;
use crate::error::ApiError;
use crate::state::AppState;

/// `GET /can<feature>?user_id=X` → `{"can_<feature>": true|false}`, for
/// feature `feature` of the configuration file (its bodies are built once).
pub async fn check(req: HttpRequest, state: web::Data<AppState>, feature: usize) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let name = &state.settings.model.features[feature];
    let restricted = check_feature(&req, &state, &state.shared.model(), name)?;
    let body = state.check_bodies[feature][usize::from(restricted)].clone();
    state.check_latency.record(started.elapsed().as_secs_f64());
    Ok(HttpResponse::Ok().insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json"))).body(body))
}

/// `GET /can<feature>?user_id=X` for a feature a published rule set added
/// (not in the configuration file, so without a route of its own).
pub async fn check_published(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let model = state.shared.model();
    let Some(name) = model.features.iter().find(|f| super::check_path(f) == req.path()) else {
        return Err(super::no_route(&req));
    };
    let restricted = check_feature(&req, &state, &model, name)?;
    state.check_latency.record(started.elapsed().as_secs_f64());
    Ok(HttpResponse::Ok().json(serde_json::json!({ name.as_ref(): !restricted })))
}

/// Whether the user of `req` is restricted from `name`, by the bit the
/// current rule set `model` gives it (a published set may place the file's
/// features elsewhere).
fn check_feature(req: &HttpRequest, state: &AppState, model: &Model, name: &str) -> Result<bool, ApiError> {
    let _slot = state.checks.enter()?;
    let user = super::query_param(req, "user_id").ok_or_else(|| {
        ApiError::bad_request(format!("query parameter user_id is required: {}?user_id=12345", req.path()))
    })?;
    check_user_id(&user).map_err(ApiError::bad_request)?;
    let bit = model.features.iter().position(|f| **f == *name).ok_or_else(|| {
        ApiError::not_found(format!("{name} is not a feature of the current rule set (GET /v1/rules lists them)"))
    })?;
    let shard = state.shared.shard_of(&user);
    not_recovered(state, shard)?;
    Ok(state.shared.view.restricted(shard, &user) & (1 << bit) != 0)
}

/// `GET /v1/users/{user_id}/features` → every feature of the user.
pub async fn user_features(path: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let _slot = state.checks.enter()?;
    let user = super::user_id(&path)?;
    let shard = state.shared.shard_of(user);
    not_recovered(&state, shard)?;
    let mask = state.shared.view.restricted(shard, user);
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "user_id": user,
        "features": features_json(&state.shared.model(), mask),
    })))
}

/// 503 for a check of a shard not recovered yet, unless
/// `checks.before_recovery = "allow"`.
pub(crate) fn not_recovered(state: &AppState, shard: u32) -> Result<(), ApiError> {
    if state.settings.checks.before_recovery == BeforeRecovery::Allow || state.shared.recovered(shard) {
        return Ok(());
    }
    let mut e = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "not ready: shard {shard} of this user is still being recovered after a start, so its restrictions \
             are not known yet; apply your fallback and retry"
        ),
    );
    e.retry_after = Some(1);
    Err(e)
}
