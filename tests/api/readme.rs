//! The README's rule-lifecycle commands, run as written against the real
//! binary (the address swapped for the test's), and its rule test.

use std::process::Command;

use serde_json::Value;

use crate::helpers::{default_config, TestApp, TestRedis};

/// The first `sh` block after `heading` in the README.
fn block_after(heading: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let after = &readme[readme.find(heading).unwrap_or_else(|| panic!("README has {heading}"))..];
    let start = after.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let end = after[start..].find("```").expect("the block ends");
    after[start..start + end].to_string()
}

#[test]
fn the_rule_lifecycle_commands_of_the_readme_publish_shadow_promote_and_roll_back() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[("RESTRICTD_AUTH__ADMIN_TOKENS__OPS", "change-me-to-a-long-secret")]);
    let dir = std::env::temp_dir().join(format!("restrictd-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = std::fs::read_to_string(default_config()).unwrap();
    std::fs::write(dir.join("config.toml"), &config).unwrap();
    let candidate = config.replace("when = \"scam_flags >= 2\"", "when = \"scam_flags >= 1\"\nmode = \"shadow\"");
    assert_ne!(candidate, config);
    std::fs::write(dir.join("candidate.toml"), candidate).unwrap();

    let script = block_after("### The rule lifecycle").replace("localhost:8080", &app.addr);
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_restrictd")).parent().unwrap();
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(&dir)
        .env("PATH", format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default()))
        .env("RESTRICTD_REDIS__URL", redis.url())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{script}\nstdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("would_restrict"), "the simulations answered: {stdout}");

    let versions: Value = app.get("/v1/rules/versions").json();
    assert_eq!(versions["current"], 4, "shadow (2), promote (3), roll back to 1 (4): {versions}");
    let list = versions["versions"].as_array().unwrap();
    let message = |v: u64| list.iter().find(|x| x["version"] == v).map(|x| x["message"].clone());
    assert_eq!((message(2), message(3)), (Some("shadow".into()), Some("promote".into())), "{versions}");
    let two = app.get("/v1/rules/versions/2").json();
    assert_eq!(two["content"]["rules"]["scam_message_rule"]["mode"], "shadow");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_rule_test_of_the_readme_passes_against_the_velocity_rules() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let after = &readme[readme.find("### Rule tests").expect("README has ### Rule tests")..];
    let start = after.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let case = &after[start..start + after[start..].find("```").expect("the block ends")];
    let dir = std::env::temp_dir().join(format!("restrictd-readme-ruletest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/velocity.toml"), dir.join("velocity.toml")).unwrap();
    std::fs::write(dir.join("readme.test.toml"), case).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_restrictd"))
        .args(["rules", "test", "readme.test.toml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{case}\n{report}");
    assert!(report.contains("1 cases: 1 passed"), "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}
