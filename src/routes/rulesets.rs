//! The rule lifecycle over HTTP: `PUT /v1/rules` publishes a version (JSON,
//! or TOML with `Content-Type: application/toml`), `POST /v1/rules/rollback`
//! publishes a copy of an earlier one, `GET /v1/rules/versions[/{n}]` lists
//! and shows them. A version reaches state through the shard streams.

use super::access::Operator;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use restrictd_actors::store::rules;
use restrictd_domain::ruleset::{diff, VersionRecord};
use restrictd_domain::{EventRef, ModelDef};
use serde::Deserialize;
use serde_json::{json, Value};

use super::body;
use super::events::wait_until_applied;
use super::rfc3339_ms;
use crate::config::locate;
use crate::error::ApiError;
use crate::rulesets::{self, Publish, PublishError, Published};
use crate::state::AppState;

impl From<PublishError> for ApiError {
    fn from(e: PublishError) -> Self {
        match e {
            PublishError::Conflict { current, .. } => ApiError::new(StatusCode::PRECONDITION_FAILED, e.to_string())
                .with("current_version", current.map_or(Value::Null, Value::from)),
            PublishError::Invalid(errors) => ApiError::unprocessable(format!(
                "the rule set is invalid, nothing changed: {} error(s), each with its key",
                errors.len()
            ))
            .with("errors", json!(errors)),
            PublishError::Unknown(_) => ApiError::not_found(e.to_string()),
            PublishError::Current(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            PublishError::Redis(e) => ApiError::redis_unavailable(e),
        }
    }
}

/// A version as people read it (its content with `content`).
pub fn version_json(r: &VersionRecord, with_content: bool) -> Value {
    let mut v = json!({
        "version": r.version,
        "by": r.by,
        "at_ms": r.at_ms,
        "at": rfc3339_ms(r.at_ms),
        "message": r.message,
        "source": r.source,
    });
    if with_content {
        v["content"] = json!(r.content);
    }
    v
}

/// `If-Match: <version>` (quotes allowed), if sent.
fn if_match(req: &HttpRequest) -> Result<Option<u64>, ApiError> {
    let Some(value) = req.headers().get(actix_web::http::header::IF_MATCH) else { return Ok(None) };
    let text = value.to_str().unwrap_or("").trim().trim_matches('"');
    text.parse()
        .map(Some)
        .map_err(|_| ApiError::bad_request(format!("If-Match must be a version number, not {text:?}")))
}

fn is_toml(req: &HttpRequest) -> bool {
    body::content_type(req).is_some_and(|ct| ct == "application/toml" || ct == "text/toml")
}

/// A TOML body's errors with the line of their key: `rules.x.when (line 12): ...`.
fn with_lines(e: PublishError, text: &[u8]) -> PublishError {
    let PublishError::Invalid(errors) = e else { return e };
    let text = String::from_utf8_lossy(text);
    let located = |e: String| match e.split_once(": ").and_then(|(k, rest)| Some((k, rest, locate(&text, k)?))) {
        Some((key, rest, (line, column))) => format!("{key} (line {line}, column {column}): {rest}"),
        None => e,
    };
    PublishError::Invalid(errors.into_iter().map(located).collect())
}

/// The rule set in the body: JSON, or TOML as in `config.toml`.
fn parse_rule_set(req: &HttpRequest, bytes: &[u8]) -> Result<(ModelDef, bool), ApiError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ApiError::bad_request("the body is not UTF-8"))?;
    let toml = is_toml(req);
    // TOML may be a whole configuration file (its other sections are not
    // the rule set's); JSON is the four sections and nothing else.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sections {
        #[serde(default)]
        features: std::collections::BTreeMap<String, restrictd_domain::rules::FeatureDef>,
        #[serde(default)]
        events: std::collections::BTreeMap<String, restrictd_domain::schema::EventDef>,
        #[serde(default)]
        aggregates: std::collections::BTreeMap<String, restrictd_domain::rules::AggregateDef>,
        #[serde(default)]
        rules: std::collections::BTreeMap<String, restrictd_domain::rules::RuleDef>,
        /// Lift the restrictions of the rules the new version removes.
        #[serde(default)]
        lift_removed: bool,
    }
    let parsed: Result<(ModelDef, bool), String> = if toml {
        toml::from_str(text).map(|d| (d, false)).map_err(|e| e.to_string())
    } else {
        serde_json::from_str::<Sections>(text)
            .map(|s| {
                let def = ModelDef { features: s.features, events: s.events, aggregates: s.aggregates, rules: s.rules };
                (def, s.lift_removed)
            })
            .map_err(|e| e.to_string())
    };
    parsed.map_err(|e| {
        ApiError::unprocessable(format!("the rule set is invalid, nothing changed: {e}")).with("errors", json!([e]))
    })
}

/// Replies to a publish (after waiting for every shard with `?wait=applied`).
async fn reply(req: &HttpRequest, state: &AppState, p: Published) -> Result<HttpResponse, ApiError> {
    let wait = body::wait_applied(req)?;
    if wait {
        for (s, id) in p.switches.iter().enumerate() {
            wait_until_applied(state, s as u32, *id).await?;
        }
    }
    let mut reply = version_json(&p.record, false);
    reply["diff"] = json!(p.diff);
    reply["applied"] = json!(wait);
    reply["switches"] =
        json!(p.switches.iter().enumerate().map(|(s, id)| EventRef::new(s as u32, *id)).collect::<Vec<_>>());
    Ok(HttpResponse::Ok().json(reply))
}

