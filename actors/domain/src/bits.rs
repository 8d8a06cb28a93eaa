//! Sets of rule positions, any number of them, as 64-bit words: nothing is
//! allocated while a set is empty (most events fire no rule).

/// Rule positions (`Model::rules` indices).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleBits(Vec<u64>);

impl RuleBits {
    pub fn insert(&mut self, r: u16) {
        let (word, bit) = (usize::from(r) / 64, r % 64);
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= 1 << bit;
    }

    pub fn contains(&self, r: u16) -> bool {
        self.0.get(usize::from(r) / 64).is_some_and(|w| w & (1 << (r % 64)) != 0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    pub fn len(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The positions, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        self.0.iter().enumerate().flat_map(|(i, &w)| {
            let mut bits = w;
            std::iter::from_fn(move || {
                (bits != 0).then(|| {
                    let b = bits.trailing_zeros();
                    bits &= bits - 1;
                    (i * 64) as u16 + b as u16
                })
            })
        })
    }

    /// The positions in `self` or `other`.
    pub fn union(&self, other: &RuleBits) -> RuleBits {
        let mut out = self.clone();
        for r in other.iter() {
            out.insert(r);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::RuleBits;

    #[test]
    fn positions_past_64_are_kept() {
        let mut b = RuleBits::default();
        assert!(b.is_empty());
        for r in [0, 63, 64, 999] {
            b.insert(r);
        }
        assert!(b.contains(999) && b.contains(64) && !b.contains(1));
        assert_eq!(b.iter().collect::<Vec<_>>(), [0, 63, 64, 999]);
        assert_eq!(b.len(), 4);
    }
}
