//! Admission of writes by delay, in turns per producer. A write is worked on
//! (body read, validated, appended) in one of `concurrent_writes` slots; when
//! all are taken it waits for one, without being read further. Waiting writes
//! are kept per producer (a named ingest token, or else the connection) and a
//! freed slot goes to the producers in turn, round robin: a producer flooding
//! from a thousand connections gets one turn in each round, as does one
//! posting an event now and then, so the latter waits one round at most.
//!
//! A write is refused at once with 429 and `Retry-After` when its producer's
//! own oldest waiting write has already waited longer than `max_write_delay`
//! (plus how late the HTTP worker runs: the wait it had before its handler):
//! that producer sends more than its share and could only be served late. A
//! write is also refused when a round of turns (the producers waiting, times
//! the recent time between two writes served) would take longer than
//! [`ROUND_LIMIT_FACTOR`] × `max_write_delay`: too many producers for the
//! service's rate, whoever sends. A producer with nothing waiting is never
//! refused for another's backlog.
//!
//! Why a queue rather than refusing past a count: a producer that ignores
//! `Retry-After` comes straight back after a refusal, and a refusal costs a
//! sizeable part of an accepted write. Refusing by count, many producers made
//! refusals most of the work and goodput collapsed. Waiting costs nothing: a
//! queued write holds a few hundred bytes and no CPU, its producer sends
//! nothing meanwhile, and the service keeps doing the writes it can at the
//! rate it can. Refusals start only when a producer's writes wait more than
//! `max_write_delay`, so a thousand producers are served (each waiting about
//! their number divided by the service's rate) and the excess beyond that is
//! refused quickly.
//!
//! A write waits at most [`WAIT_LIMIT_FACTOR`] × `max_write_delay` (when the
//! service stalls, Redis slow or the machine starved); then it is refused too.
//! `max_inflight_writes` bounds the writes in the service, waiting or worked
//! on, as a safety cap.

use std::collections::VecDeque;

use ahash::AHashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use metrics::{Counter, Histogram};
use tokio::sync::oneshot;

use super::{refused_counter, too_many, worker_lag};
use crate::error::{render, ApiError};

/// A queued write gives up after this many times `max_write_delay`.
pub const WAIT_LIMIT_FACTOR: u32 = 4;
/// Every write is refused when the producer next in turn has waited this many
/// times `max_write_delay`.
pub const ROUND_LIMIT_FACTOR: u32 = 2;

/// Who sent a write, for turns: a named ingest token, or the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Producer(pub u64);

impl Producer {
    const NAMED: u64 = 1 << 63;

    /// The producer of named ingest token `i` (which authenticates it).
    pub fn named(i: usize) -> Producer {
        Producer(i as u64 | Self::NAMED)
    }

    /// The producer of a connection without a named token.
    pub fn connection(peer: Option<std::net::SocketAddr>) -> Producer {
        let hash = peer.map_or(0, |a| ahash::RandomState::with_seeds(1, 2, 3, 4).hash_one(a));
        Producer(hash & !Self::NAMED)
    }

    /// Whether it presented a named ingest token.
    pub fn is_named(self) -> bool {
        self.0 & Self::NAMED != 0
    }
}

pub struct WriteGate {
    /// Writes worked on at once.
    slots: usize,
    /// Writes in the service, waiting or worked on.
    cap: usize,
    max_delay: Duration,
    queue: Mutex<Queue>,
    in_flight: AtomicUsize,
    waited: Histogram,
    refused_full: Counter,
    refused_delay: Counter,
    full_body: Bytes,
    delay_body: Bytes,
}

#[derive(Default)]
struct Queue {
    busy: usize,
    /// When a slot last went to a waiter, and the recent time between two
    /// (an average with weight 1/8 on the newest), while writes wait.
    last_handover: Option<Instant>,
    handover_every: Duration,
    /// Writes waiting, over every producer.
    waiting: usize,
    /// Producers with writes waiting, in turn.
    turns: VecDeque<Producer>,
    /// Each producer's waiting writes, oldest first (never empty).
    by_producer: AHashMap<Producer, VecDeque<Waiter>>,
}

impl Queue {
    /// When the oldest waiting write of `producer` arrived, if it has any.
    fn oldest(&self, producer: Producer) -> Option<Instant> {
        self.by_producer.get(&producer).and_then(|w| w.front()).map(|w| w.since)
    }

    /// How long a round of turns takes at `now`: a newcomer without writes
    /// waiting is served after every producer ahead of it had one, a turn
    /// taking the recent time between handovers; plus the time since the last
    /// handover (or, before any, since the next waiter arrived): a stalled
    /// service serves nobody.
    fn round(&self, now: Instant) -> Duration {
        let next_since = self.turns.front().and_then(|&p| self.oldest(p));
        let stalled = self.last_handover.or(next_since).map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        self.handover_every * u32::try_from(self.turns.len()).unwrap_or(u32::MAX) + stalled
    }

    /// Records a slot handed to a waiter at `now` (the time since the last
    /// handover counts only up to `cap`: an idle gap says nothing of the rate).
    fn handed_over(&mut self, now: Instant, cap: Duration) {
        if let Some(last) = self.last_handover {
            let gap = now.saturating_duration_since(last).min(cap);
            self.handover_every = (self.handover_every * 7 + gap) / 8;
        }
        self.last_handover = Some(now);
    }

