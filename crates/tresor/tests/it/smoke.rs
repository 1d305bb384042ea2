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
