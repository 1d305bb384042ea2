//! Helpers shared by the integration tests: a vault in a temporary directory, and direct access to
//! its objects as plain files (the local store keeps each object in a file named like the object).

use std::path::{Path, PathBuf};
use tresor::{Error, KdfParams, ObjectKind, Options, Password, Result, Store, Vault};

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
    // Tests rerun an interrupted re-key at once (the lease has its own test).
    o.rekey_lease = std::time::Duration::ZERO;
    o
}

/// Opens the local store at `loc`.
pub fn store(loc: &Path, create: bool) -> Store {
    Store::open(loc.to_str().unwrap(), create).unwrap()
}

/// A temporary directory holding a vault location and a trust directory.
pub struct Env {
    /// Owns everything below; removed on drop.
    pub tmp: tempfile::TempDir,
    /// The vault's directory.
    pub loc: PathBuf,
    /// This machine's trust state.
    pub trust: PathBuf,
}

impl Default for Env {
    fn default() -> Env {
        Env::new()
    }
}

impl Env {
    /// A fresh, empty environment.
    pub fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let loc = tmp.path().join("vault");
        let trust = tmp.path().join("trust");
        Env { tmp, loc, trust }
    }

    /// Another path inside the environment.
    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Creates the vault with [`PASSWORD`].
    pub async fn init(&self) -> Vault {
        Vault::init(store(&self.loc, true), &pw(PASSWORD), opts(&self.trust)).await.unwrap()
    }

    /// Unlocks the vault with [`PASSWORD`] and this environment's trust state.
    pub async fn unlock(&self) -> Result<Vault> {
        self.unlock_with(&self.trust, PASSWORD).await
    }

    /// Unlocks the vault with another trust directory or password.
    pub async fn unlock_with(&self, trust: &Path, password: &str) -> Result<Vault> {
        Vault::unlock(store(&self.loc, false), &pw(password), opts(trust)).await
    }

    /// The file holding object `name` (e.g. `log/00000000000000000002`).
    pub fn obj(&self, name: &str) -> PathBuf {
        self.loc.join(name)
    }

    /// Names of the objects under `dir` (e.g. `blob`), sorted.
    pub fn objects(&self, dir: &str) -> Vec<String> {
        files(&self.loc).into_iter().filter(|n| n.starts_with(&format!("{dir}/"))).collect()
    }
}

/// The error of a result that must have failed (`Vault` is not `Debug`, so no `unwrap_err`).
pub fn err<T>(r: Result<T>) -> Error {
    match r {
        Ok(_) => panic!("expected an error, got success"),
        Err(e) => e,
    }
}

/// Asserts `e` is an integrity error about the `want` object named `name` (any name if `None`),
/// and that its message names both. Returns its detail.
pub fn assert_integrity(e: &Error, want: ObjectKind, name: Option<&str>) -> String {
    let Error::Integrity { kind, object, detail } = e else {
        panic!("expected an integrity error about a {want}, got {e:?}");
    };
    assert_eq!(*kind, want, "{e}");
    if let Some(name) = name {
        assert_eq!(object, name, "{e}");
    }
    let text = e.to_string();
    assert!(text.contains(&want.to_string()) && text.contains(object.as_str()), "{text}");
    detail.clone()
}

/// Asserts `e` is a rollback of `want`; returns (seen, served).
pub fn assert_rollback(e: &Error, want: ObjectKind) -> (u64, u64) {
    let Error::Rollback { kind, seen, served } = e else {
        panic!("expected a rollback of a {want}, got {e:?}");
    };
    assert_eq!(*kind, want, "{e}");
    assert!(seen > served, "{e}");
    let text = e.to_string();
    assert!(text.contains("rollback") && text.contains(&want.to_string()), "{text}");
    (*seen, *served)
}

/// Every regular file under `dir`, as `/`-separated paths relative to it, sorted.
pub fn files(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path.strip_prefix(base).unwrap();
                out.push(rel.to_str().unwrap().replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Every regular file under `dir` with its contents.
pub fn snapshot_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    files(dir).into_iter().map(|n| (n.clone(), std::fs::read(dir.join(&n)).unwrap())).collect()
}

/// Flips the low bit of byte `index` of a file (an index past the end counts from the end).
pub fn flip(path: &Path, index: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let i = index.min(bytes.len() - 1);
    bytes[i] ^= 1;
    std::fs::write(path, bytes).unwrap();
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Replaces the directory `dir` with a copy of `snapshot`.
pub fn restore_dir(snapshot: &Path, dir: &Path) {
    std::fs::remove_dir_all(dir).unwrap();
    copy_dir(snapshot, dir);
}

/// A random lowercase hex string of `n` bytes (2n characters).
pub fn random_hex(n: usize) -> String {
    hex::encode(random_bytes(n))
}

/// `n` random bytes from the OS.
pub fn random_bytes(n: usize) -> Vec<u8> {
    tresor_crypto::random_bytes(n).unwrap()
}

/// The configuration the tests open buckets with: this process's environment, as the binaries
/// pass theirs, with instance metadata switched off (no test ever asks 169.254.169.254).
pub fn backend_config() -> tresor_backend::BackendConfig {
    tresor_backend::BackendConfig::from_vars(std::env::vars_os())
        .with_var("AWS_EC2_METADATA_DISABLED", "true")
}

/// Opens any location as the binaries do: through `tresor_backend::open` (S3 included).
pub async fn open(location: &str, create: bool) -> Store {
    tresor_backend::open(location, create, &backend_config()).await.unwrap()
}

/// A fresh S3 location under `TRESOR_TEST_S3` (set by `.ci/run`, which starts a moto server), its
/// last segment `NAME-<random>`. Without it the S3 tests are skipped, unless `TRESOR_REQUIRE_S3`
/// (set in CI) makes that a failure.
#[allow(dead_code)] // Not every test file that includes this module runs on S3.
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
