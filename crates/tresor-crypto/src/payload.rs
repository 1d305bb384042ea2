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
/// Bodies up to this size are (de)compressed with a context kept per thread: making a zstd
/// context costs more than compressing an audit entry. Bigger ones get a context of their own,
/// so no thread keeps a large one's workspace for ever.
const REUSE_MAX: usize = 64 << 10;

thread_local! {
    /// This thread's compression context for small bodies (made on first use).
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
    /// This thread's decompression context for small bodies (made on first use).
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// `plaintext` compressed at [`ZSTD_LEVEL`] (`None`: zstd failed, which leaves it uncompressed).
fn compress(plaintext: &[u8]) -> Option<Vec<u8>> {
    if plaintext.len() > REUSE_MAX {
        return zstd::bulk::compress(plaintext, ZSTD_LEVEL).ok();
    }
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let compressor = match cell.as_mut() {
            Some(c) => c,
            None => cell.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL).ok()?),
        };
        compressor.compress(plaintext).ok()
    })
}

/// `body` decompressed into exactly `size` bytes (`None`: not a zstd frame of that size).
fn decompress(body: &[u8], size: usize) -> Option<Vec<u8>> {
    if size > REUSE_MAX {
        return zstd::bulk::decompress(body, size).ok();
    }
    DECOMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let decompressor = match cell.as_mut() {
            Some(d) => d,
            None => cell.insert(zstd::bulk::Decompressor::new().ok()?),
        };
        decompressor.decompress(body, size).ok()
    })
}

/// Frames `plaintext`: compressed if that helps, padded to its bucket.
pub fn encode(plaintext: &[u8]) -> Result<SecretBytes> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(CryptoError::TooLarge(plaintext.len()));
    }
    let compressed = if plaintext.len() >= COMPRESS_MIN {
        compress(plaintext).map(Zeroizing::new).filter(|c| c.len() < plaintext.len())
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
            let out = decompress(body, size).ok_or(CryptoError::Decrypt)?;
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
    fn small_and_large_bodies_alternate_on_one_thread() {
        // Small ones go through this thread's kept contexts, large ones through their own: each
        // comes back as it went in, whatever came before it.
        let small = |n: u8| vec![n; 1000];
        let large = |n: u8| [vec![n; REUSE_MAX], vec![n.wrapping_add(1); 1000]].concat();
        for value in [small(1), large(2), small(3), large(4), small(5)] {
            let framed = encode(&value).unwrap();
            assert_eq!(framed[0], FLAG_ZSTD);
            assert_eq!(decode(&framed).unwrap().as_slice(), value.as_slice());
        }
    }

    #[test]
    fn fail_a_frame_that_declares_another_size() {
        // A zstd frame whose header promises more (or fewer) bytes than it holds is refused by
        // the kept context as by a fresh one.
        for (value, declared) in
            [(vec![7u8; 1000], 2000u64), (vec![7u8; 1000], 500), (vec![7u8; 200_000], 300_000)]
        {
            let body = zstd::bulk::compress(&value, ZSTD_LEVEL).unwrap();
            let real = zstd::zstd_safe::get_frame_content_size(&body).unwrap().unwrap();
            assert_eq!(real, value.len() as u64);
            assert!(decompress(&body, declared as usize).is_none_or(|out| out.len() != declared as usize));
            assert!(decompress(&body[..body.len() - 1], value.len()).is_none(), "a truncated frame");
        }
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
