//! The schemas of the console's data: a rule's users and the counts per minute.

use serde_json::{json, Value};

use super::{integer, nullable, object, string};

pub fn console() -> Value {
    let user = object(json!({"user_id": string(), "event_id": string(), "at_ms": integer(), "at": string()}));
    let point = json!({
        "type": "array", "items": integer(), "minItems": 2, "maxItems": 2,
        "description": "[the minute's start in ms since the epoch, the count]",
    });
    json!({
        "RuleUsers": object(json!({
            "rule": string(), "since_ms": integer(), "since": string(), "total": integer(), "offset": integer(),
            "users": {"type": "array", "items": user}, "next_offset": nullable(integer()),
        })),
        "Minutes": object(json!({
            "from_ms": integer(), "to_ms": integer(), "step_ms": integer(),
            "series": {"type": "array", "items": object(json!({
                "name": string(),
                "kind": {"type": "string", "enum": ["event", "fired", "would_restrict", "suppressed"]},
                "total": integer(),
                "points": {"type": "array", "items": point, "description": "minutes with a count, in order"},
            }))},
        })),
    })
}
