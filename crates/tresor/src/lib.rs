//! tresor's core: the vault on an untrusted store.
//!
//! The core reads no process environment and speaks no cloud protocol: stores come to it as
//! `object_store` backends, opened by `tresor-backend` with the configuration the binaries pass
//! in.
//!
//! - [`store`]: one adapter over `object_store`; every write create-if-absent;
//! - [`local`]: the local directory backend, which never follows a link inside a vault;
//! - [`keyfile`]: password slots wrapping the root secret;
//! - [`era`]: which root era of a location holds the vault (root rotation);
//! - [`chain`]: sealed, hash-chained logs (the commit log and the audit trail);
//! - [`index`]: secrets and their versions, replayed from the commit log;
//! - [`keyring`]: the data-key epochs: current, destroyed, rotation policy;
//! - [`snapshot`]: the index as of one commit, so opening does not replay the whole log;
//! - [`trust`]: what this machine has seen, to refuse rollbacks and forks;
//! - [`fingerprint`]: the short public digest of a vault's root that people compare and pin;
//! - [`vault`]: the [`Vault`] API that the CLI and the agent use;
//! - [`archive`]: self-contained encrypted backups;
//! - [`versions`]: what a store keeps of deleted objects, and the interface through which a
//!   backend removes old versions ([`versions::OldVersions`]);
//! - [`fault`]: a fault-injecting store wrapper for tests (errors, latency, lost acknowledgements,
//!   crashes).
#![deny(missing_docs)]

pub mod archive;
pub mod chain;
pub mod era;
pub mod error;
pub mod fingerprint;
pub mod index;
pub mod keyfile;
pub mod keyring;
pub mod layout;
pub mod local;
pub mod model;
pub mod named_file;
pub mod path;
pub mod roles;
pub mod snapshot;
pub mod store;
pub mod trust;
pub mod vault;
pub mod versions;

pub use error::{Category, Error, ObjectKind, Result, StoreError};
pub use store::Store;
pub use tresor_crypto::{KdfParams, Password, SecretBytes};
pub use vault::{Options, Vault};
pub use versions::Residue;
