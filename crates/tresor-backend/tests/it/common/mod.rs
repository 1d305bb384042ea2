//! Helpers shared by the backend's integration tests: vault options, S3 locations on the test
//! server (moto, started by `.ci/run`), and opening locations as the binaries do.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.
#![allow(dead_code)] // Each test crate uses its own subset of these helpers.

use std::path::{Path, PathBuf};
use tresor::{KdfParams, Options, Password, Store};
use tresor_backend::BackendConfig;

/// The password of every test vault unless a test says otherwise.
pub const PASSWORD: &str = "correct horse battery staple";

/// A password.
pub fn pw(s: &str) -> Password {
    Password::from(s.to_string())
}

/// Options with fast (minimum) KDF parameters and trust state in `trust`.
pub fn opts(trust: &Path) -> Options {
    let mut o = Options::new(trust, "test");
    o.kdf = KdfParams::MINIMUM;
    o
}

/// A temporary directory, removed on drop.
pub struct Env {
    /// Owns everything below.
    pub tmp: tempfile::TempDir,
}

impl Env {
    /// A fresh, empty directory.
    pub fn new() -> Env {
        Env { tmp: tempfile::tempdir().unwrap() }
    }

    /// A path inside it.
    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }
}

/// A random lowercase hex string of `n` bytes (2n characters).
pub fn random_hex(n: usize) -> String {
    hex::encode(tresor_crypto::random_bytes(n).unwrap())
}

/// This process's environment, as the binaries pass theirs, with instance metadata switched off
/// (no test ever asks 169.254.169.254).
pub fn process_config() -> BackendConfig {
    BackendConfig::from_vars(std::env::vars_os()).with_var("AWS_EC2_METADATA_DISABLED", "true")
}

/// Opens `location` with [`process_config`], as the binaries do.
pub async fn open(location: &str, create: bool) -> Store {
    tresor_backend::open(location, create, &process_config()).await.unwrap()
}

/// A fresh S3 location under `TRESOR_TEST_S3` (set by `.ci/run`, which starts a moto server), its
/// last segment `NAME-<random>`. Without it the S3 tests are skipped, unless `TRESOR_REQUIRE_S3`
/// (set in CI) makes that a failure.
pub fn s3_location(name: &str) -> Option<String> {
    match std::env::var("TRESOR_TEST_S3") {
        Ok(base) => Some(format!("{}/{name}-{}", base.trim_end_matches('/'), random_hex(8))),
        Err(_) if std::env::var_os("TRESOR_REQUIRE_S3").is_some() => {
            panic!("TRESOR_REQUIRE_S3 is set but TRESOR_TEST_S3 is not: start the S3 server (.ci/run)")
        }
        Err(_) => {
            eprintln!("skipped: TRESOR_TEST_S3 is not set (bash .ci/run starts a local S3 server)");
            None
        }
    }
}
