//! The core library's error type: one variant per thing a user must be told apart.
//!
//! No variant carries a secret: paths of secrets appear only in errors returned to the unlocked
//! caller that named them, never in store-facing or log output. Messages say what happened, never
//! what to type next: advice belongs to the front end (the CLI's hints, the server's error
//! mapping), which matches on the variant. Errors are `Serialize`, so the agent protocol carries
//! them typed (a store error without its source: that stays in the process it happened in).
//!
//! Writes: every error from a write means **nothing was written** that any reader will see (at
//! most unreferenced objects that `gc` removes), except [`Error::Indeterminate`], the one error
//! that says the commit may have landed.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Kinds of stored objects, named in integrity, rollback and fork errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ObjectKind {
    /// The key file (password slots wrapping the root secret).
    KeyFile,
    /// A wrapped epoch data key.
    EpochKey,
    /// A commit of the commit log.
    Commit,
    /// A record of the audit trail.
    AuditRecord,
    /// A sealed secret value.
    ValueBlob,
    /// A part of an index snapshot.
    Snapshot,
    /// An export archive.
    Archive,
    /// A root era (a generation of the root secret, see `tresor rekey`).
    RootEra,
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::KeyFile => "key file",
            ObjectKind::EpochKey => "epoch key",
            ObjectKind::Commit => "commit",
            ObjectKind::AuditRecord => "audit record",
            ObjectKind::ValueBlob => "value blob",
            ObjectKind::Snapshot => "snapshot",
            ObjectKind::Archive => "archive",
            ObjectKind::RootEra => "root era",
        })
    }
}

/// A failure of the store itself (I/O, network, permissions, a full disk): what failed, in words
/// that name no credential, and the store's own error as the [source](std::error::Error::source)
/// when there is one.
#[derive(Clone, Debug, thiserror::Error, Serialize, Deserialize)]
#[error("{message}")]
pub struct StoreError {
    message: String,
    /// The filesystem under a local directory is full (`ENOSPC`, or the user's quota is spent):
    /// said apart, so the CLI can advise freeing space. Sent over the agent protocol.
    #[serde(default)]
    full: bool,
    /// Not sent over the agent protocol: the message says what the client needs.
    #[source]
    #[serde(skip)]
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    /// A store failure described by `message` alone.
    pub fn new(message: impl Into<String>) -> StoreError {
        StoreError { message: message.into(), full: false, source: None }
    }

    /// A store failure described by `message`, caused by `source`.
    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> StoreError {
        StoreError { message: message.into(), full: false, source: Some(Arc::new(source)) }
    }

    /// A write that failed because the filesystem under a local directory is full.
    pub fn full_disk(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> StoreError {
        StoreError { full: true, ..StoreError::with_source(message, source) }
    }

    /// Whether the filesystem under a local directory was full.
    pub fn is_full_disk(&self) -> bool {
        self.full
    }

    /// What failed.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The store's own error, if kept (the same as the [source](std::error::Error::source), typed
    /// so it can be downcast to the backend's error type).
    pub fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.source.as_deref()
    }
}

