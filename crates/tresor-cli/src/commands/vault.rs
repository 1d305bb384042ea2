//! Whole-vault commands: `init`, `status`, `passwd`, `doctor`, `import`.

use crate::commands::keys;
use crate::exit::CliError;
use crate::*;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tresor::model::AuditOp;
use tresor::{KdfParams, Vault};
use tresor_wire::{Failure, client};

/// `tresor init`; `phrase`: show the recovery phrase (`Some(None)`: on the terminal,
/// `Some(Some(file))`: into a new private file), or not (`None`).
pub(crate) fn cmd_init(
    ctx: &mut Ctx,
    kdf: KdfParams,
    phrase: Option<Option<PathBuf>>,
    stdin: &mut impl BufRead,
) -> Result<(), CliError> {
    let password = match ctx.stdin_password.take() {
        Some(p) => p,
        None => password::new(false, None, stdin, true).map_err(CliError::input)?,
    };
    // The password rules and parameters are checked before the store is touched.
    tresor::keyfile::check_password_rules(&password).map_err(|e| CliError::from_core(&e))?;
    kdf.check().map_err(|_| CliError::input("KDF parameters out of the accepted range".into()))?;
    let mut opts = ctx.options("cli");
    opts.kdf = kdf;
    // The phrase's file is created first: one that exists, or cannot be made, stops init before
    // there is a vault whose phrase nobody saw.
    let target = match &phrase {
        Some(Some(path)) => Some(keys::PhraseTarget::File(keys::PhraseFile::create(path)?)),
        Some(None) if std::io::IsTerminal::is_terminal(&std::io::stderr()) => {
            Some(keys::PhraseTarget::Terminal)
        }
        _ => None,
    };
    let rt = runtime()?;
    let (vault, shown) = rt.block_on(async {
        let store = open_store(&ctx.location, true).await?;
        let vault = Vault::init(store, &password, opts).await.map_err(|e| CliError::from_core(&e))?;
        // Read (and audited) only when it is shown.
        let shown = match &target {
            Some(_) => Some(vault.recovery_phrase().await.map_err(|e| CliError::from_core(&e))?),
            None => None,
        };
        Ok::<_, CliError>((vault, shown))
    })?;
    outln!("{}", hex::encode(vault.vault_id()));
    errln!("created vault {} at {}", hex::encode(vault.vault_id()), ctx.location);
    errln!(
        "fingerprint: {} (pin it on other machines with `tresor trust {}` before their first unlock)",
        vault.fingerprint(),
        vault.fingerprint()
    );
    match target.zip(shown) {
        Some((target, phrase)) => keys::show_recovery_phrase(&phrase, target)?,
        None if phrase.is_none() => {
            errln!("recovery phrase not shown (--no-recovery-phrase); `tresor recovery-phrase` shows it")
        }
        None => errln!(
            "recovery phrase not shown: stderr is not a terminal (it would end up in a log); \
             `tresor recovery-phrase` shows it on a terminal, or writes it with --file"
        ),
    }
    Ok(())
}

/// What `tresor status` shows, locked or unlocked: one shape for `--json` (every key always
/// there, `null` where a locked vault cannot say), and the text lines made from the same values.
#[derive(serde::Serialize)]
struct StatusView {
    /// `locked` or `unlocked`.
    state: &'static str,
    /// What holds the keys when unlocked (`agent`); `null` when locked.
    unlocked_by: Option<&'static str>,
    vault_id: String,
    /// The vault's fingerprint; while locked, the one this machine pinned (`null`: none).
    fingerprint: Option<String>,
    /// Where the fingerprint comes from: `vault` (unlocked) or `pin` (locked).
    fingerprint_from: Option<&'static str>,
    location: String,
    cipher: String,
    /// The KDF of each password slot while locked; of the slot that opened it while unlocked.
    kdf: Vec<String>,
    era: u32,
    keyfile_generation: u64,
    secrets: Option<u64>,
    commits: Option<u64>,
    audit_lane: Option<String>,
    /// Entries in this machine's lane of the audit trail (this status call adds one).
    audit_entries: Option<u64>,
    epoch: Option<u32>,
    /// The commit of the newest index snapshot (`0`: none).
    snapshot: Option<u64>,
    rotation_failure: Option<String>,
    /// The sync groups (`null` while locked).
    sync_groups: Option<Vec<SyncStatus>>,
}

