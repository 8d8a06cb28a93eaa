//! The scenarios that start their own services (`--spawn`): recovery, rule-set
//! switches, the feed's fan-out, a follower's memory, a runaway rule, the apply rate.

use loadtest::measure;
use serde_json::json;

use crate::apply::apply_rate;
use crate::cli::{Command, Common};

/// Runs one of them; its name and report.
pub(crate) fn run(
    command: Command,
    c: &Common,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<(String, serde_json::Value)> {
    let need = |what: &str| c.spawn.clone().ok_or_else(|| anyhow::anyhow!("{what} needs --spawn path/to/restrictd"));
    Ok(match command {
        Command::Recovery { replay } => {
            let bin = &need("recovery")?;
            let users = if c.users == 100_000 { 1_000_000 } else { c.users };
            let report = measure::recovery(bin, &c.config, users, replay)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            ("recovery".into(), json!(report))
        }
        Command::Switch { publishes, change } => {
            let bin = &need("switch")?;
            let users = if c.users == 100_000 { 1_000_000 } else { c.users };
            let rate = c.rate.unwrap_or(20_000.0);
            let report = loadtest::switch::switch(bin, &c.config, users, (publishes, change), rate, c.duration)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            ("switch".into(), json!(report))
        }
        Command::Fanout { subscribers, changes } => {
            let bin = &need("fanout")?;
            let report =
                runtime.block_on(loadtest::fanout::fanout(bin, &c.config, subscribers, changes, c.duration))?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            ("fanout".into(), json!(report))
        }
        Command::FollowerMemory { restricted } => {
            let bin = &need("follower-memory")?;
            let report = measure::follower_memory(bin, &c.config, restricted)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            ("follower-memory".into(), json!(report))
        }
        Command::Runaway { instances, single } => {
            let bin = &need("runaway")?;
            let report = loadtest::runaway::runaway(bin, &c.config, c.users, instances, single)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            ("runaway".to_string(), serde_json::to_value(&report)?)
        }
        Command::Apply { events, instances, cluster } => {
            let bin = &need("apply")?;
            let r = apply_rate(runtime, bin, c, events, instances, cluster)?;
            println!("{}", serde_json::to_string_pretty(&r)?);
            ("apply".into(), r)
        }
        _ => unreachable!("not a scenario that starts its own service"),
    })
}
