//! The schemas of the OpenAPI document: request bodies (with an example that
//! this configuration accepts) and every reply.

use restrictd_domain::money::MAX_UNITS;
use restrictd_domain::schema::{PropType, MAX_EVENT_ID_CHARS, MAX_USER_ID_CHARS};
use restrictd_domain::Model;
use serde_json::{json, Map, Value};

mod checks;
mod console;
pub use checks::checks;
pub use console::console;

/// A user id as the service takes it (`schema::check_user_id`).
pub fn user_id() -> Value {
    json!({
        "type": "string", "minLength": 1, "maxLength": MAX_USER_ID_CHARS,
        "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*$",
        "description": "1 to 256 characters, none of them a control character",
    })
}

/// A character that is not white space as Rust's `str::trim` sees it (Unicode
/// White_Space, spelled out: regex engines' `\s` differ from it and each other).
const NOT_BLANK: &str = "[^\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";

/// An override's `expires_in` as the service reads it (`overrides::expires_in_ms`).
pub const EXPIRES_IN_PATTERN: &str = "^[1-9][0-9]{0,8}(ms|s|m|h|d|w)$";

fn string() -> Value {
    json!({"type": "string"})
}

fn nullable(mut schema: Value) -> Value {
    schema["nullable"] = json!(true);
    schema
}

fn strings() -> Value {
    json!({"type": "array", "items": string()})
}

fn integer() -> Value {
    json!({"type": "integer", "minimum": 0})
}

/// An object whose every listed property is required.
fn object(properties: Value) -> Value {
    let required: Vec<&String> = properties.as_object().map(|p| p.keys().collect()).unwrap_or_default();
    json!({"type": "object", "required": required, "properties": properties})
}

/// `schema` with `optional` taken out of its required properties (present
/// only when they hold something: a user's windows).
fn without_required(optional: &[&str], mut schema: Value) -> Value {
    if let Some(required) = schema["required"].as_array_mut() {
        required.retain(|r| !optional.iter().any(|o| r == o));
    }
    schema
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// A time in both forms: milliseconds since the epoch and RFC 3339.
fn time(name: &str, properties: &mut Map<String, Value>, nullable_: bool) {
    let (ms, iso) = (
        json!({"type": "integer", "description": "ms since the epoch"}),
        json!({"type": "string", "format": "date-time"}),
    );
    let wrap = |v: Value| if nullable_ { nullable(v) } else { v };
    properties.insert(format!("{name}_ms"), wrap(ms));
    properties.insert(name.to_string(), wrap(iso));
}

fn with_times(properties: Value, times: &[(&str, bool)]) -> Value {
    let mut map = properties.as_object().cloned().unwrap_or_default();
    for (name, nullable_) in times {
        time(name, &mut map, *nullable_);
    }
    object(Value::Object(map))
}

/// Each configured event's schema, and a valid example of it for user 12345.
fn events(model: &Model) -> (Vec<Value>, Vec<Value>) {
    let mut schemas = Vec::new();
    let mut examples = Vec::new();
    for (name, props) in model.schema.events.iter().zip(&model.schema.properties) {
        let mut properties = Map::new();
        properties.insert("user_id".into(), user_id());
        let mut required = vec![json!("user_id")];
        let mut example = Map::new();
        example.insert("user_id".into(), json!("12345"));
        for (p, t) in props {
            let (schema, value) = match t {
                PropType::String => (json!({"type": "string", "minLength": 1}), json!(format!("{p}-1"))),
                PropType::Money => (
                    json!({
                        "type": "number", "minimum": 0, "maximum": MAX_UNITS,
                        "multipleOf": 0.000_001,
                        "description": "read exactly from the JSON text, at most 6 decimal places",
                    }),
                    json!(100),
                ),
                PropType::Integer => (json!({"type": "integer", "minimum": i64::MIN, "maximum": i64::MAX}), json!(1)),
                PropType::Bool => (json!({"type": "boolean"}), json!(true)),
            };
            properties.insert(p.to_string(), schema);
            required.push(json!(p.to_string()));
            example.insert(p.to_string(), value);
        }
        schemas.push(json!({
            "type": "object",
            "required": ["name", "event_properties"],
            "properties": {
                "name": {"type": "string", "enum": [name.to_string()]},
                "event_id": {"type": "string", "minLength": 1, "maxLength": MAX_EVENT_ID_CHARS, "nullable": true,
                    "description": "idempotency key: applied once per user within ingest.dedup_window"},
                "occurred_at": {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "integer", "minimum": 0}],
                    "nullable": true,
                    "description": "when it happened (RFC 3339 or epoch ms); absent or null: its arrival. \
                        Refused (422) when older than ingest.max_event_age or further ahead than ingest.max_clock_skew"},
                "event_properties": {"type": "object", "required": required, "properties": properties},
            },
        }));
        examples.push(json!({"name": name.to_string(), "event_properties": example}));
    }
    (schemas, examples)
}

