//! All of tresor-crypto's integration tests (official vectors, properties), as one test binary.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

mod bip39;
mod koi;
mod properties;
mod rfc9106;
mod slip10;
mod transit;
mod transit_stream;
mod wycheproof;
