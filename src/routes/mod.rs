//! HTTP routes, one file per resource. Handlers validate at the edge, then
//! either read published state (checks) or talk to Redis / an actor.

pub mod api;
pub mod body;
pub mod check;
pub mod docs;
pub mod events;
pub mod feed;
pub mod health;
pub mod history;
pub mod overrides;
pub mod rules;
pub mod stats;
pub mod tripwire;
pub mod users;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use restrictd_actors::domain::Model;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::startup::AppState;

/// Registers every route of the route table (see `api`).
pub fn configure(cfg: &mut web::ServiceConfig, state: &AppState) {
    api::configure(cfg, &state.shared.model);
}

/// `can_message` → `/canmessage`, as the reference service spells it.
pub fn check_path(feature: &str) -> String {
    format!("/{}", feature.replace('_', ""))
}

/// `{"can_message": true, ...}` for a restricted-features mask.
pub fn features_json(model: &Model, restricted: u64) -> Value {
    let map: Map<String, Value> = model
        .features
        .iter()
        .enumerate()
        .map(|(i, f)| (f.to_string(), Value::Bool(restricted & (1 << i) == 0)))
        .collect();
    Value::Object(map)
}

/// A query parameter, percent-decoded (borrowed when no decoding was needed).
pub fn query_param<'a>(req: &'a HttpRequest, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    form_urlencoded::parse(req.query_string().as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v)
}

/// What every read of one user does first: the read token, then the user id.
pub(crate) fn read_user<'a>(req: &HttpRequest, state: &AppState, user_id: &'a str) -> Result<&'a str, ApiError> {
    state.settings.auth.read(req)?;
    restrictd_actors::domain::schema::check_user_id(user_id).map_err(ApiError::bad_request)
}

pub(crate) async fn method_not_allowed(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("{} is not allowed on {}", req.method(), req.path())))
}

pub async fn not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found(format!("no route {} {}; see the README for the API", req.method(), req.path())))
}

pub fn rfc3339_ms(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
}

pub fn st(state: &web::Data<AppState>) -> &AppState {
    state.get_ref()
}
