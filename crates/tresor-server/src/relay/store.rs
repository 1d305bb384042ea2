//! The relay's storage: one append-only file of 1,024-byte cells per mailbox in one directory,
//! appended under a lock per mailbox and made durable before the upload is answered.
//!
//! A mailbox file is named by the mailbox id in hex (64 characters, checked): nothing else is
//! stored — no uploader, no time, no index. A file whose length is not a whole number of cells
//! (an append cut by a crash or a full disk) is cut back to its last whole cell before the next
//! append, so a reader never sees part of a cell.
//!
//! Anyone who reaches the relay may upload (mailboxes are not accounts), so what it keeps is
//! bounded three ways: cells per mailbox, cells in all, and mailboxes ([`Quota`]), counted from
//! the directory at open (files removed by hand while the relay runs still count until it
//! restarts). The locks are a fixed set of stripes, not one per mailbox ever seen.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tresor_crypto::cell::CELL_LEN;

/// Most cells one mailbox holds (1 GiB); an upload beyond is refused.
pub const MAX_MAILBOX_CELLS: u64 = 1 << 20;
/// Most cells one download returns (1 MiB); the client asks again from where it ended.
pub const MAX_FETCH_CELLS: u64 = 1024;
/// How many locks the mailboxes share.
const STRIPES: usize = 256;

/// A mailbox id: 32 bytes, as the members derive it.
pub type Mailbox = [u8; 32];

/// How much the relay keeps in all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Bytes of cells in all mailboxes together.
    pub max_bytes: u64,
    /// Mailboxes.
    pub max_mailboxes: u64,
}

impl Default for Quota {
    /// 16 GiB in at most 1,048,576 mailboxes.
    fn default() -> Quota {
        Quota { max_bytes: 16 << 30, max_mailboxes: 1 << 20 }
    }
}

