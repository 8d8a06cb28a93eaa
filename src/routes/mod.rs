//! HTTP routes, one file per resource. Handlers validate at the edge, then
//! either read published state (checks) or talk to Redis / an actor.

pub mod access;
pub mod api;
pub mod authz;
pub mod body;
pub mod bulk;
pub mod check;
pub mod console;
pub mod docs;
pub mod events;
pub mod feed;
pub mod feed_ws;
pub mod health;
pub mod history;
pub mod openapi;
pub mod overrides;
pub mod register;
pub mod rules;
pub mod rulesets;
pub mod schemas;
pub mod stats;
pub mod subscriptions;
pub mod tripwire;
pub mod users;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use restrictd_domain::Model;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::state::AppState;

/// Registers every route of the route table (see `api`).
pub fn configure(cfg: &mut web::ServiceConfig, state: &AppState) {
    api::configure(cfg, &state.shared.model(), &state.settings.auth);
}

/// The checks listener's routes (`http.checks_addr`).
pub fn configure_checks(cfg: &mut web::ServiceConfig, state: &AppState) {
    api::configure_checks(cfg, &state.shared.model(), &state.settings.auth);
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
    query_value(req.query_string(), name)
}

/// The first value of `name` in a query string, as `form_urlencoded` reads it.
/// A query without `%` or `+` decodes to itself: it is split in place (the
/// check path's case) instead of decoding every pair.
pub fn query_value<'a>(query: &'a str, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    if query.bytes().any(|b| b == b'%' || b == b'+') {
        return form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v);
    }
    let mut rest = query;
    loop {
        let (pair, next) = match rest.bytes().position(|b| b == b'&') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        match pair.strip_prefix(name).map(|after| (after.is_empty(), after.strip_prefix('='))) {
            Some((true, _)) => return Some(std::borrow::Cow::Borrowed("")),
            Some((false, Some(value))) => return Some(std::borrow::Cow::Borrowed(value)),
            _ => {}
        }
        rest = next?;
    }
}

/// A user id from a path, or 400.
pub(crate) fn user_id(user_id: &str) -> Result<&str, ApiError> {
    restrictd_domain::schema::check_user_id(user_id).map_err(ApiError::bad_request)
}

/// 400 for a query parameter this endpoint does not take (a typo would
/// otherwise be ignored silently, and a filter not applied).
pub(crate) fn only_params(req: &HttpRequest, allowed: &[&str]) -> Result<(), ApiError> {
    for (name, _) in form_urlencoded::parse(req.query_string().as_bytes()) {
        if !allowed.contains(&&*name) {
            return Err(ApiError::bad_request(format!(
                "unknown query parameter {name:?}; {} takes {}",
                req.path(),
                allowed.join(", ")
            )));
        }
    }
    Ok(())
}

/// A whole-number query parameter, `default` when absent; 400 when not a
/// number. A number too large for the machine reads as the largest (a limit
/// is capped anyway, an offset that far gives an empty page).
pub(crate) fn number_param(req: &HttpRequest, name: &str, default: usize) -> Result<usize, ApiError> {
    match query_param(req, name) {
        None => Ok(default),
        Some(v) => whole_number(&v)
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
            .ok_or_else(|| ApiError::bad_request(format!("{name} must be a whole number, not {v:?}"))),
    }
}

/// Decimal digits as a number, saturating at `u64::MAX`; `None` for anything
/// else (a sign, a fraction, nothing).
pub(crate) fn whole_number(v: &str) -> Option<u64> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(v.parse().unwrap_or(u64::MAX))
}

/// 405, with the methods the path takes in `Allow`.
pub(crate) async fn method_not_allowed(req: HttpRequest, allow: String) -> actix_web::HttpResponse {
    let e = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} is not allowed on {}; it takes {allow}", req.method(), req.path()),
    );
    let mut reply = actix_web::ResponseError::error_response(&e);
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&allow) {
        reply.headers_mut().insert(actix_web::http::header::ALLOW, value);
    }
    reply
}

pub async fn not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(no_route(&req))
}

pub fn no_route(req: &HttpRequest) -> ApiError {
    ApiError::not_found(format!("no route {} {}; see the README for the API", req.method(), req.path()))
}

pub use restrictd_domain::time::rfc3339_ms;

pub fn st(state: &web::Data<AppState>) -> &AppState {
    state.get_ref()
}

#[cfg(test)]
mod tests {
    use super::query_value;

    #[test]
    fn query_values_read_as_form_urlencoded_reads_them() {
        let queries = [
            "user_id=12345",
            "user_id=12345&wait=applied",
            "wait=applied&user_id=a.b-c_d~e",
            "user_id=first&user_id=second",
            "user_id=&x=1",
            "user_id",
            "&&user_id=x&&",
            "user_id=a=b",
            "user_idx=1&xuser_id=2",
            "user_id=a%20b",
            "user_id=a+b",
            "user%5Fid=encoded-key",
            "user_id=%E2%82%AC",
            "user_id=%zz",
            "",
        ];
        for q in queries {
            for name in ["user_id", "wait", "x"] {
                let expected = form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v);
                assert_eq!(query_value(q, name), expected, "{name} in {q:?}");
            }
        }
    }
}
