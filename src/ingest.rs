//! The write side's link to Redis. Each HTTP worker thread has its own
//! multiplexed connection (concurrent requests are pipelined on it, with
//! automatic reconnect), driven on that thread: no hop to another thread per
//! request. A background probe connection tells whether Redis is up (for
//! `/ready`, and to refuse writes fast while it is not) so the service starts
//! and answers checks while Redis is away.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use restrictd_actors::link::{Conn, Target};
use restrictd_actors::metrics::REDIS_ERRORS_TOTAL;
use restrictd_actors::retry::{self, RetryParams};
use restrictd_actors::store::reads;
use restrictd_actors::wire::Field;
use restrictd_domain::EntryId;
use tokio::sync::OnceCell;

use crate::error::ApiError;

pub struct Ingest {
    target: Target,
    conn: OnceLock<Conn>,
    /// Whether the last command succeeded: logs one line per change, not per request.
    up: AtomicBool,
}

impl Ingest {
    /// Starts connecting in the background; logs one clear line while Redis is unreachable.
    pub fn start(target: Target) -> Arc<Ingest> {
        let ingest = Arc::new(Ingest { target, conn: OnceLock::new(), up: AtomicBool::new(false) });
        let bg = Arc::clone(&ingest);
        actix_rt::spawn(async move { bg.connect_loop().await });
        ingest
    }

    async fn connect_loop(&self) {
        let mut warned = false;
        let conn = retry::until_ok(
            RetryParams::REDIS,
            || self.target.managed(Duration::from_secs(2)),
            |e| {
                if !std::mem::replace(&mut warned, true) {
                    tracing::warn!(url = %self.target.describe(), error = %e, "redis unreachable; retrying (/ready is 503 meanwhile)");
                }
            },
        )
        .await;
        let _ = self.conn.set(conn);
        self.up.store(true, Ordering::Release);
        tracing::info!(url = %self.target.describe(), "connected to redis");
    }

    /// This thread's write connection, opened on first use once Redis is up.
    /// The requests that arrive while it is being opened wait for that one
    /// connection (hundreds of clients starting at once used to open one each).
    pub async fn connection(&self) -> Result<Conn, ApiError> {
        thread_local! {
            static WRITE: Rc<OnceCell<Conn>> = Rc::default();
        }
        let cell = WRITE.with(Rc::clone);
        if let Some(conn) = cell.get() {
            return Ok(conn.clone());
        }
        if self.conn.get().is_none() {
            return Err(ApiError::redis_unavailable("not connected yet"));
        }
        let conn = cell.get_or_try_init(|| self.target.managed(Duration::from_millis(500))).await.map_err(|e| {
            self.note(false, "connect", Some(&e));
            ApiError::redis_unavailable(e)
        })?;
        Ok(conn.clone())
    }

    fn note(&self, ok: bool, operation: &'static str, error: Option<&redis::RedisError>) {
        let was = self.up.swap(ok, Ordering::AcqRel);
        if !ok {
            metrics::counter!(REDIS_ERRORS_TOTAL, "operation" => operation).increment(1);
        }
        match (was, ok) {
            (true, false) => {
                tracing::warn!(url = %self.target.describe(), error = ?error.map(ToString::to_string), "redis went away; writes answer 503")
            }
            (false, true) => tracing::info!(url = %self.target.describe(), "redis is back"),
            _ => {}
        }
    }

    /// Appends one event to a shard stream; returns the entry id once Redis acknowledged it.
    pub async fn append(&self, key: &str, event: &[u8]) -> Result<EntryId, ApiError> {
        self.append_field(key, Field::Event, event).await
    }

    /// Appends an entry with one field (an event, or an operator's command).
    pub async fn append_field(&self, key: &str, field: Field, value: &[u8]) -> Result<EntryId, ApiError> {
        let mut conn = self.connection().await?;
        let id = self.finish(reads::append(&mut conn, key, field, value).await, "xadd")?;
        parse_id(&id)
    }

    /// Appends many events in one pipeline (one round trip); ids in input order.
    pub async fn append_many(&self, items: &[(&str, &[u8])]) -> Result<Vec<EntryId>, ApiError> {
        let mut conn = self.connection().await?;
        let ids = self.finish(reads::append_events(&mut conn, items).await, "xadd")?;
        ids.iter().map(|id| parse_id(id)).collect()
    }

    /// Runs one `store` read on this thread's connection; `op` names it in
    /// `restrictd_redis_errors_total` when it fails (503: nothing changed).
    pub async fn call<T>(
        &self,
        op: &'static str,
        f: impl AsyncFnOnce(&mut Conn) -> redis::RedisResult<T>,
    ) -> Result<T, ApiError> {
        let mut conn = self.connection().await.map_err(|_| ApiError::redis_unreadable("not connected"))?;
        let result = f(&mut conn).await;
        self.note(result.is_ok(), op, result.as_ref().err());
        result.map_err(ApiError::redis_unreadable)
    }

    /// Runs one `store` write on this thread's connection (503: nothing was written).
    pub async fn call_write<T>(
        &self,
        op: &'static str,
        f: impl AsyncFnOnce(&mut Conn) -> redis::RedisResult<T>,
    ) -> Result<T, ApiError> {
        let mut conn = self.connection().await?;
        let result = f(&mut conn).await;
        self.finish(result, op)
    }

    fn finish<T>(&self, result: redis::RedisResult<T>, op: &'static str) -> Result<T, ApiError> {
        self.note(result.is_ok(), op, result.as_ref().err());
        result.map_err(ApiError::redis_unavailable)
    }

    /// PING with a short deadline, for `/ready`.
    pub async fn ping(&self) -> bool {
        let Some(mut conn) = self.conn.get().cloned() else {
            return false;
        };
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut conn);
        let ok = matches!(tokio::time::timeout(Duration::from_secs(1), ping).await, Ok(Ok(_)));
        self.note(ok, "ping", None);
        ok
    }
}

fn parse_id(id: &str) -> Result<EntryId, ApiError> {
    EntryId::parse(id).ok_or_else(|| ApiError::redis_unavailable(format!("unexpected XADD reply {id:?}")))
}
