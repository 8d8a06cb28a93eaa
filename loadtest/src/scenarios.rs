//! Workloads and the correctness check. Events follow the default config's
//! schema; a reference model of the three default rules tracks a sample of
//! users, and after a run every sampled user's features are compared with the
//! service's answers. A request that failed in flight makes its user
//! ambiguous and drops it from the sample.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::client::{Conn, Reply};
use crate::engine::{Generator, Op};

/// splitmix64: small, fast, good enough to spread load.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Which users requests go to.
#[derive(Clone)]
pub struct Population {
    pub users: u64,
    pub prefix: Arc<str>,
    /// Cumulative Zipf (s = 1) weights when skewed.
    zipf: Option<Arc<Vec<f64>>>,
}

impl Population {
    pub fn new(users: u64, prefix: &str, zipf: bool) -> Self {
        let zipf = zipf.then(|| {
            let mut acc = 0.0;
            let cdf: Vec<f64> = (1..=users)
                .map(|k| {
                    acc += 1.0 / k as f64;
                    acc
                })
                .collect();
            Arc::new(cdf.iter().map(|c| c / acc).collect())
        });
        Population { users, prefix: prefix.into(), zipf }
    }

    pub fn pick(&self, rng: &mut Rng) -> u64 {
        match &self.zipf {
            None => rng.below(self.users),
            Some(cdf) => {
                let u = rng.unit();
                cdf.partition_point(|&c| c < u) as u64
            }
        }
    }

    pub fn name(&self, i: u64) -> String {
        format!("{}{i}", self.prefix)
    }
}

/// What an event does to the reference model.
#[derive(Clone, Copy, Debug)]
pub enum Effect {
    Flag,
    Purchase(u64),
    Chargeback(u64),
    Card(u8, u8),
}

impl Effect {
    pub fn random(rng: &mut Rng) -> Effect {
        match rng.below(100) {
            0..=69 => Effect::Purchase(100 + rng.below(9_900)),
            70..=79 => Effect::Chargeback(1 + rng.below(2_000)),
            80..=89 => Effect::Flag,
            _ => Effect::Card(rng.below(5) as u8, rng.below(3) as u8),
        }
    }

