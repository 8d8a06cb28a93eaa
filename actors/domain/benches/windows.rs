//! Windowed aggregates and CEL conditions: evaluating a compiled condition
//! (today's syntax, the same in CEL, and CEL beyond the fast shapes), events
//! applied with the default rules against `examples/velocity.toml`, and the
//! heap bytes per user of each at 1,000,000 users.
//!
//! `cargo bench -p restrictd-actors --bench windows`
//! (`-- --memory` prints heap bytes per user instead; it takes a minute.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};

use criterion::Criterion;
use restrictd_domain::rules::AggregateValues;
use restrictd_domain::{EntryId, Model, ModelDef, ShardState};
use serde_json::{json, Value};

/// The system allocator, counting live bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn compile(text: &str) -> Model {
    let def: ModelDef = toml::from_str(text).unwrap();
    Model::compile(&def, false).unwrap()
}

fn default_model() -> Model {
    compile(include_str!("../../../config.toml"))
}

fn velocity_model() -> Model {
    compile(include_str!("../../../examples/velocity.toml"))
}

struct Vals(Vec<u64>);
impl AggregateValues for Vals {
    fn value(&self, a: u16) -> u64 {
        self.0[usize::from(a)]
    }
}

fn conditions(c: &mut Criterion) {
    let base = include_str!("../../../config.toml");
    let cases = [
        ("today's syntax", "spend > 0 and chargebacks / spend > 0.10"),
        ("CEL, same condition", "spend > 0 && chargebacks / spend > 0.10"),
        ("CEL beyond the fast shapes", "spend > 0 && (chargebacks / spend > 0.10 || chargebacks - spend * 2 > 0)"),
    ];
    for (name, when) in cases {
        let model = compile(&base.replace("chargebacks / spend > 0.10", when));
        let rule = &model.rules[model.rule_index("chargeback_ratio_rule").unwrap()];
        let index = |n: &str| model.aggregates.iter().position(|a| &*a.name == n).unwrap();
        let mut values = vec![0u64; model.aggregates.len()];
        values[index("chargebacks")] = 11_000_000;
        values[index("spend")] = 100_000_000;
        let values = Vals(values);
        assert!(rule.holds(&values, None));
        c.bench_function(&format!("condition: {name}"), |b| b.iter(|| black_box(rule.holds(black_box(&values), None))));
    }
}

/// Event `i` of user `u`: every user's four kinds of events, `per_user` of
/// them spread over 30 days of event time (so every window holds some and
/// drops some).
fn event(u: usize, i: usize, per_user: usize) -> Value {
    let start = 1_780_000_000_000u64;
    let step = 30 * 24 * 3_600_000 / per_user as u64;
    let user = format!("user{u}");
    let mut e = match i % 4 {
        0 => json!({"name": "scam_message_flagged", "event_properties": {"user_id": user}}),
        1 => json!({"name": "purchase_made", "event_properties": {"user_id": user, "amount": 40 + i}}),
        2 => json!({"name": "chargeback_occurred", "event_properties": {"user_id": user, "amount": 1}}),
        _ => json!({"name": "credit_card_added", "event_properties":
                {"user_id": user, "card_id": format!("c{i}"), "zip_code": format!("{}", 10000 + i % 3)}}),
    };
    e["occurred_at"] = json!(start + i as u64 * step + (u as u64 % 1000) * 1000);
    e
}

fn apply(c: &mut Criterion) {
    let events: Vec<Value> = (0..20).flat_map(|i| (0..10_000).map(move |u| event(u, i, 20))).collect();
    for (name, model) in [("default rules", default_model()), ("examples/velocity.toml", velocity_model())] {
        let validated: Vec<_> = events.iter().map(|v| model.schema.validate(v).unwrap()).collect();
        let mut shard = ShardState::new(60_000);
        let (mut seq, mut changes) = (0u64, Vec::new());
        c.bench_function(&format!("apply: mixed stream, {name}"), |b| {
            b.iter(|| {
                let event = &validated[seq as usize % validated.len()];
                seq += 1;
                changes.clear();
                let at = event.occurred_at_ms.unwrap();
                if seq % 256 == 0 {
                    // The shard's sweep runs every 250 ms.
                    black_box(shard.sweep(&model, at));
                }
                black_box(shard.apply(&model, EntryId::new(at, seq), event, &|_| false, &mut changes))
            })
        });
    }
}

/// Heap bytes per user once 1,000,000 users each sent 20 events over 30 days.
fn memory() {
    for (name, model) in [("default rules", default_model()), ("examples/velocity.toml", velocity_model())] {
        let users = 1_000_000;
        let before = LIVE.load(Ordering::Relaxed);
        let mut shard = ShardState::new(0);
        let mut changes = Vec::new();
        for i in 0..20 {
            for u in 0..users {
                let v = event(u, i, 20);
                let e = model.schema.validate(&v).unwrap();
                let id = EntryId::new(e.occurred_at_ms.unwrap(), (i * users + u) as u64);
                changes.clear();
                shard.apply(&model, id, &e, &|_| false, &mut changes);
            }
        }
        shard.dirty.clear();
        shard.dirty.shrink_to_fit();
        let bytes = LIVE.load(Ordering::Relaxed) - before;
        println!("memory: {name}: {} heap bytes per user", bytes / users as isize);
        drop(shard);
    }
}

fn main() {
    if std::env::args().any(|a| a == "--memory") {
        memory();
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    conditions(&mut c);
    apply(&mut c);
    c.final_summary();
}
