//! The everyday commands on secrets: `set`, `get`, `list`, `rm`, `history` — on the vault here
//! (through the agent, or opened in this process) or on a server (`TRESOR_ADDR`, `remote.rs`).

use crate::exit::CliError;
use crate::*;
use std::io::Read;
use std::path::PathBuf;
use tresor::model::AuditOp;
use tresor::vault::format_time;
use tresor_wire::SecretBuf;
use zeroize::Zeroizing;

/// `tresor set`: a new version of a secret, from the argument, a file or stdin.
pub(crate) fn set(
    ctx: &mut Ctx,
    path: String,
    value: Option<String>,
    file: Option<PathBuf>,
    cas: Option<u64>,
    stdin: impl Read,
) -> Result<(), CliError> {
    let value = read_value(value, file, ctx.max_value, stdin)?;
    // A lost check-and-set is not to be blindly run again: the secret changed meanwhile.
    let cas_lost = |e: CliError| {
        match (cas, e.code) {
        (Some(_), 6) => e.with_hint(format!(
            "`tresor history {path}` shows what changed; to write over it, set again with --cas and its version"
        )),
        _ => e,
    }
    };
    if let Some(remote) = &ctx.remote {
        let version = runtime()?.block_on(remote.set(&path, &value, cas)).map_err(cas_lost)?;
        report_set(&path, &[version]);
        return Ok(());
    }
    let versions = call(ctx, set_request(&path, value, cas)).map_err(cas_lost)?;
    report_set(&path, &versions);
    Ok(())
}

/// The value `set` stores: the argument, else the file, else stdin; refused past `max_value`.
pub(crate) fn read_value(
    value: Option<String>,
    file: Option<PathBuf>,
    max_value: usize,
    mut stdin: impl Read,
) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let from_stream = value.is_none() && file.as_ref().is_none_or(|f| f.as_os_str() == "-");
    let value = match (value, file) {
        (Some(v), _) => Zeroizing::new(v.into_bytes()),
        (None, Some(f)) if f.as_os_str() != "-" => Zeroizing::new(
            std::fs::read(&f).map_err(|e| CliError::input(format!("cannot read {}: {e}", f.display())))?,
        ),
        (None, _) => {
            let mut buf = Zeroizing::new(Vec::new());
            // One byte past the limit is enough to refuse an oversize value.
            (&mut stdin)
                .take(max_value as u64 + 1)
                .read_to_end(&mut buf)
                .map_err(|e| CliError::input(format!("cannot read the value from stdin: {e}")))?;
            buf
        }
    };
    if value.len() > max_value {
        // From a stream, only the first byte past the limit was read: its size is not known.
        if from_stream {
            return Err(CliError::input(format!(
                "the value on stdin is larger than the limit of {max_value} bytes (max_value_size)"
            )));
        }
        return Err(CliError::from_core(&tresor::Error::TooLarge { size: value.len(), limit: max_value }));
    }
    Ok(value)
}

/// The call `set` makes.
pub(crate) fn set_request(path: &str, value: Zeroizing<Vec<u8>>, cas: Option<u64>) -> tresor_wire::Set {
    tresor_wire::Set { op: AuditOp::Set, items: vec![(path.to_string(), SecretBuf(value))], cas }
}

/// What `set` tells on stderr once the value is stored.
pub(crate) fn report_set(path: &str, versions: &[u64]) {
    eprintln!("{path}: version {}", versions.first().copied().unwrap_or(0));
}

/// `tresor get`: a secret's value, as it is, on stdout.
pub(crate) fn get(ctx: &mut Ctx, path: String, version: Option<u64>) -> Result<(), CliError> {
    if let Some(remote) = &ctx.remote {
        return print_value(&runtime()?.block_on(remote.get(&path, version))?);
    }
    print_value(&call(ctx, tresor_wire::Get { path, version })?)
}

/// Writes a value `get` read, exactly, to stdout.
/// (A reader that stops early — `| head -c 10` — ends the output quietly.)
pub(crate) fn print_value(value: &SecretBuf) -> Result<(), CliError> {
    outln_bytes(&value.0)
}

