//! SLIP-0010 key derivation for Ed25519 (hardened only), and Ed25519 signatures.
//!
//! A node is a private key and a chain code. The master node is
//! `HMAC-SHA512(key = "ed25519 seed", data = seed)`, split into private key (left 32 bytes) and
//! chain code (right 32); the child with index `i` is
//! `HMAC-SHA512(key = chain code, data = 0x00 || private key || ser32(2^31 + i))`, split the same
//! way. Ed25519 has no public derivation, so SLIP-0010 allows hardened indices only and a path
//! with an unhardened component is refused when it is read ([`PathError::NotHardened`]).
//! Signing and verification are ed25519-dalek's (RFC 8032); [`verify`] is its `verify_strict`,
//! which also refuses small-order keys and non-canonical signatures.
//!
//! # tresor's paths
//!
//! The seed is the BIP39 seed of the vault's recovery phrase ([`crate::phrase::Phrase::seed`]),
//! so every identity can be recomputed from the 24 words alone. All of tresor's keys live under
//! its own purpose, [`PURPOSE`] = 74':
//!
//! | path                   | what                                                     |
//! |------------------------|----------------------------------------------------------|
//! | `m/74'/0'/account'`    | Ed25519 identities (signing), [`identity_path`]          |
//! | `m/74'/1'/…`           | reserved for X25519 sync keys (not derived yet)          |
//! | `m/74'/n'` for n ≥ 2   | reserved                                                 |
//!
//! The key service never signs with, nor reveals the private half of, a key under a reserved
//! branch ([`DerivationPath::is_reserved`]), nor reveals the private half of their ancestors `m`
//! and `m/74'` ([`DerivationPath::reaches_reserved`]).
//!
//! A path component is written `5'`, `5h` or `5H`; [`DerivationPath`]'s `Display` always writes
//! `5'`. Indices are below 2^31 and paths at most [`MAX_DEPTH`] components deep.

use crate::secret::{KEY_LEN, Key};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha512;
use std::fmt;
use std::str::FromStr;
use zeroize::{Zeroize, Zeroizing};

/// The hardened bit of a BIP32/SLIP-0010 index.
pub const HARDENED: u32 = 1 << 31;
/// The largest index a path component can have (the hardened bit is implied).
pub const MAX_INDEX: u32 = HARDENED - 1;
/// The deepest path accepted (BIP32 serialises depth in one byte).
pub const MAX_DEPTH: usize = 255;
/// tresor's SLIP-0010 purpose: every tresor key is under `m/74'`.
pub const PURPOSE: u32 = 74;
/// The branch under [`PURPOSE`] for Ed25519 identities (`m/74'/0'/…`).
pub const IDENTITY_BRANCH: u32 = 0;
/// The branch under [`PURPOSE`] reserved for X25519 sync keys (`m/74'/1'/…`); nothing is derived
/// there yet.
pub const SYNC_BRANCH: u32 = 1;
/// The branch under [`PURPOSE`] of the server's transit signing keys (`m/74'/2'/…`): reserved, so
/// no client of the key service can sign as one or see its private half.
pub const TRANSIT_SIGNING_BRANCH: u32 = 2;

/// HMAC key of the master node for Ed25519 (SLIP-0010).
const MASTER_KEY: &[u8] = b"ed25519 seed";

/// A SLIP-0010 Ed25519 path: hardened indices only, stored without the hardened bit.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct DerivationPath(Vec<u32>);

/// Why a derivation path was refused. Paths are not secret: the messages quote them.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathError {
    /// Not of the form `m/1'/2'/…`. `position` is the 1-based component (0 for the leading `m`).
    #[error("not a derivation path (component {position}): {reason}")]
    Syntax {
        /// 1-based component, 0 for the leading `m`.
        position: usize,
        /// What is wrong there.
        reason: &'static str,
    },
    /// A component without a hardened marker.
    #[error(
        "SLIP-0010 ed25519 supports hardened derivation only: component {position} (\"{index}\") \
         is not hardened; write {index}'"
    )]
    NotHardened {
        /// 1-based component.
        position: usize,
        /// The index as written.
        index: u32,
    },
    /// An index of 2^31 or more (the hardened bit is the marker, not part of the number).
    #[error("component {position} is larger than {MAX_INDEX}, the largest hardened index")]
    IndexTooLarge {
        /// 1-based component.
        position: usize,
    },
    /// More than [`MAX_DEPTH`] components.
    #[error("a derivation path has at most {MAX_DEPTH} components, not {depth}")]
    TooDeep {
        /// The number of components given.
        depth: usize,
    },
}

