//! Root rotation (`tresor rekey`): a new root secret in a new root era beside the current one,
//! every version and the audit trail carried over, the new key file as the switch, and the old
//! era deleted (see ARCHITECTURE.md, root rotation).

use super::{Durability, Engine, Outcome, PACK_TARGET, epoch_aad, seal_packs};
use crate::error::{Error, Result};
use crate::keyfile::{KeyFile, check_password_rules};
use crate::layout;
use crate::model::{AuditOp, BlobRef, Op};
use crate::roles::{EpochKey, RootKey};
use crate::store::Created;
use crate::trust::PendingEra;
use crate::versions::Residue;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tresor_crypto::wrap::wrap_key;
use tresor_crypto::{KdfParams, Password};

/// Versions re-sealed per commit of the new era (each batch also stops at [`PACK_TARGET`] × 4
/// bytes of plaintext).
const RESTORE_BATCH: usize = 16_384;

/// What a re-key did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RekeyReport {
    /// The new root era.
    pub era: u32,
    /// The era it replaced.
    pub previous: u32,
    /// The new root's fingerprint.
    pub fingerprint: String,
    /// Versions (live, superseded, deleted) carried over, each sealed again.
    pub versions: u64,
    /// Audit records carried over.
    pub audit_records: u64,
    /// Objects of the previous era deleted.
    pub deleted_objects: u64,
    /// What the store keeps of them (old versions on a versioned bucket).
    pub residue: Residue,
}

impl RekeyReport {
    /// Whether nothing of the previous era remains in the store.
    pub fn complete(&self) -> bool {
        matches!(self.residue, Residue::NotKept | Residue::Removed { .. })
    }
}

