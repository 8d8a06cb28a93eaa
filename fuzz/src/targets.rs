//! The fuzz targets: each takes raw bytes to one of restrictd's readers of
//! outside input, and must return (an error is fine) without panicking.

use std::sync::{Arc, LazyLock};

use ahash::AHashMap;
use restrictd::config::Settings;
use restrictd_actors::wire::{ChangePayload, FromFields, Payload};
use restrictd_domain::admin::AdminCommand;
use restrictd_domain::rules::condition::Names;
use restrictd_domain::ruleset::VersionRecord;
use restrictd_domain::schema::EventTimeLimits;
use restrictd_domain::snapshot::decode_user;
use restrictd_domain::{EntryId, Model, ModelDef};
use serde_json::value::RawValue;

/// A target: its name, what it runs, its seed inputs and the tokens its
/// inputs are built of.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
    pub seeds: fn() -> Vec<Vec<u8>>,
    pub tokens: &'static [&'static str],
}

const CONFIG: &str = include_str!("../../config.toml");
const VELOCITY: &str = include_str!("../../examples/velocity.toml");

fn model(text: &str) -> Arc<Model> {
    let def: ModelDef = toml::from_str(text).expect("the example's rules parse");
    Arc::new(Model::compile(&def, false).expect("the example's rules compile"))
}

/// The default rules, and the velocity example's windowed ones.
static MODELS: LazyLock<[Arc<Model>; 2]> = LazyLock::new(|| [model(CONFIG), model(VELOCITY)]);

const JSON: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    "\\u0000",
    "\\ud800",
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1e309",
    "0.1",
    "18446744073709551616",
    "-9223372036854775809",
    "123456789012345678901234567890.5",
    "\"name\"",
    "\"event_properties\"",
    "\"user_id\"",
    "\"occurred_at\"",
    "\"event_id\"",
    "\"u1\"",
    "\"\"",
    "\"scam_message_flagged\"",
    "\"purchase_made\"",
    "\"chargeback_occurred\"",
    "\"credit_card_added\"",
    "\"amount\"",
    "\"zip_code\"",
    "\"2026-12-06T05:00:00+01:00\"",
    "\"2026-13-45T99:99:99Z\"",
    "1764997200000",
    "\"12.34\"",
    "\"é\"",
    " ",
    "\n",
];

const CONDITION: &[&str] = &[
    "scam_flags",
    "spend",
    "chargebacks",
    "cards",
    "zip_codes",
    "scam_flags_24h",
    "spend_30d",
    "chargebacks_30d",
    "event.amount",
    "event.zip_code",
    "event.",
    "&&",
    "||",
    "!",
    "(",
    ")",
    "+",
    "-",
    "*",
    "/",
    "%",
    ">",
    ">=",
    "<",
    "<=",
    "==",
    "!=",
    "and",
    "or",
    "0",
    "1",
    "0.10",
    "1e400",
    "-0",
    "9223372036854775807",
    "340282366920938463463374607431768211456",
    "\"x\"",
    "'y'",
    "true",
    "false",
    "null",
    "in",
    "[1]",
    "size(",
    "x.y.z",
    " ",
    "\t",
    "\n",
    "?",
    ":",
];

const TOML: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "=",
    "\"",
    "'",
    "\n",
    "#",
    "{",
    "}",
    ",",
    ".",
    "[rules.r]",
    "[aggregates.a]",
    "[events.e]",
    "[features.f]",
    "[admission]",
    "[http]",
    "[shards]",
    "[tripwire]",
    "[ingest]",
    "when",
    "kind",
    "\"count\"",
    "\"sum\"",
    "\"distinct\"",
    "window",
    "\"24h\"",
    "\"0s\"",
    "\"99999999d\"",
    "on",
    "restrict",
    "max_events",
    "count",
    "threshold",
    "1.5",
    "-1",
    "0",
    "18446744073709551616",
    "true",
    "\"off\"",
    "until",
    "\"condition_clears\"",
    "max_write_delay",
    "concurrent_writes",
];

const QUERY: &[&str] = &[
    "user_id",
    "limit",
    "wait",
    "=",
    "&",
    "%",
    "%2",
    "%zz",
    "%41",
    "+",
    "applied",
    "10",
    "-1",
    "99999999999999999999",
    "é",
];

const RESP: &[&str] = &[
    "*",
    "%",
    "$",
    ":",
    "+",
    "-",
    "_",
    "\r\n",
    "2",
    "4",
    "-1",
    "event",
    "admin",
    "rules",
    "change",
    "{}",
    "{\"SetOverride\":{}}",
    "1764997200000-0",
    "18446744073709551615-18446744073709551615",
];

