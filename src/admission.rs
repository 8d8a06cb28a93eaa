//! Admission control: bounds on requests in flight, one for writes and one for
//! checks, and for writes a bound on how late the HTTP worker runs. Past a
//! bound a request is refused at once with 429 and `Retry-After`, so accepted
//! requests keep their latency under overload and the excess costs little. A
//! write holds its slot from the start of the handler (body read included)
//! until its reply.
//!
//! The in-flight count sees only requests inside a handler. When the machine
//! is short of CPU, requests wait before that, in the socket, until their
//! worker reads them; the count stays low while every request is late. Each
//! HTTP worker therefore runs a lag probe: every millisecond a task yields and
//! times how long it waits to run again. It waits behind the tasks already
//! ready and the next poll for I/O, as a newly readable connection does, so
//! that is the wait a request had before its handler ran. While the last
//! measurement exceeds `max_worker_lag`, the worker refuses writes, which are
//! cheap to refuse and dear to accept, until it catches up. (The least of the
//! last 8 measurements, as CoDel would judge a standing queue, refused almost
//! nothing at twice the load: the queue comes and goes in bursts.) Checks are
//! never refused for lag: one costs about what its refusal would.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use metrics::{Counter, Histogram};

use crate::error::{render, ApiError};

pub struct Gate {
    limit: usize,
    /// The lag bound, and the body of its refusal.
    max_lag: Option<(Duration, Bytes)>,
    in_flight: AtomicUsize,
    refused_full: Counter,
    refused_late: Counter,
    /// The refusals' bodies are rendered once: under overload a refusal is
    /// sent for about every accepted write, and formatting a message and
    /// serialising it was a sixth of a refusal's instructions.
    full_body: Bytes,
}

/// A slot; released when dropped.
pub struct Slot<'a>(&'a Gate);

impl Gate {
    /// `max_lag`: refuse while this thread's lag probe saw more (see [`start_lag_probe`]).
    pub fn new(kind: &'static str, limit: usize, max_lag: Option<Duration>) -> Self {
        let refused = |reason: &'static str| {
            let c = metrics::counter!(crate::metrics::ADMISSION_REFUSED_TOTAL, "kind" => kind, "reason" => reason);
            c.absolute(0);
            c
        };
        let max_lag = max_lag.map(|max| {
            let message = format!(
                "the service is overloaded: its HTTP worker runs later than the limit {max:?} \
                 (admission.max_worker_lag); retry shortly"
            );
            (max, render(&message))
        });
        Gate {
            limit,
            max_lag,
            in_flight: AtomicUsize::new(0),
            refused_full: refused("in_flight"),
            refused_late: refused("worker_lag"),
            full_body: render(&format!("too many {kind} in flight (limit {limit}); retry shortly")),
        }
    }

    /// Requests holding a slot now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Takes a slot, or refuses with 429.
    pub fn enter(&self) -> Result<Slot<'_>, ApiError> {
        if let Some((max, body)) = &self.max_lag {
            if worker_lag() > *max {
                self.refused_late.increment(1);
                return Err(too_many(body));
            }
        }
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
        let gate = Gate::new("checks", 2, None);
        let a = gate.enter().unwrap();
        let _b = gate.enter().unwrap();
        let refused = gate.enter().err().unwrap();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.retry_after, Some(1));
        drop(a);
        assert!(gate.enter().is_ok());
    }

    #[test]
    fn a_gate_with_a_lag_bound_refuses_while_its_thread_runs_late() {
        let gate = Gate::new("writes", 10, Some(Duration::from_millis(5)));
        LAG.set(Duration::from_millis(5));
        assert!(gate.enter().is_ok(), "at the bound: admitted");
        LAG.set(Duration::from_millis(6));
        let refused = gate.enter().err().unwrap();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.retry_after, Some(1));
        let message = refused.body()["error"].as_str().unwrap().to_string();
        assert!(message.contains("runs later than the limit 5ms"), "{message}");
        assert_eq!(gate.in_flight(), 0, "a refusal holds no slot");
        LAG.set(Duration::from_micros(300));
        assert!(gate.enter().is_ok(), "caught up: admitted again");
    }
}
