//! `loadtest`: drives restrictd over HTTP and reports rates and latencies.

mod apply;
mod cli;
mod producers;
mod run;
mod spawned;
mod suite;
mod target;

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use loadtest::engine::{self};
use serde_json::json;

use crate::cli::{Cli, Command};
use crate::producers::many_producers;
use crate::run::run_scenario;
use crate::suite::suite;
use crate::target::target;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    loadtest::cpus::raise_open_files_limit();
    if let Command::ServeCeiling { workers, listen } = &cli.command {
        let listener = std::net::TcpListener::bind(listen)?;
        println!("listening {}", listener.local_addr()?);
        std::io::Write::flush(&mut std::io::stdout())?;
        actix_rt::System::new().block_on(loadtest::ceiling::run(listener, *workers))?;
        return Ok(());
    }
    let c = cli.common.clone();
    if let Command::Probe { addr, prefix } = &cli.command {
        loadtest::cpus::shortest_slice();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let summary = runtime.block_on(loadtest::overload::probe(addr, prefix, c.users, c.duration, c.rate));
        println!("{}", serde_json::to_string(&summary)?);
        return Ok(());
    }
    if let Some(list) = &c.server_cpus {
        split_cpus(list)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(c.threads.max(1)).enable_all().build()?;
    let started = Instant::now();
    let (name, results): (String, serde_json::Value) = match cli.command {
        command @ (Command::Recovery { .. }
        | Command::Switch { .. }
        | Command::Fanout { .. }
        | Command::FollowerMemory { .. }
        | Command::Runaway { .. }
        | Command::Apply { .. }) => spawned::run(command, &c, &runtime)?,
        command @ (Command::Overload { .. } | Command::Producers | Command::Fairness { .. } | Command::Soak { .. }) => {
            many_producers(command, &c, &runtime)?
        }
        Command::Suite => {
            let bin = c.spawn.clone().ok_or_else(|| anyhow::anyhow!("suite needs --spawn path/to/restrictd"))?;
            ("suite".into(), suite(&runtime, &bin, &c)?)
        }
        command => {
            // The ceiling serves itself: no restrictd to reach or start.
            let t = if matches!(command, Command::Ceiling { .. }) { None } else { Some(target(&c)?) };
            let addr = t.as_ref().map(|t| t.addr.clone()).unwrap_or_default();
            let summaries = runtime.block_on(run_scenario(&addr, &c, command))?;
            engine::print_table(&summaries);
            let name = summaries.first().map(|s| s.label.clone()).unwrap_or_default();
            (name, json!(summaries))
        }
    };
    write_results(c.out, &name, results, started)
}

/// `--server-cpus`: the servers on `list`, this process on the others.
fn split_cpus(list: &str) -> anyhow::Result<()> {
    let servers = loadtest::cpus::parse(list).map_err(anyhow::Error::msg)?;
    let generator = loadtest::cpus::split(servers.clone()).map_err(anyhow::Error::msg)?;
    eprintln!("servers on CPUs {servers:?}, the generator on {generator:?}");
    Ok(())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default()
}

/// The results as JSON with the machine they were measured on: `out`, or
/// `loadtest-results/<name>.json`.
fn write_results(out: Option<PathBuf>, name: &str, results: serde_json::Value, started: Instant) -> anyhow::Result<()> {
    let out = out.unwrap_or_else(|| PathBuf::from(format!("loadtest-results/{name}.json")));
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let machine = json!({
        "cpu": cpu_model(),
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
    });
    std::fs::write(&out, serde_json::to_string_pretty(&json!({"machine": machine, "results": results}))?)?;
    eprintln!("results written to {} ({:.0} s)", out.display(), started.elapsed().as_secs_f64());
    Ok(())
}
