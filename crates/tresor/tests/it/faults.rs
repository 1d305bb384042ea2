//! Faults survived (issue 3): crash points, lost acknowledgements, read errors and latency, through
//! `tresor_testkit::fault::FaultStore` over a real local directory and over memory.
//!
//! Crash points: one script — init, set (new secret), set (new version), set_many (three items),
//! delete, passwd — is first run without faults to count the writes (puts and deletes) each step
//! performs; then, for every k from 1 to the total, a fresh vault runs the script with a crash
//! after the k-th write, in two flavours: the k-th write lands but its caller hears an error (a
//! lost acknowledgement), or its caller hears the store's answer and the process dies before its
//! next operation. Every later operation fails. The vault handle is dropped and the location
//! reopened *without* the wrapper, with the same trust state (a restarted process on the same
//! machine), and the invariants are checked:
//!
//! - the newest key file (the one unlock uses) opens with exactly one of the old and the new
//!   password (the old one until passwd's new key file lands, the new one from then on), and
//!   `Vault::unlock` works with it;
//! - every secret listed reads, every version in every history reads (no index entry without its
//!   blob), versions are numbered 1, 2, ... without duplicates;
//! - the secrets are exactly as every acknowledged step left them, and the step in flight is all
//!   or nothing (the state before it or after it, never in between);
//! - `verify()` passes, and the vault takes a new write;
//! - a crash inside init leaves either no vault (`Error::NoVault` at unlock; `init` then works or
//!   refuses with `Error::VaultExists`) or a complete, empty vault.
//!
//! The handle is dropped (not leaked) after a crash: its drop pins what it saw in the trust state,
//! which is at least as new as what a killed process leaves, so it is the stricter test for false
//! rollback alarms.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::{Env, PASSWORD, err, opts, pw};
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tresor::keyfile::KeyFile;
use tresor::{Error, KdfParams, Result, Store, Vault};
use tresor_testkit::fault::{Fault, FaultStore, Faults, OpKind, Outcome, Rule, When};

/// The password after the script's `passwd` step.
const NEW_PASSWORD: &str = "a different horse, battery and staple";

/// A value larger than the 256-byte padding bucket.
const BIG: &[u8] = &[b'c'; 1000];

/// One step of the script.
#[derive(Clone, Copy, Debug)]
enum Step {
    Init,
    Set(&'static str, &'static [u8]),
    SetMany(&'static [(&'static str, &'static [u8])]),
    Delete(&'static str),
    Passwd,
}

/// The script every crash point runs, each step with its name in the figures.
const SCRIPT: &[(&str, Step)] = &[
    ("init", Step::Init),
    ("set-new", Step::Set("app/db", b"db-v1")),
    ("set-version", Step::Set("app/db", b"db-v2")),
    ("set-many", Step::SetMany(&[("app/a", b"a-v1"), ("app/b", b"b-v1"), ("app/c", BIG)])),
    ("delete", Step::Delete("app/a")),
    ("passwd", Step::Passwd),
];

/// Every path the script touches.
const PATHS: &[&str] = &["app/a", "app/b", "app/c", "app/db"];

/// Secrets as a vault shows them: path → (version, value, deleted) oldest first.
type Secrets = BTreeMap<String, Vec<(u64, Vec<u8>, bool)>>;

/// Applies a step to the model; returns the versions the vault must report for it.
fn apply(model: &mut Secrets, step: Step) -> Vec<u64> {
    let mut put = |path: &str, value: &[u8]| {
        let versions = model.entry(path.to_string()).or_default();
        let version = versions.len() as u64 + 1;
        versions.push((version, value.to_vec(), false));
        version
    };
    match step {
        Step::Init | Step::Passwd => vec![],
        Step::Set(path, value) => vec![put(path, value)],
        Step::SetMany(items) => items.iter().map(|(path, value)| put(path, value)).collect(),
        Step::Delete(path) => {
            let last = model.get_mut(path).and_then(|v| v.last_mut()).unwrap();
            last.2 = true;
            vec![last.0]
        }
    }
}

/// `models[i]`: the secrets after the first `i` steps of the script.
fn models() -> Vec<Secrets> {
    let mut model = Secrets::new();
    let mut out = vec![model.clone()];
    for (_, step) in SCRIPT {
        apply(&mut model, *step);
        out.push(model.clone());
    }
    out
}

/// Runs one step on `vault` (created by `Init`).
async fn exec(step: Step, vault: &mut Option<Vault>, store: &Store, trust: &Path) -> Result<Vec<u64>> {
    if let Step::Init = step {
        *vault = Some(Vault::init(store.clone(), &pw(PASSWORD), opts(trust)).await?);
        return Ok(vec![]);
    }
    let v = vault.as_mut().expect("init ran first");
    match step {
        Step::Init => unreachable!(),
        Step::Set(path, value) => Ok(vec![v.set(path, value).await?]),
        Step::SetMany(items) => v.set_many(tresor::model::AuditOp::Import, items).await,
        Step::Delete(path) => Ok(vec![v.delete(path).await?]),
        Step::Passwd => v.passwd(&pw(NEW_PASSWORD), KdfParams::MINIMUM).await.map(|()| vec![]),
    }
}

/// Reads every secret through the public API: every listed secret's current value, every
/// version of every history (each must read, deleted ones included).
async fn read_secrets(v: &mut Vault) -> Secrets {
    let mut out = Secrets::new();
    for entry in v.list("").await.unwrap() {
        assert!(PATHS.contains(&entry.path.as_str()), "unexpected secret {}", entry.path);
        let value = v.get(&entry.path, None).await.unwrap_or_else(|e| panic!("get {}: {e}", entry.path));
        assert_eq!(value.len() as u64, entry.size, "{}", entry.path);
    }
    for path in PATHS {
        let history = match v.history(path).await {
            Ok(h) => h,
            Err(Error::NotFound { .. }) => continue,
            Err(e) => panic!("history {path}: {e}"),
        };
        let mut versions = Vec::new();
        for h in history {
            let value = v
                .get(path, Some(h.version))
                .await
                .unwrap_or_else(|e| panic!("get {path} v{}: {e}", h.version));
            versions.push((h.version, value.to_vec(), h.deleted_ms.is_some()));
        }
        out.insert(path.to_string(), versions);
    }
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Local,
    Memory,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Local => "local directory",
            Backend::Memory => "memory",
        }
    }
}

