//! Typed values in the configuration file: durations (`"250ms"`, `"5m"`),
//! durations that may be `"off"`. Parsed while the file is read, so a
//! setting is never held as text.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

fn parse(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{text:?} is not a duration like \"300s\" or \"5m\" ({e})"))
}

/// A duration written as text: `"250ms"`, `"300s"`, `"5m"`, `"24h"`.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

/// A duration, or `"off"` (`None`).
pub fn duration_or_off<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    match String::deserialize(d)?.as_str() {
        "off" => Ok(None),
        text => parse(text).map(Some).map_err(serde::de::Error::custom),
    }
}

/// An optional duration (absent: `None`).
pub fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}
