//! The CLI's side of the agent protocol: blocking, no async runtime needed.

use crate::protocol::{FrameError, Request, Response, read_msg, write_msg};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The agent socket for a vault location, in `runtime_dir`.
pub fn socket_path(runtime_dir: &Path, location: &str) -> PathBuf {
    let id = hex::encode(&tresor_crypto::hash(location.as_bytes())[..8]);
    runtime_dir.join(format!("agent-{id}.sock"))
}

/// Sends one request. `Ok(None)`: no agent listens there.
pub fn request(socket: &Path, req: &Request, wait: Duration) -> Result<Option<Response>, FrameError> {
    let mut stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e)
            if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    stream.set_read_timeout(Some(wait))?;
    stream.set_write_timeout(Some(wait))?;
    write_msg(&mut stream, req)?;
    read_msg(&mut stream).map(Some)
}