    /// The next waiter in turn, if any; its producer goes to the back of the
    /// turns while it has more waiting.
    fn next(&mut self) -> Option<Waiter> {
        let producer = self.turns.pop_front()?;
        let writes = self.by_producer.get_mut(&producer).expect("a producer in turn has writes waiting");
        let waiter = writes.pop_front().expect("never empty");
        if writes.is_empty() {
            self.by_producer.remove(&producer);
        } else {
            self.turns.push_back(producer);
        }
        self.waiting -= 1;
        Some(waiter)
    }

    fn push(&mut self, producer: Producer, waiter: Waiter) {
        let writes = self.by_producer.entry(producer).or_default();
        if writes.is_empty() {
            self.turns.push_back(producer);
        }
        writes.push_back(waiter);
        self.waiting += 1;
    }
}

struct Waiter {
    since: Instant,
    wake: oneshot::Sender<()>,
}

/// A write's place in the service; its slot (if it got one) is passed on to
/// the next waiter, and its count released, when dropped.
pub struct WriteSlot<'a> {
    gate: &'a WriteGate,
    working: bool,
}

impl WriteGate {
    pub fn new(slots: usize, cap: usize, max_delay: Duration) -> Self {
        WriteGate {
            slots: slots.min(cap).max(1),
            cap,
            max_delay,
            queue: Mutex::new(Queue::default()),
            in_flight: AtomicUsize::new(0),
            waited: metrics::histogram!(crate::metrics::ADMISSION_WAIT_SECONDS),
            refused_full: refused_counter("writes", "in_flight"),
            refused_delay: refused_counter("writes", "queue_delay"),
            full_body: render(&format!("too many writes in flight (limit {cap}); retry shortly")),
            delay_body: render(&format!(
                "the service is overloaded: writes wait longer than {max_delay:?} \
                 (admission.max_write_delay); retry after Retry-After"
            )),
        }
    }

    /// Writes in the service now, waiting or worked on.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Writes waiting for a slot now.
    pub fn queued(&self) -> usize {
        self.lock().waiting
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A panic while holding the lock cannot leave the queue inconsistent
        // (each step is one push, pop or count change): carry on.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot to work on a write of `producer`: at once, after waiting its
    /// turn, or a 429.
    pub async fn enter(&self, producer: Producer) -> Result<WriteSlot<'_>, ApiError> {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= self.cap {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.refused_full.increment(1);
            return Err(too_many(&self.full_body));
        }
        // From here the count is released by the slot's drop, whatever happens.
        let mut slot = WriteSlot { gate: self, working: false };
        let arrived = Instant::now();
        let wake = {
            let mut q = self.lock();
            if q.busy < self.slots && q.waiting == 0 {
                q.busy += 1;
                drop(q);
                slot.working = true;
                self.waited.record(0.0);
                return Ok(slot);
            }
            let lag = worker_lag();
            let own = q.oldest(producer).map(|since| arrived.saturating_duration_since(since));
            let over_share = own.is_some_and(|own| own + lag > self.max_delay);
            if over_share || q.round(arrived) + lag > self.max_delay * ROUND_LIMIT_FACTOR {
                drop(q);
                self.refused_delay.increment(1);
                return Err(too_many(&self.delay_body));
            }
            let (tx, rx) = oneshot::channel();
            q.push(producer, Waiter { since: arrived, wake: tx });
            rx
        };
        let mut wait = Wait { gate: self, rx: Some(wake) };
        let limit = self.max_delay * WAIT_LIMIT_FACTOR;
        let got = tokio::time::timeout(limit, wait.rx.as_mut().expect("set above")).await;
        if matches!(got, Ok(Ok(()))) || wait.handed_over() {
            wait.rx = None;
            slot.working = true;
            self.waited.record(arrived.elapsed().as_secs_f64());
            return Ok(slot);
        }
        self.refused_delay.increment(1);
        Err(too_many(&self.delay_body))
    }

    /// Passes a finished write's slot to the next waiter in turn still
    /// waiting, or frees it.
    fn release(&self) {
        let mut q = self.lock();
        while let Some(w) = q.next() {
            if w.wake.send(()).is_ok() {
                q.handed_over(Instant::now(), self.max_delay);
                return;
            }
        }
        q.busy -= 1;
        q.last_handover = None;
    }
}

/// A write waiting in the queue. Dropped before it took its slot (the client
/// went away, or it gave up) it takes back a slot handed to it meanwhile and
/// passes it on.
struct Wait<'a> {
    gate: &'a WriteGate,
    rx: Option<oneshot::Receiver<()>>,
}

impl Wait<'_> {
    /// Closes the channel; whether a slot was handed over before it closed.
    fn handed_over(&mut self) -> bool {
        let Some(rx) = self.rx.as_mut() else { return false };
        rx.close();
        let got = rx.try_recv().is_ok();
        self.rx = None;
        got
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if self.handed_over() {
            self.gate.release();
        }
    }
}

impl Drop for WriteSlot<'_> {
    fn drop(&mut self) {
        if self.working {
            self.gate.release();
        }
        self.gate.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests;
