//! Taking ownership of the configured shards at start-up, and giving it back
//! at shutdown (see `restrictd_actors::lease` for the leases themselves).
//!
//! Once Redis answers, the instance takes the lease of every shard in
//! `instance.shards`. If another instance holds one, it refuses to start (exit
//! code 2, naming the shard and the other owner), or with `instance.standby`
//! it waits, holding what it got, until the others' leases expire. Only then
//! do its stream readers start; meanwhile the HTTP side answers checks from
//! the changelog and accepts events for any shard.
//!
//! Each lease is taken with a new epoch: its fencing token, which every
//! write for the shard carries (`restrictd_actors::store::fence`). The
//! tokens are also recorded where the tripwire's writes are fenced before
//! any shard is applied.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use restrictd_actors::lease;
use restrictd_actors::metrics::SHARDS_OWNED;
use restrictd_actors::shared::Shared;

use restrictd_actors::link::Target;
use restrictd_actors::retry::{self, RetryParams};
use restrictd_actors::store::Fence;

use crate::config::InstanceSettings;

/// The leases this instance holds (filled once all are taken).
pub type Held = Arc<Mutex<Vec<Fence>>>;

/// Takes the leases in the background, then calls `start` (the readers).
pub fn claim(instance: InstanceSettings, redis: Target, shared: Arc<Shared>, start: impl FnOnce() + 'static) -> Held {
    let held: Held = Arc::default();
    let out = Arc::clone(&held);
    actix_rt::spawn(async move {
        let me = instance.id.clone();
        let ttl = instance.lease_ttl;
        let connect = || redis.connect(Duration::from_secs(2), Duration::from_secs(5));
        let mut conn = retry::until_ok(RetryParams::REDIS, connect, |_| {}).await;
        let mut got = Vec::new();
        let mut waiting_logged = false;
        loop {
            let sent = Instant::now();
            match lease::acquire(&mut conn, &shared.keys, &instance.shards, &mut got, &me, ttl).await {
                Ok(others) if others.is_empty() => {
                    shared.leases_renewed(sent, ttl);
                    break;
                }
                Ok(others) if instance.standby => {
                    if !got.is_empty() {
                        // Keep what we have while waiting for the rest.
                        let _ = lease::renew(&mut conn, &shared.keys, &got, ttl).await;
                    }
                    if !waiting_logged {
                        tracing::info!(
                            instance = %me,
                            "standby: {}; waiting to take them over",
                            lease::describe_holders(&others)
                        );
                        waiting_logged = true;
                    }
                    tokio::time::sleep((ttl / 4).min(Duration::from_secs(1))).await;
                }
                Ok(others) => {
                    let _ = lease::release(&mut conn, &shared.keys, &got).await;
                    tracing::error!(
                        instance = %me,
                        "refusing to start: {}. Give each instance its own shards (instance.shards), or set instance.standby = true to wait for them",
                        lease::describe_holders(&others)
                    );
                    std::process::exit(2);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot take shard leases yet; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        let epochs = got.iter().map(|f| f.epoch).collect::<Vec<_>>();
        actix_rt::spawn(lease::keep(conn.clone(), Arc::clone(&shared), got.clone(), ttl));
        let announce = || {
            let (mut conn, shared, got) = (conn.clone(), Arc::clone(&shared), got.clone());
            async move { lease::announce(&mut conn, &shared.keys, &got).await }
        };
        retry::until_ok(
            RetryParams::REDIS,
            announce,
            |e| tracing::warn!(error = %e, "cannot record the shard owners for the tripwire yet; retrying"),
        )
        .await;
        // Only now: the tripwire fences its writes with these tokens, which
        // must be recorded first (else its own sync would be refused).
        for fence in &got {
            shared.set_fence(fence.clone());
        }
        tracing::info!(
            instance = %me,
            shards = got.len(),
            epochs = %epoch_ranges(&epochs),
            "shard leases taken; recovering owned shards"
        );
        metrics::gauge!(SHARDS_OWNED).set(got.len() as f64);
        *out.lock().unwrap_or_else(|e| e.into_inner()) = got;
        shared.leased.store(true, std::sync::atomic::Ordering::Release);
        start();
    });
    held
}

/// Gives the leases back after the final flush, so a successor need not wait.
pub async fn release(redis: &Target, shared: &Shared, held: &Held) {
    let held = held.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if held.is_empty() {
        return;
    }
    // Before the leases go: the renewal and any late write must not take
    // their absence for a successor's fence.
    shared.leases_released();
    let released = async {
        let mut conn = redis.connect(Duration::from_secs(1), Duration::from_secs(2)).await?;
        lease::release(&mut conn, &shared.keys, &held).await
    };
    if let Err(e) = released.await {
        tracing::warn!(error = %e, "could not release the shard leases; they expire by themselves");
    }
}

/// The epochs the leases were taken at, for the log: `4` or `3-9`.
fn epoch_ranges(epochs: &[u64]) -> String {
    match (epochs.iter().min(), epochs.iter().max()) {
        (Some(lo), Some(hi)) if lo == hi => lo.to_string(),
        (Some(lo), Some(hi)) => format!("{lo}-{hi}"),
        _ => "none".to_string(),
    }
}
