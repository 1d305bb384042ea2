//! The vault's engine and its public types: opening (init, unlock, the trust pins), the shared
//! constants and free helpers of the files below, and the `Vault` handle they serve.
//!
//! Jobs live in their own files: `service` (the shared handle), `view` (what reads need), `audit`
//! (the audit lane), `log` (the commit log), `values` (sealing, get, set, rm), `snapshots`,
//! `keyslots` (key file changes), `verify`, `gc`, `epochs`, `keys` (phrase, identities, transit),
//! `rekey`. Every operation appends an audit record first; reads return nothing unless their
//! record was written. Writes go blob → audit record → commit, and a commit is created only if
//! absent, so concurrent writers (processes, agents) are linearized by the store.

use crate::chain::{Chain, GENESIS, Link, LogKind};
use crate::error::{Error, ObjectKind, Result};
use crate::fingerprint::Fingerprint;
use crate::keyfile::{KeyFile, SlotOpen, check_password_rules};
use crate::keyring::Keyring;
use crate::layout::{self, AuditLane, parse_seq};
use crate::model::{AuditAnchor, AuditOp, AuditRecord, BlobRef, Op, Outcome, now_ms};
use crate::roles::{EpochKey, RootKey, ShieldKey, SnapshotKey};
use crate::snapshot;
use crate::store::{Created, Durability, Store};
use crate::trust::{LocationPin, TrustState, TrustStore};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tresor_crypto::envelope::Context;
use tresor_crypto::wrap::wrap_key;
use tresor_crypto::{KdfParams, Key, Password, Purpose, SecretBytes, derive_key};

mod apply;
mod audit;
mod epochs;
mod gc;
mod keys;
mod keyslots;
mod log;
mod rekey;
mod retire;
mod service;
mod snapshots;
mod values;
mod verify;
mod view;
pub use crate::versions::Residue;
pub use apply::Change;
pub use epochs::{DestroyReport, EpochList, EpochView, ReencryptReport, RotateReport};
pub use keys::{DerivedIdentity, PrivateNode};
pub use rekey::RekeyReport;
pub use retire::DestroyVersionsReport;
pub use service::{SystemEntry, Vault};
pub use values::Cas;

/// Default limit on a secret value's size.
pub const DEFAULT_MAX_VALUE: usize = 1 << 20;

/// The shortest automatic rotation period the CLI, the agent and the server accept (Vault's
/// minimum for transit's `auto_rotate_period`): a shorter one would start an epoch for nearly
/// every write. [`Vault::set_rotation_policy`] itself takes any period above zero, so that tests
/// need not wait an hour.
pub const MIN_ROTATION_PERIOD: std::time::Duration = std::time::Duration::from_secs(3600);

/// The longest automatic rotation period accepted (100 years): a longer one is no rotation, and
/// its due time would pass what a timestamp in milliseconds holds (found by review: a period of
/// 2^64 − 1 seconds was taken and shown in other units).
pub const MAX_ROTATION_PERIOD: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 86_400);

/// Refuses an automatic rotation period below [`MIN_ROTATION_PERIOD`] or above
/// [`MAX_ROTATION_PERIOD`], saying the bound.
pub fn check_rotation_period(every: std::time::Duration) -> Result<()> {
    if every > MAX_ROTATION_PERIOD {
        return Err(Error::Invalid(format!(
            "a rotation period must be at most {}d (100 years); for none, turn automatic rotation off",
            MAX_ROTATION_PERIOD.as_secs() / 86_400
        )));
    }
    if every < MIN_ROTATION_PERIOD {
        return Err(Error::Invalid(format!(
            "a rotation period must be at least {}s (1h); {}s would start a new epoch for nearly every write",
            MIN_ROTATION_PERIOD.as_secs(),
            every.as_secs()
        )));
    }
    Ok(())
}
/// A writer that keeps losing races for the next commit or audit record retries at least this
/// many times, and for at least [`RETRY_FOR`] (a slow shared store with several busy writers).
const MAX_RETRIES: usize = 64;
/// See [`MAX_RETRIES`].
const RETRY_FOR: Duration = Duration::from_secs(60);
/// Writes of more secrets than this make their blobs and audit records durable all at once.
const SMALL_WRITE: usize = 4;
/// Paths named by one audit record of a big write (a record stays far below its size limit).
const AUDIT_PATHS_PER_RECORD: usize = 256;
/// The epoch a new vault starts in.
const FIRST_EPOCH: u32 = 1;
/// Plaintext bytes sealed into one blob object, at most (a single larger value gets its own).
pub const PACK_TARGET: usize = 8 << 20;
/// Concurrent reads when replaying a log.
const READ_AHEAD: usize = 32;
/// A snapshot is written once this many commits follow the newest one...
const SNAPSHOT_COMMITS: u64 = 1024;
/// ... or once the ops after it reach an eighth of the index, and at least this many.
const SNAPSHOT_MIN_OPS: u64 = 10_000;

/// Most unreadable audit records past the pin an unlock removes as torn by a power failure. Each
/// process of a machine (agent, server, CLI) appends to the machine's lane and leaves fewer than
/// 2 × `PIN_EVERY` entries unpinned: room for several at once.
const MAX_TORN_RECORDS: u64 = 1024;

/// How a vault is opened.
pub struct Options {
    /// Machine-local trust state.
    pub trust: TrustStore,
    /// Who is acting, for audit records and commits.
    pub actor: String,
    /// Largest value accepted, in bytes.
    pub max_value: usize,
    /// KDF parameters for new password slots (`init`, `passwd`).
    pub kdf: KdfParams,
    /// Write an index snapshot after every this many commits (default: after 1,024 commits, or
    /// once the ops since the last snapshot reach an eighth of the index).
    pub snapshot_every: Option<u64>,
    /// Most values per re-encryption batch, each batch one commit (default 16,384; batches also
    /// stop at 32 MiB). Smaller batches make more, smaller commits.
    pub reseal_batch: usize,
    /// The fingerprint the caller expects (`tresor trust` before first use, or
    /// `TRESOR_VAULT_FINGERPRINT`): a root without it opens nothing, as a wrong password.
    pub expect_fingerprint: Option<Fingerprint>,
    /// How long after its last write an interrupted re-key is taken over or aborted by another
    /// run (default 15 minutes: it may still be running elsewhere); zero with `--force`.
    pub rekey_lease: Duration,
    /// How old the view a read is served from may be (default zero: every read first checks the
    /// store for newer commits). With a bound, a read reflects every commit made at least that
    /// long before it (and every commit of this handle at once); [`Vault::fresh_to`] gives a
    /// caller read-your-writes across handles. Servers behind a load balancer use it.
    pub read_staleness: Duration,
}

