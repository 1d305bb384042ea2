//! The agent's serving loop.

use crate::serve::Serve;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Mutex, mpsc};
use tokio::time::{Instant, timeout};
use tresor::{Password, Vault};
use tresor_wire::{
    BULK_DEADLINE, Failure, FrameError, MAX_FRAME, Pong, Reply, Request, SecretBuf, Unlock, Unlocked, decode,
    encode,
};
use zeroize::Zeroizing;

/// How long one client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one request may work on the store (bulk work: [`BULK_DEADLINE`]).
const CONNECTION_DEADLINE: Duration = Duration::from_secs(300);

/// What the agent serves.
pub struct AgentConfig {
    /// The vault location it unlocks.
    pub location: String,
    /// What the store at `location` is opened with (the binary's environment: AWS settings).
    pub backend: tresor_backend::BackendConfig,
    /// Options for opening it (trust state, actor, limits).
    pub options: Box<dyn Fn() -> tresor::Options + Send + Sync>,
    /// Lock and exit after this long without a request.
    pub idle: Duration,
    /// How often the vault's sync groups are synced while unlocked (`None`: never).
    pub sync_every: Option<Duration>,
    /// A PEM certificate to trust for `https` relays instead of the system's roots (rounds in
    /// the background, and those asked for without one of their own).
    pub relay_ca: Option<Vec<u8>>,
}

/// Binds the agent socket at `path`: its directory is made 0700, a stale socket is removed, the
/// socket is made 0600. Fails if a live agent already listens there.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        // Never fix up someone else's directory: refuse it.
        tresor_wire::client::check_private_dir(dir)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(std::io::ErrorKind::AddrInUse, "an agent is already running"));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// What a connection tells the serving loop.
enum Event {
    /// A request other than `Ping` was served: the idle timer restarts.
    Used,
    /// The vault was locked on request: stop.
    Locked,
}

/// The unlocked vault (a shared handle: each connection takes a clone), `None` while locked.
/// The mutex is held only to take a clone, and while unlocking.
pub(crate) type Slot = Arc<Mutex<Option<Vault>>>;

/// How often the agent applies the rotation policy, re-seals values it read from older epochs,
/// and syncs the vault's sync groups.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(60);

/// Serves requests until `lock`, the idle timeout, SIGTERM or SIGINT; then wipes every key.
///
/// Each connection runs in its own task under an overall deadline, so a stalled client can
/// neither keep the agent from locking on time nor keep it from hearing signals.
pub async fn serve(listener: UnixListener, config: AgentConfig) -> std::io::Result<()> {
    let uid = rustix::process::geteuid().as_raw();
    let slot: Slot = Arc::new(Mutex::new(None));
    let rounds = crate::sync::Rounds::default();
    let config = Arc::new(config);
    let (events, mut inbox) = mpsc::unbounded_channel();
    let idle = tokio::time::sleep(config.idle);
    tokio::pin!(idle);
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut housekeeping = tokio::time::interval_at(Instant::now() + HOUSEKEEPING_EVERY, HOUSEKEEPING_EVERY);
    housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let syncing = config.sync_every.map(|every| {
        let sync = crate::sync::SyncConfig {
            every,
            backend: config.backend.clone(),
            ca_cert: config.relay_ca.clone(),
        };
        tokio::spawn(crate::sync::every_round(slot.clone(), "agent sync", sync, rounds.clone()))
    });
    let reason = loop {
        tokio::select! {
            conn = listener.accept() => {
                let stream = match conn {
                    Ok((stream, _)) => stream,
                    // Out of descriptors (or another passing failure): waiting, not spinning on
                    // an accept that fails at once, lets connections in flight end meanwhile.
                    Err(e) => {
                        tracing::warn!("could not accept a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                // Only our own user may talk to the agent.
                let Some(peer) = stream.peer_cred().ok().filter(|c| c.uid() == uid) else {
                    let who = stream.peer_cred().ok().map(|c| (c.uid(), c.pid()));
                    tracing::warn!("refused a connection from another user: (uid, pid) {who:?}");
                    continue;
                };
                // Every request is audited under the process that sent it.
                let actor = match peer.pid() {
                    Some(pid) => format!("local uid={uid} pid={pid}"),
                    None => format!("local uid={uid}"),
                };
                let (slot, config, events, rounds) = (slot.clone(), config.clone(), events.clone(), rounds.clone());
                tokio::spawn(async move {
                    if let Err(e) = handle(stream, &actor, (&slot, &rounds), &config, &events).await {
                        tracing::warn!("client connection: {e}");
                    }
                });
            }
            Some(event) = inbox.recv() => match event {
                Event::Used => idle.as_mut().reset(Instant::now() + config.idle),
                Event::Locked => break "lock requested",
            },
            _ = housekeeping.tick() => {
                let slot = slot.clone();
                tokio::spawn(async move { housekeeping_once(&slot).await });
            }
            () = &mut idle => break "idle timeout",
            _ = term.recv() => break "terminated",
            _ = int.recv() => break "interrupted",
        }
    };
    if let Some(syncing) = syncing {
        syncing.abort();
    }
    // A request stuck on the store holds the engine: wait for it only until its deadline.
    let vault = slot.lock().await.take();
    if let Some(v) = vault {
        match timeout(CONNECTION_DEADLINE, v.lock(reason)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("could not record the lock in the audit trail: {e}"),
            Err(_) => tracing::warn!("a request is stuck on the store; exiting without the lock record"),
        }
    }
    tracing::info!("agent stopped: {reason}; keys wiped");
    Ok(())
}

/// Applies the rotation policy and re-seals the values read from older epochs since the last
/// time; neither restarts the idle timer.
async fn housekeeping_once(slot: &Slot) {
    let Some(vault) = slot.lock().await.clone() else { return };
    let vault = vault.with_actor("agent housekeeping");
    match vault.rotate_if_due().await {
        Ok(Some(r)) => tracing::info!("rotated to epoch {} by policy", r.epoch),
        Ok(None) => {}
        Err(e) => tracing::warn!("automatic epoch rotation failed: {e}"),
    }
    if let Err(e) = vault.flush_reseal().await {
        tracing::warn!("re-sealing values of older epochs failed: {e}");
    }
}

async fn read_request(stream: &mut UnixStream) -> Result<Request, FrameError> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::Protocol("frame too large".into()));
    }
    decode(&read_body(stream, len).await?)
}

