//! Shards: every entity belongs to one of a fixed number of shards, `stable_hash(kind, key) %
//! shards`, and every Redis key of a shard carries the hash tag `{sN}` (so a shard's keys stay
//! in one slot if the layout moves to Redis Cluster). The hash is FNV-1a (64-bit) over
//! `kind NUL key`: fixed by its definition, so every node and every version of the engine
//! agrees on it (std's `DefaultHasher` promises neither).

use std::fmt;

/// A shard number, below the cluster's shard count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shard(pub u32);

impl Shard {
    /// The shard of an entity among `shards` (at least 1).
    pub fn of(kind: &str, key: &str, shards: u32) -> Shard {
        let mut h = FNV_OFFSET;
        for byte in kind.bytes().chain([0]).chain(key.bytes()) {
            h ^= u64::from(byte);
            h = h.wrapping_mul(FNV_PRIME);
        }
        Shard((h % u64::from(shards.max(1))) as u32)
    }

    /// The hash tag every Redis key of the shard carries: `{s7}`.
    pub fn tag(self) -> String {
        format!("{{s{}}}", self.0)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// FNV-1a 64-bit parameters (Fowler, Noll, Vo; IETF draft-eastlake-fnv).
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_fnv_1a_and_stable() {
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c (the published test vector); "sku\0a" here.
        let mut h = FNV_OFFSET;
        h ^= u64::from(b'a');
        h = h.wrapping_mul(FNV_PRIME);
        assert_eq!(h, 0xaf63_dc4c_8601_ec8c);
        // Pinned: a change of the hash would move every entity to another shard.
        assert_eq!(
            Shard::of("sku", "tee-red-M", 64),
            Shard::of("sku", "tee-red-M", 64)
        );
        assert_eq!(Shard::of("sku", "tee-red-M", 64).0, 16);
        assert_eq!(Shard::of("order", "o1", 64).0, 45);
    }

    #[test]
    fn keys_spread_over_every_shard() {
        let mut seen = [0u32; 16];
        for i in 0..16_000 {
            seen[Shard::of("order", &format!("o{i}"), 16).0 as usize] += 1;
        }
        assert!(seen.iter().all(|n| (800..1200).contains(n)), "{seen:?}");
        assert_eq!(Shard(3).tag(), "{s3}");
    }
}
