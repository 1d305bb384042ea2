//! `tresor relay`: the store-and-forward relay of sync groups, on this machine's loopback by
//! default (tresor_server::relay).

use crate::cli::RelayFlags;
use crate::config;
use crate::exit::CliError;
use std::net::SocketAddr;
use tresor_server::http::listen::TlsFiles;
use tresor_server::relay::store::Quota;
use tresor_server::relay::{RelaySettings, launch};

/// Runs the relay until SIGINT or SIGTERM.
pub(crate) fn run(flags: RelayFlags) -> Result<(), CliError> {
    let listen: SocketAddr = flags
        .listen
        .parse()
        .map_err(|_| CliError::input(format!("listen {}: not an address and port", flags.listen)))?;
    let tls = match (flags.tls_cert, flags.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        _ => None,
    };
    if !listen.ip().is_loopback() && tls.is_none() && !flags.tls_disable {
        return Err(CliError::input(format!(
            "listen {listen}: a non-loopback address needs TLS (--tls-cert and --tls-key), or --tls-disable \
             to let the network see which mailboxes each address uses"
        )));
    }
    if let Some(files) = &tls {
        tresor_server::http::listen::check(files).map_err(|e| CliError::input(format!("TLS: {e}")))?;
    }
    crate::commands::log_to_stderr();
    let data = flags.data.unwrap_or_else(|| config::state_dir().join("relay"));
    let scheme = if tls.is_some() { "https" } else { "http" };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::other(e.to_string()))?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| CliError::other(format!("cannot listen on {listen}: {e}")))?;
        let bound = listener.local_addr().map_err(|e| CliError::other(e.to_string()))?;
        errln!("tresor relay: listening on {scheme}://{bound}, cells kept in {}", data.display());
        let quota = Quota { max_bytes: flags.max_size, max_mailboxes: flags.max_mailboxes };
        let settings = RelaySettings { data, tls, quota };
        launch(settings, listener, super::server::stop_signal("tresor relay: stopping"))
            .await
            .map_err(|e| CliError::input(e.to_string()))
    })
}
