//! The plaintext framing inside every envelope: optional zstd compression, then padding.
//!
//! ```text
//! flags: u8 (bit 0 = zstd) | length: u32 BE | body: length bytes | zeros up to the padded size
//! ```
//! Compression is used only when it makes the body smaller. Decoding happens after
//! authentication, but is strict anyway: unknown flags, a length past the end, non-zero padding or
//! a body that inflates past [`MAX_PLAINTEXT`] are all errors.

use crate::pad::padded_len;
use crate::secret::SecretBytes;
use crate::{CryptoError, Result};
use zeroize::Zeroizing;

/// The largest plaintext an envelope carries (after decompression).
pub const MAX_PLAINTEXT: usize = 64 << 20;
const HEADER: usize = 5;
const FLAG_ZSTD: u8 = 1;
/// Below this size compression cannot win enough to change the padding bucket.
const COMPRESS_MIN: usize = 128;
const ZSTD_LEVEL: i32 = 3;

/// Frames `plaintext`: compressed if that helps, padded to its bucket.
pub fn encode(plaintext: &[u8]) -> Result<SecretBytes> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(CryptoError::TooLarge(plaintext.len()));
    }
    let compressed = if plaintext.len() >= COMPRESS_MIN {
        zstd::bulk::compress(plaintext, ZSTD_LEVEL)
            .ok()
            .map(Zeroizing::new)
            .filter(|c| c.len() < plaintext.len())
    } else {
        None
    };
    let (flags, body): (u8, &[u8]) = match &compressed {
        Some(c) => (FLAG_ZSTD, c),
        None => (0, plaintext),
    };
    // The floor and the buckets apply to the body, so every value up to MIN_BUCKET bytes looks
    // the same; the fixed header rides on top.
    let total = HEADER + padded_len(body.len());
    let mut out = Zeroizing::new(Vec::with_capacity(total));
    out.push(flags);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out.resize(total, 0);
    Ok(SecretBytes::from(out))
}

/// Checks a frame's structure (flags, length, zero padding) without decompressing its body.
pub fn check(framed: &[u8]) -> Result<()> {
    let (&flags, rest) = framed.split_first().ok_or(CryptoError::Decrypt)?;
    let (len, rest) = rest.split_first_chunk::<4>().ok_or(CryptoError::Decrypt)?;
    let len = u32::from_be_bytes(*len) as usize;
    if flags & !FLAG_ZSTD != 0 || len > rest.len() || rest[len..].iter().any(|&b| b != 0) {
        return Err(CryptoError::Decrypt);
    }
    Ok(())
}

/// Undoes [`encode`].
pub fn decode(framed: &[u8]) -> Result<SecretBytes> {
    let (&flags, rest) = framed.split_first().ok_or(CryptoError::Decrypt)?;
    let (len, rest) = rest.split_first_chunk::<4>().ok_or(CryptoError::Decrypt)?;
    let len = u32::from_be_bytes(*len) as usize;
    if len > rest.len() || rest[len..].iter().any(|&b| b != 0) {
        return Err(CryptoError::Decrypt);
    }
    let body = &rest[..len];
    match flags {
        0 => Ok(SecretBytes::new(body.to_vec())),
        FLAG_ZSTD => {
            let size =
                zstd::zstd_safe::get_frame_content_size(body).ok().flatten().ok_or(CryptoError::Decrypt)?;
            let size = usize::try_from(size).map_err(|_| CryptoError::Decrypt)?;
            if size > MAX_PLAINTEXT {
                return Err(CryptoError::Decrypt);
            }
            let out = zstd::bulk::decompress(body, size).map_err(|_| CryptoError::Decrypt)?;
            Ok(SecretBytes::new(out))
        }
        _ => Err(CryptoError::Decrypt),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn check_accepts_frames_and_refuses_malformed_ones() {
        for value in [&b""[..], b"short", &[b'a'; 4000], &[7u8; 300]] {
            check(&encode(value).unwrap()).unwrap();
        }
        let good = encode(b"value").unwrap();
        let mut flags = SecretBytes::new(good.to_vec());
        flags[0] = 2;
        assert!(check(&flags).is_err(), "unknown flag");
        let mut padding = SecretBytes::new(good.to_vec());
        *padding.last_mut().unwrap() = 1;
        assert!(check(&padding).is_err(), "non-zero padding");
        let mut length = SecretBytes::new(good.to_vec());
        length[1..5].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(check(&length).is_err(), "length past the end");
        assert!(check(&good[..3]).is_err(), "truncated header");
    }

    #[test]
    fn compressible_values_are_compressed() {
        let value = vec![b'a'; 10_000];
        let framed = encode(&value).unwrap();
        assert_eq!(framed[0], FLAG_ZSTD);
        assert!(framed.len() < 1000);
        assert_eq!(decode(&framed).unwrap().as_slice(), value.as_slice());
    }

    #[test]
    fn fail_nonzero_padding_unknown_flag_and_overlong_length() {
        let mut framed = encode(b"secret").unwrap();
        let last = framed.len() - 1;
        framed[last] = 1;
        assert!(matches!(decode(&framed), Err(CryptoError::Decrypt)));

        let mut framed = encode(b"secret").unwrap();
        framed[0] = 2;
        assert!(matches!(decode(&framed), Err(CryptoError::Decrypt)));

        let mut framed = encode(b"secret").unwrap();
        framed[1..5].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(decode(&framed), Err(CryptoError::Decrypt)));

        assert!(matches!(decode(&[]), Err(CryptoError::Decrypt)));
        assert!(matches!(decode(&[0, 0, 0]), Err(CryptoError::Decrypt)));
    }

    #[test]
    fn fail_too_large() {
        let big = vec![0u8; MAX_PLAINTEXT + 1];
        assert!(matches!(encode(&big), Err(CryptoError::TooLarge(n)) if n == MAX_PLAINTEXT + 1));
    }

    proptest! {
        #[test]
        fn encode_decode_roundtrip(value in proptest::collection::vec(any::<u8>(), 0..5000), rep in 1usize..4) {
            let value = value.repeat(rep);
            let framed = encode(&value).unwrap();
            let body = framed.len() - HEADER;
            prop_assert!(body >= crate::pad::MIN_BUCKET);
            prop_assert_eq!(body, padded_len(body));
            let decoded = decode(&framed).unwrap();
            prop_assert_eq!(decoded.as_slice(), value.as_slice());
        }
    }
}
