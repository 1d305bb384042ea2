//! `tresor edit`: a secret changed in `$VISUAL`/`$EDITOR` through a private file in memory
//! (`/dev/shm`, else `$XDG_RUNTIME_DIR`), overwritten with zeros and removed afterwards whatever
//! happens; saved as a new version only if it changed, and only if no one wrote the secret
//! meanwhile (check-and-set).

use crate::exit::CliError;
use crate::refs::Reference;
use crate::resolve::Resolver;
use crate::*;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// A private directory holding the file being edited: wiped and removed on drop.
struct Scratch {
    dir: PathBuf,
    file: PathBuf,
}

impl Scratch {
    fn new(value: &[u8]) -> Result<Scratch, CliError> {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let base = ["/dev/shm".into(), std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from).unwrap_or_default()]
            .into_iter()
            .find(|d: &PathBuf| !d.as_os_str().is_empty() && d.is_dir())
            .ok_or_else(|| {
                CliError::other(
                    "no place in memory for the file to edit (/dev/shm or $XDG_RUNTIME_DIR): nothing is written to a disk"
                        .into(),
                )
            })?;
        let name =
            hex::encode(tresor_crypto::random_array::<8>().map_err(|e| CliError::other(e.to_string()))?);
        let dir = base.join(format!("tresor-edit-{name}"));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| CliError::other(format!("cannot make {}: {e}", dir.display())))?;
        let scratch = Scratch { file: dir.join("secret"), dir };
        let mut f = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&scratch.file)
            .map_err(|e| CliError::other(format!("cannot make {}: {e}", scratch.file.display())))?;
        f.write_all(value)
            .map_err(|e| CliError::other(format!("cannot write {}: {e}", scratch.file.display())))?;
        Ok(scratch)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        wipe(&self.file);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Overwrites a file with zeros (as long as it is now) before it is removed.
fn wipe(file: &Path) {
    use std::io::Write;
    if let Ok(meta) = std::fs::symlink_metadata(file)
        && meta.is_file()
        && let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(file)
    {
        let _ = f.write_all(&vec![0u8; meta.len() as usize]).and_then(|()| f.sync_all());
    }
    let _ = std::fs::remove_file(file);
}

/// The editor a person set (`$VISUAL`, then `$EDITOR`), else `vi`.
fn editor() -> String {
    ["VISUAL", "EDITOR"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|e| !e.trim().is_empty())
        .unwrap_or_else(|| "vi".into())
}

/// `tresor edit`.
pub(crate) fn edit(ctx: &mut Ctx, path: String) -> Result<(), CliError> {
    tresor::path::SecretPath::parse(&path).map_err(|e| CliError::from_core(&e))?;
    let max_value = ctx.max_value;
    let mut session = Resolver::new(ctx)?;
    let history = match session.history(&path) {
        Ok(history) => history,
        Err(e) if e.code == 4 => Vec::new(),
        Err(e) => return Err(e),
    };
    let (before, cas) = match history.iter().rev().find(|h| h.current) {
        Some(current) => {
            let reference = Reference { path: path.clone(), field: None, version: Some(current.version) };
            (session.read(&reference)?, current.version)
        }
        // A new secret, or one whose newest version is deleted: written after its last version.
        None => {
            if let Some(last) = history.last() {
                errln!(
                    "tresor: {path} is deleted (version {}): editing starts empty; `tresor undelete {path}` brings it back",
                    last.version
                );
            }
            (Zeroizing::new(Vec::new()), history.last().map_or(0, |h| h.version))
        }
    };
    let scratch = Scratch::new(&before)?;
    match run_editor(&scratch.file)? {
        Editor::Saved => {}
        Editor::Failed(status) => {
            return Err(CliError::other(format!("the editor failed ({status}): nothing was saved")));
        }
        Editor::Stopped(signal) => {
            drop(scratch);
            errln!("tresor: stopped by signal {signal}: nothing was saved, the file is wiped");
            return Err(CliError::passthrough(128 + signal as u8));
        }
    }
    // Room for a value at the limit and the line end an editor adds; anything longer is refused
    // below (and an editor that leaves an endless file there is not read forever).
    let source = crate::input::Source::File(&scratch.file);
    let mut after =
        crate::input::read_limited(source, std::io::empty(), max_value.saturating_add(2), "max_value_size")?;
    drop(scratch);
    // Editors end the last line with a newline: a value that had none keeps none.
    if !before.ends_with(b"\n") && after.ends_with(b"\n") {
        after.pop();
        if after.ends_with(b"\r") {
            after.pop();
        }
    }
    if *after == *before {
        errln!("{path}: unchanged, nothing written");
        session.finish();
        return Ok(());
    }
    if after.is_empty() {
        return Err(CliError::input(format!(
            "{path}: the edited value is empty: nothing saved (`tresor rm {path}` deletes it)"
        )));
    }
    if after.len() > max_value {
        return Err(CliError::from_core(&tresor::Error::TooLarge { size: after.len(), limit: max_value }));
    }
    let version = session.write(&path, &after, Some(cas)).map_err(|e| match e.code {
        6 => e.with_hint(format!("{path} was changed while you edited it: `tresor edit {path}` again")),
        _ => e,
    })?;
    errln!("{path}: version {version}");
    session.finish();
    Ok(())
}

