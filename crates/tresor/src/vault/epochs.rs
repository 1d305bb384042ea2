//! Key epochs: rotation, re-encryption and destruction of data keys (forward secrecy).
//!
//! Every epoch's data key is random, stored wrapped under the shielding key in `epoch/<epoch>`.
//! A rotation writes the new wrapped key, then a `Rotate` commit; values of older epochs are
//! re-sealed unchanged into the current one — lazily, in batches, after reads, or in bulk — with
//! `Reseal` commits that each move a batch atomically. Destroying an epoch re-seals what still
//! references it, commits `DestroyEpoch` (after which no commit may reference it: writers that
//! sealed under it seal again), then deletes its blobs and its wrapped key, and the older versions
//! a versioned bucket keeps of them.
//!
//! Every step is a commit or is repeatable, so an interrupted rotation, re-encryption or
//! destruction leaves a readable vault, and running the command again finishes it.

use super::{Engine, Packs, READ_AHEAD, epoch_aad, slice_of};
use crate::error::{Error, ObjectKind, Result};
use crate::layout;
use crate::model::{AuditOp, BlobRef, Op, Outcome, now_ms};
use crate::roles::EpochKey;
use crate::store::Durability;
use crate::store::Store;
use crate::versions::Residue;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use tresor_crypto::wrap::wrap_key;

/// Values re-sealed per commit, at most.
pub(super) const RESEAL_BATCH: usize = 16_384;
/// Paths named by one `BlobReencrypted` audit record (≤ 512 KiB of paths, below the record limit).
const RESEAL_PATHS_PER_RECORD: usize = 1024;
/// Plaintext bytes re-sealed per commit, at most (a single larger value is a batch of its own).
const RESEAL_BYTES: u64 = 32 << 20;
/// Values read from older epochs that are queued before they are re-sealed in one commit.
pub(super) const LAZY_BATCH: usize = 64;
/// Attempts to find a free epoch number when other writers rotate at the same time.
const ROTATE_ATTEMPTS: u32 = 64;

/// One line of `tresor epoch list`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochView {
    /// Its number.
    pub epoch: u32,
    /// `current`, `active` (older, still holding values or its key) or `destroyed`.
    pub state: String,
    /// When it became current (ms since the Unix epoch).
    pub created_ms: u64,
    /// Why it was started.
    pub reason: String,
    /// When it was destroyed.
    pub destroyed_ms: Option<u64>,
    /// Versions (current and history) whose value is sealed under it.
    pub values: u64,
    /// Their plaintext bytes.
    pub bytes: u64,
    /// For a destroyed epoch: objects still in the store (a destruction that was interrupted).
    pub leftover_objects: Option<u64>,
}

/// What `tresor epoch list` shows.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochList {
    /// Every epoch, oldest first.
    pub epochs: Vec<EpochView>,
    /// The automatic rotation interval, in seconds.
    pub rotate_every_secs: Option<u64>,
    /// When the next automatic rotation is due (ms since the Unix epoch).
    pub next_rotation_ms: Option<u64>,
}

/// What a rotation did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RotateReport {
    /// The epoch new values are now sealed in.
    pub epoch: u32,
    /// `false`: another writer rotated at the same moment, and its new epoch is the current one.
    pub ours: bool,
}

/// What a re-encryption did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ReencryptReport {
    /// The epoch the values were sealed into.
    pub epoch: u32,
    /// Values re-sealed.
    pub values: u64,
    /// Their plaintext bytes.
    pub bytes: u64,
    /// Commits written.
    pub commits: u64,
    /// Values another writer had already moved (or deleted the history of) in the meantime.
    pub skipped: u64,
}

/// What destroying an epoch did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DestroyReport {
    /// The destroyed epoch.
    pub epoch: u32,
    /// The values that still referenced it, re-sealed into the current epoch first.
    pub reencrypted: ReencryptReport,
    /// Its objects deleted from the store now (blobs and its wrapped key).
    pub deleted_objects: u64,
    /// Their bytes.
    pub deleted_bytes: u64,
    /// Objects of the epoch still in the store after deletion (0 unless the store refused).
    pub remaining_objects: u64,
    /// Older versions of them the store keeps.
    pub residue: Residue,
}

impl DestroyReport {
    /// Whether nothing sealed under the epoch, nor its key, remains in the store.
    pub fn complete(&self) -> bool {
        self.remaining_objects == 0 && !matches!(self.residue, Residue::Kept { .. })
    }
}

impl Engine {
    /// The epoch new values are sealed in.
    pub fn current_epoch(&self) -> u32 {
        self.keyring.current
    }

