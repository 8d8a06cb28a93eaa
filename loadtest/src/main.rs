//! `loadtest`: drives restrictd over HTTP and reports rates and latencies.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use loadtest::engine::{self, Plan, Summary};
use loadtest::measure;
use loadtest::scenarios::{populate, settle, Batches, Checks, Events, Mixed, Model, Population, Rng};
use loadtest::spawn::{get_body, Redis, RedisCluster, Service};
use restrictd_actors::store::{Keys, DEFAULT_PREFIX};
use serde_json::json;

#[derive(Parser)]
#[command(name = "loadtest", about = "Load generator for restrictd")]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Common {
    /// host:port of a running restrictd (its tripwire should be off, or the check may disagree).
    #[arg(long, global = true)]
    target: Option<String>,
    /// Start a private redis-server and this restrictd binary instead (tripwire off).
    #[arg(long, global = true)]
    spawn: Option<PathBuf>,
    /// Config for --spawn.
    #[arg(long, global = true, default_value = "config.toml")]
    config: PathBuf,
    /// Where to write the results as JSON.
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    /// Load generator threads.
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    #[arg(long, global = true, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    #[arg(long, global = true, default_value_t = 50)]
    connections: usize,
    /// Open loop at this many requests per second; absent: closed loop, as fast as possible.
    #[arg(long, global = true)]
    rate: Option<f64>,
    /// Users in the population.
    #[arg(long, global = true, default_value_t = 100_000)]
    users: u64,
    /// Skew requests over users with a Zipf distribution (s = 1) instead of uniformly.
    #[arg(long, global = true)]
    zipf: bool,
    /// Skip the correctness check after the run.
    #[arg(long, global = true)]
    no_verify: bool,
    /// With --spawn: drive an instance that owns only shard 0, beside one that
    /// owns the other 63, so that checks are answered from the changelog.
    #[arg(long, global = true)]
    non_owner: bool,
    /// With --target: where checks go (the instance's `http.checks_addr`);
    /// absent: the target itself.
    #[arg(long, global = true)]
    checks_target: Option<String>,
    /// Run the spawned servers (Redis, restrictd, the ceiling handler) on
    /// these CPUs (`0`, `0-1`, `0,2`) and the generator on the others, as if
    /// the clients were on other machines. With --target only the generator
    /// moves.
    #[arg(long, global = true)]
    server_cpus: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// GET /can<feature> over a populated set of users.
    Checks,
    /// Single POST /event.
    Events,
    /// POST /v1/events batches.
    Batch {
        #[arg(long, default_value_t = 100)]
        batch_size: usize,
    },
    /// One event to two checks.
    Mixed,
    /// Mixed load at 10, 100 and 1000 concurrent clients (closed loop), a third of the duration each.
    Ramp,
    /// The service's closed-loop capacity (single events, 100 producers), then
    /// 1x, 2x and 4x that offered open-loop from --producers connections, with
    /// checks at 1,000/s alongside and /ready watched. Fails if an accepted
    /// event is lost.
    Overload {
        #[arg(long, default_value_t = 1000)]
        producers: usize,
    },
    /// 10, 100 and 1,000 closed-loop producers that honour Retry-After, and
    /// 1,000 that do not. Fails if an accepted event is lost.
    Producers,
    /// One producer flooding from --producers connections (closed loop,
    /// ignoring Retry-After) beside ten producers at 100 events/s each, each
    /// with an ingest token of its own (needs --spawn). Fails if an accepted
    /// event is lost.
    Fairness {
        #[arg(long, default_value_t = 900)]
        producers: usize,
    },
    /// --duration at half capacity, mixed, the population growing to --users
    /// (default 1,000,000) then steady, a graceful restart halfway; samples
    /// into soak.csv and soak.png (needs --spawn). Fails on growth or drift.
    Soak {
        /// Where soak.csv and soak.png go.
        #[arg(long, default_value = "loadtest-results")]
        dir: PathBuf,
        /// A p99 may differ between the first and last stretch by this factor.
        #[arg(long, default_value_t = 2.0)]
        max_drift: f64,
    },
    /// Post-to-visible latency at a fixed event rate (default 10000/s).
    Lag,
    /// A trivial actix-web handler with restrictd's worker count, driven the same way.
    Ceiling {
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Serve it from a thread of the generator instead of a process of its own.
        #[arg(long)]
        in_process: bool,
    },
    /// Checks at --rate from one connection for --duration against `addr`,
    /// printing their summary as JSON: the prober the overload scenarios run
    /// as a process of its own, so that their flood does not delay it.
    #[command(hide = true)]
    Probe {
        addr: String,
        #[arg(long, default_value = "ov")]
        prefix: String,
    },
    /// Serve the trivial handler until killed; prints `listening <addr>` first.
    ServeCeiling {
        #[arg(long, default_value_t = 2)]
        workers: usize,
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
    /// Events applied per second: a backlog of events replayed after a restart.
    Apply {
        #[arg(long, default_value_t = 500_000)]
        events: u64,
        /// Instances replaying, each owning an equal part of the shards.
        #[arg(long, default_value_t = 1)]
        instances: usize,
        /// On a private three-master Redis Cluster instead of one redis-server.
        #[arg(long)]
        cluster: bool,
    },
    /// Seconds to ready and memory after loading users and restarting (needs --spawn).
    Recovery {
        #[arg(long, default_value_t = 200_000)]
        replay: u64,
    },
    /// Publish-to-applied latency of rule-set versions on a loaded deployment
    /// (default 1,000,000 users), and checks at --rate (default 20,000/s)
    /// without and with publishes (needs --spawn).
    Switch {
        #[arg(long, default_value_t = 5)]
        publishes: usize,
        /// What each publish changes.
        #[arg(long, value_enum, default_value = "threshold")]
        change: loadtest::switch::Change,
    },
    /// Memory a non-owner instance spends per restricted user it follows (needs --spawn).
    FollowerMemory {
        #[arg(long, default_value_t = 200_000)]
        restricted: u64,
    },
    /// The README's Performance suite on a spawned service (needs --spawn).
    Suite,
    /// A rule that restricts every user it sees, on a population of --users,
    /// flagged as fast as the service accepts: users restricted against the
    /// tripwire's bound (needs --spawn; fails above the bound).
    Runaway {
        #[arg(long, default_value_t = 1)]
        instances: usize,
        /// Single POST /event from 64 connections instead of batches of 1,000.
        #[arg(long)]
        single: bool,
    },
}

