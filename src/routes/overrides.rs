//! Operators' overrides: `PUT`/`DELETE /v1/users/{user_id}/features/{feature}`.
//! The command is appended to the user's shard stream (ordered with the user's
//! events, durable once acknowledged) and the reply waits until it is applied.

use super::access::Operator;
use actix_web::{web, HttpRequest, HttpResponse};
use restrictd_domain::admin::AdminCommand;
use restrictd_domain::schema::check_user_id;
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
        "id": restrictd_domain::EventRef::new(shard, id),
        "features": features_json(&state.shared.model(), report.as_ref().map_or(0, |r| r.restricted)),
        "overrides": report.map(|r| json!(r.overrides)).unwrap_or(json!([])),
    })))
}

/// `PUT /v1/users/{user_id}/features/{feature}` with `{"state", "reason", "expires_in"?}`.
pub async fn put_override(
    req: HttpRequest,
    Operator(by): Operator,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
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
            let ms = expires_in_ms(d).ok_or_else(|| {
                ApiError::unprocessable(format!(
                    "expires_in {d:?} is not a whole number above zero and a unit (ms, s, m, h, d or w), like \"7d\"; \
                     leave it out for an override that lasts until removed"
                ))
            })?;
            Some(restrictd_actors::clock::now_ms().saturating_add(ms))
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

/// `expires_in` in ms: exactly what `schemas::EXPIRES_IN_PATTERN` admits
/// (1 to 9 digits without a leading zero, then ms, s, m, h, d or w).
fn expires_in_ms(text: &str) -> Option<u64> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    if !(1..=9).contains(&digits) || number.starts_with('0') {
        return None;
    }
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        _ => return None,
    };
    number.parse::<u64>().ok().map(|n| n * unit_ms)
}

/// `DELETE /v1/users/{user_id}/features/{feature}`: the rules decide again.
pub async fn delete_override(
    Operator(by): Operator,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, feature) = target(&state, &path)?;
    if super::users::user_report(&state, user).await?.is_none() {
        return Err(ApiError::not_found(format!("user {user:?} has never been seen: there is no override to remove")));
    }
    let command = AdminCommand::ClearOverride { user_id: user.to_string(), feature: feature.to_string(), by };
    submit(&state, &command).await
}

#[cfg(test)]
mod tests {
    use super::expires_in_ms;

    #[test]
    fn expires_in_takes_a_number_and_a_unit() {
        assert_eq!(expires_in_ms("7d"), Some(7 * 86_400_000));
        assert_eq!(expires_in_ms("250ms"), Some(250));
        assert_eq!(expires_in_ms("999999999w"), Some(999_999_999 * 604_800_000));
        for bad in ["", "0s", "07d", "1", "d", "1h 30m", "1.5h", "1000000000s", " 7d", "7D", "-1s"] {
            assert_eq!(expires_in_ms(bad), None, "{bad:?}");
        }
    }
}
