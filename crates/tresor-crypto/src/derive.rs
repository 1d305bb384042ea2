//! Per-purpose keys (HKDF-SHA256), keyed chains (HMAC-SHA256) and object hashes (SHA-256).
//!
//! Every key the root secret yields has its own label, so no key ever serves two algorithms or two
//! purposes. The vault id is the HKDF salt: the same root secret in two vaults gives unrelated keys.

use crate::secret::{KEY_LEN, Key};
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// What a derived key is for. The label of each is part of the format: never change one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Purpose {
    /// Seals commits of the commit log.
    LogSeal,
    /// Keys the hash chain of the commit log.
    LogChain,
    /// Seals audit records.
    AuditSeal,
    /// Keys the hash chain of the audit trail.
    AuditChain,
    /// Wraps epoch data keys.
    Shield,
    /// Authenticates the whole key file once a slot has been opened.
    KeyFileMac,
    /// Authenticates export archives.
    ExportMac,
    /// Seals index snapshots.
    SnapshotSeal,
    /// Keys the vault fingerprint: a public, human-comparable digest of the root secret.
    Fingerprint,
}

impl Purpose {
    /// The HKDF `info` label.
    pub fn label(self) -> &'static [u8] {
        match self {
            Purpose::LogSeal => b"tresor/v1/log/seal",
            Purpose::LogChain => b"tresor/v1/log/chain",
            Purpose::AuditSeal => b"tresor/v1/audit/seal",
            Purpose::AuditChain => b"tresor/v1/audit/chain",
            Purpose::Shield => b"tresor/v1/shield",
            Purpose::KeyFileMac => b"tresor/v1/keyfile/mac",
            Purpose::ExportMac => b"tresor/v1/export/mac",
            Purpose::SnapshotSeal => b"tresor/v1/snapshot/seal",
            Purpose::Fingerprint => b"tresor/v1/fingerprint",
        }
    }
}

/// HKDF-SHA256 (RFC 5869) of `ikm` with `salt`, expanded to one key under `info`.
pub fn hkdf_sha256(ikm: &[u8], salt: &[u8], info: &[u8]) -> Key {
    let mut okm = Zeroizing::new([0u8; KEY_LEN]);
    // A 32-byte output is always within HKDF-SHA256's 255 * 32 byte limit.
    hkdf_sha256_expand(ikm, salt, info, okm.as_mut())
        .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 length"));
    Key::from_bytes(&mut okm)
}

/// HKDF-SHA256 into a caller-sized buffer (known-answer tests; keys use [`hkdf_sha256`]).
/// An empty salt is the RFC's "not provided". Fails only when `okm` exceeds 255 × 32 bytes.
pub fn hkdf_sha256_expand(ikm: &[u8], salt: &[u8], info: &[u8], okm: &mut [u8]) -> crate::Result<()> {
    let hk = Hkdf::<Sha256>::new(Some(salt), ikm);
    hk.expand(info, okm).map_err(|_| crate::CryptoError::TooLarge(okm.len()))
}

/// Plain HMAC-SHA256 of `msg` (known-answer tests; tresor's chains use [`mac`]).
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    m.update(msg);
    m.finalize().into_bytes().into()
}

/// The key for `purpose`, derived from the root secret and salted with the vault id.
pub fn derive_key(root: &Key, vault_id: &[u8], purpose: Purpose) -> Key {
    hkdf_sha256(root.expose_secret(), vault_id, purpose.label())
}

/// HMAC-SHA256 over the concatenation of `parts`, each prefixed with its length so that no two
/// different part lists give the same input.
pub fn mac(key: &Key, parts: &[&[u8]]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key.expose_secret())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    for part in parts {
        m.update(&(part.len() as u64).to_be_bytes());
        m.update(part);
    }
    m.finalize().into_bytes().into()
}

/// Constant-time check of a [`mac`].
pub fn verify_mac(key: &Key, parts: &[&[u8]], expected: &[u8]) -> bool {
    mac(key, parts).ct_eq(expected).into()
}

/// SHA-256 of `data`: names stored objects in hash chains and fingerprints.
pub fn hash(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_have_distinct_labels_and_keys() {
        let root = Key::generate().unwrap();
        let all = [
            Purpose::LogSeal,
            Purpose::LogChain,
            Purpose::AuditSeal,
            Purpose::AuditChain,
            Purpose::Shield,
            Purpose::KeyFileMac,
            Purpose::ExportMac,
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a.label(), b.label());
                let ka = derive_key(&root, b"vault", *a);
                let kb = derive_key(&root, b"vault", *b);
                assert!(!ka.ct_eq(&kb));
            }
        }
    }

    #[test]
    fn vault_id_separates_keys() {
        let root = Key::generate().unwrap();
        let a = derive_key(&root, b"vault-a", Purpose::LogSeal);
        let b = derive_key(&root, b"vault-b", Purpose::LogSeal);
        assert!(!a.ct_eq(&b));
    }

    #[test]
    fn mac_framing_separates_part_boundaries() {
        let key = Key::generate().unwrap();
        assert_ne!(mac(&key, &[b"ab", b"c"]), mac(&key, &[b"a", b"bc"]));
        let m = mac(&key, &[b"x"]);
        assert!(verify_mac(&key, &[b"x"], &m));
        assert!(!verify_mac(&key, &[b"y"], &m));
        assert!(!verify_mac(&key, &[b"x"], &m[..31]));
    }

    #[test]
    fn hash_matches_fips_180_abc() {
        assert_eq!(
            hex::encode(hash(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
