//! `GET /v1/stats`, `GET /v1/stats/{event_name}`, `DELETE /v1/stats` (admin):
//! count and exact sum of `amount` per event name, rejections per reason, since
//! the first start or the last reset. They survive restarts (kept in Redis).

use super::access::Operator;
use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use restrictd_actors::clock::now_ms;
use restrictd_actors::store::{reads, EventStat};
use restrictd_domain::Money;
use serde_json::{json, Value};

use super::rfc3339_ms;
use crate::error::ApiError;
use crate::state::AppState;

async fn collect(state: &AppState) -> Result<Value, ApiError> {
    let keys = &state.shared.keys;
    let stored = state.ingest.call("stats", async |c| reads::stats(c, keys).await).await?;
    let mut events: BTreeMap<String, EventStat> =
        state.shared.model().schema.events.iter().map(|e| (e.to_string(), EventStat::default())).collect();
    for (name, stat) in stored.events {
        let e = events.entry(name).or_default();
        e.count += stat.count;
        e.amount += stat.amount;
    }
    let restricted = state.shared.view.count_by_feature(state.shared.model().features.len());
    Ok(json!({
        "since_ms": stored.since_ms,
        "since": stored.since_ms.map(rfc3339_ms),
        "events": events
            .into_iter()
            .map(|(name, s)| (name, json!({"count": s.count, "amount": Money(s.amount).to_string()})))
            .collect::<serde_json::Map<_, _>>(),
        "rejects": stored.rejects,
        "restricted_users": state
            .shared
            .model()
            .features
            .iter()
            .zip(restricted)
            .map(|(f, n)| (f.to_string(), json!(n)))
            .collect::<serde_json::Map<_, _>>(),
    }))
}

pub async fn get_stats(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(collect(&state).await?))
}

pub async fn get_event_stats(path: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let all = collect(&state).await?;
    let stats = all["events"].get(path.as_str()).cloned().ok_or_else(|| {
        ApiError::not_found(format!("no stats for event {:?}: it is not declared and was never seen", path.as_str()))
    })?;
    Ok(HttpResponse::Ok().json(json!({
        "event": path.as_str(),
        "since_ms": all["since_ms"],
        "since": all["since"],
        "count": stats["count"],
        "amount": stats["amount"],
    })))
}

pub async fn reset_stats(Operator(by): Operator, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let keys = &state.shared.keys;
    let now = now_ms();
    state.ingest.call_write("stats_reset", async |c| reads::reset_stats(c, keys, now).await).await?;
    tracing::info!(by, "stats reset");
    Ok(HttpResponse::Ok().json(json!({ "reset": true, "since_ms": now, "since": rfc3339_ms(now), "by": by })))
}

/// `GET /v1/timeseries?hours=24[&rule=<name>]`: counts per minute over the
/// last `hours` (1 to 24), from Redis (the same on every instance): events by
/// name and each rule's restrictions; with `rule`, that rule's restrictions,
/// shadow decisions and withheld ones.
pub async fn minutes(req: actix_web::HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    use restrictd_actors::store::minutes::{self, event_series, rule_series, RuleSeries};
    super::only_params(&req, &["hours", "rule"])?;
    let hours = super::number_param(&req, "hours", 24)?;
    if !(1..=24).contains(&hours) {
        return Err(ApiError::bad_request(format!("hours must be 1 to 24, not {hours}")));
    }
    let model = state.shared.model();
    let mut series: Vec<(String, &str, RuleSeries)> = Vec::new();
    match super::query_param(&req, "rule") {
        Some(rule) => {
            let r = model
                .rule_index(&rule)
                .ok_or_else(|| ApiError::not_found(format!("no rule {rule:?}; see GET /v1/rules")))?;
            let name = &model.rules[r].name;
            series.extend(RuleSeries::ALL.map(|kind| (rule_series(kind, name), &**name, kind)));
        }
        None => {
            let events = model.schema.events.iter().map(|e| (event_series(e), &**e, RuleSeries::Fired));
            series.extend(events);
            let rules = model.rules.iter().filter(|r| !r.retired);
            series.extend(rules.map(|r| (rule_series(RuleSeries::Fired, &r.name), &*r.name, RuleSeries::Fired)));
        }
    }
    let to = now_ms() / 60_000;
    let from = to + 1 - hours as u64 * 60;
    let names: Vec<String> = series.iter().map(|(s, _, _)| s.clone()).collect();
    let keys = &state.shared.keys;
    let mut counts = state.ingest.call("minutes", async |c| minutes::read(c, keys, &names, from, to).await).await?;
    let series: Vec<Value> = series
        .iter()
        .map(|(key, name, kind)| {
            let points = counts.remove(key).unwrap_or_default();
            let kind = if key.starts_with("event:") { "event" } else { kind.as_str() };
            json!({
                "name": name,
                "kind": kind,
                "total": points.iter().map(|(_, n)| n).sum::<u64>(),
                "points": points.iter().map(|(m, n)| [m * 60_000, *n]).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "from_ms": from * 60_000,
        "to_ms": (to + 1) * 60_000,
        "step_ms": 60_000,
        "series": series,
    })))
}
