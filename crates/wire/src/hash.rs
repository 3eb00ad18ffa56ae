//! The stable 64-bit hash: where a placement must come out the same in
//! every process and every build.
//!
//! A load balancer's hash ring and Maglev table, and the cluster's choice
//! of which nodes own a session, are only useful if two processes built
//! from the same member list agree. Rust's `DefaultHasher` promises no
//! such thing (its algorithm may change between releases, and `RandomState`
//! is seeded per process), so this is FNV-1a over the bytes followed by
//! murmur3's 64-bit finaliser, which spreads FNV's weak low bits over the
//! whole word. It is fast and well distributed; it is not a MAC: the keys
//! it places (session ids, node ids) are chosen by the servers, not by
//! clients who could aim at one bucket.
//!
//! | function | hashes |
//! |---|---|
//! | [`hash`] | one key |
//! | [`hash_parts`] | the concatenation of several parts, without copying them |
//! | [`hash_seeded`] | a key in the family `seed` picks (independent hashes of one key) |

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// murmur3's fmix64.
fn finish(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// The hash of one key.
pub fn hash(key: &[u8]) -> u64 {
    hash_parts(&[key])
}

/// The hash of the parts' concatenation.
pub fn hash_parts(parts: &[&[u8]]) -> u64 {
    finish(parts.iter().fold(FNV_OFFSET, |h, p| fnv(h, p)))
}

/// The hash of `key` in the family `seed` picks.
pub fn hash_seeded(key: &[u8], seed: u64) -> u64 {
    hash_parts(&[&seed.to_le_bytes(), key])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_fixed_forever() {
        // Placements computed by older builds must stay where they were:
        // these are the values every release has to reproduce.
        assert_eq!(hash(b""), finish(FNV_OFFSET));
        assert_eq!(hash(b"node-1"), hash_parts(&[b"node", b"-1"]));
        assert_ne!(hash_seeded(b"k", 1), hash_seeded(b"k", 2));
        assert_eq!(hash(b"a"), 0x82a2_a958_a9be_ce5b);
        assert_eq!(hash(b"node-1"), 0x91dd_3f4c_04e1_eb05);
    }
}
