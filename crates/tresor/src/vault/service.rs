//! The shareable handle: `Vault`, one unlocked vault served to many callers at once.
//!
//! A `Vault` is an `Arc` of the service and the actor it acts for; clones are cheap and every
//! method takes `&self`. The engine (the single writer, `super::Engine`) sits behind an async
//! mutex and runs each operation in a spawned task, so a caller dropped at any await loses only
//! its answer. Plain writes are group-committed here for every caller; reads look the index up
//! in the shared view and read values without taking the engine (see ARCHITECTURE.md, "The
//! service model").

use super::audit::{Lane, PIN_EVERY};
use super::epochs::LAZY_BATCH;
use super::values::Cas;
use super::view::View;
use super::{
    DerivedIdentity, DestroyReport, DestroyVersionsReport, Engine, EpochList, GcReport, HistoryEntry,
    KeySlotView, ListEntry, Options, ReencryptReport, RekeyReport, RotateReport, SnapshotTiming, Status,
    VerifyReport, open_slot,
};
use crate::error::{Category, Error, ObjectKind, Result};
use crate::fingerprint::Fingerprint;
use crate::layout;
use crate::model::{AuditOp, AuditRecord, BlobRef, Outcome, now_ms};
use crate::path::{IntoSecretPath, SecretPath};
use crate::store::{Durability, Store};
use futures::future::BoxFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Mutex, oneshot};
use tresor_crypto::slip10::DerivationPath;
use tresor_crypto::transit::{self, Algorithm};
use tresor_crypto::{KdfParams, Key, Password, Phrase, SecretBytes};
use zeroize::Zeroizing;

/// Most secrets one group commit takes.
const GROUP_MAX_ITEMS: usize = 4096;

/// What [`Vault::system_entry`] found.
pub enum SystemEntry {
    /// No live version (never written, or deleted).
    Absent,
    /// The version the caller knew is still the current one; its value was not read.
    Unchanged(u64),
    /// The current version and its value.
    Current(u64, SecretBytes),
}

/// An unlocked vault, shared: clone it for every caller (connection, request, task). Each clone
/// acts for one actor ([`Vault::with_actor`]), which its audit records and commits name.
#[derive(Clone)]
pub struct Vault {
    svc: Arc<Service>,
    actor: Arc<str>,
    /// Made by [`Vault::checked`]: its reads are served from the view as that check left it
    /// (or newer), with no check of their own.
    checked_once: bool,
}

/// What every clone shares.
struct Service {
    /// The single writer; `None` once locked (every key wiped).
    engine: Arc<Mutex<Option<Engine>>>,
    /// Plain writes waiting to be committed together.
    writes: std::sync::Mutex<Vec<PendingWrite>>,
    /// Told whenever a write joins `writes`.
    write_queued: tokio::sync::Notify,
    /// How many requests the next group commit expects to find waiting: those the last one
    /// answered (their writers may come back at once) plus those already waiting when it ended.
    writers_expected: std::sync::atomic::AtomicUsize,
    /// Set while a task is on its way to commit the waiting writes (as `audit_flusher`).
    commit_flusher: AtomicBool,
    /// What reads need: the index and epoch keys (updated by the engine).
    view: Arc<View>,
    /// The head of the audit trail; reads append their records here in batches.
    lane: Arc<Mutex<Lane>>,
    /// Audit records of reads waiting for the next batch.
    audits: std::sync::Mutex<Vec<PendingRecord>>,
    /// How many records the next audit entry expects to find waiting (as `writers_expected`).
    readers_expected: std::sync::atomic::AtomicUsize,
    /// Set while a task is on its way to write the waiting records: a read that queues its
    /// record then starts none of its own (one task per entry, not one per read).
    audit_flusher: AtomicBool,
    /// Set while a pin of the lane runs apart from it (see `write_read_records`).
    pinning: AtomicBool,
    /// Set when that pin failed: the next one runs before its reads are answered.
    pin_failed: AtomicBool,
    /// Set as the vault is locked: reads stop at once.
    sealed: AtomicBool,
    /// Reads that asked for a freshness check, counted.
    arrivals: AtomicU64,
    /// The arrival count when the newest good freshness check began: it answers for every read
    /// that arrived by then.
    checked: AtomicU64,
    /// The freshness checks begun.
    probes: std::sync::Mutex<Probes>,
    /// Told whenever a freshness check ends.
    probe_done: tokio::sync::Notify,
    /// How old the view a read is served from may be ([`Options::read_staleness`]).
    staleness: Duration,
    /// When the last good freshness check began, as nanoseconds after `born`.
    fresh_as_of: AtomicU64,
    /// When the service was made (the origin of `fresh_as_of`).
    born: std::time::Instant,
    /// Reads begun, and reads whose record is queued for the lane (or that ended without one):
    /// the reads between are on their way to the lane ([`Sibling`]).
    reads_begun: AtomicU64,
    reads_settled: AtomicU64,
    /// Told whenever a read settles.
    read_settled: tokio::sync::Notify,
    /// One password check at a time ([`Vault::verify_password`]).
    password_checks: tokio::sync::Semaphore,
    /// Facts fixed at unlock, readable without the engine.
    store: Store,
    vault_id: [u8; 16],
    fingerprint: Fingerprint,
    first_use: bool,
    era: u32,
    failed_attempts: Vec<u64>,
    max_value: usize,
}

/// How many freshness checks run at once, at most.
const PROBES_AT_ONCE: usize = 2;

/// The freshness checks begun.
struct Probes {
    /// The arrival count when the newest one began (good, failed or under way).
    started: u64,
    /// How many are under way.
    under_way: usize,
}

/// A freshness check under way. However it ends — good, failed, or its read dropped at an
/// await — the reads waiting for it are told; unless it was good, they begin their own.
struct Check<'a> {
    svc: &'a Service,
    good: bool,
}

impl Drop for Check<'_> {
    fn drop(&mut self) {
        {
            let mut probes = lock_queue(&self.svc.probes);
            probes.under_way -= 1;
            if !self.good {
                probes.started = probes.started.min(self.svc.checked.load(Ordering::SeqCst));
            }
        }
        self.svc.probe_done.notify_waiters();
    }
}

impl Service {
    /// Nanoseconds since the service was made.
    fn since_born(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A plain write waiting for the engine, to be committed together with the others waiting.
struct PendingWrite {
    actor: Arc<str>,
    op: AuditOp,
    items: Vec<(SecretPath, Zeroizing<Vec<u8>>)>,
    reply: oneshot::Sender<Result<Vec<u64>>>,
}

/// How long the lane's writer waits, at most, for reads already under way to queue their records
/// before it writes an entry (tokio's timer rounds this up to its millisecond tick). In the common
/// case they arrive within microseconds; the bound only matters for a read held up elsewhere.
const SIBLING_WAIT: std::time::Duration = std::time::Duration::from_micros(500);

/// How long the next group commit waits, at most, for the writers the previous one just answered
/// to come back with their next write (PostgreSQL's `commit_delay`, adaptive): writers in a loop
/// then share every commit instead of splitting into two halves that commit in turn.
const WRITER_WAIT: std::time::Duration = std::time::Duration::from_micros(500);

/// A read under way, from its start until its record is queued for the lane (or it ends without
/// one): the lane's writer waits for such reads before it writes an entry, so that reads running
/// side by side share one entry instead of queueing one entry each behind the other (what
/// PostgreSQL's `commit_delay` with `commit_siblings` does for commits). A lone read never waits:
/// no sibling is under way.
struct Sibling<'a> {
    svc: &'a Service,
    settled: std::sync::atomic::AtomicBool,
}

impl<'a> Sibling<'a> {
    fn begin(svc: &'a Service) -> Sibling<'a> {
        svc.reads_begun.fetch_add(1, Ordering::SeqCst);
        Sibling { svc, settled: std::sync::atomic::AtomicBool::new(false) }
    }

    /// The read's record is queued, or it will write none: the lane need not wait for it.
    fn settle(&self) {
        if !self.settled.swap(true, Ordering::SeqCst) {
            self.svc.reads_settled.fetch_add(1, Ordering::SeqCst);
            self.svc.read_settled.notify_waiters();
        }
    }
}

impl Drop for Sibling<'_> {
    fn drop(&mut self) {
        self.settle();
    }
}

/// A flag of the service saying a task is on its way (to take a queue, or pinning the lane), set;
/// cleared when dropped. For a queue it is made before the task is spawned and moved into it, so
/// the flag is cleared when the task takes its queue, and also if the task is dropped before
/// that — even before its first poll (its runtime shutting down) — so the next request starts
/// another instead of waiting for a task that will never come.
struct OnItsWay {
    svc: Arc<Service>,
    flag: fn(&Service) -> &AtomicBool,
}

impl OnItsWay {
    /// Sets the flag; `None` if it was set already (a task is on its way).
    fn claim(svc: &Arc<Service>, flag: fn(&Service) -> &AtomicBool) -> Option<OnItsWay> {
        (!flag(svc).swap(true, Ordering::SeqCst)).then(|| OnItsWay { svc: svc.clone(), flag })
    }
}

impl Drop for OnItsWay {
    fn drop(&mut self) {
        (self.flag)(&self.svc).store(false, Ordering::SeqCst);
    }
}

/// A read's audit record waiting for the next entry, and who to tell when it is written.
type PendingRecord = (AuditRecord, oneshot::Sender<Result<()>>);

/// An engine operation run by [`Vault::run`].
type EngineOp<T> = Box<dyn for<'e> FnOnce(&'e mut Engine) -> BoxFuture<'e, Result<T>> + Send>;

