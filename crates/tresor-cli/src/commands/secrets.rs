//! The everyday commands on secrets: `set`, `get`, `list`, `rm`, `history`.

use crate::exit::CliError;
use crate::*;
use std::io::{Read, Write};
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
    let versions = call(ctx, set_request(&path, value, cas))?;
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
    let value = match (value, file) {
        (Some(v), _) => Zeroizing::new(v.into_bytes()),
        (None, Some(f)) => Zeroizing::new(
            std::fs::read(&f).map_err(|e| CliError::input(format!("cannot read {}: {e}", f.display())))?,
        ),
        (None, None) => {
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
    print_value(&call(ctx, tresor_wire::Get { path, version })?)
}

/// Writes a value `get` read, exactly, to stdout.
pub(crate) fn print_value(value: &SecretBuf) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(&value.0).and_then(|()| out.flush()).map_err(|e| CliError::other(e.to_string()))
}

/// `tresor list`: the live secrets under a prefix.
pub(crate) fn list(ctx: &mut Ctx, prefix: Option<String>, long: bool, json: bool) -> Result<(), CliError> {
    let entries = call(ctx, tresor_wire::List { prefix: prefix.unwrap_or_default() })?;
    if json {
        return print_json(&entries);
    }
    for e in entries {
        if long {
            outln!("{}\tv{}\t{}\t{}", e.path, e.version, e.size, format_time(e.updated_ms));
        } else {
            outln!("{}", e.path);
        }
    }
    Ok(())
}

/// `tresor rm`: deletes a secret's current version (its history is kept).
pub(crate) fn rm(ctx: &mut Ctx, path: String) -> Result<(), CliError> {
    let version = call(ctx, tresor_wire::Delete { path: path.clone() })?;
    eprintln!("{path}: version {version} deleted");
    Ok(())
}

/// `tresor history`: a secret's versions.
pub(crate) fn history(ctx: &mut Ctx, path: String, json: bool) -> Result<(), CliError> {
    let history = call(ctx, tresor_wire::History { path })?;
    if json {
        return print_json(&history);
    }
    for v in history {
        let state = match (v.current, v.deleted_ms) {
            (true, _) => "current".to_string(),
            (false, Some(t)) => format!("deleted {}", format_time(t)),
            (false, None) => "superseded".to_string(),
        };
        outln!("v{}\t{}\t{} bytes\t{state}", v.version, format_time(v.created_ms), v.size);
    }
    Ok(())
}