impl DerivationPath {
    /// The path of the given indices (each below 2^31, all hardened).
    pub fn new(indices: Vec<u32>) -> Result<Self, PathError> {
        if indices.len() > MAX_DEPTH {
            return Err(PathError::TooDeep { depth: indices.len() });
        }
        if let Some(i) = indices.iter().position(|&i| i > MAX_INDEX) {
            return Err(PathError::IndexTooLarge { position: i + 1 });
        }
        Ok(Self(indices))
    }

    /// The path of version `version` of the transit signing key `name`:
    /// `m/74'/2'/h1'/h2'/h3'/version'`, where h1..h3 are 31-bit pieces of SHA-256 of the name (with
    /// a domain label) — one key per name and version, in a reserved branch.
    pub fn transit_signing(name: &str, version: u32) -> Result<Self, PathError> {
        let digest = crate::hash(format!("tresor transit signing key\0{name}").as_bytes());
        let piece = |i: usize| {
            u32::from_be_bytes([digest[i], digest[i + 1], digest[i + 2], digest[i + 3]]) & MAX_INDEX
        };
        Self::new(vec![PURPOSE, TRANSIT_SIGNING_BRANCH, piece(0), piece(4), piece(8), version & MAX_INDEX])
    }

    /// The path of a vault's member keys for sync group `group` on installation `installation`:
    /// `m/74'/1'/g1'/g2'/g3'/installation'`, where g1..g3 are 31-bit pieces of SHA-256 of the
    /// group id (with a domain label) — one key per group and installation, in a reserved branch.
    pub fn sync_member(group: &[u8; 32], installation: u32) -> Self {
        let digest = crate::hash(&[b"tresor sync member key\0".as_slice(), group].concat());
        let piece = |i: usize| {
            u32::from_be_bytes([digest[i], digest[i + 1], digest[i + 2], digest[i + 3]]) & MAX_INDEX
        };
        Self(vec![PURPOSE, SYNC_BRANCH, piece(0), piece(4), piece(8), installation & MAX_INDEX])
    }

    /// The master path `m`.
    pub fn master() -> Self {
        Self(Vec::new())
    }

    /// The indices, without the hardened bit.
    pub fn indices(&self) -> &[u32] {
        &self.0
    }

    /// Whether the path is under a branch tresor reserves for its own keys (`m/74'/n'/…` with
    /// n ≥ 1): the key service signs with and reveals the private half of nothing there, so no
    /// client can obtain a signature or key that tresor's own protocols will rely on.
    pub fn is_reserved(&self) -> bool {
        matches!(self.0.as_slice(), [PURPOSE, branch, ..] if *branch != IDENTITY_BRANCH)
    }

    /// Whether the private node at this path would give its holder keys of a reserved branch:
    /// the path is reserved, or is an ancestor of the reserved branches (`m` or `m/74'`), whose
    /// private key and chain code derive every key below them.
    pub fn reaches_reserved(&self) -> bool {
        self.is_reserved() || matches!(self.0.as_slice(), [] | [PURPOSE])
    }

    /// The number of components (0 for `m`).
    pub fn depth(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Display for DerivationPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("m")?;
        for i in &self.0 {
            write!(f, "/{i}'")?;
        }
        Ok(())
    }
}

impl FromStr for DerivationPath {
    type Err = PathError;

    /// Reads `m`, `m/74'/0'/0'`, `m/74h/0H/0'`: decimal indices without sign or leading zeros,
    /// each followed by `'`, `h` or `H`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split('/');
        if parts.next() != Some("m") {
            return Err(PathError::Syntax { position: 0, reason: "a path starts with \"m\"" });
        }
        let depth = s.split('/').count() - 1;
        if depth > MAX_DEPTH {
            return Err(PathError::TooDeep { depth });
        }
        let mut indices = Vec::with_capacity(depth);
        for (i, part) in parts.enumerate() {
            let position = i + 1;
            let (digits, hardened) = match part.strip_suffix(['\'', 'h', 'H']) {
                Some(digits) => (digits, true),
                None => (part, false),
            };
            if digits.is_empty() {
                return Err(PathError::Syntax { position, reason: "empty component" });
            }
            if !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(PathError::Syntax { position, reason: "an index is a decimal number" });
            }
            if digits.len() > 1 && digits.starts_with('0') {
                return Err(PathError::Syntax { position, reason: "an index has no leading zeros" });
            }
            let index = match digits.parse::<u32>() {
                Ok(n) if n <= MAX_INDEX => n,
                _ => return Err(PathError::IndexTooLarge { position }),
            };
            if !hardened {
                return Err(PathError::NotHardened { position, index });
            }
            indices.push(index);
        }
        Ok(Self(indices))
    }
}

