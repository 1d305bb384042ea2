//! The key service: keys derived from the vault's root secret, used on behalf of programs that
//! never see them (TARGET.md §3).
//!
//! - **Identities**: SLIP-0010 Ed25519 nodes of the BIP39 seed of the recovery phrase (empty
//!   passphrase), so `tresor mnemonic derive PATH` on the phrase gives the same public key as
//!   `tresor key derive ed25519 PATH` on the unlocked vault. Hardened paths only; tresor's own
//!   uses live under `m/74'` (ARCHITECTURE.md). The seed's master node is computed once per
//!   unlock, kept in locked pages and wiped when the handle is dropped (lock).
//! - **Transit encryption**: a named key per (name, algorithm), HKDF from the root secret with the
//!   vault id as salt; outputs are self-describing ([`tresor_crypto::transit`]).
//! - **Signatures**: Ed25519 with a derived identity.
//!
//! Every use through the service is audited (`key derive`, `sign`, `encrypt`, `decrypt`,
//! `recovery-phrase`), like a read of a secret. [`Engine::derive_encryption_key`], which hands the
//! raw key to in-process library code, is not: the agent does not serve it.

use super::Engine;
use crate::error::{Error, Result};
use crate::model::{AuditOp, Outcome};
use crate::store::Durability;
use tresor_crypto::slip10::{DerivationPath, Ed25519Node};
use tresor_crypto::transit::{self, Algorithm, TransitError};
use tresor_crypto::{Key, Phrase, SecretBytes};
use zeroize::Zeroizing;

/// A derived Ed25519 identity: what `tresor key derive ed25519` shows.
pub struct DerivedIdentity {
    /// The derivation path, as `m/74'/0'/0'`.
    pub path: String,
    /// The public key (32 bytes).
    pub public_key: [u8; 32],
    /// Private key and chain code, only when asked for explicitly (`--show-private`).
    pub private: Option<PrivateNode>,
}

/// The secret half of a derived node. Wiped on drop; no `Clone`, `Serialize`, or `Debug` output.
pub struct PrivateNode {
    /// The Ed25519 private key (seed form, 32 bytes).
    pub private_key: Zeroizing<[u8; 32]>,
    /// The SLIP-0010 chain code.
    pub chain_code: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for PrivateNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateNode([REDACTED])")
    }
}

fn transit_error(e: TransitError) -> Error {
    match e {
        TransitError::Random => Error::Random,
        TransitError::TooLarge => {
            Error::TooLarge { size: transit::MAX_PLAINTEXT + 1, limit: transit::MAX_PLAINTEXT }
        }
        other => Error::Invalid(other.to_string()),
    }
}

/// Refuses a path under a branch tresor reserves for its own keys ([`DerivationPath::is_reserved`]).
fn refuse_reserved(path: &DerivationPath) -> Result<()> {
    if path.is_reserved() {
        return Err(Error::Invalid(format!(
            "{path} is under a branch tresor reserves for its own keys (m/74'/n' for n ≥ 1): \
             sign with m/74'/0'/… or a path of your own"
        )));
    }
    Ok(())
}

impl Engine {
    /// The vault's recovery phrase: 24 BIP39 English words encoding the root secret. Whoever
    /// holds it holds the vault; `init` shows it once.
    pub fn recovery_phrase(&self) -> Phrase {
        Phrase::from_key(self.keys.root.key())
    }

    /// [`Engine::recovery_phrase`] shown again after `init`, recorded in the audit trail first.
    pub async fn reveal_recovery_phrase(&mut self) -> Result<Phrase> {
        let detail = Some("the recovery phrase was shown".to_string());
        self.audit_append(AuditOp::RecoveryPhrase, None, Outcome::Ok, detail, Durability::Sync).await?;
        Ok(self.recovery_phrase())
    }

    /// The node at `path` (computing the master node on first use).
    fn node(&mut self, path: &DerivationPath) -> Ed25519Node {
        let root = &self.keys.root;
        let master = self
            .master
            .get_or_insert_with(|| Ed25519Node::master(Phrase::from_key(root.key()).seed("").as_slice()));
        master.descend(path)
    }

