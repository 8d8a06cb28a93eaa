use super::*;
use crate::testing::model;

fn case(text: &str) -> Case {
    toml::from_str(text).unwrap()
}

const FLAG: &str = r#"{ name = "scam_message_flagged", event_properties = { user_id = "u1" } }"#;

#[test]
fn a_case_whose_expectations_hold_passes() {
    let c = case(&format!(
        r#"
        name = "two flags"
        [[step]]
        events = [{FLAG}, {FLAG}]
        [step.expect.u1]
        restricted = ["can_message"]
        allowed = ["can_purchase"]
        rules = ["scam_message_rule"]
        fired = ["scam_message_rule"]
        aggregates = {{ scam_flags = 2, spend = "0" }}
        [step.expect.u2]
        allowed = ["can_message"]
        rules = []
        "#
    ));
    let r = run_case(&model(""), None, &c);
    assert_eq!(r.failures, Vec::<String>::new());
    assert_eq!(r.events, 2);
}

#[test]
fn a_failed_expectation_names_the_step_the_user_and_both_values() {
    let c = case(&format!(
        r#"
        name = "one flag is not enough"
        [[step]]
        event = {FLAG}
        [step.expect.u1]
        restricted = ["can_message"]
        aggregates = {{ scam_flags = 2 }}
        "#
    ));
    let r = run_case(&model(""), None, &c);
    assert!(!r.passed());
    assert_eq!(r.failures.len(), 2, "{:?}", r.failures);
    assert!(r.failures[0].starts_with("step 1, user u1: restricted: expected [\"can_message\"]"), "{:?}", r.failures);
    assert!(r.failures[1].contains("aggregates.scam_flags: expected 2, actual 1"), "{:?}", r.failures);
}

#[test]
fn sums_compare_exactly_and_names_outside_the_rule_set_fail() {
    let c = case(
        r#"
        name = "sums"
        [[step]]
        events = [
          { name = "purchase_made", event_properties = { user_id = "u1", amount = 0.1 } },
          { name = "purchase_made", event_properties = { user_id = "u1", amount = 0.2 } },
        ]
        [step.expect.u1]
        aggregates = { spend = "0.30" }
        [step.expect.u2]
        rules = ["no_such_rule"]
        "#,
    );
    let r = run_case(&model(""), None, &c);
    assert_eq!(r.failures, vec!["step 1, user u2: rule \"no_such_rule\" is not in the rule set".to_string()]);
}

#[test]
fn windows_age_with_the_clock_and_clearing_rules_lift() {
    let extra = r#"
        [aggregates.flags_1h]
        kind = "count"
        event = "scam_message_flagged"
        window = "1h"
        [rules.burst]
        on = ["scam_message_flagged"]
        when = "flags_1h >= 3"
        restrict = ["can_message"]
        until = "condition_clears"
    "#;
    let c = case(
        r#"
        name = "burst"
        [[step]]
        event = { name = "scam_message_flagged", event_properties = { user_id = "u9" } }
        repeat = 3
        every = "1m"
        [step.expect.u9]
        fired = ["burst", "scam_message_rule"]
        windows = { flags_1h = { entries = 3 } }
        [[step]]
        advance = "2h"
        [step.expect.u9]
        cleared = ["burst"]
        rules = ["scam_message_rule"]
        aggregates = { flags_1h = 0, scam_flags = 3 }
        windows = { flags_1h = { entries = 0 } }
        "#,
    );
    let r = run_case(&model(extra), None, &c);
    assert_eq!(r.failures, Vec::<String>::new());
}

#[test]
fn occurred_at_moves_the_clock_and_restrictions_expire() {
    let extra = r#"
        [rules.cooldown]
        on = ["purchase_made"]
        when = "spend >= 100"
        restrict = ["can_purchase"]
        restrict_for = "1d"
    "#;
    let c = case(
        r#"
        name = "expiry"
        start = "2026-03-01T00:00:00Z"
        [[step]]
        event = { name = "purchase_made", occurred_at = "2026-03-02T00:00:00Z", event_properties = { user_id = "u1", amount = 100 } }
        [step.expect.u1]
        restricted = ["can_purchase"]
        [[step]]
        advance = "23h"
        [step.expect.u1]
        expired = []
        [[step]]
        advance = "2h"
        [step.expect.u1]
        expired = ["cooldown"]
        allowed = ["can_purchase"]
        "#,
    );
    let r = run_case(&model(extra), None, &c);
    assert_eq!(r.failures, Vec::<String>::new());
}

#[test]
fn shadow_rules_would_restrict_and_restrict_nothing() {
    let extra = r#"
        [rules.watch]
        on = ["scam_message_flagged"]
        when = "scam_flags >= 1"
        restrict = ["can_purchase"]
        mode = "shadow"
    "#;
    let c = case(&format!(
        r#"
        name = "shadow"
        [[step]]
        event = {FLAG}
        [step.expect.u1]
        would_restrict = ["watch"]
        rules = []
        allowed = ["can_purchase", "can_message"]
        "#
    ));
    assert_eq!(run_case(&model(extra), None, &c).failures, Vec::<String>::new());
}

#[test]
fn a_refused_event_fails_its_case_with_the_reason() {
    let c = case(
        r#"
        name = "bad"
        [[step]]
        event = { name = "purchase_made", event_properties = { user_id = "u1" } }
        "#,
    );
    let r = run_case(&model(""), None, &c);
    assert_eq!(r.failures.len(), 1);
    assert!(r.failures[0].starts_with("step 1: event \"purchase_made\" is refused: "), "{:?}", r.failures);
}
