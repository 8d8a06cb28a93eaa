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
