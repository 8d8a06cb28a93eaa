use crate::money::SCALE;
use crate::rules::{AggregateValues, Model, ModelDef};

struct Vals(Vec<u64>);
impl AggregateValues for Vals {
    fn value(&self, a: u16) -> u64 {
        self.0[usize::from(a)]
    }
}

fn try_model(when: &str) -> Result<Model, String> {
    let def: ModelDef = toml::from_str(&format!(
        r#"
        [features.can_purchase]
        [events.purchase_made]
        properties = {{ amount = "money", country = "string", gift = "bool" }}
        [events.chargeback_occurred]
        properties = {{ amount = "money", country = "string", gift = "bool" }}
        [aggregates.chargebacks]
        kind = "sum"
        event = "chargeback_occurred"
        property = "amount"
        [aggregates.purchases]
        kind = "count"
        event = "purchase_made"
        [aggregates.spend]
        kind = "sum"
        event = "purchase_made"
        property = "amount"
        [rules.r]
        on = ["purchase_made", "chargeback_occurred"]
        when = '''{when}'''
        restrict = ["can_purchase"]
        "#
    ))
    .unwrap();
    Model::compile(&def, false)
}

fn model(when: &str) -> Model {
    try_model(when).unwrap_or_else(|e| panic!("{when}: {e}"))
}

/// Whether `when` holds for (chargebacks, purchases, spend) in whole units
/// of money, without an event.
fn holds(when: &str, vals: [u64; 3]) -> bool {
    model(when).rules[0].holds(&Vals(vals.to_vec()), None)
}

#[test]
fn ratio_of_sums_is_exact_at_the_boundary() {
    // aggregates sorted by name: chargebacks=0, purchases=1, spend=2
    for when in ["chargebacks / spend > 0.10", "chargebacks / spend > 0.1 && true", "!(chargebacks / spend <= 0.10)"] {
        let r = &model(when).rules[0];
        assert!(!r.holds(&Vals(vec![10 * SCALE, 1, 100 * SCALE]), None), "{when}: 10/100 is not > 0.10");
        assert!(r.holds(&Vals(vec![10 * SCALE + 1, 1, 100 * SCALE]), None), "{when}");
    }
    assert!(!holds("chargebacks / spend > 0.10", [5 * SCALE, 0, 0]), "zero denominator is false");
    assert!(!holds("!(chargebacks / spend > 0.10)", [5 * SCALE, 0, 0]), "an error stays an error under !");
    assert!(holds("chargebacks / spend > 0.10 || purchases == 0", [5 * SCALE, 0, 0]), "|| absorbs the error");
}

#[test]
fn plain_comparisons_scale_money_and_counts() {
    let forms =
        ["spend >= 100 and purchases >= 2", "spend >= 100\n  AND\tpurchases >= 2", "100 <= spend && 2 <= purchases"];
    for when in forms {
        let r = &model(when).rules[0];
        assert!(r.holds(&Vals(vec![0, 2, 100 * SCALE]), None), "{when}");
        assert!(!r.holds(&Vals(vec![0, 1, 100 * SCALE]), None), "{when}");
        assert!(!r.holds(&Vals(vec![0, 2, 100 * SCALE - 1]), None), "{when}");
    }
}

#[test]
fn legacy_and_cel_forms_compile_to_the_fast_comparisons() {
    for when in
        ["chargebacks / spend > 0.10", "spend > 0 and chargebacks / spend > 0.10", "purchases >= 2 && spend < 5"]
    {
        assert!(model(when).rules[0].condition.is_fast(), "{when}");
    }
    assert!(!model("purchases >= 2 || spend > 5").rules[0].condition.is_fast());
}

#[test]
fn arithmetic_is_exact() {
    assert!(!holds("chargebacks * 3 + 1 > spend", [SCALE, 0, 4 * SCALE]), "3 + 1 is not > 4");
    assert!(holds("chargebacks * 3 + 1 > spend", [SCALE, 0, 4 * SCALE - 1]), "3 + 1 > 3.999999");
    let m = model("spend - chargebacks == 0.000001");
    assert!(m.rules[0].holds(&Vals(vec![SCALE, 0, SCALE + 1]), None), "{:?}", m.rules[0].condition);
    assert!(holds("purchases / 3 > 0.333333333333", [0, 1, 0]), "1/3 is more than 0.333333333333");
    assert!(!holds("purchases / 3 > 1 / 3", [0, 1, 0]));
    assert!(holds("-purchases < 0 && (purchases - 2) * -1 == 1", [0, 1, 0]));
}

