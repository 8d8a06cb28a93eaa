//! The console's overview in a real headless Chromium (`--dump-dom`): live
//! numbers, and the read token asked for when reads are closed.

use std::time::Duration;

use serde_json::json;

use crate::operators::{flag_twice, FAST_FLUSH};

use crate::helpers::{event, wait_for, TestApp, TestRedis};

/// Loads `url` in headless Chromium (a profile of its own under `name`) and
/// returns what it printed (`--dump-dom`) or saved (`--screenshot=...`).
fn browse(name: &str, url: &str, extra: &[String]) -> String {
    let profile = artifacts().join(format!("chromium-profile-{name}"));
    let out = std::process::Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--virtual-time-budget=4000", "--window-size=1280,1100"])
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The headless browser: Debian's `chromium` (installed by scripts/test).
pub(crate) fn chromium() -> &'static str {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| std::process::Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()))
        .expect("a headless browser is needed: install Debian's `chromium` (scripts/test does this)")
}

pub(crate) fn artifacts() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The `<tr id="...">` row of a dumped page.
fn dom_row(dom: &str, id: &str) -> Option<String> {
    dom.split(&format!("id=\"{id}\"")).nth(1).map(|r| r.split("</tr>").next().unwrap_or("").to_string())
}

#[test]
fn the_dashboard_renders_live_numbers_in_a_real_browser() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[FAST_FLUSH]);
    for i in 0..7 {
        app.post_applied(&event("purchase_made", &format!("shopper{i}"), json!({"amount": 2.5})));
    }
    flag_twice(&app, "shown");
    wait_for("stats to be recorded", Duration::from_secs(5), || {
        (app.get("/v1/stats").json()["events"]["purchase_made"]["count"] == 7).then_some(())
    });
    let url = format!("http://{}/?nofeed", app.addr);
    let browser = |extra: &[String]| browse("open", &url, extra);
    let dom = browser(&["--dump-dom".to_string()]);
    let row = |id: &str| dom_row(&dom, id);
    let purchases = row("event-purchase_made").unwrap_or_else(|| panic!("no purchase row in:\n{dom}"));
    assert!(purchases.contains(">7<") && purchases.contains(">17.5<"), "{purchases}");
    let restricted = row("restricted-can_message").unwrap();
    assert!(restricted.contains(">1<"), "{restricted}");
    let rule = row("rule-scam_message_rule").unwrap();
    assert!(rule.contains("armed"), "{rule}");
    let version = row("version-1").unwrap_or_else(|| panic!("no version row in:\n{dom}"));
    assert!(version.contains(">file<") && version.contains("rules added: "), "the seeded version: {version}");
    assert!(dom.contains("id=\"version\">1<"), "the current version is shown");
    assert!(dom.contains("id=\"events-total\">9<"), "total events shown live");
    let shot = artifacts().join("dashboard.png");
    browser(&[format!("--screenshot={}", shot.display())]);
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000, "a screenshot was saved to {}", shot.display());
}

#[test]
fn the_dashboard_asks_for_the_read_token_when_reads_are_closed_and_uses_it() {
    let redis = TestRedis::start();
    let reader = "reader-token-0123456789";
    let app = TestApp::spawn_with(
        &redis,
        &[FAST_FLUSH, ("RESTRICTD_AUTH__REQUIRE_FOR_READS", "true"), ("RESTRICTD_AUTH__READ_TOKEN", reader)],
    );
    app.post_applied(&event("purchase_made", "closed", json!({"amount": 4})));
    let bearer = format!("Bearer {reader}");
    wait_for("stats to be recorded", Duration::from_secs(5), || {
        let s = app.request("GET", "/v1/stats", &[("Authorization", &bearer)], b"").json();
        (s["events"]["purchase_made"]["count"] == 1).then_some(())
    });
    let dump = ["--dump-dom".to_string()];
    let without = browse("closed", &format!("http://{}/?nofeed", app.addr), &dump);
    assert!(without.contains("requires a read token"), "says what it needs:\n{without}");
    assert!(!without.contains("TypeError") && dom_row(&without, "event-purchase_made").is_none(), "{without}");
    let wrong = browse("wrong", &format!("http://{}/?nofeed#token=not-the-token", app.addr), &dump);
    assert!(wrong.contains("was refused (403"), "says the token was refused:\n{wrong}");
    let with = browse("token", &format!("http://{}/?nofeed#token={reader}", app.addr), &dump);
    let purchases = dom_row(&with, "event-purchase_made").unwrap_or_else(|| panic!("no purchase row in:\n{with}"));
    assert!(purchases.contains(">1<") && purchases.contains(">4<"), "{purchases}");
    assert!(!with.contains(reader), "the token is not left in the page or its address");
}
