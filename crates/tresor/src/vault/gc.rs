//! Garbage collection: what no commit references any more, and debris of interrupted operations.

use super::{Engine, GcReport};
use crate::error::Result;
use crate::layout::{self, parse_seq};
use crate::model::{AuditOp, Outcome};
use crate::snapshot;
use crate::store::Durability;
use std::collections::HashSet;
use std::time::{Duration, SystemTime};

impl Engine {
    /// Removes what failed writes, lost races and superseded snapshots left behind — never
    /// anything live, never a commit or audit record (the chains stay verifiable):
    /// - snapshots older than the newest (after writing one of the current head if needed), and
    ///   parts of abandoned snapshots older than `grace`;
    /// - value blobs no version of any secret references, older than `grace` (a younger one may
    ///   belong to a writer that is about to commit it);
    /// - key file generations older than the current one, and leftovers of store probes;
    /// - wrapped keys of epochs no commit started, older than `grace` (a rotation that crashed
    ///   or lost a race), and whatever an interrupted destruction left of a destroyed epoch.
    ///
    /// With `dry_run`, only counts. The run is audited before anything is removed.
    pub async fn gc(&mut self, grace: Duration, dry_run: bool) -> Result<GcReport> {
        self.refresh().await?;
        let detail = format!("grace {}s{}", grace.as_secs(), if dry_run { ", dry run" } else { "" });
        self.audit_append(AuditOp::Gc, None, Outcome::Ok, Some(detail), Durability::Sync).await?;
        if !dry_run && self.snapshot_seq < self.log.seq {
            self.snapshot().await?;
        }
        let newest = snapshot::newest_authentic(&self.store, &self.keys.snapshot, &self.vault_id).await?;
        let live: HashSet<(u32, [u8; 16])> = self.view.index().blobs().map(|b| (b.epoch, b.id)).collect();
        let keyfile = self.keyfile.generation;
        let now = SystemTime::now();
        let mut report =
            GcReport { dry_run, snapshot: newest.map_or(0, |(seq, _)| seq), ..GcReport::default() };
        let mut doomed = Vec::new();
        for (name, size, modified) in self.store.list_meta("").await? {
            let old = now.duration_since(modified).unwrap_or_default() >= grace;
            let counter = match name.split('/').next() {
                Some(layout::SNAPSHOT_DIR) => match (layout::parse_snapshot(&name), newest) {
                    (Some((seq, _, _)), Some((keep, _))) if seq < keep => &mut report.snapshot_parts,
                    (Some((seq, _, parts)), newest) if old && Some((seq, parts)) != newest => {
                        &mut report.snapshot_parts
                    }
                    _ => continue,
                },
                Some(layout::BLOB_DIR) => match layout::parse_blob(&name) {
                    Some((epoch, _)) if self.keyring.is_destroyed(epoch) => {
                        &mut report.destroyed_epoch_objects
                    }
                    Some(blob) if !live.contains(&blob) && old => &mut report.orphan_blobs,
                    Some(blob) if !live.contains(&blob) => {
                        report.young_blobs += 1;
                        continue;
                    }
                    _ => continue,
                },
                Some(layout::KEYFILE_DIR) => match parse_seq(&name, layout::KEYFILE_DIR) {
                    Some(generation) if generation < keyfile => &mut report.old_keyfiles,
                    _ => continue,
                },
                Some(layout::EPOCH_DIR) => match layout::parse_epoch_key(&name) {
                    Some(epoch) if self.keyring.is_destroyed(epoch) => &mut report.destroyed_epoch_objects,
                    Some(epoch) if self.keyring.get(epoch).is_none() && old => &mut report.orphan_epoch_keys,
                    _ => continue,
                },
                Some(layout::PROBE_DIR) if old && layout::is_probe(&name) => &mut report.probes,
                _ => continue,
            };
            *counter += 1;
            report.bytes += size;
            doomed.push(name);
        }
        let staging: Vec<String> = self
            .store
            .staging_files()?
            .into_iter()
            .filter(|(_, _, modified)| now.duration_since(*modified).unwrap_or_default() >= grace)
            .map(|(name, size, _)| {
                report.bytes += size;
                name
            })
            .collect();
        report.staging_files = staging.len();
        report.foreign = self.store.foreign()?.len();
        if !dry_run {
            // A re-key that crashed after its switch left (some of) the previous root era.
            report.older_era_objects = self.delete_older_eras().await?;
            self.store.delete_many(doomed).await?;
            for name in staging {
                self.store.remove_staging_file(&name)?;
            }
        }
        Ok(report)
    }
}
