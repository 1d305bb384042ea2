//! The relay's storage: one append-only file of 1,024-byte cells per mailbox in one directory,
//! appended under a lock per mailbox and made durable before the upload is answered.
//!
//! A mailbox file is named by the mailbox id in hex (64 characters, checked): nothing else is
//! stored — no uploader, no time, no index. A file whose length is not a whole number of cells
//! (an append cut by a crash or a full disk) is cut back to its last whole cell before the next
//! append, so a reader never sees part of a cell.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tresor_crypto::cell::CELL_LEN;

/// Most cells one mailbox holds (1 GiB); an upload beyond is refused.
pub const MAX_MAILBOX_CELLS: u64 = 1 << 20;
/// Most cells one download returns (1 MiB); the client asks again from where it ended.
pub const MAX_FETCH_CELLS: u64 = 1024;

/// A mailbox id: 32 bytes, as the members derive it.
pub type Mailbox = [u8; 32];

/// Why the relay could not store or read cells.
#[derive(Debug, thiserror::Error)]
pub enum RelayStoreError {
    /// The mailbox is full.
    #[error("the mailbox is full ({MAX_MAILBOX_CELLS} cells)")]
    Full,
    /// The disk refused (full, read-only, gone); the cells were not stored.
    #[error("the relay's disk refused the cells: {0}")]
    Io(#[from] std::io::Error),
}

/// The relay's directory (see the module documentation).
pub struct CellStore {
    dir: PathBuf,
    locks: Mutex<HashMap<Mailbox, Arc<Mutex<()>>>>,
}

impl CellStore {
    /// The store in `dir`, made (mode 0700) if missing. A `dir` that is a symlink or not a
    /// directory is refused.
    pub fn open(dir: &Path) -> std::io::Result<CellStore> {
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
        Ok(CellStore { dir: dir.to_path_buf(), locks: Mutex::default() })
    }

    fn path(&self, mailbox: &Mailbox) -> PathBuf {
        self.dir.join(format!("{}.cells", hex::encode(mailbox)))
    }

    fn lock(&self, mailbox: &Mailbox) -> Arc<Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        locks.entry(*mailbox).or_default().clone()
    }

    /// Appends `cells` (whole cells) to `mailbox`, durably; returns the mailbox's length in cells
    /// after. Blocking: call it off the async workers.
    pub fn append(&self, mailbox: &Mailbox, cells: &[u8]) -> Result<u64, RelayStoreError> {
        debug_assert!(cells.len().is_multiple_of(CELL_LEN));
        let lock = self.lock(mailbox);
        let _held = lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let path = self.path(mailbox);
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .mode(0o600)
            .open(&path)?;
        let length = file.metadata()?.len();
        let whole = length - length % CELL_LEN as u64;
        if whole / CELL_LEN as u64 + (cells.len() / CELL_LEN) as u64 > MAX_MAILBOX_CELLS {
            return Err(RelayStoreError::Full);
        }
        file.set_len(whole)?;
        file.seek(SeekFrom::Start(whole))?;
        if let Err(e) = file.write_all(cells).and_then(|()| file.sync_data()) {
            // Nothing half-stored: the mailbox goes back to what it held.
            let _ = file.set_len(whole);
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
        let store = CellStore::open(&dir.path().join("relay")).unwrap();
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
        let store = CellStore::open(dir.path()).unwrap();
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
        let store = CellStore::open(&dir.path().join("relay")).unwrap();
        let mailbox = [3; 32];
        let planted = dir.path().join("relay").join(format!("{}.cells", hex::encode(mailbox)));
        std::os::unix::fs::symlink(&outside, &planted).unwrap();
        assert!(store.append(&mailbox, &vec![0u8; CELL_LEN]).is_err());
        assert!(store.fetch(&mailbox, 0).is_err());
        assert_eq!(std::fs::read(&outside).unwrap(), b"not the relay's");
    }
}
