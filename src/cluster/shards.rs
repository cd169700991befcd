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
        let h = fnv1a(kind.bytes().chain([0]).chain(key.bytes()));
        Shard((h % u64::from(shards.max(1))) as u32)
    }

    /// The node that should own the shard among `live` nodes: rendezvous (highest random
    /// weight) hashing, so when a node comes or goes only the shards it wins or held move.
    pub fn preferred(self, live: &[String]) -> Option<&String> {
        live.iter().max_by_key(|node| {
            let weight = fmix64(fnv1a(node.bytes().chain([0]).chain(self.0.to_be_bytes())));
            (weight, node.as_str())
        })
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

/// FNV-1a, 64-bit.
fn fnv1a(bytes: impl Iterator<Item = u8>) -> u64 {
    let mut h = FNV_OFFSET;
    for byte in bytes {
        h ^= u64::from(byte);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// MurmurHash3's 64-bit finalizer: FNV-1a leaves its high bits to the first bytes, so the
/// weights of one node would rank every shard alike without it.
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
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

    #[test]
    fn a_node_leaving_moves_only_its_own_shards() {
        let three: Vec<String> = ["n1", "n2", "n3"].map(String::from).to_vec();
        let two: Vec<String> = ["n1", "n3"].map(String::from).to_vec();
        let mut owned = [0; 3];
        for s in 0..64 {
            let before = Shard(s).preferred(&three).unwrap().clone();
            let after = Shard(s).preferred(&two).unwrap();
            if before != "n2" {
                assert_eq!(&before, after, "shard {s} moved though its owner stayed");
            }
            owned[three.iter().position(|n| *n == before).unwrap()] += 1;
        }
        assert!(owned.iter().all(|n| (12..=30).contains(n)), "{owned:?}");
        assert_eq!(Shard(0).preferred(&[]), None);
    }
}
