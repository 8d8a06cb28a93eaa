//! The scenarios of many producers (overload, producers, fairness) and the soak.

use serde_json::json;

use crate::cli::{Command, Common};
use crate::target::{target, target_with};

/// The scenarios of many producers (`overload`, `producers`) and the soak.
pub(crate) fn many_producers(
    command: Command,
    c: &Common,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<(String, serde_json::Value)> {
    Ok(match command {
        Command::Overload { producers, offered } => {
            let t = target(c)?;
            let r = runtime.block_on(loadtest::overload::overload(
                (&t.addr, &t.checks_addr),
                c.users,
                c.duration,
                producers,
                &offered,
            ))?;
            loadtest::overload::print(&r);
            ("overload".into(), json!(r))
        }
        Command::Soak { dir, max_drift } => {
            let bin = c.spawn.as_ref().ok_or_else(|| anyhow::anyhow!("soak needs --spawn path/to/restrictd"))?;
            let users = if c.users == 100_000 { 1_000_000 } else { c.users };
            let r = loadtest::soak::soak(bin, &c.config, users, (c.duration, max_drift), &dir)?;
            for v in &r.verdicts {
                println!(
                    "{:<48} first {:>12.1}  last {:>12.1}  {}",
                    v.what,
                    v.first,
                    v.last,
                    if v.ok { "ok" } else { "FAILED" }
                );
            }
            println!("samples: {} and {}", r.csv.display(), r.png.display());
            anyhow::ensure!(r.passed, "the soak failed: {:?}", r.verdicts.iter().filter(|v| !v.ok).collect::<Vec<_>>());
            ("soak".into(), json!(r))
        }
        Command::Fairness { producers } => {
            let env = loadtest::overload::fairness_env();
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let t = target_with(c, &env)?;
            let r = runtime.block_on(loadtest::overload::fairness(&t.addr, c.users, c.duration, producers))?;
            let flood_ok: u64 = r.flood.statuses.iter().filter(|(k, _)| k.starts_with('2')).map(|(_, v)| v).sum();
            println!(
                "flood: {} connections, {:.0} accepted/s, {:.0} refused/s; ten producers at 100/s: {:.2} % of their events accepted",
                r.flood.connections,
                flood_ok as f64 / r.flood.seconds,
                (r.flood.requests - flood_ok) as f64 / r.flood.seconds,
                100.0 * r.fair_accepted_share
            );
            ("fairness".into(), json!(r))
        }
        Command::Producers => {
            let t = target(c)?;
            let r = runtime.block_on(loadtest::overload::producers(&t.addr, c.users, c.duration))?;
            loadtest::overload::print(&r);
            ("producers".into(), json!(r))
        }
        _ => unreachable!("not a scenario of many producers"),
    })
}
