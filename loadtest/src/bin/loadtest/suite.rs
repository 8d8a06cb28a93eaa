//! The README's suite: each scenario on a fresh private service.

use loadtest::engine::{self, Summary};
use loadtest::measure;
use serde_json::json;

use crate::apply::apply_rate;
use crate::cli::{Command, Common};
use crate::run::run_scenario;
use crate::target::target;

/// The overload scenario in a process of its own, with `--server-cpus
/// server_cpu` (the generator's CPUs are the process's); its report.
pub(crate) fn overload_apart(
    bin: &std::path::Path,
    c: &Common,
    server_cpu: usize,
) -> anyhow::Result<loadtest::overload::Report> {
    let out = std::env::temp_dir().join(format!("loadtest-overload-{}.json", std::process::id()));
    let status = std::process::Command::new(std::env::current_exe()?)
        .arg("--spawn")
        .arg(bin)
        .arg("--config")
        .arg(&c.config)
        .arg("--out")
        .arg(&out)
        .args(["--server-cpus", &server_cpu.to_string()])
        .args(["--duration", &humantime::format_duration(c.duration).to_string()])
        .args(["--users", &c.users.to_string(), "--threads", &c.threads.max(2).to_string()])
        .arg("overload")
        .status()?;
    anyhow::ensure!(status.success(), "the overload scenario failed ({status})");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&out)?)?;
    let _ = std::fs::remove_file(&out);
    Ok(serde_json::from_value(report["results"].clone())?)
}

/// The README's suite: each scenario on a fresh private service.
pub(crate) fn suite(
    runtime: &tokio::runtime::Runtime,
    bin: &std::path::Path,
    c: &Common,
) -> anyhow::Result<serde_json::Value> {
    let fresh = |c: &Common| target(&Common { spawn: Some(bin.to_path_buf()), target: None, ..c.clone() });
    let mut rows: Vec<Summary> = Vec::new();
    // Fixed-rate rows measure latency: the generator must read each reply as
    // it arrives, and on one thread the replies to a burst of requests (the
    // timer fires once a millisecond) would wait for each other in the
    // generator. Closed-loop rows keep one thread, leaving the cores to the
    // service, and so does the one-connection row (no wake-ups across threads).
    let latency_runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(c.threads.max(2)).enable_all().build()?;
    let mut run = |label: &str, c: Common, command: Command| -> anyhow::Result<Summary> {
        // The ceiling serves itself; no restrictd beside it.
        let t = if matches!(command, Command::Ceiling { .. }) { None } else { Some(fresh(&c)?) };
        let addr = t.as_ref().map(|t| t.addr.clone()).unwrap_or_default();
        let runtime = if c.rate.is_some() && c.connections > 1 { &latency_runtime } else { runtime };
        let mut s = runtime.block_on(run_scenario(&addr, &c, command))?;
        // A scenario of several rows (overload) labels them itself.
        if s.len() == 1 {
            s[0].label = label.to_string();
        }
        rows.extend(s.iter().cloned());
        Ok(s.remove(0))
    };
    let base = Common { rate: None, ..c.clone() };
    let ceiling_cmd = || Command::Ceiling { workers: 2, in_process: false };
    let ceiling = run("ceiling", base.clone(), ceiling_cmd())?;
    let checks = run("checks max", base.clone(), Command::Checks)?;
    run("checks zipf", Common { zipf: true, ..base.clone() }, Command::Checks)?;
    run("checks 20k/s", Common { rate: Some(20_000.0), ..base.clone() }, Command::Checks)?;
    run("ceiling 20k/s", Common { rate: Some(20_000.0), ..base.clone() }, ceiling_cmd())?;
    let unloaded = Common { rate: Some(1_000.0), connections: 1, ..base.clone() };
    run("checks unloaded", unloaded.clone(), Command::Checks)?;
    run("ceiling unloaded", unloaded, ceiling_cmd())?;
    run("events max", base.clone(), Command::Events)?;
    run("batch max", Common { connections: 8, ..base.clone() }, Command::Batch { batch_size: 100 })?;
    let mixed = Common { rate: Some(10_000.0), connections: 100, ..base.clone() };
    run("mixed 10k/s", mixed.clone(), Command::Mixed)?;
    run("ceiling 10k/s", mixed, ceiling_cmd())?;
    // Overload with the servers on a core of their own and the generator on
    // the others, as if the producers were elsewhere: on shared cores more
    // load offered is CPU taken from the service.
    let overload = match loadtest::cpus::allowed() {
        Ok(cpus) if cpus.len() >= 2 && c.server_cpus.is_none() => overload_apart(bin, &base, cpus[0])?,
        _ => {
            let t = fresh(&base)?;
            latency_runtime.block_on(loadtest::overload::overload(
                (&t.addr, &t.checks_addr),
                base.users,
                base.duration,
                1000,
                &loadtest::overload::OFFERED,
            ))?
        }
    };
    rows.extend(overload.rows.iter().map(|r| Summary { label: format!("overload {}", r.label), ..r.events.clone() }));
    let t = fresh(&base)?;
    let lag = runtime.block_on(measure::lag(&t.addr, 10_000.0, 50, base.duration))?;
    drop(t);
    engine::print_table(&rows);
    println!(
        "checks / ceiling: {:.2}   post-to-visible at 10000 events/s: {:?}",
        checks.requests_per_second / ceiling.requests_per_second,
        lag.post_to_visible_us
    );
    let apply = apply_rate(runtime, bin, c, 500_000, 1, false)?;
    println!("applied: {apply}");
    Ok(json!({
        "scenarios": rows,
        "checks_to_ceiling": checks.requests_per_second / ceiling.requests_per_second,
        "lag": lag,
        "apply": apply,
        "overload": overload,
    }))
}
