//! The HTTP server: the part of HashiCorp Vault's API that real clients use, over the shared
//! vault (ARCHITECTURE.md, "The server"). [`launch`] serves a bound listener until shutdown.

mod approle;
mod auth;
mod cache;
mod fields;
mod kv;
pub mod kvdata;
pub mod limit;
pub mod listen;
mod metrics;
mod mounts;
mod native;
mod openapi;
mod policy;
mod reply;
mod route;
mod seal;
mod stall;
mod sys;
mod tokens;
mod transit;

use std::path::PathBuf;
use std::sync::Arc;
use tokens::TokenKey;
use tresor::{Options, Password, Store, Vault};

pub use tokens::new_token;

/// The most items one transit batch request takes (Vault bounds a batch by its request size
/// only; a 4 MiB body takes about 200,000 empty ones).
pub const MAX_BATCH: usize = 16_384;

/// Largest request body accepted (a KV v2 write of the largest value, as JSON, fits).
pub const MAX_BODY: usize = 4 << 20;

/// How a server runs.
pub struct Settings {
    /// The vault's store.
    pub store: Store,
    /// Machine-local trust state (the directory `Options` takes).
    pub trust_dir: PathBuf,
    /// Unseals the vault at start (the unattended start of a service, and dev mode). On an empty
    /// location, `sys/init` gives the new vault this password beside the unseal key, and the
    /// server stays unsealed after it, as Vault does with auto-unseal.
    pub password: Option<Password>,
    /// A root token to create at the first unseal (dev mode prints it).
    pub root_token: Option<String>,
    /// Serve HTTPS with this certificate and key (else plain HTTP: loopback only, unless the
    /// caller decided otherwise).
    pub tls: Option<listen::TlsFiles>,
    /// How old the view a request is served from may be ([`tresor::Options::read_staleness`]):
    /// another server's commits show within it, or at once to a request that sends the
    /// `X-Vault-Index` an earlier answer carried. This server's own commits show at once.
    pub read_staleness: std::time::Duration,
    /// How the vault's sync groups are synced while unsealed (`None`: never).
    pub sync: Option<crate::sync::SyncConfig>,
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The vault could not be opened or prepared.
    #[error("{0}")]
    Vault(#[from] tresor::Error),
    /// The TLS certificate or key could not be used.
    #[error("TLS: {0}")]
    Tls(String),
}

/// The last path segments of the live system entries under `prefix` (a folder of the system
/// namespace, ending in `/`): the names of roles, keys, policies kept there.
pub(crate) async fn system_names(vault: &Vault, prefix: &str) -> Result<Vec<String>, tresor::Error> {
    Ok(vault
        .list_system(prefix)
        .await?
        .into_iter()
        .filter_map(|e| e.path.rsplit('/').next().map(str::to_string))
        .collect())
}

/// Where the server is in its life: no vault yet, a vault with every key wiped, or an open vault.
pub(crate) enum Seal {
    /// No vault at the location: `sys/init` makes one.
    Uninitialized,
    /// A vault, no key: `sys/unseal` opens it.
    Sealed,
    /// Serving.
    Unsealed(Unsealed),
}

/// Syncs the vault's sync groups as `config` says while unsealed, until aborted.
async fn sync_rounds(server: Arc<Server>, config: crate::sync::SyncConfig) {
    let mut memo = tresor_sync::share::Memo::default();
    let every = config.every;
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticks.tick().await;
        let vault = match &*server.state.read().await {
            Seal::Unsealed(unsealed) => Some(unsealed.vault.with_actor("server sync")),
            _ => None,
        };
        if let Some(vault) = vault {
            crate::sync::groups(&vault, &config, &mut memo).await;
        }
    }
}

/// How often an unsealed server tidies expired tokens and secret IDs ([`tidy_rounds`]).
const TIDY_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes expired token records and secret IDs every [`TIDY_EVERY`] while unsealed (the first
/// round one period after the start), until aborted. Several servers on one bucket each run it:
/// a record another server removed first is simply gone.
async fn tidy_rounds(server: Arc<Server>) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + TIDY_EVERY, TIDY_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticks.tick().await;
        let Some(unsealed) = server.unsealed().await else { continue };
        let vault = unsealed.vault.with_actor("server tidy");
        for kind in [Tidy::Tokens, Tidy::SecretIds] {
            // One a client started runs already: this round leaves that kind to it.
            if let Some(_claim) = unsealed.tidying.claim(kind) {
                run_tidy(&vault, kind).await;
            }
        }
    }
}

