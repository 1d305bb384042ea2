//! Values: sealing and reading them, get, set (with check-and-set and group commit runs), rm, status.

use super::{
    AUDIT_PATHS_PER_RECORD, Engine, Packs, READ_AHEAD, SMALL_WRITE, Status, create_idempotent_owned,
    epoch_aad, open_slot, seal_packs,
};
use crate::error::{Error, ObjectKind, Result};
use crate::index::Index;
use crate::layout::{self};
use crate::model::{AuditOp, AuditRecord, BlobRef, Op, Outcome, now_ms};
use crate::path::SecretPath;
use crate::roles::EpochKey;
use crate::store::Durability;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use tresor_crypto::SecretBytes;
use tresor_crypto::wrap::unwrap_key;

/// What a check-and-set write expects of its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cas {
    /// Its live version is this one; 0: it has none (never written, or its newest version
    /// deleted or destroyed).
    Live(u64),
    /// Its newest version, live, deleted or destroyed, is this one; 0: it never had one, or every
    /// version it had is destroyed (what deleting a KV v2 secret's metadata leaves: Vault then
    /// takes `cas=0`). Vault's KV v2 check-and-set, where a soft-deleted secret is written over by
    /// naming its deleted version.
    Newest(u64),
}

impl Cas {
    /// Whether `entry` (the path's, as of the commit being built) is as expected; if not, the
    /// conflict says what it is at.
    fn check(self, path: &str, entry: Option<&crate::index::Entry>) -> Result<()> {
        let live = entry.and_then(|e| e.live()).map_or(0, |v| v.version);
        let newest = entry
            .filter(|e| !e.versions.iter().all(|v| v.blob.is_destroyed()))
            .and_then(|e| e.versions.last())
            .map_or(0, |v| v.version);
        let (current, expected) = match self {
            Cas::Live(expected) => (live, expected),
            Cas::Newest(expected) => (newest, expected),
        };
        if current == expected {
            return Ok(());
        }
        // The live version is the newest one, or there is none.
        let what = match self {
            _ if live == newest => format!("is at version {current}"),
            Cas::Live(_) => format!("has no live version (version {newest} is deleted or destroyed)"),
            Cas::Newest(_) => format!("has newest version {newest} (deleted or destroyed)"),
        };
        Err(Error::Conflict(format!("check-and-set failed: {path} {what}, not {expected}")))
    }
}

impl Engine {
    pub(super) async fn epoch_key(&mut self, epoch: u32) -> Result<Arc<EpochKey>> {
        if let Some(key) = self.view.epoch(epoch) {
            return Ok(key);
        }
        let (_, key) = self.load_epoch_key(epoch).await?;
        let key = Arc::new(key);
        self.view.insert_epoch(epoch, key.clone());
        Ok(key)
    }

    /// Reads and authenticates the wrapped key of `epoch`: (its stored bytes, the key).
    pub(super) async fn load_epoch_key(&self, epoch: u32) -> Result<(Bytes, EpochKey)> {
        let name = layout::epoch_key(epoch);
        let Some(wrapped) = self.store.get(&name).await? else {
            // Gone because a re-key elsewhere deleted this era: say that, not "tampering".
            self.superseded().await?;
            return Err(Error::integrity(ObjectKind::EpochKey, &name, "is missing"));
        };
        let key = unwrap_key(self.keys.shield.key(), &epoch_aad(&self.vault_id, epoch), &wrapped).map_err(
            |_| Error::integrity(ObjectKind::EpochKey, &name, "does not authenticate: tampered or forged"),
        )?;
        Ok((wrapped, EpochKey::from_key(key)))
    }

    /// Seals values into new blob objects of the current epoch (see [`seal_packs`]).
    pub(super) async fn seal_values(&mut self, items: &[(&SecretPath, &[u8])]) -> Result<Packs> {
        let epoch = self.keyring.current;
        let vault_id = self.vault_id;
        let key = self.epoch_key(epoch).await?;
        let values: Vec<&[u8]> = items.iter().map(|(_, value)| *value).collect();
        seal_packs(&key, &vault_id, epoch, &values)
    }

    /// The authenticated value of a slot; its envelope is read alone (a range of a pack), from
    /// the store (never from the view's cache, which it fills).
    pub(super) async fn read_blob(&mut self, blob: &BlobRef) -> Result<SecretBytes> {
        let name = layout::blob(blob.epoch, &blob.id);
        let end = blob.offset.saturating_add(u64::from(blob.len));
        let Some(envelope) = self.store.get_range(&name, blob.offset..end).await? else {
            self.superseded().await?;
            return Err(Error::integrity(
                ObjectKind::ValueBlob,
                &name,
                "is missing: the store lost or removed it",
            ));
        };
        let vault_id = self.vault_id;
        let key = self.epoch_key(blob.epoch).await?;
        let value = open_slot(&key, &vault_id, &name, blob, &envelope)?;
        // Authenticated: later reads of it may be served from memory.
        self.view.cache(*blob, envelope);
        Ok(value)
    }

