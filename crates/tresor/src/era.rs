//! Root eras: which of a location's root eras holds the vault now (see ARCHITECTURE.md, root
//! rotation). Era 1 is the top of the location; era `e ≥ 2` lives under `root/<e>/`, announced by
//! an `era/<e>` marker. The current era is the newest whose key file exists.

use crate::error::{Error, ObjectKind, Result};
use crate::layout;
use crate::store::Store;

/// The current root era at `base` and the store of its objects (`base` itself for era 1).
pub async fn current(base: &Store) -> Result<(u32, Store)> {
    let mut eras: Vec<u32> = base
        .list(layout::ERA_DIR)
        .await?
        .iter()
        .filter_map(|n| layout::parse_era_marker(n))
        .filter(|e| *e >= 2)
        .collect();
    eras.sort_unstable();
    // Newest first; a marker without a key file is a re-key that did not finish, or planted (as
    // is a link or file where the era's directory belongs). Each costs a listing, so only the
    // newest few are tried: more than that is a store at work, and an error says so.
    for era in eras.iter().rev().take(MAX_ERA_CANDIDATES) {
        let store = match base.sub(&layout::era_dir(*era), false) {
            Ok(Some(store)) => store,
            Ok(None) | Err(Error::Foreign { .. }) => continue,
            Err(e) => return Err(e),
        };
        if has_keyfile(&store).await? {
            return Ok((*era, store));
        }
    }
    if eras.len() > MAX_ERA_CANDIDATES {
        return Err(Error::integrity(
            ObjectKind::RootEra,
            &layout::era_marker(eras[eras.len() - 1]),
            format!("and {} more root era markers without a key file: not written by tresor", eras.len() - 1),
        ));
    }
    Ok((1, base.clone()))
}

/// Most root era markers [`current`] looks behind (newest first).
const MAX_ERA_CANDIDATES: usize = 16;

/// The store of root era `era` at `base` (created with `create`).
pub fn store(base: &Store, era: u32, create: bool) -> Result<Option<Store>> {
    if era <= 1 { Ok(Some(base.clone())) } else { base.sub(&layout::era_dir(era), create) }
}

/// Whether `store` holds a key file (of any generation).
pub async fn has_keyfile(store: &Store) -> Result<bool> {
    Ok(store
        .list(layout::KEYFILE_DIR)
        .await?
        .iter()
        .any(|n| layout::parse_seq(n, layout::KEYFILE_DIR).is_some()))
}

/// What deleting a root era left: objects deleted, and what the store keeps of them.
pub struct Deleted {
    /// Objects deleted.
    pub objects: u64,
    /// Old versions the store keeps (a versioned bucket), or none.
    pub residue: crate::versions::Residue,
}

/// Deletes every object of root era `era` at `base` (its key files, epoch keys, blobs, logs,
/// snapshots and probes — names of tresor's shapes only) and, on a versioned bucket, their old
/// versions; then its marker. Run once a newer era is current (`rekey`, `gc`).
pub async fn delete(base: &Store, era: u32) -> Result<Deleted> {
    let Some(store) = self::store(base, era, false)? else {
        return Ok(Deleted { objects: 0, residue: crate::versions::Residue::NotKept });
    };
    let names = objects_of(&store).await?;
    let objects = names.len() as u64;
    // The key files go last: until they do, a crash leaves an era that still opens, not debris.
    let (keyfiles, rest): (Vec<String>, Vec<String>) =
        names.into_iter().partition(|n| layout::parse_seq(n, layout::KEYFILE_DIR).is_some());
    store.delete_many(rest).await?;
    store.delete_many(keyfiles).await?;
    let prefixes: Vec<String> = [
        layout::KEYFILE_DIR,
        layout::LOG_DIR,
        layout::AUDIT_DIR,
        layout::EPOCH_DIR,
        layout::BLOB_DIR,
        layout::SNAPSHOT_DIR,
        layout::PROBE_DIR,
    ]
    .iter()
    .map(|d| format!("{d}/"))
    .collect();
    let residue = store.purge_versions(&prefixes).await?;
    if era >= 2 {
        base.delete(&layout::era_marker(era)).await?;
    }
    Ok(Deleted { objects, residue })
}

/// Deletes the debris of a re-key to `era` that did not finish (objects but no key file).
pub async fn delete_debris(base: &Store, era: u32) -> Result<u64> {
    let Some(store) = self::store(base, era, false)? else { return Ok(0) };
    if era < 2 || has_keyfile(&store).await? {
        return Ok(0);
    }
    let names = objects_of(&store).await?;
    let count = names.len() as u64;
    store.delete_many(names).await?;
    Ok(count)
}

/// The names of one era's objects in its store. Era 1 shares the top of the location with the
/// markers and the newer eras: only its own count.
async fn objects_of(store: &Store) -> Result<Vec<String>> {
    Ok(store
        .list_all()
        .await?
        .into_iter()
        .filter(|n| layout::parse_era_marker(n).is_none() && layout::parse_era_object(n).is_none())
        .filter(|n| layout::is_object_name(n))
        .collect())
}
