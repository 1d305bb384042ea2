//! Machine-local trust state: what this machine has already seen of each vault.
//!
//! Kept outside the vault (the store is untrusted), one small JSON file per (vault id, location):
//! the newest commit and audit record seen (sequence and link), the key file generation and the
//! KDF parameters of the last successful unlock. A store that serves less, or something else, is
//! refused. Updates only ever move forward, under an exclusive `flock`, and replace the file
//! atomically (write, fsync the new file, rename). Failed unlock attempts wait here, in a file of their own,
//! until the next successful unlock seals them into the audit trail.

use crate::chain::Link;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use tresor_crypto::KdfParams;

/// What this machine has seen of one vault at one location.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrustState {
    /// Newest commit sequence seen.
    pub log_seq: u64,
    /// Its link (hex).
    pub log_link: String,
    /// Newest audit record sequence seen.
    pub audit_seq: u64,
    /// Its link (hex).
    pub audit_link: String,
    /// Newest key file generation seen.
    pub keyfile_generation: u64,
    /// KDF parameters of the newest key file generation unlocked here: `[m_kib, t, p]`.
    pub kdf: Option<[u32; 3]>,
    /// The key file generation those parameters belong to.
    pub kdf_generation: u64,
    /// Newest complete index snapshot seen (its commit sequence number).
    pub snapshot_seq: u64,
}

impl TrustState {
    /// The pinned KDF parameters for a key file of `generation`: a key file of the generation
    /// this machine unlocked must keep its parameters (a newer one, from a password change made
    /// elsewhere, may legitimately lower them).
    pub fn pinned_kdf(&self, generation: u64) -> Option<KdfParams> {
        self.kdf.filter(|_| generation == self.kdf_generation).map(|[m_kib, t, p]| KdfParams { m_kib, t, p })
    }

    /// Records the parameters of key file `generation` (ignored for an older generation, so a
    /// long-lived handle cannot pin stale parameters after a password change).
    pub fn saw_kdf(&mut self, generation: u64, params: &KdfParams) {
        if generation >= self.kdf_generation {
            self.kdf = Some([params.m_kib, params.t, params.p]);
            self.kdf_generation = generation;
        }
    }

    /// Records a newer commit (ignored when not newer).
    pub fn saw_commit(&mut self, seq: u64, link: &Link) {
        if seq > self.log_seq {
            self.log_seq = seq;
            self.log_link = hex::encode(link);
        }
    }

    /// Records a newer complete snapshot (ignored when not newer).
    pub fn saw_snapshot(&mut self, seq: u64) {
        self.snapshot_seq = self.snapshot_seq.max(seq);
    }

    /// Records a newer audit record (ignored when not newer).
    pub fn saw_audit(&mut self, seq: u64, link: &Link) {
        if seq > self.audit_seq {
            self.audit_seq = seq;
            self.audit_link = hex::encode(link);
        }
    }
}

/// The directory of trust state files.
#[derive(Clone, Debug)]
pub struct TrustStore {
    dir: PathBuf,
}

fn local_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::LocalState { path: path.to_path_buf(), detail: e.to_string() }
}

