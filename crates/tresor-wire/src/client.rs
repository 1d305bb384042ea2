//! The client's side: finding the agent's socket, checking who serves it, and one typed call per
//! connection. Blocking: a CLI needs no async runtime to talk to its agent.

use crate::calls::{Call, Reply};
use crate::frame::{FrameError, read_msg, write_msg};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest path a Unix socket can be bound at (`sun_path` is 108 bytes with its NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// The agent socket for a vault location, in `runtime_dir`.
pub fn socket_path(runtime_dir: &Path, location: &str) -> PathBuf {
    let id = hex::encode(&tresor_crypto::hash(location.as_bytes())[..8]);
    runtime_dir.join(format!("agent-{id}.sock"))
}

/// Checks that `dir` is a directory of our own, mode 0700, not a symlink: the only kind of place
/// an agent socket may live.
pub fn check_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::symlink_metadata(dir)?;
    let ours = meta.uid() == rustix::process::geteuid().as_raw();
    if !meta.file_type().is_dir() || !ours || meta.permissions().mode() & 0o077 != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("{} must be a directory owned by this user with mode 0700", dir.display()),
        ));
    }
    Ok(())
}

/// Sends `call` to the agent listening at `socket` and reads its reply. `Ok(None)`: no agent
/// listens there (nothing was sent). The connection waits at most `wait` for each step.
pub fn call<C: Call>(socket: &Path, call: &C, wait: Duration) -> Result<Option<Reply<C::Reply>>, FrameError> {
    let Some(stream) = connect(socket)? else { return Ok(None) };
    call_on(stream, call, wait).map(Some)
}

/// Sends `call` on a connection made by [`connect`] (one call per connection) and reads its reply.
pub fn call_on<C: Call>(
    mut stream: UnixStream,
    call: &C,
    wait: Duration,
) -> Result<Reply<C::Reply>, FrameError> {
    stream.set_read_timeout(Some(wait))?;
    stream.set_write_timeout(Some(wait))?;
    write_msg(&mut stream, &call.wire())?;
    read_msg(&mut stream)
}

/// A connection to the agent at `socket`, if one listens there and runs as this user (`None`: no
/// agent listens, and nothing was sent).
pub fn connect(socket: &Path) -> Result<Option<UnixStream>, FrameError> {
    // No agent can listen at a path longer than a socket address holds (`tresor unlock` says so).
    if socket.as_os_str().len() > MAX_SOCKET_PATH {
        return Ok(None);
    }
    if let Some(dir) = socket.parent() {
        match check_private_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
    let stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e)
            if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    // Only an agent of our own user may hear a password or a value: a socket planted by another
    // user (in a shared /tmp, say) is refused before anything is written to it.
    let peer = rustix::net::sockopt::socket_peercred(&stream).map_err(std::io::Error::from)?;
    if peer.uid != rustix::process::geteuid() {
        return Err(FrameError::Protocol(format!(
            "{} is served by another user (uid {}): refusing to talk to it",
            socket.display(),
            peer.uid.as_raw()
        )));
    }
    Ok(Some(stream))
}
