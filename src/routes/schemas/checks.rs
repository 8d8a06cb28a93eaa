//! The schemas of the checks in bulk.

use restrictd_domain::Model;
use serde_json::{json, Value};

use super::{object, user_id};

/// Bulk checks: the request and its answers.
pub fn checks(model: &Model, limit: usize) -> Value {
    let features: Vec<&str> = model.features.iter().map(|f| &**f).collect();
    let item = json!({
        "type": "object", "required": ["user_id", "feature"], "additionalProperties": false,
        "properties": {"user_id": user_id(), "feature": {"type": "string", "enum": features}},
    });
    let answer = json!({
        "type": "object", "required": ["allowed"],
        "properties": {
            "allowed": {"type": "boolean"},
            "rule": {"type": "string", "description": "the rule that restricts the user (when one does)"},
            "override": {"type": "boolean", "description": "true when an operator's override restricts the user"},
        },
    });
    json!({
        "Checks": {
            "type": "object", "required": ["checks"], "additionalProperties": false,
            "properties": {"checks": {"type": "array", "items": item, "maxItems": limit}},
            "example": {"checks": [
                {"user_id": "12345", "feature": features.first().copied().unwrap_or("can_message")},
                {"user_id": "67890", "feature": features.last().copied().unwrap_or("can_message")},
            ]},
        },
        "CheckResults": object(json!({"results": {"type": "array", "items": answer, "description": "in the request's order"}})),
    })
}