fn event_seeds() -> Vec<Vec<u8>> {
    [
        r#"{"name":"scam_message_flagged","event_properties":{"user_id":"u1"}}"#,
        r#"{"name":"purchase_made","event_properties":{"user_id":"u2","amount":"12.34"},"event_id":"e1"}"#,
        r#"{"name":"chargeback_occurred","event_properties":{"user_id":"u3","amount":5},"occurred_at":"2026-12-06T05:00:00Z"}"#,
        r#"{"name":"credit_card_added","event_properties":{"user_id":"u4","zip_code":"94107"},"occurred_at":1764997200000}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

fn batch_seeds() -> Vec<Vec<u8>> {
    let events: Vec<String> = event_seeds().into_iter().map(|e| String::from_utf8(e).expect("UTF-8")).collect();
    vec![format!("[{}]", events.join(",")).into_bytes(), b"[]".to_vec(), format!("[{}]", events[0]).into_bytes()]
}

/// An event as the service reads it: validated against each model, then its time checked.
fn event(bytes: &[u8]) {
    for m in MODELS.iter() {
        let mut scratch = None;
        if let Ok(e) = m.schema.validate_bytes(bytes, &mut scratch) {
            let limits = EventTimeLimits { max_age_ms: 604_800_000, max_skew_ms: 5_000 };
            let _ = e.check_time(1_764_997_200_000, limits);
        }
    }
}

/// A batch as `POST /v1/events` reads it: a JSON array, each element an event.
fn batch(bytes: &[u8]) {
    let Ok(raw) = serde_json::from_slice::<Vec<&RawValue>>(bytes) else { return };
    for r in raw {
        event(r.get().as_bytes());
    }
}

/// A stream entry as the shard and the changelog follower read it: a RESP
/// reply of fields, then the payload the field names.
fn entry(bytes: &[u8]) {
    let Ok(value) = redis::parse_redis_value(bytes) else { return };
    let _ = EntryId::parse_bytes(bytes);
    let _ = ChangePayload::from_fields(value.clone());
    match Payload::from_fields(value) {
        Payload::Event(b) => event(&b),
        Payload::Admin(b) => drop(serde_json::from_slice::<AdminCommand>(&b)),
        Payload::Rules(b) => drop(serde_json::from_slice::<VersionRecord>(&b)),
        Payload::Missing => {}
    }
}

fn snapshot_seeds() -> Vec<Vec<u8>> {
    vec![
        include_bytes!("../../actors/domain/tests/fixtures/user_v1.bin").to_vec(),
        include_bytes!("../../actors/domain/tests/fixtures/user_v2.bin").to_vec(),
        include_bytes!("../../actors/domain/tests/fixtures/user_v3.bin").to_vec(),
    ]
}

/// A user's snapshot, every version, against each model.
fn snapshot(bytes: &[u8]) {
    for m in MODELS.iter() {
        let _ = decode_user(m, bytes);
    }
}

fn config_seeds() -> Vec<Vec<u8>> {
    vec![CONFIG.as_bytes().to_vec(), VELOCITY.as_bytes().to_vec()]
}

/// A configuration file (rules included), as `restrictd --config` reads it.
fn config(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let _ = Settings::from_toml(text, "fuzz.toml", std::iter::empty());
}

fn condition_seeds() -> Vec<Vec<u8>> {
    [
        "scam_flags >= 2",
        "chargebacks / spend > 0.10",
        "cards > 2 && zip_codes / cards > 0.75",
        "spend_30d > 0 && chargebacks_30d / spend_30d > 0.10",
        "scam_flags >= 1 and cards > 1",
        "!(spend * 2 - chargebacks <= -1.5) || event.amount == 3",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// A rule's condition, compiled against each model's names (rules on every event).
fn condition(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    for m in MODELS.iter() {
        let by_name: AHashMap<&str, u16> = m.aggregates.iter().enumerate().map(|(i, a)| (&*a.name, i as u16)).collect();
        for on in [&[0u16][..], &[1, 2]] {
            let names = Names { aggregates: &m.aggregates, by_name: &by_name, schema: &m.schema, on };
            let _ = restrictd_domain::rules::condition::compile(text, &names);
        }
    }
}

fn query_seeds() -> Vec<Vec<u8>> {
    ["user_id=u1", "user_id=a%20b&limit=10", "wait=applied&user_id=x+y", "limit=-1&limit=2", "user_id"]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect()
}

/// A query string, read for the names the routes ask for, numbers parsed as `number_param` does.
fn query(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    for name in ["user_id", "limit", "wait", ""] {
        if let Some(v) = restrictd::routes::query_value(text, name) {
            let _ = v.parse::<usize>();
        }
    }
}

pub const TARGETS: &[Target] = &[
    Target { name: "event", run: event, seeds: event_seeds, tokens: JSON },
    Target { name: "batch", run: batch, seeds: batch_seeds, tokens: JSON },
    Target { name: "entry", run: entry, seeds: entry_seeds, tokens: RESP },
    Target {
        name: "snapshot",
        run: snapshot,
        seeds: snapshot_seeds,
        tokens: &["\0", "\u{1}", "\u{2}", "\u{3}", "\u{ff}"],
    },
    Target { name: "config", run: config, seeds: config_seeds, tokens: TOML },
    Target { name: "condition", run: condition, seeds: condition_seeds, tokens: CONDITION },
    Target { name: "query", run: query, seeds: query_seeds, tokens: QUERY },
];

fn entry_seeds() -> Vec<Vec<u8>> {
    let resp = |field: &str, value: &str| {
        format!("*2\r\n${}\r\n{field}\r\n${}\r\n{value}\r\n", field.len(), value.len()).into_bytes()
    };
    let events = event_seeds();
    let first = std::str::from_utf8(&events[0]).expect("UTF-8");
    vec![
        resp("event", first),
        resp("admin", r#"{"ClearOverride":{"user_id":"u1","feature":"can_message","by":"ops"}}"#),
        resp("rules", "{}"),
        resp("change", "{}"),
        format!("%1\r\n$5\r\nevent\r\n${}\r\n{first}\r\n", first.len()).into_bytes(),
    ]
}