/// `tresor list`: the live secrets under a prefix.
pub(crate) fn list(ctx: &mut Ctx, prefix: Option<String>, long: bool, json: bool) -> Result<(), CliError> {
    let prefix = prefix.unwrap_or_default();
    let entries = match &ctx.remote {
        Some(remote) => runtime()?.block_on(remote.list(&prefix))?,
        None => call(ctx, tresor_wire::List { prefix })?,
    };
    let sizes = ctx.remote.is_none();
    if json {
        return print_json(&entries);
    }
    for e in entries {
        if long {
            // A server does not say how big a value is.
            let size = if sizes { e.size.to_string() } else { "-".into() };
            outln!("{}\tv{}\t{size}\t{}", e.path, e.version, format_time(e.updated_ms));
        } else {
            outln!("{}", e.path);
        }
    }
    Ok(())
}

/// `tresor rm`: deletes a secret's current version (its history is kept).
pub(crate) fn rm(ctx: &mut Ctx, path: String) -> Result<(), CliError> {
    let version = match &ctx.remote {
        Some(remote) => runtime()?.block_on(remote.rm(&path))?,
        None => call(ctx, tresor_wire::Delete { path: path.clone() })?,
    };
    eprintln!("{path}: version {version} deleted");
    Ok(())
}

/// `tresor undelete`: deleted versions of a secret live again (the newest when none is named).
pub(crate) fn undelete(ctx: &mut Ctx, path: String, versions: Vec<u64>) -> Result<(), CliError> {
    let undeleted = match &ctx.remote {
        Some(remote) => {
            let rt = runtime()?;
            let versions = match versions.is_empty() {
                true => vec![rt.block_on(remote.history(&path))?.last().map_or(0, |h| h.version)],
                false => versions,
            };
            rt.block_on(remote.mark_versions("undelete", &path, &versions))?;
            versions
        }
        None => call(ctx, tresor_wire::UndeleteVersions { path: path.clone(), versions })?,
    };
    match undeleted.as_slice() {
        [] if ctx.remote.is_none() => eprintln!("{path}: nothing to undelete (not deleted, or destroyed)"),
        done => eprintln!("{path}: {} undeleted", versions_text(done)),
    }
    Ok(())
}

/// `tresor destroy`: versions whose values leave the store for good. Exit 11 when the store kept
/// some of their ciphertext (an object it would not delete, old object versions).
pub(crate) fn destroy(ctx: &mut Ctx, path: String, versions: Vec<u64>) -> Result<(), CliError> {
    if let Some(remote) = &ctx.remote {
        runtime()?.block_on(remote.mark_versions("destroy", &path, &versions))?;
        eprintln!("{path}: {} destroyed", versions_text(&versions));
        return Ok(());
    }
    let report = call(ctx, tresor_wire::DestroyVersions { path: path.clone(), versions })?;
    if report.destroyed.is_empty() {
        eprintln!("{path}: nothing to destroy (no such versions, or destroyed already)");
        return Ok(());
    }
    eprintln!(
        "{path}: {} destroyed ({} objects deleted, {} other values moved out of them)",
        versions_text(&report.destroyed),
        report.deleted_objects,
        report.moved
    );
    if !report.complete() {
        return Err(CliError::incomplete(format!(
            "the store still holds some of their ciphertext: {} objects not deleted, old object versions: {:?}; \
             `tresor gc` removes unreferenced objects",
            report.remaining_objects.len(),
            report.residue
        )));
    }
    Ok(())
}

/// "version 3" or "versions 1, 2".
fn versions_text(versions: &[u64]) -> String {
    let numbers: Vec<String> = versions.iter().map(u64::to_string).collect();
    match versions {
        [_] => format!("version {}", numbers[0]),
        _ => format!("versions {}", numbers.join(", ")),
    }
}

/// `tresor history`: a secret's versions.
pub(crate) fn history(ctx: &mut Ctx, path: String, json: bool) -> Result<(), CliError> {
    let history = match &ctx.remote {
        Some(remote) => runtime()?.block_on(remote.history(&path))?,
        None => call(ctx, tresor_wire::History { path })?,
    };
    if json {
        return print_json(&history);
    }
    for v in history {
        let state = match (v.current, v.destroyed, v.deleted_ms) {
            (true, _, _) => "current".to_string(),
            (false, true, _) => "destroyed".to_string(),
            (false, false, Some(t)) => format!("deleted {}", format_time(t)),
            (false, false, None) => "superseded".to_string(),
        };
        // A server does not say how big a value is.
        let size = if ctx.remote.is_some() { "-".to_string() } else { format!("{} bytes", v.size) };
        outln!("v{}\t{}\t{size}\t{state}", v.version, format_time(v.created_ms));
    }
    Ok(())
}
