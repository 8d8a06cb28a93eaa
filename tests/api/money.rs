//! Money is exact over its whole documented range: amounts are read from the
//! JSON text (never through `f64`), summed as integers of micro-units, and
//! the maximum (10^12) is enforced to the last digit. Checked black-box
//! against an exact reference: random decimals posted, sums read back.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{event, wait_for, TestApp, TestRedis};

/// A tiny deterministic generator (xorshift), so a failure repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A decimal in [0, 10^12] with 0 to 6 decimal places, of any digit
    /// count (most of them beyond what an `f64` holds), as text and in
    /// micro-units.
    fn amount(&mut self) -> (String, u128) {
        let units = match self.next() % 4 {
            0 => self.next() % 1_000,
            1 => 999_999_999_999 - self.next() % 1_000,
            _ => self.next() % 1_000_000_000_000,
        };
        let places = (self.next() % 7) as u32;
        let frac = if places == 0 { 0 } else { self.next() % 10u64.pow(places) };
        let text = if places == 0 { units.to_string() } else { format!("{units}.{frac:0w$}", w = places as usize) };
        (text, u128::from(units) * 1_000_000 + u128::from(frac) * 10u128.pow(6 - places))
    }
}

/// "0.123" → 123000 micro-units.
fn micros_of(text: &str) -> Option<u128> {
    let frac = text.strip_prefix("0.")?;
    format!("{frac:0<6}").parse().ok()
}

/// Micro-units as the service prints a sum: no trailing zeros, no point for whole units.
fn decimal(micros: u128) -> String {
    let (units, frac) = (micros / 1_000_000, micros % 1_000_000);
    if frac == 0 {
        return units.to_string();
    }
    format!("{units}.{}", format!("{frac:06}").trim_end_matches('0'))
}

fn purchase(app: &TestApp, user: &str, amount: &str) -> u16 {
    let body = format!(r#"{{"name":"purchase_made","event_properties":{{"user_id":"{user}","amount":{amount}}}}}"#);
    app.request("POST", "/event?wait=applied", &[("Content-Type", "application/json")], body.as_bytes()).status
}

#[test]
fn random_decimals_are_summed_exactly_per_user_and_in_the_stats() {
    let redis = TestRedis::start();
    let app = TestApp::spawn(&redis);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for u in 0..60 {
        let user = format!("m{u}");
        let mut sum: u128 = 0;
        // Three amounts per user; the third with an escape in the event's
        // name, which the fast reader leaves to the full one.
        for k in 0..3 {
            let (text, micros) = rng.amount();
            let status = if k == 2 {
                let body = format!(
                    r#"{{"name":"purchase\u005fmade","event_properties":{{"user_id":"{user}","amount":{text}}}}}"#
                );
                app.request("POST", "/event?wait=applied", &[("Content-Type", "application/json")], body.as_bytes())
                    .status
            } else {
                purchase(&app, &user, &text)
            };
            assert_eq!(status, 200, "amount {text}");
            sum += micros;
        }
        let spend = app.get(&format!("/v1/users/{user}")).json()["aggregates"]["spend"].clone();
        assert_eq!(spend, json!(decimal(sum)), "user {user}");
    }
    // The per-event stats, over amounts whose total a stats field holds
    // (micro-units in a signed 64-bit Redis integer per shard).
    let mut total: u128 = 0;
    for u in 0..100 {
        let (text, micros) = rng.amount();
        let text = format!("0.{}", text.replace('.', "").chars().rev().take(6).collect::<String>());
        let micros = micros_of(&text).unwrap_or(micros);
        let body =
            format!(r#"{{"name":"chargeback_occurred","event_properties":{{"user_id":"s{u}","amount":{text}}}}}"#);
        let r = app.request("POST", "/event", &[("Content-Type", "application/json")], body.as_bytes());
        assert_eq!(r.status, 200, "{text}: {}", r.body);
        total += micros;
    }
    // Stats are written with the snapshots: wait until every event is in.
    let stats = wait_for("the stats to count every chargeback", Duration::from_secs(20), || {
        let stats = app.get("/v1/stats/chargeback_occurred").json();
        (stats["count"] == json!(100)).then_some(stats)
    });
    assert_eq!(stats["amount"], json!(decimal(total)), "{stats}");
}

#[test]
fn amounts_at_the_edge_of_the_range_are_exact_and_the_maximum_is_enforced_to_the_last_digit() {
    let redis = TestRedis::start();
    let app = TestApp::spawn(&redis);
    for (user, amount, spend) in [
        ("e1", "999999999999.999999", "999999999999.999999"),
        ("e2", "123456789012.345678", "123456789012.345678"),
        ("e3", "100000000000.000001", "100000000000.000001"),
        ("e4", "1000000000000", "1000000000000"),
        ("e5", "1e12", "1000000000000"),
        ("e6", "0.000001", "0.000001"),
    ] {
        assert_eq!(purchase(&app, user, amount), 200, "{amount}");
        assert_eq!(app.get(&format!("/v1/users/{user}")).json()["aggregates"]["spend"], json!(spend), "{amount}");
    }
    for amount in ["1000000000000.000001", "1000000000001", "1e13", "0.0000001", "-0.000001"] {
        let body = event("purchase_made", "e7", json!({}));
        let text = body.to_string().replace(r#""user_id":"e7""#, &format!(r#""user_id":"e7","amount":{amount}"#));
        let r = app.request("POST", "/event", &[("Content-Type", "application/json")], text.as_bytes());
        assert_eq!(r.status, 422, "{amount} is refused: {}", r.body);
    }
}

#[test]
fn a_ratio_a_hair_above_the_threshold_fires_with_spend_beyond_what_a_double_holds() {
    let redis = TestRedis::start();
    let app = TestApp::spawn(&redis);
    // chargebacks / spend = 10^11 / (10^12 - 10^-6) > 0.10: through f64 the
    // spend reads as 10^12 and the ratio as exactly 0.10.
    assert_eq!(purchase(&app, "hair", "999999999999.999999"), 200);
    let body =
        json!({"name": "chargeback_occurred", "event_properties": {"user_id": "hair", "amount": 100000000000u64}});
    let reply = app.post_applied(&body);
    assert_eq!(reply["features"]["can_purchase"], json!(false), "{reply}");
}
