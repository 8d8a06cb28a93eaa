//! The command line: the options every scenario shares and the scenarios.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "loadtest", about = "Load generator for restrictd")]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) common: Common,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Args, Clone)]
pub(crate) struct Common {
    /// host:port of a running restrictd (its tripwire should be off, or the check may disagree).
    #[arg(long, global = true)]
    pub(crate) target: Option<String>,
    /// Start a private redis-server and this restrictd binary instead (tripwire off).
    #[arg(long, global = true)]
    pub(crate) spawn: Option<PathBuf>,
    /// Config for --spawn.
    #[arg(long, global = true, default_value = "config.toml")]
    pub(crate) config: PathBuf,
    /// Where to write the results as JSON.
    #[arg(long, global = true)]
    pub(crate) out: Option<PathBuf>,
    /// Load generator threads.
    #[arg(long, global = true, default_value_t = 1)]
    pub(crate) threads: usize,
    #[arg(long, global = true, default_value = "10s", value_parser = humantime::parse_duration)]
    pub(crate) duration: Duration,
    #[arg(long, global = true, default_value_t = 50)]
    pub(crate) connections: usize,
    /// Open loop at this many requests per second; absent: closed loop, as fast as possible.
    #[arg(long, global = true)]
    pub(crate) rate: Option<f64>,
    /// Users in the population.
    #[arg(long, global = true, default_value_t = 100_000)]
    pub(crate) users: u64,
    /// Skew requests over users with a Zipf distribution (s = 1) instead of uniformly.
    #[arg(long, global = true)]
    pub(crate) zipf: bool,
    /// Skip the correctness check after the run.
    #[arg(long, global = true)]
    pub(crate) no_verify: bool,
    /// With --spawn: drive an instance that owns only shard 0, beside one that
    /// owns the other 63, so that checks are answered from the changelog.
    #[arg(long, global = true)]
    pub(crate) non_owner: bool,
    /// With --target: where checks go (the instance's `http.checks_addr`);
    /// absent: the target itself.
    #[arg(long, global = true)]
    pub(crate) checks_target: Option<String>,
    /// Run the spawned servers (Redis, restrictd, the ceiling handler) on
    /// these CPUs (`0`, `0-1`, `0,2`) and the generator on the others, as if
    /// the clients were on other machines. With --target only the generator
    /// moves.
    #[arg(long, global = true)]
    pub(crate) server_cpus: Option<String>,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
    /// One request, repeated, to any path of --target (a gateway in front of
    /// restrictd, a bulk check): no population, no correctness check.
    Http {
        /// The path and query.
        path: String,
        #[arg(long, default_value = "GET")]
        method: String,
        /// `Name: value`, repeatable.
        #[arg(long = "header")]
        headers: Vec<String>,
        /// The body (sent as application/json).
        #[arg(long)]
        body_file: Option<PathBuf>,
    },
    /// Mixed load at 10, 100 and 1000 concurrent clients (closed loop), a third of the duration each.
    Ramp,
    /// The service's closed-loop capacity (single events, 100 producers), then
    /// 1x, 2x and 4x that (or the multiples given with --offered) offered
    /// open-loop from --producers connections, with checks at 1,000/s
    /// alongside and /ready watched; then the trivial handler from 100 and
    /// 1,000 connections. Fails if an accepted event is lost.
    Overload {
        #[arg(long, default_value_t = 1000)]
        producers: usize,
        /// The multiples of capacity offered, one row each, in this order
        /// (e.g. 1,1,1: whether the first flood after start differs).
        #[arg(long, value_delimiter = ',', default_values_t = loadtest::overload::OFFERED, value_parser = multiple)]
        offered: Vec<f64>,
    },
    /// 10, 100 and 1,000 closed-loop producers that honour Retry-After, and
    /// 1,000 that do not; then the trivial handler from 100 and 1,000
    /// connections. Fails if an accepted event is lost.
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
    /// The feed with many subscribers: delivery latency, CPU per delivered change, checks (needs --spawn).
    Fanout {
        #[arg(long, default_value_t = 1000)]
        subscribers: usize,
        /// Changes (users restricted) a second.
        #[arg(long, default_value_t = 10_000.0)]
        changes: f64,
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

/// A multiple of capacity for `--offered`: a positive number.
fn multiple(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("{s:?} is not a positive multiple of capacity (e.g. 0.5, 1, 4)")),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command};

    fn offered(args: &[&str]) -> Result<Vec<f64>, String> {
        let cli = Cli::try_parse_from(["loadtest", "overload"].iter().chain(args)).map_err(|e| e.to_string())?;
        match cli.command {
            Command::Overload { offered, .. } => Ok(offered),
            _ => unreachable!("parsed as overload"),
        }
    }

    #[test]
    fn offered_defaults_to_one_two_four_and_keeps_the_order_given() {
        assert_eq!(offered(&[]).unwrap(), vec![1.0, 2.0, 4.0]);
        assert_eq!(offered(&["--offered", "1,1,0.5"]).unwrap(), vec![1.0, 1.0, 0.5]);
    }

    #[test]
    fn offered_refuses_what_is_not_a_positive_multiple() {
        for bad in ["0", "-1", "inf", "NaN", "x", "1,,2"] {
            let err = offered(&[&format!("--offered={bad}")]).unwrap_err();
            assert!(err.contains("positive multiple"), "{bad}: {err}");
        }
    }
}
