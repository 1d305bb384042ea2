//! Threat T23: a destroyed epoch's objects must be gone from a bucket that keeps old versions,
//! where a DELETE only adds a delete marker. Runs on a real S3-compatible server (moto, started by
//! `.ci/run`), as the core's `tests/s3.rs` does, through `tresor_backend`.
//!
//! `TRESOR_TEST_S3_VERSIONED=s3://bucket` names a bucket with versioning enabled,
//! `TRESOR_TEST_S3_LOCKED=s3://bucket` one with Object Lock enabled, `TRESOR_TEST_S3` one without
//! versioning (with `AWS_ENDPOINT_URL`, credentials and `AWS_ALLOW_HTTP=true` in the
//! environment). Tests whose bucket is not named are skipped, unless `TRESOR_REQUIRE_S3` is set, as
//! in CI, which makes that a failure.
//!
//! moto does not check signatures or credentials, so wrong credentials cannot be tested here; the
//! refusals tested are Object Lock (`AccessDenied`) and a missing bucket (`NoSuchBucket`).
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use bytes::Bytes;
use common::{PASSWORD, opts, pw};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, Checksum};
use object_store::path::Path;
use object_store::{
    ClientConfigKey, ClientOptions, GetOptions, HeaderMap, HeaderValue, ObjectStore, ObjectStoreExt, PutMode,
    PutOptions, PutPayload,
};
use std::sync::Arc;
use tresor::store::Created;
use tresor::versions::Residue;
use tresor::{Error, KdfParams, Store, Vault};
use tresor_backend::BackendConfig;
use tresor_backend::s3::S3Settings;
use tresor_backend::versions::S3Versions;

/// A fresh prefix in the bucket named by `var`.
struct Bucket {
    /// `s3://BUCKET/PREFIX`, for `tresor_backend::open`.
    location: String,
    bucket: String,
    prefix: String,
}