impl Options {
    /// Defaults with trust state in `trust_dir`.
    pub fn new(trust_dir: impl Into<std::path::PathBuf>, actor: impl Into<String>) -> Options {
        Options {
            trust: TrustStore::new(trust_dir),
            actor: actor.into(),
            max_value: DEFAULT_MAX_VALUE,
            kdf: KdfParams::DEFAULT,
            snapshot_every: None,
            reseal_batch: epochs::RESEAL_BATCH,
            expect_fingerprint: None,
            rekey_lease: Duration::from_secs(15 * 60),
            read_staleness: Duration::ZERO,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Head {
    seq: u64,
    link: Link,
}

const EMPTY: Head = Head { seq: 0, link: GENESIS };

/// What opens a vault.
enum Opener<'a> {
    /// A password, through the key file's password slots.
    Password(&'a Password),
    /// The root secret itself, from the recovery phrase.
    Root(RootKey),
    /// The unseal key, through the key file's unseal-key slot.
    UnsealKey(&'a Key),
}

/// What opens a new vault: a password slot, or an unseal-key slot.
enum FirstSlot<'a> {
    Password(&'a Password),
    UnsealKey(&'a Key),
}

/// One slot of the key file, for `tresor keyslot list`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeySlotView {
    /// Its index (what `keyslot remove` takes).
    pub index: usize,
    /// What opens it: `password` (or `reserved`).
    pub kind: String,
    /// Its key derivation function and parameters.
    pub kdf: String,
    /// Whether it opened this session.
    pub this_session: bool,
}

/// A summary for `tresor status`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    /// The vault id (hex).
    pub vault_id: String,
    /// Where it is.
    pub location: String,
    /// The AEAD at rest.
    pub cipher: String,
    /// The KDF of the slot that opened it, e.g. `argon2id m=65536 t=3 p=4`.
    pub kdf: String,
    /// Live secrets.
    pub secrets: usize,
    /// Commits in the log.
    pub commits: u64,
    /// Entries in this machine's lane of the audit trail.
    pub audit_records: u64,
    /// This machine's lane of the audit trail: `main` or its id.
    #[serde(default)]
    pub audit_lane: String,
    /// Key file generation.
    pub keyfile_generation: u64,
    /// The epoch new values are sealed in.
    pub epoch: u32,
    /// The commit of the newest index snapshot this handle knows (0: none).
    pub snapshot: u64,
    /// When and why the last automatic epoch rotation failed, if it did.
    #[serde(default)]
    pub rotation_failure: Option<String>,
    /// The vault fingerprint (compare it between machines; `tresor trust` pins it).
    #[serde(default)]
    pub fingerprint: String,
    /// The root era (1 until the vault is re-keyed).
    #[serde(default)]
    pub era: u32,
}

/// One line of `tresor list -l`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ListEntry {
    /// The secret's path.
    pub path: String,
    /// Its current version.
    pub version: u64,
    /// Its size in bytes.
    pub size: u64,
    /// When the current version was written (ms since the Unix epoch).
    pub updated_ms: u64,
}

/// One line of `tresor history`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The version number.
    pub version: u64,
    /// Its size in bytes.
    pub size: u64,
    /// When it was written.
    pub created_ms: u64,
    /// When it was deleted, if it was.
    pub deleted_ms: Option<u64>,
    /// Whether its value was destroyed (taken out of the store; the version is kept as a fact).
    #[serde(default)]
    pub destroyed: bool,
    /// Whether it is what `get` returns.
    pub current: bool,
}

/// What `tresor audit verify` proved.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Commits checked.
    pub commits: u64,
    /// Audit entries checked, in every lane.
    pub audit_records: u64,
    /// Lanes of the audit trail checked (the main lane and one per machine that appended).
    #[serde(default)]
    pub audit_lanes: u64,
    /// Entries at the end of lanes that did not authenticate: what a power failure leaves of a
    /// machine's unsynced entries until that machine unlocks again (beyond every anchor and pin).
    #[serde(default)]
    pub torn_audit_entries: u64,
    /// Anchors of the audit trail found in the commit log, all matching.
    pub anchors: u64,
    /// The commit of the newest snapshot, which matched the log replayed up to it (0: none).
    pub snapshot: u64,
    /// Versions of secrets whose sealed values were read and authenticated.
    #[serde(default)]
    pub values: u64,
    /// Value blob objects read.
    #[serde(default)]
    pub blobs: u64,
    /// Versions whose value is missing or does not authenticate (empty: every value is whole).
    #[serde(default)]
    pub damaged: Vec<Damaged>,
}

/// One version of a secret whose sealed value `audit verify` could not authenticate.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Damaged {
    /// The secret's path.
    pub path: String,
    /// The version.
    pub version: u64,
    /// The value blob object that should hold it.
    pub object: String,
    /// What is wrong.
    pub detail: String,
}

/// How long reading and opening the newest snapshot took ([`Vault::measure_snapshot`]).
#[derive(Clone, Debug)]
pub struct SnapshotTiming {
    /// The commit it was taken at.
    pub seq: u64,
    /// Its parts.
    pub parts: u32,
    /// Its size in the store.
    pub bytes: u64,
    /// Entries it holds.
    pub entries: u64,
    /// Reading every part.
    pub read: Duration,
    /// Decrypting, decoding and indexing every part.
    pub open: Duration,
}

/// What `tresor gc` removed (or, in a dry run, would remove).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct GcReport {
    /// Whether anything was actually removed.
    pub dry_run: bool,
    /// The snapshot kept (the newest; written by this run if the log had moved on).
    pub snapshot: u64,
    /// Superseded or abandoned snapshot parts.
    pub snapshot_parts: usize,
    /// Value blobs no commit references (left by writes that failed or lost a race).
    pub orphan_blobs: usize,
    /// Unreferenced blobs younger than the grace period, kept: a writer may be about to commit them.
    pub young_blobs: usize,
    /// Key file generations older than the current one (left by an interrupted password change).
    pub old_keyfiles: usize,
    /// Leftovers of interrupted store probes.
    pub probes: usize,
    /// Wrapped keys of epochs no commit started (a rotation that crashed or lost a race).
    pub orphan_epoch_keys: usize,
    /// Objects of destroyed epochs (a destruction that was interrupted before deleting them).
    pub destroyed_epoch_objects: usize,
    /// Staging files of local writes a crash interrupted.
    #[serde(default)]
    pub staging_files: usize,
    /// Objects of older root eras (a re-key interrupted after its switch), deleted.
    #[serde(default)]
    pub older_era_objects: u64,
    /// Entries that are not tresor objects (links, FIFOs, unexpected names): left alone, listed
    /// by `tresor doctor`.
    #[serde(default)]
    pub foreign: usize,
    /// Bytes of everything removed.
    pub bytes: u64,
}

struct Keys {
    root: RootKey,
    commit: Chain,
    audit: Chain,
    shield: ShieldKey,
    snapshot: SnapshotKey,
}