/// A vault location with its trust state: the real backend, and stores over it with and
/// without faults, under one location string (so the trust state applies to both).
struct Site {
    env: Env,
    backend: Backend,
    raw: Arc<dyn ObjectStore>,
    location: String,
}

impl Site {
    fn new(backend: Backend) -> Site {
        let env = Env::new();
        let (raw, location): (Arc<dyn ObjectStore>, String) = match backend {
            Backend::Local => {
                // Store::open makes the directory (0700) and gives the canonical location.
                let location = common::store(&env.loc, true).location().to_string();
                // The same settings as Store::open's own (fsync, empty directories removed).
                let fs = LocalFileSystem::new_with_prefix(&location)
                    .unwrap()
                    .with_fsync(true)
                    .with_automatic_cleanup(true);
                (Arc::new(fs), location)
            }
            Backend::Memory => (Arc::new(InMemory::new()), "memory://faults".to_string()),
        };
        Site { env, backend, raw, location }
    }

    /// The store as a restarted process opens it: no wrapper.
    fn plain(&self) -> Store {
        match self.backend {
            Backend::Local => Store::open(&self.location, false).unwrap(),
            Backend::Memory => Store::from_object_store(Arc::clone(&self.raw), None, &self.location),
        }
    }

    /// The same location behind a fault-injecting wrapper, and its control handle.
    fn faulty(&self) -> (Store, Faults) {
        let fault = FaultStore::new(Arc::clone(&self.raw));
        let faults = fault.faults();
        (Store::from_object_store(Arc::new(fault), None, &self.location), faults)
    }

    fn trust(&self) -> &Path {
        &self.env.trust
    }

    async fn unlock(&self, password: &str) -> Result<Vault> {
        Vault::unlock(self.plain(), &pw(password), opts(self.trust())).await
    }

    /// Unlocks with another machine's (fresh) trust state.
    async fn unlock_with_trust(&self, password: &str, name: &str) -> Result<Vault> {
        Vault::unlock(self.plain(), &pw(password), opts(&self.env.path(name))).await
    }

    /// Object names under `dir`.
    async fn objects(&self, dir: &str) -> Vec<String> {
        self.plain().list(dir).await.unwrap()
    }
}

/// Whether `e` is a store error carrying an injected fault (or a commit whose outcome such an
/// error left unknown).
fn is_injected_store_error(e: &Error) -> bool {
    match e {
        Error::Store(m) => m.message().contains("FaultStore") && m.message().contains("injected"),
        Error::Indeterminate(inner) => is_injected_store_error(inner),
        _ => false,
    }
}

// ---- crash points ---------------------------------------------------------------------------------

/// The writes of the script, counted in a run without faults.
struct Counted {
    /// Cumulative writes after each step: `ends[i]` after step i.
    ends: Vec<u64>,
    /// `(kind, object)` of every write, in order.
    log: Vec<(OpKind, String)>,
}

async fn count_writes(backend: Backend) -> Counted {
    let site = Site::new(backend);
    let (store, faults) = site.faulty();
    let mut vault = None;
    let mut model = Secrets::new();
    let mut ends = Vec::new();
    for (name, step) in SCRIPT {
        let versions =
            exec(*step, &mut vault, &store, site.trust()).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(versions, apply(&mut model, *step), "{name}");
        ends.push(faults.writes());
    }
    Counted { ends, log: faults.write_log() }
}

