//! The view: what reads need without taking the engine — the index, the unwrapped epoch keys
//! and the newest applied commit — shared between the engine, which updates it, and the read
//! path. Its locks are synchronous and never held across an await. It also keeps the newest
//! value ciphertexts read (a bounded cache: a hot secret is opened from memory, not read again).

use super::{HistoryEntry, ListEntry};
use crate::error::{Error, Result};
use crate::index::Index;
use crate::model::BlobRef;
use crate::roles::EpochKey;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The shared read state of one unlocked vault.
pub(crate) struct View {
    index: RwLock<Index>,
    epochs: RwLock<HashMap<u32, Arc<EpochKey>>>,
    /// The newest commit applied to `index`.
    log_seq: AtomicU64,
    /// The same, for readers waiting for a commit to be applied.
    applied: tokio::sync::watch::Sender<u64>,
    /// Whether the log holds a re-key fence: another era may become current without a commit
    /// here, so reads ask the engine (which checks the era) instead of trusting the view.
    fenced: AtomicBool,
    /// The vault is being locked: bulk work (re-encryption, an epoch's destruction) stops at its
    /// next batch, so the lock waits for one batch at most, not for the whole job.
    stopping: AtomicBool,
    /// The epoch new values are sealed in.
    current: AtomicU32,
    /// Versions read from older epochs, to be re-sealed into the current one in a batch.
    reseal: Mutex<Vec<(String, u64, BlobRef)>>,
    /// Envelopes read from the store and authenticated, by where they are. Blob objects are
    /// immutable, so an entry never goes stale; what it holds is ciphertext, as on the store.
    ciphertexts: quick_cache::sync::Cache<BlobRef, Bytes, EnvelopeWeight>,
}

/// How many bytes of ciphertext the view keeps at most.
const CIPHERTEXT_CACHE_BYTES: u64 = 8 << 20;

/// Weighs a cached envelope by its length (plus what its entry costs).
#[derive(Clone)]
struct EnvelopeWeight;

impl quick_cache::Weighter<BlobRef, Bytes> for EnvelopeWeight {
    fn weight(&self, _: &BlobRef, envelope: &Bytes) -> u64 {
        envelope.len() as u64 + 64
    }
}

impl Default for View {
    fn default() -> View {
        View {
            index: RwLock::default(),
            epochs: RwLock::default(),
            log_seq: AtomicU64::new(0),
            applied: tokio::sync::watch::Sender::new(0),
            fenced: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            current: AtomicU32::new(0),
            reseal: Mutex::default(),
            ciphertexts: quick_cache::sync::Cache::with_weighter(
                4096,
                CIPHERTEXT_CACHE_BYTES,
                EnvelopeWeight,
            ),
        }
    }
}