/// An unlocked vault.
pub(crate) struct Engine {
    store: Store,
    vault_id: [u8; 16],
    keys: Keys,
    /// The index, the epoch keys unwrapped so far (a destroyed epoch's is dropped as soon as
    /// its commit is seen) and the queue of values to re-seal, shared with the read path.
    view: Arc<view::View>,
    keyring: Keyring,
    /// A bulk operation (re-encryption) is under way: it snapshots once, at its end.
    defer_snapshots: bool,
    keyfile: KeyFile,
    keyfile_hash: [u8; 32],
    /// Key file generation and hash as the commit log records them.
    logged_keyfile: (u64, Option<[u8; 32]>),
    kdf: KdfParams,
    log: Head,
    /// The head of the audit trail, shared with the read path (which appends batches of records
    /// without taking the engine).
    lane: Arc<tokio::sync::Mutex<audit::Lane>>,
    last_anchor: Option<AuditAnchor>,
    /// The newest anchor of each named audit lane in the commits replayed since the snapshot
    /// this handle opened from (snapshots carry the main lane's only).
    lane_anchors: std::collections::HashMap<[u8; 8], AuditAnchor>,
    /// The commit of the newest snapshot this handle read or wrote (pinned in the trust state).
    snapshot_seq: u64,
    /// The newest snapshot known to exist (≥ `snapshot_seq`; another writer's, not read), the
    /// commits applied after it with their op counts, and the sum of those: when a snapshot is due.
    snapshot_base: u64,
    ops_after_base: std::collections::VecDeque<(u64, u64)>,
    ops_since_snapshot: u64,
    opts: Options,
    failed_attempts: Vec<u64>,
    /// Blobs written without fsync and not yet made durable (a big write's, before its commit):
    /// never referenced by a commit before [`Store::sync`] has made them durable. The audit
    /// lane keeps its own list.
    unsynced: Vec<String>,
    /// The password slot that opened this handle (`None` once that slot was removed).
    slot: Option<usize>,
    /// The SLIP-0010 master node of the recovery phrase's BIP39 seed, the root of derived
    /// identities: computed on first use (the seed itself is wiped at once), held in locked pages,
    /// wiped on drop (lock).
    master: Option<tresor_crypto::slip10::Ed25519Node>,
    /// The key file change this handle is committing, (generation, hash), and whether the commit
    /// log recorded it meanwhile (another writer adopted it, perhaps building on it).
    pending_keyfile: Option<((u64, [u8; 32]), bool)>,
    /// When and why the last automatic rotation failed (cleared by the next one that succeeds).
    rotation_failure: Option<String>,
    /// The fingerprint of the root this handle holds.
    fingerprint: Fingerprint,
    /// Whether this unlock pinned the vault at its location on first use (said once).
    first_use: bool,
    /// The location as the user named it (the store of root era 1); `store` is the current
    /// era's (the same for era 1).
    base: Store,
    /// The current root era.
    era: u32,
    /// The trust-state pin of the last commit, written after the commit was acknowledged
    /// ([`Engine::pin_after_commit`]); settled before the next pin, at lock and on drop.
    pending_pin: Option<PendingPin>,
}

/// A trust-state pin being written on a blocking thread: its task (awaited by async code) and a
/// signal sent when it ends (waited for on drop, where no runtime may be polled).
struct PendingPin {
    task: tokio::task::JoinHandle<Result<()>>,
    /// In a mutex only so that the engine stays `Sync` (a receiver is not).
    done: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl Drop for Engine {
    /// Pins the newest audit head (without fsync) so that a store dropping the records of this
    /// session's reads is caught at the next unlock. The keys are wiped by their own drops.
    fn drop(&mut self) {
        // Its fsyncs must not stall an async worker: on a multi-threaded runtime the worker
        // hands its other tasks on first (a current-thread runtime has no other worker to ask).
        let on_worker = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let pending = self.pending_pin.take();
        let finish = || {
            // The pin of the last commit runs on a blocking thread of its own: waited for here
            // without polling a runtime (it needs none to finish).
            if let Some(pin) = pending {
                // An error means the task ended (or never ran): nothing left to wait for.
                if let Ok(done) = pin.done.into_inner() {
                    let _ = done.recv();
                }
            }
            let _ = self.save_trust_blocking();
        };
        if on_worker {
            tokio::task::block_in_place(finish);
        } else {
            finish();
        }
    }
}

fn epoch_aad(vault_id: &[u8; 16], epoch: u32) -> Vec<u8> {
    [b"tresor/v1/epoch-key".as_slice(), vault_id, &epoch.to_be_bytes()].concat()
}

/// Creates `name`; a store error after which the object holds exactly our bytes (a write that
/// landed before its acknowledgement was lost) counts as success. `false`: someone else won.
async fn create_idempotent(store: &Store, name: &str, bytes: &[u8], durability: Durability) -> Result<bool> {
    create_idempotent_owned(store, name, Bytes::copy_from_slice(bytes), durability).await
}

/// [`create_idempotent`] with bytes the caller gives up (no copy of a big object).
async fn create_idempotent_owned(
    store: &Store,
    name: &str,
    bytes: Bytes,
    durability: Durability,
) -> Result<bool> {
    create_checked(store, name, bytes, durability).await.map_err(|e| match e {
        Error::Indeterminate(e) => *e,
        e => e,
    })
}

/// [`create_idempotent_owned`] for an object whose creation *is* the effect (a commit): a
/// failure after which the object could not be read back, or after which the write may still
/// land ([`Store::may_land_later`]), is [`Error::Indeterminate`]; every other error means it was
/// not created.
async fn create_checked(store: &Store, name: &str, bytes: Bytes, durability: Durability) -> Result<bool> {
    match store.create_with(name, bytes.clone(), durability).await {
        Ok(Created::Yes) => Ok(true),
        // Something is there: ours (a backend that retried internally) or, far more often,
        // another writer's that won the race. Asked a few times; reads that keep failing leave
        // it unknown.
        Ok(Created::AlreadyExists) => {
            let mut failed = None;
            for attempt in 0..3 {
                match store.get(name).await {
                    Ok(found) => return Ok(found.is_some_and(|b| b == bytes)),
                    Err(e) => failed = Some(e),
                }
                backoff(attempt + 4).await;
            }
            Err(Error::Indeterminate(Box::new(failed.unwrap_or_else(|| Error::store("unreadable")))))
        }
        Err(e) => {
            // Did it land? Asked a few times: the store that just failed may fail a read too.
            for attempt in 0..3 {
                match store.get(name).await {
                    Ok(Some(b)) => return if b == bytes { Ok(true) } else { Err(e) },
                    Ok(None) if store.may_land_later(&e) => return Err(Error::Indeterminate(Box::new(e))),
                    Ok(None) => return Err(e),
                    Err(_) => backoff(attempt + 4).await,
                }
            }
            Err(Error::Indeterminate(Box::new(e)))
        }
    }
}

/// A password check prepared by the engine and run without it ([`Engine::password_check`]).
pub(crate) struct PasswordCheck {
    keyfile: KeyFile,
    pinned: Option<KdfParams>,
    fingerprint: Fingerprint,
    vault_id: [u8; 16],
    /// Where a failed attempt is recorded (shown and sealed at the next unlock).
    trust: TrustStore,
    location: String,
}

impl PasswordCheck {
    /// Whether `password` opens a slot of the key file to this vault's root (blocking: the key
    /// derivation runs here).
    pub(crate) fn opens(&self, password: &Password) -> bool {
        let (fingerprint, vault_id) = (self.fingerprint, self.vault_id);
        matches!(
            self.keyfile
                .open_slot(password, self.pinned.as_ref(), &|root| fingerprint.matches(root, &vault_id)),
            SlotOpen::Opened(..)
        )
    }

    /// Records a failed attempt in the trust state (blocking: a file write).
    pub(crate) fn record_failure(&self) -> Result<()> {
        self.trust.record_failed_attempt(&self.vault_id, &self.location, now_ms())
    }
}

/// Blob objects and the references of the values sealed into them: `(name, bytes)` and, per
/// value in order, its slot.
pub(crate) type Packs = (Vec<(String, Vec<u8>)>, Vec<BlobRef>);

/// The associated data of a value's envelope: its blob object's name, epoch and slot.
fn blob_ctx<'a>(vault_id: &'a [u8; 16], name: &'a str, epoch: u32, slot: &'a [u8; 4]) -> Context<'a> {
    Context { vault_id, role: "blob", object: name, epoch, extra: slot }
}

/// New blob objects' names, and each item's (object, slot) in them.
pub(crate) type PackPlan = (Vec<String>, Vec<(usize, u32)>);