impl Vault {
    /// Wraps an opened engine; its options' actor is the handle's.
    pub(crate) fn serve(engine: Engine) -> Vault {
        let svc = Service {
            store: engine.store.clone(),
            vault_id: engine.vault_id,
            fingerprint: engine.fingerprint,
            first_use: engine.first_use,
            era: engine.era,
            failed_attempts: engine.failed_attempts.clone(),
            max_value: engine.opts.max_value,
            writes: std::sync::Mutex::new(Vec::new()),
            write_queued: tokio::sync::Notify::new(),
            writers_expected: std::sync::atomic::AtomicUsize::new(0),
            commit_flusher: AtomicBool::new(false),
            view: engine.view.clone(),
            lane: engine.lane.clone(),
            audits: std::sync::Mutex::new(Vec::new()),
            readers_expected: std::sync::atomic::AtomicUsize::new(0),
            audit_flusher: AtomicBool::new(false),
            pinning: AtomicBool::new(false),
            pin_failed: AtomicBool::new(false),
            sealed: AtomicBool::new(false),
            arrivals: AtomicU64::new(0),
            checked: AtomicU64::new(0),
            probes: std::sync::Mutex::new(Probes { started: 0, under_way: 0 }),
            probe_done: tokio::sync::Notify::new(),
            staleness: engine.opts.read_staleness,
            fresh_as_of: AtomicU64::new(0),
            born: std::time::Instant::now(),
            reads_begun: AtomicU64::new(0),
            reads_settled: AtomicU64::new(0),
            read_settled: tokio::sync::Notify::new(),
            password_checks: tokio::sync::Semaphore::new(1),
            engine: Arc::new(Mutex::new(None)),
        };
        let actor: Arc<str> = Arc::from(engine.opts.actor.as_str());
        // Not contended: nothing else holds the mutex yet.
        if let Ok(mut slot) = svc.engine.try_lock() {
            *slot = Some(engine);
        }
        Vault { svc: Arc::new(svc), actor, checked_once: false }
    }

    /// Creates a vault at an empty location (see the engine's `init`).
    pub async fn init(store: Store, password: &Password, opts: Options) -> Result<Vault> {
        Engine::init(store, password, opts).await.map(Vault::serve)
    }

    /// Unlocks the vault at `store` with `password`.
    ///
    /// Refuses a store that serves an older or different history than this machine has seen
    /// ([`Error::Rollback`], [`Error::Fork`]), or that fails the create-if-absent probe. A wrong
    /// password is remembered locally and reported — and sealed into the audit trail — at the next
    /// successful unlock.
    pub async fn unlock(store: Store, password: &Password, opts: Options) -> Result<Vault> {
        Engine::unlock(store, password, opts).await.map(Vault::serve)
    }

    /// Creates a vault at an empty location that its unseal key opens (`tresor server`'s
    /// `sys/init`); it has no password slot until one is added.
    pub async fn init_unseal_key(store: Store, key: &tresor_crypto::Key, opts: Options) -> Result<Vault> {
        Engine::init_unseal_key(store, key, opts).await.map(Vault::serve)
    }

    /// Unlocks the vault at `store` with its unseal key (as [`Vault::unlock`] with a password).
    pub async fn unseal(store: Store, key: &tresor_crypto::Key, opts: Options) -> Result<Vault> {
        Engine::unseal(store, key, opts).await.map(Vault::serve)
    }

    /// Opens the vault with its recovery phrase and sets a new password (see the engine's `recover`).
    pub async fn recover(
        store: Store,
        phrase: &Phrase,
        new_password: &Password,
        params: KdfParams,
        keep_slots: bool,
        opts: Options,
    ) -> Result<Vault> {
        Engine::recover(store, phrase, new_password, params, keep_slots, opts).await.map(Vault::serve)
    }

    /// A handle on the same vault acting for `actor`: what its audit records and commits name (a
    /// local user and process, a token accessor, a sync peer).
    pub fn with_actor(&self, actor: impl Into<String>) -> Vault {
        Vault { svc: self.svc.clone(), actor: Arc::from(actor.into()), checked_once: self.checked_once }
    }

    /// Checks once that the view is fresh (it holds every commit the store holds now, or is
    /// within [`Options::read_staleness`](crate::Options) of a check that did), and returns a
    /// handle whose reads are served from the shared view without a check each: for one request
    /// made of several reads (a server's token, policy, mount, settings and value lookups), which
    /// then all reflect the store as of the request's start or later, and pay one check between
    /// them. The handle's own writes, and every write through this vault's handles, are in the
    /// view as soon as they commit. Keep such a handle for one request, not longer: it never
    /// looks for other writers' commits again (a re-key fence still makes it look).
    pub async fn checked(&self) -> Result<Vault> {
        let unchecked = Vault { svc: self.svc.clone(), actor: self.actor.clone(), checked_once: false };
        let sibling = Sibling::begin(&self.svc);
        unchecked.fresh(&sibling).await?;
        Ok(Vault { checked_once: true, ..unchecked })
    }

