//! Key epochs: rotation, re-encryption, destruction (forward secrecy, TARGET.md §5).
//!
//! - T23: after `destroy_epoch(e)`, whoever later holds the password and the store *as it is then*
//!   cannot open what epoch `e` sealed: the test copies the epoch's blobs out of the store first,
//!   shows that its own attacker opens them while the epoch exists, destroys it, and lets the same
//!   attacker try every key the password and the store still yield. Locally, and on S3 when
//!   configured.
//! - T14: crash points during `reencrypt` and `destroy_epoch` (through `FaultStore`): every value
//!   stays readable, and running the command again finishes it.
//! - T15: two handles rotating at once agree on one epoch and leave no orphan key; writers keep
//!   writing through rotations without losing an acknowledged write; two destructions of one
//!   epoch at once both succeed (one handle paused at a chosen store operation by a [`Gate`]).
//! - Lazy re-sealing after reads is batched (one commit per 64 values) and flushed at lock; the
//!   rotation policy; refusals; the audit trail of all of it.
//! - Ignored until `Vault::get_inner` (vault.rs) handles it: a read racing a destruction.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use async_trait::async_trait;
use bytes::Bytes;
use common::{Env, PASSWORD, opts, pw};
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tresor::keyfile::KeyFile;
use tresor::vault::{DestroyReport, EpochList, Residue};
use tresor::{Error, Store, Vault, layout};
use tresor_crypto::envelope::{ALG_XCHACHA20_POLY1305, MAGIC, VERSION};
use tresor_crypto::wrap::unwrap_key;
use tresor_crypto::{Context, Key, Purpose, derive_key};
use tresor_testkit::fault::FaultStore;

// ---- a model of what was written ------------------------------------------------------------------

/// Secrets as written: path → (version, value, deleted), oldest first.
#[derive(Clone, Debug, Default)]
struct Model(BTreeMap<String, Vec<(u64, Vec<u8>, bool)>>);

impl Model {
    fn put(&mut self, path: &str, version: u64, value: &[u8]) {
        let versions = self.0.entry(path.to_string()).or_default();
        assert_eq!(version, versions.len() as u64 + 1, "{path}: versions are 1, 2, ...");
        versions.push((version, value.to_vec(), false));
    }

    /// Every version (current and history).
    fn versions(&self) -> u64 {
        self.0.values().map(|v| v.len() as u64).sum()
    }
}

async fn set(v: &mut Vault, m: &mut Model, path: &str, value: &[u8]) {
    let version = v.set(path, value).await.unwrap_or_else(|e| panic!("set {path}: {e}"));
    m.put(path, version, value);
}

async fn set_many(v: &mut Vault, m: &mut Model, items: &[(String, Vec<u8>)]) {
    let refs: Vec<(&str, &[u8])> = items.iter().map(|(p, v)| (p.as_str(), v.as_slice())).collect();
    let versions = v.set_many(tresor::model::AuditOp::Import, &refs).await.unwrap();
    for ((path, value), version) in items.iter().zip(versions) {
        m.put(path, version, value);
    }
}

async fn delete(v: &mut Vault, m: &mut Model, path: &str) {
    let version = v.delete(path).await.unwrap();
    let last = m.0.get_mut(path).and_then(|v| v.last_mut()).unwrap();
    assert_eq!(last.0, version);
    last.2 = true;
}

/// `n` items `{prefix}/{i}`; odd ones are 700 random bytes (another envelope size, and
/// incompressible), even ones short text.
fn items(prefix: &str, n: usize) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let value =
                if i % 2 == 1 { common::random_bytes(700) } else { format!("{prefix}-{i}").into_bytes() };
            (format!("{prefix}/{i:02}"), value)
        })
        .collect()
}

/// Every version of every secret reads with its value, histories are as written, and the
/// listing holds exactly the live secrets at their newest versions.
async fn check_all(v: &mut Vault, m: &Model, when: &str) {
    check_values(v, m, when, true).await;
}

/// [`check_all`]; without `histories`, the histories are not compared (only every version read).
async fn check_values(v: &mut Vault, m: &Model, when: &str, histories: bool) {
    for (path, versions) in &m.0 {
        if histories {
            let history = v.history(path).await.unwrap_or_else(|e| panic!("{when}: history {path}: {e}"));
            let seen: Vec<(u64, bool)> =
                history.iter().map(|h| (h.version, h.deleted_ms.is_some())).collect();
            let want: Vec<(u64, bool)> = versions.iter().map(|(n, _, deleted)| (*n, *deleted)).collect();
            assert_eq!(seen, want, "{when}: history of {path}");
        }
        for (n, value, _) in versions {
            let got = v.get(path, Some(*n)).await.unwrap_or_else(|e| panic!("{when}: get {path} v{n}: {e}"));
            assert!(got.as_slice() == value.as_slice(), "{when}: {path} v{n} reads another value");
        }
    }
    let listed: Vec<(String, u64)> =
        v.list("").await.unwrap().into_iter().map(|e| (e.path, e.version)).collect();
    let live: Vec<(String, u64)> =
        m.0.iter()
            .filter_map(|(path, vs)| {
                vs.last().filter(|(_, _, deleted)| !deleted).map(|(n, _, _)| (path.clone(), *n))
            })
            .collect();
    assert_eq!(listed, live, "{when}: live secrets");
}

/// Versions sealed in `epoch`, as `epochs()` counts them.
fn values_in(list: &EpochList, epoch: u32) -> u64 {
    list.epochs.iter().find(|e| e.epoch == epoch).map_or(0, |e| e.values)
}

fn blob_dir(epoch: u32) -> String {
    format!("{}/{epoch:010}", layout::BLOB_DIR)
}

/// Objects of `epoch` in the store: its blobs and its wrapped key.
async fn epoch_objects(store: &Store, epoch: u32) -> Vec<String> {
    let mut names = store.list(&blob_dir(epoch)).await.unwrap();
    if store.exists(&layout::epoch_key(epoch)).await.unwrap() {
        names.push(layout::epoch_key(epoch));
    }
    names
}

/// `(name, bytes)` of every object under `dir`.
async fn read_all(store: &Store, dir: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for name in store.list(dir).await.unwrap() {
        let bytes = store.get(&name).await.unwrap().unwrap();
        out.push((name, bytes.to_vec()));
    }
    out
}

