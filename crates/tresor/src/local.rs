//! The local directory backend: objects as regular files under one directory, reached without
//! ever following a symbolic link.
//!
//! A vault directory is untrusted: other programs, a sync client or a restored tarball can plant
//! anything in it. `object_store`'s own local backend follows symlinks when it lists, reads and
//! deletes, so a planted `probe -> ../victim` made `gc` delete files outside the vault. This
//! backend walks every name from a descriptor of the vault directory with `openat(O_NOFOLLOW)`,
//! one component at a time, and touches only regular files: a symlink, FIFO, socket or device is
//! never opened, read, listed as an object or deleted, and a name that is not one of the few
//! shapes tresor writes is never sent to the filesystem. What is not an object is a
//! [`Foreign`] entry, reported by [`LocalDir::foreign`] (`tresor doctor`) instead of acted on.
//!
//! Writes are create-if-absent, atomic and private whatever the umask: a `.tmp-<random>` file
//! (mode 0600) in the object's directory, fsynced when asked, hard-linked to its name (`EEXIST`:
//! the object exists, nothing is overwritten), unlinked; new directories are 0700.

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

/// Deepest object name tresor writes (`blob/<epoch>/<id>`): a listing goes no deeper.
const MAX_DEPTH: usize = 3;
/// Prefix of the staging files of writes in progress (or interrupted by a crash).
pub const TEMP_PREFIX: &str = ".tmp-";

/// One directory holding a vault's objects (see the module doc).
#[derive(Clone)]
pub struct LocalDir {
    root: Arc<OwnedFd>,
    path: PathBuf,
    fsync: bool,
}

/// Something in a vault directory that is not an object: reported, never acted on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Foreign {
    /// Its name relative to the vault directory (non-printable bytes escaped).
    pub name: String,
    /// What it is: "symbolic link", "FIFO", "socket", "device", "unexpected name", ...
    pub what: &'static str,
}

/// What a walk of the directory found.
#[derive(Default)]
struct Listing {
    objects: Vec<ObjectMeta>,
    foreign: Vec<Foreign>,
    temps: Vec<ObjectMeta>,
}

/// Whether `c` is one object-name component tresor could have written: ASCII letters, digits,
/// `-`, `_` and `.`, not empty and not `.` or `..`.
pub fn valid_component(c: &str) -> bool {
    !c.is_empty()
        && c != "."
        && c != ".."
        && c.len() <= 128
        && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

fn describe(ft: FileType) -> &'static str {
    match ft {
        FileType::Symlink => "symbolic link",
        FileType::Fifo => "FIFO",
        FileType::Socket => "socket",
        FileType::CharacterDevice | FileType::BlockDevice => "device",
        FileType::Directory => "directory",
        FileType::RegularFile => "regular file",
        _ => "entry of unknown type",
    }
}

fn generic(detail: String) -> object_store::Error {
    object_store::Error::Generic { store: "LocalDirectory", source: detail.into() }
}

fn not_found(name: &str) -> object_store::Error {
    object_store::Error::NotFound { path: name.to_string(), source: "no such object".into() }
}

/// An entry where tresor needs an object or a directory of objects that is something else (a
/// link, a FIFO, a file where a directory belongs): carried inside `object_store`'s error so the
/// store adapter can report it as what it is ([`crate::Error::Foreign`]).
#[derive(Debug, thiserror::Error)]
#[error("{name} is a {what}, not a regular file or directory")]
pub struct ForeignEntry {
    /// Its name relative to the vault directory.
    pub name: String,
    /// What it is.
    pub what: String,
}

/// An object larger than any of its kind may be: refused before it is read.
#[derive(Debug, thiserror::Error)]
#[error("{name} is {size} bytes, more than any object of its kind")]
pub struct Oversized {
    /// Its name relative to the vault directory.
    pub name: String,
    /// Its size.
    pub size: u64,
}

/// An entry at an object's name that is not a regular file: refused, never followed.
fn refused(name: &str, what: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "LocalDirectory",
        source: Box::new(ForeignEntry { name: name.to_string(), what: what.to_string() }),
    }
}

/// A write refused because the filesystem is full (`ENOSPC`, or the user's quota spent
/// `EDQUOT`): said apart from other I/O errors, so the user is told to free space.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FullDisk(String);