    /// Every epoch, with how many values each still holds.
    pub async fn epochs(&mut self) -> Result<EpochList> {
        self.refresh().await?;
        let mut counts: HashMap<u32, (u64, u64)> = HashMap::new();
        for blob in self.view.index().blobs() {
            let c = counts.entry(blob.epoch).or_default();
            c.0 += 1;
            c.1 += blob.size;
        }
        let mut epochs = Vec::new();
        for info in &self.keyring.epochs {
            let (values, bytes) = counts.get(&info.epoch).copied().unwrap_or_default();
            let leftover_objects = match info.destroyed_ms {
                Some(_) => Some(self.epoch_objects(info.epoch).await?.len() as u64),
                None => None,
            };
            let state = if info.destroyed_ms.is_some() {
                "destroyed"
            } else if info.epoch == self.keyring.current {
                "current"
            } else {
                "active"
            };
            epochs.push(EpochView {
                epoch: info.epoch,
                state: state.to_string(),
                created_ms: info.created_ms,
                reason: info.reason.clone(),
                destroyed_ms: info.destroyed_ms,
                values,
                bytes,
                leftover_objects,
            });
        }
        let every = self.keyring.rotate_every_ms;
        let next_rotation_ms =
            every.zip(self.keyring.current_since()).map(|(e, since)| since.saturating_add(e));
        self.audit_append(AuditOp::EpochList, None, Outcome::Ok, None, Durability::Relaxed).await?;
        Ok(EpochList { epochs, rotate_every_secs: every.map(|ms| ms / 1000), next_rotation_ms })
    }

    /// Starts a new epoch: new values are sealed under a new random data key from now on. Values
    /// of older epochs stay where they are (re-sealed lazily after reads, or by
    /// [`Engine::reencrypt`]). `reason` is recorded (`manual`, `policy`, `revocation: <who>`).
    ///
    /// Two writers rotating at once end with one current epoch: the one whose commit lands first
    /// wins, and the other abandons its key (reported with `ours: false`).
    pub async fn rotate(&mut self, reason: &str) -> Result<RotateReport> {
        self.refresh().await?;
        let started_from = self.keyring.current;
        // The next number after every epoch the (authenticated) log knows. A key object already
        // there (another writer's rotation in flight or crashed, or anything the store planted)
        // makes the create fail: the next number is tried. Numbers never come from a listing, so
        // a planted `epoch/4294967295` cannot use the numbers up.
        let mut epoch = self.keyring.max_epoch();
        let key = EpochKey::generate()?;
        let mut created = false;
        for _ in 0..ROTATE_ATTEMPTS {
            epoch = epoch.checked_add(1).ok_or_else(|| Error::Invalid("no epoch numbers left".into()))?;
            let wrapped = wrap_key(self.keys.shield.key(), &epoch_aad(&self.vault_id, epoch), key.key())?;
            if self.create_idempotent(&layout::epoch_key(epoch), &wrapped, Durability::Sync).await? {
                created = true;
                break;
            }
        }
        if !created {
            return Err(Error::Conflict(format!(
                "no free epoch number: epoch keys {} to {epoch} already exist without a commit that \
                 started them (concurrent rotations, or objects the store holds that tresor did not \
                 commit; garbage collection removes abandoned ones after its grace period)",
                epoch.saturating_sub(ROTATE_ATTEMPTS - 1)
            )));
        }
        let detail = format!("epoch {epoch} ({reason})");
        self.audit_append(AuditOp::EpochRotate, None, Outcome::Ok, Some(detail), Durability::Sync).await?;
        let superseded = AtomicBool::new(false);
        let reason_owned = reason.to_string();
        let result = self
            .commit(|_, keyring| {
                if keyring.current != started_from {
                    superseded.store(true, Relaxed);
                    return Err(Error::Conflict("another writer rotated".into()));
                }
                Ok(vec![Op::Rotate { epoch, reason: reason_owned.clone() }])
            })
            .await;
        match result {
            Ok(_) => {
                self.view.insert_epoch(epoch, Arc::new(key));
                Ok(RotateReport { epoch, ours: true })
            }
            Err(_) if superseded.load(Relaxed) => {
                // Never committed, so never used: nothing references this key.
                self.delete_objects(&[layout::epoch_key(epoch)]).await;
                let detail =
                    format!("epoch {epoch} abandoned: another writer started epoch {}", self.keyring.current);
                self.audit_append(AuditOp::EpochRotate, None, Outcome::Ok, Some(detail), Durability::Relaxed)
                    .await?;
                Ok(RotateReport { epoch: self.keyring.current, ours: false })
            }
            Err(e) => {
                self.audit_failure(AuditOp::EpochRotate, None, &e).await;
                Err(e)
            }
        }
    }

    /// Rotates if the policy says the current epoch is old enough (the agent calls this on a
    /// timer, and every write checks it).
    pub async fn rotate_if_due(&mut self) -> Result<Option<RotateReport>> {
        if !self.keyring.rotation_due(now_ms()) {
            return Ok(None);
        }
        self.refresh().await?;
        if !self.keyring.rotation_due(now_ms()) {
            return Ok(None);
        }
        match self.rotate("policy").await {
            Ok(report) => {
                self.rotation_failure = None;
                Ok(Some(report))
            }
            Err(e) => {
                // Visible, not just logged: kept for `status` and the agent's status, recorded in
                // the audit trail, and returned (the CLI prints it).
                self.rotation_failure = Some(format!("{}: {e}", crate::vault::format_time(now_ms())));
                let outcome = Outcome::Failed(e.to_string());
                let detail = Some("by policy".to_string());
                let _ =
                    self.audit_append(AuditOp::EpochRotate, None, outcome, detail, Durability::Relaxed).await;
                Err(e)
            }
        }
    }

    /// Why the last automatic rotation failed (`None`: it did not, or a later one succeeded).
    pub fn rotation_failure(&self) -> Option<&str> {
        self.rotation_failure.as_deref()
    }

