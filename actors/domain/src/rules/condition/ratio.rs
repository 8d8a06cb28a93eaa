//! Exact rational numbers over `i128`, for condition arithmetic. An operation
//! whose result does not fit (even after reducing by the common divisor) is
//! an error (`None`), never a rounded value; comparisons never overflow.

use std::cmp::Ordering;

/// `n / d` with `d > 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ratio {
    n: i128,
    d: i128,
}

impl Ratio {
    /// `n / d`; `d` must be positive.
    pub fn new(n: i128, d: i128) -> Ratio {
        debug_assert!(d > 0);
        Ratio { n, d }
    }

    pub fn int(n: i128) -> Ratio {
        Ratio { n, d: 1 }
    }

    /// The exact value of a decimal literal like `0.10`, `-3` or `1500.0`.
    pub fn parse_decimal(text: &str) -> Option<Ratio> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() || !whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let fraction = fraction.trim_end_matches('0');
        let mut n: i128 = 0;
        for b in whole.bytes().chain(fraction.bytes()) {
            n = n.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
        }
        let d = 10i128.checked_pow(u32::try_from(fraction.len()).ok()?)?;
        Some(Ratio { n: if negative { -n } else { n }, d }.reduced())
    }

    pub fn is_negative(&self) -> bool {
        self.n < 0
    }

    /// (numerator, denominator), the denominator positive.
    pub fn parts(&self) -> (i128, i128) {
        (self.n, self.d)
    }

    fn reduced(self) -> Ratio {
        let g = gcd(self.n.unsigned_abs(), self.d.unsigned_abs());
        if g <= 1 {
            return self;
        }
        let g = g as i128;
        Ratio { n: self.n / g, d: self.d / g }
    }

    pub fn checked_neg(self) -> Option<Ratio> {
        Some(Ratio { n: self.n.checked_neg()?, d: self.d })
    }

    pub fn checked_add(self, other: Ratio) -> Option<Ratio> {
        fn raw(a: Ratio, b: Ratio) -> Option<Ratio> {
            if a.d == b.d {
                return Some(Ratio { n: a.n.checked_add(b.n)?, d: a.d });
            }
            let n = a.n.checked_mul(b.d)?.checked_add(b.n.checked_mul(a.d)?)?;
            Some(Ratio { n, d: a.d.checked_mul(b.d)? })
        }
        raw(self, other).or_else(|| raw(self.reduced(), other.reduced()))
    }

    pub fn checked_mul(self, other: Ratio) -> Option<Ratio> {
        fn raw(a: Ratio, b: Ratio) -> Option<Ratio> {
            Some(Ratio { n: a.n.checked_mul(b.n)?, d: a.d.checked_mul(b.d)? })
        }
        raw(self, other).or_else(|| raw(self.reduced(), other.reduced()))
    }

    /// `None` for a division by zero.
    pub fn checked_div(self, other: Ratio) -> Option<Ratio> {
        if other.n == 0 {
            return None;
        }
        let (n, d) = if other.n < 0 { (other.d.checked_neg()?, -other.n) } else { (other.d, other.n) };
        self.checked_mul(Ratio { n, d })
    }
}

impl Ord for Ratio {
    /// `a/b` against `c/d` as `a*d` against `c*b`, in 256 bits.
    fn cmp(&self, other: &Ratio) -> Ordering {
        let (l, r) = (Wide::product(self.n, other.d), Wide::product(other.n, self.d));
        l.cmp(&r)
    }
}

impl PartialOrd for Ratio {
    fn partial_cmp(&self, other: &Ratio) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A signed 256-bit product, ordered.
#[derive(PartialEq, Eq)]
struct Wide {
    negative: bool,
    /// The magnitude as (high, low) 128-bit halves.
    magnitude: (u128, u128),
}

impl Wide {
    fn product(a: i128, b: i128) -> Wide {
        let magnitude = mul_wide(a.unsigned_abs(), b.unsigned_abs());
        Wide { negative: (a < 0) != (b < 0) && magnitude != (0, 0), magnitude }
    }
}

impl Ord for Wide {
    fn cmp(&self, other: &Wide) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.magnitude.cmp(&other.magnitude),
            (true, true) => other.magnitude.cmp(&self.magnitude),
        }
    }
}

impl PartialOrd for Wide {
    fn partial_cmp(&self, other: &Wide) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// `a * b` as (high, low) 128-bit halves.
fn mul_wide(a: u128, b: u128) -> (u128, u128) {
    const LOW: u128 = u64::MAX as u128;
    let (a1, a0) = (a >> 64, a & LOW);
    let (b1, b0) = (b >> 64, b & LOW);
    let (p00, p01, p10, p11) = (a0 * b0, a0 * b1, a1 * b0, a1 * b1);
    let middle = (p00 >> 64) + (p01 & LOW) + (p10 & LOW);
    let low = (p00 & LOW) | (middle << 64);
    let high = p11 + (p01 >> 64) + (p10 >> 64) + (middle >> 64);
    (high, low)
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_exact() {
        assert_eq!(Ratio::parse_decimal("0.10"), Some(Ratio::new(1, 10)));
        assert_eq!(Ratio::parse_decimal("-2"), Some(Ratio::int(-2)));
        assert_eq!(Ratio::parse_decimal("1500.0"), Some(Ratio::int(1500)));
        assert_eq!(Ratio::parse_decimal("1e3"), None);
        let third = Ratio::int(1).checked_div(Ratio::int(3)).unwrap();
        assert!(third > Ratio::parse_decimal("0.333333333333").unwrap());
    }

    #[test]
    fn comparisons_never_overflow() {
        let big = Ratio::new(i128::MAX, 1);
        let small = Ratio::new(i128::MAX - 1, 1);
        assert!(big > small);
        assert!(Ratio::new(i128::MAX, 3) < Ratio::new(i128::MAX, 2));
        assert!(Ratio::new(-i128::MAX, 3) > Ratio::new(-i128::MAX, 2));
        assert_eq!(mul_wide(u128::MAX, u128::MAX), (u128::MAX - 1, 1));
    }

    #[test]
    fn overflow_and_division_by_zero_are_errors() {
        assert_eq!(Ratio::int(i128::MAX).checked_add(Ratio::int(1)), None);
        assert_eq!(Ratio::int(1).checked_div(Ratio::int(0)), None);
        assert_eq!(Ratio::int(3).checked_div(Ratio::int(-6)), Some(Ratio::new(-3, 6)));
    }
}