    pub(super) fn check_value(&self, value: &[u8]) -> Result<()> {
        if value.len() > self.opts.max_value {
            return Err(Error::TooLarge { size: value.len(), limit: self.opts.max_value });
        }
        Ok(())
    }

    /// The value of `path` (its current version, or `version`).
    pub async fn get(&mut self, path: &SecretPath, version: Option<u64>) -> Result<SecretBytes> {
        let result = self.get_inner(path, version).await;
        match result {
            Ok((value, number, blob)) => {
                let detail = version.map(|v| format!("version {v}"));
                self.audit_append(AuditOp::Get, Some(path), Outcome::Ok, detail, Durability::Relaxed).await?;
                // A value of an older epoch moves to the current one, in batches.
                self.queue_reseal(path, number, blob).await;
                Ok(value)
            }
            Err(e) => {
                self.audit_failure(AuditOp::Get, Some(path), &e).await;
                Err(e)
            }
        }
    }

    /// The value, its version number and where it was read from.
    pub(super) async fn get_inner(
        &mut self,
        path: &str,
        version: Option<u64>,
    ) -> Result<(SecretBytes, u64, BlobRef)> {
        self.refresh().await?;
        let (blob, number) = self.view.lookup(path, version)?;
        let read = self.read_chosen(path, number, blob).await;
        if let Err(Error::Integrity { .. }) = &read {
            // Gone because a re-key elsewhere deleted this era: say that, not "tampering".
            self.superseded().await?;
        }
        read
    }

    /// The value of version `number` of `path`, sealed at `blob` when the index was read.
    pub(super) async fn read_chosen(
        &mut self,
        path: &str,
        number: u64,
        blob: BlobRef,
    ) -> Result<(SecretBytes, u64, BlobRef)> {
        match self.read_blob(&blob).await {
            // Re-sealed and removed (its epoch destroyed: blob or key gone), or destroyed, since
            // this handle last looked: the index now names where the value went, if anywhere.
            Err(Error::Integrity { kind: ObjectKind::ValueBlob | ObjectKind::EpochKey, .. }) => {
                self.refresh().await?;
                let moved = self.view.index().blob_of(path, number);
                match moved {
                    // Destroyed by another writer meanwhile: gone, not damaged.
                    Some(moved) if moved.is_destroyed() => {
                        Err(Error::Destroyed { path: path.to_string(), version: number })
                    }
                    Some(moved) if moved != blob => Ok((self.read_blob(&moved).await?, number, moved)),
                    _ => Ok((self.read_blob(&blob).await?, number, blob)),
                }
            }
            result => Ok((result?, number, blob)),
        }
    }

    /// Stores a new version of `path` only if it is as `cas` expects: another writer's newer
    /// version makes it fail with [`Error::Conflict`] and nothing is written.
    pub async fn set_cas(&mut self, path: &SecretPath, value: &[u8], cas: Cas) -> Result<u64> {
        let versions = self.put(AuditOp::Set, &[(path, value)], Some(cas)).await?;
        versions.first().copied().ok_or_else(|| Error::Invalid("nothing was written".into()))
    }

    /// Stores several secrets in one commit (all or none); `op` names it in the audit trail.
    pub async fn set_many(&mut self, op: AuditOp, items: &[(&SecretPath, &[u8])]) -> Result<Vec<u64>> {
        self.put(op, items, None).await
    }

    pub(super) async fn put(
        &mut self,
        op: AuditOp,
        items: &[(&SecretPath, &[u8])],
        cas: Option<Cas>,
    ) -> Result<Vec<u64>> {
        let actor = self.opts.actor.clone();
        self.put_as(op, items, &[(items.len(), actor.as_str())], cas).await
    }

    /// Acts for `actor` from now on: what audit records and commits name. Called as each
    /// operation begins, it also clears what an operation dropped half-way may have left set
    /// (snapshots deferred by a bulk re-seal).
    pub(crate) fn act_for(&mut self, actor: &str) {
        if self.opts.actor != actor {
            self.opts.actor = actor.to_string();
        }
        self.defer_snapshots = false;
    }