    /// The node of this vault's member identity in a sync group ([`DerivationPath::sync_member`]).
    pub(crate) fn sync_node(&mut self, label: &[u8; 32], installation: u32) -> Ed25519Node {
        self.node(&DerivationPath::sync_member(label, installation))
    }

    /// The Ed25519 identity at `path`; its private half only with `show_private`.
    pub async fn derive_ed25519(
        &mut self,
        path: &DerivationPath,
        show_private: bool,
    ) -> Result<DerivedIdentity> {
        if show_private && path.reaches_reserved() {
            return Err(Error::Invalid(format!(
                "the private half of {path} would derive the keys tresor reserves for itself \
                 (m/74'/n' for n ≥ 1): its public key is shown without --show-private"
            )));
        }
        let node = self.node(path);
        let detail = format!("ed25519 {path}{}", if show_private { ", private key shown" } else { "" });
        self.audit_append(AuditOp::KeyDerive, None, Outcome::Ok, Some(detail), Durability::Relaxed).await?;
        Ok(DerivedIdentity {
            path: path.to_string(),
            public_key: node.public_key(),
            private: show_private.then(|| PrivateNode {
                private_key: Zeroizing::new(*node.expose_private_key()),
                chain_code: Zeroizing::new(*node.chain_code()),
            }),
        })
    }

    /// [`Engine::derive_encryption_key`] for a caller outside the vault, recorded in the audit
    /// trail first: the raw key leaves the vault's keeping.
    pub async fn reveal_encryption_key(&mut self, name: &str, alg: Algorithm) -> Result<Key> {
        let key = self.derive_encryption_key(name, alg)?;
        let detail = format!("key {name} ({alg}): the raw key was handed out");
        self.audit_append(AuditOp::KeyDerive, None, Outcome::Ok, Some(detail), Durability::Sync).await?;
        Ok(key)
    }

    /// Signs `msg` with the identity at `path`: (signature, public key).
    pub async fn sign(&mut self, path: &DerivationPath, msg: &[u8]) -> Result<([u8; 64], [u8; 32])> {
        refuse_reserved(path)?;
        let node = self.node(path);
        let detail = format!("ed25519 {path}, {} bytes", msg.len());
        self.audit_append(AuditOp::Sign, None, Outcome::Ok, Some(detail), Durability::Relaxed).await?;
        Ok((node.sign(msg), node.public_key()))
    }

    /// Signs `msg` with version `version` of the transit signing key `name` (a reserved SLIP-0010
    /// branch, [`DerivationPath::transit_signing`]): (signature, public key). For the server's
    /// transit mount; the agent serves no such call, so no client signs as one of these keys.
    pub async fn transit_sign(
        &mut self,
        name: &str,
        version: u32,
        msg: &[u8],
    ) -> Result<([u8; 64], [u8; 32])> {
        transit::validate_name(name).map_err(transit_error)?;
        let path =
            DerivationPath::transit_signing(name, version).map_err(|e| Error::Invalid(e.to_string()))?;
        let node = self.node(&path);
        let detail = format!("transit key {name} v{version}, {} bytes", msg.len());
        self.audit_append(AuditOp::Sign, None, Outcome::Ok, Some(detail), Durability::Relaxed).await?;
        Ok((node.sign(msg), node.public_key()))
    }

    /// Signs each of `msgs` with version `version` of the transit signing key `name`, audited once
    /// for them all: the signatures, in order, and the public key.
    pub async fn transit_sign_batch(
        &mut self,
        name: &str,
        version: u32,
        msgs: &[Vec<u8>],
    ) -> Result<(Vec<[u8; 64]>, [u8; 32])> {
        transit::validate_name(name).map_err(transit_error)?;
        let path =
            DerivationPath::transit_signing(name, version).map_err(|e| Error::Invalid(e.to_string()))?;
        let node = self.node(&path);
        let bytes: usize = msgs.iter().map(Vec::len).sum();
        let detail = format!("{}, transit key {name} v{version}, {bytes} bytes", count(msgs.len()));
        self.audit_append(AuditOp::Sign, None, Outcome::Ok, Some(detail), Durability::Relaxed).await?;
        Ok((msgs.iter().map(|m| node.sign(m)).collect(), node.public_key()))
    }

