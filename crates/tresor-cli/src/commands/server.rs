//! `tresor server`: Vault's HTTP API on this vault, or on a temporary one (`--dev`).

use crate::exit::CliError;
use crate::*;
use std::net::SocketAddr;
use std::path::PathBuf;
use tresor::{Options, Password, Vault};
use tresor_server::http::listen::TlsFiles;
use tresor_server::http::{Settings, launch, new_token};

use crate::cli::ServerFlags as Flags;

/// How old a server's view may be by default: another server's commits show within it.
const DEFAULT_STALENESS: &str = "100ms";

/// How the server starts: the flags, else the config file, else the defaults.
struct Start {
    listen: SocketAddr,
    /// A temporary vault, unsealed, with a root token printed.
    dev: bool,
    /// Unseal with the vault's password at start.
    unseal: bool,
    /// The password from the config file (`encryption_password[_file]`), if any.
    configured_password: Option<Password>,
    /// Print a new root token (with `unseal`).
    new_root_token: bool,
    /// Serve HTTPS with this certificate and key.
    tls: Option<TlsFiles>,
    /// How old the view a request is served from may be.
    read_staleness: std::time::Duration,
    /// How often the vault's sync groups are synced (`None`: never).
    sync_every: Option<std::time::Duration>,
}

/// Merges `flags` with `file`; every combination that cannot work is refused here, before
/// anything starts.
fn start(flags: Flags, file: &mut config::ServerConfig) -> Result<Start, CliError> {
    let listen = flags.listen.or_else(|| file.listen.clone()).unwrap_or_else(|| "127.0.0.1:8200".into());
    let listen: SocketAddr =
        listen.parse().map_err(|_| CliError::input(format!("listen {listen}: not an address and port")))?;
    let cert = flags.tls_cert.or_else(|| file.tls_cert.as_ref().map(PathBuf::from));
    let key = flags.tls_key.or_else(|| file.tls_key.as_ref().map(PathBuf::from));
    let tls = match (cert, key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        (None, None) => None,
        _ => {
            return Err(CliError::input(
                "TLS needs both a certificate and its key (tls_cert and tls_key)".into(),
            ));
        }
    };
    let tls_disable = flags.tls_disable || file.tls_disable == Some(true);
    if tls.is_some() && tls_disable {
        return Err(CliError::input("tls_disable and a TLS certificate contradict each other".into()));
    }
    if !listen.ip().is_loopback() && tls.is_none() && !tls_disable {
        return Err(CliError::input(format!(
            "listen {listen}: a non-loopback address needs TLS (--tls-cert and --tls-key), or --tls-disable \
             to send tokens and secrets in the clear"
        )));
    }
    let configured_password = match (file.encryption_password.take(), file.encryption_password_file.take()) {
        (Some(_), Some(_)) => {
            return Err(CliError::input(
                "the config sets both encryption_password and encryption_password_file: keep one".into(),
            ));
        }
        (Some(password), None) => {
            Some(Password::from(secrecy::ExposeSecret::expose_secret(&password.0).to_string()))
        }
        (None, Some(path)) => Some(password_file(&path)?),
        (None, None) => None,
    };
    let dev = flags.dev || file.dev == Some(true);
    let unseal = flags.unseal || file.unseal == Some(true) || configured_password.is_some();
    if dev && unseal {
        return Err(CliError::input(
            "--dev makes a temporary vault: it takes no password and no --unseal".into(),
        ));
    }
    if flags.new_root_token && !unseal {
        return Err(CliError::input("--new-root-token needs --unseal (or a configured password)".into()));
    }
    let staleness = flags.read_staleness.or_else(|| file.read_staleness.clone());
    let staleness = staleness.as_deref().unwrap_or(DEFAULT_STALENESS);
    let read_staleness = config::parse_duration_or_zero(staleness)
        .map_err(|e| CliError::input(format!("read_staleness: {e}")))?;
    let sync_interval = flags.sync_interval.or_else(|| file.sync_interval.clone());
    let sync_every = crate::commands::share::sync_every(sync_interval.as_deref())?;
    Ok(Start {
        listen,
        dev,
        unseal,
        configured_password,
        new_root_token: flags.new_root_token,
        tls,
        read_staleness,
        sync_every,
    })
}

/// The first line of a password file, trimmed (read as `TRESOR_PASSWORD_FILE` is).
fn password_file(path: &str) -> Result<Password, CliError> {
    let password = crate::password::from_file(path)
        .map_err(|e| CliError::input(format!("encryption_password_file: {e}")))?;
    Ok(Password::from(secrecy::ExposeSecret::expose_secret(&password).to_string()))
}

/// Runs the server until SIGINT or SIGTERM.
pub(crate) fn run(ctx: &mut Ctx, flags: Flags) -> Result<(), CliError> {
    let Start {
        listen: addr,
        dev,
        unseal,
        configured_password,
        new_root_token,
        tls,
        read_staleness,
        sync_every,
    } = start(flags, &mut ctx.server)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    if let Some(files) = &tls {
        tresor_server::http::listen::check(files).map_err(|e| CliError::input(format!("TLS: {e}")))?;
    }
    // What an operator must see (a detected rollback or fork, a failed audit of a denial) goes
    // to stderr; clients only hear "look at the server's log".
    crate::commands::log_to_stderr();
    for w in tresor_server::harden::report(&tresor_server::harden::apply()) {
        tracing::warn!("{w}");
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
            // A configured password on an empty location: sys/init gives the new vault it.
            None if configured_password.is_some() => {
                let store = open_store(&ctx.location, true).await?;
                if let (Err(tresor::Error::NoVault { .. }), Some(password)) =
                    (tresor::vault::describe_locked(&store).await, &configured_password)
                {
                    // The new vault will take it: refused now, not at sys/init.
                    tresor::keyfile::check_password_rules(password).map_err(|e| CliError::from_core(&e))?;
                }
                (store, config::state_dir().join("trust"), configured_password)
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
        errln!("tresor server: listening on {scheme}://{bound} (Vault API; KV v2 at secret/)");
        if let Some(dir) = &dev_dir {
            errln!(
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
            errln!("tresor server: sealed, or uninitialized on an empty location: sys/init and sys/unseal take it from here");
        }
        let ca_cert = crate::commands::share::relay_ca(None)?;
        let sync = sync_every.map(|every| tresor_server::sync::SyncConfig { every, backend: crate::backend_config(), ca_cert });
        let settings = Settings { store, trust_dir, password, root_token, tls, read_staleness, sync };
        launch(settings, listener, stop_signal("tresor server: stopping; every key is wiped")).await.map_err(|e| match e {
            tresor_server::http::ServerError::Vault(e) => CliError::from_core(&e),
            e => CliError::other(e.to_string()),
        })
    });
    if let Some(dir) = dev_dir
        && let Err(e) = std::fs::remove_dir_all(&dir)
    {
        errln!("tresor: warning: could not remove the dev vault at {}: {e}", dir.display());
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

/// Resolves on SIGINT or SIGTERM, after saying `farewell` on stderr.
pub(crate) async fn stop_signal(farewell: &'static str) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    errln!("{farewell}");
}
