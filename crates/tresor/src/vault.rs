//! The `Vault` API: init, unlock, read, write, history, audit, password change.
//!
//! A `Vault` is an unlocked vault: its keys, the index replayed from the commit log, and the heads
//! of the commit log and audit trail. Every operation appends an audit record first; reads return
//! nothing unless their record was written. Writes go blob → audit record → commit, and a commit is
//! created only if absent, so concurrent writers (processes, agents) are linearized by the store.

use crate::chain::{Chain, GENESIS, Link, LogKind};
use crate::error::{Error, ObjectKind, Result};
use crate::fingerprint::Fingerprint;
use crate::index::{Index, validate_path};
use crate::keyfile::{KeyFile, SlotKind, SlotOpen, check_password_rules};
use crate::keyring::Keyring;
use crate::layout::{self, parse_seq};
use crate::model::{
    AuditAnchor, AuditOp, AuditRecord, BlobRef, Commit, Op, Outcome, decode, decode_audit, encode, now_ms,
};
use crate::snapshot;
use crate::store::{Created, Durability, Store};
use crate::trust::{LocationPin, TrustState, TrustStore};
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime};
use tresor_crypto::envelope::Context;
use tresor_crypto::wrap::{unwrap_key, wrap_key};
use tresor_crypto::{KdfParams, Key, Password, Purpose, SecretBytes, derive_key};

mod audit;
mod epochs;
mod keys;
mod rekey;
mod service;
mod view;
pub use crate::versions::Residue;
pub use epochs::{DestroyReport, EpochList, EpochView, ReencryptReport, RotateReport};
pub use keys::{DerivedIdentity, PrivateNode};
pub use rekey::RekeyReport;
pub use service::Vault;

/// Default limit on a secret value's size.
pub const DEFAULT_MAX_VALUE: usize = 1 << 20;
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

/// Most unreadable audit records past the pin an unlock removes as torn by a power failure.
const MAX_TORN_RECORDS: u64 = 256;

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
    Root(Key),
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
    /// Records in the audit trail.
    pub audit_records: u64,
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
    /// Whether it is what `get` returns.
    pub current: bool,
}

/// What `tresor audit verify` proved.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Commits checked.
    pub commits: u64,
    /// Audit records checked.
    pub audit_records: u64,
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
    root: Key,
    commit: Chain,
    audit: Chain,
    shield: Key,
    snapshot: Key,
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
}

