//! All of tresor-backend's integration tests, as one test binary, against a real S3-compatible
//! server (moto in CI).
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

mod common;
mod credentials;
mod s3_profile;
mod versions;
