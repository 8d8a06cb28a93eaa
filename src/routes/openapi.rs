//! The OpenAPI 3 document, generated from the route table (`api.rs`) at
//! start-up: every operation with its parameters, body, replies and who may
//! call it, and an example that works when pasted (a test runs each one).

use restrictd_actors::domain::Model;
use serde_json::{json, Map, Value};

use super::api::{endpoints, Access, Endpoint, Reply};
use super::schemas::schemas;

/// Where the examples send their requests.
const BASE: &str = "localhost:8080";

/// The OpenAPI 3 document of this configuration.
pub fn openapi(model: &Model) -> Value {
    let mut paths = Map::new();
    let schemas = schemas(model);
    for e in endpoints(model) {
        paths.entry(e.path.clone()).or_insert_with(|| json!({}))[e.method] = operation(&e, &schemas);
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

/// One endpoint's operation object.
fn operation(e: &Endpoint, schemas: &Value) -> Value {
    let example = |name: &str| e.example.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let mut params: Vec<Value> = e
        .query
        .iter()
        .map(|(name, required, d)| {
            let mut p = json!({"name": name, "in": "query", "required": required, "description": d, "schema": param_schema(name)});
            if let Some(v) = example(name) {
                p["example"] = typed_example(name, v);
            }
            p
        })
        .collect();
    for name in path_params(&e.path) {
        let mut p = json!({"name": name, "in": "path", "required": true, "schema": param_schema(name)});
        if let Some(v) = example(name) {
            p["example"] = typed_example(name, v);
        }
        params.push(p);
    }
    let responses: Map<String, Value> =
        e.responses.iter().map(|(status, d)| (status.to_string(), response(e, *status, d))).collect();
    let mut op = json!({
        "summary": e.summary,
        "description": format!("{}\n\n```sh\n{}\n```", access_note(e.access), curl(e, schemas)),
        "tags": [e.tag],
        "operationId": operation_id(e.method, &e.path),
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
    let mut schema = match e.reply {
        Reply::Json(name) => json!({"$ref": format!("#/components/schemas/{name}")}),
        Reply::Media(_) => json!({"type": "string"}),
    };
    // A batch applied before the reply (wait=applied) says so, with the users' features.
    if e.body == Some("EventBatch") && status == 200 {
        schema = json!({"$ref": "#/components/schemas/BatchApplied"});
    }
    let media = match e.reply {
        Reply::Json(_) => "application/json",
        Reply::Media(media) => media,
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
fn curl(e: &Endpoint, schemas: &Value) -> String {
    let example = |name: &str| e.example.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let mut path = e.path.clone();
    for name in path_params(&e.path) {
        path = path.replace(&format!("{{{name}}}"), example(name).unwrap_or("x"));
    }
    let query: Vec<String> =
        e.query.iter().filter_map(|(name, _, _)| example(name).map(|v| format!("{name}={v}"))).collect();
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    let mut cmd = match e.method {
        "get" if e.reply == Reply::Media("text/event-stream") => format!("curl -sN --max-time 5 '{BASE}{path}'"),
        "get" => format!("curl -s '{BASE}{path}'"),
        m => format!("curl -s -X {} '{BASE}{path}'", m.to_ascii_uppercase()),
    };
    if e.access == Access::Admin {
        cmd.push_str(" -H \"Authorization: Bearer $ADMIN_TOKEN\"");
    }
    if let Some(schema) = e.body {
        cmd.push_str(&format!(" -H 'Content-Type: application/json' -d '{}'", schemas[schema]["example"]));
    }
    cmd
}

/// A parameter's schema as the service reads it: whole numbers, and the
/// parameters that take a fixed set of values.
fn param_schema(name: &str) -> Value {
    match name {
        "wait" => json!({"type": "string", "enum": ["applied"]}),
        "lift_removed" => json!({"type": "string", "enum": ["true", "false"]}),
        "limit" | "offset" => json!({"type": "integer", "minimum": 0}),
        "version" => json!({"type": "integer", "minimum": 1}),
        _ => json!({"type": "string"}),
    }
}

/// An example value in its parameter's type.
fn typed_example(name: &str, v: &str) -> Value {
    match (param_schema(name)["type"].as_str(), v.parse::<u64>()) {
        (Some("integer"), Ok(n)) => json!(n),
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
