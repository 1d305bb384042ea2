//! The `tresor` front: serves `get`, `set`, `encrypt` and `decrypt` through an unlocked agent, and
//! hands every other command line to `tresor-cli` unread (ARCHITECTURE.md, "The front binary").
//! This file reads the command line and serves `get` and `set`; [`transit`] serves `encrypt` and
//! `decrypt`; [`hand_over`] becomes `tresor-cli`.
//!
//! The front understands only the plainest forms — `get PATH [--version N]`,
//! `set PATH [VALUE] [--cas N]` with the value as an argument, on stdin (not a terminal) or in a
//! regular file (`--file FILE`), `encrypt KEY [FILE] [--alg ALG]` to a stdout that is not a
//! terminal, `decrypt KEY FILE` of a streamed message, and
//! `--vault`/`--config` anywhere — and resolves them with the CLI's own functions (settings,
//! agent call, value reading, output, errors). Anything else, however valid, is handed over:
//! whether a command line is right is for the CLI to say, in one voice.

mod hand_over;
mod transit;

use crate::commands::secrets;
use crate::ctx::{agent_call, agent_call_on, agent_failed};
use crate::exit::CliError;
use hand_over::hand_over;
use std::ffi::OsString;
use std::io::IsTerminal;
use zeroize::Zeroizing;

/// The front's entry point, called by the binary's own C `main` (see `bin/tresor.rs`): serves the
/// command line, or becomes `tresor-cli` with it; returns the exit status.
///
/// Rust's runtime start-up does not run before it: the binary ignores SIGPIPE itself, and this
/// flushes stdout at the end (a failure is exit 1, as any failed write of the CLI).
pub fn main() -> u8 {
    let code = serve_line();
    match std::io::Write::flush(&mut std::io::stdout()) {
        Err(e) if code == 0 => {
            CliError::other(format!("cannot write to stdout: {e}")).print();
            1
        }
        _ => code,
    }
}

/// Serves the command line, or becomes `tresor-cli` with it.
fn serve_line() -> u8 {
    // The front may hold a value: no core dumps, no ptrace, as in every tresor process.
    let _ = tresor_server::harden::apply();
    let Some(line) = parse(std::env::args_os().skip(1), |name| std::env::var_os(name)) else {
        return hand_over(None);
    };
    match serve(line) {
        Outcome::Done => 0,
        Outcome::Failed(e) => {
            e.print();
            e.code
        }
        Outcome::HandOver(stdin) => hand_over(stdin),
    }
}

/// A command line the front can serve. (Compared only in tests; its `Debug` never shows a value.)
#[derive(Debug)]
#[cfg_attr(test, derive(PartialEq))]
struct Line {
    vault: Option<String>,
    config: Option<String>,
    op: Op,
}

/// The operations the front serves.
#[cfg_attr(test, derive(PartialEq))]
enum Op {
    Get { path: String, version: Option<u64> },
    Set { path: String, value: Option<String>, file: Option<String>, cas: Option<u64> },
    Encrypt { key: String, file: Option<String>, alg: Option<String> },
    Decrypt { key: String, file: String },
}

/// Shows an operation without the value a `set` carries on its command line.
impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Get { path, version } => {
                f.debug_struct("Get").field("path", path).field("version", version).finish()
            }
            Op::Set { path, value, file, cas } => f
                .debug_struct("Set")
                .field("path", path)
                .field("value", &value.as_ref().map(|_| "[REDACTED]"))
                .field("file", file)
                .field("cas", cas)
                .finish(),
            Op::Encrypt { key, file, alg } => {
                f.debug_struct("Encrypt").field("key", key).field("file", file).field("alg", alg).finish()
            }
            Op::Decrypt { key, file } => {
                f.debug_struct("Decrypt").field("key", key).field("file", file).finish()
            }
        }
    }
}

/// How serving a line ended.
enum Outcome {
    /// Served: exit 0.
    Done,
    /// Failed as the CLI would have failed.
    Failed(CliError),
    /// Not served: hand the line to `tresor-cli`, with the value already read from stdin, if any.
    HandOver(Option<Zeroizing<Vec<u8>>>),
}

