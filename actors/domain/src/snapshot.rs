//! The snapshot format of one user: a version byte, then bincode (standard
//! config) of the version's struct. Aggregates and rules are stored by name,
//! so a restart with rules added, removed or reordered maps state correctly:
//! aggregates or rules no longer in config are dropped, new ones start at zero.
//! Aggregates at zero are not stored at all (most users have few non-zero).
//!
//! Version 4 stores version 3's sections, each only when not empty, after a
//! byte that says which are there: a user with one aggregate is 18 bytes,
//! and fits a smaller allocation in Redis.
//!
//! A new format gets a new version byte and a new struct; the decoder keeps
//! reading every older version (tests hold a stored fixture of each).

use bincode::config::standard;

use super::entry_id::EntryId;
use super::rules::{Model, Slot};
use super::user::{Override, Restriction, UserState};
use super::window::Window;

/// The version written by this build.
pub const VERSION: u8 = 4;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    #[error("empty snapshot")]
    Empty,
    #[error("snapshot version {0} is newer than this build understands ({VERSION})")]
    UnknownVersion(u8),
    #[error("corrupt snapshot: {0}")]
    Corrupt(String),
}

/// Version 1: aggregates and restrictions (no expiry, no overrides).
#[derive(bincode::BorrowDecode)]
struct UserV1<'a> {
    scalars: Vec<(&'a str, u64)>,
    sets: Vec<(&'a str, Vec<u64>)>,
    restrictions: Vec<(&'a str, EntryId, u64)>,
}

/// An override as version 2 stores it: (feature, allowed, reason, by, at_ms, expires_at_ms).
type StoredOverride<'a> = (&'a str, bool, &'a str, &'a str, u64, Option<u64>);

/// Version 2: restrictions carry their expiry; overrides (`StoredOverride`).
/// Decoded in place: names borrow the stored bytes.
#[derive(bincode::BorrowDecode)]
struct UserV2<'a> {
    scalars: Vec<(&'a str, u64)>,
    sets: Vec<(&'a str, Vec<u64>)>,
    restrictions: Vec<(&'a str, EntryId, u64, Option<u64>)>,
    overrides: Vec<StoredOverride<'a>>,
}

/// A windowed aggregate as version 3 stores it: (name, window in seconds,
/// (second, value) entries, merged).
type StoredWindow<'a> = (&'a str, u32, Vec<(u32, u64)>, u32);

/// Version 3: version 2, the windowed aggregates (a window is carried only
/// to an aggregate of the same name and window), and the restrictions the
/// tripwire withheld: (rule, entry, at_ms).
#[derive(bincode::BorrowDecode)]
struct UserV3<'a> {
    v2: UserV2<'a>,
    windows: Vec<StoredWindow<'a>>,
    suppressed: Vec<(&'a str, EntryId, u64)>,
}

/// Encodes a user in the current format.
pub fn encode_user(model: &Model, user: &UserState) -> Vec<u8> {
    let mut scalars = Vec::with_capacity(user.scalars.len());
    let mut sets = Vec::with_capacity(model.set_count);
    let mut windows: Vec<StoredWindow<'_>> = Vec::new();
    // Zeros and empty sets are left out: an aggregate a snapshot does not
    // name starts at zero (as one added by a later rule set does).
    for a in &model.aggregates {
        match a.slot {
            Slot::Scalar(s) if user.scalars[usize::from(s)] != 0 => {
                scalars.push((&*a.name, user.scalars[usize::from(s)]))
            }
            Slot::Scalar(_) => {}
            Slot::Set(s) if !user.set(usize::from(s)).is_empty() => sets.push((&*a.name, user.set(usize::from(s)))),
            Slot::Set(_) => {}
            Slot::Window(w) => {
                if let Some(state) = user.windows.get(usize::from(w)).filter(|w| !w.is_empty()) {
                    windows.push((&*a.name, a.window.unwrap_or(0), state.entries().collect(), state.merged()));
                }
            }
        }
    }
    let restrictions: Vec<_> = user
        .restrictions
        .iter()
        .filter(|r| !r.suppressed)
        .map(|r| (&*model.rules[usize::from(r.rule)].name, r.entry, r.at_ms, r.expires_at_ms))
        .collect();
    let suppressed: Vec<_> = user
        .restrictions
        .iter()
        .filter(|r| r.suppressed)
        .map(|r| (&*model.rules[usize::from(r.rule)].name, r.entry, r.at_ms))
        .collect();
    let overrides: Vec<_> = user
        .overrides
        .iter()
        .map(|o| (&*model.features[usize::from(o.feature)], o.allowed, &*o.reason, &*o.by, o.at_ms, o.expires_at_ms))
        .collect();
    let mut out = vec![VERSION, 0];
    put_section(&mut out, 0, &scalars);
    put_section(&mut out, 1, &sets);
    put_section(&mut out, 2, &restrictions);
    put_section(&mut out, 3, &overrides);
    put_section(&mut out, 4, &windows);
    put_section(&mut out, 5, &suppressed);
    out
}

/// Appends section `bit` of version 4 unless it is empty, and marks it in
/// the sections byte (`out[1]`).
fn put_section<T: bincode::Encode>(out: &mut Vec<u8>, bit: u8, items: &Vec<T>) {
    if !items.is_empty() {
        out[1] |= 1 << bit;
        bincode::encode_into_std_write(items, out, standard()).expect("writing to a Vec cannot fail");
    }
}

/// Sections of version 4 that `present` marks, in order; absent ones are empty.
fn decode_v4(body: &[u8]) -> Result<UserV3<'_>, SnapshotError> {
    let (&present, mut rest) = body.split_first().ok_or(SnapshotError::Corrupt("no section byte".into()))?;
    if present >> 6 != 0 {
        return Err(SnapshotError::Corrupt(format!("unknown sections {present:#010b}")));
    }
    let has = |bit: u8| present & (1 << bit) != 0;
    let v2 = UserV2 {
        scalars: section(&mut rest, has(0))?,
        sets: section(&mut rest, has(1))?,
        restrictions: section(&mut rest, has(2))?,
        overrides: section(&mut rest, has(3))?,
    };
    Ok(UserV3 { v2, windows: section(&mut rest, has(4))?, suppressed: section(&mut rest, has(5))? })
}

/// One section of version 4, read from the front of `rest` when `present`.
fn section<'a, T: bincode::BorrowDecode<'a, ()>>(rest: &mut &'a [u8], present: bool) -> Result<Vec<T>, SnapshotError> {
    if !present {
        return Ok(Vec::new());
    }
    let (value, used) = bincode::borrow_decode_from_slice(rest, limited())
        .map_err(|e: bincode::error::DecodeError| SnapshotError::Corrupt(e.to_string()))?;
    *rest = &rest[used..];
    Ok(value)
}

/// Bytes a decoded user may claim. A length read from a corrupt snapshot
/// would otherwise be allocated as it stands (a terabyte aborts the process);
/// past this it is refused as corrupt. A real user is a few kilobytes, at
/// most a few megabytes with full windows.
const DECODE_LIMIT: usize = 256 * 1024 * 1024;

fn limited() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<DECODE_LIMIT>,
> {
    standard().with_limit::<DECODE_LIMIT>()
}

/// Decodes a user written by this or any earlier version.
pub fn decode_user(model: &Model, bytes: &[u8]) -> Result<UserState, SnapshotError> {
    let (&version, body) = bytes.split_first().ok_or(SnapshotError::Empty)?;
    let corrupt = |e: bincode::error::DecodeError| SnapshotError::Corrupt(e.to_string());
    let v3 = match version {
        1 => {
            let (v1, _): (UserV1, usize) = bincode::borrow_decode_from_slice(body, limited()).map_err(corrupt)?;
            let v2 = UserV2 {
                scalars: v1.scalars,
                sets: v1.sets,
                restrictions: v1.restrictions.into_iter().map(|(r, e, at)| (r, e, at, None)).collect(),
                overrides: Vec::new(),
            };
            UserV3 { v2, windows: Vec::new(), suppressed: Vec::new() }
        }
        2 => {
            let v2 = bincode::borrow_decode_from_slice(body, limited()).map_err(corrupt)?.0;
            UserV3 { v2, windows: Vec::new(), suppressed: Vec::new() }
        }
        3 => bincode::borrow_decode_from_slice(body, limited()).map_err(corrupt)?.0,
        4 => decode_v4(body)?,
        other => return Err(SnapshotError::UnknownVersion(other)),
    };
    Ok(from_v3(model, v3))
}

fn from_v3(model: &Model, v3: UserV3<'_>) -> UserState {
    let UserV3 { v2, windows, suppressed } = v3;
    let mut user = UserState::new(model);
    for (name, window, entries, merged) in windows {
        let Some(a) = model.aggregates.iter().find(|a| &*a.name == name && a.window == Some(window)) else {
            continue;
        };
        if let (Slot::Window(w), false) = (a.slot, entries.is_empty()) {
            *user.window_mut(model, usize::from(w)) = Window::from_parts(a.kind, entries, merged);
        }
    }
    let slot = |name: &str| model.aggregates.iter().find(|a| &*a.name == name).map(|a| a.slot);
    for (name, value) in v2.scalars {
        if let Some(Slot::Scalar(s)) = slot(name) {
            user.scalars[usize::from(s)] = value;
        }
    }
    for (name, mut values) in v2.sets {
        if let Some(Slot::Set(s)) = slot(name) {
            values.sort_unstable();
            values.dedup();
            if !values.is_empty() {
                user.replace_set(model, usize::from(s), &values);
            }
        }
    }
    for (rule, entry, at_ms, expires_at_ms) in v2.restrictions {
        if let Some(r) = model.rule_index(rule) {
            user.restrictions.push(Restriction { rule: r as u16, entry, at_ms, expires_at_ms, suppressed: false });
        }
    }
    for (rule, entry, at_ms) in suppressed {
        if let Some(r) = model.rule_index(rule) {
            let marker = Restriction { rule: r as u16, entry, at_ms, expires_at_ms: None, suppressed: true };
            user.restrictions.push(marker);
        }
    }
    for (feature, allowed, reason, by, at_ms, expires_at_ms) in v2.overrides {
        if let Some(f) = model.feature_index(feature) {
            user.overrides.push(Override {
                feature: f as u8,
                allowed,
                reason: reason.into(),
                by: by.into(),
                at_ms,
                expires_at_ms,
            });
        }
    }
    user
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ModelDef;

    fn model() -> Model {
        let def: ModelDef = toml::from_str(include_str!("../../../config.toml")).unwrap();
        Model::compile(&def, false).unwrap()
    }

    /// The default model and a windowed count, `flags_1h`.
    fn windowed_model() -> Model {
        let mut def: ModelDef = toml::from_str(include_str!("../../../config.toml")).unwrap();
        let flags: crate::rules::AggregateDef =
            toml::from_str("kind = \"count\"\nevent = \"scam_message_flagged\"\nwindow = \"1h\"").unwrap();
        def.aggregates.insert("flags_1h".into(), flags);
        Model::compile(&def, false).unwrap()
    }

    /// The user stored in `tests/fixtures/user_v3.bin`: v2's, plus a window.
    fn fixture_user_v3(m: &Model) -> UserState {
        let mut u = fixture_user_v2(m);
        let Slot::Window(w) = m.aggregates.iter().find(|a| &*a.name == "flags_1h").unwrap().slot else { panic!() };
        let kind = crate::rules::AggregateKind::Count;
        *u.window_mut(m, usize::from(w)) = Window::from_parts(kind, vec![(1_700_000_000, 2), (1_700_000_100, 1)], 0);
        u.mark_suppressed(m.rule_index("unique_zip_code_rule").unwrap() as u16, EntryId::new(1_700_000_200_000, 1));
        u
    }

    /// The user stored in `tests/fixtures/user_v1.bin`.
    fn fixture_user(m: &Model) -> UserState {
        let mut u = UserState::new(m);
        let agg = |n: &str| m.aggregates.iter().find(|a| &*a.name == n).unwrap().slot;
        let Slot::Scalar(flags) = agg("scam_flags") else { panic!() };
        let Slot::Scalar(spend) = agg("spend") else { panic!() };
        let Slot::Set(cards) = agg("cards") else { panic!() };
        u.scalars[usize::from(flags)] = 2;
        u.scalars[usize::from(spend)] = 100_250_000;
        u.replace_set(m, usize::from(cards), &[3, 7, 11]);
        u.restrictions.push(Restriction {
            rule: m.rule_index("scam_message_rule").unwrap() as u16,
            entry: EntryId::new(1_700_000_000_123, 4),
            at_ms: 1_700_000_000_123,
            expires_at_ms: None,
            suppressed: false,
        });
        u
    }

    /// The user stored in `tests/fixtures/user_v2.bin`: v1's, plus an expiry and an override.
    fn fixture_user_v2(m: &Model) -> UserState {
        let mut u = fixture_user(m);
        u.restrictions[0].expires_at_ms = Some(1_702_592_000_123);
        u.overrides.push(Override {
            feature: m.feature_index("can_purchase").unwrap() as u8,
            allowed: true,
            reason: "appeal 4411 accepted".into(),
            by: "ops".into(),
            at_ms: 1_700_000_100_000,
            expires_at_ms: Some(1_700_604_900_000),
        });
        u
    }

    #[test]
    fn a_corrupt_length_is_refused_without_allocating_it() {
        // Version 3, then a scalar list claiming 2^40 entries.
        let mut bytes = vec![3u8, 253];
        bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(matches!(decode_user(&model(), &bytes), Err(SnapshotError::Corrupt(_))));
    }

    #[test]
    fn aggregates_at_zero_are_not_stored_and_come_back_as_zero() {
        let m = model();
        let mut u = UserState::new(&m);
        let blank = encode_user(&m, &u);
        assert!(blank.len() <= 8, "a user with nothing is a few bytes: {blank:?}");
        assert_eq!(decode_user(&m, &blank).unwrap(), u);
        let Some(Slot::Scalar(spend)) = m.aggregates.iter().find(|a| &*a.name == "spend").map(|a| a.slot) else {
            panic!()
        };
        u.scalars[usize::from(spend)] = 10_000_000;
        let one = encode_user(&m, &u);
        assert!(!String::from_utf8_lossy(&one).contains("scam_flags"), "{one:?}");
        assert_eq!(one.len(), 1 + 1 + 1 + 6 + 5, "version, sections, one (name, value): {one:?}");
        assert_eq!(decode_user(&m, &one).unwrap(), u);
    }

    #[test]
    fn a_user_round_trips() {
        let m = model();
        let u = fixture_user_v2(&m);
        assert_eq!(decode_user(&m, &encode_user(&m, &u)).unwrap(), u);
    }

    #[test]
    fn a_user_with_windows_round_trips_and_the_version_3_fixture_decodes() {
        let m = windowed_model();
        let u = fixture_user_v3(&m);
        assert_eq!(decode_user(&m, &encode_user(&m, &u)).unwrap(), u);
        let stored = include_bytes!("../tests/fixtures/user_v3.bin");
        assert_eq!(stored[0], 3);
        assert_eq!(decode_user(&m, stored).unwrap(), u);
        let plain = decode_user(&model(), stored).unwrap();
        assert!(plain.windows.is_empty(), "a window without its aggregate is dropped");
        let mut expected = fixture_user_v2(&model());
        expected.mark_suppressed(
            model().rule_index("unique_zip_code_rule").unwrap() as u16,
            EntryId::new(1_700_000_200_000, 1),
        );
        assert_eq!(plain, expected);
    }

    #[test]
    fn the_stored_version_4_fixture_decodes() {
        let m = windowed_model();
        let stored = include_bytes!("../tests/fixtures/user_v4.bin");
        assert_eq!(stored[0], 4);
        assert_eq!(decode_user(&m, stored).unwrap(), fixture_user_v3(&m));
        assert_eq!(encode_user(&m, &fixture_user_v3(&m)), stored, "this build writes version 4");
    }

    #[test]
    fn a_version_4_snapshot_with_unknown_or_missing_sections_is_corrupt() {
        let m = model();
        for bytes in [&[4u8][..], &[4, 0b0100_0000], &[4, 0b1], &[4, 0b11, 1, 5, b's', b'p', b'e', b'n', b'd', 1]] {
            assert!(matches!(decode_user(&m, bytes), Err(SnapshotError::Corrupt(_))), "{bytes:?}");
        }
        assert_eq!(decode_user(&m, &[4, 0]).unwrap(), UserState::new(&m), "no sections: a blank user");
    }

    #[test]
    fn the_stored_version_2_fixture_still_decodes() {
        let m = model();
        let stored = include_bytes!("../tests/fixtures/user_v2.bin");
        assert_eq!(stored[0], 2);
        assert_eq!(decode_user(&m, stored).unwrap(), fixture_user_v2(&m));
    }

    #[test]
    fn the_stored_version_1_fixture_still_decodes() {
        let m = model();
        let stored = include_bytes!("../tests/fixtures/user_v1.bin");
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
        assert!(u.restrictions.is_empty(), "a removed rule's restrictions are dropped");
        let flags = smaller.aggregates.iter().position(|a| &*a.name == "scam_flags").unwrap();
        assert_eq!(u.aggregate(&smaller, flags as u16), 2);
    }

    #[test]
    fn unknown_and_corrupt_snapshots_are_errors_not_panics() {
        let m = model();
        assert_eq!(decode_user(&m, &[]), Err(SnapshotError::Empty));
        assert_eq!(decode_user(&m, &[9, 1, 2]), Err(SnapshotError::UnknownVersion(9)));
        assert!(matches!(decode_user(&m, &[1, 200, 200, 200]), Err(SnapshotError::Corrupt(_))));
    }

    #[test]
    #[ignore = "writes the current version's fixture; run once when a format version is added"]
    fn write_fixture() {
        let m = windowed_model();
        let path = format!("{}/tests/fixtures/user_v{VERSION}.bin", env!("CARGO_MANIFEST_DIR"));
        std::fs::write(path, encode_user(&m, &fixture_user_v3(&m))).unwrap();
    }
}
