//! Accepting connections: plain TCP or TLS (rustls on ring), each connection served by hyper's
//! HTTP/1 with a header timeout (no slowloris) and a limit on how long a write may wait for the
//! client to read ([`super::stall`]), at most [`MAX_CONNECTIONS`] at once, and a
//! graceful stop (requests in flight finish, within [`DRAIN`]). The certificate is read again on
//! SIGHUP.

use super::stall::StallLimit;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Most connections served at once; more wait in the listen queue.
pub const MAX_CONNECTIONS: usize = 1024;
/// How long a client has to send a request's headers (and to finish a TLS handshake).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long requests in flight may run on after the server is told to stop.
pub const DRAIN: Duration = Duration::from_secs(30);

/// A certificate chain and its private key, PEM files.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The certificate chain (leaf first).
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Checks that `files` make a TLS configuration (what [`super::launch`] would refuse), so that a
/// caller can say so before it announces anything.
pub fn check(files: &TlsFiles) -> Result<(), String> {
    load(files).map(drop)
}

/// The largest certificate chain or key file read (a chain of a few certificates is a few KiB).
pub const MAX_PEM_FILE: u64 = 1 << 20;

/// The certificate chain and key in `files`, parsed and checked to belong together; the error
/// says which file is wrong (never what it holds).
fn load(files: &TlsFiles) -> Result<Arc<CertifiedKey>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = read_pem(&files.cert)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&chain)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: no certificate read: {e}", files.cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: holds no certificate", files.cert.display()));
    }
    let key = PrivateKeyDer::from_pem_slice(&read_pem(&files.key)?)
        .map_err(|e| format!("{}: no private key read: {e}", files.key.display()))?;
    CertifiedKey::from_der(certs, key, &rustls::crypto::ring::default_provider())
        .map(Arc::new)
        .map_err(|e| format!("the certificate and key do not make a TLS configuration: {e}"))
}

/// The bytes of the PEM file at `path` (wiped when dropped: it may be the key): a regular file
/// (or a link to one) of at most [`MAX_PEM_FILE`] bytes; a FIFO or a device would block the
/// reload, or never end.
fn read_pem(path: &std::path::Path) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
    use std::io::ErrorKind;
    tresor::named_file::read_regular(path, MAX_PEM_FILE).map_err(|e| match e.kind() {
        ErrorKind::InvalidInput => format!("{}: is not a regular file", path.display()),
        ErrorKind::FileTooLarge => {
            format!("{}: is larger than {MAX_PEM_FILE} bytes, the limit for a PEM file", path.display())
        }
        _ => format!("{}: cannot be read: {e}", path.display()),
    })
}

/// The certificate the server presents, replaced in place by [`Certificate::reload`]: handshakes
/// under way keep the one they started with.
pub(crate) struct Certificate {
    files: TlsFiles,
    current: std::sync::RwLock<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate").field("files", &self.files).finish_non_exhaustive()
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone())
    }
}

impl Certificate {
    /// Reads the files again; if they no longer make a configuration, the one in use stays and
    /// the error says why.
    pub(crate) fn reload(&self) -> Result<(), String> {
        let fresh = load(&self.files)?;
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        Ok(())
    }
}

/// A TLS acceptor for `files`, speaking HTTP/1.1 only, and its certificate (to reload).
pub(crate) fn acceptor(files: &TlsFiles) -> Result<(TlsAcceptor, Arc<Certificate>), String> {
    let certificate =
        Arc::new(Certificate { files: files.clone(), current: std::sync::RwLock::new(load(files)?) });
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(certificate.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(config)), certificate))
}

