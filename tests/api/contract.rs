//! The OpenAPI document is the contract: Schemathesis (PyPI) runs every check
//! over its examples, coverage, fuzzing and stateful phases against the real
//! binary, with and without the admin token, and finds nothing; the service
//! never panics on what it sends. `tests/contract/schemathesis.toml` names the
//! few answers a JSON Schema cannot predict, each with why.

use std::path::Path;
use std::process::Command;

use crate::helpers::{TestApp, TestRedis};

const TOKEN: &str = "contract-token-0123456789";
/// Seconds of each run (with and without the token).
const SECONDS: &str = "30";

#[test]
fn schemathesis_finds_nothing_with_or_without_the_admin_token() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[("RESTRICTD_AUTH__ADMIN_TOKENS__OPS", TOKEN)]);
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/contract/schemathesis.toml");
    // Schemathesis writes its report files where it runs.
    let dir = std::env::temp_dir().join(format!("restrictd-contract-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let schema = format!("http://{}/openapi.json", app.addr);
    let bearer = format!("Authorization: Bearer {TOKEN}");
    for (who, header) in [("with the admin token", Some(&bearer)), ("without a token", None)] {
        let mut st = Command::new("st");
        st.current_dir(&dir).arg("--no-color").arg("--config-file").arg(&config);
        st.args(["run", &schema, "--checks", "all", "--max-time", SECONDS, "--generation-database", "none"]);
        if let Some(h) = header {
            st.args(["-H", h]);
        }
        let out = st.output().expect("st (Schemathesis) runs: scripts/test installs it (pip install schemathesis)");
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "Schemathesis {who} found failures:\n{report}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Every operation tested, every phase run (a phase without time left
        // is reported skipped, which would hide it).
        let line = |name: &str| report.lines().find_map(|l| l.trim().strip_prefix(name).map(str::trim));
        let (selected, tested) = (line("Selected: ").unwrap_or_default(), line("Tested: ").unwrap_or_default());
        assert!(selected.split('/').all(|n| n == tested), "{who}: {selected} selected, {tested} tested:\n{report}");
        for phase in ["Examples", "Coverage", "Fuzzing", "Stateful"] {
            assert!(report.contains(&format!("✅ {phase}\n")), "{who}: the {phase} phase did not pass:\n{report}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let log = app.log();
    assert!(!log.contains("panicked"), "the service panicked on Schemathesis' input:\n{log}");
}
