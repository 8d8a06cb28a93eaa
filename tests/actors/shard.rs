//! The shard actor: a batch applied, a flush that fails and is retried, a
//! flush fenced off by Redis after another owner took the shard.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use loadtest::spawn::Redis;
use restrictd_actors::lease;
use restrictd_actors::messages::{ApplyEntries, CatchUpTo, FlushNow, Restore, UseConnection};
use restrictd_actors::shard::{PersistSettings, ShardActor};
use restrictd_actors::shared::Shared;
use restrictd_actors::wire::{Entry, Payload};
use restrictd_domain::{EntryId, ShardState};

use crate::support::{connect, eventually, shared, shared_recording_fences, take_leases, Reports};

fn flag(user: &str, ms: u64) -> Entry<Payload> {
    let json = format!(r#"{{"name": "scam_message_flagged", "event_properties": {{"user_id": "{user}"}}}}"#);
    Entry { id: EntryId::new(ms, 0), payload: Payload::Event(json.into_bytes()) }
}

fn persist() -> PersistSettings {
    PersistSettings {
        // Flushes happen when the test asks for them.
        flush_interval: Duration::from_secs(3600),
        dirty_limit: 10_000,
        trim_margin: None,
        changelog_delay: Duration::from_millis(10),
    }
}

/// A shard 0 actor restored empty on `redis` with its lease taken,
/// reporting to `reports`.
async fn start(redis: &Redis, reports: &Reports) -> (Addr<ShardActor>, Arc<Shared>) {
    start_with(redis, reports, shared()).await
}

async fn start_with(redis: &Redis, reports: &Reports, shared: Arc<Shared>) -> (Addr<ShardActor>, Arc<Shared>) {
    let report = reports.clone().start().recipient();
    let shard = ShardActor::new(0, ShardState::new(60_000), shared.clone(), report, persist()).start();
    let (mut conn, model) = (connect(&redis.url()).await, shared.model());
    take_leases(&shared, &mut conn, "owner").await;
    shard.send(Restore { state: ShardState::new(60_000), conn, version: 0, model }).await.unwrap();
    shard.send(CatchUpTo(None)).await.unwrap();
    (shard, shared)
}

#[actix_rt::test]
async fn a_batch_is_applied_published_reported_and_persisted() {
    let redis = Redis::start();
    let reports = Reports::default();
    let (shard, shared) = start(&redis, &reports).await;
    let stray = Entry { id: EntryId::new(3, 0), payload: Payload::Missing };
    let dead = shard.send(ApplyEntries(vec![flag("u", 1), flag("u", 2), stray])).await.unwrap();

    assert_eq!(dead.len(), 1, "the entry without an event is dead-lettered");
    assert_eq!((dead[0].id, dead[0].reason), (EntryId::new(3, 0), "missing_field"));
    let can_message = shared.model().feature_index("can_message").unwrap();
    assert_eq!(shared.view.restricted(0, "u"), 1 << can_message, "the second flag restricts messaging");
    assert_eq!(*shared.applied[0].borrow(), EntryId::new(3, 0));
    let rule = shared.model().rule_index("scam_message_rule").unwrap() as u16;
    eventually("the tripwire hears of the restriction", || {
        let fired = reports.0.lock().unwrap();
        fired.len() == 1 && fired[0].rule == rule && fired[0].at_ms == 2
    })
    .await;

    assert!(shard.send(FlushNow).await.unwrap());
    assert_eq!(redis.cli(&["HEXISTS", "rd:{0}:users", "u"]), "1");
    assert_eq!(redis.cli(&["GET", "rd:{0}:offset"]), "3-0");
    assert_eq!(redis.cli(&["XLEN", "rd:{0}:audit"]), "1");
    assert_eq!(redis.cli(&["HGET", "rd:{0}:stats", "count:scam_message_flagged"]), "2");
    assert_eq!(redis.cli(&["HGET", "rd:{0}:restricted", "u"]), "can_message:scam_message_rule", "with its cause");
}

#[actix_rt::test]
async fn a_failed_flush_gives_everything_back_and_the_retry_writes_it() {
    let mut redis = Redis::start();
    let reports = Reports::default();
    let (shard, shared) = start(&redis, &reports).await;
    shard.send(ApplyEntries(vec![flag("v", 5), flag("v", 6)])).await.unwrap();

    redis.kill();
    let flushed = tokio::time::timeout(Duration::from_millis(500), shard.send(FlushNow)).await;
    assert!(flushed.is_err(), "nothing is persisted while Redis is away");

    // A new, empty Redis (where the lease is still ours): whatever it holds
    // after the retry was given back by the failed flush.
    redis.launch();
    let token = shared.fence(0).unwrap().token.to_string();
    redis.cli(&["SET", "rd:{0}:lease", &token]);
    shard.send(UseConnection(connect(&redis.url()).await)).await.unwrap();
    assert!(shard.send(FlushNow).await.unwrap());
    assert_eq!(redis.cli(&["HEXISTS", "rd:{0}:users", "v"]), "1");
    assert_eq!(redis.cli(&["GET", "rd:{0}:offset"]), "6-0");
    assert_eq!(redis.cli(&["XLEN", "rd:{0}:audit"]), "1", "the audit record of the restriction");
    assert_eq!(redis.cli(&["LLEN", "rd:{0}:history:v"]), "1");
    assert_eq!(redis.cli(&["HGET", "rd:{0}:stats", "count:scam_message_flagged"]), "2");
    assert_eq!(redis.cli(&["HGET", "rd:{0}:restricted", "v"]), "can_message:scam_message_rule");
}

/// Write attempts Redis has seen: every fenced write starts with a `WATCH`
/// and ends with an `EXEC` (or an `UNWATCH` when refused).
fn write_attempts(redis: &Redis) -> u64 {
    let stats = redis.cli(&["INFO", "commandstats"]);
    ["watch", "exec", "unwatch", "multi"]
        .iter()
        .filter_map(|c| {
            let prefix = format!("cmdstat_{c}:calls=");
            let line = stats.lines().find(|l| l.starts_with(&prefix))?;
            line[prefix.len()..].split(',').next()?.parse::<u64>().ok()
        })
        .sum()
}

#[actix_rt::test]
async fn a_flush_composed_before_another_owner_took_the_shard_is_refused_by_redis_and_never_retried() {
    let redis = Redis::start();
    let reports = Reports::default();
    let (shared, fenced) = shared_recording_fences();
    let (shard, shared) = start_with(&redis, &reports, shared).await;
    shard.send(ApplyEntries(vec![flag("u", 1), flag("u", 2)])).await.unwrap();
    assert!(shard.send(FlushNow).await.unwrap());
    assert_eq!(redis.cli(&["GET", "rd:{0}:offset"]), "2-0");

    // The lease lapses (the owner was paused) and a successor takes it at a
    // new epoch; by the owner's own clock its lease is still valid.
    redis.cli(&["DEL", "rd:{0}:lease"]);
    let mut conn = connect(&redis.url()).await;
    let mut successor = Vec::new();
    lease::acquire(&mut conn, &shared.keys, &[0], &mut successor, "successor", Duration::from_secs(60)).await.unwrap();
    assert_eq!(successor[0].epoch, shared.fence(0).unwrap().epoch + 1);
    assert_eq!(redis.cli(&["GET", "rd:{0}:lease"]), format!("{} successor", successor[0].epoch));

    shard.send(ApplyEntries(vec![flag("w", 3)])).await.unwrap();
    let flushed = tokio::time::timeout(Duration::from_millis(300), shard.send(FlushNow)).await;
    assert!(flushed.is_err(), "a fenced flush is never reported persisted");
    eventually("the owner learns it was fenced off", || *fenced.lock().unwrap() == [0]).await;
    assert_eq!(redis.cli(&["GET", "rd:{0}:offset"]), "2-0", "the stale owner's offset is not written");
    assert_eq!(redis.cli(&["HEXISTS", "rd:{0}:users", "w"]), "0", "nor its users");
    assert_eq!(redis.cli(&["HGET", "rd:{0}:stats", "count:scam_message_flagged"]), "2", "nor its stats");
    assert!(!shared.lease_valid(), "the instance stops applying and persisting");

    // Asked again, it writes nothing: not the same batch, not a new one.
    let before = write_attempts(&redis);
    shard.send(ApplyEntries(vec![flag("x", 4)])).await.unwrap();
    let _ = tokio::time::timeout(Duration::from_millis(300), shard.send(FlushNow)).await;
    assert_eq!(write_attempts(&redis), before, "no write was sent after the refusal");
    assert_eq!(*fenced.lock().unwrap(), [0], "refused once, never retried");
    assert_eq!(redis.cli(&["GET", "rd:{0}:lease"]), format!("{} successor", successor[0].epoch));
}

#[actix_rt::test]
async fn leases_given_back_on_shutdown_are_no_fence_to_their_renewal() {
    let redis = Redis::start();
    let (shared, fenced) = shared_recording_fences();
    let mut conn = connect(&redis.url()).await;
    take_leases(&shared, &mut conn, "me").await;
    let held: Vec<_> = shared.owned.iter().map(|&s| shared.fence(s).unwrap().clone()).collect();
    // Renewed every 100 ms, as a running instance does.
    let keep =
        actix_rt::spawn(lease::keep(conn.clone(), Arc::clone(&shared), held.clone(), Duration::from_millis(300)));
    // A graceful shutdown gives the leases back while the renewal still runs.
    shared.leases_released();
    lease::release(&mut conn, &shared.keys, &held).await.unwrap();
    assert_eq!(redis.cli(&["EXISTS", "rd:{0}:lease"]), "0");
    tokio::time::timeout(Duration::from_secs(10), keep).await.expect("the renewal stops").unwrap();
    assert!(fenced.lock().unwrap().is_empty(), "a lease we gave back is not a successor's fence");
}
