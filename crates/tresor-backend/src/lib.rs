//! tresor's storage backends in one place: opens a vault location with the configuration the
//! binaries pass in.
//!
//! - [`open`]: a directory, a `file://` URL or `memory://` through the core's [`Store::open`];
//!   `s3://BUCKET[/PREFIX]` on S3 or a compatible store ([`s3`]);
//! - [`config`]: [`BackendConfig`], what the backends may know of the process — a snapshot of its
//!   environment taken by the binary, so that nothing below the binaries reads the environment;
//! - [`s3`]: S3 locations, and their credentials, region and endpoint resolved by aws-config;
//! - [`credentials`]: aws-config's credentials as object_store's credential provider, refreshed
//!   before they expire;
//! - [`versions`]: removing old object versions from a bucket that keeps them (the core's
//!   [`tresor::versions::OldVersions`]).
//!
//! The core (`tresor`) knows stores only as `object_store` backends: it reads no environment and
//! speaks no cloud protocol. The CLI and the agent open every location through [`open`].
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod config;
pub mod credentials;
pub mod s3;
pub mod versions;

pub use config::BackendConfig;
use tresor::{Result, Store};

/// Opens a vault location: a directory path, a `file://` URL or `memory://` as
/// [`Store::open`] does (with `create`, a missing directory is made), or `s3://BUCKET[/PREFIX]`
/// with the settings `config` leads to ([`s3::open`]; `create` does not create buckets).
pub async fn open(location: &str, create: bool, config: &BackendConfig) -> Result<Store> {
    if location.starts_with("s3://") {
        return s3::open(location, config).await;
    }
    Store::open(location, create)
}

/// Makes ring the process's rustls crypto provider if none is installed yet. object_store's
/// HTTP client (reqwest) is built without a provider of its own, so that aws-lc (a C build) stays
/// out of tresor; it takes the process default, and cannot make a client without one. Called
/// before every S3 client is made; a provider installed by someone else stays.
pub fn install_tls_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may install one between the check and here: that one stays, as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
