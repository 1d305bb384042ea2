//! The HTTP server: the part of HashiCorp Vault's API that real clients use, over the shared
//! vault (ARCHITECTURE.md, "The server"). [`launch`] serves a bound listener until shutdown.

mod kv;
mod reply;
mod route;
mod sys;
mod tokens;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokens::TokenKey;
use tresor::{Options, Password, Store, Vault};

pub use tokens::new_token;

/// Largest request body accepted (a KV v2 write of the largest value, as JSON, fits).
pub const MAX_BODY: usize = 4 << 20;

/// How a server runs.
pub struct Settings {
    /// The vault's store.
    pub store: Store,
    /// Machine-local trust state (the directory `Options` takes).
    pub trust_dir: PathBuf,
    /// Unseals the vault at start (the unattended start of a service, and dev mode).
    pub password: Option<Password>,
    /// A root token to create at the first unseal (dev mode prints it).
    pub root_token: Option<String>,
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The vault could not be opened or prepared.
    #[error("{0}")]
    Vault(#[from] tresor::Error),
    /// Serving failed.
    #[error("the server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The server's shared state: the store, and the unsealed vault when there is one.
pub(crate) struct Server {
    store: Store,
    trust_dir: PathBuf,
    unsealed: tokio::sync::RwLock<Option<Unsealed>>,
}

/// What an unsealed server holds.
#[derive(Clone)]
pub(crate) struct Unsealed {
    /// The vault, acting for the server until a request names its token.
    pub(crate) vault: Vault,
    /// The key naming token records.
    pub(crate) tokens: Arc<TokenKey>,
}

impl Server {
    /// The unsealed vault and token key, if the server is unsealed.
    pub(crate) async fn unsealed(&self) -> Option<Unsealed> {
        self.unsealed.read().await.clone()
    }

    /// Unseals with a password: opens the vault and loads (or makes) the token key.
    async fn unseal(&self, password: &Password) -> Result<Unsealed, tresor::Error> {
        let opts = Options::new(&self.trust_dir, "server");
        let vault = Vault::unlock(self.store.clone(), password, opts).await?;
        let tokens = Arc::new(TokenKey::load(&vault).await?);
        let unsealed = Unsealed { vault, tokens };
        *self.unsealed.write().await = Some(unsealed.clone());
        Ok(unsealed)
    }

    /// Seals: every key is wiped; requests in flight fail as sealed.
    pub(crate) async fn seal(&self, reason: &str) {
        let taken = self.unsealed.write().await.take();
        if let Some(u) = taken
            && let Err(e) = u.vault.lock(reason).await
        {
            tracing::warn!("could not record the seal in the audit trail: {e}");
        }
    }
}

/// Serves `listener` until `shutdown` resolves; then lets requests in flight finish and seals
/// (every key wiped). With a password in `settings`, the vault is unsealed first.
pub async fn launch(
    settings: Settings,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let server = Arc::new(Server {
        store: settings.store,
        trust_dir: settings.trust_dir,
        unsealed: tokio::sync::RwLock::new(None),
    });
    if let Some(password) = &settings.password {
        let unsealed = server.unseal(password).await?;
        if let Some(token) = settings.root_token {
            tokens::create_root(&unsealed.vault, &unsealed.tokens, Some(token), "root").await?;
        }
    }
    let app = axum::Router::new()
        .fallback(route::handle)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(server.clone());
    let served = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await;
    server.seal("server stopped").await;
    Ok(served?)
}