// ---- the attacker ------------------------------------------------------------------------------------

/// Every purpose a key is derived from the root secret for.
const PURPOSES: [Purpose; 8] = [
    Purpose::LogSeal,
    Purpose::LogChain,
    Purpose::AuditSeal,
    Purpose::AuditChain,
    Purpose::Shield,
    Purpose::KeyFileMac,
    Purpose::ExportMac,
    Purpose::SnapshotSeal,
];

/// ARCHITECTURE.md: the associated data of a wrapped epoch key.
fn epoch_aad(vault_id: &[u8; 16], epoch: u32) -> Vec<u8> {
    [b"tresor/v1/epoch-key".as_slice(), vault_id, &epoch.to_be_bytes()].concat()
}

/// What an attacker holding the password and `epoch_keys` (wrapped epoch key objects) can derive:
/// the root secret from the key file, every key derived from it, and every epoch key that
/// unwraps (under its own number, and under every number of the objects attacked).
fn attacker_keys(keyfile: &[u8], epoch_keys: &[(String, Vec<u8>)], attacked: u32) -> ([u8; 16], Vec<Key>) {
    let kf = KeyFile::parse(keyfile).unwrap();
    let (root, _) = kf.unlock(&pw(PASSWORD), None).unwrap();
    let root = root.into_key();
    let vault_id = kf.vault_id;
    let shield = derive_key(&root, &vault_id, Purpose::Shield);
    let mut keys: Vec<Key> = PURPOSES.iter().map(|p| derive_key(&root, &vault_id, *p)).collect();
    for (name, wrapped) in epoch_keys {
        let epoch: u32 = name.strip_prefix("epoch/").unwrap().parse().unwrap();
        let mut unwrapped = false;
        for aad_epoch in BTreeSet::from([epoch, attacked]) {
            if let Ok(key) = unwrap_key(&shield, &epoch_aad(&vault_id, aad_epoch), wrapped) {
                keys.push(key);
                unwrapped = true;
            }
        }
        assert!(unwrapped, "the attacker's procedure cannot unwrap {name}: it is broken");
    }
    keys.push(root);
    (vault_id, keys)
}

/// Tries every key on every envelope of the captured blob objects of `epoch`. The attacker does
/// not know where a pack's envelopes end: every envelope starts with the envelope header, so each
/// header is tried as a start with every later header (or the end) as its end, and every slot
/// number the object could have. Returns (envelopes opened, envelopes, values recovered).
fn attack(
    vault_id: &[u8; 16],
    keys: &[Key],
    captured: &[(String, Vec<u8>)],
    epoch: u32,
) -> (usize, usize, BTreeSet<Vec<u8>>) {
    let header = [MAGIC.as_slice(), &[VERSION, ALG_XCHACHA20_POLY1305]].concat();
    let (mut opened, mut total, mut recovered) = (0, 0, BTreeSet::new());
    for (name, bytes) in captured {
        let starts: Vec<usize> = (0..bytes.len()).filter(|i| bytes[*i..].starts_with(&header)).collect();
        assert!(!starts.is_empty() && starts[0] == 0, "{name} does not start with an envelope");
        let ends: Vec<usize> = starts[1..].iter().copied().chain([bytes.len()]).collect();
        total += starts.len();
        for start in &starts {
            let found = ends.iter().filter(|end| *end > start).find_map(|end| {
                (0..starts.len() as u32).find_map(|slot| {
                    let extra = slot.to_be_bytes();
                    let ctx = Context { vault_id, role: "blob", object: name, epoch, extra: &extra };
                    keys.iter().find_map(|key| tresor_crypto::open(key, &ctx, &bytes[*start..*end]).ok())
                })
            });
            if let Some(value) = found {
                opened += 1;
                recovered.insert(value.as_slice().to_vec());
            }
        }
    }
    (opened, total, recovered)
}

/// The newest key file's bytes.
async fn keyfile_bytes(store: &Store) -> Vec<u8> {
    let newest = store.list(layout::KEYFILE_DIR).await.unwrap().pop().unwrap();
    store.get(&newest).await.unwrap().unwrap().to_vec()
}

// ---- 1. T23: forward secrecy ------------------------------------------------------------------------

/// Checks a destruction report: everything of the epoch deleted, and no old version of it kept
/// by the store (a directory, or a bucket without versioning: `NotKept`).
fn check_destroyed(report: &DestroyReport, epoch: u32, _s3: bool) -> String {
    assert_eq!(report.epoch, epoch);
    assert_eq!(report.remaining_objects, 0, "{report:?}");
    assert!(report.complete(), "the destruction is not complete: {report:?}");
    assert_eq!(report.residue, Residue::NotKept, "{report:?}");
    "complete".into()
}