/// Lays out items of the given lengths, in order, in new blob objects of `epoch`, several to an
/// object until it holds [`PACK_TARGET`] bytes (a larger item gets one of its own): the objects'
/// names, and each item's (object, slot).
pub(crate) fn plan_packs(epoch: u32, lens: impl IntoIterator<Item = usize>) -> Result<PackPlan> {
    let mut names: Vec<String> = Vec::new();
    let mut places: Vec<(usize, u32)> = Vec::new();
    let mut filled = 0usize;
    for len in lens {
        let slot = match places.last() {
            Some((_, slot)) if filled + len <= PACK_TARGET => slot + 1,
            _ => 0,
        };
        if slot == 0 {
            names.push(layout::blob(epoch, &tresor_crypto::random_array::<16>()?));
            filled = 0;
        }
        filled += len;
        places.push((names.len() - 1, slot));
    }
    Ok((names, places))
}

/// Seals `values` under `key` into new blob objects of `epoch`, in order, several to an object
/// until it holds [`PACK_TARGET`] plaintext bytes (on every core for big batches).
pub(crate) fn seal_packs(key: &EpochKey, vault_id: &[u8; 16], epoch: u32, values: &[&[u8]]) -> Result<Packs> {
    let (names, places) = plan_packs(epoch, values.iter().map(|v| v.len()))?;
    let jobs: Vec<(usize, u32, &[u8])> =
        places.into_iter().zip(values).map(|((pack, slot), value)| (pack, slot, *value)).collect();
    let bytes = values.iter().map(|v| v.len()).sum();
    let sealed = snapshot::on_every_core(&jobs, bytes, |(pack, slot, value)| {
        let slot = slot.to_be_bytes();
        Ok(tresor_crypto::seal(key.key(), &blob_ctx(vault_id, &names[*pack], epoch, &slot), value)?)
    })?;
    let mut objects: Vec<(String, Vec<u8>)> = names.iter().map(|n| (n.clone(), Vec::new())).collect();
    let mut refs = Vec::with_capacity(values.len());
    for ((pack, slot, value), envelope) in jobs.iter().zip(sealed) {
        let (name, bytes) = &mut objects[*pack];
        let len = u32::try_from(envelope.len())
            .map_err(|_| Error::Invalid(format!("a value too large for {name}")))?;
        refs.push(BlobRef {
            epoch,
            id: layout::parse_blob(name).map_or([0; 16], |(_, id)| id),
            size: value.len() as u64,
            slot: *slot,
            offset: bytes.len() as u64,
            len,
        });
        bytes.extend_from_slice(&envelope);
    }
    Ok((objects, refs))
}

/// The bytes of `blob`'s envelope in its whole blob object (empty if the object is too short).
fn slice_of<'a>(object: &'a [u8], blob: &BlobRef) -> &'a [u8] {
    let start = usize::try_from(blob.offset).unwrap_or(usize::MAX);
    let end = start.saturating_add(blob.len as usize);
    object.get(start..end).unwrap_or_default()
}

/// Opens the envelope of `blob` (read from the object `name`): its authenticated value.
fn open_slot(
    key: &EpochKey,
    vault_id: &[u8; 16],
    name: &str,
    blob: &BlobRef,
    envelope: &[u8],
) -> Result<SecretBytes> {
    if envelope.len() != blob.len as usize {
        return Err(Error::integrity(ObjectKind::ValueBlob, name, "is shorter than its commit records"));
    }
    let slot = blob.slot.to_be_bytes();
    let value = tresor_crypto::open(key.key(), &blob_ctx(vault_id, name, blob.epoch, &slot), envelope)
        .map_err(|_| {
            Error::integrity(
                ObjectKind::ValueBlob,
                name,
                "does not authenticate: tampered, or moved from another name",
            )
        })?;
    if value.len() as u64 != blob.size {
        return Err(Error::integrity(
            ObjectKind::ValueBlob,
            name,
            "has a different size than its commit records",
        ));
    }
    Ok(value)
}

/// After losing a race for the next entry of a log: a random pause, growing with the attempts, so
/// that writers contending for the head do not keep colliding.
async fn backoff(attempt: usize) {
    let ceiling_us = 200u64 << attempt.min(7);
    let jitter = tresor_crypto::random_array::<8>().map(u64::from_le_bytes).unwrap_or(0);
    tokio::time::sleep(Duration::from_micros(jitter % ceiling_us)).await;
}

/// Formats ms since the Unix epoch as RFC 3339 UTC (second precision).
pub fn format_time(ms: u64) -> String {
    // Past what chrono can show (year 262143): the largest time it can.
    let time = i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
    time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

async fn load_keyfile(store: &Store) -> Result<(KeyFile, [u8; 32])> {
    let names = store.list(layout::KEYFILE_DIR).await?;
    let newest = names
        .iter()
        .filter_map(|n| parse_seq(n, layout::KEYFILE_DIR).map(|g| (g, n)))
        .max_by_key(|(g, _)| *g);
    let Some((generation, name)) = newest else {
        let location = store.location().to_string();
        // A vault's objects but no key file: an init that stopped before its last step (nothing
        // of it can ever be opened). Other files: not a vault at all.
        if store.holds_vault_objects().await? {
            return Err(Error::InterruptedInit { location });
        }
        if store.holds_data().await? {
            return Err(Error::NotAVault { location });
        }
        return Err(Error::NoVault { location });
    };
    let bytes = store.get(name).await?.ok_or(Error::AuthFailed)?;
    let kf = KeyFile::parse(&bytes)?;
    if kf.generation != generation {
        return Err(Error::AuthFailed);
    }
    Ok((kf, tresor_crypto::hash(&bytes)))
}

/// What the key file says without a password: for `tresor status` while locked.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LockedInfo {
    /// The vault id (hex).
    pub vault_id: String,
    /// Where it is.
    pub location: String,
    /// Key file generation.
    pub keyfile_generation: u64,
    /// KDF of each password slot.
    pub kdf: Vec<String>,
    /// The current root era (1 until the vault is re-keyed).
    #[serde(default)]
    pub era: u32,
}

/// Reads the key file header of the vault at `store` (no password needed: the header is public).
pub async fn describe_locked(store: &Store) -> Result<LockedInfo> {
    let (era, era_store) = crate::era::current(store).await?;
    let (kf, _) = load_keyfile(&era_store).await?;
    Ok(LockedInfo {
        vault_id: hex::encode(kf.vault_id),
        location: store.location().to_string(),
        era,
        keyfile_generation: kf.generation,
        kdf: kf
            .slots
            .iter()
            .filter(|s| s.kind != crate::keyfile::SlotKind::Empty)
            .map(|s| match s.kind {
                crate::keyfile::SlotKind::UnsealKey => "unseal key (hkdf-sha256)".to_string(),
                _ => format!("argon2id m={} t={} p={}", s.params.m_kib, s.params.t, s.params.p),
            })
            .collect(),
    })
}

impl Engine {
    fn from_root(
        store: Store,
        keyfile: KeyFile,
        keyfile_hash: [u8; 32],
        root: RootKey,
        kdf: KdfParams,
        opts: Options,
    ) -> Engine {
        let vault_id = keyfile.vault_id;
        let store_for_base = store.clone();
        let root_for_fingerprint = &root;
        let fingerprint = Fingerprint::of(root_for_fingerprint, &vault_id);
        let lane = audit::Lane::new(
            Chain::new(LogKind::Audit(AuditLane::Main), &root, vault_id),
            store.clone(),
            opts.trust.clone(),
            vault_id,
        );
        let keys = Keys {
            commit: Chain::new(LogKind::Commit, &root, vault_id),
            audit: Chain::new(LogKind::Audit(AuditLane::Main), &root, vault_id),
            shield: ShieldKey::from_key(derive_key(root.key(), &vault_id, Purpose::Shield)),
            snapshot: SnapshotKey::from_key(derive_key(root.key(), &vault_id, Purpose::SnapshotSeal)),
            root,
        };
        Engine {
            store,
            vault_id,
            keys,
            view: Arc::default(),
            keyring: Keyring::default(),
            defer_snapshots: false,
            logged_keyfile: (keyfile.generation, Some(keyfile_hash)),
            keyfile,
            keyfile_hash,
            kdf,
            log: EMPTY,
            lane: Arc::new(tokio::sync::Mutex::new(lane)),
            last_anchor: None,
            lane_anchors: std::collections::HashMap::new(),
            snapshot_seq: 0,
            snapshot_base: 0,
            ops_after_base: std::collections::VecDeque::new(),
            ops_since_snapshot: 0,
            opts,
            failed_attempts: Vec::new(),
            unsynced: Vec::new(),
            slot: Some(0),
            master: None,
            pending_keyfile: None,
            rotation_failure: None,
            fingerprint,
            first_use: false,
            base: store_for_base,
            era: 1,
            pending_pin: None,
        }
    }