/// One sync group in `tresor status`.
#[derive(serde::Serialize)]
struct SyncStatus {
    /// The shared folder.
    prefix: String,
    /// How many members the group has.
    members: usize,
    /// When something new last came from another member (ms since the Unix epoch).
    heard_ms: Option<u64>,
    /// Paths shown with concurrent versions kept beside them, and how many.
    conflicts: Vec<SyncConflict>,
}

/// A path in conflict.
#[derive(serde::Serialize)]
struct SyncConflict {
    path: String,
    others: u64,
}

impl SyncStatus {
    fn from(group: tresor_wire::GroupSummary) -> SyncStatus {
        SyncStatus {
            prefix: group.prefix.clone(),
            members: group.members.len(),
            heard_ms: crate::commands::share::last_heard(&group).map(|at| at.saturating_mul(1000)),
            conflicts: group
                .conflicts
                .into_iter()
                .map(|(path, others)| SyncConflict { path, others })
                .collect(),
        }
    }
}

impl StatusView {
    fn print(&self) {
        let unknown = || "(unlock to see)".to_string();
        let opt = |v: Option<String>| v.unwrap_or_else(unknown);
        match self.unlocked_by {
            Some(by) => outln!("state: {} ({by})", self.state),
            None => outln!("state: {}", self.state),
        }
        outln!("vault id: {}", self.vault_id);
        match (&self.fingerprint, self.fingerprint_from) {
            (Some(fp), Some("pin")) => outln!("fingerprint: {fp} (pinned on this machine)"),
            (Some(fp), _) => outln!("fingerprint: {fp}"),
            (None, _) => outln!("fingerprint: (not pinned on this machine; unlock to see it)"),
        }
        outln!("location: {}", self.location);
        outln!("cipher: {}", self.cipher);
        outln!("kdf: {}", self.kdf.join(", "));
        outln!("root era: {}", self.era);
        outln!("key file generation: {}", self.keyfile_generation);
        outln!("secrets: {}", opt(self.secrets.map(|n| n.to_string())));
        outln!("commits: {}", opt(self.commits.map(|n| n.to_string())));
        let lane = match (&self.audit_lane, self.audit_entries) {
            (Some(lane), Some(n)) => format!("{lane} ({})", plural(n as usize, "entry")),
            _ => unknown(),
        };
        outln!("audit lane: {lane}");
        outln!("epoch: {}", opt(self.epoch.map(|n| n.to_string())));
        let snapshot =
            self.snapshot.map(|s| if s == 0 { "none".to_string() } else { format!("at commit {s}") });
        outln!("snapshot: {}", opt(snapshot));
        if let Some(failure) = &self.rotation_failure {
            outln!("automatic rotation: FAILED at {failure}");
        }
        match &self.sync_groups {
            None => outln!("sync: {}", unknown()),
            Some(groups) if groups.is_empty() => outln!("sync: no groups"),
            Some(groups) => {
                for g in groups {
                    let heard = match (g.members > 1, g.heard_ms) {
                        (false, _) => "no other member yet".to_string(),
                        (true, None) => "nothing heard from the others yet".to_string(),
                        (true, Some(at)) => {
                            format!("last heard from the others {}", tresor::vault::format_time(at))
                        }
                    };
                    outln!(
                        "sync: {}/: {}, {heard}, {}",
                        g.prefix,
                        plural(g.members, "member"),
                        plural(g.conflicts.len(), "conflict")
                    );
                    for c in &g.conflicts {
                        outln!(
                            "  conflict: {} ({} versions; `tresor history {}`)",
                            c.path,
                            c.others.saturating_add(1),
                            c.path
                        );
                    }
                }
            }
        }
    }
}

