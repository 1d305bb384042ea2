//! Helpers shared by the backend's integration tests: vault options, S3 locations on the test
//! server (moto, started by `.ci/run`), and opening locations as the binaries do.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.
#![allow(dead_code)] // Each test crate uses its own subset of these helpers.

use std::path::PathBuf;
use tresor::Store;
use tresor_backend::BackendConfig;
// What every crate's tests share: the password, fast options, S3 locations on the test server.
pub use tresor_testkit::env::{PASSWORD, opts, pw, random_hex, s3_location};

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

/// This process's environment, as the binaries pass theirs, with instance metadata switched off
/// (no test ever asks 169.254.169.254).
pub fn process_config() -> BackendConfig {
    BackendConfig::from_vars(std::env::vars_os()).with_var("AWS_EC2_METADATA_DISABLED", "true")
}

/// Opens `location` with [`process_config`], as the binaries do.
pub async fn open(location: &str, create: bool) -> Store {
    tresor_backend::open(location, create, &process_config()).await.unwrap()
}