/// Epoch-1 secrets (single values, a pack, history of an overwritten and of a deleted secret)
/// under three epochs; the attacker before and after `destroy_epoch(1)`. Returns the figure.
async fn forward_secrecy(store: impl Fn() -> Store, trust: &Path, other_trust: &Path, s3: bool) -> String {
    let mut m = Model::default();
    let mut v = Vault::init(store(), &pw(PASSWORD), opts(trust)).await.unwrap();
    // Epoch 1: three single values (a blob object each, slot 0) and a pack of 12.
    set(&mut v, &mut m, "app/db", b"db-1").await;
    set(&mut v, &mut m, "app/api", b"api-1").await;
    set(&mut v, &mut m, "app/gone", b"gone-1").await;
    set_many(&mut v, &mut m, &items("pack", 12)).await;
    let epoch1: BTreeSet<Vec<u8>> =
        m.0.values().flat_map(|vs| vs.iter().map(|(_, value, _)| value.clone())).collect();
    // Epoch 2: app/db v1 and pack/03 v1 become history; app/gone is deleted (history only).
    let r = v.rotate("manual").await.unwrap();
    assert!(r.ours && r.epoch == 2, "{r:?}");
    set(&mut v, &mut m, "app/db", b"db-2").await;
    set(&mut v, &mut m, "pack/03", b"pack-03-v2").await;
    delete(&mut v, &mut m, "app/gone").await;
    set(&mut v, &mut m, "b/one", b"b-1").await;
    // Epoch 3.
    assert_eq!(v.rotate("manual").await.unwrap().epoch, 3);
    set(&mut v, &mut m, "c/three", b"c-3").await;
    set(&mut v, &mut m, "app/db", b"db-3").await;
    let list = v.epochs().await.unwrap();
    assert_eq!(values_in(&list, 1), 15, "3 single values and a pack of 12 in epoch 1");
    assert_eq!(list.epochs.iter().map(|e| e.epoch).collect::<Vec<_>>(), [1, 2, 3]);

    // The copy an attacker could have taken: epoch 1's blobs and its wrapped key.
    let s = store();
    let captured = read_all(&s, &blob_dir(1)).await;
    assert_eq!(captured.len(), 4, "three single-value objects and one pack");
    let wrapped1 = s.get(&layout::epoch_key(1)).await.unwrap().unwrap().to_vec();
    assert_eq!(wrapped1.len(), 104);
    // Positive control: the attacker's procedure on the store as it is now opens all of it.
    let (vault_id, keys) = attacker_keys(&keyfile_bytes(&s).await, &read_all(&s, layout::EPOCH_DIR).await, 1);
    let (before, total, recovered) = attack(&vault_id, &keys, &captured, 1);
    assert_eq!(total, 15, "the attacker finds 15 envelopes in the copied objects");
    assert_eq!(before, total, "the attacker's procedure must open epoch 1 before its destruction");
    assert_eq!(recovered, epoch1, "and recover exactly the values written in epoch 1");
    drop(keys);

    let report = v.destroy_epoch(1, &mut |_, _| {}).await.unwrap();
    let completeness = check_destroyed(&report, 1, s3);
    assert_eq!(report.reencrypted.values, 15, "{report:?}");
    assert_eq!(report.reencrypted.epoch, 3, "{report:?}");
    assert_eq!(report.deleted_objects, 5, "4 blob objects and the wrapped key: {report:?}");
    let residual = epoch_objects(&s, 1).await;
    assert_eq!(residual, Vec::<String>::new(), "objects of epoch 1 left in the store");
    check_all(&mut v, &m, "after destroy").await;
    v.verify().await.unwrap();
    let list = v.epochs().await.unwrap();
    let e1 = list.epochs.iter().find(|e| e.epoch == 1).unwrap();
    assert_eq!((e1.state.as_str(), e1.values, e1.leftover_objects), ("destroyed", 0, Some(0)), "{e1:?}");
    assert!(e1.destroyed_ms.is_some());
    assert_eq!(values_in(&list, 3), 15 + 2, "the 15 moved values and epoch 3's own two");
    assert!(matches!(v.get("app/gone", None).await, Err(Error::Deleted { version: 1, .. })));
    // gc finds nothing of the epoch left, and snapshots the keyring with the destruction in it.
    let gc = v.gc(Duration::ZERO, false).await.unwrap();
    assert_eq!((gc.destroyed_epoch_objects, gc.orphan_blobs, gc.orphan_epoch_keys), (0, 0, 0), "{gc:?}");
    drop(v);
    // New handles (opening from that snapshot), on this machine and on another, read everything.
    for trust in [trust, other_trust] {
        let mut w = Vault::unlock(store(), &pw(PASSWORD), opts(trust)).await.unwrap();
        assert!(w.status().await.unwrap().snapshot > 0, "opened from the snapshot gc wrote");
        check_all(&mut w, &m, "after destroy, new handle").await;
        let list = w.epochs().await.unwrap();
        let states: Vec<&str> = list.epochs.iter().map(|e| e.state.as_str()).collect();
        assert_eq!(states, ["destroyed", "active", "current"]);
        w.verify().await.unwrap();
    }

    // The attacker, with the password and the store as it is now.
    let epoch_keys = read_all(&s, layout::EPOCH_DIR).await;
    let names: Vec<&str> = epoch_keys.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, [layout::epoch_key(2), layout::epoch_key(3)]);
    let (vault_id, keys) = attacker_keys(&keyfile_bytes(&s).await, &epoch_keys, 1);
    assert_eq!(keys.len(), PURPOSES.len() + 2 + 1, "8 derived keys, 2 epoch keys, the root");
    let (after, total_after, recovered) = attack(&vault_id, &keys, &captured, 1);
    assert_eq!(total_after, total);
    assert_eq!((after, recovered.len()), (0, 0), "epoch-1 envelopes opened after the destruction");
    // The same keys do open what the store still holds (epoch 2's blobs): the attack is real.
    let epoch2 = read_all(&s, &blob_dir(2)).await;
    let (opened2, total2, _) = attack(&vault_id, &keys, &epoch2, 2);
    assert!(total2 > 0 && opened2 == total2, "the attacker opens {opened2}/{total2} epoch-2 envelopes");
    // What the honest claim excludes, shown for completeness: with the key copied before.
    let (_, with_copy) = attacker_keys(&keyfile_bytes(&s).await, &[(layout::epoch_key(1), wrapped1)], 1);
    assert_eq!(
        attack(&vault_id, &with_copy, &captured, 1).0,
        total,
        "a copy of the key taken before opens it"
    );
    format!(
        "epoch-1 secrets recovered {after}/{total} after destroy ({before} before), residual epoch-1 objects {} \
         (destruction {completeness}; the same keys open {opened2}/{total2} epoch-2 envelopes)",
        residual.len()
    )
}

#[tokio::test]
async fn t23_destroyed_epoch_is_unreadable_with_the_password_and_the_store_as_it_is_now() {
    let env = Env::new();
    let loc = env.loc.clone();
    let figure = forward_secrecy(|| common::store(&loc, true), &env.trust, &env.path("trust-b"), false).await;
    println!("T23-local: {figure}");
}

#[tokio::test]
async fn t23_destroyed_epoch_is_unreadable_on_s3() {
    let Some(location) = common::s3_location("epochs") else { return };
    let env = Env::new();
    let opened = common::open(&location, false).await;
    let store = || opened.clone();
    let figure = forward_secrecy(store, &env.trust, &env.path("trust-b"), true).await;
    println!("T23-s3: {figure}");
}

// ---- 2. T14: crash points during re-encryption and destruction ------------------------------------

