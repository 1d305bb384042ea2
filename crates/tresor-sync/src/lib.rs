//! Sharing and sync through a relay that learns nothing (ARCHITECTURE.md, "Sharing and sync
//! through a relay"). Built so far: member identities ([`member`]), signed events ([`event`]),
//! their framing into fixed-size cells ([`frame`]), the receiver's rules ([`receive`]), the shared
//! prefix with its conflicts ([`replica`]), one member without input or output, epochs and
//! removals included ([`peer`]), the relay's client with one round of sync ([`relay`]; a bucket
//! or directory as the relay: [`bucket`]), and
//! the pairing of a new member ([`pair`]), and a group as one vault keeps it: its state sealed in
//! the vault, rounds of sync between the vault's prefix and the relay, pairing driven through the
//! relay ([`share`]); and KOI-net compatibility, per peer ([`koi`]).

pub mod bucket;
pub mod chain;
pub mod event;
pub mod frame;
pub mod koi;
pub mod member;
pub mod pair;
pub mod peer;
pub mod receive;
pub mod relay;
pub mod replica;
pub mod share;
pub mod snapshot;
