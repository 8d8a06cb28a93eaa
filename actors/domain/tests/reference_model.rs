//! Property test: random event sequences applied by the engine agree with a
//! plain reference model of the three default rules (written the obvious way,
//! with exact integer arithmetic and sets of strings).

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use restrictd_domain::{EntryId, Model, ModelDef, ShardState};
use serde_json::{json, Value};

fn model() -> Model {
    let def: ModelDef = toml::from_str(include_str!("../../../config.toml")).expect("default config parses");
    Model::compile(&def, false).expect("default config compiles")
}

#[derive(Debug, Clone)]
enum Ev {
    Scam { user: u8 },
    Purchase { user: u8, cents: u32 },
    Chargeback { user: u8, cents: u32 },
    Card { user: u8, card: u8, zip: u8 },
}

impl Ev {
    fn json(&self) -> Value {
        let amount = |cents: u32| serde_json::Number::from_f64(f64::from(cents) / 100.0).unwrap();
        match self {
            Ev::Scam { user } => {
                json!({"name": "scam_message_flagged", "event_properties": {"user_id": format!("u{user}")}})
            }
            Ev::Purchase { user, cents } => {
                json!({"name": "purchase_made", "event_properties": {"user_id": format!("u{user}"), "amount": amount(*cents)}})
            }
            Ev::Chargeback { user, cents } => {
                json!({"name": "chargeback_occurred", "event_properties": {"user_id": format!("u{user}"), "amount": amount(*cents)}})
            }
            Ev::Card { user, card, zip } => {
                json!({"name": "credit_card_added", "event_properties": {"user_id": format!("u{user}"), "card_id": format!("c{card}"), "zip_code": format!("z{zip}")}})
            }
        }
    }
}

fn event() -> impl Strategy<Value = Ev> {
    let user = 0u8..4;
    let cents = prop_oneof![Just(0u32), Just(100), Just(1000), Just(1500), 1u32..200, 0u32..100_000];
    prop_oneof![
        user.clone().prop_map(|user| Ev::Scam { user }),
        (user.clone(), cents.clone()).prop_map(|(user, cents)| Ev::Purchase { user, cents }),
        (user.clone(), cents).prop_map(|(user, cents)| Ev::Chargeback { user, cents }),
        (user, 0u8..4, 0u8..4).prop_map(|(user, card, zip)| Ev::Card { user, card, zip }),
    ]
}

/// The reference: the three classic rules, sticky once they fire.
#[derive(Default)]
struct Reference {
    flags: u64,
    spend_cents: u128,
    chargeback_cents: u128,
    cards: HashSet<u8>,
    zips: HashSet<u8>,
    no_message: bool,
    no_purchase: bool,
}

impl Reference {
    fn apply(&mut self, e: &Ev) {
        match *e {
            Ev::Scam { .. } => {
                self.flags += 1;
                self.no_message |= self.flags >= 2;
            }
            Ev::Purchase { cents, .. } | Ev::Chargeback { cents, .. } => {
                if matches!(e, Ev::Purchase { .. }) {
                    self.spend_cents += u128::from(cents);
                } else {
                    self.chargeback_cents += u128::from(cents);
                }
                // chargebacks / spend > 0.10, with spend > 0
                self.no_purchase |= self.spend_cents > 0 && self.chargeback_cents * 10 > self.spend_cents;
            }
            Ev::Card { card, zip, .. } => {
                self.cards.insert(card);
                self.zips.insert(zip);
                // more than two cards, and distinct zips / distinct cards > 0.75
                self.no_purchase |= self.cards.len() > 2 && self.zips.len() * 4 > self.cards.len() * 3;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_engine_agrees_with_the_reference_model(events in prop::collection::vec(event(), 1..60)) {
        let model = model();
        let mut shard = ShardState::new(60_000);
        let mut reference: HashMap<u8, Reference> = HashMap::new();
        let can_message = model.feature_index("can_message").unwrap();
        let can_purchase = model.feature_index("can_purchase").unwrap();
        for (i, e) in events.iter().enumerate() {
            let value = e.json();
            let validated = model.schema.validate(&value).expect("generated events are valid");
            let mut changes = Vec::new();
            let out = shard.apply(&model, EntryId::new(1_000 + i as u64, 0), &validated, &|_| false, &mut changes);
            // Every restriction made is returned as a change of this user, with the features after it.
            prop_assert_eq!(changes.len(), out.fired.len());
            for c in &changes {
                prop_assert_eq!(&*c.user_id, validated.user_id);
                prop_assert_eq!(c.restricted_after, out.features);
                prop_assert!(out.fired.contains(c.rule.unwrap()));
            }
            let user = match *e { Ev::Scam { user } | Ev::Purchase { user, .. } | Ev::Chargeback { user, .. } | Ev::Card { user, .. } => user };
            let r = reference.entry(user).or_default();
            r.apply(e);
            prop_assert_eq!(out.features & (1 << can_message) != 0, r.no_message, "can_message of u{} after {:?}", user, e);
            prop_assert_eq!(out.features & (1 << can_purchase) != 0, r.no_purchase, "can_purchase of u{} after {:?}", user, e);
        }
        prop_assert_eq!(shard.users.len(), reference.len());
    }

    #[test]
    fn a_tripped_rule_restricts_nobody_and_changes_no_aggregate(events in prop::collection::vec(event(), 1..40)) {
        let model = model();
        let mut tripped = ShardState::new(60_000);
        let mut armed = ShardState::new(60_000);
        for (i, e) in events.iter().enumerate() {
            let value = e.json();
            let v = model.schema.validate(&value).unwrap();
            let id = EntryId::new(1_000 + i as u64, 0);
            let mut changes = Vec::new();
            let out = tripped.apply(&model, id, &v, &|_| true, &mut changes);
            // What it withheld is recorded (suppressed), restricting nothing.
            prop_assert!(changes.iter().all(|c| c.kind.as_str() == "suppressed" && c.restricted_after == 0));
            prop_assert_eq!(changes.len(), out.suppressed.len());
            changes.clear();
            armed.apply(&model, id, &v, &|_| false, &mut changes);
            prop_assert_eq!(out.features, 0);
            prop_assert!(out.fired.is_empty());
        }
        for (user, state) in armed.users.iter() {
            prop_assert_eq!(&tripped.users[user].scalars, &state.scalars);
            prop_assert_eq!(&tripped.users[user].sets, &state.sets);
        }
    }
}
