//! The OpenAPI 3 document, generated from the route table (`api.rs`) at
//! start-up: every operation with its parameters, body, replies and who may
//! call it, and an example that works when pasted (a test runs each one).

use restrictd_domain::Model;
use serde_json::{json, Map, Value};

use super::api::{endpoints, Access, Endpoint, Reply};
use super::schemas::schemas;

/// Where the examples send their requests.
const BASE: &str = "localhost:8080";

/// The OpenAPI 3 document of this configuration (`batch_limit`: the most
/// events a batch may hold; `checks_limit`: the most checks a bulk check may).
pub fn openapi(model: &Model, batch_limit: usize, checks_limit: usize) -> Value {
    let mut paths = Map::new();
    let mut schemas = schemas(model, batch_limit);
    if let (Some(all), Value::Object(checks)) = (schemas.as_object_mut(), super::schemas::checks(model, checks_limit)) {
        all.extend(checks);
    }
    if let (Some(all), Value::Object(console)) = (schemas.as_object_mut(), super::schemas::console()) {
        all.extend(console);
    }
    for e in endpoints(model) {
        // A route of any method is documented under each common one; one
        // serving a tail also under `{path}`.
        let methods: &[&str] = if e.method == "any" { &ANY } else { &[e.method] };
        let mut at = vec![e.path.clone()];
        if e.tail {
            at.push(format!("{}/{{path}}", e.path));
        }
        for path in at {
            for method in methods {
                let op = operation(&e, method, &path, &schemas, model);
                paths.entry(path.clone()).or_insert_with(|| json!({}))[*method] = op;
            }
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "restrictd",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Feature restriction service: post user events, ask whether a user may use a feature. \
                Admin operations need `Authorization: Bearer <token>` with a token of `auth.admin_tokens`; \
                reads need a read or admin token when `auth.require_for_reads` is on, and posting events \
                needs the ingest or an admin token when `auth.ingest_token` is set. Examples name the admin \
                token `$ADMIN_TOKEN`.",
        },
        // Relative: the address this document was fetched from.
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "an admin, read or ingest token"}},
        },
    })
}

/// The methods a route of any method is documented under.
const ANY: [&str; 8] = ["get", "post", "put", "patch", "delete", "head", "options", "trace"];

/// One endpoint's operation object, as `method` at `path`.
fn operation(e: &Endpoint, method: &str, path: &str, schemas: &Value, model: &Model) -> Value {
    let example = |name: &str| e.example.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let mut params: Vec<Value> = e
        .query
        .iter()
        .map(|(name, required, d)| {
            let schema = param_schema(name, model);
            let mut p = json!({"name": name, "in": "query", "required": required, "description": d, "schema": schema});
            if p["schema"]["type"] == "array" {
                // A comma-separated list: `?events=a,b`.
                p["style"] = json!("form");
                p["explode"] = json!(false);
            }
            if let Some(v) = example(name) {
                p["example"] = typed_example(name, v, model);
            }
            p
        })
        .collect();
    for name in path_params(path) {
        let mut p = json!({"name": name, "in": "path", "required": true, "schema": param_schema(name, model)});
        if let Some(v) = example(name) {
            p["example"] = typed_example(name, v, model);
        }
        params.push(p);
    }
    for (name, d) in e.headers {
        let mut p =
            json!({"name": name, "in": "header", "required": false, "description": d, "schema": {"type": "string"}});
        if let Some(v) = example(name) {
            p["example"] = json!(v);
        }
        params.push(p);
    }
    let mut responses: Map<String, Value> =
        e.responses.iter().map(|(status, d)| (status.to_string(), response(e, *status, d))).collect();
    // What every operation answers to input it cannot take, listed once here.
    let mut refusal = |status: u16, description: &str| {
        responses.entry(status.to_string()).or_insert_with(|| response(e, status, description));
    };
    if !params.is_empty() {
        refusal(400, "a parameter it cannot read: malformed, or (on a change) unknown or repeated");
    }
    if e.body.is_some() {
        refusal(400, "not JSON");
        refusal(415, "not application/json");
        refusal(422, "a body it cannot take, with what is wrong");
    }
    if e.access == Access::Admin {
        refusal(401, "no admin token");
        refusal(403, "not an admin token");
    }
    let mut op = json!({
        "summary": e.summary,
        "description": format!("{}\n\n```sh\n{}\n```", access_note(e.access), curl(e, method, path, schemas)),
        "tags": [e.tag],
        "operationId": operation_id(method, path),
        "x-access": e.access.as_str(),
        "parameters": params,
        "responses": responses,
    });
    match e.access {
        Access::Admin => op["security"] = json!([{"bearer": []}]),
        Access::Read | Access::Ingest => op["security"] = json!([{}, {"bearer": []}]),
        Access::Open => {}
    }
    if let Some(schema) = e.body {
        op["requestBody"] = json!({"required": true, "content": {"application/json": {
            "schema": {"$ref": format!("#/components/schemas/{schema}")},
            "example": schemas[schema]["example"],
        }}});
    }
    op
}

