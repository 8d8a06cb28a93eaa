//! The console in a real headless Chromium, driven through the DevTools
//! protocol (`tests/console/browse.py`): each page renders with data from the
//! running service, an override made through the form reaches the history,
//! reads closed ask for the token, and a user id that is an HTML payload is
//! shown as text under the pages' Content-Security-Policy.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::dashboard::{artifacts, chromium};
use crate::helpers::{event, TestApp, TestRedis};
use crate::operators::{flag_twice, FAST_FLUSH};

const TOKEN: &str = "console-admin-token-0123";
const READY: &str = "document.body.dataset.ready === 'true'";

/// Runs `steps` in a fresh headless Chromium; the results, one per step.
/// Fails on a step that fails and on any error the pages logged.
fn browse(name: &str, steps: Value) -> Vec<Value> {
    browse_allowing(name, steps, None)
}

/// `browse`, where the pages may log errors that contain `allowed`.
fn browse_allowing(name: &str, steps: Value, allowed: Option<&str>) -> Vec<Value> {
    let plan = json!({
        "chromium": chromium(),
        "profile": artifacts().join(format!("cdp-profile-{name}")),
        "steps": steps,
    });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console/browse.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs the browser driver (scripts/test installs its `websockets` module)");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), plan.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "browser run {name} failed: {}", String::from_utf8_lossy(&out.stderr));
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors: Vec<String> = serde_json::from_value(reply["errors"].clone()).unwrap();
    let unexpected: Vec<&String> = errors.iter().filter(|e| allowed.is_none_or(|a| !e.contains(a))).collect();
    assert!(unexpected.is_empty(), "the pages logged errors in {name}: {unexpected:?}");
    reply["results"].as_array().unwrap().clone()
}

fn goto(app: &TestApp, path: &str, width: u32) -> Value {
    json!({"goto": format!("http://{}{path}", app.addr), "width": width, "height": 900})
}

fn text(selector: &str) -> Value {
    json!({"eval": format!("(document.querySelector({selector:?}) || {{}}).textContent || ''")})
}

/// Where the pages' screenshots go: `RESTRICTD_CONSOLE_SHOTS` (the committed
/// ones in `docs/console/`), else the test's artifacts.
fn shot(name: &str, width: u32) -> Value {
    let dir = std::env::var_os("RESTRICTD_CONSOLE_SHOTS").map(PathBuf::from).unwrap_or_else(artifacts);
    json!({"screenshot": dir.join(format!("{name}-{width}.png"))})
}

#[test]
fn each_page_renders_with_data_from_the_running_service() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[FAST_FLUSH]);
    for i in 0..5 {
        app.post_applied(&event("purchase_made", &format!("shopper{i}"), json!({"amount": 3})));
    }
    flag_twice(&app, "mallory");
    let fired = app.get("/v1/users/mallory").json()["restrictions"][0]["event_id"].as_str().unwrap().to_string();
    crate::helpers::wait_for("the change in the history", std::time::Duration::from_secs(5), || {
        (app.get("/v1/users/mallory/history").json()["changes"].as_array()?.len() == 1).then_some(())
    });
    for width in [1280, 390] {
        let r = browse(
            &format!("pages-{width}"),
            json!([
                goto(&app, "/users/mallory?nofeed", width), {"wait": READY},
                text("#restrictions"), text("#feature-can_message"), text("#history"), shot("user", width),
                goto(&app, "/rules/scam_message_rule", width), {"wait": READY},
                {"eval": "[...document.querySelectorAll('#rule-chart polyline')].map(p => p.getAttribute('data-series') + ':' + p.getAttribute('points').split(' ').length)"},
                text("#rule-users"), text("#tripwire-share"), shot("rule", width),
                goto(&app, "/rules/versions/1", width), {"wait": READY}, text("#diff"), shot("version", width),
                goto(&app, "/?nofeed", width), {"wait": READY},
                {"eval": "[...document.querySelectorAll('#charts polyline')].map(p => p.getAttribute('data-series'))"},
                text("#charts"), text("#rule-scam_message_rule"), shot("overview", width),
            ]),
        );
        let s = |i: usize| r[i].as_str().unwrap_or_default().to_string();
        assert!(
            s(2).contains("scam_message_rule") && s(2).contains(&fired) && s(2).contains("v1"),
            "rule, event, version: {}",
            s(2)
        );
        assert!(s(3).contains("restricted") && s(3).contains("scam_message_rule"), "{}", s(3));
        assert!(s(4).contains("rule_fired"), "the timeline: {}", s(4));
        let lines: Vec<String> = serde_json::from_value(r[8].clone()).unwrap();
        assert_eq!(lines, ["restricted:1440", "shadow would restrict:1440", "suppressed by the tripwire:1440"]);
        assert!(s(9).contains("mallory") && s(9).contains("1–1 of 1"), "the rule's users: {}", s(9));
        assert!(s(10).contains("1 restricted in 300 s"), "{}", s(10));
        assert!(s(14).contains("scam_message_rule") && s(14).contains("rules added"), "{}", s(14));
        let series: Vec<String> = serde_json::from_value(r[18].clone()).unwrap();
        assert!(
            series.contains(&"purchase_made".to_string()) && series.contains(&"scam_message_rule".to_string()),
            "{series:?}"
        );
        assert!(
            s(19).contains("purchase_made: 5") && s(19).contains("scam_message_rule: 1"),
            "chart totals: {}",
            s(19)
        );
        assert!(s(20).contains("armed"), "{}", s(20));
    }
}

