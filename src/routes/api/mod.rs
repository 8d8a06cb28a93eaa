//! The route table: every endpoint once, with its documentation.
//! `register::configure` registers handlers from it and `/openapi.json` is generated from it, so a
//! route cannot exist without being documented.

use actix_web::{FromRequest, Handler, Responder, Route};
use restrictd_domain::Model;

pub use super::register::{configure, configure_checks};

mod pages;
mod rows;
use super::{authz, bulk, check, check_path, events};

/// How an endpoint's handler is attached to a route.
pub type Serve = Box<dyn Fn(Route) -> Route>;

/// The row's handler.
pub(super) fn serve<F, Args>(handler: F) -> Serve
where
    F: Handler<Args> + Clone,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    Box::new(move |r| r.to(handler.clone()))
}

pub struct Endpoint {
    /// `get`, `post`, `put`, `delete`, or `any` (every method, one handler).
    pub method: &'static str,
    pub path: String,
    /// Also serves every path under `path` (`{path}/...`).
    pub tail: bool,
    pub tag: &'static str,
    pub summary: String,
    /// Its handler, attached to its route: the row is the one place an
    /// endpoint is declared (registration guards it by `access`).
    pub serve: Serve,
    /// Also served on the checks listener (`http.checks_addr`).
    pub checks: bool,
    /// Query parameters: (name, required, description).
    pub query: &'static [(&'static str, bool, &'static str)],
    /// Request headers it reads (all optional): (name, description).
    pub headers: &'static [(&'static str, &'static str)],
    /// (status, description) of the replies.
    pub responses: &'static [(u16, &'static str)],
    /// The request body's schema (in `openapi::schemas`), if any.
    pub body: Option<&'static str>,
    /// Who may call it.
    pub access: Access,
    /// What a success answers: a schema of `openapi::schemas`, or another media type.
    pub reply: Reply,
    /// Example values of its path and query parameters, by name (the OpenAPI
    /// document shows them and a test runs them against the binary).
    pub example: &'static [(&'static str, &'static str)],
}

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone.
    Open,
    /// Anyone, unless `auth.require_for_reads` (then a read or admin token).
    Read,
    /// Anyone, unless `auth.ingest_token` is set (then it or an admin token).
    Ingest,
    /// An admin token.
    Admin,
}

impl Access {
    /// As the OpenAPI document's `x-access` names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Open => "open",
            Access::Read => "read",
            Access::Ingest => "ingest",
            Access::Admin => "admin",
        }
    }
}

/// What a successful reply carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// JSON, described by this schema.
    Json(&'static str),
    /// Another media type (text, HTML, an event stream).
    Media(&'static str),
    /// Headers only: no body (a gateway's answer, whose connection a body
    /// left unread would close).
    Empty,
}

pub(super) const WAIT: (&str, bool, &str) = (
    "wait",
    false,
    "`applied`: reply once the event is applied, with the user's features (504 after ingest.wait_timeout)",
);

/// Every endpoint of this configuration (check routes come from its features).
pub fn endpoints(model: &Model) -> Vec<Endpoint> {
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
            access: Access::Ingest,
            reply: Reply::Json("Appended"),
            example: &[("wait", "applied")],
            ..e("post", "/event", "events", "Post one event (the reference API)", serve(events::post_event))
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
            access: Access::Ingest,
            reply: Reply::Json("BatchAccepted"),
            ..e("post", "/v1/events", "events", "Post a batch of events, all or nothing", serve(events::post_events))
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
            reply: Reply::Json("Check"),
            checks: true,
            example: &[("user_id", "12345")],
            ..e(
                "get",
                &check_path(f),
                "checks",
                &format!("Can the user use {f}?"),
                serve(move |req, st| check::check(req, st, i)),
            )
        });
    }
    list.extend(gateway());
    list.extend(rows::reads());
    list.extend(rows::overrides());
    list.extend(rows::history_and_tripwire());
    list.extend(rows::feed());
    list.extend(rows::stats());
    list.extend(rows::subscriptions());
    list.extend(rows::rule_sets());
    list.extend(pages::pages());
    list
}

/// Checks in bulk, and a gateway's question.
fn gateway() -> Vec<Endpoint> {
    vec![
        Endpoint {
            responses: &[
                (200, "the answers, in the request's order; each shard's items from one moment of its state"),
                (400, "not JSON"),
                (413, "over checks.batch_limit checks"),
                (422, "invalid items, each listed with its index; none answered"),
                (429, "too many checks in flight (Retry-After)"),
                (503, "a shard of these users is being recovered (Retry-After)"),
            ],
            body: Some("Checks"),
            reply: Reply::Json("CheckResults"),
            checks: true,
            ..e("post", "/v1/checks", "checks", "Many checks at once", serve(bulk::post_checks))
        },
        Endpoint {
            method: "any",
            tail: true,
            headers: &[
                ("X-User-Id", "the authenticated user (gateway.user_header)"),
                ("X-Original-Method", "the original method (nginx)"),
                ("X-Original-URI", "the original URI (nginx)"),
                ("X-Forwarded-Method", "the original method (Traefik, Caddy)"),
                ("X-Forwarded-Uri", "the original URI (Traefik, Caddy)"),
            ],
            responses: &[
                (200, "let it through (no body): the request is ungoverned, or the user may use its route's feature (X-Restrictd-Feature)"),
                (400, "unreadable: a header or path it cannot take (a path with . or .. segments, a bad escape)"),
                (403, "refuse it: the user is restricted from the route's feature (X-Restrictd-Rule names the rule), or a deny policy"),
                (429, "too many checks in flight (Retry-After)"),
                (503, "the user's shard is being recovered (Retry-After)"),
            ],
            reply: Reply::Empty,
            checks: true,
            example: &[
                ("path", "api"),
                ("X-User-Id", "12345"),
                ("X-Forwarded-Method", "POST"),
                ("X-Forwarded-Uri", "/api/messages"),
            ],
            ..e(
                "any",
                crate::gateway::PREFIX,
                "checks",
                "A gateway's question: may this request through? (any method, any path under it)",
                serve(authz::authz),
            )
        },
    ]
}

/// A row with the defaults: a read answering JSON, 200 only, no query, body or example.
pub(super) fn e(method: &'static str, path: &str, tag: &'static str, summary: &str, serve: Serve) -> Endpoint {
    Endpoint {
        method,
        path: path.to_string(),
        tail: false,
        tag,
        summary: summary.to_string(),
        serve,
        checks: false,
        query: &[],
        headers: &[],
        responses: &[(200, "OK")],
        body: None,
        access: Access::Read,
        reply: Reply::Json("Object"),
        example: &[],
    }
}
