//! What every command shares: the vault location and options, the call to the agent or to
//! the vault opened here, the store, and output helpers.

use crate::exit::CliError;
use crate::*;
use secrecy::SecretString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tresor::vault::format_time;
use tresor::{Options, Store, Vault};
use tresor_server::Serve;
use tresor_wire::{Failure, client};

/// Everything a command needs to reach the vault.
pub(crate) struct Ctx {
    pub(crate) location: String,
    pub(crate) no_agent: bool,
    pub(crate) max_value: usize,
    pub(crate) idle: Duration,
    /// The password read eagerly from stdin (`--password-stdin`), if any.
    pub(crate) stdin_password: Option<SecretString>,
    /// `TRESOR_VAULT_FINGERPRINT`: the vault fingerprint the user expects at the location.
    pub(crate) expect_fingerprint: Option<tresor::fingerprint::Fingerprint>,
    /// The config file's `[server]` table.
    pub(crate) server: config::ServerConfig,
    /// The server the everyday commands go to (`TRESOR_ADDR`), if any.
    pub(crate) remote: Option<crate::remote::Remote>,
}

impl Ctx {
    pub(crate) fn socket(&self) -> PathBuf {
        client::socket_path(&config::runtime_dir(), &self.location)
    }

    pub(crate) fn options(&self, via: &str) -> Options {
        let mut o = Options::new(config::state_dir().join("trust"), actor(via));
        o.max_value = self.max_value;
        o.expect_fingerprint = self.expect_fingerprint;
        o
    }

    /// Whether an agent for this vault is running and unlocked.
    pub(crate) fn agent_is_unlocked(&self) -> bool {
        matches!(
            client::call(&self.socket(), &tresor_wire::Ping, Duration::from_secs(5)),
            Ok(Some(Ok(tresor_wire::Pong { unlocked: true, .. })))
        )
    }

    pub(crate) fn password(&mut self) -> Result<SecretString, CliError> {
        self.password_labeled("Password: ")
    }

    /// The password, asked with `label` at a prompt ("Current password: " before a change).
    pub(crate) fn password_labeled(&mut self, label: &str) -> Result<SecretString, CliError> {
        match self.stdin_password.take() {
            Some(p) => Ok(p),
            None => password::current(label).map_err(CliError::input),
        }
    }

    /// Whether the next [`Ctx::password`] asks a person (who gets another try at a wrong one).
    pub(crate) fn password_prompts(&self) -> bool {
        self.stdin_password.is_none() && password::prompts()
    }
}

/// Who acts in this process: the local user and process, and how (`cli`, `agent`).
pub(crate) fn actor(via: &str) -> String {
    format!("local uid={} pid={} ({via})", rustix::process::geteuid().as_raw(), std::process::id())
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::other(e.to_string()))
}

/// A plain directory path made absolute, so that the agent socket and trust state do not depend
/// on the working directory. URLs stay as they are.
pub(crate) fn canonical_location(location: &str) -> String {
    // `s3://b//p/` and `s3://b/p` are one vault: one agent socket, one trust state.
    // An invalid one stays as it is: opening it says what is wrong.
    if location.starts_with("s3://") {
        return tresor_backend::s3::S3Location::parse(location)
            .map_or_else(|_| location.to_string(), |l| l.canonical());
    }
    if location.contains("://") && !location.starts_with("file://") {
        return location.to_string();
    }
    let path = Path::new(location.strip_prefix("file://").unwrap_or(location));
    match path.canonicalize() {
        Ok(p) => p.display().to_string(),
        Err(_) if path.is_absolute() => path.display().to_string(),
        Err(_) => std::env::current_dir()
            .map(|d| d.join(path).display().to_string())
            .unwrap_or(location.to_string()),
    }
}

/// Writes exact bytes to stdout (a closed pipe ends the output quietly).
pub(crate) fn outln_bytes(bytes: &[u8]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(|e| CliError::other(e.to_string())),
    }
}

pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::other(e.to_string()))?;
    outln!("{text}");
    Ok(())
}

