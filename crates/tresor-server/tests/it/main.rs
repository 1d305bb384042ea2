//! The agent's and the server's integration tests, as one test binary: each starts the real
//! thing on a real vault directory and talks to it as its clients do.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

mod group_commit;
mod http;
mod isolation;
mod openapi;
mod transit;
mod vaultrs_client;
