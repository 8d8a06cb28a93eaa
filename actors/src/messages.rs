//! Every message between actors (and from the HTTP layer to them), in one
//! place, so no actor file imports another's. Commands are imperative
//! (`ApplyEntries`), facts past tense (`RulesFired`), queries `Get...`.

use actix::prelude::*;

use crate::domain::user::UserReport;
use crate::domain::{EntryId, ShardState, TripState};
use crate::link::Conn;
pub use crate::store::tripwire::Fired;
use crate::store::DeadLetter;
use crate::wire::{Entry, Payload};

// ---- to a shard actor ----

/// Apply these entries, in order. Replies with what could not be applied.
#[derive(Message)]
#[rtype(result = "Vec<DeadLetter>")]
pub struct ApplyEntries(pub Vec<Entry<Payload>>);

/// The shard is caught up once it has applied `target` (None: the stream was empty).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CatchUpTo(pub Option<EntryId>);

/// Start from this recovered state, under rule-set `version` (`model`);
/// persist through `conn`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Restore {
    pub state: ShardState,
    pub conn: Conn,
    pub version: u64,
    pub model: std::sync::Arc<crate::domain::Model>,
}

/// Persist through this connection from now on (after a reconnect).
#[derive(Message)]
#[rtype(result = "()")]
pub struct UseConnection(pub Conn);

/// Flush everything applied so far; resolves true once it is persisted.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct FlushNow;

/// Explain a user, or `None` when the shard has never seen them.
#[derive(Message)]
#[rtype(result = "Option<UserReport>")]
pub struct GetUser(pub String);

/// The users of the shard a rule restricts (or, with `suppressed`, whose
/// restriction by it the tripwire withheld), made at or after `since_ms`:
/// how many, and the newest `limit` of them (user, the event's entry, when),
/// newest first.
#[derive(Message)]
#[rtype(result = "(usize, Vec<(String, crate::domain::EntryId, u64)>)")]
pub struct ListByRule {
    pub rule: u16,
    pub suppressed: bool,
    pub since_ms: u64,
    pub limit: usize,
}

/// Evaluate a candidate rule set against the shard's users as they are now.
#[derive(Message)]
#[rtype(result = "crate::domain::simulate::Simulation")]
pub struct Simulate {
    pub candidate: std::sync::Arc<crate::domain::Model>,
    /// User ids kept per rule.
    pub sample: usize,
}

/// Lift the restrictions `rule` made at or after `since_ms` (tripwire revert).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RevertRule {
    pub rule: u16,
    pub since_ms: u64,
}

// ---- to the stream reader ----

/// Stop reading after the current round; resolves once stopped.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopReading;

// ---- to the tripwire supervisor ----

/// Restrictions made by a shard's rules, for the windows.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RulesFired(pub Vec<Fired>);

/// The tripwire state of every rule.
#[derive(Message)]
#[rtype(result = "Vec<RuleStatus>")]
pub struct GetRuleStatus;

/// Where to send reverts, and the Redis link for the shared windows.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Connect {
    pub shards: Vec<Recipient<RevertRule>>,
    pub conn: Option<Conn>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Control {
    /// Re-arm with a fresh window.
    Reset,
    /// Switch off until reset.
    Trip,
}

/// An operator's action on a rule's tripwire; replies with its status after
/// (or the reason it could not be recorded: Redis unreachable).
#[derive(Message)]
#[rtype(result = "Result<RuleStatus, String>")]
pub struct ControlTripwire {
    pub rule: u16,
    pub action: Control,
    /// Who acted (`admin:<token name>`).
    pub by: String,
}

/// A rule's tripwire, as the supervisor last saw it: the one shape of a
/// tripwire wherever it is shown (`GET /v1/rules`, the control's reply).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleStatus {
    /// `enforce`, or `shadow` (counted, never tripped: it restricts nobody).
    pub mode: &'static str,
    pub state: TripState,
    /// Tripped by an operator (no automatic re-arm).
    pub forced: bool,
    /// Users the rule restricted (a shadow rule: would have) within the
    /// window, over every instance.
    pub restricted_in_window: u64,
    /// The same, all time.
    pub restricted_total: u64,
    /// Of `restricted_total`, users whose features an enforced rule had
    /// restricted already (for a shadow rule: the overlap with what runs).
    pub overlap_total: u64,
    /// Restrictions the tripwire withheld while the rule was tripped, all time
    /// (each in the user's history as `suppressed`).
    pub suppressed_total: u64,
    /// Users known over every instance: the share's denominator.
    pub population: u64,
    /// Since when the rule is in its state (`None`: never changed).
    pub since_ms: Option<u64>,
    pub since: Option<String>,
    pub trips: u64,
    /// The configuration it is judged by.
    pub threshold: f64,
    pub min_restricted: u64,
    pub window_seconds: f64,
}