/// The path of Ed25519 identity `account`: `m/74'/0'/account'`. `account` is below 2^31; a
/// larger value already carries the hardened bit and names account `account - 2^31`, as
/// [`Ed25519Node::child`] reads it.
pub fn identity_path(account: u32) -> DerivationPath {
    DerivationPath(vec![PURPOSE, IDENTITY_BRANCH, account & MAX_INDEX])
}

/// A SLIP-0010 Ed25519 node: private key and chain code, each in a locked page wiped on drop.
/// No `Clone`; `Debug` is redacted.
pub struct Ed25519Node {
    private_key: Key,
    chain_code: Key,
}

impl Ed25519Node {
    /// The master node of `seed` (a BIP39 seed is 64 bytes; SLIP-0010 allows 16 to 64).
    pub fn master(seed: &[u8]) -> Ed25519Node {
        Self::from_hmac(MASTER_KEY, &[seed])
    }

    /// The node at `path` under the master node of `seed`.
    pub fn derive(seed: &[u8], path: &DerivationPath) -> Ed25519Node {
        path.indices().iter().fold(Self::master(seed), |node, &i| node.child(i))
    }

    /// The node at `path` below this one (this node itself for `m`).
    pub fn descend(&self, path: &DerivationPath) -> Ed25519Node {
        let mut indices = path.indices().iter();
        match indices.next() {
            Some(&first) => indices.fold(self.child(first), |node, &i| node.child(i)),
            None => {
                let mut private_key = Zeroizing::new(*self.private_key.expose_secret());
                let mut chain_code = Zeroizing::new(*self.chain_code.expose_secret());
                Ed25519Node {
                    private_key: Key::from_bytes(&mut private_key),
                    chain_code: Key::from_bytes(&mut chain_code),
                }
            }
        }
    }

    /// The hardened child `index'`. `index` is given without the hardened bit; an index that
    /// already has it is the same child (BIP32 writes hardened `i'` as `2^31 + i`).
    pub fn child(&self, hardened_index: u32) -> Ed25519Node {
        let mut data = Zeroizing::new([0u8; 1 + KEY_LEN + 4]);
        data[1..1 + KEY_LEN].copy_from_slice(self.private_key.expose_secret());
        data[1 + KEY_LEN..].copy_from_slice(&(hardened_index | HARDENED).to_be_bytes());
        Self::from_hmac(self.chain_code.expose_secret(), &[data.as_slice()])
    }

    fn from_hmac(key: &[u8], data: &[&[u8]]) -> Ed25519Node {
        let mut mac = <Hmac<Sha512> as KeyInit>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        for d in data {
            mac.update(d);
        }
        let mut out = mac.finalize().into_bytes();
        let mut left = Zeroizing::new([0u8; KEY_LEN]);
        let mut right = Zeroizing::new([0u8; KEY_LEN]);
        left.copy_from_slice(&out[..KEY_LEN]);
        right.copy_from_slice(&out[KEY_LEN..]);
        out.as_mut_slice().zeroize();
        Ed25519Node { private_key: Key::from_bytes(&mut left), chain_code: Key::from_bytes(&mut right) }
    }

    /// The Ed25519 public key (RFC 8032 encoding) of this node.
    pub fn public_key(&self) -> [u8; 32] {
        self.signing_key().verifying_key().to_bytes()
    }

    /// The chain code. Together with the private key it yields every child: keep it as secret as
    /// the key.
    pub fn chain_code(&self) -> &[u8; 32] {
        self.chain_code.expose_secret()
    }

    /// The 32-byte Ed25519 private key (RFC 8032 "secret key", the seed of the signing key).
    /// Only for an explicit request to show it.
    pub fn expose_private_key(&self) -> &[u8; 32] {
        self.private_key.expose_secret()
    }

