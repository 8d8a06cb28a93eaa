//! restrictd's load generator, as a library (the `loadtest` binary and the
//! test suite's smoke test use it).

pub mod ceiling;
pub mod client;
pub mod cpus;
pub mod engine;
pub mod fanout;
pub mod measure;
pub mod overload;
pub mod runaway;
pub mod scenarios;
pub mod soak;
pub mod spawn;
pub mod switch;

use std::sync::Arc;
use std::time::Duration;

use engine::{Plan, Summary};
use scenarios::{Checks, Events, Mixed, Model, Population, Rng};

/// Whether this process is the `loadtest` binary, which can start helper
/// processes of itself (`probe`, `serve-ceiling`); a library caller (the test
/// suite) runs them on threads instead.
pub fn is_loadtest_binary() -> bool {
    std::env::current_exe().is_ok_and(|exe| exe.file_stem().is_some_and(|n| n == "loadtest"))
}

/// The value of one series (name and labels exactly as exported) in a
/// Prometheus exposition; `None` when it is not there.
pub fn metric_value(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Quantile `q` of histogram `name` in a Prometheus exposition, as the
/// upper bound of the first bucket that holds it (`None`: no observation).
pub fn histogram_quantile(exposition: &str, name: &str, q: f64) -> Option<f64> {
    let prefix = format!("{name}_bucket{{le=\"");
    let buckets: Vec<(f64, f64)> = exposition
        .lines()
        .filter_map(|l| {
            let (le, count) = l.strip_prefix(&prefix)?.split_once("\"} ")?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((le, count.parse().ok()?))
        })
        .collect();
    let total = buckets.last()?.1;
    if total == 0.0 {
        return None;
    }
    buckets.iter().find(|(_, n)| *n >= q * total).map(|(le, _)| *le)
}

/// A short mixed run (about `rate` requests per second for `duration`) with
/// the correctness check on: fails when any sampled user's features differ
/// from the reference model of the events that were acknowledged.
pub async fn smoke(addr: &str, rate: f64, duration: Duration) -> anyhow::Result<Summary> {
    let pop = Population::new(200, "smoke", false);
    let model = Model::new(3);
    let plan = Plan {
        addr: addr.to_string(),
        connections: 4,
        rate: Some(rate),
        duration,
        label: "smoke".into(),
        ..Default::default()
    };
    let summary = engine::run(&plan, |c| {
        Mixed::new(
            Events { pop: pop.clone(), rng: Rng::new(c as u64), model: Arc::clone(&model), last: Vec::new() },
            Checks { pop: pop.clone(), rng: Rng::new(1000 + c as u64) },
        )
    })
    .await;
    anyhow::ensure!(summary.errors == 0, "errors during the run: {:?}", summary.statuses);
    let mismatches = model.verify(addr, &pop, Duration::from_secs(20)).await;
    anyhow::ensure!(
        mismatches.is_empty(),
        "{} users differ from the model:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    anyhow::ensure!(model.sample_size() > 0, "no user was sampled");
    Ok(summary)
}
