//! All of the core's integration tests, as one test binary (one link, not one per file). The
//! shared fixtures, the fault-injecting store and the store conformance story are `tresor-testkit`.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

pub(crate) use tresor_testkit::env as common;
mod apply;
mod archive;
mod canary;
mod cas;
mod concurrency;
mod epochs;
mod faults;
mod hostile_store;
mod input;
mod keys;
mod metadata;
mod nemesis;
mod rekey;
mod retire;
mod rollback;
mod s3;
mod smoke;
mod snapshot;
mod store_conformance;
mod system;
mod tamper;
