//! The engine's actors, started on worker threads and stopped in order: the
//! tripwire supervisor, a shard actor per owned shard and a stream reader
//! per worker (once the shards' leases are taken), and the changelog
//! follower for the shards owned elsewhere.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use restrictd_actors::changelog::Follower;
use restrictd_actors::link::Target;
use restrictd_actors::messages::{Connect, FlushNow, StopReading};
use restrictd_actors::reader::{ReaderSettings, StreamReader};
use restrictd_actors::retry::{self, RetryParams};
use restrictd_actors::shard::{PersistSettings, ShardActor};
use restrictd_actors::shared::Shared;
use restrictd_actors::tripwire::Tripwire;
use restrictd_domain::ShardState;

use crate::config::Settings;
use crate::ownership;

pub struct Engine {
    pub shared: Arc<Shared>,
    /// Indexed by shard: the actors of the shards this instance owns.
    pub shards: Vec<Option<Addr<ShardActor>>>,
    pub tripwire: Addr<Tripwire>,
    arbiters: Vec<Arbiter>,
    /// Started once the leases are taken.
    readers: Arc<Mutex<Vec<Addr<StreamReader>>>>,
    held: ownership::Held,
}

impl Engine {
    /// Starts every actor. Must run inside an actix `System`.
    pub fn start(settings: &Settings) -> Engine {
        let count = settings.shards.count.get();
        let shared = Arc::new(
            Shared::new(
                Arc::clone(&settings.model),
                count,
                &settings.redis.key_prefix,
                settings.feed.buffer,
                settings.instance.shards.clone(),
            )
            .standing_by(settings.instance.standby),
        );
        let tripwire = Tripwire::new(settings.tripwire.domain(), settings.tripwire.tick, Arc::clone(&shared))
            .rolling_back_within(settings.tripwire.rollback_within)
            .start();
        let arbiters: Vec<Arbiter> = (0..settings.shards.workers.max(1)).map(|_| Arbiter::new()).collect();
        for a in &arbiters {
            let nice = settings.shards.nice;
            a.spawn_fn(move || set_thread_nice(nice));
        }
        let shards = start_shards(settings, &shared, &tripwire, &arbiters);
        let readers = Arc::default();
        let start_readers = {
            let (readers, shards, shared) = (Arc::clone(&readers), shards.clone(), Arc::clone(&shared));
            let handles: Vec<_> = arbiters.iter().map(|a| a.handle()).collect();
            let reader = ReaderSettings {
                redis: settings.redis.target.clone(),
                batch: settings.reader.batch.get(),
                block: settings.reader.block,
                linger: settings.reader.linger,
                dedup_window_ms: settings.ingest.dedup_window.as_millis() as u64,
                whole_hash_limit: settings.persistence.load_whole_hash_limit,
            };
            move || start_readers(&readers, &shards, &shared, &handles, reader)
        };
        let held = ownership::claim(
            settings.instance.clone(),
            settings.redis.target.clone(),
            Arc::clone(&shared),
            start_readers,
        );
        let follow: Vec<u32> = (0..count).filter(|s| settings.instance.standby || !shared.owns(*s)).collect();
        actix_rt::spawn(
            Follower {
                shared: Arc::clone(&shared),
                target: settings.redis.target.clone(),
                shards: follow,
                batch: settings.reader.batch.get(),
                block: settings.reader.block,
            }
            .run(),
        );
        actix_rt::spawn(
            restrictd_actors::feed::FeedReader {
                shared: Arc::clone(&shared),
                target: settings.redis.target.clone(),
                replay_window: settings.feed.replay_window,
            }
            .run(),
        );
        connect_tripwire(&tripwire, &shards, settings.redis.target.clone());
        Engine { shared, shards, tripwire, arbiters, readers, held }
    }

    /// Stops reading, flushes every shard, gives the leases back, stops the threads.
    pub async fn stop(self, settings: &Settings) {
        let readers: Vec<_> = self.readers.lock().unwrap_or_else(|e| e.into_inner()).clone();
        futures_util::future::join_all(readers.iter().map(|r| r.send(StopReading))).await;
        let flushes = futures_util::future::join_all(self.shards.iter().flatten().map(|s| s.send(FlushNow)));
        match tokio::time::timeout(settings.persistence.shutdown_timeout, flushes).await {
            Ok(results) if results.iter().all(|r| matches!(r, Ok(true))) => {
                ownership::release(&settings.redis.target, &self.shared, &self.held).await;
                tracing::info!(shards = settings.instance.shards.len(), "every owned shard flushed; leases released; bye")
            }
            _ => tracing::warn!(
                "not every shard could be flushed (is Redis down?); the unflushed events are replayed from the streams at the next start"
            ),
        }
        for a in self.arbiters {
            a.stop();
            let _ = a.join();
        }
    }
}

