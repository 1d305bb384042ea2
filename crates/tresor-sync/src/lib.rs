//! Sharing and sync through a relay that learns nothing (ARCHITECTURE.md, "Sharing and sync
//! through a relay"). Built so far: member identities ([`member`]), signed events ([`event`]),
//! their framing into fixed-size cells ([`frame`]), the receiver's rules ([`receive`]), the shared
//! prefix with its conflicts ([`replica`]) and one member without input or output ([`peer`]).
//! Epoch changes, pairing, the relay and the sync loop follow the same design.

pub mod event;
pub mod frame;
pub mod member;
pub mod peer;
pub mod receive;
pub mod replica;
