//! Deleting, undeleting and destroying chosen versions (KV v2's delete, undelete, destroy): what
//! each marks, that a destroyed value is gone from the store whatever shared its object, and that
//! the marks survive a snapshot, a fresh open and a re-key.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::{Env, err, pw};
use std::time::Duration;
use tresor::model::AuditOp;
use tresor::{Error, KdfParams, layout};

/// Every byte string of `needle` found in any file of `dir`, by file name.
fn files_holding(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    common::files(dir)
        .into_iter()
        .filter(|name| {
            let bytes = std::fs::read(dir.join(name)).unwrap_or_default();
            bytes.windows(needle.len()).any(|w| w == needle)
        })
        .collect()
}

#[tokio::test]
async fn delete_and_undelete_mark_chosen_versions() {
    let env = Env::new();
    let v = env.init().await;
    for value in [&b"one"[..], b"two", b"three"] {
        v.set("app/db", value).await.unwrap();
    }
    assert_eq!(v.delete_versions("app/db", &[1, 3, 7]).await.unwrap(), [1, 3], "7 does not exist");
    assert!(matches!(err(v.get("app/db", None).await), Error::Deleted { version: 3, .. }));
    assert_eq!(v.get("app/db", Some(2)).await.unwrap().as_slice(), b"two");
    let history = v.history("app/db").await.unwrap();
    let deleted: Vec<bool> = history.iter().map(|h| h.deleted_ms.is_some()).collect();
    assert_eq!(deleted, [true, false, true]);
    assert!(v.list("app/").await.unwrap().is_empty(), "a deleted newest version hides the secret");
    // Again: nothing left to delete, nothing committed.
    assert!(v.delete_versions("app/db", &[1, 3]).await.unwrap().is_empty());
    assert_eq!(v.undelete_versions("app/db", &[3, 2]).await.unwrap(), [3], "2 was not deleted");
    assert_eq!(v.get("app/db", None).await.unwrap().as_slice(), b"three");
    assert_eq!(v.list("app/").await.unwrap().len(), 1);
    assert!(matches!(err(v.delete_versions("app/none", &[1]).await), Error::NotFound { .. }));
    // The marks are in the log: a fresh handle sees them.
    let fresh = env.unlock().await.unwrap();
    let deleted: Vec<bool> =
        fresh.history("app/db").await.unwrap().iter().map(|h| h.deleted_ms.is_some()).collect();
    assert_eq!(deleted, [true, false, false]);
    let trail = fresh.audit_trail().await.unwrap();
    let undelete = trail.iter().find(|r| r.record.op == AuditOp::Undelete.as_str()).unwrap();
    assert_eq!(undelete.record.path.as_deref(), Some("app/db"));
    assert_eq!(undelete.record.detail.as_deref(), Some("versions 3"));
}

