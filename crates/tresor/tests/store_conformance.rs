//! One store conformance story, run against every backend: memory, a local directory (with and
//! without a prefix) and S3 (moto in CI, see `common::s3_location`).
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

mod common;

use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::memory::InMemory;
use object_store::path::Path;
use std::sync::Arc;
use tresor::Store;
use tresor::store::Created;

async fn conformance(store: Store) {
    store.probe().await.unwrap();
    assert_eq!(store.create("a/1", b"x".to_vec()).await.unwrap(), Created::Yes);
    assert_eq!(store.create("a/1", b"y".to_vec()).await.unwrap(), Created::AlreadyExists);
    assert_eq!(store.get("a/1").await.unwrap().unwrap().as_ref(), b"x");
    assert_eq!(store.get("a/2").await.unwrap(), None);
    assert!(store.exists("a/1").await.unwrap());
    store.create("a/0", b"z".to_vec()).await.unwrap();
    store.create("b/0", b"z".to_vec()).await.unwrap();
    assert_eq!(store.list("a").await.unwrap(), vec!["a/0", "a/1"]);
    assert_eq!(store.list_all().await.unwrap(), vec!["a/0", "a/1", "b/0"]);
    store.delete("a/1").await.unwrap();
    store.delete("a/1").await.unwrap();
    assert_eq!(store.get("a/1").await.unwrap(), None);
}

#[tokio::test]
async fn conformance_memory() {
    conformance(Store::open("memory://", false).unwrap()).await;
    // A prefix scopes the vault and keeps multi-part names whole.
    let shared = Arc::new(InMemory::new());
    let prefixed = Store::from_object_store(shared.clone(), Some(Path::from("team/vault")), "memory://p");
    conformance(prefixed).await;
    let raw: Vec<_> = shared.list(None).try_collect().await.unwrap();
    assert!(raw.iter().all(|m| m.location.as_ref().starts_with("team/vault/")), "{raw:?}");
}

#[tokio::test]
async fn conformance_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    conformance(Store::open(dir.path().to_str().unwrap(), false).unwrap()).await;
    let prefixed = Store::open(&format!("file://{}/sub", dir.path().display()), true).unwrap();
    conformance(prefixed).await;
}

#[tokio::test]
async fn conformance_s3() {
    let Some(location) = common::s3_location("conformance") else { return };
    conformance(common::open(&location, false).await).await;
}