fn io_err(op: &str, name: &str, e: Errno) -> object_store::Error {
    let detail = format!("cannot {op} {name}: {}", std::io::Error::from(e));
    if matches!(e, Errno::NOSPC | Errno::DQUOT) {
        return object_store::Error::Generic { store: "LocalDirectory", source: Box::new(FullDisk(detail)) };
    }
    generic(detail)
}

/// How deep names may go below a directory whose path starts with `first`: two more levels under
/// `root/` (`root/<era>/blob/<epoch>/<id>`, see ARCHITECTURE.md).
fn max_depth(first: &str) -> usize {
    if first == crate::layout::ROOT_DIR { MAX_DEPTH + 2 } else { MAX_DEPTH }
}

fn split(name: &str) -> Result<Vec<&str>, object_store::Error> {
    let parts: Vec<&str> = name.split('/').collect();
    if parts.len() > max_depth(parts[0]) || !parts.iter().all(|p| valid_component(p)) {
        return Err(generic(format!("refusing the object name {name:?}: not a tresor object name")));
    }
    Ok(parts)
}

fn file_type(st: &rustix::fs::Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode as rustix::fs::RawMode)
}

// `Stat`'s field types differ between architectures (i64 here, c_long or u32 elsewhere): the
// conversions are real on some of them.
#[allow(clippy::useless_conversion)]
fn meta(name: &str, st: &rustix::fs::Stat) -> ObjectMeta {
    let secs = i64::try_from(st.st_mtime).unwrap_or(0);
    let nanos = u32::try_from(st.st_mtime_nsec).unwrap_or(0);
    ObjectMeta {
        location: Path::from(name),
        last_modified: chrono::DateTime::from_timestamp(secs, nanos).unwrap_or_default(),
        size: u64::try_from(st.st_size).unwrap_or(0),
        e_tag: None,
        version: None,
    }
}

const DIR_FLAGS: OFlags =
    OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);
const READ_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);

