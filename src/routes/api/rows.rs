//! The route table's rows past the writes and the checks, in registration order.

use super::{e, serve, Access, Endpoint, Reply, WAIT};
use crate::routes::{
    check, feed, feed_ws, health, history, overrides, rules, rulesets, stats, subscriptions, tripwire, users,
};

/// Reads of a user and of the rules, and the probes.
pub(super) fn reads() -> Vec<Endpoint> {
    vec![
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
    ]
}

/// Operators' overrides.
pub(super) fn overrides() -> Vec<Endpoint> {
    vec![
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
    ]
}

/// A user's history and the tripwire's controls.
pub(super) fn history_and_tripwire() -> Vec<Endpoint> {
    vec![
        Endpoint {
            query: &[
                ("limit", false, "changes per page (default 50, at most 500)"),
                ("offset", false, "changes to skip (default 0)"),
            ],
            reply: Reply::Json("History"),
            example: &[("user_id", "12345"), ("limit", "50"), ("offset", "0")],
            responses: &[
                (200, "a page of changes, newest first"),
                (400, "bad limit, offset or parameter"),
                (404, "user never seen"),
            ],
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
                ("limit", false, "users per page (default 50, at most 500)"),
                ("offset", false, "users to skip (default 0)"),
            ],
            responses: &[
                (200, "a page of users, newest first, from this instance's shards"),
                (400, "bad limit or offset"),
                (404, "unknown rule"),
            ],
            access: Access::Read,
            reply: Reply::Json("RuleUsers"),
            example: &[("name", "scam_message_rule"), ("limit", "50"), ("offset", "0")],
            ..e(
                "get",
                "/v1/rules/{name}/users",
                "rules",
                "Users the rule restricted within the tripwire window, newest first",
                serve(tripwire::users),
            )
        },
    ]
}

/// The stats.
pub(super) fn stats() -> Vec<Endpoint> {
    vec![
        Endpoint {
            reply: Reply::Json("Stats"),
            ..e(
                "get",
                "/v1/stats",
                "stats",
                "Counts and amounts per event, rejections per reason",
                serve(stats::get_stats),
            )
        },
        Endpoint {
            query: &[
                ("hours", false, "the last 1 to 24 hours (default 24)"),
                ("rule", false, "one rule's restrictions, shadow decisions and withheld ones"),
            ],
            responses: &[(200, "the series"), (400, "bad hours or parameter"), (404, "unknown rule")],
            reply: Reply::Json("Minutes"),
            example: &[("hours", "24")],
            ..e(
                "get",
                "/v1/timeseries",
                "stats",
                "Events by name and restrictions by rule, per minute, from Redis (the console's charts)",
                serve(stats::minutes),
            )
        },
        Endpoint {
            responses: &[(200, "count and amount"), (404, "unknown event")],
            reply: Reply::Json("EventStats"),
            example: &[("event_name", "purchase_made")],
            ..e(
                "get",
                "/v1/stats/{event_name}",
                "stats",
                "Count and amount of one event",
                serve(stats::get_event_stats),
            )
        },
        Endpoint {
            responses: &[(200, "reset"), (401, "no admin token"), (403, "wrong token")],
            access: Access::Admin,
            reply: Reply::Json("StatsReset"),
            ..e("delete", "/v1/stats", "admin", "Reset the stats", serve(stats::reset_stats))
        },
    ]
}

/// The rule lifecycle.
pub(super) fn rule_sets() -> Vec<Endpoint> {
    vec![
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
            ..e(
                "post",
                "/v1/rules/rollback",
                "rules",
                "Roll back: publish a copy of an earlier version",
                serve(rulesets::rollback),
            )
        },
        Endpoint {
            body: Some("RuleSet"),
            reply: Reply::Json("Simulation"),
            responses: &[
                (
                    200,
                    "per rule, the users it would restrict now, newly restricted, its share and whether it would trip",
                ),
                (422, "an invalid rule set"),
                (503, "Redis unavailable"),
            ],
            ..e(
                "post",
                "/v1/rules/simulate",
                "rules",
                "Simulate a rule set against every user of this instance's shards",
                serve(rulesets::simulate),
            )
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
            responses: &[
                (200, "the version with its content and its diff against the one before"),
                (404, "no such version"),
            ],
            ..e("get", "/v1/rules/versions/{version}", "rules", "One version of the rule set", serve(rulesets::version))
        },
    ]
}

