//! `restrictd state`: what Redis holds for a user or a shard, decoded, without
//! a running service (for operators and incident review).

use anyhow::Context as _;
use restrictd_actors::link::Conn;
use restrictd_actors::store::reads;
use restrictd_actors::store::snapshot::read_offset;
use restrictd_actors::store::Keys;
use restrictd_domain::shard_of;
use restrictd_domain::snapshot::decode_user;
use serde_json::{json, Value};

use crate::config::Settings;

pub enum Target {
    User(String),
    Shard(u32),
}

/// Reads and prints the state as JSON.
pub fn run(settings: &Settings, target: Target) -> anyhow::Result<Value> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut conn = settings
            .redis
            .target
            .connect(std::time::Duration::from_secs(2), std::time::Duration::from_secs(10))
            .await
            .with_context(|| format!("cannot reach redis at {}", settings.redis.target.describe()))?;
        let count = settings.shards.count.get();
        let keys = Keys::new(&settings.redis.key_prefix, count);
        match target {
            Target::User(user) => user_state(settings, &mut conn, &keys, &user, shard_of(&user, count)).await,
            Target::Shard(s) => shard_state(&mut conn, &keys, s).await,
        }
    })
}

async fn user_state(
    settings: &Settings,
    conn: &mut Conn,
    keys: &Keys,
    user: &str,
    shard: u32,
) -> anyhow::Result<Value> {
    let blob = reads::user_snapshot(conn, keys, shard, user).await?;
    let offset = read_offset(conn, keys, shard).await?;
    let snapshot = match blob {
        None => Value::Null,
        Some(bytes) => match decode_user(&settings.model, &bytes) {
            Ok(state) => {
                let report = state.report(&settings.model, shard);
                json!({
                    "format_version": bytes.first(),
                    "bytes": bytes.len(),
                    "aggregates": report.aggregates,
                    "restrictions": report.restrictions,
                    "overrides": report.overrides,
                    "windows": report.windows,
                })
            }
            Err(e) => json!({ "error": e.to_string(), "bytes": bytes.len() }),
        },
    };
    Ok(json!({
        "user_id": user,
        "shard": shard,
        "offset": offset.map(|o| o.to_string()),
        "snapshot": snapshot,
        "note": "events after the offset are in the stream and not yet in the snapshot",
    }))
}

async fn shard_state(conn: &mut Conn, keys: &Keys, shard: u32) -> anyhow::Result<Value> {
    let offset = read_offset(conn, keys, shard).await?;
    let summary = reads::shard_summary(conn, keys, shard, offset).await?;
    Ok(json!({
        "shard": shard,
        "offset": summary.offset,
        "users": summary.users,
        "dedup_ids": summary.dedup_ids,
        "stream_length": summary.stream_length,
        "entries_after_offset": summary.entries_after_offset,
        "keys": [keys.events(shard), keys.users(shard), keys.offset(shard), keys.dedup(shard)],
    }))
}
