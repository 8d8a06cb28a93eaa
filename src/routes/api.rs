//! The route table: every endpoint once, with its documentation. `configure`
//! registers handlers from it and `/openapi.json` is generated from it, so a
//! route cannot exist without being documented.

use actix_web::guard::{Guard, GuardContext};
use actix_web::http::Method;
use actix_web::web;
use restrictd_actors::domain::schema::PropType;
use restrictd_actors::domain::Model;
use serde_json::{json, Map, Value};

use super::{check, check_path, docs, events, feed, health, history, overrides, rules, stats, tripwire, users};

/// Which handler serves an endpoint.
#[derive(Debug, Clone, Copy)]
pub enum Handler {
    PostEvent,
    PostEvents,
    Check(usize),
    UserFeatures,
    User,
    Rules,
    Health,
    Ready,
    Metrics,
    OpenApi,
    Docs,
    PutOverride,
    DeleteOverride,
    History,
    TripwireControl,
    Feed,
    Stats,
    EventStats,
    ResetStats,
    Dashboard,
}

pub struct Endpoint {
    pub method: &'static str,
    pub path: String,
    pub tag: &'static str,
    pub summary: String,
    pub handler: Handler,
    /// Query parameters: (name, required, description).
    pub query: &'static [(&'static str, bool, &'static str)],
    /// (status, description) of the replies.
    pub responses: &'static [(u16, &'static str)],
    /// The request body's schema reference, if any.
    pub body: Option<&'static str>,
}

const WAIT: (&str, bool, &str) = (
    "wait",
    false,
    "`applied`: reply once the event is applied, with the user's features (504 after ingest.wait_timeout)",
);

