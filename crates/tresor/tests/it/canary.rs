//! Canary sweep (T19, with T22's "no plaintext names in keys"): unique random secret names, values
//! and passwords go through every library operation, error paths included; afterwards no byte of
//! the vault directory, the trust directory or the export archive — and no object name — holds
//! any of them, and no error message holds a value or a password.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::{Env, err, files, opts, pw, random_hex, store};
use tresor::{Error, KdfParams, Vault};

/// Every `(canary, position)` at which one of `canaries` (all starting with `canary`) occurs in
/// `haystack`.
fn hits<'a>(haystack: &[u8], canaries: &'a [String]) -> Vec<(&'a str, usize)> {
    let mut out = Vec::new();
    for (i, w) in haystack.windows(6).enumerate() {
        if w == b"canary" {
            for c in canaries {
                if haystack[i..].starts_with(c.as_bytes()) {
                    out.push((c.as_str(), i));
                }
            }
        }
    }
    out
}

fn canary() -> String {
    format!("canary{}", random_hex(12))
}

#[tokio::test]
async fn t19_canary_sweep_of_store_trust_state_and_archive() {
    let env = Env::new();
    let password = canary();
    let new_password = canary();
    let wrong_password = canary();
    let names: Vec<String> = (0..20).map(|_| canary()).collect();
    let values: Vec<String> = (0..20).map(|_| canary()).collect();
    let mut errors: Vec<Error> = Vec::new();

    let v = Vault::init(store(&env.loc, true), &pw(&password), opts(&env.trust)).await.unwrap();
    for (n, val) in names.iter().zip(&values) {
        assert_eq!(v.set(n, val.as_bytes()).await.unwrap(), 1);
    }
    // A second version of five of them, in one commit.
    let second: Vec<String> = values[..5].iter().map(|val| format!("{val}v2")).collect();
    let items: Vec<(&str, &[u8])> =
        names[..5].iter().zip(&second).map(|(n, val)| (n.as_str(), val.as_bytes())).collect();
    v.set_many(tresor::model::AuditOp::Import, &items).await.unwrap();
    for (i, (n, val)) in names.iter().zip(&values).enumerate() {
        let current = v.get(n, None).await.unwrap();
        let want = if i < 5 { second[i].as_bytes() } else { val.as_bytes() };
        assert_eq!(current.as_slice(), want);
        assert_eq!(v.get(n, Some(1)).await.unwrap().as_slice(), val.as_bytes());
        assert_eq!(v.history(n).await.unwrap().len(), if i < 5 { 2 } else { 1 });
    }
    assert_eq!(v.list("").await.unwrap().len(), 20);
    assert_eq!(v.list("canary").await.unwrap().len(), 20);
    assert_eq!(v.list(&names[3]).await.unwrap().len(), 1);
    for n in &names[15..] {
        v.delete(n).await.unwrap();
    }
    // Error paths: deleted, missing, no such version, oversize.
    errors.push(err(v.get(&names[15], None).await));
    errors.push(err(v.delete(&names[15]).await));
    errors.push(err(v.get(&format!("{}x", names[0]), None).await));
    errors.push(err(v.history(&format!("{}/x", names[1])).await));
    errors.push(err(v.get(&names[2], Some(99)).await));
    errors.push(err(v.set(&names[4], &vec![b'c'; v.max_value() + 1]).await));
    v.status().await.unwrap();
    v.passwd(&pw(&new_password), KdfParams::MINIMUM).await.unwrap();
    let archive = tresor::archive::export(&v).await.unwrap();
    std::fs::write(env.path("backup.tresor"), &archive).unwrap();
    let trail = v.audit_trail().await.unwrap();
    // Every secret written is named in the trail (big writes name their paths in a few records).
    for n in &names {
        assert!(
            trail
                .iter()
                .any(|tresor::model::TrailRecord { record: r, .. }| r.path.as_deref() == Some(n.as_str())
                    || r.detail.as_deref().is_some_and(|d| d.contains(n.as_str()))),
            "{n} is not in the audit trail"
        );
    }
    v.verify().await.unwrap();
    v.lock("done").await.unwrap();

    // Failed unlocks (wrong password, the old password), then the right one.
    for p in [&wrong_password, &password] {
        let e = err(Vault::unlock(store(&env.loc, false), &pw(p), opts(&env.trust)).await);
        assert!(matches!(e, Error::AuthFailed));
        errors.push(e);
    }
    let v = Vault::unlock(store(&env.loc, false), &pw(&new_password), opts(&env.trust)).await.unwrap();
    assert_eq!(v.failed_attempts().len(), 2);
    assert_eq!(v.get(&names[7], None).await.unwrap().as_slice(), values[7].as_bytes());
    drop(v);
    // The archive restored elsewhere, with a wrong password first.
    let restored = env.path("restored");
    let restored_trust = env.path("restored-trust");
    let e = err(tresor::archive::import(
        store(&restored, true),
        &archive,
        &pw(&wrong_password),
        opts(&restored_trust),
    )
    .await);
    errors.push(e);
    let r =
        tresor::archive::import(store(&restored, true), &archive, &pw(&new_password), opts(&restored_trust))
            .await
            .unwrap();
    assert_eq!(r.get(&names[8], None).await.unwrap().as_slice(), values[8].as_bytes());
    drop(r);

    // The sweep: every file under the test's directory (vault, trust state, archive, restored
    // vault and its trust state), by content and by name.
    let root = env.tmp.path();
    let all = files(root);
    let secrets: Vec<String> =
        values.iter().chain([&password, &new_password, &wrong_password]).cloned().collect();
    let canaries: Vec<String> = names.iter().chain(&secrets).cloned().collect();
    assert_eq!(
        hits(format!("x{}y", names[0]).as_bytes(), &canaries),
        [(names[0].as_str(), 1)],
        "the sweep works"
    );
    let mut found = Vec::new();
    for name in &all {
        let bytes = std::fs::read(root.join(name)).unwrap();
        for (c, at) in hits(&bytes, &canaries) {
            found.push(format!("{name} @ {at}: {c}"));
        }
        for (c, at) in hits(name.as_bytes(), &canaries) {
            found.push(format!("object name {name} @ {at}: {c}"));
        }
    }
    for dir in ["vault/log/", "vault/blob/", "trust/", "restored/audit/", "restored-trust/", "backup.tresor"]
    {
        assert!(all.iter().any(|n| n.starts_with(dir)), "{dir} swept");
    }
    println!("T19: canary hits {} across {} files", found.len(), all.len());
    assert!(found.is_empty(), "canaries found: {found:#?}");

    // Errors name the path the caller gave them, never a value or a password.
    for e in &errors {
        let text = format!("{e} / {e:?}");
        let leaked = hits(text.as_bytes(), &secrets);
        assert!(leaked.is_empty(), "{text}");
    }
}
