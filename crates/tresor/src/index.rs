//! The in-memory index: every secret's versions, rebuilt by replaying the commit log.

use crate::model::{BlobRef, Op};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One version of a secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// Its number (1, 2, ...).
    pub version: u64,
    /// Where its value is.
    pub blob: BlobRef,
    /// When it was written (ms since the Unix epoch).
    pub created_ms: u64,
    /// When it was deleted, if it was.
    pub deleted_ms: Option<u64>,
}

/// Everything known about one secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Its versions, oldest first.
    pub versions: Vec<Version>,
}

impl Entry {
    /// The newest version, if it is neither deleted nor destroyed.
    pub fn live(&self) -> Option<&Version> {
        self.versions.last().filter(|v| v.deleted_ms.is_none() && !v.blob.is_destroyed())
    }

    /// The number the next version gets.
    pub fn next_version(&self) -> u64 {
        self.versions.last().map_or(1, |v| v.version + 1)
    }
}

/// Path → versions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Index {
    entries: BTreeMap<String, Entry>,
}

impl Index {
    /// Applies one committed op.
    pub fn apply(&mut self, op: &Op, time_ms: u64) {
        match op {
            Op::Put { path, version, blob } => {
                self.entries.entry(path.clone()).or_default().versions.push(Version {
                    version: *version,
                    blob: *blob,
                    created_ms: time_ms,
                    deleted_ms: None,
                });
            }
            Op::Delete { path, version } => {
                if let Some(v) = self
                    .entries
                    .get_mut(path)
                    .and_then(|e| e.versions.iter_mut().rev().find(|v| v.version == *version))
                {
                    v.deleted_ms = Some(time_ms);
                }
            }
            Op::Undelete { path, version } => {
                if let Some(v) = self.version_mut(path, *version)
                    && !v.blob.is_destroyed()
                {
                    v.deleted_ms = None;
                }
            }
            Op::Destroy { path, version } => {
                if let Some(v) = self.version_mut(path, *version) {
                    v.blob = BlobRef::DESTROYED;
                }
            }
            Op::Reseal { path, version, blob } => {
                // A destroyed value stays destroyed, whatever a re-seal says.
                if let Some(v) = self.version_mut(path, *version)
                    && !v.blob.is_destroyed()
                {
                    v.blob = *blob;
                }
            }
            Op::Restore { path, version, blob, created_ms, deleted_ms } => {
                // In version order, whatever order the restores come in (a re-key restores
                // destroyed versions first).
                let versions = &mut self.entries.entry(path.clone()).or_default().versions;
                let at = versions.partition_point(|v| v.version < *version);
                versions.insert(
                    at,
                    Version {
                        version: *version,
                        blob: *blob,
                        created_ms: *created_ms,
                        deleted_ms: *deleted_ms,
                    },
                );
            }
            Op::Genesis { .. }
            | Op::KeyFile { .. }
            | Op::Rotate { .. }
            | Op::DestroyEpoch { .. }
            | Op::Policy { .. }
            | Op::Rekeying { .. }
            | Op::RekeyAborted { .. }
            | Op::RootEra { .. }
            | Op::LaneAnchor { .. } => {}
        }
    }

    /// An index from entries already in strictly ascending path order (a snapshot's parts, one
    /// after the other); `None` if they are not.
    pub fn from_sorted(entries: Vec<(String, Entry)>) -> Option<Index> {
        if entries.windows(2).any(|w| w[0].0 >= w[1].0) {
            return None;
        }
        Some(Index { entries: entries.into_iter().collect() })
    }

