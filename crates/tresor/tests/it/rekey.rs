//! Root rotation (issue 12, item 4; threat T24): `rekey` replaces the root secret, carries every
//! version and the audit trail over, and leaves the old password and the old key files opening
//! nothing written afterwards; a crash at any write leaves exactly one root that opens the vault,
//! and running the command again finishes the job.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::{Env, PASSWORD, copy_dir, err, opts, pw};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tresor::local::LocalDir;
use tresor::{Error, KdfParams, ObjectKind, Store, Vault};
use tresor_testkit::fault::FaultStore;

const NEW: &str = "a brand new password";

/// Every version of every secret: path -> [(version, value, created, deleted)].
type Model = BTreeMap<String, Vec<(u64, Vec<u8>, u64, Option<u64>)>>;

async fn model(v: &mut Vault) -> Model {
    let mut out = Model::new();
    let paths: Vec<String> = {
        let mut all = Vec::new();
        for e in v.list("").await.unwrap() {
            all.push(e.path);
        }
        all.push("gone/forever".to_string());
        all
    };
    for path in paths {
        let Ok(history) = v.history(&path).await else { continue };
        let mut versions = Vec::new();
        for h in history {
            let value = v.get(&path, Some(h.version)).await.unwrap();
            versions.push((h.version, value.as_slice().to_vec(), h.created_ms, h.deleted_ms));
        }
        out.insert(path, versions);
    }
    out
}

/// A vault with history: overwritten and deleted secrets, two epochs, a rotation policy.
async fn busy(env: &Env) -> Model {
    let mut v = env.init().await;
    v.set("db/password", b"one").await.unwrap();
    v.set("db/password", b"two").await.unwrap();
    v.set("gone/forever", b"x").await.unwrap();
    v.delete("gone/forever").await.unwrap();
    v.rotate("manual").await.unwrap();
    let big = vec![7u8; 300_000];
    v.set("big/blob", &big).await.unwrap();
    v.set_rotation_policy(Some(Duration::from_secs(86_400 * 30))).await.unwrap();
    let m = model(&mut v).await;
    drop(v);
    m
}

async fn rekey(v: Vault) -> tresor::Result<(Vault, tresor::vault::RekeyReport)> {
    v.rekey(&pw(NEW), KdfParams::MINIMUM, &mut |_, _| {}).await
}

#[tokio::test]
async fn rekey_replaces_the_root_and_carries_every_version_and_record_over() {
    let env = Env::new();
    let before = busy(&env).await;
    // A long-lived handle (an agent) open on the old root while another process re-keys.
    let stale = env.unlock().await.unwrap();
    let v = env.unlock().await.unwrap();
    let (old_fingerprint, old_phrase) =
        (v.fingerprint(), v.recovery_phrase().await.unwrap().expose_phrase().to_string());
    drop(v);
    let trail_before = {
        let v = env.unlock().await.unwrap();
        v.audit_trail().await.unwrap().len()
    };
    let (mut v, report) = rekey(env.unlock().await.unwrap()).await.unwrap();
    assert_eq!((report.era, report.previous), (2, 1));
    assert!(report.complete() && report.deleted_objects > 0);
    assert_ne!(v.fingerprint(), old_fingerprint, "a new root");
    assert_ne!(*v.recovery_phrase().await.unwrap().expose_phrase(), old_phrase, "a new recovery phrase");
    assert_eq!(model(&mut v).await, before, "every version, value and time carried over");
    let trail = v.audit_trail().await.unwrap();
    assert!(trail.len() > trail_before, "the old trail and the re-key are in the new one");
    assert!(trail.iter().any(|tresor::model::TrailRecord { record: r, .. }| r.op == "rekey"));
    let report = v.verify().await.unwrap();
    assert!(report.damaged.is_empty() && report.values == 4, "{report:?}");
    v.set("after/rekey", b"new").await.unwrap();
    drop(v);
    // The stale handle says what happened, for reads and writes alike.
    for e in [err(stale.get("db/password", None).await.map(drop)), err(stale.set("x", b"y").await.map(drop))]
    {
        assert!(matches!(e, Error::Superseded { era: 2 }), "{e:?}");
    }
    drop(stale);
    // The stale handle's audit records landed in the deleted era (it learns only by failing): gc
    // of the new era removes them.
    let report = env.unlock_with(&env.trust, NEW).await.unwrap().gc(Duration::ZERO, false).await.unwrap();
    assert!(report.older_era_objects > 0);
    // Only the new era is left in the store.
    let objects = common::files(&env.loc);
    assert!(
        objects.iter().all(|n| n.starts_with("root/0000000002/") || n == "era/0000000002"),
        "{objects:?}"
    );
    // The new password opens it; the old one does not.
    assert!(matches!(err(env.unlock().await), Error::AuthFailed));
    let v = env.unlock_with(&env.trust, NEW).await.unwrap();
    assert_eq!(v.get("after/rekey", None).await.unwrap().as_slice(), b"new");
    assert_eq!(v.era(), 2);
    // And it re-keys again, into era 3.
    let (v, report) = v.rekey(&pw(PASSWORD), KdfParams::MINIMUM, &mut |_, _| {}).await.unwrap();
    assert_eq!(report.era, 3);
    drop(v);
    assert_eq!(env.unlock().await.unwrap().get("after/rekey", None).await.unwrap().as_slice(), b"new");
}