/// How the editor ended.
enum Editor {
    Saved,
    Failed(std::process::ExitStatus),
    /// tresor was told to stop (SIGHUP, SIGTERM): the editor was told too.
    Stopped(i32),
}

/// Runs the editor on `file`. While it runs, SIGINT and SIGQUIT are the editor's (tresor does not
/// die of them), and SIGHUP or SIGTERM — a closed terminal, a stopped session — are passed to it
/// and end the edit, so that the caller wipes the file on its way out. The editor gets none of
/// tresor's credentials.
fn run_editor(file: &Path) -> Result<Editor, CliError> {
    use tokio::signal::unix::{SignalKind, signal};
    let rt = runtime()?;
    rt.block_on(async {
        let listen = |kind: SignalKind| {
            signal(kind).map_err(|e| CliError::other(format!("cannot catch signals: {e}")))
        };
        // Caught before the editor starts: no moment where a signal kills tresor first.
        let (mut int, mut quit) = (listen(SignalKind::interrupt())?, listen(SignalKind::quit())?);
        let (mut hup, mut term) = (listen(SignalKind::hangup())?, listen(SignalKind::terminate())?);
        // The editor may be a command with arguments (`code --wait`): the shell splits it; the
        // file is its last argument, passed as "$1" (never spliced into the command text).
        let mut command = tokio::process::Command::new("sh");
        command.arg("-c").arg(format!("{} \"$1\"", editor())).arg("tresor-edit").arg(file);
        for name in crate::commands::run::OWN_CREDENTIALS {
            command.env_remove(name);
        }
        let mut child =
            command.spawn().map_err(|e| CliError::other(format!("cannot run the editor: {e}")))?;
        let pid = child.id().and_then(|id| rustix::process::Pid::from_raw(id as i32));
        let stop = |sig: rustix::process::Signal| {
            if let Some(pid) = pid {
                let _ = rustix::process::kill_process(pid, sig);
            }
        };
        let signal = loop {
            tokio::select! {
                status = child.wait() => {
                    let status = status.map_err(|e| CliError::other(format!("waiting for the editor: {e}")))?;
                    return Ok(if status.success() { Editor::Saved } else { Editor::Failed(status) });
                }
                _ = int.recv() => {}
                _ = quit.recv() => {}
                _ = hup.recv() => break rustix::process::Signal::HUP,
                _ = term.recv() => break rustix::process::Signal::TERM,
            }
        };
        stop(signal);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), child.wait()).await;
        Ok(Editor::Stopped(signal.as_raw()))
    })
}
