//! Old object versions: what a store still holds of objects after they were deleted, and the
//! interface through which a backend removes them.
//!
//! On a bucket whose versioning is enabled (or was enabled, then suspended), a DELETE only adds a
//! delete marker: every older version stays readable by anyone allowed `s3:GetObjectVersion`.
//! Deleting a destroyed epoch's objects would then destroy nothing. A backend that can remove
//! old versions implements [`OldVersions`] and attaches it to the store it opens
//! ([`crate::Store::with_old_versions`]); tresor-backend does so for S3 buckets, with their
//! versions API. Its answer, a [`Residue`], says what is left, not what was attempted.
//!
//! Outcomes a backend reports:
//! - the store keeps no old versions: [`Residue::NotKept`];
//! - every version and delete marker under the prefixes is gone: [`Residue::Removed`];
//! - the store refused something and versions remain, or cannot be counted: [`Residue::Kept`],
//!   with the operations and the store's error codes;
//! - the store could not be reached, or answered something that does not parse: an
//!   [`Error::Store`](crate::Error::Store). A purge can be run again: it is idempotent.

use crate::error::Result;
use object_store::ObjectStore;
use std::fmt;

/// What a store still holds of objects after they were deleted.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Residue {
    /// The store keeps no older versions of deleted objects (a local directory, memory, or a
    /// bucket whose versioning was never enabled).
    NotKept,
    /// The bucket keeps versions; this many old versions and delete markers under the prefixes
    /// were removed, none remain.
    Removed {
        /// Versions and delete markers removed.
        versions: usize,
    },
    /// Versions remain and could not be removed (count, and why: e.g. Object Lock, access
    /// denied, unsupported API) — never claim success we did not have. A count of 0 with a reason
    /// means the versions could not be counted.
    Kept {
        /// Versions and delete markers still listed (0 if they could not be listed).
        versions: usize,
        /// Why they remain: the operations refused and the S3 error codes.
        reason: String,
    },
}

/// The residue of a store without a versions API (anything but S3): none for a local directory or
/// memory (also behind [`crate::fault::FaultStore`]), unknown for anything else. `local` says the
/// store is a local directory.
pub fn residue_without_versions_api(store: &dyn ObjectStore, local: bool) -> Residue {
    // `object_store` offers no way to ask a backend what it is but its `Display`.
    let shown = store.to_string();
    let mut inner = shown.as_str();
    // Wrappers (`FaultStore(...)`, a test's gate) show what they wrap in parentheses.
    let local_dir = |s: &str| s.starts_with("LocalFileSystem(") || s.starts_with("LocalDirectory(");
    while !local_dir(inner)
        && let Some((name, rest)) = inner.split_once('(')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && let Some(wrapped) = rest.strip_suffix(')')
    {
        inner = wrapped;
    }
    if local || inner == "InMemory" || local_dir(inner) {
        Residue::NotKept
    } else {
        Residue::Kept { versions: 0, reason: "cannot inspect versions of this store".to_string() }
    }
}

/// A backend's way to remove old versions of objects (an S3 bucket's versions API), attached to
/// a [`crate::Store`] with [`crate::Store::with_old_versions`] by whoever opened it.
#[async_trait::async_trait]
pub trait OldVersions: fmt::Debug + Send + Sync {
    /// Removes every version and delete marker of every object whose key (in the bucket, vault
    /// prefix included) starts with one of `key_prefixes`, then lists them again: the
    /// [`Residue`] says what is left, not what was attempted. A failure to reach the store, or an
    /// answer that does not parse, is an [`Error::Store`](crate::Error::Store); a refusal by the
    /// store is [`Residue::Kept`] with the reason.
    async fn purge(&self, key_prefixes: &[String]) -> Result<Residue>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_without_versions_api() {
        let memory = object_store::memory::InMemory::new();
        assert_eq!(residue_without_versions_api(&memory, false), Residue::NotKept);
        // Wrappers that show what they wrap (the fault-injecting store): tests/it/store_conformance.rs.
        // A store it cannot tell apart (here: a request limiter around memory, as a caller could
        // wrap any backend): nothing can be said.
        let limited = object_store::limit::LimitStore::new(object_store::memory::InMemory::new(), 4);
        assert!(matches!(residue_without_versions_api(&limited, false), Residue::Kept { versions: 0, .. }));
        assert_eq!(residue_without_versions_api(&limited, true), Residue::NotKept, "a local directory");
    }
}
