//! Rule tests as data: a rule set, a sequence of events, and what must hold
//! after each step. Analysts write them (TOML, read by the service's
//! `restrictd rules test`); they run here, in process, on a fresh shard per
//! case: no Redis, no actors, no tripwire (every enforced rule may restrict).
//!
//! The clock starts at the case's (or the file's) `start`. Each event happens
//! at the clock, then the clock moves on by the step's `every` (1 s unless
//! said); an event's `occurred_at` is its time, and moves the clock to it when
//! later. A step's `advance` moves the clock further; then expiries and
//! windows that aged out are swept, as the service's sweep does, and the
//! expectations are checked as of the clock.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::entry_id::EntryId;
use crate::rules::{Model, ModelDef};
use crate::shard_state::{Change, ShardState};

mod expect;
pub use expect::Expect;

/// The default clock at the start of a case: 2026-01-01T00:00:00Z.
pub const DEFAULT_START_MS: u64 = 1_767_225_600_000;

/// How long a producer's `event_id` is remembered, as the service's default.
const DEDUP_WINDOW_MS: u64 = 24 * 3600 * 1000;

/// The most events one case may apply (steps times their repeats).
pub const MAX_EVENTS_PER_CASE: u64 = 1_000_000;

/// One test file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// The rule set under test: a path (relative to the test file) or the
    /// rule-set sections inline. When publishing, the set being published.
    #[serde(default)]
    pub rule_set: Option<RuleSetSource>,
    /// The clock at the start of each case (RFC 3339).
    #[serde(default)]
    pub start: Option<String>,
    #[serde(rename = "case", default)]
    pub cases: Vec<Case>,
}

/// Where a test file's rule set comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RuleSetSource {
    Path(String),
    Inline(ModelDef),
}

/// One case: steps applied in order to a fresh shard.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    /// Overrides the file's `start`.
    #[serde(default)]
    pub start: Option<String>,
    #[serde(rename = "step", default)]
    pub steps: Vec<Step>,
}

/// Events (as producers post them), then the clock moved on, then checks.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[serde(default)]
    pub event: Option<Value>,
    #[serde(default)]
    pub events: Vec<Value>,
    /// How many times the step's events are sent (1 unless said).
    #[serde(default)]
    pub repeat: Option<u32>,
    /// How far the clock moves after each event ("1s" unless said).
    #[serde(default)]
    pub every: Option<String>,
    /// How far the clock moves after the step's events ("25h").
    #[serde(default)]
    pub advance: Option<String>,
    /// What must hold for each named user after the step.
    #[serde(default)]
    pub expect: BTreeMap<String, Expect>,
}

/// A case's result: passed when `failures` is empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    pub name: String,
    /// Each failed expectation (or a step that could not run), in words.
    pub failures: Vec<String>,
    /// Events applied.
    pub events: u64,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// An RFC 3339 time, in ms since the epoch.
pub fn parse_time(text: &str) -> Result<u64, String> {
    let t = humantime::parse_rfc3339_weak(text).map_err(|e| format!("{text:?} is not an RFC 3339 time ({e})"))?;
    let since = t.duration_since(std::time::UNIX_EPOCH).map_err(|_| format!("{text:?} is before 1970"))?;
    u64::try_from(since.as_millis()).map_err(|_| format!("{text:?} is out of range"))
}

/// A duration ("90s", "25h", "7d"), in ms.
fn parse_duration(what: &str, text: &str) -> Result<u64, String> {
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("{what}: {text:?} is not a duration like \"25h\" ({e})"))?;
    u64::try_from(d.as_millis()).map_err(|_| format!("{what}: {text:?} is out of range"))
}

/// Runs one case against `model`; `start` is the file's.
pub fn run_case(model: &Model, start: Option<&str>, case: &Case) -> CaseResult {
    let mut result = CaseResult { name: case.name.clone(), failures: Vec::new(), events: 0 };
    if let Err(e) = Run::new(model, case.start.as_deref().or(start)).and_then(|mut run| {
        for (i, step) in case.steps.iter().enumerate() {
            let n = i + 1;
            let changes = run.step(step).map_err(|e| format!("step {n}: {e}"))?;
            for (user, expect) in &step.expect {
                let report = run.report(user);
                for failure in expect.check(model, &report, &changes, user) {
                    result.failures.push(format!("step {n}, user {user}: {failure}"));
                }
            }
        }
        result.events = run.events;
        Ok(())
    }) {
        result.failures.push(e);
    }
    result
}

/// A case being run: its shard, clock and next entry id.
struct Run<'m> {
    model: &'m Model,
    shard: ShardState,
    clock: u64,
    seq: u64,
    events: u64,
}

impl<'m> Run<'m> {
    fn new(model: &'m Model, start: Option<&str>) -> Result<Self, String> {
        let clock = start.map(parse_time).transpose()?.unwrap_or(DEFAULT_START_MS);
        let shard = ShardState::new(DEDUP_WINDOW_MS);
        Ok(Run { model, shard, clock, seq: 0, events: 0 })
    }

    /// Applies a step's events, moves the clock, sweeps; every change made.
    fn step(&mut self, step: &Step) -> Result<Vec<Change>, String> {
        let every = parse_duration("every", step.every.as_deref().unwrap_or("1s"))?;
        let advance = step.advance.as_deref().map(|a| parse_duration("advance", a)).transpose()?.unwrap_or(0);
        let repeat = step.repeat.unwrap_or(1);
        let events: Vec<&Value> = step.event.iter().chain(&step.events).collect();
        if self.events + u64::from(repeat) * events.len() as u64 > MAX_EVENTS_PER_CASE {
            return Err(format!("a case applies at most {MAX_EVENTS_PER_CASE} events"));
        }
        let mut changes = Vec::new();
        for _ in 0..repeat {
            for event in &events {
                self.apply(event, &mut changes)?;
                self.clock = self.clock.saturating_add(every);
            }
        }
        self.clock = self.clock.saturating_add(advance);
        changes.extend(self.shard.sweep(self.model, self.clock));
        Ok(changes)
    }

    fn apply(&mut self, event: &Value, changes: &mut Vec<Change>) -> Result<(), String> {
        let bytes = serde_json::to_vec(event).map_err(|e| e.to_string())?;
        let mut scratch = None;
        let valid = self.model.schema.validate_bytes(&bytes, &mut scratch).map_err(|e| {
            let name = event.get("name").and_then(Value::as_str).unwrap_or("?");
            format!("event {name:?} is refused: {e}")
        })?;
        if let Some(at) = valid.occurred_at_ms {
            self.clock = self.clock.max(at);
        }
        self.seq += 1;
        self.shard.apply(self.model, EntryId::new(self.clock, self.seq), &valid, &|_| false, changes);
        self.events += 1;
        Ok(())
    }

    fn report(&self, user: &str) -> crate::user::UserReport {
        match self.shard.users.get(user) {
            Some(u) => u.report_at(self.model, 0, self.clock),
            None => crate::user::UserState::new(self.model).report(self.model, 0),
        }
    }
}

#[cfg(test)]
mod tests;
