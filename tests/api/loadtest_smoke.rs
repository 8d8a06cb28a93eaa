//! The load generator, briefly, against a real service: a few hundred mixed
//! requests, then its correctness check against the reference model.

use std::time::Duration;

use crate::helpers::{TestApp, TestRedis};

#[test]
fn the_load_generator_drives_a_mixed_load_and_the_state_matches_its_model() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(
        &redis,
        &[("RESTRICTD_TRIPWIRE__THRESHOLD", "1.0"), ("RESTRICTD_TRIPWIRE__MIN_RESTRICTED", "1000000")],
    );
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let summary = runtime.block_on(loadtest::smoke(&app.addr, 400.0, Duration::from_secs(1))).unwrap();
    assert!(summary.requests >= 300, "{summary:?}");
    assert_eq!(summary.errors, 0, "{summary:?}");
}

/// The runaway scenario: a rule restricting everyone stays inside the
/// tripwire's bound, on one instance and on three, in batches and in
/// single events (the scenario itself fails above the bound).
#[test]
fn a_runaway_rule_stays_inside_the_bound_on_one_and_three_instances() {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_restrictd"));
    let config = crate::helpers::default_config();
    for (instances, single) in [(1, false), (3, false), (3, true)] {
        let r = loadtest::runaway::runaway(bin, &config, 4_000, instances, single)
            .unwrap_or_else(|e| panic!("{instances} instance(s), single {single}: {e:#}"));
        assert!(r.tripped && r.restricted <= r.bound, "{r:?}");
        assert!(r.restricted >= r.allowed_by_threshold, "it trips at the threshold, not before: {r:?}");
    }
}

/// Many producers, briefly: the `overload` scenario (capacity, then 1x, 2x,
/// 4x offered from 300 connections, checks alongside) and the `producers`
/// scenario (up to 1,000 connections, honouring Retry-After or not). Nothing
/// acknowledged is lost (each scenario's correctness check), `/ready` stays
/// 200, and every reply is an acceptance or a 429.
#[test]
fn overload_and_a_thousand_producers_lose_nothing_acknowledged() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(
        &redis,
        &[("RESTRICTD_TRIPWIRE__THRESHOLD", "1.0"), ("RESTRICTD_TRIPWIRE__MIN_RESTRICTED", "1000000")],
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let step = Duration::from_millis(700);
    let overload = runtime
        .block_on(loadtest::overload::overload(
            (&app.addr, &app.addr),
            100_000,
            step,
            300,
            &loadtest::overload::OFFERED,
        ))
        .unwrap();
    let producers = runtime.block_on(loadtest::overload::producers(&app.addr, 100_000, step)).unwrap();
    assert!(overload.capacity > 0.0 && overload.unloaded_checks.is_some(), "{overload:?}");
    assert_eq!((overload.rows.len(), producers.rows.len()), (3, 4));
    for row in overload.rows.iter().chain(&producers.rows) {
        assert_eq!(row.not_ready, 0, "{row:?}");
        assert!(row.accepted_per_second > 0.0, "{row:?}");
        let other: Vec<_> = row.events.statuses.keys().filter(|s| !["200", "429"].contains(&s.as_str())).collect();
        assert!(other.is_empty(), "only acceptances and 429s: {row:?}");
    }
    assert!(overload.rows.iter().all(|r| r.checks.as_ref().is_some_and(|c| c.errors == 0)), "{overload:?}");
    assert!(overload.verified_users > 0 && producers.verified_users > 0);
    for trivial in [&overload.trivial, &producers.trivial] {
        assert!(trivial.per_second_100 > 0.0 && trivial.per_second_1000 > 0.0, "{trivial:?}");
    }
}
