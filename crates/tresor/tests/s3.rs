//! The vault on a real S3-compatible server (moto, started by `.ci/run`): the same code path as
//! the local directory, create-if-absent through `If-None-Match: *`.
//!
//! `TRESOR_TEST_S3=s3://bucket` names the bucket (with `AWS_ENDPOINT_URL`, credentials and
//! `AWS_ALLOW_HTTP=true` in the environment). Without it these tests are skipped, unless
//! `TRESOR_REQUIRE_S3` is set, as in CI, which makes that a failure.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

mod common;

use common::{Env, PASSWORD, assert_rollback, opts, pw};
use tresor::{ObjectKind, Store, Vault, layout};

#[tokio::test]
async fn vault_lifecycle_and_rollback_on_s3() {
    let Some(location) = common::s3_location("vault") else { return };
    let env = Env::new();
    let trust = env.path("trust");
    let mut v =
        Vault::init(Store::open(&location, false).unwrap(), &pw(PASSWORD), opts(&trust)).await.unwrap();
    v.set("db/password", b"hunter2").await.unwrap();
    v.set("db/password", b"hunter3").await.unwrap();
    drop(v);
    let mut v =
        Vault::unlock(Store::open(&location, false).unwrap(), &pw(PASSWORD), opts(&trust)).await.unwrap();
    assert_eq!(v.get("db/password", None).await.unwrap().as_slice(), b"hunter3");
    assert_eq!(v.get("db/password", Some(1)).await.unwrap().as_slice(), b"hunter2");
    v.verify().await.unwrap();
    drop(v);
    // The bucket drops the newest commit: refused as a rollback.
    let store = Store::open(&location, false).unwrap();
    let newest = store.list(layout::LOG_DIR).await.unwrap().pop().unwrap();
    store.delete(&newest).await.unwrap();
    let e = Vault::unlock(store, &pw(PASSWORD), opts(&trust)).await.err().unwrap();
    let (seen, served) = assert_rollback(&e, ObjectKind::Commit);
    assert_eq!(seen, served + 1);
    println!("T01-s3: rollback of the newest commit detected (seen {seen}, served {served})");
}

#[tokio::test]
async fn local_vault_copied_into_a_bucket_opens_unchanged() {
    let Some(location) = common::s3_location("vault") else { return };
    let env = Env::new();
    let mut v = env.init().await;
    v.set("a/b", b"value").await.unwrap();
    drop(v);
    let local = Store::open(env.loc.to_str().unwrap(), false).unwrap();
    let bucket = Store::open(&location, false).unwrap();
    for name in local.list_all().await.unwrap() {
        let bytes = local.get(&name).await.unwrap().unwrap();
        bucket.create(&name, bytes.to_vec()).await.unwrap();
    }
    let mut v = Vault::unlock(bucket, &pw(PASSWORD), opts(&env.path("trust-s3"))).await.unwrap();
    assert_eq!(v.get("a/b", None).await.unwrap().as_slice(), b"value");
    v.verify().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_on_one_bucket_lose_nothing() {
    let Some(location) = common::s3_location("vault") else { return };
    let env = Env::new();
    let trust = env.path("trust");
    drop(Vault::init(Store::open(&location, false).unwrap(), &pw(PASSWORD), opts(&trust)).await.unwrap());
    let mut writers = Vec::new();
    for w in 0..2 {
        let (location, trust) = (location.clone(), env.path(&format!("trust-{w}")));
        writers.push(tokio::spawn(async move {
            let mut v = Vault::unlock(Store::open(&location, false).unwrap(), &pw(PASSWORD), opts(&trust))
                .await
                .unwrap();
            for i in 0..25 {
                v.set(&format!("w{w}/s{i}"), format!("{w}-{i}").as_bytes()).await.unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let mut v =
        Vault::unlock(Store::open(&location, false).unwrap(), &pw(PASSWORD), opts(&trust)).await.unwrap();
    let listed = v.list("").await.unwrap();
    assert_eq!(listed.len(), 50);
    for w in 0..2 {
        for i in 0..25 {
            let got = v.get(&format!("w{w}/s{i}"), None).await.unwrap();
            assert_eq!(got.as_slice(), format!("{w}-{i}").as_bytes());
        }
    }
    v.verify().await.unwrap();
    println!("T15-s3: 2 writers x 25 sets on one bucket: 50/50 present, chains whole");
}