    /// Who this handle acts for.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// Runs `op` on the engine in a task of its own: a caller dropped meanwhile loses only the
    /// answer, never leaves the engine half-way. [`Error::Locked`] once the vault is locked.
    async fn run<T: Send + 'static>(&self, op: EngineOp<T>) -> Result<T> {
        self.run_or(op, || Error::store("a vault task failed")).await
    }

    /// [`Vault::run`] for an operation that writes: a task that ends without an answer (it
    /// panicked) may have written, so that is [`Error::Indeterminate`], not a refusal.
    async fn run_write<T: Send + 'static>(&self, op: EngineOp<T>) -> Result<T> {
        self.run_or(op, || {
            Error::Indeterminate(Box::new(Error::store("a vault task ended without an answer")))
        })
        .await
    }

    /// Runs `op` in a task of its own; `lost` is the error when the task ends without an answer.
    async fn run_or<T: Send + 'static>(&self, op: EngineOp<T>, lost: fn() -> Error) -> Result<T> {
        let engine = self.svc.engine.clone();
        let actor = self.actor.clone();
        let task = tokio::spawn(async move {
            let mut guard = engine.lock_owned().await;
            let engine = guard.as_mut().ok_or(Error::Locked)?;
            engine.act_for(&actor);
            op(engine).await
        });
        task.await.map_err(|_| lost())?
    }

    /// The engine, in the caller's own future: for operations that report progress through a
    /// borrowed callback (bulk work, each step a commit of its own: a caller dropped between steps
    /// leaves what a crash leaves, which the next run finishes).
    async fn engine_here(&self) -> Result<tokio::sync::OwnedMutexGuard<Option<Engine>>> {
        let guard = self.svc.engine.clone().lock_owned().await;
        if guard.is_none() {
            return Err(Error::Locked);
        }
        Ok(guard)
    }

    /// The vault fingerprint (of the root this handle holds).
    pub fn fingerprint(&self) -> Fingerprint {
        self.svc.fingerprint
    }

    /// Whether this unlock was the first on this machine at this location and pinned the vault
    /// it found (trust on first use: the caller says so once, SSH-style).
    pub fn first_use(&self) -> bool {
        self.svc.first_use
    }

    /// The root era (1 until the vault is re-keyed).
    pub fn era(&self) -> u32 {
        self.svc.era
    }

    /// Failed unlock attempts (their times) reported by this unlock; now in the audit trail.
    pub fn failed_attempts(&self) -> &[u64] {
        &self.svc.failed_attempts
    }

    /// The vault id.
    pub fn vault_id(&self) -> [u8; 16] {
        self.svc.vault_id
    }

    /// The store this vault lives in (its current root era's).
    pub fn store(&self) -> &Store {
        &self.svc.store
    }

    /// The largest value accepted.
    pub fn max_value(&self) -> usize {
        self.svc.max_value
    }

    /// Whether the vault is still unlocked.
    pub async fn is_unlocked(&self) -> bool {
        self.svc.engine.lock().await.is_some()
    }

    /// Checks `password` against the key file without unlocking anything new; a wrong one counts
    /// as a failed attempt.
    /// The key derivation runs without holding the engine (writes go on meanwhile), one check
    /// at a time (each takes the KDF's memory, and guesses must not run in parallel).
    pub async fn verify_password(&self, password: &Password) -> Result<()> {
        let check = self.run(Box::new(|e| Box::pin(async move { e.password_check().await }))).await?;
        let password = copy_password(password);
        let _one_at_a_time =
            self.svc.password_checks.acquire().await.map_err(|_| Error::store("password checks closed"))?;
        // In a task of its own with the failure record: a caller dropped meanwhile still leaves
        // a wrong guess recorded.
        tokio::task::spawn_blocking(move || {
            if check.opens(&password) {
                return Ok(());
            }
            check.record_failure()?;
            Err(Error::AuthFailed)
        })
        .await
        .map_err(|_| Error::store("a key derivation thread panicked"))?
    }

    /// How long reading and opening the newest snapshot takes.
    pub async fn measure_snapshot(&self) -> Result<Option<SnapshotTiming>> {
        self.run(Box::new(|e| Box::pin(async move { e.measure_snapshot().await }))).await
    }

    /// Writes a snapshot of the index as of the newest commit; returns its commit.
    pub async fn snapshot(&self) -> Result<u64> {
        self.run_write(Box::new(|e| Box::pin(async move { e.snapshot().await }))).await
    }

    /// Reads commits other writers appended since this handle last looked.
    pub async fn refresh(&self) -> Result<()> {
        self.run(Box::new(|e| Box::pin(async move { e.refresh().await }))).await
    }

    /// Reads, checks and decrypts the whole audit trail, oldest first (audited itself).
    pub async fn audit_trail(&self) -> Result<Vec<crate::model::TrailRecord>> {
        self.run(Box::new(|e| Box::pin(async move { e.audit_trail().await }))).await
    }

    /// Proves the commit log and the audit trail whole and every value authentic.
    pub async fn verify(&self) -> Result<VerifyReport> {
        self.run(Box::new(|e| Box::pin(async move { e.verify().await }))).await
    }

    /// The value of `path` (its current version, or `version`). Reads run concurrently with
    /// each other and with writes: the version is looked up in the view and its value read and
    /// opened without taking the engine; the read's audit record joins the next batch, and
    /// nothing is returned before it is written.
    pub async fn get(&self, path: impl IntoSecretPath, version: Option<u64>) -> Result<SecretBytes> {
        let path = &path.into_secret_path()?;
        let sibling = &Sibling::begin(&self.svc);
        if let Err(e) = self.fresh(sibling).await {
            return Err(self.failed(sibling, AuditOp::Get, Some(path), e).await);
        }
        self.get_at(sibling, path, version).await
    }

    /// A version of `path` (the newest one, deleted or not, when `version` is `None`) with the
    /// secret's whole history, as one read and one audit record — what Vault's KV v2 answers
    /// (a version's data with its metadata). The value is `None` when that version is deleted
    /// or destroyed (audited as a read that found it so).
    pub async fn get_with_history(
        &self,
        path: impl IntoSecretPath,
        version: Option<u64>,
    ) -> Result<(Vec<HistoryEntry>, Option<SecretBytes>)> {
        let path = &path.into_secret_path()?;
        let sibling = &Sibling::begin(&self.svc);
        if let Err(e) = self.fresh(sibling).await {
            return Err(self.failed(sibling, AuditOp::Get, Some(path), e).await);
        }
        let history = match self.svc.view.history(path) {
            Ok(history) => history,
            Err(e) => return Err(self.failed(sibling, AuditOp::Get, Some(path), e).await),
        };
        let wanted = match version {
            Some(v) => history.iter().find(|h| h.version == v),
            None => history.last(),
        };
        let Some(entry) = wanted else {
            let e = Error::NoSuchVersion { path: path.to_string(), version: version.unwrap_or(0) };
            return Err(self.failed(sibling, AuditOp::Get, Some(path), e).await);
        };
        let number = entry.version;
        if entry.deleted_ms.is_some() || entry.destroyed {
            let what = if entry.destroyed { "destroyed" } else { "deleted" };
            let outcome = Outcome::Failed(format!("version {number} of {path} is {what}"));
            self.audit_read(sibling, AuditOp::Get, Some(path), outcome, None).await?;
            return Ok((history, None));
        }
        let value = self.get_at(sibling, path, Some(number)).await?;
        Ok((history, Some(value)))
    }

    /// [`Vault::get`] once the view is fresh: the value, read without the engine when it can be,
    /// audited before it is returned.
    async fn get_at(
        &self,
        sibling: &Sibling<'_>,
        path: &SecretPath,
        version: Option<u64>,
    ) -> Result<SecretBytes> {
        let (blob, number) = match self.svc.view.lookup(path, version) {
            Ok(found) => found,
            Err(e) => return Err(self.failed(sibling, AuditOp::Get, Some(path), e).await),
        };
        let value = match self.read_blob(&blob).await {
            Ok(Some(value)) => value,
            // A key not loaded yet, a value moved by a re-seal or an epoch destruction, a store
            // that lost it: the engine's path sorts those out (and audits them).
            Ok(None) => return self.get_slow(sibling, path, version).await,
            Err(e) => return Err(self.failed(sibling, AuditOp::Get, Some(path), e).await),
        };
        let detail = version.map(|v| format!("version {v}"));
        self.audit_read(sibling, AuditOp::Get, Some(path), Outcome::Ok, detail).await?;
        // A value of an older epoch moves to the current one, in batches: the read that fills
        // a batch takes the engine and hands it to a task that commits the batch, so every later
        // operation comes after that commit, but the read does not wait for it (a failure leaves
        // the batch for later).
        // An engine busy with other work (a long re-encryption) is not waited for: the batch
        // stays queued for the next read, housekeeping or lock.
        if self.svc.view.queue_reseal(path, number, blob) >= LAZY_BATCH
            && let Ok(mut engine) = self.svc.engine.clone().try_lock_owned()
        {
            let actor = self.actor.clone();
            tokio::spawn(async move {
                if let Some(engine) = engine.as_mut() {
                    engine.act_for(&actor);
                    engine.flush_reseal().await;
                }
            });
        }
        Ok(value)
    }

    /// [`Vault::get`] through the engine.
    async fn get_slow(
        &self,
        sibling: &Sibling<'_>,
        path: &SecretPath,
        version: Option<u64>,
    ) -> Result<SecretBytes> {
        // The engine audits this read itself, through the lane: the lane must not wait for it.
        sibling.settle();
        let path = path.clone();
        self.run(Box::new(move |e| Box::pin(async move { e.get(&path, version).await }))).await
    }

    /// The value in `blob`, read and opened without the engine; `None` when only the engine can
    /// read it (its epoch key is not loaded, or the blob moved or vanished meanwhile).
    async fn read_blob(&self, blob: &BlobRef) -> Result<Option<SecretBytes>> {
        let Some(key) = self.svc.view.epoch(blob.epoch) else { return Ok(None) };
        let name = layout::blob(blob.epoch, &blob.id);
        let (envelope, cached) = match self.svc.view.cached(blob) {
            Some(envelope) => (envelope, true),
            None => {
                let end = blob.offset.saturating_add(u64::from(blob.len));
                let Some(envelope) = self.svc.store.get_range(&name, blob.offset..end).await? else {
                    return Ok(None);
                };
                (envelope, false)
            }
        };
        match open_slot(&key, &self.svc.vault_id, &name, blob, &envelope) {
            Ok(value) => {
                if !cached {
                    self.svc.view.cache(*blob, envelope);
                }
                Ok(Some(value))
            }
            Err(Error::Integrity { kind: ObjectKind::ValueBlob, .. }) => {
                self.svc.view.uncache(blob);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The current version of the system entry `path` (a server's own bookkeeping: token
    /// records, policies, settings), as fresh as [`Vault::get`] — but not audited: the request
    /// that needs it is audited in its own name. When `known` is still the current version, no
    /// value is read ([`SystemEntry::Unchanged`]): a cache keyed by version stays correct across
    /// every writer of the store. A user path is refused.
    pub async fn system_entry(&self, path: &SecretPath, known: Option<u64>) -> Result<SystemEntry> {
        if !path.is_system() {
            return Err(Error::Invalid(format!("{path} is not a system entry")));
        }
        let sibling = Sibling::begin(&self.svc);
        self.fresh(&sibling).await?;
        sibling.settle();
        let (blob, version) = match self.svc.view.lookup(path, None) {
            Ok(found) => found,
            Err(Error::NotFound { .. } | Error::Deleted { .. }) => return Ok(SystemEntry::Absent),
            Err(e) => return Err(e),
        };
        if known == Some(version) {
            return Ok(SystemEntry::Unchanged(version));
        }
        match self.read_blob(&blob).await? {
            Some(value) => Ok(SystemEntry::Current(version, value)),
            // Rare (a key to load, a value moved meanwhile): the engine's read, audited.
            None => Ok(SystemEntry::Current(version, self.get(path, Some(version)).await?)),
        }
    }

    /// Makes sure the view holds every commit the store held when this was called: if the next
    /// commit exists, the engine applies it (and whatever follows). One read of a name that is
    /// not there when nothing changed (as the engine's own refresh: a store that fails reads
    /// fails this too). Reads that arrive together share one check: a check that began after a
    /// read arrived answers for it.
    ///
    /// A read that has to wait for the engine here (a commit to apply, a re-key fence) stops
    /// counting as under way ([`Sibling`]): the lane does not wait for it.
    async fn fresh(&self, sibling: &Sibling<'_>) -> Result<()> {
        if self.svc.sealed.load(Ordering::Acquire) {
            return Err(Error::Locked);
        }
        // A handle checked at its request's start serves that view (or a newer one).
        if self.checked_once && !self.svc.view.fenced() {
            return Ok(());
        }
        // Within the staleness bound, the view of the last good check serves.
        if !self.svc.staleness.is_zero() && !self.svc.view.fenced() {
            let as_of = self.svc.fresh_as_of.load(Ordering::Acquire);
            let age = self.svc.since_born().saturating_sub(as_of);
            if as_of > 0 && u128::from(age) < self.svc.staleness.as_nanos() {
                return Ok(());
            }
        }
        let arrived = self.svc.arrivals.fetch_add(1, Ordering::SeqCst) + 1;
        // A check that began after this read arrived answers for it: wait for one under way, or
        // begin one. Two checks may run side by side (two reads arriving together do not queue
        // one check behind the other; a crowd does not make a check per read).
        let covers = loop {
            let done = self.svc.probe_done.notified();
            if self.svc.checked.load(Ordering::SeqCst) >= arrived {
                return Ok(());
            }
            {
                let mut probes = lock_queue(&self.svc.probes);
                if probes.started < arrived && probes.under_way < PROBES_AT_ONCE {
                    probes.started = self.svc.arrivals.load(Ordering::SeqCst);
                    probes.under_way += 1;
                    break probes.started;
                }
            }
            done.await;
        };
        let mut check = Check { svc: &self.svc, good: false };
        let began = self.svc.since_born().max(1);
        if self.svc.view.fenced() {
            // A re-key elsewhere may switch eras without a commit here: the engine checks.
            sibling.settle();
            self.refresh().await?;
        } else {
            // The engine's refresh applies everything committed by now; but the engine may be
            // busy for long (bulk work), and then the commit found may get applied by its own
            // work first: probe again past it, until a probe finds nothing or the refresh ends.
            let refresh = self.refresh();
            tokio::pin!(refresh);
            let mut next = self.svc.view.log_seq() + 1;
            while self.svc.store.get(&layout::commit(next)).await?.is_some() {
                sibling.settle();
                tokio::select! {
                    refreshed = &mut refresh => {
                        refreshed?;
                        break;
                    }
                    () = self.svc.view.applied(next) => next = self.svc.view.log_seq() + 1,
                }
            }
        }
        self.svc.checked.fetch_max(covers, Ordering::SeqCst);
        self.svc.fresh_as_of.fetch_max(began, Ordering::AcqRel);
        check.good = true;
        Ok(())
    }

    /// The number of the newest commit this handle's view holds: an index a client can give back
    /// to [`Vault::fresh_to`] (Vault's `X-Vault-Index`).
    pub fn log_index(&self) -> u64 {
        self.svc.view.log_seq()
    }

    /// Makes sure the view holds commit `index` (read-your-writes across handles, whatever the
    /// staleness bound): a view behind it checks the store at once. `false` if the store has no
    /// such commit yet.
    pub async fn fresh_to(&self, index: u64) -> Result<bool> {
        if self.svc.sealed.load(Ordering::Acquire) {
            return Err(Error::Locked);
        }
        if self.svc.view.log_seq() >= index {
            return Ok(true);
        }
        self.refresh().await?;
        Ok(self.svc.view.log_seq() >= index)
    }

    /// Records a read in the audit trail: the record joins the records of other reads waiting
    /// for the lane, and the next append (in a task of its own) writes them all as one entry.
    /// Returns once the entry holding it is written.
    async fn audit_read(
        &self,
        sibling: &Sibling<'_>,
        op: AuditOp,
        path: Option<&str>,
        outcome: Outcome,
        detail: Option<String>,
    ) -> Result<()> {
        let record = AuditRecord {
            time_ms: now_ms(),
            actor: self.actor.to_string(),
            op: op.as_str().to_string(),
            path: path.map(str::to_string),
            outcome,
            detail,
        };
        let (reply, written) = oneshot::channel();
        lock_queue(&self.svc.audits).push((record, reply));
        sibling.settle();
        // A task already on its way takes this record with the others (it clears the flag
        // before it takes the queue, so a record queued after that starts a task of its own).
        if let Some(on_its_way) = OnItsWay::claim(&self.svc, |s| &s.audit_flusher) {
            tokio::spawn(Vault::write_read_records(on_its_way));
        }
        written.await.unwrap_or(Err(Error::Locked))
    }

    /// Writes the records of the reads waiting for the lane as one entry, and tells each read.
    async fn write_read_records(on_its_way: OnItsWay) {
        let svc = on_its_way.svc.clone();
        let mut lane = svc.lane.clone().lock_owned().await;
        if !lock_queue(&svc.audits).is_empty() {
            // Reads under way now are about to queue their records, and the readers the last
            // entry answered are likely on their way back: wait for them (briefly), so one entry
            // holds them all.
            let begun = svc.reads_begun.load(Ordering::SeqCst);
            let expected = svc.readers_expected.load(Ordering::Acquire);
            let gathered = || {
                svc.reads_settled.load(Ordering::SeqCst) >= begun && lock_queue(&svc.audits).len() >= expected
            };
            if !gathered() {
                let _ = tokio::time::timeout(SIBLING_WAIT, async {
                    loop {
                        let settled = svc.read_settled.notified();
                        if gathered() {
                            break;
                        }
                        settled.await;
                    }
                })
                .await;
            }
        }
        // From here a record queued is either in this batch or starts a task of its own.
        drop(on_its_way);
        let batch = std::mem::take(&mut *lock_queue(&svc.audits));
        if batch.is_empty() {
            return;
        }
        let answered = batch.len();
        let (records, replies): (Vec<AuditRecord>, Vec<_>) = batch.into_iter().unzip();
        let mut result = lane.append(&records, Durability::Relaxed).await;
        // Every PIN_EVERY entries the lane is made durable and its head pinned: after these
        // reads are answered, without the lane, so that reads go on while it syncs. It runs here
        // instead, and these reads fail with it, when the last one failed or when twice as many
        // entries wait (a pin that is slow to end): never more than that go unpinned.
        let mut pin = None;
        if result.is_ok() && lane.pin_due() {
            if svc.pin_failed.load(Ordering::SeqCst) || lane.unsynced.len() >= 2 * PIN_EVERY {
                result = lane.pin().await.map_err(|e| Error::Audit(Box::new(e)));
                svc.pin_failed.store(result.is_err(), Ordering::SeqCst);
            } else if let Some(pinning) = OnItsWay::claim(&svc, |s| &s.pinning) {
                pin = Some((lane.pin_job(), pinning));
            }
        }
        for reply in replies {
            let _ = reply.send(result.clone());
        }
        let waiting = lock_queue(&svc.audits).len();
        svc.readers_expected.store(answered + waiting, Ordering::Release);
        drop(lane);
        if let Some((job, _pinning)) = pin {
            match job.run().await {
                Ok(synced) => svc.lane.lock().await.synced(&synced),
                Err(e) => {
                    tracing::warn!("the audit trail could not be made durable; the next reads retry: {e}");
                    svc.pin_failed.store(true, Ordering::SeqCst);
                }
            }
        }
    }

    /// A read that failed: recorded (best effort), and the error to return — [`Error::Locked`]
    /// if the vault was locked meanwhile.
    async fn failed(&self, sibling: &Sibling<'_>, op: AuditOp, path: Option<&str>, error: Error) -> Error {
        if self.svc.sealed.load(Ordering::Acquire) {
            return Error::Locked;
        }
        let _ = self.audit_read(sibling, op, path, Outcome::Failed(error.to_string()), None).await;
        error
    }

    /// Stores a new version of `path`; returns its version number. Writes that arrive together
    /// share one commit.
    pub async fn set(&self, path: impl IntoSecretPath + Copy, value: &[u8]) -> Result<u64> {
        let versions = self.set_many(AuditOp::Set, &[(path, value)]).await?;
        versions.first().copied().ok_or_else(|| Error::Invalid("nothing was written".into()))
    }

    /// Stores a new version of `path` only if its live version is `cas` (0: only if it has none:
    /// never written, or its newest version deleted or destroyed).
    pub async fn set_cas(&self, path: impl IntoSecretPath, value: &[u8], cas: u64) -> Result<u64> {
        let (path, value) = (path.into_secret_path()?, Zeroizing::new(value.to_vec()));
        self.run_write(Box::new(move |e| {
            Box::pin(async move { e.set_cas(&path, &value, Cas::Live(cas)).await })
        }))
        .await
    }

    /// [`Vault::set_cas`] as Vault's KV v2 counts: the write lands only if the newest version of
    /// `path` — live, deleted or destroyed — is `newest` (0: it never had a version).
    pub async fn set_cas_newest(&self, path: impl IntoSecretPath, value: &[u8], newest: u64) -> Result<u64> {
        let (path, value) = (path.into_secret_path()?, Zeroizing::new(value.to_vec()));
        self.run_write(Box::new(move |e| {
            Box::pin(async move { e.set_cas(&path, &value, Cas::Newest(newest)).await })
        }))
        .await
    }

    /// Stores several secrets in one commit (all or none); `op` names it in the audit trail.
    /// Requests that arrive while the engine is busy are committed together (group commit): each
    /// gets its own versions, and a request refused as invalid fails alone.
    pub async fn set_many<P: IntoSecretPath + Copy>(
        &self,
        op: AuditOp,
        items: &[(P, &[u8])],
    ) -> Result<Vec<u64>> {
        let (reply, answer) = oneshot::channel();
        // Paths are checked here, once: a bad one is refused before it joins anyone's commit.
        let items = items
            .iter()
            .map(|(p, v)| Ok((p.into_secret_path()?, Zeroizing::new(v.to_vec()))))
            .collect::<Result<_>>()?;
        lock_queue(&self.svc.writes).push(PendingWrite { actor: self.actor.clone(), op, items, reply });
        self.svc.write_queued.notify_waiters();
        // Whoever takes the engine next commits everything waiting, in a task of its own; one
        // already on its way takes this write too.
        if let Some(on_its_way) = OnItsWay::claim(&self.svc, |s| &s.commit_flusher) {
            tokio::spawn(Vault::commit_waiting_writes(on_its_way));
        }
        // No answer at all: the task ended without one (it panicked), the commit may have landed.
        answer.await.unwrap_or_else(|_| {
            Err(Error::Indeterminate(Box::new(Error::store("the commit task ended without an answer"))))
        })
    }

    /// Commits the writes waiting in one group commit, and answers each.
    async fn commit_waiting_writes(on_its_way: OnItsWay) {
        let svc = on_its_way.svc.clone();
        let mut guard = svc.engine.clone().lock_owned().await;
        if !lock_queue(&svc.writes).is_empty() {
            // Writers the last commit answered are likely on their way back: wait for them
            // (briefly), so that one commit takes them all.
            let expected = svc.writers_expected.load(Ordering::Acquire);
            if lock_queue(&svc.writes).len() < expected {
                let _ = tokio::time::timeout(WRITER_WAIT, async {
                    loop {
                        let queued = svc.write_queued.notified();
                        if lock_queue(&svc.writes).len() >= expected {
                            break;
                        }
                        queued.await;
                    }
                })
                .await;
            }
        }
        // From here a write queued is either in this batch or starts a task of its own.
        drop(on_its_way);
        let batch = std::mem::take(&mut *lock_queue(&svc.writes));
        if batch.is_empty() {
            return;
        }
        let answered = batch.len();
        match guard.as_mut() {
            Some(engine) => group_commit(engine, batch).await,
            None => batch.into_iter().for_each(|p| drop(p.reply.send(Err(Error::Locked)))),
        }
        let waiting = lock_queue(&svc.writes).len();
        svc.writers_expected.store(answered + waiting, Ordering::Release);
    }

    /// Deletes the current version of `path` (history is kept); returns the deleted version.
    pub async fn delete(&self, path: impl IntoSecretPath) -> Result<u64> {
        let path = path.into_secret_path()?;
        self.run_write(Box::new(move |e| Box::pin(async move { e.delete(&path).await }))).await
    }

    /// Deletes chosen versions of `path` (KV v2's `delete`): their values stay, and
    /// [`Vault::undelete_versions`] brings them back. Versions that do not exist, are deleted
    /// already or destroyed are skipped; returns those deleted.
    pub async fn delete_versions(&self, path: impl IntoSecretPath, versions: &[u64]) -> Result<Vec<u64>> {
        let (path, versions) = (path.into_secret_path()?, versions.to_vec());
        self.run_write(Box::new(move |e| Box::pin(async move { e.delete_versions(&path, &versions).await })))
            .await
    }

    /// Makes deleted versions of `path` live again (KV v2's `undelete`); returns those undeleted.
    pub async fn undelete_versions(&self, path: impl IntoSecretPath, versions: &[u64]) -> Result<Vec<u64>> {
        let (path, versions) = (path.into_secret_path()?, versions.to_vec());
        self.run_write(Box::new(move |e| {
            Box::pin(async move { e.undelete_versions(&path, &versions).await })
        }))
        .await
    }

    /// Applies changes that arrive from elsewhere (a sync group's members) in one commit: all or
    /// none, each audited as `sync` under its own actor (see [`super::Change`]).
    pub async fn apply(&self, changes: Vec<super::Change>) -> Result<Vec<u64>> {
        self.run_write(Box::new(move |e| Box::pin(async move { e.apply(AuditOp::Sync, &changes).await })))
            .await
    }

    /// The SLIP-0010 node of this vault's member identity in a sync group: `m/74'/1'/…` from
    /// `label` (32 bytes naming the group for this vault) and `installation`. For the sync code in
    /// this process, as [`Vault::derive_encryption_key`]: not served by the agent, not audited
    /// (what the identity signs is: the group's changes are audited as `sync`).
    pub async fn sync_node(
        &self,
        label: [u8; 32],
        installation: u32,
    ) -> Result<tresor_crypto::slip10::Ed25519Node> {
        self.run_write(Box::new(move |e| Box::pin(async move { Ok(e.sync_node(&label, installation)) })))
            .await
    }

    /// Destroys versions of `path` (KV v2's `destroy`): their values are taken out of the store
    /// for good (see [`DestroyVersionsReport`]).
    pub async fn destroy_versions(
        &self,
        path: impl IntoSecretPath,
        versions: &[u64],
    ) -> Result<DestroyVersionsReport> {
        let (path, versions) = (path.into_secret_path()?, versions.to_vec());
        self.run_write(Box::new(move |e| Box::pin(async move { e.destroy_versions(&path, &versions).await })))
            .await
    }

    /// Live secrets under `prefix` (from the view, like [`Vault::get`]); never the system
    /// namespace's.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ListEntry>> {
        self.list_in(prefix, false).await
    }

    /// Secrets under `prefix` whose newest version is deleted (`undelete` brings them back);
    /// each entry's time is when it was deleted. Audited as a listing.
    pub async fn list_deleted(&self, prefix: &str) -> Result<Vec<ListEntry>> {
        let sibling = &Sibling::begin(&self.svc);
        self.fresh(sibling).await?;
        let entries = self.svc.view.list_deleted(prefix);
        if self.svc.sealed.load(Ordering::Acquire) {
            return Err(Error::Locked);
        }
        let path = (!prefix.is_empty()).then_some(prefix);
        let detail = Some(format!("{} deleted entries", entries.len()));
        self.audit_read(sibling, AuditOp::List, path, Outcome::Ok, detail).await?;
        Ok(entries)
    }

    /// Live entries of the system namespace under `prefix` (a name there, or a start of one); their
    /// paths are whole system paths ([`crate::path::SecretPath::system`]).
    pub async fn list_system(&self, prefix: &str) -> Result<Vec<ListEntry>> {
        self.list_in(&format!("{}/{prefix}", crate::path::SYSTEM_ROOT), true).await
    }

    /// [`Vault::list_system`] for a program's own bookkeeping, as fresh but not audited (as
    /// [`Vault::system_entry`]): the request that needs it is audited in its own name.
    pub async fn system_entries(&self, prefix: &str) -> Result<Vec<ListEntry>> {
        let sibling = Sibling::begin(&self.svc);
        self.fresh(&sibling).await?;
        sibling.settle();
        Ok(self.svc.view.list(&format!("{}/{prefix}", crate::path::SYSTEM_ROOT), true))
    }

    /// [`Vault::system_entries`] as of this handle's last check of the store: no round trip, for
    /// a note that a read which has just checked adds to its answer (a sync conflict's).
    pub fn system_entries_seen(&self, prefix: &str) -> Vec<ListEntry> {
        self.svc.view.list(&format!("{}/{prefix}", crate::path::SYSTEM_ROOT), true)
    }

    async fn list_in(&self, prefix: &str, system: bool) -> Result<Vec<ListEntry>> {
        let sibling = &Sibling::begin(&self.svc);
        self.fresh(sibling).await?;
        let entries = self.svc.view.list(prefix, system);
        if self.svc.sealed.load(Ordering::Acquire) {
            return Err(Error::Locked);
        }
        let path = (!prefix.is_empty()).then_some(prefix);
        self.audit_read(
            sibling,
            AuditOp::List,
            path,
            Outcome::Ok,
            Some(format!("{} {}", entries.len(), if entries.len() == 1 { "entry" } else { "entries" })),
        )
        .await?;
        Ok(entries)
    }

    /// Records that this handle's actor was refused `request` (an API method and path) by policy:
    /// denials are audited like any request, and nothing else is done.
    pub async fn audit_denied(&self, request: &str, why: &str) -> Result<()> {
        let sibling = &Sibling::begin(&self.svc);
        self.audit_read(
            sibling,
            AuditOp::Request,
            None,
            Outcome::Denied(why.to_string()),
            Some(request.to_string()),
        )
        .await
    }

    /// Records that this handle's actor did `detail` to the sync group that shares `path` (made,
    /// joined, admitted or removed a member, left): what the group's own saves do not say.
    pub async fn audit_sync(&self, path: &str, detail: &str) -> Result<()> {
        let sibling = &Sibling::begin(&self.svc);
        self.audit_read(sibling, AuditOp::Sync, Some(path), Outcome::Ok, Some(detail.to_string())).await
    }

    /// Whether `path` has an entry (a version, live, deleted or destroyed), as fresh as
    /// [`Vault::get`] but not audited: for the authorization of a request that is audited in its
    /// own name (whether a write to it creates or updates).
    pub async fn has_entry(&self, path: impl IntoSecretPath) -> Result<bool> {
        let path = &path.into_secret_path()?;
        let sibling = Sibling::begin(&self.svc);
        self.fresh(&sibling).await?;
        sibling.settle();
        Ok(self.svc.view.history(path).is_ok())
    }

    /// When `version` of `path` was made, as this handle's view holds it, without asking the
    /// store or auditing: for a writer to report the time of the version it has just written (its
    /// write was audited, and the view applied its commit before the write returned). `None` if
    /// the view does not hold that version.
    pub fn created_ms(&self, path: &str, version: u64) -> Option<u64> {
        // From the newest back: the version just written is the last one (a path's history can be
        // long, and this runs at every server write).
        let index = self.svc.view.index();
        index.get(path)?.versions.iter().rev().find(|v| v.version == version).map(|v| v.created_ms)
    }

    /// Every version of `path`, oldest first (from the view, like [`Vault::get`]).
    pub async fn history(&self, path: impl IntoSecretPath) -> Result<Vec<HistoryEntry>> {
        let path = &path.into_secret_path()?;
        let sibling = &Sibling::begin(&self.svc);
        if let Err(e) = self.fresh(sibling).await {
            return Err(self.failed(sibling, AuditOp::History, Some(path), e).await);
        }
        let out = match self.svc.view.history(path) {
            Ok(out) => out,
            Err(e) => return Err(self.failed(sibling, AuditOp::History, Some(path), e).await),
        };
        self.audit_read(sibling, AuditOp::History, Some(path), Outcome::Ok, None).await?;
        Ok(out)
    }

    /// The vault's summary.
    pub async fn status(&self) -> Result<Status> {
        self.run(Box::new(|e| Box::pin(async move { e.status().await }))).await
    }

    /// Locks the vault for every clone: records why, then wipes every key. Requests in flight
    /// and later ones fail with [`Error::Locked`].
    pub async fn lock(&self, reason: &str) -> Result<()> {
        // New reads stop at once. The rest runs in a task of its own (a caller dropped meanwhile
        // does not stop it half-way), holding the engine throughout: a second `lock` returns
        // only once the keys are gone.
        self.svc.sealed.store(true, Ordering::Release);
        // Bulk work holding the engine stops at its next batch (each batch is committed whole).
        self.svc.view.stop();
        let (svc, actor, reason) = (self.svc.clone(), self.actor.clone(), reason.to_string());
        let task = tokio::spawn(async move {
            let mut slot = svc.engine.lock().await;
            let Some(mut engine) = slot.take() else { return Ok(()) };
            engine.act_for(&actor);
            // The engine is dropped inside, the audit chain's key wiped; then the view's keys go.
            let result = engine.lock(&reason).await;
            svc.view.clear();
            result
        });
        task.await.map_err(|_| Error::store("the lock task failed; the keys are wiped when it ends"))?
    }

    /// Changes the password of the slot that opened this vault.
    pub async fn passwd(&self, new_password: &Password, params: KdfParams) -> Result<()> {
        let password = copy_password(new_password);
        self.run_write(Box::new(move |e| Box::pin(async move { e.passwd(&password, params).await }))).await
    }

    /// The key file's slots.
    pub async fn keyslots(&self) -> Result<Vec<KeySlotView>> {
        self.run(Box::new(|e| Box::pin(async move { e.keyslots().await }))).await
    }

    /// Adds a password slot; returns its index.
    pub async fn keyslot_add(&self, password: &Password, params: KdfParams) -> Result<usize> {
        let password = copy_password(password);
        self.run_write(Box::new(move |e| Box::pin(async move { e.keyslot_add(&password, params).await })))
            .await
    }

    /// Removes a password slot.
    pub async fn keyslot_remove(&self, index: usize) -> Result<()> {
        self.run_write(Box::new(move |e| Box::pin(async move { e.keyslot_remove(index).await }))).await
    }

    /// Removes what nothing references any more (see [`GcReport`]).
    pub async fn gc(&self, grace: Duration, dry_run: bool) -> Result<GcReport> {
        self.run_write(Box::new(move |e| Box::pin(async move { e.gc(grace, dry_run).await }))).await
    }

    /// The epochs and their state.
    pub async fn epochs(&self) -> Result<EpochList> {
        self.run(Box::new(|e| Box::pin(async move { e.epochs().await }))).await
    }

    /// The epoch new values are sealed in.
    pub async fn current_epoch(&self) -> Result<u32> {
        self.run(Box::new(|e| Box::pin(async move { Ok(e.current_epoch()) }))).await
    }

    /// Starts a new epoch; `reason` is recorded.
    pub async fn rotate(&self, reason: &str) -> Result<RotateReport> {
        let reason = reason.to_string();
        self.run_write(Box::new(move |e| Box::pin(async move { e.rotate(&reason).await }))).await
    }

    /// Applies the rotation policy: rotates if the current epoch is older than it allows.
    pub async fn rotate_if_due(&self) -> Result<Option<RotateReport>> {
        self.run_write(Box::new(|e| Box::pin(async move { e.rotate_if_due().await }))).await
    }

    /// When and why the last automatic rotation failed, if it did.
    pub async fn rotation_failure(&self) -> Result<Option<String>> {
        self.run(Box::new(|e| Box::pin(async move { Ok(e.rotation_failure().map(str::to_string)) }))).await
    }

    /// Starts a new epoch because `revoked` lost access.
    pub async fn rotate_on_revocation(&self, revoked: &str) -> Result<RotateReport> {
        let revoked = revoked.to_string();
        self.run_write(Box::new(move |e| Box::pin(async move { e.rotate_on_revocation(&revoked).await })))
            .await
    }

    /// Sets the automatic rotation policy.
    pub async fn set_rotation_policy(&self, every: Option<Duration>) -> Result<()> {
        self.run_write(Box::new(move |e| Box::pin(async move { e.set_rotation_policy(every).await }))).await
    }

    /// Re-seals every value not in the current epoch into it; `progress(done, total)` after
    /// each batch.
    pub async fn reencrypt(&self, progress: &mut (dyn FnMut(u64, u64) + Send)) -> Result<ReencryptReport> {
        let mut guard = self.engine_here().await?;
        let engine = guard.as_mut().ok_or(Error::Locked)?;
        engine.act_for(&self.actor);
        engine.reencrypt(progress).await
    }

    /// Destroys `epoch` (see the engine's `destroy_epoch`).
    pub async fn destroy_epoch(
        &self,
        epoch: u32,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<DestroyReport> {
        let mut guard = self.engine_here().await?;
        let engine = guard.as_mut().ok_or(Error::Locked)?;
        engine.act_for(&self.actor);
        engine.destroy_epoch(epoch, progress).await
    }

    /// Re-seals the values read from older epochs since the last time.
    pub async fn flush_reseal(&self) -> Result<()> {
        self.run_write(Box::new(|e| {
            Box::pin(async move {
                e.flush_reseal().await;
                Ok(())
            })
        }))
        .await
    }

    /// The vault's recovery phrase, recorded in the audit trail first: whoever holds it holds
    /// the vault.
    pub async fn recovery_phrase(&self) -> Result<Phrase> {
        self.run(Box::new(|e| Box::pin(async move { e.reveal_recovery_phrase().await }))).await
    }

    /// The Ed25519 identity at `path`; its private half only with `show_private` (audited).
    pub async fn derive_ed25519(&self, path: &DerivationPath, show_private: bool) -> Result<DerivedIdentity> {
        let path = path.clone();
        self.run(Box::new(move |e| Box::pin(async move { e.derive_ed25519(&path, show_private).await })))
            .await
    }

    /// Signs `msg` with version `version` of the transit signing key `name`: (signature, public
    /// key). Audited. The keys live in a reserved branch no `sign` or `derive` reaches.
    pub async fn transit_sign(&self, name: &str, version: u32, msg: &[u8]) -> Result<([u8; 64], [u8; 32])> {
        let (name, msg) = (name.to_string(), msg.to_vec());
        self.run(Box::new(move |e| Box::pin(async move { e.transit_sign(&name, version, &msg).await }))).await
    }

    /// Signs each of `msgs` with version `version` of transit key `name`, audited once for them
    /// all: the signatures, in order, and the public key.
    pub async fn transit_sign_batch(
        &self,
        name: &str,
        version: u32,
        msgs: Vec<Vec<u8>>,
    ) -> Result<(Vec<[u8; 64]>, [u8; 32])> {
        let name = name.to_string();
        self.run(Box::new(move |e| {
            Box::pin(async move { e.transit_sign_batch(&name, version, &msgs).await })
        }))
        .await
    }

    /// The public key of version `version` of the transit signing key `name`.
    pub async fn transit_public_key(&self, name: &str, version: u32) -> Result<[u8; 32]> {
        let name = name.to_string();
        self.run(Box::new(move |e| Box::pin(async move { e.transit_public_key(&name, version) }))).await
    }

    /// Signs `msg` with the identity at `path`: (signature, public key).
    pub async fn sign(&self, path: &DerivationPath, msg: &[u8]) -> Result<([u8; 64], [u8; 32])> {
        let (path, msg) = (path.clone(), msg.to_vec());
        self.run(Box::new(move |e| Box::pin(async move { e.sign(&path, &msg).await }))).await
    }

    /// The raw transit key `name` for `alg`, for in-process callers that must hold it
    /// themselves (audited: a raw key leaves the vault's keeping).
    pub async fn derive_encryption_key(&self, name: &str, alg: Algorithm) -> Result<Key> {
        let name = name.to_string();
        self.run(Box::new(move |e| Box::pin(async move { e.reveal_encryption_key(&name, alg).await }))).await
    }

    /// A per-message key of transit key `name` for streaming (see the engine's `transit_stream_key`).
    pub async fn transit_stream_key(
        &self,
        name: &str,
        alg: Algorithm,
        salt: Option<[u8; transit::SALT_LEN]>,
    ) -> Result<([u8; transit::SALT_LEN], Key)> {
        let name = name.to_string();
        self.run(Box::new(move |e| Box::pin(async move { e.transit_stream_key(&name, alg, salt).await })))
            .await
    }

    /// Encrypts `plaintext` with transit key `name`.
    pub async fn encrypt(&self, name: &str, alg: Algorithm, plaintext: &[u8]) -> Result<Vec<u8>> {
        let (name, plaintext) = (name.to_string(), Zeroizing::new(plaintext.to_vec()));
        self.run(Box::new(move |e| Box::pin(async move { e.encrypt(&name, alg, &plaintext).await }))).await
    }

    /// Decrypts a transit ciphertext (of key `expected`, if given).
    pub async fn decrypt(&self, ciphertext: &[u8], expected: Option<&str>) -> Result<SecretBytes> {
        let (ciphertext, expected) = (ciphertext.to_vec(), expected.map(str::to_string));
        self.run(Box::new(move |e| {
            Box::pin(async move { e.decrypt(&ciphertext, expected.as_deref()).await })
        }))
        .await
    }

    /// Encrypts each `(key name, plaintext)` of `items` under `alg`, audited once for them all:
    /// one result per item.
    pub async fn encrypt_batch(
        &self,
        alg: Algorithm,
        items: Vec<(String, Zeroizing<Vec<u8>>)>,
    ) -> Result<Vec<Result<Vec<u8>>>> {
        self.run(Box::new(move |e| Box::pin(async move { e.encrypt_batch(alg, &items).await }))).await
    }

    /// Decrypts each `(ciphertext, expected key name)` of `items`, audited once for them all:
    /// one result per item.
    pub async fn decrypt_batch(&self, items: Vec<(Vec<u8>, String)>) -> Result<Vec<Result<SecretBytes>>> {
        self.run(Box::new(move |e| Box::pin(async move { e.decrypt_batch(&items).await }))).await
    }

    /// Rotates the root secret (see the engine's `rekey`): this handle is locked, and the handle of
    /// the new root era is returned.
    pub async fn rekey(
        &self,
        new_password: &Password,
        params: KdfParams,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(Vault, RekeyReport)> {
        // Refused input leaves this handle as it was.
        crate::keyfile::check_password_rules(new_password)?;
        params.check().map_err(|_| Error::Invalid("KDF parameters out of the accepted range".into()))?;
        self.svc.sealed.store(true, Ordering::Release);
        // The old root's keys go whatever happens, also if this future is dropped half-way.
        let _sealed = SealOnDrop(self.svc.clone());
        let Some(mut engine) = self.svc.engine.lock().await.take() else {
            return Err(Error::Locked);
        };
        engine.act_for(&self.actor);
        let (engine, report) = engine.rekey(new_password, params, progress).await?;
        Ok((Vault::serve(engine), report))
    }

    /// Abandons a re-key that did not finish: the era takes writes again.
    pub async fn abort_rekey(&self) -> Result<()> {
        self.run_write(Box::new(|e| Box::pin(async move { e.abort_rekey().await }))).await
    }

    /// The vault's objects in an archive, after proving its chains whole (audited).
    pub async fn export(&self) -> Result<Vec<u8>> {
        self.run(Box::new(|e| Box::pin(async move { crate::archive::export_engine(e).await }))).await
    }
}

/// Wipes what a handle whose engine is gone still holds (the audit chain key, the view's epoch
/// keys and index) when dropped: after a re-key, even one whose future was dropped half-way.
struct SealOnDrop(Arc<Service>);

impl Drop for SealOnDrop {
    fn drop(&mut self) {
        self.0.view.clear();
        if let Ok(mut lane) = self.0.lane.try_lock() {
            lane.close();
        } else {
            // An audit append in flight holds the lane: close it once that is done.
            let svc = self.0.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move { svc.lane.lock().await.close() });
            }
        }
    }
}

/// One of the small shared states (the waiting writes and read records, the newest check begun),
/// poisoned or not: each is changed in one step (pushed to, taken whole, or one number set), so a
/// panic while one was held cannot leave it half-changed.
fn lock_queue<T>(queue: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A copy of a password for a task of its own (wiped on drop like the original).
fn copy_password(password: &Password) -> Password {
    Password::from(secrecy::ExposeSecret::expose_secret(password).to_string())
}

/// Commits waiting writes in as few commits as possible: consecutive requests with the same audit
/// operation and no path in common share one commit (all or none), each request's audit records
/// naming its own actor. If a shared commit is refused as invalid, each of its requests runs on
/// its own, so one bad request fails alone with exactly the error it would have had; any other
/// failure is every request's answer (running them again could write twice what may have landed).
async fn group_commit(engine: &mut Engine, batch: Vec<PendingWrite>) {
    // Requests of one operation share a commit, up to GROUP_MAX_ITEMS; several requests for one
    // path get one version after the other in it.
    let mut groups: Vec<Vec<PendingWrite>> = Vec::new();
    let mut items = 0;
    for pending in batch {
        let fits = groups
            .last()
            .is_some_and(|g| g[0].op == pending.op && items + pending.items.len() <= GROUP_MAX_ITEMS);
        if !fits {
            groups.push(Vec::new());
            items = 0;
        }
        items += pending.items.len();
        if let Some(group) = groups.last_mut() {
            group.push(pending);
        }
    }
    for group in groups {
        if group.len() == 1 || group.iter().any(|p| has_duplicates(&p.items)) {
            for p in group {
                let result = write_one(engine, &p).await;
                let _ = p.reply.send(result);
            }
            continue;
        }
        let borrowed: Vec<(&SecretPath, &[u8])> =
            group.iter().flat_map(|p| p.items.iter().map(|(k, v)| (k, v.as_slice()))).collect();
        let runs: Vec<(usize, &str)> = group.iter().map(|p| (p.items.len(), &*p.actor)).collect();
        // Each request's audit records name its own actor; the shared commit names them all.
        engine.act_for(&group_actor(&runs));
        match engine.put_as(group[0].op, &borrowed, &runs, None).await {
            Ok(versions) => {
                let mut versions = versions.into_iter();
                for p in group {
                    let mine: Vec<u64> = versions.by_ref().take(p.items.len()).collect();
                    let _ = p.reply.send(Ok(mine));
                }
            }
            // Refused before anything was written (a bad path or value in one of the requests):
            // each on its own, so only the bad one fails.
            Err(e) if e.category() == Category::Invalid => {
                for p in group {
                    let result = write_one(engine, &p).await;
                    let _ = p.reply.send(result);
                }
            }
            Err(e) => {
                for p in group {
                    let _ = p.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// One waiting write on its own.
async fn write_one(engine: &mut Engine, p: &PendingWrite) -> Result<Vec<u64>> {
    engine.act_for(&p.actor);
    let borrowed: Vec<(&SecretPath, &[u8])> = p.items.iter().map(|(k, v)| (k, v.as_slice())).collect();
    engine.set_many(p.op, &borrowed).await
}

/// The actor a group commit names: the one actor of every request, or the distinct ones (the
/// first eight, then how many more).
fn group_actor(runs: &[(usize, &str)]) -> String {
    let mut actors: Vec<&str> = Vec::new();
    for (_, actor) in runs {
        if !actors.contains(actor) {
            actors.push(actor);
        }
    }
    match actors.as_slice() {
        [one] => one.to_string(),
        many if many.len() <= 8 => format!("group commit: {}", many.join("; ")),
        many => format!("group commit: {}; and {} more", many[..8].join("; "), many.len() - 8),
    }
}

fn has_duplicates(items: &[(SecretPath, Zeroizing<Vec<u8>>)]) -> bool {
    let mut seen = std::collections::HashSet::new();
    !items.iter().all(|(p, _)| seen.insert(p.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new vault in memory (its trust state in the directory returned, kept alive by the caller).
    async fn memory_vault(location: &str) -> (tempfile::TempDir, Vault) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::from_object_store(Arc::new(object_store::memory::InMemory::new()), None, location);
        let mut opts = Options::new(dir.path(), "test");
        opts.kdf = KdfParams::MINIMUM;
        let v = Vault::init(store, &Password::from("a long enough test password".to_string()), opts)
            .await
            .unwrap();
        (dir, v)
    }

    /// Regression: a read's audit task dropped before its first poll (its runtime shutting
    /// down) left the "task on its way" flag set, and every later read waited for ever.
    #[test]
    fn regression_an_audit_task_dropped_before_its_first_poll_left_every_later_read_waiting() {
        let main =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let (_dir, v) = main.block_on(async {
            let (dir, v) = memory_vault("memory://unpolled").await;
            v.set("app/a", b"one").await.unwrap();
            (dir, v)
        });
        let doomed = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        {
            let _inside = doomed.enter();
            let mut read = Box::pin(v.get("app/a", None));
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            assert!(read.as_mut().poll(&mut cx).is_pending());
            assert!(v.svc.audit_flusher.load(Ordering::SeqCst), "the read's audit task is on its way");
        }
        // Shut down with that task never polled: it is dropped.
        drop(doomed);
        assert!(!v.svc.audit_flusher.load(Ordering::SeqCst));
        let later = main
            .block_on(async { tokio::time::timeout(Duration::from_secs(10), v.get("app/a", None)).await });
        assert_eq!(later.expect("a later read ended").unwrap().as_slice(), b"one");
    }

    /// Freshness checks that end badly (a read dropped at an await, a failed probe) hand over:
    /// reads waiting for them begin their own instead of waiting for ever, and the count of
    /// checks under way comes back down.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_waiting_for_a_check_that_ended_badly_check_themselves() {
        let (_dir, v) = memory_vault("memory://checks").await;
        v.set("app/a", b"one").await.unwrap();
        // Two checks under way (the most at once) that claim to answer for every read to come.
        {
            let mut probes = lock_queue(&v.svc.probes);
            probes.started = u64::MAX;
            probes.under_way = PROBES_AT_ONCE;
        }
        let (first, second) = (Check { svc: &v.svc, good: false }, Check { svc: &v.svc, good: false });
        let reader = v.clone();
        let read = tokio::spawn(async move { reader.get("app/a", None).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!read.is_finished(), "the read waits for the checks under way");
        drop((first, second));
        let value = tokio::time::timeout(Duration::from_secs(10), read).await.unwrap().unwrap().unwrap();
        assert_eq!(value.as_slice(), b"one");
        let probes = lock_queue(&v.svc.probes);
        assert_eq!(probes.under_way, 0);
        assert!(v.svc.checked.load(Ordering::SeqCst) >= 1);
    }

    /// The lane's writer waits for a read under way: its record joins the entry of a read that
    /// queued just before it (without the wait, each read got an entry of its own, one behind
    /// the other). A read that ends without a record releases the wait as well.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_lane_waits_for_a_read_under_way() {
        let (_dir, v) = memory_vault("memory://sibling").await;
        let entries = || async { v.status().await.unwrap().audit_records };
        let read = |path: &'static str, sibling: &'static str| {
            let v = v.with_actor(sibling);
            async move {
                let sibling = Sibling::begin(&v.svc);
                v.audit_read(&sibling, AuditOp::Get, Some(path), Outcome::Ok, None).await.unwrap();
            }
        };
        for _ in 0..3 {
            let before = entries().await;
            let under_way = Sibling::begin(&v.svc);
            let late = async {
                // Past its freshness check and its blob read, about to queue its record.
                std::thread::sleep(std::time::Duration::from_micros(100));
                v.audit_read(&under_way, AuditOp::Get, Some("app/b"), Outcome::Ok, None).await.unwrap();
            };
            tokio::join!(read("app/a", "first"), late);
            // One entry for both reads (and one for the status call).
            assert_eq!(entries().await - before, 2);
        }
        // A read that fails before its record (dropped here) does not hold the lane up for long.
        let gone = Sibling::begin(&v.svc);
        let started = std::time::Instant::now();
        read("app/c", "alone").await;
        drop(gone);
        // Bounded by the sibling wait (a timer tick or two), not by the dropped read.
        assert!(started.elapsed() < std::time::Duration::from_millis(200), "{:?}", started.elapsed());
    }

    #[test]
    fn a_group_commit_names_every_actor_once() {
        assert_eq!(group_actor(&[(2, "a"), (1, "a")]), "a");
        assert_eq!(group_actor(&[(1, "a"), (3, "b"), (1, "a")]), "group commit: a; b");
        let many: Vec<String> = (0..11).map(|i| format!("pid={i}")).collect();
        let runs: Vec<(usize, &str)> = many.iter().map(|a| (1, a.as_str())).collect();
        let named = group_actor(&runs);
        assert!(
            named.starts_with("group commit: pid=0; pid=1;") && named.ends_with("pid=7; and 3 more"),
            "{named}"
        );
    }
}