impl Drop for Engine {
    /// Pins the newest audit head (without fsync) so that a store dropping the records of this
    /// session's reads is caught at the next unlock. The keys are wiped by their own drops.
    fn drop(&mut self) {
        let _ = self.save_trust_blocking();
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
    match store.create_with(name, bytes.clone(), durability).await {
        Ok(Created::Yes) => Ok(true),
        Ok(Created::AlreadyExists) => Ok(store.get(name).await?.is_some_and(|b| b == bytes)),
        Err(e) => {
            // Did it land? Asked a few times: the store that just failed may fail a read too.
            for attempt in 0..3 {
                match store.get(name).await {
                    Ok(Some(b)) => return if b == bytes { Ok(true) } else { Err(e) },
                    Ok(None) => return Err(e),
                    Err(_) => backoff(attempt + 4).await,
                }
            }
            Err(e)
        }
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
pub(crate) fn seal_packs(key: &Key, vault_id: &[u8; 16], epoch: u32, values: &[&[u8]]) -> Result<Packs> {
    let (names, places) = plan_packs(epoch, values.iter().map(|v| v.len()))?;
    let jobs: Vec<(usize, u32, &[u8])> =
        places.into_iter().zip(values).map(|((pack, slot), value)| (pack, slot, *value)).collect();
    let sealed = snapshot::on_every_core(&jobs, |(pack, slot, value)| {
        let slot = slot.to_be_bytes();
        Ok(tresor_crypto::seal(key, &blob_ctx(vault_id, &names[*pack], epoch, &slot), value)?)
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
    key: &Key,
    vault_id: &[u8; 16],
    name: &str,
    blob: &BlobRef,
    envelope: &[u8],
) -> Result<SecretBytes> {
    if envelope.len() != blob.len as usize {
        return Err(Error::integrity(ObjectKind::ValueBlob, name, "is shorter than its commit records"));
    }
    let slot = blob.slot.to_be_bytes();
    let value =
        tresor_crypto::open(key, &blob_ctx(vault_id, name, blob.epoch, &slot), envelope).map_err(|_| {
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
    let secs = (ms / 1000) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

async fn load_keyfile(store: &Store) -> Result<(KeyFile, [u8; 32])> {
    let names = store.list(layout::KEYFILE_DIR).await?;
    let newest = names
        .iter()
        .filter_map(|n| parse_seq(n, layout::KEYFILE_DIR).map(|g| (g, n)))
        .max_by_key(|(g, _)| *g);
    let Some((generation, name)) = newest else {
        let location = store.location().to_string();
        // Objects but no key file: an init that stopped before its last step (nothing of it can
        // ever be opened), or some other data.
        if store.holds_data().await? {
            return Err(Error::InterruptedInit { location });
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
            .map(|s| format!("argon2id m={} t={} p={}", s.params.m_kib, s.params.t, s.params.p))
            .collect(),
    })
}

impl Engine {
    fn from_root(
        store: Store,
        keyfile: KeyFile,
        keyfile_hash: [u8; 32],
        root: Key,
        kdf: KdfParams,
        opts: Options,
    ) -> Engine {
        let vault_id = keyfile.vault_id;
        let store_for_base = store.clone();
        let root_for_fingerprint = &root;
        let fingerprint = Fingerprint::of(root_for_fingerprint, &vault_id);
        let lane = audit::Lane::new(
            Chain::new(LogKind::Audit, &root, vault_id),
            store.clone(),
            opts.trust.clone(),
            vault_id,
        );
        let keys = Keys {
            commit: Chain::new(LogKind::Commit, &root, vault_id),
            audit: Chain::new(LogKind::Audit, &root, vault_id),
            shield: derive_key(&root, &vault_id, Purpose::Shield),
            snapshot: derive_key(&root, &vault_id, Purpose::SnapshotSeal),
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
        }
    }

    /// Creates a vault at an empty location. The password rules are checked before the store is
    /// touched; the store must pass the create-if-absent probe.
    pub async fn init(store: Store, password: &Password, opts: Options) -> Result<Engine> {
        check_password_rules(password)?;
        opts.kdf.check().map_err(|_| Error::Invalid("KDF parameters out of the accepted range".into()))?;
        let existing = store.list_all().await?;
        if existing.iter().any(|n| n.starts_with("keyfile/")) {
            return Err(Error::VaultExists { location: store.location().to_string() });
        }
        if store.holds_data().await? {
            return Err(Error::InterruptedInit { location: store.location().to_string() });
        }
        store.probe().await?;
        let vault_id = tresor_crypto::random_array::<16>()?;
        let root = Key::generate()?;
        let keyfile = KeyFile::new(vault_id, 1, &root, password, opts.kdf)?;
        let kf_bytes = keyfile.encode();
        let kf_hash = tresor_crypto::hash(&kf_bytes);
        let kdf = opts.kdf;
        let mut vault = Engine::from_root(store, keyfile, kf_hash, root, kdf, opts);

        let epoch = FIRST_EPOCH;
        let epoch_key = Key::generate()?;
        let wrapped = wrap_key(&vault.keys.shield, &epoch_aad(&vault_id, epoch), &epoch_key)?;
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

    async fn open(base: Store, how: Opener<'_>, opts: Options) -> Result<Engine> {
        let (era, store) = crate::era::current(&base).await?;
        let (keyfile, kf_hash) = load_keyfile(&store).await?;
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
        let accept = |root: &Key| expected.is_none_or(|fp| fp.matches(root, &vault_id));
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
        let attempts = failed
            .first()
            .map(|first| format!("{} failed attempts since {}", failed.len(), format_time(*first)));
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

    /// Checks `password` against this vault's key file without unlocking anything new: what an
    /// already unlocked agent does before it answers `unlock`. A wrong one counts as a failed
    /// attempt, as at unlock.
    pub async fn verify_password(&mut self, password: &Password) -> Result<()> {
        self.keyfile_fresh().await?;
        let pinned =
            self.opts.trust.load(&self.vault_id, self.store.location())?.pinned_kdf(self.keyfile.generation);
        let (fingerprint, vault_id) = (self.fingerprint, self.vault_id);
        let keyfile = self.keyfile.clone();
        let password = Password::from(secrecy::ExposeSecret::expose_secret(password).to_string());
        let opened = tokio::task::spawn_blocking(move || {
            matches!(
                keyfile.open_slot(&password, pinned.as_ref(), &|root| fingerprint.matches(root, &vault_id)),
                SlotOpen::Opened(..)
            )
        })
        .await
        .map_err(|_| Error::Store("a key derivation thread panicked".into()))?;
        if opened {
            return Ok(());
        }
        self.opts.trust.record_failed_attempt(&self.vault_id, self.store.location(), now_ms())?;
        Err(Error::AuthFailed)
    }

    /// The vault id.
    pub fn vault_id(&self) -> [u8; 16] {
        self.vault_id
    }

    /// Pins what this handle has seen in the trust state. Only durable state is pinned: a pin of a
    /// record that a power failure then loses would be a false alarm at the next unlock. The
    /// trust file is written (and fsynced) on a blocking thread.
    async fn save_trust(&mut self) -> Result<()> {
        let audit = {
            let mut lane = self.lane.lock().await;
            lane.unsynced.append(&mut self.unsynced);
            lane.sync().await?;
            lane.head
        };
        let (trust, vault_id, update) = self.trust_update(audit);
        tokio::task::spawn_blocking(move || trust.update(&vault_id, &update.0, update.1).map(drop))
            .await
            .map_err(|_| Error::Store("a trust-state thread panicked".into()))?
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
        let (trust, vault_id, (location, update)) = self.trust_update(lane.head);
        trust.update(&vault_id, &location, update).map(drop)
    }

    /// What [`Vault::save_trust`] pins: the trust store, and for this vault and location the
    /// change to apply.
    #[allow(clippy::type_complexity)]
    fn trust_update(
        &self,
        audit: Head,
    ) -> (TrustStore, [u8; 16], (String, impl FnOnce(&mut TrustState) + Send + 'static)) {
        let log = self.log;
        // Every password slot of the (MAC-checked) key file keeps opening the vault here.
        let kdf = self.keyfile.kdf_floor().unwrap_or(self.kdf);
        let (generation, snapshot_seq) = (self.keyfile.generation, self.snapshot_seq);
        let location = self.store.location().to_string();
        let update = move |t: &mut TrustState| {
            t.saw_commit(log.seq, &log.link);
            t.saw_audit(audit.seq, &audit.link);
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

    fn apply_commit(&mut self, seq: u64, bytes: &[u8]) -> Result<()> {
        let name = layout::commit(seq);
        let plain = self.keys.commit.open(seq, &self.log.link, bytes)?;
        let commit: Commit = decode(&plain, ObjectKind::Commit, &name)?;
        for op in &commit.ops {
            match op {
                Op::KeyFile { generation, hash } => {
                    self.logged_keyfile = (*generation, Some(*hash));
                    if let Some((pending, recorded)) = &mut self.pending_keyfile
                        && *pending == (*generation, *hash)
                    {
                        *recorded = true;
                    }
                }
                // Forward secrecy: a destroyed epoch's key leaves memory too.
                Op::DestroyEpoch { epoch } => self.view.remove_epoch(*epoch),
                _ => {}
            }
            self.keyring.apply(op, commit.time_ms);
        }
        {
            let mut index = self.view.index_mut();
            for op in &commit.ops {
                index.apply(op, commit.time_ms);
            }
        }
        self.view.set_current_epoch(self.keyring.current);
        if commit.audit.is_some() {
            self.last_anchor = commit.audit;
        }
        self.ops_since_snapshot += commit.ops.len() as u64;
        self.ops_after_base.push_back((seq, commit.ops.len() as u64));
        self.log = Head { seq, link: self.keys.commit.link(bytes) };
        self.view.set_log_seq(seq);
        Ok(())
    }

    /// Sequence numbers of a log's entries, sorted; names that are not ours are ignored.
    async fn log_seqs(&self, kind: LogKind) -> Result<Vec<u64>> {
        let names = self.store.list(kind.dir()).await?;
        let mut seqs: Vec<u64> = names.iter().filter_map(|n| parse_seq(n, kind.dir())).collect();
        seqs.sort_unstable();
        Ok(seqs)
    }

    /// The entries `1..=seqs.len()` of a log, in order, read ahead concurrently. A gap in `seqs`
    /// or an entry that vanishes is an integrity error naming the missing entry.
    fn log_entries(&self, kind: LogKind, seqs: Vec<u64>) -> impl Stream<Item = Result<(u64, Bytes)>> + use<> {
        let store = self.store.clone();
        futures::stream::iter(seqs.into_iter().zip(1u64..))
            .map(move |(seq, expected)| {
                let store = store.clone();
                async move {
                    let name = kind.name(expected);
                    let missing = |detail| Error::integrity(kind.object_kind(), &name, detail);
                    if seq != expected {
                        return Err(missing("is missing: an entry was deleted from the log"));
                    }
                    let bytes =
                        store.get(&name).await?.ok_or_else(|| missing("vanished while being read"))?;
                    Ok((seq, bytes))
                }
            })
            .buffered(READ_AHEAD)
    }

    /// The entries `from..=to` of a log, in order, read ahead concurrently; a missing one is an
    /// integrity error naming it.
    fn log_range(
        &self,
        kind: LogKind,
        from: u64,
        to: u64,
    ) -> impl Stream<Item = Result<(u64, Bytes)>> + use<> {
        let store = self.store.clone();
        futures::stream::iter(from..=to)
            .map(move |seq| {
                let store = store.clone();
                async move {
                    let name = kind.name(seq);
                    let detail = "is missing: an entry was deleted from the log";
                    let bytes = store
                        .get(&name)
                        .await?
                        .ok_or_else(|| Error::integrity(kind.object_kind(), &name, detail))?;
                    Ok((seq, bytes))
                }
            })
            .buffered(READ_AHEAD)
    }

    /// Builds the index at unlock — from the newest snapshot and the commits after it, or from the
    /// whole log — and checks it against the trust state. The log is never listed: its head is found
    /// by galloping from the snapshot's commit, so opening costs the snapshot plus the commits after it.
    async fn open_log(&mut self, trust: &TrustState) -> Result<()> {
        self.load_snapshot(trust).await?;
        let start = self.log.seq;
        let head = self.scan_head(LogKind::Commit, start).await?;
        if head == 0 {
            return Err(Error::integrity(
                ObjectKind::Commit,
                &layout::commit(1),
                "is missing: the log is empty",
            ));
        }
        // A log that ends early: a hole (later commits are there) or a rollback (they are not).
        let hole = |seq| {
            Error::integrity(
                ObjectKind::Commit,
                &layout::commit(seq),
                "is missing: an entry was deleted from the log",
            )
        };
        if head < trust.log_seq {
            if self.store.exists(&layout::commit(trust.log_seq)).await? {
                return Err(hole(head + 1));
            }
            return Err(Error::Rollback { kind: ObjectKind::Commit, seen: trust.log_seq, served: head });
        }
        if self.entries_beyond(LogKind::Commit, head).await? {
            return Err(hole(head + 1));
        }
        let mut entries = std::pin::pin!(self.log_range(LogKind::Commit, start + 1, head));
        while let Some((seq, bytes)) = entries.try_next().await? {
            self.apply_commit(seq, &bytes)?;
            if seq == trust.log_seq && hex::encode(self.log.link) != trust.log_link {
                return Err(Error::Fork { kind: ObjectKind::Commit, seq });
            }
        }
        Ok(())
    }

    /// Starts the index from the newest complete snapshot, if there is one. An older snapshot than
    /// this machine has seen is a rollback; a snapshot is used only once its commit is in the log
    /// with the link it records and, when this machine pinned a commit at or below it, once the
    /// log has been followed from the pinned commit up to it.
    async fn load_snapshot(&mut self, trust: &TrustState) -> Result<()> {
        // `gc` may remove a superseded snapshot between listing and reading: look again.
        for _ in 0..3 {
            // Only snapshots sealed with this vault's keys count (planted names are skipped)...
            let (newest, skipped) =
                snapshot::newest_authentic_skipping(&self.store, &self.keys.snapshot, &self.vault_id).await?;
            let served = newest.map_or(0, |(seq, _)| seq);
            if served < trust.snapshot_seq {
                // ... but one at or above what this machine saw that fails is the snapshot this
                // machine saw, tampered: say so, not "rollback".
                if let Some(&(seq, parts)) = skipped.iter().find(|(seq, _)| *seq >= trust.snapshot_seq) {
                    return Err(Error::integrity(
                        ObjectKind::Snapshot,
                        &layout::snapshot(seq, 0, parts),
                        "does not authenticate: tampered, or moved from another name",
                    ));
                }
                return Err(Error::Rollback { kind: ObjectKind::Snapshot, seen: trust.snapshot_seq, served });
            }
            let Some(found) = newest else { return Ok(()) };
            let Some(envelopes) = snapshot::read(&self.store, found).await? else { continue };
            let (header, index) = snapshot::open(&self.keys.snapshot, &self.vault_id, found, &envelopes)?;
            drop(envelopes);
            self.check_snapshot(&header, found, trust).await?;
            *self.view.index_mut() = index;
            self.log = Head { seq: header.seq, link: header.link };
            self.view.set_log_seq(header.seq);
            self.keyring = header.keyring;
            self.view.set_current_epoch(self.keyring.current);
            self.logged_keyfile = header.keyfile;
            self.last_anchor = header.anchor;
            self.snapshot_seq = header.seq;
            self.snapshot_base = header.seq;
            return Ok(());
        }
        Err(Error::Store("snapshots kept disappearing while being read; try again".into()))
    }

    async fn check_snapshot(
        &self,
        header: &snapshot::Header,
        found: snapshot::Found,
        trust: &TrustState,
    ) -> Result<()> {
        let seq = header.seq;
        let name = layout::commit(seq);
        let Some(commit) = self.store.get(&name).await? else {
            // The newest commits are gone (a rollback, if this machine saw more than is left), or
            // this one was taken out of the middle.
            let served = self.scan_head(LogKind::Commit, 0).await?;
            if trust.log_seq > served && !self.store.exists(&layout::commit(trust.log_seq)).await? {
                return Err(Error::Rollback { kind: ObjectKind::Commit, seen: trust.log_seq, served });
            }
            let detail = "is missing, yet a snapshot was taken at it: an entry was deleted from the log";
            return Err(Error::integrity(ObjectKind::Commit, &name, detail));
        };
        if self.keys.commit.link(&commit) != header.link {
            let part = layout::snapshot(seq, 0, found.1);
            return Err(Error::integrity(
                ObjectKind::Snapshot,
                &part,
                format!("records another commit {seq} than the log holds"),
            ));
        }
        if trust.log_seq == 0 || trust.log_seq > seq {
            return Ok(());
        }
        // The commit this machine pinned must be an ancestor of the snapshot's.
        let pinned = self.store.get_required(&layout::commit(trust.log_seq), "is pinned but missing").await?;
        let mut prev = self.keys.commit.link(&pinned);
        if hex::encode(prev) != trust.log_link {
            return Err(Error::Fork { kind: ObjectKind::Commit, seq: trust.log_seq });
        }
        let mut entries = std::pin::pin!(self.log_range(LogKind::Commit, trust.log_seq + 1, seq));
        while let Some((n, bytes)) = entries.try_next().await? {
            self.keys.commit.open(n, &prev, &bytes)?;
            prev = self.keys.commit.link(&bytes);
        }
        if prev != header.link {
            return Err(Error::Fork { kind: ObjectKind::Snapshot, seq });
        }
        Ok(())
    }

    /// Reads and opens the newest snapshot again, timing each step (for benchmarks and `doctor`);
    /// `None` without a snapshot.
    pub async fn measure_snapshot(&self) -> Result<Option<SnapshotTiming>> {
        let Some(found) = snapshot::newest(&self.store).await? else { return Ok(None) };
        let start = std::time::Instant::now();
        let Some(envelopes) = snapshot::read(&self.store, found).await? else { return Ok(None) };
        let read = start.elapsed();
        let (_, index) = snapshot::open(&self.keys.snapshot, &self.vault_id, found, &envelopes)?;
        let opened = start.elapsed();
        Ok(Some(SnapshotTiming {
            seq: found.0,
            parts: found.1,
            bytes: envelopes.iter().map(|e| e.len() as u64).sum(),
            entries: index.len() as u64,
            read,
            open: opened - read,
        }))
    }

    /// Counts commits and ops from the snapshot at `seq` on (when it is newer than the base).
    fn advance_snapshot_base(&mut self, seq: u64) {
        if seq <= self.snapshot_base {
            return;
        }
        self.snapshot_base = seq;
        while let Some(&(n, ops)) = self.ops_after_base.front()
            && n <= seq
        {
            self.ops_since_snapshot -= ops;
            self.ops_after_base.pop_front();
        }
    }

    /// Writes a snapshot if one is due — unless another writer has written a recent enough one.
    async fn snapshot_if_due(&mut self) -> Result<()> {
        if self.defer_snapshots || !self.snapshot_due() {
            return Ok(());
        }
        if let Some((seq, _)) =
            snapshot::newest_authentic(&self.store, &self.keys.snapshot, &self.vault_id).await?
        {
            self.advance_snapshot_base(seq.min(self.log.seq));
        }
        if self.snapshot_due() {
            self.snapshot().await?;
        }
        Ok(())
    }

    fn snapshot_due(&self) -> bool {
        let commits = self.log.seq.saturating_sub(self.snapshot_base);
        match self.opts.snapshot_every {
            Some(every) => commits >= every.max(1),
            None => {
                commits >= SNAPSHOT_COMMITS
                    || self.ops_since_snapshot >= (self.view.index().len() as u64 / 8).max(SNAPSHOT_MIN_OPS)
            }
        }
    }

    /// Writes a snapshot of the index as of the newest commit this handle has applied, and pins it.
    /// Parts another writer already wrote for the same commit are the same bytes' equals: kept.
    pub async fn snapshot(&mut self) -> Result<u64> {
        let header = snapshot::Header {
            seq: self.log.seq,
            link: self.log.link,
            keyring: self.keyring.clone(),
            keyfile: self.logged_keyfile,
            anchor: self.last_anchor,
            entries: self.view.index().len() as u64,
        };
        let sealed = {
            let plaintexts = snapshot::encode(&header, &self.view.index())?;
            snapshot::seal(&self.keys.snapshot, &self.vault_id, header.seq, &plaintexts)?
        };
        let names: Vec<String> = sealed.iter().map(|(name, _)| name.clone()).collect();
        let store = self.store.clone();
        futures::stream::iter(sealed)
            .map(|(name, envelope)| {
                let store = store.clone();
                async move { store.create_with(&name, envelope, Durability::Relaxed).await }
            })
            .buffer_unordered(8)
            .try_collect::<Vec<Created>>()
            .await?;
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.sync(&names))
            .await
            .map_err(|_| Error::Store("a sync thread panicked".into()))??;
        self.snapshot_seq = self.snapshot_seq.max(header.seq);
        self.advance_snapshot_base(header.seq);
        self.save_trust().await?;
        Ok(header.seq)
    }

    fn check_keyfile(&self) -> Result<()> {
        let (logged, hash) = self.logged_keyfile;
        let name = layout::keyfile(self.keyfile.generation);
        if self.keyfile.generation < logged {
            return Err(Error::Rollback {
                kind: ObjectKind::KeyFile,
                seen: logged,
                served: self.keyfile.generation,
            });
        }
        if self.keyfile.generation == logged && hash.is_some_and(|h| h != self.keyfile_hash) {
            return Err(Error::integrity(
                ObjectKind::KeyFile,
                &name,
                "differs from the one the commit log records",
            ));
        }
        Ok(())
    }

    /// Reads commits other writers appended since we last looked.
    pub async fn refresh(&mut self) -> Result<()> {
        let start = self.log.seq;
        while let Some(bytes) = self.store.get(&layout::commit(self.log.seq + 1)).await? {
            self.apply_commit(self.log.seq + 1, &bytes)?;
        }
        if self.log.seq != start {
            self.save_trust().await?;
        }
        // A re-key elsewhere fenced this era: once its new era is current, this handle (its
        // root, its keys) is done with.
        if self.keyring.fence.is_some_and(|f| f.next > self.era) {
            self.superseded().await?;
        }
        Ok(())
    }

    /// [`Error::Superseded`] if a newer root era than this handle's is current at its location
    /// (a re-key elsewhere): what a missing object or a fence means then.
    async fn superseded(&self) -> Result<()> {
        let (current, _) = crate::era::current(&self.base).await?;
        if current > self.era {
            return Err(Error::Superseded { era: current });
        }
        Ok(())
    }

    /// Appends one commit built from the current index; on losing the race for the next sequence
    /// number, catches up and builds again.
    async fn commit(
        &mut self,
        mut build: impl FnMut(&Index, &Keyring) -> Result<Vec<Op>>,
    ) -> Result<Vec<Op>> {
        let writer = tresor_crypto::random_array::<16>()?;
        let started = std::time::Instant::now();
        for attempt in 0usize.. {
            if attempt >= MAX_RETRIES && started.elapsed() >= RETRY_FOR {
                break;
            }
            if attempt == 0 {
                // A snapshot above our head means the store lost commits that another writer saw:
                // a commit here would land below the newest snapshot and must not be acknowledged.
                let store = self.store.clone();
                let head = self.log.seq;
                let head_there =
                    async { if head == 0 { Ok(true) } else { store.exists(&layout::commit(head)).await } };
                let (refreshed, newest, head_there) =
                    tokio::join!(self.refresh(), snapshot::newest(&store), head_there);
                refreshed?;
                // The commit this handle builds on is gone: the era was deleted by a re-key
                // elsewhere (a write here would be lost), or the store rolled back.
                if !head_there? {
                    self.superseded().await?;
                    let served = self.scan_head(LogKind::Commit, 0).await?;
                    return Err(Error::Rollback { kind: ObjectKind::Commit, seen: head, served });
                }
                // Only a snapshot sealed by a holder of the vault's keys counts: a planted name
                // must not make every commit report a rollback.
                if let Some(found) = newest?
                    && found.0 > self.log.seq
                    && snapshot::authentic(&store, &self.keys.snapshot, &self.vault_id, found).await?
                {
                    let seq = found.0;
                    return Err(Error::Rollback {
                        kind: ObjectKind::Commit,
                        seen: seq,
                        served: self.log.seq,
                    });
                }
            } else {
                self.refresh().await?;
            }
            let ops = build(&self.view.index(), &self.keyring)?;
            // A fenced era (a re-key is making the next one) takes nothing but the abort of that
            // re-key: a write landing here would be lost with the era.
            if let Some(next) = self.keyring.fence.map(|f| f.next)
                && !ops.iter().all(|op| matches!(op, Op::RekeyAborted { .. } | Op::Rekeying { .. }))
            {
                return Err(Error::Fenced { next });
            }
            // A key file change another writer recorded meanwhile wins: ours, no newer, is not
            // recorded (it would be a generation unlock no longer uses).
            let newer_keyfile = ops.iter().any(|op| match op {
                Op::KeyFile { generation, hash } => self.keyfile_superseded(*generation, hash),
                _ => false,
            });
            if newer_keyfile {
                return Err(Error::Conflict(
                    "the key file was changed by another writer meanwhile; run the command again".into(),
                ));
            }
            // The commit anchors the audit head: it must be durable first.
            let audit = {
                let mut lane = self.lane.lock().await;
                lane.unsynced.append(&mut self.unsynced);
                lane.sync().await?;
                lane.head
            };
            let commit = Commit {
                time_ms: now_ms(),
                actor: self.opts.actor.clone(),
                writer,
                audit: (audit.seq > 0).then_some(AuditAnchor { seq: audit.seq, link: audit.link }),
                ops,
            };
            let seq = self.log.seq + 1;
            let entry = self.keys.commit.seal(seq, &self.log.link, &encode(&commit)?)?;
            if self.create_idempotent(&layout::commit(seq), &entry, Durability::Sync).await? {
                self.apply_commit(seq, &entry)?;
                self.save_trust().await?;
                // The commit is durable and acknowledged; a snapshot that cannot be written now
                // is written by a later commit.
                if let Err(e) = self.snapshot_if_due().await {
                    tracing::warn!("index snapshot not written: {e}");
                }
                return Ok(commit.ops);
            }
            backoff(attempt).await;
        }
        Err(Error::Conflict("gave up after a minute of lost races: too many concurrent writers".into()))
    }

    async fn create_idempotent(&self, name: &str, bytes: &[u8], durability: Durability) -> Result<bool> {
        create_idempotent(&self.store, name, bytes, durability).await
    }

    // ---- the audit trail ------------------------------------------------------------------------

    /// Finds the head of the audit trail at unlock. The pinned record (the newest one anchored in
    /// the commit log or pinned in the trust state) must be there with the link that was pinned;
    /// records after it are authenticated one by one. Unreadable records after the pin are what a
    /// power failure leaves of records written without fsync: they are removed (they were never
    /// pinned, so the store could have removed them as well) and the unlock record says so.
    async fn find_audit_head(&mut self, trust: &TrustState) -> Result<Option<String>> {
        let anchor = self.last_anchor;
        let pinned = anchor.map_or(0, |a| a.seq).max(trust.audit_seq);
        let mut head = EMPTY;
        if pinned > 0 {
            let Some(bytes) = self.store.get(&layout::audit(pinned)).await? else {
                let served = self.log_seqs(LogKind::Audit).await?.last().copied().unwrap_or(0);
                return Err(Error::Rollback { kind: ObjectKind::AuditRecord, seen: pinned, served });
            };
            head = Head { seq: pinned, link: self.keys.audit.link(&bytes) };
        }
        if let Some(a) = anchor
            && self.audit_link(a.seq).await? != a.link
        {
            let detail = "differs from the one the commit log anchors";
            return Err(Error::integrity(ObjectKind::AuditRecord, &layout::audit(a.seq), detail));
        }
        if trust.audit_seq > 0 && hex::encode(self.audit_link(trust.audit_seq).await?) != trust.audit_link {
            return Err(Error::Fork { kind: ObjectKind::AuditRecord, seq: trust.audit_seq });
        }
        let scanned = self.lane.lock().await.scan_head(pinned).await?;
        let mut torn = None;
        let store = self.store.clone();
        let mut records = std::pin::pin!(
            futures::stream::iter(pinned + 1..=scanned.seq)
                .map(|seq| {
                    let store = store.clone();
                    async move { store.get(&layout::audit(seq)).await.map(|b| (seq, b)) }
                })
                .buffered(READ_AHEAD)
        );
        while let Some((seq, bytes)) = records.try_next().await? {
            match bytes {
                Some(bytes) if self.keys.audit.open(seq, &head.link, &bytes).is_ok() => {
                    head = Head { seq, link: self.keys.audit.link(&bytes) };
                }
                _ => {
                    torn = Some(seq);
                    break;
                }
            }
        }
        self.lane.lock().await.head = head;
        let Some(from) = torn else { return Ok(None) };
        // A power failure tears the newest few unpinned read records (at most 63 per agent
        // session between pins); a store claiming more after an unreadable one is not that, and
        // nothing is deleted on its word.
        if scanned.seq - from >= MAX_TORN_RECORDS {
            return Err(Error::integrity(
                ObjectKind::AuditRecord,
                &layout::audit(from),
                format!(
                    "does not authenticate, and the store claims {} more records after it: refusing to \
                     treat them as torn by a power failure",
                    scanned.seq - from
                ),
            ));
        }
        for seq in from..=scanned.seq {
            self.store.delete(&layout::audit(seq)).await?;
        }
        Ok(Some(format!(
            "removed {} unreadable unpinned audit records ({from}..={}), as a power failure leaves them",
            scanned.seq - from + 1,
            scanned.seq
        )))
    }

    /// The link of audit record `seq`, which must exist.
    async fn audit_link(&self, seq: u64) -> Result<Link> {
        let name = layout::audit(seq);
        let bytes = self.store.get_required(&name, "is pinned but missing").await?;
        Ok(self.keys.audit.link(&bytes))
    }

    /// The newest entry of a log at or after `from` (which must exist, or be 0): entries appended
    /// since are found by galloping forward, then bisecting, without listing the log.
    async fn scan_head(&self, kind: LogKind, from: u64) -> Result<u64> {
        scan_head(&self.store, kind, from).await
    }

    /// Whether entries exist past a gap after `head` (probed densely just after it, then
    /// exponentially further, in one concurrent round): a log with a hole, not one that ends.
    async fn entries_beyond(&self, kind: LogKind, head: u64) -> Result<bool> {
        let probes: Vec<u64> =
            (2..=9).chain((4..=12).map(|k| 1 + (1 << k))).filter_map(|d| head.checked_add(d)).collect();
        Ok(exist_all(&self.store, kind, &probes).await?.into_iter().any(|here| here))
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

    /// [`Vault::audit_append`]; without `pin`, relaxed records are not pinned every
    /// [`PIN_EVERY`] records (a write pins them all with its commit).
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
            self.save_trust().await.map_err(|e| Error::Audit(e.to_string()))?;
        }
        Ok(())
    }

    /// Best effort: records that an operation failed. The original error is what the caller
    /// reports, so a failure to record it is dropped.
    async fn audit_failure(&mut self, op: AuditOp, path: Option<&str>, err: &Error) {
        let _ =
            self.audit_append(op, path, Outcome::Failed(err.to_string()), None, Durability::Relaxed).await;
    }

    /// Reads, checks and decrypts the whole audit trail, oldest first: each record with the
    /// sequence number of its entry (records that were written together share one).
    pub async fn audit_trail(&mut self) -> Result<Vec<(u64, AuditRecord)>> {
        self.audit_append(AuditOp::Audit, None, Outcome::Ok, None, Durability::Relaxed).await?;
        Ok(self
            .read_trail()
            .await?
            .into_iter()
            .flat_map(|(seq, records, _)| records.into_iter().map(move |record| (seq, record)))
            .collect())
    }

    /// The whole audit trail, checked link by link: (seq, the entry's records, link) oldest first.
    async fn read_trail(&self) -> Result<Vec<(u64, Vec<AuditRecord>, Link)>> {
        let seqs = self.log_seqs(LogKind::Audit).await?;
        let mut out = Vec::with_capacity(seqs.len());
        let mut prev = GENESIS;
        let mut entries = std::pin::pin!(self.log_entries(LogKind::Audit, seqs));
        while let Some((seq, bytes)) = entries.try_next().await? {
            let plain = self.keys.audit.open(seq, &prev, &bytes)?;
            let record = decode_audit(&plain, &layout::audit(seq))?;
            prev = self.keys.audit.link(&bytes);
            out.push((seq, record, prev));
        }
        Ok(out)
    }

    /// Proves the commit log and the audit trail whole: both chains unbroken from the first entry,
    /// every audit anchor in the commit log matching the trail, nothing shorter than this machine
    /// has already seen.
    pub async fn verify(&mut self) -> Result<VerifyReport> {
        self.refresh().await?;
        let trust = self.opts.trust.load(&self.vault_id, self.store.location())?;
        // The newest snapshot, compared with the log replayed up to it.
        let snap = snapshot::newest_authentic(&self.store, &self.keys.snapshot, &self.vault_id).await?;
        let snap_seq = snap.map_or(0, |(seq, _)| seq);
        if snap_seq < trust.snapshot_seq.max(self.snapshot_seq) {
            let seen = trust.snapshot_seq.max(self.snapshot_seq);
            return Err(Error::Rollback { kind: ObjectKind::Snapshot, seen, served: snap_seq });
        }
        let mut replayed = (Index::default(), Keyring::default(), (0u64, None), None);
        // The commit log, read afresh.
        let mut anchors = Vec::new();
        let mut prev = GENESIS;
        let mut commits = 0;
        let mut entries =
            std::pin::pin!(self.log_entries(LogKind::Commit, self.log_seqs(LogKind::Commit).await?));
        while let Some((seq, bytes)) = entries.try_next().await? {
            let commit: Commit = decode(
                &self.keys.commit.open(seq, &prev, &bytes)?,
                ObjectKind::Commit,
                &layout::commit(seq),
            )?;
            anchors.extend(commit.audit);
            prev = self.keys.commit.link(&bytes);
            commits = seq;
            if seq <= snap_seq {
                let (index, keyring, keyfile, anchor) = &mut replayed;
                for op in &commit.ops {
                    if let Op::KeyFile { generation, hash } = op {
                        *keyfile = (*generation, Some(*hash));
                    }
                    keyring.apply(op, commit.time_ms);
                    index.apply(op, commit.time_ms);
                }
                if commit.audit.is_some() {
                    *anchor = commit.audit;
                }
            }
            if let Some(found) = snap
                && seq == snap_seq
                && let Some(envelopes) = snapshot::read(&self.store, found).await?
            {
                let (header, index) = snapshot::open(&self.keys.snapshot, &self.vault_id, found, &envelopes)?;
                let (r_index, r_keyring, r_keyfile, r_anchor) = &replayed;
                let expected = (seq, prev, r_keyring, *r_keyfile, *r_anchor);
                if (header.seq, header.link, &header.keyring, header.keyfile, header.anchor) != expected
                    || index != *r_index
                {
                    let part = layout::snapshot(seq, 0, found.1);
                    return Err(Error::integrity(
                        ObjectKind::Snapshot,
                        &part,
                        format!("differs from the commit log replayed up to commit {seq}"),
                    ));
                }
                replayed = (Index::default(), Keyring::default(), (0, None), None);
            }
        }
        let seen = self.log.seq.max(trust.log_seq);
        if commits < seen {
            return Err(Error::Rollback { kind: ObjectKind::Commit, seen, served: commits });
        }
        // The audit trail, and its anchors.
        let trail = self.read_trail().await?;
        let served = trail.len() as u64;
        let seen = self.lane.lock().await.head.seq.max(trust.audit_seq);
        if served < seen {
            return Err(Error::Rollback { kind: ObjectKind::AuditRecord, seen, served });
        }
        for anchor in &anchors {
            let name = layout::audit(anchor.seq);
            let detail = match trail.get(anchor.seq.wrapping_sub(1) as usize) {
                Some((_, _, link)) if *link == anchor.link => continue,
                Some(_) => "differs from the one the commit log anchors",
                None => "is anchored in the commit log but missing",
            };
            return Err(Error::integrity(ObjectKind::AuditRecord, &name, detail));
        }
        let (values, blobs, damaged) = self.check_values().await?;
        let outcome = match damaged.len() {
            0 => Outcome::Ok,
            n => Outcome::Failed(format!("{n} of {values} values damaged")),
        };
        self.audit_append(AuditOp::AuditVerify, None, outcome, None, Durability::Relaxed).await?;
        Ok(VerifyReport {
            commits,
            audit_records: served,
            anchors: anchors.len() as u64,
            snapshot: snap_seq,
            values,
            blobs,
            damaged,
        })
    }

    /// Reads and authenticates every value blob the index references, each version at its own
    /// place: `(versions checked, blob objects read, damaged versions)`. A missing or changed
    /// blob, or a missing epoch key, damages exactly the versions sealed there.
    async fn check_values(&mut self) -> Result<(u64, u64, Vec<Damaged>)> {
        // (epoch, blob id) -> the versions sealed in that object.
        type Versions = Vec<(String, u64, BlobRef)>;
        let mut objects: std::collections::BTreeMap<(u32, [u8; 16]), Versions> = Default::default();
        let versions = self.view.index().versions_in(|_| true);
        let values = versions.len() as u64;
        for (path, version, blob) in versions {
            objects.entry((blob.epoch, blob.id)).or_default().push((path, version, blob));
        }
        let mut damaged = Vec::new();
        let mut keys: HashMap<u32, Option<Arc<Key>>> = HashMap::new();
        for epoch in objects.keys().map(|(epoch, _)| *epoch) {
            if let std::collections::hash_map::Entry::Vacant(slot) = keys.entry(epoch) {
                let key = match self.epoch_key(epoch).await {
                    Ok(_) => self.view.epoch(epoch),
                    Err(Error::Integrity { .. } | Error::AuthFailed) => None,
                    Err(e) => return Err(e),
                };
                slot.insert(key);
            }
        }
        let blobs = objects.len() as u64;
        let store = self.store.clone();
        let mut reads = futures::stream::iter(objects.into_iter().map(|((epoch, id), refs)| {
            let store = store.clone();
            async move {
                let name = layout::blob(epoch, &id);
                let bytes = store.get(&name).await;
                (epoch, name, refs, bytes)
            }
        }))
        .buffered(8);
        let vault_id = self.vault_id;
        while let Some((epoch, name, refs, bytes)) = reads.next().await {
            let mut fail = |refs: &[(String, u64, BlobRef)], detail: &str| {
                damaged.extend(refs.iter().map(|(path, version, _)| Damaged {
                    path: path.clone(),
                    version: *version,
                    object: name.clone(),
                    detail: detail.to_string(),
                }))
            };
            let bytes = match bytes {
                Ok(Some(bytes)) => bytes,
                Ok(None) => {
                    fail(&refs, "its value blob is missing");
                    continue;
                }
                Err(Error::Store(e)) => return Err(Error::Store(e)),
                Err(e) => {
                    fail(&refs, &e.to_string());
                    continue;
                }
            };
            let Some(Some(key)) = keys.get(&epoch) else {
                fail(&refs, &format!("the key of epoch {epoch} is missing or damaged"));
                continue;
            };
            for r in &refs {
                // A slot past the end of a cut object is an empty slice, which never opens.
                if open_slot(key, &vault_id, &name, &r.2, slice_of(&bytes, &r.2)).is_err() {
                    fail(std::slice::from_ref(r), "its sealed value does not authenticate (changed or cut)");
                }
            }
        }
        damaged.sort_by(|a, b| (&a.path, a.version).cmp(&(&b.path, b.version)));
        Ok((values, blobs, damaged))
    }

    // ---- values ---------------------------------------------------------------------------------

    async fn epoch_key(&mut self, epoch: u32) -> Result<Arc<Key>> {
        if let Some(key) = self.view.epoch(epoch) {
            return Ok(key);
        }
        let (_, key) = self.load_epoch_key(epoch).await?;
        let key = Arc::new(key);
        self.view.insert_epoch(epoch, key.clone());
        Ok(key)
    }

    /// Reads and authenticates the wrapped key of `epoch`: (its stored bytes, the key).
    async fn load_epoch_key(&self, epoch: u32) -> Result<(Bytes, Key)> {
        let name = layout::epoch_key(epoch);
        let Some(wrapped) = self.store.get(&name).await? else {
            // Gone because a re-key elsewhere deleted this era: say that, not "tampering".
            self.superseded().await?;
            return Err(Error::integrity(ObjectKind::EpochKey, &name, "is missing"));
        };
        let key =
            unwrap_key(&self.keys.shield, &epoch_aad(&self.vault_id, epoch), &wrapped).map_err(|_| {
                Error::integrity(ObjectKind::EpochKey, &name, "does not authenticate: tampered or forged")
            })?;
        Ok((wrapped, key))
    }

    /// Seals values into new blob objects of the current epoch (see [`seal_packs`]).
    async fn seal_values(&mut self, items: &[(&str, &[u8])]) -> Result<Packs> {
        let epoch = self.keyring.current;
        let vault_id = self.vault_id;
        let key = self.epoch_key(epoch).await?;
        let values: Vec<&[u8]> = items.iter().map(|(_, value)| *value).collect();
        seal_packs(&key, &vault_id, epoch, &values)
    }

    /// The authenticated value of a slot; its envelope is read alone (a range of a pack).
    async fn read_blob(&mut self, blob: &BlobRef) -> Result<SecretBytes> {
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
        open_slot(&key, &vault_id, &name, blob, &envelope)
    }

    /// Every object of the vault, each read afresh and authenticated, in restore order: value
    /// blobs, epoch keys, audit records and commits in sequence, the key file last. Nothing the
    /// vault does not know (stray files, links planted by the store) is included.
    pub(crate) async fn authenticated_objects(&mut self) -> Result<Vec<(String, Bytes)>> {
        let mut out = Vec::new();
        let mut objects: std::collections::BTreeMap<(u32, [u8; 16]), Vec<BlobRef>> = Default::default();
        for blob in self.view.index().blobs() {
            objects.entry((blob.epoch, blob.id)).or_default().push(*blob);
        }
        let mut epochs: Vec<u32> =
            objects.keys().map(|(epoch, _)| *epoch).chain([self.keyring.current]).collect();
        epochs.sort_unstable();
        epochs.dedup();
        let vault_id = self.vault_id;
        for ((epoch, id), slots) in objects {
            let name = layout::blob(epoch, &id);
            let bytes = self.store.get_required(&name, "is missing: the store lost or removed it").await?;
            let key = self.epoch_key(epoch).await?;
            for blob in &slots {
                open_slot(&key, &vault_id, &name, blob, slice_of(&bytes, blob))?;
            }
            out.push((name, bytes));
        }
        for epoch in epochs {
            let (wrapped, _) = self.load_epoch_key(epoch).await?;
            out.push((layout::epoch_key(epoch), wrapped));
        }
        for kind in [LogKind::Audit, LogKind::Commit] {
            let chain = match kind {
                LogKind::Audit => &self.keys.audit,
                LogKind::Commit => &self.keys.commit,
            };
            let mut prev = GENESIS;
            let mut entries = std::pin::pin!(self.log_entries(kind, self.log_seqs(kind).await?));
            while let Some((seq, bytes)) = entries.try_next().await? {
                chain.open(seq, &prev, &bytes)?;
                prev = chain.link(&bytes);
                out.push((kind.name(seq), bytes));
            }
        }
        self.keyfile_fresh().await?;
        let name = layout::keyfile(self.keyfile.generation);
        let keyfile = self.store.get_required(&name, "is missing").await?;
        if tresor_crypto::hash(&keyfile) != self.keyfile_hash {
            return Err(Error::integrity(ObjectKind::KeyFile, &name, "changed while the vault was open"));
        }
        out.push((name, keyfile));
        Ok(out)
    }

    fn check_value(&self, value: &[u8]) -> Result<()> {
        if value.len() > self.opts.max_value {
            return Err(Error::TooLarge { size: value.len(), limit: self.opts.max_value });
        }
        Ok(())
    }

    /// The value of `path` (its current version, or `version`).
    pub async fn get(&mut self, path: &str, version: Option<u64>) -> Result<SecretBytes> {
        validate_path(path)?;
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
    async fn get_inner(&mut self, path: &str, version: Option<u64>) -> Result<(SecretBytes, u64, BlobRef)> {
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
    async fn read_chosen(
        &mut self,
        path: &str,
        number: u64,
        blob: BlobRef,
    ) -> Result<(SecretBytes, u64, BlobRef)> {
        match self.read_blob(&blob).await {
            // Re-sealed and removed (its epoch destroyed: blob or key gone) since this handle last
            // looked: the index now names where the value went.
            Err(Error::Integrity { kind: ObjectKind::ValueBlob | ObjectKind::EpochKey, .. }) => {
                self.refresh().await?;
                let moved = self.view.index().blob_of(path, number);
                match moved {
                    Some(moved) if moved != blob => Ok((self.read_blob(&moved).await?, number, moved)),
                    _ => Ok((self.read_blob(&blob).await?, number, blob)),
                }
            }
            result => Ok((result?, number, blob)),
        }
    }

    /// Stores a new version of `path` only if its current version is `cas` (0: only if it has no
    /// live version), as Vault's KV v2 check-and-set: another writer's newer version makes it fail
    /// with [`Error::Conflict`] and nothing is written.
    pub async fn set_cas(&mut self, path: &str, value: &[u8], cas: u64) -> Result<u64> {
        let versions = self.put(AuditOp::Set, &[(path, value)], Some(cas)).await?;
        versions.first().copied().ok_or_else(|| Error::Invalid("nothing was written".into()))
    }

    /// Stores several secrets in one commit (all or none); `op` names it in the audit trail.
    pub async fn set_many(&mut self, op: AuditOp, items: &[(&str, &[u8])]) -> Result<Vec<u64>> {
        self.put(op, items, None).await
    }

    async fn put(&mut self, op: AuditOp, items: &[(&str, &[u8])], cas: Option<u64>) -> Result<Vec<u64>> {
        let actor = self.opts.actor.clone();
        self.put_as(op, items, &[(items.len(), actor.as_str())], cas).await
    }

    /// Acts for `actor` from now on: what audit records and commits name.
    pub(crate) fn act_for(&mut self, actor: &str) {
        if self.opts.actor != actor {
            self.opts.actor = actor.to_string();
        }
    }

    /// [`Engine::put`] of the requests of several actors at once (a group commit): `runs` says,
    /// in order, how many of `items` each actor asked for; each one's audit records name it.
    pub(crate) async fn put_as(
        &mut self,
        op: AuditOp,
        items: &[(&str, &[u8])],
        runs: &[(usize, &str)],
        cas: Option<u64>,
    ) -> Result<Vec<u64>> {
        let mut seen = std::collections::HashSet::new();
        for (path, value) in items {
            validate_path(path)?;
            self.check_value(value)?;
            if !seen.insert(*path) {
                return Err(Error::Invalid(format!("{path} appears twice in one write")));
            }
        }
        self.refresh().await?;
        if let Err(e) = self.rotate_if_due().await {
            tracing::warn!("automatic epoch rotation failed; the write goes on in the current epoch: {e}");
        }
        let durability = if items.len() > SMALL_WRITE { Durability::Relaxed } else { Durability::Sync };

        // An epoch destroyed between sealing and committing (it was current when this write
        // began): seal again in the new current epoch.
        for attempt in 0..3 {
            let (objects, refs) = self.seal_values(items).await?;
            let epoch = refs.first().map_or(self.keyring.current, |b| b.epoch);
            let object_names: Vec<String> = objects.iter().map(|(name, _)| name.clone()).collect();
            // The blobs and the audit records are independent: write them at the same time, so
            // their fsyncs share journal commits instead of queueing one behind the other. A
            // bigger write makes them durable all at once before its commit (one `syncfs` on a
            // local directory).
            let store = self.store.clone();
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
                            let paths: Vec<&str> = chunk.iter().map(|(p, _)| *p).collect();
                            let detail = format!("{} secrets, {written}: {}", paths.len(), paths.join(", "));
                            records.push(record(None, detail));
                        }
                    }
                }
                self.audit_append_entry(&records, durability, false).await?;
                Ok::<_, Error>(())
            };
            let (blobs_written, audited) = tokio::join!(write_blobs, write_audit);
            audited?;
            if let Err(e) = blobs_written {
                for (path, _) in items {
                    self.audit_failure(op, Some(path), &e).await;
                }
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
                .commit(|index, keyring| {
                    if keyring.is_destroyed(epoch) {
                        destroyed.store(true, Relaxed);
                        return Err(Error::Conflict(format!("epoch {epoch} was destroyed during the write")));
                    }
                    puts.iter()
                        .map(|(path, blob)| {
                            // Checked against the index as of the commit being built: after a lost
                            // race the check runs again on the winner's state.
                            if let Some(expected) = cas {
                                let current = index.get(path).and_then(|e| e.live()).map_or(0, |v| v.version);
                                if current != expected {
                                    return Err(Error::Conflict(format!(
                                        "check-and-set failed: {path} is at version {current}, not {expected}"
                                    )));
                                }
                            }
                            let version = index.get(path).map_or(1, |e| e.next_version());
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
                    for (path, _) in items {
                        self.audit_failure(op, Some(path), &e).await;
                    }
                    return Err(e);
                }
            }
        }
        let e = Error::Conflict("the current epoch kept being destroyed during the write".into());
        for (path, _) in items {
            self.audit_failure(op, Some(path), &e).await;
        }
        Err(e)
    }

    /// Deletes the current version of `path` (history is kept); returns the deleted version.
    pub async fn delete(&mut self, path: &str) -> Result<u64> {
        validate_path(path)?;
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
        self.refresh().await?;
        self.audit_append(AuditOp::Status, None, Outcome::Ok, None, Durability::Relaxed).await?;
        let audit_records = self.lane.lock().await.head.seq;
        Ok(Status {
            vault_id: hex::encode(self.vault_id),
            location: self.store.location().to_string(),
            cipher: "XChaCha20-Poly1305".to_string(),
            kdf: format!("argon2id m={} t={} p={}", self.kdf.m_kib, self.kdf.t, self.kdf.p),
            secrets: self.view.index().live_count(),
            commits: self.log.seq,
            audit_records,
            keyfile_generation: self.keyfile.generation,
            epoch: self.keyring.current,
            snapshot: self.snapshot_seq,
            rotation_failure: self.rotation_failure.clone(),
            fingerprint: self.fingerprint.to_string(),
            era: self.era,
        })
    }

    /// Records that the vault is being locked (the caller then drops it, wiping every key).
    pub async fn lock(mut self, reason: &str) -> Result<()> {
        self.flush_reseal().await;
        let detail = Some(reason.to_string());
        let mut result =
            self.audit_append(AuditOp::Lock, None, Outcome::Ok, detail, Durability::Relaxed).await;
        if result.is_ok() {
            result = self.save_trust().await;
        }
        // The audit chain's key goes now, with every other key when the engine drops: reads
        // still in flight fail at their audit record.
        self.lane.lock().await.close();
        result
    }

    /// Changes the password of the slot that opened this handle: writes key file generation + 1
    /// with that slot replaced (the other slots keep their passwords), records it in the commit
    /// log, removes the old key file. No value is re-encrypted.
    pub async fn passwd(&mut self, new_password: &Password, params: KdfParams) -> Result<()> {
        check_password_rules(new_password)?;
        // First: following a newer key file can renumber (or remove) this handle's slot.
        self.keyfile_fresh().await?;
        let slot = self.slot.ok_or_else(|| {
            Error::Invalid("the password slot this handle was unlocked with is gone; unlock again".into())
        })?;
        let next = self.keyfile.with_new_password(&self.keys.root, slot, new_password, params)?;
        let detail = format!("slot {slot}; key file generation {}", next.generation);
        self.change_keyfile(next, Some(slot), AuditOp::Passwd, detail).await?;
        // Shown by `status`; the pin is the weakest slot's (lower ones too: the user chose them).
        self.kdf = params;
        self.save_trust().await
    }

    /// The key file's slots.
    pub async fn keyslots(&mut self) -> Result<Vec<KeySlotView>> {
        self.keyfile_fresh().await?;
        Ok(self
            .keyfile
            .slots
            .iter()
            .enumerate()
            .map(|(index, slot)| KeySlotView {
                index,
                kind: match slot.kind {
                    SlotKind::Password => "password".into(),
                    _ => "reserved".into(),
                },
                kdf: format!("argon2id m={} KiB t={} p={}", slot.params.m_kib, slot.params.t, slot.params.p),
                this_session: self.slot == Some(index),
            })
            .collect())
    }

    /// Adds a password slot (LUKS2's `luksAddKey`); returns its index. Other slots are unchanged.
    pub async fn keyslot_add(&mut self, password: &Password, params: KdfParams) -> Result<usize> {
        check_password_rules(password)?;
        self.keyfile_fresh().await?;
        let next = self.keyfile.with_added_password(&self.keys.root, password, params)?;
        let index = next.slots.len() - 1;
        let detail = format!("slot {index} added; key file generation {}", next.generation);
        self.change_keyfile(next, self.slot, AuditOp::KeyslotAdd, detail).await?;
        Ok(index)
    }

    /// Removes slot `index`; never the last password slot. Removing the slot this handle was
    /// opened with is allowed (another password remains); later slots move down by one.
    pub async fn keyslot_remove(&mut self, index: usize) -> Result<()> {
        self.keyfile_fresh().await?;
        let next = self.keyfile.without_slot(&self.keys.root, index)?;
        let detail = format!("slot {index} removed; key file generation {}", next.generation);
        let slot_after = match self.slot {
            Some(s) if s == index => None,
            Some(s) if s > index => Some(s - 1),
            other => other,
        };
        self.change_keyfile(next, slot_after, AuditOp::KeyslotRemove, detail).await
    }

    /// Opens the vault at `store` with its recovery phrase and gives it `new_password` in a new
    /// slot; with `keep_slots` false the other slots are dropped (the key file then holds only
    /// the new password). A phrase of another vault is refused ([`Error::WrongPhrase`]) and a
    /// bad new password ([`Error::PasswordRule`]) before anything is written. The audit trail
    /// records the recovery.
    pub async fn recover(
        store: Store,
        phrase: &tresor_crypto::Phrase,
        new_password: &Password,
        params: KdfParams,
        keep_slots: bool,
        opts: Options,
    ) -> Result<Engine> {
        check_password_rules(new_password)?;
        params.check().map_err(|_| Error::Invalid("KDF parameters out of the accepted range".into()))?;
        let root = phrase.to_key().ok_or_else(|| {
            Error::Invalid(format!(
                "a vault's recovery phrase has 24 words; this one has {}",
                phrase.word_count()
            ))
        })?;
        if keep_slots && load_keyfile(&store).await?.0.slots.len() >= crate::keyfile::MAX_SLOTS {
            return Err(Error::Invalid(format!(
                "the key file already holds {} slots, the most it may: recover without --keep-slots \
                 (the new password replaces them all)",
                crate::keyfile::MAX_SLOTS
            )));
        }
        let mut vault = Engine::open(store, Opener::Root(root), opts).await?;
        let next = if keep_slots {
            vault.keyfile.with_added_password(&vault.keys.root, new_password, params)?
        } else {
            vault.keyfile.with_only_password(&vault.keys.root, new_password, params)?
        };
        let index = next.slots.len() - 1;
        let kept = if keep_slots { "the other slots kept" } else { "every other slot dropped" };
        let detail = format!(
            "recovery phrase; new password in slot {index}, {kept}; key file generation {}",
            next.generation
        );
        vault.change_keyfile(next, Some(index), AuditOp::Recover, detail).await?;
        vault.kdf = params;
        vault.save_trust().await?;
        Ok(vault)
    }

    /// Whether the commit log records a key file change other than key file `generation` with
    /// `hash` at that generation or later: another writer's change won.
    fn keyfile_superseded(&self, generation: u64, hash: &[u8; 32]) -> bool {
        let (logged, logged_hash) = self.logged_keyfile;
        generation < logged || generation == logged && logged_hash.is_some_and(|h| h != *hash)
    }

    /// Brings this handle to the key file generation the commit log records as newest: a
    /// long-lived handle (the agent's) follows slot changes made elsewhere. The newer key file
    /// must hash to what the log records and carry a MAC under this vault's root; the slot this
    /// handle was opened with is found again by its salt (`None` if it was removed).
    async fn keyfile_fresh(&mut self) -> Result<()> {
        self.refresh().await?;
        let (logged, hash) = self.logged_keyfile;
        if logged <= self.keyfile.generation {
            return Ok(());
        }
        let name = layout::keyfile(logged);
        let changed = || {
            Error::Conflict(
                "the key file was changed by another writer meanwhile; run the command again".into(),
            )
        };
        // Superseded again meanwhile (its older generations are removed): the caller retries.
        let bytes = self.store.get(&name).await?.ok_or_else(changed)?;
        let digest = tresor_crypto::hash(&bytes);
        let next = KeyFile::parse(&bytes)?;
        if hash.is_some_and(|h| h != digest)
            || next.generation != logged
            || next.vault_id != self.vault_id
            || !next.opens_with_root(&self.keys.root)
        {
            return Err(Error::integrity(
                ObjectKind::KeyFile,
                &name,
                "differs from the one the commit log records",
            ));
        }
        let salt = self.slot.and_then(|i| self.keyfile.slots.get(i)).map(|slot| slot.salt);
        self.slot = salt.and_then(|salt| next.slots.iter().position(|slot| slot.salt == salt));
        if let Some(slot) = self.slot.and_then(|i| next.slots.get(i)) {
            self.kdf = slot.params;
        }
        self.keyfile = next;
        self.keyfile_hash = digest;
        self.save_trust().await
    }

    /// Writes `next` (generation + 1) after an audit record `op`, records it in the commit log,
    /// and removes the older generations. `slot_after` is this handle's slot in `next`.
    async fn change_keyfile(
        &mut self,
        next: KeyFile,
        slot_after: Option<usize>,
        op: AuditOp,
        detail: String,
    ) -> Result<()> {
        let bytes = next.encode();
        let hash = tresor_crypto::hash(&bytes);
        self.audit_append(op, None, Outcome::Ok, Some(detail), Durability::Sync).await?;
        let name = layout::keyfile(next.generation);
        let created = match self.create_idempotent(&name, &bytes, Durability::Sync).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                Err(Error::Conflict("the key file was changed by another writer; unlock again".into()))
            }
            Err(e) => Err(e),
        };
        if let Err(e) = created {
            self.audit_failure(op, None, &e).await;
            return Err(e);
        }
        let generation = next.generation;
        self.pending_keyfile = Some(((generation, hash), false));
        let committed = self.commit(|_, _| Ok(vec![Op::KeyFile { generation, hash }])).await;
        let recorded = self.pending_keyfile.take().is_some_and(|(_, recorded)| recorded);
        if let Err(e) = committed {
            if recorded {
                // Another writer recorded our key file (and may have changed it since): the
                // change is in force. This handle takes it, then follows to the newest.
                self.keyfile = next;
                self.keyfile_hash = hash;
                self.slot = slot_after;
                return self.keyfile_fresh().await;
            }
            self.audit_failure(op, None, &e).await;
            if self.keyfile_superseded(generation, &hash) {
                // Another writer's change is the one in force: ours is superseded debris.
                self.delete_objects(std::slice::from_ref(&name)).await;
                return Err(e);
            }
            // The new key file is in the store and, being the newest, is the one unlock uses.
            // Removing it could race a commit still landing; the next unlock records it instead.
            let in_force = match op {
                AuditOp::Passwd | AuditOp::Recover => "the NEW password now opens the vault",
                _ => "the change is in force",
            };
            return Err(Error::Store(format!(
                "the key file change ({op}) could not be recorded ({e}); its new key file was written, so \
                 {in_force}, and the next unlock records the change"
            )));
        }
        let old = self.keyfile.generation;
        self.keyfile = next;
        self.keyfile_hash = hash;
        self.slot = slot_after;
        self.save_trust().await?;
        // The change is complete; removing the old generation is clean-up, which `gc` and the
        // next change retry.
        if let Err(e) = self.remove_keyfiles_up_to(old).await {
            tracing::warn!("the old key file could not be removed yet: {e}");
        }
        Ok(())
    }

    async fn remove_keyfiles_up_to(&self, generation: u64) -> Result<()> {
        for name in self.store.list(layout::KEYFILE_DIR).await? {
            if parse_seq(&name, layout::KEYFILE_DIR).is_some_and(|g| g <= generation) {
                self.store.delete(&name).await?;
            }
        }
        Ok(())
    }

    /// Records in the commit log a key file generation that an interrupted `passwd` wrote but
    /// could not record (the key file this unlock used is newer than the log says).
    async fn adopt_keyfile(&mut self) -> Result<()> {
        if self.keyfile.generation <= self.logged_keyfile.0 {
            return Ok(());
        }
        let (generation, hash) = (self.keyfile.generation, self.keyfile_hash);
        let detail = format!(
            "recorded key file generation {generation} left by an interrupted key file change \
             (passwd, keyslot add or remove, recover)"
        );
        self.audit_append(AuditOp::KeyfileAdopt, None, Outcome::Ok, Some(detail), Durability::Sync).await?;
        self.commit(|_, _| Ok(vec![Op::KeyFile { generation, hash }])).await?;
        if let Err(e) = self.remove_keyfiles_up_to(generation - 1).await {
            tracing::warn!("the old key file could not be removed yet: {e}");
        }
        Ok(())
    }

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

    /// The root secret, for the archive MAC. Kept crate-private.
    pub(crate) fn root(&self) -> &Key {
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
    }
}