/// ~40 secrets with history over epochs 1 and 2 in `env.loc`, current epoch 3.
async fn crash_template(env: &Env) -> Model {
    let mut m = Model::default();
    let mut v = env.init().await;
    set_many(&mut v, &mut m, &items("p1", 15)).await;
    for i in 0..5 {
        set(&mut v, &mut m, &format!("s1/{i}"), format!("s1-{i}").as_bytes()).await;
    }
    v.rotate("manual").await.unwrap();
    set_many(&mut v, &mut m, &items("p2", 15)).await;
    for i in 0..5 {
        set(&mut v, &mut m, &format!("s2/{i}"), format!("s2-{i}").as_bytes()).await;
    }
    // History: epoch-1 versions overwritten in epoch 2.
    for i in 0..3 {
        set(&mut v, &mut m, &format!("s1/{i}"), format!("s1-{i}-v2").as_bytes()).await;
    }
    for i in [0, 1] {
        set(&mut v, &mut m, &format!("p1/{i:02}"), format!("p1-{i}-v2").as_bytes()).await;
    }
    assert_eq!(v.rotate("manual").await.unwrap().epoch, 3);
    let list = v.epochs().await.unwrap();
    assert_eq!((values_in(&list, 1), values_in(&list, 2), values_in(&list, 3)), (20, 25, 0));
    m
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Job {
    Reencrypt,
    Destroy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// The k-th write lands; its caller hears an error, and every later operation fails.
    LostAck,
    /// The k-th write lands and is acknowledged; the process dies before its next operation.
    Acked,
}

async fn run_job(job: Job, v: &mut Vault) -> tresor::Result<()> {
    match job {
        Job::Reencrypt => v.reencrypt(&mut |_, _| {}).await.map(drop),
        Job::Destroy => v.destroy_epoch(1, &mut |_, _| {}).await.map(drop),
    }
}

/// Checks that `job` is done: no value left in epochs 1 and 2 (re-encryption), or nothing of
/// epoch 1 left (destruction).
async fn check_done(job: Job, v: &mut Vault, m: &Model, when: &str) {
    let list = v.epochs().await.unwrap();
    match job {
        Job::Reencrypt => {
            assert_eq!((values_in(&list, 1), values_in(&list, 2)), (0, 0), "{when}: {list:?}");
            assert_eq!(values_in(&list, 3), m.versions(), "{when}");
        }
        Job::Destroy => {
            let e1 = list.epochs.iter().find(|e| e.epoch == 1).unwrap();
            assert_eq!(
                (e1.state.as_str(), e1.values, e1.leftover_objects),
                ("destroyed", 0, Some(0)),
                "{when}"
            );
            assert_eq!(
                epoch_objects(v.store(), 1).await,
                Vec::<String>::new(),
                "{when}: epoch-1 objects left"
            );
        }
    }
}

/// One crash point: a fresh copy of the template, `job` crashing at write `k`, then recovery.
/// Returns `None` if the job finished without reaching the crash point.
async fn crash_point(env: &Env, m: &Model, job: Job, mode: Mode, k: u64) -> Option<String> {
    let name = format!("{job:?}-{mode:?}-{k}");
    let dir = env.path(&name);
    common::copy_dir(&env.loc, &dir);
    let trust = env.path(&format!("{name}-trust"));
    let plain = || common::store(&dir, false);
    let location = plain().location().to_string();
    let fs =
        LocalFileSystem::new_with_prefix(&location).unwrap().with_fsync(true).with_automatic_cleanup(true);
    let fault = FaultStore::new(Arc::new(fs));
    let faults = fault.faults();
    let store = Store::from_object_store(Arc::new(fault), None, &location);
    // Batches of 8 values: the crash points fall in every stage of the pipelined batches (one
    // being written and committed while the next is read and re-sealed).
    let batched = || {
        let mut o = opts(&trust);
        o.reseal_batch = 8;
        o
    };
    let mut v = Vault::unlock(store, &pw(PASSWORD), batched()).await.unwrap();
    faults.reset_counts();
    match mode {
        Mode::LostAck => faults.crash_after_writes(k),
        Mode::Acked => faults.crash_after_acked_writes(k),
    }
    let result = run_job(job, &mut v).await;
    drop(v);
    let when = format!("{job:?} {mode:?} crash at write {k}");
    if !faults.crashed() {
        result.unwrap_or_else(|e| panic!("{when}: failed without a crash: {e}"));
        std::fs::remove_dir_all(&dir).unwrap();
        return None;
    }
    let (kind, object) = faults.write_log()[k as usize - 1].clone();
    // The restarted process, on the same machine.
    let mut v = Vault::unlock(plain(), &pw(PASSWORD), batched())
        .await
        .unwrap_or_else(|e| panic!("{when}: unlock: {e}"));
    // Every version reads (histories are compared after the rerun, to keep the run short).
    check_values(&mut v, m, &format!("{when}, before the rerun"), false).await;
    v.verify().await.unwrap_or_else(|e| panic!("{when}: verify: {e}"));
    run_job(job, &mut v).await.unwrap_or_else(|e| panic!("{when}: rerun: {e}"));
    check_done(job, &mut v, m, &when).await;
    // Whatever the crash left unreferenced (blobs sealed for a commit that never came) goes to
    // gc, which must not take anything live.
    v.gc(Duration::ZERO, false).await.unwrap();
    check_all(&mut v, m, &format!("{when}, after the rerun and gc")).await;
    v.verify().await.unwrap();
    drop(v);
    std::fs::remove_dir_all(&dir).unwrap();
    Some(format!("{kind} {}", object.split('/').next().unwrap_or("")))
}

/// Every crash point of `job` in both modes; returns (recovered, points, writes crashed at).
async fn crash_points(env: &Env, m: &Model, job: Job) -> (u64, u64, String) {
    let (mut recovered, mut points) = (0, 0);
    let mut at = BTreeMap::<String, u64>::new();
    // With the k-th write acknowledged the store holds what it holds at the lost-acknowledgement
    // crash point k (only what the dying process does in between differs, as faults.rs notes):
    // the destruction's 13 crash points run in the first mode only, to keep the run short.
    let modes: &[Mode] = match job {
        Job::Reencrypt => &[Mode::LostAck, Mode::Acked],
        Job::Destroy => &[Mode::LostAck],
    };
    for &mode in modes {
        for k in 1.. {
            assert!(k < 200, "{job:?} {mode:?}: still crashing after 200 writes");
            points += 1;
            match crash_point(env, m, job, mode, k).await {
                Some(write) => {
                    recovered += 1;
                    *at.entry(write).or_default() += 1;
                }
                None => {
                    points -= 1;
                    break;
                }
            }
        }
    }
    let at: Vec<String> = at.iter().map(|(w, n)| format!("{w} x{n}")).collect();
    (recovered, points, at.join(", "))
}

#[tokio::test]
async fn t14_crash_points_during_reencryption_recovered_by_a_rerun() {
    let start = Instant::now();
    let env = Env::new();
    let m = crash_template(&env).await;
    let (recovered, points, at) = crash_points(&env, &m, Job::Reencrypt).await;
    assert!(points >= 36, "6 batches of 8, each a blob, an audit record and a commit (x2 modes)");
    assert_eq!(recovered, points);
    println!(
        "T14-reencrypt: crash points {recovered}/{points} recovered by rerun ({} versions over epochs 1-2; \
         crashed at {at}; {:.1} s)",
        m.versions(),
        start.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn t14_crash_points_during_destruction_recovered_by_a_rerun() {
    let start = Instant::now();
    let env = Env::new();
    let m = crash_template(&env).await;
    let (recovered, points, at) = crash_points(&env, &m, Job::Destroy).await;
    assert!(points >= 10, "re-seal, fence, and one delete per epoch-1 object");
    assert_eq!(recovered, points);
    println!(
        "T14-destroy: crash points {recovered}/{points} recovered by rerun, epoch-1 objects left 0, \
         every version reads ({} versions; crashed at {at}; {:.1} s)",
        m.versions(),
        start.elapsed().as_secs_f64()
    );
}

// ---- 3. T15: concurrent rotation ----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t15_concurrent_rotations_agree_on_one_epoch_and_leave_no_orphan_key() {
    let env = Env::new();
    let mut v = env.init().await;
    v.set("app/x", b"x").await.unwrap();
    let mut a = env.unlock().await.unwrap();
    let mut b = env.unlock_with(&env.path("trust-b"), PASSWORD).await.unwrap();
    let mut committed = vec![1u32];
    let mut collided = 0;
    const ROUNDS: usize = 5;
    for round in 0..ROUNDS {
        let (ra, rb) = tokio::join!(a.rotate("manual"), b.rotate("manual"));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        match (ra.ours, rb.ours) {
            (true, false) | (false, true) => {
                collided += 1;
                assert_eq!(ra.epoch, rb.epoch, "round {round}: the loser reports the winner's epoch");
                committed.push(ra.epoch);
            }
            // One ran after the other had committed.
            (true, true) => {
                assert_ne!(ra.epoch, rb.epoch, "round {round}");
                committed.extend([ra.epoch.min(rb.epoch), ra.epoch.max(rb.epoch)]);
            }
            (false, false) => panic!("round {round}: nobody rotated: {ra:?} {rb:?}"),
        }
        let current = *committed.last().unwrap();
        for h in [&mut a, &mut b, &mut v] {
            h.get("app/x", None).await.unwrap();
            assert_eq!(h.current_epoch().await.unwrap(), current, "round {round}: handles disagree");
        }
    }
    assert!(committed.windows(2).all(|w| w[0] < w[1]), "{committed:?}");
    let list = v.epochs().await.unwrap();
    let listed: Vec<u32> = list.epochs.iter().map(|e| e.epoch).collect();
    assert_eq!(listed, committed, "exactly the committed epochs");
    let keys: Vec<String> = v.store().list(layout::EPOCH_DIR).await.unwrap();
    let want: Vec<String> = committed.iter().map(|e| layout::epoch_key(*e)).collect();
    assert_eq!(keys, want, "one wrapped key per committed epoch, no other");
    let gc = v.gc(Duration::ZERO, true).await.unwrap();
    assert_eq!(gc.orphan_epoch_keys, 0, "{gc:?}");
    v.verify().await.unwrap();
    println!(
        "T15-rotate: 2 handles rotating at once x{ROUNDS}: {collided} collisions, each settled on one epoch \
         (epochs {committed:?}), every handle agrees, orphan epoch keys 0"
    );
}

/// What a writer was told: (path, version, value).
type Acked = Vec<(String, u64, Vec<u8>)>;

/// Writes until the rotations are over, then 3 more.
async fn rotation_writer(w: usize, v: Vault, done: Arc<AtomicBool>, acked: Arc<AtomicUsize>) -> Acked {
    let mut out = Acked::new();
    let mut after = 0;
    for i in 0.. {
        assert!(i < 2000, "writer {w}: the rotations never finished");
        if done.load(Ordering::SeqCst) {
            after += 1;
            if after > 3 {
                break;
            }
        }
        let (path, value) = (format!("w{w}/{}", i % 8), format!("{w}:{i}").into_bytes());
        let version = v.set(&path, &value).await.unwrap_or_else(|e| panic!("writer {w}: set {path}: {e}"));
        out.push((path, version, value));
        acked.fetch_add(1, Ordering::SeqCst);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t15_rotations_under_concurrent_writers_lose_no_write() {
    let env = Env::new();
    drop(env.init().await);
    let done = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..3 {
        let v = env.unlock_with(&env.path(&format!("trust-{w}")), PASSWORD).await.unwrap();
        writers.push(tokio::spawn(rotation_writer(w, v, done.clone(), acked.clone())));
    }
    let rotator = env.unlock_with(&env.path("trust-r"), PASSWORD).await.unwrap();
    while acked.load(Ordering::SeqCst) < 3 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut epochs = vec![1];
    for _ in 0..5 {
        let r = rotator.rotate("manual").await.unwrap();
        assert!(r.ours, "nobody else rotates: {r:?}");
        epochs.push(r.epoch);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done.store(true, Ordering::SeqCst);
    let mut all = Vec::new();
    for h in writers {
        all.push(h.await.unwrap());
    }
    drop(rotator);
    let v = env.unlock_with(&env.path("checker"), PASSWORD).await.unwrap();
    let list = v.epochs().await.unwrap();
    assert_eq!(list.epochs.iter().map(|e| e.epoch).collect::<Vec<_>>(), epochs);
    let total: usize = all.iter().map(Vec::len).sum();
    assert_eq!(list.epochs.iter().map(|e| e.values).sum::<u64>(), total as u64, "{list:?}");
    let spread: Vec<String> = list.epochs.iter().map(|e| format!("{}:{}", e.epoch, e.values)).collect();
    let holding = list.epochs.iter().filter(|e| e.values > 0).count();
    assert!(holding >= 2, "writes before the first and after the last rotation: {spread:?}");
    let mut per_path: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for (path, version, value) in all.iter().flatten() {
        let got = v.get(path, Some(*version)).await.unwrap_or_else(|e| panic!("{path} v{version}: {e}"));
        assert!(got.as_slice() == value.as_slice(), "{path} v{version} reads another value");
        per_path.entry(path).or_default().push(*version);
    }
    for (path, versions) in &mut per_path {
        versions.sort_unstable();
        assert_eq!(*versions, (1..=versions.len() as u64).collect::<Vec<_>>(), "{path}");
        assert_eq!(v.history(path).await.unwrap().len(), versions.len(), "{path}");
    }
    v.verify().await.unwrap();
    println!(
        "T15-rotate: 3 writers during 5 rotations: {total}/{total} acknowledged writes read back from a fresh \
         handle, values per epoch [{}], chains verify",
        spread.join(" ")
    );
}

// ---- 4. lazy re-sealing --------------------------------------------------------------------------------

async fn commits(v: &mut Vault) -> u64 {
    v.status().await.unwrap().commits
}

#[tokio::test]
async fn lazy_reseal_after_reads_is_batched_and_flushed_at_lock() {
    let env = Env::new();
    let mut m = Model::default();
    let mut v = env.init().await;
    let old = items("old", 100);
    set_many(&mut v, &mut m, &old).await;
    v.rotate("manual").await.unwrap();
    let new = items("new", 20);
    set_many(&mut v, &mut m, &new).await;
    drop(v);

    let mut r = env.unlock().await.unwrap();
    let c0 = commits(&mut r).await;
    let read = |i: usize| old[i].0.clone();
    for i in 0..63 {
        r.get(&read(i), None).await.unwrap();
    }
    // Reading a queued value again, or current-epoch values, queues nothing more.
    for i in 0..10 {
        r.get(&read(i), None).await.unwrap();
    }
    for (path, _) in &new {
        r.get(path, None).await.unwrap();
    }
    assert_eq!(commits(&mut r).await, c0, "63 old-epoch reads: no commit yet");
    let list = r.epochs().await.unwrap();
    assert_eq!((values_in(&list, 1), values_in(&list, 2)), (100, 20));
    // The 64th: one commit moves all 64.
    r.get(&read(63), None).await.unwrap();
    assert_eq!(commits(&mut r).await, c0 + 1, "the 64th old-epoch read: exactly one commit");
    let list = r.epochs().await.unwrap();
    assert_eq!((values_in(&list, 1), values_in(&list, 2)), (36, 84));
    // The moved values now read from epoch 2 and queue nothing.
    for i in 0..64 {
        r.get(&read(i), None).await.unwrap();
    }
    assert_eq!(commits(&mut r).await, c0 + 1);
    let trail = r.audit_trail().await.unwrap();
    let batches: Vec<&str> = trail
        .iter()
        .filter(|tresor::model::TrailRecord { record: rec, .. }| rec.op == "epoch reencrypt")
        .filter_map(|tresor::model::TrailRecord { record: rec, .. }| rec.detail.as_deref())
        .collect();
    assert_eq!(batches.len(), 1, "{batches:?}");
    assert!(batches[0].starts_with("64 values from epoch 1 to epoch 2 (after read): "), "{}", batches[0]);
    // A partial queue is flushed at lock.
    for i in 64..69 {
        r.get(&read(i), None).await.unwrap();
    }
    assert_eq!(commits(&mut r).await, c0 + 1);
    r.lock("test").await.unwrap();
    let mut w = env.unlock().await.unwrap();
    assert_eq!(commits(&mut w).await, c0 + 2, "lock flushed the 5 queued values in one commit");
    let list = w.epochs().await.unwrap();
    assert_eq!((values_in(&list, 1), values_in(&list, 2)), (31, 89));
    // A handle that read only current-epoch values commits nothing at lock.
    for (path, _) in &new {
        w.get(path, None).await.unwrap();
    }
    w.get(&read(0), None).await.unwrap();
    w.lock("test").await.unwrap();
    let mut w = env.unlock().await.unwrap();
    assert_eq!(commits(&mut w).await, c0 + 2);
    check_all(&mut w, &m, "after lazy re-sealing").await;
    w.verify().await.unwrap();
}

// ---- 5. the rotation policy ---------------------------------------------------------------------------

#[tokio::test]
async fn rotation_policy_rotates_before_a_write_and_can_be_turned_off() {
    let env = Env::new();
    let mut v = env.init().await;
    v.set("a", b"1").await.unwrap();
    let other = env.unlock().await.unwrap();
    let c0 = commits(&mut v).await;
    let e = v.set_rotation_policy(Some(Duration::ZERO)).await.err().unwrap();
    assert!(matches!(e, Error::Invalid(_)), "{e:?}");
    assert_eq!(commits(&mut v).await, c0, "a refused policy commits nothing");
    assert!(v.rotate_if_due().await.unwrap().is_none(), "no policy: never due");

    v.set_rotation_policy(Some(Duration::from_millis(1))).await.unwrap();
    let list = v.epochs().await.unwrap();
    assert!(list.next_rotation_ms.is_some(), "{list:?}");
    tokio::time::sleep(Duration::from_millis(5)).await;
    // Another handle's write reads the policy from the log and rotates first.
    other.set("b", b"2").await.unwrap();
    let list = v.epochs().await.unwrap();
    assert_eq!(list.epochs.len(), 2, "{list:?}");
    let e2 = &list.epochs[1];
    assert_eq!((e2.epoch, e2.reason.as_str(), e2.state.as_str()), (2, "policy", "current"), "{e2:?}");
    assert_eq!((values_in(&list, 1), values_in(&list, 2)), (1, 1), "the write went to the new epoch");
    tokio::time::sleep(Duration::from_millis(5)).await;
    v.set("c", b"3").await.unwrap();
    assert_eq!(v.current_epoch().await.unwrap(), 3, "still due: the next write rotates again");

    v.set_rotation_policy(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    v.set("d", b"4").await.unwrap();
    other.set("e", b"5").await.unwrap();
    assert!(v.rotate_if_due().await.unwrap().is_none());
    let list = v.epochs().await.unwrap();
    assert_eq!(list.epochs.len(), 3, "no rotation once the policy is off: {list:?}");
    assert_eq!((list.rotate_every_secs, list.next_rotation_ms), (None, None));
    assert_eq!(values_in(&list, 3), 3);
    v.verify().await.unwrap();
}

// ---- 6. refusals and the audit trail --------------------------------------------------------------------

#[tokio::test]
async fn destroy_refuses_unknown_epochs_rotates_off_the_current_one_and_is_repeatable() {
    let env = Env::new();
    let mut m = Model::default();
    let mut v = env.init().await;
    set(&mut v, &mut m, "a/one", b"one").await;
    set(&mut v, &mut m, "a/two", b"two").await;
    // A handle that has read an epoch-1 value (its key cached, the version queued for re-sealing).
    let stale = env.unlock().await.unwrap();
    assert_eq!(stale.get("a/one", None).await.unwrap().as_slice(), b"one");
    let c0 = commits(&mut v).await;
    for unknown in [0, 2, 7, u32::MAX] {
        let e = v.destroy_epoch(unknown, &mut |_, _| {}).await.err().unwrap();
        assert!(matches!(e, Error::Invalid(_)), "epoch {unknown}: {e:?}");
    }
    assert_eq!(commits(&mut v).await, c0, "a refused destruction commits nothing");

    // The current epoch: a rotation first, then the destruction.
    let report = v.destroy_epoch(1, &mut |_, _| {}).await.unwrap();
    assert!(report.complete(), "{report:?}");
    assert_eq!((report.epoch, report.reencrypted.values, report.reencrypted.epoch), (1, 2, 2), "{report:?}");
    assert_eq!(report.deleted_objects, 3, "two blobs and the key: {report:?}");
    let list = v.epochs().await.unwrap();
    let states: Vec<(u32, &str, &str)> =
        list.epochs.iter().map(|e| (e.epoch, e.state.as_str(), e.reason.as_str())).collect();
    assert_eq!(states, [(1, "destroyed", "init"), (2, "current", "destroy")]);
    check_all(&mut v, &m, "after destroying the current epoch").await;

    // Again: nothing left to do, and nothing breaks.
    let again = v.destroy_epoch(1, &mut |_, _| {}).await.unwrap();
    assert!(again.complete(), "{again:?}");
    assert_eq!((again.deleted_objects, again.reencrypted.values, again.reencrypted.commits), (0, 0, 0));
    set(&mut v, &mut m, "a/three", b"three").await;

    // The stale handle reads the moved value; its queued epoch-1 version is dropped at lock.
    assert_eq!(stale.get("a/one", None).await.unwrap().as_slice(), b"one");
    stale.lock("test").await.unwrap();
    check_all(&mut v, &m, "after destroying twice").await;
    v.verify().await.unwrap();

    let trail = v.audit_trail().await.unwrap();
    let ops: BTreeSet<&str> =
        trail.iter().map(|tresor::model::TrailRecord { record: r, .. }| r.op.as_str()).collect();
    for op in ["epoch rotate", "epoch reencrypt", "epoch destroy"] {
        assert!(ops.contains(op), "no {op} record in {ops:?}");
    }
    let detail = |path: &str| -> Vec<String> {
        trail
            .iter()
            .filter(|tresor::model::TrailRecord { record: r, .. }| {
                r.op == "set" && r.path.as_deref() == Some(path)
            })
            .map(|tresor::model::TrailRecord { record: r, .. }| r.detail.clone().unwrap_or_default())
            .collect()
    };
    assert_eq!(detail("a/one"), ["BlobWritten epoch 1"]);
    assert_eq!(detail("a/three"), ["BlobWritten epoch 2"]);
    let rotated: Vec<&str> = trail
        .iter()
        .filter(|tresor::model::TrailRecord { record: r, .. }| r.op == "epoch rotate")
        .filter_map(|tresor::model::TrailRecord { record: r, .. }| r.detail.as_deref())
        .collect();
    assert_eq!(rotated, ["epoch 2 (destroy)"]);
}

// ---- 7. handles paused mid-operation: races with a destruction -----------------------------------------

/// A store that pauses one operation: once armed, the first read (performed, then held) or write
/// (held, then performed) of an object under `prefix` waits until the test releases it — a
/// handle stopped at a chosen point while another one works.
#[derive(Debug)]
struct Gate {
    inner: Arc<dyn ObjectStore>,
    prefix: String,
    /// Pause a write (`true`) or a read (`false`).
    on_write: bool,
    armed: AtomicBool,
    /// A permit when the operation has been reached.
    reached: Semaphore,
    /// A permit lets it go on.
    release: Semaphore,
}

impl Gate {
    async fn pause_if_armed(&self, location: &ObjectPath, write: bool) {
        if write == self.on_write
            && location.as_ref().starts_with(&self.prefix)
            && self.armed.swap(false, Ordering::SeqCst)
        {
            self.reached.add_permits(1);
            self.release.acquire().await.unwrap().forget();
        }
    }

    /// Waits until the armed operation is reached.
    async fn reached(&self) {
        self.reached.acquire().await.unwrap().forget();
    }

    fn release(&self) {
        self.release.add_permits(1);
    }
}

impl std::fmt::Display for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gate({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Gate {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.pause_if_armed(location, true).await;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &ObjectPath, options: GetOptions) -> object_store::Result<GetResult> {
        let result = self.inner.get_opts(location, options).await;
        self.pause_if_armed(location, false).await;
        result
    }

    async fn get_ranges(
        &self,
        location: &ObjectPath,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let result = self.inner.get_ranges(location, ranges).await;
        self.pause_if_armed(location, false).await;
        result
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&ObjectPath>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&ObjectPath>,
        offset: &ObjectPath,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&ObjectPath>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// A handle over a gated view of the vault at `location`, its gate armed.
async fn gated(env: &Env, location: &str, prefix: &str, on_write: bool, trust: &str) -> (Vault, Arc<Gate>) {
    let gate = Arc::new(Gate {
        inner: Arc::new(LocalFileSystem::new_with_prefix(location).unwrap()),
        prefix: prefix.to_string(),
        on_write,
        armed: AtomicBool::new(false),
        reached: Semaphore::new(0),
        release: Semaphore::new(0),
    });
    let inner: Arc<dyn ObjectStore> = gate.clone();
    let store = Store::from_object_store(inner, None, location);
    let v = Vault::unlock(store, &pw(PASSWORD), opts(&env.path(trust))).await.unwrap();
    gate.armed.store(true, Ordering::SeqCst);
    (v, gate)
}

/// A reader that has read a value's blob of epoch 1, but not yet epoch 1's key, when another
/// handle destroys epoch 1 (re-seals the value, commits the destruction, deletes blob and key).
/// The value was moved, not lost: the read must return it, as it does when it finds the blob
/// itself gone — not an integrity alarm about a missing epoch key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_racing_a_destruction_returns_the_moved_value() {
    let env = Env::new();
    let v = env.init().await;
    v.set("a/one", b"one").await.unwrap();
    v.rotate("manual").await.unwrap();
    let location = v.store().location().to_string();
    let (reader, gate) = gated(&env, &location, &format!("{}/", blob_dir(1)), false, "trust-reader").await;
    let read = tokio::spawn(async move { reader.get("a/one", None).await.map(|v| v.as_slice().to_vec()) });
    gate.reached().await;
    let report = v.destroy_epoch(1, &mut |_, _| {}).await.unwrap();
    assert!(report.complete() && report.reencrypted.values == 1, "{report:?}");
    gate.release();
    let got = read.await.unwrap().unwrap_or_else(|e| panic!("a read racing the destruction: {e}"));
    assert_eq!(got, b"one");
}

/// Two destructions of one epoch at once (two administrators, or the agent and the CLI): the
/// slower one is stopped at `prefix` (a read, or a write with `on_write`) while the faster one
/// re-seals everything, commits the destruction and deletes the epoch's blobs and key. The
/// slower one must then find the work done — no integrity alarm about the blobs and key that
/// went, no empty commit, no re-sealed blobs left behind — and everything still reads.
async fn two_destructions(prefix: &str, on_write: bool) -> (DestroyReport, DestroyReport) {
    let env = Env::new();
    let mut m = Model::default();
    let mut v = env.init().await;
    set_many(&mut v, &mut m, &items("old", 10)).await;
    set(&mut v, &mut m, "old/single", b"single").await;
    v.rotate("manual").await.unwrap();
    set(&mut v, &mut m, "new/one", b"new").await;
    let location = v.store().location().to_string();
    let (slow, gate) = gated(&env, &location, prefix, on_write, "trust-slow").await;
    let destroy = tokio::spawn(async move {
        let r = slow.destroy_epoch(1, &mut |_, _| {}).await;
        (slow, r)
    });
    gate.reached().await;
    let fast = v.destroy_epoch(1, &mut |_, _| {}).await.unwrap();
    assert!(fast.complete() && fast.reencrypted.values == 11, "{fast:?}");
    let after_fast = commits(&mut v).await;
    gate.release();
    let (mut slow, r) = destroy.await.unwrap();
    let slow = {
        let report = r.unwrap_or_else(|e| panic!("the slower destruction (stopped at {prefix}): {e}"));
        check_all(&mut slow, &m, "after two destructions, the slower handle").await;
        report
    };
    assert!(slow.complete(), "{slow:?}");
    let r = &slow.reencrypted;
    assert_eq!(
        (r.values, r.bytes, r.commits, r.skipped),
        (0, 0, 0, 11),
        "the faster one moved all: {slow:?}"
    );
    assert_eq!(commits(&mut v).await, after_fast, "the slower destruction committed nothing");
    let gc = v.gc(Duration::ZERO, true).await.unwrap();
    assert_eq!((gc.orphan_blobs, gc.young_blobs, gc.destroyed_epoch_objects), (0, 0, 0), "{gc:?}");
    check_all(&mut v, &m, "after two destructions").await;
    assert_eq!(epoch_objects(v.store(), 1).await, Vec::<String>::new());
    v.verify().await.unwrap();
    (fast, slow)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_destructions_of_one_epoch_at_once_both_succeed() {
    // Stopped having unwrapped the epoch key, before reading the blobs the other one deletes.
    let (_, key) = two_destructions(&layout::epoch_key(1), false).await;
    // Stopped having written its re-sealed blobs, before its audit record and commit.
    let (fast, blobs) = two_destructions(layout::AUDIT_DIR, true).await;
    println!(
        "T15-destroy: 2 destructions of one epoch at once, the slower stopped after unwrapping the key / \
         after writing its re-sealed blobs: both complete, the faster moved {}, the slower skipped {} / {} \
         with 0 commits and 0 blobs left, every version reads",
        fast.reencrypted.values, key.reencrypted.skipped, blobs.reencrypted.skipped
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_lock_waited_for_a_whole_reencryption_with_the_keys_in_use() {
    // `lock` took the engine only once the bulk job holding it ended: minutes with a large vault
    // on a slow store, the keys in use all along, and `tresor lock` gave up after 30 s. Now the
    // job stops at its next batch: what it committed stays, the rest waits in its old epoch.
    let env = Env::new();
    let v = env.init().await;
    for i in 0..64 {
        v.set(format!("bulk/{i:02}").as_str(), format!("value {i}").as_bytes()).await.unwrap();
    }
    v.rotate("test").await.unwrap();
    drop(v);
    let mut o = opts(&env.trust);
    o.reseal_batch = 1;
    let v = Vault::unlock(common::store(&env.loc, false), &pw(PASSWORD), o).await.unwrap();
    let (started, mut begun) = tokio::sync::mpsc::unbounded_channel();
    let job = v.clone();
    let reencrypt = tokio::spawn(async move {
        let mut last = (0, 0);
        let result = job
            .reencrypt(&mut |done, total| {
                last = (done, total);
                if done > 0 {
                    let _ = started.send(());
                }
            })
            .await;
        (result.map(drop), last)
    });
    begun.recv().await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), v.lock("test: in the middle of a re-encryption"))
        .await
        .expect("the lock waited for the whole job")
        .unwrap();
    let (result, (done, total)) = reencrypt.await.unwrap();
    assert!(matches!(result, Err(Error::Locked)), "{result:?}");
    assert!(done < total, "the job ran to its end: {done} of {total}");
    // Nothing was lost: every value reads, and running the job again finishes it.
    let v = env.unlock().await.unwrap();
    for i in 0..64 {
        assert_eq!(
            v.get(format!("bulk/{i:02}").as_str(), None).await.unwrap().as_slice(),
            format!("value {i}").as_bytes()
        );
    }
    v.reencrypt(&mut |_, _| {}).await.unwrap();
    v.verify().await.unwrap();
}
