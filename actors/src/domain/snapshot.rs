//! The snapshot format of one user: a version byte, then bincode (standard
//! config) of the version's struct. Aggregates and rules are stored by name,
//! so a restart with rules added, removed or reordered maps state correctly:
//! aggregates or rules no longer in config are dropped, new ones start at zero.
//!
//! A new format gets a new version byte and a new struct; the decoder keeps
//! reading every older version (tests hold a stored fixture of each).

use bincode::config::standard;

use super::entry_id::EntryId;
use super::rules::{Model, Slot};
use super::user::{Restriction, UserState};

/// The version written by this build.
pub const VERSION: u8 = 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    #[error("empty snapshot")]
    Empty,
    #[error("snapshot version {0} is newer than this build understands ({VERSION})")]
    UnknownVersion(u8),
    #[error("corrupt snapshot: {0}")]
    Corrupt(String),
}

#[derive(bincode::Encode)]
struct UserV1Ref<'a> {
    scalars: Vec<(&'a str, u64)>,
    sets: Vec<(&'a str, &'a [u64])>,
    restrictions: Vec<(&'a str, EntryId, u64)>,
}

#[derive(bincode::Decode)]
struct UserV1 {
    scalars: Vec<(String, u64)>,
    sets: Vec<(String, Vec<u64>)>,
    restrictions: Vec<(String, EntryId, u64)>,
}

/// Encodes a user in the current format.
pub fn encode_user(model: &Model, user: &UserState) -> Vec<u8> {
    let mut scalars = Vec::with_capacity(user.scalars.len());
    let mut sets = Vec::with_capacity(user.sets.len());
    for a in &model.aggregates {
        match a.slot {
            Slot::Scalar(s) => scalars.push((&*a.name, user.scalars[usize::from(s)])),
            Slot::Set(s) => sets.push((&*a.name, &*user.sets[usize::from(s)])),
        }
    }
    let restrictions = user
        .restrictions
        .iter()
        .map(|r| (&*model.rules[usize::from(r.rule)].name, r.entry, r.at_ms))
        .collect();
    let mut out = vec![VERSION];
    bincode::encode_into_std_write(
        UserV1Ref {
            scalars,
            sets,
            restrictions,
        },
        &mut out,
        standard(),
    )
    .expect("writing to a Vec cannot fail");
    out
}

/// Decodes a user written by this or any earlier version.
pub fn decode_user(model: &Model, bytes: &[u8]) -> Result<UserState, SnapshotError> {
    let (&version, body) = bytes.split_first().ok_or(SnapshotError::Empty)?;
    match version {
        1 => {
            let (v1, _): (UserV1, usize) = bincode::decode_from_slice(body, standard())
                .map_err(|e| SnapshotError::Corrupt(e.to_string()))?;
            Ok(from_v1(model, v1))
        }
        other => Err(SnapshotError::UnknownVersion(other)),
    }
}

fn from_v1(model: &Model, v1: UserV1) -> UserState {
    let mut user = UserState::new(model);
    let slot = |name: &str| {
        model
            .aggregates
            .iter()
            .find(|a| &*a.name == name)
            .map(|a| a.slot)
    };
    for (name, value) in v1.scalars {
        if let Some(Slot::Scalar(s)) = slot(&name) {
            user.scalars[usize::from(s)] = value;
        }
    }
    for (name, mut values) in v1.sets {
        if let Some(Slot::Set(s)) = slot(&name) {
            values.sort_unstable();
            values.dedup();
            user.sets[usize::from(s)] = values.into_boxed_slice();
        }
    }
    for (rule, entry, at_ms) in v1.restrictions {
        if let Some(r) = model.rule_index(&rule) {
            user.restrictions.push(Restriction {
                rule: r as u16,
                entry,
                at_ms,
            });
        }
    }
    user
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ModelDef;

    fn model() -> Model {
        let def: ModelDef = toml::from_str(include_str!("../../../config.toml")).unwrap();
        Model::compile(&def, false).unwrap()
    }

    /// The user stored in `tests/fixtures/user_v1.bin`.
    fn fixture_user(m: &Model) -> UserState {
        let mut u = UserState::new(m);
        let agg = |n: &str| m.aggregates.iter().find(|a| &*a.name == n).unwrap().slot;
        let Slot::Scalar(flags) = agg("scam_flags") else {
            panic!()
        };
        let Slot::Scalar(spend) = agg("spend") else {
            panic!()
        };
        let Slot::Set(cards) = agg("cards") else {
            panic!()
        };
        u.scalars[usize::from(flags)] = 2;
        u.scalars[usize::from(spend)] = 100_250_000;
        u.sets[usize::from(cards)] = vec![3, 7, 11].into_boxed_slice();
        u.restrictions.push(Restriction {
            rule: m.rule_index("scam_message_rule").unwrap() as u16,
            entry: EntryId::new(1_700_000_000_123, 4),
            at_ms: 1_700_000_000_123,
        });
        u
    }

    #[test]
    fn a_user_round_trips() {
        let m = model();
        let u = fixture_user(&m);
        assert_eq!(decode_user(&m, &encode_user(&m, &u)).unwrap(), u);
    }

    #[test]
    fn the_stored_version_1_fixture_still_decodes() {
        let m = model();
        let stored = include_bytes!("../../tests/fixtures/user_v1.bin");
        assert_eq!(stored[0], 1);
        assert_eq!(decode_user(&m, stored).unwrap(), fixture_user(&m));
    }

    #[test]
    fn state_follows_names_when_rules_change() {
        let m = model();
        let bytes = encode_user(&m, &fixture_user(&m));
        let mut def: ModelDef = toml::from_str(include_str!("../../../config.toml")).unwrap();
        def.rules.remove("scam_message_rule");
        def.aggregates.remove("spend");
        def.rules.remove("chargeback_ratio_rule");
        let smaller = Model::compile(&def, false).unwrap();
        let u = decode_user(&smaller, &bytes).unwrap();
        assert!(
            u.restrictions.is_empty(),
            "a removed rule's restrictions are dropped"
        );
        let flags = smaller
            .aggregates
            .iter()
            .position(|a| &*a.name == "scam_flags")
            .unwrap();
        assert_eq!(u.aggregate(&smaller, flags as u16), 2);
    }

    #[test]
    fn unknown_and_corrupt_snapshots_are_errors_not_panics() {
        let m = model();
        assert_eq!(decode_user(&m, &[]), Err(SnapshotError::Empty));
        assert_eq!(
            decode_user(&m, &[9, 1, 2]),
            Err(SnapshotError::UnknownVersion(9))
        );
        assert!(matches!(
            decode_user(&m, &[1, 200, 200, 200]),
            Err(SnapshotError::Corrupt(_))
        ));
    }

    #[test]
    #[ignore = "writes the fixture; run once when a format version is added"]
    fn write_fixture() {
        let m = model();
        std::fs::write(
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/user_v1.bin"),
            encode_user(&m, &fixture_user(&m)),
        )
        .unwrap();
    }
}
