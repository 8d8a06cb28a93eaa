//! Applying entries: events and operators' commands through the domain, and
//! publishing every change it returns (read view, write-behind, live feed).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use actix::prelude::*;

use super::ShardActor;
use crate::clock::now_ms;
use crate::domain::admin::{change_json, AdminCommand};
use crate::domain::ruleset::VersionRecord;
use crate::domain::schema::PropValue;
use crate::domain::shard_state::{suppressed_change, Change, ChangeKind, Gate};
use crate::domain::user::Override;
use crate::domain::{EntryId, EventKind, EventRef};
use crate::messages::Fired;
use crate::shared::{FeedItem, FeedKind};
use crate::store::minutes::RuleSeries;

/// Why an entry could not be applied: (reason, message), for its dead letter.
pub(super) type Refused = (&'static str, String);

/// A restriction waiting for its rule's budget.
pub(super) struct Held {
    user_id: Box<str>,
    rule: u16,
    entry: EntryId,
}

impl ShardActor {
    /// Applies one event entry; an entry that is not a valid event is refused.
    pub(super) fn apply_event(
        &mut self,
        id: EntryId,
        bytes: &[u8],
        now_ms: u64,
        fired: &mut Vec<Fired>,
    ) -> Result<(), Refused> {
        let model = Arc::clone(&self.model);
        let mut scratch = None;
        let event = model.schema.validate_bytes(bytes, &mut scratch).map_err(|e| (e.reason, e.message))?;
        let mut changes = Vec::new();
        // Replayed restrictions were decided (and counted) before the restart.
        let replaying = self.catch_up.is_some();
        let shared = &self.shared;
        let gate = |r| {
            if shared.tripped.contains(r) {
                Gate::Tripped
            } else if replaying || shared.take_budget(r) {
                Gate::Restrict
            } else {
                Gate::Hold
            }
        };
        let out = self.state.apply_gated(&model, id, &event, &gate, &mut changes);
        for rule in out.held.iter() {
            self.shared.budget.wait(rule, true);
            self.held.push(Held { user_id: event.user_id.into(), rule, entry: id });
        }
        let kind = match event.kind {
            EventKind::Known(k) => usize::from(k),
            EventKind::Unknown => model.schema.events.len(),
        };
        let outcome = usize::from(out.duplicate) + 2 * usize::from(out.ignored);
        self.metrics.events[kind][outcome].increment(1);
        self.metrics.lag.record(now_ms.saturating_sub(id.ms) as f64 / 1000.0);
        if !out.duplicate {
            let amount = match event.kind {
                EventKind::Known(k) => match self.amount_property[usize::from(k)].map(|p| event.values[p]) {
                    Some(PropValue::Money(m)) => m.0,
                    _ => 0,
                },
                EventKind::Unknown => 0,
            };
            self.write.record_event(kind, amount, id.ms);
            if self.shared.event_subscribers.load(Ordering::Relaxed) > 0 {
                self.feed_event(id, &event);
            }
        }
        for change in changes {
            match (change.rule, change.kind) {
                (Some(r), ChangeKind::RuleFired | ChangeKind::WouldRestrict) => {
                    let overlap = out.overlap.contains(r);
                    fired.push(Fired { rule: r, at_ms: id.ms, overlap, suppressed: false });
                    self.metrics.rules.fired[usize::from(r)].increment(1);
                }
                (Some(r), ChangeKind::Suppressed) => {
                    fired.push(Fired { rule: r, at_ms: id.ms, overlap: false, suppressed: true });
                    self.metrics.rules.suppressed[usize::from(r)].increment(1);
                }
                _ => {}
            }
            self.publish(change);
        }
        Ok(())
    }

    /// Decides the held restrictions whose rule has budget again (restrict)
    /// or tripped (suppressed); the others wait.
    pub(super) fn retry_held(&mut self, fired: &mut Vec<Fired>) {
        if self.held.is_empty() {
            return;
        }
        let model = Arc::clone(&self.model);
        for h in std::mem::take(&mut self.held) {
            if model.rules.get(usize::from(h.rule)).is_none_or(|r| r.retired) {
                // Removed by a rule set published meanwhile: nothing to decide.
                self.shared.budget.wait(h.rule, false);
                continue;
            }
            if self.shared.tripped.contains(h.rule) {
                self.shared.budget.wait(h.rule, false);
                self.metrics.rules.suppressed[usize::from(h.rule)].increment(1);
                self.state.mark_suppressed(&h.user_id, h.rule, h.entry);
                let restricted = self.state.users.get(&h.user_id).map_or(0, |u| u.restricted(&model));
                fired.push(Fired { rule: h.rule, at_ms: h.entry.ms, overlap: false, suppressed: true });
                self.publish(suppressed_change(&model, &h.user_id, h.rule, h.entry, restricted));
                continue;
            }
            if !self.shared.take_budget(h.rule) {
                self.held.push(h);
                continue;
            }
            self.shared.budget.wait(h.rule, false);
            match self.state.restrict_held(&model, &h.user_id, h.rule, h.entry) {
                Some(change) => {
                    fired.push(Fired { rule: h.rule, at_ms: h.entry.ms, overlap: false, suppressed: false });
                    self.metrics.rules.fired[usize::from(h.rule)].increment(1);
                    self.publish(change);
                }
                None => self.shared.budget.give_back(h.rule),
            }
        }
    }

    /// Reports restrictions to the tripwire; a report shed (its mailbox is
    /// full) is counted, and its restrictions no longer wait to be counted.
    pub(super) fn report(&mut self, fired: Vec<Fired>) {
        // Decisions held for budget ask for a sync (a report, even empty).
        if fired.is_empty() && self.held.is_empty() {
            return;
        }
        if let Err(e) = self.tripwire.try_send(crate::messages::RulesFired(fired)) {
            ::metrics::counter!(crate::metrics::TRIPWIRE_REPORTS_SHED_TOTAL).increment(1);
            let crate::messages::RulesFired(fired) = e.into_inner();
            for f in fired {
                if !f.suppressed && !self.model.rules[usize::from(f.rule)].shadow() {
                    self.shared.budget.give_back(f.rule);
                }
            }
        }
    }

    /// An applied event with its declared properties, for feed subscribers
    /// that asked for events (live only: no feed id).
    fn feed_event(&self, id: EntryId, event: &crate::domain::Event<'_>) {
        let (name, user_id, kind) = (event.name, event.user_id, event.kind);
        let mut properties = serde_json::Map::new();
        properties.insert("user_id".into(), user_id.into());
        if let EventKind::Known(k) = kind {
            for (i, (property, _)) in self.model.schema.properties[usize::from(k)].iter().enumerate() {
                let value = match event.values[i] {
                    PropValue::Str(s) => serde_json::Value::from(s),
                    PropValue::Integer(n) => n.into(),
                    PropValue::Bool(b) => b.into(),
                    PropValue::Money(m) => serde_json::from_str(&m.to_string()).unwrap_or_default(),
                    PropValue::Absent => continue,
                };
                properties.insert(property.to_string(), value);
            }
        }
        let json = serde_json::json!({
            "type": "event", "name": name, "user_id": user_id, "entry_id": EventRef::new(self.id, id),
            "event_properties": properties,
        });
        let json: Arc<str> = json.to_string().into();
        let frame = FeedItem::frame(None, FeedKind::Event, &json);
        let _ = self.shared.events.send(Arc::new(FeedItem {
            id: None,
            kind: FeedKind::Event,
            user_id: Some(user_id.into()),
            rule: None,
            features: 0,
            event: match kind {
                EventKind::Known(k) => Some(k),
                EventKind::Unknown => None,
            },
            json,
            change: None,
            frame,
        }));
    }

    /// Switches to the rule set an entry carries, at this position of the
    /// stream: every event before it was judged by the previous version,
    /// every event after it by this one. An older version than the shard's
    /// (a replay of a switch already applied) changes nothing.
    pub(super) fn apply_rules(&mut self, id: EntryId, bytes: &[u8]) -> Result<(), Refused> {
        let record: VersionRecord =
            serde_json::from_slice(bytes).map_err(|e| ("bad_rules", format!("not a rule-set version: {e}")))?;
        if record.version <= self.model_version {
            return Ok(());
        }
        // A version's content never changes: the shards of this process
        // compile it once and share it (with the HTTP side).
        let model = match self.shared.model_of(record.version) {
            Some(model) => model,
            None => {
                let model = record
                    .compile(self.model.schema.accepts_unknown())
                    .map_err(|e| ("bad_rules", format!("rule-set version {} does not compile: {e}", record.version)))?;
                Arc::new(model)
            }
        };
        let old = Arc::clone(&self.model);
        self.state.switch(&old, &model);
        self.write.switch(&old, &model, record.version);
        tracing::info!(shard = self.id, version = record.version, "rule set switched");
        self.set_model(record.version, model);
        if record.lift_removed {
            let model = Arc::clone(&self.model);
            for change in self.state.lift_rules(&model, &record.retired_here(), id) {
                self.publish(change);
            }
        }
        // An automatic rollback: what the tripped rule restricted in its
        // window goes, including what it decided after the trip's own revert
        // (the rule was re-armed before this shard reached this switch).
        if let Some(revert) = &record.revert {
            let model = Arc::clone(&self.model);
            if let Some(r) = model.rule_index(&revert.rule) {
                let r = r as u16;
                for change in self.state.revert(&model, r, revert.since_ms, id.ms) {
                    self.publish(change);
                }
                // Decisions held for budget were the rolled-back definition's.
                let before = self.held.len();
                self.held.retain(|h| h.rule != r);
                for _ in self.held.len()..before {
                    self.shared.budget.wait(r, false);
                }
            }
        }
        Ok(())
    }

    /// Applies an operator's command entry.
    pub(super) fn apply_admin(&mut self, id: EntryId, bytes: &[u8]) -> Result<(), Refused> {
        let model = Arc::clone(&self.model);
        let command: AdminCommand =
            serde_json::from_slice(bytes).map_err(|e| ("bad_admin_command", format!("not an admin command: {e}")))?;
        let feature_of = |name: &str| {
            model
                .feature_index(name)
                .map(|f| f as u8)
                .ok_or_else(|| ("bad_admin_command", format!("unknown feature {name:?}")))
        };
        let change = match &command {
            AdminCommand::SetOverride { user_id, feature, allowed, reason, by, expires_at_ms } => {
                let f = feature_of(feature)?;
                let o = Override {
                    feature: f,
                    allowed: *allowed,
                    reason: reason.as_str().into(),
                    by: by.as_str().into(),
                    at_ms: id.ms,
                    expires_at_ms: *expires_at_ms,
                };
                self.state.set_override(&model, id, user_id, f, Some(o), by)
            }
            AdminCommand::ClearOverride { user_id, feature, by } => {
                let f = feature_of(feature)?;
                self.state.set_override(&model, id, user_id, f, None, by)
            }
            AdminCommand::ApplySuppressed { rule, since_ms, by } => {
                let r =
                    model.rule_index(rule).ok_or_else(|| ("bad_admin_command", format!("unknown rule {rule:?}")))?;
                // An operator's decision on a rule just re-armed: not counted
                // in its window (it would trip the rule again at once).
                for change in self.state.apply_suppressed(&model, r as u16, *since_ms, id, by) {
                    self.metrics.rules.fired[r].increment(1);
                    self.publish(change);
                }
                None
            }
        };
        if let Some(change) = change {
            self.publish(change);
        }
        Ok(())
    }

    /// Publishes a change: into the read view, the write-behind (changelog
    /// and the feed, audit, history).
    pub(super) fn publish(&mut self, change: Change) {
        let causes = match self.state.users.get(&change.user_id) {
            Some(user) => user.causes(&self.model),
            None => String::new(),
        };
        self.shared.view.set(self.id, &change.user_id, change.restricted_after, &causes);
        let series = match change.kind {
            ChangeKind::RuleFired => Some(RuleSeries::Fired),
            ChangeKind::WouldRestrict => Some(RuleSeries::WouldRestrict),
            ChangeKind::Suppressed => Some(RuleSeries::Suppressed),
            _ => None,
        };
        if let (Some(rule), Some(series)) = (change.rule, series) {
            self.write.record_decision(rule, series, change.at_ms);
        }
        // One copy of the JSON for the changelog, the feed, the audit and the history.
        let json: Arc<str> = change_json(&self.model, self.model_version, self.id, &change, &causes).into();
        self.write.record_change(change.user_id, causes, json);
    }

    /// Lifts what expired, and decides held restrictions; visible to checks at once.
    pub(super) fn sweep(&mut self, ctx: &mut Context<Self>) {
        let model = Arc::clone(&self.model);
        for change in self.state.sweep(&model, now_ms()) {
            self.publish(change);
        }
        let mut fired = Vec::new();
        self.retry_held(&mut fired);
        self.report(fired);
        self.schedule_changelog(ctx);
    }
}
