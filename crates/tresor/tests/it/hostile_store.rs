//! A store that cannot hurt you (issue 12), at the core's level: a forged key file that tests
//! password guesses, planted and oversized snapshot parts, and a store that claims every object
//! exists. Each test plays the store as an attacker would and checks that it learns nothing, blocks
//! nothing for good and makes nothing run without end.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use async_trait::async_trait;
use common::{Env, PASSWORD, err, opts, pw};
use futures::stream::BoxStream;
use object_store::path::Path as ObjectPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use std::sync::Arc;
use std::time::Duration;
use tresor::keyfile::KeyFile;
use tresor::local::LocalDir;
use tresor::{Error, KdfParams, Store, Vault, layout};
use tresor_testkit::fault::{FaultStore, OpKind};

fn canonical(env: &Env) -> String {
    std::fs::canonicalize(&env.loc).unwrap().display().to_string()
}

/// The store of `env` behind a fault store that records every request.
fn recorded(env: &Env) -> (Store, tresor_testkit::fault::Faults) {
    let location = canonical(env);
    let fault = FaultStore::new(Arc::new(LocalDir::open(&location).unwrap()));
    let faults = fault.faults();
    (Store::from_object_store(Arc::new(fault), None, &location), faults)
}

/// The requests a store saw, with the random probe names made comparable.
fn requests(faults: &tresor_testkit::fault::Faults) -> Vec<(OpKind, String)> {
    faults
        .events()
        .into_iter()
        .map(|e| (e.kind, if e.path.starts_with("probe/") { "probe/*".to_string() } else { e.path }))
        .collect()
}

/// Issue 12, item 3: a forged newer key file with eight slots tested eight password guesses per
/// unlock, and the store saw which one matched (the client went on to read the log). Now the root
/// must have the fingerprint this machine pinned: the matching guess fails exactly like the seven
/// others, and the store sees the same requests either way.
#[tokio::test]
async fn regression_3_a_forged_key_file_is_no_password_oracle() {
    let env = Env::new();
    let v = env.init().await;
    v.set("db/password", b"s3cr3t").await.unwrap();
    let vault_id = v.vault_id();
    drop(v);
    // The store's forgery: its own root, wrapped under eight guesses, one of them right.
    let attacker_root = tresor::roles::RootKey::generate().unwrap();
    let guesses = [
        "guess one!",
        "guess two!",
        "guess three",
        PASSWORD,
        "guess five",
        "guess six",
        "guess 7!",
        "guess 8!",
    ];
    let mut forged = KeyFile::new(vault_id, 2, &attacker_root, &pw(guesses[0]), KdfParams::MINIMUM).unwrap();
    for guess in &guesses[1..] {
        forged = forged.with_added_password(&attacker_root, &pw(guess), KdfParams::MINIMUM).unwrap().0;
    }
    assert_eq!(forged.slots.len(), 8);
    std::fs::write(env.obj(&layout::keyfile(forged.generation)), forged.encode()).unwrap();

    let mut seen = Vec::new();
    for password in [PASSWORD, "a wrong password"] {
        let (store, faults) = recorded(&env);
        let e = err(Vault::unlock(store, &pw(password), opts(&env.trust)).await);
        assert!(matches!(e, Error::AuthFailed), "{password}: {e:?}");
        assert_eq!(e.to_string(), "authentication failed");
        let reqs = requests(&faults);
        assert!(
            reqs.iter().all(|(_, name)| !name.starts_with("log/") && !name.starts_with("audit/")),
            "the client read on after the forged slot opened: {reqs:?}"
        );
        seen.push(reqs);
    }
    assert_eq!(seen[0], seen[1], "the store can tell the right guess from a wrong one");
    // The genuine key file is still the vault's: without the forgery, the password opens it.
    std::fs::remove_file(env.obj(&layout::keyfile(forged.generation))).unwrap();
    let v = env.unlock().await.unwrap();
    assert_eq!(v.failed_attempts().len(), 2, "both attempts are reported, as wrong passwords");
    assert_eq!(v.get("db/password", None).await.unwrap().as_slice(), b"s3cr3t");
    println!(
        "T06-forged-keyfile: 8 guesses in one forged key file, right one indistinguishable: 0 of 1 revealed"
    );
}

