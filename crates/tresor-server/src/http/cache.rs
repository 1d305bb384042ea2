//! The server's bookkeeping read through a cache: token records, policies and the mount table,
//! parsed once and kept while their version in the vault stays the same. Every use asks the vault
//! (as fresh as the request's one check, `Vault::checked`) which version is current, so a
//! revocation or a policy change made by any server on the store takes effect at the next
//! request; only the store read, the decryption and the parse are saved, and no audit record is
//! written for bookkeeping (the request is audited in its own name).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tresor::path::SecretPath;
use tresor::vault::SystemEntry;
use tresor::{Error, Vault};

/// Most entries kept per cache; past it the cache starts over (a server with more live tokens
/// than this reads some records again, which is correct, only slower).
const MAX_ENTRIES: usize = 100_000;

/// Parsed system entries of one kind, by path, each with the version it was parsed from.
pub(crate) struct Entries<T> {
    map: Mutex<HashMap<String, (u64, Arc<T>)>>,
}

impl<T> Default for Entries<T> {
    fn default() -> Self {
        Entries { map: Mutex::new(HashMap::new()) }
    }
}

impl<T> Entries<T> {
    /// The current version of `path`, parsed by `parse` (once per version); `None` when the entry
    /// has no live version.
    pub(crate) async fn get(
        &self,
        vault: &Vault,
        path: &SecretPath,
        parse: impl Fn(&[u8]) -> T,
    ) -> Result<Option<Arc<T>>, Error> {
        let mut known = self.cached(path).map(|(version, _)| version);
        // Twice at most: a version found unchanged may be replaced in the cache meanwhile.
        for _ in 0..2 {
            match vault.system_entry(path, known).await? {
                SystemEntry::Absent => {
                    self.lock().remove(path.as_str());
                    return Ok(None);
                }
                SystemEntry::Unchanged(version) => match self.cached(path) {
                    Some((cached, parsed)) if cached == version => return Ok(Some(parsed)),
                    _ => known = None,
                },
                SystemEntry::Current(version, bytes) => {
                    let parsed = Arc::new(parse(bytes.as_slice()));
                    let mut map = self.lock();
                    if map.len() >= MAX_ENTRIES {
                        map.clear();
                    }
                    map.insert(path.as_str().to_string(), (version, parsed.clone()));
                    return Ok(Some(parsed));
                }
            }
        }
        Err(Error::Conflict(format!("{path} changed while it was read; try again")))
    }

    fn cached(&self, path: &SecretPath) -> Option<(u64, Arc<T>)> {
        self.lock().get(path.as_str()).map(|(v, p)| (*v, p.clone()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, Arc<T>)>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The caches of an unsealed server.
#[derive(Default)]
pub(crate) struct Caches {
    /// Token records by record path (a record that does not parse: why).
    pub(crate) records: Entries<Result<super::tokens::TokenRecord, String>>,
    /// Policies by path, before a token's identity fills their templates.
    pub(crate) policies: Entries<Result<super::policy::Policy, String>>,
    /// The mount table (one entry).
    pub(crate) mounts: Entries<Result<Arc<super::mounts::Table>, String>>,
    /// Accessor index entries by path: the name of the record each accessor names.
    pub(crate) accessors: Entries<String>,
}
