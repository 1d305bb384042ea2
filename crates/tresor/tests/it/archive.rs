//! Export archives: a round trip restores every secret and version into an empty location; a wrong
//! password, any changed byte, or a non-empty target is refused before anything is written.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::{Env, PASSWORD, assert_integrity, err, files, opts, pw, store};
use tresor::archive::{export, import};
use tresor::{Error, ObjectKind, Vault};

/// A vault with versions and a deleted secret, and its export.
async fn exported(env: &Env) -> Vec<u8> {
    let v = env.init().await;
    v.set("db/password", b"v1").await.unwrap();
    v.set("db/password", b"v2").await.unwrap();
    v.set("api/token", b"tok").await.unwrap();
    v.set("old/thing", b"gone").await.unwrap();
    v.delete("old/thing").await.unwrap();
    let bytes = export(&v).await.unwrap();
    // Export is audited.
    let trail = v.audit_trail().await.unwrap();
    assert!(trail.iter().any(|tresor::model::TrailRecord { record: r, .. }| r.op == "export"));
    bytes
}

async fn import_at(env: &Env, dir: &str, bytes: &[u8], password: &str) -> tresor::Result<Vault> {
    import(store(&env.path(dir), true), bytes, &pw(password), opts(&env.path(&format!("{dir}-trust")))).await
}

#[tokio::test]
async fn export_import_roundtrip() {
    let env = Env::new();
    let bytes = exported(&env).await;
    let r = import_at(&env, "restored", &bytes, PASSWORD).await.unwrap();
    assert_eq!(r.get("db/password", None).await.unwrap().as_slice(), b"v2");
    assert_eq!(r.get("db/password", Some(1)).await.unwrap().as_slice(), b"v1");
    assert_eq!(r.get("api/token", None).await.unwrap().as_slice(), b"tok");
    assert!(matches!(r.get("old/thing", None).await, Err(Error::Deleted { version: 1, .. })));
    assert_eq!(r.get("old/thing", Some(1)).await.unwrap().as_slice(), b"gone");
    let listed: Vec<String> = r.list("").await.unwrap().into_iter().map(|e| e.path).collect();
    assert_eq!(listed, ["api/token", "db/password"]);
    let report = r.verify().await.unwrap();
    assert_eq!(report.commits, 6);
    assert!(
        r.audit_trail()
            .await
            .unwrap()
            .iter()
            .any(|tresor::model::TrailRecord { record: rec, .. }| rec.op == "import")
    );
    // The restored vault is a vault of its own: it unlocks, and writes.
    r.set("new", b"n").await.unwrap();
    drop(r);
    let again =
        Vault::unlock(store(&env.path("restored"), false), &pw(PASSWORD), opts(&env.path("restored-trust")))
            .await
            .unwrap();
    assert_eq!(again.get("new", None).await.unwrap().as_slice(), b"n");
    again.verify().await.unwrap();
    // The original is untouched.
    let v = env.unlock().await.unwrap();
    assert!(matches!(v.get("new", None).await, Err(Error::NotFound { .. })));
}

#[tokio::test]
async fn fail_import_with_wrong_password_writes_nothing() {
    let env = Env::new();
    let bytes = exported(&env).await;
    let e = err(import_at(&env, "restored", &bytes, "not the password").await);
    assert!(matches!(e, Error::AuthFailed), "{e:?}");
    assert!(files(&env.path("restored")).is_empty());
    assert!(files(&env.path("restored-trust")).is_empty());
}

#[tokio::test]
async fn fail_import_of_changed_archive_writes_nothing() {
    let env = Env::new();
    let bytes = exported(&env).await;
    let n = bytes.len();
    let mut positions: Vec<usize> = vec![0, 8, 20, 24, 25, 26, 27, 40, n - 33, n - 32, n - 1];
    positions.extend((1..24).map(|k| k * n / 24));
    // Inside the key file it carries: its salt, its wrapped root, its MAC.
    let kf = bytes.windows(8).position(|w| w == b"TRSRKEY1").unwrap();
    positions.extend([kf + 60, kf + 120, kf + 214]);
    let (mut integrity, mut auth) = (0, 0);
    for i in positions {
        let mut bad = bytes.clone();
        bad[i] ^= 1;
        let e = err(import_at(&env, "restored", &bad, PASSWORD).await);
        match &e {
            Error::AuthFailed => auth += 1,
            _ => {
                assert_integrity(&e, ObjectKind::Archive, None);
                integrity += 1;
            }
        }
        assert!(files(&env.path("restored")).is_empty(), "byte {i}: something was written");
    }
    // Truncated, extended, empty.
    for bad in [&bytes[..n - 1], &[bytes.as_slice(), b"x"].concat(), &bytes[..40], b"".as_slice()] {
        let e = err(import_at(&env, "restored", bad, PASSWORD).await);
        assert_integrity(&e, ObjectKind::Archive, None);
        assert!(files(&env.path("restored")).is_empty());
    }
    println!(
        "archive: {} flipped bytes refused ({integrity} integrity, {auth} key file), 0 written",
        integrity + auth
    );
}

#[tokio::test]
async fn fail_import_into_a_non_empty_location() {
    let env = Env::new();
    let bytes = exported(&env).await;
    // Onto the vault it came from.
    let before = common::snapshot_bytes(&env.loc);
    let e = err(import(store(&env.loc, false), &bytes, &pw(PASSWORD), opts(&env.trust)).await);
    assert!(matches!(e, Error::VaultExists { .. }), "{e:?}");
    assert_eq!(common::snapshot_bytes(&env.loc), before);
    // Onto a directory holding anything else.
    let other = env.path("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), b"mine").unwrap();
    let e = err(import_at(&env, "other", &bytes, PASSWORD).await);
    assert!(matches!(e, Error::VaultExists { .. }), "{e:?}");
    assert_eq!(files(&other), ["notes.txt"]);
}
