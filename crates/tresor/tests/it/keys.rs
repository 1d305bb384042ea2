//! Recovery phrase, keyslots and the key service (issue 5, TARGET.md §3), on a real local store.
//!
//! - Recovery: the phrase alone restores access (new password, old slots dropped or kept); a
//!   phrase of another vault is refused with nothing written; the audit trail records it.
//! - Keyslots: several passwords; `passwd` changes only the slot it was unlocked with; the last
//!   password slot is never removed.
//! - Key service: identities equal SLIP-0010 of the phrase's BIP39 seed computed independently;
//!   signatures verify; transit round trips in both algorithms; wrong vault, wrong name and
//!   tampering fail cleanly; every use is audited.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::{Env, PASSWORD, err, opts, pw};
use tresor::{Error, Vault};
use tresor_crypto::slip10::{self, DerivationPath, Ed25519Node};
use tresor_crypto::transit::{self, Algorithm};
use tresor_crypto::{KdfParams, Language, Phrase};

const NEW_PASSWORD: &str = "a brand new password";

async fn seeded(env: &Env) -> (Vault, Vec<(String, Vec<u8>)>) {
    let v = env.init().await;
    let items: Vec<(String, Vec<u8>)> =
        (0..20).map(|i| (format!("app/{i:02}"), common::random_bytes(10 + i * 13))).collect();
    for (path, value) in &items {
        v.set(path, value).await.unwrap();
    }
    (v, items)
}

async fn reads_all(v: &mut Vault, items: &[(String, Vec<u8>)]) {
    for (path, value) in items {
        assert_eq!(v.get(path, None).await.unwrap().as_slice(), value.as_slice(), "{path}");
    }
}

async fn ops(v: &mut Vault) -> Vec<(String, Option<String>)> {
    v.audit_trail()
        .await
        .unwrap()
        .into_iter()
        .map(|tresor::model::TrailRecord { record: r, .. }| (r.op, r.detail))
        .collect()
}

#[tokio::test]
async fn recovery_phrase_alone_restores_access_and_is_audited() {
    let env = Env::new();
    let (v, items) = seeded(&env).await;
    let phrase = v.recovery_phrase().await.unwrap();
    assert_eq!((phrase.word_count(), phrase.language()), (24, Language::English));
    let text = phrase.expose_phrase().to_string();
    drop(v);
    // The password is forgotten: the phrase, typed back in (stray whitespace), opens the vault.
    let typed = Phrase::parse(&format!("  {}\n", text.replace(' ', " \t "))).unwrap();
    let store = common::store(&env.loc, false);
    let mut v = Vault::recover(store, &typed, &pw(NEW_PASSWORD), KdfParams::MINIMUM, false, opts(&env.trust))
        .await
        .unwrap();
    reads_all(&mut v, &items).await;
    let log = ops(&mut v).await;
    let recover = log.iter().find(|(op, _)| op == "recover").expect("a recover record");
    assert!(recover.1.as_deref().unwrap().contains("every other slot dropped"), "{recover:?}");
    assert!(log.iter().any(|(op, _)| op == "unlock (recovery phrase)"), "{log:?}");
    assert_eq!(v.keyslots().await.unwrap().len(), 1);
    v.verify().await.unwrap();
    drop(v);
    // The new password opens it; the old one no longer does (its slot was dropped).
    assert!(matches!(env.unlock_with(&env.trust, PASSWORD).await, Err(Error::AuthFailed)));
    let mut v = env.unlock_with(&env.trust, NEW_PASSWORD).await.unwrap();
    reads_all(&mut v, &items).await;
    // On another machine (fresh trust state) too.
    let mut w = env.unlock_with(&env.path("trust-b"), NEW_PASSWORD).await.unwrap();
    reads_all(&mut w, &items).await;
    w.verify().await.unwrap();
}

#[tokio::test]
async fn recovery_keeping_slots_leaves_the_old_password_working() {
    let env = Env::new();
    let (v, items) = seeded(&env).await;
    let phrase = v.recovery_phrase().await.unwrap();
    drop(v);
    let store = common::store(&env.loc, false);
    let v = Vault::recover(store, &phrase, &pw(NEW_PASSWORD), KdfParams::MINIMUM, true, opts(&env.trust))
        .await
        .unwrap();
    let slots = v.keyslots().await.unwrap();
    assert_eq!(slots.len(), 2);
    assert!(slots[1].this_session && !slots[0].this_session);
    drop(v);
    let mut old = env.unlock_with(&env.path("t1"), PASSWORD).await.unwrap();
    reads_all(&mut old, &items).await;
    let mut new = env.unlock_with(&env.path("t2"), NEW_PASSWORD).await.unwrap();
    reads_all(&mut new, &items).await;
}

