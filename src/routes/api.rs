//! The route table: every endpoint once, with its documentation.
//! `register::configure` registers handlers from it and `/openapi.json` is generated from it, so a
//! route cannot exist without being documented.

use actix_web::{FromRequest, Handler, Responder, Route};
use restrictd_domain::Model;

pub use super::register::{configure, configure_checks};
use super::{
    check, check_path, docs, events, feed, health, history, overrides, rules, rulesets, stats, tripwire, users,
};

/// How an endpoint's handler is attached to a route.
pub type Serve = Box<dyn Fn(Route) -> Route>;

/// The row's handler.
fn serve<F, Args>(handler: F) -> Serve
where
    F: Handler<Args> + Clone,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    Box::new(move |r| r.to(handler.clone()))
}

pub struct Endpoint {
    pub method: &'static str,
    pub path: String,
    pub tag: &'static str,
    pub summary: String,
    /// Its handler, attached to its route: the row is the one place an
    /// endpoint is declared (registration guards it by `access`).
    pub serve: Serve,
    /// Also served on the checks listener (`http.checks_addr`).
    pub checks: bool,
    /// Query parameters: (name, required, description).
    pub query: &'static [(&'static str, bool, &'static str)],
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
}

const WAIT: (&str, bool, &str) = (
    "wait",
    false,
    "`applied`: reply once the event is applied, with the user's features (504 after ingest.wait_timeout)",
);