/// The line, if it is one of the plain forms the front serves (`None`: hand it over); `env` reads
/// the environment variables that stand in for options.
fn parse(args: impl Iterator<Item = OsString>, env: impl Fn(&str) -> Option<OsString>) -> Option<Line> {
    // A server named: the CLI talks to it.
    if env("TRESOR_ADDR").is_some_and(|a| !a.is_empty()) {
        return None;
    }
    let args: Vec<String> = args.map(OsString::into_string).collect::<Result<_, _>>().ok()?;
    let mut args = args.into_iter();
    let (mut vault, mut config, mut version, mut cas, mut file, mut alg) =
        (None, None, None, None, None, None);
    let mut command: Option<String> = None;
    let mut positional = Vec::new();
    while let Some(arg) = args.next() {
        if !arg.starts_with('-') {
            match command {
                None if ["get", "set", "encrypt", "decrypt"].contains(&arg.as_str()) => command = Some(arg),
                None => return None,
                Some(_) => positional.push(arg),
            }
            continue;
        }
        // Only `--name VALUE` and `--name=VALUE` of the six options below; a short flag, `--`,
        // help, or any other option is the CLI's to read.
        let long = arg.strip_prefix("--")?;
        let (name, inline) = match long.split_once('=') {
            Some((name, value)) => (name.to_string(), Some(value.to_string())),
            None => (long.to_string(), None),
        };
        let slot = match (name.as_str(), command.as_deref()) {
            ("vault", _) => &mut vault,
            ("config", _) => &mut config,
            ("version", Some("get")) => &mut version,
            ("cas", Some("set")) => &mut cas,
            ("file", Some("set")) => &mut file,
            ("alg", Some("encrypt")) => &mut alg,
            _ => return None,
        };
        let value = match inline {
            Some(value) => value,
            None => args.next()?,
        };
        // Given twice, empty, or looking like an option: the CLI says what is wrong.
        if slot.is_some() || value.is_empty() || value.starts_with('-') {
            return None;
        }
        *slot = Some(value);
    }
    let op = match (command?.as_str(), positional.as_slice()) {
        // A reference (`tresor://…#field`) is the CLI's to resolve.
        ("get", [path]) if !path.contains("://") => Op::Get { path: path.clone(), version: number(version)? },
        ("set", [path]) => Op::Set { path: path.clone(), value: None, file, cas: number(cas)? },
        // A value and a file both: the CLI says which one is wrong.
        ("set", [path, value]) if file.is_none() => {
            Op::Set { path: path.clone(), value: Some(value.clone()), file: None, cas: number(cas)? }
        }
        ("encrypt", [key]) => Op::Encrypt { key: key.clone(), file: None, alg },
        ("encrypt", [key, input]) => Op::Encrypt { key: key.clone(), file: Some(input.clone()), alg },
        ("decrypt", [key, input]) => Op::Decrypt { key: key.clone(), file: input.clone() },
        _ => return None,
    };
    let vault = match vault {
        Some(v) => Some(v),
        None => from_env(env("TRESOR_VAULT"))?,
    };
    let config = match config {
        Some(c) => Some(c),
        None => from_env(env("TRESOR_CONFIG"))?,
    };
    Some(Line { vault, config, op })
}

/// An optional number option: `Some(None)` when absent, `None` when it is not a number.
fn number(text: Option<String>) -> Option<Option<u64>> {
    match text {
        None => Some(None),
        Some(text) => text.parse().ok().map(Some),
    }
}

/// An environment variable standing in for an option: `Some(None)` when unset, `None` (hand the
/// line over) when it is set but empty or not Unicode.
fn from_env(value: Option<OsString>) -> Option<Option<String>> {
    match value {
        None => Some(None),
        Some(value) => value.into_string().ok().filter(|v| !v.is_empty()).map(Some),
    }
}