/// Issue 12, item 9: one garbage name under `snap/` blocked every unlock and made every commit
/// report a rollback. Only snapshots sealed with the vault's keys count now.
#[tokio::test]
async fn regression_9_planted_snapshot_names_block_nothing() {
    let env = Env::new();
    let v = env.init().await;
    v.set("a", b"1").await.unwrap();
    v.snapshot().await.unwrap();
    drop(v);
    std::fs::write(env.obj(&layout::snapshot(99_999, 0, 1)), vec![7u8; 1024]).unwrap();
    // An oversized, sparse "part" of a newer snapshot: refused by its size, never read.
    let sparse = std::fs::File::create(env.obj(&layout::snapshot(199_999, 0, 1))).unwrap();
    sparse.set_len(60 << 20).unwrap();
    drop(sparse);
    let v = env.unlock().await.unwrap();
    assert_eq!(v.get("a", None).await.unwrap().as_slice(), b"1");
    v.set("b", b"2").await.unwrap();
    let report = v.verify().await.unwrap();
    assert!(report.damaged.is_empty());
    drop(v);
    let v = env.unlock().await.unwrap();
    assert_eq!(v.get("b", None).await.unwrap().as_slice(), b"2");
}

/// A store that answers "it exists" to every metadata request for the commit log and the audit
/// trail, and otherwise serves what is there.
#[derive(Debug)]
struct Everything {
    inner: Arc<dyn ObjectStore>,
}

impl std::fmt::Display for Everything {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Everything({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Everything {
    async fn put_opts(
        &self,
        l: &ObjectPath,
        p: PutPayload,
        o: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(l, p, o).await
    }

    async fn put_multipart_opts(
        &self,
        l: &ObjectPath,
        o: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(l, o).await
    }

    async fn get_opts(&self, location: &ObjectPath, options: GetOptions) -> object_store::Result<GetResult> {
        let name = location.to_string();
        if options.head && (name.starts_with("log/") || name.starts_with("audit/")) {
            let meta = ObjectMeta {
                location: location.clone(),
                last_modified: chrono::Utc::now(),
                size: 300,
                e_tag: None,
                version: None,
            };
            return Ok(GetResult {
                payload: GetResultPayload::Stream(Box::pin(futures::stream::empty())),
                meta,
                range: 0..0,
                attributes: Default::default(),
                extensions: Default::default(),
            });
        }
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&ObjectPath>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&ObjectPath>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, f: &ObjectPath, t: &ObjectPath, o: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(f, t, o).await
    }
}

/// Issue 12, item 9: a store that answers "exists" to every HEAD made the head scan practically
/// endless. Now the scan gallops in a bounded number of rounds and the unlock ends with an error
/// naming the first object that is not there.
#[tokio::test]
async fn regression_9_a_store_claiming_every_entry_exists_ends_in_an_error() {
    let env = Env::new();
    let v = env.init().await;
    v.set("a", b"1").await.unwrap();
    drop(v);
    let location = canonical(&env);
    let inner: Arc<dyn ObjectStore> = Arc::new(LocalDir::open(&location).unwrap());
    let store = Store::from_object_store(Arc::new(Everything { inner }), None, &location);
    let opened =
        tokio::time::timeout(Duration::from_secs(30), Vault::unlock(store, &pw(PASSWORD), opts(&env.trust)))
            .await
            .expect("the unlock did not end");
    let e = err(opened);
    assert!(matches!(e, Error::Integrity { .. }), "{e:?}");
    // Nothing was deleted on the store's word.
    let v = env.unlock().await.unwrap();
    assert_eq!(v.get("a", None).await.unwrap().as_slice(), b"1");
}

/// Issue 12, item 10: store faults were counted (and audited) as failed password attempts. A key
/// file whose every slot this machine refuses unread (parameters below its pin) tried no password:
/// "authentication failed", but no failed attempt is recorded.
#[tokio::test]
async fn regression_10_a_refused_key_file_is_no_failed_attempt() {
    let env = Env::new();
    let v = env.init().await;
    let vault_id = v.vault_id();
    drop(v);
    // The store serves a key file with weaker parameters than this machine pinned for it.
    let name = layout::keyfile(1);
    let genuine = std::fs::read(env.obj(&name)).unwrap();
    let mut weaker = genuine.clone();
    // m_kib of the first slot (header 33 bytes, kind 1, kdf 1): one KiB less than pinned.
    let m = u32::from_be_bytes(weaker[35..39].try_into().unwrap()) - 1;
    weaker[35..39].copy_from_slice(&m.to_be_bytes());
    std::fs::write(env.obj(&name), &weaker).unwrap();
    assert!(matches!(err(env.unlock().await), Error::AuthFailed));
    let location = canonical(&env);
    let failed = tresor::trust::TrustStore::new(&env.trust).failed_attempts(&vault_id, &location).unwrap();
    assert!(failed.is_empty(), "a store fault was counted as a wrong password: {failed:?}");
    // A wrong password still is one.
    std::fs::write(env.obj(&name), &genuine).unwrap();
    assert!(matches!(err(env.unlock_with(&env.trust, "not the password").await), Error::AuthFailed));
    assert_eq!(
        tresor::trust::TrustStore::new(&env.trust).failed_attempts(&vault_id, &location).unwrap().len(),
        1
    );
}