/// The server's shared state: the store, the seal state, and the unseal shares given so far.
pub(crate) struct Server {
    store: Store,
    trust_dir: PathBuf,
    state: tokio::sync::RwLock<Seal>,
    pub(crate) progress: tokio::sync::Mutex<seal::Progress>,
    /// The split `sys/init` made in this process (t, n), shown before any share is given.
    pub(crate) split: std::sync::Mutex<Option<(usize, usize)>>,
    /// Failed authentications per client address.
    pub(crate) failures: limit::Failures,
    /// What `sys/metrics` shows.
    pub(crate) metrics: metrics::Metrics,
    /// The password `sys/init` gives a new vault (an unattended start on an empty location).
    init_password: std::sync::Mutex<Option<Password>>,
    /// [`Settings::read_staleness`].
    read_staleness: std::time::Duration,
    /// One password unseal at a time: each is an Argon2id run, which a client must not be able to
    /// multiply across the server's workers.
    password_unseals: tokio::sync::Semaphore,
}

/// What an unsealed server holds.
#[derive(Clone)]
pub(crate) struct Unsealed {
    /// The vault, acting for the server until a request names its token.
    pub(crate) vault: Vault,
    /// The key naming token records.
    pub(crate) tokens: Arc<TokenKey>,
    /// Token records and policies, parsed, while their version stays current.
    pub(crate) cache: Arc<cache::Caches>,
    /// The tidies running now.
    pub(crate) tidying: Arc<Tidying>,
}

/// Which tidies run now: one of each kind at a time, whoever starts it (Vault's rule; found by
/// review: 300 tidies started at once held 1.8 GB and slowed every request a thousandfold).
#[derive(Default)]
pub(crate) struct Tidying {
    tokens: std::sync::atomic::AtomicBool,
    secret_ids: std::sync::atomic::AtomicBool,
}

/// The kinds of tidy.
#[derive(Clone, Copy)]
pub(crate) enum Tidy {
    /// Token records and accessor entries (`tokens::tidy`).
    Tokens,
    /// AppRole secret IDs (`approle::tidy`).
    SecretIds,
}

/// A tidy of one kind claimed: released when dropped.
pub(crate) struct TidyClaim(Arc<Tidying>, Tidy);

impl Tidying {
    fn flag(&self, kind: Tidy) -> &std::sync::atomic::AtomicBool {
        match kind {
            Tidy::Tokens => &self.tokens,
            Tidy::SecretIds => &self.secret_ids,
        }
    }

    /// Claims the tidy of `kind`, unless one runs already.
    pub(crate) fn claim(self: &Arc<Self>, kind: Tidy) -> Option<TidyClaim> {
        use std::sync::atomic::Ordering;
        self.flag(kind)
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| TidyClaim(self.clone(), kind))
    }
}

impl Drop for TidyClaim {
    fn drop(&mut self) {
        self.0.flag(self.1).store(false, std::sync::atomic::Ordering::Release);
    }
}

/// Starts the tidy of `kind` in a task of its own, on a handle of its own acting for `actor`
/// (fresh reads: never a request's handle); what to answer: 202, or 200 with Vault's warning
/// when one of that kind runs already.
pub(crate) fn start_tidy(unsealed: &Unsealed, kind: Tidy, actor: String) -> axum::response::Response {
    use axum::http::StatusCode;
    let Some(claim) = unsealed.tidying.claim(kind) else {
        return reply::warning(StatusCode::OK, "Tidy operation already in progress.");
    };
    let vault = unsealed.vault.with_actor(actor);
    tokio::spawn(async move {
        let _claim = claim;
        run_tidy(&vault, kind).await;
    });
    reply::warning(
        StatusCode::ACCEPTED,
        "Tidy operation successfully started. What it removed is logged at info level (TRESOR_LOG=info), what stopped it as a warning.",
    )
}