    /// Every entry, in path order.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = (&String, &Entry)> {
        self.entries.iter()
    }

    /// The entry of `path`.
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// Live secrets whose path starts with `prefix`, in path order.
    pub fn live_with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a Version)> + 'a {
        self.entries
            .range(prefix.to_string()..)
            .take_while(move |(p, _)| p.starts_with(prefix))
            .filter_map(|(p, e)| e.live().map(|v| (p, v)))
    }

    /// Secrets under `prefix` whose newest version is deleted (not destroyed: `undelete` brings
    /// it back), with that version.
    pub fn deleted_with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a Version)> + 'a {
        self.entries.range(prefix.to_string()..).take_while(move |(p, _)| p.starts_with(prefix)).filter_map(
            |(p, e)| {
                e.versions.last().filter(|v| v.deleted_ms.is_some() && !v.blob.is_destroyed()).map(|v| (p, v))
            },
        )
    }

    /// How many secrets it knows (live or deleted).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it knows no secret.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many secrets are live (the system namespace does not count).
    pub fn live_count(&self) -> usize {
        self.entries.iter().filter(|(p, e)| !crate::path::is_system(p) && e.live().is_some()).count()
    }

    /// Every blob any version references (for integrity checks and export); destroyed versions
    /// reference none.
    pub fn blobs(&self) -> impl Iterator<Item = &BlobRef> {
        self.entries.values().flat_map(|e| e.versions.iter().map(|v| &v.blob)).filter(|b| !b.is_destroyed())
    }

    /// Version `version` of `path`, to change.
    fn version_mut(&mut self, path: &str, version: u64) -> Option<&mut Version> {
        self.entries.get_mut(path)?.versions.iter_mut().rev().find(|v| v.version == version)
    }

    /// Every version whose value is sealed in an epoch `select` accepts: (path, version, blob), in
    /// blob order (so that a pack is read front to back).
    pub fn versions_in(&self, select: impl Fn(u32) -> bool) -> Vec<(String, u64, BlobRef)> {
        let mut out: Vec<(String, u64, BlobRef)> = self
            .entries
            .iter()
            .flat_map(|(p, e)| e.versions.iter().map(move |v| (p, v)))
            .filter(|(_, v)| !v.blob.is_destroyed() && select(v.blob.epoch))
            .map(|(p, v)| (p.clone(), v.version, v.blob))
            .collect();
        out.sort_unstable_by_key(|(_, _, b)| (b.epoch, b.id, b.offset));
        out
    }

    /// The blob version `version` of `path` references, if there is such a version.
    pub fn blob_of(&self, path: &str, version: u64) -> Option<BlobRef> {
        self.entries.get(path)?.versions.iter().rev().find(|v| v.version == version).map(|v| v.blob)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(n: u8) -> BlobRef {
        BlobRef { epoch: 1, id: [n; 16], size: 3, slot: 0, offset: 0, len: 60 }
    }

    #[test]
    fn versions_deletes_and_prefix_listing() {
        let mut ix = Index::default();
        ix.apply(&Op::Put { path: "db/a".into(), version: 1, blob: blob(1) }, 10);
        ix.apply(&Op::Put { path: "db/a".into(), version: 2, blob: blob(2) }, 20);
        ix.apply(&Op::Put { path: "db/b".into(), version: 1, blob: blob(3) }, 30);
        ix.apply(&Op::Put { path: "dc".into(), version: 1, blob: blob(4) }, 40);
        assert_eq!(ix.get("db/a").unwrap().live().unwrap().version, 2);
        assert_eq!(ix.get("db/a").unwrap().next_version(), 3);
        ix.apply(&Op::Delete { path: "db/b".into(), version: 1 }, 50);
        let listed: Vec<_> = ix.live_with_prefix("db/").map(|(p, _)| p.as_str()).collect();
        assert_eq!(listed, ["db/a"]);
        assert_eq!(ix.live_count(), 2);
        assert_eq!(ix.get("db/b").unwrap().next_version(), 2);
        assert_eq!(ix.blobs().count(), 4);
        let moved = BlobRef { epoch: 2, ..blob(9) };
        ix.apply(&Op::Reseal { path: "db/a".into(), version: 1, blob: moved }, 60);
        assert_eq!(ix.blob_of("db/a", 1), Some(moved));
        assert_eq!(ix.blob_of("db/a", 2), Some(blob(2)), "other versions keep their blobs");
        assert_eq!(ix.get("db/a").unwrap().versions[0].created_ms, 10, "a reseal is not a new version");
        let old: Vec<_> = ix.versions_in(|e| e == 1).into_iter().map(|(p, v, _)| (p, v)).collect();
        assert_eq!(old.len(), 3);
        assert!(!old.contains(&("db/a".to_string(), 1)));
        assert_eq!(ix.versions_in(|e| e == 2), [("db/a".to_string(), 1, moved)]);
    }
}
