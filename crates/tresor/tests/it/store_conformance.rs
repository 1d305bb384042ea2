//! One store conformance story, run against every backend: memory, a local directory (with and
//! without a prefix) and S3 (moto in CI, see `common::s3_location`).
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::memory::InMemory;
use object_store::path::Path;
use std::sync::Arc;
use tresor::Store;

#[tokio::test]
async fn conformance_memory() {
    tresor_testkit::conformance::conformance(Store::open("memory://", false).unwrap()).await;
    // A prefix scopes the vault and keeps multi-part names whole.
    let shared = Arc::new(InMemory::new());
    let prefixed = Store::from_object_store(shared.clone(), Some(Path::from("team/vault")), "memory://p");
    tresor_testkit::conformance::conformance(prefixed).await;
    let raw: Vec<_> = shared.list(None).try_collect().await.unwrap();
    assert!(raw.iter().all(|m| m.location.as_ref().starts_with("team/vault/")), "{raw:?}");
}

#[tokio::test]
async fn conformance_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    tresor_testkit::conformance::conformance(Store::open(dir.path().to_str().unwrap(), false).unwrap()).await;
    let prefixed = Store::open(&format!("file://{}/sub", dir.path().display()), true).unwrap();
    tresor_testkit::conformance::conformance(prefixed).await;
}

#[tokio::test]
async fn conformance_s3() {
    let Some(location) = common::s3_location("conformance") else { return };
    tresor_testkit::conformance::conformance(common::open(&location, false).await).await;
}

/// A store wrapped in another (the fault-injecting store shows what it wraps): memory inside still
/// keeps no old versions.
#[test]
fn a_wrapped_memory_store_keeps_no_versions() {
    use tresor::versions::{Residue, residue_without_versions_api};
    let faulty = tresor_testkit::fault::FaultStore::new(Arc::new(InMemory::new()));
    assert_eq!(residue_without_versions_api(&faulty, false), Residue::NotKept);
}
