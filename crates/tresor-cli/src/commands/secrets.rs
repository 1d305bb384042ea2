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
    json: bool,
    stdin: impl Read,
) -> Result<(), CliError> {
    let value = read_value(value, file, ctx.max_value, stdin)?;
    let cas_lost = |e| cas_lost(&path, cas, e);
    if let Some(remote) = &ctx.remote {
        let version = runtime()?.block_on(remote.set(&path, &value, cas)).map_err(cas_lost)?;
        report_set(&path, &[version]);
        return json_written(json, &path, version);
    }
    let versions = call(ctx, set_request(&path, value, cas)).map_err(cas_lost)?;
    report_set(&path, &versions);
    json_written(json, &path, versions.first().copied().unwrap_or(0))
}

/// A lost check-and-set is not to be blindly run again (the secret changed meanwhile): the
/// advice `set` gives, from the CLI and from the front alike.
pub(crate) fn cas_lost(path: &str, cas: Option<u64>, e: CliError) -> CliError {
    match (cas, e.code) {
        (Some(_), 6) => e.with_hint(format!(
            "`tresor history {path}` shows what changed; to write over it, set again with --cas and its version"
        )),
        _ => e,
    }
}

/// `{"path": …, "version": …}` on stdout when `json`: what `set` and `generate` print.
pub(crate) fn json_written(json: bool, path: &str, version: u64) -> Result<(), CliError> {
    if json {
        print_json(&serde_json::json!({ "path": path, "version": version }))?;
    }
    Ok(())
}

/// The value `set` stores: the argument, else the file, else stdin; refused past `max_value`.
pub(crate) fn read_value(
    value: Option<String>,
    file: Option<PathBuf>,
    max_value: usize,
    stdin: impl Read,
) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let source = crate::input::Source::of(file.as_deref());
    let value = match (value, source) {
        (Some(v), _) => Zeroizing::new(v.into_bytes()),
        // A person at a terminal types it twice, unseen (as `pass insert` asks).
        (None, crate::input::Source::Stdin) if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
            prompt_value()?
        }
        // From a file or stdin, one byte past the limit is the most read: a device that never
        // ends (`--file /dev/zero`) is refused, not read until memory runs out.
        (None, source) => {
            let piped = matches!(source, crate::input::Source::Stdin);
            let value = crate::input::read_limited(source, stdin, max_value, "max_value_size")?;
            // `failing_command | tresor set db/password` must not replace the password with
            // nothing (found by review). An empty value is stored when given as such.
            if piped && value.is_empty() {
                return Err(CliError::input(
                    "stdin was empty: nothing stored (did the command before the pipe fail?); to store an empty \
                     value, give it as the argument: tresor set PATH ''"
                        .into(),
                ));
            }
            return Ok(value);
        }
    };
    if value.len() > max_value {
        return Err(CliError::from_core(&tresor::Error::TooLarge { size: value.len(), limit: max_value }));
    }
    Ok(value)
}

/// A value typed at the terminal, twice, without echo; three tries to make them match.
fn prompt_value() -> Result<Zeroizing<Vec<u8>>, CliError> {
    let read = |label: &str| {
        rpassword::prompt_password(label)
            .map(|v| Zeroizing::new(v.into_bytes()))
            .map_err(|e| CliError::input(format!("cannot read the value from the terminal: {e}")))
    };
    for attempt in 1..=crate::password::ATTEMPTS {
        let first = read("Value: ")?;
        if first.is_empty() {
            return Err(CliError::input("empty value: nothing stored".into()));
        }
        let second = read("Repeat value: ")?;
        if subtle::ConstantTimeEq::ct_eq(first.as_slice(), second.as_slice()).into() {
            return Ok(first);
        }
        if attempt < crate::password::ATTEMPTS {
            errln!("tresor: the values do not match; try again");
        }
    }
    Err(CliError::input("the values did not match: nothing stored".into()))
}

/// The call `set` makes.
pub(crate) fn set_request(path: &str, value: Zeroizing<Vec<u8>>, cas: Option<u64>) -> tresor_wire::Set {
    tresor_wire::Set { op: AuditOp::Set, items: vec![(path.to_string(), SecretBuf(value))], cas }
}

/// What `set` tells on stderr once the value is stored.
pub(crate) fn report_set(path: &str, versions: &[u64]) {
    errln!("{path}: version {}", versions.first().copied().unwrap_or(0));
}

