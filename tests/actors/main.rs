//! In-process tests of the actors: an actix `System` per test, a real
//! `redis-server` on a free port (the load generator's helper), messages in,
//! state and messages out checked.

mod shard;
mod support;
mod tripwire;