    /// Rotation after a revocation (of a token or a peer): the hook those features call.
    pub async fn rotate_on_revocation(&mut self, revoked: &str) -> Result<RotateReport> {
        self.rotate(&format!("revocation: {revoked}")).await
    }

    /// Sets the automatic rotation interval (`None`: never).
    pub async fn set_rotation_policy(&mut self, every: Option<std::time::Duration>) -> Result<()> {
        let rotate_every_ms = every.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        if rotate_every_ms == Some(0) {
            return Err(Error::Invalid("a rotation interval must be longer than zero".into()));
        }
        self.refresh().await?;
        let detail = match every {
            Some(d) => format!("rotate every {}s", d.as_secs()),
            None => "automatic rotation off".to_string(),
        };
        self.audit_append(AuditOp::EpochPolicy, None, Outcome::Ok, Some(detail), Durability::Sync).await?;
        if let Err(e) = self.commit(|_, _| Ok(vec![Op::Policy { rotate_every_ms }])).await {
            self.audit_failure(AuditOp::EpochPolicy, None, &e).await;
            return Err(e);
        }
        Ok(())
    }

    /// Re-seals every value (current versions and history) that is not in the current epoch into
    /// it, in batches of one commit each; `progress(done, total)` is called after each. Killed
    /// half-way, every value stays readable (under its old key or its new one) and running it
    /// again finishes the job.
    pub async fn reencrypt(
        &mut self,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<ReencryptReport> {
        self.refresh().await?;
        let current = self.keyring.current;
        let targets = self.view.index().versions_in(|epoch| epoch != current);
        self.reseal(targets, "reencrypt", progress).await
    }

    /// Destroys `epoch`: re-seals the values that still reference it into the current epoch
    /// (rotating first if it is the current one), records the destruction in the commit log,
    /// then deletes its blobs and its wrapped key — and the older versions a versioned bucket
    /// keeps of them. Running it again on a destroyed epoch deletes whatever an interrupted run
    /// left. The report says what remains, if anything: a destruction is complete only if
    /// [`DestroyReport::complete`].
    pub async fn destroy_epoch(
        &mut self,
        epoch: u32,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<DestroyReport> {
        self.refresh().await?;
        if self.keyring.get(epoch).is_none() {
            return Err(Error::Invalid(format!("there is no epoch {epoch}")));
        }
        let mut reencrypted = ReencryptReport { epoch: self.keyring.current, ..Default::default() };
        if !self.keyring.is_destroyed(epoch) {
            if self.keyring.current == epoch {
                self.rotate("destroy").await?;
            }
            // Values may keep arriving in the epoch from writers that sealed before it stopped
            // being current: re-seal until the destruction commit finds none.
            let mut attempts = 0;
            loop {
                let targets = self.view.index().versions_in(|e| e == epoch);
                let moved = self.reseal(targets, "destroy", progress).await?;
                reencrypted.epoch = moved.epoch.max(reencrypted.epoch);
                reencrypted.values += moved.values;
                reencrypted.bytes += moved.bytes;
                reencrypted.commits += moved.commits;
                reencrypted.skipped += moved.skipped;
                let detail = format!("epoch {epoch}");
                self.audit_append(AuditOp::EpochDestroy, None, Outcome::Ok, Some(detail), Durability::Sync)
                    .await?;
                let referenced = AtomicBool::new(false);
                let already = AtomicBool::new(false);
                let result = self
                    .commit(|index, keyring| {
                        if keyring.is_destroyed(epoch) {
                            // Another writer's destruction landed first: nothing to commit.
                            already.store(true, Relaxed);
                            return Err(Error::Conflict(format!("epoch {epoch} is already destroyed")));
                        }
                        if index.blobs().any(|b| b.epoch == epoch) {
                            referenced.store(true, Relaxed);
                            return Err(Error::Conflict(format!("epoch {epoch} is still referenced")));
                        }
                        Ok(vec![Op::DestroyEpoch { epoch }])
                    })
                    .await;
                match result {
                    Ok(_) => break,
                    Err(_) if already.load(Relaxed) => break,
                    Err(_) if referenced.load(Relaxed) && attempts < 8 => attempts += 1,
                    Err(e) => {
                        self.audit_failure(AuditOp::EpochDestroy, None, &e).await;
                        return Err(e);
                    }
                }
            }
        }
        self.view.remove_epoch(epoch);
        // The log now forbids the epoch: what is left in the store can be deleted.
        let mut deleted_objects = 0;
        let mut deleted_bytes = 0;
        let mut remaining = Vec::new();
        for _ in 0..3 {
            let objects = self.epoch_objects(epoch).await?;
            if objects.is_empty() {
                remaining.clear();
                break;
            }
            // An object the store will not delete is reported (exit 11 in the CLI), not an error
            // that hides what was deleted.
            let names: Vec<String> = objects.iter().map(|(name, _)| name.clone()).collect();
            let failed = self.store.delete_each(names).await;
            if let Some((name, e)) = failed.first() {
                tracing::warn!("epoch {epoch}: {} objects not deleted, {name} first: {e}", failed.len());
            }
            let kept: std::collections::HashSet<&str> = failed.iter().map(|(n, _)| n.as_str()).collect();
            for (name, size) in &objects {
                if !kept.contains(name.as_str()) {
                    deleted_objects += 1;
                    deleted_bytes += size;
                }
            }
            remaining = failed.into_iter().map(|(name, _)| name).collect();
        }
        let residue = self.store.purge_versions(&epoch_prefixes(epoch)).await?;
        let report = DestroyReport {
            epoch,
            reencrypted,
            deleted_objects,
            deleted_bytes,
            remaining_objects: remaining.len() as u64,
            residue,
        };
        let detail = match (&report.residue, report.remaining_objects) {
            (_, n) if n > 0 => format!("epoch {epoch}: {n} objects could not be deleted"),
            (Residue::Kept { versions, reason }, _) => {
                format!("epoch {epoch}: deleted, but the store keeps {versions} old versions ({reason})")
            }
            (Residue::Removed { versions }, _) => {
                format!("epoch {epoch}: deleted {deleted_objects} objects and {versions} old versions")
            }
            (Residue::NotKept, _) => format!("epoch {epoch}: deleted {deleted_objects} objects"),
        };
        let outcome = if report.complete() { Outcome::Ok } else { Outcome::Failed(detail.clone()) };
        self.audit_append(AuditOp::EpochDestroy, None, outcome, Some(detail), Durability::Sync).await?;
        Ok(report)
    }

    /// The objects of `epoch` in the store (its blobs and its wrapped key): `(name, size)`.
    async fn epoch_objects(&self, epoch: u32) -> Result<Vec<(String, u64)>> {
        let mut out: Vec<(String, u64)> = self
            .store
            .list_meta(&layout::blob_dir(epoch))
            .await?
            .into_iter()
            // Only names of this epoch's blobs: anything else there is foreign and stays.
            .filter(|(name, _, _)| layout::parse_blob(name).is_some_and(|(e, _)| e == epoch))
            .map(|(name, size, _)| (name, size))
            .collect();
        let key = layout::epoch_key(epoch);
        if self.store.exists(&key).await? {
            out.push((key, 0));
        }
        Ok(out)
    }

    /// Deletes objects this handle wrote and nothing references; failures are only logged (gc
    /// removes what is left).
    pub(super) async fn delete_objects(&self, names: &[String]) {
        for name in names {
            if let Err(e) = self.store.delete(name).await {
                tracing::warn!("could not remove unreferenced object {name}: {e}");
            }
        }
    }

    /// Remembers that a version was read from an older epoch; re-seals the queue into the current
    /// epoch once it holds [`LAZY_BATCH`] versions — one commit per batch, never one per read.
    pub(super) async fn queue_reseal(&mut self, path: &str, version: u64, blob: BlobRef) {
        if self.view.queue_reseal(path, version, blob) >= LAZY_BATCH {
            self.flush_reseal().await;
        }
    }

    /// Re-seals the queued versions now (also done at lock). A failure is only logged: the values
    /// stay readable where they are.
    pub async fn flush_reseal(&mut self) {
        let queued = std::mem::take(&mut *self.view.reseal_queue());
        if queued.is_empty() {
            return;
        }
        if let Err(e) = self.reseal(queued, "after read", &mut |_, _| {}).await {
            tracing::warn!("values read from older epochs were not re-sealed yet: {e}");
        }
    }

    /// Re-seals `targets` (path, version, where its value is now) into the current epoch, in
    /// batches of one commit each. A target that another writer moved meanwhile is skipped.
    pub(super) async fn reseal(
        &mut self,
        targets: Vec<(String, u64, BlobRef)>,
        why: &str,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<ReencryptReport> {
        let total = targets.len() as u64;
        let mut report = ReencryptReport { epoch: self.keyring.current, ..Default::default() };
        progress(0, total);
        let bulk = targets.len() > self.opts.reseal_batch;
        self.defer_snapshots = bulk;
        let result = self.reseal_batches(&targets, why, &mut report, progress).await;
        self.defer_snapshots = false;
        result?;
        if bulk && let Err(e) = self.snapshot_if_due().await {
            tracing::warn!("index snapshot not written: {e}");
        }
        Ok(report)
    }

    /// The batches of `targets`, pipelined: while batch N is written, made durable and committed,
    /// batch N + 1 is read and re-sealed (on blocking threads, with its own handles on the keys and
    /// the store), so the disk and the cores work at once.
    async fn reseal_batches(
        &mut self,
        targets: &[(String, u64, BlobRef)],
        why: &str,
        report: &mut ReencryptReport,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<()> {
        let total = targets.len() as u64;
        let mut rest = targets;
        let mut done = 0u64;
        // The batch prepared in the previous round: its targets, how many values it stood for
        // (with those that had moved before it was read), and its packs or why not.
        let mut pending: Option<(Vec<Target>, u64, Result<Sealed>)> = None;
        // Pack buffers go round: written by one batch, filled again by the one after next.
        let buffers = Buffers::default();
        // Set once locking stopped the job: no batch is begun after the first, the one under way
        // is finished, and the job ends with `Error::Locked`. What is committed stays, the rest
        // stays in its old epoch (as after a crash), and the next run goes on from there. (The
        // lock's own flush of values queued after reads is one batch, and is not stopped.)
        let mut stopped = false;
        loop {
            let mut next: Option<Prep> = None;
            let mut next_len = 0u64;
            if !rest.is_empty() && rest.len() < targets.len() && self.view.stopping() {
                rest = &[];
                stopped = true;
            }
            if !rest.is_empty() {
                let (batch, tail) = rest.split_at(batch_len(rest, self.opts.reseal_batch.max(1)));
                rest = tail;
                next_len = batch.len() as u64;
                // Another writer may have moved some values meanwhile (and removed their old
                // blobs, destroying an epoch): only what is still where it was is read.
                self.refresh().await?;
                let still: Vec<Target> = batch
                    .iter()
                    .filter(|(p, v, b)| self.view.index().blob_of(p, *v) == Some(*b))
                    .cloned()
                    .collect();
                report.skipped += (batch.len() - still.len()) as u64;
                if still.is_empty() {
                    done += next_len;
                    progress(done, total);
                } else {
                    next = Some(self.prep(still, buffers.clone()).await?);
                }
            }
            if pending.is_none() && next.is_none() {
                if rest.is_empty() {
                    return if stopped { Err(Error::Locked) } else { Ok(()) };
                }
                continue;
            }
            let prepare = async move {
                match next {
                    Some(prep) => Some((prep.batch.clone(), next_len, prepare(prep).await)),
                    None => None,
                }
            };
            let finish = async {
                match pending.take() {
                    Some((batch, len, sealed)) => Some((len, self.finish_or_retry(batch, sealed, why).await)),
                    None => None,
                }
            };
            let (prepared, finished) = tokio::join!(prepare, finish);
            if let Some((len, finished)) = finished {
                let moved = finished?;
                report.epoch = moved.epoch;
                report.values += moved.values;
                report.bytes += moved.bytes;
                report.commits += moved.commits;
                report.skipped += moved.skipped;
                done += len;
                progress(done, total);
            }
            pending = prepared;
        }
    }

    /// Writes and commits a prepared batch; one whose old blobs or keys vanished while it was
    /// read is retried without the values that moved ([`Engine::reseal_batch_moved`]).
    async fn finish_or_retry(
        &mut self,
        batch: Vec<Target>,
        sealed: Result<Sealed>,
        why: &str,
    ) -> Result<ReencryptReport> {
        match sealed {
            Ok(sealed) => match self.finish_batch(&batch, sealed, why).await {
                Err(Error::Conflict(why_not)) if why_not == DESTROYED_MEANWHILE => {
                    self.reseal_batch_moved(&batch, why).await
                }
                finished => finished,
            },
            Err(Error::Integrity { kind: ObjectKind::ValueBlob | ObjectKind::EpochKey, .. }) => {
                self.reseal_batch_moved(&batch, why).await
            }
            Err(e) => Err(e),
        }
    }

    /// [`Engine::reseal_batch`], for a batch whose old blobs or epoch keys may vanish meanwhile:
    /// another writer that re-sealed those values (a concurrent `reencrypt`, or the destruction of
    /// their epoch) deletes them; a value may also be destroyed meanwhile. After such a failure the
    /// log says which targets moved or are gone; the batch is retried without them. A blob or key missing while the log still references it is a
    /// genuine integrity error, reported as such.
    async fn reseal_batch_moved(&mut self, batch: &[Target], why: &str) -> Result<ReencryptReport> {
        let mut batch = batch.to_vec();
        let mut skipped = 0;
        loop {
            let error = match self.reseal_batch(&batch, why).await {
                Ok(mut report) => {
                    report.skipped += skipped;
                    return Ok(report);
                }
                Err(e @ Error::Integrity { kind: ObjectKind::ValueBlob | ObjectKind::EpochKey, .. }) => e,
                Err(Error::Conflict(why_not)) if why_not == DESTROYED_MEANWHILE => Error::Conflict(why_not),
                Err(e) => return Err(e),
            };
            self.refresh().await?;
            let before = batch.len();
            batch.retain(|(path, version, old)| self.view.index().blob_of(path, *version) == Some(*old));
            if batch.len() == before {
                return Err(error);
            }
            skipped += (before - batch.len()) as u64;
            if batch.is_empty() {
                return Ok(ReencryptReport { epoch: self.keyring.current, skipped, ..Default::default() });
            }
        }
    }

    /// One batch, start to end: [`prepare`] then [`Engine::finish_batch`].
    async fn reseal_batch(&mut self, batch: &[Target], why: &str) -> Result<ReencryptReport> {
        let prep = self.prep(batch.to_vec(), Buffers::default()).await?;
        let sealed = prepare(prep).await?;
        self.finish_batch(batch, sealed, why).await
    }

    /// What [`prepare`] needs for `batch`: the keys of its epochs and of the current one, loaded.
    async fn prep(&mut self, batch: Vec<Target>, buffers: Buffers) -> Result<Prep> {
        let epoch = self.keyring.current;
        let mut epochs: Vec<u32> = batch.iter().map(|(_, _, b)| b.epoch).chain([epoch]).collect();
        epochs.sort_unstable();
        epochs.dedup();
        let mut keys = HashMap::with_capacity(epochs.len());
        for e in epochs {
            keys.insert(e, self.epoch_key(e).await?);
        }
        Ok(Prep { store: self.store.clone(), vault_id: self.vault_id, epoch, keys, batch, buffers })
    }

    /// Writes the packs of a prepared batch durably, audits, and commits one `Reseal` op per value
    /// still where it was.
    async fn finish_batch(&mut self, batch: &[Target], sealed: Sealed, why: &str) -> Result<ReencryptReport> {
        let Sealed { epoch: current, packs: (objects, refs), buffers } = sealed;
        let names: Vec<String> = objects.iter().map(|(name, _)| name.clone()).collect();
        let store = self.store.clone();
        futures::stream::iter(objects)
            .map(|(name, bytes)| {
                let (store, buffers) = (store.clone(), buffers.clone());
                async move {
                    let bytes = Bytes::from(bytes);
                    let created =
                        super::create_idempotent_owned(&store, &name, bytes.clone(), Durability::Relaxed)
                            .await?;
                    buffers.give_back(bytes);
                    match created {
                        true => Ok(()),
                        false => Err(Error::Conflict(format!("object {name} already exists"))),
                    }
                }
            })
            .buffer_unordered(READ_AHEAD)
            .try_collect::<Vec<()>>()
            .await?;
        // Durable, with the audit records, before the commit that references them.
        self.unsynced.extend(names.iter().cloned());
        let mut from: Vec<u32> = batch.iter().map(|(_, _, b)| b.epoch).collect();
        from.sort_unstable();
        from.dedup();
        let from: Vec<String> = from.iter().map(u32::to_string).collect();
        let summary =
            format!("{} values from epoch {} to epoch {current} ({why})", batch.len(), from.join(", "));
        for chunk in batch.chunks(RESEAL_PATHS_PER_RECORD) {
            let paths: Vec<String> = chunk.iter().map(|(p, v, _)| format!("{p}@{v}")).collect();
            let detail = format!("{summary}: {}", paths.join(", "));
            self.audit_append_with(
                AuditOp::EpochReencrypt,
                None,
                Outcome::Ok,
                Some(detail),
                Durability::Relaxed,
                false,
            )
            .await?;
        }
        let skipped = AtomicU64::new(0);
        let kept_bytes = AtomicU64::new(0);
        let destroyed = AtomicBool::new(false);
        let none_left = AtomicBool::new(false);
        let result = self
            .commit(|index, keyring| {
                if keyring.is_destroyed(current) {
                    destroyed.store(true, Relaxed);
                    return Err(Error::Conflict(format!(
                        "epoch {current} was destroyed during re-encryption"
                    )));
                }
                // A value of the batch destroyed meanwhile: its new ciphertext is in these packs,
                // which must not become part of the vault (the batch is prepared again without it).
                if batch
                    .iter()
                    .any(|(path, version, _)| index.blob_of(path, *version).is_some_and(|b| b.is_destroyed()))
                {
                    return Err(Error::Conflict(DESTROYED_MEANWHILE.into()));
                }
                let ops: Vec<Op> = batch
                    .iter()
                    .zip(&refs)
                    .filter(|((path, version, old), _)| index.blob_of(path, *version) == Some(*old))
                    .map(|((path, version, _), blob)| Op::Reseal {
                        path: path.clone(),
                        version: *version,
                        blob: *blob,
                    })
                    .collect();
                skipped.store((batch.len() - ops.len()) as u64, Relaxed);
                let bytes = batch
                    .iter()
                    .filter(|(path, version, old)| index.blob_of(path, *version) == Some(*old))
                    .map(|(_, _, old)| old.size)
                    .sum();
                kept_bytes.store(bytes, Relaxed);
                if ops.is_empty() {
                    // Another writer moved every one of them: no commit, and no blob to keep.
                    none_left.store(true, Relaxed);
                    return Err(Error::Conflict("another writer re-sealed these values".into()));
                }
                Ok(ops)
            })
            .await;
        if let Err(e) = result {
            self.delete_objects(&names).await;
            // Gone: nothing to make durable any more (fsyncing a deleted file fails the next
            // durable write).
            self.unsynced.retain(|name| !names.contains(name));
            if none_left.load(Relaxed) {
                let detail =
                    format!("nothing committed: another writer had already moved the {} values", batch.len());
                self.audit_append(
                    AuditOp::EpochReencrypt,
                    None,
                    Outcome::Ok,
                    Some(detail),
                    Durability::Relaxed,
                )
                .await?;
                return Ok(ReencryptReport {
                    epoch: current,
                    skipped: batch.len() as u64,
                    ..Default::default()
                });
            }
            if destroyed.load(Relaxed) {
                return Err(Error::Conflict(format!(
                    "epoch {current} was destroyed by another writer during re-encryption; run it again"
                )));
            }
            return Err(e);
        }
        let skipped = skipped.load(Relaxed);
        Ok(ReencryptReport {
            epoch: current,
            values: batch.len() as u64 - skipped,
            bytes: kept_bytes.load(Relaxed),
            commits: 1,
            skipped,
        })
    }
}

/// Why a re-seal batch was not committed: one of its values was destroyed meanwhile (the batch is
/// prepared again without it, and the packs written for it are deleted).
const DESTROYED_MEANWHILE: &str = "a value of this batch was destroyed meanwhile";

/// A value to move: its path, version, and where its envelope is now.
type Target = (String, u64, BlobRef);

/// How many of `rest` go into the next batch: up to `most` values and [`RESEAL_BYTES`].
fn batch_len(rest: &[Target], most: usize) -> usize {
    let mut take = 0;
    let mut bytes = 0u64;
    while take < rest.len() && take < most && (take == 0 || bytes + rest[take].2.size <= RESEAL_BYTES) {
        bytes += rest[take].2.size;
        take += 1;
    }
    take
}

/// A batch to prepare, with everything it needs owned: it runs beside the vault's own work.
struct Prep {
    store: Store,
    vault_id: [u8; 16],
    /// The epoch to seal into.
    epoch: u32,
    /// The keys of the batch's epochs and of `epoch`.
    keys: HashMap<u32, Arc<EpochKey>>,
    batch: Vec<Target>,
    buffers: Buffers,
}

/// A prepared batch: its new packs (not written yet) and the epoch they are sealed under.
struct Sealed {
    epoch: u32,
    packs: Packs,
    /// Where the pack buffers go once written.
    buffers: Buffers,
}

/// Pack buffers handed back once written, for a later batch to fill again. A fresh allocation of
/// several MiB costs a page fault, and the kernel zeroing a page, per 4 KiB touched: as much CPU
/// as one of the two AEAD passes. The buffers only ever hold ciphertext when handed back.
#[derive(Clone, Default)]
struct Buffers(Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

impl Buffers {
    /// At most this many buffers wait for reuse (two batches of packs).
    const MAX_FREE: usize = 2 * (RESEAL_BYTES as usize).div_ceil(super::PACK_TARGET) + 2;

    /// A buffer of `len` zero bytes: a returned one if one is large enough, else a new one.
    fn take(&self, len: usize) -> Vec<u8> {
        let reused = self.0.lock().ok().and_then(|mut free| {
            let i = free.iter().position(|b| b.capacity() >= len)?;
            Some(free.swap_remove(i))
        });
        match reused {
            Some(mut buffer) => {
                buffer.clear();
                buffer.resize(len, 0);
                buffer
            }
            None => vec![0; len],
        }
    }

    /// Keeps `bytes` for reuse if nothing else holds it (a memory store keeps what it stores).
    fn give_back(&self, bytes: Bytes) {
        if let Ok(buffer) = bytes.try_into_mut()
            && let Ok(mut free) = self.0.lock()
            && free.len() < Self::MAX_FREE
        {
            free.push(Vec::from(buffer));
        }
    }
}

/// Reads the envelopes of a batch and re-seals them into new packs (not written yet), the
/// cryptography on blocking threads.
async fn prepare(prep: Prep) -> Result<Sealed> {
    let sources = read_sources(&prep.store, &prep.batch).await?;
    let (epoch, buffers) = (prep.epoch, prep.buffers.clone());
    let packs = tokio::task::spawn_blocking(move || {
        repack(&prep.vault_id, prep.epoch, &prep.batch, &sources, &prep.keys, &prep.buffers)
    })
    .await
    .map_err(|_| Error::Invalid("a re-sealing thread panicked".into()))??;
    Ok(Sealed { epoch, packs, buffers })
}

/// The envelopes of `batch`, in order: a blob object with several slots in the batch is read
/// whole once, a single slot by its byte range.
async fn read_sources(store: &Store, batch: &[Target]) -> Result<Vec<Bytes>> {
    let mut wanted: HashMap<(u32, [u8; 16]), usize> = HashMap::new();
    for (_, _, b) in batch {
        *wanted.entry((b.epoch, b.id)).or_default() += 1;
    }
    let whole: Vec<(u32, [u8; 16])> = wanted.iter().filter(|(_, n)| **n > 1).map(|(k, _)| *k).collect();
    let objects: HashMap<(u32, [u8; 16]), Bytes> = futures::stream::iter(whole)
        .map(|(epoch, id)| {
            let store = store.clone();
            async move {
                let name = layout::blob(epoch, &id);
                let bytes = store.get_required(&name, "is missing: the store lost or removed it").await?;
                Ok::<_, Error>(((epoch, id), bytes))
            }
        })
        .buffer_unordered(READ_AHEAD)
        .try_collect()
        .await?;
    let blobs: Vec<BlobRef> = batch.iter().map(|(_, _, b)| *b).collect();
    futures::stream::iter(blobs)
        .map(|b| {
            let store = store.clone();
            let object = objects.get(&(b.epoch, b.id)).cloned();
            async move {
                if let Some(object) = object {
                    return Ok(object.slice_ref(slice_of(&object, &b)));
                }
                let name = layout::blob(b.epoch, &b.id);
                let end = b.offset.saturating_add(u64::from(b.len));
                store.get_range(&name, b.offset..end).await?.ok_or_else(|| {
                    Error::integrity(ObjectKind::ValueBlob, &name, "is missing: the store lost or removed it")
                })
            }
        })
        .buffered(READ_AHEAD)
        .try_collect()
        .await
}

/// One envelope to move: (new pack, new slot, where it was, its bytes).
type Job<'a> = (usize, u32, &'a BlobRef, &'a Bytes);

/// Blob objects of `epoch` holding the envelopes of `batch` (read as `sources`) moved under `key`:
/// each envelope is opened with its old epoch's key and sealed again, its framed plaintext
/// untouched (no decompression), several to an object up to [`super::PACK_TARGET`] bytes, on
/// every core. Returns the objects and the new reference of each value, in order.
fn repack(
    vault_id: &[u8; 16],
    epoch: u32,
    batch: &[Target],
    sources: &[Bytes],
    keys: &HashMap<u32, Arc<EpochKey>>,
    buffers: &Buffers,
) -> Result<Packs> {
    let key_of = |epoch: u32| {
        keys.get(&epoch)
            .map(Arc::as_ref)
            .ok_or_else(|| Error::integrity(ObjectKind::EpochKey, &layout::epoch_key(epoch), "is missing"))
    };
    let key = key_of(epoch)?;
    let (names, places) = super::plan_packs(epoch, sources.iter().map(Bytes::len))?;
    let jobs: Vec<Job> = places
        .into_iter()
        .zip(batch.iter().zip(sources))
        .map(|((pack, slot), ((_, _, old), envelope))| (pack, slot, old, envelope))
        .collect();
    let mut old_names: HashMap<(u32, [u8; 16]), String> = HashMap::new();
    for (_, _, old, _) in &jobs {
        old_names.entry((old.epoch, old.id)).or_insert_with(|| layout::blob(old.epoch, &old.id));
    }
    // Every envelope keeps its length, so the new objects are laid out before anything is sealed
    // and each envelope is re-sealed straight into its place (no copy of the object afterwards).
    let mut sizes = vec![0usize; names.len()];
    let mut refs = Vec::with_capacity(jobs.len());
    for (pack, slot, old, envelope) in &jobs {
        let name = &names[*pack];
        let id = layout::parse_blob(name).map_or([0; 16], |(_, id)| id);
        let len = u32::try_from(envelope.len())
            .map_err(|_| Error::Invalid(format!("a value too large for {name}")))?;
        refs.push(BlobRef { epoch, id, size: old.size, slot: *slot, offset: sizes[*pack] as u64, len });
        sizes[*pack] += envelope.len();
    }
    let mut buffers: Vec<Vec<u8>> = sizes.iter().map(|n| buffers.take(*n)).collect();
    let mut work: Vec<(&Job, &mut [u8])> = Vec::with_capacity(jobs.len());
    {
        let mut rests: Vec<&mut [u8]> = buffers.iter_mut().map(Vec::as_mut_slice).collect();
        for job in &jobs {
            let rest = std::mem::take(&mut rests[job.0]);
            let (place, tail) = rest.split_at_mut(job.3.len());
            rests[job.0] = tail;
            work.push((job, place));
        }
    }
    let reseal_one = |(pack, slot, old, envelope): &Job, out: &mut [u8]| -> Result<()> {
        let old_name = old_names.get(&(old.epoch, old.id)).map_or("", String::as_str);
        if envelope.len() != old.len as usize {
            return Err(Error::integrity(
                ObjectKind::ValueBlob,
                old_name,
                "is shorter than its commit records",
            ));
        }
        let (old_slot, new_slot) = (old.slot.to_be_bytes(), slot.to_be_bytes());
        let from = super::blob_ctx(vault_id, old_name, old.epoch, &old_slot);
        let to = super::blob_ctx(vault_id, &names[*pack], epoch, &new_slot);
        tresor_crypto::envelope::reseal_into(key_of(old.epoch)?.key(), &from, envelope, key.key(), &to, out)
            .map_err(|_| {
                Error::integrity(
                    ObjectKind::ValueBlob,
                    old_name,
                    "does not authenticate: tampered, or moved from another name",
                )
            })
    };
    let threads = crate::snapshot::cores().min(work.len()).max(1);
    let chunk = work.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let running: Vec<_> = work
            .chunks_mut(chunk)
            .map(|part| {
                let reseal_one = &reseal_one;
                scope.spawn(move || part.iter_mut().try_for_each(|(job, out)| reseal_one(job, out)))
            })
            .collect();
        running
            .into_iter()
            .try_for_each(|t| t.join().map_err(|_| Error::Invalid("a re-sealing thread panicked".into()))?)
    })?;
    let objects = names.into_iter().zip(buffers).collect();
    Ok((objects, refs))
}

/// The name prefixes of an epoch's objects: its blobs and its wrapped key.
pub(super) fn epoch_prefixes(epoch: u32) -> Vec<String> {
    vec![format!("{}/", layout::blob_dir(epoch)), layout::epoch_key(epoch)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_pack_buffers_are_reused_and_shared_ones_are_not() {
        let buffers = Buffers::default();
        let first = buffers.take(1 << 20);
        assert_eq!(first.len(), 1 << 20);
        let place = first.as_ptr();
        let written = Bytes::from(first);
        let kept = written.clone();
        // Still held elsewhere (a memory store keeps what it stores): not taken back.
        buffers.give_back(written);
        assert!(buffers.0.lock().map(|free| free.is_empty()).unwrap_or(false));
        buffers.give_back(kept);
        // The only holder handed it back: the next batch fills the same memory, zeroed.
        let again = buffers.take(1000);
        assert_eq!(again.as_ptr(), place);
        assert_eq!(again.len(), 1000);
        assert!(again.iter().all(|b| *b == 0));
        // Too small for what is asked: a new buffer, and the pooled one stays for later.
        buffers.give_back(Bytes::from(again));
        let bigger = buffers.take(2 << 20);
        assert_ne!(bigger.as_ptr(), place);
        assert_eq!(buffers.0.lock().map(|free| free.len()).unwrap_or(0), 1);
    }
}