    /// The public key of version `version` of the transit signing key `name` (public: not audited).
    pub fn transit_public_key(&mut self, name: &str, version: u32) -> Result<[u8; 32]> {
        transit::validate_name(name).map_err(transit_error)?;
        let path =
            DerivationPath::transit_signing(name, version).map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(self.node(&path).public_key())
    }

    /// The transit key `name` for `alg` (for in-process callers that must hold the key
    /// themselves; prefer [`Engine::encrypt`] and [`Engine::decrypt`]). Not audited, and not served
    /// by the agent: no client process ever receives a derived key.
    pub fn derive_encryption_key(&self, name: &str, alg: Algorithm) -> Result<Key> {
        transit::validate_name(name).map_err(transit_error)?;
        Ok(transit::derive_transit_key(self.keys.root.key(), &self.vault_id, name, alg))
    }

    /// The key of one streamed transit message ([`transit::stream`]) under the transit key `name`
    /// for `alg`: with `salt` `None`, for a new message (a fresh salt is drawn here, so a client
    /// cannot aim it at another message); with the salt of an existing message's header, to
    /// decrypt it. The message key opens that one message only: handing it to a client gives it
    /// no more than [`Engine::decrypt`] of that message would, and lets it stream through its own
    /// memory. Audited as `encrypt` or `decrypt`.
    pub async fn transit_stream_key(
        &mut self,
        name: &str,
        alg: Algorithm,
        salt: Option<[u8; transit::SALT_LEN]>,
    ) -> Result<([u8; transit::SALT_LEN], Key)> {
        let named = self.derive_encryption_key(name, alg)?;
        let (op, salt) = match salt {
            Some(salt) => (AuditOp::Decrypt, salt),
            None => (AuditOp::Encrypt, tresor_crypto::random_array().map_err(|_| Error::Random)?),
        };
        let key = transit::stream::message_key(&named, &salt);
        let detail = format!("key {name} ({alg}), streamed: message key issued");
        self.audit_append(op, None, Outcome::Ok, Some(detail), Durability::Relaxed).await?;
        Ok((salt, key))
    }

    /// Encrypts `plaintext` with the transit key `name`: a versioned, self-describing ciphertext
    /// (format version, algorithm and key name in its header).
    pub async fn encrypt(&mut self, name: &str, alg: Algorithm, plaintext: &[u8]) -> Result<Vec<u8>> {
        let key = self.derive_encryption_key(name, alg)?;
        if plaintext.len() > transit::MAX_PLAINTEXT {
            return Err(Error::TooLarge { size: plaintext.len(), limit: transit::MAX_PLAINTEXT });
        }
        let detail = format!("key {name} ({alg}), {} bytes", plaintext.len());
        self.audit_append(AuditOp::Encrypt, None, Outcome::Ok, Some(detail), Durability::Relaxed).await?;
        self.seal_transit(&key, name, alg, plaintext)
    }

    /// Seals `plaintext` under `key`, the transit key `name` for `alg` (not audited: callers
    /// audit), refusing one over the limit.
    fn seal_transit(&self, key: &Key, name: &str, alg: Algorithm, plaintext: &[u8]) -> Result<Vec<u8>> {
        if plaintext.len() > transit::MAX_PLAINTEXT {
            return Err(Error::TooLarge { size: plaintext.len(), limit: transit::MAX_PLAINTEXT });
        }
        transit::encrypt(key, &self.vault_id, name, alg, plaintext).map_err(transit_error)
    }

    /// Opens a transit ciphertext of this vault (not audited: callers audit); `expected`, when
    /// given, is the key name the caller means: a ciphertext of another key is refused by name.
    fn open_transit(&self, ciphertext: &[u8], expected: Option<&str>) -> Result<SecretBytes> {
        let header = transit::header(ciphertext).map_err(transit_error)?;
        if let Some(want) = expected
            && want != header.name
        {
            return Err(Error::Invalid(format!(
                "this ciphertext was made with key {:?}, not {want:?}",
                header.name
            )));
        }
        let key = self.derive_encryption_key(&header.name, header.alg)?;
        transit::decrypt(&key, &self.vault_id, ciphertext).map_err(transit_error)
    }