/// Runs the tidy of `kind`, and logs what it did.
async fn run_tidy(vault: &Vault, kind: Tidy) {
    match kind {
        Tidy::Tokens => match tokens::tidy(vault).await {
            Ok(removed) => tracing::info!("tidy: removed {removed} expired or orphaned token records"),
            Err(e) => tracing::warn!("tidy: token records not tidied: {e}"),
        },
        Tidy::SecretIds => match approle::tidy(vault).await {
            Ok(removed) => tracing::info!("tidy: removed {removed} expired or used-up secret IDs"),
            Err(e) => tracing::warn!("tidy: secret IDs not tidied: {}", e.messages.join("; ")),
        },
    }
}

impl Server {
    /// A failed authentication from `address`: counted for its rate limit and in the metrics.
    pub(crate) fn failed_authentication(&self, address: std::net::IpAddr) {
        self.failures.record(address);
        self.metrics.failed_authentication();
    }

    /// The unsealed vault and token key, if the server is unsealed.
    pub(crate) async fn unsealed(&self) -> Option<Unsealed> {
        match &*self.state.read().await {
            Seal::Unsealed(u) => Some(u.clone()),
            _ => None,
        }
    }

    /// Whether there is a vault, and whether it is sealed.
    pub(crate) async fn status(&self) -> (bool, bool) {
        match &*self.state.read().await {
            Seal::Uninitialized => (false, true),
            Seal::Sealed => (true, true),
            Seal::Unsealed(_) => (true, false),
        }
    }

    fn options(&self) -> Options {
        let mut options = Options::new(&self.trust_dir, "server");
        options.read_staleness = self.read_staleness;
        options
    }

    /// Opens the vault (`open` is `Vault::unlock` or `Vault::unseal`), loads (or makes) the token
    /// key, and serves. Already unsealed: nothing to do.
    async fn open(&self, vault: Result<Vault, tresor::Error>) -> Result<Unsealed, tresor::Error> {
        let vault = vault?;
        let tokens = Arc::new(TokenKey::load(&vault).await?);
        let unsealed = Unsealed { vault, tokens, cache: Arc::default(), tidying: Arc::default() };
        let mut state = self.state.write().await;
        if let Seal::Unsealed(already) = &*state {
            // Another request unsealed it meanwhile: keep that one, wipe this one.
            let _ = unsealed.vault.lock("unsealed twice").await;
            return Ok(already.clone());
        }
        *state = Seal::Unsealed(unsealed.clone());
        Ok(unsealed)
    }

    /// Unseals with a password (a person, or a service's unattended start).
    pub(crate) async fn unseal_password(&self, password: &Password) -> Result<Unsealed, tresor::Error> {
        let _one = self.password_unseals.acquire().await.map_err(|_| tresor::Error::Locked)?;
        if let Some(already) = self.unsealed().await {
            return Ok(already);
        }
        self.open(Vault::unlock(self.store.clone(), password, self.options()).await).await
    }

    /// Unseals with the unseal key the shares combined into.
    pub(crate) async fn unseal_key(&self, key: &tresor_crypto::Key) -> Result<Unsealed, tresor::Error> {
        self.open(Vault::unseal(self.store.clone(), key, self.options()).await).await
    }