/// Reloads `certificate` on every SIGHUP until the server stops (a certificate renewed on disk is
/// served without a restart, as Vault does). The handler is in place when this returns; the
/// future it returns does the reloading.
pub(crate) fn reload_on_hangup(
    certificate: Arc<Certificate>,
) -> Result<impl std::future::Future<Output = ()> + Send, String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups =
        signal(SignalKind::hangup()).map_err(|e| format!("SIGHUP cannot reload the certificate: {e}"))?;
    Ok(async move {
        while hangups.recv().await.is_some() {
            // Reading files blocks: off the async workers.
            let reloading = certificate.clone();
            let reloaded = tokio::task::spawn_blocking(move || reloading.reload())
                .await
                .unwrap_or_else(|e| Err(format!("the reload failed: {e}")));
            match reloaded {
                Ok(()) => {
                    tracing::info!("SIGHUP: certificate reloaded from {}", certificate.files.cert.display())
                }
                Err(e) => tracing::error!("SIGHUP: certificate not reloaded, the previous one stays: {e}"),
            }
        }
    })
}

/// The TLS acceptor for `files` (none without), and the task that reloads its certificate on
/// SIGHUP (abort it when the server stops).
pub(crate) fn start_tls(
    files: Option<&TlsFiles>,
) -> Result<(Option<TlsAcceptor>, Option<tokio::task::JoinHandle<()>>), String> {
    match files.map(acceptor).transpose()? {
        Some((acceptor, certificate)) => {
            let reload = reload_on_hangup(certificate)?;
            Ok((Some(acceptor), Some(tokio::spawn(reload))))
        }
        None => Ok((None, None)),
    }
}

/// Serves `app` on `listener` (through `tls` when given) until `shutdown` resolves, then lets
/// the connections finish their requests for at most [`DRAIN`].
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (app, tls, mut stopping) = (app.clone(), tls.clone(), stopping.clone());
        connections.spawn(async move {
            let _permit = permit;
            let service = TowerToHyperService::new(app.layer(axum::Extension(ConnectInfo(peer))));
            match tls {
                Some(acceptor) => match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        one(TokioIo::new(StallLimit::new(stream)), service, &mut stopping).await
                    }
                    _ => tracing::debug!("TLS handshake with {peer} failed or timed out"),
                },
                None => one(TokioIo::new(StallLimit::new(tcp)), service, &mut stopping).await,
            }
        });
        while connections.try_join_next().is_some() {}
    }
    let _ = stop.send(true);
    let drained =
        tokio::time::timeout(DRAIN, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!("requests still running after {}s were cut off", DRAIN.as_secs());
        connections.abort_all();
    }
}

/// Serves one connection until it closes, or until `stopping` (then it finishes the request under
/// way and closes).
async fn one<I>(
    io: I,
    service: TowerToHyperService<Router>,
    stopping: &mut tokio::sync::watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(io, service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        () = stopped(stopping) => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// Resolves once the server is told to stop (never, if the sender is gone without telling).
async fn stopped(stopping: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        if *stopping.borrow_and_update() {
            return;
        }
        if stopping.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &std::path::Path) -> TlsFiles {
        TlsFiles { cert: dir.join("cert.pem"), key: dir.join("key.pem") }
    }

    #[test]
    fn a_generated_certificate_and_its_key_load() {
        let dir = tempfile::tempdir().unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        std::fs::write(dir.path().join("cert.pem"), made.cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), made.signing_key.serialize_pem()).unwrap();
        check(&files(dir.path())).unwrap();
    }

    #[test]
    fn regression_a_fifo_given_as_the_certificate_blocked_the_reload_for_ever() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(dir.path());
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &f.cert,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        // Nothing ever writes to the FIFO: reading it would not return.
        let e = check(&f).unwrap_err();
        assert!(e.contains("cert.pem: is not a regular file"), "{e}");
    }

    #[test]
    fn a_pem_file_past_the_limit_is_refused_unread_and_a_missing_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(dir.path());
        let big = std::fs::File::create(&f.cert).unwrap();
        big.set_len(MAX_PEM_FILE + 1).unwrap();
        let e = check(&f).unwrap_err();
        assert!(e.contains("cert.pem: is larger than 1048576 bytes"), "{e}");
        std::fs::remove_file(&f.cert).unwrap();
        let e = check(&f).unwrap_err();
        assert!(e.contains("cert.pem: cannot be read"), "{e}");
    }
}