impl Bucket {
    /// The bucket `var` names, with a fresh prefix starting with `what`; `None` (the test is
    /// skipped) if `var` is not set, unless `TRESOR_REQUIRE_S3` is.
    fn from_env(var: &str, what: &str) -> Option<Bucket> {
        let base = match std::env::var(var) {
            Ok(base) => base,
            Err(_) if std::env::var_os("TRESOR_REQUIRE_S3").is_some() => {
                panic!("TRESOR_REQUIRE_S3 is set but {var} is not: start the S3 server (.ci/run)")
            }
            Err(_) => {
                eprintln!("skipped: {var} is not set (bash .ci/run starts a local S3 server)");
                return None;
            }
        };
        let rest = base.trim_end_matches('/').strip_prefix("s3://").expect("an s3:// location");
        let (bucket, base_prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let fresh = format!("{what}-{}", common::random_hex(8));
        let prefix = if base_prefix.is_empty() { fresh } else { format!("{base_prefix}/{fresh}") };
        Some(Bucket { location: format!("s3://{bucket}/{prefix}"), bucket: bucket.to_string(), prefix })
    }

    /// The key of vault object `name`.
    fn key(&self, name: &str) -> String {
        format!("{}/{name}", self.prefix)
    }

    /// The builder `tresor_backend::open` uses for this bucket.
    async fn builder(&self) -> AmazonS3Builder {
        S3Settings::resolve(&common::process_config()).await.unwrap().builder(&self.bucket)
    }

    /// The bucket through plain `object_store`, around the vault.
    async fn raw(&self) -> Arc<dyn ObjectStore> {
        Arc::new(self.builder().await.build().unwrap())
    }

    /// The versions API with `page_size` versions per listing.
    async fn versions(&self, page_size: usize) -> S3Versions {
        let settings = S3Settings::resolve(&common::process_config()).await.unwrap();
        settings.connect(&self.bucket).unwrap().1.with_page_size(page_size)
    }
}

/// Writes `bytes` at `key`; the version id the bucket gave it.
async fn put(raw: &dyn ObjectStore, key: &str, bytes: &str, mode: PutMode) -> String {
    let opts = PutOptions { mode, ..Default::default() };
    let r = raw.put_opts(&Path::from(key), PutPayload::from(bytes.as_bytes().to_vec()), opts).await.unwrap();
    r.version.expect("a versioned bucket names the version it wrote")
}

/// Version `id` of `key`, read on an independent path; `None` if the bucket has no such version.
async fn version(raw: &dyn ObjectStore, key: &str, id: &str) -> Option<Bytes> {
    let opts = GetOptions { version: Some(id.to_string()), ..Default::default() };
    match raw.get_opts(&Path::from(key), opts).await {
        Ok(r) => Some(r.bytes().await.unwrap()),
        Err(object_store::Error::NotFound { .. }) => None,
        Err(e) => panic!("reading version {id} of {key}: {e}"),
    }
}

#[tokio::test]
async fn purge_removes_every_version_of_a_destroyed_epoch_and_nothing_else() {
    let Some(b) = Bucket::from_env("TRESOR_TEST_S3_VERSIONED", "t23") else { return };
    let raw = b.raw().await;
    let store = common::open(&b.location, false).await;
    // Epoch 1: two blobs, one of them written twice (a noncurrent version), and its epoch key.
    let mut epoch1 = Vec::new();
    for (name, bytes) in
        [("blob/0000000001/aa", "a1"), ("blob/0000000001/bb", "b1"), ("epoch/0000000001", "k1")]
    {
        epoch1.push((name, put(&*raw, &b.key(name), bytes, PutMode::Create).await, bytes));
    }
    let overwritten = put(&*raw, &b.key("blob/0000000001/aa"), "a2", PutMode::Overwrite).await;
    epoch1.push(("blob/0000000001/aa", overwritten, "a2"));
    // Epoch 2 stays.
    let kept_blob = put(&*raw, &b.key("blob/0000000002/x"), "x", PutMode::Create).await;
    let kept_key = put(&*raw, &b.key("epoch/0000000002"), "k2", PutMode::Create).await;

    for name in ["blob/0000000001/aa", "blob/0000000001/bb", "epoch/0000000001"] {
        store.delete(name).await.unwrap();
    }
    assert!(store.list("blob/0000000001").await.unwrap().is_empty());
    assert!(!store.exists("epoch/0000000001").await.unwrap());
    // The threat: deleted, yet every version is still there for anyone who asks for it.
    for (name, id, bytes) in &epoch1 {
        assert_eq!(version(&*raw, &b.key(name), id).await.as_deref(), Some(bytes.as_bytes()), "{name} {id}");
    }

    let prefixes = ["blob/0000000001/".to_string(), "epoch/0000000001".to_string()];
    let residue = store.purge_versions(&prefixes).await.unwrap();
    // 4 versions and 3 delete markers.
    assert_eq!(residue, Residue::Removed { versions: 7 });
    for (name, id, _) in &epoch1 {
        assert_eq!(version(&*raw, &b.key(name), id).await, None, "{name} {id} survived the purge");
    }
    assert_eq!(version(&*raw, &b.key("blob/0000000002/x"), &kept_blob).await.as_deref(), Some(&b"x"[..]));
    assert_eq!(version(&*raw, &b.key("epoch/0000000002"), &kept_key).await.as_deref(), Some(&b"k2"[..]));
    assert_eq!(store.get("blob/0000000002/x").await.unwrap().as_deref(), Some(&b"x"[..]));
    assert_eq!(store.list_all().await.unwrap(), ["blob/0000000002/x", "epoch/0000000002"]);
    // Nothing is left to remove.
    assert_eq!(store.purge_versions(&prefixes).await.unwrap(), Residue::Removed { versions: 0 });
    let Residue::Removed { versions: n } = residue else { unreachable!() };
    println!("T23-s3-versions: removed {n} versions, 0 remain");
}

#[tokio::test]
async fn purge_pages_through_listings() {
    let Some(b) = Bucket::from_env("TRESOR_TEST_S3_VERSIONED", "pages") else { return };
    let raw = b.raw().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let key = b.key(&format!("blob/0000000003/{i:02}"));
        ids.push((key.clone(), put(&*raw, &key, "first", PutMode::Create).await));
        ids.push((key.clone(), put(&*raw, &key, "second", PutMode::Overwrite).await));
        if i % 2 == 0 {
            raw.delete(&Path::from(key)).await.unwrap();
        }
    }
    let other = b.key("blob/0000000004/00");
    let other_id = put(&*raw, &other, "other", PutMode::Create).await;
    // Pages of 2 and 3 split the versions of one key across pages: 10 versions, 3 delete markers.
    for (page_size, prefix) in [(2, "blob/0000000003/"), (3, "blob/0000000004/")] {
        // Deletes in batches of 2 too: several DeleteObjects requests per page.
        let residue = b.versions(page_size).await.with_delete_batch(2).purge(&[b.key(prefix)]).await.unwrap();
        let expected = if prefix.ends_with("3/") { 13 } else { 1 };
        assert_eq!(residue, Residue::Removed { versions: expected }, "pages of {page_size}");
    }
    for (key, id) in ids.iter().chain([&(other.clone(), other_id)]) {
        assert_eq!(version(&*raw, key, id).await, None, "{key} {id}");
    }
}