/// `tresor status [--json]`: through the agent when one holds the vault unlocked, else what the
/// key file and this machine's pin say.
pub(crate) fn cmd_status(ctx: &mut Ctx, json: bool) -> Result<(), CliError> {
    let agent = if ctx.no_agent {
        None
    } else {
        client::call(&ctx.socket(), &tresor_wire::GetStatus, Duration::from_secs(60)).ok().flatten()
    };
    let view = match agent {
        Some(Ok(s)) => StatusView {
            state: "unlocked",
            unlocked_by: Some("agent"),
            vault_id: s.vault_id,
            fingerprint: Some(s.fingerprint),
            fingerprint_from: Some("vault"),
            location: s.location,
            cipher: s.cipher,
            kdf: vec![s.kdf],
            era: s.era,
            keyfile_generation: s.keyfile_generation,
            secrets: Some(s.secrets as u64),
            commits: Some(s.commits),
            audit_lane: Some(s.audit_lane),
            audit_entries: Some(s.audit_records),
            epoch: Some(s.epoch),
            snapshot: Some(s.snapshot),
            rotation_failure: s.rotation_failure,
            // A vault whose groups cannot be read still shows its status (the error says why).
            sync_groups: match client::call(&ctx.socket(), &tresor_wire::Groups, Duration::from_secs(60)) {
                Ok(Some(Ok(Ok(groups)))) => Some(groups.into_iter().map(SyncStatus::from).collect()),
                Ok(Some(Ok(Err(e)))) => {
                    errln!("tresor: warning: the sync groups cannot be read: {e}");
                    None
                }
                _ => None,
            },
        },
        Some(Err(Failure::Error(e))) => return Err(CliError::from_core(&e)),
        Some(Err(Failure::Locked)) | None => {
            let rt = runtime()?;
            let info = rt.block_on(async {
                let store = open_store(&ctx.location, false).await?;
                tresor::vault::describe_locked(&store).await.map_err(|e| CliError::from_core(&e))
            })?;
            // The fingerprint needs the root; while locked, what this machine pinned is shown.
            let pinned = tresor::trust::TrustStore::new(config::state_dir().join("trust"))
                .location_pin(&info.location)
                .map_err(|e| CliError::from_core(&e))?
                .filter(|p| p.vault_id == info.vault_id && p.era == info.era)
                .map(|p| p.fingerprint);
            StatusView {
                state: "locked",
                unlocked_by: None,
                vault_id: info.vault_id,
                fingerprint_from: pinned.as_ref().map(|_| "pin"),
                fingerprint: pinned,
                location: info.location,
                cipher: "XChaCha20-Poly1305".into(),
                kdf: info.kdf,
                era: info.era,
                keyfile_generation: info.keyfile_generation,
                secrets: None,
                commits: None,
                audit_lane: None,
                audit_entries: None,
                epoch: None,
                snapshot: None,
                rotation_failure: None,
                sync_groups: None,
            }
        }
    };
    if json {
        return print_json(&view);
    }
    view.print();
    Ok(())
}

pub(crate) fn cmd_passwd(
    ctx: &mut Ctx,
    new: &NewPasswordArgs,
    stdin: &mut impl BufRead,
) -> Result<(), CliError> {
    let current = ctx.password_labeled("Current password: ")?;
    let (new, kdf) = new.read(stdin)?;
    let rt = runtime()?;
    rt.block_on(async {
        let store = open_store(&ctx.location, false).await?;
        let vault =
            Vault::unlock(store, &current, ctx.options("cli")).await.map_err(|e| CliError::from_core(&e))?;
        report_unlocked(&vault);
        vault.passwd(&new, kdf).await.map_err(|e| CliError::from_core(&e))?;
        // Dropping the vault wipes its keys; the trust state is already saved after every record.
        drop(vault);
        Ok::<_, CliError>(())
    })?;
    errln!(
        "password changed: the vault's key file now opens with the new password, not the old one. \
         A copy of the old key file (a backup, a synced folder, the store itself if it keeps old \
         versions) still opens the vault with the old password, and with it every value, including \
         later ones: the root secret is unchanged. If the old password leaked, replace the root \
         secret itself: `tresor rekey`"
    );
    Ok(())
}

