//! Streamed transit ciphertexts (format version 2, [`tresor_crypto::transit::stream`]): round
//! trips at every segment boundary in both algorithms, the exact layout, and refusals of
//! tampered, truncated, reordered, dropped, duplicated or extended segments, wrong vaults and
//! wrong message keys (every refusal test is named `fail_*`).
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use proptest::prelude::*;
use std::io::Read;
use tresor_crypto::Key;
use tresor_crypto::transit::stream::{self, SEGMENT_LEN, StreamError};
use tresor_crypto::transit::{self, Algorithm, TAG_LEN, TransitError};

const VAULT: &[u8] = &[9u8; 16];
const SEG: usize = SEGMENT_LEN + TAG_LEN;

struct Sealed {
    key: Key,
    header: Vec<u8>,
    ct: Vec<u8>,
}

fn seal(alg: Algorithm, plain: &[u8]) -> Sealed {
    let named = Key::generate().unwrap();
    let salt: [u8; 32] = tresor_crypto::random_array().unwrap();
    let key = stream::message_key(&named, &salt);
    let header = stream::header("files.backup", alg, &salt).unwrap();
    let mut ct = Vec::new();
    let n = stream::encrypt(&key, VAULT, &header, &mut &plain[..], &mut ct).unwrap();
    assert_eq!(n, plain.len() as u64);
    Sealed { key, header, ct }
}

fn open(key: &Key, vault: &[u8], ct: &[u8]) -> Result<Vec<u8>, StreamError> {
    let mut input = ct;
    let (header, _, raw) = stream::read_header(&mut input)?;
    assert_eq!(header.version, 2);
    let mut out = Vec::new();
    stream::decrypt(key, vault, &raw, &mut input, &mut out)?;
    Ok(out)
}

fn is_decrypt(r: Result<Vec<u8>, StreamError>) -> bool {
    matches!(r, Err(StreamError::Transit(TransitError::Decrypt)))
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 253) as u8).collect()
}

#[test]
fn round_trips_at_every_segment_boundary_in_both_algorithms() {
    for alg in Algorithm::ALL {
        for len in
            [0, 1, SEGMENT_LEN - 1, SEGMENT_LEN, SEGMENT_LEN + 1, 3 * SEGMENT_LEN, 3 * SEGMENT_LEN + 17]
        {
            let plain = data(len);
            let s = seal(alg, &plain);
            // Layout: header, then one tag per segment; the last segment is empty only when the
            // whole message is.
            let segments = len.div_ceil(SEGMENT_LEN).max(1);
            assert_eq!(s.ct.len(), s.header.len() + len + segments * TAG_LEN, "{alg} {len}");
            assert!(s.ct.starts_with(&s.header));
            assert_eq!(open(&s.key, VAULT, &s.ct).unwrap(), plain, "{alg} {len}");
        }
    }
}

#[test]
fn header_says_what_it_is_and_version_1_code_names_it() {
    let s = seal(Algorithm::Aes256Gcm, b"hello");
    assert!(stream::is_stream(&s.ct));
    let (header, _, raw) = stream::read_header(&mut &s.ct[..]).unwrap();
    assert_eq!((header.alg, header.name.as_str()), (Algorithm::Aes256Gcm, "files.backup"));
    assert_eq!(raw, s.header);
    assert_eq!(&s.header[..7], b"TRSRTX\x02");
    // The whole-message decoder refuses it, saying what it is.
    let e = transit::header(&s.ct).unwrap_err();
    assert!(e.to_string().contains("version 2"), "{e}");
    assert!(!stream::is_stream(b"TRSRTX\x01"));
}

#[test]
fn a_reader_giving_one_byte_at_a_time_changes_nothing() {
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.0.len()).min(1 + self.0.len() % 3);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let plain = data(2 * SEGMENT_LEN + 5);
    let s = seal(Algorithm::XChaCha20Poly1305, &plain);
    let mut input = Trickle(&s.ct);
    let (_, _, raw) = stream::read_header(&mut input).unwrap();
    let mut out = Vec::new();
    stream::decrypt(&s.key, VAULT, &raw, &mut input, &mut out).unwrap();
    assert_eq!(out, plain);
}