/// `tresor get`: a secret's value, as it is, on stdout; several, each ending in a newline.
pub(crate) fn get(
    ctx: &mut Ctx,
    paths: Vec<String>,
    version: Option<u64>,
    (clip, json): (bool, bool),
) -> Result<(), CliError> {
    if paths.len() > 1 && (version.is_some() || clip) {
        return Err(CliError::usage("--version and --clip take one path".into()));
    }
    if clip && json {
        return Err(CliError::usage("--clip prints nothing: it does not go with --json".into()));
    }
    // A path, or a reference (tresor://PATH#FIELD?version=N), checked before anything is read.
    let mut references = Vec::with_capacity(paths.len());
    for path in &paths {
        // A plain path is checked as every command checks one (the front's message, exactly).
        let mut reference = match path.contains("://") {
            true => crate::refs::Reference::parse_or_path(path).map_err(CliError::input)?,
            false => {
                tresor::path::SecretPath::parse(path).map_err(|e| CliError::from_core(&e))?;
                crate::refs::Reference { path: path.clone(), field: None, version: None }
            }
        };
        if version.is_some() {
            reference.version = version;
        }
        references.push(reference);
    }
    // Every value is read before any is printed: a missing one prints nothing.
    let mut resolver = crate::resolve::Resolver::new(ctx)?;
    let mut values = Vec::with_capacity(references.len());
    for reference in &references {
        values.push(resolver.read(reference)?);
    }
    resolver.finish();
    if json {
        let shown: Vec<_> = references.iter().zip(&values).map(|(r, v)| (r, v.as_slice())).collect();
        return print_values_json(&shown, true);
    }
    if clip {
        let (Some(path), Some(value)) = (paths.first(), values.first()) else { return Ok(()) };
        return crate::commands::clip::copy(path, value);
    }
    // Several values each end in a line break; one is printed as `print_value` does.
    if let [value] = values.as_mut_slice() {
        return print_value(&SecretBuf(std::mem::take(value)));
    }
    for mut value in values {
        if !value.ends_with(b"\n") {
            value.push(b'\n');
        }
        outln_bytes(&value)?;
    }
    Ok(())
}

/// Writes a value `get` read, exactly, to stdout.
/// (A reader that stops early — `| head -c 10` — ends the output quietly.)
/// Values as JSON on stdout, for `get --json` (a list) and `read --json` (one object): each
/// `{path, field, version, value}`, with `value_base64` instead of `value` for bytes that are
/// not UTF-8. Written through one buffer sized for the worst case and wiped after, so no copy of
/// a value is left behind by a growing buffer.
pub(crate) fn print_values_json(
    shown: &[(&crate::refs::Reference, &[u8])],
    list: bool,
) -> Result<(), CliError> {
    use base64ct::Encoding;
    #[derive(serde::Serialize)]
    struct Shown<'a> {
        path: &'a str,
        field: Option<&'a str>,
        version: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        value: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        value_base64: Option<&'a str>,
    }
    let encoded: Vec<zeroize::Zeroizing<String>> = shown
        .iter()
        .map(|(_, v)| match std::str::from_utf8(v) {
            Ok(_) => zeroize::Zeroizing::new(String::new()),
            Err(_) => zeroize::Zeroizing::new(base64ct::Base64::encode_string(v)),
        })
        .collect();
    let items: Vec<Shown<'_>> = shown
        .iter()
        .zip(&encoded)
        .map(|((r, v), b64)| {
            let text = std::str::from_utf8(v).ok();
            Shown {
                path: &r.path,
                field: r.field.as_deref(),
                version: r.version,
                value: text,
                value_base64: text.is_none().then_some(b64.as_str()),
            }
        })
        .collect();
    // Every byte escaped as \u00XX at worst, plus the names and punctuation.
    let room: usize = shown
        .iter()
        .map(|(r, v)| 6 * (v.len() + r.path.len() + r.field.as_ref().map_or(0, String::len)) + 128)
        .sum();
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(room + 16));
    let written = if list {
        serde_json::to_writer_pretty(&mut *out, &items)
    } else {
        serde_json::to_writer_pretty(&mut *out, &items.first())
    };
    written.map_err(|e| CliError::other(e.to_string()))?;
    out.push(b'\n');
    outln_bytes(&out)
}

pub(crate) fn print_value(value: &SecretBuf) -> Result<(), CliError> {
    // On a terminal, a value without a final line break gets one (the prompt would run on).
    if std::io::IsTerminal::is_terminal(&std::io::stdout()) && !value.0.ends_with(b"\n") {
        let mut shown = value.0.clone();
        shown.push(b'\n');
        return outln_bytes(&shown);
    }
    outln_bytes(&value.0)
}

