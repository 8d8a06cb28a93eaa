//! What the actor tests share: the default model, a Redis connection, a probe
//! that records the messages an actor sends, and waiting on a condition.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use restrictd::config::Settings;
use restrictd_actors::lease;
use restrictd_actors::link::{Conn, Target};
use restrictd_actors::messages::{Fired, RulesFired};
use restrictd_actors::shared::Shared;
use restrictd_domain::Model;

/// The default configuration's model.
pub fn model() -> Arc<Model> {
    let text = include_str!("../../config.toml");
    Settings::from_toml(text, "config.toml", Vec::new()).expect("the default config is valid").model
}

/// Four shards, all owned here, leases valid for an hour by the process's
/// clock (take them in Redis with `take_leases`).
pub fn shared() -> Arc<Shared> {
    shared_recording_fences().0
}

/// Like `shared`; a write fenced off is recorded (its shard) instead of
/// ending the process.
pub fn shared_recording_fences() -> (Arc<Shared>, Arc<Mutex<Vec<u32>>>) {
    let fenced: Arc<Mutex<Vec<u32>>> = Arc::default();
    let mut shared = Shared::new(model(), 4, "rd", 64, vec![0, 1, 2, 3]);
    let record = Arc::clone(&fenced);
    shared.on_fenced = Box::new(move |s| record.lock().unwrap().push(s));
    shared.leases_renewed(Instant::now(), Duration::from_secs(3600));
    (Arc::new(shared), fenced)
}

/// Takes the leases of `shared`'s shards in Redis as `owner`, as an
/// instance does at start-up; the tokens go to `shared`.
pub async fn take_leases(shared: &Shared, conn: &mut Conn, owner: &str) {
    let mut held = Vec::new();
    let others = lease::acquire(conn, &shared.keys, &shared.owned, &mut held, owner, Duration::from_secs(3600))
        .await
        .expect("redis");
    assert!(others.is_empty(), "the leases are free: {others:?}");
    lease::announce(conn, &shared.keys, &held).await.expect("redis");
    for fence in held {
        shared.set_fence(fence);
    }
}

pub async fn connect(url: &str) -> Conn {
    Target::Single(url.to_string()).connect(Duration::from_secs(2), Duration::from_secs(2)).await.expect("redis")
}

/// Waits until `f` holds, polling every 10 ms; panics after 10 s.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Stands in for the tripwire: records the restrictions shards report.
#[derive(Default, Clone)]
pub struct Reports(pub Arc<Mutex<Vec<Fired>>>);

impl Actor for Reports {
    type Context = Context<Self>;
}

impl Handler<RulesFired> for Reports {
    type Result = ();

    fn handle(&mut self, msg: RulesFired, _: &mut Context<Self>) {
        self.0.lock().unwrap().extend(msg.0);
    }
}