#[test]
fn an_override_made_through_the_form_is_in_the_users_history() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[FAST_FLUSH, ("RESTRICTD_AUTH__ADMIN_TOKENS__OPS", TOKEN)]);
    flag_twice(&app, "appellant");
    let fill = format!(
        "document.querySelector('#override-feature').value = 'can_message';
         document.querySelector('#override-state').value = 'allowed';
         document.querySelector('#override-reason').value = 'appeal 4411 upheld';
         document.querySelector('#override-expires').value = '7d';
         document.querySelector('#override-form .admin-token').value = {TOKEN:?};
         document.querySelector('#override-form button[type=submit]').click(); true"
    );
    let r = browse(
        "override",
        json!([
            goto(&app, "/users/appellant?nofeed", 1280), {"wait": READY},
            {"eval": fill},
            {"wait": "[...document.querySelectorAll('#history tr.change')].some(r => r.textContent.includes('override_set'))"},
            text("#history"), text("#feature-can_message"), text("#overrides"),
        ]),
    );
    let history = r[4].as_str().unwrap();
    assert!(
        history.contains("override_set") && history.contains("ops") && history.contains("appeal 4411 upheld"),
        "{history}"
    );
    assert!(r[5].as_str().unwrap().contains("allowed"), "the feature is allowed now: {}", r[5]);
    assert!(r[6].as_str().unwrap().contains("appeal 4411 upheld"), "{}", r[6]);
    assert_eq!(app.get("/canmessage?user_id=appellant").json()["can_message"], true);
}

#[test]
fn with_reads_closed_the_pages_ask_for_the_token_and_use_it() {
    let redis = TestRedis::start();
    let reader = "console-reader-token-01";
    let app = TestApp::spawn_with(
        &redis,
        &[FAST_FLUSH, ("RESTRICTD_AUTH__REQUIRE_FOR_READS", "true"), ("RESTRICTD_AUTH__READ_TOKEN", reader)],
    );
    let e = event("scam_message_flagged", "closed", json!({}));
    let bearer = format!("Bearer {reader}");
    let body = json!([e.clone(), e]).to_string();
    let headers = [("Authorization", bearer.as_str()), ("Content-Type", "application/json")];
    assert_eq!(app.request("POST", "/v1/events?wait=applied", &headers, body.as_bytes()).status, 200);
    let enter = format!(
        "document.querySelector('#auth-token').value = {reader:?};
         document.querySelector('#auth-form button').click(); true"
    );
    let r = browse_allowing(
        "closed",
        json!([
            goto(&app, "/users/closed?nofeed", 1280),
            {"wait": "!document.getElementById('auth').hidden"},
            text("#auth-why"),
            {"eval": enter}, {"wait": READY},
            text("#restrictions"),
            {"eval": "location.href + document.documentElement.outerHTML"},
        ]),
        Some("status of 401"),
    );
    assert!(r[2].as_str().unwrap().contains("requires a read token"), "{}", r[2]);
    assert!(r[5].as_str().unwrap().contains("scam_message_rule"), "{}", r[5]);
    assert!(!r[6].as_str().unwrap().contains(reader), "the token is not left in the page or its address");
}

