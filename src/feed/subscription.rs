//! Stored subscriptions: a named filter kept in Redis (`store::feed`), the
//! id its consumer last acknowledged, who stored it and when.

use restrictd_actors::store::feed as store;
use serde::{Deserialize, Serialize};

use super::FilterDef;
use crate::error::ApiError;
use crate::state::AppState;

/// A subscription as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stored {
    pub filter: FilterDef,
    /// The last feed id its consumer acknowledged: where a consumer without
    /// a cursor of its own resumes.
    #[serde(default)]
    pub acked: Option<String>,
    pub by: String,
    pub at_ms: u64,
}

/// A subscription's name: 1 to 128 letters, digits, `_`, `-` or `.`.
pub fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = |b: u8| b.is_ascii_alphanumeric() || b"_-.".contains(&b);
    if name.is_empty() || name.len() > 128 || !name.bytes().all(ok) {
        return Err(ApiError::bad_request(format!(
            "{name:?} is not a subscription name: 1 to 128 letters, digits, _, - or ."
        )));
    }
    Ok(())
}

/// The stored subscription `name`, if there is one.
pub async fn load(state: &AppState, name: &str) -> Result<Option<Stored>, ApiError> {
    let keys = &state.shared.keys;
    let json = state.ingest.call("hget", async |c| store::subscription(c, keys, name).await).await?;
    Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
}

/// Stores `sub` as `name` (its connected consumers reload it).
pub async fn save(state: &AppState, name: &str, sub: &Stored) -> Result<(), ApiError> {
    let keys = &state.shared.keys;
    let json = serde_json::to_string(sub).unwrap_or_default();
    state.ingest.call_write("hset", async |c| store::put_subscription(c, keys, name, &json).await).await
}
