//! The vault on a real S3-compatible server (moto, started by `.ci/run`): the same code path as
//! the local directory, create-if-absent through `If-None-Match: *`.
//!
//! `TRESOR_TEST_S3=s3://bucket` names the bucket (with `AWS_ENDPOINT_URL`, credentials and
//! `AWS_ALLOW_HTTP=true` in the environment). Without it these tests are skipped, unless
//! `TRESOR_REQUIRE_S3` is set, as in CI, which makes that a failure.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::{Env, PASSWORD, assert_rollback, opts, pw};
use tresor::{ObjectKind, Store, Vault, layout};

#[tokio::test]
async fn vault_lifecycle_and_rollback_on_s3() {
    let Some(location) = common::s3_location("vault") else { return };
    let env = Env::new();
    let trust = env.path("trust");
    let v = Vault::init(common::open(&location, false).await, &pw(PASSWORD), opts(&trust)).await.unwrap();
    v.set("db/password", b"hunter2").await.unwrap();
    v.set("db/password", b"hunter3").await.unwrap();
    drop(v);
    let v = Vault::unlock(common::open(&location, false).await, &pw(PASSWORD), opts(&trust)).await.unwrap();
    assert_eq!(v.get("db/password", None).await.unwrap().as_slice(), b"hunter3");
    assert_eq!(v.get("db/password", Some(1)).await.unwrap().as_slice(), b"hunter2");
    v.verify().await.unwrap();
    drop(v);
    // The bucket drops the newest commit: refused as a rollback.
    let store = common::open(&location, false).await;
    let newest = store.list(layout::LOG_DIR).await.unwrap().pop().unwrap();
    store.delete(&newest).await.unwrap();
    let e = Vault::unlock(store, &pw(PASSWORD), opts(&trust)).await.err().unwrap();
    let (seen, served) = assert_rollback(&e, ObjectKind::Commit);
    assert_eq!(seen, served + 1);
    println!("T01-s3: rollback of the newest commit detected (seen {seen}, served {served})");
}

