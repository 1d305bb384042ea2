//! All of the CLI's integration tests, as one test binary (one link, not one per file); each
//! runs the real `tresor` binary.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

mod agent;
mod archive;
mod bare;
mod canary;
mod cas;
mod common;
mod concurrency;
mod daily;
mod doctor;
mod epoch;
mod front;
mod hostile;
mod input;
mod inuse;
mod keys;
mod kill;
mod koi;
mod lifecycle;
mod rekey;
mod relay;
mod s3;
mod server;
mod share;
mod store_view;
mod tamper;
