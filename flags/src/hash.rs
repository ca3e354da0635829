//! PostHog's bucketing hash.
//!
//! `hash(key, id, salt)` is the SHA-1 of the UTF-8 string `"{key}.{id}{salt}"`; the first 15 hex
//! digits (60 bits) are read as an integer and divided by `0xFFFFFFFFFFFFFFF`, giving a float in
//! `[0, 1]`. Holdouts hash `"holdout-{id}"` instead (no flag key, no dot).
//!
//! The string is streamed into the hasher piece by piece, so hashing allocates nothing.

use sha1::{Digest, Sha1};

/// The divisor: fifteen hex `F`s, the largest 60-bit value.
pub const LONG_SCALE: u64 = 0xFFF_FFFF_FFFF_FFFF;

/// Salt for variant selection.
pub const VARIANT_SALT: &str = "variant";

/// Prefix for holdout hashing.
pub const HOLDOUT_PREFIX: &str = "holdout-";

/// Hashes the concatenation of `parts` and maps it onto `[0, 1]`.
pub fn hash_parts(parts: &[&str]) -> f64 {
    let mut hasher = Sha1::new();
    for part in parts {
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // 16 hex digits are 64 bits; dropping the last digit keeps 60.
    let value = u64::from_be_bytes(first) >> 4;
    value as f64 / LONG_SCALE as f64
}

/// `hash(flag_key, id, salt)`: SHA-1 of `"{flag_key}.{id}{salt}"` as a float in `[0, 1]`.
///
/// # Examples
/// ```
/// let h = quill_flags::hash::flag_hash("simple-flag", "distinct_id_0", "");
/// assert_eq!(h, 0.7836963764220432);
/// ```
pub fn flag_hash(flag_key: &str, id: &str, salt: &str) -> f64 {
    hash_parts(&[flag_key, ".", id, salt])
}

/// The holdout hash: SHA-1 of `"holdout-{id}"`.
///
/// # Examples
/// ```
/// assert_eq!(quill_flags::hash::holdout_hash("test-identifier"), 0.4493881716040236);
/// ```
pub fn holdout_hash(id: &str) -> f64 {
    hash_parts(&[HOLDOUT_PREFIX, id])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_anchors() {
        assert_eq!(
            flag_hash("simple-flag", "distinct_id_0", ""),
            0.7836963764220432
        );
        assert_eq!(holdout_hash("some_distinct_id"), 0.7270002403585725);
        assert_eq!(holdout_hash("test-identifier"), 0.4493881716040236);
    }

    #[test]
    fn parts_are_concatenated() {
        assert_eq!(
            hash_parts(&["simple-flag.distinct_id_0"]),
            flag_hash("simple-flag", "distinct_id_0", "")
        );
        assert_eq!(
            hash_parts(&["k.idvariant"]),
            flag_hash("k", "id", VARIANT_SALT)
        );
    }

    #[test]
    fn range_is_unit_interval() {
        for i in 0..1000 {
            let h = flag_hash("range", &i.to_string(), "");
            assert!((0.0..=1.0).contains(&h));
        }
    }
}
