//! Times as people read them. Every time a reply shows is given twice: as
//! milliseconds since the epoch (`..._ms`) and as RFC 3339 with milliseconds,
//! UTC (the same name without `_ms`).

/// `2026-11-30T04:31:47.876Z`.
pub fn rfc3339_ms(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_read_as_rfc3339_in_utc() {
        assert_eq!(super::rfc3339_ms(1_796_013_107_876), "2026-11-30T04:31:47.876Z");
        assert_eq!(super::rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
    }
}