pub fn schemas(model: &Model, batch_limit: usize) -> Value {
    let mut all = requests(model, batch_limit);
    if let Some(all) = all.as_object_mut() {
        for part in [replies(), records(), lifecycle(), feed(model)] {
            if let Value::Object(part) = part {
                all.extend(part);
            }
        }
    }
    all
}

/// The records replies are made of: a tripwire, a change, an override, a restriction.
fn records() -> Value {
    let event_ref =
        json!({"type": "string", "description": "the event's id, unique in the deployment: <shard>-<ms>-<seq>"});
    let tripwire = with_times(
        json!({
            "state": {"type": "string", "enum": ["armed", "tripped"]},
            "forced": {"type": "boolean", "description": "tripped by an operator (no automatic re-arm)"},
            "mode": {"type": "string", "enum": ["enforce", "shadow"]},
            "restricted_in_window": integer(), "restricted_total": integer(), "overlap_total": integer(), "suppressed_total": integer(),
            "population": integer(), "trips": integer(),
            "threshold": {"type": "number"}, "min_restricted": integer(), "window_seconds": {"type": "number"},
        }),
        &[("since", true)],
    );
    let change = with_times(
        json!({
            "type": string(), "user_id": string(), "change": string(), "features": strings(),
            "rule": nullable(string()), "why": string(), "who": string(), "entry_id": nullable(event_ref.clone()),
            "restricted_after": strings(),
            "version": {"type": "integer", "description": "the rule-set version the shard applied when the change was made"},
            "restricted_by": {
                "type": "object",
                "additionalProperties": nullable(string()),
                "description": "what restricts each feature of restricted_after: a rule's name, or null for an operator's override",
            },
        }),
        &[("at", false)],
    );
    // Changes recorded before causes and versions were kept have none.
    let change = without_required(&["restricted_by", "version"], change);
    let override_state = with_times(
        json!({"feature": string(), "state": {"type": "string", "enum": ["allowed", "restricted"]}, "reason": string(), "by": string()}),
        &[("at", false), ("expires_at", true)],
    );
    let restriction = with_times(
        json!({"rule": string(), "features": strings(), "event_id": event_ref.clone()}),
        &[("at", false), ("expires_at", true)],
    );
    json!({"Tripwire": tripwire, "Change": change, "OverrideState": override_state, "Restriction": restriction})
}

/// Request bodies, with examples this configuration accepts, and the error.
fn requests(model: &Model, batch_limit: usize) -> Value {
    let (events, examples) = events(model);
    json!({
        "Event": {"oneOf": events, "example": examples.first().cloned().unwrap_or(Value::Null)},
        "EventBatch": {
            "type": "array", "items": reference("Event"), "minItems": 1, "maxItems": batch_limit,
            "example": examples.iter().take(2).collect::<Vec<_>>(),
        },
        "Override": {
            "type": "object",
            "required": ["state", "reason"],
            "additionalProperties": false,
            "properties": {
                "state": {"type": "string", "enum": ["allowed", "restricted"]},
                "reason": {"type": "string", "pattern": NOT_BLANK, "description": "why, kept in the audit trail (not blank)"},
                "expires_in": {"type": "string", "nullable": true, "pattern": EXPIRES_IN_PATTERN,
                    "description": "a whole number above zero and a unit (ms, s, m, h, d, w) such as \"7d\"; absent or null: until removed"},
            },
            "example": {"state": "allowed", "reason": "appeal 17", "expires_in": "7d"},
        },
        "TripwireAction": {
            "oneOf": [
                {
                    "type": "object", "required": ["action"], "additionalProperties": false,
                    "properties": {
                        "action": {"type": "string", "enum": ["reset"]},
                        "apply_suppressed": {"type": "boolean", "description": "make the restrictions the tripwire withheld in the window, through every shard stream, once"},
                    },
                },
                {
                    "type": "object", "required": ["action"], "additionalProperties": false,
                    "properties": {"action": {"type": "string", "enum": ["trip"]}},
                },
            ],
            "example": {"action": "reset"},
        },
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string", "description": "what is wrong, in words a person can act on"}},
        },
        "Object": {"type": "object"},
        "RuleSet": rule_set(model),
        "Rollback": {
            "type": "object",
            "required": ["to"],
            "additionalProperties": false,
            "properties": {"to": {"type": "integer", "minimum": 1, "maximum": u64::MAX, "description": "the version to publish a copy of"}},
            "example": {"to": 1},
        },
    })
}