#[tokio::test]
async fn a_destroyed_value_is_gone_from_the_store_and_its_pack_neighbours_stay() {
    let env = Env::new();
    let v = env.init().await;
    // One request, one pack: the three values share one blob object.
    let secret = b"destroy-me-7f3a9c1e5b2d4f60".to_vec();
    v.set_many(AuditOp::Set, &[("app/a", &secret[..]), ("app/b", b"bee"), ("app/c", b"sea")]).await.unwrap();
    v.set("app/a", b"second").await.unwrap();
    let blobs_before = env.objects(layout::BLOB_DIR);
    assert_eq!(blobs_before.len(), 2);
    // The plaintext never reaches the store; the ciphertext object does, and must go.
    assert!(files_holding(&env.path(""), &secret).is_empty());
    let report = v.destroy_versions("app/a", &[1, 9]).await.unwrap();
    assert_eq!(report.destroyed, [1]);
    assert_eq!(report.moved, 2, "app/b and app/c moved out of the shared pack");
    assert_eq!(report.deleted_objects, 1);
    assert!(report.complete(), "{report:?}");
    let blobs_after = env.objects(layout::BLOB_DIR);
    let old_pack = blobs_before.iter().find(|b| !blobs_after.contains(b)).unwrap();
    assert!(!env.obj(old_pack).exists(), "the pack that held the value is deleted");
    assert!(matches!(err(v.get("app/a", Some(1)).await), Error::Destroyed { version: 1, .. }));
    assert_eq!(v.get("app/a", None).await.unwrap().as_slice(), b"second");
    assert_eq!(v.get("app/b", None).await.unwrap().as_slice(), b"bee");
    assert_eq!(v.get("app/c", None).await.unwrap().as_slice(), b"sea");
    let history = v.history("app/a").await.unwrap();
    assert_eq!(history.iter().map(|h| h.destroyed).collect::<Vec<_>>(), [true, false]);
    // Destroyed stays destroyed: no undelete, no second destruction.
    assert!(v.undelete_versions("app/a", &[1]).await.unwrap().is_empty());
    assert!(v.destroy_versions("app/a", &[1]).await.unwrap().destroyed.is_empty());
    let verified = v.verify().await.unwrap();
    assert!(verified.damaged.is_empty(), "{verified:?}");
    let gc = v.gc(Duration::ZERO, false).await.unwrap();
    assert_eq!(gc.orphan_blobs, 0, "nothing was left behind: {gc:?}");
    // Destroying the newest version hides the secret, as a deletion does.
    v.destroy_versions("app/c", &[1]).await.unwrap();
    assert!(matches!(err(v.get("app/c", None).await), Error::Destroyed { version: 1, .. }));
    let listed: Vec<String> = v.list("app/").await.unwrap().into_iter().map(|e| e.path).collect();
    assert_eq!(listed, ["app/a", "app/b"]);
    // Through a snapshot and a fresh open.
    v.snapshot().await.unwrap();
    let fresh = env.unlock().await.unwrap();
    assert!(matches!(err(fresh.get("app/a", Some(1)).await), Error::Destroyed { .. }));
    assert_eq!(fresh.get("app/b", None).await.unwrap().as_slice(), b"bee");
    assert!(fresh.verify().await.unwrap().damaged.is_empty());
}

#[tokio::test]
async fn destroyed_versions_survive_a_rekey_as_facts_without_values() {
    let env = Env::new();
    let v = env.init().await;
    v.set("app/a", b"first").await.unwrap();
    v.set("app/a", b"second").await.unwrap();
    v.destroy_versions("app/a", &[1]).await.unwrap();
    let (v, report) =
        v.rekey(&pw("a new and long enough password"), KdfParams::MINIMUM, &mut |_, _| {}).await.unwrap();
    assert_eq!(report.versions, 1, "{report:?}");
    assert!(matches!(err(v.get("app/a", Some(1)).await), Error::Destroyed { .. }));
    assert_eq!(v.get("app/a", None).await.unwrap().as_slice(), b"second");
    let history = v.history("app/a").await.unwrap();
    assert_eq!(history.iter().map(|h| (h.version, h.destroyed)).collect::<Vec<_>>(), [(1, true), (2, false)]);
    assert!(v.verify().await.unwrap().damaged.is_empty());
}

/// Regression (review): a re-key restored destroyed versions first, so a destroyed newest version
/// came back behind an older one — the older one read as current and its number was given again.
#[tokio::test]
async fn regression_a_rekey_kept_a_destroyed_newest_version_newest() {
    let env = Env::new();
    let v = env.init().await;
    v.set("app/a", b"first").await.unwrap();
    v.set("app/a", b"second").await.unwrap();
    v.destroy_versions("app/a", &[2]).await.unwrap();
    let (v, _) =
        v.rekey(&pw("a new and long enough password"), KdfParams::MINIMUM, &mut |_, _| {}).await.unwrap();
    assert!(matches!(err(v.get("app/a", None).await), Error::Destroyed { version: 2, .. }));
    let history: Vec<(u64, bool)> =
        v.history("app/a").await.unwrap().iter().map(|h| (h.version, h.destroyed)).collect();
    assert_eq!(history, [(1, false), (2, true)]);
    assert_eq!(v.set("app/a", b"third").await.unwrap(), 3, "no version number is given twice");
}