impl TrustStore {
    /// Trust state kept in `dir` (created with mode 0700 on first write).
    pub fn new(dir: impl Into<PathBuf>) -> TrustStore {
        TrustStore { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, vault_id: &[u8; 16], location: &str, ext: &str) -> PathBuf {
        let key = tresor_crypto::hash(&[vault_id.as_slice(), location.as_bytes()].concat());
        self.dir.join(format!("{}-{}.{ext}", hex::encode(vault_id), &hex::encode(key)[..16]))
    }

    fn ensure_dir(&self) -> Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| local_err(&self.dir, e))
    }

    fn lock(&self, vault_id: &[u8; 16], location: &str) -> Result<File> {
        self.ensure_dir()?;
        let path = self.file(vault_id, location, "lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| local_err(&path, e))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| local_err(&path, e))?;
        Ok(file)
    }

    /// The state for a vault at a location (default when this machine never saw it).
    pub fn load(&self, vault_id: &[u8; 16], location: &str) -> Result<TrustState> {
        let path = self.file(vault_id, location, "json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| local_err(&path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TrustState::default()),
            Err(e) => Err(local_err(&path, e)),
        }
    }

    /// Updates the state under the lock; `f` sees the current state and changes it.
    pub fn update(
        &self,
        vault_id: &[u8; 16],
        location: &str,
        f: impl FnOnce(&mut TrustState),
    ) -> Result<TrustState> {
        let _lock = self.lock(vault_id, location)?;
        let mut state = self.load(vault_id, location)?;
        let before = state.clone();
        f(&mut state);
        if state != before {
            self.write(vault_id, location, &state)?;
        }
        Ok(state)
    }

    /// Replaces the state outright (after an explicit `import`, which the user asked for).
    pub fn reset(&self, vault_id: &[u8; 16], location: &str, state: &TrustState) -> Result<()> {
        let _lock = self.lock(vault_id, location)?;
        self.write(vault_id, location, state)
    }

    fn write(&self, vault_id: &[u8; 16], location: &str, state: &TrustState) -> Result<()> {
        let path = self.file(vault_id, location, "json");
        let tmp = self.file(vault_id, location, "json.tmp");
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| local_err(&path, e))?;
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| local_err(&tmp, e))?;
        f.write_all(&bytes).map_err(|e| local_err(&tmp, e))?;
        // The new contents reach the disk before the rename can: after a crash the file is the old
        // state or the new one, never a torn one. The directory is not fsynced: losing the rename
        // leaves an older state, which only ever weakens detection, never raises a false alarm.
        f.sync_data().map_err(|e| local_err(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| local_err(&path, e))
    }

    /// Remembers a failed unlock attempt (its time) until the next successful unlock.
    pub fn record_failed_attempt(&self, vault_id: &[u8; 16], location: &str, time_ms: u64) -> Result<()> {
        let _lock = self.lock(vault_id, location)?;
        let path = self.file(vault_id, location, "failed");
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| local_err(&path, e))?;
        writeln!(f, "{time_ms}").and_then(|()| f.sync_all()).map_err(|e| local_err(&path, e))
    }

    /// The pending failed attempts (times), without removing them.
    pub fn failed_attempts(&self, vault_id: &[u8; 16], location: &str) -> Result<Vec<u64>> {
        let path = self.file(vault_id, location, "failed");
        let mut text = String::new();
        match File::open(&path) {
            Ok(mut f) => f.read_to_string(&mut text).map_err(|e| local_err(&path, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(local_err(&path, e)),
        };
        Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    /// Forgets the pending failed attempts (once they are sealed into the audit trail).
    pub fn clear_failed_attempts(&self, vault_id: &[u8; 16], location: &str) -> Result<()> {
        let _lock = self.lock(vault_id, location)?;
        let path = self.file(vault_id, location, "failed");
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(local_err(&path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_only_move_forward_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let ts = TrustStore::new(dir.path().join("trust"));
        let id = [4u8; 16];
        assert_eq!(ts.load(&id, "loc").unwrap(), TrustState::default());
        ts.update(&id, "loc", |s| s.saw_commit(5, &[1; 32])).unwrap();
        ts.update(&id, "loc", |s| s.saw_commit(3, &[2; 32])).unwrap();
        let s = ts.load(&id, "loc").unwrap();
        assert_eq!((s.log_seq, s.log_link.clone()), (5, hex::encode([1u8; 32])));
        assert_eq!(ts.load(&id, "other").unwrap().log_seq, 0, "locations are kept apart");
    }

    #[test]
    fn failed_attempts_accumulate_and_clear() {
        let dir = tempfile::tempdir().unwrap();
        let ts = TrustStore::new(dir.path());
        let id = [4u8; 16];
        ts.record_failed_attempt(&id, "l", 10).unwrap();
        ts.record_failed_attempt(&id, "l", 20).unwrap();
        assert_eq!(ts.failed_attempts(&id, "l").unwrap(), vec![10, 20]);
        ts.clear_failed_attempts(&id, "l").unwrap();
        assert!(ts.failed_attempts(&id, "l").unwrap().is_empty());
    }
}
