//! Liveness, readiness and the Prometheus exposition.

use actix_web::http::header::ContentType;
use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::startup::AppState;

/// The process is alive.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Redis reachable and every owned shard caught up with its stream.
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let redis = state.ingest.ping().await;
    let catching_up = state.shared.catching_up();
    if redis && catching_up.is_empty() {
        return HttpResponse::Ok().json(json!({ "status": "ready" }));
    }
    let mut body = json!({ "status": "not ready" });
    if !redis {
        body["redis"] = json!(format!("unreachable at {}", state.settings.redis_url));
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