impl LocalDir {
    /// Opens the vault directory `path` (the path itself may be a link the user chose; nothing
    /// inside it is followed). Writes are fsynced (file and directory).
    pub fn open(path: impl Into<PathBuf>) -> std::io::Result<LocalDir> {
        let path = path.into();
        let root =
            rustix::fs::open(&path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        Ok(LocalDir { root: Arc::new(root), path, fsync: true })
    }

    /// The directory `name` below this one (its components reached without following links),
    /// as a directory of its own; `None` if it does not exist and `create` is not set.
    pub fn sub(&self, name: &str, create: bool) -> Result<Option<LocalDir>, object_store::Error> {
        let parts = split(name)?;
        match self.open_dir(&parts, create) {
            Ok(Some(fd)) => {
                Ok(Some(LocalDir { root: Arc::new(fd), path: self.path.join(name), fsync: self.fsync }))
            }
            Ok(None) => Ok(None),
            Err((at, Errno::LOOP | Errno::NOTDIR)) => Err(refused(&at, "entry that is not a directory")),
            Err((at, e)) => Err(io_err("open", &at, e)),
        }
    }

    /// The same directory, with writes fsynced or not.
    pub fn with_fsync(&self, fsync: bool) -> LocalDir {
        LocalDir { fsync, ..self.clone() }
    }

    /// Whether the directory was removed (its last name unlinked) or moved away since it was
    /// opened — its path now leads nowhere, or to another directory (a vault renamed and a new
    /// one made in its place): what stays open is then not the vault at that location. A path
    /// that cannot be looked up for another reason (permissions, I/O) does not count.
    pub fn removed(&self) -> bool {
        let Ok(open) = rustix::fs::fstat(&*self.root) else { return false };
        if open.st_nlink == 0 {
            return true;
        }
        match rustix::fs::stat(&self.path) {
            Ok(named) => (named.st_dev, named.st_ino) != (open.st_dev, open.st_ino),
            Err(e) => e == Errno::NOENT || e == Errno::NOTDIR,
        }
    }

    /// The directory's path.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// A warning when others than the owner may read or enter the vault directory.
    pub fn permission_warning(&self) -> Option<String> {
        let st = rustix::fs::fstat(&*self.root).ok()?;
        let mode = st.st_mode & 0o777;
        (mode & 0o077 != 0).then(|| {
            format!(
                "the vault directory {} is accessible to other users (mode {mode:o}); \
                 fix it with: chmod 700 '{}'",
                self.path.display(),
                self.path.display()
            )
        })
    }

    /// Opens the directory `parts` below the root, one component at a time, never following a
    /// link; with `create`, missing ones are made (0700).
    fn open_dir(&self, parts: &[&str], create: bool) -> Result<Option<OwnedFd>, (String, Errno)> {
        let mut dir = rustix::io::dup(&*self.root).map_err(|e| (String::new(), e))?;
        for (i, part) in parts.iter().enumerate() {
            let so_far = parts[..=i].join("/");
            let next = match rustix::fs::openat(&dir, *part, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(&dir, *part, Mode::from_raw_mode(0o700)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err((so_far, e)),
                    }
                    let fd = rustix::fs::openat(&dir, *part, DIR_FLAGS, Mode::empty())
                        .map_err(|e| (so_far.clone(), e))?;
                    rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700)).map_err(|e| (so_far.clone(), e))?;
                    if self.fsync {
                        rustix::fs::fsync(&dir).map_err(|e| (so_far.clone(), e))?;
                    }
                    fd
                }
                Err(Errno::NOENT) => return Ok(None),
                Err(e) => return Err((so_far, e)),
            };
            dir = next;
        }
        Ok(Some(dir))
    }

    /// The parent directory of `name` (`None`: it does not exist) and its last component.
    fn parent<'n>(
        &self,
        name: &'n str,
        create: bool,
    ) -> Result<(Option<OwnedFd>, &'n str), object_store::Error> {
        let parts = split(name)?;
        let (file, dirs) = parts.split_last().ok_or_else(|| not_found(name))?;
        match self.open_dir(dirs, create) {
            Ok(dir) => Ok((dir, file)),
            // A component that is a link or not a directory: `ELOOP` / `ENOTDIR` from `O_NOFOLLOW`.
            Err((at, Errno::LOOP | Errno::NOTDIR)) => {
                let what = rustix::fs::statat(&*self.root, at.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                    .map(|st| describe(file_type(&st)))
                    .unwrap_or("entry that is not a directory");
                Err(refused(&at, what))
            }
            Err((at, e)) => Err(io_err("open", &at, e)),
        }
    }

    /// Reads `name` (a byte range of it, or only its metadata with `head`).
    fn read(
        &self,
        name: &str,
        options: &GetOptions,
    ) -> Result<(ObjectMeta, Bytes, std::ops::Range<u64>), object_store::Error> {
        let (Some(dir), file) = self.parent(name, false)? else { return Err(not_found(name)) };
        let st = match rustix::fs::statat(&dir, file, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Err(not_found(name)),
            Err(e) => return Err(io_err("inspect", name, e)),
        };
        if file_type(&st) != FileType::RegularFile {
            return Err(refused(name, describe(file_type(&st))));
        }
        if options.head {
            return Ok((meta(name, &st), Bytes::new(), 0..0));
        }
        // Nothing larger than the kind allows is read (a sparse terabyte named like a snapshot
        // part costs one `fstatat`, not an allocation).
        let limit = crate::layout::size_limit(name);
        let size = u64::try_from(st.st_size).unwrap_or(u64::MAX);
        let wanted = match &options.range {
            Some(r) => r.as_range(size).map(|r| r.end).unwrap_or(0),
            None => size,
        };
        if wanted > limit {
            return Err(object_store::Error::Generic {
                store: "LocalDirectory",
                source: Box::new(Oversized { name: name.to_string(), size }),
            });
        }
        let fd = match rustix::fs::openat(&dir, file, READ_FLAGS, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Err(not_found(name)),
            Err(Errno::LOOP) => return Err(refused(name, "symbolic link")),
            Err(e) => return Err(io_err("open", name, e)),
        };
        // What was opened is what was inspected (not swapped for a FIFO or device meanwhile).
        let now = rustix::fs::fstat(&fd).map_err(|e| io_err("inspect", name, e))?;
        if file_type(&now) != FileType::RegularFile || (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) {
            return Err(refused(name, "entry that changed while it was opened"));
        }
        let meta = meta(name, &now);
        let range = match &options.range {
            Some(r) => r.as_range(meta.size).unwrap_or(meta.size..meta.size),
            None => 0..meta.size,
        };
        let range = range.start.min(meta.size)..range.end.min(meta.size);
        let len =
            usize::try_from(range.end - range.start).map_err(|_| generic(format!("{name} is too large")))?;
        let file = std::fs::File::from(fd);
        let mut buf = vec![0u8; len];
        let mut filled = 0;
        while filled < len {
            match file.read_at(&mut buf[filled..], range.start + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(generic(format!("cannot read {name}: {e}"))),
            }
        }
        buf.truncate(filled);
        let got = range.start..range.start + filled as u64;
        Ok((meta, Bytes::from(buf), got))
    }

    /// Creates `name` with `bytes` if no entry has that name (see the module doc).
    fn create(&self, name: &str, bytes: &[u8], mode: &PutMode) -> Result<(), object_store::Error> {
        if !matches!(mode, PutMode::Create) {
            return Err(object_store::Error::NotImplemented {
                operation: "overwrite".into(),
                implementer: "LocalDirectory (objects are immutable)".into(),
            });
        }
        let tmp = format!(
            "{TEMP_PREFIX}{}",
            hex::encode(
                tresor_crypto::random_array::<16>()
                    .map_err(|_| generic("the system random number generator failed".into()))?
            )
        );
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        // A delete elsewhere may remove the directory just emptied between our walk and our
        // create (`ENOENT` on a directory that is gone): walk again once.
        let mut attempt = 0;
        let (dir, file, fd) = loop {
            let (Some(dir), file) = self.parent(name, true)? else { return Err(not_found(name)) };
            match rustix::fs::openat(&dir, tmp.as_str(), flags, Mode::from_raw_mode(0o600)) {
                Ok(fd) => break (dir, file, fd),
                Err(Errno::NOENT) if attempt == 0 => attempt += 1,
                Err(e) => return Err(io_err("create a file for", name, e)),
            }
        };
        let written = (|| {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o600))?;
            let f = std::fs::File::from(fd);
            std::io::Write::write_all(&mut &f, bytes)
                .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?;
            if self.fsync {
                rustix::fs::fdatasync(&f)?;
            }
            rustix::fs::linkat(&dir, tmp.as_str(), &dir, file, AtFlags::empty())
        })();
        // The staging name goes whatever happened; a failure to remove it leaves debris `gc` removes.
        let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
        match written {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                return Err(object_store::Error::AlreadyExists {
                    path: name.to_string(),
                    source: "an object of that name exists".into(),
                });
            }
            Err(e) => return Err(io_err("write", name, e)),
        }
        if self.fsync {
            rustix::fs::fsync(&dir).map_err(|e| io_err("sync the directory of", name, e))?;
        }
        Ok(())
    }

    /// Deletes the regular file `name` (anything else there is refused), then the directories
    /// that leaves empty (the vault directory itself stays).
    fn remove(&self, name: &str) -> Result<(), object_store::Error> {
        let parts = split(name)?;
        let (Some(dir), file) = self.parent(name, false)? else { return Err(not_found(name)) };
        match rustix::fs::statat(&dir, file, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if file_type(&st) == FileType::RegularFile => {}
            Ok(st) => return Err(refused(name, describe(file_type(&st)))),
            Err(Errno::NOENT) => return Err(not_found(name)),
            Err(e) => return Err(io_err("inspect", name, e)),
        }
        // `unlinkat` never follows: were the file swapped for a link meanwhile, the link goes.
        match rustix::fs::unlinkat(&dir, file, AtFlags::empty()) {
            Ok(()) => {}
            Err(Errno::NOENT) => return Err(not_found(name)),
            Err(e) => return Err(io_err("delete", name, e)),
        }
        for depth in (1..parts.len()).rev() {
            let Ok(Some(parent)) = self.open_dir(&parts[..depth - 1], false) else { break };
            // Fails on a non-empty directory (or anything that is not a directory): then stop.
            if rustix::fs::unlinkat(&parent, parts[depth - 1], AtFlags::REMOVEDIR).is_err() {
                break;
            }
        }
        Ok(())
    }

    /// Walks the directory below `prefix` (no link followed, at most [`MAX_DEPTH`] deep).
    fn walk(&self, prefix: &str) -> Result<Listing, object_store::Error> {
        let mut listing = Listing::default();
        let parts: Vec<&str> = if prefix.is_empty() { Vec::new() } else { split(prefix)? };
        let dir = match self.open_dir(&parts, false) {
            Ok(Some(dir)) => dir,
            Ok(None) => return Ok(listing),
            // The prefix itself is a link or a file: nothing of ours is under it.
            Err((at, Errno::LOOP | Errno::NOTDIR)) => {
                let what = rustix::fs::statat(&*self.root, at.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                    .map(|st| describe(file_type(&st)))
                    .unwrap_or("entry");
                listing.foreign.push(Foreign { name: at, what });
                return Ok(listing);
            }
            Err((at, e)) => return Err(io_err("list", &at, e)),
        };
        let base = parts.len();
        self.walk_dir(dir, prefix, base, &mut listing)?;
        Ok(listing)
    }

    fn walk_dir(
        &self,
        dir: OwnedFd,
        at: &str,
        depth: usize,
        out: &mut Listing,
    ) -> Result<(), object_store::Error> {
        // `read_from` reads through its own descriptor of the same directory ("." of `dir`).
        let mut entries = rustix::fs::Dir::read_from(&dir).map_err(|e| io_err("list", at, e))?;
        let dirfd = dir;
        let join = |name: &str| if at.is_empty() { name.to_string() } else { format!("{at}/{name}") };
        let mut subdirs = Vec::new();
        while let Some(entry) = entries.read() {
            let entry = entry.map_err(|e| io_err("list", at, e))?;
            let raw = entry.file_name().to_bytes();
            if raw == b"." || raw == b".." {
                continue;
            }
            let Some(name) = std::str::from_utf8(raw).ok().filter(|n| valid_component(n)) else {
                let shown: String = String::from_utf8_lossy(raw).escape_debug().collect();
                out.foreign.push(Foreign { name: join(&shown), what: "unexpected name" });
                continue;
            };
            let path = join(name);
            let st = match rustix::fs::statat(&dirfd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue, // removed meanwhile
                Err(e) => return Err(io_err("inspect", &path, e)),
            };
            match file_type(&st) {
                // Staging files only where tresor writes objects; elsewhere a `.tmp-` file is
                // someone else's.
                FileType::RegularFile
                    if name.starts_with(TEMP_PREFIX) && crate::layout::is_object_dir(at) =>
                {
                    out.temps.push(meta(&path, &st))
                }
                FileType::RegularFile if name.starts_with(TEMP_PREFIX) => {
                    out.foreign.push(Foreign { name: path, what: "unexpected file" })
                }
                FileType::RegularFile if depth > 0 => out.objects.push(meta(&path, &st)),
                FileType::RegularFile => out.foreign.push(Foreign { name: path, what: "unexpected file" }),
                FileType::Directory if depth + 1 < max_depth(path.split('/').next().unwrap_or_default()) => {
                    subdirs.push((name.to_string(), path))
                }
                FileType::Directory => {
                    out.foreign.push(Foreign { name: path, what: "directory nested too deep" })
                }
                other => out.foreign.push(Foreign { name: path, what: describe(other) }),
            }
        }
        for (name, path) in subdirs {
            match rustix::fs::openat(&dirfd, name.as_str(), DIR_FLAGS, Mode::empty()) {
                Ok(sub) => self.walk_dir(sub, &path, depth + 1, out)?,
                Err(Errno::NOENT) => {}
                Err(Errno::LOOP | Errno::NOTDIR) => {
                    out.foreign.push(Foreign { name: path, what: "entry that changed while listed" })
                }
                Err(e) => return Err(io_err("list", &path, e)),
            }
        }
        Ok(())
    }

    /// Everything in the directory that is not an object tresor could have written: links,
    /// FIFOs, sockets, devices, unexpected names and nesting. Never acted on by tresor.
    pub fn foreign(&self) -> Result<Vec<Foreign>, object_store::Error> {
        let mut foreign = self.walk("")?.foreign;
        foreign.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(foreign)
    }

    /// Staging files of writes that crashed (`.tmp-*`), with their metadata, for `gc`.
    pub fn temps(&self) -> Result<Vec<ObjectMeta>, object_store::Error> {
        Ok(self.walk("")?.temps)
    }

    /// Removes a staging file left by an interrupted write (a regular file, never followed).
    pub fn remove_temp(&self, name: &str) -> Result<(), object_store::Error> {
        let last = name.rsplit('/').next().unwrap_or_default();
        if !last.starts_with(TEMP_PREFIX) {
            return Err(generic(format!("{name} is not a staging file")));
        }
        match self.remove(name) {
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            other => other,
        }
    }

    /// Makes the objects `names` durable: each file (opened without following anything) and the
    /// directories holding them are fsynced.
    pub fn sync_files(&self, names: &[String]) -> Result<(), object_store::Error> {
        let mut dirs = std::collections::BTreeMap::new();
        for name in names {
            let (Some(dir), file) = self.parent(name, false)? else { return Err(not_found(name)) };
            // The type is checked before anything is opened, and what is opened compared with it.
            let before = rustix::fs::statat(&dir, file, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| io_err("sync", name, e))?;
            if file_type(&before) != FileType::RegularFile {
                return Err(refused(name, describe(file_type(&before))));
            }
            let fd = rustix::fs::openat(&dir, file, READ_FLAGS, Mode::empty())
                .map_err(|e| io_err("sync", name, e))?;
            let st = rustix::fs::fstat(&fd).map_err(|e| io_err("sync", name, e))?;
            if file_type(&st) != FileType::RegularFile
                || (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino)
            {
                return Err(refused(name, "entry that changed while it was opened"));
            }
            rustix::fs::fdatasync(&fd).map_err(|e| io_err("sync", name, e))?;
            dirs.insert(name.rsplit_once('/').map(|(d, _)| d.to_string()).unwrap_or_default(), dir);
        }
        for (name, dir) in dirs {
            rustix::fs::fsync(dir.as_fd()).map_err(|e| io_err("sync the directory", &name, e))?;
        }
        Ok(())
    }

    /// Makes everything written to the filesystem durable (`syncfs`).
    pub fn sync_all(&self) -> Result<(), object_store::Error> {
        rustix::fs::syncfs(&*self.root).map_err(|e| io_err("sync", &self.path.display().to_string(), e))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(LocalDir) -> Result<T, object_store::Error> + Send + 'static,
    ) -> Result<T, object_store::Error> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(this))
            .await
            .map_err(|e| generic(format!("a filesystem thread failed: {e}")))?
    }
}