#[tokio::test]
async fn local_vault_copied_into_a_bucket_opens_unchanged_and_back() {
    let Some(location) = common::s3_location("vault") else { return };
    let env = Env::new();
    let v = env.init().await;
    v.set("a/b", b"value").await.unwrap();
    drop(v);
    let local = Store::open(env.loc.to_str().unwrap(), false).unwrap();
    let bucket = common::open(&location, false).await;
    for name in local.list_all().await.unwrap() {
        let bytes = local.get(&name).await.unwrap().unwrap();
        bucket.create(&name, bytes.to_vec()).await.unwrap();
    }
    let v = Vault::unlock(bucket.clone(), &pw(PASSWORD), opts(&env.path("trust-s3"))).await.unwrap();
    assert_eq!(v.get("a/b", None).await.unwrap().as_slice(), b"value");
    v.set("written/on-s3", b"there").await.unwrap();
    v.gc(std::time::Duration::from_secs(3600), false).await.unwrap();
    v.verify().await.unwrap();
    drop(v);
    // And back: the bucket copied into a new directory opens there.
    let back = env.path("back");
    let local = Store::open(back.to_str().unwrap(), true).unwrap();
    for name in bucket.list_all().await.unwrap() {
        let bytes = bucket.get(&name).await.unwrap().unwrap();
        local.create(&name, bytes.to_vec()).await.unwrap();
    }
    let v = Vault::unlock(local, &pw(PASSWORD), opts(&env.path("trust-back"))).await.unwrap();
    assert_eq!(v.get("a/b", None).await.unwrap().as_slice(), b"value");
    assert_eq!(v.get("written/on-s3", None).await.unwrap().as_slice(), b"there");
    assert!(v.status().await.unwrap().snapshot > 0, "the snapshot came along");
    v.verify().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_on_one_bucket_lose_nothing() {
    let Some(location) = common::s3_location("vault") else { return };
    let env = Env::new();
    let trust = env.path("trust");
    drop(Vault::init(common::open(&location, false).await, &pw(PASSWORD), opts(&trust)).await.unwrap());
    let mut writers = Vec::new();
    for w in 0..2 {
        let (location, trust) = (location.clone(), env.path(&format!("trust-{w}")));
        writers.push(tokio::spawn(async move {
            let v = Vault::unlock(common::open(&location, false).await, &pw(PASSWORD), opts(&trust))
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
    let v = Vault::unlock(common::open(&location, false).await, &pw(PASSWORD), opts(&trust)).await.unwrap();
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

/// Replaces object `name` in the bucket (the store may do anything; tresor never overwrites).
async fn put_raw(store: &Store, name: &str, bytes: &[u8]) {
    store.delete(name).await.unwrap();
    store.create(name, bytes.to_vec()).await.unwrap();
}

#[tokio::test]
async fn every_object_kind_rolled_back_injected_or_deleted_on_s3_is_detected() {
    let Some(location) = common::s3_location("kinds") else { return };
    let env = Env::new();
    let trust = env.path("trust");
    let store = common::open(&location, false).await;
    let mut o = opts(&trust);
    o.snapshot_every = Some(3);
    let v = Vault::init(store.clone(), &pw(PASSWORD), o).await.unwrap();
    for i in 0..4 {
        v.set(&format!("k/{i}"), format!("value {i}").as_bytes()).await.unwrap();
    }
    let old_keyfile = store.get(&layout::keyfile(1)).await.unwrap().unwrap();
    v.passwd(&pw(PASSWORD), tresor::KdfParams::MINIMUM).await.unwrap();
    v.set("k/last", b"after passwd").await.unwrap();
    drop(v);
    let unlock =
        || async { Vault::unlock(common::open(&location, false).await, &pw(PASSWORD), opts(&trust)).await };
    unlock().await.unwrap();
    let commits = store.list(layout::LOG_DIR).await.unwrap();
    let head = commits.len() as u64;
    let mut detected = Vec::new();

    // An older commit list: the newest two commits gone.
    let saved: Vec<_> = [head - 1, head].iter().map(|s| layout::commit(*s)).collect();
    let bytes: Vec<_> = futures_bytes(&store, &saved).await;
    for name in &saved {
        store.delete(name).await.unwrap();
    }
    let e = unlock().await.err().unwrap();
    assert_eq!(assert_rollback(&e, ObjectKind::Commit), (head, head - 2));
    detected.push("older commit list");
    for (name, b) in saved.iter().zip(&bytes) {
        store.create(name, b.clone()).await.unwrap();
    }

    // An older snapshot: the newest one gone.
    let snaps = store.list(layout::SNAPSHOT_DIR).await.unwrap();
    let newest_seq = snaps.iter().filter_map(|n| layout::parse_snapshot(n)).map(|(s, _, _)| s).max().unwrap();
    let newest: Vec<String> =
        snaps.into_iter().filter(|n| layout::parse_snapshot(n).unwrap().0 == newest_seq).collect();
    let bytes = futures_bytes(&store, &newest).await;
    for name in &newest {
        store.delete(name).await.unwrap();
    }
    let e = unlock().await.err().unwrap();
    assert_eq!(assert_rollback(&e, ObjectKind::Snapshot).0, newest_seq);
    detected.push("older snapshot");
    for (name, b) in newest.iter().zip(&bytes) {
        store.create(name, b.clone()).await.unwrap();
    }

    // An older key file: generation 1 back, generation 2 gone.
    let new_keyfile = store.get(&layout::keyfile(2)).await.unwrap().unwrap();
    store.delete(&layout::keyfile(2)).await.unwrap();
    store.create(&layout::keyfile(1), old_keyfile.to_vec()).await.unwrap();
    let e = unlock().await.err().unwrap();
    assert_eq!(assert_rollback(&e, ObjectKind::KeyFile), (2, 1));
    detected.push("older key file");
    store.delete(&layout::keyfile(1)).await.unwrap();
    store.create(&layout::keyfile(2), new_keyfile.to_vec()).await.unwrap();

    // A copied object injected as the next commit.
    let copy = store.get(&layout::commit(head)).await.unwrap().unwrap();
    store.create(&layout::commit(head + 1), copy.to_vec()).await.unwrap();
    let e = unlock().await.err().unwrap();
    common::assert_integrity(&e, ObjectKind::Commit, Some(&layout::commit(head + 1)));
    detected.push("injected commit");
    store.delete(&layout::commit(head + 1)).await.unwrap();

    // A value blob replaced by another blob's bytes.
    let blobs = store.list(layout::BLOB_DIR).await.unwrap();
    let (a, b) = (&blobs[0], &blobs[1]);
    let a_bytes = store.get(a).await.unwrap().unwrap();
    let b_bytes = store.get(b).await.unwrap().unwrap();
    put_raw(&store, a, &b_bytes).await;
    let v = unlock().await.unwrap();
    let mut failures = 0;
    for path in ["k/0", "k/1", "k/2", "k/3", "k/last"] {
        if let Err(e) = v.get(path, None).await {
            common::assert_integrity(&e, ObjectKind::ValueBlob, Some(a));
            failures += 1;
        }
    }
    assert_eq!(failures, 1);
    detected.push("swapped blob");
    drop(v);
    put_raw(&store, a, &a_bytes).await;

    // A middle commit deleted (below the snapshot: found by verify; above it: at unlock).
    let middle = layout::commit(head - 1);
    let middle_bytes = store.get(&middle).await.unwrap().unwrap();
    store.delete(&middle).await.unwrap();
    let e = unlock().await.err().unwrap();
    let detail = common::assert_integrity(&e, ObjectKind::Commit, Some(&middle));
    assert!(detail.contains("missing"), "{e}");
    detected.push("deleted commit");
    store.create(&middle, middle_bytes.to_vec()).await.unwrap();

    // An audit record deleted.
    let records = store.list(layout::AUDIT_DIR).await.unwrap();
    let record = records[1].clone();
    let record_bytes = store.get(&record).await.unwrap().unwrap();
    store.delete(&record).await.unwrap();
    let v = unlock().await.unwrap();
    let e = v.verify().await.err().unwrap();
    common::assert_integrity(&e, ObjectKind::AuditRecord, Some(&record));
    detected.push("deleted audit record");
    drop(v);
    store.create(&record, record_bytes.to_vec()).await.unwrap();

    let v = unlock().await.unwrap();
    v.verify().await.unwrap();
    assert_eq!(v.get("k/last", None).await.unwrap().as_slice(), b"after passwd");
    println!("T01-s3-kinds: detected {}/7 ({})", detected.len(), detected.join(", "));
    assert_eq!(detected.len(), 7);
}

async fn futures_bytes(store: &Store, names: &[String]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for n in names {
        out.push(store.get(n).await.unwrap().unwrap().to_vec());
    }
    out
}
