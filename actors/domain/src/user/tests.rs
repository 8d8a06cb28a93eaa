//! One user's aggregates, windows, restrictions and overrides.

use serde_json::json;

use super::*;
use crate::testing::{aggregate, event, model};

const T: u64 = 1_767_225_600_000;

fn apply(user: &mut UserState, m: &Model, at_ms: u64, e: &serde_json::Value) {
    let valid = m.schema.validate(e).unwrap();
    assert!(user.apply(m, &valid, at_ms));
}

#[test]
fn counts_sums_and_distinct_values_accumulate_exactly() {
    let m = model("");
    let mut u = UserState::new(&m);
    for amount in [0.1, 0.2, 0.3] {
        apply(&mut u, &m, T, &event("purchase_made", "u", json!({"amount": amount})));
    }
    for (card, zip) in [("a", "1"), ("b", "1"), ("a", "2")] {
        apply(&mut u, &m, T, &event("credit_card_added", "u", json!({"card_id": card, "zip_code": zip})));
    }
    assert_eq!(u.aggregate(&m, aggregate(&m, "spend")), 600_000, "0.1 + 0.2 + 0.3 in micro-units, exactly");
    assert_eq!((u.aggregate(&m, aggregate(&m, "cards")), u.aggregate(&m, aggregate(&m, "zip_codes"))), (2, 2));
    assert!(u.windows.is_empty(), "no window allocated for a user of a rule set without windows");
}

#[test]
fn a_window_drops_what_ages_out_and_is_freed_when_empty() {
    let m = model(
        "[aggregates.spend_1h]\nkind = \"sum\"\nevent = \"purchase_made\"\nproperty = \"amount\"\nwindow = \"1h\"",
    );
    let spend = aggregate(&m, "spend_1h");
    let mut u = UserState::new(&m);
    apply(&mut u, &m, T, &event("purchase_made", "u", json!({"amount": 5})));
    apply(&mut u, &m, T + 1_800_000, &event("purchase_made", "u", json!({"amount": 7})));
    assert_eq!(u.aggregate(&m, spend), 12_000_000);
    assert_eq!(u.next_window_aging(&m), Some(T + 3_600_000), "the first leaves an hour after it happened");
    assert!(u.advance_windows(&m, T + 3_601_000));
    assert_eq!(u.aggregate(&m, spend), 7_000_000);
    assert!(u.advance_windows(&m, T + 7_200_000));
    assert!(u.windows.is_empty(), "freed");
    assert_eq!(u.aggregate(&m, aggregate(&m, "spend")), 12_000_000, "the all-time sum keeps both");
}

#[test]
fn a_late_event_counts_in_the_window_of_its_own_time() {
    let m = model("[aggregates.flags_1h]\nkind = \"count\"\nevent = \"scam_message_flagged\"\nwindow = \"1h\"");
    let flags = aggregate(&m, "flags_1h");
    let mut u = UserState::new(&m);
    apply(&mut u, &m, T + 7_200_000, &event("scam_message_flagged", "u", json!({})));
    apply(&mut u, &m, T, &event("scam_message_flagged", "u", json!({})));
    assert_eq!(u.aggregate(&m, flags), 1, "two hours older than the newest: outside the window");
}

#[test]
fn overrides_beat_restrictions_and_expire_with_them() {
    let m = model("");
    let mut u = UserState::new(&m);
    let entry = EntryId::new(T, 0);
    u.restrictions.push(Restriction { rule: 0, entry, at_ms: T, expires_at_ms: Some(T + 10), suppressed: false });
    let restricted = u.restricted(&m);
    assert_ne!(restricted, 0);
    let feature = restricted.trailing_zeros() as u8;
    let o = Override {
        feature,
        allowed: true,
        reason: "r".into(),
        by: "ops".into(),
        at_ms: T,
        expires_at_ms: Some(T + 20),
    };
    u.set_override(o);
    assert_eq!(u.restricted(&m), 0, "allowed by the operator");
    assert_eq!(u.next_expiry(&m), Some(T + 10));
    let expired = u.expire(T + 10);
    assert_eq!((expired.restrictions.len(), expired.overrides.len()), (1, 0));
    assert_eq!(u.expire(T + 20).overrides.len(), 1);
    assert!(u.restrictions.is_empty() && u.overrides.is_empty());
}

#[test]
fn a_withheld_restriction_is_marked_once_and_restricts_nothing() {
    let m = model("");
    let mut u = UserState::new(&m);
    u.mark_suppressed(0, EntryId::new(T, 0));
    u.mark_suppressed(0, EntryId::new(T + 1, 0));
    assert_eq!(u.restrictions.len(), 1);
    assert!(!u.has_fired(0));
    assert_eq!(u.restricted(&m), 0);
    u.unmark_suppressed(0);
    assert!(u.restrictions.is_empty());
}