    /// Creates a vault at an empty location. The password rules are checked before the store is
    /// touched; the store must pass the create-if-absent probe.
    pub async fn init(store: Store, password: &Password, opts: Options) -> Result<Engine> {
        Engine::init_with(store, FirstSlot::Password(password), opts).await
    }

    /// [`Engine::init`] for a vault opened by an unseal key (no password slot until one is added).
    pub async fn init_unseal_key(store: Store, key: &Key, opts: Options) -> Result<Engine> {
        Engine::init_with(store, FirstSlot::UnsealKey(key), opts).await
    }

    async fn init_with(store: Store, first: FirstSlot<'_>, opts: Options) -> Result<Engine> {
        if let FirstSlot::Password(password) = first {
            check_password_rules(password)?;
        }
        opts.kdf.check().map_err(|_| Error::Invalid("KDF parameters out of the accepted range".into()))?;
        let existing = store.list_all().await?;
        if existing.iter().any(|n| n.starts_with("keyfile/")) {
            return Err(Error::VaultExists { location: store.location().to_string() });
        }
        if store.holds_vault_objects().await? {
            return Err(Error::InterruptedInit { location: store.location().to_string() });
        }
        if store.holds_data().await? {
            return Err(Error::NotAVault { location: store.location().to_string() });
        }
        store.probe().await?;
        let vault_id = tresor_crypto::random_array::<16>()?;
        let root = RootKey::generate()?;
        let keyfile = match first {
            FirstSlot::Password(password) => KeyFile::new(vault_id, 1, &root, password, opts.kdf)?,
            FirstSlot::UnsealKey(key) => KeyFile::new_unsealed_by(vault_id, 1, &root, key)?,
        };
        let kf_bytes = keyfile.encode();
        let kf_hash = tresor_crypto::hash(&kf_bytes);
        let kdf = opts.kdf;
        let mut vault = Engine::from_root(store, keyfile, kf_hash, root, kdf, opts);

        let epoch = FIRST_EPOCH;
        let epoch_key = EpochKey::generate()?;
        let wrapped = wrap_key(vault.keys.shield.key(), &epoch_aad(&vault_id, epoch), epoch_key.key())?;
        vault.create_once(&layout::epoch_key(epoch), &wrapped).await?;
        vault.view.insert_epoch(epoch, Arc::new(epoch_key));
        vault.audit_append(AuditOp::Init, None, Outcome::Ok, None, Durability::Sync).await?;
        vault
            .commit(|_, _| {
                Ok(vec![
                    Op::Genesis { epoch, keyfile_generation: 1 },
                    Op::KeyFile { generation: 1, hash: kf_hash },
                ])
            })
            .await?;
        // The key file last: until it exists there is no vault here, only debris `init` refuses.
        vault.create_once(&layout::keyfile(1), &kf_bytes).await?;
        vault.save_trust().await?;
        // This machine made the vault: it is the one at this location, whatever was pinned here.
        let pin = LocationPin {
            vault_id: hex::encode(vault_id),
            fingerprint: vault.fingerprint.to_string(),
            pinned_by: "init".into(),
            era: 1,
            pending: None,
        };
        vault.opts.trust.pin_location(vault.base.location(), &pin)?;
        Ok(vault)
    }

    /// Unlocks the vault at `store` with `password`.
    ///
    /// Refuses a store that serves an older or different history than this machine has seen
    /// ([`Error::Rollback`], [`Error::Fork`]), or that fails the create-if-absent probe. A wrong
    /// password is remembered locally and reported — and sealed into the audit trail — at the next
    /// successful unlock.
    pub async fn unlock(store: Store, password: &Password, opts: Options) -> Result<Engine> {
        Engine::open(store, Opener::Password(password), opts).await
    }

    /// Unlocks the vault at `store` with its unseal key (as [`Engine::unlock`] with a password).
    pub async fn unseal(store: Store, key: &Key, opts: Options) -> Result<Engine> {
        Engine::open(store, Opener::UnsealKey(key), opts).await
    }