/// Shortens an object name for the figures: `log/00000000000000000003` → `log/3`.
fn short(name: &str) -> String {
    match name.rsplit_once('/') {
        Some((dir, n)) if n.len() == 20 && n.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{dir}/{}", n.trim_start_matches('0'))
        }
        Some((dir, n)) if dir.starts_with("blob") && n.len() == 32 => format!("{dir}/<id>"),
        _ => name.to_string(),
    }
}

/// Which of the two passwords opens a key file: "old", "new" or "none". (A key file has one
/// password slot, and wrapped keys carry a key commitment: no key file opens with both.)
fn opened_by(bytes: &[u8]) -> &'static str {
    let kf = KeyFile::parse(bytes).unwrap();
    assert_eq!(kf.slots.len(), 1);
    if kf.unlock(&pw(PASSWORD), None).is_ok() {
        "old"
    } else if kf.unlock(&pw(NEW_PASSWORD), None).is_ok() {
        "new"
    } else {
        "none"
    }
}

/// Reopens after a crash in `step` (0 = init) and checks every invariant; returns a one-line
/// account of what was found.
///
/// `step` is the step in flight (`SCRIPT.len()`: none, the whole script was acknowledged).
async fn check_after_crash(site: &Site, step: usize, models: &[Secrets]) -> String {
    if step == 0 {
        return check_after_init_crash(site).await;
    }
    // The key files: the newest is the one unlock uses.
    let store = site.plain();
    let mut keyfiles = Vec::new();
    for name in store.list("keyfile").await.unwrap() {
        let bytes = store.get(&name).await.unwrap().unwrap();
        keyfiles.push((short(&name), opened_by(&bytes)));
    }
    let (_, newest) = *keyfiles.last().expect("a vault past init has a key file");
    let name = SCRIPT.get(step).map_or("(nothing)", |(name, _)| name);
    let passwd_step = SCRIPT.len() - 1;
    let right = match newest {
        "old" if step <= passwd_step => PASSWORD,
        "new" if step >= passwd_step => NEW_PASSWORD,
        other => panic!("after a crash in {name}: the newest key file opens with {other}"),
    };
    // Unlock uses the newest key file; its one slot belongs to `right` alone (`opened_by`).
    let mut v = site.unlock(right).await.unwrap_or_else(|e| panic!("unlock with the {newest} password: {e}"));
    // All or nothing for the step in flight; everything acknowledged before it is there.
    let seen = read_secrets(&mut v).await;
    let after = models.get(step + 1).unwrap_or(&models[step]);
    let state = if models[step] == *after && seen == *after {
        "unchanged (the step writes no secret)"
    } else if seen == models[step] {
        "as before the step"
    } else if seen == *after {
        "as after the step"
    } else {
        panic!(
            "after a crash in {name}: the secrets are neither as before nor as after the step:\n{seen:?}\nbefore: {:?}\nafter: {after:?}",
            models[step],
        );
    };
    v.verify().await.unwrap_or_else(|e| panic!("verify after a crash in {name}: {e}"));
    // The vault goes on.
    let version = v.set("app/after-crash", b"still here").await.unwrap();
    assert_eq!(version, 1);
    assert_eq!(v.get("app/after-crash", None).await.unwrap().as_slice(), b"still here");
    v.verify().await.unwrap();
    let files: Vec<String> = keyfiles.iter().map(|(n, by)| format!("{n}: {by}")).collect();
    format!("secrets {state}; key files [{}]; unlocks with the {newest} password", files.join(", "))
}

/// After a crash inside init: unlock says "no vault" or opens a complete, empty vault; init
/// on the same location works or refuses clearly. Never a panic, never a half vault.
async fn check_after_init_crash(site: &Site) -> String {
    let debris: Vec<String> = site.plain().list_all().await.unwrap().iter().map(|n| short(n)).collect();
    let opened = match site.unlock(PASSWORD).await {
        Ok(mut v) => {
            assert_eq!(read_secrets(&mut v).await, Secrets::new());
            v.verify().await.unwrap();
            drop(v);
            "unlock opens an empty vault"
        }
        Err(Error::NoVault { .. }) => "unlock: no vault",
        Err(Error::InterruptedInit { .. }) => "unlock: interrupted init",
        Err(e) => panic!("unlock after a crash in init: {e:?}"),
    };
    let init = Vault::init(site.plain(), &pw(PASSWORD), opts(site.trust())).await;
    let again = match init {
        Ok(v) => {
            assert!(opened != "unlock opens an empty vault", "init over a complete vault");
            v.set("app/x", b"x").await.unwrap();
            assert_eq!(v.get("app/x", None).await.unwrap().as_slice(), b"x");
            v.verify().await.unwrap();
            "init again works"
        }
        Err(Error::VaultExists { .. }) => "init again: VaultExists",
        Err(Error::InterruptedInit { .. }) => "init again: interrupted init",
        Err(e) => panic!("init after a crash in init: {e:?}"),
    };
    // Both name the same situation: debris of an init is never "no vault" to one and "a vault is
    // there" to the other.
    assert_eq!(
        opened == "unlock: interrupted init",
        again == "init again: interrupted init",
        "unlock and init disagree: {opened}; {again}"
    );
    format!("{opened}; {again}; objects left [{}]", debris_summary(&debris))
}

