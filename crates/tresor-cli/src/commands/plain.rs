//! `tresor export --format env|json`: the secrets in PLAINTEXT, for another tool — refused to a
//! terminal without `--force`, written to a new file with mode 0600 otherwise, and said to be
//! plaintext on stderr every time. Every value read is audited as a read.
//!
//! - env: `NAME='value'` lines under a `# PLAINTEXT` header; NAME is the path as `tresor run
//!   --prefix` names it (`db/api-key` → `DB_API_KEY`); values are single-quoted, or double-quoted
//!   with `\\`, `\"`, `\$` and backticks escaped when they hold a quote or a line break, so
//!   that a shell sourcing the file runs nothing. Line breaks are written as they are, inside the
//!   quotes (a PEM key spans lines): a shell and dotenv both read them back so, where a `\n`
//!   escape reached a shell as a backslash and an `n`.
//! - json: nested objects by path segment (`{"db": {"password": "…"}}`), which `tresor import`
//!   reads back.

use crate::exit::CliError;
use crate::refs::Reference;
use crate::resolve::Resolver;
use crate::*;
use std::io::IsTerminal;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// What `tresor export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ExportFormat {
    /// The encrypted, self-contained backup.
    Archive,
    /// PLAINTEXT `NAME='value'` lines.
    Env,
    /// PLAINTEXT JSON.
    Json,
}

/// `tresor export --format env|json`.
pub(crate) fn export(
    ctx: &mut Ctx,
    out: PathBuf,
    format: ExportFormat,
    prefix: Option<String>,
    force: bool,
) -> Result<(), CliError> {
    if format == ExportFormat::Archive {
        return Err(CliError::usage("--prefix: a backup holds the whole vault".into()));
    }
    let to_stdout = out.as_os_str() == "-";
    if to_stdout && std::io::stdout().is_terminal() && !force {
        return Err(CliError::usage(
            "this would show every secret in plaintext on the terminal: redirect it, or give --force".into(),
        ));
    }
    if !to_stdout && std::fs::symlink_metadata(&out).is_ok() {
        return Err(CliError::input(format!(
            "{} exists: plaintext is only written to a new file",
            out.display()
        )));
    }
    let folder = prefix.map(|p| format!("{}/", p.trim_end_matches('/'))).unwrap_or_default();
    let mut session = Resolver::new(ctx)?;
    let entries = session.list(&folder)?;
    if entries.is_empty() {
        errln!(
            "tresor: warning: no secrets{}: the export is empty",
            if folder.is_empty() { String::new() } else { format!(" under {folder}") }
        );
    }
    let mut items = Vec::with_capacity(entries.len());
    for e in entries {
        let value = session.read(&Reference { path: e.path.clone(), field: None, version: None })?;
        items.push((e.path[folder.len()..].to_string(), value));
    }
    session.finish();
    let text = match format {
        ExportFormat::Env => env_text(&items)?,
        _ => json_text(&items)?,
    };
    if to_stdout {
        outln_bytes(&text)?;
    } else {
        write_new_private_file(&out, &text)?;
    }
    let place = if to_stdout { "stdout".to_string() } else { out.display().to_string() };
    errln!(
        "tresor: wrote {} in PLAINTEXT to {place}: keep it safe, delete it when done",
        plural(items.len(), "secret")
    );
    Ok(())
}

fn env_text(items: &[(String, Zeroizing<Vec<u8>>)]) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let mut out = Zeroizing::new(b"# PLAINTEXT secrets exported by tresor\n".to_vec());
    let mut names = std::collections::BTreeMap::new();
    for (path, value) in items {
        let name = crate::commands::run::env_name(path);
        if let Some(other) = names.insert(name.clone(), path) {
            return Err(CliError::input(format!(
                "{other} and {path} would both be {name}: export them apart (--prefix)"
            )));
        }
        let text = std::str::from_utf8(value).map_err(|_| {
            CliError::input(format!(
                "{path}: not text, so not a .env value (use --format json or the archive)"
            ))
        })?;
        // A carriage return would read back as part of a line end (CRLF files): not a .env value.
        if text.contains('\r') {
            return Err(CliError::input(format!(
                "{path}: holds a carriage return, which a .env file cannot carry (use --format json or the archive)"
            )));
        }
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
        if text.contains(['\'', '\n']) {
            out.push(b'"');
            for c in text.chars() {
                match c {
                    '\\' => out.extend_from_slice(b"\\\\"),
                    '"' => out.extend_from_slice(b"\\\""),
                    '$' => out.extend_from_slice(b"\\$"),
                    // A shell sourcing the file would run what backticks hold.
                    '`' => out.extend_from_slice(b"\\`"),
                    c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                }
            }
            out.push(b'"');
        } else {
            out.push(b'\'');
            out.extend_from_slice(text.as_bytes());
            out.push(b'\'');
        }
        out.push(b'\n');
    }
    Ok(out)
}

