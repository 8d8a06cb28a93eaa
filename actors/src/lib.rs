//! restrictd's engine: the domain (pure) and the actix actors that own it.
//!
//! `domain` knows nothing of actix, tokio or Redis. The actors (`shard`,
//! `reader`, `tripwire`, `changelog`) are thin: they own domain state,
//! receive `messages`, call the domain, record metrics and do the I/O
//! through `store` (Redis) and `wire` (stream entries).

/// The domain, a crate of its own (`restrictd-domain`), under the name the engine uses.
pub use restrictd_domain as domain;

pub mod budget;
pub mod changelog;
pub mod clock;
pub mod feed;
pub mod feed_item;
pub mod lease;
pub mod lifecycle;
pub mod link;
pub mod messages;
pub mod metrics;
pub mod reader;
pub mod retry;
pub mod shard;
pub mod shared;
pub mod store;
pub mod tripwire;
pub mod wire;
