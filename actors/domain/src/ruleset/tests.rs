use super::*;

fn def() -> ModelDef {
    toml::from_str(include_str!("../../../../config.toml")).unwrap()
}

#[test]
fn the_seed_compiles_like_the_file() {
    let seed = VersionRecord::seed(def(), 1).unwrap();
    let (a, b) = (seed.compile(false).unwrap(), Model::compile(&def(), false).unwrap());
    let names = |m: &Model| m.rules.iter().map(|r| r.name.to_string()).collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b));
    assert_eq!(a.features, b.features);
}

#[test]
fn bits_keep_their_place_and_removed_or_rerouted_rules_retire() {
    let v1 = VersionRecord::seed(def(), 1).unwrap();
    let mut content = def();
    content.features.insert("can_comment".into(), Default::default());
    content.rules.remove("unique_zip_code_rule");
    content.rules.get_mut("scam_message_rule").unwrap().restrict = vec!["can_comment".into()];
    content.rules.get_mut("chargeback_ratio_rule").unwrap().when = "chargebacks / spend > 0.20".into();
    let (layout, retired) = next_layout(Some(&v1), &content, 2).unwrap();
    assert_eq!(layout.features, ["can_message", "can_purchase", "can_comment"]);
    assert_eq!(
        layout.rules,
        ["chargeback_ratio_rule", "scam_message_rule@2", "unique_zip_code_rule@2", "scam_message_rule"],
        "a changed condition keeps its bit; changed features or a removal retire it in place"
    );
    assert_eq!(retired.len(), 2);
    let v2 = VersionRecord { version: 2, layout, retired, content: content.clone(), ..v1.clone() };
    assert_eq!(v2.retired_here(), [1, 2]);
    let model = v2.compile(false).unwrap();
    assert!(model.rules[1].retired && model.rules[2].retired && !model.rules[3].retired);
    assert!(!model.rules_by_event.iter().flatten().any(|r| [1, 2].contains(r)), "retired rules listen to nothing");
    let d = diff(Some(&v1.content), &content);
    assert_eq!(d.rules_removed, ["unique_zip_code_rule"]);
    assert_eq!(d.rules_changed, ["chargeback_ratio_rule", "scam_message_rule"]);
    assert_eq!(d.features_added, ["can_comment"]);
    assert!(d.aggregates_added.is_empty() && d.aggregates_dropped.is_empty());
}

#[test]
fn a_feature_cannot_be_removed() {
    let v1 = VersionRecord::seed(def(), 1).unwrap();
    let mut content = def();
    content.features.remove("can_message");
    content.rules.retain(|_, r| !r.restrict.contains(&"can_message".to_string()));
    let err = next_layout(Some(&v1), &content, 2).unwrap_err();
    assert!(err.starts_with("features.can_message"), "{err}");
}

#[test]
fn a_model_gives_back_the_sections_it_was_compiled_from() {
    let model = Model::compile(&def(), false).unwrap();
    assert_eq!(serde_json::to_value(model.def()).unwrap(), serde_json::to_value(def()).unwrap());
}

#[test]
fn a_switch_rewrites_users_only_when_their_stored_form_changes() {
    use crate::{EntryId, ShardState};
    let v1 = VersionRecord::seed(def(), 1).unwrap();
    let old = v1.compile(false).unwrap();
    let mut shard = ShardState::new(60_000);
    let flag = serde_json::json!({"name": "scam_message_flagged", "event_properties": {"user_id": "u"}});
    shard.apply(&old, EntryId::new(1, 1), &old.schema.validate(&flag).unwrap(), &|_| false, &mut Vec::new());
    shard.dirty.clear();
    let next = |content: ModelDef| {
        let (layout, retired) = next_layout(Some(&v1), &content, 2).unwrap();
        VersionRecord { version: 2, layout, retired, content, ..v1.clone() }.compile(false).unwrap()
    };

    let mut threshold = def();
    threshold.rules.get_mut("scam_message_rule").unwrap().when = "scam_flags >= 3".into();
    shard.switch(&old, &next(threshold));
    assert!(shard.dirty.is_empty(), "a new threshold stores users as before: nothing to write");

    let mut added = def();
    let count = crate::rules::AggregateDef { event: "purchase_made".into(), ..def().aggregates["scam_flags"].clone() };
    added.aggregates.insert("purchases".into(), count);
    let new = next(added);
    shard.switch(&old, &new);
    assert!(shard.dirty.contains("u"), "a new aggregate changes every user's stored form");
    let user = &shard.users["u"];
    let slot = |name: &str| new.aggregates.iter().find(|a| &*a.name == name).unwrap().slot;
    assert!(matches!(slot("scam_flags"), crate::rules::Slot::Scalar(s) if user.scalars[usize::from(s)] == 1));
    assert!(matches!(slot("purchases"), crate::rules::Slot::Scalar(s) if user.scalars[usize::from(s)] == 0));
}

#[test]
fn a_rule_removed_and_added_again_or_promoted_back_and_forth_takes_its_old_place() {
    let v1 = VersionRecord::seed(def(), 1).unwrap();
    let mut without = def();
    let scam = without.rules.remove("scam_message_rule").unwrap();
    let (layout, retired) = next_layout(Some(&v1), &without, 2).unwrap();
    let v2 = VersionRecord { layout, retired, content: without, ..v1.clone() };
    let (layout, retired) = next_layout(Some(&v2), &def(), 3).unwrap();
    assert_eq!(layout.rules, v1.layout.rules, "back in its place, no new one");
    assert!(retired.is_empty(), "{retired:?}");

    // Shadow, enforce, shadow, enforce: two places in all.
    let mut prev = v1;
    for (i, mode) in ["shadow", "enforce", "shadow", "enforce"].iter().enumerate() {
        let mut content = def();
        let mut rule = scam.clone();
        rule.mode = serde_json::from_value(serde_json::json!(mode)).unwrap();
        content.rules.insert("scam_message_rule".into(), rule);
        let (layout, retired) = next_layout(Some(&prev), &content, 2 + i as u64).unwrap();
        prev = VersionRecord { layout, retired, content, version: 2 + i as u64, ..prev };
    }
    assert_eq!(prev.layout.rules.len(), 4, "{:?}", prev.layout.rules);
}
