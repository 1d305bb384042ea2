//! tresor's agent protocol, shared by the agent and its clients.
//!
//! One connection carries one call: the client writes a [`Request`] (borrowed, as a
//! [`RequestRef`]), the agent answers with the [`Reply`] of exactly that call's type
//! ([`Call::Reply`]). Frames are a `u32` big-endian length, a version byte and postcard ([`frame`]); secret
//! bytes travel in [`SecretBuf`], wiped when dropped. The blocking [`client`] checks that the
//! socket's directory and the agent are this user's before it sends anything.
#![deny(missing_docs)]

pub mod calls;
pub mod client;
pub mod frame;
pub mod share;

pub use calls::*;
pub use frame::{
    Blob, FrameError, MAX_FRAME, PROTOCOL_VERSION, SecretBuf, decode, encode, read_msg, write_msg,
};
pub use share::*;

/// How long bulk work ([`Call::is_bulk`]) may take through the agent: it grows with the vault
/// (1 GiB re-encrypts in seconds, a large bucket may take hours), and an interrupted run is safe
/// but must be run again.
pub const BULK_DEADLINE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
