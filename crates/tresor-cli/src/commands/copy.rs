//! `tresor cp` and `tresor mv`: a secret (or, with `-r`, every secret under a prefix) copied to a
//! new path with its history — every version that can still be read, in order, so the newest is
//! the current one — and, for `mv`, deleted at its old path (where its history stays, and
//! `undelete` brings it back).
//!
//! Nothing is written until every source was found and every destination checked to be free
//! (`--force`: a destination that exists gets the versions as new versions of its own). Each copy
//! is a check-and-set on the version it expects: a writer who gets there meanwhile stops it.

use crate::exit::CliError;
use crate::resolve::Resolver;
use crate::*;

/// `tresor cp` (`remove_source` false) and `tresor mv` (true).
pub(crate) fn copy(ctx: &mut Ctx, args: crate::cli::CopyArgs, remove_source: bool) -> Result<(), CliError> {
    let crate::cli::CopyArgs { from, to, recursive, force, json } = args;
    let mut session = Resolver::new(ctx)?;
    let mut done = Vec::new();
    let pairs = plan(&mut session, &from, &to, recursive)?;
    // Every source and every destination is checked before anything is written.
    let mut plans = Vec::with_capacity(pairs.len());
    for (src, dst) in &pairs {
        let history = match session.history(dst) {
            Ok(history) => history,
            Err(e) if e.code == 4 => Vec::new(),
            Err(e) => return Err(e),
        };
        if history.iter().any(|h| h.current) && !force {
            return Err(CliError::input(format!(
                "{dst} exists: give --force to add the copied versions to it"
            )));
        }
        // A destination with versions (live, deleted or destroyed) takes new ones after them: the
        // check-and-set names its newest version, as Vault's KV v2 counts.
        let start = history.last().map_or(0, |h| h.version);
        let history = match session.history(src) {
            Ok(history) => history,
            Err(e) if e.code == 4 => return Err(crate::commands::secrets::folder_hint(&mut session, src, e)),
            Err(e) => return Err(e),
        };
        // A deleted secret is not there to copy (`get` says the same); `undelete` brings it back.
        if !history.iter().any(|h| h.current) {
            return Err(CliError::from_category(
                tresor::Category::NotFound,
                format!("{src} was deleted: `tresor undelete {src}` brings it back"),
            ));
        }
        let versions: Vec<u64> = history
            .into_iter()
            .filter(|h| h.deleted_ms.is_none() && !h.destroyed)
            .map(|h| h.version)
            .collect();
        plans.push((start, versions));
    }
    for ((src, dst), (start, versions)) in pairs.iter().zip(plans) {
        let mut at = start;
        for version in &versions {
            let value = session.read(&crate::refs::Reference {
                path: src.clone(),
                field: None,
                version: Some(*version),
            })?;
            at = session.write(dst, &value, Some(at))?;
        }
        if remove_source {
            // Only what was copied may be deleted: a version written meanwhile stays live.
            let deleted = session.delete(src)?;
            if Some(&deleted) != versions.last() {
                session.undelete(src, deleted)?;
                return Err(CliError::from_category(
                    tresor::Category::Conflict,
                    format!(
                        "{src} got version {deleted} while it was moved: {dst} has the versions before it, and {src} \
                         stays as it is"
                    ),
                ));
            }
        }
        let verb = if remove_source { "moved to" } else { "copied to" };
        errln!("{src}: {verb} {dst} ({}, {dst} now at version {at})", plural(versions.len(), "version"));
        done.push(serde_json::json!({ "from": src, "to": dst, "versions": versions.len(), "version": at }));
    }
    session.finish();
    if json {
        print_json(&done)?;
    }
    Ok(())
}

/// The (source, destination) pairs: one secret, or (`recursive`) every secret under a prefix
/// mapped under the other. A destination ending in `/` takes the source's last segment.
fn plan(
    session: &mut Resolver,
    from: &str,
    to: &str,
    recursive: bool,
) -> Result<Vec<(String, String)>, CliError> {
    let check = |p: &str| tresor::path::SecretPath::parse(p).map(drop).map_err(|e| CliError::from_core(&e));
    if !recursive {
        check(from)?;
        let to = match to.strip_suffix('/') {
            Some(folder) => format!("{folder}/{}", from.rsplit('/').next().unwrap_or(from)),
            None => to.to_string(),
        };
        check(&to)?;
        if to == from {
            return Err(CliError::input(format!("{from} is already there")));
        }
        return Ok(vec![(from.to_string(), to)]);
    }
    let src = from.trim_end_matches('/');
    // `cp -r a/b c/` puts b under c (`c/b/…`), as cp does; `cp -r a/b c` makes c what b was.
    let dst = match to.strip_suffix('/') {
        Some(folder) => format!("{}/{}", folder.trim_end_matches('/'), src.rsplit('/').next().unwrap_or(src)),
        None => to.to_string(),
    };
    let dst = dst.as_str();
    check(src)?;
    check(dst)?;
    if dst == src || dst.starts_with(&format!("{src}/")) {
        return Err(CliError::input(format!("{to} is inside {from}: a copy into itself never ends")));
    }
    let entries = session.list(&format!("{src}/"))?;
    if entries.is_empty() {
        return Err(CliError::from_category(tresor::Category::NotFound, format!("no secrets under {src}/")));
    }
    entries
        .into_iter()
        .map(|e| {
            let rest = e.path[src.len()..].to_string();
            let target = format!("{dst}{rest}");
            check(&target)?;
            Ok((e.path, target))
        })
        .collect()
}
