//! Liveness, readiness and the Prometheus exposition.

use actix_web::http::header::ContentType;
use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::state::AppState;

/// The process is alive.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Redis reachable, every owned shard caught up with its stream (its lease
/// taken), and the changelog of every other shard loaded.
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let redis = state.ingest.ping().await;
    let leased = state.shared.leased.load(std::sync::atomic::Ordering::Acquire);
    // A standby serves checks from the changelog while it waits for its shards.
    let standing_by = state.settings.instance.standby && !leased;
    let catching_up = if standing_by { Vec::new() } else { state.shared.catching_up() };
    let followed = state.shared.followed.load(std::sync::atomic::Ordering::Acquire);
    if redis && catching_up.is_empty() && followed {
        let mut body = json!({ "status": "ready", "instance": state.settings.instance.id });
        if standing_by {
            body["standby"] = json!("waiting for the leases of its shards; checks are answered from the changelog");
        }
        return HttpResponse::Ok().json(body);
    }
    let mut body = json!({ "status": "not ready", "instance": state.settings.instance.id });
    if !followed {
        body["changelog"] = json!("loading the restricted users of the shards other instances own");
    }
    if !redis {
        body["redis"] = json!(format!("unreachable at {}", state.settings.redis.target.describe()));
    }
    if !catching_up.is_empty() {
        body["shards_catching_up"] = json!(catching_up);
    }
    HttpResponse::ServiceUnavailable().json(body)
}

/// Prometheus text exposition.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state.record_gauges();
    HttpResponse::Ok()
        .content_type(ContentType("text/plain; version=0.0.4; charset=utf-8".parse().expect("static mime")))
        .body(state.metrics.render())
}