/// `tresor doctor`: what the store supports and holds. Needs no password.
pub(crate) fn cmd_doctor(ctx: &Ctx, json: bool) -> Result<(), CliError> {
    let backend = match ctx.location.split_once("://") {
        Some(("s3", _)) => "S3-compatible object store",
        Some(("memory", _)) => "memory",
        _ => "local directory",
    };
    let rt = runtime()?;
    let store = rt.block_on(async {
        tresor_backend::open(&ctx.location, false, &backend_config())
            .await
            .map_err(|e| CliError::from_core(&e))
    })?;
    let (probe, names, vault) = rt.block_on(async {
        let started = std::time::Instant::now();
        let probe = store.probe().await.map(|()| started.elapsed());
        let names = store.list_all().await;
        let vault = tresor::vault::describe_locked(&store).await;
        (probe, names, vault)
    });
    let names = names.map_err(|e| CliError::from_core(&e))?;
    let mut counts = std::collections::BTreeMap::new();
    // Entries that are not tresor objects: links, FIFOs, devices (local), unexpected names.
    let mut foreign: Vec<(String, &str)> =
        store.foreign().map_err(|e| CliError::from_core(&e))?.into_iter().map(|f| (f.name, f.what)).collect();
    for name in &names {
        if tresor::layout::is_object_name(name) {
            // Objects of a root era ≥ 2 are counted by kind like those of era 1.
            let inner = tresor::layout::parse_era_object(name).map_or(name.as_str(), |(_, inner)| inner);
            *counts.entry(inner.split('/').next().unwrap_or_default().to_string()).or_insert(0u64) += 1;
        } else {
            foreign.push((name.escape_debug().to_string(), "unexpected name"));
        }
    }
    foreign.sort();
    let permissions = store.permission_warning();
    if json {
        print_json(&serde_json::json!({
            "location": ctx.location,
            "backend": backend,
            "create_if_absent": probe.is_ok(),
            "probe_ms": probe.as_ref().ok().map(|d| d.as_secs_f64() * 1000.0),
            "objects": counts,
            "foreign": foreign.iter().map(|(name, what)| serde_json::json!({"name": name, "what": what})).collect::<Vec<_>>(),
            "permissions": permissions,
            "vault": vault.as_ref().ok(),
        }))?;
    } else {
        outln!("location: {}", ctx.location);
        outln!("backend: {backend}");
        match &probe {
            Ok(d) => outln!("create-if-absent: ok (probe {:.1} ms)", d.as_secs_f64() * 1000.0),
            Err(e) => outln!("create-if-absent: FAILED ({e})"),
        }
        let objects: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
        outln!("objects: {}", if objects.is_empty() { "none".to_string() } else { objects.join(", ") });
        match &vault {
            Ok(v) => outln!(
                "vault: {} (root era {}, key file generation {}, {})",
                v.vault_id,
                v.era,
                v.keyfile_generation,
                v.kdf.join(", ")
            ),
            Err(e) => outln!("vault: none ({e})"),
        }
        if let Some(warning) = &permissions {
            outln!("permissions: {warning}");
        }
        if !foreign.is_empty() {
            outln!("foreign entries (not tresor objects; tresor never reads, follows or deletes them):");
            for (name, what) in &foreign {
                outln!("  {name}: {what}");
            }
            outln!("  remove them by hand once you know where they came from");
        }
    }
    probe.map(|_| ()).map_err(|e| CliError::from_core(&e))
}

/// The largest file `import` reads (a backup or a file of another tool's format): far above what
/// any vault exports (a million secrets of 100 bytes is ~200 MB), yet a device that never ends
/// is refused instead of read until memory runs out.
const MAX_IMPORT: usize = 1 << 30;

