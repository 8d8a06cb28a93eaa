//! The command line: check-config validates and explains; bad config exits 2.

use std::process::Command;

use crate::helpers::default_config;

fn check_config(path: &std::path::Path, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_restrictd"));
    cmd.arg("check-config").arg("--config").arg(path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn check_config_prints_the_compiled_rules() {
    let (code, out, err) = check_config(&default_config(), &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("scam_message_rule: on [\"scam_message_flagged\"] when scam_flags >= 2"), "{out}");
    assert!(out.contains("GET /canpurchase?user_id="), "{out}");
}

#[test]
fn a_bad_config_is_reported_with_its_key_and_exit_code_2() {
    let dir = std::env::temp_dir().join(format!("restrictd-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let base = std::fs::read_to_string(default_config()).unwrap();

    let unknown_key = dir.join("unknown_key.toml");
    std::fs::write(&unknown_key, base.replace("[shards]\n", "[shards]\nshard_count = 3\n")).unwrap();
    let (code, _, err) = check_config(&unknown_key, &[]);
    assert_eq!(code, 2);
    assert!(err.contains("shard_count") && err.contains("line"), "{err}");

    let bad_rule = dir.join("bad_rule.toml");
    std::fs::write(&bad_rule, base.replace("when = \"scam_flags >= 2\"", "when = \"scam_flag >= 2\"")).unwrap();
    let (code, _, err) = check_config(&bad_rule, &[]);
    assert_eq!(code, 2);
    assert!(err.contains("rules.scam_message_rule.when") && err.contains("scam_flag"), "{err}");

    let (code, _, err) = check_config(&default_config(), &[("RESTRICTD_TRIPWIRE__THRESHOLD", "7")]);
    assert_eq!(code, 2);
    assert!(err.contains("tripwire.threshold"), "{err}");

    let (code, _, err) = check_config(&dir.join("missing.toml"), &[]);
    assert_eq!(code, 2);
    assert!(err.contains("missing.toml"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_error_in_the_file_gives_its_line_and_column() {
    let dir = std::env::temp_dir().join(format!("restrictd-cli-lines-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let base = std::fs::read_to_string(default_config()).unwrap();
    let cases = [
        ("when = \"scam_flags >= 2\"", "when = \"scam_flag >= 2\"", "rules.scam_message_rule.when", 8),
        ("when = \"scam_flags >= 2\"", "when = \"scam_flags => 2\"", "rules.scam_message_rule.when", 8),
        ("restrict = [\"can_message\"]", "restrict = [\"can_message\"]\nrestrict_for = \"soon\"", "restrict_for", 16),
        ("threshold = 0.05", "threshold = 7.0", "tripwire.threshold", 13),
        ("lease_ttl = \"10s\"", "lease_ttl = \"10ms\"", "instance.lease_ttl", 13),
    ];
    for (i, (from, to, key, column)) in cases.into_iter().enumerate() {
        let text = base.replacen(from, to, 1);
        let line = text.lines().position(|l| l.starts_with(to.lines().last().unwrap())).unwrap() + 1;
        let path = dir.join(format!("bad{i}.toml"));
        std::fs::write(&path, &text).unwrap();
        let (code, _, err) = check_config(&path, &[]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(key) && err.contains(&format!("line {line}, column {column}")), "{to}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn state_names_its_two_forms_and_a_missing_shard_is_a_usage_error() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_restrictd"))
            .args(args)
            .arg("--config")
            .arg(default_config())
            .env("RESTRICTD_REDIS__URL", "redis://127.0.0.1:1/0")
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let (code, err) = run(&["state"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--user") && err.contains("--shard"), "{err}");
    let (code, err) = run(&["state", "--shard", "99"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("shard 99") && err.contains("0 to 63"), "{err}");
}