/// T24: after a re-key, the old password with the old key file opens nothing written afterwards —
/// whether the store serves the old era beside the new one, or only the old era.
#[tokio::test]
async fn t24_old_key_file_and_old_password_open_nothing_written_after() {
    let env = Env::new();
    busy(&env).await;
    let old_copy = env.path("old-copy");
    copy_dir(&env.loc, &old_copy);
    let (v, _) = rekey(env.unlock().await.unwrap()).await.unwrap();
    let written_after = ["after/one", "after/two", "db/password"];
    for path in written_after {
        v.set(path, b"post-rekey secret").await.unwrap();
    }
    drop(v);
    // The store puts the old era back beside the new one: the old password opens nothing.
    copy_dir(&old_copy, &env.loc);
    let fresh = env.path("fresh-machine");
    assert!(matches!(err(env.unlock().await), Error::AuthFailed), "this machine");
    assert!(matches!(err(env.unlock_with(&fresh, PASSWORD).await), Error::AuthFailed), "a new machine");
    // The store hides the new era: this machine calls it a rollback; a new machine opens the old
    // era, which holds nothing written after the re-key.
    for dir in ["root", "era"] {
        std::fs::remove_dir_all(env.loc.join(dir)).unwrap();
    }
    match err(env.unlock_with(&env.trust, NEW).await) {
        Error::Rollback { kind: ObjectKind::RootEra, seen: 2, served: 1 } => {}
        e => panic!("expected a rollback of the root era, got {e:?}"),
    }
    let old = env.unlock_with(&fresh, PASSWORD).await.unwrap();
    let mut readable = 0;
    for path in written_after {
        if let Ok(value) = old.get(path, None).await
            && value.as_slice() == b"post-rekey secret"
        {
            readable += 1;
        }
    }
    assert_eq!(readable, 0);
    assert_eq!(old.get("db/password", None).await.unwrap().as_slice(), b"two", "what the old era held");
    println!(
        "T24-rekey: post-rotation secrets readable with old credentials: {readable} of {}",
        written_after.len()
    );
}

/// A vault at `location` behind a fault store.
fn faulty(location: &str) -> (Store, tresor_testkit::fault::Faults) {
    let fault = FaultStore::new(Arc::new(LocalDir::open(location).unwrap()));
    let faults = fault.faults();
    (Store::from_object_store(Arc::new(fault), None, location), faults)
}