/// `log/1, audit/1, ...` grouped by directory with counts, for the init figures.
fn debris_summary(names: &[String]) -> String {
    let mut dirs: BTreeMap<&str, usize> = BTreeMap::new();
    for name in names {
        *dirs.entry(name.split('/').next().unwrap_or("")).or_default() += 1;
    }
    dirs.iter().map(|(d, n)| format!("{d} {n}")).collect::<Vec<_>>().join(", ")
}

/// How the process dies at the crash point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// The k-th write lands; its caller hears an error.
    LostAck,
    /// The k-th write lands and is acknowledged; the process dies before its next operation.
    Acked,
}

/// Every crash point of the script in one mode; returns (recovered, total, per-step counts).
async fn crash_points_in(backend: Backend, mode: Mode, counted: &Counted) -> (u64, u64, String) {
    let models = models();
    let total = *counted.ends.last().unwrap();
    let mut per_step = vec![0u64; SCRIPT.len()];
    let mut recovered = 0;
    for k in 1..=total {
        // The step whose writes include the k-th, and the step the crash makes fail.
        let step = counted.ends.iter().position(|end| k <= *end).unwrap();
        // Removing the old key file after passwd's commit is clean-up: a crash there does not
        // fail the password change, which is complete.
        let cleanup = |n: u64| {
            let (kind, object) = &counted.log[n as usize - 1];
            *kind == OpKind::Delete && object.starts_with("keyfile/")
        };
        // The write the crash fails: the k-th (its ack is lost), or the one after it.
        let fails = match mode {
            Mode::LostAck => k,
            Mode::Acked => k + 1,
        };
        let expected = if fails > counted.ends[step] || cleanup(fails) { step + 1 } else { step };
        per_step[step] += 1;
        let site = Site::new(backend);
        let (store, faults) = site.faulty();
        match mode {
            Mode::LostAck => faults.crash_after_writes(k),
            Mode::Acked => faults.crash_after_acked_writes(k),
        }
        let mut vault = None;
        let mut failed = (SCRIPT.len(), None);
        for (i, (_, s)) in SCRIPT.iter().enumerate() {
            if let Err(e) = exec(*s, &mut vault, &store, site.trust()).await {
                failed = (i, Some(e));
                break;
            }
        }
        drop(vault);
        let (failed_step, error) = failed;
        assert!(faults.crashed(), "{mode:?} k={k}: {error:?}");
        assert_eq!(
            failed_step, expected,
            "{mode:?} k={k}: the crash hit another step than counted: {error:?}"
        );
        // The write at the crash point is the one the counting run saw.
        let (kind, object) = faults.write_log()[k as usize - 1].clone();
        let (ckind, cobject) = &counted.log[k as usize - 1];
        assert_eq!((kind, short(&object).split('/').next()), (*ckind, short(cobject).split('/').next()));
        let found = check_after_crash(&site, failed_step, &models).await;
        recovered += 1;
        if mode == Mode::LostAck {
            println!(
                "T14-faults: {} crash after write {} k={k} ({kind} {}): {found}",
                backend.name(),
                SCRIPT[step].0,
                short(&object)
            );
        }
    }
    let steps: Vec<String> =
        SCRIPT.iter().zip(&per_step).map(|((name, _), n)| format!("{name} {n}")).collect();
    (recovered, total, steps.join(", "))
}

