//! Property tests at the public API boundary of `tresor-crypto`.
//!
//! - envelopes: `seal`/`open` round-trip any value under any context; any single-bit flip,
//!   truncation or extension of an envelope, and any change of key or context, fails with
//!   [`CryptoError::Decrypt`];
//! - key wrapping: `wrap_key`/`unwrap_key` round-trip; any flip, length change, wrong wrapping key
//!   or wrong associated data fails with [`CryptoError::Decrypt`];
//! - sizes: an envelope's length is a function of the padded bucket of its framed payload only.
//!
//! Negative properties are named `fail_*`. Case counts are kept small so the file runs in seconds.
// A failed unwrap in a test is a test failure, which is exactly what we want.
#![allow(clippy::unwrap_used)]

use proptest::collection::vec;
use proptest::prelude::*;
use tresor_crypto::envelope::{Context, HEADER_LEN, TAG_LEN, VAULT_ID_LEN, open, seal};
use tresor_crypto::pad::padded_len;
use tresor_crypto::payload;
use tresor_crypto::wrap::{WRAPPED_LEN, unwrap_key, wrap_key};
use tresor_crypto::{CryptoError, Key};

/// The owned fields of a [`Context`], so proptest can generate them.
#[derive(Clone, Debug)]
struct Ctx {
    vault_id: [u8; VAULT_ID_LEN],
    role: String,
    object: String,
    epoch: u32,
    extra: Vec<u8>,
}

impl Ctx {
    fn get(&self) -> Context<'_> {
        Context {
            vault_id: &self.vault_id,
            role: &self.role,
            object: &self.object,
            epoch: self.epoch,
            extra: &self.extra,
        }
    }
}

fn ctx_strategy() -> impl Strategy<Value = Ctx> {
    (any::<[u8; VAULT_ID_LEN]>(), ".{0,16}", ".{0,48}", any::<u32>(), vec(any::<u8>(), 0..24))
        .prop_map(|(vault_id, role, object, epoch, extra)| Ctx { vault_id, role, object, epoch, extra })
}

fn key_strategy() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

fn key(bytes: [u8; 32]) -> Key {
    let mut bytes = bytes;
    Key::from_bytes(&mut bytes)
}