    /// [`Engine::put`] of the requests of several actors at once (a group commit): `runs` says,
    /// in order, how many of `items` each actor asked for; each one's audit records name it.
    pub(crate) async fn put_as(
        &mut self,
        op: AuditOp,
        items: &[(&SecretPath, &[u8])],
        runs: &[(usize, &str)],
        cas: Option<Cas>,
    ) -> Result<Vec<u64>> {
        // A path twice in one request is refused; the same path in two requests of a group
        // commit gets one version after the other, as if they had come one by one.
        let mut rest = items;
        for (count, _) in runs {
            let (mine, others) = rest.split_at((*count).min(rest.len()));
            rest = others;
            let mut seen = std::collections::HashSet::new();
            for (path, value) in mine {
                self.check_value(value)?;
                if !seen.insert(*path) {
                    return Err(Error::Invalid(format!("{path} appears twice in one write")));
                }
            }
        }
        if !rest.is_empty() {
            return Err(Error::Invalid("a write's items are not all attributed to a request".into()));
        }
        self.refresh().await?;
        if let Err(e) = self.rotate_if_due().await {
            tracing::warn!("automatic epoch rotation failed; the write goes on in the current epoch: {e}");
        }
        // An epoch destroyed between sealing and committing (it was current when this write
        // began): seal again in the new current epoch.
        for attempt in 0..3 {
            let (objects, refs) = self.seal_values(items).await?;
            // A write of a few objects (one pack of many small values, as a group commit makes)
            // fsyncs them and its audit entry as it writes them, all at once; a write of many
            // objects makes them durable together before its commit (one `syncfs` locally).
            let durability = if objects.len() > SMALL_WRITE { Durability::Relaxed } else { Durability::Sync };
            let epoch = refs.first().map_or(self.keyring.current, |b| b.epoch);
            let object_names: Vec<String> = objects.iter().map(|(name, _)| name.clone()).collect();
            // The blobs and the audit records are independent: write them at the same time, so
            // their fsyncs share journal commits instead of queueing one behind the other. A
            // bigger write makes them durable all at once before its commit (one `syncfs` on a
            // local directory).
            let store = self.store.clone();
            // The commit's first questions to the store go beside them too.
            let checks = self.first_checks();
            let write_blobs = futures::stream::iter(objects)
                .map(|(name, bytes)| {
                    let store = store.clone();
                    async move {
                        if create_idempotent_owned(&store, &name, Bytes::from(bytes), durability).await? {
                            Ok(())
                        } else {
                            Err(Error::Conflict(format!("object {name} already exists")))
                        }
                    }
                })
                .buffer_unordered(READ_AHEAD)
                .try_collect::<Vec<()>>();
            let write_audit = async {
                if attempt > 0 {
                    return Ok(());
                }
                // One audit entry for the whole write: a record per secret for each request of a
                // few, a record per 256 paths for a big one, each naming its request's actor.
                let written = format!("BlobWritten epoch {epoch}");
                let mut records = Vec::new();
                let mut rest = items;
                for (count, actor) in runs {
                    let (mine, others) = rest.split_at((*count).min(rest.len()));
                    rest = others;
                    let record = |path: Option<&str>, detail: String| AuditRecord {
                        time_ms: now_ms(),
                        actor: actor.to_string(),
                        op: op.as_str().to_string(),
                        path: path.map(str::to_string),
                        outcome: Outcome::Ok,
                        detail: Some(detail),
                    };
                    if mine.len() <= SMALL_WRITE {
                        records.extend(mine.iter().map(|(path, _)| record(Some(path), written.clone())));
                    } else {
                        for chunk in mine.chunks(AUDIT_PATHS_PER_RECORD) {
                            let paths: Vec<&str> = chunk.iter().map(|(p, _)| p.as_str()).collect();
                            let detail = format!("{} secrets, {written}: {}", paths.len(), paths.join(", "));
                            records.push(record(None, detail));
                        }
                    }
                }
                self.audit_append_entry(&records, durability, false).await?;
                Ok::<_, Error>(())
            };
            let (blobs_written, audited, checks) = tokio::join!(write_blobs, write_audit, checks);
            audited?;
            if let Err(e) = blobs_written {
                self.audit_write_failed(op, items, runs, &e).await;
                return Err(e);
            }
            if durability == Durability::Relaxed {
                // Made durable with the audit records, before the commit that references them.
                self.unsynced.extend(object_names.iter().cloned());
            }
            let puts: Vec<(String, BlobRef)> =
                items.iter().zip(&refs).map(|((path, _), blob)| (path.to_string(), *blob)).collect();
            let destroyed = AtomicBool::new(false);
            let result = self
                .commit_after(checks, |index, keyring| {
                    if keyring.is_destroyed(epoch) {
                        destroyed.store(true, Relaxed);
                        return Err(Error::Conflict(format!("epoch {epoch} was destroyed during the write")));
                    }
                    // Versions given in this commit so far (a path of several requests).
                    let mut given: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
                    puts.iter()
                        .map(|(path, blob)| {
                            // Checked against the index as of the commit being built: after a lost
                            // race the check runs again on the winner's state.
                            if let Some(cas) = cas {
                                cas.check(path, index.get(path))?;
                            }
                            let version = match given.get(path.as_str()) {
                                Some(last) => last + 1,
                                None => index.get(path).map_or(1, |e| e.next_version()),
                            };
                            given.insert(path, version);
                            Ok(Op::Put { path: path.clone(), version, blob: *blob })
                        })
                        .collect()
                })
                .await;
            match result {
                Ok(ops) => {
                    return Ok(ops
                        .iter()
                        .filter_map(|op| match op {
                            Op::Put { version, .. } => Some(*version),
                            _ => None,
                        })
                        .collect());
                }
                Err(_) if destroyed.load(Relaxed) => {
                    // Sealed under a key that is gone: nothing may keep these objects (and nothing
                    // is left to make durable).
                    self.delete_objects(&object_names).await;
                    self.unsynced.retain(|name| !object_names.contains(name));
                }
                Err(e) => {
                    self.audit_write_failed(op, items, runs, &e).await;
                    return Err(e);
                }
            }
        }
        let e = Error::Conflict("the current epoch kept being destroyed during the write".into());
        self.audit_write_failed(op, items, runs, &e).await;
        Err(e)
    }

