//! Key wrapping with key commitment, for password slots and epoch data keys.
//!
//! ```text
//! nonce (24) | commitment (32) | XChaCha20-Poly1305(wrapped key, 32) + tag (16)   = 104 bytes
//! ```
//! The wrapping key is split by HKDF into an encryption key and a commitment value. Poly1305 alone
//! is not key-committing: a store could craft one ciphertext that opens under many candidate
//! passwords (a partitioning oracle, Len–Grubbs–Ristenpart 2021). The commitment is checked in
//! constant time before decryption, so one unlock attempt tests exactly one password.

use crate::derive::hkdf_sha256;
use crate::envelope::{NONCE_LEN, TAG_LEN, xchacha20poly1305_raw};
use crate::secret::{KEY_LEN, Key};
use crate::{CryptoError, Result};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Exact length of a wrapped key.
pub const WRAPPED_LEN: usize = NONCE_LEN + 32 + KEY_LEN + TAG_LEN;

fn split(wrapping: &Key) -> (Key, Key) {
    let enc = hkdf_sha256(wrapping.expose_secret(), b"", b"tresor/v1/wrap/enc");
    let commit = hkdf_sha256(wrapping.expose_secret(), b"", b"tresor/v1/wrap/commit");
    (enc, commit)
}

/// Wraps `key` under `wrapping`, binding `aad`.
pub fn wrap_key(wrapping: &Key, aad: &[u8], key: &Key) -> Result<[u8; WRAPPED_LEN]> {
    let (enc, commit) = split(wrapping);
    let nonce: [u8; NONCE_LEN] = crate::random_array()?;
    let ct = xchacha20poly1305_raw(enc.expose_secret(), &nonce, aad, key.expose_secret(), true)?;
    let mut out = [0u8; WRAPPED_LEN];
    out[..NONCE_LEN].copy_from_slice(&nonce);
    out[NONCE_LEN..NONCE_LEN + 32].copy_from_slice(commit.expose_secret());
    out[NONCE_LEN + 32..].copy_from_slice(&ct);
    Ok(out)
}

/// Unwraps a key made by [`wrap_key`]. Any failure, including a wrong length, is
/// [`CryptoError::Decrypt`].
pub fn unwrap_key(wrapping: &Key, aad: &[u8], wrapped: &[u8]) -> Result<Key> {
    if wrapped.len() != WRAPPED_LEN {
        return Err(CryptoError::Decrypt);
    }
    let (enc, commit) = split(wrapping);
    let (nonce, rest) = wrapped.split_at(NONCE_LEN);
    let (commitment, ct) = rest.split_at(32);
    if !bool::from(commit.expose_secret().as_slice().ct_eq(commitment)) {
        return Err(CryptoError::Decrypt);
    }
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Decrypt)?;
    let plain = Zeroizing::new(xchacha20poly1305_raw(enc.expose_secret(), &nonce, aad, ct, false)?);
    let mut bytes: Zeroizing<[u8; KEY_LEN]> =
        Zeroizing::new(plain.as_slice().try_into().map_err(|_| CryptoError::Decrypt)?);
    Ok(Key::from_bytes(&mut bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wrap_unwrap_roundtrip() {
        let w = Key::generate().unwrap();
        let k = Key::generate().unwrap();
        let wrapped = wrap_key(&w, b"slot 0", &k).unwrap();
        assert!(unwrap_key(&w, b"slot 0", &wrapped).unwrap().ct_eq(&k));
    }

    #[test]
    fn fail_wrong_key_aad_commitment_or_length() {
        let w = Key::generate().unwrap();
        let k = Key::generate().unwrap();
        let wrapped = wrap_key(&w, b"a", &k).unwrap();
        assert!(unwrap_key(&Key::generate().unwrap(), b"a", &wrapped).is_err());
        assert!(unwrap_key(&w, b"b", &wrapped).is_err());
        let mut bad = wrapped;
        bad[NONCE_LEN] ^= 1;
        assert!(unwrap_key(&w, b"a", &bad).is_err());
        assert!(unwrap_key(&w, b"a", &wrapped[..WRAPPED_LEN - 1]).is_err());
        let mut long = wrapped.to_vec();
        long.push(0);
        assert!(unwrap_key(&w, b"a", &long).is_err());
    }

    proptest! {
        #[test]
        fn fail_any_flip(pos in 0usize..WRAPPED_LEN, bit in 0u8..8) {
            let w = Key::generate().unwrap();
            let k = Key::generate().unwrap();
            let mut wrapped = wrap_key(&w, b"aad", &k).unwrap();
            wrapped[pos] ^= 1 << bit;
            prop_assert!(unwrap_key(&w, b"aad", &wrapped).is_err());
        }
    }
}