#[tokio::test]
async fn create_if_absent_holds_on_a_versioned_bucket() {
    let Some(b) = Bucket::from_env("TRESOR_TEST_S3_VERSIONED", "create") else { return };
    let store = common::open(&b.location, false).await;
    store.probe().await.unwrap();
    let name = "commit/0000000001";
    assert_eq!(store.create(name, b"one".to_vec()).await.unwrap(), Created::Yes);
    assert_eq!(store.create(name, b"two".to_vec()).await.unwrap(), Created::AlreadyExists);
    assert_eq!(store.get(name).await.unwrap().as_deref(), Some(&b"one"[..]));
    // Deleted, the name's current version is a delete marker: it can be created again, once.
    store.delete(name).await.unwrap();
    assert_eq!(store.create(name, b"three".to_vec()).await.unwrap(), Created::Yes);
    assert_eq!(store.create(name, b"four".to_vec()).await.unwrap(), Created::AlreadyExists);
    assert_eq!(store.get(name).await.unwrap().as_deref(), Some(&b"three"[..]));
    // Two versions and the delete marker between them; the probe's object and its delete marker.
    let residue = store.purge_versions(&["commit/".to_string(), "probe/".to_string()]).await.unwrap();
    assert_eq!(residue, Residue::Removed { versions: 5 });
    assert!(store.list_all().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_bucket_without_versioning_keeps_nothing() {
    let Some(location) = common::s3_location("versions") else { return };
    let store = common::open(&location, false).await;
    store.create("blob/0000000001/aa", b"a".to_vec()).await.unwrap();
    store.delete("blob/0000000001/aa").await.unwrap();
    assert_eq!(store.purge_versions(&["blob/0000000001/".to_string()]).await.unwrap(), Residue::NotKept);
}

#[tokio::test]
async fn versions_under_object_lock_are_reported_kept() {
    let Some(b) = Bucket::from_env("TRESOR_TEST_S3_LOCKED", "locked") else { return };
    // Every object written through `held` is under legal hold; its versions cannot be deleted.
    let builder = b.builder().await;
    let allow_http = builder.get_config_value(&AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp));
    let mut headers = HeaderMap::new();
    headers.insert("x-amz-object-lock-legal-hold", HeaderValue::from_static("ON"));
    // A write under Object Lock needs a checksum: object_store sends x-amz-checksum-sha256, and
    // moto looks for the header the AWS SDKs send with it.
    headers.insert("x-amz-sdk-checksum-algorithm", HeaderValue::from_static("SHA256"));
    let mut builder = builder
        .with_client_options(ClientOptions::new().with_default_headers(headers))
        .with_checksum_algorithm(Checksum::SHA256);
    if let Some(allow) = allow_http {
        builder = builder.with_config(AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp), allow);
    }
    let held: Arc<dyn ObjectStore> = Arc::new(builder.build().unwrap());
    let raw = b.raw().await;
    let held_ids = [
        put(&*held, &b.key("blob/0000000001/h1"), "held 1", PutMode::Create).await,
        put(&*held, &b.key("blob/0000000001/h2"), "held 2", PutMode::Create).await,
    ];
    let free_id = put(&*raw, &b.key("blob/0000000001/free"), "free", PutMode::Create).await;
    let store = common::open(&b.location, false).await;
    for name in ["blob/0000000001/h1", "blob/0000000001/h2", "blob/0000000001/free"] {
        store.delete(name).await.unwrap();
    }
    let residue = store.purge_versions(&["blob/0000000001/".to_string()]).await.unwrap();
    let Residue::Kept { versions, reason } = &residue else { panic!("{residue:?}") };
    assert_eq!(*versions, 2, "{residue:?}");
    assert!(reason.contains("DeleteObjects refused for 2 versions: AccessDenied"), "{reason}");
    // The free object's version and the three delete markers went; the held versions did not.
    assert_eq!(version(&*raw, &b.key("blob/0000000001/free"), &free_id).await, None);
    for (i, id) in held_ids.iter().enumerate() {
        let key = b.key(&format!("blob/0000000001/h{}", i + 1));
        assert!(version(&*raw, &key, id).await.is_some(), "{key}");
    }
    println!("T23-s3-versions-locked: {versions} versions under legal hold reported kept ({reason})");
}