#[test]
fn fail_flipped_bytes_anywhere() {
    let plain = data(SEGMENT_LEN + 100);
    for alg in Algorithm::ALL {
        let s = seal(alg, &plain);
        let h = s.header.len();
        // The name, the salt, a first segment byte, its tag, the last segment and its tag.
        for i in [10, h - 1, h, h + SEGMENT_LEN, h + SEG - 1, h + SEG, s.ct.len() - 1] {
            let mut bad = s.ct.clone();
            bad[i] ^= 0x20;
            assert!(open(&s.key, VAULT, &bad).is_err(), "{alg}: byte {i}");
        }
    }
}

#[test]
fn fail_truncated_at_a_boundary_or_inside_a_segment() {
    let plain = data(3 * SEGMENT_LEN);
    let s = seal(Algorithm::XChaCha20Poly1305, &plain);
    let h = s.header.len();
    // At a segment boundary the rest authenticates as segments, but none as the last one.
    for end in [h + SEG, h + 2 * SEG] {
        assert!(is_decrypt(open(&s.key, VAULT, &s.ct[..end])), "end {end}");
    }
    for end in [h, h + 5, h + SEG + 1, s.ct.len() - 1] {
        assert!(open(&s.key, VAULT, &s.ct[..end]).is_err(), "end {end}");
    }
    assert!(matches!(
        stream::read_header(&mut &s.ct[..h - 1]),
        Err(StreamError::Transit(TransitError::Format(_)))
    ));
}

#[test]
fn fail_reordered_dropped_duplicated_or_extended_segments() {
    let plain = data(3 * SEGMENT_LEN + 10);
    let s = seal(Algorithm::Aes256Gcm, &plain);
    let h = s.header.len();
    let seg = |i: usize| &s.ct[h + i * SEG..(h + (i + 1) * SEG).min(s.ct.len())];
    let build = |order: &[usize]| -> Vec<u8> {
        let mut out = s.header.clone();
        for &i in order {
            out.extend_from_slice(seg(i));
        }
        out
    };
    assert_eq!(open(&s.key, VAULT, &build(&[0, 1, 2, 3])).unwrap(), plain);
    for order in [&[1, 0, 2, 3][..], &[0, 2, 3], &[0, 1, 1, 2, 3], &[0, 1, 2, 3, 3], &[0, 1, 2]] {
        assert!(is_decrypt(open(&s.key, VAULT, &build(order))), "{order:?}");
    }
    let mut extended = s.ct.clone();
    extended.extend_from_slice(&[0u8; TAG_LEN]);
    assert!(open(&s.key, VAULT, &extended).is_err());
}

#[test]
fn fail_wrong_vault_key_or_header() {
    let plain = data(1000);
    let s = seal(Algorithm::XChaCha20Poly1305, &plain);
    assert!(is_decrypt(open(&s.key, &[8u8; 16], &s.ct)));
    let other = seal(Algorithm::XChaCha20Poly1305, &plain);
    assert!(is_decrypt(open(&other.key, VAULT, &s.ct)));
    // The same named key and another salt: another message key.
    let named = Key::generate().unwrap();
    let (a, b) = (stream::message_key(&named, &[1; 32]), stream::message_key(&named, &[2; 32]));
    assert!(!a.ct_eq(&b));
    // A header of another algorithm over the same segments.
    let mut swapped = s.ct.clone();
    swapped[7] = Algorithm::Aes256Gcm.id();
    assert!(open(&s.key, VAULT, &swapped).is_err());
    assert!(matches!(stream::header("no/slash", Algorithm::Aes256Gcm, &[0; 32]), Err(TransitError::KeyName)));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn round_trip_any_length(len in 0usize..(3 * SEGMENT_LEN), aes in any::<bool>()) {
        let alg = if aes { Algorithm::Aes256Gcm } else { Algorithm::XChaCha20Poly1305 };
        let plain = data(len);
        let s = seal(alg, &plain);
        prop_assert_eq!(open(&s.key, VAULT, &s.ct).unwrap(), plain);
    }
}
