//! Every kept crash and every seed, through its target: none may panic. And
//! a short run of each target, so that a target that no longer builds its
//! inputs (or panics at once) fails here before it fails a long run.

use std::time::Duration;

use restrictd_fuzz::{crash_dir, run, TARGETS};

#[test]
fn kept_crashes_and_seeds_run_without_panicking() {
    for t in TARGETS {
        for seed in (t.seeds)() {
            (t.run)(&seed);
        }
        let Ok(dir) = std::fs::read_dir(crash_dir(t.name)) else { continue };
        for file in dir {
            let path = file.unwrap().path();
            let input = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| (t.run)(&input));
            assert!(outcome.is_ok(), "{}: {} panics again", t.name, path.display());
        }
    }
}

#[test]
fn each_target_runs_a_few_thousand_inputs_without_panicking() {
    for t in TARGETS {
        let o = run(t, Duration::from_secs(60), 20_000);
        assert!(o.crash.is_none(), "{}: {:?}", t.name, o.crash);
        assert_eq!(o.inputs, 20_000, "{}", t.name);
    }
}
