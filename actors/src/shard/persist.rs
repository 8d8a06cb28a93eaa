//! The write-behind's I/O: spawning snapshot and changelog writes and
//! handing their outcome back to `WriteBehind`.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;

use super::write_behind::Flushed;
use super::ShardActor;
use crate::lease;
use crate::metrics::REDIS_ERRORS_TOTAL;
use crate::store::{snapshot, Fence, WriteError};

impl ShardActor {
    /// This shard's fencing token while its lease is valid by this process's
    /// clock; `None`: write nothing now.
    fn writable(&self) -> Option<Fence> {
        self.shared.lease_valid().then(|| self.shared.fence(self.id).cloned()).flatten()
    }

    /// Writes the users changed since the last flush and the offset, unless a
    /// write is in flight (then it runs again when that one ends).
    pub(super) fn flush(&mut self, ctx: &mut Context<Self>) {
        let Some(mut conn) = self.conn.clone() else { return };
        // Another instance may own the shard by now: write nothing. (Redis
        // checks again: a write that arrives late is fenced off there.)
        let Some(fence) = self.writable() else { return };
        let Some(batch) = self.write.begin_flush(&mut self.state, &self.model) else { return };
        let (shared, started) = (Arc::clone(&self.shared), Instant::now());
        let write = async move {
            let result = snapshot::write(&mut conn, &shared.keys, &fence, &batch).await;
            (batch, fence, result)
        };
        ctx.spawn(write.into_actor(self).map(move |(batch, fence, result), act, ctx| {
            if let Err(WriteError::Fenced { now, .. }) = &result {
                // Never retried: the shard is someone else's now.
                lease::fenced_off(&act.shared, &fence, "snapshot", now);
                return;
            }
            match act.write.end_flush(batch, result.is_ok(), &mut act.state) {
                Flushed::Written { again } => {
                    act.metrics.flush.record(started.elapsed().as_secs_f64());
                    if act.write.failing.end() {
                        tracing::info!(shard = act.id, "snapshot writes resumed");
                    }
                    if again {
                        act.flush(ctx);
                    }
                }
                Flushed::Failed { first } => {
                    metrics::counter!(REDIS_ERRORS_TOTAL, "operation" => "flush").increment(1);
                    if let (true, Err(e)) = (first, result) {
                        tracing::warn!(shard = act.id, error = %e, "snapshot write failed; retrying on the next interval");
                    }
                }
            }
            act.metrics.dirty.set(act.state.dirty.len() as f64);
        }));
    }

    /// Changes are waiting: write them to the changelog within
    /// `changelog_delay`, so that other instances see them soon (not only at
    /// the next snapshot).
    pub(super) fn schedule_changelog(&mut self, ctx: &mut Context<Self>) {
        if !self.write.has_changelog() || self.write.changelog_scheduled {
            return;
        }
        self.write.changelog_scheduled = true;
        ctx.run_later(self.write.settings.changelog_delay, |act, ctx| {
            act.write.changelog_scheduled = false;
            act.write_changelog(ctx);
        });
    }

    /// Writes the pending changelog ahead of the snapshot (a write in flight
    /// or a failed write leaves them to the next one).
    fn write_changelog(&mut self, ctx: &mut Context<Self>) {
        if self.shared.fenced() {
            return;
        }
        if !self.write.idle() || !self.shared.lease_valid() {
            self.schedule_changelog(ctx);
            return;
        }
        let Some(mut conn) = self.conn.clone() else { return };
        let Some(fence) = self.writable() else { return };
        let Some(batch) = self.write.begin_changelog() else { return };
        let shared = Arc::clone(&self.shared);
        let write = async move {
            let result = snapshot::write_changes(&mut conn, &shared.keys, &fence, &batch).await;
            (batch, fence, result)
        };
        ctx.spawn(write.into_actor(self).map(|(batch, fence, result), act, ctx| {
            if let Err(WriteError::Fenced { now, .. }) = &result {
                lease::fenced_off(&act.shared, &fence, "changelog", now);
                return;
            }
            if result.is_err() {
                metrics::counter!(REDIS_ERRORS_TOTAL, "operation" => "changelog").increment(1);
            }
            if act.write.end_changelog(batch, result.is_ok()) {
                act.flush(ctx);
            }
            act.schedule_changelog(ctx);
        }));
    }
}