/// The process's settings with made-up credentials, and `extra` on top.
fn env_with_secrets(extra: &[(&str, &str)]) -> BackendConfig {
    let mut config = common::process_config()
        .with_var("AWS_ACCESS_KEY_ID", "AKIATRESORTEST")
        .with_var("AWS_SECRET_ACCESS_KEY", "SECRET-MUST-NOT-SHOW")
        .with_var("AWS_SESSION_TOKEN", "TOKEN-MUST-NOT-SHOW");
    for (k, v) in extra {
        config = config.with_var(k, v);
    }
    config
}

fn assert_no_secret(text: &str) {
    assert!(!text.contains("SECRET-MUST-NOT-SHOW") && !text.contains("TOKEN-MUST-NOT-SHOW"), "{text}");
    assert!(!text.contains("Signature=") && !text.contains("AWS4-HMAC"), "{text}");
}

#[tokio::test]
async fn a_missing_bucket_is_reported_kept_without_secrets() {
    let Some(b) = Bucket::from_env("TRESOR_TEST_S3_VERSIONED", "missing") else { return };
    let env = env_with_secrets(&[]);
    let missing = format!("tresor-no-such-bucket-{}", common::random_hex(4));
    let versions = S3Settings::resolve(&env).await.unwrap().connect(&missing).unwrap().1;
    assert_no_secret(&format!("{versions:?}"));
    let residue = versions.purge(&[b.key("blob/0000000001/")]).await.unwrap();
    let Residue::Kept { versions: 0, reason } = &residue else { panic!("{residue:?}") };
    assert!(reason.contains("GetBucketVersioning refused: NoSuchBucket (HTTP 404)"), "{reason}");
    assert_no_secret(reason);
}

#[tokio::test]
async fn stores_that_keep_no_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let local = Store::open(tmp.path().join("vault").to_str().unwrap(), true).unwrap();
    let memory = Store::open("memory://", false).unwrap();
    let prefixes = ["blob/0000000001/".to_string(), "epoch/0000000001".to_string()];
    for store in [&local, &memory] {
        store.create("blob/0000000001/aa", b"a".to_vec()).await.unwrap();
        store.delete("blob/0000000001/aa").await.unwrap();
        assert_eq!(store.purge_versions(&prefixes).await.unwrap(), Residue::NotKept, "{}", store.location());
        let e = store.purge_versions(&["".to_string()]).await.unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e}");
    }
    // A bucket wrapped by the caller: nothing can be said.
    tresor_backend::install_tls_provider();
    let s3 = AmazonS3Builder::new().with_bucket_name("b").with_region("us-east-1").build().unwrap();
    let wrapped = Store::from_object_store(Arc::new(s3), None, "s3://b");
    assert_eq!(
        wrapped.purge_versions(&prefixes).await.unwrap(),
        Residue::Kept { versions: 0, reason: "cannot inspect versions of this store".to_string() }
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_is_an_error_without_secrets() {
    // Nothing listens on port 1.
    let env = env_with_secrets(&[("AWS_ENDPOINT_URL", "http://127.0.0.1:1"), ("AWS_ALLOW_HTTP", "true")]);
    let versions = S3Settings::resolve(&env).await.unwrap().connect("bucket").unwrap().1;
    let e = versions.purge(&["v/blob/".to_string()]).await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::Store(_)), "{text}");
    assert!(text.contains("GetBucketVersioning") && text.contains("127.0.0.1"), "{text}");
    assert_no_secret(&text);
}

