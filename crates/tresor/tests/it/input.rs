//! Bad input and failed unlocks: invalid paths, oversize values and weak passwords are refused
//! before any object is written; locations without a vault, or with something in them, are told
//! apart; wrong passwords are remembered and sealed into the audit trail at the next unlock.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::{Env, PASSWORD, err, files, opts, pw, snapshot_bytes, store};
use tresor::{Error, KdfParams, Vault};

const BAD_PATHS: &[&str] = &["", "/a", "a/", "a//b", "..", "a/./b", "a/../b", "a\u{1}b", "a\nb", "a\u{7f}"];

fn bad_paths() -> Vec<String> {
    let mut out: Vec<String> = BAD_PATHS.iter().map(|s| s.to_string()).collect();
    out.push("x".repeat(513));
    out.push(format!("a/{}", "é".repeat(256))); // 514 bytes, 258 characters
    out
}

#[tokio::test]
async fn fail_invalid_paths_before_any_write() {
    let env = Env::new();
    let v = env.init().await;
    v.set("ok", b"1").await.unwrap();
    let before = snapshot_bytes(&env.loc);
    for path in bad_paths() {
        let p = path.as_str();
        for e in [
            err(v.set(p, b"x").await),
            err(v
                .set_many(tresor::model::AuditOp::Set, &[("fine", b"x".as_slice()), (p, b"y".as_slice())])
                .await),
            err(v.get(p, None).await),
            err(v.delete(p).await),
            err(v.history(p).await),
        ] {
            assert!(matches!(e, Error::InvalidPath(_)), "{p:?}: {e:?}");
            assert!(e.to_string().starts_with("invalid secret path"), "{e}");
        }
    }
    assert_eq!(snapshot_bytes(&env.loc), before, "no object written");
    // The longest valid path is fine.
    v.set(&"x".repeat(512), b"1").await.unwrap();
    assert!(matches!(v.get("fine", None).await, Err(Error::NotFound { .. })), "all or nothing");
}

#[tokio::test]
async fn fail_oversize_value_before_any_write() {
    let env = Env::new();
    let mut o = opts(&env.trust);
    o.max_value = 1000;
    let v = Vault::init(store(&env.loc, true), &pw(PASSWORD), o).await.unwrap();
    assert_eq!(v.max_value(), 1000);
    let before = snapshot_bytes(&env.loc);
    let e = err(v.set("big", &[7; 1001]).await);
    assert!(matches!(e, Error::TooLarge { size: 1001, limit: 1000 }), "{e:?}");
    assert!(e.to_string().contains("1001") && e.to_string().contains("1000"), "{e}");
    let e = err(v
        .set_many(tresor::model::AuditOp::Set, &[("small", b"s".as_slice()), ("big", &[7; 1001])])
        .await);
    assert!(matches!(e, Error::TooLarge { .. }), "{e:?}");
    assert_eq!(snapshot_bytes(&env.loc), before, "no object written");
    v.set("max", &[7; 1000]).await.unwrap();
    assert!(matches!(v.get("small", None).await, Err(Error::NotFound { .. })));
    // The default limit, 1 MiB.
    drop(v);
    let v = env.unlock().await.unwrap();
    let limit = v.max_value();
    assert_eq!(limit, 1 << 20);
    let before = files(&env.loc);
    let e = err(v.set("big", &vec![0; limit + 1]).await);
    assert!(matches!(e, Error::TooLarge { .. }), "{e:?}");
    assert_eq!(files(&env.loc), before);
}

#[tokio::test]
async fn fail_password_rules_before_touching_the_store() {
    let env = Env::new();
    for bad in ["", "short", "7 chars", "CHANGEME", " CHANGEME\n"] {
        let e = err(Vault::init(store(&env.loc, true), &pw(bad), opts(&env.trust)).await);
        assert!(matches!(e, Error::PasswordRule(_)), "{bad:?}: {e:?}");
        assert!(e.to_string().starts_with("password rejected"), "{e}");
        assert!(files(&env.loc).is_empty(), "{bad:?}: the location stays empty");
        assert!(files(&env.trust).is_empty());
    }
    // Eight characters pass; a password change obeys the same rules.
    let v = Vault::init(store(&env.loc, true), &pw("8 chars!"), opts(&env.trust)).await.unwrap();
    let before = snapshot_bytes(&env.loc);
    for bad in ["short", "CHANGEME"] {
        let e = err(v.passwd(&pw(bad), KdfParams::MINIMUM).await);
        assert!(matches!(e, Error::PasswordRule(_)), "{e:?}");
    }
    assert_eq!(snapshot_bytes(&env.loc), before);
}