#[test]
fn a_user_id_that_is_html_is_shown_as_text() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[FAST_FLUSH]);
    let payload = "<img src=x onerror=\"window.pwned=1\"><script>window.pwned=2</script>";
    flag_twice(&app, payload);
    let page = app.get("/users/x");
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    let path = format!("/users/{}?nofeed", urlencoding(payload));
    let r = browse(
        "payload",
        json!([
            goto(&app, &path, 1280), {"wait": READY},
            text("#user-id"),
            {"eval": "String(window.pwned) + ':' + document.querySelectorAll('#page img, #page script').length"},
            text("#restrictions"),
            goto(&app, "/rules/scam_message_rule", 1280), {"wait": READY}, text("#rule-users"),
        ]),
    );
    assert_eq!(r[2], json!(payload), "the id is shown as it is");
    assert_eq!(r[3], json!("undefined:0"), "nothing of it ran or became an element");
    assert!(r[4].as_str().unwrap().contains("scam_message_rule"), "{}", r[4]);
    assert!(r[7].as_str().unwrap().contains(payload), "listed as text on the rule's page: {}", r[7]);
}

/// Percent-encodes a path segment.
fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// On every page, at a phone's width and a desktop's: every field has a
/// label, every button and link a name, and nothing is wider than the screen.
#[test]
fn every_page_labels_its_controls_and_fits_a_phone() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[FAST_FLUSH, ("RESTRICTD_AUTH__ADMIN_TOKENS__OPS", TOKEN)]);
    flag_twice(&app, "someone-with-a-rather-long-user-id-0123456789");
    let audit = "JSON.stringify({
        unlabelled: [...document.querySelectorAll('input, select, textarea')].filter(e => !e.labels || !e.labels.length).map(e => e.outerHTML),
        unnamed: [...document.querySelectorAll('button, a')].filter(e => !e.textContent.trim() && !e.getAttribute('aria-label')).map(e => e.outerHTML),
        overflow: document.documentElement.scrollWidth - window.innerWidth })";
    let pages = [
        "/?nofeed",
        "/users/someone-with-a-rather-long-user-id-0123456789?nofeed",
        "/rules/scam_message_rule",
        "/rules/versions/1",
    ];
    for width in [390, 1280] {
        let mut steps = Vec::new();
        for page in pages {
            steps.extend([goto(&app, page, width), json!({"wait": READY}), json!({"eval": audit})]);
        }
        let r = browse(&format!("audit-{width}"), Value::Array(steps));
        for (i, page) in pages.iter().enumerate() {
            let found: Value = serde_json::from_str(r[i * 3 + 2].as_str().unwrap()).unwrap();
            assert_eq!(found["unlabelled"], json!([]), "{page} at {width} px");
            assert_eq!(found["unnamed"], json!([]), "{page} at {width} px");
            assert!(found["overflow"].as_i64().unwrap() <= 0, "{page} is wider than {width} px: {found}");
        }
    }
}