/// Everything the core library can fail with.
#[derive(Clone, Debug, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Error {
    /// Nothing that looks like a vault at the location.
    #[error("no vault at {location}")]
    NoVault {
        /// Where we looked.
        location: String,
    },
    /// Objects but no key file: an `init` that stopped before writing the key file (its last
    /// step), or data that is not a vault.
    #[error(
        "{location} holds objects but no key file: an interrupted init (nothing there can be opened), or data \
         that is not a vault"
    )]
    InterruptedInit {
        /// The location.
        location: String,
    },
    /// Files, but none of a vault's: a location that is not a vault (a wrong `--vault`).
    #[error("{location} is not a tresor vault: it holds other files")]
    NotAVault {
        /// The location.
        location: String,
    },
    /// `init` or `import` on a location that already holds a vault or other objects.
    #[error("{location} is not empty: a vault (or other data) is already there")]
    VaultExists {
        /// The location.
        location: String,
    },
    /// Wrong password, tampered key file or refused KDF parameters: deliberately one message.
    #[error("authentication failed")]
    AuthFailed,
    /// The recovery phrase is a valid BIP39 phrase, but not this vault's. Nothing was written.
    #[error("this recovery phrase does not belong to the vault at {location}; nothing was changed")]
    WrongPhrase {
        /// The vault location.
        location: String,
    },
    /// An object that does not authenticate, does not parse, or sits where it does not belong.
    #[error("integrity error: {kind} {object}: {detail}")]
    Integrity {
        /// What kind of object.
        kind: ObjectKind,
        /// Its name in the store.
        object: String,
        /// What was wrong with it.
        detail: String,
    },
    /// The store serves an older state than this machine has already seen.
    #[error(
        "rollback detected: the store serves {kind} {served}, but this machine has already seen {kind} {seen}; \
         the vault was restored from an older copy or its newest objects were removed"
    )]
    Rollback {
        /// What kind of object was rolled back.
        kind: ObjectKind,
        /// The newest sequence or generation this machine has seen.
        seen: u64,
        /// The newest the store serves.
        served: u64,
    },
    /// The store serves a history that diverges from the one this machine has seen.
    #[error(
        "fork detected: the store's {kind} {seq} differs from the one this machine has seen; \
         the history was rewritten"
    )]
    Fork {
        /// What kind of object diverged.
        kind: ObjectKind,
        /// The sequence number where it diverged.
        seq: u64,
    },
    /// The location holds another vault than the one this machine pinned there (a swapped
    /// directory or prefix), or than the fingerprint the caller expects. Nothing was read.
    #[error(
        "another vault is at {location}: this machine knows vault {pinned} there, the store serves vault {served}"
    )]
    VaultChanged {
        /// The location.
        location: String,
        /// The vault id pinned there (hex).
        pinned: String,
        /// The vault id served (hex).
        served: String,
    },
    /// Something that is not a tresor object sits where tresor needs one (a symbolic link, a
    /// FIFO, a device, a file where a directory belongs). Never followed, opened or deleted.
    #[error(
        "foreign entry in the vault directory: {name} is a {what}, not a regular file or directory; such entries \
         are never followed, opened or deleted"
    )]
    Foreign {
        /// Its name relative to the vault directory.
        name: String,
        /// What it is.
        what: String,
    },
    /// The vault was re-keyed (a new root) since this machine pinned it: its new fingerprint
    /// must be pinned before this machine trusts it. Nothing was read.
    #[error(
        "the vault at {location} was re-keyed since this machine last opened it (root era {served}, this \
         machine knows era {pinned}): its new fingerprint is not pinned here"
    )]
    Rekeyed {
        /// The location.
        location: String,
        /// The root era pinned here.
        pinned: u32,
        /// The root era served.
        served: u32,
    },
    /// This root era was fenced by a re-key: it takes no more writes.
    #[error(
        "the vault is being re-keyed (root era {next} was started): it takes no writes until the re-key finishes \
         or is aborted"
    )]
    Fenced {
        /// The era the re-key is making.
        next: u32,
    },
    /// Another re-key to root era `next` wrote within its lease: it may still be running.
    #[error("a re-key to root era {next} may still be running (its last write was {quiet_s}s ago)")]
    RekeyRunning {
        /// The era it is making.
        next: u32,
        /// Seconds since its last write.
        quiet_s: u64,
        /// Seconds until its lease runs out.
        wait_s: u64,
    },
    /// The vault was re-keyed while this handle was open: its root and keys are the old ones.
    #[error(
        "the vault was re-keyed meanwhile (root era {era} is current): this handle holds the replaced root"
    )]
    Superseded {
        /// The era now current.
        era: u32,
    },
    /// No secret at this path.
    #[error("no secret at {path}")]
    NotFound {
        /// The path asked for.
        path: String,
    },
    /// The secret's latest version was deleted.
    #[error("{path} was deleted (version {version})")]
    Deleted {
        /// The path.
        path: String,
        /// The deleted version.
        version: u64,
    },
    /// The version asked for was destroyed: its value is gone for good.
    #[error("version {version} of {path} was destroyed")]
    Destroyed {
        /// The path.
        path: String,
        /// The destroyed version.
        version: u64,
    },
    /// The version asked for does not exist.
    #[error("{path} has no version {version}")]
    NoSuchVersion {
        /// The path.
        path: String,
        /// The version asked for.
        version: u64,
    },
    /// A secret path that breaks the path rules.
    #[error("invalid secret path: {0}")]
    InvalidPath(Cow<'static, str>),
    /// A value over the configured limit.
    #[error("value too large: {size} bytes (the limit is {limit} bytes)")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A password that breaks the password rules.
    #[error("password rejected: {0}")]
    PasswordRule(Cow<'static, str>),
    /// Another writer got there first, and retrying did not help.
    #[error("write conflict: {0}")]
    Conflict(String),
    /// The store failed (I/O, network, permissions, full disk).
    #[error("store error: {0}")]
    Store(#[source] StoreError),
    /// The store failed after a commit was sent, and whether it landed could not be read back:
    /// the write may or may not be there. The only write error that does not mean "nothing was
    /// written"; reading the secret's history tells.
    #[error("the write's outcome is unknown (it may have been committed): {0}")]
    Indeterminate(Box<Error>),
    /// The store lacks a capability tresor needs.
    #[error("the store cannot be used: {0}")]
    Unsupported(String),
    /// The audit record could not be made durable, so the operation was refused; what failed.
    #[error("the operation was refused because its audit record could not be written: {0}")]
    Audit(Box<Error>),
    /// The machine-local trust state could not be read or written.
    #[error("local state at {path}: {detail}")]
    LocalState {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// Input that cannot be used (an archive, an import file, an option).
    #[error("{0}")]
    Invalid(String),
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// The vault was locked (its keys wiped) before or while this request ran: nothing of it
    /// was returned or half-written.
    #[error("the vault is locked")]
    Locked,
}

/// Coarse classes of [`Error`], stable across the agent protocol; the CLI maps them to exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Category {
    /// Wrong password or tampered key file.
    Auth,
    /// No such secret, version, or a deleted one.
    NotFound,
    /// Tampering, rollback or fork detected.
    Integrity,
    /// Another vault than the one pinned at the location.
    Identity,
    /// Lost a race with another writer.
    Conflict,
    /// Bad path, oversize value, password rule, unusable input.
    Invalid,
    /// No vault at the location, or one already there.
    Location,
    /// The audit record could not be written.
    Audit,
    /// The store lacks a needed capability.
    Unsupported,
    /// Store I/O, local state, randomness.
    Other,
    /// The vault was locked while the request was in flight.
    Locked,
    /// A write whose commit may or may not have landed.
    Indeterminate,
}

impl Error {
    /// Whether this failure, or the one it wraps (an audit record, a write of unknown outcome),
    /// came from a full filesystem under a local directory.
    pub fn full_disk(&self) -> bool {
        match self {
            Error::Store(store) => store.is_full_disk(),
            Error::Audit(inner) | Error::Indeterminate(inner) => inner.full_disk(),
            _ => false,
        }
    }

    /// The class of this error.
    pub fn category(&self) -> Category {
        match self {
            Error::AuthFailed | Error::WrongPhrase { .. } => Category::Auth,
            Error::NotFound { .. }
            | Error::Deleted { .. }
            | Error::Destroyed { .. }
            | Error::NoSuchVersion { .. } => Category::NotFound,
            Error::Integrity { .. } | Error::Rollback { .. } | Error::Fork { .. } | Error::Foreign { .. } => {
                Category::Integrity
            }
            Error::VaultChanged { .. } | Error::Rekeyed { .. } => Category::Identity,
            Error::Fenced { .. } | Error::Superseded { .. } | Error::RekeyRunning { .. } => {
                Category::Conflict
            }
            Error::Conflict(_) => Category::Conflict,
            Error::InvalidPath(_) | Error::TooLarge { .. } | Error::PasswordRule(_) | Error::Invalid(_) => {
                Category::Invalid
            }
            Error::NoVault { .. }
            | Error::VaultExists { .. }
            | Error::InterruptedInit { .. }
            | Error::NotAVault { .. } => Category::Location,
            Error::Audit(_) => Category::Audit,
            Error::Unsupported(_) => Category::Unsupported,
            Error::Store(_) | Error::LocalState { .. } | Error::Random => Category::Other,
            Error::Locked => Category::Locked,
            Error::Indeterminate(_) => Category::Indeterminate,
        }
    }

    /// A store failure described by `message` alone.
    pub fn store(message: impl Into<String>) -> Self {
        Error::Store(StoreError::new(message))
    }

    pub(crate) fn integrity(kind: ObjectKind, object: &str, detail: impl Into<String>) -> Self {
        Error::Integrity { kind, object: object.to_string(), detail: detail.into() }
    }
}

impl From<tresor_crypto::CryptoError> for Error {
    fn from(e: tresor_crypto::CryptoError) -> Self {
        match e {
            tresor_crypto::CryptoError::Random => Error::Random,
            tresor_crypto::CryptoError::TooLarge(size) => {
                Error::TooLarge { size, limit: tresor_crypto::payload::MAX_PLAINTEXT }
            }
            _ => Error::AuthFailed,
        }
    }
}

/// Result alias of the core library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
