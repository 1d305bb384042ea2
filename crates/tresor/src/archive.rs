//! Self-contained encrypted backups (`tresor export` / `tresor import`).
//!
//! ```text
//! magic "TRSRARC1" (8) | vault id (16) | count u32 BE | count × (name length u16 | name | length u32 | bytes) | MAC (32)
//! ```
//! The archive holds the vault's objects exactly as the store holds them — key file included, so
//! the backup opens with the password alone — and reveals no more than the store does. The MAC,
//! keyed by a key derived from the root secret, proves no object was dropped, added or changed.
//! Import checks the password and the MAC before it writes anything.

use crate::error::{Error, ObjectKind, Result};
use crate::keyfile::KeyFile;
use crate::layout::{self, parse_seq};
use crate::model::AuditOp;
use crate::store::Store;
use crate::trust::TrustState;
use crate::vault::{Engine, Options, Vault};
use tresor_crypto::{Password, Purpose, derive_key, mac, verify_mac};

const MAGIC: &[u8; 8] = b"TRSRARC1";
const MAX_OBJECTS: usize = 10_000_000;

/// A parsed archive.
pub struct Archive {
    /// The vault it holds.
    pub vault_id: [u8; 16],
    /// Its objects: (name, bytes).
    pub objects: Vec<(String, Vec<u8>)>,
    body_len: usize,
    mac: [u8; 32],
}

fn bad(detail: &str) -> Error {
    Error::integrity(ObjectKind::Archive, "file", detail)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && name
            .split('/')
            .all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

/// Writes the vault's objects into an archive, after proving its chains whole.
pub async fn export(vault: &Vault) -> Result<Vec<u8>> {
    vault.export().await
}

/// [`export`] on the engine (in its task).
pub(crate) async fn export_engine(vault: &mut Engine) -> Result<Vec<u8>> {
    vault.verify().await?;
    vault.audit_op(AuditOp::Export, None).await?;
    let objects = vault.authenticated_objects().await?;
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&vault.vault_id());
    out.extend_from_slice(&(objects.len() as u32).to_be_bytes());
    for (name, bytes) in &objects {
        out.extend_from_slice(&(name.len() as u16).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(bytes);
    }
    let key = derive_key(vault.root().key(), &vault.vault_id(), Purpose::ExportMac);
    let tag = mac(&key, &[&out]);
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Parses an archive's framing (nothing is authenticated yet).
pub fn parse(bytes: &[u8]) -> Result<Archive> {
    let mut rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or_else(|| bad("is not a tresor archive"))?;
    let mut take = |n: usize| -> Result<&[u8]> {
        if rest.len() < n {
            return Err(bad("is truncated"));
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let vault_id: [u8; 16] = take(16)?.try_into().map_err(|_| bad("is truncated"))?;
    let count = u32::from_be_bytes(take(4)?.try_into().map_err(|_| bad("is truncated"))?) as usize;
    if count > MAX_OBJECTS {
        return Err(bad("claims too many objects"));
    }
    let mut objects = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let len = u16::from_be_bytes(take(2)?.try_into().map_err(|_| bad("is truncated"))?) as usize;
        let name =
            std::str::from_utf8(take(len)?).map_err(|_| bad("has an invalid object name"))?.to_string();
        if !valid_name(&name) {
            return Err(bad("has an invalid object name"));
        }
        let len = u32::from_be_bytes(take(4)?.try_into().map_err(|_| bad("is truncated"))?) as usize;
        objects.push((name, take(len)?.to_vec()));
    }
    let mac: [u8; 32] = take(32)?.try_into().map_err(|_| bad("is truncated"))?;
    if !rest.is_empty() {
        return Err(bad("has trailing bytes"));
    }
    Ok(Archive { vault_id, objects, body_len: bytes.len() - 32, mac })
}

/// Restores an archive into an empty location and opens it. The password and the archive's MAC
/// are checked before anything is written; the location's trust state starts from the archive.
pub async fn import(store: Store, bytes: &[u8], password: &Password, opts: Options) -> Result<Vault> {
    let archive = parse(bytes)?;
    let (_, keyfile_bytes) = archive
        .objects
        .iter()
        .filter_map(|(n, b)| parse_seq(n, layout::KEYFILE_DIR).map(|g| (g, b)))
        .max_by_key(|(g, _)| *g)
        .ok_or_else(|| bad("holds no key file"))?;
    let keyfile = KeyFile::parse(keyfile_bytes)?;
    if keyfile.vault_id != archive.vault_id {
        return Err(bad("holds a key file of another vault"));
    }
    let (root, _) = keyfile.unlock(password, None)?;
    let key = derive_key(root.key(), &archive.vault_id, Purpose::ExportMac);
    if !verify_mac(&key, &[&bytes[..archive.body_len]], &archive.mac) {
        return Err(bad("does not authenticate: it was changed, truncated or extended"));
    }
    drop(root);
    if store.holds_data().await? {
        return Err(Error::VaultExists { location: store.location().to_string() });
    }
    store.probe().await?;
    let count = archive.objects.len();
    // The key file goes last: until it is written the location holds no vault, so an import cut
    // short (full disk, crash) never opens as an older vault.
    let (keyfiles, mut objects): (Vec<_>, Vec<_>) =
        archive.objects.into_iter().partition(|(n, _)| parse_seq(n, layout::KEYFILE_DIR).is_some());
    objects.extend(keyfiles);
    for (done, (name, object)) in objects.into_iter().enumerate() {
        let written = match store.create(&name, object).await {
            Ok(crate::store::Created::Yes) => Ok(()),
            Ok(crate::store::Created::AlreadyExists) => Err(format!("{name} appeared while importing")),
            Err(e) => Err(e.to_string()),
        };
        if let Err(why) = written {
            return Err(Error::store(format!(
                "import stopped after {done} of {count} objects ({why}); the location holds no usable \
                 vault: empty {} and import again",
                store.location()
            )));
        }
    }
    opts.trust.reset(&archive.vault_id, store.location(), &TrustState::default())?;
    let mut vault = Engine::unlock(store, password, opts).await?;
    vault.audit_op(AuditOp::Import, Some(format!("{count} objects from an archive"))).await?;
    Ok(Vault::serve(vault))
}
