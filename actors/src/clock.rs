//! The one wall clock of the service. The domain never reads it: it is handed
//! `now_ms` as an argument, so replay and tests choose their own time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, by the wall clock (0 if the clock is
/// set before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
