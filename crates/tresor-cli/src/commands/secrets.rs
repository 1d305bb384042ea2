//! The everyday commands on secrets: `set`, `get`, `list`, `rm`, `history`.

use crate::exit::CliError;
use crate::*;
use std::io::{Read, Write};
use std::path::PathBuf;
use tresor::model::AuditOp;
use tresor::vault::format_time;
use tresor_wire::SecretBuf;

/// `tresor set`: a new version of a secret, from the argument, a file or stdin.
pub(crate) fn set(
    ctx: &mut Ctx,
    path: String,
    value: Option<String>,
    file: Option<PathBuf>,
    cas: Option<u64>,
    mut stdin: impl Read,
) -> Result<(), CliError> {
    let value = match (value, file) {
        (Some(v), _) => zeroize::Zeroizing::new(v.into_bytes()),
        (None, Some(f)) => zeroize::Zeroizing::new(
            std::fs::read(&f).map_err(|e| CliError::input(format!("cannot read {}: {e}", f.display())))?,
        ),
        (None, None) => {
            let mut buf = zeroize::Zeroizing::new(Vec::new());
            // One byte past the limit is enough to refuse an oversize value.
            (&mut stdin)
                .take(ctx.max_value as u64 + 1)
                .read_to_end(&mut buf)
                .map_err(|e| CliError::input(format!("cannot read the value from stdin: {e}")))?;
            buf
        }
    };
    if value.len() > ctx.max_value {
        return Err(CliError::from_core(&tresor::Error::TooLarge {
            size: value.len(),
            limit: ctx.max_value,
        }));
    }
    let set = tresor_wire::Set { op: AuditOp::Set, items: vec![(path.clone(), SecretBuf(value))], cas };
    let versions = call(ctx, set)?;
    eprintln!("{path}: version {}", versions.first().copied().unwrap_or(0));
    Ok(())
}

/// `tresor get`: a secret's value, as it is, on stdout.
pub(crate) fn get(ctx: &mut Ctx, path: String, version: Option<u64>) -> Result<(), CliError> {
    let value = call(ctx, tresor_wire::Get { path, version })?;
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
