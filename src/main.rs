//! `restrictd` command line: serve (default) and check-config.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use restrictd::config::Settings;
use restrictd::routes::check_path;
use restrictd::rules_cli::RulesCommand;
use restrictd::startup::Application;
use restrictd::{inspect, telemetry};

/// mimalloc: faster than glibc malloc on the event path (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's options (its C API; the crate's bindings name only some of them).
mod allocator {
    use std::ffi::{c_int, c_long};

    extern "C" {
        fn mi_option_set(option: c_int, value: c_long);
    }

    /// `mi_option_purge_delay` in mimalloc v3's `mi_option_e`.
    const PURGE_DELAY: c_int = 15;

    /// mimalloc v3 keeps freed memory for a second (`purge_delay`) before
    /// giving it back to the OS; after a burst of writes that second of
    /// buffers shows as memory per user. 100 ms gives it back sooner at no
    /// cost in throughput. `MIMALLOC_PURGE_DELAY` in the environment still wins.
    ///
    /// Transparent huge pages are off for the process: with them the kernel
    /// hands out (and zeroes) 2 MiB where a heap page of 4 KiB was touched,
    /// which at 1,000,000 users cost about 25 bytes of RSS per user and made
    /// a restart slower (docs/performance.md). `MIMALLOC_ALLOW_THP` set in
    /// the environment leaves them as the system has them.
    pub fn tune() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: mimalloc's options may be set at any time; the option
            // number is checked against mimalloc's default by a test.
            unsafe { mi_option_set(PURGE_DELAY, 100) }
        }
        #[cfg(target_os = "linux")]
        if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
            // SAFETY: a process-wide flag the kernel checks at each page
            // fault; no memory is touched.
            unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        extern "C" {
            fn mi_option_get(option: c_int) -> c_long;
        }

        #[test]
        fn the_purge_delay_option_is_mimallocs_and_is_lowered() {
            if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
                return;
            }
            // SAFETY: reads an option.
            let purge_delay = || unsafe { mi_option_get(PURGE_DELAY) };
            assert_eq!(purge_delay(), 1000, "mimalloc v3's default purge delay, read by its option number");
            tune();
            assert_eq!(purge_delay(), 100);
        }
    }
}

#[derive(Parser)]
#[command(name = "restrictd", version, about = "Feature restriction service for trust & safety")]
struct Cli {
    /// The configuration file (environment variables RESTRICTD_<SECTION>__<KEY> override it).
    #[arg(long, global = true, default_value = "config.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (the default).
    Serve,
    /// Validate the configuration and print the compiled rules; exit 2 when invalid.
    CheckConfig,
    /// Print what Redis holds for a user or a shard (snapshot, offset, stream), as JSON.
    #[command(group(clap::ArgGroup::new("what").required(true).args(["user", "shard"])))]
    State {
        /// A user id: its decoded snapshot and its shard's offset.
        #[arg(long)]
        user: Option<String>,
        /// A shard number: offset, user count, stream length.
        #[arg(long)]
        shard: Option<u32>,
    },
    /// The rule lifecycle: publish a file's rules, diff, history.
    #[command(subcommand)]
    Rules(Rules),
}

#[derive(Subcommand)]
enum Rules {
    /// Publish the rule-set sections of FILE (a configuration file will do) as the next version.
    Publish {
        file: PathBuf,
        /// Why, kept with the version.
        #[arg(long)]
        message: Option<String>,
        /// Lift the restrictions of the rules this version removes.
        #[arg(long)]
        lift_removed: bool,
        /// Rule tests to pass first (default: FILE's stem `.test.toml` and `.*.test.toml` beside it).
        #[arg(long = "test", value_name = "TEST_FILE")]
        tests: Vec<PathBuf>,
    },
    /// Run rule tests (TOML files: a rule set, events, expectations); exit 1 when one fails.
    Test {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// `text`, or `junit` (JUnit XML) for CI systems.
        #[arg(long, value_enum, default_value = "text")]
        format: restrictd::rules_test::Format,
    },
    /// What publishing FILE would change against the current version.
    Diff { file: PathBuf },
    /// Every published version, newest first.
    History,
    /// FILE's rules against every user of the deployment (from the snapshots in Redis).
    Simulate { file: PathBuf },
}

