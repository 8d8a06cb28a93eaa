//! What a shard does with events, sweeps and operators' commands.

use serde_json::json;

use super::*;
use crate::testing::{aggregate, event, flag, model, rule, Shard};
use crate::user::Override;

const T: u64 = 1_767_225_600_000;
const HOUR: u64 = 3_600_000;

const SHADOW: &str = r#"
[rules.watch]
on = ["scam_message_flagged"]
when = "scam_flags >= 1"
restrict = ["can_purchase"]
mode = "shadow"
"#;

const BURST: &str = r#"
[aggregates.flags_1h]
kind = "count"
event = "scam_message_flagged"
window = "1h"
[rules.burst]
on = ["scam_message_flagged"]
when = "flags_1h >= 3"
restrict = ["can_purchase"]
until = "condition_clears"
"#;

const COOLDOWN: &str = r#"
[rules.cooldown]
on = ["purchase_made"]
when = "spend >= 100"
restrict = ["can_purchase"]
restrict_for = "1h"
"#;

#[test]
fn an_enforced_rule_restricts_once_its_condition_holds() {
    let m = model("");
    let mut s = Shard::new();
    assert!(s.apply(&m, T, &flag("u")).fired.is_empty());
    let out = s.apply(&m, T + 1, &flag("u"));
    assert!(out.fired.contains(rule(&m, "scam_message_rule")));
    assert_eq!(s.features(&m, "u"), ["can_message"]);
    assert_eq!(s.kinds(), ["rule_fired"]);
    assert!(s.state.dirty.contains("u"), "the user is written at the next snapshot");
}

#[test]
fn a_shadow_rule_records_what_it_would_restrict_and_restricts_nothing() {
    let m = model(SHADOW);
    let mut s = Shard::new();
    let out = s.apply(&m, T, &flag("u"));
    assert!(out.shadowed.contains(rule(&m, "watch")) && out.fired.is_empty());
    assert_eq!(out.features, 0);
    assert_eq!(s.kinds(), ["would_restrict"]);
    assert_eq!(s.state.users["u"].report(&m, 0).would_restrict[0].rule, "watch");
}

#[test]
fn a_clearing_rule_lifts_when_its_window_ages_below_the_condition() {
    let m = model(BURST);
    let mut s = Shard::new();
    for i in 0..3 {
        s.apply(&m, T + i * 60_000, &flag("u"));
    }
    assert!(s.features(&m, "u").contains(&"can_purchase".to_string()));
    s.kinds();
    assert!(s.state.sweep(&m, T + HOUR - 1).is_empty(), "still three flags within the hour");
    let lifted = s.state.sweep(&m, T + HOUR + 1);
    assert_eq!(lifted.iter().map(|c| c.kind).collect::<Vec<_>>(), [ChangeKind::Cleared]);
    assert_eq!(s.features(&m, "u"), ["can_message"], "the sticky reference rule stays");
}

#[test]
fn a_restriction_with_restrict_for_expires_at_the_sweep() {
    let m = model(COOLDOWN);
    let mut s = Shard::new();
    s.apply(&m, T, &event("purchase_made", "u", json!({"amount": 100})));
    assert_eq!(s.features(&m, "u"), ["can_purchase"]);
    assert!(s.state.sweep(&m, T + HOUR - 1).is_empty());
    let expired = s.state.sweep(&m, T + HOUR);
    assert_eq!((expired.len(), expired[0].kind), (1, ChangeKind::Expired));
    assert_eq!(expired[0].restricted_after, 0);
    assert!(s.features(&m, "u").is_empty());
}

#[test]
fn a_tripped_rule_withholds_the_restriction_and_an_operator_may_apply_it_later() {
    let m = model("");
    let r = rule(&m, "scam_message_rule");
    let mut s = Shard::new();
    s.gated(&m, T, &flag("u"), &|_| Gate::Tripped);
    let out = s.gated(&m, T + 1, &flag("u"), &|_| Gate::Tripped);
    assert!(out.suppressed.contains(r) && out.fired.is_empty());
    assert!(s.features(&m, "u").is_empty(), "withheld: not restricted");
    assert_eq!(s.kinds(), ["suppressed"]);
    assert_eq!(s.state.users["u"].report(&m, 0).suppressed, ["scam_message_rule"]);
    let applied = s.state.apply_suppressed(&m, r, T, EntryId::new(T + 2, 0), "ops");
    assert_eq!(applied.len(), 1);
    assert_eq!(s.features(&m, "u"), ["can_message"]);
}

#[test]
fn a_decision_held_for_budget_is_made_later() {
    let m = model("");
    let r = rule(&m, "scam_message_rule");
    let mut s = Shard::new();
    s.gated(&m, T, &flag("u"), &|_| Gate::Hold);
    let out = s.gated(&m, T + 1, &flag("u"), &|_| Gate::Hold);
    assert!(out.held.contains(r) && s.features(&m, "u").is_empty());
    let change = s.state.restrict_held(&m, "u", r, EntryId::new(T + 1, 2)).unwrap();
    assert_eq!(change.kind, ChangeKind::RuleFired);
    assert_eq!(s.features(&m, "u"), ["can_message"]);
    assert!(s.state.restrict_held(&m, "u", r, EntryId::new(T + 1, 2)).is_none(), "once");
}

