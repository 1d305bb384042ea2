//! A first end-to-end pass over the Vault API on a local directory.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use tresor::{KdfParams, Options, Password, Store, Vault};

fn opts(trust: &std::path::Path) -> Options {
    let mut o = Options::new(trust, "test");
    o.kdf = KdfParams::MINIMUM;
    o
}

#[tokio::test]
async fn init_set_get_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("vault");
    let trust = dir.path().join("trust");
    let pw = || Password::from("correct horse battery".to_string());
    let v =
        Vault::init(Store::open(loc.to_str().unwrap(), true).unwrap(), &pw(), opts(&trust)).await.unwrap();
    assert_eq!(v.set("db/password", b"hunter2").await.unwrap(), 1);
    assert_eq!(v.set("db/password", b"hunter3").await.unwrap(), 2);
    drop(v);
    let v =
        Vault::unlock(Store::open(loc.to_str().unwrap(), false).unwrap(), &pw(), opts(&trust)).await.unwrap();
    assert_eq!(v.get("db/password", None).await.unwrap().as_slice(), b"hunter3");
    assert_eq!(v.get("db/password", Some(1)).await.unwrap().as_slice(), b"hunter2");
    let report = v.verify().await.unwrap();
    assert_eq!(report.commits, 3);
    assert!(report.audit_records >= 5);
}

#[tokio::test]
async fn get_with_history_reads_a_version_and_its_history_in_one_audited_read() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("vault");
    let store = Store::open(loc.to_str().unwrap(), true).unwrap();
    let v =
        Vault::init(store, &Password::from("correct horse battery".to_string()), opts(&dir.path().join("t")))
            .await
            .unwrap();
    v.set("db/pw", b"one").await.unwrap();
    v.set("db/pw", b"two").await.unwrap();
    let before = v.audit_trail().await.unwrap().len();
    let (history, value) = v.get_with_history("db/pw", None).await.unwrap();
    assert_eq!((history.len(), value.unwrap().as_slice()), (2, &b"two"[..]));
    let (_, value) = v.get_with_history("db/pw", Some(1)).await.unwrap();
    assert_eq!(value.unwrap().as_slice(), b"one");
    // The newest version deleted: its history, no value, and a record saying so.
    v.delete("db/pw").await.unwrap();
    let (history, value) = v.get_with_history("db/pw", None).await.unwrap();
    assert!(value.is_none() && history[1].deleted_ms.is_some());
    assert!(matches!(
        v.get_with_history("db/pw", Some(9)).await,
        Err(tresor::Error::NoSuchVersion { version: 9, .. })
    ));
    assert!(matches!(v.get_with_history("nope", None).await, Err(tresor::Error::NotFound { .. })));
    // One record per read: three answered, two refused; the delete wrote one of its own.
    let records = v.audit_trail().await.unwrap();
    let reads: Vec<_> = records[before..].iter().filter(|r| r.record.op == "get").collect();
    assert_eq!(reads.len(), 5, "{reads:?}");
    assert!(
        matches!(&reads[2].record.outcome, tresor::model::Outcome::Failed(why) if why.contains("deleted"))
    );
}
