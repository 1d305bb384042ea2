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
        None => (Zeroizing::new(Vec::new()), history.last().map_or(0, |h| h.version)),
    };
    let scratch = Scratch::new(&before)?;
    // The editor may be a command with arguments (`code --wait`): the shell splits it; the file
    // is its last argument, passed as "$1" (never spliced into the command text).
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{} \"$1\"", editor()))
        .arg("tresor-edit")
        .arg(&scratch.file)
        .status()
        .map_err(|e| CliError::other(format!("cannot run the editor: {e}")))?;
    if !status.success() {
        return Err(CliError::other(format!("the editor failed ({status}): nothing was saved")));
    }
    let after = Zeroizing::new(
        std::fs::read(&scratch.file)
            .map_err(|e| CliError::other(format!("cannot read the edited file: {e}")))?,
    );
    drop(scratch);
    if *after == *before {
        eprintln!("{path}: unchanged, nothing written");
        session.finish();
        return Ok(());
    }
    if after.len() > max_value {
        return Err(CliError::from_core(&tresor::Error::TooLarge { size: after.len(), limit: max_value }));
    }
    let version = session.write(&path, &after, Some(cas)).map_err(|e| match e.code {
        6 => e.with_hint(format!("{path} was changed while you edited it: `tresor edit {path}` again")),
        _ => e,
    })?;
    eprintln!("{path}: version {version}");
    session.finish();
    Ok(())
}