/// Crash at every write of a re-key (lost acknowledgement): afterwards exactly one of the two
/// passwords opens the vault, every version reads, and running `rekey` again (or `gc`, once the
/// switch happened) finishes it.
#[tokio::test]
async fn t14_rekey_crash_at_every_write_leaves_exactly_one_root() {
    let env = Env::new();
    let before = busy(&env).await;
    let template = env.path("template");
    copy_dir(&env.loc, &template);
    let template_trust = env.path("template-trust");
    copy_dir(&env.trust, &template_trust);
    let (mut points, mut recovered, mut switched) = (0u64, 0u64, 0u64);
    for k in 1u64.. {
        let dir = env.path(&format!("crash-{k}"));
        let trust = env.path(&format!("trust-{k}"));
        copy_dir(&template, &dir);
        copy_dir(&template_trust, &trust);
        let location = std::fs::canonicalize(&dir).unwrap().display().to_string();
        // The trust state is keyed by location: carry the template's pins over to this copy.
        let trust_store = tresor::trust::TrustStore::new(&trust);
        let template_location = std::fs::canonicalize(&env.loc).unwrap().display().to_string();
        let mut export = trust_store.export(&template_location).unwrap().unwrap();
        export.location = location.clone();
        trust_store.import(&location, &export).unwrap();

        let (store, faults) = faulty(&location);
        let v = Vault::unlock(store, &pw(PASSWORD), opts(&trust)).await.unwrap();
        faults.reset_counts();
        faults.crash_after_writes(k);
        let result = rekey(v).await;
        if !faults.crashed() {
            result.unwrap();
            break;
        }
        points += 1;
        let when = format!("crash at write {k}: {:?}", faults.write_log()[k as usize - 1]);
        // The restarted process.
        let plain = || Store::open(&location, false).unwrap();
        let old = Vault::unlock(plain(), &pw(PASSWORD), opts(&trust)).await;
        let new = Vault::unlock(plain(), &pw(NEW), opts(&trust)).await;
        let mut v = match (old, new) {
            (Ok(old), Err(Error::AuthFailed)) => {
                // Before the switch: the old root, fenced; running it again finishes.
                let (v, _) = rekey(old).await.unwrap_or_else(|e| panic!("{when}: rerun: {e}"));
                v
            }
            (Err(Error::AuthFailed), Ok(new)) => {
                // After the switch: the new root; gc deletes what is left of the old era.
                switched += 1;
                new.gc(Duration::ZERO, false).await.unwrap_or_else(|e| panic!("{when}: gc: {e}"));
                new
            }
            (Ok(_), Ok(_)) => panic!("{when}: both roots open the vault"),
            (Err(a), Err(b)) => panic!("{when}: neither root opens the vault: {a} / {b}"),
            (Ok(_), Err(e)) | (Err(e), Ok(_)) => panic!("{when}: {e}"),
        };
        assert_eq!(model(&mut v).await, before, "{when}");
        assert!(v.verify().await.unwrap().damaged.is_empty(), "{when}");
        drop(v);
        assert!(
            common::files(&dir).iter().all(|n| n.starts_with("root/") || n.starts_with("era/")),
            "{when}: something of the old era is left"
        );
        recovered += 1;
        std::fs::remove_dir_all(&dir).unwrap();
    }
    assert_eq!(recovered, points);
    assert!(points > 10 && switched > 0, "{points} crash points, {switched} after the switch");
    println!(
        "T14-rekey: {recovered}/{points} crash points recovered ({switched} after the switch), exactly one root each"
    );
}

/// Between its fence and its switch, an interrupted re-key leaves the old era readable but closed
/// to writes (a write there would be lost with the era); `abort_rekey` opens it again.
#[tokio::test]
async fn an_interrupted_rekey_fences_writes_until_rerun_or_aborted() {
    let env = Env::new();
    busy(&env).await;
    let location = std::fs::canonicalize(&env.loc).unwrap().display().to_string();
    // Write 1 is the re-key's audit record, write 2 the fence, write 4 already in the new era.
    let (store, faults) = faulty(&location);
    let v = Vault::unlock(store, &pw(PASSWORD), opts(&env.trust)).await.unwrap();
    faults.reset_counts();
    faults.crash_after_writes(4);
    assert!(rekey(v).await.is_err() && faults.crashed());
    let log = faults.write_log();
    assert!(log[1].1.starts_with("log/"), "the fence is the second write: {log:?}");
    // Taken over at once only when the caller says the attempt is dead (the lease).
    let mut patient = opts(&env.trust);
    patient.rekey_lease = Duration::from_secs(600);
    let v = Vault::unlock(Store::open(&location, false).unwrap(), &pw(PASSWORD), patient).await.unwrap();
    match rekey(v).await {
        Err(e @ Error::RekeyRunning { .. }) => {
            assert!(e.to_string().contains("may still be running"), "{e}");
            assert_eq!(e.category(), tresor::Category::Conflict);
        }
        Err(e) => panic!("expected the lease to hold, got {e:?}"),
        Ok(_) => panic!("a re-key took over one that may still be running"),
    }
    let v = env.unlock().await.unwrap();
    assert_eq!(v.get("db/password", None).await.unwrap().as_slice(), b"two", "still readable");
    match err(v.set("new/secret", b"x").await) {
        Error::Fenced { next: 2 } => {}
        e => panic!("expected the fence, got {e:?}"),
    }
    v.abort_rekey().await.unwrap();
    v.set("new/secret", b"x").await.unwrap();
    assert!(common::files(&env.loc).iter().all(|n| !n.starts_with("root/")), "the debris is gone");
    drop(v);
    let (v, report) = rekey(env.unlock().await.unwrap()).await.unwrap();
    assert_eq!(report.era, 2);
    drop(v);
    let v = env.unlock_with(&env.trust, NEW).await.unwrap();
    assert_eq!(v.get("new/secret", None).await.unwrap().as_slice(), b"x");
}