/// Every endpoint of this configuration (check routes come from its features).
pub fn endpoints(model: &Model) -> Vec<Endpoint> {
    let e = |method, path: &str, tag, summary: &str, handler| Endpoint {
        method,
        path: path.to_string(),
        tag,
        summary: summary.to_string(),
        handler,
        query: &[],
        responses: &[(200, "OK")],
        body: None,
    };
    let mut list = vec![
        Endpoint {
            query: &[WAIT],
            responses: &[
                (200, "appended (and applied with wait=applied)"),
                (400, "malformed JSON, missing user_id"),
                (413, "body too large"),
                (415, "not application/json"),
                (422, "unknown event, bad property"),
                (429, "too many writes in flight, or the service overloaded (Retry-After)"),
                (503, "Redis unavailable; nothing accepted (Retry-After)"),
                (504, "appended, not applied in time"),
            ],
            body: Some("Event"),
            ..e("post", "/event", "events", "Post one event (the reference API)", Handler::PostEvent)
        },
        Endpoint {
            query: &[WAIT],
            responses: &[
                (202, "all appended"),
                (200, "all appended and applied (wait=applied)"),
                (400, "not a JSON array, or empty"),
                (413, "over ingest.batch_limit events or the body limit"),
                (422, "invalid items; none accepted"),
                (429, "too many writes in flight, or the service overloaded (Retry-After)"),
                (503, "Redis unavailable; nothing accepted (Retry-After)"),
                (504, "appended, not applied in time"),
            ],
            body: Some("EventBatch"),
            ..e("post", "/v1/events", "events", "Post a batch of events, all or nothing", Handler::PostEvents)
        },
    ];
    for (i, f) in model.features.iter().enumerate() {
        list.push(Endpoint {
            query: &[("user_id", true, "the user to check")],
            responses: &[
                (200, "the answer: true unless restricted (a user never seen is allowed)"),
                (400, "missing user_id"),
                (429, "too many checks in flight (Retry-After)"),
            ],
            ..e("get", &check_path(f), "checks", &format!("Can the user use {f}?"), Handler::Check(i))
        });
    }
    list.extend([
        Endpoint {
            responses: &[(200, "every feature of the user"), (400, "bad user_id")],
            ..e("get", "/v1/users/{user_id}/features", "checks", "All features of a user", Handler::UserFeatures)
        },
        Endpoint {
            responses: &[
                (
                    200,
                    "aggregates and restrictions with their rule, event and time; \"source\": \"memory\" on the shard's owner, \"redis\" (its last snapshot) elsewhere",
                ),
                (404, "user never seen"),
            ],
            ..e("get", "/v1/users/{user_id}", "users", "Explain a user", Handler::User)
        },
        e("get", "/v1/rules", "rules", "Rules with their definition and tripwire state", Handler::Rules),
        e("get", "/health", "operations", "The process is alive", Handler::Health),
        Endpoint {
            responses: &[
                (200, "Redis reachable, every owned shard caught up, the other shards' changelog loaded"),
                (503, "not ready, with the reason"),
            ],
            ..e("get", "/ready", "operations", "Ready to serve", Handler::Ready)
        },
        e("get", "/metrics", "operations", "Prometheus exposition", Handler::Metrics),
        Endpoint {
            responses: &[
                (200, "applied: the user's features and overrides"),
                (401, "no admin token"),
                (403, "wrong token"),
                (404, "unknown feature"),
                (422, "bad body"),
                (503, "Redis unavailable"),
            ],
            body: Some("Override"),
            ..e(
                "put",
                "/v1/users/{user_id}/features/{feature}",
                "admin",
                "Override a feature for a user (beats every rule)",
                Handler::PutOverride,
            )
        },
        Endpoint {
            responses: &[
                (200, "applied: the user's features"),
                (401, "no admin token"),
                (403, "wrong token"),
                (404, "unknown feature"),
            ],
            ..e(
                "delete",
                "/v1/users/{user_id}/features/{feature}",
                "admin",
                "Remove an override: the rules decide again",
                Handler::DeleteOverride,
            )
        },
        Endpoint {
            query: &[
                ("limit", false, "changes per page (default 50, at most 500)"),
                ("offset", false, "changes to skip (default 0)"),
            ],
            ..e(
                "get",
                "/v1/users/{user_id}/history",
                "users",
                "A user's restriction changes, newest first",
                Handler::History,
            )
        },
        Endpoint {
            responses: &[
                (200, "the rule's tripwire after the action"),
                (401, "no admin token"),
                (403, "wrong token"),
                (404, "unknown rule"),
                (422, "bad body"),
            ],
            body: Some("TripwireAction"),
            ..e(
                "post",
                "/v1/rules/{name}/tripwire",
                "admin",
                "Reset (re-arm) or trip (switch off) a rule",
                Handler::TripwireControl,
            )
        },
        Endpoint {
            query: &[
                ("events", false, "also stream these events (comma-separated names, or all)"),
                ("rules", false, "only changes by these rules"),
                ("features", false, "only changes of these features"),
                ("users", false, "only changes of these users"),
            ],
            responses: &[
                (200, "text/event-stream: subscribed, change, tripwire, event, disconnect"),
                (400, "unknown filter value"),
            ],
            ..e(
                "get",
                "/v1/feed",
                "feed",
                "Live feed of restriction and tripwire changes (Server-Sent Events)",
                Handler::Feed,
            )
        },
        e("get", "/v1/stats", "stats", "Counts and amounts per event, rejections per reason", Handler::Stats),
        Endpoint {
            responses: &[(200, "count and amount"), (404, "unknown event")],
            ..e("get", "/v1/stats/{event_name}", "stats", "Count and amount of one event", Handler::EventStats)
        },
        Endpoint {
            responses: &[(200, "reset"), (401, "no admin token"), (403, "wrong token")],
            ..e("delete", "/v1/stats", "admin", "Reset the stats", Handler::ResetStats)
        },
        e("get", "/", "operations", "Operator's dashboard page", Handler::Dashboard),
        e("get", "/openapi.json", "operations", "This document", Handler::OpenApi),
        e("get", "/docs", "operations", "API documentation page", Handler::Docs),
    ]);
    list
}

/// Registers every endpoint; several methods on one path share a resource.
pub fn configure(cfg: &mut web::ServiceConfig, model: &Model) {
    let list = endpoints(model);
    let mut paths: Vec<&str> = Vec::new();
    for e in &list {
        if !paths.contains(&e.path.as_str()) {
            paths.push(&e.path);
        }
    }
    for path in paths {
        // Named by its pattern: the `route` label of the request metrics.
        let allow: Vec<String> =
            list.iter().filter(|e| e.path == path).map(|e| e.method.to_ascii_uppercase()).collect();
        let allow = allow.join(", ");
        let not_allowed = move |req| super::method_not_allowed(req, allow.clone());
        let mut resource = web::resource(path).name(path).default_service(web::to(not_allowed));
        for e in list.iter().filter(|e| e.path == path) {
            resource = resource.route(route(e));
        }
        cfg.service(resource);
    }
}

/// Matches one HTTP method. actix-web's own method guard also records every
/// method it saw in the request's extensions (for an `Allow` header this
/// service does not send): three allocations per request, on checks too.
struct MethodIs(Method);

impl Guard for MethodIs {
    fn check(&self, ctx: &GuardContext<'_>) -> bool {
        ctx.head().method == self.0
    }
}