    /// Best effort: one audit entry saying that the write of `items` failed, a record per secret,
    /// each naming the actor of its request (`runs`, as in [`Engine::put_as`]).
    async fn audit_write_failed(
        &mut self,
        op: AuditOp,
        items: &[(&SecretPath, &[u8])],
        runs: &[(usize, &str)],
        e: &Error,
    ) {
        let mut records = Vec::with_capacity(items.len());
        let mut rest = items;
        for (count, actor) in runs {
            let (mine, others) = rest.split_at((*count).min(rest.len()));
            rest = others;
            records.extend(mine.iter().map(|(path, _)| AuditRecord {
                time_ms: now_ms(),
                actor: actor.to_string(),
                op: op.as_str().to_string(),
                path: Some(path.to_string()),
                outcome: Outcome::Failed(e.to_string()),
                detail: None,
            }));
        }
        let _ = self.audit_append_entry(&records, Durability::Relaxed, true).await;
    }

    /// Deletes the current version of `path` (history is kept); returns the deleted version.
    pub async fn delete(&mut self, path: &SecretPath) -> Result<u64> {
        self.refresh().await?;
        let live = |index: &Index| -> Result<u64> {
            let entry = index.get(path).ok_or_else(|| Error::NotFound { path: path.to_string() })?;
            match entry.live() {
                Some(v) => Ok(v.version),
                None => Err(Error::Deleted {
                    path: path.to_string(),
                    version: entry.versions.last().map_or(0, |v| v.version),
                }),
            }
        };
        let live_now = live(&self.view.index());
        if let Err(e) = live_now {
            self.audit_failure(AuditOp::Rm, Some(path), &e).await;
            return Err(e);
        }
        self.audit_append(AuditOp::Rm, Some(path), Outcome::Ok, None, Durability::Sync).await?;
        let result = self
            .commit(|index, _| Ok(vec![Op::Delete { path: path.to_string(), version: live(index)? }]))
            .await;
        match result {
            Ok(ops) => match ops.first() {
                Some(Op::Delete { version, .. }) => Ok(*version),
                _ => Err(Error::Invalid("nothing was deleted".into())),
            },
            Err(e) => {
                self.audit_failure(AuditOp::Rm, Some(path), &e).await;
                Err(e)
            }
        }
    }

    /// The vault's summary.
    pub async fn status(&mut self) -> Result<Status> {
        // A long-lived handle (the agent's) shows the key file as it is now, not as it was at
        // unlock: `passwd`, `keyslot` and `recover` may have run in another process.
        self.keyfile_fresh().await?;
        self.audit_append(AuditOp::Status, None, Outcome::Ok, None, Durability::Relaxed).await?;
        let (audit_records, audit_lane) = {
            let lane = self.lane.lock().await;
            (lane.head.seq, lane.lane.label())
        };
        Ok(Status {
            vault_id: hex::encode(self.vault_id),
            location: self.store.location().to_string(),
            cipher: "XChaCha20-Poly1305".to_string(),
            kdf: format!("argon2id m={} t={} p={}", self.kdf.m_kib, self.kdf.t, self.kdf.p),
            secrets: self.view.index().live_count(),
            commits: self.log.seq,
            audit_records,
            audit_lane,
            keyfile_generation: self.keyfile.generation,
            epoch: self.keyring.current,
            snapshot: self.snapshot_seq,
            rotation_failure: self.rotation_failure.clone(),
            fingerprint: self.fingerprint.to_string(),
            era: self.era,
        })
    }
}