/// The `len` bytes of a frame's body, the buffer growing as they arrive: a header announcing a
/// gigabyte commits no memory until the bytes come. Every buffer outgrown is wiped (zeroize
/// wipes a vector's whole capacity), since a body may hold a value.
async fn read_body(stream: &mut UnixStream, len: usize) -> Result<Zeroizing<Vec<u8>>, FrameError> {
    let mut body = Zeroizing::new(Vec::with_capacity(len.min(64 << 10)));
    while body.len() < len {
        if body.len() == body.capacity() {
            let mut bigger = Zeroizing::new(Vec::with_capacity(body.capacity().saturating_mul(2).min(len)));
            bigger.extend_from_slice(&body);
            body = bigger;
        }
        let start = body.len();
        let room = (body.capacity() - start).min(len - start);
        body.resize(start + room, 0);
        let read = stream.read(&mut body[start..]).await?;
        body.truncate(start + read);
        if read == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
    }
    Ok(body)
}

/// Handles one connection: one request, one response.
async fn handle(
    mut stream: UnixStream,
    actor: &str,
    (slot, rounds): (&Slot, &crate::sync::Rounds),
    config: &AgentConfig,
    events: &mpsc::UnboundedSender<Event>,
) -> Result<(), FrameError> {
    let request = timeout(REQUEST_TIMEOUT, read_request(&mut stream))
        .await
        .map_err(|_| FrameError::Protocol("request timed out".into()))??;
    if !matches!(request, Request::Ping(_)) {
        let _ = events.send(Event::Used);
    }
    let bulk = request.is_bulk();
    let deadline = if bulk { BULK_DEADLINE } else { CONNECTION_DEADLINE };
    let work = timeout(deadline, respond(request, actor, (slot, rounds), config, events));
    // Bulk work counts as use while it runs: the idle timeout must not lock the vault under it.
    let keep_alive = async {
        if !bulk {
            return std::future::pending().await;
        }
        loop {
            tokio::time::sleep(Duration::from_secs(30)).await;
            let _ = events.send(Event::Used);
        }
    };
    let response = tokio::select! {
        done = work => done,
        never = keep_alive => never,
    }
    .map_err(|_| FrameError::Protocol("the request passed its deadline and was dropped".into()))?
    // A reply that cannot be encoded (an error naming a path that is not UTF-8) still gets an
    // answer: a failure says the same in the reply of any call.
    .or_else(|e| {
        encode(&Err::<(), _>(Failure::Error(tresor::Error::store(format!(
            "the reply could not be sent: {e}"
        )))))
    })?;
    timeout(REQUEST_TIMEOUT, async {
        stream.write_all(&response).await?;
        stream.flush().await?;
        Ok::<_, FrameError>(())
    })
    .await
    .map_err(|_| FrameError::Protocol("the client did not take its response".into()))?
}

