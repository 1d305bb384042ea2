//! Who a member is: its signing identity for one group, derived from its own vault's root in the
//! sync branch SLIP-0010 reserves, its public key and the member id other members know it by
//! (ARCHITECTURE.md, "Sharing and sync through a relay", **Identities**).

use serde::{Deserialize, Serialize};
use std::fmt;
use tresor_crypto::agree::AgreementSecret;
use tresor_crypto::derive::hkdf_sha256;
use tresor_crypto::hash;
use tresor_crypto::slip10::{self, DerivationPath, Ed25519Node};

/// A member id: SHA-256 of the member's public keys under a domain label.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MemberId(pub [u8; 32]);

impl fmt::Debug for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemberId({self})")
    }
}

impl fmt::Display for MemberId {
    /// The first 8 bytes in hex: what people read in `share members`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0[..8]))
    }
}

/// A member's public keys, as the group's members list carries them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberKey {
    /// Its Ed25519 key, which signs its events.
    pub signing: [u8; 32],
    /// Its long-term X25519 key, to which the first epoch key it gets is wrapped.
    pub agreement: [u8; 32],
}

impl MemberKey {
    /// The member id these keys make.
    pub fn id(&self) -> MemberId {
        MemberId(hash(&[b"tresor-sync member v1".as_slice(), &self.signing, &self.agreement].concat()))
    }

    /// Whether `signature` is this member's over `message` (strict Ed25519).
    pub fn verifies(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        slip10::verify(&self.signing, message, signature)
    }
}

/// A member's private identity in one group. Neither `Clone` nor `Debug`-revealing: the node
/// lives in locked memory and is wiped on drop.
pub struct Identity {
    node: Ed25519Node,
    agreement: AgreementSecret,
    key: MemberKey,
}

impl Identity {
    /// The identity of the vault whose SLIP-0010 master node is `master`, in `group`, on
    /// installation `installation` (a vault restored elsewhere from its phrase takes another
    /// installation number, so it never signs a sequence number its first copy used).
    pub fn derive(master: &Ed25519Node, group: &[u8; 32], installation: u32) -> Identity {
        Identity::from_node(master.descend(&DerivationPath::sync_member(group, installation)))
    }

    /// The identity whose signing node is `node` (its X25519 key an HKDF of the node's key).
    pub fn from_node(node: Ed25519Node) -> Identity {
        let agreement = AgreementSecret::from_key(&hkdf_sha256(
            node.expose_private_key(),
            b"",
            b"tresor-sync member x25519",
        ));
        let key = MemberKey { signing: node.public_key(), agreement: agreement.public() };
        Identity { node, agreement, key }
    }

    /// Its long-term X25519 private key.
    pub fn agreement(&self) -> &AgreementSecret {
        &self.agreement
    }

    /// Its public keys.
    pub fn key(&self) -> MemberKey {
        self.key
    }

    /// Its member id.
    pub fn id(&self) -> MemberId {
        self.key.id()
    }

    /// Its signature over `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.node.sign(message)
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({}, private key redacted)", self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_vault_has_one_identity_per_group_and_installation() {
        let master = Ed25519Node::master(&[7; 64]);
        let a = Identity::derive(&master, &[1; 32], 0);
        assert_eq!(a.id(), Identity::derive(&master, &[1; 32], 0).id());
        assert_ne!(a.id(), Identity::derive(&master, &[2; 32], 0).id());
        assert_ne!(a.id(), Identity::derive(&master, &[1; 32], 1).id());
        assert_ne!(a.id(), Identity::derive(&Ed25519Node::master(&[8; 64]), &[1; 32], 0).id());
        let signature = a.sign(b"event");
        assert!(a.key().verifies(b"event", &signature));
        assert!(!a.key().verifies(b"other", &signature));
        assert!(!format!("{a:?}").contains(&hex::encode(master.expose_private_key())));
    }
}