/// The service under test: a running one, or a private one we started.
struct Target {
    addr: String,
    /// Where client services send checks: the spawned instance's checks
    /// listener (`http.checks_addr`), or `--checks-target`, or `addr`.
    checks_addr: String,
    _redis: Option<Redis>,
    _service: Option<Service>,
    _owner: Option<Service>,
}

const QUIET_TRIPWIRE: [(&str, &str); 2] =
    [("RESTRICTD_TRIPWIRE__THRESHOLD", "1.0"), ("RESTRICTD_TRIPWIRE__MIN_RESTRICTED", "1000000000")];

fn target(c: &Common) -> anyhow::Result<Target> {
    target_with(c, &[])
}

/// `target`, a spawned instance having `extra` in its environment too.
fn target_with(c: &Common, extra: &[(&str, &str)]) -> anyhow::Result<Target> {
    if let Some(addr) = &c.target {
        let checks_addr = c.checks_target.clone().unwrap_or_else(|| addr.clone());
        return Ok(Target { addr: addr.clone(), checks_addr, _redis: None, _service: None, _owner: None });
    }
    let bin =
        c.spawn.as_ref().ok_or_else(|| anyhow::anyhow!("give --target host:port or --spawn path/to/restrictd"))?;
    let redis = Redis::start();
    let owner = c.non_owner.then(|| {
        let env = [
            QUIET_TRIPWIRE[0],
            QUIET_TRIPWIRE[1],
            ("RESTRICTD_INSTANCE__SHARDS", "1-63"),
            ("RESTRICTD_INSTANCE__ID", "owner"),
        ];
        let owner = Service::launch(bin, &c.config, &redis.url(), &env);
        owner.wait_ready(Duration::from_secs(60));
        owner
    });
    let mut env = QUIET_TRIPWIRE.to_vec();
    if c.non_owner {
        env.extend([("RESTRICTD_INSTANCE__SHARDS", "0"), ("RESTRICTD_INSTANCE__ID", "non-owner")]);
    }
    // Checks on a listener of their own, as the README tells client services.
    let checks_addr = format!("127.0.0.1:{}", loadtest::spawn::free_port());
    env.push(("RESTRICTD_HTTP__CHECKS_ADDR", &checks_addr));
    env.extend_from_slice(extra);
    let service = Service::launch(bin, &c.config, &redis.url(), &env);
    service.wait_ready(Duration::from_secs(60));
    Ok(Target {
        addr: service.addr.clone(),
        checks_addr: checks_addr.clone(),
        _redis: Some(redis),
        _service: Some(service),
        _owner: owner,
    })
}

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
        Command::Recovery { replay } => {
            let bin = c.spawn.as_ref().ok_or_else(|| anyhow::anyhow!("recovery needs --spawn path/to/restrictd"))?;
            let users = if c.users == 100_000 { 1_000_000 } else { c.users };
            let report = measure::recovery(bin, &c.config, users, replay)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            ("recovery".into(), json!(report))
        }
        Command::Switch { publishes, change } => {
            let bin = c.spawn.as_ref().ok_or_else(|| anyhow::anyhow!("switch needs --spawn path/to/restrictd"))?;
            let users = if c.users == 100_000 { 1_000_000 } else { c.users };
            let rate = c.rate.unwrap_or(20_000.0);
            let report = loadtest::switch::switch(bin, &c.config, users, (publishes, change), rate, c.duration)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            ("switch".into(), json!(report))
        }
        Command::FollowerMemory { restricted } => {
            let bin =
                c.spawn.as_ref().ok_or_else(|| anyhow::anyhow!("follower-memory needs --spawn path/to/restrictd"))?;
            let report = measure::follower_memory(bin, &c.config, restricted)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            ("follower-memory".into(), json!(report))
        }
        Command::Runaway { instances, single } => {
            let bin = c.spawn.as_ref().ok_or_else(|| anyhow::anyhow!("runaway needs --spawn path/to/restrictd"))?;
            let report = loadtest::runaway::runaway(bin, &c.config, c.users, instances, single)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            ("runaway".to_string(), serde_json::to_value(&report)?)
        }
        Command::Apply { events, instances, cluster } => {
            let bin = c.spawn.as_ref().ok_or_else(|| anyhow::anyhow!("apply needs --spawn path/to/restrictd"))?;
            let r = apply_rate(&runtime, bin, &c, events, instances, cluster)?;
            println!("{}", serde_json::to_string_pretty(&r)?);
            ("apply".into(), r)
        }
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
    let out = c.out.unwrap_or_else(|| PathBuf::from(format!("loadtest-results/{name}.json")));
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

