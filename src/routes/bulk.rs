//! `POST /v1/checks`: many checks in one request (a page listing many users).
//! Answers keep the request's order. Every item of one shard is answered
//! from one moment of that shard's state (its view is read under one hold of
//! its lock); items of different shards may be a moment apart, as separate
//! checks would be. One rule set answers them all.

use std::borrow::Cow;
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use restrictd_domain::schema::check_user_id;
use restrictd_domain::user::causes::{cause_of, Cause};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::body;
use super::check::not_recovered;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request<'a> {
    #[serde(borrow)]
    checks: Vec<Item<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Item<'a> {
    #[serde(borrow)]
    user_id: Cow<'a, str>,
    #[serde(borrow)]
    feature: Cow<'a, str>,
}

#[derive(Serialize)]
struct Results {
    results: Vec<Answer>,
}

#[derive(Serialize, Default)]
struct Answer {
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<Box<str>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    r#override: bool,
}

/// Bytes a request may take: room for `checks.batch_limit` items with long ids.
fn body_limit(state: &AppState) -> usize {
    state.settings.ingest.body_limit_bytes.max(state.settings.checks.batch_limit.get() * 256)
}

pub async fn post_checks(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let bytes = body::read_json(&req, payload, body_limit(&state)).await?;
    let started = Instant::now();
    let _slot = state.checks.enter()?;
    let request: Request = serde_json::from_slice(&bytes).map_err(|e| refusal(&bytes, e))?;
    let limit = state.settings.checks.batch_limit.get();
    if request.checks.len() > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{} checks, over checks.batch_limit ({limit}): split the request", request.checks.len()),
        )
        .with("limit", limit));
    }
    let model = state.shared.model();
    let mut bits = Vec::with_capacity(request.checks.len());
    let mut invalid = Vec::new();
    for (index, item) in request.checks.iter().enumerate() {
        let mut errors = Vec::new();
        if let Err(e) = check_user_id(&item.user_id) {
            errors.push(format!("user_id: {e}"));
        }
        let bit = model.feature_index(&item.feature);
        if bit.is_none() {
            errors
                .push(format!("feature: {:?} is not a feature of the current rule set (GET /v1/rules)", item.feature));
        }
        if !errors.is_empty() {
            invalid.push(json!({"index": index, "errors": errors}));
        }
        bits.push(bit.unwrap_or(0));
    }
    if !invalid.is_empty() {
        let n = invalid.len();
        return Err(ApiError::unprocessable(format!("{n} invalid checks; none answered")).with("invalid", invalid));
    }
    // Items by shard, so each shard's view is read once.
    let mut order: Vec<(u32, usize)> =
        request.checks.iter().enumerate().map(|(i, item)| (state.shared.shard_of(&item.user_id), i)).collect();
    order.sort_unstable();
    let mut answers: Vec<Answer> = (0..order.len()).map(|_| Answer::default()).collect();
    for run in order.chunk_by(|a, b| a.0 == b.0) {
        let shard = run[0].0;
        not_recovered(&state, shard)?;
        let view = state.shared.view.shard(shard);
        for &(_, i) in run {
            let item = &request.checks[i];
            let (mask, causes) = view.get(&item.user_id);
            let answer = &mut answers[i];
            answer.allowed = mask & (1 << bits[i]) == 0;
            match cause_of(causes, &item.feature).filter(|_| !answer.allowed) {
                Some(Cause::Rule(rule)) => answer.rule = Some(rule.into()),
                Some(Cause::Override) => answer.r#override = true,
                None => {}
            }
        }
    }
    state.check_latency.record(started.elapsed().as_secs_f64());
    Ok(HttpResponse::Ok().json(Results { results: answers }))
}

/// 400 for a body that is not JSON, 422 for JSON of another shape.
fn refusal(bytes: &[u8], e: serde_json::Error) -> ApiError {
    let shape = "a body {\"checks\": [{\"user_id\": \"12345\", \"feature\": \"can_message\"}, ...]}";
    if e.is_syntax() || e.is_eof() || serde_json::from_slice::<Value>(bytes).is_err() {
        return ApiError::bad_request(format!("the body is not JSON ({e}); send {shape}"));
    }
    ApiError::unprocessable(format!("{e}; send {shape}"))
}
