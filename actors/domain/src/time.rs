//! Times as people read them. Every time a reply shows is given twice: as
//! milliseconds since the epoch (`..._ms`) and as RFC 3339 with milliseconds,
//! UTC (the same name without `_ms`).

/// The last millisecond RFC 3339 can write (9999-12-31T23:59:59.999Z).
const LAST_MS: u64 = 253_402_300_799_999;

/// `2026-11-30T04:31:47.876Z`; a time past the year 9999 (an override set to
/// expire in a million weeks) as the last one RFC 3339 can write.
pub fn rfc3339_ms(ms: u64) -> String {
    let ms = ms.min(LAST_MS);
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_read_as_rfc3339_in_utc() {
        assert_eq!(super::rfc3339_ms(1_796_013_107_876), "2026-11-30T04:31:47.876Z");
        assert_eq!(super::rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::rfc3339_ms(super::LAST_MS), "9999-12-31T23:59:59.999Z");
        assert_eq!(super::rfc3339_ms(u64::MAX), "9999-12-31T23:59:59.999Z");
    }
}
