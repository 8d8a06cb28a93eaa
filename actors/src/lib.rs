//! restrictd's engine: the domain (pure) and the actix actors that own it.
//!
//! `domain` knows nothing of actix, tokio or Redis. The actors are thin: they
//! own domain state, receive messages, call the domain, record metrics and do
//! the I/O.

pub mod changelog;
pub mod domain;
pub mod lease;
pub mod link;
pub mod metrics;
pub mod persistence;
pub mod reader;
pub mod shard;
pub mod shared;
pub mod tripwire;
