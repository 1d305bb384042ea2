//! Sealed, hash-chained, append-only logs: the commit log and the audit trail.
//!
//! ```text
//! magic "TRSL" (4) | version u8 | role u8 | seq u64 BE | previous link (32) | envelope
//! ```
//! The header is part of the envelope's associated data. Entry `n`'s link is an HMAC (keyed by a
//! per-log key derived from the root secret) over entry `n`'s bytes, and entry `n + 1` carries it:
//! replacing, dropping, reordering or injecting an entry breaks the chain. Entry `n` is created
//! only if absent, so concurrent writers are linearized by the store.

use crate::error::{Error, ObjectKind, Result};
use crate::layout::{self, AuditLane};
use crate::roles::RootKey;
use std::sync::Arc;
use tresor_crypto::envelope::{Context, open, seal};
use tresor_crypto::{Key, Purpose, SecretBytes, derive_key, mac};

const MAGIC: &[u8; 4] = b"TRSL";
const VERSION: u8 = 1;
/// Length of an entry header.
pub const HEADER_LEN: usize = 4 + 1 + 1 + 8 + 32;
/// A link in a chain: HMAC-SHA256 of the previous entry.
pub type Link = [u8; 32];
/// The link before the first entry.
pub const GENESIS: Link = [0; 32];

/// Which log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogKind {
    /// The commit log.
    Commit,
    /// One lane of the audit trail.
    Audit(AuditLane),
}

impl LogKind {
    fn id(self) -> u8 {
        match self {
            LogKind::Commit => 1,
            LogKind::Audit(_) => 2,
        }
    }
    /// The kind of object its entries are.
    pub fn object_kind(self) -> ObjectKind {
        match self {
            LogKind::Commit => ObjectKind::Commit,
            LogKind::Audit(_) => ObjectKind::AuditRecord,
        }
    }
    /// The store prefix of its entries.
    pub fn dir(self) -> String {
        match self {
            LogKind::Commit => layout::LOG_DIR.to_string(),
            LogKind::Audit(lane) => lane.dir(),
        }
    }
    /// The name of entry `seq`.
    pub fn name(self, seq: u64) -> String {
        match self {
            LogKind::Commit => layout::commit(seq),
            LogKind::Audit(lane) => lane.entry(seq),
        }
    }
    fn role(self) -> &'static str {
        match self {
            LogKind::Commit => "commit",
            LogKind::Audit(_) => "audit",
        }
    }
}

/// The keys of one log (shared by the lanes of the audit trail: see [`Chain::lane`]).
pub struct Chain {
    kind: LogKind,
    seal: Arc<Key>,
    link: Arc<Key>,
    vault_id: [u8; 16],
}

impl Chain {
    /// The chain of `kind` for a vault, with keys derived from its root secret.
    pub fn new(kind: LogKind, root: &RootKey, vault_id: [u8; 16]) -> Chain {
        let (s, l) = match kind {
            LogKind::Commit => (Purpose::LogSeal, Purpose::LogChain),
            LogKind::Audit(_) => (Purpose::AuditSeal, Purpose::AuditChain),
        };
        let (seal, link) =
            (Arc::new(derive_key(root.key(), &vault_id, s)), Arc::new(derive_key(root.key(), &vault_id, l)));
        Chain { kind, seal, link, vault_id }
    }

    /// The chain of another lane of the same audit trail (the same keys). An entry names its
    /// lane in its associated data and each lane starts from its own [`Chain::origin`], so no
    /// entry, and no run of entries, opens in another lane.
    pub fn lane(&self, lane: AuditLane) -> Chain {
        Chain {
            kind: LogKind::Audit(lane),
            seal: self.seal.clone(),
            link: self.link.clone(),
            vault_id: self.vault_id,
        }
    }

    /// The link entry 1 carries: [`GENESIS`] for the commit log and the main audit lane, a MAC of
    /// the lane's id for any other lane.
    pub fn origin(&self) -> Link {
        match self.kind {
            LogKind::Audit(AuditLane::Named(id)) => mac(&self.link, &[b"tresor audit lane origin", &id]),
            _ => GENESIS,
        }
    }

    /// Which log this is.
    pub fn kind(&self) -> LogKind {
        self.kind
    }

