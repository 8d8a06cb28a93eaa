//! Exact amounts of money, in millionths of a unit.
//!
//! An amount is read from its JSON text (`parse_decimal`; the event readers
//! hand it the property's raw text), exact over the whole range, the maximum
//! enforced to the last digit, never summed as `f64`. Sums are integers of
//! micro-units. `Money::from_json` reads a `serde_json::Value`, exact up to
//! 15 significant digits: for values built in code, not for outside input.

use std::fmt;

/// Micro-units (10^-6) per unit.
pub const SCALE: u64 = 1_000_000;
/// Decimal places an amount may have.
pub const MAX_DECIMALS: u32 = 6;
/// The largest accepted amount, in units (keeps every amount and product exact in u64/u128).
pub const MAX_UNITS: u64 = 1_000_000_000_000;

/// An exact non-negative amount in micro-units.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Default)]
pub struct Money(pub u64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("must be a number")]
    NotANumber,
    #[error("must not be negative")]
    Negative,
    #[error("must be finite")]
    NotFinite,
    #[error("has more than {MAX_DECIMALS} decimal places")]
    TooPrecise,
    #[error("is larger than {MAX_UNITS}")]
    TooLarge,
}

impl Money {
    /// Reads a JSON number exactly.
    pub fn from_json(value: &serde_json::Value) -> Result<Money, MoneyError> {
        let serde_json::Value::Number(n) = value else {
            return Err(MoneyError::NotANumber);
        };
        if let Some(units) = n.as_u64() {
            return if units > MAX_UNITS { Err(MoneyError::TooLarge) } else { Ok(Money(units * SCALE)) };
        }
        if n.as_i64().is_some() {
            return Err(MoneyError::Negative);
        }
        let f = n.as_f64().ok_or(MoneyError::NotFinite)?;
        if !f.is_finite() {
            return Err(MoneyError::NotFinite);
        }
        if f < 0.0 {
            return Err(MoneyError::Negative);
        }
        // serde_json prints floats with the shortest text that round-trips (ryu).
        parse_decimal(&n.to_string())
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = self.0 / SCALE;
        let frac = self.0 % SCALE;
        if frac == 0 {
            return write!(f, "{units}");
        }
        let mut digits = format!("{frac:06}");
        while digits.ends_with('0') {
            digits.pop();
        }
        write!(f, "{units}.{digits}")
    }
}

/// Parses a non-negative decimal (`12`, `0.1`, `1.5e-3`, `1e2`) into micro-units.
pub fn parse_decimal(text: &str) -> Result<Money, MoneyError> {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], text[i + 1..].parse::<i32>().map_err(|_| MoneyError::NotANumber)?),
        None => (text, 0),
    };
    // "-0" and "-0.0" are zero; any other negative amount is refused below.
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(MoneyError::NotANumber);
    }
    // value = significand * 10^(exponent - frac_len); drop zeros on both ends first.
    let all = format!("{int_part}{frac_part}");
    let without_trailing = all.trim_end_matches('0');
    let removed = (all.len() - without_trailing.len()) as i64;
    let significand_text = without_trailing.trim_start_matches('0');
    if significand_text.is_empty() {
        return Ok(Money(0));
    }
    if negative {
        return Err(MoneyError::Negative);
    }
    let power = i64::from(exponent) - frac_part.len() as i64 + removed + i64::from(MAX_DECIMALS);
    if power < 0 {
        return Err(MoneyError::TooPrecise);
    }
    if significand_text.len() as i64 + power > 19 {
        return Err(MoneyError::TooLarge);
    }
    let significand: u64 = significand_text.parse().map_err(|_| MoneyError::TooLarge)?;
    let micros =
        10u64.checked_pow(power as u32).and_then(|p| significand.checked_mul(p)).ok_or(MoneyError::TooLarge)?;
    if micros > MAX_UNITS * SCALE {
        return Err(MoneyError::TooLarge);
    }
    Ok(Money(micros))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(v: serde_json::Value) -> Result<Money, MoneyError> {
        Money::from_json(&v)
    }

    #[test]
    fn reads_amounts_exactly() {
        assert_eq!(m(json!(100)), Ok(Money(100_000_000)));
        assert_eq!(m(json!(0.1)), Ok(Money(100_000)));
        assert_eq!(m(json!(15.75)), Ok(Money(15_750_000)));
        assert_eq!(m(json!(0)), Ok(Money(0)));
        assert_eq!(m(json!(0.000001)), Ok(Money(1)));
        assert_eq!(m(json!(1e3)), Ok(Money(1_000_000_000)));
        assert_eq!(parse_decimal("1.5e-3"), Ok(Money(1_500)));
        assert_eq!(parse_decimal("120.50"), Ok(Money(120_500_000)));
        // Negative zero is zero (JSON Schema's `minimum: 0` admits it).
        assert_eq!(parse_decimal("-0.0"), Ok(Money(0)));
        assert_eq!(parse_decimal("-0.000001"), Err(MoneyError::Negative));
    }

    #[test]
    fn tenths_sum_exactly_where_f64_does_not() {
        let tenth = m(json!(0.1)).unwrap();
        let sum: u64 = (0..10).map(|_| tenth.0).sum();
        assert_eq!(Money(sum), Money(SCALE));
        assert_eq!(Money(sum).to_string(), "1");
        assert_eq!(Money(15_500_000).to_string(), "15.5");
    }

    #[test]
    fn rejects_what_is_not_an_amount() {
        assert_eq!(m(json!(-1)), Err(MoneyError::Negative));
        assert_eq!(m(json!(-0.5)), Err(MoneyError::Negative));
        assert_eq!(m(json!("10")), Err(MoneyError::NotANumber));
        assert_eq!(m(json!(0.0000001)), Err(MoneyError::TooPrecise));
        assert_eq!(m(json!(1e13)), Err(MoneyError::TooLarge));
        assert_eq!(parse_decimal("1.2.3"), Err(MoneyError::NotANumber));
    }
}
