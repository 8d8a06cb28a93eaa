use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::domain::ModelDef;

fn model() -> Model {
    let def: ModelDef = toml::from_str(include_str!("../../../../config.toml")).unwrap();
    Model::compile(&def, false).unwrap()
}

fn settings() -> PersistSettings {
    PersistSettings {
        flush_interval: Duration::from_secs(1),
        dirty_limit: 10,
        trim_margin: None,
        changelog_delay: Duration::from_millis(100),
    }
}

/// Applies a scam flag for `user` at entry `ms`-0 and records it as the actor does.
fn flag(state: &mut ShardState, wb: &mut WriteBehind, model: &Model, user: &str, ms: u64) {
    let json = format!(r#"{{"name": "scam_message_flagged", "event_properties": {{"user_id": "{user}"}}}}"#);
    let mut scratch = None;
    let event = model.schema.validate_bytes(json.as_bytes(), &mut scratch).unwrap();
    state.apply(model, EntryId::new(ms, 0), &event, &|_| false, &mut Vec::new());
    wb.record_event(0, 0, ms);
    wb.record_change(user.into(), "can_message:scam_message_rule".into(), Arc::from(format!("change of {user}")));
}

#[test]
fn a_failed_flush_gives_its_users_audit_stats_and_changes_back_in_order() {
    let model = model();
    let (mut state, mut wb) = (ShardState::new(60_000), WriteBehind::new(settings(), model.schema.events.len()));
    flag(&mut state, &mut wb, &model, "u1", 10);
    let first = wb.begin_flush(&mut state, &model).expect("a snapshot to write");
    assert_eq!(first.users.len(), 1);
    assert!(state.dirty.is_empty());
    assert_eq!(wb.end_flush(first, false, &mut state), Flushed::Failed { first: true });
    assert!(state.dirty.contains("u1"), "the user is dirty again");

    flag(&mut state, &mut wb, &model, "u2", 20);
    let second = wb.begin_flush(&mut state, &model).expect("a snapshot to write");
    let mut users: Vec<&str> = second.users.iter().map(|(u, _)| &**u).collect();
    users.sort();
    assert_eq!(users, ["u1", "u2"]);
    let audit: Vec<&str> = second.audit.iter().map(|(_, j)| &**j).collect();
    assert_eq!(audit, ["change of u1", "change of u2"], "given back in front of newer changes");
    assert_eq!(&*second.changes.entries[0], "change of u1");
    assert_eq!(second.changes.entries.len(), 2);
    let stats: Vec<(String, u64)> = second.stats.fields();
    assert!(stats.contains(&(format!("count:{}", model.schema.events[0]), 2)), "{stats:?}");
    assert_eq!(second.offset, EntryId::new(20, 0));
    assert_eq!(wb.end_flush(second, false, &mut state), Flushed::Failed { first: false }, "logged once");
}

#[test]
fn one_write_is_in_flight_at_a_time_and_a_wanted_snapshot_follows() {
    let model = model();
    let (mut state, mut wb) = (ShardState::new(60_000), WriteBehind::new(settings(), model.schema.events.len()));
    flag(&mut state, &mut wb, &model, "u1", 10);
    let changes = wb.begin_changelog().expect("pending changes");
    assert!(wb.begin_flush(&mut state, &model).is_none(), "waits for the changelog write");
    assert!(wb.begin_changelog().is_none());
    assert!(wb.end_changelog(changes, true), "the snapshot asked for meanwhile is wanted");
    let batch = wb.begin_flush(&mut state, &model).expect("a snapshot");
    assert!(batch.changes.entries.is_empty(), "already written by the changelog");
    let mut persisted = wb.persisted();
    assert_eq!(*persisted.borrow_and_update(), EntryId::ZERO);
    assert_eq!(wb.end_flush(batch, true, &mut state), Flushed::Written { again: false });
    assert_eq!(*persisted.borrow(), EntryId::new(10, 0));
    assert!(wb.begin_flush(&mut state, &model).is_none(), "nothing changed since");
}

#[test]
fn a_failed_changelog_write_is_retried_with_the_newest_set_per_user() {
    let model = model();
    let (mut state, mut wb) = (ShardState::new(60_000), WriteBehind::new(settings(), model.schema.events.len()));
    flag(&mut state, &mut wb, &model, "u1", 10);
    let batch = wb.begin_changelog().unwrap();
    wb.record_change("u1".into(), String::new(), Arc::from("lifted"));
    assert!(!wb.end_changelog(batch, false));
    let retry = wb.begin_changelog().unwrap();
    assert_eq!(retry.entries.len(), 2);
    assert_eq!(retry.restricted, vec![(Box::from("u1"), String::new())], "the newer (empty) set wins");
}