#[tokio::test]
async fn fail_no_vault_and_vault_exists() {
    let env = Env::new();
    // Nothing there, an empty directory, a directory of other files.
    let missing = env.path("missing");
    let e = tresor::Store::open(missing.to_str().unwrap(), false).unwrap_err();
    assert!(matches!(e, Error::NoVault { .. }), "{e:?}");
    assert!(!missing.exists());
    std::fs::create_dir_all(&env.loc).unwrap();
    let e = err(env.unlock().await);
    assert!(matches!(e, Error::NoVault { .. }), "{e:?}");
    assert!(e.to_string().contains("no vault at"), "{e}");
    assert!(files(&env.loc).is_empty());
    std::fs::write(env.loc.join("README"), b"hello").unwrap();
    // Other files: to unlock and init alike, not a vault (not "an interrupted init", whose hint
    // says to remove the location: found by review).
    let e = err(env.unlock().await);
    assert!(matches!(e, Error::NotAVault { .. }), "{e:?}");
    assert!(e.to_string().contains("is not a tresor vault: it holds other files"), "{e}");
    let e = err(Vault::init(store(&env.loc, false), &pw(PASSWORD), opts(&env.trust)).await);
    assert!(matches!(e, Error::NotAVault { .. }), "{e:?}");
    assert_eq!(files(&env.loc), ["README"]);
    // A vault's objects but no key file: an interrupted init, to unlock and init alike.
    std::fs::create_dir_all(env.loc.join("log")).unwrap();
    std::fs::write(env.loc.join("log/00000000000000000001"), b"x").unwrap();
    let e = err(env.unlock().await);
    assert!(matches!(e, Error::InterruptedInit { .. }), "{e:?}");
    assert!(e.to_string().contains("no key file"), "{e}");
    let e = err(Vault::init(store(&env.loc, false), &pw(PASSWORD), opts(&env.trust)).await);
    assert!(matches!(e, Error::InterruptedInit { .. }), "{e:?}");
    std::fs::remove_file(env.loc.join("README")).unwrap();
    std::fs::remove_dir_all(env.loc.join("log")).unwrap();
    // A vault there already.
    let v = env.init().await;
    v.set("a", b"1").await.unwrap();
    drop(v);
    let before = snapshot_bytes(&env.loc);
    let e = err(Vault::init(store(&env.loc, false), &pw("another password"), opts(&env.path("t2"))).await);
    assert!(matches!(e, Error::VaultExists { .. }), "{e:?}");
    assert!(e.to_string().contains("not empty"), "{e}");
    assert_eq!(snapshot_bytes(&env.loc), before);
    let v = env.unlock().await.unwrap();
    assert_eq!(v.get("a", None).await.unwrap().as_slice(), b"1");
}

#[tokio::test]
async fn failed_attempts_are_reported_and_audited() {
    let env = Env::new();
    drop(env.init().await);
    let before = snapshot_bytes(&env.loc);
    for wrong in ["wrong password 1", "wrong password 2"] {
        let e = err(env.unlock_with(&env.trust, wrong).await);
        assert!(matches!(e, Error::AuthFailed), "{e:?}");
    }
    assert_eq!(snapshot_bytes(&env.loc), before, "a failed unlock writes nothing to the store");
    let v = env.unlock().await.unwrap();
    assert_eq!(v.failed_attempts().len(), 2);
    assert!(v.failed_attempts().windows(2).all(|w| w[0] <= w[1]));
    let trail = v.audit_trail().await.unwrap();
    let unlocks: Vec<_> =
        trail.iter().filter(|tresor::model::TrailRecord { record: r, .. }| r.op == "unlock").collect();
    assert_eq!(unlocks.len(), 1);
    let detail = unlocks[0].record.detail.clone().unwrap_or_default();
    assert!(detail.contains("2 failed attempts"), "{detail}");
    drop(v);
    // Reported once: the next unlock has none.
    let v = env.unlock().await.unwrap();
    assert!(v.failed_attempts().is_empty());
    let trail = v.audit_trail().await.unwrap();
    let last_unlock =
        trail.iter().rev().find(|tresor::model::TrailRecord { record: r, .. }| r.op == "unlock").unwrap();
    assert_eq!(last_unlock.record.detail, None);
}

#[tokio::test]
async fn regression_a_key_file_gone_where_this_machine_opened_a_vault_read_as_an_interrupted_init() {
    // The store removed the key file of a vault this machine had opened: the error said
    // "an interrupted init", and its hint to remove the location would have destroyed what a
    // backed-up key file still opens. Where this machine pinned a vault, it is an integrity error.
    let env = Env::new();
    let v = env.init().await;
    v.set("a", b"1").await.unwrap();
    drop(v);
    let keyfiles = env.loc.join(tresor::layout::KEYFILE_DIR);
    let saved = env.path("keyfile-backup");
    std::fs::rename(&keyfiles, &saved).unwrap();
    let e = err(env.unlock().await);
    assert!(matches!(&e, Error::Integrity { kind: tresor::ObjectKind::KeyFile, .. }), "{e:?}");
    assert!(e.to_string().contains("restore it from a backup"), "{e}");
    // A machine that never opened a vault there cannot tell it from an interrupted init.
    let e = err(env.unlock_with(&env.path("other-machine"), PASSWORD).await);
    assert!(matches!(e, Error::InterruptedInit { .. }), "{e:?}");
    // Put back, the vault opens and holds what it held.
    std::fs::rename(&saved, &keyfiles).unwrap();
    assert_eq!(env.unlock().await.unwrap().get("a", None).await.unwrap().as_slice(), b"1");
}