/// A feed request's filters and resume point (SSE and WebSocket alike).
const FEED_QUERY: &[(&str, bool, &str)] = &[
    ("events", false, "also stream these events (comma-separated names, or all): live, without ids"),
    ("rules", false, "only changes by these rules"),
    ("features", false, "only changes of these features"),
    ("users", false, "only changes of these users"),
    ("changes", false, "only these kinds of change (rule_fired, cleared, expired, ...)"),
    ("after", false, "resume after this feed id (or send Last-Event-ID): every entry after it, then live"),
    ("subscription", false, "a stored subscription's filters (alone), resuming after its acknowledged id"),
];

/// The feed, over Server-Sent Events and WebSocket.
pub(super) fn feed() -> Vec<Endpoint> {
    vec![
        Endpoint {
            query: FEED_QUERY,
            responses: &[
                (200, "text/event-stream: subscribed, change, tripwire, rules, event, reset, disconnect, shutdown"),
                (400, "unknown filter value, unreadable id, or filters beside a subscription"),
                (404, "no such subscription"),
            ],
            reply: Reply::Media("text/event-stream"),
            example: &[("features", "can_purchase"), ("events", "purchase_made")],
            ..e(
                "get",
                "/v1/feed",
                "feed",
                "The feed of restriction, tripwire and rule-set changes (Server-Sent Events), resumable",
                serve(feed::feed),
            )
        },
        Endpoint {
            query: FEED_QUERY,
            responses: &[
                (101, "switched to WebSocket: one JSON text message per feed event"),
                (400, "not a WebSocket upgrade, unknown filter value, unreadable id"),
                (404, "no such subscription"),
            ],
            reply: Reply::Media("application/json"),
            example: &[("features", "can_purchase")],
            ..e("get", "/v1/feed/ws", "feed", "The feed over a WebSocket, resumable", serve(feed_ws::feed_ws))
        },
    ]
}

/// Stored feed subscriptions.
pub(super) fn subscriptions() -> Vec<Endpoint> {
    let named = &[("name", "case-tool")];
    vec![
        Endpoint {
            body: Some("SubscriptionFilter"),
            access: Access::Admin,
            reply: Reply::Json("Subscription"),
            example: named,
            responses: &[
                (200, "stored; its connected consumers use it at once"),
                (422, "an unknown name or a bad condition"),
            ],
            ..e("put", "/v1/subscriptions/{name}", "feed", "Store a named feed filter", serve(subscriptions::put))
        },
        Endpoint {
            reply: Reply::Json("Subscription"),
            example: named,
            responses: &[(200, "the subscription"), (404, "no such subscription")],
            ..e("get", "/v1/subscriptions/{name}", "feed", "A stored subscription", serve(subscriptions::get))
        },
        Endpoint {
            access: Access::Admin,
            reply: Reply::Json("SubscriptionDeleted"),
            example: named,
            responses: &[(200, "deleted; its consumers' streams end"), (404, "no such subscription")],
            ..e(
                "delete",
                "/v1/subscriptions/{name}",
                "feed",
                "Delete a stored subscription",
                serve(subscriptions::delete),
            )
        },
        Endpoint {
            reply: Reply::Json("Subscriptions"),
            ..e("get", "/v1/subscriptions", "feed", "Every stored subscription", serve(subscriptions::list))
        },
        Endpoint {
            body: Some("Ack"),
            reply: Reply::Json("Subscription"),
            example: named,
            responses: &[(200, "kept (an acknowledgement never moves back)"), (404, "no such subscription")],
            ..e(
                "post",
                "/v1/subscriptions/{name}/ack",
                "feed",
                "Acknowledge the feed up to an id: where the subscription's consumer resumes",
                serve(subscriptions::ack),
            )
        },
    ]
}