/// The era is where the store put the objects, and the log says which era they are: a re-keyed
/// era moved to another number is refused, and a flood of planted era markers ends in an error
/// instead of one listing per marker.
#[tokio::test]
async fn fail_moved_eras_and_planted_era_markers() {
    let env = Env::new();
    busy(&env).await;
    let (v, _) = rekey(env.unlock().await.unwrap()).await.unwrap();
    drop(v);
    let fresh = env.path("fresh");
    std::fs::rename(env.loc.join("root/0000000002"), env.loc.join("root/0000000005")).unwrap();
    std::fs::rename(env.loc.join("era/0000000002"), env.loc.join("era/0000000005")).unwrap();
    let e = err(env.unlock_with(&fresh, NEW).await);
    common::assert_integrity(&e, ObjectKind::RootEra, Some("era/0000000005"));
    std::fs::rename(env.loc.join("root/0000000005"), env.loc.join("root/0000000002")).unwrap();
    std::fs::rename(env.loc.join("era/0000000005"), env.loc.join("era/0000000002")).unwrap();
    for era in 10..40u32 {
        std::fs::write(env.loc.join(format!("era/{era:010}")), b"").unwrap();
    }
    let e = err(env.unlock_with(&fresh, NEW).await);
    common::assert_integrity(&e, ObjectKind::RootEra, None);
    for era in 10..40u32 {
        std::fs::remove_file(env.loc.join(format!("era/{era:010}"))).unwrap();
    }
    env.unlock_with(&fresh, NEW).await.unwrap();
}

/// A re-keyed vault exported and imported elsewhere opens there (its era's objects at the top of
/// the new location), and re-keys again.
#[tokio::test]
async fn a_rekeyed_vault_exports_imports_and_rekeys_again() {
    let env = Env::new();
    let before = busy(&env).await;
    let (v, _) = rekey(env.unlock().await.unwrap()).await.unwrap();
    let archive = tresor::archive::export(&v).await.unwrap();
    drop(v);
    let elsewhere = env.path("elsewhere");
    let store = Store::open(elsewhere.to_str().unwrap(), true).unwrap();
    let mut v =
        tresor::archive::import(store, &archive, &pw(NEW), opts(&env.path("other-trust"))).await.unwrap();
    assert_eq!(model(&mut v).await, before);
    let (mut v, report) = v.rekey(&pw(PASSWORD), KdfParams::MINIMUM, &mut |_, _| {}).await.unwrap();
    assert_eq!(report.era, 2);
    assert_eq!(model(&mut v).await, before);
}

/// Regression (review of the shared handle): a handle that had seen a re-key's fence kept
/// serving the old era's values from its view once another process had switched eras, as long
/// as the old era's objects were still there (a re-key that crashed after its switch, before
/// deleting them): no new commit appears in a fenced era, so the view looked fresh. A fenced
/// view now asks the engine, which checks the era.
#[tokio::test]
async fn stale_reads_after_a_rekey_elsewhere_that_crashed_after_its_switch() {
    let env = Env::new();
    busy(&env).await;
    let location = std::fs::canonicalize(&env.loc).unwrap().display().to_string();
    let stale = env.unlock().await.unwrap();
    // An attempt that stops after its fence (write 2) is committed.
    let (store, faults) = faulty(&location);
    let v = Vault::unlock(store, &pw(PASSWORD), opts(&env.trust)).await.unwrap();
    faults.reset_counts();
    faults.crash_after_writes(4);
    assert!(rekey(v).await.is_err() && faults.crashed());
    // The long-lived handle reads and so applies the fence: still the vault, still readable.
    assert_eq!(stale.get("db/password", None).await.unwrap().as_slice(), b"two");
    // Another run finishes the re-key; its deletion of the old era is undone (as if it had
    // crashed right after the switch).
    let old_era = env.path("old-era");
    copy_dir(&env.loc, &old_era);
    let (v, _) = rekey(env.unlock().await.unwrap()).await.unwrap();
    drop(v);
    for entry in std::fs::read_dir(&old_era).unwrap() {
        let name = entry.unwrap().file_name();
        let (from, to) = (old_era.join(&name), env.loc.join(&name));
        if name == "root" || name == "era" || to.exists() {
            continue;
        }
        if from.is_dir() { copy_dir(&from, &to) } else { std::fs::copy(&from, &to).map(drop).unwrap() }
    }
    assert!(env.loc.join("log").exists(), "the old era's objects are back");
    match stale.get("db/password", None).await {
        Err(Error::Superseded { era: 2 }) => {}
        Err(e) => panic!("expected Superseded, got {e:?}"),
        Ok(_) => panic!("a value of the replaced era was served after the switch"),
    }
}
