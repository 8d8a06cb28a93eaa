//! `GET /v1/users/{user_id}/history`: a user's restriction changes, newest
//! first, paginated. Changes are recorded with the shard's snapshot, so a
//! change appears here within `persistence.flush_interval`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use restrictd_actors::store::reads;

use crate::error::ApiError;
use crate::state::AppState;

pub const MAX_LIMIT: usize = 500;

pub async fn get_history(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let user = super::user_id(&path)?;
    super::only_params(&req, &["limit", "offset"])?;
    let limit = super::number_param(&req, "limit", 50)?.clamp(1, MAX_LIMIT);
    let offset = super::number_param(&req, "offset", 0)?;
    let (keys, shard) = (&state.shared.keys, state.shared.shard_of(user));
    let items =
        state.ingest.call("lrange", async |c| reads::history(c, keys, shard, user, offset, limit).await).await?;
    if items.is_empty() && super::users::user_report(&state, user).await?.is_none() {
        return Err(ApiError::not_found(format!("user {user:?} has never been seen (every feature is allowed)")));
    }
    let changes: Vec<Value> = items.iter().filter_map(|j| serde_json::from_str(j).ok()).collect();
    let next = offset.checked_add(limit).filter(|_| changes.len() == limit);
    Ok(HttpResponse::Ok().json(json!({
        "user_id": user,
        "offset": offset,
        "changes": changes,
        "next_offset": next,
    })))
}