    /// An RFC 8032 Ed25519 signature of `msg` (deterministic: the same message gives the same
    /// signature).
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.signing_key().sign(msg).to_bytes()
    }

    /// The dalek signing key, built for one use; it wipes itself on drop.
    fn signing_key(&self) -> SigningKey {
        SigningKey::from_bytes(self.private_key.expose_secret())
    }

    /// A node with a given private key and a zero chain code, for the RFC 8032 known answers.
    #[cfg(test)]
    fn from_private_for_tests(private: [u8; 32]) -> Ed25519Node {
        let mut private = private;
        Ed25519Node {
            private_key: Key::from_bytes(&mut private),
            chain_code: Key::from_bytes(&mut [0u8; 32]),
        }
    }
}

impl fmt::Debug for Ed25519Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ed25519Node([REDACTED])")
    }
}

/// Checks an Ed25519 signature strictly (ed25519-dalek's `verify_strict`: canonical encodings,
/// no small-order key or R). Any malformed input is `false`.
pub fn verify(public_key: &[u8; 32], msg: &[u8], signature: &[u8; 64]) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    key.verify_strict(msg, &Signature::from_bytes(signature)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transit_signing_keys_are_reserved_and_one_per_name_and_version() {
        let a1 = DerivationPath::transit_signing("release", 1).unwrap();
        assert!(a1.is_reserved() && a1.reaches_reserved(), "{a1}");
        assert_eq!(&a1.indices()[..2], &[PURPOSE, TRANSIT_SIGNING_BRANCH]);
        assert_eq!(a1, DerivationPath::transit_signing("release", 1).unwrap(), "deterministic");
        assert_ne!(a1, DerivationPath::transit_signing("release", 2).unwrap());
        assert_ne!(a1, DerivationPath::transit_signing("releasE", 1).unwrap());
    }

    #[test]
    fn sync_member_keys_are_reserved_and_one_per_group_and_installation() {
        let a = DerivationPath::sync_member(&[1; 32], 0);
        assert!(a.is_reserved() && a.depth() == 6, "{a}");
        assert_eq!(&a.indices()[..2], &[PURPOSE, SYNC_BRANCH]);
        assert_eq!(a, DerivationPath::sync_member(&[1; 32], 0), "deterministic");
        assert_ne!(a, DerivationPath::sync_member(&[1; 32], 1));
        assert_ne!(a, DerivationPath::sync_member(&[2; 32], 0));
        assert!(a.indices().iter().all(|&i| i <= MAX_INDEX));
    }

    fn h<const N: usize>(s: &str) -> [u8; N] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    /// RFC 8032 §7.1, TEST 1–3: secret key, public key, message, signature.
    const RFC8032: [(&str, &str, &str, &str); 3] = [
        (
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "",
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        ),
        (
            "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            "72",
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        ),
        (
            "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
            "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
            "af82",
            "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
        ),
    ];

    #[test]
    fn rfc8032_tests_1_to_3_through_a_node() {
        for (sk, pk, msg, sig) in RFC8032 {
            let node = Ed25519Node::from_private_for_tests(h(sk));
            let msg = hex::decode(msg).unwrap();
            assert_eq!(node.public_key(), h::<32>(pk));
            assert_eq!(node.sign(&msg), h::<64>(sig));
            assert!(verify(&h(pk), &msg, &h(sig)));
            let mut bad = h::<64>(sig);
            bad[0] ^= 1;
            assert!(!verify(&h(pk), &msg, &bad));
            assert!(!verify(&h(pk), b"other message", &h(sig)));
        }
    }

    #[test]
    fn debug_is_redacted() {
        let node = Ed25519Node::master(&[1u8; 32]);
        assert_eq!(format!("{node:?}"), "Ed25519Node([REDACTED])");
    }

    #[test]
    fn child_ignores_an_existing_hardened_bit() {
        let node = Ed25519Node::master(&[2u8; 32]);
        assert_eq!(node.child(5).public_key(), node.child(HARDENED | 5).public_key());
        assert_ne!(node.child(5).public_key(), node.child(6).public_key());
    }

    #[test]
    fn identity_path_is_under_purpose_74() {
        assert_eq!(identity_path(0).to_string(), "m/74'/0'/0'");
        assert_eq!(identity_path(7).indices(), &[74, 0, 7]);
        assert_eq!(identity_path(HARDENED | 7), identity_path(7));
    }
}