    /// Encrypts each `(name, plaintext)` of `items` with its transit key under `alg`, with one
    /// audit record for them all (as Vault audits a batch request once): one result per item, an
    /// item that cannot be encrypted (too large) failing alone.
    pub async fn encrypt_batch(
        &mut self,
        alg: Algorithm,
        items: &[(String, Zeroizing<Vec<u8>>)],
    ) -> Result<Vec<Result<Vec<u8>>>> {
        let mut keys = std::collections::BTreeMap::new();
        for (name, _) in items {
            if !keys.contains_key(name.as_str()) {
                keys.insert(name.as_str(), self.derive_encryption_key(name, alg)?);
            }
        }
        let bytes: usize = items.iter().map(|(_, p)| p.len()).sum();
        let detail = format!("{}, key {} ({alg}), {bytes} bytes", count(items.len()), names(keys.keys()));
        self.audit_append(AuditOp::Encrypt, None, Outcome::Ok, Some(detail), Durability::Relaxed).await?;
        Ok(items
            .iter()
            .map(|(name, plaintext)| match keys.get(name.as_str()) {
                Some(key) => self.seal_transit(key, name, alg, plaintext),
                None => Err(Error::Invalid(format!("no key {name:?} was derived"))),
            })
            .collect())
    }

    /// Decrypts each `(ciphertext, expected key name)` of `items`, with one audit record for
    /// them all, which counts the items that failed: one result per item, each failing alone.
    pub async fn decrypt_batch(&mut self, items: &[(Vec<u8>, String)]) -> Result<Vec<Result<SecretBytes>>> {
        let out: Vec<Result<SecretBytes>> =
            items.iter().map(|(c, want)| self.open_transit(c, Some(want))).collect();
        let failed = out.iter().filter(|r| r.is_err()).count();
        let bytes: usize = items.iter().map(|(c, _)| c.len()).sum();
        let wanted: std::collections::BTreeSet<&str> = items.iter().map(|(_, w)| w.as_str()).collect();
        let detail = format!("{}, key {}, {bytes} bytes", count(items.len()), names(wanted.iter()));
        let outcome = match failed {
            0 => Outcome::Ok,
            n => Outcome::Failed(format!("{n} of {} did not decrypt", count(items.len()))),
        };
        self.audit_append(AuditOp::Decrypt, None, outcome, Some(detail), Durability::Relaxed).await?;
        Ok(out)
    }

    /// Decrypts a transit ciphertext (binary or armoured) of this vault. `expected`, when given,
    /// is the key name the caller means: a ciphertext of another key is refused by name.
    pub async fn decrypt(&mut self, ciphertext: &[u8], expected: Option<&str>) -> Result<SecretBytes> {
        let header = transit::header(ciphertext).map_err(transit_error)?;
        let result = self.open_transit(ciphertext, expected);
        let detail = format!("key {} ({}), {} bytes", header.name, header.alg, ciphertext.len());
        let outcome = match &result {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Failed(e.to_string()),
        };
        self.audit_append(AuditOp::Decrypt, None, outcome, Some(detail), Durability::Relaxed).await?;
        result
    }
}

/// How many items a batch holds, for its audit record ("1 item", "3 items").
fn count(items: usize) -> String {
    if items == 1 { "1 item".into() } else { format!("{items} items") }
}

/// The key names of a batch for its audit record: the first few, and how many more.
fn names<'a>(names: impl Iterator<Item = &'a &'a str> + Clone) -> String {
    const SHOWN: usize = 4;
    let count = names.clone().count();
    let mut text = names.take(SHOWN).copied().collect::<Vec<_>>().join(", ");
    if count > SHOWN {
        text.push_str(&format!(" and {} more", count - SHOWN));
    }
    text
}
