//! `tresor rekey`: replaces the vault's root secret (see ARCHITECTURE.md, root rotation): the
//! current password and a new one, progress while every version is sealed again, the new
//! recovery phrase, and what other machines and old copies need to know.

use crate::commands::keys;
use crate::exit::CliError;
use crate::{Ctx, NewPasswordArgs, runtime};
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::time::Duration;
use tresor::Vault;
use tresor_wire::client;

/// Runs `tresor rekey` (or `tresor rekey --abort`).
pub fn run(
    ctx: &mut Ctx,
    new: &NewPasswordArgs,
    abort: bool,
    force: bool,
    phrase: Option<Option<PathBuf>>,
    stdin: &mut impl BufRead,
) -> Result<(), CliError> {
    let current = ctx.password_labeled("Current password: ")?;
    let rt = runtime()?;
    let options = || {
        let mut o = ctx.options("cli");
        if force {
            o.rekey_lease = Duration::ZERO;
        }
        o
    };
    if abort {
        return rt.block_on(async {
            let store = crate::open_store(&ctx.location, false).await?;
            let vault = Vault::unlock(store, &current, ctx.options("cli"))
                .await
                .map_err(|e| CliError::from_core(&e))?;
            crate::report_unlocked(&vault);
            vault.abort_rekey().await.map_err(|e| CliError::from_core(&e))?;
            errln!("re-key abandoned: the vault takes writes again, under its current root");
            Ok(())
        });
    }
    let (new_password, kdf) = new.read(stdin)?;
    {
        use secrecy::ExposeSecret;
        if new_password.expose_secret() == current.expose_secret() {
            errln!(
                "tresor: warning: the new password is the current one: if it leaked, it opens the new root too \
                 (this re-key still replaces the recovery phrase and every key)"
            );
        }
    }
    // Where the new phrase goes is settled before anything changes (as for `init`).
    let target = match &phrase {
        Some(Some(path)) => Some(keys::PhraseTarget::File(keys::PhraseFile::create(path)?)),
        Some(None) if std::io::stderr().is_terminal() => Some(keys::PhraseTarget::Terminal),
        _ => None,
    };
    // An agent holds the old root's keys: it is locked first (it could write nothing anyway).
    if ctx.agent_is_unlocked() {
        let _ = client::call(&ctx.socket(), &tresor_wire::Lock, Duration::from_secs(30));
        errln!("locked the agent: it holds the old root's keys");
    }
    let bar = crate::commands::epoch::progress_bar("re-keying", "versions");
    let mut progress = |done: u64, total: u64| {
        if let Some(bar) = &bar {
            bar.set_length(total);
            bar.set_position(done);
        }
    };
    let (vault, report, shown) = rt.block_on(async {
        let store = crate::open_store(&ctx.location, false).await?;
        let vault = Vault::unlock(store, &current, options()).await.map_err(|e| CliError::from_core(&e))?;
        crate::report_unlocked(&vault);
        let (vault, report) =
            vault.rekey(&new_password, kdf, &mut progress).await.map_err(|e| CliError::from_core(&e))?;
        // Read (and audited) only when it is shown.
        let shown = match &target {
            Some(_) => Some(vault.recovery_phrase().await.map_err(|e| CliError::from_core(&e))?),
            None => None,
        };
        Ok::<_, CliError>((vault, report, shown))
    })?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    errln!(
        "re-keyed: root era {} replaces era {}; {} versions and {} audit records carried over, sealed under new keys",
        report.era,
        report.previous,
        report.versions,
        report.audit_records
    );
    errln!("new fingerprint: {}", report.fingerprint);
    errln!(
        "the old password and old key files open nothing written from now on; other machines refuse the \
         vault until you pin its new fingerprint there: `tresor trust {}`",
        report.fingerprint
    );
    match target.zip(shown) {
        Some((target, phrase)) => keys::show_recovery_phrase(&phrase, target)?,
        None if phrase.is_none() => {
            errln!("new recovery phrase not shown (--no-recovery-phrase); `tresor recovery-phrase` shows it")
        }
        None => errln!(
            "new recovery phrase not shown: stderr is not a terminal; `tresor recovery-phrase` shows it on a \
             terminal, or writes it with --file. The old phrase no longer opens the vault"
        ),
    }
    drop(vault);
    if !report.complete() {
        return Err(CliError::incomplete(format!(
            "root era {}: deleted {} objects, but the store keeps old versions of them ({:?}); \
             copies of the old era open with the old password until they are removed",
            report.previous, report.deleted_objects, report.residue
        )));
    }
    errln!(
        "deleted {} objects of root era {}. Copies made before now (backups, exports, snapshots of the \
         directory) still open with the old password: destroy them",
        report.deleted_objects,
        report.previous
    );
    Ok(())
}
