//! Operators' overrides: `PUT`/`DELETE /v1/users/{user_id}/features/{feature}`.
//! The command is appended to the user's shard stream (ordered with the user's
//! events, durable once acknowledged) and the reply waits until it is applied.

use actix_web::{web, HttpRequest, HttpResponse};
use restrictd_actors::domain::admin::AdminCommand;
use restrictd_actors::domain::schema::check_user_id;
use serde::Deserialize;
use serde_json::json;

use super::body;
use super::events::wait_until_applied;
use super::features_json;
use crate::error::ApiError;
use crate::state::AppState;
use restrictd_actors::wire::Field;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideBody {
    state: String,
    reason: String,
    #[serde(default)]
    expires_in: Option<String>,
}

fn target<'a>(state: &AppState, path: &'a (String, String)) -> Result<(&'a str, &'a str), ApiError> {
    let user = check_user_id(&path.0).map_err(ApiError::bad_request)?;
    let feature = path.1.as_str();
    if state.shared.model().feature_index(feature).is_none() {
        return Err(ApiError::not_found(format!(
            "no feature {feature:?}; features: {}",
            state.shared.model().features.iter().map(|f| &**f).collect::<Vec<_>>().join(", ")
        )));
    }
    Ok((user, feature))
}

async fn submit(state: &AppState, command: &AdminCommand) -> Result<HttpResponse, ApiError> {
    let (AdminCommand::SetOverride { user_id: user, .. } | AdminCommand::ClearOverride { user_id: user, .. }) = command
    else {
        unreachable!("overrides are set and cleared here")
    };
    let shard = state.shared.shard_of(user);
    let bytes = serde_json::to_vec(command).expect("commands serialize");
    let id = state.ingest.append_field(state.shared.keys.events(shard), Field::Admin, &bytes).await?;
    wait_until_applied(state, shard, id).await?;
    let report = super::users::user_report(state, user).await?.map(|(r, _)| r);
    Ok(HttpResponse::Ok().json(json!({
        "user_id": user,
        "id": restrictd_actors::domain::EventRef::new(shard, id),
        "features": features_json(&state.shared.model(), report.as_ref().map_or(0, |r| r.restricted)),
        "overrides": report.map(|r| json!(r.overrides)).unwrap_or(json!([])),
    })))
}

/// `PUT /v1/users/{user_id}/features/{feature}` with `{"state", "reason", "expires_in"?}`.
pub async fn put_override(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = state.settings.auth.admin(&req)?.to_string();
    let (user, feature) = target(&state, &path)?;
    let bytes = body::read_json(&req, payload, state.settings.ingest.body_limit_bytes).await?;
    let b: OverrideBody = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::unprocessable(format!(
            "expected {{\"state\": \"allowed\" | \"restricted\", \"reason\": \"...\", \"expires_in\": \"7d\" (optional)}}: {e}"
        ))
    })?;
    let allowed = match b.state.as_str() {
        "allowed" => true,
        "restricted" => false,
        other => {
            return Err(ApiError::unprocessable(format!("state must be \"allowed\" or \"restricted\", not {other:?}")))
        }
    };
    if b.reason.trim().is_empty() {
        return Err(ApiError::unprocessable("reason must say why (it is kept in the audit trail)"));
    }
    let expires_at_ms = match b.expires_in.as_deref() {
        None => None,
        Some(d) => {
            let d = humantime::parse_duration(d).map_err(|e| {
                ApiError::unprocessable(format!("expires_in {d:?} is not a duration like \"7d\" ({e})"))
            })?;
            if d.is_zero() {
                return Err(ApiError::unprocessable(
                    "expires_in must be above zero (leave it out for an override that lasts until removed)",
                ));
            }
            let now = restrictd_actors::clock::now_ms();
            Some(now.saturating_add(d.as_millis() as u64))
        }
    };
    let command = AdminCommand::SetOverride {
        user_id: user.to_string(),
        feature: feature.to_string(),
        allowed,
        reason: b.reason,
        by,
        expires_at_ms,
    };
    submit(&state, &command).await
}

/// `DELETE /v1/users/{user_id}/features/{feature}`: the rules decide again.
pub async fn delete_override(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = state.settings.auth.admin(&req)?.to_string();
    let (user, feature) = target(&state, &path)?;
    if super::users::user_report(&state, user).await?.is_none() {
        return Err(ApiError::not_found(format!("user {user:?} has never been seen: there is no override to remove")));
    }
    let command = AdminCommand::ClearOverride { user_id: user.to_string(), feature: feature.to_string(), by };
    submit(&state, &command).await
}
