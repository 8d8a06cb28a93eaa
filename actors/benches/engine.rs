//! Hot paths of the engine: a check's look-up, applying each default rule's
//! events, the tripwire's evaluation, and snapshot encode/decode.
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
    let def: ModelDef = toml::from_str(include_str!("../../config.toml")).unwrap();
    Model::compile(&def, false).unwrap()
}

fn check(c: &mut Criterion) {
    let shared = Shared::new(Arc::new(model()), 64, "rd", 16, (0..64).collect());
    for i in 0..100_000u32 {
        if i % 20 == 0 {
            let user = format!("user{i}");
            shared.view.set(shared.shard_of(&user), &user, 1);
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

criterion_group!(benches, check, apply, tripwire, snapshot);
criterion_main!(benches);
