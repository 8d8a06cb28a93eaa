//! Rule tests as data through the real binary: `restrictd rules test`, and
//! `restrictd rules publish` refusing a set whose tests fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::helpers::{default_config, TestRedis};

fn restrictd(args: &[&str], dir: &Path, redis: Option<&TestRedis>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_restrictd"));
    cmd.args(args).current_dir(dir);
    if let Some(r) = redis {
        cmd.arg("--config").arg(default_config()).env("RESTRICTD_REDIS__URL", r.url());
    }
    cmd.output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("restrictd-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A copy of `config.toml`'s rules with a test file beside it: `cases` cases
/// asking that two flags restrict messaging (`restricts` true) or not.
fn rule_set_with_tests(dir: &Path, threshold: u32, cases: usize, restricts: bool) -> PathBuf {
    let rules = std::fs::read_to_string(default_config()).unwrap();
    let rules = rules.replace("scam_flags >= 2", &format!("scam_flags >= {threshold}"));
    let file = dir.join("strict.toml");
    std::fs::write(&file, rules).unwrap();
    let expect = if restricts { "restricted" } else { "allowed" };
    let mut tests = String::from("rule_set = \"strict.toml\"\n");
    for i in 0..cases {
        tests.push_str(&format!(
            "[[case]]\nname = \"case {i}\"\n[[case.step]]\n\
             event = {{ name = \"scam_message_flagged\", event_properties = {{ user_id = \"u{i}\" }} }}\n\
             repeat = 2\n[case.step.expect.u{i}]\n{expect} = [\"can_message\"]\n"
        ));
    }
    std::fs::write(dir.join("strict.test.toml"), tests).unwrap();
    file
}

#[test]
fn the_shipped_rule_tests_pass_and_report_as_text_and_junit() {
    let out =
        restrictd(&["rules", "test", "examples/reference.test.toml", "examples/velocity.test.toml"], &repo(), None);
    assert!(out.status.success(), "{}", text(&out));
    let report = text(&out);
    assert!(report.contains("  ok    a second scam flag stops messaging"), "{report}");
    assert!(report.contains(" 0 failed"), "{report}");
    let out = restrictd(&["rules", "test", "--format", "junit", "examples/velocity.test.toml"], &repo(), None);
    let xml = String::from_utf8_lossy(&out.stdout);
    assert!(xml.starts_with("<?xml") && xml.contains("<testsuite name=\"examples/velocity.test.toml\""), "{xml}");
    assert!(xml.contains("tests=\"5\" failures=\"0\""), "{xml}");
}

#[test]
fn a_failing_case_exits_1_naming_expected_and_actual() {
    let dir = scratch("ruletest-fail");
    rule_set_with_tests(&dir, 3, 1, true);
    let out = restrictd(&["rules", "test", "strict.test.toml"], &dir, None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = text(&out);
    assert!(report.contains("  FAIL  case 0"), "{report}");
    assert!(
        report.contains("step 1, user u0: restricted: expected [\"can_message\"] restricted, actual restricted {}"),
        "{report}"
    );
    let out = restrictd(&["rules", "test", "--format", "junit", "strict.test.toml"], &dir, None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("<failure message=\"1 expectation(s) failed\">"));
    // A file that cannot run is a failure too, never a pass.
    std::fs::write(dir.join("broken.test.toml"), "rule_set = \"missing.toml\"\n[[case]]\nname = \"x\"\n").unwrap();
    let out = restrictd(&["rules", "test", "broken.test.toml"], &dir, None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("cannot run: rule_set: cannot read"), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_thousand_cases_run_in_one_process() {
    let dir = scratch("ruletest-many");
    rule_set_with_tests(&dir, 2, 1_000, true);
    let out = restrictd(&["rules", "test", "strict.test.toml"], &dir, None);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("1000 cases: 1000 passed, 0 failed (2000 events"), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn publish_runs_the_tests_beside_the_rule_set_and_refuses_a_set_that_fails_them() {
    let redis = TestRedis::start();
    let dir = scratch("ruletest-publish");
    let file = rule_set_with_tests(&dir, 3, 2, true);
    let path = file.to_str().unwrap();
    let out = restrictd(&["rules", "publish", path], &dir, Some(&redis));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not published: 2 of 2 rule tests failed"), "{}", text(&out));
    let history = restrictd(&["rules", "history"], &dir, Some(&redis));
    let history: Value = serde_json::from_slice(&history.stdout).unwrap();
    assert_eq!(history["current"], 0, "nothing was published: {history}");

    // Tests named with --test take the place of those beside the file.
    std::fs::write(dir.join("lenient.toml"), text_tests(false)).unwrap();
    let out = restrictd(&["rules", "publish", path, "--test", "lenient.toml"], &dir, Some(&redis));
    assert!(out.status.success(), "{}", text(&out));
    let published: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((published["version"].as_u64(), published["tests"]["passed"].as_u64()), (Some(1), Some(1)));
    let _ = std::fs::remove_dir_all(&dir);
}

/// One case: two flags leave messaging allowed (`restricts` false) or not.
fn text_tests(restricts: bool) -> String {
    let expect = if restricts { "restricted" } else { "allowed" };
    format!(
        "[[case]]\nname = \"two flags\"\n[[case.step]]\n\
         event = {{ name = \"scam_message_flagged\", event_properties = {{ user_id = \"u\" }} }}\n\
         repeat = 2\n[case.step.expect.u]\n{expect} = [\"can_message\"]\n"
    )
}