    fn header(&self, seq: u64, prev: &Link) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..4].copy_from_slice(MAGIC);
        h[4] = VERSION;
        h[5] = self.kind.id();
        h[6..14].copy_from_slice(&seq.to_be_bytes());
        h[14..].copy_from_slice(prev);
        h
    }

    /// Seals `plaintext` as entry `seq` following `prev`.
    pub fn seal(&self, seq: u64, prev: &Link, plaintext: &[u8]) -> Result<Vec<u8>> {
        let header = self.header(seq, prev);
        let name = self.kind.name(seq);
        let ctx = Context {
            vault_id: &self.vault_id,
            role: self.kind.role(),
            object: &name,
            epoch: 0,
            extra: &header,
        };
        let env = seal(&self.seal, &ctx, plaintext)?;
        Ok([header.as_slice(), &env].concat())
    }

    /// The link of an entry's bytes (what the next entry must carry).
    pub fn link(&self, bytes: &[u8]) -> Link {
        mac(&self.link, &[bytes])
    }

    /// Opens entry `seq`, which must follow `prev`; errors name what is wrong with it.
    pub fn open(&self, seq: u64, prev: &Link, bytes: &[u8]) -> Result<SecretBytes> {
        let name = self.kind.name(seq);
        let kind = self.kind.object_kind();
        if bytes.len() < HEADER_LEN
            || &bytes[..4] != MAGIC
            || bytes[4] != VERSION
            || bytes[5] != self.kind.id()
        {
            return Err(Error::integrity(kind, &name, "not a sealed log entry of this kind"));
        }
        let (header, env) = bytes.split_at(HEADER_LEN);
        let served_seq = u64::from_be_bytes(header[6..14].try_into().unwrap_or_default());
        if served_seq != seq {
            return Err(Error::integrity(
                kind,
                &name,
                format!("holds entry {served_seq}: moved, copied or injected"),
            ));
        }
        if header[14..] != prev[..] {
            return Err(Error::integrity(
                kind,
                &name,
                "does not chain to the entry before it: an entry was replaced, reordered or injected",
            ));
        }
        let ctx = Context {
            vault_id: &self.vault_id,
            role: self.kind.role(),
            object: &name,
            epoch: 0,
            extra: header,
        };
        open(&self.seal, &ctx, env)
            .map_err(|_| Error::integrity(kind, &name, "does not authenticate: tampered or forged"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chain(kind: LogKind) -> (Chain, RootKey) {
        let root = RootKey::generate().unwrap();
        (Chain::new(kind, &root, [1; 16]), root)
    }

    #[test]
    fn entries_chain_and_open() {
        let (c, _) = chain(LogKind::Commit);
        let e1 = c.seal(1, &GENESIS, b"one").unwrap();
        let e2 = c.seal(2, &c.link(&e1), b"two").unwrap();
        assert_eq!(c.open(1, &GENESIS, &e1).unwrap().as_slice(), b"one");
        assert_eq!(c.open(2, &c.link(&e1), &e2).unwrap().as_slice(), b"two");
    }

    #[test]
    fn fail_moved_replaced_or_foreign_entries() {
        let (c, root) = chain(LogKind::Commit);
        let e1 = c.seal(1, &GENESIS, b"one").unwrap();
        let e1b = c.seal(1, &GENESIS, b"other").unwrap();
        let e2 = c.seal(2, &c.link(&e1), b"two").unwrap();
        // Entry 2 moved to slot 3, entry 2 after a replaced entry 1, entry 1 replayed as entry 2.
        assert!(matches!(c.open(3, &c.link(&e2), &e2), Err(Error::Integrity { .. })));
        assert!(matches!(c.open(2, &c.link(&e1b), &e2), Err(Error::Integrity { .. })));
        assert!(matches!(c.open(2, &c.link(&e1), &e1), Err(Error::Integrity { .. })));
        // The audit chain of the same vault cannot open a commit, nor can another vault.
        let audit = Chain::new(LogKind::Audit(AuditLane::Main), &root, [1; 16]);
        assert!(audit.open(1, &GENESIS, &e1).is_err());
        let other = Chain::new(LogKind::Commit, &root, [2; 16]);
        assert!(other.open(1, &GENESIS, &e1).is_err());
    }

    #[test]
    fn lanes_do_not_open_each_others_entries() {
        let (main, _) = chain(LogKind::Audit(AuditLane::Main));
        let (a, b) = (main.lane(AuditLane::Named([1; 8])), main.lane(AuditLane::Named([2; 8])));
        assert_eq!(main.origin(), GENESIS);
        assert_ne!(a.origin(), b.origin());
        assert_ne!(a.origin(), GENESIS);
        let e1 = a.seal(1, &a.origin(), b"one").unwrap();
        assert_eq!(a.open(1, &a.origin(), &e1).unwrap().as_slice(), b"one");
        // The same bytes under another lane's name, at its start or chained as in lane a.
        assert!(matches!(b.open(1, &b.origin(), &e1), Err(Error::Integrity { .. })));
        assert!(matches!(b.open(1, &a.origin(), &e1), Err(Error::Integrity { .. })));
        assert!(matches!(main.open(1, &a.origin(), &e1), Err(Error::Integrity { .. })));
        // A whole lane copied under another id: its first entry does not start that lane.
        let e1_main = main.seal(1, &GENESIS, b"one").unwrap();
        assert!(a.open(1, &a.origin(), &e1_main).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn fail_any_byte_flip(body in proptest::collection::vec(any::<u8>(), 0..400), pos in any::<usize>(), bit in 0u8..8) {
            let (c, _) = chain(LogKind::Audit(AuditLane::Main));
            let mut e = c.seal(7, &[5; 32], &body).unwrap();
            let opened = c.open(7, &[5; 32], &e).unwrap();
            prop_assert_eq!(opened.as_slice(), body.as_slice());
            let i = pos % e.len();
            e[i] ^= 1 << bit;
            prop_assert!(c.open(7, &[5; 32], &e).is_err());
        }
    }
}
