//! tresor's command line, as a library for its two binaries: `tresor-cli`, the whole command
//! line ([`main`]), and `tresor`, the small front that serves `get` and `set` through an unlocked
//! agent and hands everything else to `tresor-cli` ([`front`]).
//!
//! Commands go to the agent when one is unlocked for the vault; otherwise the command asks for
//! the password and opens the vault itself, running exactly the same call
//! ([`tresor_server::Serve`]). [`main`] parses the command line ([`cli`]) and hands each
//! command to its module under [`commands`]; [`ctx`] holds what they share. Data goes to stdout,
//! messages to stderr. Exit codes are documented in [`exit`] and in the README.

/// `println!` that treats a closed stdout (`tresor list | head`) as the end of the output
/// rather than a panic, and any other failed write as the command's failure (exit 1).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            // The output is lost (`> file` on a full disk): the command must not look as if it
            // had succeeded (found by review: `list > /dev/full` exited 0).
            errln!("tresor: error: cannot write the output: {e}");
            std::process::exit(1);
        }
    }};
}

/// `eprintln!` that goes on when stderr is closed (`tresor sync 2>&1 | head -1`): a message
/// nobody reads must not stop a command half-way, as the std macro's panic would (exit 101).
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `eprint!` as [`errln!`] is `eprintln!`.
macro_rules! errprint {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

mod cli;
mod commands;
mod config;
mod ctx;
mod exit;
pub mod front;
mod import;
mod input;
mod mask;
mod password;
mod refs;
mod remote;
mod resolve;
mod shown;

use clap::Parser;
use exit::CliError;
use std::process::ExitCode;

use cli::*;
use ctx::*;

/// The whole command line (`tresor-cli`): parses the arguments, runs the command, and returns
/// its exit code.
pub fn main() -> ExitCode {
    // Every tresor process may hold a password or keys: no core dumps, no ptrace by other
    // processes of the user.
    let _ = tresor_server::harden::apply();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            e.print();
            ExitCode::from(e.code)
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    match &cli.command {
        Command::Completions { shell, .. } => return commands::shell::completions(*shell),
        Command::ClipClear { after } => return commands::clip::clear_after(*after, std::io::stdin().lock()),
        Command::Man { command, .. } => return commands::shell::man(command.as_deref()),
        _ => {}
    }
    let idle_flag = match &cli.command {
        Command::Unlock { idle_timeout } | Command::Agent { idle_timeout } => idle_timeout.clone(),
        _ => None,
    };
    let mut ctx = settings(cli.vault.clone(), cli.config.clone(), idle_flag)?;
    ctx.no_agent = cli.no_agent;
    ctx.remote = match remote_use(&cli.command) {
        RemoteUse::Serves => remote::Remote::from_env()?,
        RemoteUse::Refused if remote::env(&["TRESOR_ADDR"]).is_some() => {
            return Err(CliError::usage(
                "TRESOR_ADDR names a server: this command works on a vault opened here (unset TRESOR_ADDR); \
                 get, set, list, rm, undelete, destroy, history, run, inject, read, encrypt, decrypt and sign go to the server"
                    .into(),
            ));
        }
        _ => None,
    };
    if cli.password_stdin {
        ctx.stdin_password = Some(password::read_password_line().map_err(CliError::input)?);
    }
    let mut stdin = std::io::stdin().lock();
    match cli.command {
        Command::Init { kdf, no_recovery_phrase, recovery_phrase_file } => {
            let show = (!no_recovery_phrase).then_some(recovery_phrase_file);
            commands::vault::cmd_init(&mut ctx, kdf.params(), show, &mut stdin)
        }
        Command::RecoveryPhrase { file } => commands::keys::recovery_phrase(&mut ctx, file),
        Command::Recover { keep_slots, new } => {
            commands::keys::recover(&mut ctx, keep_slots, &new, &mut stdin)
        }
        Command::Keyslot { action } => commands::keys::keyslot(&mut ctx, action, &mut stdin),
        Command::Key { action } => commands::keys::key(&mut ctx, action),
        Command::Sign { path, file, json } => commands::keys::sign(&mut ctx, path, file, json, &mut stdin),
        Command::Verify { public_key, signature, file, .. } => {
            commands::keys::verify(&public_key, &signature, file, &mut stdin)
        }
        Command::Encrypt { key, file, alg, armor } => {
            commands::keys::encrypt(&mut ctx, key, file, alg, armor, &mut stdin)
        }
        Command::Decrypt { key, file } => commands::keys::decrypt(&mut ctx, key, file, &mut stdin),
        Command::Mnemonic { action, .. } => commands::keys::mnemonic(action, &mut stdin),
        Command::Unlock { .. } => commands::agent::cmd_unlock(&mut ctx),
        Command::Lock => commands::agent::cmd_lock(&ctx),
        Command::Server { flags } => commands::server::run(&mut ctx, flags),
        Command::Relay { flags, .. } => commands::relay::run(flags),
        Command::Share { action } => commands::share::run(&mut ctx, action, &mut stdin),
        Command::Sync { args } => commands::share::sync(&mut ctx, args),
        Command::Unseal { address, ca_cert, share } => {
            commands::unseal::run(&mut ctx, remote::Server { address, ca_cert }, share, &mut stdin)
        }
        Command::Login { address, ca_cert, .. } => {
            commands::login::login(remote::Server { address, ca_cert }, &mut stdin)
        }
        Command::Logout { address, .. } => commands::login::logout(address),
        Command::Agent { .. } => commands::agent::cmd_agent(&ctx),
        Command::Set { path, value, file, cas, json } => {
            commands::secrets::set(&mut ctx, path, value, file, cas, json, &mut stdin)
        }
        Command::Get { paths, version, clip, json } => {
            commands::secrets::get(&mut ctx, paths, version, (clip, json))
        }
        Command::Find { pattern, json } => commands::secrets::find(&mut ctx, pattern, json),
        Command::Generate { path, length, charset, chars, words, force, print, clip, json } => {
            let recipe = commands::generate::Recipe::from_flags(length, charset, chars, words)?;
            commands::generate::generate(&mut ctx, path, recipe, force, print, clip, json)
        }
        Command::Cp { args } => commands::copy::copy(&mut ctx, args, false),
        Command::Mv { args } => commands::copy::copy(&mut ctx, args, true),
        Command::Edit { path } => commands::edit::edit(&mut ctx, path),
        Command::Run { flags } => commands::run::run(&mut ctx, flags, &mut stdin),
        Command::Inject { input, output, force } => {
            commands::inject::inject(&mut ctx, input, output, force, &mut stdin)
        }
        Command::Read { reference, json } => commands::inject::read(&mut ctx, reference, json),
        Command::List { prefix, long, tree, deleted, json } => {
            commands::secrets::list(&mut ctx, prefix, long, tree, deleted, json)
        }
        Command::Rm { paths, recursive, json } => commands::secrets::rm(&mut ctx, paths, recursive, json),
        Command::Undelete { path, recursive: true, json, .. } => {
            commands::secrets::undelete_all(&mut ctx, path, json)
        }
        Command::Undelete { path, versions, json, .. } => {
            commands::secrets::undelete(&mut ctx, path, versions, json)
        }
        Command::Destroy { path, versions, json } => {
            commands::secrets::destroy(&mut ctx, path, versions, json)
        }
        Command::History { path, json } => commands::secrets::history(&mut ctx, path, json),
        Command::Status { json } => commands::vault::cmd_status(&mut ctx, json),
        Command::Passwd { new } => commands::vault::cmd_passwd(&mut ctx, &new, &mut stdin),
        Command::Rekey { new, no_recovery_phrase, recovery_phrase_file, abort, force } => {
            let show = (!no_recovery_phrase).then_some(recovery_phrase_file);
            commands::rekey::run(&mut ctx, &new, abort, force, show, &mut stdin)
        }
        Command::Audit { action: Some(AuditAction::Verify { json }), filter, .. } => {
            if filter.is_set() {
                return Err(CliError::usage(
                    "audit verify proves the whole trail: --path, --actor, --op, --since, --until and --limit \
                     choose what `tresor audit` shows"
                        .into(),
                ));
            }
            commands::audit::verify(&mut ctx, json)
        }
        Command::Audit { action: None, filter, json } => commands::audit::show(&mut ctx, filter, json),
        Command::Export { out, format: commands::plain::ExportFormat::Archive, prefix: None, force } => {
            commands::vault::export(&mut ctx, out, force)
        }
        Command::Export { out, format, prefix, force } => {
            commands::plain::export(&mut ctx, out, format, prefix, force)
        }
        Command::Import { file, format, prefix } => {
            commands::vault::cmd_import(&mut ctx, &file, format, prefix, &mut stdin)
        }
        Command::Doctor { json } => commands::vault::cmd_doctor(&ctx, json),
        Command::Trust { fingerprint, action } => {
            commands::trust::run(&mut ctx, fingerprint, action, &mut stdin)
        }
        Command::Gc { grace, dry_run, json } => commands::vault::gc(&mut ctx, grace, dry_run, json),
        Command::Epoch { action } => commands::epoch::run(&mut ctx, action),
        Command::CompletePaths { prefix } => commands::shell::complete_paths(&ctx, &prefix),
        Command::Completions { .. } | Command::Man { .. } | Command::ClipClear { .. } => Ok(()),
    }
}

/// What a command does when `TRESOR_ADDR` names a server.
enum RemoteUse {
    /// It goes to the server.
    Serves,
    /// It works on a vault opened here: refused, rather than quietly working on another vault.
    Refused,
    /// It is about no vault, or names its server itself (`login`, `unseal`, `server`).
    Unaffected,
}

fn remote_use(command: &Command) -> RemoteUse {
    match command {
        Command::Get { .. }
        | Command::Run { .. }
        | Command::Generate { .. }
        | Command::Cp { .. }
        | Command::Edit { .. }
        | Command::Mv { .. }
        | Command::Inject { .. }
        | Command::Read { .. }
        | Command::Set { .. }
        | Command::List { .. }
        | Command::Find { .. }
        | Command::Rm { .. }
        | Command::History { .. }
        | Command::Undelete { .. }
        | Command::Destroy { .. }
        | Command::Encrypt { .. }
        | Command::Decrypt { .. }
        | Command::Sign { .. } => RemoteUse::Serves,
        Command::Login { .. }
        | Command::Logout { .. }
        | Command::Unseal { .. }
        | Command::Server { .. }
        | Command::Relay { .. }
        | Command::Verify { .. }
        | Command::Mnemonic { .. }
        | Command::Completions { .. }
        | Command::Man { .. }
        | Command::ClipClear { .. }
        | Command::CompletePaths { .. } => RemoteUse::Unaffected,
        _ => RemoteUse::Refused,
    }
}

/// What a command line's settings come to — the location from `--vault`, the config file, or the
/// default; the limits and the idle timeout; `TRESOR_VAULT_FINGERPRINT` — as a [`Ctx`] that uses
/// the agent and has read no password. The front resolves them with this very function, so both
/// binaries reach the same vault.
pub(crate) fn settings(
    vault: Option<String>,
    config: Option<std::path::PathBuf>,
    idle_flag: Option<String>,
) -> Result<Ctx, CliError> {
    let file = config::load(config).map_err(CliError::input)?;
    // An empty location would be the working directory: never a vault anyone meant.
    if vault.as_deref().is_some_and(|v| v.trim().is_empty())
        || file.vault.as_deref().is_some_and(|v| v.trim().is_empty())
    {
        return Err(CliError::input(
            "the vault location is empty: give --vault (or TRESOR_VAULT) a path or URL, or unset it for the default"
                .into(),
        ));
    }
    let location = match vault.or(file.vault) {
        Some(l) => l,
        None => config::default_vault()
            .ok_or_else(|| CliError::input("no vault location: use --vault or TRESOR_VAULT".into()))?
            .display()
            .to_string(),
    };
    let idle_text = idle_flag
        .or_else(|| std::env::var("TRESOR_IDLE_TIMEOUT").ok())
        .or(file.idle_timeout)
        .unwrap_or_else(|| "15m".into());
    let idle = config::parse_duration(&idle_text, "the idle timeout").map_err(CliError::input)?;
    Ok(Ctx {
        location: canonical_location(&location),
        no_agent: false,
        max_value: match file.max_value_size {
            None => tresor::vault::DEFAULT_MAX_VALUE,
            Some(n) if (1..=config::MAX_VALUE_CEILING).contains(&n) => n,
            Some(n) => {
                return Err(CliError::input(format!(
                    "max_value_size = {n}: it must be from 1 to {} bytes",
                    config::MAX_VALUE_CEILING
                )));
            }
        },
        idle,
        stdin_password: None,
        expect_fingerprint: match std::env::var("TRESOR_VAULT_FINGERPRINT") {
            Ok(text) if !text.trim().is_empty() => Some(
                text.parse()
                    .map_err(|e: String| CliError::input(format!("TRESOR_VAULT_FINGERPRINT: {e}")))?,
            ),
            _ => None,
        },
        server: file.server,
        remote: None,
    })
}
