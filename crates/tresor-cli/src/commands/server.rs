//! `tresor server`: Vault's HTTP API on this vault, or on a temporary one (`--dev`).

use crate::exit::CliError;
use crate::*;
use std::net::SocketAddr;
use tresor::{Options, Password, Vault};
use tresor_server::http::{Settings, launch, new_token};

/// How the server starts.
pub(crate) struct Start {
    /// A temporary vault, unsealed, with a root token printed.
    pub(crate) dev: bool,
    /// Unseal with the vault's password at start.
    pub(crate) unseal: bool,
    /// Print a new root token (with `unseal`).
    pub(crate) new_root_token: bool,
    /// Serve HTTPS with this certificate and key.
    pub(crate) tls: Option<tresor_server::http::listen::TlsFiles>,
    /// Plain HTTP on a non-loopback address, on purpose.
    pub(crate) tls_disable: bool,
}

/// Runs the server until SIGINT or SIGTERM.
pub(crate) fn run(ctx: &mut Ctx, listen: &str, start: Start) -> Result<(), CliError> {
    let Start { dev, unseal, new_root_token, tls, tls_disable } = start;
    let addr: SocketAddr =
        listen.parse().map_err(|_| CliError::input(format!("--listen {listen}: not an address and port")))?;
    if !addr.ip().is_loopback() && tls.is_none() && !tls_disable {
        return Err(CliError::input(format!(
            "--listen {listen}: a non-loopback address needs TLS (--tls-cert and --tls-key), or --tls-disable \
             to send tokens and secrets in the clear"
        )));
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    if let Some(files) = &tls {
        tresor_server::http::listen::check(files).map_err(|e| CliError::input(format!("TLS: {e}")))?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::other(e.to_string()))?;
    let dev_dir = dev.then(dev_directory).transpose()?;
    let served = rt.block_on(async {
        let (store, trust_dir, password) = match &dev_dir {
            Some(dir) => {
                let password =
                    Password::from(hex::encode(tresor_crypto::random_array::<32>().map_err(other)?));
                let store = open_store(&dir.join("vault").display().to_string(), true).await?;
                let opts = Options::new(dir.join("trust"), actor("server"));
                drop(Vault::init(store.clone(), &password, opts).await.map_err(|e| CliError::from_core(&e))?);
                (store, dir.join("trust"), Some(password))
            }
            None if unseal => {
                let store = open_store(&ctx.location, false).await?;
                tresor::vault::describe_locked(&store).await.map_err(|e| CliError::from_core(&e))?;
                let password =
                    Password::from(secrecy::ExposeSecret::expose_secret(&ctx.password()?).to_string());
                (store, config::state_dir().join("trust"), Some(password))
            }
            // Sealed on a vault, uninitialized on an empty location: the API does the rest.
            None => (open_store(&ctx.location, true).await?, config::state_dir().join("trust"), None),
        };
        let root_token =
            (dev || new_root_token).then(new_token).transpose().map_err(|e| CliError::from_core(&e))?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| CliError::other(format!("cannot listen on {addr}: {e}")))?;
        let bound = listener.local_addr().map_err(|e| CliError::other(e.to_string()))?;
        eprintln!("tresor server: listening on {scheme}://{bound} (Vault API; KV v2 at secret/)");
        if let Some(dir) = &dev_dir {
            eprintln!(
                "tresor server: dev mode: a temporary vault in {}, removed when the server stops",
                dir.display()
            );
        }
        if let Some(token) = &root_token {
            // The token is shown once, as `vault server -dev` and `vault operator init` do.
            outln!("export VAULT_ADDR='{scheme}://{bound}'");
            outln!("export VAULT_TOKEN='{token}'");
        }
        if password.is_none() {
            eprintln!("tresor server: sealed, or uninitialized on an empty location: sys/init and sys/unseal take it from here");
        }
        let settings = Settings { store, trust_dir, password, root_token, tls };
        launch(settings, listener, stop_signal()).await.map_err(|e| CliError::other(e.to_string()))
    });
    if let Some(dir) = dev_dir
        && let Err(e) = std::fs::remove_dir_all(&dir)
    {
        eprintln!("tresor: warning: could not remove the dev vault at {}: {e}", dir.display());
    }
    served
}

fn other(e: impl std::fmt::Display) -> CliError {
    CliError::other(e.to_string())
}

/// A new private directory for a dev vault.
fn dev_directory() -> Result<std::path::PathBuf, CliError> {
    use std::os::unix::fs::DirBuilderExt;
    let name = format!("tresor-dev-{}", hex::encode(tresor_crypto::random_array::<8>().map_err(other)?));
    let dir = std::env::temp_dir().join(name);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| CliError::other(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir)
}

/// Resolves on SIGINT or SIGTERM.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    eprintln!("tresor server: stopping; every key is wiped");
}