/// `--server-cpus`: the servers on `list`, this process on the others.
fn split_cpus(list: &str) -> anyhow::Result<()> {
    let servers = loadtest::cpus::parse(list).map_err(anyhow::Error::msg)?;
    let generator = loadtest::cpus::split(servers.clone()).map_err(anyhow::Error::msg)?;
    eprintln!("servers on CPUs {servers:?}, the generator on {generator:?}");
    Ok(())
}

/// The scenarios of many producers (`overload`, `producers`) and the soak.
fn many_producers(
    command: Command,
    c: &Common,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<(String, serde_json::Value)> {
    Ok(match command {
        Command::Overload { producers } => {
            let t = target(c)?;
            let r = runtime.block_on(loadtest::overload::overload(
                (&t.addr, &t.checks_addr),
                c.users,
                c.duration,
                producers,
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

fn plan(addr: &str, c: &Common, label: &str) -> Plan {
    Plan {
        addr: addr.to_string(),
        connections: c.connections,
        rate: c.rate,
        duration: c.duration,
        label: label.into(),
        ..Default::default()
    }
}

fn events_gen(pop: &Population, model: &Arc<Model>, seed: u64) -> Events {
    Events { pop: pop.clone(), rng: Rng::new(seed), model: Arc::clone(model), last: Vec::new() }
}

async fn verify(addr: &str, c: &Common, pop: &Population, model: &Model) -> anyhow::Result<()> {
    if c.no_verify {
        return Ok(());
    }
    let mismatches = model.verify(addr, pop, Duration::from_secs(60)).await;
    eprintln!("correctness: {} sampled users checked, {} mismatches", model.sample_size(), mismatches.len());
    anyhow::ensure!(mismatches.is_empty(), "correctness check failed:\n{}", mismatches.join("\n"));
    Ok(())
}

async fn run_scenario(addr: &str, c: &Common, command: Command) -> anyhow::Result<Vec<Summary>> {
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
        Command::Ramp => {
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
                            events_gen(&pop, &model, i as u64),
                            Checks { pop: pop.clone(), rng: Rng::new(9000 + i as u64) },
                        )
                    })
                    .await,
                );
            }
            out
        }
        Command::Lag => {
            let r = measure::lag(addr, c.rate.unwrap_or(10_000.0), c.connections, c.duration).await?;
            println!(
                "post-to-visible at {} events/s over {} probes: {:?}",
                r.event_rate, r.probes, r.post_to_visible_us
            );
            return Ok(vec![r.filler]);
        }
        Command::Ceiling { workers, in_process } => {
            let (addr, _process) = if in_process {
                (loadtest::ceiling::serve(workers)?, None)
            } else {
                let p = loadtest::ceiling::Process::start(workers)?;
                (p.addr.clone(), Some(p))
            };
            let pop = pop.clone();
            return Ok(vec![
                engine::run(&plan(&addr, c, "ceiling"), |i| Checks { pop: pop.clone(), rng: Rng::new(i as u64) }).await,
            ]);
        }
        Command::Apply { .. }
        | Command::Overload { .. }
        | Command::Producers
        | Command::Soak { .. }
        | Command::Runaway { .. }
        | Command::Recovery { .. }
        | Command::FollowerMemory { .. }
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

/// Shards of the services `apply` starts.
const SHARDS: u32 = 64;

/// Events applied per second: post a backlog to a service that does not
/// snapshot, kill it, restart it and time the replay until ready.
fn apply_rate(
    runtime: &tokio::runtime::Runtime,
    bin: &std::path::Path,
    c: &Common,
    events: u64,
    instances: usize,
    cluster: bool,
) -> anyhow::Result<serde_json::Value> {
    let (_redis, _cluster, url, nodes) = if cluster {
        let cluster = RedisCluster::start(3);
        let (url, nodes) = (cluster.url(), cluster.nodes_toml());
        (None, Some(cluster), url, nodes)
    } else {
        let redis = Redis::start();
        let url = redis.url();
        (Some(redis), None, url, String::new())
    };
    let mut base = QUIET_TRIPWIRE.to_vec();
    // The leases are cleared below by their names: the shard count and prefix they were made with.
    let shards = SHARDS.to_string();
    base.extend([("RESTRICTD_SHARDS__COUNT", shards.as_str()), ("RESTRICTD_REDIS__KEY_PREFIX", DEFAULT_PREFIX)]);
    if cluster {
        base.push(("RESTRICTD_REDIS__NODES", nodes.as_str()));
    }
    let mut lazy = base.clone();
    lazy.extend([
        ("RESTRICTD_PERSISTENCE__FLUSH_INTERVAL", "1h"),
        ("RESTRICTD_PERSISTENCE__FLUSH_DIRTY_LIMIT", "100000000"),
        ("RESTRICTD_PERSISTENCE__CHANGELOG_DELAY", "1h"),
    ]);
    let mut svc = Service::launch(bin, &c.config, &url, &lazy);
    svc.wait_ready(Duration::from_secs(60));
    let pop = Population::new(c.users, "ap", false);
    let model = Model::new(u64::MAX);
    eprintln!("apply: posting {events} events");
    let p = Plan {
        addr: svc.addr.clone(),
        connections: 4,
        rate: None,
        duration: Duration::from_secs(3600),
        label: "backlog".into(),
        ..Default::default()
    };
    let posted = runtime.block_on(async {
        let per_request = 1000u64;
        let requests = events.div_ceil(per_request);
        let mut conns: Vec<_> = (0..p.connections).map(|_| loadtest::client::Conn::new(&p.addr)).collect();
        let mut gens: Vec<_> = (0..p.connections)
            .map(|i| Batches { events: events_gen(&pop, &model, i as u64), size: per_request as usize })
            .collect();
        let mut tasks = Vec::new();
        for (i, (mut conn, mut g)) in conns.drain(..).zip(gens.drain(..)).enumerate() {
            let share = requests / p.connections as u64 + u64::from((i as u64) < requests % p.connections as u64);
            tasks.push(tokio::spawn(async move {
                for _ in 0..share {
                    let loadtest::engine::Op::Post(path, body) = loadtest::engine::Generator::next(&mut g) else {
                        unreachable!()
                    };
                    let r = conn.post_until_admitted(&path, &body).await?;
                    anyhow::ensure!(r.status == 202, "backlog post: {}", r.status);
                }
                Ok::<u64, anyhow::Error>(share * per_request)
            }));
        }
        let mut n = 0;
        for t in tasks {
            n += t.await??;
        }
        Ok::<u64, anyhow::Error>(n)
    })?;
    // Nothing was snapshotted (flush interval 1 h): the restart replays the whole backlog.
    svc.kill();
    // The killed owner's leases would hold the shards for their TTL: clear
    // them, as an operator does once sure the process is dead.
    let keys = Keys::new(DEFAULT_PREFIX, SHARDS);
    for s in 0..SHARDS {
        let key = keys.lease(s);
        match (&_redis, &_cluster) {
            (Some(r), _) => r.cli(&["DEL", key]),
            (_, Some(cl)) => cl.cli(&["DEL", key]),
            _ => String::new(),
        };
    }
    // The shards split evenly over the instances: 0-31 and 32-63 for two.
    let count = SHARDS as usize;
    let specs: Vec<(String, String)> = (0..instances.max(1))
        .map(|i| {
            let (from, to) = (i * count / instances.max(1), (i + 1) * count / instances.max(1) - 1);
            (format!("{from}-{to}"), format!("bench-{i}"))
        })
        .collect();
    let launched = Instant::now();
    let services: Vec<Service> = specs
        .iter()
        .map(|(shards, id)| {
            let mut env = base.clone();
            env.extend([("RESTRICTD_INSTANCE__SHARDS", shards.as_str()), ("RESTRICTD_INSTANCE__ID", id.as_str())]);
            Service::launch(bin, &c.config, &url, &env)
        })
        .collect();
    for s in &services {
        s.wait_ready(Duration::from_secs(600));
    }
    let seconds = launched.elapsed().as_secs_f64();
    // The first instance's snapshot writes while replaying (each fenced by its lease).
    let exposition = services.first().and_then(|s| get_body(&s.addr, "/metrics")).unwrap_or_default();
    let flush = |q| loadtest::histogram_quantile(&exposition, "restrictd_flush_seconds", q).map(|s| s * 1000.0);
    Ok(json!({
        "instances": services.len(),
        "flush_ms_p50_bucket": flush(0.5),
        "flush_ms_p99_bucket": flush(0.99),
        "redis": if cluster { "cluster of 3 masters" } else { "one redis-server" },
        "events_replayed": posted,
        "seconds_to_ready": seconds,
        "events_applied_per_second": posted as f64 / seconds,
        "note": "includes process start, XREAD, JSON parsing, validation and rule evaluation",
    }))
}

/// The overload scenario in a process of its own, with `--server-cpus
/// server_cpu` (the generator's CPUs are the process's); its report.
fn overload_apart(bin: &std::path::Path, c: &Common, server_cpu: usize) -> anyhow::Result<loadtest::overload::Report> {
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
fn suite(runtime: &tokio::runtime::Runtime, bin: &std::path::Path, c: &Common) -> anyhow::Result<serde_json::Value> {
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