/// Why the relay could not store or read cells.
#[derive(Debug, thiserror::Error)]
pub enum RelayStoreError {
    /// The mailbox is full.
    #[error("the mailbox is full ({MAX_MAILBOX_CELLS} cells)")]
    Full,
    /// The relay holds as many bytes as its quota allows.
    #[error("the relay is full ({0} bytes)")]
    RelayFull(u64),
    /// The relay holds as many mailboxes as its quota allows; existing ones still take cells.
    #[error("the relay holds as many mailboxes as it may ({0})")]
    TooManyMailboxes(u64),
    /// The disk refused (full, read-only, gone); the cells were not stored.
    #[error("the relay's disk refused the cells: {0}")]
    Io(#[from] std::io::Error),
}

/// The relay's directory (see the module documentation).
pub struct CellStore {
    dir: PathBuf,
    locks: Vec<Mutex<()>>,
    /// Which lock a mailbox takes: a hash keyed at random per process, so that an uploader
    /// cannot choose ids that land on the lock of a mailbox it wants to slow down.
    stripes: std::collections::hash_map::RandomState,
    quota: Quota,
    /// Bytes in all mailbox files, and how many there are (counted at open, kept since).
    used: AtomicU64,
    mailboxes: AtomicU64,
}

impl CellStore {
    /// The store in `dir`, made (mode 0700) if missing, keeping at most `quota`; what is there
    /// already counts. A `dir` that is a symlink or not a directory is refused.
    pub fn open(dir: &Path, quota: Quota) -> std::io::Result<CellStore> {
        match std::fs::symlink_metadata(dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(std::io::Error::other(format!("{} is not a directory", dir.display())));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
            }
            Err(e) => return Err(e),
        }
        let (mut used, mut mailboxes) = (0, 0);
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_file() && entry.file_name().to_string_lossy().ends_with(".cells") {
                used += meta.len();
                mailboxes += 1;
            }
        }
        Ok(CellStore {
            dir: dir.to_path_buf(),
            locks: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            stripes: std::collections::hash_map::RandomState::new(),
            quota,
            used: AtomicU64::new(used),
            mailboxes: AtomicU64::new(mailboxes),
        })
    }

    fn path(&self, mailbox: &Mailbox) -> PathBuf {
        self.dir.join(format!("{}.cells", hex::encode(mailbox)))
    }

    fn lock(&self, mailbox: &Mailbox) -> std::sync::MutexGuard<'_, ()> {
        use std::hash::BuildHasher;
        let stripe = usize::try_from(self.stripes.hash_one(mailbox) % STRIPES as u64).unwrap_or(0);
        self.locks[stripe].lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Gives `bytes` back to the quota (never below zero: a count that drifted from the disk
    /// must not wrap and refuse everything).
    fn release(&self, bytes: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| Some(used.saturating_sub(bytes)));
    }

    /// Takes `bytes` from the quota, or says the relay is full.
    fn reserve(&self, bytes: u64) -> Result<(), RelayStoreError> {
        let before = self.used.fetch_add(bytes, Ordering::SeqCst);
        if before.saturating_add(bytes) > self.quota.max_bytes {
            self.release(bytes);
            return Err(RelayStoreError::RelayFull(self.quota.max_bytes));
        }
        Ok(())
    }

    /// Appends `cells` (whole cells) to `mailbox`, durably; returns the mailbox's length in cells
    /// after. Blocking: call it off the async workers.
    pub fn append(&self, mailbox: &Mailbox, cells: &[u8]) -> Result<u64, RelayStoreError> {
        debug_assert!(cells.len().is_multiple_of(CELL_LEN));
        let _held = self.lock(mailbox);
        let path = self.path(mailbox);
        // Not `exists()`: a dangling link planted here is not a new mailbox (the open refuses it).
        let created =
            matches!(std::fs::symlink_metadata(&path), Err(e) if e.kind() == std::io::ErrorKind::NotFound);
        if created {
            // A new mailbox: one more file, if the quota has room.
            let before = self.mailboxes.fetch_add(1, Ordering::SeqCst);
            if before >= self.quota.max_mailboxes {
                self.mailboxes.fetch_sub(1, Ordering::SeqCst);
                return Err(RelayStoreError::TooManyMailboxes(self.quota.max_mailboxes));
            }
        }
        let stored = self.append_held(&path, created, cells);
        if created && stored.is_err() {
            // A new mailbox whose first upload failed: its file goes, and its place in the quota.
            let length = std::fs::symlink_metadata(&path).map_or(0, |m| m.len());
            if std::fs::remove_file(&path).is_ok() {
                self.release(length);
                self.mailboxes.fetch_sub(1, Ordering::SeqCst);
            } else if std::fs::symlink_metadata(&path).is_err() {
                self.mailboxes.fetch_sub(1, Ordering::SeqCst);
            }
        }
        stored
    }

    /// [`CellStore::append`] under the mailbox's lock.
    fn append_held(&self, path: &Path, created: bool, cells: &[u8]) -> Result<u64, RelayStoreError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .mode(0o600)
            .open(path)?;
        let length = file.metadata()?.len();
        let whole = length - length % CELL_LEN as u64;
        if whole / CELL_LEN as u64 + (cells.len() / CELL_LEN) as u64 > MAX_MAILBOX_CELLS {
            return Err(RelayStoreError::Full);
        }
        if whole < length {
            file.set_len(whole)?;
            self.release(length - whole);
        }
        self.reserve(cells.len() as u64)?;
        file.seek(SeekFrom::Start(whole))?;
        if let Err(e) = file.write_all(cells).and_then(|()| file.sync_data()) {
            // Nothing half-stored: the mailbox goes back to what it held. Should even that fail,
            // the bytes stay counted (the next append cuts them back, and gives them back).
            if file.set_len(whole).is_ok() {
                self.release(cells.len() as u64);
            }
            return Err(e.into());
        }
        if created {
            File::open(&self.dir)?.sync_all()?;
        }
        Ok((whole + cells.len() as u64) / CELL_LEN as u64)
    }

    /// The cells of `mailbox` from position `from` (at most [`MAX_FETCH_CELLS`]), and the
    /// mailbox's length in cells. An unknown mailbox is empty. Blocking.
    pub fn fetch(&self, mailbox: &Mailbox, from: u64) -> Result<(Vec<u8>, u64), RelayStoreError> {
        let mut file = match OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(self.path(mailbox))
        {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
            Err(e) => return Err(e.into()),
        };
        let length = file.metadata()?.len() / CELL_LEN as u64;
        let count = length.saturating_sub(from).min(MAX_FETCH_CELLS);
        let mut cells = vec![0u8; usize::try_from(count).unwrap_or(0) * CELL_LEN];
        if count > 0 {
            file.seek(SeekFrom::Start(from * CELL_LEN as u64))?;
            file.read_exact(&mut cells)?;
        }
        Ok((cells, length))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_append_and_read_back_from_any_position() {
        let dir = tempfile::tempdir().unwrap();
        let store = CellStore::open(&dir.path().join("relay"), Quota::default()).unwrap();
        let mailbox = [7; 32];
        assert_eq!(store.fetch(&mailbox, 0).unwrap(), (Vec::new(), 0));
        let cells: Vec<u8> = (0..4 * CELL_LEN).map(|i| (i / CELL_LEN) as u8).collect();
        assert_eq!(store.append(&mailbox, &cells).unwrap(), 4);
        assert_eq!(store.append(&mailbox, &cells[..2 * CELL_LEN]).unwrap(), 6);
        let (read, length) = store.fetch(&mailbox, 3).unwrap();
        assert_eq!(length, 6);
        assert_eq!(read, [&cells[3 * CELL_LEN..], &cells[..2 * CELL_LEN]].concat());
        assert_eq!(store.fetch(&mailbox, 9).unwrap(), (Vec::new(), 6));
        assert_eq!(store.fetch(&[8; 32], 0).unwrap(), (Vec::new(), 0), "another mailbox");
    }

    #[test]
    fn a_cut_append_is_cut_back_to_whole_cells() {
        let dir = tempfile::tempdir().unwrap();
        let store = CellStore::open(dir.path(), Quota::default()).unwrap();
        let mailbox = [1; 32];
        store.append(&mailbox, &vec![1u8; 2 * CELL_LEN]).unwrap();
        // A crash left half a cell.
        let path = dir.path().join(format!("{}.cells", hex::encode(mailbox)));
        OpenOptions::new().append(true).open(&path).unwrap().write_all(&[9u8; 100]).unwrap();
        assert_eq!(store.fetch(&mailbox, 0).unwrap().1, 2, "a reader sees whole cells only");
        assert_eq!(store.append(&mailbox, &vec![2u8; CELL_LEN]).unwrap(), 3);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 3 * CELL_LEN as u64);
        assert_eq!(&store.fetch(&mailbox, 2).unwrap().0, &vec![2u8; CELL_LEN]);
    }

    #[test]
    fn a_planted_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"not the relay's").unwrap();
        let store = CellStore::open(&dir.path().join("relay"), Quota::default()).unwrap();
        let mailbox = [3; 32];
        let planted = dir.path().join("relay").join(format!("{}.cells", hex::encode(mailbox)));
        std::os::unix::fs::symlink(&outside, &planted).unwrap();
        assert!(store.append(&mailbox, &vec![0u8; CELL_LEN]).is_err());
        assert!(store.fetch(&mailbox, 0).is_err());
        assert_eq!(std::fs::read(&outside).unwrap(), b"not the relay's");
    }

    #[test]
    fn the_relay_keeps_no_more_than_its_quota_of_bytes_and_mailboxes_and_counts_what_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let quota = Quota { max_bytes: 4 * CELL_LEN as u64, max_mailboxes: 2 };
        let store = CellStore::open(dir.path(), quota).unwrap();
        let (a, b, c) = ([1; 32], [2; 32], [3; 32]);
        let cell = vec![5u8; CELL_LEN];
        assert_eq!(store.append(&a, &[cell.clone(), cell.clone()].concat()).unwrap(), 2);
        assert_eq!(store.append(&b, &cell).unwrap(), 1);
        // A third mailbox: refused, and no file is left for it.
        assert!(matches!(store.append(&c, &cell), Err(RelayStoreError::TooManyMailboxes(2))));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
        // Bytes: one cell of room left, not two; the refused upload stored nothing.
        assert!(matches!(
            store.append(&b, &[cell.clone(), cell.clone()].concat()),
            Err(RelayStoreError::RelayFull(_))
        ));
        assert_eq!(store.fetch(&b, 0).unwrap().1, 1);
        assert_eq!(store.append(&a, &cell).unwrap(), 3);
        assert!(matches!(store.append(&a, &cell), Err(RelayStoreError::RelayFull(_))));
        drop(store);
        // Opened again (a restart), what is there counts: a cut tail frees its bytes once cut.
        let path = dir.path().join(format!("{}.cells", hex::encode(a)));
        OpenOptions::new().append(true).open(&path).unwrap().write_all(&[9u8; 100]).unwrap();
        let quota = Quota { max_bytes: 6 * CELL_LEN as u64, max_mailboxes: 3 };
        let store = CellStore::open(dir.path(), quota).unwrap();
        assert_eq!(store.append(&c, &cell).unwrap(), 1, "a third mailbox fits the new quota");
        // 4 cells and the cut tail's 100 bytes, and c's cell: 924 bytes of room.
        assert!(matches!(store.append(&b, &cell), Err(RelayStoreError::RelayFull(_))));
        assert_eq!(store.append(&a, &cell).unwrap(), 4, "the cut tail's 100 bytes were freed");
        assert!(matches!(store.append(&b, &cell), Err(RelayStoreError::RelayFull(_))));
    }

    #[test]
    fn a_planted_dangling_link_is_neither_a_new_mailbox_nor_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = CellStore::open(dir.path(), Quota { max_bytes: 1 << 20, max_mailboxes: 1 }).unwrap();
        let mailbox = [4; 32];
        let planted = dir.path().join(format!("{}.cells", hex::encode(mailbox)));
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &planted).unwrap();
        assert!(matches!(store.append(&mailbox, &vec![0u8; CELL_LEN]), Err(RelayStoreError::Io(_))));
        assert!(std::fs::symlink_metadata(&planted).unwrap().file_type().is_symlink(), "left as it was");
        assert!(!dir.path().join("nowhere").exists());
        assert_eq!(
            store.append(&[5; 32], &vec![0u8; CELL_LEN]).unwrap(),
            1,
            "its place in the quota is free"
        );
    }
}