/// Every reply's schema.
fn replies() -> Value {
    let features =
        json!({"type": "object", "additionalProperties": {"type": "boolean"}, "description": "feature → allowed"});
    let event_ref =
        json!({"type": "string", "description": "the event's id, unique in the deployment: <shard>-<ms>-<seq>"});
    let stat = json!({"type": "object", "properties": {"count": integer(), "amount": {"type": "string", "description": "exact decimal"}}});
    json!({
        "Features": features,
        "Appended": {
            "type": "object",
            "required": ["id", "status"],
            "properties": {"id": event_ref, "status": string(), "applied": {"type": "boolean"}, "user_id": string(), "features": reference("Features")},
        },
        "BatchAccepted": object(json!({"accepted": integer(), "ids": {"type": "array", "items": event_ref}})),
        "BatchApplied": object(json!({
            "accepted": integer(), "ids": {"type": "array", "items": event_ref}, "applied": {"type": "boolean"},
            "features": {"type": "object", "additionalProperties": reference("Features"), "description": "user → features"},
        })),
        "Check": {"type": "object", "additionalProperties": {"type": "boolean"}, "minProperties": 1, "description": "{\"can_<feature>\": allowed}"},
        "UserFeatures": object(json!({"user_id": string(), "features": reference("Features")})),
        "User": without_required(&["windows"], object(json!({
            "user_id": string(), "shard": integer(), "features": reference("Features"),
            "source": {"type": "string", "enum": ["memory", "redis"]},
            "aggregates": {"type": "object", "description": "name → count, or exact decimal string for sums"},
            "restrictions": {"type": "array", "items": reference("Restriction")},
            "would_restrict": {"type": "array", "items": reference("Restriction"), "description": "what shadow rules would have restricted"},
            "windows": {"type": "object", "description": "windowed aggregates: window, entries held, merged beyond max_events, next_aging_at_ms"},
            "overrides": {"type": "array", "items": reference("OverrideState")},
        }))),
        "Rules": object(json!({"rules": {"type": "array", "items": object(json!({
            "name": string(), "description": nullable(string()), "on": strings(), "when": string(),
            "restrict": strings(), "tripwire": reference("Tripwire"),
        }))}})),
        "TripwireReply": object(json!({"rule": string(), "tripwire": reference("Tripwire")})),
        "Suppressed": object(json!({
            "rule": string(), "limit": integer(),
            "users": {"type": "array", "items": object(json!({"user_id": string(), "event_id": string(), "at_ms": integer(), "at": string()}))},
        })),
        "Health": object(json!({"status": {"type": "string", "enum": ["ok"]}})),
        "Ready": {
            "type": "object",
            "required": ["status"],
            "properties": {
                "status": {"type": "string", "enum": ["ready", "not ready"]},
                "instance": string(), "redis": string(), "changelog": string(), "standby": string(),
                "shards_catching_up": {"type": "array", "items": integer()},
            },
        },
        "OverrideApplied": object(json!({
            "user_id": string(), "id": event_ref, "features": reference("Features"),
            "overrides": {"type": "array", "items": reference("OverrideState")},
        })),
        "History": object(json!({
            "user_id": string(), "offset": integer(), "next_offset": nullable(integer()),
            "changes": {"type": "array", "items": reference("Change")},
        })),
        "Stats": with_times(json!({
            "events": {"type": "object", "additionalProperties": stat},
            "rejects": {"type": "object", "additionalProperties": integer()},
            "restricted_users": {"type": "object", "additionalProperties": integer()},
        }), &[("since", true)]),
        "EventStats": with_times(json!({"event": string(), "count": integer(), "amount": string()}), &[("since", true)]),
        "StatsReset": with_times(json!({"reset": {"type": "boolean"}, "by": string()}), &[("since", false)]),
    })
}

/// The rule lifecycle's replies.
fn lifecycle() -> Value {
    json!({
        "Published": with_times(json!({
            "version": integer(), "by": string(), "message": nullable(string()), "source": string(),
            "diff": {"type": "object", "description": "rules added, removed, changed; aggregates added, carried over, dropped; events and features added"},
            "applied": {"type": "boolean"}, "switches": strings(),
        }), &[("at", false)]),
        "Simulation": {
            "type": "object",
            "properties": {
                "population": integer(), "released_if_lifted": integer(), "against_version": nullable(integer()),
                "shards": {"type": "string", "description": "the shards covered, as ranges"},
                "rules": {"type": "array", "items": {"type": "object", "properties": {
                    "rule": string(), "mode": string(), "would_restrict": integer(), "newly_restricted": integer(),
                    "share": {"type": "number"}, "would_trip": {"type": "boolean"}, "sample": strings(),
                    "needs_shadow_mode": {"type": "boolean"},
                }}},
            },
        },
        "Versions": object(json!({
            "current": integer(), "offset": integer(), "next_offset": nullable(integer()),
            "versions": {"type": "array", "items": with_times(json!({
                "version": integer(), "by": string(), "message": nullable(string()), "source": string(),
            }), &[("at", false)])},
        })),
        "Version": with_times(json!({
            "version": integer(), "by": string(), "message": nullable(string()), "source": string(),
            "content": {"type": "object"}, "diff": {"type": "object"},
        }), &[("at", false)]),
    })
}