/// Serves `line` through the agent, with the CLI's settings, call, output and errors.
fn serve(line: Line) -> Outcome {
    // A setting the CLI would refuse is the CLI's to report.
    let Ok(ctx) = crate::settings(line.vault, line.config.map(Into::into), None) else {
        return Outcome::HandOver(None);
    };
    match line.op {
        Op::Get { path, version } => {
            match agent_call(&ctx, &tresor_wire::Get { path: path.clone(), version }) {
                Ok(Some(got)) => {
                    let printed = secrets::print_value(&got.value);
                    if let Some(others) = got.conflict {
                        crate::ctx::warn_conflict(&path, others);
                    }
                    done(printed)
                }
                Ok(None) => Outcome::HandOver(None),
                Err(e) => Outcome::Failed(e),
            }
        }
        Op::Set { path, value, file, cas } => {
            if file.as_deref().is_some_and(|f| !regular_file(f)) {
                return Outcome::HandOver(None);
            }
            let from_stdin = value.is_none() && file.is_none();
            // Stdin stays unread unless a live agent is there to take the value, and the CLI could
            // take it over: a terminal is the CLI's to prompt on, and without an agent the CLI
            // reads the value itself.
            if from_stdin && (std::io::stdin().is_terminal() || hand_over::full_cli().is_err()) {
                return Outcome::HandOver(None);
            }
            let stream = match tresor_wire::client::connect(&ctx.socket()) {
                Ok(Some(stream)) => stream,
                Ok(None) => return Outcome::HandOver(None),
                Err(e) => return Outcome::Failed(agent_failed(e)),
            };
            let file = file.map(std::path::PathBuf::from);
            let value = match secrets::read_value(value, file, ctx.max_value, std::io::stdin().lock()) {
                Ok(value) => value,
                Err(e) => return Outcome::Failed(e),
            };
            let kept = from_stdin.then(|| value.clone());
            let call = secrets::set_request(&path, value, cas);
            match agent_call_on(stream, &call).map_err(|e| secrets::cas_lost(&path, cas, e)) {
                Ok(Some(versions)) => {
                    secrets::report_set(&path, &versions);
                    Outcome::Done
                }
                // Locked between the connection and the call: the CLI asks for the password.
                Ok(None) => Outcome::HandOver(kept),
                Err(e) => Outcome::Failed(e),
            }
        }
        Op::Encrypt { key, file, alg } => transit::encrypt(&ctx, key, file, alg),
        Op::Decrypt { key, file } => transit::decrypt(&ctx, key, file),
    }
}

/// Whether `file` names a regular file (links followed): the only kind of named input the front
/// opens. The CLI may have to read it again (the agent locked meanwhile), and a FIFO or a device
/// could not be: opening a FIFO waits for its writer, and closing it unread cuts the writer off.
fn regular_file(file: &str) -> bool {
    std::fs::metadata(file).is_ok_and(|m| m.is_file())
}

