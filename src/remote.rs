//! `wait=applied` for an event of a shard another instance owns: the owner's
//! persisted offset (written with each of its snapshots), read from Redis by
//! one poller per shard while anyone waits on it, shared by every waiter of
//! the shard on this instance. A thousand waiters cost what one does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use restrictd_actors::metrics::REDIS_ERRORS_TOTAL;
use restrictd_actors::shared::Shared;
use restrictd_actors::store::snapshot::read_offset;
use restrictd_domain::EntryId;
use tokio::sync::watch;

use crate::ingest::Ingest;

/// How often a shard's poller reads the owner's offset while someone waits.
const POLL: Duration = Duration::from_millis(10);
/// The poller's label in `restrictd_redis_errors_total`.
pub const OPERATION: &str = "offset";

pub struct RemoteOffsets {
    shared: Arc<Shared>,
    ingest: Arc<Ingest>,
    shards: Vec<Remote>,
}

struct Remote {
    /// The highest offset read so far; waiters hold receivers.
    offset: watch::Sender<EntryId>,
    /// Whether a poller runs for this shard.
    polling: AtomicBool,
}

impl RemoteOffsets {
    pub fn new(shared: Arc<Shared>, ingest: Arc<Ingest>) -> Self {
        let shards = (0..shared.shard_count)
            .map(|_| Remote { offset: watch::Sender::new(EntryId::ZERO), polling: AtomicBool::new(false) })
            .collect();
        RemoteOffsets { shared, ingest, shards }
    }

    /// Resolves once the owner of `shard` persisted an offset at or past `id`.
    pub async fn wait(self: &Arc<Self>, shard: u32, id: EntryId) {
        let remote = &self.shards[shard as usize];
        // Subscribe before looking at `polling`: a poller that sees no
        // receiver and stops then finds this one and carries on (see `poll`).
        let mut rx = remote.offset.subscribe();
        if !remote.polling.swap(true, Ordering::AcqRel) {
            let this = Arc::clone(self);
            actix_rt::spawn(async move { this.poll(shard).await });
        }
        // The sender lives as long as `self`: `wait_for` only ends on the condition.
        let _ = rx.wait_for(|offset| *offset >= id).await;
    }

    async fn poll(&self, shard: u32) {
        let remote = &self.shards[shard as usize];
        // Dropped before it returns (its worker's runtime stopped): clear the
        // flag, so that the next waiter starts a poller elsewhere.
        let dropped = Polling(&remote.polling);
        // One warning per poller, not one per poll.
        let mut warned = false;
        loop {
            // A failed read is counted (a failed connect counts itself) and
            // tried again; the waiters time out.
            if let Ok(mut conn) = self.ingest.connection().await {
                match read_offset(&mut conn, &self.shared.keys, shard).await {
                    // The owner has not written a snapshot yet.
                    Ok(None) => {}
                    Ok(Some(read)) => {
                        remote.offset.send_if_modified(|offset| {
                            let newer = read > *offset;
                            if newer {
                                *offset = read;
                            }
                            newer
                        });
                    }
                    Err(e) => {
                        metrics::counter!(REDIS_ERRORS_TOTAL, "operation" => OPERATION).increment(1);
                        if !std::mem::replace(&mut warned, true) {
                            tracing::warn!(shard, error = %e, "cannot read the owner's offset; wait=applied for this shard times out until it can");
                        }
                    }
                }
            }
            if remote.offset.receiver_count() == 0 {
                remote.polling.store(false, Ordering::Release);
                // A waiter that subscribed just before the store saw `polling`
                // set and started nobody: carry on for it, unless one that
                // came after the store started its own poller.
                if remote.offset.receiver_count() == 0 || remote.polling.swap(true, Ordering::AcqRel) {
                    std::mem::forget(dropped);
                    return;
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Clears a shard's `polling` flag when its poller is dropped unfinished.
struct Polling<'a>(&'a AtomicBool);

impl Drop for Polling<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