/// Every endpoint of this configuration (check routes come from its features).
pub fn endpoints(model: &Model) -> Vec<Endpoint> {
    let e = |method, path: &str, tag, summary: &str, serve| Endpoint {
        method,
        path: path.to_string(),
        tag,
        summary: summary.to_string(),
        serve,
        checks: false,
        query: &[],
        responses: &[(200, "OK")],
        body: None,
        access: Access::Read,
        reply: Reply::Json("Object"),
        example: &[],
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
    list.extend([
        Endpoint {
            responses: &[(200, "every feature of the user"), (400, "bad user_id")],
            reply: Reply::Json("UserFeatures"),
            checks: true,
            example: &[("user_id", "12345")],
            ..e("get", "/v1/users/{user_id}/features", "checks", "All features of a user", serve(check::user_features))
        },
        Endpoint {
            responses: &[
                (
                    200,
                    "aggregates and restrictions with their rule, event and time; \"source\": \"memory\" on the shard's owner, \"redis\" (its last snapshot) elsewhere",
                ),
                (404, "user never seen"),
            ],
            reply: Reply::Json("User"),
            example: &[("user_id", "12345")],
            ..e("get", "/v1/users/{user_id}", "users", "Explain a user", serve(users::get_user))
        },
        Endpoint {
            reply: Reply::Json("Rules"),
            ..e("get", "/v1/rules", "rules", "Rules with their definition and tripwire state", serve(rules::get_rules))
        },
        Endpoint {
            access: Access::Open,
            reply: Reply::Json("Health"),
            checks: true,
            ..e("get", "/health", "operations", "The process is alive", serve(health::health))
        },
        Endpoint {
            responses: &[
                (200, "Redis reachable, every owned shard caught up, the other shards' changelog loaded"),
                (503, "not ready, with the reason"),
            ],
            access: Access::Open,
            reply: Reply::Json("Ready"),
            checks: true,
            ..e("get", "/ready", "operations", "Ready to serve", serve(health::ready))
        },
        Endpoint {
            access: Access::Open,
            reply: Reply::Media("text/plain"),
            ..e("get", "/metrics", "operations", "Prometheus exposition", serve(health::metrics))
        },
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
            access: Access::Admin,
            reply: Reply::Json("OverrideApplied"),
            example: &[("user_id", "12345"), ("feature", "can_message")],
            ..e(
                "put",
                "/v1/users/{user_id}/features/{feature}",
                "admin",
                "Override a feature for a user (beats every rule)",
                serve(overrides::put_override),
            )
        },
        Endpoint {
            responses: &[
                (200, "applied: the user's features"),
                (401, "no admin token"),
                (403, "wrong token"),
                (404, "unknown feature"),
            ],
            access: Access::Admin,
            reply: Reply::Json("OverrideApplied"),
            example: &[("user_id", "12345"), ("feature", "can_message")],
            ..e(
                "delete",
                "/v1/users/{user_id}/features/{feature}",
                "admin",
                "Remove an override: the rules decide again",
                serve(overrides::delete_override),
            )
        },
        Endpoint {
            query: &[
                ("limit", false, "changes per page (default 50, at most 500)"),
                ("offset", false, "changes to skip (default 0)"),
            ],
            reply: Reply::Json("History"),
            example: &[("user_id", "12345"), ("limit", "50"), ("offset", "0")],
            responses: &[(200, "a page of changes, newest first"), (400, "bad limit, offset or parameter"), (404, "user never seen")],
            ..e(
                "get",
                "/v1/users/{user_id}/history",
                "users",
                "A user's restriction changes, newest first",
                serve(history::get_history),
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
            access: Access::Admin,
            reply: Reply::Json("TripwireReply"),
            example: &[("name", "scam_message_rule")],
            ..e(
                "post",
                "/v1/rules/{name}/tripwire",
                "admin",
                "Reset (re-arm) or trip (switch off) a rule; a reset may apply the restrictions it withheld",
                serve(tripwire::control),
            )
        },
        Endpoint {
            query: &[("limit", false, "most users listed (default 1,000, at most 10,000)")],
            responses: &[(200, "the users, from this instance's shards"), (400, "bad limit"), (404, "unknown rule")],
            access: Access::Read,
            reply: Reply::Json("Suppressed"),
            example: &[("name", "scam_message_rule"), ("limit", "100")],
            ..e(
                "get",
                "/v1/rules/{name}/suppressed",
                "rules",
                "Users whose restriction by the rule the tripwire withheld",
                serve(tripwire::suppressed),
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
                (200, "text/event-stream: subscribed, change, tripwire, rules, event, disconnect"),
                (400, "unknown filter value"),
            ],
            reply: Reply::Media("text/event-stream"),
            example: &[("features", "can_purchase"), ("events", "purchase_made")],
            ..e(
                "get",
                "/v1/feed",
                "feed",
                "Live feed of restriction and tripwire changes (Server-Sent Events)",
                serve(feed::feed),
            )
        },
        Endpoint {
            reply: Reply::Json("Stats"),
            ..e("get", "/v1/stats", "stats", "Counts and amounts per event, rejections per reason", serve(stats::get_stats))
        },
        Endpoint {
            responses: &[(200, "count and amount"), (404, "unknown event")],
            reply: Reply::Json("EventStats"),
            example: &[("event_name", "purchase_made")],
            ..e("get", "/v1/stats/{event_name}", "stats", "Count and amount of one event", serve(stats::get_event_stats))
        },
        Endpoint {
            responses: &[(200, "reset"), (401, "no admin token"), (403, "wrong token")],
            access: Access::Admin,
            reply: Reply::Json("StatsReset"),
            ..e("delete", "/v1/stats", "admin", "Reset the stats", serve(stats::reset_stats))
        },
        Endpoint {
            access: Access::Admin,
            body: Some("RuleSet"),
            reply: Reply::Json("Published"),
            query: &[
                WAIT,
                ("message", false, "why, kept with the version"),
                ("lift_removed", false, "`true`: lift the restrictions of the rules this version removes"),
            ],
            example: &[("message", "republished")],
            responses: &[
                (200, "published: the new version and what it changes (switched on every shard with wait=applied)"),
                (401, "no admin token"),
                (403, "wrong token"),
                (412, "If-Match names a version that is not the current one"),
                (422, "an invalid rule set, every error with its key; nothing changed"),
                (503, "Redis unavailable; nothing published"),
            ],
            ..e("put", "/v1/rules", "rules", "Publish a rule set as the next version", serve(rulesets::put_rules))
        },
        Endpoint {
            access: Access::Admin,
            body: Some("Rollback"),
            reply: Reply::Json("Published"),
            query: &[WAIT, ("message", false, "why, kept with the version")],
            responses: &[
                (200, "a copy of the version published as the next one"),
                (401, "no admin token"),
                (403, "wrong token"),
                (404, "no such version"),
                (409, "the version is the current one already"),
                (412, "If-Match names a version that is not the current one"),
            ],
            ..e("post", "/v1/rules/rollback", "rules", "Roll back: publish a copy of an earlier version", serve(rulesets::rollback))
        },
        Endpoint {
            body: Some("RuleSet"),
            reply: Reply::Json("Simulation"),
            responses: &[
                (200, "per rule, the users it would restrict now, newly restricted, its share and whether it would trip"),
                (422, "an invalid rule set"),
                (503, "Redis unavailable"),
            ],
            ..e("post", "/v1/rules/simulate", "rules", "Simulate a rule set against every user of this instance's shards", serve(rulesets::simulate))
        },
        Endpoint {
            reply: Reply::Json("Versions"),
            query: &[("limit", false, "versions per page (default 20)"), ("offset", false, "versions to skip")],
            example: &[("limit", "20")],
            ..e("get", "/v1/rules/versions", "rules", "Published versions, newest first", serve(rulesets::versions))
        },
        Endpoint {
            reply: Reply::Json("Version"),
            example: &[("version", "1")],
            responses: &[(200, "the version with its content and its diff against the one before"), (404, "no such version")],
            ..e("get", "/v1/rules/versions/{version}", "rules", "One version of the rule set", serve(rulesets::version))
        },
        Endpoint {
            access: Access::Open,
            reply: Reply::Media("text/html"),
            ..e("get", "/", "operations", "Operator's dashboard page", serve(docs::dashboard))
        },
        Endpoint {
            access: Access::Open,
            reply: Reply::Json("Object"),
            ..e("get", "/openapi.json", "operations", "This document", serve(docs::openapi))
        },
        Endpoint {
            access: Access::Open,
            reply: Reply::Media("text/html"),
            ..e("get", "/docs", "operations", "API documentation page", serve(docs::page))
        },
    ]);
    list
}