/// `tresor list`: the live secrets under a prefix.
pub(crate) fn list(
    ctx: &mut Ctx,
    prefix: Option<String>,
    long: bool,
    tree: bool,
    deleted: bool,
    json: bool,
) -> Result<(), CliError> {
    let prefix = prefix.unwrap_or_default();
    let entries = match &ctx.remote {
        Some(_) if deleted => {
            return Err(CliError::usage(
                "--deleted lists a vault opened here; a server shows deleted versions in `tresor history PATH`".into(),
            ));
        }
        Some(remote) => runtime()?.block_on(remote.list(&prefix))?,
        None => call(ctx, tresor_wire::List { prefix, deleted })?,
    };
    let sizes = ctx.remote.is_none();
    if json {
        return print_json(&entries);
    }
    if tree {
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        for line in tree_lines(&paths) {
            outln!("{line}");
        }
        return Ok(());
    }
    for e in entries {
        if long {
            // A server does not say how big a value is.
            let size = if sizes { e.size.to_string() } else { "-".into() };
            let when = match deleted {
                true => format!("deleted {}", format_time(e.updated_ms)),
                false => format_time(e.updated_ms),
            };
            outln!("{}\tv{}\t{size}\t{when}", crate::shown::text(&e.path), e.version);
        } else {
            outln!("{}", crate::shown::text(&e.path));
        }
    }
    Ok(())
}

/// Sorted paths drawn as a tree (`tree`'s lines: `├── `, `└── `, `│   `).
pub(crate) fn tree_lines(paths: &[&str]) -> Vec<String> {
    let mut sorted: Vec<Vec<&str>> = paths.iter().map(|p| p.split('/').collect()).collect();
    sorted.sort();
    let mut out = Vec::new();
    draw(&sorted, 0, "", &mut out);
    out
}

fn draw(paths: &[Vec<&str>], depth: usize, indent: &str, out: &mut Vec<String>) {
    // Group the paths by their segment at `depth`, in order.
    let mut groups: Vec<(&str, Vec<Vec<&str>>)> = Vec::new();
    for p in paths.iter().filter(|p| p.len() > depth) {
        match groups.last_mut() {
            Some((name, members)) if *name == p[depth] => members.push(p.clone()),
            _ => groups.push((p[depth], vec![p.clone()])),
        }
    }
    let count = groups.len();
    for (i, (name, members)) in groups.into_iter().enumerate() {
        let last = i + 1 == count;
        let (branch, more) = match (depth, last) {
            (0, _) => ("", ""),
            (_, true) => ("└── ", "    "),
            (_, false) => ("├── ", "│   "),
        };
        out.push(format!("{indent}{branch}{}", crate::shown::text(name)));
        draw(&members, depth + 1, &format!("{indent}{more}"), out);
    }
}

/// `tresor find`: the live paths containing `pattern`, in any case.
pub(crate) fn find(ctx: &mut Ctx, pattern: String, json: bool) -> Result<(), CliError> {
    let entries = match &ctx.remote {
        Some(remote) => runtime()?.block_on(remote.list(""))?,
        None => call(ctx, tresor_wire::List { prefix: String::new(), deleted: false })?,
    };
    let needle = pattern.to_lowercase();
    let found: Vec<_> = entries.into_iter().filter(|e| e.path.to_lowercase().contains(&needle)).collect();
    if json {
        // The shape of `list --json`; an empty array rather than an error.
        return print_json(&found);
    }
    for e in &found {
        outln!("{}", crate::shown::text(&e.path));
    }
    if found.is_empty() {
        return Err(CliError::from_category(
            tresor::Category::NotFound,
            format!("no secret path contains {pattern:?}"),
        ));
    }
    Ok(())
}

/// `tresor rm`: deletes secrets' current versions (their history is kept); with `recursive`,
/// everything under each path taken as a prefix. The first path that fails stops the rest (those
/// deleted before it stay deleted: `undelete` brings them back).
pub(crate) fn rm(ctx: &mut Ctx, paths: Vec<String>, recursive: bool, json: bool) -> Result<(), CliError> {
    let mut session = crate::resolve::Resolver::new(ctx)?;
    let mut targets = Vec::new();
    for path in paths {
        if !recursive {
            // Every path is checked before any is deleted.
            match session.history(&path) {
                Ok(history) if history.iter().any(|h| h.current) => {}
                Ok(_) => {
                    return Err(CliError::from_category(
                        tresor::Category::NotFound,
                        format!("{path} is deleted already"),
                    )
                    .with_hint("`tresor list --deleted` lists what `undelete` can bring back".into()));
                }
                Err(e) if e.code == 4 => return Err(folder_hint(&mut session, &path, e)),
                Err(e) => return Err(e),
            }
            targets.push(path);
            continue;
        }
        let folder = format!("{}/", path.trim_end_matches('/'));
        let entries = session.list(&folder)?;
        if entries.is_empty() {
            return Err(CliError::from_category(
                tresor::Category::NotFound,
                format!("no secrets under {folder}"),
            ));
        }
        targets.extend(entries.into_iter().map(|e| e.path));
    }
    let mut deleted = Vec::new();
    for path in targets {
        let version = session.delete(&path)?;
        errln!("{path}: version {version} deleted");
        deleted.push(serde_json::json!({ "path": path, "version": version }));
    }
    session.finish();
    if json {
        print_json(&deleted)?;
    }
    Ok(())
}