impl View {
    /// The index, for reading. A panic elsewhere cannot leave it half-changed in a way a reader
    /// could exploit (every change is one `apply`), so a poisoned lock is taken as it is.
    pub(crate) fn index(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The index, for the engine to change.
    pub(crate) fn index_mut(&self) -> RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The unwrapped key of `epoch`, if it was loaded.
    pub(crate) fn epoch(&self, epoch: u32) -> Option<Arc<EpochKey>> {
        self.epochs.read().unwrap_or_else(PoisonError::into_inner).get(&epoch).cloned()
    }

    /// Keeps the unwrapped key of `epoch`.
    pub(crate) fn insert_epoch(&self, epoch: u32, key: Arc<EpochKey>) {
        self.epochs.write().unwrap_or_else(PoisonError::into_inner).insert(epoch, key);
    }

    /// Forgets the key of a destroyed epoch (wiped once no read in flight holds it), and every
    /// cached ciphertext.
    pub(crate) fn remove_epoch(&self, epoch: u32) {
        drop(self.epochs.write().unwrap_or_else(PoisonError::into_inner).remove(&epoch));
        self.ciphertexts.clear();
    }

    /// The envelope at `blob`, if it is cached.
    pub(crate) fn cached(&self, blob: &BlobRef) -> Option<Bytes> {
        self.ciphertexts.get(blob)
    }

    /// Caches the envelope at `blob`: only once it authenticated.
    pub(crate) fn cache(&self, blob: BlobRef, envelope: Bytes) {
        self.ciphertexts.insert(blob, envelope);
    }

    /// Drops the cached envelope at `blob` (it no longer authenticates, or it is gone).
    pub(crate) fn uncache(&self, blob: &BlobRef) {
        self.ciphertexts.remove(blob);
    }

    /// The newest commit applied.
    pub(crate) fn log_seq(&self) -> u64 {
        self.log_seq.load(Ordering::Acquire)
    }

    /// Records that commit `seq` is applied (after the index has it).
    pub(crate) fn set_log_seq(&self, seq: u64) {
        self.log_seq.store(seq, Ordering::Release);
        self.applied.send_replace(seq);
    }

    /// Waits until commit `seq` (or a later one) is applied.
    pub(crate) async fn applied(&self, seq: u64) {
        let mut rx = self.applied.subscribe();
        let _ = rx.wait_for(|applied| *applied >= seq).await;
    }

    /// Whether the log holds a re-key fence (see [`View::set_fenced`]).
    pub(crate) fn fenced(&self) -> bool {
        self.fenced.load(Ordering::Acquire)
    }

    /// Records whether the log holds a re-key fence.
    pub(crate) fn set_fenced(&self, fenced: bool) {
        self.fenced.store(fenced, Ordering::Release);
    }

    /// The epoch new values are sealed in.
    pub(crate) fn current_epoch(&self) -> u32 {
        self.current.load(Ordering::Acquire)
    }

    /// Records the epoch new values are sealed in.
    pub(crate) fn set_current_epoch(&self, epoch: u32) {
        self.current.store(epoch, Ordering::Release);
    }

    /// Queues version `version` of `path`, read from `blob`, for re-sealing into the current
    /// epoch (unless it is in it, or queued already): how many versions are queued.
    pub(crate) fn queue_reseal(&self, path: &str, version: u64, blob: BlobRef) -> usize {
        if blob.epoch == self.current_epoch() {
            return 0;
        }
        let mut queue = self.reseal_queue();
        if !queue.iter().any(|(p, v, _)| p == path && *v == version) {
            queue.push((path.to_string(), version, blob));
        }
        queue.len()
    }

    /// The versions queued for re-sealing.
    pub(crate) fn reseal_queue(&self) -> MutexGuard<'_, Vec<(String, u64, BlobRef)>> {
        self.reseal.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where version `version` of `path` (or its current one) is, and its number.
    pub(crate) fn lookup(&self, path: &str, version: Option<u64>) -> Result<(BlobRef, u64)> {
        let index = self.index();
        let entry = index.get(path).ok_or_else(|| Error::NotFound { path: path.to_string() })?;
        let chosen = match version {
            Some(n) => entry
                .versions
                .iter()
                .find(|v| v.version == n)
                .ok_or(Error::NoSuchVersion { path: path.to_string(), version: n })?,
            None => match entry.live() {
                Some(v) => v,
                None => {
                    let last = entry.versions.last().map_or(0, |v| v.version);
                    return Err(match entry.versions.last() {
                        Some(v) if v.blob.is_destroyed() => {
                            Error::Destroyed { path: path.to_string(), version: last }
                        }
                        _ => Error::Deleted { path: path.to_string(), version: last },
                    });
                }
            },
        };
        if chosen.blob.is_destroyed() {
            return Err(Error::Destroyed { path: path.to_string(), version: chosen.version });
        }
        Ok((chosen.blob, chosen.version))
    }

    /// Live secrets under `prefix`.
    pub(crate) fn list(&self, prefix: &str, system: bool) -> Vec<ListEntry> {
        let index = self.index();
        index
            .live_with_prefix(prefix)
            .filter(|(path, _)| crate::path::is_system(path) == system)
            .map(entry)
            .collect()
    }

    /// The user secrets under `prefix` whose newest version is deleted; `updated_ms` is when.
    pub(crate) fn list_deleted(&self, prefix: &str) -> Vec<ListEntry> {
        let index = self.index();
        index
            .deleted_with_prefix(prefix)
            .filter(|(path, _)| !crate::path::is_system(path))
            .map(|(path, v)| ListEntry {
                updated_ms: v.deleted_ms.unwrap_or(v.created_ms),
                ..entry((path, v))
            })
            .collect()
    }

    /// Every version of `path`, oldest first.
    pub(crate) fn history(&self, path: &str) -> Result<Vec<HistoryEntry>> {
        let index = self.index();
        let entry = index.get(path).ok_or_else(|| Error::NotFound { path: path.to_string() })?;
        let current = entry.live().map(|v| v.version);
        Ok(entry
            .versions
            .iter()
            .map(|v| HistoryEntry {
                version: v.version,
                size: v.blob.size,
                created_ms: v.created_ms,
                deleted_ms: v.deleted_ms,
                destroyed: v.blob.is_destroyed(),
                current: Some(v.version) == current,
            })
            .collect())
    }

    /// Wipes everything: the vault is being locked. Keys held by reads in flight are wiped
    /// when those reads drop them.
    /// Asks bulk work to stop at its next batch (the vault is being locked).
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// Whether bulk work must stop ([`View::stop`]).
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    pub(crate) fn clear(&self) {
        *self.index_mut() = Index::default();
        self.epochs.write().unwrap_or_else(PoisonError::into_inner).clear();
        self.reseal_queue().clear();
        self.ciphertexts.clear();
    }
}

/// A listing line for a path and its newest version.
fn entry((path, v): (&String, &crate::index::Version)) -> ListEntry {
    ListEntry { path: path.clone(), version: v.version, size: v.blob.size, updated_ms: v.created_ms }
}