/// The answer to one request, encoded as the reply type of its call; vault calls run on a clone
/// of the vault acting for `actor`.
async fn respond(
    request: Request,
    actor: &str,
    (slot, rounds): (&Slot, &crate::sync::Rounds),
    config: &AgentConfig,
    events: &mpsc::UnboundedSender<Event>,
) -> Result<Zeroizing<Vec<u8>>, FrameError> {
    // A vault directory removed or moved away while the agent ran: nothing it serves would be
    // the vault at its location any more (and a new vault may be made there). It locks itself
    // and stops; the client, told it is locked, opens the location itself.
    let removed = slot.lock().await.as_ref().is_some_and(|v| v.store().removed());
    if removed {
        let vault = slot.lock().await.take();
        if let Some(v) = vault {
            tracing::warn!("the vault directory {} was removed or moved: locking", v.store().location());
            let _ = v.with_actor(actor).lock("the vault directory was removed or moved").await;
        }
        let _ = events.send(Event::Locked);
    }
    match request {
        Request::Ping(_) => {
            encode(&Ok::<_, Failure>(Pong { unlocked: slot.lock().await.is_some(), pid: std::process::id() }))
        }
        // Already unlocked: the password is still checked (a wrong one is a failed attempt), so
        // `unlock` never answers success to a password that does not open the vault; the check
        // runs without holding the slot, so other clients are served meanwhile.
        Request::Unlock(call) => {
            let Some(password) = call_password(call) else {
                return encode(&Err::<Unlocked, _>(Failure::Error(tresor::Error::AuthFailed)));
            };
            if let Some(vault) = vault_for(slot, actor).await {
                match check_password(&password, &vault).await {
                    // Locked meanwhile (idle timeout, `tresor lock`): unlock it again below.
                    Err(Failure::Error(tresor::Error::Locked)) => {}
                    reply => return encode(&reply),
                }
            }
            encode(&unlock(password, &mut *slot.lock().await, config, actor).await)
        }
        Request::Lock(_) => {
            // Keys are wiped before the client hears that they are; requests in flight fail.
            let vault = slot.lock().await.take();
            if let Some(v) = vault
                && let Err(e) = v.with_actor(actor).lock("lock requested").await
            {
                tracing::warn!("could not record the lock in the audit trail: {e}");
            }
            let _ = events.send(Event::Locked);
            encode(&Ok::<_, Failure>(()))
        }
        Request::Get(call) => encode(&run(call, vault_for(slot, actor).await).await),
        Request::Set(call) => encode(&run(call, vault_for(slot, actor).await).await),
        Request::Delete(call) => encode(&run(call, vault_for(slot, actor).await).await),
        Request::UndeleteVersions(call) => encode(&run(call, vault_for(slot, actor).await).await),
        Request::DestroyVersions(call) => encode(&run(call, vault_for(slot, actor).await).await),
        Request::List(call) => encode(&run(call, vault_for(slot, actor).await).await),
        Request::History(call) => encode(&run(call, vault_for(slot, actor).await).await),
        Request::GetStatus(call) => encode(&run(call, vault_for(slot, actor).await).await),
        Request::ReadAudit(call) => encode(&run(call, vault_for(slot, actor).await).await),
        Request::Verify(call) => encode(&run(call, vault_for(slot, actor).await).await),
        Request::Export(call) => encode(&run(call, vault_for(slot, actor).await).await),
        Request::Gc(call) => encode(&run(call, vault_for(slot, actor).await).await),
        Request::ListEpochs(call) => encode(&run(call, vault_for(slot, actor).await).await),
        Request::RotateEpoch(call) => encode(&run(call, vault_for(slot, actor).await).await),
        Request::Reencrypt(call) => encode(&run(call, vault_for(slot, actor).await).await),
        Request::DestroyEpoch(call) => encode(&run(call, vault_for(slot, actor).await).await),
        Request::SetRotationPolicy(call) => encode(&run(call, vault_for(slot, actor).await).await),
        Request::ListKeyslots(call) => encode(&run(call, vault_for(slot, actor).await).await),
        Request::DeriveIdentity(call) => encode(&run(call, vault_for(slot, actor).await).await),
        Request::Sign(call) => encode(&run(call, vault_for(slot, actor).await).await),
        Request::Encrypt(call) => encode(&run(call, vault_for(slot, actor).await).await),
        Request::StreamKey(call) => encode(&run(call, vault_for(slot, actor).await).await),
        Request::Decrypt(call) => encode(&run(call, vault_for(slot, actor).await).await),
        Request::Groups(call) => encode(&run(call, vault_for(slot, actor).await).await),
        Request::KoiSend(call) => encode(&run(call, vault_for(slot, actor).await).await),
        Request::KoiReceive(call) => encode(&run(call, vault_for(slot, actor).await).await),
        Request::KoiPeers(call) => encode(&run(call, vault_for(slot, actor).await).await),
        // A round talks to relays: it needs the agent's settings, not only the vault.
        Request::SyncNow(call) => {
            let Some(vault) = vault_for(slot, actor).await else {
                return encode(&Err::<Vec<tresor_wire::GroupRound>, _>(Failure::Locked));
            };
            let done = match crate::sync::http_client(call.ca_cert.as_deref().or(config.relay_ca.as_deref()))
            {
                Ok(http) => {
                    let relays = (&http, &config.backend);
                    // After a background round under way, never beside it (it would only
                    // lose the race and be told busy), with what the rounds remember.
                    let mut memo = rounds.lock().await;
                    crate::sync::sync_now(&vault, relays, call.prefix.as_deref(), &mut memo).await
                }
                Err(failure) => {
                    vec![tresor_wire::GroupRound {
                        prefix: call.prefix.unwrap_or_default(),
                        outcome: Err(failure),
                    }]
                }
            };
            encode(&Ok::<_, Failure>(done))
        }
    }
}

