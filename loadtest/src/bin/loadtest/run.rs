//! The scenarios of one generator against one service, and the correctness check.

use std::sync::Arc;
use std::time::Duration;

use loadtest::engine::{self, Op, Plan, Summary};
use loadtest::measure;
use loadtest::scenarios::{populate, settle, Batches, Checks, Events, Mixed, Model, Population, Rng};

use crate::cli::{Command, Common};

pub(crate) fn plan(addr: &str, c: &Common, label: &str) -> Plan {
    Plan {
        addr: addr.to_string(),
        connections: c.connections,
        rate: c.rate,
        duration: c.duration,
        label: label.into(),
        ..Default::default()
    }
}

pub(crate) fn events_gen(pop: &Population, model: &Arc<Model>, seed: u64) -> Events {
    Events { pop: pop.clone(), rng: Rng::new(seed), model: Arc::clone(model), last: Vec::new() }
}

pub(crate) async fn verify(addr: &str, c: &Common, pop: &Population, model: &Model) -> anyhow::Result<()> {
    if c.no_verify {
        return Ok(());
    }
    let mismatches = model.verify(addr, pop, Duration::from_secs(60)).await;
    eprintln!("correctness: {} sampled users checked, {} mismatches", model.sample_size(), mismatches.len());
    anyhow::ensure!(mismatches.is_empty(), "correctness check failed:\n{}", mismatches.join("\n"));
    Ok(())
}

pub(crate) async fn run_scenario(addr: &str, c: &Common, command: Command) -> anyhow::Result<Vec<Summary>> {
    let pop = Population::new(c.users, "lt", c.zipf);
    let model = Model::new(97);
    let summaries = match command {
        Command::Checks => {
            eprintln!("populating {} users", c.users);
            populate(addr, &pop, &model, 4).await?;
            settle(addr, Duration::from_secs(60)).await?;
            vec![engine::run(&plan(addr, c, "checks"), |i| Checks { pop: pop.clone(), rng: Rng::new(i as u64) }).await]
        }
        Command::Events => {
            vec![engine::run(&plan(addr, c, "events"), |i| events_gen(&pop, &model, i as u64)).await]
        }
        Command::Batch { batch_size } => vec![
            engine::run(&plan(addr, c, "batch"), |i| Batches {
                events: events_gen(&pop, &model, i as u64),
                size: batch_size,
            })
            .await,
        ],
        Command::Mixed => vec![
            engine::run(&plan(addr, c, "mixed"), |i| {
                Mixed::new(
                    events_gen(&pop, &model, i as u64),
                    Checks { pop: pop.clone(), rng: Rng::new(500 + i as u64) },
                )
            })
            .await,
        ],
        Command::Ramp => ramp(addr, c, &pop, &model).await,
        Command::Http { path, method, headers, body_file } => {
            return http(addr, c, path, &method, &headers, body_file).await
        }
        Command::Lag => {
            let r = measure::lag(addr, c.rate.unwrap_or(10_000.0), c.connections, c.duration).await?;
            println!(
                "post-to-visible at {} events/s over {} probes: {:?}",
                r.event_rate, r.probes, r.post_to_visible_us
            );
            return Ok(vec![r.filler]);
        }
        Command::Ceiling { workers, in_process } => return ceiling(c, &pop, workers, in_process).await,
        Command::Apply { .. }
        | Command::Overload { .. }
        | Command::Producers
        | Command::Soak { .. }
        | Command::Runaway { .. }
        | Command::Recovery { .. }
        | Command::FollowerMemory { .. }
        | Command::Fanout { .. }
        | Command::Switch { .. }
        | Command::Suite
        | Command::ServeCeiling { .. }
        | Command::Probe { .. }
        | Command::Fairness { .. } => {
            unreachable!("handled in main")
        }
    };
    verify(addr, c, &pop, &model).await?;
    Ok(summaries)
}

/// The same request over and over (`loadtest http`).
async fn http(
    addr: &str,
    c: &Common,
    path: String,
    method: &str,
    headers: &[String],
    body_file: Option<std::path::PathBuf>,
) -> anyhow::Result<Vec<Summary>> {
    let headers = headers
        .iter()
        .map(|h| h.split_once(':').map(|(n, v)| (n.trim().to_string(), v.trim().to_string())))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| anyhow::anyhow!("a --header is `Name: value`"))?;
    let body = body_file.map(std::fs::read).transpose()?;
    let method: &'static str = Box::leak(method.to_ascii_uppercase().into_boxed_str());
    let plan = Plan { headers, ..plan(addr, c, "http") };
    Ok(vec![engine::run(&plan, |_| Repeat(Op::Other(method, path.clone(), body.clone()))).await])
}

/// One request, sent again and again.
struct Repeat(Op);

impl engine::Generator for Repeat {
    fn next(&mut self) -> Op {
        match &self.0 {
            Op::Get(p) => Op::Get(p.clone()),
            Op::Post(p, b) => Op::Post(p.clone(), b.clone()),
            Op::Other(m, p, b) => Op::Other(m, p.clone(), b.clone()),
        }
    }
}

/// Mixed traffic from 10, 100 and 1,000 connections, a third of the run each.
async fn ramp(addr: &str, c: &Common, pop: &Population, model: &Arc<Model>) -> Vec<Summary> {
    let mut out = Vec::new();
    for clients in [10, 100, 1000] {
        let p = Plan {
            connections: clients,
            rate: None,
            duration: c.duration / 3,
            ..plan(addr, c, &format!("ramp {clients}"))
        };
        out.push(
            engine::run(&p, |i| {
                Mixed::new(
                    events_gen(pop, model, i as u64),
                    Checks { pop: pop.clone(), rng: Rng::new(9000 + i as u64) },
                )
            })
            .await,
        );
    }
    out
}

/// The trivial handler's checks: in this process, or in one of its own.
async fn ceiling(c: &Common, pop: &Population, workers: usize, in_process: bool) -> anyhow::Result<Vec<Summary>> {
    let (addr, _process) = loadtest::ceiling::start(workers, in_process)?;
    Ok(vec![engine::run(&plan(&addr, c, "ceiling"), |i| Checks { pop: pop.clone(), rng: Rng::new(i as u64) }).await])
}