fn response(e: &Endpoint, status: u16, description: &str) -> Value {
    if status >= 400 {
        let error = json!({"$ref": "#/components/schemas/Error"});
        return json!({"description": description, "content": {"application/json": {"schema": error}}});
    }
    if e.reply == Reply::Empty {
        return json!({"description": description});
    }
    let mut schema = match e.reply {
        Reply::Json(name) => json!({"$ref": format!("#/components/schemas/{name}")}),
        // Each event of the stream (OpenAPI 3.0 describes one event with `schema`).
        Reply::Media("text/event-stream") => json!({
            "type": "object",
            "required": ["event", "data"],
            "properties": {
                "event": {"type": "string", "enum": ["subscribed", "change", "tripwire", "rules", "event", "disconnect"]},
                "data": {"type": "string", "description": "the item as JSON"},
                "id": {"type": "string"},
            },
        }),
        Reply::Media(_) | Reply::Empty => json!({"type": "string"}),
    };
    // A batch applied before the reply (wait=applied) says so, with the users' features.
    if e.body == Some("EventBatch") && status == 200 {
        schema = json!({"$ref": "#/components/schemas/BatchApplied"});
    }
    let media = match e.reply {
        Reply::Json(_) => "application/json",
        Reply::Media(media) => media,
        Reply::Empty => "",
    };
    json!({"description": description, "content": {media: {"schema": schema}}})
}

fn access_note(access: Access) -> &'static str {
    match access {
        Access::Open => "Open to anyone.",
        Access::Read => "Open, unless `auth.require_for_reads` is on: then a read or admin token.",
        Access::Ingest => "Open, unless `auth.ingest_token` is set: then it or an admin token.",
        Access::Admin => "Needs an admin token.",
    }
}

/// The request as a command that works when pasted against a local service.
fn curl(e: &Endpoint, method: &str, path: &str, schemas: &Value) -> String {
    let example = |name: &str| e.example.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let template = path;
    let mut path = path.to_string();
    for name in path_params(template) {
        path = path.replace(&format!("{{{name}}}"), example(name).unwrap_or("x"));
    }
    let query: Vec<String> =
        e.query.iter().filter_map(|(name, _, _)| example(name).map(|v| format!("{name}={v}"))).collect();
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    let mut cmd = match method {
        "get" if e.reply == Reply::Media("text/event-stream") => format!("curl -sN --max-time 5 '{BASE}{path}'"),
        "get" => format!("curl -s '{BASE}{path}'"),
        m => format!("curl -s -X {} '{BASE}{path}'", m.to_ascii_uppercase()),
    };
    for (name, _) in e.headers {
        if let Some(v) = example(name) {
            cmd.push_str(&format!(" -H '{name}: {v}'"));
        }
    }
    if e.access == Access::Admin {
        cmd.push_str(" -H \"Authorization: Bearer $ADMIN_TOKEN\"");
    }
    if let Some(schema) = e.body {
        cmd.push_str(&format!(" -H 'Content-Type: application/json' -d '{}'", schemas[schema]["example"]));
    }
    cmd
}

/// A parameter's schema as the service reads it: whole numbers, the
/// parameters that take a fixed set of values, and the feed's filters (lists
/// of the names this configuration knows; a later rule set may add or remove
/// some, and the service refuses names it does not know with 400).
fn param_schema(name: &str, model: &Model) -> Value {
    let names = |names: Vec<&str>| json!({"type": "array", "minItems": 1, "items": {"type": "string", "enum": names}});
    match name {
        "events" => names(model.schema.events.iter().map(|e| &**e).chain(["all"]).collect()),
        "rules" => names(model.rules.iter().map(|r| &*r.name).collect()),
        "features" => names(model.features.iter().map(|f| &**f).collect()),
        "users" => json!({"type": "array", "minItems": 1, "items": super::schemas::user_id()}),
        "changes" => names(crate::feed::filter::CHANGE_KINDS.to_vec()),
        "after" => json!({"type": "string", "pattern": super::schemas::FEED_ID_PATTERN, "description": "a feed id"}),
        "subscription" => {
            json!({"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,128}$", "description": "a stored subscription's name"})
        }
        "wait" => json!({"type": "string", "enum": ["applied"]}),
        "lift_removed" => json!({"type": "string", "enum": ["true", "false"]}),
        "limit" | "offset" => json!({"type": "integer", "minimum": 0}),
        "version" => json!({"type": "integer", "minimum": 1}),
        "hours" => json!({"type": "integer", "minimum": 1, "maximum": 24}),
        "rule" => json!({"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,128}$", "description": "a rule's name"}),
        "user_id" => super::schemas::user_id(),
        "name" => {
            json!({"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,128}$", "description": "a rule's or a subscription's name"})
        }
        "feature" => json!({"type": "string", "pattern": "^can_", "description": "a feature's name"}),
        _ => json!({"type": "string"}),
    }
}

/// An example value in its parameter's type.
fn typed_example(name: &str, v: &str, model: &Model) -> Value {
    match (param_schema(name, model)["type"].as_str(), v.parse::<u64>()) {
        (Some("integer"), Ok(n)) => json!(n),
        (Some("array"), _) => json!(v.split(',').collect::<Vec<_>>()),
        _ => json!(v),
    }
}

fn path_params(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

fn operation_id(method: &str, path: &str) -> String {
    let words: Vec<&str> = path.split(['/', '{', '}', '.']).filter(|s| !s.is_empty()).collect();
    format!("{method}_{}", words.join("_"))
}
