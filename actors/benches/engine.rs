//! Hot paths of the engine: a check's look-up, applying each default rule's
//! events, applying with 3, 100 and 1,000 rules, the tripwire's evaluation,
//! and snapshot encode/decode.
//!
//! `cargo bench -p restrictd-actors`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use restrictd_actors::domain::snapshot::{decode_user, encode_user};
use restrictd_actors::domain::{EntryId, Model, ModelDef, ShardState, SharedRule, TripwireSettings};
use restrictd_actors::shared::Shared;
use serde_json::{json, Value};

fn model() -> Model {
    with_generated_rules(0)
}

/// The default rule set (3 rules) and `extra` generated rules over 20 more
/// event names, each listening to one of them and never firing (so every
/// listening rule is evaluated on every event: the worst case).
fn with_generated_rules(extra: usize) -> Model {
    let mut text = include_str!("../../config.toml").to_string();
    if extra > 0 {
        for e in 0..20 {
            text +=
                &format!("[events.e{e}]\nproperties = {{}}\n[aggregates.n{e}]\nkind = \"count\"\nevent = \"e{e}\"\n");
        }
    }
    for i in 0..extra {
        let when = format!("n{} >= {}", i % 20, 1_000_000 + i);
        text += &format!("[rules.g{i}]\non = [\"e{}\"]\nwhen = \"{when}\"\nrestrict = [\"can_message\"]\n", i % 20);
    }
    let def: ModelDef = toml::from_str(&text).unwrap();
    Model::compile(&def, false).unwrap()
}

fn check(c: &mut Criterion) {
    let shared = Shared::new(Arc::new(model()), 64, "rd", 16, (0..64).collect());
    for i in 0..100_000u32 {
        if i % 20 == 0 {
            let user = format!("user{i}");
            shared.view.set(shared.shard_of(&user), &user, 1, "can_message:scam_message_rule");
        }
    }
    c.bench_function("check: restricted user", |b| b.iter(|| shared.restricted(black_box("user2000"))));
    c.bench_function("check: user never seen", |b| b.iter(|| shared.restricted(black_box("stranger-42"))));
}

fn apply(c: &mut Criterion) {
    let model = model();
    let events: [(&str, Value); 4] = [
        (
            "apply: scam_message_rule (scam_message_flagged)",
            json!({"name": "scam_message_flagged", "event_properties": {"user_id": "u1"}}),
        ),
        (
            "apply: chargeback_ratio_rule (purchase_made)",
            json!({"name": "purchase_made", "event_properties": {"user_id": "u1", "amount": 12.5}}),
        ),
        (
            "apply: chargeback_ratio_rule (chargeback_occurred)",
            json!({"name": "chargeback_occurred", "event_properties": {"user_id": "u1", "amount": 0.5}}),
        ),
        (
            "apply: unique_zip_code_rule (credit_card_added)",
            json!({"name": "credit_card_added", "event_properties": {"user_id": "u1", "card_id": "c1", "zip_code": "z1"}}),
        ),
    ];
    for (name, value) in &events {
        let event = model.schema.validate(value).unwrap();
        let mut shard = ShardState::new(60_000);
        let mut seq = 0;
        let mut changes = Vec::new();
        c.bench_function(name, |b| {
            b.iter(|| {
                seq += 1;
                {
                    changes.clear();
                    black_box(shard.apply(&model, EntryId::new(1, seq), &event, &|_| false, &mut changes))
                }
            })
        });
    }
    // What a shard does per stream entry: parse JSON, validate, apply.
    let raw = events[1].1.to_string().into_bytes();
    let mut shard = ShardState::new(60_000);
    let mut seq = 0;
    let mut changes = Vec::new();
    c.bench_function("apply: parse into Value + validate + apply (purchase_made)", |b| {
        b.iter(|| {
            seq += 1;
            let value: Value = serde_json::from_slice(black_box(&raw)).unwrap();
            let event = model.schema.validate(&value).unwrap();
            {
                changes.clear();
                black_box(shard.apply(&model, EntryId::new(1, seq), &event, &|_| false, &mut changes))
            }
        })
    });
    c.bench_function("apply: validate_fast from bytes + apply (purchase_made)", |b| {
        b.iter(|| {
            seq += 1;
            let event = model.schema.validate_fast(black_box(&raw)).unwrap();
            {
                changes.clear();
                black_box(shard.apply(&model, EntryId::new(1, seq), &event, &|_| false, &mut changes))
            }
        })
    });
}

/// Events applied per second as the rule set grows: rules are looked up by
/// event name, so an event's cost follows the rules listening to it.
fn rule_count(c: &mut Criterion) {
    for (total, extra) in [(3, 0), (100, 97), (1000, 997)] {
        let model = with_generated_rules(extra);
        let mut cases = vec![("scam_message_flagged", 1)];
        if extra > 0 {
            cases.push(("e0", extra.div_ceil(20)));
        }
        for (name, listening) in cases {
            let events: Vec<Value> = (0..10_000)
                .map(|u| json!({"name": name, "event_properties": {"user_id": format!("user{u}")}}))
                .collect();
            let events: Vec<_> = events.iter().map(|v| model.schema.validate(v).unwrap()).collect();
            let mut shard = ShardState::new(60_000);
            let (mut seq, mut changes) = (0, Vec::new());
            c.bench_function(&format!("apply: {total} rules, {listening} listening ({name})"), |b| {
                b.iter(|| {
                    seq += 1;
                    changes.clear();
                    let event = &events[seq as usize % events.len()];
                    black_box(shard.apply(&model, EntryId::new(1, seq), event, &|_| false, &mut changes))
                })
            });
        }
    }
}

fn tripwire(c: &mut Criterion) {
    let settings =
        TripwireSettings { window_ms: 300_000, threshold_ppm: 50_000, min_restricted: 10, cooldown_ms: None };
    // What a sync does per rule once the shared counts are back: evaluate,
    // and encode the state it would compare-and-set.
    let mut rule = SharedRule::default();
    let mut now = 0;
    c.bench_function("tripwire: evaluate + encode state", |b| {
        b.iter(|| {
            now += 3;
            let change = rule.evaluate(black_box(40_000), 1_000_000, now, &settings);
            black_box((change, serde_json::to_string(&rule).unwrap()))
        })
    });
}

fn snapshot(c: &mut Criterion) {
    let model = model();
    let mut shard = ShardState::new(60_000);
    for (i, v) in [
        json!({"name": "purchase_made", "event_properties": {"user_id": "u", "amount": 100}}),
        json!({"name": "chargeback_occurred", "event_properties": {"user_id": "u", "amount": 15}}),
        json!({"name": "credit_card_added", "event_properties": {"user_id": "u", "card_id": "c1", "zip_code": "z1"}}),
        json!({"name": "scam_message_flagged", "event_properties": {"user_id": "u"}}),
    ]
    .iter()
    .enumerate()
    {
        shard.apply(&model, EntryId::new(1, i as u64), &model.schema.validate(v).unwrap(), &|_| false, &mut Vec::new());
    }
    let user = &shard.users["u"];
    let bytes = encode_user(&model, user);
    c.bench_function("snapshot: encode a user", |b| b.iter(|| black_box(encode_user(&model, black_box(user)))));
    c.bench_function("snapshot: decode a user", |b| {
        b.iter(|| black_box(decode_user(&model, black_box(&bytes)).unwrap()))
    });
}

criterion_group!(benches, check, apply, rule_count, tripwire, snapshot);
criterion_main!(benches);
