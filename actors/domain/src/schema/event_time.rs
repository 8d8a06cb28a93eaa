//! An event's time: its `occurred_at`, read as RFC 3339 or epoch ms, and
//! the limits the HTTP edge holds it to (not too old, not in the future).

use serde_json::Value;

use super::{Event, ValidationError};

/// An event's optional `occurred_at`, read or refused.
pub(super) fn occurred_at_field(value: Option<&Value>) -> Result<Option<u64>, ValidationError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => occurred_at(v).map(Some).ok_or_else(|| {
            ValidationError::unprocessable(
                "bad_occurred_at",
                "\"occurred_at\" must be an RFC 3339 time (\"2026-12-01T09:30:00Z\") or epoch milliseconds",
            )
        }),
    }
}

/// `occurred_at` as ms since the epoch: an RFC 3339 string or a whole number of ms.
pub(crate) fn occurred_at(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => rfc3339_ms(s),
        // Before 1970: read as the epoch itself, which the age limit refuses
        // as too old (a readable time, not an unreadable one).
        Value::Number(n) => n.as_u64().or_else(|| n.as_i64().map(|_| 0)),
        _ => None,
    }
}

/// An RFC 3339 time (any offset) as ms since the epoch; a time before 1970
/// as 0 (too old for any event, see `occurred_at`).
pub(crate) fn rfc3339_ms(s: &str) -> Option<u64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    Some(u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
}

/// The limits on an event's time against the clock at the edge.
#[derive(Debug, Clone, Copy)]
pub struct EventTimeLimits {
    /// `ingest.max_event_age`, ms.
    pub max_age_ms: u64,
    /// `ingest.max_clock_skew`, ms.
    pub max_skew_ms: u64,
}

impl Event<'_> {
    /// Refuses an `occurred_at` too far in the past or the future of `now_ms`.
    pub fn check_time(&self, now_ms: u64, limits: EventTimeLimits) -> Result<(), ValidationError> {
        let Some(at) = self.occurred_at_ms else { return Ok(()) };
        let span = |ms: u64| humantime::format_duration(std::time::Duration::from_secs(ms / 1000)).to_string();
        if at.saturating_add(limits.max_age_ms) < now_ms {
            return Err(ValidationError::unprocessable(
                "event_too_old",
                format!(
                    "\"occurred_at\" is {} ago, older than ingest.max_event_age ({})",
                    span(now_ms - at),
                    span(limits.max_age_ms)
                ),
            ));
        }
        if at > now_ms.saturating_add(limits.max_skew_ms) {
            return Err(ValidationError::unprocessable(
                "event_in_future",
                format!(
                    "\"occurred_at\" is {} ms in the future, beyond ingest.max_clock_skew ({} ms)",
                    at - now_ms,
                    limits.max_skew_ms
                ),
            ));
        }
        Ok(())
    }
}