/// Writes `bytes` to `path` (mode 0600), whole or not at all: a private file beside it, written
/// and synced with no name, then named `path` over whatever was there — a regular file, or a
/// symlink (replaced, never followed); a device, FIFO, socket or directory there is refused.
pub(crate) fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    // `--force` replaces a file: never a device (as root, `-o /dev/null --force` replaced the
    // system's /dev/null with a file of secrets), a FIFO or a socket.
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        let kind = meta.file_type();
        if !kind.is_file() && !kind.is_symlink() {
            let what =
                if kind.is_dir() { "a directory" } else { "not a regular file (a device, FIFO or socket)" };
            return Err(CliError::input(format!(
                "{} is {what}: only a regular file or a link is replaced",
                path.display()
            )));
        }
    }
    write_private(path, bytes, true)
}

/// [`write_private_file`] that never replaces anything: the file is linked to its name only if
/// nothing has that name (even one made meanwhile).
pub(crate) fn write_new_private_file(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    write_private(path, bytes, false)
}

fn write_private(path: &Path, bytes: &[u8], replace: bool) -> Result<(), CliError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let result = match write_unnamed(dir, path, bytes, replace) {
        Some(result) => result,
        None => write_named(dir, path, bytes, replace),
    };
    result.map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            CliError::input(format!("{} exists: give --force to replace it", path.display()))
        }
        _ => CliError::other(format!("cannot write {}: {e}", path.display())),
    })
}

/// A name no one can guess ahead beside `path` (a file planted there would only make the write
/// fail).
fn staging_name(dir: &Path, path: &Path) -> std::io::Result<PathBuf> {
    let nonce = hex::encode(tresor_crypto::random_array::<8>().map_err(std::io::Error::other)?);
    Ok(dir.join(format!(".{}.tmp-{nonce}", path.file_name().and_then(|n| n.to_str()).unwrap_or("export"))))
}

/// The file written with no name at all (`O_TMPFILE`) and named once complete, so that a write
/// cut short (a signal, a kill, a full disk) leaves nothing of it behind; `None` where the file
/// system cannot make such a file (or /proc is not there to name it).
fn write_unnamed(dir: &Path, path: &Path, bytes: &[u8], replace: bool) -> Option<std::io::Result<()>> {
    use rustix::fs::{AtFlags, CWD, Mode, OFlags};
    let flags = OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC;
    let fd = match rustix::fs::openat(CWD, dir, flags, Mode::from_raw_mode(0o600)) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR | rustix::io::Errno::INVAL) => {
            return None;
        }
        Err(e) => return Some(Err(e.into())),
    };
    let proc = PathBuf::from(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd)));
    if !proc.exists() {
        return None;
    }
    let mut file = std::fs::File::from(fd);
    let mut named = || -> std::io::Result<()> {
        file.write_all(bytes)?;
        file.sync_all()?;
        if !replace {
            return Ok(rustix::fs::linkat(CWD, &proc, CWD, path, AtFlags::SYMLINK_FOLLOW)?);
        }
        // Replacing: named beside it first, then renamed over it (the name lives for that long).
        let tmp = staging_name(dir, path)?;
        rustix::fs::linkat(CWD, &proc, CWD, &tmp, AtFlags::SYMLINK_FOLLOW)?;
        let renamed = std::fs::rename(&tmp, path);
        if renamed.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        renamed
    };
    Some(named())
}

/// [`write_unnamed`] where it cannot be: a private temporary file beside `path`, synced, then
/// linked (or renamed, to replace) to `path`.
fn write_named(dir: &Path, path: &Path, bytes: &[u8], replace: bool) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = staging_name(dir, path)?;
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().create_new(true).write(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        match replace {
            true => std::fs::rename(&tmp, path),
            false => std::fs::hard_link(&tmp, path),
        }
    };
    let result = write();
    // The temporary name is gone whatever happened (after a link, the file lives on at `path`).
    let _ = std::fs::remove_file(&tmp);
    result
}

/// Runs `call` on the unlocked agent, or opens the vault here and runs it directly: either way
/// its answer is the call's own reply type.
pub(crate) fn call<C: Serve>(ctx: &mut Ctx, call: C) -> Result<C::Reply, CliError> {
    let mut session = Session::new(ctx)?;
    let reply = session.call(call);
    session.finish();
    reply
}

