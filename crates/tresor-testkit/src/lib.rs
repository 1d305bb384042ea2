//! What tresor's tests share, in one crate that is never published: the fault-injecting store
//! ([`fault`]), a vault in a temporary directory and helpers to reach into its objects ([`env`]),
//! the store conformance story every backend must pass ([`conformance`]), and what the
//! benchmarks share ([`bench`]).
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

pub mod bench;
pub mod conformance;
pub mod env;
pub mod fault;
