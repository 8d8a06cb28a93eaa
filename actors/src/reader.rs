//! The stream reader: one per worker, reading the streams of the shards that
//! live on that worker with `XREAD BLOCK` on a connection of its own, and
//! handing each shard its entries in order.
//!
//! At start it recovers each of its shards from its snapshot (see
//! `persistence`) and hands it over, then reads after each shard's offset.
//! One round is in flight at a time: the reader waits until every shard has
//! applied its batch before reading again, so memory stays bounded by
//! `batch * shards`. Dead letters are written here, after the shard replies.
//! XREAD BLOCK holds its connection, so snapshots and dead letters go through
//! a second one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::future::join_all;
use metrics::{counter, gauge};
use redis::Value;
use tokio::sync::watch;

use crate::domain::EntryId;
use crate::domain::Model;
use crate::link::{Conn, Target};
use crate::messages::{ApplyEntries, CatchUpTo, Restore, StopReading, UseConnection};
use crate::metrics::*;
use crate::retry::{LogOnce, RetryParams};
use crate::shard::ShardActor;
use crate::shared::Shared;
use crate::store::{reads, rules, snapshot, DeadLetter};
use crate::wire::{self, Entry, IdleBackoff, Payload, ReadError};

#[derive(Debug, Clone)]
pub struct ReaderSettings {
    pub redis: Target,
    /// Entries per shard per read.
    pub batch: usize,
    /// How long one XREAD blocks waiting for entries.
    pub block: Duration,
    /// After a busy read that was not full, wait this long before the next: fewer,
    /// larger reads (each XREAD names every stream of the reader, so its cost
    /// in Redis grows with the streams, not with the entries).
    pub linger: Duration,
    /// For restored shard state.
    pub dedup_window_ms: u64,
    /// A shard of at most this many users is loaded in one `HGETALL`.
    pub whole_hash_limit: usize,
}

pub struct StreamReader {
    shards: Vec<(u32, Addr<ShardActor>)>,
    settings: ReaderSettings,
    shared: Arc<Shared>,
    /// Set on `StopReading`: the loop ends, a read blocked in Redis at once.
    stop: watch::Sender<bool>,
    stopped: watch::Receiver<bool>,
    stopped_tx: Option<watch::Sender<bool>>,
}

impl StreamReader {
    pub fn new(shards: Vec<(u32, Addr<ShardActor>)>, settings: ReaderSettings, shared: Arc<Shared>) -> Self {
        let (tx, rx) = watch::channel(false);
        let stop = watch::Sender::new(false);
        StreamReader { shards, settings, shared, stop, stopped: rx, stopped_tx: Some(tx) }
    }
}

impl Handler<StopReading> for StreamReader {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: StopReading, _: &mut Context<Self>) -> Self::Result {
        self.stop.send_replace(true);
        let mut stopped = self.stopped.clone();
        Box::pin(async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
    }
}

impl Actor for StreamReader {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let run = ReadLoop {
            shards: self.shards.clone(),
            settings: self.settings.clone(),
            shared: Arc::clone(&self.shared),
            stop: self.stop.subscribe(),
        };
        let stopped = self.stopped_tx.take();
        ctx.spawn(
            async move {
                run.run().await;
                if let Some(tx) = stopped {
                    tx.send_replace(true);
                }
            }
            .into_actor(self),
        );
    }
}

struct ReadLoop {
    shards: Vec<(u32, Addr<ShardActor>)>,
    settings: ReaderSettings,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
}

