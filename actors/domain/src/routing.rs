//! Which logical shard a user belongs to.
//!
//! `shard = xxh3_64(utf8(user_id)) % count`, with XXH3 64-bit, seed 0. The hash is
//! stable across processes, versions and languages (every XXH3 implementation
//! gives the same value), so producers in other languages can route too. Never
//! use `ahash` or `RandomState` here: they are seeded per process.

use xxhash_rust::xxh3::xxh3_64;

/// The logical shard of `user_id` among `count` shards.
pub fn shard_of(user_id: &str, count: u32) -> u32 {
    (xxh3_64(user_id.as_bytes()) % u64::from(count)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_is_the_documented_xxh3_and_stable() {
        // Reference values of XXH3-64 (seed 0), as any implementation computes them.
        assert_eq!(xxh3_64(b""), 0x2d06800538d394c2);
        assert_eq!(shard_of("", 64), (0x2d06800538d394c2u64 % 64) as u32);
        assert_eq!(shard_of("12345", 64), shard_of("12345", 64));
        assert!((0..1000).all(|i| shard_of(&i.to_string(), 64) < 64));
    }
}
