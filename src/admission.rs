//! Admission control: bounds on requests in flight, one for writes and one for
//! checks. Past a bound a request is refused at once with 429 and
//! `Retry-After`, so accepted requests keep their latency under overload and
//! the excess costs almost nothing. A write holds its slot from the start of
//! the handler (body read included) until its reply.

use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::http::StatusCode;
use metrics::Counter;

use crate::error::ApiError;

pub struct Gate {
    kind: &'static str,
    limit: usize,
    in_flight: AtomicUsize,
    refused: Counter,
}

/// A slot; released when dropped.
pub struct Slot<'a>(&'a Gate);

impl Gate {
    pub fn new(kind: &'static str, limit: usize) -> Self {
        let refused = metrics::counter!(crate::metrics::ADMISSION_REFUSED_TOTAL, "kind" => kind);
        refused.absolute(0);
        Gate { kind, limit, in_flight: AtomicUsize::new(0), refused }
    }

    /// Requests holding a slot now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Takes a slot, or refuses with 429.
    pub fn enter(&self) -> Result<Slot<'_>, ApiError> {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= self.limit {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.refused.increment(1);
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many {} in flight (limit {}); retry shortly", self.kind, self.limit),
            );
            e.retry_after = Some(1);
            return Err(e);
        }
        Ok(Slot(self))
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gate_admits_up_to_its_limit_and_frees_slots_on_drop() {
        let gate = Gate::new("checks", 2);
        let a = gate.enter().unwrap();
        let _b = gate.enter().unwrap();
        let refused = gate.enter().err().unwrap();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.retry_after, Some(1));
        drop(a);
        assert!(gate.enter().is_ok());
    }
}