#[tokio::test]
async fn fail_phrase_of_another_vault_is_refused_before_anything_is_written() {
    let env = Env::new();
    let (v, _) = seeded(&env).await;
    let mine = v.recovery_phrase().await.unwrap();
    drop(v);
    let other = Env::new();
    let stranger = other.init().await.recovery_phrase().await.unwrap();
    let random = Phrase::generate(24, Language::English).unwrap();
    let store_before = common::snapshot_bytes(&env.loc);
    let trust_before = common::snapshot_bytes(&env.trust);
    let recover = async |phrase: &Phrase, password: &str| {
        let store = common::store(&env.loc, false);
        Vault::recover(store, phrase, &pw(password), KdfParams::MINIMUM, false, opts(&env.trust)).await
    };
    for phrase in [&stranger, &random] {
        let e = err(recover(phrase, NEW_PASSWORD).await);
        assert!(matches!(e, Error::WrongPhrase { .. }), "{e}");
        assert!(e.to_string().contains("does not belong"), "{e}");
    }
    // A 12-word phrase cannot encode a root secret; a bad new password is refused first.
    let short = Phrase::generate(12, Language::English).unwrap();
    let e = err(recover(&short, NEW_PASSWORD).await);
    assert!(matches!(&e, Error::Invalid(m) if m.contains("24 words")), "{e}");
    let e = err(recover(&mine, "short").await);
    assert!(matches!(e, Error::PasswordRule(_)), "{e}");
    assert_eq!(common::snapshot_bytes(&env.loc), store_before, "the store is unchanged");
    // The trust state only remembers the two wrong phrases, as it does wrong passwords.
    let not_failed = |files: Vec<(String, Vec<u8>)>| -> Vec<(String, Vec<u8>)> {
        files.into_iter().filter(|(name, _)| !name.ends_with(".failed")).collect()
    };
    assert_eq!(not_failed(common::snapshot_bytes(&env.trust)), not_failed(trust_before));
    // And the right phrase still works afterwards; the next unlock reports and audits them.
    let mut v = recover(&mine, NEW_PASSWORD).await.unwrap();
    assert_eq!(v.failed_attempts().len(), 2);
    let log = ops(&mut v).await;
    let unlock = log.iter().find(|(op, _)| op == "unlock (recovery phrase)").unwrap();
    assert!(unlock.1.as_deref().is_some_and(|d| d.contains("2 failed attempts")), "{unlock:?}");
}