/// A served command's result as an outcome.
fn done(result: Result<(), CliError>) -> Outcome {
    match result {
        Ok(()) => Outcome::Done,
        Err(e) => Outcome::Failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(args: &[&str]) -> Option<Line> {
        parse(args.iter().map(OsString::from), |_| None)
    }

    fn get(path: &str, version: Option<u64>) -> Op {
        Op::Get { path: path.into(), version }
    }

    #[test]
    fn plain_get_and_set_lines_are_served() {
        let l = line(&["get", "db/pw"]).unwrap();
        assert_eq!(l.op, get("db/pw", None));
        let l = line(&["--vault", "/v", "get", "--version", "3", "db/pw"]).unwrap();
        assert_eq!((l.vault.as_deref(), l.op), (Some("/v"), get("db/pw", Some(3))));
        let l = line(&["get", "db/pw", "--version=2", "--config=/c.toml"]).unwrap();
        assert_eq!((l.config.as_deref(), l.op), (Some("/c.toml"), get("db/pw", Some(2))));
        let l = line(&["set", "a/b", "--cas", "0"]).unwrap();
        assert_eq!(l.op, Op::Set { path: "a/b".into(), value: None, file: None, cas: Some(0) });
        let l = line(&["set", "--vault=/v", "a/b", "value"]).unwrap();
        assert_eq!(l.op, Op::Set { path: "a/b".into(), value: Some("value".into()), file: None, cas: None });
        let l = line(&["set", "--file", "/tmp/v", "a/b", "--cas=2"]).unwrap();
        assert_eq!(
            l.op,
            Op::Set { path: "a/b".into(), value: None, file: Some("/tmp/v".into()), cas: Some(2) }
        );
    }

    #[test]
    fn streamed_encrypt_and_decrypt_lines_are_served() {
        let l = line(&["encrypt", "k"]).unwrap();
        assert_eq!(l.op, Op::Encrypt { key: "k".into(), file: None, alg: None });
        let l = line(&["encrypt", "--alg=aes256-gcm", "k", "plain.txt"]).unwrap();
        assert_eq!(
            l.op,
            Op::Encrypt { key: "k".into(), file: Some("plain.txt".into()), alg: Some("aes256-gcm".into()) }
        );
        let l = line(&["--vault", "/v", "decrypt", "k", "ct.bin"]).unwrap();
        assert_eq!(
            (l.vault.as_deref(), l.op),
            (Some("/v"), Op::Decrypt { key: "k".into(), file: "ct.bin".into() })
        );
        for args in [
            &["encrypt"][..],
            &["encrypt", "k", "a", "b"],
            &["encrypt", "--armor", "k"],
            &["encrypt", "-a", "k"],
            &["encrypt", "k", "-"],
            &["encrypt", "--alg", "", "k"],
            &["decrypt", "k"],
            &["decrypt", "--alg", "aes256-gcm", "k", "ct.bin"],
            &["get", "--alg", "aes256-gcm", "p"],
        ] {
            assert_eq!(line(args), None, "{args:?}");
        }
    }

    #[test]
    fn a_value_on_the_command_line_never_shows_in_debug_output() {
        let l = line(&["set", "a/b", "hunter2"]).unwrap();
        let shown = format!("{l:?}");
        assert!(!shown.contains("hunter2") && shown.contains("[REDACTED]"), "{shown}");
    }

    #[test]
    fn every_other_line_is_handed_over() {
        for args in [
            &[][..],
            &["list"],
            &["--version"],
            &["get"],
            &["get", "--help"],
            &["get", "-h", "p"],
            &["get", "a", "b"],
            &["get", "--version", "x", "p"],
            &["get", "--version", "-1", "p"],
            &["get", "--cas", "1", "p"],
            &["set", "--version", "1", "p"],
            &["set", "p", "v", "extra"],
            &["set", "--file", "f", "p", "v"],
            &["set", "--file", "-", "p"],
            &["set", "--file", "f", "--file", "g", "p"],
            &["get", "--file", "f", "p"],
            &["get", "--vault", "", "p"],
            &["get", "--vault", "/a", "--vault", "/b", "p"],
            &["get", "--vault"],
            &["--no-agent", "get", "p"],
            &["--password-stdin", "get", "p"],
            &["get", "--", "p"],
            &["get", "-", "p"],
            &["status", "get"],
        ] {
            assert_eq!(line(args), None, "{args:?}");
        }
        let not_unicode = std::os::unix::ffi::OsStringExt::from_vec(vec![b'p', 0xff]);
        assert_eq!(parse([OsString::from("get"), not_unicode].into_iter(), |_| None), None);
    }

    #[test]
    fn a_server_named_in_the_environment_is_the_clis_to_reach() {
        let env = |name: &str| (name == "TRESOR_ADDR").then(|| OsString::from("https://vault.example:8200"));
        assert_eq!(parse(["get", "secret/a"].map(OsString::from).into_iter(), env), None);
        let empty = |name: &str| (name == "TRESOR_ADDR").then(OsString::new);
        assert!(parse(["get", "secret/a"].map(OsString::from).into_iter(), empty).is_some());
    }

    #[test]
    fn the_environment_stands_in_for_absent_options_only() {
        let env =
            |value: &'static str| move |name: &str| (name == "TRESOR_VAULT").then(|| OsString::from(value));
        let args = || ["get", "p"].into_iter().map(OsString::from);
        assert_eq!(parse(args(), env("/e")).unwrap().vault.as_deref(), Some("/e"));
        // Empty: the CLI decides what that means.
        assert_eq!(parse(args(), env("")), None);
        let flagged = ["--vault", "/f", "get", "p"].into_iter().map(OsString::from);
        assert_eq!(parse(flagged, env("")).unwrap().vault.as_deref(), Some("/f"));
    }
}
