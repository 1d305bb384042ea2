//! Length padding: the store sees size buckets, not sizes.
//!
//! Padmé (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files and Communication with
//! PURBs", PETS 2019) rounds a length so that at most O(log log L) bits of it remain, with at most
//! 12 % overhead. Below [`MIN_BUCKET`] every length pads to the same size, so short secrets (the
//! common case: tokens, passwords) are indistinguishable from each other.

/// Every padded payload is at least this long.
pub const MIN_BUCKET: usize = 256;

/// The Padmé length for `len`: the smallest allowed size ≥ `len`.
pub fn padme(len: usize) -> usize {
    if len < 2 {
        return len;
    }
    let e = usize::BITS - 1 - len.leading_zeros(); // floor(log2 len)
    let s = u32::BITS - e.leading_zeros(); // floor(log2 e) + 1
    let last_bits = e - s;
    let mask = (1usize << last_bits) - 1;
    (len + mask) & !mask
}

/// The padded length tresor stores for a payload of `len` bytes.
pub fn padded_len(len: usize) -> usize {
    padme(len.max(MIN_BUCKET))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_lengths_share_one_bucket() {
        for len in 0..=MIN_BUCKET {
            assert_eq!(padded_len(len), MIN_BUCKET);
        }
    }

    #[test]
    fn known_padme_values() {
        // From the PURBs paper's definition: E = 8, S = 4: the low 4 bits are rounded up.
        assert_eq!(padme(256), 256);
        assert_eq!(padme(257), 272);
        assert_eq!(padme(1000), 1024);
        assert_eq!(padme(1025), 1088);
        assert_eq!(padme(1_000_000), 1_015_808);
    }

    #[test]
    fn bucket_count_for_4096_lengths_is_small() {
        let buckets: std::collections::BTreeSet<_> = (1..=4096).map(padded_len).collect();
        // Padmé keeps O(log log L) bits: 4096 lengths fall into a few dozen sizes, not thousands.
        assert!(buckets.len() <= 70, "{} buckets", buckets.len());
    }

    proptest! {
        #[test]
        fn padme_is_monotone_bounded_and_idempotent(len in 2usize..(1 << 40)) {
            let p = padme(len);
            prop_assert!(p >= len);
            prop_assert!((p - len) as f64 <= len as f64 * 0.12 + 1.0);
            prop_assert_eq!(padme(p), p);
            prop_assert!(padme(len + 1) >= p);
        }
    }
}