    /// The event JSON.
    pub fn json(self, user: &str) -> String {
        let money = |c: u64| format!("{}.{:02}", c / 100, c % 100);
        match self {
            Effect::Flag => format!(r#"{{"name":"scam_message_flagged","event_properties":{{"user_id":"{user}"}}}}"#),
            Effect::Purchase(c) => {
                format!(r#"{{"name":"purchase_made","event_properties":{{"user_id":"{user}","amount":{}}}}}"#, money(c))
            }
            Effect::Chargeback(c) => format!(
                r#"{{"name":"chargeback_occurred","event_properties":{{"user_id":"{user}","amount":{}}}}}"#,
                money(c)
            ),
            Effect::Card(card, zip) => format!(
                r#"{{"name":"credit_card_added","event_properties":{{"user_id":"{user}","card_id":"card{card}","zip_code":"z{zip}"}}}}"#
            ),
        }
    }
}

/// The three default rules, sticky once fired, for one user.
#[derive(Default, Debug, Clone)]
struct Expected {
    flags: u64,
    spend: u64,
    chargebacks: u64,
    cards: HashSet<u8>,
    zips: HashSet<u8>,
    no_message: bool,
    no_purchase: bool,
    ambiguous: bool,
    /// Events of this user sent and not yet answered.
    pending: u32,
}

impl Expected {
    fn apply(&mut self, e: Effect) {
        match e {
            Effect::Flag => self.flags += 1,
            Effect::Purchase(c) => self.spend += c,
            Effect::Chargeback(c) => self.chargebacks += c,
            Effect::Card(card, zip) => {
                self.cards.insert(card);
                self.zips.insert(zip);
            }
        }
        match e {
            Effect::Flag => self.no_message |= self.flags >= 2,
            Effect::Purchase(_) | Effect::Chargeback(_) => {
                self.no_purchase |= self.spend > 0 && self.chargebacks * 10 > self.spend
            }
            Effect::Card(..) => self.no_purchase |= self.cards.len() > 2 && self.zips.len() * 4 > self.cards.len() * 3,
        }
    }
}

/// Expected features of a sample of users (every `every`-th user).
pub struct Model {
    every: u64,
    users: Mutex<HashMap<u64, Expected>>,
}

impl Model {
    pub fn new(every: u64) -> Arc<Model> {
        Arc::new(Model { every: every.max(1), users: Mutex::new(HashMap::new()) })
    }

    fn sampled(&self, user: u64) -> bool {
        user.is_multiple_of(self.every)
    }

    /// Notes that `effects` are being sent. A user with events in flight on
    /// two connections at once becomes ambiguous: the service's order of them
    /// is not known here, and the rules are sticky, so order can matter.
    pub fn sending(&self, effects: &[(u64, Effect)]) {
        if !effects.iter().any(|(u, _)| self.sampled(*u)) {
            return;
        }
        let mut users = self.users.lock().expect("model lock");
        // Looked at before counting these: a user twice in one batch is in order.
        for &(u, _) in effects.iter().filter(|(u, _)| self.sampled(*u)) {
            let x = users.entry(u).or_default();
            x.ambiguous |= x.pending > 0;
        }
        for &(u, _) in effects.iter().filter(|(u, _)| self.sampled(*u)) {
            users.entry(u).or_default().pending += 1;
        }
    }

    /// Records the outcome of posting `effects`: applied (2xx), refused (4xx/5xx
    /// other than a timeout: not appended) or unknown (I/O error, 504: ambiguous).
    pub fn record(&self, effects: &[(u64, Effect)], reply: Option<&Reply>) {
        if !effects.iter().any(|(u, _)| self.sampled(*u)) {
            return;
        }
        let mut users = self.users.lock().expect("model lock");
        for &(u, e) in effects.iter().filter(|(u, _)| self.sampled(*u)) {
            let x = users.entry(u).or_default();
            x.pending = x.pending.saturating_sub(1);
            match reply.map(|r| r.status) {
                Some(s) if s < 300 => x.apply(e),
                Some(s) if s != 504 && s >= 400 => {}
                _ => x.ambiguous = true,
            }
        }
    }

    pub fn sample_size(&self) -> usize {
        self.users.lock().expect("model lock").values().filter(|e| !e.ambiguous).count()
    }

    /// Compares every sampled user with the service; returns the mismatches.
    pub async fn verify(&self, addr: &str, pop: &Population, deadline: Duration) -> Vec<String> {
        let expected: Vec<(u64, Expected)> = self
            .users
            .lock()
            .expect("model lock")
            .iter()
            .filter(|(_, e)| !e.ambiguous)
            .map(|(u, e)| (*u, e.clone()))
            .collect();
        let mut conn = Conn::new(addr);
        let until = Instant::now() + deadline;
        let mut mismatches = Vec::new();
        for (u, e) in expected {
            let name = pop.name(u);
            let want = format!(r#""can_message":{},"can_purchase":{}"#, !e.no_message, !e.no_purchase);
            loop {
                let got = conn.get(&format!("/v1/users/{name}/features")).await.ok();
                let body = got.map(|r| String::from_utf8_lossy(&r.body).into_owned()).unwrap_or_default();
                if body.contains(&want) {
                    break;
                }
                if Instant::now() > until {
                    mismatches.push(format!("{name}: expected {want}, service says {body}"));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        mismatches
    }
}

/// GET /can<feature> for users of the population.
pub struct Checks {
    pub pop: Population,
    pub rng: Rng,
}

impl Generator for Checks {
    fn next(&mut self) -> Op {
        let u = self.pop.pick(&mut self.rng);
        let feature = if u.is_multiple_of(2) { "canmessage" } else { "canpurchase" };
        Op::Get(format!("/{feature}?user_id={}{u}", self.pop.prefix))
    }
}

/// Single events, POST /event.
pub struct Events {
    pub pop: Population,
    pub rng: Rng,
    pub model: Arc<Model>,
    pub last: Vec<(u64, Effect)>,
}

impl Generator for Events {
    fn next(&mut self) -> Op {
        let u = self.pop.pick(&mut self.rng);
        let e = Effect::random(&mut self.rng);
        self.last.clear();
        self.last.push((u, e));
        self.model.sending(&self.last);
        Op::Post("/event".into(), e.json(&self.pop.name(u)).into_bytes())
    }
    fn done(&mut self, reply: Option<&Reply>) {
        self.model.record(&self.last, reply);
    }
}

/// Batches, POST /v1/events.
pub struct Batches {
    pub events: Events,
    pub size: usize,
}

impl Generator for Batches {
    fn next(&mut self) -> Op {
        let e = &mut self.events;
        e.last.clear();
        let mut body = String::with_capacity(self.size * 110);
        body.push('[');
        for i in 0..self.size {
            let u = e.pop.pick(&mut e.rng);
            let effect = Effect::random(&mut e.rng);
            e.last.push((u, effect));
            if i > 0 {
                body.push(',');
            }
            body.push_str(&effect.json(&e.pop.name(u)));
        }
        body.push(']');
        e.model.sending(&e.last);
        Op::Post("/v1/events".into(), body.into_bytes())
    }
    fn done(&mut self, reply: Option<&Reply>) {
        self.events.done(reply);
    }
    fn weight(&self) -> u64 {
        self.size as u64
    }
}

/// One event for every two checks, like a product in use.
pub struct Mixed {
    pub events: Events,
    pub checks: Checks,
    n: u64,
    last_was_event: bool,
}

impl Mixed {
    pub fn new(events: Events, checks: Checks) -> Self {
        Mixed { events, checks, n: 0, last_was_event: false }
    }
}

impl Generator for Mixed {
    fn next(&mut self) -> Op {
        self.n += 1;
        self.last_was_event = self.n.is_multiple_of(3);
        if self.last_was_event {
            self.events.next()
        } else {
            self.checks.next()
        }
    }
    fn done(&mut self, reply: Option<&Reply>) {
        if self.last_was_event {
            self.events.done(reply);
        }
    }
}

/// Gives every user of the population one purchase, and every 100th user two
/// scam flags (so checks see both answers). Batches of 918 events (900 users),
/// under the default batch limit; recorded in `model`.
pub async fn populate(addr: &str, pop: &Population, model: &Model, connections: usize) -> anyhow::Result<()> {
    let chunks: Vec<(u64, u64)> = (0..pop.users).step_by(900).map(|s| (s, (s + 900).min(pop.users))).collect();
    let chunks = Arc::new(Mutex::new(chunks));
    let mut tasks = Vec::new();
    for _ in 0..connections.max(1) {
        let (chunks, addr, pop) = (Arc::clone(&chunks), addr.to_string(), pop.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(&addr);
            let mut out: Vec<(Vec<(u64, Effect)>, u16)> = Vec::new();
            loop {
                let Some((from, to)) = chunks.lock().expect("chunks").pop() else {
                    break;
                };
                let mut effects = Vec::new();
                for u in from..to {
                    effects.push((u, Effect::Purchase(1000)));
                    if u % 100 == 0 {
                        effects.push((u, Effect::Flag));
                        effects.push((u, Effect::Flag));
                    }
                }
                let body: Vec<String> = effects.iter().map(|(u, e)| e.json(&pop.name(*u))).collect();
                let body = format!("[{}]", body.join(","));
                let reply = conn.post_until_admitted("/v1/events?wait=applied", body.as_bytes()).await?;
                anyhow::ensure!(
                    reply.status == 200,
                    "populate: {} {}",
                    reply.status,
                    String::from_utf8_lossy(&reply.body)
                );
                out.push((effects, reply.status));
            }
            Ok::<_, anyhow::Error>(out)
        }));
    }
    for t in tasks {
        for (effects, status) in t.await?? {
            model.record(&effects, Some(&Reply { status, body: Vec::new(), retry_after: None }));
        }
    }
    Ok(())
}

/// Waits until the service has written behind everything it applied (no
/// shard has users waiting for a snapshot), so that a measurement after a
/// load does not also measure the snapshots of that load.
pub async fn settle(addr: &str, deadline: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut conn = Conn::new(addr);
    loop {
        let metrics = conn.get("/metrics").await?;
        let pending: f64 = String::from_utf8_lossy(&metrics.body)
            .lines()
            .filter(|l| l.starts_with("restrictd_writebehind_pending_users{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if metrics.status == 200 && pending == 0.0 {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < deadline,
            "the service still had {pending} users to snapshot after {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