/// A clone of the unlocked vault acting for `actor`. The slot's lock is released before the
/// call runs (held across the call, it would serialize every client).
async fn vault_for(slot: &Slot, actor: &str) -> Option<Vault> {
    let vault = slot.lock().await.clone();
    vault.map(|v| v.with_actor(actor))
}

/// Runs a vault call: [`Failure::Locked`] without an unlocked vault, or when it was locked
/// while the call ran.
async fn run<C: Serve>(call: C, vault: Option<Vault>) -> Reply<C::Reply> {
    let Some(vault) = vault else { return Err(Failure::Locked) };
    call.serve(&vault).await.map_err(|e| match e {
        tresor::Error::Locked => Failure::Locked,
        e => Failure::Error(e),
    })
}

/// What the first unlock of a vault at a location on this machine says (once), SSH-style.
pub fn first_use_notice(location: &str, fingerprint: &tresor::fingerprint::Fingerprint) -> String {
    format!(
        "first use of the vault at {location} on this machine: its fingerprint {fingerprint} is now pinned here. \
         Compare it with `tresor status` on a machine you trust; to pin before first use, run \
         `tresor trust FINGERPRINT` (or set TRESOR_VAULT_FINGERPRINT)"
    )
}

/// The password of an `unlock` call, if it is text at all.
fn call_password(call: Unlock) -> Option<Password> {
    let SecretBuf(bytes) = call.password;
    String::from_utf8(bytes.to_vec()).ok().map(Password::from)
}

/// `unlock` on an unlocked agent: success only if the password opens the vault.
async fn check_password(password: &Password, vault: &Vault) -> Reply<Unlocked> {
    match vault.verify_password(password).await {
        Ok(()) => Ok(Unlocked { failed_attempts: Vec::new(), warnings: Vec::new() }),
        Err(e) => Err(Failure::Error(e)),
    }
}

/// Unlocks the vault into `slot` with `password`, the unlock audited as `actor` (the client that
/// sent the password, not the agent).
async fn unlock(
    password: Password,
    slot: &mut Option<Vault>,
    config: &AgentConfig,
    actor: &str,
) -> Reply<Unlocked> {
    let fail = |e: tresor::Error| Err(Failure::Error(e));
    // Unlocked by another client while this one waited for the slot.
    if let Some(vault) = slot.as_ref() {
        return check_password(&password, vault).await;
    }
    let store = match tresor_backend::open(&config.location, false, &config.backend).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let mut options = (config.options)();
    let agent = std::mem::replace(&mut options.actor, actor.to_string());
    match Vault::unlock(store, &password, options).await {
        Ok(v) => {
            let v = v.with_actor(&agent);
            let failed_attempts = v.failed_attempts().to_vec();
            let mut warnings = crate::harden::report(&crate::harden::apply());
            if v.first_use() {
                warnings.push(first_use_notice(v.store().location(), &v.fingerprint()));
            }
            *slot = Some(v);
            Ok(Unlocked { failed_attempts, warnings })
        }
        Err(e) => fail(e),
    }
}