/// T23 end to end: a vault on a versioned bucket writes over three epochs, then destroys epoch 1.
/// Every version of every epoch-1 object (captured while they were current) is gone afterwards,
/// on an independent read path, and every secret still reads.
#[tokio::test]
async fn destroying_an_epoch_on_a_versioned_bucket_leaves_no_version_of_it() {
    let Some(b) = Bucket::from_env("TRESOR_TEST_S3_VERSIONED", "t23-vault") else { return };
    let trust = tempfile::tempdir().unwrap();
    let store = common::open(&b.location, true).await;
    let v = tresor::Vault::init(store, &common::pw("correct horse battery"), common::opts(trust.path()))
        .await
        .unwrap();
    v.set("db/a", b"epoch one, overwritten later").await.unwrap();
    let many: Vec<(String, Vec<u8>)> = (0..10).map(|i| (format!("many/{i}"), vec![b'x'; 40 + i])).collect();
    let items: Vec<(&str, &[u8])> = many.iter().map(|(p, v)| (p.as_str(), v.as_slice())).collect();
    v.set_many(tresor::model::AuditOp::Set, &items).await.unwrap();
    v.rotate("manual").await.unwrap();
    v.set("db/b", b"epoch two").await.unwrap();
    v.rotate("manual").await.unwrap();
    v.set("db/a", b"epoch three").await.unwrap();

    // Every epoch-1 object and the version id the bucket gave it.
    let raw = b.raw().await;
    let mut captured = Vec::new();
    let listed: Vec<_> =
        futures::TryStreamExt::try_collect::<Vec<_>>(raw.list(Some(&Path::from(b.key("blob/0000000001")))))
            .await
            .unwrap();
    let keys = listed.into_iter().map(|m| m.location).chain([Path::from(b.key("epoch/0000000001"))]);
    for key in keys {
        let id = raw.head(&key).await.unwrap().version.expect("a version id");
        captured.push((key.to_string(), id));
    }
    assert!(captured.len() >= 3, "two blob objects and the key: {captured:?}");
    for (key, id) in &captured {
        assert!(version(&*raw, key, id).await.is_some(), "readable before the destruction: {key}");
    }

    let report = v.destroy_epoch(1, &mut |_, _| {}).await.unwrap();
    assert!(report.complete(), "{report:?}");
    let Residue::Removed { versions } = report.residue.clone() else { panic!("{report:?}") };
    assert!(versions >= captured.len(), "{versions} < {}", captured.len());
    let mut readable = 0;
    for (key, id) in &captured {
        readable += usize::from(version(&*raw, key, id).await.is_some());
    }
    assert_eq!(readable, 0, "old versions of epoch-1 objects survived the destruction");
    assert_eq!(v.get("db/a", None).await.unwrap().as_slice(), b"epoch three");
    assert_eq!(v.get("db/a", Some(1)).await.unwrap().as_slice(), b"epoch one, overwritten later");
    for (p, value) in &many {
        assert_eq!(v.get(p, None).await.unwrap().as_slice(), value.as_slice());
    }
    v.verify().await.unwrap();
    println!(
        "T23-s3-versioned: epoch-1 object versions readable after destroy 0/{} ({} versions and delete markers removed)",
        captured.len(),
        versions
    );
}

/// Issue 12, item 4 on a versioned bucket: `rekey` deletes every object of the old root era and
/// every old version of them, so the old key file (and the old password) opens nothing there; the
/// new era opens with the new password and holds every version.
#[tokio::test]
async fn t24_rekey_on_a_versioned_bucket_leaves_no_old_key_file_version() {
    let Some(b) = Bucket::from_env("TRESOR_TEST_S3_VERSIONED", "rekey") else { return };
    let env = common::Env::new();
    let trust = env.path("trust");
    let v = Vault::init(common::open(&b.location, false).await, &pw(PASSWORD), opts(&trust)).await.unwrap();
    v.set("db/password", b"one").await.unwrap();
    v.set("db/password", b"two").await.unwrap();
    let raw = b.raw().await;
    let keyfile = b.key("keyfile/00000000000000000001");
    let old_version = raw.head(&Path::from(keyfile.as_str())).await.unwrap().version.expect("a version id");
    let (v, report) = v.rekey(&pw("the new password"), KdfParams::MINIMUM, &mut |_, _| {}).await.unwrap();
    assert!(matches!(report.residue, Residue::Removed { versions } if versions > 0), "{:?}", report.residue);
    assert_eq!(v.get("db/password", Some(1)).await.unwrap().as_slice(), b"one");
    drop(v);
    // The old key file is gone, every version of it; and nothing of era 1 is left to purge.
    assert_eq!(version(&*raw, &keyfile, &old_version).await, None);
    let era1 = common::open(&b.location, false).await;
    let prefixes: Vec<String> =
        ["keyfile/", "log/", "audit/", "epoch/", "blob/", "snap/"].map(String::from).to_vec();
    assert_eq!(era1.purge_versions(&prefixes).await.unwrap(), Residue::Removed { versions: 0 });
    let v = Vault::unlock(common::open(&b.location, false).await, &pw("the new password"), opts(&trust))
        .await
        .unwrap();
    assert_eq!(v.get("db/password", None).await.unwrap().as_slice(), b"two");
    println!("T24-s3-rekey: old root era deleted with every old version ({:?})", report.residue);
}
