//! Compiling rule sets: what compiles into what, and every error with its key.

use super::*;
use crate::testing::{def, model};

fn error(extra: &str) -> String {
    Model::compile(&def(extra), false).unwrap_err()
}

#[test]
fn the_reference_rules_compile_into_bits_slots_and_listeners() {
    let m = model("");
    assert_eq!(&*m.features, ["can_message".into(), "can_purchase".into()] as [Box<str>; 2]);
    let scam = &m.rules[m.rule_index("scam_message_rule").unwrap()];
    assert_eq!((scam.features, scam.restricts, scam.clears, scam.windowed), (0b01, 0b01, false, false));
    let flagged = m.schema.event_index("scam_message_flagged").unwrap();
    assert_eq!(m.rules_by_event[usize::from(flagged)].len(), 1, "one rule listens to scam flags");
    assert_eq!((m.scalar_count, m.set_count, m.window_count), (3, 2, 0));
}

#[test]
fn a_shadow_rule_restricts_nothing_and_counts_apart_for_the_tripwire() {
    let m = model("[rules.watch]\non = [\"scam_message_flagged\"]\nwhen = \"scam_flags >= 1\"\nrestrict = [\"can_message\"]\nmode = \"shadow\"");
    let watch = &m.rules[m.rule_index("watch").unwrap()];
    assert!(watch.shadow());
    assert_eq!((watch.features, watch.restricts), (0b01, 0));
    assert_eq!(watch.tripwire_key(), "watch#shadow");
}

#[test]
fn a_clearing_rule_over_a_window_is_windowed_and_one_reading_the_event_is_refused() {
    let window = "[aggregates.f1h]\nkind = \"count\"\nevent = \"purchase_made\"\nwindow = \"1h\"\n";
    let m = model(&format!(
        "{window}[rules.r]\non = [\"purchase_made\"]\nwhen = \"f1h >= 3\"\nrestrict = [\"can_purchase\"]\nuntil = \"condition_clears\""
    ));
    let r = &m.rules[m.rule_index("r").unwrap()];
    assert!(r.clears && r.windowed);
    let e = error("[rules.r]\non = [\"purchase_made\"]\nwhen = \"event.amount > 5\"\nrestrict = [\"can_purchase\"]\nuntil = \"condition_clears\"");
    assert!(e.starts_with("rules.r.until:"), "{e}");
}

#[test]
fn every_error_names_its_key() {
    let rule = |body: &str| format!("[rules.r]\n{body}");
    let cases = [
        (rule("on = [\"purchase_made\"]\nwhen = \"nope > 1\"\nrestrict = [\"can_purchase\"]"), "rules.r.when"),
        (rule("on = []\nwhen = \"spend > 1\"\nrestrict = [\"can_purchase\"]"), "rules.r.on"),
        (rule("on = [\"nope\"]\nwhen = \"spend > 1\"\nrestrict = [\"can_purchase\"]"), "rules.r.on"),
        (rule("on = [\"purchase_made\"]\nwhen = \"spend > 1\"\nrestrict = []"), "rules.r.restrict"),
        (rule("on = [\"purchase_made\"]\nwhen = \"spend > 1\"\nrestrict = [\"can_fly\"]"), "rules.r.restrict"),
        (rule("on = [\"purchase_made\"]\nwhen = \"spend > 1\"\nrestrict = [\"can_purchase\"]\nrestrict_for = \"soon\""), "rules.r.restrict_for"),
        ("[aggregates.w]\nkind = \"count\"\nevent = \"purchase_made\"\nwindow = \"100d\"".into(), "aggregates.w.window"),
    ];
    for (extra, key) in cases {
        let e = error(&extra);
        assert!(e.starts_with(key), "{extra}: {e}");
    }
    assert_eq!(Model::errors(&def(&cases_joined()), false).len(), 2, "errors lists each bad rule");
}

fn cases_joined() -> String {
    "[rules.a]\non = [\"purchase_made\"]\nwhen = \"x > 1\"\nrestrict = [\"can_purchase\"]\n\
     [rules.b]\non = [\"purchase_made\"]\nwhen = \"spend > 1\"\nrestrict = []\n"
        .into()
}

#[test]
fn a_layout_keeps_positions_and_a_retired_rule_listens_to_nothing() {
    let d = def("");
    let mut rules: Vec<String> = vec!["old@2".into()];
    rules.extend(d.rules.keys().cloned());
    let layout = Layout { features: vec!["can_purchase".into(), "can_message".into()], rules };
    let retired = [("old@2".to_string(), d.rules["scam_message_rule"].clone())].into();
    let m = Model::compile_laid_out(&d, &layout, &retired, false).unwrap();
    assert_eq!(&*m.features[0], "can_purchase", "features at their layout's positions");
    assert!(m.rules[0].retired);
    assert!(m.rules_by_event.iter().all(|listeners| !listeners.contains(&0)), "a retired rule is never judged");
    assert_eq!(m.rules[m.rule_index("scam_message_rule").unwrap()].features, 0b10);
}
