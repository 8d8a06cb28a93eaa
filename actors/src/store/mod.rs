//! Redis, in one place: every key (`keys`), every stored encoding
//! (`codec`, snapshots in `snapshot`), and every read or write other modules
//! need (`reads`, `tripwire`, `snapshot`). Routes, the CLI and the load
//! generator call these functions; none of them names a key or builds a
//! pipeline. Shard leases are in `crate::lease`, with their renewal loop.

pub mod codec;
pub mod feed;
pub mod fence;
pub mod keys;
pub mod minutes;
pub mod reads;
pub mod rules;
pub mod snapshot;
pub mod stream;
pub mod tripwire;

pub use codec::{EventStat, EventStats};
pub use fence::{Fence, WriteError};
pub use keys::{Keys, DEFAULT_PREFIX};
pub use reads::DeadLetter;
pub use snapshot::{ChangeBatch, FlushBatch, LoadError};
