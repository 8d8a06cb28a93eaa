//! The rule lifecycle on the service's side: its writes (publish, roll back,
//! seed) are `restrictd_actors::lifecycle`'s, re-exported here; this module
//! keeps this instance's HTTP side on the newest version (`watch`) and
//! writes simulations as people read them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use restrictd_actors::lifecycle::{candidate, differs, publish, rollback, seed, Publish, PublishError, Published};
use restrictd_actors::link::Target;
use restrictd_actors::retry::{self, RetryParams};
use restrictd_actors::shared::Shared;
use restrictd_domain::ModelDef;

/// Keeps this instance's HTTP side on the newest version: seeds version 1 on
/// a new deployment, then looks for a newer version every second. Sets
/// `file_differs` when the file is not the current version.
pub fn watch(shared: Arc<Shared>, target: Target, file: ModelDef, file_differs: Arc<AtomicBool>) {
    actix_rt::spawn(async move {
        let connect = || target.connect(Duration::from_secs(2), Duration::from_secs(5));
        let mut conn = retry::until_ok(RetryParams::REDIS, connect, |_| {}).await;
        let accept_unknown = shared.model().schema.accepts_unknown();
        let mut reported = false;
        // The version current when this instance started is not news.
        loop {
            match seed(&mut conn, &shared.keys, &file, accept_unknown).await {
                Ok(current) => {
                    let differ = differs(&file, &current);
                    file_differs.store(differ, Ordering::Release);
                    if differ && !std::mem::replace(&mut reported, true) {
                        tracing::warn!(
                            version = current.version,
                            "the configuration file's rules differ from the current version; `restrictd rules publish` makes it the next"
                        );
                    }
                    if current.version > shared.model_version() {
                        match current.compile(accept_unknown) {
                            Ok(model) => {
                                shared.set_model(current.version, Arc::new(model));
                            }
                            Err(e) => {
                                tracing::error!(version = current.version, error = %e, "the current rule set does not compile")
                            }
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "cannot read the current rule set yet"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

/// A simulation as people read it: per rule its share of `population` and
/// whether that share would trip the tripwire at once.
pub fn simulation_json(
    sim: &restrictd_domain::simulate::Simulation,
    tripwire: &restrictd_domain::TripwireSettings,
) -> serde_json::Value {
    let population = sim.users.max(1);
    let rules: Vec<serde_json::Value> = sim
        .rules
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            v["share"] = serde_json::json!(r.would_restrict as f64 / population as f64);
            v["would_trip"] = serde_json::json!(
                r.mode == "enforce"
                    && r.would_restrict >= tripwire.min_restricted
                    && r.would_restrict * 1_000_000 >= tripwire.threshold_ppm * population
            );
            v
        })
        .collect();
    serde_json::json!({"population": sim.users, "released_if_lifted": sim.released_if_lifted, "rules": rules})
}