#[tokio::test]
async fn keyslots_add_passwd_remove_and_never_the_last() {
    let env = Env::new();
    let (v, items) = seeded(&env).await;
    assert_eq!(v.keyslot_add(&pw("second password"), KdfParams::MINIMUM).await.unwrap(), 1);
    assert_eq!(v.keyslot_add(&pw("third password"), KdfParams::MINIMUM).await.unwrap(), 2);
    assert!(matches!(v.keyslot_add(&pw("short"), KdfParams::MINIMUM).await, Err(Error::PasswordRule(_))));
    drop(v);
    for password in [PASSWORD, "second password", "third password"] {
        let mut h = env.unlock_with(&env.trust, password).await.unwrap();
        reads_all(&mut h, &items[..2]).await;
    }
    // passwd on the handle opened by slot 1 changes slot 1 only.
    let h = env.unlock_with(&env.trust, "second password").await.unwrap();
    assert!(h.keyslots().await.unwrap()[1].this_session);
    h.passwd(&pw("second, changed"), KdfParams::MINIMUM).await.unwrap();
    drop(h);
    assert!(matches!(env.unlock_with(&env.trust, "second password").await, Err(Error::AuthFailed)));
    for password in [PASSWORD, "second, changed", "third password"] {
        env.unlock_with(&env.trust, password).await.unwrap();
    }
    // Remove slots 0 and 1 (from a handle opened by slot 0: its own slot may go, another remains).
    // Slots keep their numbers (regression, issue 15: they moved down after a removal).
    let mut h = env.unlock().await.unwrap();
    h.keyslot_remove(0).await.unwrap();
    assert!(!h.keyslots().await.unwrap().iter().any(|s| s.this_session));
    assert!(matches!(h.passwd(&pw("whatever password"), KdfParams::MINIMUM).await, Err(Error::Invalid(_))));
    let numbers: Vec<usize> = h.keyslots().await.unwrap().iter().map(|s| s.index).collect();
    assert_eq!(numbers, [1, 2]);
    h.keyslot_remove(1).await.unwrap();
    assert_eq!(h.keyslots().await.unwrap().iter().map(|s| s.index).collect::<Vec<_>>(), [2]);
    let e = err(h.keyslot_remove(2).await);
    assert!(matches!(&e, Error::Invalid(m) if m.contains("last password")), "{e}");
    assert!(matches!(h.keyslot_remove(0).await, Err(Error::Invalid(_))), "an empty slot");
    assert!(matches!(h.keyslot_remove(5).await, Err(Error::Invalid(_))));
    // The next password takes the first empty place.
    assert_eq!(h.keyslot_add(&pw("fourth password"), KdfParams::MINIMUM).await.unwrap(), 0);
    let log = ops(&mut h).await;
    let count = |op: &str| log.iter().filter(|(o, _)| o == op).count();
    assert_eq!((count("keyslot add"), count("keyslot remove"), count("passwd")), (3, 2, 1), "{log:?}");
    h.verify().await.unwrap();
    drop(h);
    assert!(matches!(env.unlock().await, Err(Error::AuthFailed)));
    let mut h = env.unlock_with(&env.path("trust-b"), "third password").await.unwrap();
    reads_all(&mut h, &items).await;
}

#[tokio::test]
async fn identities_are_slip10_of_the_phrase_seed_and_signatures_verify() {
    let env = Env::new();
    let v = env.init().await;
    // Independently: the phrase's BIP39 seed (empty passphrase), then SLIP-0010.
    let seed = v.recovery_phrase().await.unwrap().seed("");
    for text in ["m/74'/0'/0'", "m/74'/0'/1'", "m/44'/501'/0'/0'", "m"] {
        let path: DerivationPath = text.parse().unwrap();
        let id = v.derive_ed25519(&path, false).await.unwrap();
        let want = Ed25519Node::derive(seed.as_slice(), &path);
        assert_eq!(id.public_key, want.public_key(), "{text}");
        assert!(id.private.is_none(), "private only when asked for");
        assert_eq!(id.path, text);
    }
    let path = slip10::identity_path(0);
    let shown = v.derive_ed25519(&path, true).await.unwrap();
    let private = shown.private.as_ref().unwrap();
    let want = Ed25519Node::derive(seed.as_slice(), &path);
    assert_eq!(*private.private_key, *want.expose_private_key());
    assert_eq!(*private.chain_code, *want.chain_code());
    assert_eq!(format!("{private:?}"), "PrivateNode([REDACTED])");

    let msg = b"release v1.2.3 sha256=...";
    let (sig, public) = v.sign(&path, msg).await.unwrap();
    assert_eq!(public, shown.public_key);
    assert!(slip10::verify(&public, msg, &sig));
    assert!(!slip10::verify(&public, b"release v1.2.4 sha256=...", &sig));
    let mut bad = sig;
    bad[10] ^= 1;
    assert!(!slip10::verify(&public, msg, &bad));
    let other = v.derive_ed25519(&slip10::identity_path(1), false).await.unwrap();
    assert!(!slip10::verify(&other.public_key, msg, &sig), "another identity's key");
    // The same identity after lock and unlock (the seed cache is rebuilt, not kept).
    drop(v);
    let mut v = env.unlock().await.unwrap();
    assert_eq!(v.derive_ed25519(&path, false).await.unwrap().public_key, shown.public_key);
    let log = ops(&mut v).await;
    assert!(
        log.iter().any(|(op, d)| op == "key derive" && d.as_deref().unwrap().contains("private key shown"))
    );
    assert!(log.iter().any(|(op, _)| op == "sign"));
}