async fn crash_points(backend: Backend) {
    let start = Instant::now();
    let counted = count_writes(backend).await;
    let (lost, total, steps) = crash_points_in(backend, Mode::LostAck, &counted).await;
    // With the last write acknowledged the store holds the same objects as at the lost-ack crash
    // point; only what the vault does in between (pinning the trust state) differs, and that
    // does not depend on the backend: memory only, to keep the fsyncs of a directory out of it.
    let acked = match backend {
        Backend::Memory => {
            let (acked, _, _) = crash_points_in(backend, Mode::Acked, &counted).await;
            assert_eq!(acked, total);
            format!(", {acked}/{total} with it acknowledged")
        }
        Backend::Local => String::new(),
    };
    println!(
        "T14-faults: {} crash points {lost}/{total} recovered with the last write unacknowledged{acked} ({steps}) in {:.1} s",
        backend.name(),
        start.elapsed().as_secs_f64()
    );
    assert_eq!(lost, total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_points_local_directory() {
    crash_points(Backend::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_points_memory() {
    crash_points(Backend::Memory).await;
}

// ---- lost acknowledgements ------------------------------------------------------------------------

/// Every step of the script with the first put under `prefix` applied but unacknowledged: each
/// step succeeds exactly once (its versions, one commit per step, no conflict).
async fn lost_acks(backend: Backend, prefix: &str) -> usize {
    let site = Site::new(backend);
    let (store, faults) = site.faulty();
    let mut vault = None;
    let mut model = Secrets::new();
    let mut lost = 0;
    for (name, step) in SCRIPT {
        faults.reset_counts();
        faults.timeout_after_apply(prefix, When::Nth(1));
        let versions = exec(*step, &mut vault, &store, site.trust())
            .await
            .unwrap_or_else(|e| panic!("{name} with a lost ack on {prefix}: {e}"));
        assert_eq!(versions, apply(&mut model, *step), "{name}: versions");
        let events = faults.events();
        assert_eq!(
            events.iter().filter(|e| e.outcome == Outcome::AppliedThenFailed).count(),
            1,
            "{name}: one lost ack on {prefix}"
        );
        lost += 1;
    }
    let v = vault.as_mut().unwrap();
    // A read's audit record too.
    faults.timeout_after_apply("audit/", When::Nth(1));
    assert_eq!(v.get("app/db", None).await.unwrap().as_slice(), b"db-v2");
    assert_eq!(read_secrets(v).await, model);
    v.verify().await.unwrap();
    drop(vault);
    assert_eq!(site.objects("log").await.len(), SCRIPT.len(), "one commit per step, none twice");
    let mut v = site.unlock(NEW_PASSWORD).await.unwrap();
    assert_eq!(read_secrets(&mut v).await, model);
    let report = v.verify().await.unwrap();
    assert_eq!(report.commits, SCRIPT.len() as u64);
    lost
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_ack_on_commit_and_audit_puts_succeeds_exactly_once() {
    let mut figures = Vec::new();
    for backend in [Backend::Local, Backend::Memory] {
        for prefix in ["log/", "audit/"] {
            let n = lost_acks(backend, prefix).await;
            figures.push(format!("{} {prefix} {n}/{n}", backend.name()));
        }
    }
    println!("T14-faults: lost acks survived exactly once: {}", figures.join(", "));
}

/// A lost ack on a value blob: the blob landed, so the write succeeds exactly once (blobs are
/// created idempotently, like commits); a plain error on a blob fails the write cleanly (a store
/// error, no commit, the secret unchanged) and a retry succeeds with the next version.
#[tokio::test]
async fn blob_put_faults_lost_ack_succeeds_error_fails_cleanly() {
    for backend in [Backend::Local, Backend::Memory] {
        let site = Site::new(backend);
        let (store, faults) = site.faulty();
        let v = Vault::init(store, &pw(PASSWORD), opts(site.trust())).await.unwrap();
        v.set("app/x", b"x1").await.unwrap();
        faults.timeout_after_apply("blob/", When::Nth(1));
        assert_eq!(v.set("app/x", b"x2").await.unwrap(), 2);
        let (commits, blobs) = (site.objects("log").await.len(), site.objects("blob").await.len());
        faults.fail_under(OpKind::Put, "blob/", When::Nth(1));
        let e = err(v.set("app/x", b"x3").await);
        assert!(is_injected_store_error(&e), "{e:?}");
        assert_eq!(site.objects("log").await.len(), commits, "no commit");
        assert_eq!(site.objects("blob").await.len(), blobs, "nothing written");
        assert_eq!(v.get("app/x", None).await.unwrap().as_slice(), b"x2");
        assert_eq!(v.set("app/x", b"x3").await.unwrap(), 3);
        drop(v);
        let v = site.unlock(PASSWORD).await.unwrap();
        assert_eq!(v.history("app/x").await.unwrap().len(), 3);
        assert_eq!(v.get("app/x", None).await.unwrap().as_slice(), b"x3");
        v.verify().await.unwrap();
    }
}

/// A commit whose create fails and which cannot be read back is the one write error that does
/// not mean "nothing was written": `Error::Indeterminate`, whether it landed (a lost
/// acknowledgement) or not. A blob that cannot be read back after a failed create still refuses
/// the write plainly: no commit was sent. Store errors keep the store's own error as their source.
#[tokio::test]
async fn commit_whose_outcome_cannot_be_read_back_is_indeterminate() {
    for landed in [true, false] {
        let site = Site::new(Backend::Memory);
        let (store, faults) = site.faulty();
        let v = Vault::init(store, &pw(PASSWORD), opts(site.trust())).await.unwrap();
        v.set("app/x", b"x1").await.unwrap();
        if landed {
            faults.timeout_after_apply("log/", When::Nth(1));
        } else {
            faults.fail_under(OpKind::Put, "log/", When::Nth(1));
        }
        // The first read of the new commit's name is the write's freshness check, the second the
        // commit's own check that the head is still the one it applied; every read after the
        // create fails.
        faults.fail_under(OpKind::Get, "log/", When::From(3));
        let e = err(v.set("app/x", b"x2").await);
        match &e {
            Error::Indeterminate(inner) => assert!(is_injected_store_error(inner), "{e:?}"),
            _ => panic!("expected an indeterminate write, got {e:?}"),
        }
        assert_eq!(e.category(), tresor::Category::Indeterminate);
        // The store's own error is the source of the store error inside.
        let Error::Indeterminate(inner) = &e else { unreachable!() };
        let source = std::error::Error::source(inner.as_ref()).and_then(std::error::Error::source);
        assert!(source.is_some_and(|s| s.to_string().contains("injected")), "{inner:?}");
        drop(v);
        faults.heal();
        let v = site.unlock(PASSWORD).await.unwrap();
        let versions = v.history("app/x").await.unwrap().len();
        assert_eq!(versions, if landed { 2 } else { 1 }, "landed: {landed}");
        v.verify().await.unwrap();
    }
    // A failed blob create that cannot be read back: refused, nothing committed.
    let site = Site::new(Backend::Memory);
    let (store, faults) = site.faulty();
    let v = Vault::init(store, &pw(PASSWORD), opts(site.trust())).await.unwrap();
    faults.fail_under(OpKind::Put, "blob/", When::Nth(1));
    faults.fail_under(OpKind::Get, "blob/", When::Every);
    let e = err(v.set("app/y", b"y1").await);
    assert!(matches!(e, Error::Store(_)) && is_injected_store_error(&e), "{e:?}");
    faults.heal();
    assert!(matches!(v.get("app/y", None).await, Err(Error::NotFound { .. })));
}

/// A commit whose create failed and that a read right after does not find: refused on a local
/// directory or in memory (a failure there is final), but indeterminate over a network, where a
/// request that timed out may still be applied after the read — even when the final answer was
/// a refusal (access denied), since the backend's retries may follow an attempt still on its way.
#[tokio::test]
async fn failed_commit_not_found_after_is_indeterminate_only_where_it_may_land_later() {
    for (location, denied, indeterminate) in [
        ("memory://faults", false, false),
        ("s3://bucket/vault", false, true),
        ("s3://bucket/vault", true, true),
        ("memory://faults", true, false),
    ] {
        let env = Env::new();
        let fault = FaultStore::new(Arc::new(InMemory::new()));
        let faults = fault.faults();
        let store = Store::from_object_store(Arc::new(fault), None, location);
        let v = Vault::init(store, &pw(PASSWORD), opts(&env.trust)).await.unwrap();
        // What S3 answers with 403 is a definite refusal; an injected error is any other failure.
        let fault = if denied { Fault::Denied } else { Fault::Error };
        faults.add(Rule { kind: OpKind::Put, prefix: Some("log/".into()), when: When::Nth(1), fault });
        let e = err(v.set("app/x", b"x1").await);
        let what = format!("{location} denied={denied}: {e:?}");
        assert_eq!(matches!(e, Error::Indeterminate(_)), indeterminate, "{what}");
        assert!(matches!(e, Error::Store(_) | Error::Indeterminate(_)), "{what}");
    }
}

/// A lost acknowledgement on the new key file: the write landed, so `passwd` succeeds (the key
/// file is created idempotently, like commits and audit records), and the new password unlocks.
#[tokio::test]
async fn passwd_lost_ack_on_key_file_succeeds() {
    let site = Site::new(Backend::Memory);
    let (store, faults) = site.faulty();
    let v = Vault::init(store, &pw(PASSWORD), opts(site.trust())).await.unwrap();
    faults.timeout_after_apply("keyfile/", When::Nth(1));
    let answer = v.passwd(&pw(NEW_PASSWORD), KdfParams::MINIMUM).await;
    let retry = v.passwd(&pw(NEW_PASSWORD), KdfParams::MINIMUM).await;
    drop(v);
    assert!(answer.is_ok(), "passwd: {:?}", answer.err());
    assert!(retry.is_ok(), "a second passwd on the same handle: {:?}", retry.err());
    site.unlock(NEW_PASSWORD).await.unwrap();
}

/// A store error on passwd's commit (not applied): the new key file it wrote first stays and, being
/// the newest, is the one unlock uses. Removing it could race a commit still landing, so passwd
/// says exactly that — the NEW password is in force — and the next unlock records the change in
/// the log and removes the old key file.
#[tokio::test]
async fn passwd_commit_error_says_the_new_password_is_in_force_and_unlock_records_it() {
    let site = Site::new(Backend::Memory);
    let (store, faults) = site.faulty();
    let v = Vault::init(store, &pw(PASSWORD), opts(site.trust())).await.unwrap();
    faults.fail_under(OpKind::Put, "log/", When::Nth(1));
    let answer = v.passwd(&pw(NEW_PASSWORD), KdfParams::MINIMUM).await;
    let message = err(answer).to_string();
    assert!(message.contains("NEW password now opens the vault"), "{message}");
    drop(v);
    assert!(matches!(site.unlock(PASSWORD).await, Err(Error::AuthFailed)));
    let v = site.unlock(NEW_PASSWORD).await.unwrap();
    assert_eq!(site.objects("keyfile").await.len(), 1, "the old key file is removed");
    v.verify().await.unwrap();
    assert_eq!(v.status().await.unwrap().keyfile_generation, 2);
    drop(v);
    // Recorded: a machine that never saw the vault finds the generation in the log.
    let fresh = site.unlock_with_trust(NEW_PASSWORD, "fresh").await.unwrap();
    fresh.verify().await.unwrap();
}

/// Deleting the old key file fails after passwd's commit: the change is complete, so passwd
/// succeeds (the clean-up is left to `gc` and the next password change).
#[tokio::test]
async fn passwd_delete_error_after_commit_still_succeeds() {
    let site = Site::new(Backend::Memory);
    let (store, faults) = site.faulty();
    let v = Vault::init(store, &pw(PASSWORD), opts(site.trust())).await.unwrap();
    faults.fail(OpKind::Delete, When::Every);
    let answer = v.passwd(&pw(NEW_PASSWORD), KdfParams::MINIMUM).await;
    drop(v);
    site.unlock(NEW_PASSWORD).await.unwrap();
    answer.unwrap();
}

/// Faults during passwd, as the invariants the vault does keep (the ignored tests above describe
/// what it should do besides): whatever passwd answers, exactly one of the two passwords unlocks
/// afterwards (the figures print which), and nothing else is lost.
#[tokio::test]
async fn passwd_faults_leave_exactly_one_password() {
    type Arm = fn(&Faults);
    let cases: [(&str, Arm); 4] = [
        ("lost ack on the key file", |f| f.timeout_after_apply("keyfile/", When::Nth(1))),
        ("error on the key file put", |f| f.fail_under(OpKind::Put, "keyfile/", When::Nth(1))),
        ("error on the commit put", |f| f.fail_under(OpKind::Put, "log/", When::Nth(1))),
        ("error on the old key file's delete", |f| f.fail(OpKind::Delete, When::Every)),
    ];
    for (backend, (name, arm)) in
        [Backend::Local, Backend::Memory].into_iter().flat_map(|b| cases.map(|c| (b, c)))
    {
        let site = Site::new(backend);
        let (store, faults) = site.faulty();
        let v = Vault::init(store, &pw(PASSWORD), opts(site.trust())).await.unwrap();
        v.set("app/x", b"x1").await.unwrap();
        arm(&faults);
        let answer = v.passwd(&pw(NEW_PASSWORD), KdfParams::MINIMUM).await;
        drop(v);
        let old = site.unlock(PASSWORD).await;
        let new = site.unlock(NEW_PASSWORD).await;
        let (v, which) = match (old, new) {
            (Ok(v), Err(Error::AuthFailed)) => (v, "old"),
            (Err(Error::AuthFailed), Ok(v)) => (v, "new"),
            (old, new) => panic!("{name}: old: {:?}, new: {:?}", old.err(), new.err()),
        };
        assert_eq!(v.get("app/x", None).await.unwrap().as_slice(), b"x1", "{name}");
        v.verify().await.unwrap();
        println!(
            "T14-faults: {} passwd with {name}: passwd answered {}, the {which} password unlocks, key files {:?}",
            backend.name(),
            answer.as_ref().map_or_else(|e| format!("error ({e})"), |()| "ok".into()),
            site.objects("keyfile").await.iter().map(|n| short(n)).collect::<Vec<_>>()
        );
    }
}

// ---- read errors ----------------------------------------------------------------------------------

/// Injected read errors surface as `Error::Store` naming the fault, and the failed operation
/// writes nothing but (for a read of a secret) the audit record of its failure.
async fn read_errors(backend: Backend) -> usize {
    let site = Site::new(backend);
    let (store, faults) = site.faulty();
    let v = Vault::init(store.clone(), &pw(PASSWORD), opts(site.trust())).await.unwrap();
    v.set("app/x", b"x1").await.unwrap();
    let mut checked = 0;
    let all = || async { site.plain().list_all().await.unwrap() };

    // Every get fails: reads and writes fail before writing anything of their own.
    faults.fail(OpKind::Get, When::Every);
    let before = all().await;
    let e = err(v.set("app/x", b"x2").await);
    assert!(is_injected_store_error(&e), "set: {e:?}");
    let e = err(v.delete("app/x").await);
    assert!(is_injected_store_error(&e), "delete: {e:?}");
    let e = err(v.set_many(tresor::model::AuditOp::Import, &[("app/y", b"y"), ("app/z", b"z")]).await);
    assert!(is_injected_store_error(&e), "set_many: {e:?}");
    let e = err(v.passwd(&pw(NEW_PASSWORD), KdfParams::MINIMUM).await);
    assert!(is_injected_store_error(&e), "passwd: {e:?}");
    assert_eq!(all().await, before, "failed writes wrote nothing");
    for (name, e) in [
        ("list", err(v.list("").await)),
        ("history", err(v.history("app/x").await)),
        ("status", err(v.status().await)),
        ("verify", err(v.verify().await)),
    ] {
        assert!(is_injected_store_error(&e), "{name}: {e:?}");
        checked += 1;
    }
    let e = err(v.get("app/x", None).await);
    assert!(is_injected_store_error(&e), "get: {e:?}");
    let added: Vec<String> = all().await.into_iter().filter(|n| !before.contains(n)).collect();
    assert!(added.iter().all(|n| n.starts_with("audit/")), "only audit records of failures: {added:?}");
    checked += 5;
    faults.heal();

    // The commit step's check fails beside the writes of the blob and the audit record.
    let commits = site.objects("log").await.len();
    // The write's refresh reads log/ (a get); the commit's checks ask what exists there (heads).
    faults.fail_under(OpKind::Head, "log/", When::Nth(1));
    let e = err(v.set("app/x", b"x2").await);
    assert!(is_injected_store_error(&e), "set, commit step: {e:?}");
    assert_eq!(site.objects("log").await.len(), commits, "no commit");
    assert_eq!(v.get("app/x", None).await.unwrap().as_slice(), b"x1");
    assert_eq!(v.set("app/x", b"x2").await.unwrap(), 2, "a retry takes the next version");
    checked += 1;
    faults.heal();
    drop(v);

    // Unlock through failing reads of each kind: a store error, nothing left behind.
    for kind in [OpKind::List, OpKind::Get, OpKind::Head] {
        let before = all().await;
        faults.fail(kind, When::Every);
        let e = err(Vault::unlock(store.clone(), &pw(PASSWORD), opts(site.trust())).await);
        assert!(is_injected_store_error(&e), "unlock with failing {kind}: {e:?}");
        assert_eq!(all().await, before, "unlock with failing {kind} wrote nothing");
        faults.heal();
        checked += 1;
    }
    let v = site.unlock(PASSWORD).await.unwrap();
    assert_eq!(v.get("app/x", None).await.unwrap().as_slice(), b"x2");
    assert_eq!(v.history("app/x").await.unwrap().len(), 2);
    v.verify().await.unwrap();
    checked
}

#[tokio::test]
async fn read_errors_are_store_errors_and_write_nothing() {
    let mut figures = Vec::new();
    for backend in [Backend::Local, Backend::Memory] {
        let n = read_errors(backend).await;
        figures.push(format!("{} {n}/{n}", backend.name()));
    }
    println!("T14-faults: injected read errors reported as store errors: {}", figures.join(", "));
}

// ---- latency --------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_on_every_operation_changes_nothing() {
    let delay = Duration::from_millis(2);
    let mut figures = Vec::new();
    for backend in [Backend::Local, Backend::Memory] {
        let start = Instant::now();
        let site = Site::new(backend);
        let (store, faults) = site.faulty();
        faults.latency_all(delay);
        let mut vault = None;
        let mut model = Secrets::new();
        for (name, step) in SCRIPT {
            let versions =
                exec(*step, &mut vault, &store, site.trust()).await.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(versions, apply(&mut model, *step), "{name}");
        }
        let v = vault.as_mut().unwrap();
        assert_eq!(read_secrets(v).await, model);
        v.verify().await.unwrap();
        drop(vault);
        let mut v = Vault::unlock(store.clone(), &pw(NEW_PASSWORD), opts(site.trust())).await.unwrap();
        assert_eq!(read_secrets(&mut v).await, model);
        v.verify().await.unwrap();
        let ops: u64 = OpKind::ALL.iter().map(|k| faults.count(*k)).sum();
        assert!(start.elapsed() >= delay * ops as u32 / 64, "the latency was applied");
        figures.push(format!("{} {ops} ops in {:.1} s", backend.name(), start.elapsed().as_secs_f64()));
    }
    println!(
        "T14-faults: {} ms latency on every operation, script and checks pass: {}",
        delay.as_millis(),
        figures.join(", ")
    );
}

/// A store whose listing never ends (its pages lead back to the first) was followed for ever:
/// `audit verify` and `gc` listed until memory ran out. Now a name listed twice ends the listing
/// with a store error naming it, and nothing is deleted.
#[tokio::test]
async fn regression_a_listing_that_never_ended_was_followed_for_ever() {
    for backend in [Backend::Local, Backend::Memory] {
        let site = Site::new(backend);
        let (store, faults) = site.faulty();
        let v = Vault::init(store.clone(), &pw(PASSWORD), opts(site.trust())).await.unwrap();
        v.set("app/x", b"x").await.unwrap();
        let before = site.plain().list_all().await.unwrap();
        faults.endless_listings_under("");
        let limit = Duration::from_secs(30);
        let verified = tokio::time::timeout(limit, v.verify()).await.expect("verify ended");
        let e = err(verified);
        assert!(e.to_string().contains("twice in one listing"), "{}: {e}", backend.name());
        let collected = tokio::time::timeout(limit, v.gc(Duration::ZERO, false)).await.expect("gc ended");
        let e = err(collected);
        assert!(e.to_string().contains("twice in one listing"), "{}: {e}", backend.name());
        let after = site.plain().list_all().await.unwrap();
        assert!(before.iter().all(|name| after.contains(name)), "nothing was deleted");
        drop(v);
    }
}