impl fmt::Debug for LocalDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalDirectory({})", self.path.display())
    }
}

impl fmt::Display for LocalDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalDirectory({})", self.path.display())
    }
}

#[async_trait]
impl ObjectStore for LocalDir {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let name = location.to_string();
        self.blocking(move |dir| {
            let bytes: Bytes = payload.into();
            dir.create(&name, &bytes, &opts.mode)?;
            Ok(PutResult { e_tag: None, version: None, extensions: Default::default() })
        })
        .await
    }

    async fn put_multipart_opts(
        &self,
        _location: &Path,
        _opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        Err(object_store::Error::NotImplemented {
            operation: "put_multipart".into(),
            implementer: "LocalDirectory".into(),
        })
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        let name = location.to_string();
        let head = options.head;
        let (meta, bytes, range) = self.blocking(move |dir| dir.read(&name, &options)).await?;
        let payload =
            if head { stream::empty().boxed() } else { stream::once(async move { Ok(bytes) }).boxed() };
        Ok(GetResult {
            payload: GetResultPayload::Stream(payload),
            meta,
            range,
            attributes: Default::default(),
            extensions: Default::default(),
        })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let this = self.clone();
        locations
            .then(move |location| {
                let this = this.clone();
                async move {
                    let location = location?;
                    let name = location.to_string();
                    this.blocking(move |dir| dir.remove(&name)).await?;
                    Ok(location)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let prefix = prefix.map(|p| p.to_string()).unwrap_or_default();
        let this = self.clone();
        stream::once(async move { this.blocking(move |dir| dir.walk(&prefix)).await })
            .map(|listing| match listing {
                Ok(l) => stream::iter(l.objects.into_iter().map(Ok)).boxed(),
                Err(e) => stream::once(async move { Err(e) }).boxed(),
            })
            .flatten()
            .boxed()
    }

    async fn list_with_delimiter(&self, _prefix: Option<&Path>) -> object_store::Result<ListResult> {
        // tresor lists whole prefixes only ([`ObjectStore::list`]).
        Err(object_store::Error::NotImplemented {
            operation: "list_with_delimiter".into(),
            implementer: "LocalDirectory".into(),
        })
    }

    async fn copy_opts(&self, _from: &Path, _to: &Path, _options: CopyOptions) -> object_store::Result<()> {
        Err(object_store::Error::NotImplemented {
            operation: "copy".into(),
            implementer: "LocalDirectory".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn setup() -> (tempfile::TempDir, LocalDir) {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("vault")).unwrap();
        let dir = LocalDir::open(tmp.path().join("vault")).unwrap();
        (tmp, dir)
    }

    async fn create(dir: &LocalDir, name: &str, bytes: &'static [u8]) -> object_store::Result<PutResult> {
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        dir.put_opts(&Path::from(name), PutPayload::from_static(bytes), opts).await
    }

    #[tokio::test]
    async fn objects_are_private_immutable_and_listed() {
        let (tmp, dir) = setup();
        // Whatever the umask, objects are 0600 and directories 0700.
        let old = rustix::process::umask(Mode::from_raw_mode(0o022));
        create(&dir, "log/00000000000000000001", b"one").await.unwrap();
        rustix::process::umask(old);
        let file = tmp.path().join("vault/log/00000000000000000001");
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(file.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        let again = create(&dir, "log/00000000000000000001", b"two").await;
        assert!(matches!(again, Err(object_store::Error::AlreadyExists { .. })));
        let got = dir.get(&Path::from("log/00000000000000000001")).await.unwrap().bytes().await.unwrap();
        assert_eq!(&got[..], b"one");
        let range = dir.get_range(&Path::from("log/00000000000000000001"), 1..10).await.unwrap();
        assert_eq!(&range[..], b"ne", "a range past the end is cut at the end");
        let names: Vec<String> = futures::TryStreamExt::try_collect::<Vec<_>>(dir.list(None))
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.location.to_string())
            .collect();
        assert_eq!(names, ["log/00000000000000000001"]);
        dir.delete(&Path::from("log/00000000000000000001")).await.unwrap();
        assert!(!tmp.path().join("vault/log").exists(), "an emptied directory goes");
    }

    #[tokio::test]
    async fn fail_links_fifos_and_bad_names_are_never_followed() {
        let (tmp, dir) = setup();
        let victim = tmp.path().join("victim");
        std::fs::create_dir_all(victim.join("sub")).unwrap();
        std::fs::write(victim.join("sub/file"), b"keep").unwrap();
        let v = tmp.path().join("vault");
        symlink(&victim, v.join("probe")).unwrap();
        std::fs::create_dir(v.join("blob")).unwrap();
        symlink("../../victim", v.join("blob/0000000001")).unwrap();
        std::fs::create_dir(v.join("log")).unwrap();
        symlink(victim.join("sub/file"), v.join("log/00000000000000000001")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            v.join("log/00000000000000000002"),
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let listed: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(dir.list(None)).await.unwrap();
        assert!(listed.is_empty(), "{listed:?}");
        let foreign = dir.foreign().unwrap();
        let shown: Vec<(&str, &str)> = foreign.iter().map(|f| (f.name.as_str(), f.what)).collect();
        assert_eq!(
            shown,
            [
                ("blob/0000000001", "symbolic link"),
                ("log/00000000000000000001", "symbolic link"),
                ("log/00000000000000000002", "FIFO"),
                ("probe", "symbolic link"),
            ]
        );
        // Reads, deletes and writes through them all fail, and the victim is intact.
        for name in ["log/00000000000000000001", "log/00000000000000000002", "probe/x", "blob/0000000001/sub"]
        {
            assert!(dir.get(&Path::from(name)).await.is_err(), "{name}");
            assert!(dir.delete(&Path::from(name)).await.is_err(), "{name}");
        }
        assert!(create(&dir, "blob/0000000001/00112233445566778899aabbccddeeff", b"x").await.is_err());
        for bad in ["log/../x", "log/./x", "a/b/c/d", "log/x y"] {
            assert!(create(&dir, bad, b"x").await.is_err(), "{bad}");
        }
        assert_eq!(std::fs::read(victim.join("sub/file")).unwrap(), b"keep");
        assert_eq!(std::fs::read_dir(&victim).unwrap().count(), 1);
    }
}
