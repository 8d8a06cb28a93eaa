//! Property test: windowed aggregates applied by the engine, with event
//! times in order and late, agree with a plain model that keeps every event
//! and recomputes each window from scratch; and a rule over them fires and
//! clears as the plain model says.

use std::collections::{BTreeSet, HashMap};

use proptest::prelude::*;
use restrictd_domain::{EntryId, Model, ModelDef, ShardState};
use serde_json::json;

const WINDOW_S: u64 = 5;

fn model() -> Model {
    let def: ModelDef = toml::from_str(
        r#"
        [features.can_purchase]
        [events.purchase_made]
        properties = { amount = "money", shop = "string" }
        [aggregates.buys]
        kind = "count"
        event = "purchase_made"
        window = "5s"
        [aggregates.spend]
        kind = "sum"
        event = "purchase_made"
        property = "amount"
        window = "5s"
        [aggregates.shops]
        kind = "distinct"
        event = "purchase_made"
        property = "shop"
        window = "5s"
        [rules.velocity]
        on = ["purchase_made"]
        when = "buys >= 3 || (spend > 100 && shops >= 2)"
        restrict = ["can_purchase"]
        until = "condition_clears"
        "#,
    )
    .unwrap();
    Model::compile(&def, false).unwrap()
}

#[derive(Debug, Clone)]
struct Buy {
    user: u8,
    /// Seconds after the previous event's arrival.
    advance: u64,
    /// How late its event time is, in seconds.
    late: u64,
    amount: u64,
    shop: u8,
}

fn buys() -> impl Strategy<Value = Vec<Buy>> {
    let buy = (0u8..3, 0u64..4, prop_oneof![4 => Just(0u64), 1 => 0u64..3], 0u64..80, 0u8..3)
        .prop_map(|(user, advance, late, amount, shop)| Buy { user, advance, late, amount, shop });
    prop::collection::vec(buy, 1..60)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn windowed_aggregates_and_rules_agree_with_a_plain_model(buys in buys()) {
        let model = model();
        let mut shard = ShardState::new(60_000);
        // Per user: the events kept (second, amount, shop).
        let mut kept: HashMap<u8, Vec<(u64, u64, u8)>> = HashMap::new();
        let mut arrival = 1_700_000_000u64;
        for (i, b) in buys.iter().enumerate() {
            arrival += b.advance;
            let at = arrival - b.late;
            let value = json!({"name": "purchase_made", "occurred_at": at * 1000 + 250,
                "event_properties": {"user_id": format!("u{}", b.user), "amount": b.amount, "shop": format!("s{}", b.shop)}});
            let event = model.schema.validate(&value).unwrap();
            let mut changes = Vec::new();
            let out = shard.apply(&model, EntryId::new(arrival * 1000 + 500, i as u64), &event, &|_| false, &mut changes);

            let events = kept.entry(b.user).or_default();
            let newest = events.iter().map(|e| e.0).max().unwrap_or(at).max(at);
            if at + WINDOW_S > newest {
                events.push((at, b.amount, b.shop));
            }
            let inside: Vec<_> = events.iter().filter(|e| e.0 + WINDOW_S > newest).copied().collect();
            let buys_n = inside.len() as u64;
            let spend: u64 = inside.iter().map(|e| e.1).sum();
            let shops = inside.iter().map(|e| e.2).collect::<BTreeSet<_>>().len() as u64;

            let user = &shard.users[event.user_id];
            let value_of = |name: &str| user.aggregate(&model, model.aggregates.iter().position(|a| &*a.name == name).unwrap() as u16);
            prop_assert_eq!(value_of("buys"), buys_n);
            prop_assert_eq!(value_of("spend"), spend * 1_000_000);
            prop_assert_eq!(value_of("shops"), shops);
            let holds = buys_n >= 3 || (spend > 100 && shops >= 2);
            prop_assert_eq!(out.features != 0, holds, "restricted exactly while the condition holds");
        }
    }
}

/// The sweep lifts a clearing restriction when the oldest event ages out,
/// and frees a user's windows once they would be empty.
#[test]
fn the_sweep_clears_on_time_and_frees_empty_windows() {
    let model = model();
    let mut shard = ShardState::new(60_000);
    let buy = |user: &str, at_s: u64, shop: &str| {
        json!({"name": "purchase_made", "occurred_at": at_s * 1000,
            "event_properties": {"user_id": user, "amount": 1, "shop": shop}})
    };
    let mut changes = Vec::new();
    let events = [buy("r", 100, "a"), buy("r", 101, "a"), buy("r", 102, "a"), buy("f", 103, "a")];
    for (i, v) in events.iter().enumerate() {
        let e = model.schema.validate(v).unwrap();
        shard.apply(&model, EntryId::new(102_000 + i as u64, 0), &e, &|_| false, &mut changes);
    }
    assert_eq!(changes.len(), 1, "three buys in 5 s restrict r: {changes:?}");
    assert!(shard.sweep(&model, 104_999).is_empty(), "nothing ages out before 105 s");
    let cleared = shard.sweep(&model, 105_000);
    assert_eq!(cleared.len(), 1, "the buy of second 100 left the window at 105 s: {cleared:?}");
    assert_eq!((cleared[0].kind.as_str(), cleared[0].restricted_after), ("cleared", 0));
    assert!(!shard.users["f"].windows.is_empty());
    shard.sweep(&model, 106_999);
    assert!(!shard.users["r"].windows.is_empty(), "r's last buy (second 102) is inside until 107 s");
    shard.sweep(&model, 108_000);
    assert!(shard.users["r"].windows.is_empty() && shard.users["f"].windows.is_empty(), "freed once empty");
}