#[test]
fn a_repeated_event_id_is_applied_once() {
    let m = model("");
    let mut s = Shard::new();
    let mut e = flag("u");
    e["event_id"] = json!("e1");
    s.apply(&m, T, &e);
    assert!(s.apply(&m, T + 1, &e).duplicate);
    assert_eq!(s.state.users["u"].aggregate(&m, aggregate(&m, "scam_flags")), 1);
}

#[test]
fn switching_rule_sets_carries_unchanged_aggregates_and_keeps_restrictions() {
    let old = model("");
    // Positions are stable across versions: the new rule is laid out after the old ones.
    let mut layout = crate::rules::Layout {
        features: old.features.iter().map(|f| f.to_string()).collect(),
        rules: old.rules.iter().map(|r| r.name.to_string()).collect(),
    };
    layout.rules.push("burst".into());
    let new = Model::compile_laid_out(&crate::testing::def(BURST), &layout, &Default::default(), false).unwrap();
    let mut s = Shard::new();
    s.apply(&old, T, &flag("u"));
    s.apply(&old, T + 1, &flag("u"));
    s.state.switch(&old, &new);
    let user = &s.state.users["u"];
    let (flags, burst) = (aggregate(&new, "scam_flags"), aggregate(&new, "flags_1h"));
    assert_eq!((user.aggregate(&new, flags), user.aggregate(&new, burst)), (2, 0), "a new aggregate starts empty");
    assert_eq!(crate::user::features_of(&new, user.restricted(&new)), ["can_message"]);
}

#[test]
fn lifting_a_removed_rule_and_reverting_a_tripped_one_lift_its_restrictions() {
    let m = model("");
    let r = rule(&m, "scam_message_rule");
    let mut s = Shard::new();
    for u in ["a", "b"] {
        s.apply(&m, T, &flag(u));
        s.apply(&m, T + HOUR, &flag(u));
    }
    s.apply(&m, T - HOUR, &flag("c"));
    s.apply(&m, T - HOUR, &flag("c"));
    let reverted = s.state.revert(&m, r, T, T + 2 * HOUR);
    assert_eq!(reverted.len(), 2, "only the restrictions made since the trip's window began");
    assert_eq!(reverted[0].kind, ChangeKind::Reverted);
    let lifted = s.state.lift_rules(&m, &[r], EntryId::new(T + 3 * HOUR, 0));
    assert_eq!(lifted.iter().map(|c| (&*c.user_id, c.kind)).collect::<Vec<_>>(), [("c", ChangeKind::RuleRemoved)]);
}

#[test]
fn an_override_beats_the_rules_until_it_expires() {
    let m = model("");
    let mut s = Shard::new();
    s.apply(&m, T, &flag("u"));
    s.apply(&m, T + 1, &flag("u"));
    let allow = Override {
        feature: 0,
        allowed: true,
        reason: "appeal".into(),
        by: "ops".into(),
        at_ms: T + 2,
        expires_at_ms: Some(T + HOUR),
    };
    let set = s.state.set_override(&m, EntryId::new(T + 2, 0), "u", 0, Some(allow), "ops").unwrap();
    assert_eq!((set.kind, set.restricted_after), (ChangeKind::OverrideSet, 0));
    let expired = s.state.sweep(&m, T + HOUR);
    assert_eq!(expired.iter().map(|c| c.kind).collect::<Vec<_>>(), [ChangeKind::OverrideExpired]);
    assert_eq!(s.features(&m, "u"), ["can_message"]);
    assert!(s.state.set_override(&m, EntryId::new(T + HOUR, 1), "nobody", 0, None, "ops").is_none());
}

#[test]
fn causes_name_the_rule_or_the_override_of_each_restricted_feature() {
    let m = model("");
    let mut s = Shard::new();
    s.apply(&m, T, &flag("u"));
    s.apply(&m, T + 1, &flag("u"));
    assert_eq!(s.state.users["u"].causes(&m), "can_message:scam_message_rule");
    let deny = Override {
        feature: 1,
        allowed: false,
        reason: "fraud ring".into(),
        by: "ops".into(),
        at_ms: T + 2,
        expires_at_ms: None,
    };
    s.state.set_override(&m, EntryId::new(T + 2, 0), "u", 1, Some(deny.clone()), "ops").unwrap();
    assert_eq!(s.state.users["u"].causes(&m), "can_message:scam_message_rule,can_purchase");
    let over_rule = Override { feature: 0, ..deny };
    s.state.set_override(&m, EntryId::new(T + 3, 0), "u", 0, Some(over_rule), "ops").unwrap();
    assert_eq!(s.state.users["u"].causes(&m), "can_message,can_purchase", "an override beats the rule");
}
