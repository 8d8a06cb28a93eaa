//! Parsing, overrides and errors of the configuration.
use super::*;

const DEFAULT: &str = include_str!("../../config.toml");

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn the_default_config_compiles_the_three_classic_rules() {
    let s = Settings::from_toml(DEFAULT, "config.toml", env(&[])).unwrap();
    let names: Vec<&str> = s.model.rules.iter().map(|r| &*r.name).collect();
    assert_eq!(names, ["chargeback_ratio_rule", "scam_message_rule", "unique_zip_code_rule"]);
    assert_eq!(s.shards.count.get(), 64);
    assert_eq!(s.redis.key_prefix, "rd");
    assert_eq!(s.shards.nice, 5);
    assert_eq!(s.admission.max_write_delay, Duration::from_millis(50));
    assert_eq!((s.admission.concurrent_writes.get(), s.admission.max_inflight_writes.get()), (32, 4096));
}

#[test]
fn the_write_delay_bound_is_a_duration_above_zero() {
    let delay = |v: &str| Settings::from_toml(DEFAULT, "f", env(&[("RESTRICTD_ADMISSION__MAX_WRITE_DELAY", v)]));
    assert_eq!(delay("500us").unwrap().admission.max_write_delay, Duration::from_micros(500));
    for bad in ["0s", "soon", "off"] {
        let err = delay(bad).unwrap_err().to_string();
        assert!(err.contains("admission.max_write_delay"), "{bad}: {err}");
    }
}

#[test]
fn environment_overrides_win() {
    let s = Settings::from_toml(
        DEFAULT,
        "config.toml",
        env(&[
            ("RESTRICTD_HTTP__ADDR", "127.0.0.1:9999"),
            ("RESTRICTD_SHARDS__COUNT", "16"),
            ("RESTRICTD_TRIPWIRE__WINDOW", "5m"),
            ("OTHER", "x"),
        ]),
    )
    .unwrap();
    assert_eq!(s.http.addr, "127.0.0.1:9999");
    assert_eq!(s.shards.count.get(), 16);
    assert_eq!(s.tripwire.window, Duration::from_secs(300));
}

#[test]
fn instance_shards_take_ranges_lists_and_all() {
    let shards = |spec: &str| {
        Settings::from_toml(
            DEFAULT,
            "f",
            env(&[("RESTRICTD_SHARDS__COUNT", "64"), ("RESTRICTD_INSTANCE__SHARDS", spec)]),
        )
        .map(|s| s.instance.shards)
    };
    assert_eq!(shards("all").unwrap(), (0..64).collect::<Vec<_>>());
    assert_eq!(shards("0-3").unwrap(), [0, 1, 2, 3]);
    assert_eq!(shards("60-63,2, 4").unwrap(), [2, 4, 60, 61, 62, 63]);
    assert_eq!(shards("[1, \"8-9\"]").unwrap(), [1, 8, 9]);
    let err = shards("0-64").unwrap_err().to_string();
    assert!(err.contains("instance.shards") && err.contains("64"), "{err}");
    assert!(shards("5-2").unwrap_err().to_string().contains("backwards"));
    assert!(shards("x").is_err());
}

#[test]
fn errors_name_the_key_and_line() {
    let err = Settings::from_toml("[http]\naddr = \"x\"\nbogus = 1\n", "f.toml", env(&[])).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("line 3") && text.contains("bogus"), "{text}");

    let err = Settings::from_toml(DEFAULT, "f", env(&[("RESTRICTD_TRIPWIRE__WINDOW", "soon")])).unwrap_err();
    assert!(err.to_string().contains("tripwire.window"), "{err}");

    let err = Settings::from_toml(DEFAULT, "f", env(&[("RESTRICTD_SHARDS__COUNT", "many")])).unwrap_err();
    assert!(err.to_string().contains("RESTRICTD_SHARDS__COUNT"), "{err}");

    let err = Settings::from_toml(DEFAULT, "f", env(&[("RESTRICTD_SHARDS__NICE", "20")])).unwrap_err();
    assert!(err.to_string().contains("shards.nice"), "{err}");
}

#[test]
fn durations_and_counts_are_typed_when_parsed_and_bad_ones_name_their_key() {
    let s = Settings::from_toml(DEFAULT, "f", env(&[])).unwrap();
    assert_eq!(s.persistence.trim_margin, Some(Duration::from_secs(60)));
    assert_eq!(s.instance.lease_ttl, Duration::from_secs(10));
    let off = Settings::from_toml(DEFAULT, "f", env(&[("RESTRICTD_PERSISTENCE__TRIM_MARGIN", "off")])).unwrap();
    assert_eq!(off.persistence.trim_margin, None);
    let text = DEFAULT.replace("batch = 512", "batch = 0");
    let err = Settings::from_toml(&text, "f.toml", env(&[])).unwrap_err().to_string();
    assert!(err.contains("reader.batch") && err.contains("line"), "{err}");
    let text = DEFAULT.replace("changelog_delay = \"100ms\"", "changelog_delay = \"soon\"");
    let err = Settings::from_toml(&text, "f.toml", env(&[])).unwrap_err().to_string();
    assert!(err.contains("persistence.changelog_delay") && err.contains("soon") && err.contains("line"), "{err}");
}

#[test]
fn gateway_routes_are_refused_with_their_key_and_line() {
    let with_route = |route: &str| DEFAULT.replace("[log]\n", &format!("{route}\n[log]\n"));
    let unknown = with_route("[[gateway.routes]]\npath = \"/api/payouts\"\nfeature = \"can_payout\"\n");
    let err = Settings::from_toml(&unknown, "config.toml", env(&[])).unwrap_err().to_string();
    let line = unknown.lines().position(|l| l == "feature = \"can_payout\"").unwrap() + 1;
    assert!(err.contains("gateway.routes[2].feature") && err.contains("can_payout"), "{err}");
    assert!(err.contains(&format!("line {line}")), "points at the route's feature (line {line}): {err}");
    let empty = with_route("[[gateway.routes]]\npath = \"\"\nfeature = \"can_message\"\n");
    let err = Settings::from_toml(&empty, "config.toml", env(&[])).unwrap_err().to_string();
    assert!(err.contains("gateway.routes[2].path") && err.contains("empty"), "{err}");
    let s = Settings::from_toml(DEFAULT, "config.toml", env(&[])).unwrap();
    assert_eq!((s.gateway.routes(), s.checks.batch_limit.get()), (2, 1000));
}