/// A "no secret at PATH" that says so when PATH is a folder (`-r` was meant).
pub(crate) fn folder_hint(session: &mut crate::resolve::Resolver, path: &str, e: CliError) -> CliError {
    let folder = format!("{}/", path.trim_end_matches('/'));
    match session.list(&folder) {
        Ok(entries) if !entries.is_empty() => e.with_hint(format!(
            "{folder} holds {}: give -r for all of them",
            plural(entries.len(), "secret")
        )),
        _ => e,
    }
}

/// `tresor undelete`: deleted versions of a secret live again (the newest when none is named).
pub(crate) fn undelete(ctx: &mut Ctx, path: String, versions: Vec<u64>, json: bool) -> Result<(), CliError> {
    let undeleted =
        match &ctx.remote {
            Some(remote) => {
                let rt = runtime()?;
                let versions = match versions.is_empty() {
                    true => vec![rt.block_on(remote.history(&path))?.last().map_or(0, |h| h.version)],
                    false => versions,
                };
                rt.block_on(remote.mark_versions("undelete", &path, &versions))?;
                versions
            }
            None => call(ctx, tresor_wire::UndeleteVersions { path: path.clone(), versions }).map_err(
                |e| match e.code {
                    4 => e.with_hint("`tresor list --deleted` lists what can be undeleted".into()),
                    _ => e,
                },
            )?,
        };
    match undeleted.as_slice() {
        [] if ctx.remote.is_none() => errln!("{path}: nothing to undelete (not deleted, or destroyed)"),
        done => errln!("{path}: {} undeleted", versions_text(done)),
    }
    if json {
        print_json(&serde_json::json!({ "path": path, "undeleted": undeleted }))?;
    }
    Ok(())
}

/// `tresor undelete -r PREFIX`: every secret under the prefix whose newest version is deleted
/// gets it back (what `rm -r` deleted).
pub(crate) fn undelete_all(ctx: &mut Ctx, prefix: String, json: bool) -> Result<(), CliError> {
    if ctx.remote.is_some() {
        return Err(CliError::usage(
            "undelete -r works on a vault opened here (a server lists no deleted secrets)".into(),
        ));
    }
    let folder = format!("{}/", prefix.trim_end_matches('/'));
    let mut session = Session::new(ctx)?;
    let deleted = session.call(tresor_wire::List { prefix: folder.clone(), deleted: true })?;
    if deleted.is_empty() {
        return Err(CliError::from_category(
            tresor::Category::NotFound,
            format!("nothing deleted under {folder}"),
        ));
    }
    let mut done = Vec::with_capacity(deleted.len());
    for entry in deleted {
        let versions =
            session.call(tresor_wire::UndeleteVersions { path: entry.path.clone(), versions: Vec::new() })?;
        errln!("{}: {} undeleted", entry.path, versions_text(&versions));
        done.push(serde_json::json!({ "path": entry.path, "undeleted": versions }));
    }
    session.finish();
    if json {
        print_json(&done)?;
    }
    Ok(())
}

/// `tresor destroy`: versions whose values leave the store for good. Exit 11 when the store kept
/// some of their ciphertext (an object it would not delete, old object versions).
pub(crate) fn destroy(ctx: &mut Ctx, path: String, versions: Vec<u64>, json: bool) -> Result<(), CliError> {
    if let Some(remote) = &ctx.remote {
        runtime()?.block_on(remote.mark_versions("destroy", &path, &versions))?;
        errln!("{path}: {} destroyed", versions_text(&versions));
        if json {
            print_json(&serde_json::json!({ "path": path, "destroyed": versions }))?;
        }
        return Ok(());
    }
    let report = call(ctx, tresor_wire::DestroyVersions { path: path.clone(), versions })?;
    if json {
        print_json(&report)?;
    }
    if report.destroyed.is_empty() {
        errln!("{path}: nothing to destroy (no such versions, or destroyed already)");
        return Ok(());
    }
    errln!(
        "{path}: {} destroyed ({} deleted, {} moved out of them)",
        versions_text(&report.destroyed),
        plural(usize::try_from(report.deleted_objects).unwrap_or(usize::MAX), "object"),
        plural(usize::try_from(report.moved).unwrap_or(usize::MAX), "other value")
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

#[cfg(test)]
mod tests {
    use super::tree_lines;

    #[test]
    fn paths_draw_as_a_tree() {
        let lines = tree_lines(&["db/password", "app/prod/db/url", "app/prod/api-key", "db/creds", "top"]);
        let expected = [
            "app",
            "└── prod",
            "    ├── api-key",
            "    └── db",
            "        └── url",
            "db",
            "├── creds",
            "└── password",
            "top",
        ];
        assert_eq!(lines, expected);
    }
}