fn route(e: &Endpoint) -> actix_web::Route {
    let method = match e.method {
        "get" => Method::GET,
        "post" => Method::POST,
        "put" => Method::PUT,
        "delete" => Method::DELETE,
        other => unreachable!("method {other} in the route table"),
    };
    let r = web::route().guard(MethodIs(method));
    match e.handler {
        Handler::PostEvent => r.to(events::post_event),
        Handler::PostEvents => r.to(events::post_events),
        Handler::Check(i) => r.to(move |req, st| check::check(req, st, i)),
        Handler::UserFeatures => r.to(check::user_features),
        Handler::User => r.to(users::get_user),
        Handler::Rules => r.to(rules::get_rules),
        Handler::Health => r.to(health::health),
        Handler::Ready => r.to(health::ready),
        Handler::Metrics => r.to(health::metrics),
        Handler::OpenApi => r.to(docs::openapi),
        Handler::Docs => r.to(docs::page),
        Handler::PutOverride => r.to(overrides::put_override),
        Handler::DeleteOverride => r.to(overrides::delete_override),
        Handler::History => r.to(history::get_history),
        Handler::TripwireControl => r.to(tripwire::control),
        Handler::Feed => r.to(feed::feed),
        Handler::Stats => r.to(stats::get_stats),
        Handler::EventStats => r.to(stats::get_event_stats),
        Handler::ResetStats => r.to(stats::reset_stats),
        Handler::Dashboard => r.to(docs::dashboard),
    }
}

/// The OpenAPI 3 document of this configuration.
pub fn openapi(model: &Model) -> Value {
    let mut paths = Map::new();
    for e in endpoints(model) {
        paths.entry(e.path.clone()).or_insert_with(|| json!({}))[e.method] = operation(&e);
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "restrictd",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Feature restriction service: post user events, ask whether a user may use a feature.",
        },
        "paths": paths,
        "components": {"schemas": schemas(model)},
    })
}

/// One endpoint's operation object.
fn operation(e: &Endpoint) -> Value {
    let mut params: Vec<Value> = e
        .query
        .iter()
        .map(|(name, required, d)| json!({"name": name, "in": "query", "required": required, "description": d, "schema": {"type": "string"}}))
        .collect();
    for seg in e.path.split('/').filter(|s| s.starts_with('{')) {
        let name = seg.trim_matches(|c| c == '{' || c == '}');
        params.push(json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}));
    }
    let responses: Map<String, Value> = e
        .responses
        .iter()
        .map(|(status, d)| {
            let schema =
                if *status >= 400 { json!({"$ref": "#/components/schemas/Error"}) } else { json!({"type": "object"}) };
            (status.to_string(), json!({"description": d, "content": {"application/json": {"schema": schema}}}))
        })
        .collect();
    let mut op = json!({
        "summary": e.summary,
        "tags": [e.tag],
        "operationId": operation_id(e.method, &e.path),
        "parameters": params,
        "responses": responses,
    });
    if let Some(schema) = e.body {
        op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
    }
    op
}

fn operation_id(method: &str, path: &str) -> String {
    let words: Vec<&str> = path.split(['/', '{', '}', '.']).filter(|s| !s.is_empty()).collect();
    format!("{method}_{}", words.join("_"))
}

fn schemas(model: &Model) -> Value {
    let events: Vec<Value> = model
        .schema
        .events
        .iter()
        .zip(&model.schema.properties)
        .map(|(name, props)| {
            let mut properties = Map::new();
            properties.insert("user_id".into(), json!({"type": "string", "minLength": 1, "maxLength": 256}));
            let mut required = vec![json!("user_id")];
            for (p, t) in props {
                let schema = match t {
                    PropType::String => json!({"type": "string", "minLength": 1}),
                    PropType::Money => json!({"type": "number", "minimum": 0, "description": "exact, at most 6 decimal places"}),
                    PropType::Integer => json!({"type": "integer"}),
                    PropType::Bool => json!({"type": "boolean"}),
                };
                properties.insert(p.to_string(), schema);
                required.push(json!(p.to_string()));
            }
            json!({
                "type": "object",
                "required": ["name", "event_properties"],
                "properties": {
                    "name": {"type": "string", "enum": [name.to_string()]},
                    "event_id": {"type": "string", "description": "idempotency key: applied once per user within ingest.dedup_window"},
                    "event_properties": {"type": "object", "required": required, "properties": properties},
                },
            })
        })
        .collect();
    json!({
        "Event": {"oneOf": events},
        "EventBatch": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
        "Override": {
            "type": "object",
            "required": ["state", "reason"],
            "properties": {
                "state": {"type": "string", "enum": ["allowed", "restricted"]},
                "reason": {"type": "string", "description": "kept in the audit trail"},
                "expires_in": {"type": "string", "description": "a duration such as \"7d\"; absent: until removed"},
            },
        },
        "TripwireAction": {
            "type": "object",
            "required": ["action"],
            "properties": {"action": {"type": "string", "enum": ["reset", "trip"]}},
        },
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string", "description": "what is wrong, in words a person can act on"}},
        },
    })
}