pub(crate) fn cmd_import(
    ctx: &mut Ctx,
    file: &Path,
    format: Option<import::Format>,
    prefix: Option<String>,
    mut stdin: impl std::io::Read,
) -> Result<(), CliError> {
    let source = crate::input::Source::of(Some(file));
    let bytes = crate::input::read_limited(source, &mut stdin, MAX_IMPORT, "the most `import` reads")?;
    let format = format.unwrap_or_else(|| import::detect(file, &bytes));
    if format == import::Format::Archive {
        if prefix.is_some() {
            return Err(CliError::usage("--prefix: a backup is restored whole, as it was".into()));
        }
        let password = ctx.password()?;
        let rt = runtime()?;
        let vault = rt.block_on(async {
            let store = open_store(&ctx.location, true).await?;
            tresor::archive::import(store, &bytes, &password, ctx.options("cli"))
                .await
                .map_err(|e| CliError::from_core(&e))
        })?;
        errln!("restored vault {} at {}", hex::encode(vault.vault_id()), ctx.location);
        return Ok(());
    }
    let mut items = import::parse(format, &bytes).map_err(CliError::input)?;
    if let Some(prefix) = prefix.as_deref().map(|p| p.trim_end_matches('/')) {
        tresor::path::SecretPath::parse(prefix)
            .map_err(|e| CliError::input(format!("--prefix {prefix}: {e}")))?;
        for (path, _) in &mut items {
            *path = format!("{prefix}/{path}");
        }
    }
    // The user's limit is checked here, before anything is sent (the agent holds only a ceiling).
    if let Some((path, value)) = items.iter().find(|(_, v)| v.0.len() > ctx.max_value) {
        let e = tresor::Error::TooLarge { size: value.0.len(), limit: ctx.max_value };
        return Err(CliError::input(format!("{path}: {e}")));
    }
    let count = items.len();
    let versions = call(ctx, tresor_wire::Set { op: AuditOp::Import, items, cas: None })?;
    // A name that had a version before gets a new one (its old values stay in its history):
    // said, so an import over existing secrets is not taken for one beside them.
    match versions.iter().filter(|v| **v > 1).count() {
        0 => errln!("imported {}", plural(count, "secret")),
        over => errln!(
            "imported {}: {over} of them new versions of secrets already there (`tresor history PATH` shows the old ones)",
            plural(count, "secret")
        ),
    }
    Ok(())
}

/// `tresor export`: a self-contained encrypted backup, written 0600.
pub(crate) fn export(ctx: &mut Ctx, out: PathBuf, force: bool) -> Result<(), CliError> {
    let to_stdout = out.as_os_str() == "-";
    // Checked before the vault is read; the write itself never replaces a name made meanwhile.
    if !to_stdout && !force && std::fs::symlink_metadata(&out).is_ok() {
        return Err(CliError::input(format!("{} exists: give --force to replace it", out.display())));
    }
    if to_stdout && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return Err(CliError::usage(
            "--out -: the backup is binary; redirect stdout to a file or a pipe".into(),
        ));
    }
    let archive = call(ctx, tresor_wire::Export)?;
    if to_stdout {
        outln_bytes(&archive.0)?;
        errln!("exported to stdout ({} bytes)", archive.0.len());
        return Ok(());
    }
    match force {
        true => write_private_file(&out, &archive.0)?,
        false => write_new_private_file(&out, &archive.0)?,
    }
    errln!("exported to {} ({} bytes)", out.display(), archive.0.len());
    Ok(())
}

/// `tresor gc`: removes superseded snapshots and orphans.
pub(crate) fn gc(ctx: &mut Ctx, grace: String, dry_run: bool, json: bool) -> Result<(), CliError> {
    let grace_secs = config::parse_duration_or_zero(&grace).map_err(CliError::input)?.as_secs();
    match call(ctx, tresor_wire::Gc { grace_secs, dry_run })? {
        r if json => print_json(&r),
        r => {
            let verb = if r.dry_run { "would remove" } else { "removed" };
            outln!(
                "{verb}: {} snapshot parts, {} orphan blobs, {} old key files, {} probe leftovers, \
                 {} orphan epoch keys, {} objects of destroyed epochs, {} staging files ({} bytes)",
                r.snapshot_parts,
                r.orphan_blobs,
                r.old_keyfiles,
                r.probes,
                r.orphan_epoch_keys,
                r.destroyed_epoch_objects,
                r.staging_files,
                r.bytes
            );
            outln!("kept: the snapshot at commit {}, every commit and audit record", r.snapshot);
            if r.older_era_objects > 0 {
                outln!(
                    "removed: {} objects of an older root era (an interrupted re-key)",
                    r.older_era_objects
                );
            }
            if r.foreign > 0 {
                outln!(
                    "left alone: {} that {} not tresor objects (`tresor doctor` lists them)",
                    plural(r.foreign, "entry"),
                    if r.foreign == 1 { "is" } else { "are" }
                );
            }
            if r.young_blobs > 0 {
                outln!(
                    "kept: {} unreferenced blobs younger than {} (a writer may still commit them)",
                    r.young_blobs,
                    grace.trim()
                );
            }
            Ok(())
        }
    }
}