#[tokio::test]
async fn transit_round_trips_and_fails_cleanly() {
    let env = Env::new();
    let v = env.init().await;
    let plaintext = common::random_bytes(5000);
    for alg in [Algorithm::XChaCha20Poly1305, Algorithm::Aes256Gcm] {
        let ct = v.encrypt("payments", alg, &plaintext).await.unwrap();
        let header = transit::header(&ct).unwrap();
        assert_eq!((header.version, header.alg, header.name.as_str()), (1, alg, "payments"));
        assert_eq!(v.decrypt(&ct, None).await.unwrap().as_slice(), plaintext.as_slice());
        assert_eq!(v.decrypt(&ct, Some("payments")).await.unwrap().as_slice(), plaintext.as_slice());
        let armored = transit::armor(&ct);
        assert!(armored.starts_with("tresor:v1:payments:"));
        assert_eq!(v.decrypt(armored.as_bytes(), None).await.unwrap().as_slice(), plaintext.as_slice());
        // Another key name: refused by name before any key is used.
        let e = err(v.decrypt(&ct, Some("billing")).await);
        assert!(matches!(&e, Error::Invalid(m) if m.contains("payments")), "{e}");
        // Tampering anywhere: a clean error.
        for i in [0, 8, 20, ct.len() / 2, ct.len() - 1] {
            let mut bad = ct.clone();
            bad[i] ^= 0x40;
            assert!(matches!(v.decrypt(&bad, None).await, Err(Error::Invalid(_))), "{alg} byte {i}");
        }
        assert!(matches!(v.decrypt(&ct[..ct.len() - 1], None).await, Err(Error::Invalid(_))));
    }
    // Another vault's key of the same name does not open it.
    let other = Env::new();
    let w = other.init().await;
    let ct = v.encrypt("payments", Algorithm::XChaCha20Poly1305, b"hello").await.unwrap();
    let e = err(w.decrypt(&ct, None).await);
    assert!(e.to_string().contains("decryption failed"), "{e}");
    // Names are checked; the key of a name is stable across unlocks.
    assert!(matches!(
        v.encrypt("no spaces", Algorithm::XChaCha20Poly1305, b"x").await,
        Err(Error::Invalid(_))
    ));
    let k1 = v.derive_encryption_key("payments", Algorithm::Aes256Gcm).await.unwrap();
    drop(v);
    let mut v = env.unlock().await.unwrap();
    assert!(k1.ct_eq(&v.derive_encryption_key("payments", Algorithm::Aes256Gcm).await.unwrap()));
    assert!(!k1.ct_eq(&v.derive_encryption_key("payments", Algorithm::XChaCha20Poly1305).await.unwrap()));
    assert_eq!(v.decrypt(&ct, None).await.unwrap().as_slice(), b"hello");
    let log = ops(&mut v).await;
    assert!(log.iter().any(|(op, _)| op == "encrypt"));
    assert!(log.iter().any(|(op, _)| op == "decrypt"));
}

/// Slots with different KDF parameters all keep opening the vault on the machine that made them
/// (it pins the weakest slot's parameters, not those of the slot it last used), and a long-lived
/// handle — the agent's — follows slot changes made by another process.
#[tokio::test]
async fn slots_with_weaker_parameters_keep_working_and_long_lived_handles_follow() {
    let env = Env::new();
    let strong =
        KdfParams { m_kib: KdfParams::MINIMUM.m_kib * 2, t: KdfParams::MINIMUM.t + 1, ..KdfParams::MINIMUM };
    let mut o = opts(&env.trust);
    o.kdf = strong;
    let v = Vault::init(common::store(&env.loc, true), &pw(PASSWORD), o).await.unwrap();
    drop(v);
    let agent = env.unlock().await.unwrap();
    assert!(agent.keyslots().await.unwrap()[0].this_session);
    let other = env.unlock().await.unwrap();
    assert_eq!(other.keyslot_add(&pw("weaker password"), KdfParams::MINIMUM).await.unwrap(), 1);
    // Unlocked with the strong slot again (this pins again), the weak one still opens it here.
    env.unlock().await.unwrap();
    env.unlock_with(&env.trust, "weaker password").await.unwrap();
    other.keyslot_remove(0).await.unwrap();
    drop(other);
    env.unlock_with(&env.trust, "weaker password").await.unwrap();
    assert!(matches!(env.unlock().await, Err(Error::AuthFailed)));
    // The long-lived handle sees the key file as it is now: one slot (still number 1), not its own.
    let slots = agent.keyslots().await.unwrap();
    assert_eq!(slots.len(), 1);
    assert_eq!(slots[0].index, 1);
    assert!(!slots[0].this_session && slots[0].kdf.contains(&format!("m={} KiB", KdfParams::MINIMUM.m_kib)));
    // And it can still change slots and export (its key file generation is the current one); a
    // new slot takes the place slot 0 left empty.
    assert_eq!(agent.keyslot_add(&pw("third password!"), strong).await.unwrap(), 0);
    tresor::archive::export(&agent).await.unwrap();
    drop(agent);
    for password in ["weaker password", "third password!"] {
        env.unlock_with(&env.trust, password).await.unwrap();
    }
}

