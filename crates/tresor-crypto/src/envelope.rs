//! Sealed envelopes: XChaCha20-Poly1305 over framed plaintext, bound to where the bytes belong.
//!
//! ```text
//! magic "TRS1" (4) | format version (1) | algorithm (1) | nonce (24) | ciphertext + tag
//! ```
//! The associated data binds the header, the vault id, the object's role and name, the epoch and
//! any extra header bytes of the object (a log entry's sequence number and chain link). An
//! envelope moved to another name, role, epoch or vault no longer opens. Only the algorithms on the
//! allowlist are accepted; there is no unauthenticated or legacy path.

use crate::payload;
use crate::secret::{Key, SecretBytes};
use crate::{CryptoError, Result};
use chacha20poly1305::aead::inout::InOutBuf;
use chacha20poly1305::aead::{Aead, AeadInOut, KeyInit, Payload};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use zeroize::Zeroize;

/// First bytes of every envelope.
pub const MAGIC: [u8; 4] = *b"TRS1";
/// The envelope format version this code writes and reads.
pub const VERSION: u8 = 1;
/// Algorithm id of XChaCha20-Poly1305, the only one accepted at rest.
pub const ALG_XCHACHA20_POLY1305: u8 = 1;
/// Nonce length of XChaCha20-Poly1305.
pub const NONCE_LEN: usize = 24;
/// Poly1305 tag length.
pub const TAG_LEN: usize = 16;
/// Bytes before the ciphertext.
pub const HEADER_LEN: usize = MAGIC.len() + 2 + NONCE_LEN;
/// Length of a vault id.
pub const VAULT_ID_LEN: usize = 16;

/// Where a sealed object belongs. Every field goes into the associated data.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The vault the object belongs to.
    pub vault_id: &'a [u8; VAULT_ID_LEN],
    /// What kind of object this is ("commit", "blob", "audit", "epoch-key", ...).
    pub role: &'a str,
    /// The object's name in the store.
    pub object: &'a str,
    /// The key epoch the object was sealed in (0 for objects outside epochs).
    pub epoch: u32,
    /// Other header bytes of the object that must not change (may be empty).
    pub extra: &'a [u8],
}

impl Context<'_> {
    fn aad(&self, header: &[u8]) -> Vec<u8> {
        let fields: [&[u8]; 7] = [
            b"tresor/v1/aad",
            header,
            self.vault_id,
            self.role.as_bytes(),
            self.object.as_bytes(),
            &self.epoch.to_be_bytes(),
            self.extra,
        ];
        let mut aad = Vec::with_capacity(fields.iter().map(|f| f.len() + 4).sum());
        for field in fields {
            aad.extend_from_slice(&(field.len() as u32).to_be_bytes());
            aad.extend_from_slice(field);
        }
        aad
    }
}

fn cipher(key: &Key) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new_from_slice(key.expose_secret())
        .unwrap_or_else(|_| unreachable!("keys are 32 bytes"))
}

/// Seals `plaintext` for `ctx`: compressed when it helps, padded, encrypted under a random nonce.
pub fn seal(key: &Key, ctx: &Context<'_>, plaintext: &[u8]) -> Result<Vec<u8>> {
    let framed = payload::encode(plaintext)?;
    seal_framed(key, ctx, &framed)
}