fn json_text(items: &[(String, Zeroizing<Vec<u8>>)]) -> Result<Zeroizing<Vec<u8>>, CliError> {
    use serde_json::{Map, Value};
    let mut root = Map::new();
    for (path, value) in items {
        let text = std::str::from_utf8(value).map_err(|_| {
            CliError::input(format!("{path}: not text, so not a JSON string (use the archive)"))
        })?;
        let segments: Vec<&str> = path.split('/').collect();
        let (last, parents) = segments.split_last().unwrap_or((&"", &[]));
        let mut node = &mut root;
        for segment in parents {
            let entry = node.entry(segment.to_string()).or_insert_with(|| Value::Object(Map::new()));
            node = match entry {
                Value::Object(map) => map,
                _ => {
                    return Err(CliError::input(format!(
                        "{path}: a secret and a folder share the name {segment}"
                    )));
                }
            };
        }
        if node.contains_key(*last) {
            return Err(CliError::input(format!("{path}: a secret and a folder share its name")));
        }
        node.insert(last.to_string(), Value::String(text.to_string()));
    }
    let mut text =
        serde_json::to_vec_pretty(&Value::Object(root)).map_err(|e| CliError::other(e.to_string()))?;
    text.push(b'\n');
    Ok(Zeroizing::new(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(pairs: &[(&str, &str)]) -> Vec<(String, Zeroizing<Vec<u8>>)> {
        pairs.iter().map(|(p, v)| (p.to_string(), Zeroizing::new(v.as_bytes().to_vec()))).collect()
    }

    #[test]
    fn env_lines_read_back_as_they_were_written() {
        let given = [("db/api-key", "plain `id` $HOME"), ("quote", "it's \"x\" $HOME `id`\nline two\\")];
        let text = env_text(&items(&given)).unwrap();
        let parsed = crate::import::parse(crate::import::Format::Env, &text).unwrap();
        let got: Vec<(String, String)> =
            parsed.into_iter().map(|(k, v)| (k, String::from_utf8(v.0.to_vec()).unwrap())).collect();
        assert_eq!(got, [("DB_API_KEY".into(), given[0].1.into()), ("QUOTE".into(), given[1].1.into())]);
        assert!(env_text(&items(&[("a-b", "1"), ("a_b", "2")])).is_err());
    }

    /// A value over several lines, with a line break at its end too.
    const PEM: &str = "-----BEGIN KEY-----\nMIIB\\n$x \"q\" it's\n-----END KEY-----\n";

    #[test]
    fn regression_a_value_over_several_lines_reached_a_shell_with_backslash_n_in_it() {
        // Line breaks were written as `\n`, which dotenv reads as a line break but a shell
        // sourcing the file as a backslash and an `n`: a PEM key came out one long broken line.
        let text = env_text(&items(&[("key", PEM), ("after", "x")])).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.env");
        std::fs::write(&file, &*text).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(". {}; printf '%s|%s' \"$KEY\" \"$AFTER\"", file.display()))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{PEM}|x"));
        // And tresor reads it back the same.
        let parsed = crate::import::parse(crate::import::Format::Env, &text).unwrap();
        let got: Vec<(String, String)> =
            parsed.into_iter().map(|(k, v)| (k, String::from_utf8(v.0.to_vec()).unwrap())).collect();
        assert_eq!(got, [("KEY".into(), PEM.into()), ("AFTER".into(), "x".into())]);
        // A carriage return cannot be carried (it reads back as a line end): refused, by name.
        let Err(e) = env_text(&items(&[("crlf", "a\r\nb")])) else { panic!("a carriage return was written") };
        assert!(e.message().contains("crlf: holds a carriage return"), "{}", e.message());
    }

    #[test]
    fn a_shell_sourcing_the_env_file_runs_nothing_in_the_values() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let evil = format!("it's `touch {m}` $(touch {m}) $HOME \\x", m = marker.display());
        let text = env_text(&items(&[("a", &evil), ("b", "plain `touch x` $(id)")])).unwrap();
        let file = dir.path().join("x.env");
        std::fs::write(&file, &*text).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(". {}; printf '%s|%s' \"$A\" \"$B\"", file.display()))
            .output()
            .unwrap();
        assert!(!marker.exists(), "sourcing the file ran a command");
        assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{evil}|plain `touch x` $(id)"));
    }

    #[test]
    fn json_nests_by_path_and_reads_back() {
        let text = json_text(&items(&[("db/user", "u"), ("db/pw", "p"), ("top", "t")])).unwrap();
        let parsed = crate::import::parse(crate::import::Format::Json, &text).unwrap();
        let mut got: Vec<String> = parsed.into_iter().map(|(k, _)| k).collect();
        got.sort();
        assert_eq!(got, ["db/pw", "db/user", "top"]);
        assert!(json_text(&items(&[("a", "1"), ("a/b", "2")])).is_err());
    }
}