/// Branches tresor reserves for its own keys (`m/74'/n'`, n ≥ 1) give out public keys only: no
/// signature and no private half, so nothing a client obtains can pass for tresor's own.
#[tokio::test]
async fn reserved_branches_neither_sign_nor_reveal_private_keys() {
    let env = Env::new();
    let v = env.init().await;
    for text in ["m/74'/1'/0'", "m/74'/2'", "m/74'/7'/3'/1'"] {
        let path: DerivationPath = text.parse().unwrap();
        assert!(path.is_reserved(), "{text}");
        let e = err(v.sign(&path, b"a protocol message").await);
        assert!(matches!(&e, Error::Invalid(m) if m.contains("reserves")), "{e}");
        assert!(matches!(v.derive_ed25519(&path, true).await, Err(Error::Invalid(_))));
        let public = v.derive_ed25519(&path, false).await.unwrap();
        assert!(public.private.is_none());
    }
    // Their ancestors sign, but never show their private half (it derives every key below).
    for text in ["m", "m/74'"] {
        let path: DerivationPath = text.parse().unwrap();
        assert!(!path.is_reserved() && path.reaches_reserved(), "{text}");
        assert!(matches!(v.derive_ed25519(&path, true).await, Err(Error::Invalid(_))), "{text}");
        v.derive_ed25519(&path, false).await.unwrap();
    }
    for text in ["m/74'/0'/0'", "m/74'", "m/44'/74'/1'", "m/0'", "m"] {
        let path: DerivationPath = text.parse().unwrap();
        assert!(!path.is_reserved(), "{text}");
        let (sig, public) = v.sign(&path, b"hello").await.unwrap();
        assert!(slip10::verify(&public, b"hello", &sig));
        if !path.reaches_reserved() {
            assert!(v.derive_ed25519(&path, true).await.unwrap().private.is_some(), "{text}");
        }
    }
}

/// The key service's streamed transit: a message key per message (fresh salt for a new one, the
/// header's salt to decrypt), opening that message only; both audited.
#[tokio::test]
async fn streamed_transit_message_keys_open_their_message_only() {
    let env = Env::new();
    let mut v = env.init().await;
    let vault_id = v.vault_id();
    let (salt, key) = v.transit_stream_key("backups", Algorithm::Aes256Gcm, None).await.unwrap();
    let header = transit::stream::header("backups", Algorithm::Aes256Gcm, &salt).unwrap();
    let plain = common::random_bytes(200_000);
    let mut ct = Vec::new();
    transit::stream::encrypt(&key, &vault_id, &header, &mut &plain[..], &mut ct).unwrap();
    // Decrypting: the salt from the header gives the same message key.
    let mut input = &ct[..];
    let (h, read_salt, raw) = transit::stream::read_header(&mut input).unwrap();
    assert_eq!((h.name.as_str(), read_salt), ("backups", salt));
    let (_, again) = v.transit_stream_key("backups", Algorithm::Aes256Gcm, Some(read_salt)).await.unwrap();
    assert!(again.ct_eq(&key));
    let mut out = Vec::new();
    transit::stream::decrypt(&again, &vault_id, &raw, &mut input, &mut out).unwrap();
    assert_eq!(out, plain);
    // A new message gets a fresh salt, so another key; another name or algorithm, another key.
    let (salt2, key2) = v.transit_stream_key("backups", Algorithm::Aes256Gcm, None).await.unwrap();
    assert!(salt2 != salt && !key2.ct_eq(&key));
    let (_, other) = v.transit_stream_key("backups", Algorithm::XChaCha20Poly1305, Some(salt)).await.unwrap();
    assert!(!other.ct_eq(&key));
    let (_, other) = v.transit_stream_key("archive", Algorithm::Aes256Gcm, Some(salt)).await.unwrap();
    assert!(!other.ct_eq(&key));
    assert!(matches!(v.transit_stream_key("a/b", Algorithm::Aes256Gcm, None).await, Err(Error::Invalid(_))));
    let log = ops(&mut v).await;
    let streamed = |op: &str| {
        log.iter().filter(|(o, d)| o == op && d.as_deref().is_some_and(|d| d.contains("streamed"))).count()
    };
    assert_eq!((streamed("encrypt"), streamed("decrypt")), (2, 3), "{log:?}");
}

