//! Helpers for the domain's unit tests: the reference rule set (plus extra
//! sections), events as producers post them, and a shard to apply them to.

use serde_json::{json, Value};

use crate::rules::{Model, ModelDef};
use crate::shard_state::{Change, Gate, Outcome, ShardState};
use crate::EntryId;

/// `config.toml`'s rule set with `extra` TOML appended.
pub fn def(extra: &str) -> ModelDef {
    toml::from_str(&format!("{}\n{extra}", include_str!("../../../config.toml"))).unwrap()
}

pub fn model(extra: &str) -> Model {
    Model::compile(&def(extra), false).unwrap()
}

pub fn event(name: &str, user: &str, mut props: Value) -> Value {
    props["user_id"] = json!(user);
    json!({"name": name, "event_properties": props})
}

pub fn flag(user: &str) -> Value {
    event("scam_message_flagged", user, json!({}))
}

/// A shard and the changes it made, for applying events at given times.
pub struct Shard {
    pub state: ShardState,
    pub changes: Vec<Change>,
    seq: u64,
}

impl Shard {
    pub fn new() -> Self {
        Shard { state: ShardState::new(3_600_000), changes: Vec::new(), seq: 0 }
    }

    /// Applies `event` at `ms`, every rule allowed to restrict.
    pub fn apply(&mut self, model: &Model, ms: u64, event: &Value) -> Outcome {
        self.gated(model, ms, event, &|_| Gate::Restrict)
    }

    pub fn gated(&mut self, model: &Model, ms: u64, event: &Value, gate: &dyn Fn(u16) -> Gate) -> Outcome {
        let valid = model.schema.validate(event).unwrap();
        self.seq += 1;
        self.state.apply_gated(model, EntryId::new(ms, self.seq), &valid, gate, &mut self.changes)
    }

    /// The restricted features of `user`, by name.
    pub fn features(&self, model: &Model, user: &str) -> Vec<String> {
        crate::user::features_of(model, self.state.users[user].restricted(model))
    }

    /// The kinds of the changes made since the last call, oldest first.
    pub fn kinds(&mut self) -> Vec<&'static str> {
        self.changes.drain(..).map(|c| c.kind.as_str()).collect()
    }
}

/// A rule's position by name.
pub fn rule(model: &Model, name: &str) -> u16 {
    model.rule_index(name).unwrap() as u16
}

/// An aggregate's position by name.
pub fn aggregate(model: &Model, name: &str) -> u16 {
    model.aggregates.iter().position(|a| &*a.name == name).unwrap() as u16
}
