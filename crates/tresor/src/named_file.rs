//! Reading a local file that someone names (a TLS certificate or key, a trust-state file): a
//! regular file only, to a limit, opened without blocking, into one buffer that is wiped when
//! dropped.

use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use zeroize::Zeroizing;

/// The bytes of the file at `path`, at most `limit` of them. Errors: the open's own (`NotFound`
/// for nothing there); `InvalidInput` ("not a regular file") for a FIFO, a device, a directory
/// or a socket, which would block a reader or never end (the open itself does not block: it is
/// made with `O_NONBLOCK`, and the check is of the file as opened); `FileTooLarge` past `limit`.
///
/// The buffer is sized once from the file's length, so it never grows: a grown buffer would
/// leave copies of what it held (a key) in freed memory.
pub fn read_regular(path: &Path, limit: u64) -> io::Result<Zeroizing<Vec<u8>>> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    let capacity = usize::try_from(meta.len().min(limit) + 1).unwrap_or(usize::MAX);
    let mut bytes = Zeroizing::new(Vec::with_capacity(capacity));
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(io::ErrorKind::FileTooLarge, format!("larger than {limit} bytes")));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_is_read_and_anything_else_or_larger_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(read_regular(&path, 3).unwrap().as_slice(), b"abc");
        let e = read_regular(&path, 2).unwrap_err();
        assert_eq!(
            (e.kind(), e.to_string()),
            (io::ErrorKind::FileTooLarge, "larger than 2 bytes".to_string())
        );
        assert_eq!(read_regular(&dir.path().join("none"), 9).unwrap_err().kind(), io::ErrorKind::NotFound);
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let e = read_regular(&fifo, 9).unwrap_err();
        assert_eq!(
            (e.kind(), e.to_string()),
            (io::ErrorKind::InvalidInput, "not a regular file".to_string())
        );
        assert_eq!(read_regular(dir.path(), 9).unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }
}