fn seal_framed(key: &Key, ctx: &Context<'_>, framed: &[u8]) -> Result<Vec<u8>> {
    let nonce: [u8; NONCE_LEN] = crate::random_array()?;
    let mut out = Vec::with_capacity(HEADER_LEN + framed.len() + TAG_LEN);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(ALG_XCHACHA20_POLY1305);
    out.extend_from_slice(&nonce);
    let aad = ctx.aad(&out[..MAGIC.len() + 2]);
    let ct = cipher(key)
        .encrypt(&XNonce::from(nonce), Payload { msg: framed, aad: &aad })
        .map_err(|_| CryptoError::TooLarge(framed.len()))?;
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Opens an envelope made by [`seal`] with the same key and context.
///
/// Every failure — short input, unknown magic, version or algorithm, wrong key, wrong context,
/// tampered bytes, bad framing — is [`CryptoError::Decrypt`].
pub fn open(key: &Key, ctx: &Context<'_>, envelope: &[u8]) -> Result<SecretBytes> {
    payload::decode(&open_framed(key, ctx, envelope)?)
}

fn open_framed(key: &Key, ctx: &Context<'_>, envelope: &[u8]) -> Result<SecretBytes> {
    if envelope.len() < HEADER_LEN + TAG_LEN
        || envelope[..4] != MAGIC
        || envelope[4] != VERSION
        || envelope[5] != ALG_XCHACHA20_POLY1305
    {
        return Err(CryptoError::Decrypt);
    }
    let (header, ct) = envelope.split_at(HEADER_LEN);
    let nonce: [u8; NONCE_LEN] = header[6..].try_into().map_err(|_| CryptoError::Decrypt)?;
    let aad = ctx.aad(&header[..6]);
    Ok(SecretBytes::new(
        cipher(key)
            .decrypt(&XNonce::from(nonce), Payload { msg: ct, aad: &aad })
            .map_err(|_| CryptoError::Decrypt)?,
    ))
}

/// Moves an envelope under another key and context without touching what it carries: opens it
/// with `key` and `ctx`, checks its framing, and seals the same framed bytes (same compression,
/// same padding, so the same size) under `new_key` and `new_ctx` with a fresh nonce. Nothing is
/// decompressed or compressed again: re-encryption costs two AEAD passes. Failures to open are
/// [`CryptoError::Decrypt`], as for [`open`].
pub fn reseal(
    key: &Key,
    ctx: &Context<'_>,
    envelope: &[u8],
    new_key: &Key,
    new_ctx: &Context<'_>,
) -> Result<Vec<u8>> {
    let mut out = vec![0u8; envelope.len()];
    reseal_into(key, ctx, envelope, new_key, new_ctx, &mut out)?;
    Ok(out)
}

/// [`reseal`] into `out`, which must be exactly as long as `envelope` (a re-sealed envelope is):
/// the ciphertext is decrypted from `envelope` into `out` (the tag is checked first) and encrypted
/// in place there, so the plaintext never lives anywhere else. On failure `out` holds no
/// plaintext (what it held before, or zeros).
pub fn reseal_into(
    key: &Key,
    ctx: &Context<'_>,
    envelope: &[u8],
    new_key: &Key,
    new_ctx: &Context<'_>,
    out: &mut [u8],
) -> Result<()> {
    if envelope.len() < HEADER_LEN + TAG_LEN
        || out.len() != envelope.len()
        || envelope[..4] != MAGIC
        || envelope[4] != VERSION
        || envelope[5] != ALG_XCHACHA20_POLY1305
    {
        return Err(CryptoError::Decrypt);
    }
    let (header, body) = envelope.split_at(HEADER_LEN);
    let (ct, tag) = body.split_at(body.len() - TAG_LEN);
    let nonce: [u8; NONCE_LEN] = header[6..].try_into().map_err(|_| CryptoError::Decrypt)?;
    let tag = Tag::try_from(tag).map_err(|_| CryptoError::Decrypt)?;
    let new_nonce: [u8; NONCE_LEN] = crate::random_array()?;
    let (new_header, rest) = out.split_at_mut(HEADER_LEN);
    let (body_out, tag_out) = rest.split_at_mut(ct.len());
    new_header[..4].copy_from_slice(&MAGIC);
    new_header[4] = VERSION;
    new_header[5] = ALG_XCHACHA20_POLY1305;
    new_header[6..].copy_from_slice(&new_nonce);
    let aad = ctx.aad(&header[..6]);
    // Decrypted straight from the old envelope into `out` (the tag is checked before anything is
    // written): no separate copy pass.
    let inout = InOutBuf::new(ct, body_out).map_err(|_| CryptoError::Decrypt)?;
    cipher(key)
        .decrypt_inout_detached(&XNonce::from(nonce), &aad, inout, &tag)
        .map_err(|_| CryptoError::Decrypt)?;
    if payload::check(body_out).is_err() {
        body_out.zeroize();
        return Err(CryptoError::Decrypt);
    }
    let new_aad = new_ctx.aad(&new_header[..6]);
    match cipher(new_key).encrypt_inout_detached(&XNonce::from(new_nonce), &new_aad, body_out.into()) {
        Ok(t) => {
            tag_out.copy_from_slice(&t);
            Ok(())
        }
        Err(_) => {
            body_out.zeroize();
            Err(CryptoError::TooLarge(ct.len()))
        }
    }
}

/// Raw XChaCha20-Poly1305 without framing, for known-answer tests and the raw throughput bench.
pub fn xchacha20poly1305_raw(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    msg: &[u8],
    encrypt: bool,
) -> Result<Vec<u8>> {
    let c = XChaCha20Poly1305::new_from_slice(key).map_err(|_| CryptoError::Decrypt)?;
    let payload = Payload { msg, aad };
    let nonce = XNonce::from(*nonce);
    if encrypt { c.encrypt(&nonce, payload) } else { c.decrypt(&nonce, payload) }
        .map_err(|_| CryptoError::Decrypt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VAULT: [u8; 16] = [9; 16];

    fn ctx<'a>(object: &'a str) -> Context<'a> {
        Context { vault_id: &VAULT, role: "blob", object, epoch: 1, extra: b"" }
    }

    #[test]
    fn reseal_moves_an_envelope_to_another_key_and_context() {
        let (old, new) = (Key::generate().unwrap(), Key::generate().unwrap());
        let value = b"a value that compresses: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let sealed = seal(&old, &ctx("blob/1/a"), value).unwrap();
        let moved = reseal(&old, &ctx("blob/1/a"), &sealed, &new, &ctx("blob/2/b")).unwrap();
        assert_eq!(moved.len(), sealed.len(), "same framing, same size");
        assert_ne!(moved[6..30], sealed[6..30], "fresh nonce");
        assert_eq!(open(&new, &ctx("blob/2/b"), &moved).unwrap().as_slice(), value);
        assert!(open(&old, &ctx("blob/2/b"), &moved).is_err(), "the old key does not open it");
        assert!(open(&new, &ctx("blob/1/a"), &moved).is_err(), "bound to its new context");
        assert!(reseal(&new, &ctx("blob/1/a"), &sealed, &new, &ctx("x")).is_err(), "wrong key");
        let mut tampered = sealed.clone();
        tampered[40] ^= 1;
        assert!(reseal(&old, &ctx("blob/1/a"), &tampered, &new, &ctx("x")).is_err());
    }

    #[test]
    fn seal_open_roundtrip_and_size_buckets() {
        let key = Key::generate().unwrap();
        let a = seal(&key, &ctx("o"), b"x").unwrap();
        let b = seal(&key, &ctx("o"), &[7u8; 200]).unwrap();
        assert_eq!(a.len(), b.len(), "short values share a size bucket");
        assert_ne!(a, seal(&key, &ctx("o"), b"x").unwrap(), "nonces are fresh");
        assert_eq!(open(&key, &ctx("o"), &a).unwrap().as_slice(), b"x");
    }

    #[test]
    fn fail_every_context_change() {
        let key = Key::generate().unwrap();
        let env = seal(&key, &ctx("o"), b"v").unwrap();
        let other_vault = [8u8; 16];
        let variants = [
            Context { object: "p", ..ctx("o") },
            Context { role: "commit", ..ctx("o") },
            Context { epoch: 2, ..ctx("o") },
            Context { extra: b"x", ..ctx("o") },
            Context { vault_id: &other_vault, ..ctx("o") },
        ];
        for v in variants {
            assert!(matches!(open(&key, &v, &env), Err(CryptoError::Decrypt)), "{v:?}");
        }
        assert!(matches!(open(&Key::generate().unwrap(), &ctx("o"), &env), Err(CryptoError::Decrypt)));
    }

    #[test]
    fn fail_downgrade_and_truncation() {
        let key = Key::generate().unwrap();
        let env = seal(&key, &ctx("o"), b"v").unwrap();
        for (i, val) in [(4usize, 0u8), (4, 2), (5, 0), (5, 2), (0, b'X')] {
            let mut bad = env.clone();
            bad[i] = val;
            assert!(matches!(open(&key, &ctx("o"), &bad), Err(CryptoError::Decrypt)));
        }
        assert!(matches!(open(&key, &ctx("o"), &env[..env.len() - 1]), Err(CryptoError::Decrypt)));
        assert!(matches!(open(&key, &ctx("o"), &env[..HEADER_LEN]), Err(CryptoError::Decrypt)));
        let mut longer = env.clone();
        longer.push(0);
        assert!(matches!(open(&key, &ctx("o"), &longer), Err(CryptoError::Decrypt)));
    }

    proptest! {
        #[test]
        fn roundtrip_any_value(value in proptest::collection::vec(any::<u8>(), 0..3000), object in "[a-z0-9/]{1,40}") {
            let key = Key::generate().unwrap();
            let env = seal(&key, &ctx(&object), &value).unwrap();
            let opened = open(&key, &ctx(&object), &env).unwrap();
            prop_assert_eq!(opened.as_slice(), value.as_slice());
        }

        #[test]
        fn fail_any_single_byte_flip(value in proptest::collection::vec(any::<u8>(), 0..300), pos in any::<usize>(), bit in 0u8..8) {
            let key = Key::generate().unwrap();
            let mut env = seal(&key, &ctx("o"), &value).unwrap();
            let i = pos % env.len();
            env[i] ^= 1 << bit;
            prop_assert!(matches!(open(&key, &ctx("o"), &env), Err(CryptoError::Decrypt)));
        }
    }
}