    async fn open(base: Store, how: Opener<'_>, opts: Options) -> Result<Engine> {
        let (era, store) = crate::era::current(&base).await?;
        let (keyfile, kf_hash) = match load_keyfile(&store).await {
            // Where this machine opened a vault before, a key file gone is not an init that
            // stopped: the store lost or hid it (found by review: the hint said to remove the
            // location, which would have destroyed what a backed-up key file still opens).
            Err(Error::InterruptedInit { location })
                if opts.trust.location_pin(base.location()).ok().flatten().is_some() =>
            {
                return Err(Error::integrity(
                    ObjectKind::KeyFile,
                    &format!("{location}/{}", layout::KEYFILE_DIR),
                    "is missing, where this machine opened a vault before: restore it from a backup \
                     (`tresor export` archives hold it); the other objects are still there",
                ));
            }
            other => other?,
        };
        // Trust state is per root era (its own log starts from nothing); pins are per location.
        let location = store.location().to_string();
        let base_location = base.location().to_string();
        let vault_id = keyfile.vault_id;
        // Which vault this machine knows here (and which root): another one is refused before
        // any password is tried; the root a password unwraps must have the pinned fingerprint.
        let pin = opts.trust.location_pin(&base_location)?;
        // A machine that saw vaults here before pins were kept: another vault id is a swap.
        if pin.is_none() {
            let seen = opts.trust.vaults_seen_at(&base_location)?;
            if let Some(other) = seen.iter().find(|id| **id != vault_id)
                && !seen.contains(&vault_id)
            {
                return Err(Error::VaultChanged {
                    location: base_location,
                    pinned: hex::encode(other),
                    served: hex::encode(vault_id),
                });
            }
        }
        if let Some(pin) = &pin
            && pin.vault_id != hex::encode(vault_id)
        {
            return Err(Error::VaultChanged {
                location: base_location,
                pinned: pin.vault_id.clone(),
                served: hex::encode(vault_id),
            });
        }
        // The root era: an older one than pinned is a rollback; a newer one is trusted only if
        // this machine made it (a re-key it started) or its fingerprint is pinned anew.
        let pinned = match &pin {
            Some(pin) if era < pin.era => {
                return Err(Error::Rollback {
                    kind: ObjectKind::RootEra,
                    seen: u64::from(pin.era),
                    served: u64::from(era),
                });
            }
            Some(pin) if era > pin.era => match &pin.pending {
                Some(p) if p.era == era => Some(p.fingerprint.clone()),
                _ => return Err(Error::Rekeyed { location: base_location, pinned: pin.era, served: era }),
            },
            Some(pin) => Some(pin.fingerprint.clone()),
            None => None,
        };
        let pinned: Option<Fingerprint> = match pinned {
            // An unparsable pin matches no root: nothing opens until the user re-trusts.
            Some(text) => Some(text.parse().map_err(|_| Error::AuthFailed)?),
            None => None,
        };
        let expected = match (pinned, opts.expect_fingerprint) {
            (Some(pinned), Some(wanted)) if pinned != wanted => {
                return Err(Error::VaultChanged {
                    location: base_location,
                    pinned: format!("{} (fingerprint {pinned})", hex::encode(vault_id)),
                    served: format!("the one with fingerprint {wanted} you expect"),
                });
            }
            (Some(pinned), _) => Some(pinned),
            (None, wanted) => wanted,
        };
        let accept = |root: &RootKey| expected.is_none_or(|fp| fp.matches(root, &vault_id));
        let trust = opts.trust.load(&vault_id, &location)?;
        if keyfile.generation < trust.keyfile_generation {
            return Err(Error::Rollback {
                kind: ObjectKind::KeyFile,
                seen: trust.keyfile_generation,
                served: keyfile.generation,
            });
        }
        // A recovery phrase of another vault is refused before anything, the probe too, is written.
        if let Opener::Root(root) = &how
            && !(keyfile.opens_with_root(root) && accept(root))
        {
            // Remembered like a wrong password: the next unlock reports it and audits it.
            opts.trust.record_failed_attempt(&vault_id, &location, now_ms())?;
            return Err(Error::WrongPhrase { location });
        }
        // The create-if-absent probe runs while the key file is opened and the log read (on S3 that
        // saves its four round trips); it has passed before anything is written.
        let probe = store.probe();
        let open = async {
            let pinned = trust.pinned_kdf(keyfile.generation);
            let (root, kdf, slot) = match how {
                Opener::Password(password) => match keyfile.open_slot(password, pinned.as_ref(), &accept) {
                    SlotOpen::Opened(root, kdf, slot) => (root, kdf, Some(slot)),
                    SlotOpen::WrongPassword => {
                        opts.trust.record_failed_attempt(&vault_id, &location, now_ms())?;
                        return Err(Error::AuthFailed);
                    }
                    // No slot the store serves may be tried here: no password was guessed.
                    SlotOpen::Refused => return Err(Error::AuthFailed),
                },
                Opener::UnsealKey(key) => match keyfile.open_with_unseal_key(key, &accept) {
                    SlotOpen::Opened(root, _, slot) => (root, pinned.unwrap_or(opts.kdf), Some(slot)),
                    SlotOpen::WrongPassword => {
                        opts.trust.record_failed_attempt(&vault_id, &location, now_ms())?;
                        return Err(Error::AuthFailed);
                    }
                    SlotOpen::Refused => return Err(Error::AuthFailed),
                },
                // Checked against the key file's MAC and the pin before anything is read or written.
                Opener::Root(root) => (root, pinned.unwrap_or(opts.kdf), None),
            };
            let mut vault = Engine::from_root(store.clone(), keyfile, kf_hash, root, kdf, opts);
            vault.base = base.clone();
            vault.era = era;
            vault.slot = slot;
            vault.logged_keyfile = (0, None);
            vault.open_log(&trust).await?;
            vault.check_keyfile()?;
            // The era is where the store put the objects; the log says which era they are. At
            // the top of a location any era may stand (a re-keyed vault restored from an export,
            // or copied): a pinned machine tells its root by the fingerprint anyway.
            let logged = vault.keyring.root_era.map_or(1, |(era, _)| era);
            if logged != era && era != 1 {
                return Err(Error::integrity(
                    ObjectKind::RootEra,
                    &crate::layout::era_marker(era),
                    format!("holds the objects of root era {logged}"),
                ));
            }
            Ok(vault)
        };
        let (probed, opened) = tokio::join!(probe, open);
        probed?;
        let mut vault = opened?;
        let repaired = vault.find_audit_head(&trust).await?;
        let failed = vault.opts.trust.failed_attempts(&vault.vault_id, &location)?;
        let attempts = failed.first().map(|first| {
            let noun = if failed.len() == 1 { "attempt" } else { "attempts" };
            format!("{} failed {noun} since {}", failed.len(), format_time(*first))
        });
        let notes: Vec<String> = attempts.into_iter().chain(repaired).collect();
        let detail = (!notes.is_empty()).then(|| notes.join("; "));
        let op = if vault.slot.is_some() { AuditOp::Unlock } else { AuditOp::UnlockRecoveryPhrase };
        vault.audit_append(op, None, Outcome::Ok, detail, Durability::Sync).await?;
        if !failed.is_empty() {
            vault.opts.trust.clear_failed_attempts(&vault.vault_id, &location)?;
        }
        vault.failed_attempts = failed;
        vault.adopt_keyfile().await?;
        vault.save_trust().await?;
        match &pin {
            None => vault.pin_location(if expected.is_some() {
                "TRESOR_VAULT_FINGERPRINT"
            } else {
                "first use"
            })?,
            // The re-key this machine started has finished (perhaps in a run that crashed).
            Some(pin) if pin.era < era => {
                vault.opts.trust.pin_location(&base_location, &vault.location_pin("rekey"))?;
            }
            Some(_) => {}
        }
        Ok(vault)
    }

    /// Pins this vault and its fingerprint at its location unless one is pinned already.
    fn pin_location(&mut self, by: &str) -> Result<()> {
        let (_, pinned) =
            self.opts.trust.pin_location_if_absent(self.base.location(), &self.location_pin(by))?;
        self.first_use = pinned && by == "first use";
        Ok(())
    }

    /// The pin of this vault, its root and era at its location.
    fn location_pin(&self, by: &str) -> LocationPin {
        LocationPin {
            vault_id: hex::encode(self.vault_id),
            fingerprint: self.fingerprint.to_string(),
            pinned_by: by.to_string(),
            era: self.era,
            pending: None,
        }
    }

    /// What checking a password against this vault's key file takes, to run without holding the
    /// engine (the key derivation takes about a second).
    pub(crate) async fn password_check(&mut self) -> Result<PasswordCheck> {
        self.keyfile_fresh().await?;
        let pinned =
            self.opts.trust.load(&self.vault_id, self.store.location())?.pinned_kdf(self.keyfile.generation);
        Ok(PasswordCheck {
            keyfile: self.keyfile.clone(),
            pinned,
            fingerprint: self.fingerprint,
            vault_id: self.vault_id,
            trust: self.opts.trust.clone(),
            location: self.store.location().to_string(),
        })
    }

    /// The vault id.
    pub fn vault_id(&self) -> [u8; 16] {
        self.vault_id
    }

    /// Pins what this handle has seen in the trust state. Only durable state is pinned: a pin of a
    /// record that a power failure then loses would be a false alarm at the next unlock. The
    /// trust file is written (and fsynced) on a blocking thread.
    async fn save_trust(&mut self) -> Result<()> {
        let audit = self.durable_audit_head().await?;
        let (trust, vault_id, update) = self.trust_update(audit);
        tokio::task::spawn_blocking(move || trust.update(&vault_id, &update.0, update.1).map(drop))
            .await
            .map_err(|_| Error::store("a trust-state thread panicked"))?
    }

