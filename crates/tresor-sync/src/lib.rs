//! Sharing and sync through a relay that learns nothing (ARCHITECTURE.md, "Sharing and sync
//! through a relay"). Built so far: the framing of events into fixed-size cells and back
//! ([`frame`]). The group state, events, pairing and the sync loop follow the same design.

pub mod frame;