/// The rule page's controls: a candidate definition simulated, the rule
/// tripped and reset by an admin through the buttons.
#[test]
fn the_rule_page_simulates_trips_and_resets() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[FAST_FLUSH, ("RESTRICTD_AUTH__ADMIN_TOKENS__OPS", TOKEN)]);
    app.post_applied(&event("scam_message_flagged", "once", json!({})));
    let simulate = "const t = document.querySelector('#simulate-definition');
        const d = JSON.parse(t.value); d.when = 'scam_flags >= 1'; t.value = JSON.stringify(d);
        document.querySelector('#simulate-form button').click(); true";
    let trip = format!(
        "document.querySelector('#tripwire-form .admin-token').value = {TOKEN:?};
         document.querySelector('#tripwire-trip').click(); true"
    );
    let r = browse(
        "controls",
        json!([
            goto(&app, "/rules/scam_message_rule?nofeed", 1280), {"wait": READY},
            {"wait": "document.querySelector('#simulate-definition').value.includes('scam_flags')"},
            {"eval": simulate},
            {"wait": "document.querySelector('#simulate-result').textContent.includes('would_restrict')"},
            text("#simulate-result"),
            {"eval": trip},
            {"wait": "document.body.dataset.ready === 'true' && document.querySelector('#tripwire-share') && document.body.innerText.includes('tripped')"},
            {"eval": "document.querySelector('#tripwire-reset').click(); true"},
            {"wait": "document.body.innerText.includes('armed') && !document.body.innerText.includes('tripped')"},
        ]),
    );
    let simulated = r[5].as_str().unwrap();
    assert!(simulated.contains("\"would_restrict\": 1") && simulated.contains("once"), "{simulated}");
    let rules = app.get("/v1/rules").json();
    let rule = rules["rules"].as_array().unwrap().iter().find(|r| r["name"] == "scam_message_rule").unwrap().clone();
    assert_eq!(rule["tripwire"]["state"], "armed", "reset through the page: {rule}");
    assert_eq!(rule["tripwire"]["trips"], 1, "tripped once through the page: {rule}");
}

/// The charts' data: counts per minute, one rule's decisions, and what is refused.
#[test]
fn the_timeseries_counts_events_and_decisions_per_minute() {
    let redis = TestRedis::start();
    let app = TestApp::spawn_with(&redis, &[FAST_FLUSH]);
    for i in 0..3 {
        app.post_applied(&event("purchase_made", &format!("p{i}"), json!({"amount": 1})));
    }
    flag_twice(&app, "flagged");
    let total = |series: &Value, name: &str, kind: &str| {
        series["series"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name && s["kind"] == kind)
            .map(|s| s["total"].clone())
    };
    crate::helpers::wait_for("the counts in Redis", std::time::Duration::from_secs(5), || {
        let all = app.get("/v1/timeseries?hours=1").json();
        (total(&all, "purchase_made", "event") == Some(json!(3))
            && total(&all, "scam_message_flagged", "event") == Some(json!(2)))
        .then_some(())
    });
    let all = app.get("/v1/timeseries").json();
    assert_eq!(total(&all, "scam_message_rule", "fired"), Some(json!(1)), "{all}");
    assert_eq!(all["to_ms"].as_u64().unwrap() - all["from_ms"].as_u64().unwrap(), 24 * 3_600_000);
    let one = app.get("/v1/timeseries?rule=scam_message_rule&hours=2").json();
    let kinds: Vec<&str> = one["series"].as_array().unwrap().iter().map(|s| s["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["fired", "would_restrict", "suppressed"]);
    let point = &one["series"][0]["points"][0];
    assert_eq!(point[1], 1);
    assert_eq!(point[0].as_u64().unwrap() % 60_000, 0, "points are minutes");
    assert_eq!(app.get("/v1/timeseries?hours=25").status, 400);
    assert_eq!(app.get("/v1/timeseries?rule=nope").status, 404);
    assert_eq!(app.get("/v1/timeseries?bogus=1").status, 400);
}

/// A version's page takes any whole number from 1, even one past every
/// version that can exist (its script then says it was not published, as
/// the API's 404 does); anything else is 400.
#[test]
fn a_version_page_takes_any_whole_number_from_one() {
    let redis = TestRedis::start();
    let app = TestApp::spawn(&redis);
    let huge = "18642623969272844288"; // past u64::MAX
    for (version, status) in [("1", 200), (huge, 200), ("0", 400), ("1x", 400), ("-1", 400)] {
        assert_eq!(app.get(&format!("/rules/versions/{version}")).status, status, "{version}");
    }
    assert_eq!(app.get(&format!("/v1/rules/versions/{huge}")).status, 404);
}