/// `passwd` on a long-lived handle after another process removed a lower slot changes this
/// handle's own password (now at a lower index), never the slot that moved into its old place.
#[tokio::test]
async fn passwd_after_slots_were_renumbered_elsewhere_changes_its_own_slot() {
    let env = Env::new();
    let v = env.init().await;
    v.keyslot_add(&pw("bob's password"), KdfParams::MINIMUM).await.unwrap();
    v.keyslot_add(&pw("carol's password"), KdfParams::MINIMUM).await.unwrap();
    drop(v);
    let carol = env.unlock_with(&env.trust, "carol's password").await.unwrap();
    let admin = env.unlock().await.unwrap();
    admin.keyslot_remove(0).await.unwrap();
    drop(admin);
    carol.passwd(&pw("carol's new password"), KdfParams::MINIMUM).await.unwrap();
    drop(carol);
    env.unlock_with(&env.trust, "bob's password").await.unwrap();
    env.unlock_with(&env.trust, "carol's new password").await.unwrap();
    assert!(matches!(env.unlock_with(&env.trust, "carol's password").await, Err(Error::AuthFailed)));
    assert!(matches!(env.unlock().await, Err(Error::AuthFailed)));
}

#[tokio::test]
async fn a_vault_made_with_an_unseal_key_opens_with_that_key_only() {
    let env = Env::new();
    let key = tresor_crypto::Key::generate().unwrap();
    let v = Vault::init_unseal_key(common::store(&env.loc, true), &key, opts(&env.trust)).await.unwrap();
    v.set("a", b"one").await.unwrap();
    let slots = v.keyslots().await.unwrap();
    assert_eq!(
        (slots.len(), slots[0].kind.as_str(), slots[0].kdf.as_str()),
        (1, "unseal-key", "hkdf-sha256")
    );
    drop(v);
    // Another key is a failed attempt, reported at the next unseal; a password opens nothing.
    let wrong = tresor_crypto::Key::generate().unwrap();
    let e = err(Vault::unseal(common::store(&env.loc, false), &wrong, opts(&env.trust)).await);
    assert!(matches!(e, Error::AuthFailed), "{e}");
    let e = err(Vault::unlock(common::store(&env.loc, false), &pw(PASSWORD), opts(&env.trust)).await);
    assert!(matches!(e, Error::AuthFailed), "{e}");
    let v = Vault::unseal(common::store(&env.loc, false), &key, opts(&env.trust)).await.unwrap();
    assert_eq!(v.failed_attempts().len(), 1);
    assert_eq!(v.get("a", None).await.unwrap().as_slice(), b"one");
    // Its recovery phrase still opens it, and sets a password beside the key (slots kept).
    let phrase = v.recovery_phrase().await.unwrap();
    drop(v);
    let v = Vault::recover(
        common::store(&env.loc, false),
        &phrase,
        &pw(NEW_PASSWORD),
        KdfParams::MINIMUM,
        true,
        opts(&env.trust),
    )
    .await
    .unwrap();
    let kinds: Vec<String> = v.keyslots().await.unwrap().into_iter().map(|s| s.kind).collect();
    assert_eq!(kinds, ["unseal-key", "password"]);
    drop(v);
    assert!(Vault::unseal(common::store(&env.loc, false), &key, opts(&env.trust)).await.is_ok());
    assert!(Vault::unlock(common::store(&env.loc, false), &pw(NEW_PASSWORD), opts(&env.trust)).await.is_ok());
    env.unlock_with(&env.trust, NEW_PASSWORD).await.unwrap().verify().await.unwrap();
}
