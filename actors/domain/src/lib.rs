//! The domain: plain Rust, no actix, tokio or Redis. Time is an argument.

pub mod admin;
pub mod bits;
pub mod dedup;
pub mod entry_id;
pub mod money;
pub mod routing;
pub mod rules;
pub mod ruleset;
pub mod ruletest;
pub mod schema;
pub mod shard_state;
pub mod simulate;
pub mod snapshot;
pub mod time;
pub mod tripwire;
pub mod user;
pub mod window;

#[cfg(test)]
mod testing;

pub use entry_id::{EntryId, EventRef};
pub use money::Money;
pub use routing::shard_of;
pub use rules::{Model, ModelDef};
pub use schema::{Event, EventKind, Rejection, Schema, ValidationError};
pub use shard_state::{Outcome, ShardState};
pub use tripwire::{SharedRule, Transition, TripState, TripwireSettings};
pub use user::UserState;