/// Values of every flavour: short, long, and long-but-compressible (a short pattern repeated).
fn value_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..64),
        vec(any::<u8>(), 0..4096),
        (vec(any::<u8>(), 1..16), 1usize..400).prop_map(|(pattern, n)| pattern.repeat(n)),
    ]
}

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(64)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn seal_open_roundtrip(k in key_strategy(), ctx in ctx_strategy(), value in value_strategy()) {
        let k = key(k);
        let env = seal(&k, &ctx.get(), &value).unwrap();
        let opened = open(&k, &ctx.get(), &env).unwrap();
        prop_assert_eq!(opened.as_slice(), value.as_slice());
        // Fresh nonces: sealing the same value again never gives the same bytes.
        prop_assert_ne!(seal(&k, &ctx.get(), &value).unwrap(), env);
    }

    #[test]
    fn fail_single_bit_flip(
        k in key_strategy(),
        ctx in ctx_strategy(),
        value in value_strategy(),
        pos in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let k = key(k);
        let mut env = seal(&k, &ctx.get(), &value).unwrap();
        let i = pos.index(env.len());
        env[i] ^= 1 << bit;
        prop_assert!(matches!(open(&k, &ctx.get(), &env), Err(CryptoError::Decrypt)), "bit {} of byte {}", bit, i);
    }

    #[test]
    fn fail_truncation(
        k in key_strategy(),
        ctx in ctx_strategy(),
        value in value_strategy(),
        cut in any::<prop::sample::Index>(),
    ) {
        let k = key(k);
        let env = seal(&k, &ctx.get(), &value).unwrap();
        let len = cut.index(env.len()); // 0..env.len(): always strictly shorter
        prop_assert!(matches!(open(&k, &ctx.get(), &env[..len]), Err(CryptoError::Decrypt)), "truncated to {}", len);
    }

    #[test]
    fn fail_extension(
        k in key_strategy(),
        ctx in ctx_strategy(),
        value in value_strategy(),
        tail in vec(any::<u8>(), 1..64),
    ) {
        let k = key(k);
        let mut env = seal(&k, &ctx.get(), &value).unwrap();
        env.extend_from_slice(&tail);
        prop_assert!(matches!(open(&k, &ctx.get(), &env), Err(CryptoError::Decrypt)));
    }

    #[test]
    fn fail_wrong_key_or_context(
        k in key_strategy(),
        other_key in key_strategy(),
        ctx in ctx_strategy(),
        value in vec(any::<u8>(), 0..512),
        which in 0usize..6,
        byte in any::<u8>(),
    ) {
        let sealing_key = key(k);
        let env = seal(&sealing_key, &ctx.get(), &value).unwrap();
        let mut other = ctx.clone();
        let mut opening_key = key(k);
        match which {
            0 => other.vault_id[usize::from(byte) % VAULT_ID_LEN] ^= 1,
            1 => other.role.push(char::from(byte % 95 + 32)),
            2 => other.object.push(char::from(byte % 95 + 32)),
            3 => other.epoch = other.epoch.wrapping_add(1 + u32::from(byte)),
            4 => other.extra.push(byte),
            _ => {
                prop_assume!(other_key != k);
                opening_key = key(other_key);
            }
        }
        prop_assert!(matches!(open(&opening_key, &other.get(), &env), Err(CryptoError::Decrypt)), "variant {}", which);
    }

    #[test]
    fn wrap_unwrap_roundtrip(w in key_strategy(), k in key_strategy(), aad in vec(any::<u8>(), 0..64)) {
        let (w, k) = (key(w), key(k));
        let wrapped = wrap_key(&w, &aad, &k).unwrap();
        prop_assert_eq!(wrapped.len(), WRAPPED_LEN);
        prop_assert!(unwrap_key(&w, &aad, &wrapped).unwrap().ct_eq(&k));
    }

    #[test]
    fn fail_unwrap_after_bit_flip(
        w in key_strategy(),
        k in key_strategy(),
        aad in vec(any::<u8>(), 0..64),
        pos in 0usize..WRAPPED_LEN,
        bit in 0u8..8,
    ) {
        let (w, k) = (key(w), key(k));
        let mut wrapped = wrap_key(&w, &aad, &k).unwrap();
        wrapped[pos] ^= 1 << bit;
        prop_assert_eq!(unwrap_key(&w, &aad, &wrapped).err(), Some(CryptoError::Decrypt));
    }

    #[test]
    fn fail_unwrap_wrong_length_key_or_aad(
        w in key_strategy(),
        other_w in key_strategy(),
        k in key_strategy(),
        aad in vec(any::<u8>(), 0..64),
        cut in 0usize..WRAPPED_LEN,
        tail in vec(any::<u8>(), 1..16),
        extra_aad in any::<u8>(),
    ) {
        let (wk, k) = (key(w), key(k));
        let wrapped = wrap_key(&wk, &aad, &k).unwrap();
        prop_assert_eq!(unwrap_key(&wk, &aad, &wrapped[..cut]).err(), Some(CryptoError::Decrypt));
        let mut longer = wrapped.to_vec();
        longer.extend_from_slice(&tail);
        prop_assert_eq!(unwrap_key(&wk, &aad, &longer).err(), Some(CryptoError::Decrypt));
        let mut other_aad = aad.clone();
        other_aad.push(extra_aad);
        prop_assert_eq!(unwrap_key(&wk, &other_aad, &wrapped).err(), Some(CryptoError::Decrypt));
        if other_w != w {
            prop_assert_eq!(unwrap_key(&key(other_w), &aad, &wrapped).err(), Some(CryptoError::Decrypt));
        }
    }

    #[test]
    fn envelope_length_is_header_plus_framed_bucket_plus_tag(
        k in key_strategy(),
        ctx in ctx_strategy(),
        value in value_strategy(),
    ) {
        let k = key(k);
        let framed = payload::encode(&value).unwrap();
        prop_assert_eq!(framed.len() - 5, padded_len(framed.len() - 5), "framing is not padded to a bucket");
        let env = seal(&k, &ctx.get(), &value).unwrap();
        prop_assert_eq!(env.len(), HEADER_LEN + framed.len() + TAG_LEN);
    }

    #[test]
    fn same_bucket_same_envelope_length(
        k in key_strategy(),
        ctx in ctx_strategy(),
        a in vec(any::<u8>(), 0..16384),
        b_seed in vec(any::<u8>(), 16384),
        pick in any::<prop::sample::Index>(),
    ) {
        // Uniformly random bytes do not compress, so the framed body is the value itself, padded to
        // the bucket of its length, after 5 bytes of flags and length. Choose b's length anywhere
        // in a's bucket.
        let bucket = padded_len(a.len());
        let hi = bucket;
        let lo = (0..=a.len()).find(|&n| padded_len(n) == bucket).unwrap();
        let b = &b_seed[..lo + pick.index(hi.min(b_seed.len()) - lo + 1)];
        let (fa, fb) = (payload::encode(&a).unwrap(), payload::encode(b).unwrap());
        prop_assert_eq!(fa.len(), 5 + bucket);
        prop_assert_eq!(fb.len(), 5 + bucket, "b ({} bytes) left a's bucket [{}, {}]", b.len(), lo, hi);

        let k = key(k);
        let ea = seal(&k, &ctx.get(), &a).unwrap();
        let eb = seal(&k, &ctx.get(), b).unwrap();
        prop_assert_eq!(ea.len(), eb.len(), "{} and {} bytes share bucket {}", a.len(), b.len(), bucket);
        prop_assert_eq!(ea.len(), HEADER_LEN + 5 + bucket + TAG_LEN);

        // One byte past the bucket's top, the envelope grows: sizes reveal the bucket and no more.
        if let Some(over) = b_seed.get(..hi + 1) {
            let eo = seal(&k, &ctx.get(), over).unwrap();
            prop_assert!(eo.len() > ea.len(), "{} bytes did not leave bucket {}", over.len(), bucket);
        }
    }
}
