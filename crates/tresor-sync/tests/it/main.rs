//! tresor-sync's integration tests: one binary (the workspace's layout), one module per story.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

mod epochs;
mod hostile_members;
mod recording;
mod simulation;
mod stale;
mod support;