/// Several calls of one command on one vault: each goes to the unlocked agent, or — when none
/// serves — to the vault opened here once, with one password.
pub(crate) struct Session<'a> {
    pub(crate) ctx: &'a mut Ctx,
    pub(crate) rt: tokio::runtime::Runtime,
    /// Whether an agent may still serve (false after one did not, or with --no-agent).
    agent: bool,
    vault: Option<Vault>,
    /// Values read that are one of concurrent versions a sync group kept: path, how many others.
    conflicts: Vec<(String, u64)>,
}

impl<'a> Session<'a> {
    pub(crate) fn new(ctx: &'a mut Ctx) -> Result<Session<'a>, CliError> {
        let agent = !ctx.no_agent;
        Ok(Session { ctx, rt: runtime()?, agent, vault: None, conflicts: Vec::new() })
    }

    /// Runs one call (see [`call`]).
    pub(crate) fn call<C: Serve>(&mut self, call: C) -> Result<C::Reply, CliError> {
        if self.agent {
            match agent_call(self.ctx, &call)? {
                Some(reply) => return Ok(reply),
                None => self.agent = false,
            }
        }
        let vault = match self.vault.take() {
            Some(vault) => vault,
            None => {
                let store = open_existing(&self.rt, &self.ctx.location)?;
                let vault = unlock_here(self.ctx, &self.rt, store)?;
                report_unlocked(&vault);
                vault
            }
        };
        let vault = self.vault.insert(vault);
        self.rt.block_on(call.serve(vault)).map_err(|e| CliError::from_core(&e))
    }

    /// The value of `path` (a version of it, if `version`), told of a sync conflict at the end.
    pub(crate) fn read(
        &mut self,
        path: String,
        version: Option<u64>,
    ) -> Result<tresor_wire::SecretBuf, CliError> {
        let got = self.call(tresor_wire::Get { path: path.clone(), version })?;
        if let Some(others) = got.conflict {
            self.conflicts.push((path, others));
        }
        Ok(got.value)
    }

    /// Ends the session: tells of the sync conflicts of the values read, reports an automatic
    /// epoch rotation that failed, and wipes the keys of a vault opened here (the trust state is
    /// already saved after every record).
    pub(crate) fn finish(self) {
        for (path, others) in &self.conflicts {
            warn_conflict(path, *others);
        }
        if let Some(vault) = self.vault
            && let Ok(Some(failure)) = self.rt.block_on(vault.rotation_failure())
        {
            errln!(
                "tresor: warning: the automatic epoch rotation failed ({failure}); values stay in the current epoch"
            );
        }
    }
}

/// The reply of an unlocked agent for the vault to `call`; `Ok(None)` when no agent served it (none
/// listens, or it is locked), so that the caller may run it another way.
pub(crate) fn agent_call<C: tresor_wire::Call>(ctx: &Ctx, call: &C) -> Result<Option<C::Reply>, CliError> {
    match client::connect(&ctx.socket()) {
        Ok(Some(stream)) => agent_call_on(stream, call),
        Ok(None) => Ok(None),
        Err(e) => Err(agent_failed(e)),
    }
}

/// [`agent_call`] on a connection already made ([`client::connect`]).
pub(crate) fn agent_call_on<C: tresor_wire::Call>(
    stream: std::os::unix::net::UnixStream,
    call: &C,
) -> Result<Option<C::Reply>, CliError> {
    // Bulk work grows with the vault: the client waits as long as the agent may work.
    let wait = if call.is_bulk() { tresor_wire::BULK_DEADLINE } else { Duration::from_secs(600) };
    match client::call_on(stream, call, wait) {
        Ok(Ok(reply)) => Ok(Some(reply)),
        Ok(Err(Failure::Error(e))) => Err(CliError::from_core(&e)),
        Ok(Err(Failure::Locked)) => Ok(None),
        // The agent may have run the call already: never run it a second time.
        Err(e) => Err(agent_failed(e)),
    }
}

/// What the CLI says when talking to the agent failed.
pub(crate) fn agent_failed(e: tresor_wire::FrameError) -> CliError {
    CliError::other(format!("the agent failed: {e}"))
}

/// Opens the vault in this process with the password; a person at a prompt who types a wrong
/// one is asked again ([`password::ATTEMPTS`] tries, each a failed attempt in the audit trail).
pub(crate) fn unlock_here(
    ctx: &mut Ctx,
    rt: &tokio::runtime::Runtime,
    store: Store,
) -> Result<Vault, CliError> {
    let prompts = ctx.password_prompts();
    let mut attempt = 1;
    loop {
        let password = ctx.password()?;
        match rt.block_on(Vault::unlock(store.clone(), &password, ctx.options("cli"))) {
            Ok(vault) => return Ok(vault),
            Err(tresor::Error::AuthFailed) if prompts && attempt < password::ATTEMPTS => {
                attempt += 1;
                errln!("tresor: wrong password; try again ({attempt} of {})", password::ATTEMPTS);
            }
            Err(e) => return Err(CliError::from_core(&e)),
        }
    }
}

/// What the storage backends are configured with: this process's environment (the AWS
/// settings of an S3 location), handed to `tresor-backend`, which reads none itself.
pub(crate) fn backend_config() -> tresor_backend::BackendConfig {
    tresor_backend::BackendConfig::from_vars(std::env::vars_os())
}

/// Opens a vault location, warning on stderr when a local vault directory is open to other users.
pub(crate) async fn open_store(location: &str, create: bool) -> Result<Store, CliError> {
    let store = tresor_backend::open(location, create, &backend_config())
        .await
        .map_err(|e| CliError::from_core(&e))?;
    // Said of a vault's directory (or one being made), not of any directory named by mistake.
    if let Some(warning) = store.permission_warning()
        && (create || tresor::era::has_keyfile(&store).await.unwrap_or(false))
    {
        errln!("tresor: warning: {warning}");
    }
    Ok(store)
}

/// Opens the store and checks that a vault is there, before anyone is asked for a password.
pub(crate) fn open_existing(rt: &tokio::runtime::Runtime, location: &str) -> Result<Store, CliError> {
    rt.block_on(async {
        let store = open_store(location, false).await?;
        tresor::vault::describe_locked(&store).await.map_err(|e| CliError::from_core(&e))?;
        Ok(store)
    })
}

/// What an unlock in this process has to tell: failed attempts since the last one, and the
/// first use of the vault at its location on this machine.
pub(crate) fn report_unlocked(vault: &Vault) {
    report_failed(vault.failed_attempts());
    if vault.first_use() {
        errln!(
            "tresor: {}",
            tresor_server::agent::first_use_notice(vault.store().location(), &vault.fingerprint())
        );
    }
}

pub(crate) fn report_failed(failed: &[u64]) {
    if let Some(first) = failed.first() {
        errln!(
            "tresor: {} since {} (recorded in the audit trail)",
            plural(failed.len(), "failed unlock attempt"),
            format_time(*first)
        );
    }
}

/// "1 entry", "2 entries", "0 secrets": a count and its noun, in the right number.
pub(crate) fn plural(n: usize, noun: &str) -> String {
    match (n, noun.strip_suffix('y')) {
        (1, _) => format!("1 {noun}"),
        (_, Some(stem)) if !stem.ends_with(['a', 'e', 'o', 'u']) => format!("{n} {stem}ies"),
        _ => format!("{n} {noun}s"),
    }
}

/// Tells that the value shown for `path` is one of concurrent versions a sync group kept.
pub(crate) fn warn_conflict(path: &str, others: u64) {
    errln!(
        "tresor: warning: {path} was written concurrently by members of a sync group: this is one of {} \
         versions (the others are in `tresor history {path}`); writing it again settles it",
        others.saturating_add(1)
    );
}

#[cfg(test)]
mod tests {
    use super::plural;

    #[test]
    fn counts_take_the_right_number() {
        assert_eq!(plural(1, "entry"), "1 entry");
        assert_eq!(plural(2, "entry"), "2 entries");
        assert_eq!(plural(0, "secret"), "0 secrets");
        assert_eq!(plural(1, "failed unlock attempt"), "1 failed unlock attempt");
        assert_eq!(plural(3, "key"), "3 keys");
    }
}
