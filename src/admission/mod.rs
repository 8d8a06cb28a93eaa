//! Admission control. Writes are admitted by delay ([`queue`]): they wait
//! for a slot in a queue and are refused with 429 only when the queue already
//! holds more than `max_write_delay` of work. Checks have a bound on those in
//! flight, which in effect never bites: a check never waits, and one costs
//! about what its refusal would.
//!
//! Requests also wait before their handler, in the socket, until their HTTP
//! worker reads them; under CPU starvation every request is late there while
//! the queue looks short. Each HTTP worker therefore runs a lag probe: every
//! millisecond a task yields and times how long it waits to run again. It
//! waits behind the tasks already ready and the next poll for I/O, as a newly
//! readable connection does, so that is the wait a request had before its
//! handler ran; the write queue adds it to the wait it measures.

pub mod queue;

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use metrics::{Counter, Histogram};

use crate::error::{render, ApiError};

pub use queue::{WriteGate, WriteSlot};

/// A bound on requests in flight (checks).
pub struct Gate {
    limit: usize,
    in_flight: AtomicUsize,
    refused_full: Counter,
    /// Rendered once: formatting a message per refusal is work an overloaded
    /// service does not need.
    full_body: Bytes,
}

/// A slot; released when dropped.
pub struct Slot<'a>(&'a Gate);

/// `restrictd_admission_refused_total` for a kind and reason, exported from the start at 0.
fn refused_counter(kind: &'static str, reason: &'static str) -> Counter {
    let c = metrics::counter!(crate::metrics::ADMISSION_REFUSED_TOTAL, "kind" => kind, "reason" => reason);
    c.absolute(0);
    c
}

impl Gate {
    pub fn new(kind: &'static str, limit: usize) -> Self {
        Gate {
            limit,
            in_flight: AtomicUsize::new(0),
            refused_full: refused_counter(kind, "in_flight"),
            full_body: render(&format!("too many {kind} in flight (limit {limit}); retry shortly")),
        }
    }

    /// Requests holding a slot now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Takes a slot, or refuses with 429.
    pub fn enter(&self) -> Result<Slot<'_>, ApiError> {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= self.limit {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.refused_full.increment(1);
            return Err(too_many(&self.full_body));
        }
        Ok(Slot(self))
    }
}

fn too_many(body: &Bytes) -> ApiError {
    let mut e = ApiError::rendered(StatusCode::TOO_MANY_REQUESTS, body.clone());
    e.retry_after = Some(1);
    e
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

thread_local! {
    /// How late this thread's event loop ran at its probe's last measurement.
    static LAG: Cell<Duration> = const { Cell::new(Duration::ZERO) };
    static PROBING: Cell<bool> = const { Cell::new(false) };
}

/// The lag probe's period.
const PROBE_PERIOD: Duration = Duration::from_millis(1);

/// How late the calling thread's event loop runs, as its probe last measured
/// (zero on a thread without a probe).
pub fn worker_lag() -> Duration {
    LAG.get()
}

/// Starts the calling thread's lag probe, once per thread; must run on the
/// thread's actix runtime (an HTTP worker's app factory does). Every
/// measurement is also recorded in `lag`.
pub fn start_lag_probe(lag: Histogram) {
    if PROBING.replace(true) {
        return;
    }
    actix_rt::spawn(async move {
        loop {
            tokio::time::sleep(PROBE_PERIOD).await;
            // A yielded task is polled again after the tasks already ready
            // and the next poll of the I/O driver: the way a request goes
            // from its socket to its handler. (Timing the sleep itself would
            // add the timer's millisecond granularity.)
            let start = std::time::Instant::now();
            tokio::task::yield_now().await;
            let late = start.elapsed();
            lag.record(late.as_secs_f64());
            LAG.set(late);
        }
    });
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