    /// `sys/init`: makes the vault with a fresh unseal key split t-of-n, and a root token; the
    /// vault is then sealed, as Vault leaves it. The shares and the token are returned.
    pub(crate) async fn init(
        &self,
        t: usize,
        n: usize,
    ) -> Result<(Vec<zeroize::Zeroizing<Vec<u8>>>, String), reply::ApiError> {
        let mut state = self.state.write().await;
        if !matches!(*state, Seal::Uninitialized) {
            return Err(reply::ApiError::invalid("Vault is already initialized"));
        }
        let key = tresor_crypto::Key::generate().map_err(|e| reply::ApiError::internal(e.to_string()))?;
        // The split and the password are checked before anything is written.
        let shares = seal::split(&key, t, n).map_err(|e| reply::ApiError::invalid(e.to_string()))?;
        let password = self.init_password.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(password) = &password {
            tresor::keyfile::check_password_rules(password)
                .map_err(|e| reply::ApiError::invalid(format!("the configured encryption_password: {e}")))?;
        }
        let vault = match Vault::init_unseal_key(self.store.clone(), &key, self.options()).await {
            Ok(vault) => vault,
            Err(e) => {
                // Nothing was made: a later sys/init still has the password.
                *self.init_password.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = password;
                return Err(e.into());
            }
        };
        // From here on the vault exists: whatever fails, the shares are handed out (they open it).
        let mut password_slot = password.is_some();
        if let Some(password) = &password
            && let Err(e) = vault.keyslot_add(password, self.options().kdf).await
        {
            tracing::error!(
                "the configured password could not be added to the new vault (the shares open it): {e}"
            );
            password_slot = false;
        }
        let tokens = TokenKey::load(&vault).await?;
        let root = tokens::create_root(&vault, &tokens, None, "root").await?;
        *self.split.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((t, n));
        if password_slot {
            // Configured to unseal itself: it stays open, as after an unattended start.
            *state = Seal::Unsealed(Unsealed {
                vault,
                tokens: Arc::new(tokens),
                cache: Arc::default(),
                tidying: Arc::default(),
            });
            return Ok((shares, root));
        }
        if let Err(e) = vault.lock("initialized; sealed until unsealed").await {
            tracing::warn!("could not record the seal in the audit trail: {e}");
        }
        *state = Seal::Sealed;
        Ok((shares, root))
    }

    /// Seals: every key is wiped; requests in flight fail as sealed.
    pub(crate) async fn seal(&self, reason: &str) {
        let mut state = self.state.write().await;
        if let Seal::Unsealed(u) = std::mem::replace(&mut *state, Seal::Sealed) {
            drop(state);
            if let Err(e) = u.vault.lock(reason).await {
                tracing::warn!("could not record the seal in the audit trail: {e}");
            }
        }
    }
}

/// Serves `listener` until `shutdown` resolves; then lets requests in flight finish and seals
/// (every key wiped). On an empty location the server starts uninitialized (`sys/init`); on a
/// vault, sealed — or unsealed, with a password in `settings`.
pub async fn launch(
    settings: Settings,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let (tls, reloader) = listen::start_tls(settings.tls.as_ref()).map_err(ServerError::Tls)?;
    let state = match tresor::vault::describe_locked(&settings.store).await {
        Ok(_) => Seal::Sealed,
        Err(tresor::Error::NoVault { .. }) => Seal::Uninitialized,
        Err(e) => return Err(e.into()),
    };
    let initialized = !matches!(state, Seal::Uninitialized);
    let server = Arc::new(Server {
        store: settings.store,
        trust_dir: settings.trust_dir,
        state: tokio::sync::RwLock::new(state),
        progress: tokio::sync::Mutex::default(),
        split: std::sync::Mutex::new(None),
        failures: limit::Failures::default(),
        metrics: metrics::Metrics::default(),
        init_password: std::sync::Mutex::new(None),
        read_staleness: settings.read_staleness,
        password_unseals: tokio::sync::Semaphore::new(1),
    });
    match (settings.password, initialized) {
        (Some(password), true) => {
            let unsealed = server.unseal_password(&password).await?;
            if let Some(token) = settings.root_token {
                tokens::create_root(&unsealed.vault, &unsealed.tokens, Some(token), "root").await?;
            }
        }
        (password, _) => {
            // A password the new vault would refuse stops the start, not the later sys/init.
            if let Some(password) = &password {
                tresor::keyfile::check_password_rules(password)?;
            }
            *server.init_password.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = password;
        }
    }
    let app = axum::Router::new().fallback(route::handle).with_state(server.clone());
    let syncing = settings.sync.map(|sync| tokio::spawn(sync_rounds(server.clone(), sync)));
    let tidying = tokio::spawn(tidy_rounds(server.clone()));
    listen::serve(listener, tls, app, shutdown).await;
    tidying.abort();
    if let Some(syncing) = syncing {
        syncing.abort();
    }
    if let Some(reloader) = reloader {
        reloader.abort();
    }
    server.seal("server stopped").await;
    Ok(())
}