    /// [`Engine::save_trust`] after a commit landed: the commit is durable, so its
    /// acknowledgement does not wait for the trust file's write and fsync. The pin is written on
    /// a blocking thread meanwhile, one at a time (the previous one is settled first), and
    /// settled before any other pin, at lock and on drop. A process killed in between leaves the
    /// previous pin: a weaker check at the next unlock, never a false alarm.
    pub(super) async fn pin_after_commit(&mut self) -> Result<()> {
        let audit = self.durable_audit_head().await?;
        let (trust, vault_id, update) = self.trust_update(audit);
        let (signal, done) = std::sync::mpsc::sync_channel(1);
        let task = tokio::task::spawn_blocking(move || {
            let pinned = trust.update(&vault_id, &update.0, update.1).map(drop);
            let _ = signal.send(());
            pinned
        });
        self.pending_pin = Some(PendingPin { task, done: std::sync::Mutex::new(done) });
        Ok(())
    }

    /// Before a pin: the pin started after the last commit is settled, and everything this
    /// handle wrote without fsync is made durable; the lane and its head, to pin.
    async fn durable_audit_head(&mut self) -> Result<(AuditLane, Head)> {
        self.settle_pin().await;
        let mut lane = self.lane.lock().await;
        lane.unsynced.append(&mut self.unsynced);
        lane.sync().await?;
        Ok((lane.lane, lane.head))
    }

    /// Waits for the pin [`Engine::pin_after_commit`] started, if any; its failure is reported
    /// (the commit it pins was acknowledged long ago).
    async fn settle_pin(&mut self) {
        // Awaited in place, cleared after: a caller dropped meanwhile leaves the pin tracked.
        let Some(pin) = self.pending_pin.as_mut() else { return };
        let pinned = (&mut pin.task).await;
        self.pending_pin = None;
        match pinned {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!("a commit landed but this machine's trust state was not updated: {e}")
            }
            Err(_) => tracing::warn!("a trust-state thread panicked"),
        }
    }

    /// [`Engine::save_trust`] without a runtime (on drop), if anything is not durable yet.
    fn save_trust_blocking(&mut self) -> Result<()> {
        let lane = self.lane.clone();
        // A batch of reads holding the lane right now pins its own head.
        let Ok(mut lane) = lane.try_lock() else { return Ok(()) };
        lane.unsynced.append(&mut self.unsynced);
        if lane.unsynced.is_empty() {
            return Ok(());
        }
        lane.sync_blocking()?;
        let (trust, vault_id, (location, update)) = self.trust_update((lane.lane, lane.head));
        trust.update(&vault_id, &location, update).map(drop)
    }

    /// What [`Engine::save_trust`] pins: the trust store, and for this vault and location the
    /// change to apply.
    #[allow(clippy::type_complexity)]
    fn trust_update(
        &self,
        (lane, audit): (AuditLane, Head),
    ) -> (TrustStore, [u8; 16], (String, impl FnOnce(&mut TrustState) + Send + 'static)) {
        let log = self.log;
        // Every password slot of the (MAC-checked) key file keeps opening the vault here.
        let kdf = self.keyfile.kdf_floor().unwrap_or(self.kdf);
        let (generation, snapshot_seq) = (self.keyfile.generation, self.snapshot_seq);
        let location = self.store.location().to_string();
        let update = move |t: &mut TrustState| {
            t.saw_commit(log.seq, &log.link);
            t.saw_own_audit(lane, audit.seq, &audit.link);
            t.keyfile_generation = t.keyfile_generation.max(generation);
            t.saw_kdf(generation, &kdf);
            t.saw_snapshot(snapshot_seq);
        };
        (self.opts.trust.clone(), self.vault_id, (location, update))
    }

    /// Creates `name` durably; a lost acknowledgement of our own write is success, another
    /// object of that name is a conflict.
    async fn create_once(&self, name: &str, bytes: &[u8]) -> Result<()> {
        if self.create_idempotent(name, bytes, Durability::Sync).await? {
            Ok(())
        } else {
            Err(Error::Conflict(format!("object {name} already exists")))
        }
    }

    // ---- the commit log -------------------------------------------------------------------------

    async fn create_idempotent(&self, name: &str, bytes: &[u8], durability: Durability) -> Result<bool> {
        create_idempotent(&self.store, name, bytes, durability).await
    }

    // ---- the audit trail ------------------------------------------------------------------------

    /// Finds the head of this machine's audit lane at unlock, choosing a new lane first if the
    /// trust state names none (a machine's first unlock; the machine that created the vault
    /// appends to the main lane). The pinned entry (the newest one pinned in the trust state or,
    /// in the main lane, anchored in the commit log) must be there with the link that was
    /// pinned; entries after it are authenticated one by one. Unreadable entries after the pin
    /// are what a power failure leaves of entries written without fsync: they are removed (they
    /// were never pinned, so the store could have removed them as well) and the unlock record
    /// says so.
    async fn find_audit_head(&mut self, trust: &TrustState) -> Result<Option<String>> {
        let lane = match trust.own_lane() {
            Some(lane) => lane,
            None => AuditLane::Named(tresor_crypto::random_array()?),
        };
        self.lane.lock().await.switch_to(lane)?;
        let chain = self.keys.audit.lane(lane);
        // The main lane's newest anchor is known from the log: checked whichever lane is ours.
        if let Some(a) = self.last_anchor
            && self.audit_link(AuditLane::Main, a.seq).await? != a.link
        {
            let detail = "differs from the one the commit log anchors";
            return Err(Error::integrity(ObjectKind::AuditRecord, &layout::audit(a.seq), detail));
        }
        let anchor = match lane {
            AuditLane::Main => self.last_anchor,
            AuditLane::Named(id) => self.lane_anchors.get(&id).copied(),
        };
        let (pinned_seq, pinned_link) = trust.audit_pin(lane);
        let pinned = anchor.map_or(0, |a| a.seq).max(pinned_seq);
        let mut head = Head { seq: 0, link: chain.origin() };
        if pinned > 0 {
            let Some(bytes) = self.store.get(&lane.entry(pinned)).await? else {
                let served = self.log_seqs(LogKind::Audit(lane)).await?.last().copied().unwrap_or(0);
                return Err(Error::Rollback { kind: ObjectKind::AuditRecord, seen: pinned, served });
            };
            head = Head { seq: pinned, link: chain.link(&bytes) };
        }
        if let (AuditLane::Named(_), Some(a)) = (lane, anchor)
            && self.audit_link(lane, a.seq).await? != a.link
        {
            let detail = "differs from the one the commit log anchors";
            return Err(Error::integrity(ObjectKind::AuditRecord, &lane.entry(a.seq), detail));
        }
        if pinned_seq > 0 && hex::encode(self.audit_link(lane, pinned_seq).await?) != pinned_link {
            return Err(Error::Fork { kind: ObjectKind::AuditRecord, seq: pinned_seq });
        }
        let scanned = self.lane.lock().await.scan_head(pinned).await?;
        let mut torn = None;
        let store = self.store.clone();
        let mut records = std::pin::pin!(
            futures::stream::iter(pinned + 1..=scanned.seq)
                .map(|seq| {
                    let store = store.clone();
                    async move { store.get(&lane.entry(seq)).await.map(|b| (seq, b)) }
                })
                .buffered(READ_AHEAD)
        );
        while let Some((seq, bytes)) = records.try_next().await? {
            match bytes {
                Some(bytes) if chain.open(seq, &head.link, &bytes).is_ok() => {
                    head = Head { seq, link: chain.link(&bytes) };
                }
                _ => {
                    torn = Some(seq);
                    break;
                }
            }
        }
        {
            // Entries past the pin may be another process's, written without fsync: durable
            // before anything of ours chains onto them or pins them.
            let mut lane_state = self.lane.lock().await;
            lane_state.unsynced.extend((pinned + 1..=head.seq).map(|seq| lane.entry(seq)));
            lane_state.head = head;
        }
        let Some(from) = torn else { return Ok(None) };
        // A power failure tears the newest few unpinned read records (fewer than 2 × PIN_EVERY per
        // process between pins); a store claiming more after an unreadable one is not that, and
        // nothing is deleted on its word.
        if scanned.seq - from >= MAX_TORN_RECORDS {
            return Err(Error::integrity(
                ObjectKind::AuditRecord,
                &lane.entry(from),
                format!(
                    "does not authenticate, and the store claims {} more records after it: refusing to \
                     treat them as torn by a power failure",
                    scanned.seq - from
                ),
            ));
        }
        for seq in from..=scanned.seq {
            self.store.delete(&lane.entry(seq)).await?;
        }
        Ok(Some(format!(
            "removed {} unreadable unpinned audit records ({from}..={}), as a power failure leaves them",
            scanned.seq - from + 1,
            scanned.seq
        )))
    }

    /// The link of entry `seq` of an audit lane, which must exist.
    async fn audit_link(&self, lane: AuditLane, seq: u64) -> Result<Link> {
        let name = lane.entry(seq);
        let bytes = self.store.get_required(&name, "is pinned but missing").await?;
        Ok(self.keys.audit.link(&bytes))
    }
}