#[test]
fn huge_values_do_not_overflow_into_wrong_answers() {
    assert!(holds("chargebacks / spend > 0.10", [u64::MAX, 0, u64::MAX / 2]));
    assert!(!holds("chargebacks / spend > 0.10", [1, 0, u64::MAX]));
    assert!(holds("chargebacks * spend > 1", [u64::MAX, 0, u64::MAX]), "reduced before it overflows");
    assert!(!holds("chargebacks * spend * spend * spend > 1", [u64::MAX, 0, u64::MAX]), "out of range: false");
    assert!(holds("chargebacks * spend * spend * spend > 1 || purchases == 0", [u64::MAX, 0, u64::MAX]));
}

#[test]
fn event_properties_are_read_from_the_applied_event() {
    let m = model(r#"event.amount > 1000 && chargebacks > 0 && event.country != "NL" && !event.gift"#);
    let r = &m.rules[0];
    let purchase = |amount: &str, country: &str, gift: bool| {
        serde_json::json!({"name": "purchase_made", "event_properties": {
            "user_id": "u", "amount": amount.parse::<f64>().unwrap(), "country": country, "gift": gift}})
    };
    let check = |json: serde_json::Value, vals: [u64; 3]| {
        let e = m.schema.validate(&json).unwrap();
        r.holds(&Vals(vals.to_vec()), Some(&e))
    };
    assert!(check(purchase("1000.01", "DE", false), [1, 0, 0]));
    assert!(!check(purchase("1000", "DE", false), [1, 0, 0]), "1000 is not > 1000");
    assert!(!check(purchase("2000", "DE", false), [0, 0, 0]));
    assert!(!check(purchase("2000", "NL", false), [1, 0, 0]));
    assert!(!check(purchase("2000", "DE", true), [1, 0, 0]));
    assert!(!r.holds(&Vals(vec![1, 0, 0]), None), "without an event, event.* is an error: false");
}

#[test]
fn type_errors_and_unknown_names_are_rejected_with_where() {
    let cases = [
        (r#"event.country > 3"#, "column 1"),
        (r#"event.country == 3"#, "cannot compare a string with a number"),
        ("purchases >= 2 &&\n  spnd > 1", "line 2, column 3"),
        ("m >= 2", "\"m\" is not a declared aggregate"),
        ("event.card_id == \"x\"", "declares no property \"card_id\""),
        ("purchases + 1", "true or false, not a number"),
        ("size(purchases) > 1", "not supported"),
        ("purchases >= ", "column"),
        ("", "empty condition"),
    ];
    for (when, expected) in cases {
        let err = try_model(when).unwrap_err();
        assert!(err.starts_with("rules.r.when: ") && err.contains(expected), "{when:?}: {err}");
    }
}

#[test]
fn deep_or_long_conditions_are_refused_without_crashing() {
    let sums = |n: usize| format!("purchases{} > 1", " + 1".repeat(n));
    let nots = |n: usize| format!("{}true", "!".repeat(n));
    let parens = |n: usize| format!("{}purchases >= 2{}", "(".repeat(n), ")".repeat(n));
    assert!(model(&sums(250)).rules[0].holds(&Vals(vec![0, 0, 0]), None), "within the limit: 0 + 250 > 1");
    assert!(!model(&nots(251)).rules[0].holds(&Vals(vec![0, 0, 0]), None), "251 negations of true");
    for when in [sums(1_000), nots(1_000), parens(1_000)] {
        let err = try_model(&when).unwrap_err();
        assert!(err.contains("at most 256 operator"), "{err}");
    }
    assert!(try_model(&sums(10_000)).unwrap_err().contains("at most 4096 bytes"));
    let err = try_model(&parens(100)).unwrap_err();
    assert!(err.contains("nests deeper"), "{err}");
}