fn main() -> ExitCode {
    allocator::tune();
    let cli = Cli::parse();
    // Rule tests run on the domain alone: no configuration, no Redis.
    if let Some(Command::Rules(Rules::Test { files, format })) = &cli.command {
        let report = restrictd::rules_test::run(files, None, false);
        print!("{}", report.render(*format));
        return if report.passed() { ExitCode::SUCCESS } else { ExitCode::from(1) };
    }
    let settings = match Settings::load(&cli.config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("restrictd: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => {
            print_rules(&settings);
            ExitCode::SUCCESS
        }
        Command::Serve => serve(settings),
        Command::Rules(r) => {
            let command = match r {
                Rules::Publish { file, message, lift_removed, tests } => {
                    RulesCommand::Publish { file, message, lift_removed, tests }
                }
                Rules::Test { .. } => unreachable!("rule tests run before the configuration is read"),
                Rules::Diff { file } => RulesCommand::Diff { file },
                Rules::History => RulesCommand::History,
                Rules::Simulate { file } => RulesCommand::Simulate { file },
            };
            print_json(restrictd::rules_cli::run(&settings, command))
        }
        Command::State { user, shard } => {
            let count = settings.shards.count.get();
            let target = match (user, shard) {
                (_, Some(s)) if s >= count => {
                    eprintln!("restrictd: shard {s} does not exist: shards are 0 to {} (shards.count)", count - 1);
                    return ExitCode::from(2);
                }
                (Some(u), _) => inspect::Target::User(u),
                (None, Some(s)) => inspect::Target::Shard(s),
                (None, None) => unreachable!("clap requires one of the group"),
            };
            print_json(inspect::run(&settings, target))
        }
    }
}

/// A command's result as pretty JSON on stdout, or its error on stderr (exit 1).
fn print_json(result: anyhow::Result<serde_json::Value>) -> ExitCode {
    match result {
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("restrictd: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn serve(settings: Settings) -> ExitCode {
    telemetry::init(&settings.log);
    restrictd::engine::raise_open_files_limit();
    let listener = match TcpListener::bind(&settings.http.addr) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(addr = %settings.http.addr, error = %e, "cannot listen");
            return ExitCode::from(1);
        }
    };
    let run = async {
        let app = Application::build(settings, listener)?;
        app.run_until_stopped(shutdown_requested()).await
    };
    match actix_rt::System::new().block_on(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "restrictd stopped");
            ExitCode::from(1)
        }
    }
}

/// Resolves at the first SIGINT or SIGTERM; a second one exits at once.
async fn shutdown_requested() {
    signal().await;
    tracing::info!("shutdown requested: finishing in-flight requests, then flushing (a second signal exits at once)");
    actix_rt::spawn(async {
        signal().await;
        tracing::warn!("second signal: exiting now; unflushed state will be replayed from the streams");
        std::process::exit(130);
    });
}

/// SIGINT or SIGTERM.
async fn signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn print_rules(s: &Settings) {
    let m = &s.model;
    println!("configuration is valid");
    println!("shards: {}, redis: {} (prefix {:?})", s.shards.count, s.redis.target.describe(), s.redis.key_prefix);
    println!("features:");
    for f in &m.features {
        println!("  {f}  (GET {}?user_id=...)", check_path(f));
    }
    println!("events:");
    for (name, props) in m.schema.events.iter().zip(&m.schema.properties) {
        let props: Vec<String> = props.iter().map(|(p, t)| format!("{p}: {t:?}")).collect();
        println!("  {name}  {{user_id: String{}{}}}", if props.is_empty() { "" } else { ", " }, props.join(", "));
    }
    println!("aggregates:");
    for a in &m.aggregates {
        let event = &m.schema.events[usize::from(a.event)];
        let prop = a.property.map(|p| m.schema.properties[usize::from(a.event)][p].0.to_string());
        println!("  {} = {:?}({event}{})", a.name, a.kind, prop.map(|p| format!(".{p}")).unwrap_or_default());
    }
    println!("rules:");
    for r in &m.rules {
        println!("  {}: on {:?} when {} restrict {:?}", r.name, r.def.on, r.def.when, r.def.restrict);
    }
    let t = &s.tripwire.domain();
    println!(
        "tripwire: window {}s, threshold {}%, min_restricted {}, cooldown {}",
        t.window_ms / 1000,
        t.threshold_ppm as f64 / 10_000.0,
        t.min_restricted,
        t.cooldown_ms.map_or("none".to_string(), |c| format!("{}s", c / 1000))
    );
}
