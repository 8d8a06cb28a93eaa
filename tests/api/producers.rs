//! Producers for durability tests: threads posting events and recording which
//! were acknowledged, so the final state can be compared with a reference
//! model of every acknowledged event. A request that fails after it may have
//! reached Redis makes its user ambiguous (that one event may or may not be
//! applied) and retires the user; a refused connection was never sent.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{event, http, wait_for, TestApp};

/// Expected aggregates of one user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    pub flags: u64,
    /// Spend in cents.
    pub spend_cents: u64,
    /// The one event whose outcome is unknown, if any: (flags, cents) it would add.
    pub ambiguous: Option<(u64, u64)>,
}

/// Where producers send: the current service address, with a generation
/// number that changes on every restart.
#[derive(Default)]
pub struct Target {
    addr: Mutex<(u64, String)>,
    changed: Condvar,
}

impl Target {
    pub fn set(&self, addr: &str) {
        let mut a = self.addr.lock().unwrap();
        *a = (a.0 + 1, addr.to_string());
        self.changed.notify_all();
    }

    fn get(&self) -> (u64, String) {
        self.addr.lock().unwrap().clone()
    }

    /// Blocks until the address changes from generation `gen` (or `stop`).
    fn wait_change(&self, gen: u64, stop: &AtomicBool) {
        let mut a = self.addr.lock().unwrap();
        while a.0 == gen && !stop.load(Ordering::Acquire) {
            // The timeout only lets the loop see `stop`; the wake-up is the notify.
            a = self.changed.wait_timeout(a, Duration::from_millis(100)).unwrap().0;
        }
    }
}

pub struct Producers {
    pub target: Arc<Target>,
    stop: Arc<AtomicBool>,
    pub acked: Arc<AtomicU64>,
    threads: Vec<JoinHandle<HashMap<String, Expected>>>,
}

impl Producers {
    /// `threads` producers, each over its own `users` users.
    pub fn start(app: &TestApp, threads: usize, users: usize) -> Self {
        let target = Arc::new(Target::default());
        target.set(&app.addr);
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let threads = (0..threads)
            .map(|t| {
                let (target, stop, acked) = (Arc::clone(&target), Arc::clone(&stop), Arc::clone(&acked));
                std::thread::spawn(move || produce(t, users, &target, &stop, &acked))
            })
            .collect();
        Producers { target, stop, acked, threads }
    }

    /// Blocks until `n` more events than now were acknowledged.
    pub fn wait_acked(&self, n: u64) {
        let goal = self.acked.load(Ordering::Acquire) + n;
        wait_for(&format!("{goal} acknowledged events"), Duration::from_secs(60), || {
            (self.acked.load(Ordering::Acquire) >= goal).then_some(())
        });
    }

    /// Stops the producers and returns what each user should hold.
    pub fn finish(self) -> HashMap<String, Expected> {
        self.stop.store(true, Ordering::Release);
        self.target.changed.notify_all();
        self.threads.into_iter().flat_map(|t| t.join().expect("producer thread")).collect()
    }
}

fn produce(t: usize, users: usize, target: &Target, stop: &AtomicBool, acked: &AtomicU64) -> HashMap<String, Expected> {
    let mut expected: HashMap<String, Expected> = HashMap::new();
    let mut live: Vec<String> = (0..users).map(|u| format!("p{t}-u{u}")).collect();
    let mut n: u64 = 0;
    while !stop.load(Ordering::Acquire) && !live.is_empty() {
        n += 1;
        let user = live[(n as usize * 7 + t) % live.len()].clone();
        // Flags and purchases of 0.25 to 9.75: sums of quarters are exact.
        let (body, flags, cents) = if n.is_multiple_of(3) {
            (event("scam_message_flagged", &user, json!({})), 1, 0)
        } else {
            let cents = 25 * (n % 39 + 1);
            (event("purchase_made", &user, json!({"amount": cents as f64 / 100.0})), 0, cents)
        };
        let (gen, addr) = target.get();
        let reply = http(&addr, "POST", "/event", &[("Content-Type", "application/json")], body.to_string().as_bytes());
        match reply {
            Ok(r) if r.status == 200 => {
                let e = expected.entry(user).or_default();
                e.flags += flags;
                e.spend_cents += cents;
                acked.fetch_add(1, Ordering::AcqRel);
            }
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => target.wait_change(gen, stop),
            Ok(r) if r.status / 100 == 4 => {
                panic!("producer sent a bad event: {} {}", r.status, r.body)
            }
            other => {
                // Sent, outcome unknown (killed mid-request, or Redis failed after the append).
                eprintln!("producer {t}: outcome unknown for {user}: {:?}", other.map(|r| (r.status, r.body)));
                expected.entry(user.clone()).or_default().ambiguous = Some((flags, cents));
                live.retain(|u| *u != user);
                target.wait_change(gen, stop);
            }
        }
    }
    expected
}

/// Asserts that every user's aggregates, through the API, match the reference:
/// nothing acknowledged lost, nothing applied twice.
pub fn assert_state_matches(app: &TestApp, expected: &HashMap<String, Expected>) {
    assert!(!expected.is_empty());
    for (user, e) in expected {
        let ok = |v: &Value| {
            let flags = v["aggregates"]["scam_flags"].as_u64().unwrap_or(0);
            let spend = v["aggregates"]["spend"].as_str().map(cents).unwrap_or(0);
            let exact = flags == e.flags && spend == e.spend_cents;
            let with_ambiguous = e.ambiguous.is_some_and(|(f, c)| flags == e.flags + f && spend == e.spend_cents + c);
            exact || with_ambiguous
        };
        let mut last = Value::Null;
        let found = crate::helpers::wait_for_or(Duration::from_secs(30), || {
            let r = app.get(&format!("/v1/users/{user}"));
            last = if r.status == 200 { r.json() } else { Value::Null };
            ok(&last).then_some(())
        });
        assert!(found.is_some(), "user {user}: expected {e:?}, the service holds {last}");
    }
}

/// "12.75" → 1275.
fn cents(decimal: &str) -> u64 {
    let (units, frac) = decimal.split_once('.').unwrap_or((decimal, ""));
    let frac = format!("{frac:0<2}");
    units.parse::<u64>().unwrap() * 100 + frac[..2].parse::<u64>().unwrap()
}
