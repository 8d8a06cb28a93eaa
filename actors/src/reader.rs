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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::link::{Conn, Target};
use actix::prelude::*;
use futures_util::future::join_all;
use metrics::{counter, gauge};
use redis::Value;
use tokio::sync::watch;

use crate::domain::EntryId;
use crate::metrics::*;
use crate::persistence;
use crate::shard::{ApplyEntries, CatchUpTo, DeadLetter, Payload, RawEntry, Restore, ShardActor, UseConnection};
use crate::shared::Shared;

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
}

/// Stop reading after the current round; resolves once stopped.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopReading;

pub struct StreamReader {
    shards: Vec<(u32, Addr<ShardActor>)>,
    settings: ReaderSettings,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    stopped: watch::Receiver<bool>,
    stopped_tx: Option<watch::Sender<bool>>,
}

impl StreamReader {
    pub fn new(shards: Vec<(u32, Addr<ShardActor>)>, settings: ReaderSettings, shared: Arc<Shared>) -> Self {
        let (tx, rx) = watch::channel(false);
        StreamReader { shards, settings, shared, stop: Arc::default(), stopped: rx, stopped_tx: Some(tx) }
    }
}

impl Handler<StopReading> for StreamReader {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: StopReading, _: &mut Context<Self>) -> Self::Result {
        self.stop.store(true, Ordering::Release);
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
            stop: Arc::clone(&self.stop),
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
    stop: Arc<AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("unexpected XREAD reply: {0}")]
    Reply(&'static str),
    #[error("{0}")]
    Load(#[from] persistence::LoadError),
    #[error("shard actor stopped")]
    Stopped,
}

impl ReadLoop {
    async fn run(self) {
        let mut cursors: Vec<EntryId> = vec![EntryId::ZERO; self.shards.len()];
        let mut recovered = false;
        let mut backoff = Duration::from_millis(50);
        let mut down = false;
        // Before the first connection the service logs one "redis unreachable"
        // line itself; the readers stay quiet until they have connected once.
        let mut connected_once = false;
        while !self.stop.load(Ordering::Acquire) {
            let result = async {
                let mut read_conn = self.connect(self.settings.block + Duration::from_secs(5)).await?;
                let mut write_conn = self.connect(Duration::from_secs(10)).await?;
                if down {
                    tracing::info!(redis = %self.settings.redis.describe(), "stream reader reconnected to redis");
                    down = false;
                }
                backoff = Duration::from_millis(50);
                connected_once = true;
                if recovered {
                    for (_, addr) in &self.shards {
                        addr.send(UseConnection(write_conn.clone())).await.map_err(|_| ReadError::Stopped)?;
                    }
                } else {
                    self.recover(&mut write_conn, &mut cursors).await?;
                    recovered = true;
                }
                let mut probed = Instant::now();
                let mut idle = IdleBackoff::default();
                while !self.stop.load(Ordering::Acquire) {
                    if !self.shared.lease_valid() {
                        // Not renewed in time: another instance may take the shards over.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    let (total, most) =
                        self.read_round(&mut read_conn, &mut write_conn, &mut cursors, &mut idle).await?;
                    // Busy (a read found several entries) but not behind (no
                    // stream gave a full batch): let entries gather. A quiet
                    // reader reads again at once, so light load keeps its lag.
                    if total >= LINGER_AFTER && most < self.settings.batch && !self.settings.linger.is_zero() {
                        tokio::time::sleep(self.settings.linger).await;
                    }
                    if probed.elapsed() >= Duration::from_secs(1) {
                        self.probe_lag(&mut write_conn, &cursors).await?;
                        probed = Instant::now();
                    }
                }
                Ok::<(), ReadError>(())
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
                    if !down && connected_once {
                        tracing::warn!(redis = %self.settings.redis.describe(), error = %e, "stream reader lost redis; retrying with backoff");
                        down = true;
                    } else if !connected_once {
                        tracing::debug!(redis = %self.settings.redis.describe(), error = %e, "stream reader waiting for redis");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// Loads each shard's snapshot, hands it to the shard, and tells it where
    /// its stream ended, so it knows when it has caught up.
    async fn recover(&self, conn: &mut Conn, cursors: &mut [EntryId]) -> Result<(), ReadError> {
        let started = Instant::now();
        let mut users = 0;
        for (i, (s, addr)) in self.shards.iter().enumerate() {
            let state =
                persistence::load(conn, &self.shared.keys, *s, &self.shared.model, self.settings.dedup_window_ms)
                    .await?;
            users += state.users.len();
            cursors[i] = state.applied;
            addr.send(Restore { state, conn: conn.clone() }).await.map_err(|_| ReadError::Stopped)?;
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

    async fn connect(&self, response_timeout: Duration) -> Result<Conn, ReadError> {
        Ok(self.settings.redis.connect(Duration::from_secs(2), response_timeout).await?)
    }

    /// Tells each shard the last entry its stream held at start: once applied,
    /// the shard is caught up and `/ready` may say so.
    async fn announce_catch_up(&self, conn: &mut Conn) -> Result<(), ReadError> {
        for (s, addr) in &self.shards {
            let last = newest_entry(conn, self.shared.keys.events(*s)).await?;
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
        let mut batches: Vec<(usize, Vec<RawEntry>)> = Vec::new();
        let keys = self.shards.iter().map(|(s, _)| self.shared.keys.events(*s));
        let (batch, block) = (self.settings.batch, self.settings.block);
        for (key, entries) in read_streams(conn, &self.settings.redis, keys, cursors, batch, block, idle).await? {
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
            let last = newest.get(i).and_then(newest_id).unwrap_or(EntryId::ZERO);
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
        let mut cmd = redis::cmd("XADD");
        cmd.arg(self.shared.keys.deadletter())
            .arg("*")
            .arg("shard")
            .arg(shard)
            .arg("id")
            .arg(d.id.to_string())
            .arg("reason")
            .arg(d.reason)
            .arg("message")
            .arg(&d.message);
        if let Some(p) = &d.payload {
            cmd.arg("event").arg(p.as_slice());
        }
        let _: Value = cmd.query_async(conn).await?;
        Ok(())
    }
}

/// The next entries (at most `batch` each) of `keys` after `cursors`. On a
/// single Redis: one `XREAD BLOCK` over all of them. On a cluster a command
/// cannot name keys of several slots, and blocking reads would queue behind
/// each other on a node's connection, so each stream is read without blocking
/// (the reads run concurrently) and an idle reader backs off from 1 to 25 ms.
pub(crate) async fn read_streams<'k>(
    conn: &mut Conn,
    target: &Target,
    keys: impl Iterator<Item = &'k str>,
    cursors: &[EntryId],
    batch: usize,
    block: Duration,
    idle: &mut IdleBackoff,
) -> Result<Vec<StreamEntries>, ReadError> {
    // Sized for every key and cursor (streams are named `<prefix>:{S}:events`).
    let xread = |block: Option<u64>| {
        let mut cmd = redis::Cmd::with_capacity(6 + 2 * cursors.len(), 16 + 72 * cursors.len());
        cmd.arg("XREAD");
        cmd.arg("COUNT").arg(batch);
        if let Some(ms) = block {
            cmd.arg("BLOCK").arg(ms);
        }
        cmd.arg("STREAMS");
        cmd
    };
    let mut id = [0; EntryId::MAX_LEN];
    if !target.is_cluster() {
        let mut cmd = xread(Some(block.as_millis() as u64));
        for key in keys {
            cmd.arg(key);
        }
        for c in cursors {
            cmd.arg(c.encode_bytes(&mut id));
        }
        return streams(xread_reply(conn, &cmd).await?);
    }
    let reads = keys.zip(cursors).map(|(key, c)| {
        let mut cmd = xread(None);
        cmd.arg(key).arg(c.encode_bytes(&mut id));
        let mut conn = conn.clone();
        async move { xread_reply(&mut conn, &cmd).await }
    });
    let mut out = Vec::new();
    for reply in join_all(reads).await {
        out.extend(streams(reply?)?);
    }
    if out.is_empty() {
        idle.wait().await;
    }
    Ok(out)
}

/// Sends an XREAD and returns its reply as is. `query_async` would first walk
/// the whole reply looking for nested errors, rebuilding every array (a few
/// percent of the service's CPU under load); an XREAD reply is either an
/// error or data, and `streams` rejects any shape it does not expect.
pub(crate) async fn xread_reply(conn: &mut Conn, cmd: &redis::Cmd) -> redis::RedisResult<Value> {
    use redis::aio::ConnectionLike;
    match conn.req_packed_command(cmd).await? {
        Value::ServerError(e) => Err(e.into()),
        reply => Ok(reply),
    }
}

/// A read of at least this many entries means the reader is busy: it lingers
/// before the next one (`ReaderSettings::linger`).
const LINGER_AFTER: usize = 8;

/// How long a polling reader (on a cluster) waits when it found nothing.
#[derive(Debug, Default)]
pub(crate) struct IdleBackoff {
    rounds: u32,
}

impl IdleBackoff {
    const MAX: Duration = Duration::from_millis(25);

    pub(crate) fn reset(&mut self) {
        self.rounds = 0;
    }

    async fn wait(&mut self) {
        let wait = Duration::from_millis(1 << self.rounds.min(5)).min(Self::MAX);
        self.rounds = self.rounds.saturating_add(1);
        tokio::time::sleep(wait).await;
    }
}

/// The id of the newest entry of stream `key` (`None`: empty or absent).
pub(crate) async fn newest_entry(conn: &mut Conn, key: &str) -> redis::RedisResult<Option<EntryId>> {
    let reply: Value = redis::cmd("XREVRANGE").arg(key).arg("+").arg("-").arg("COUNT").arg(1).query_async(conn).await?;
    Ok(newest_id(&reply))
}

/// The id of the newest entry in an `XREVRANGE key + - COUNT 1` reply.
pub(crate) fn newest_id(reply: &Value) -> Option<EntryId> {
    match reply {
        Value::Array(items) => items.first().and_then(|e| match e {
            Value::Array(parts) => parts.first().and_then(bulk_id),
            _ => None,
        }),
        _ => None,
    }
}

fn bulk_id(v: &Value) -> Option<EntryId> {
    match v {
        Value::BulkString(b) => EntryId::parse_bytes(b),
        Value::SimpleString(s) => EntryId::parse(s),
        _ => None,
    }
}

/// Entries of one stream: (stream key, entries).
pub(crate) type StreamEntries = (Vec<u8>, Vec<RawEntry>);

/// Splits an XREAD reply into (stream key, entries). Handles RESP2 arrays and RESP3 maps.
fn streams(reply: Value) -> Result<Vec<StreamEntries>, ReadError> {
    let pairs: Vec<(Value, Value)> = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Map(m) => m,
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Array(mut kv) if kv.len() == 2 => {
                    let v = kv.pop().unwrap_or(Value::Nil);
                    let k = kv.pop().unwrap_or(Value::Nil);
                    Ok((k, v))
                }
                _ => Err(ReadError::Reply("stream item is not [key, entries]")),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(ReadError::Reply("not an array or map")),
    };
    let mut out = Vec::with_capacity(pairs.len());
    for (key, entries) in pairs {
        let Value::BulkString(key) = key else {
            return Err(ReadError::Reply("stream key is not a string"));
        };
        let Value::Array(entries) = entries else {
            return Err(ReadError::Reply("entries are not an array"));
        };
        let mut parsed = Vec::with_capacity(entries.len());
        for e in entries {
            let Value::Array(mut parts) = e else {
                return Err(ReadError::Reply("entry is not [id, fields]"));
            };
            if parts.len() != 2 {
                return Err(ReadError::Reply("entry is not [id, fields]"));
            }
            let fields = parts.pop().unwrap_or(Value::Nil);
            let id = bulk_id(&parts[0]).ok_or(ReadError::Reply("entry id"))?;
            parsed.push(RawEntry { id, payload: payload(fields) });
        }
        out.push((key, parsed));
    }
    Ok(out)
}

/// The `event` (or operator's `admin`) field of an entry.
fn payload(fields: Value) -> Payload {
    let mut items = match fields {
        Value::Array(items) => items.into_iter(),
        Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect::<Vec<_>>().into_iter(),
        _ => return Payload::Missing,
    };
    while let (Some(k), Some(v)) = (items.next(), items.next()) {
        match (k, v) {
            (Value::BulkString(k), Value::BulkString(v)) if k == b"event" => return Payload::Event(v),
            (Value::BulkString(k), Value::BulkString(v)) if k == b"admin" => return Payload::Admin(v),
            (Value::BulkString(k), Value::BulkString(v)) if k == b"change" => return Payload::Change(v),
            _ => {}
        }
    }
    Payload::Missing
}