impl Engine {
    /// Replaces the root secret: builds root era `e + 1` under a new root (its own recovery
    /// phrase, derived keys and epoch key; one password slot with `new_password`), carries every
    /// version and the audit trail over, switches to it, and deletes era `e`. Returns the handle
    /// of the new era. `progress` hears (versions done, versions in all).
    ///
    /// Crash-safe at every step: before the new key file exists, era `e` is the vault (fenced:
    /// it takes no writes until this runs again, or [`Engine::abort_rekey`]); after, era `e + 1`
    /// is, and [`Engine::gc`] (or the next re-key) deletes whatever of era `e` remains.
    pub async fn rekey(
        mut self,
        new_password: &Password,
        params: KdfParams,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(Engine, RekeyReport)> {
        check_password_rules(new_password)?;
        params.check().map_err(|_| Error::Invalid("KDF parameters out of the accepted range".into()))?;
        self.refresh().await?;
        let previous = self.era;
        let next =
            previous.checked_add(1).ok_or_else(|| Error::Invalid("no root era numbers left".into()))?;
        let base = self.base.clone();
        // What an earlier re-key that crashed after its switch left of older eras.
        self.delete_older_eras().await?;
        match self.keyring.fence.map(|f| f.next) {
            Some(fenced) if fenced != next => return Err(Error::Fenced { next: fenced }),
            // An attempt that did not finish: taken over only once it has been quiet for the
            // lease (it may be running on another machine).
            Some(_) => self.check_rekey_lease(next).await?,
            None => {}
        }
        let detail = format!("root era {previous} -> {next}");
        self.audit_append(AuditOp::Rekey, None, Outcome::Ok, Some(detail), Durability::Sync).await?;
        // 1. The fence: no write lands in this era any more; it names this attempt, which
        // switches only while the fence is still its own.
        let attempt = tresor_crypto::random_array::<16>()?;
        self.commit(|_, _| Ok(vec![Op::Rekeying { next, attempt }])).await?;
        // 2. Whatever an interrupted attempt left, and the marker of the new era.
        crate::era::delete_debris(&base, next).await?;
        match base.create(&layout::era_marker(next), Vec::new()).await? {
            Created::Yes | Created::AlreadyExists => {}
        }
        let store = crate::era::store(&base, next, true)?
            .ok_or_else(|| Error::store(format!("cannot create {}", layout::era_dir(next))))?;
        // What this machine pinned of an attempt that did not finish is forgotten with it.
        self.opts.trust.reset(&self.vault_id, store.location(), &crate::trust::TrustState::default())?;
        // 3. The new root, and the new era's keys.
        let root = RootKey::generate()?;
        let keyfile = KeyFile::new(self.vault_id, 1, &root, new_password, params)?;
        let keyfile_bytes = keyfile.encode();
        let keyfile_hash = tresor_crypto::hash(&keyfile_bytes);
        let opts = super::Options {
            trust: self.opts.trust.clone(),
            actor: self.opts.actor.clone(),
            max_value: self.opts.max_value,
            kdf: params,
            snapshot_every: self.opts.snapshot_every,
            reseal_batch: self.opts.reseal_batch,
            expect_fingerprint: None,
            rekey_lease: self.opts.rekey_lease,
            read_staleness: self.opts.read_staleness,
        };
        let mut new = Engine::from_root(store, keyfile, keyfile_hash, root, params, opts);
        new.base = base.clone();
        new.era = next;
        new.defer_snapshots = true;
        // This machine will trust the new root once it is current (a crash after the switch
        // must not lock this machine out of the vault it made).
        let mut pin = self.location_pin("rekey");
        pin.pending = Some(PendingEra { era: next, fingerprint: new.fingerprint.to_string() });
        self.opts.trust.pin_location(base.location(), &pin)?;

        let epoch = super::FIRST_EPOCH;
        let epoch_key = EpochKey::generate()?;
        let wrapped = wrap_key(new.keys.shield.key(), &epoch_aad(&self.vault_id, epoch), epoch_key.key())?;
        new.create_once(&layout::epoch_key(epoch), &wrapped).await?;
        new.view.insert_epoch(epoch, Arc::new(epoch_key));

        // The audit trail, record by record, then what happens now.
        let trail = self.read_trail().await?.entries;
        let copied: std::collections::HashSet<_> = trail.iter().map(|e| (e.lane, e.seq)).collect();
        let mut audit_records = 0;
        // Every lane of era e goes into this machine's lane of the new era, entry by entry.
        for entry in &trail {
            new.audit_append_entry(&entry.records, Durability::Relaxed, false).await?;
            audit_records += entry.records.len() as u64;
        }
        let detail = format!(
            "root era {previous} -> {next}: new root secret, {audit_records} audit records carried over"
        );
        new.audit_append(AuditOp::Rekey, None, Outcome::Ok, Some(detail), Durability::Sync).await?;
        let policy = self.keyring.rotate_every_ms;
        new.commit(|_, _| {
            Ok(vec![
                Op::Genesis { epoch, keyfile_generation: 1 },
                Op::KeyFile { generation: 1, hash: keyfile_hash },
                Op::RootEra { era: next, previous },
                Op::Policy { rotate_every_ms: policy },
            ])
        })
        .await?;

        // Every version, sealed again under the new epoch key, in batches.
        let mut versions: Vec<(String, u64, BlobRef, u64, Option<u64>)> = Vec::new();
        for (path, entry) in self.view.index().entries() {
            for v in &entry.versions {
                versions.push((path.clone(), v.version, v.blob, v.created_ms, v.deleted_ms));
            }
        }
        // Destroyed versions keep their place in the history, with no value to carry.
        let (destroyed, versions): (Vec<_>, Vec<_>) = versions.into_iter().partition(|v| v.2.is_destroyed());
        if !destroyed.is_empty() {
            let ops: Vec<Op> = destroyed
                .iter()
                .map(|(path, version, blob, created_ms, deleted_ms)| Op::Restore {
                    path: path.clone(),
                    version: *version,
                    blob: *blob,
                    created_ms: *created_ms,
                    deleted_ms: *deleted_ms,
                })
                .collect();
            new.commit(|_, _| Ok(ops.clone())).await?;
        }
        let total = versions.len() as u64;
        let key = new.view.epoch(epoch).ok_or_else(|| Error::Invalid("no epoch key".into()))?;
        let mut done = 0u64;
        progress(0, total);
        let mut rest = versions.as_slice();
        while !rest.is_empty() {
            let mut bytes = 0u64;
            let take = rest
                .iter()
                .take_while(|v| {
                    bytes += v.2.size;
                    bytes <= (PACK_TARGET as u64) * 4
                })
                .count()
                .clamp(1, RESTORE_BATCH);
            let (batch, tail) = rest.split_at(take.min(rest.len()));
            rest = tail;
            let blobs: Vec<BlobRef> = batch.iter().map(|(_, _, blob, _, _)| *blob).collect();
            let values = self.read_values(&blobs).await?;
            let plain: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
            let vault_id = self.vault_id;
            let (objects, refs) = seal_packs(&key, &vault_id, epoch, &plain)?;
            drop(values);
            // The packs go out together, without a sync each: the commit below makes them
            // durable at once before it references them (one `syncfs` on a local directory).
            let names: Vec<String> = objects.iter().map(|(name, _)| name.clone()).collect();
            let store = new.store.clone();
            futures::stream::iter(objects)
                .map(|(name, object)| {
                    let store = store.clone();
                    async move {
                        match store.create_with(&name, object, Durability::Relaxed).await? {
                            Created::Yes => Ok(()),
                            Created::AlreadyExists => {
                                Err(Error::Conflict(format!("object {name} already exists")))
                            }
                        }
                    }
                })
                .buffer_unordered(4)
                .try_collect::<Vec<()>>()
                .await?;
            new.unsynced.extend(names);
            let ops: Vec<Op> = batch
                .iter()
                .zip(refs)
                .map(|((path, version, _, created_ms, deleted_ms), blob)| Op::Restore {
                    path: path.clone(),
                    version: *version,
                    blob,
                    created_ms: *created_ms,
                    deleted_ms: *deleted_ms,
                })
                .collect();
            new.commit(|_, _| Ok(ops.clone())).await?;
            done += batch.len() as u64;
            progress(done, total);
        }
        // Audit records other processes appended to the old era meanwhile come along too.
        let trail = self.read_trail().await?.entries;
        for entry in trail.iter().filter(|e| !copied.contains(&(e.lane, e.seq))) {
            new.audit_append_entry(&entry.records, Durability::Relaxed, false).await?;
            audit_records += entry.records.len() as u64;
        }
        new.defer_snapshots = false;
        new.snapshot().await?;
        // The new era must read back whole from the store before it becomes the vault: every
        // version, every value.
        new.refresh().await?;
        let (values, _, damaged) = new.check_values().await?;
        if values != total || !damaged.is_empty() {
            return Err(Error::integrity(
                crate::ObjectKind::RootEra,
                &layout::era_dir(next),
                format!("reads back {values} versions ({} damaged), not the {total} written", damaged.len()),
            ));
        }
        // The fence must still be this attempt's: not aborted, not taken over.
        self.refresh().await?;
        if self.keyring.fence.map(|f| (f.next, f.attempt)) != Some((next, attempt)) {
            return Err(Error::Conflict(
                "this re-key was aborted or taken over by another run meanwhile; nothing was switched".into(),
            ));
        }
        // 4. The switch: from here on, the new era is the vault.
        new.create_once(&layout::keyfile(1), &keyfile_bytes).await?;
        new.save_trust().await?;
        // 5. This machine's pin moves to the new root.
        new.opts.trust.pin_location(base.location(), &new.location_pin("rekey"))?;
        // 6. The old era goes: keys, blobs, logs, snapshots, key files (and old versions).
        drop(self);
        // The re-key has happened whatever follows: a failure to delete is reported (the phrase
        // must still be shown), and `gc` or the next re-key deletes what is left.
        let deleted = match crate::era::delete(&base, previous).await {
            Ok(deleted) => deleted,
            Err(e) => crate::era::Deleted {
                objects: 0,
                residue: Residue::Kept {
                    versions: 0,
                    reason: format!("the old era could not be deleted: {e}"),
                },
            },
        };
        let detail = match &deleted.residue {
            Residue::Kept { versions, reason } => format!(
                "root era {previous}: deleted {} objects, but the store keeps {versions} old versions ({reason})",
                deleted.objects
            ),
            Residue::Removed { versions } => {
                format!(
                    "root era {previous}: deleted {} objects and {versions} old versions",
                    deleted.objects
                )
            }
            Residue::NotKept => format!("root era {previous}: deleted {} objects", deleted.objects),
        };
        let outcome = match deleted.residue {
            Residue::Kept { .. } => Outcome::Failed(detail.clone()),
            _ => Outcome::Ok,
        };
        if let Err(e) = new.audit_append(AuditOp::Rekey, None, outcome, Some(detail), Durability::Sync).await
        {
            tracing::warn!("could not record the end of the re-key: {e}");
        }
        let report = RekeyReport {
            era: next,
            previous,
            fingerprint: new.fingerprint.to_string(),
            versions: total,
            audit_records,
            deleted_objects: deleted.objects,
            residue: deleted.residue,
        };
        Ok((new, report))
    }

    /// The values at `blobs`, in order: each blob object read once (eight at a time), however
    /// many of its slots are wanted, and every slot authenticated at its place.
    async fn read_values(&mut self, blobs: &[BlobRef]) -> Result<Vec<tresor_crypto::SecretBytes>> {
        let mut objects: Vec<(u32, [u8; 16])> = blobs.iter().map(|b| (b.epoch, b.id)).collect();
        objects.sort_unstable();
        objects.dedup();
        let mut keys = std::collections::HashMap::new();
        for (epoch, _) in &objects {
            if !keys.contains_key(epoch) {
                self.epoch_key(*epoch).await?;
                keys.insert(
                    *epoch,
                    self.view.epoch(*epoch).ok_or_else(|| Error::Invalid("no epoch key".into()))?,
                );
            }
        }
        let store = self.store.clone();
        let read: Vec<(String, bytes::Bytes)> = futures::stream::iter(objects.iter().map(|(epoch, id)| {
            let store = store.clone();
            let name = layout::blob(*epoch, id);
            async move {
                let bytes = store.get_required(&name, "is missing: the store lost or removed it").await?;
                Ok::<_, Error>((name, bytes))
            }
        }))
        .buffered(8)
        .try_collect()
        .await?;
        let by_object: std::collections::HashMap<&str, &bytes::Bytes> =
            read.iter().map(|(name, bytes)| (name.as_str(), bytes)).collect();
        let vault_id = self.vault_id;
        blobs
            .iter()
            .map(|blob| {
                let name = layout::blob(blob.epoch, &blob.id);
                let key = keys.get(&blob.epoch).ok_or_else(|| Error::Invalid("no epoch key".into()))?;
                let object =
                    by_object.get(name.as_str()).ok_or_else(|| Error::Invalid("blob not read".into()))?;
                super::open_slot(key, &vault_id, &name, blob, super::slice_of(object, blob))
            })
            .collect()
    }

    /// Abandons a re-key that did not finish: its debris goes and this era takes writes again.
    pub async fn abort_rekey(&mut self) -> Result<()> {
        self.refresh().await?;
        let Some(next) = self.keyring.fence.map(|f| f.next) else {
            return Err(Error::Invalid("no re-key is in progress".into()));
        };
        self.check_rekey_lease(next).await?;
        self.audit_append(
            AuditOp::Rekey,
            None,
            Outcome::Ok,
            Some(format!("aborted: root era {next}")),
            Durability::Sync,
        )
        .await?;
        crate::era::delete_debris(&self.base, next).await?;
        self.commit(|_, _| Ok(vec![Op::RekeyAborted { next }])).await?;
        Ok(())
    }

    /// Deletes what remains of root eras older than this one (a re-key that crashed after its
    /// switch): the number of objects deleted.
    pub(super) async fn delete_older_eras(&self) -> Result<u64> {
        let mut deleted = 0;
        if let Some((_, previous)) = self.keyring.root_era {
            for era in (1..=previous.min(self.era.saturating_sub(1))).rev() {
                deleted += crate::era::delete(&self.base, era).await?.objects;
            }
        }
        Ok(deleted)
    }

    /// Refuses to take over or abort the re-key to `next` while it may still be running: its
    /// newest object is younger than the lease ([`super::Options::rekey_lease`]).
    async fn check_rekey_lease(&self, next: u32) -> Result<()> {
        // The attempt's last sign of life: its fence, its era's marker, its newest object.
        let since_ms = self.keyring.fence.map_or(0, |f| f.since_ms);
        let fenced = std::time::UNIX_EPOCH + std::time::Duration::from_millis(since_ms);
        let marker = layout::era_marker(next);
        let mut newest = fenced;
        for (name, _, modified) in self.base.list_meta(layout::ERA_DIR).await? {
            if name == marker {
                newest = newest.max(modified);
            }
        }
        if let Some(store) = crate::era::store(&self.base, next, false)? {
            for (_, _, modified) in store.list_meta("").await? {
                newest = newest.max(modified);
            }
        }
        let quiet = std::time::SystemTime::now().duration_since(newest).unwrap_or_default();
        if quiet < self.opts.rekey_lease {
            return Err(Error::RekeyRunning {
                next,
                quiet_s: quiet.as_secs(),
                wait_s: (self.opts.rekey_lease - quiet).as_secs(),
            });
        }
        Ok(())
    }
}
