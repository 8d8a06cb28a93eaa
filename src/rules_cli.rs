//! `restrictd rules ...`: the rule lifecycle from the command line, against
//! the Redis of the configuration (no running service needed): publish a
//! file's rule set, show what it would change, list the versions.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use restrictd_actors::store::{rules, Keys};
use restrictd_domain::ruleset::diff;
use restrictd_domain::ModelDef;
use serde_json::{json, Value};

use crate::config::{Settings, UnknownEvents};
use crate::rules_test::read_rule_set;
use crate::rulesets::{self, Publish};

/// What the command line asks for.
pub enum RulesCommand {
    /// `tests`: the rule tests to pass first (none given: those beside `file`).
    Publish {
        file: std::path::PathBuf,
        message: Option<String>,
        lift_removed: bool,
        tests: Vec<std::path::PathBuf>,
    },
    Diff {
        file: std::path::PathBuf,
    },
    History,
    Simulate {
        file: std::path::PathBuf,
    },
}

/// Runs the command; its result as JSON.
pub fn run(settings: &Settings, command: RulesCommand) -> anyhow::Result<Value> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let target = &settings.redis.target;
        let mut conn = target
            .connect(std::time::Duration::from_secs(2), std::time::Duration::from_secs(10))
            .await
            .with_context(|| format!("cannot reach redis at {}", target.describe()))?;
        let keys = Keys::new(&settings.redis.key_prefix, settings.shards.count.get());
        match command {
            RulesCommand::Publish { file, message, lift_removed, tests } => {
                let content = read_rule_set(&file)?;
                let accept_unknown = settings.ingest.unknown_events == UnknownEvents::Accept;
                let tested = run_tests(&file, tests, &content, accept_unknown)?;
                let p = Publish {
                    by: "cli",
                    message,
                    source: format!("publish {}", file.display()),
                    expected: None,
                    accept_unknown_events: accept_unknown,
                    lift_removed,
                };
                // A deployment that never started gets the file as version 1.
                let published = rulesets::publish(&mut conn, &keys, content, p).await?;
                Ok(json!({"version": published.record.version, "diff": published.diff, "tests": tested}))
            }
            RulesCommand::Diff { file } => {
                let content = read_rule_set(&file)?;
                let current = rules::current(&mut conn, &keys).await?;
                Ok(json!({
                    "current": current.as_ref().map(|c| c.version),
                    "diff": diff(current.as_ref().map(|c| &c.content), &content),
                }))
            }
            RulesCommand::Simulate { file } => {
                let content = read_rule_set(&file)?;
                simulate(&mut conn, &keys, settings, &content).await
            }
            RulesCommand::History => {
                let current = rules::current_version(&mut conn, &keys).await?.unwrap_or(0);
                let mut versions = Vec::new();
                for n in (1..=current).rev() {
                    if let Some(r) = rules::version(&mut conn, &keys, n).await? {
                        versions.push(crate::routes::rulesets::version_json(&r, false));
                    }
                }
                Ok(json!({"current": current, "versions": versions}))
            }
        }
    })
}

/// The rule tests a publish must pass, against the set being published: the
/// files given, else those beside the rule-set file. A failure refuses the
/// publish (the report on stderr); what passed, as JSON.
fn run_tests(file: &Path, tests: Vec<PathBuf>, content: &ModelDef, accept_unknown: bool) -> anyhow::Result<Value> {
    let tests = if tests.is_empty() { crate::rules_test::beside(file) } else { tests };
    let report = crate::rules_test::run(&tests, Some(content), accept_unknown);
    if !report.passed() {
        eprint!("{}", report.render(crate::rules_test::Format::Text));
        anyhow::bail!("not published: {} of {} rule tests failed", report.failed(), report.cases());
    }
    let files: Vec<String> = tests.iter().map(|p| p.display().to_string()).collect();
    Ok(json!({"files": files, "cases": report.cases(), "passed": report.cases()}))
}

/// The candidate against every user of the deployment, from the snapshots in
/// Redis (each shard under the version it was taken with): it loads no
/// serving instance. Events after a shard's last snapshot are not counted.
async fn simulate(
    conn: &mut restrictd_actors::link::Conn,
    keys: &Keys,
    settings: &Settings,
    content: &ModelDef,
) -> anyhow::Result<Value> {
    use restrictd_actors::store::snapshot;
    use restrictd_domain::simulate::{simulate, Simulation};
    let accept_unknown = settings.ingest.unknown_events == UnknownEvents::Accept;
    let current = rules::current(conn, keys).await?;
    let candidate = rulesets::candidate(current.as_ref(), content, accept_unknown).map_err(|e| anyhow::anyhow!(e))?;
    let mut total = Simulation::default();
    for s in 0..keys.shard_count() {
        let version = match rules::shard_version(conn, keys, s).await? {
            0 => 1,
            v => v,
        };
        let model = match rules::version(conn, keys, version).await? {
            Some(record) => record.compile(accept_unknown).map_err(|e| anyhow::anyhow!(e))?,
            None => (*settings.model).clone(),
        };
        let limits =
            snapshot::LoadLimits { dedup_window_ms: 0, whole_hash: settings.persistence.load_whole_hash_limit };
        let state = snapshot::load(conn, keys, s, &model, limits).await?;
        total.add(simulate(&state, &model, &candidate, 10, restrictd_actors::clock::now_ms()), 10);
    }
    let mut reply = rulesets::simulation_json(&total, &settings.tripwire.domain());
    reply["against_version"] = json!(current.map(|c| c.version));
    reply["shards"] = json!(format!("0-{}", keys.shard_count() - 1));
    Ok(reply)
}