fn publisher<'a>(req: &HttpRequest, state: &AppState, by: &'a str, source: &str) -> Result<Publish<'a>, ApiError> {
    Ok(Publish {
        by,
        message: super::query_param(req, "message").map(|m| m.into_owned()),
        source: source.into(),
        expected: if_match(req)?,
        accept_unknown_events: state.shared.model().schema.accepts_unknown(),
        lift_removed: super::query_param(req, "lift_removed").is_some_and(|v| v == "true"),
    })
}

/// `PUT /v1/rules`: publish a rule set as the next version.
pub async fn put_rules(
    req: HttpRequest,
    Operator(by): Operator,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::only_params(&req, &["wait", "message", "lift_removed"])?;
    let bytes = if is_toml(&req) {
        body::read(&req, payload, state.settings.ingest.body_limit_bytes).await?
    } else {
        body::read_json(&req, payload, state.settings.ingest.body_limit_bytes).await?
    };
    let (content, lift_removed) = parse_rule_set(&req, &bytes)?;
    let mut p = publisher(&req, &state, &by, "publish")?;
    p.lift_removed |= lift_removed;
    let keys = &state.shared.keys;
    let published =
        state.ingest.call_write("rules", async |c| Ok(rulesets::publish(c, keys, content, p).await)).await?;
    let published = published.map_err(|e| if is_toml(&req) { with_lines(e, &bytes) } else { e })?;
    reply(&req, &state, published).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rollback {
    to: u64,
}

/// `POST /v1/rules/rollback` with `{"to": n}`: publish a copy of version n.
pub async fn rollback(
    req: HttpRequest,
    Operator(by): Operator,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::only_params(&req, &["wait", "message"])?;
    let bytes = body::read_json(&req, payload, state.settings.ingest.body_limit_bytes).await?;
    let to = serde_json::from_slice::<Rollback>(&bytes)
        .map_err(|e| ApiError::unprocessable(format!("expected {{\"to\": <version>}}: {e}")))?
        .to;
    let p = publisher(&req, &state, &by, "rollback")?;
    let keys = &state.shared.keys;
    let published = state.ingest.call_write("rules", async |c| Ok(rulesets::rollback(c, keys, to, p).await)).await??;
    reply(&req, &state, published).await
}

/// `GET /v1/rules/versions`: newest first, paged.
pub async fn versions(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    super::only_params(&req, &["limit", "offset"])?;
    let number = |name: &str, default| super::number_param(&req, name, default).map(|n| n as u64);
    let (limit, offset) = (number("limit", 20)?.clamp(1, 200), number("offset", 0)?);
    let keys = &state.shared.keys;
    let list = state
        .ingest
        .call("rules", async |c| {
            let current = rules::current_version(c, keys).await?.unwrap_or(0);
            let mut out = Vec::new();
            let newest = current.saturating_sub(offset);
            for n in (1..=newest).rev().take(limit as usize) {
                if let Some(r) = rules::version(c, keys, n).await? {
                    out.push(version_json(&r, false));
                }
            }
            Ok((current, out))
        })
        .await?;
    let next = offset.checked_add(limit).filter(|&n| n < list.0);
    Ok(HttpResponse::Ok().json(json!({"current": list.0, "versions": list.1, "offset": offset, "next_offset": next})))
}

/// `GET /v1/rules/versions/{n}`: its content, who, when, why, and its diff against n-1.
pub async fn version(path: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let n = super::whole_number(&path)
        .ok_or_else(|| ApiError::bad_request(format!("{:?} is not a version number", path.as_str())))?;
    let keys = &state.shared.keys;
    let (this, before) = state
        .ingest
        .call("rules", async |c| {
            Ok((rules::version(c, keys, n).await?, rules::version(c, keys, n.saturating_sub(1)).await?))
        })
        .await?;
    let this = this.ok_or_else(|| ApiError::not_found(format!("no version {n} was published")))?;
    let mut reply = version_json(&this, true);
    reply["diff"] = json!(diff(before.as_ref().map(|b| &b.content), &this.content));
    Ok(HttpResponse::Ok().json(reply))
}

/// `POST /v1/rules/simulate`: a candidate rule set (as for `PUT /v1/rules`)
/// against every user of this instance's shards as they are now; nothing
/// changes. Says which shards it covered.
pub async fn simulate(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::only_params(&req, &[])?;
    let bytes = body::read(&req, payload, state.settings.ingest.body_limit_bytes).await?;
    let (content, _) = parse_rule_set(&req, &bytes)?;
    let keys = &state.shared.keys;
    let current = state.ingest.call("rules", async |c| rules::current(c, keys).await).await?;
    let accept_unknown = state.shared.model().schema.accepts_unknown();
    let candidate = rulesets::candidate(current.as_ref(), &content, accept_unknown)
        .map_err(|e| ApiError::unprocessable(format!("the rule set is invalid: {e}")).with("errors", json!([e])))?;
    let candidate = std::sync::Arc::new(candidate);
    let mut total = restrictd_domain::simulate::Simulation::default();
    let mut covered = Vec::new();
    for (s, actor) in state.shards.iter().enumerate() {
        let Some(actor) = actor else { continue };
        let msg = restrictd_actors::messages::Simulate { candidate: std::sync::Arc::clone(&candidate), sample: 10 };
        let sim = actor
            .send(msg)
            .await
            .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("shard {s}: {e}")))?;
        total.add(sim, 10);
        covered.push(s as u32);
    }
    let mut reply = rulesets::simulation_json(&total, &state.settings.tripwire.domain());
    reply["against_version"] = json!(current.map(|c| c.version));
    reply["shards"] = json!(restrictd_actors::lease::ranges(&covered));
    Ok(HttpResponse::Ok().json(reply))
}