/// The newest entry of a log at or after `from` (which must exist, or be 0): entries appended
/// since are found by galloping forward, then bisecting, without listing the log.
async fn scan_head(store: &Store, kind: LogKind, from: u64) -> Result<u64> {
    // Each round asks about several names at once (one round trip on S3, not one per name):
    // first exponentially spaced ones until one is missing, then evenly spaced ones between
    // the last present and the first missing. The store chooses which names exist: the
    // arithmetic must not overflow, and the search stops by 2^62.
    // A store that answers "exists" to everything must not make this endless: the spacing
    // keeps doubling from round to round (2^0..2^11, then 2^12..2^23, ...), so 2^62 is
    // reached in six rounds and the bisection takes eighteen more.
    const FAN: u32 = 12;
    let mut lo = from;
    let mut shift = 0;
    let hi = loop {
        if lo >= 1 << 62 || shift >= 62 {
            return Ok(lo);
        }
        let candidates: Vec<u64> =
            (0..FAN).filter(|i| shift + i < 62).map(|i| lo + (1u64 << (shift + i))).collect();
        let present = exist_all(store, kind, &candidates).await?;
        match present.iter().position(|p| !p) {
            Some(0) => break candidates[0],
            Some(i) => {
                lo = candidates[i - 1];
                break candidates[i];
            }
            None => {
                lo = candidates[candidates.len() - 1];
                shift += FAN;
            }
        }
    };
    // `from`'s successor itself may be missing; entries between `lo` and the first missing
    // candidate are found by the bisection.
    let mut hi = hi;
    while hi - lo > 1 {
        let step = ((hi - lo) / u64::from(FAN)).max(1);
        let points: Vec<u64> = (1..u64::from(FAN)).map(|i| lo + i * step).filter(|p| *p < hi).collect();
        let present = exist_all(store, kind, &points).await?;
        let mut next = (lo, hi);
        for (point, here) in points.iter().zip(present) {
            if here {
                next.0 = *point;
            } else {
                next.1 = *point;
                break;
            }
        }
        (lo, hi) = if next == (lo, hi) { (lo, lo + 1) } else { next };
    }
    Ok(lo)
}

/// Whether each of the entries `seqs` of a log exists, asked concurrently.
async fn exist_all(store: &Store, kind: LogKind, seqs: &[u64]) -> Result<Vec<bool>> {
    let checks: Vec<_> = seqs
        .iter()
        .map(|seq| {
            let store = store.clone();
            let name = kind.name(*seq);
            async move { store.exists(&name).await }
        })
        .collect();
    futures::future::try_join_all(checks).await
}

impl Engine {
    /// Appends an audit record. Any failure is [`Error::Audit`]: the caller must refuse the
    /// operation it describes.
    async fn audit_append(
        &mut self,
        op: AuditOp,
        path: Option<&str>,
        outcome: Outcome,
        detail: Option<String>,
        durability: Durability,
    ) -> Result<()> {
        self.audit_append_with(op, path, outcome, detail, durability, true).await
    }

    /// [`Engine::audit_append`]; without `pin`, relaxed records are not pinned every
    /// [`audit::PIN_EVERY`] records (a write pins them all with its commit).
    async fn audit_append_with(
        &mut self,
        op: AuditOp,
        path: Option<&str>,
        outcome: Outcome,
        detail: Option<String>,
        durability: Durability,
        pin: bool,
    ) -> Result<()> {
        let record = AuditRecord {
            time_ms: now_ms(),
            actor: self.opts.actor.clone(),
            op: op.as_str().to_string(),
            path: path.map(str::to_string),
            outcome,
            detail,
        };
        self.audit_append_record(&record, durability, pin).await
    }

    /// Appends `record` as it is (its time and actor included) to the audit trail.
    async fn audit_append_record(
        &mut self,
        record: &AuditRecord,
        durability: Durability,
        pin: bool,
    ) -> Result<()> {
        self.audit_append_entry(std::slice::from_ref(record), durability, pin).await
    }

    /// Appends `records` as one entry of the audit trail. Without `pin`, relaxed entries are not
    /// pinned every [`audit::PIN_EVERY`] (a write pins them all with its commit).
    async fn audit_append_entry(
        &mut self,
        records: &[AuditRecord],
        durability: Durability,
        pin: bool,
    ) -> Result<()> {
        let mut lane = self.lane.lock().await;
        if durability == Durability::Sync {
            // Blobs the engine wrote without fsync are made durable with the entry's round.
            lane.unsynced.append(&mut self.unsynced);
        }
        lane.append(records, durability).await?;
        // The head is made durable and pinned by the next durable record or commit, by `lock`
        // or drop, and every PIN_EVERY entries in between (an agent killed -9).
        if pin && lane.pin_due() {
            drop(lane);
            self.save_trust().await.map_err(|e| Error::Audit(Box::new(e)))?;
        }
        Ok(())
    }

    /// Best effort: records that an operation failed. The original error is what the caller
    /// reports, so a failure to record it is dropped.
    async fn audit_failure(&mut self, op: AuditOp, path: Option<&str>, err: &Error) {
        let _ =
            self.audit_append(op, path, Outcome::Failed(err.to_string()), None, Durability::Relaxed).await;
    }

    // ---- values ---------------------------------------------------------------------------------

    /// Records that the vault is being locked (the caller then drops it, wiping every key).
    pub async fn lock(mut self, reason: &str) -> Result<()> {
        self.flush_reseal().await;
        let detail = Some(reason.to_string());
        let appended = self.audit_append(AuditOp::Lock, None, Outcome::Ok, detail, Durability::Relaxed).await;
        // The audit chain's key goes now, with every other key when the engine drops: reads
        // still in flight fail at their audit record, and nothing is appended after the pin.
        self.lane.lock().await.close();
        let pinned = self.save_trust().await;
        appended.and(pinned)
    }

    /// The root secret, for the archive MAC. Kept crate-private.
    pub(crate) fn root(&self) -> &RootKey {
        &self.keys.root
    }

    pub(crate) async fn audit_op(&mut self, op: AuditOp, detail: Option<String>) -> Result<()> {
        self.audit_append(op, None, Outcome::Ok, detail, Durability::Sync).await
    }
}

#[cfg(test)]
mod tests {
    use super::format_time;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(format_time(1_795_000_000_123), "2026-11-18T11:06:40Z");
        assert!(!format_time(u64::MAX).is_empty(), "no panic past chrono's range");
    }
}
