//! Environment overrides: `RESTRICTD_<SECTION>__<KEY>=value` sets
//! `<section>.<key>` (`RESTRICTD_TRIPWIRE__THRESHOLD=0.1`).

use super::ConfigError;

/// Prefix of environment overrides: `RESTRICTD_HTTP__ADDR=127.0.0.1:9000`.
pub const ENV_PREFIX: &str = "RESTRICTD_";

/// Sets the key an override names in `table`. The value is read as a TOML
/// value when it is one (numbers, booleans, arrays), else as a string.
pub fn apply_override(table: &mut toml::Table, key: &str, value: &str) -> Result<(), ConfigError> {
    let path: Vec<String> = key[ENV_PREFIX.len()..].split("__").map(str::to_ascii_lowercase).collect();
    if path.len() < 2 || path.iter().any(String::is_empty) {
        return Err(ConfigError::Invalid(format!(
            "{key}: write {ENV_PREFIX}<SECTION>__<KEY>, e.g. {ENV_PREFIX}HTTP__ADDR"
        )));
    }
    let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let (last, parents) = path.split_last().expect("at least two parts");
    let mut node = table;
    for part in parents {
        let entry = node.entry(part.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = match entry {
            toml::Value::Table(t) => t,
            _ => return Err(ConfigError::Invalid(format!("{key}: {part} is not a section"))),
        };
    }
    node.insert(last.clone(), parsed);
    Ok(())
}
