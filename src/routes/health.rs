//! Liveness, readiness and the Prometheus exposition.

use actix_web::http::header::ContentType;
use std::sync::atomic::Ordering;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::state::AppState;

/// The process is alive. Nothing else is said: a load balancer needs no more.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Redis reachable, every owned shard caught up with its stream (its lease
/// taken), and the changelog of every other shard loaded. The status alone
/// for anyone; the detail (instance, Redis address, shards) for readers, who
/// need the read token when `auth.require_for_reads` is on.
pub async fn ready(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let redis = state.ingest.ping().await;
    let leased = state.shared.leased.load(Ordering::Acquire);
    // A standby serves checks from the changelog while it waits for its shards.
    let standing_by = state.settings.instance.standby && !leased;
    let catching_up = if standing_by { Vec::new() } else { state.shared.catching_up() };
    let followed = state.shared.followed.load(Ordering::Acquire);
    let ready = redis && catching_up.is_empty() && followed;
    let mut body = json!({ "status": if ready { "ready" } else { "not ready" } });
    if state.settings.auth.read(&req).is_ok() {
        body["instance"] = json!(state.settings.instance.id);
        if standing_by {
            body["standby"] = json!("waiting for the leases of its shards; checks are answered from the changelog");
        }
        if !followed {
            body["changelog"] = json!("loading the restricted users of the shards other instances own");
        }
        if !redis {
            body["redis"] = json!(format!("unreachable at {}", state.settings.redis.target.describe()));
        }
        if !catching_up.is_empty() {
            body["shards_catching_up"] = json!(catching_up);
        }
    }
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus text exposition.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state.record_gauges();
    HttpResponse::Ok()
        .content_type(ContentType("text/plain; version=0.0.4; charset=utf-8".parse().expect("static mime")))
        .body(state.metrics.render())
}
