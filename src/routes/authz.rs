//! `/v1/authz`: a gateway's question "may this request through?", answered
//! from memory like a check. 200 lets it through, 403 refuses it (naming the
//! feature and what restricts it), 400 and 503 make a gateway refuse it too.

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use restrictd_domain::schema::check_user_id;
use restrictd_domain::user::causes::{cause_of, Cause};
use serde_json::json;

use super::check::not_recovered;
use crate::error::ApiError;
use crate::gateway::{self, Original, Verdict};
use crate::state::AppState;

/// The feature a request was checked for (on 200 and 403).
pub const FEATURE_HEADER: &str = "x-restrictd-feature";
/// The rule that restricts the user (on 403, when a rule does).
pub const RULE_HEADER: &str = "x-restrictd-rule";
/// `true` on a 403 an operator's override made.
pub const OVERRIDE_HEADER: &str = "x-restrictd-override";

/// `/v1/authz` and any path under it, any method.
pub async fn authz(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let _slot = state.checks.enter()?;
    let gw = &state.settings.gateway;
    let original = gateway::original(&req).map_err(ApiError::bad_request)?;
    let Some(feature) = gw.feature(&original) else {
        return Ok(by_policy(gw.unmatched, None, || format!("no gateway route matches {}", described(&original))));
    };
    // A user id may be any UTF-8 (as in a check's query), not only ASCII.
    let user = match req.headers().get(&gw.user_header).map(|v| std::str::from_utf8(v.as_bytes())) {
        None => {
            let why = || format!("{} without {}: no user to check", described(&original), gw.user_header);
            return Ok(by_policy(gw.missing_user, Some(feature), why));
        }
        Some(Ok(user)) => user,
        Some(Err(_)) => return Err(ApiError::bad_request(format!("header {} is not UTF-8", gw.user_header))),
    };
    check_user_id(user).map_err(|e| ApiError::bad_request(format!("header {}: {e}", gw.user_header)))?;
    let model = state.shared.model();
    let shard = state.shared.shard_of(user);
    not_recovered(&state, shard)?;
    // A feature the rule set in force lacks restricts nobody.
    let restricted = model.feature_index(feature).and_then(|bit| {
        let view = state.shared.view.shard(shard);
        let (mask, causes) = view.get(user);
        (mask & (1 << bit) != 0).then(|| cause_of(causes, feature).map(owned))
    });
    state.check_latency.record(started.elapsed().as_secs_f64());
    Ok(match restricted {
        None => allowed(Some(feature)),
        Some(cause) => refused(user, feature, cause.as_ref().map(|(rule, o)| (rule.as_deref(), *o))),
    })
}

/// A cause out of the view's lock: (the rule, whether an override).
fn owned(cause: Cause<'_>) -> (Option<String>, bool) {
    match cause {
        Cause::Rule(rule) => (Some(rule.to_string()), false),
        Cause::Override => (None, true),
    }
}

fn described(o: &Original) -> String {
    format!("{} {}", o.method, o.path)
}

/// 200 without a body: a gateway reads the headers only, and a body it
/// leaves unread would close its connection to restrictd (nginx opens one
/// per request then).
fn allowed(feature: Option<&str>) -> HttpResponse {
    let mut reply = HttpResponse::Ok();
    if let Some(f) = feature {
        reply.insert_header((FEATURE_HEADER, f));
    }
    reply.finish()
}

/// 403: `cause` is the rule (or none) and whether an override restricts;
/// `None` when the cause is not known yet.
fn refused(user: &str, feature: &str, cause: Option<(Option<&str>, bool)>) -> HttpResponse {
    let (rule, by_override) = cause.unwrap_or((None, false));
    let why = match (rule, by_override) {
        (Some(rule), _) => format!("rule {rule}"),
        (None, true) => "an operator's override".to_string(),
        (None, false) => "a restriction".to_string(),
    };
    let mut reply = HttpResponse::build(StatusCode::FORBIDDEN);
    reply.insert_header((FEATURE_HEADER, feature));
    if let Some(rule) = rule {
        reply.insert_header((RULE_HEADER, rule));
    }
    if by_override {
        reply.insert_header((OVERRIDE_HEADER, "true"));
    }
    reply.json(json!({
        "error": format!("user {user} may not use {feature}: restricted by {why}"),
        "allowed": false,
        "feature": feature,
        "rule": rule,
        "override": by_override,
    }))
}

/// The answer a policy (`gateway.unmatched`, `gateway.missing_user`) gives.
fn by_policy(verdict: Verdict, feature: Option<&str>, why: impl FnOnce() -> String) -> HttpResponse {
    match verdict {
        Verdict::Allow => allowed(feature),
        Verdict::Deny => {
            let mut reply = HttpResponse::build(StatusCode::FORBIDDEN);
            if let Some(f) = feature {
                reply.insert_header((FEATURE_HEADER, f));
            }
            reply.json(json!({"error": why(), "allowed": false, "feature": feature, "rule": null, "override": false}))
        }
    }
}