/// A rule set's sections, each key as `config.toml` takes it. Whether a rule
/// set is valid also depends on what its conditions say and on the current
/// version (it keeps every feature): those answers are 422 with every error.
fn rule_set(model: &Model) -> Value {
    let closed = |properties: Value, required: &[&str]| {
        let mut object = json!({"type": "object", "additionalProperties": false, "properties": properties});
        // OpenAPI 3.0 wants at least one name in a `required` list.
        if !required.is_empty() {
            object["required"] = json!(required);
        }
        object
    };
    let map = |value: Value| json!({"type": "object", "additionalProperties": value});
    let text = nullable(string());
    let feature = closed(json!({"description": text}), &[]);
    let event = closed(
        json!({"properties": map(json!({"type": "string", "enum": ["string", "money", "integer", "bool"]}))}),
        &[],
    );
    let aggregate = closed(
        json!({
            "kind": {"type": "string", "enum": ["count", "sum", "distinct"]},
            "event": string(), "property": text,
            "window": {"type": "string", "description": "a sliding window of event time, 1s to 90d; absent: all time"},
            "max_events": {"type": "integer", "minimum": 0, "maximum": u32::MAX},
        }),
        &["kind", "event"],
    );
    let rule = closed(
        json!({
            "on": strings(), "when": {"type": "string", "description": "a CEL condition over the aggregates"},
            "restrict": strings(), "description": text, "restrict_for": text,
            "on_trip": {"type": "string", "enum": ["keep", "revert", "rollback"]},
            "mode": {"type": "string", "enum": ["enforce", "shadow"]},
            "until": {"type": "string", "enum": ["lifted", "condition_clears"]},
        }),
        &["on", "when", "restrict"],
    );
    let mut schema = closed(
        json!({
            "features": map(feature), "events": map(event), "aggregates": map(aggregate), "rules": map(rule),
            "lift_removed": {"type": "boolean", "description": "lift the restrictions of the rules this version removes"},
        }),
        &[],
    );
    schema["description"] = json!("the features, events, aggregates and rules sections, as in config.toml");
    schema["example"] = json!(model.def());
    schema
}

/// A feed id: the id of the feed's stream entry (`<ms>-<seq>`).
pub const FEED_ID_PATTERN: &str = "^[0-9]{1,19}-[0-9]{1,19}$";

/// Stored subscriptions: the filter stored, an acknowledgement, the replies.
fn feed(model: &Model) -> Value {
    let names = |names: Vec<&str>| json!({"type": "array", "minItems": 1, "items": {"type": "string", "enum": names}});
    let filter = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "events": names(model.schema.events.iter().map(|e| &**e).chain(["all"]).collect()),
            "rules": names(model.rules.iter().map(|r| &*r.name).collect()),
            "features": names(model.features.iter().map(|f| &**f).collect()),
            "users": {"type": "array", "minItems": 1, "items": user_id()},
            "changes": names(crate::feed::filter::CHANGE_KINDS.to_vec()),
            "condition": {"type": "string", "minLength": 1,
                "description": "CEL over the streamed events (event.<property>); needs events"},
        },
    });
    let mut example = json!({"changes": ["rule_fired", "cleared"]});
    if let Some(i) =
        model.schema.properties.iter().position(|p| p.iter().any(|(n, t)| &**n == "amount" && *t == PropType::Money))
    {
        example = json!({"events": [&*model.schema.events[i]], "changes": ["rule_fired"], "condition": "event.amount >= 100"});
    }
    let mut filter = filter;
    filter["example"] = example;
    let stored = with_times(
        json!({"name": string(), "filter": filter.clone(), "acked": nullable(string()), "by": string()}),
        &[("at", false)],
    );
    json!({
        "SubscriptionFilter": filter,
        "Ack": {
            "type": "object", "required": ["id"], "additionalProperties": false,
            "properties": {"id": {"type": "string", "pattern": FEED_ID_PATTERN, "description": "a feed id the consumer handled"}},
            "example": {"id": "1796014770608-0"},
        },
        "Subscription": stored.clone(),
        "Subscriptions": object(json!({"subscriptions": {"type": "array", "items": stored}})),
        "SubscriptionDeleted": object(json!({"name": string(), "deleted": {"type": "boolean"}})),
    })
}