/// A shard actor per owned shard, on the worker its shard is dealt to.
fn start_shards(
    settings: &Settings,
    shared: &Arc<Shared>,
    tripwire: &Addr<Tripwire>,
    arbiters: &[Arbiter],
) -> Vec<Option<Addr<ShardActor>>> {
    let dedup_ms = settings.ingest.dedup_window.as_millis() as u64;
    let p = &settings.persistence;
    let persist = PersistSettings {
        flush_interval: p.flush_interval,
        dirty_limit: p.flush_dirty_limit.get(),
        trim_margin: p.trim_margin,
        changelog_delay: p.changelog_delay,
    };
    (0..settings.shards.count.get())
        .map(|s| {
            shared.owns(s).then(|| {
                let shared = Arc::clone(shared);
                let report = tripwire.clone().recipient();
                let worker = worker_of_owned(&settings.instance.shards, s, arbiters.len());
                ShardActor::start_in_arbiter(&arbiters[worker].handle(), move |_| {
                    ShardActor::new(s, ShardState::new(dedup_ms), shared, report, persist)
                })
            })
        })
        .collect()
}

/// A stream reader per worker, for the shards on that worker.
fn start_readers(
    readers: &Mutex<Vec<Addr<StreamReader>>>,
    shards: &[Option<Addr<ShardActor>>],
    shared: &Arc<Shared>,
    handles: &[ArbiterHandle],
    settings: ReaderSettings,
) {
    let mut started = readers.lock().unwrap_or_else(|e| e.into_inner());
    for (w, handle) in handles.iter().enumerate() {
        let group: Vec<_> = shards
            .iter()
            .enumerate()
            .filter_map(|(s, a)| a.clone().map(|a| (s as u32, a)))
            .filter(|(s, _)| worker_of_owned(&shared.owned, *s, handles.len()) == w)
            .collect();
        if group.is_empty() {
            continue;
        }
        let (rs, shared) = (settings.clone(), Arc::clone(shared));
        started.push(StreamReader::start_in_arbiter(handle, move |_| StreamReader::new(group, rs, shared)));
    }
}

/// Lowers (or raises) the calling thread's priority. Shard threads run at a
/// positive niceness by default: when an HTTP worker (an acknowledgement, a
/// check) and a shard thread are runnable at once on a busy machine, the
/// request goes first, and the shard catches up in a slightly larger batch.
pub(crate) fn set_thread_nice(nice: i32) {
    if nice == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // On Linux, PRIO_PROCESS with id 0 sets the niceness of the calling thread alone.
        // SAFETY: setpriority takes plain integers and touches no memory of ours.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } != 0 {
            tracing::warn!(nice, error = %std::io::Error::last_os_error(), "cannot set a thread's niceness (shards.nice, http.nice); it runs at the default");
        }
    }
    #[cfg(not(target_os = "linux"))]
    tracing::warn!(nice, "shards.nice and http.nice are supported on Linux only; ignored");
}

/// The worker (thread) of owned shard `s`: owned shards are dealt out in turn.
fn worker_of_owned(owned: &[u32], s: u32, workers: usize) -> usize {
    owned.iter().position(|o| *o == s).unwrap_or(0) % workers.max(1)
}

/// Gives the tripwire the shards (for reverts) now, and a Redis connection
/// (for the shared windows) once Redis answers.
fn connect_tripwire(tripwire: &Addr<Tripwire>, shards: &[Option<Addr<ShardActor>>], redis: Target) {
    let recipients = || shards.iter().flatten().map(|s| s.clone().recipient()).collect::<Vec<_>>();
    tripwire.do_send(Connect { shards: recipients(), conn: None });
    let (tripwire, shards) = (tripwire.clone(), recipients());
    actix_rt::spawn(async move {
        // Managed: it reconnects by itself when Redis restarts.
        let connect = || redis.managed(Duration::from_secs(2));
        let conn = retry::until_ok(RetryParams::REDIS, connect, |_| {}).await;
        tripwire.do_send(Connect { shards, conn: Some(conn) });
    });
}

/// Raises the soft limit on open files to the hard limit: each producer and
/// client service holds a connection, and the common soft default (1,024)
/// would refuse connections long before the service is busy.
pub fn raise_open_files_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write the one struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                tracing::warn!(error = %std::io::Error::last_os_error(), "cannot raise the open files limit");
            }
        }
    }
}