impl ReadLoop {
    async fn run(self) {
        let mut cursors: Vec<EntryId> = vec![EntryId::ZERO; self.shards.len()];
        let mut recovered = false;
        let mut backoff = RetryParams::REDIS.backoff();
        let mut down = LogOnce::default();
        // Before the first connection the service logs one "redis unreachable"
        // line itself; the readers stay quiet until they have connected once.
        let mut connected_once = false;
        while !*self.stop.borrow() {
            let result = async {
                let mut read_conn = self.connect(self.settings.block + Duration::from_secs(5)).await?;
                let mut write_conn = self.connect(Duration::from_secs(10)).await?;
                if down.end() {
                    tracing::info!(redis = %self.settings.redis.describe(), "stream reader reconnected to redis");
                }
                backoff.reset();
                connected_once = true;
                if recovered {
                    for (_, addr) in &self.shards {
                        addr.send(UseConnection(write_conn.clone())).await.map_err(|_| ReadError::Stopped)?;
                    }
                } else {
                    self.recover(&mut write_conn, &mut cursors).await?;
                    recovered = true;
                }
                self.read_until_error(&mut read_conn, &mut write_conn, &mut cursors).await
            }
            .await;
            match result {
                Ok(()) | Err(ReadError::Stopped) => return,
                Err(e @ ReadError::Load(_)) => {
                    // A snapshot this build cannot read: never start the shard
                    // without it (its restrictions would be lost); retry slowly.
                    tracing::error!(error = %e, "cannot recover shard state; the service stays not ready");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                Err(e) => {
                    counter!(REDIS_ERRORS_TOTAL, "operation" => "xread").increment(1);
                    if !connected_once {
                        tracing::debug!(redis = %self.settings.redis.describe(), error = %e, "stream reader waiting for redis");
                    } else if down.start() {
                        tracing::warn!(redis = %self.settings.redis.describe(), error = %e, "stream reader lost redis; retrying with backoff");
                    }
                    backoff.wait().await;
                }
            }
        }
    }

    /// Reads and applies until stopped (`Ok`) or an error.
    async fn read_until_error(
        &self,
        read_conn: &mut Conn,
        write_conn: &mut Conn,
        cursors: &mut [EntryId],
    ) -> Result<(), ReadError> {
        let mut probed = Instant::now();
        let mut idle = IdleBackoff::default();
        while !*self.stop.borrow() {
            if !self.shared.lease_valid() {
                // Not renewed in time: another instance may take the shards over.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            let (total, most) = self.read_round(read_conn, write_conn, cursors, &mut idle).await?;
            // Busy (a read found several entries) but not behind (no
            // stream gave a full batch): let entries gather. A quiet
            // reader reads again at once, so light load keeps its lag.
            if total >= LINGER_AFTER && most < self.settings.batch && !self.settings.linger.is_zero() {
                tokio::time::sleep(self.settings.linger).await;
            }
            if probed.elapsed() >= Duration::from_secs(1) {
                self.probe_lag(write_conn, cursors).await?;
                probed = Instant::now();
            }
        }
        Ok(())
    }

    /// Loads each shard's snapshot, hands it to the shard, and tells it where
    /// its stream ended, so it knows when it has caught up.
    async fn recover(&self, conn: &mut Conn, cursors: &mut [EntryId]) -> Result<(), ReadError> {
        let started = Instant::now();
        let mut users = 0;
        // Each version's rule set compiled once for all the shards under it.
        let mut compiled: Vec<(u64, Arc<Model>)> = Vec::new();
        for (i, (s, addr)) in self.shards.iter().enumerate() {
            let (version, model) = self.rules_of(conn, *s, &mut compiled).await?;
            let limits = snapshot::LoadLimits {
                dedup_window_ms: self.settings.dedup_window_ms,
                whole_hash: self.settings.whole_hash_limit,
            };
            let state = snapshot::load(conn, &self.shared.keys, *s, &model, limits).await?;
            users += state.users.len();
            cursors[i] = state.applied;
            addr.send(Restore { state, conn: conn.clone(), version, model }).await.map_err(|_| ReadError::Stopped)?;
        }
        counter!(RECOVERY_USERS_LOADED_TOTAL).increment(users as u64);
        tracing::info!(
            shards = self.shards.len(),
            users,
            seconds = format!("{:.3}", started.elapsed().as_secs_f64()),
            "snapshots loaded; replaying streams"
        );
        self.announce_catch_up(conn).await
    }

    /// The rule set shard `s`'s snapshot was taken under: its version as
    /// published. A shard that never switched applies version 1 (seeded from
    /// the file it started with), or the file itself before anything was
    /// published.
    async fn rules_of(
        &self,
        conn: &mut Conn,
        s: u32,
        compiled: &mut Vec<(u64, Arc<Model>)>,
    ) -> Result<(u64, Arc<Model>), ReadError> {
        let file = self.shared.model();
        let recorded = rules::shard_version(conn, &self.shared.keys, s).await?;
        let version = match recorded {
            0 if rules::current_version(conn, &self.shared.keys).await?.is_none() => return Ok((0, file)),
            0 => 1,
            v => v,
        };
        if let Some((_, model)) = compiled.iter().find(|(v, _)| *v == version) {
            return Ok((version, Arc::clone(model)));
        }
        let record = rules::version(conn, &self.shared.keys, version).await?.ok_or_else(|| {
            ReadError::Load(snapshot::LoadError::Rules { shard: s, version, reason: "it is not stored".into() })
        })?;
        let model = record
            .compile(file.schema.accepts_unknown())
            .map_err(|reason| ReadError::Load(snapshot::LoadError::Rules { shard: s, version, reason }))?;
        let model = Arc::new(model);
        compiled.push((version, Arc::clone(&model)));
        Ok((version, model))
    }

    async fn connect(&self, response_timeout: Duration) -> Result<Conn, ReadError> {
        Ok(self.settings.redis.connect(Duration::from_secs(2), response_timeout).await?)
    }

    /// Tells each shard the last entry its stream held at start: once applied,
    /// the shard is caught up and `/ready` may say so.
    async fn announce_catch_up(&self, conn: &mut Conn) -> Result<(), ReadError> {
        for (s, addr) in &self.shards {
            let last = snapshot::newest_entry(conn, self.shared.keys.events(*s)).await?;
            addr.send(CatchUpTo(last)).await.map_err(|_| ReadError::Stopped)?;
        }
        Ok(())
    }

    /// Reads once and applies what it read; returns the entries read, and the
    /// most any one stream gave (below `batch`: every stream was read to its end).
    async fn read_round(
        &self,
        conn: &mut Conn,
        write_conn: &mut Conn,
        cursors: &mut [EntryId],
        idle: &mut IdleBackoff,
    ) -> Result<(usize, usize), ReadError> {
        let mut batches: Vec<(usize, Vec<Entry<Payload>>)> = Vec::new();
        let keys = self.shards.iter().map(|(s, _)| self.shared.keys.events(*s));
        let (batch, block) = (self.settings.batch, self.settings.block);
        // A stop ends a read blocked in Redis at once: what it would have
        // returned stays in the streams, after the cursors the flush records.
        let mut stop = self.stop.clone();
        let read = wire::read_streams(conn, &self.settings.redis, keys, cursors, batch, block, idle);
        let read = tokio::select! {
            read = read => read?,
            _ = stop.wait_for(|s| *s) => return Err(ReadError::Stopped),
        };
        for (key, entries) in read {
            let Some(i) = self.shards.iter().position(|(s, _)| self.shared.keys.events(*s).as_bytes() == key) else {
                continue;
            };
            batches.push((i, entries));
        }
        if batches.is_empty() {
            return Ok((0, 0));
        }
        let total = batches.iter().map(|(_, entries)| entries.len()).sum();
        let most = batches.iter().map(|(_, entries)| entries.len()).max().unwrap_or(0);
        idle.reset();
        let sends = batches.into_iter().map(|(i, entries)| {
            let last = entries.last().map(|e| e.id);
            let addr = self.shards[i].1.clone();
            async move { (i, last, addr.send(ApplyEntries(entries)).await) }
        });
        let mut dead_letters = Vec::new();
        for (i, last, reply) in join_all(sends).await {
            let dead = reply.map_err(|_| ReadError::Stopped)?;
            if let Some(last) = last {
                cursors[i] = last;
            }
            dead_letters.extend(dead.into_iter().map(|d| (self.shards[i].0, d)));
        }
        for (shard, d) in dead_letters {
            self.dead_letter(write_conn, shard, d).await?;
        }
        Ok((total, most))
    }

    /// Publishes how far each shard is behind its stream: seconds between the
    /// newest entry and the last one handed to the shard, and entries (exact up
    /// to 1000, then capped). One pipelined round trip when nothing is behind.
    async fn probe_lag(&self, conn: &mut Conn, cursors: &[EntryId]) -> Result<(), ReadError> {
        let mut pipe = redis::pipe();
        for (s, _) in &self.shards {
            pipe.cmd("XREVRANGE").arg(self.shared.keys.events(*s)).arg("+").arg("-").arg("COUNT").arg(1);
        }
        let newest: Vec<Value> = pipe.query_async(conn).await?;
        for (i, (s, _)) in self.shards.iter().enumerate() {
            let last = newest.get(i).and_then(wire::newest_id).unwrap_or(EntryId::ZERO);
            let (seconds, entries) = if last > cursors[i] {
                let behind: Vec<Value> = redis::cmd("XRANGE")
                    .arg(self.shared.keys.events(*s))
                    .arg(format!("({}", cursors[i]))
                    .arg("+")
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(conn)
                    .await?;
                (last.ms.saturating_sub(cursors[i].ms) as f64 / 1000.0, behind.len() as f64)
            } else {
                (0.0, 0.0)
            };
            let shard = s.to_string();
            gauge!(STREAM_LAG_SECONDS, "shard" => shard.clone()).set(seconds);
            gauge!(STREAM_LAG_ENTRIES, "shard" => shard).set(entries);
        }
        Ok(())
    }

    async fn dead_letter(&self, conn: &mut Conn, shard: u32, d: DeadLetter) -> Result<(), ReadError> {
        counter!(DEAD_LETTERS_TOTAL, "reason" => d.reason).increment(1);
        Ok(reads::dead_letter(conn, &self.shared.keys, shard, &d).await?)
    }
}

/// A read of at least this many entries means the reader is busy: it lingers
/// before the next one (`ReaderSettings::linger`).
const LINGER_AFTER: usize = 8;
