//! `tresor`: the command-line interface of the tresor vault.
//!
//! Commands go to the agent when one is unlocked for the vault; otherwise the command asks for
//! the password and opens the vault itself, running exactly the same request handler
//! ([`tresor_server::execute`]). Data goes to stdout, messages to stderr. Exit codes are
//! documented in [`exit`] and in the README.

/// `println!` that treats a closed stdout (`tresor list | head`) as the end of the output
/// rather than a panic.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

mod config;
mod epoch;
mod exit;
mod import;
mod keys;
mod password;
mod rekey;
mod trust;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use exit::CliError;
use secrecy::{ExposeSecret, SecretString};
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tresor::model::AuditOp;
use tresor::vault::format_time;
use tresor::{KdfParams, Options, Store, Vault};
use tresor_server::Serve;
use tresor_wire::{Failure, SecretBuf, client};

const EXAMPLES: &str = "\
Examples:
  tresor init                          create a vault (password asked twice)
  tresor unlock                        start the agent: later commands need no password
  echo -n s3cr3t | tresor set db/password
  tresor get db/password
  tresor list -l db/
  tresor history db/password; tresor get --version 1 db/password
  tresor audit verify
  tresor epoch rotate --reencrypt; tresor epoch destroy 1
  tresor export --out backup.tresor; tresor --vault /new/place import backup.tresor
  tresor lock

Vault location: --vault or TRESOR_VAULT (a directory or file:// URL); default $XDG_DATA_HOME/tresor/vault.
Password: --password-stdin (first line of stdin), TRESOR_PASSWORD_FILE, TRESOR_PASSWORD (least safe),
or a terminal prompt.
Exit codes: 0 ok, 1 error, 2 usage, 3 authentication failed, 4 not found, 5 integrity/rollback/fork,
6 conflict, 7 invalid input, 8 no vault / vault exists, 9 audit failure, 10 store unsupported,
11 epoch destruction incomplete (the store still holds some of it), 12 bad signature,
13 another vault than the one pinned at the location (`tresor trust`).";

/// The tresor vault: end-to-end-encrypted secrets on storage that sees nothing.
#[derive(Parser)]
#[command(name = "tresor", version, about, after_help = EXAMPLES)]
struct Cli {
    /// Vault location: a directory or file:// URL.
    #[arg(long, global = true, env = "TRESOR_VAULT", value_name = "LOCATION")]
    vault: Option<String>,
    /// Read the password from the first line of stdin.
    #[arg(long, global = true)]
    password_stdin: bool,
    /// Config file (TOML).
    #[arg(long, global = true, env = "TRESOR_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Do not use the agent, even if one is unlocked.
    #[arg(long, global = true)]
    no_agent: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone, Copy)]
struct KdfArgs {
    /// Argon2id memory in KiB (default 65536).
    #[arg(long, value_name = "KIB")]
    kdf_memory: Option<u32>,
    /// Argon2id passes (default 3).
    #[arg(long, value_name = "N")]
    kdf_time: Option<u32>,
    /// Argon2id lanes (default 4).
    #[arg(long, value_name = "N")]
    kdf_parallelism: Option<u32>,
}

impl KdfArgs {
    fn params(&self) -> KdfParams {
        let d = KdfParams::DEFAULT;
        KdfParams {
            m_kib: self.kdf_memory.unwrap_or(d.m_kib),
            t: self.kdf_time.unwrap_or(d.t),
            p: self.kdf_parallelism.unwrap_or(d.p),
        }
    }
}

/// Where a new password comes from (`passwd`, `recover`, `keyslot add`), and its KDF cost.
#[derive(clap::Args)]
struct NewPasswordArgs {
    /// Read the new password from the next line of stdin (after the current password with
    /// --password-stdin, or after the recovery phrase).
    #[arg(long)]
    new_password_stdin: bool,
    /// Read the new password from the first line of this file.
    #[arg(long, value_name = "FILE", conflicts_with = "new_password_stdin")]
    new_password_file: Option<PathBuf>,
    #[command(flatten)]
    kdf: KdfArgs,
}

impl NewPasswordArgs {
    /// The new password (stdin, file, or a prompt asked twice), checked against the rules, and
    /// the KDF parameters, checked against their bounds — before the store is touched.
    fn read(&self, stdin: &mut impl BufRead) -> Result<(SecretString, KdfParams), CliError> {
        let file = self.new_password_file.as_ref().map(|p| p.display().to_string());
        let new =
            password::new(self.new_password_stdin, file.as_deref(), stdin, false).map_err(CliError::input)?;
        tresor::keyfile::check_password_rules(&new).map_err(|e| CliError::from_core(&e))?;
        let kdf = self.kdf.params();
        kdf.check().map_err(|_| CliError::input("KDF parameters out of the accepted range".into()))?;
        Ok((new, kdf))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Create a vault; prints its id and shows its 24-word recovery phrase (on stderr, when that
    /// is a terminal).
    Init {
        #[command(flatten)]
        kdf: KdfArgs,
        /// Do not show the recovery phrase now (`tresor recovery-phrase` shows it later).
        #[arg(long)]
        no_recovery_phrase: bool,
        /// Write the recovery phrase to this new file (mode 0600) instead of the terminal.
        #[arg(long, value_name = "FILE", conflicts_with = "no_recovery_phrase")]
        recovery_phrase_file: Option<PathBuf>,
    },
    /// Show the recovery phrase again (password required, never through the agent; audited).
    RecoveryPhrase {
        /// Write it to this new file (mode 0600) instead of the terminal.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Restore access with the recovery phrase: a new password slot (stdin: phrase on the first
    /// line, then the new password with --new-password-stdin).
    Recover {
        /// Keep the existing password slots (default: drop them, the new password is the only one).
        #[arg(long)]
        keep_slots: bool,
        #[command(flatten)]
        new: NewPasswordArgs,
    },
    /// Password slots: list, add, remove (several passwords on one vault, as LUKS2 has).
    #[command(arg_required_else_help = true)]
    Keyslot {
        #[command(subcommand)]
        action: keys::KeyslotAction,
    },
    /// Keys derived from the vault's root: `key derive ed25519 PATH`.
    #[command(arg_required_else_help = true)]
    Key {
        #[command(subcommand)]
        action: keys::KeyAction,
    },
    /// Sign FILE (or stdin) with the Ed25519 identity at PATH; prints the signature (hex).
    #[command(arg_required_else_help = true)]
    Sign {
        /// SLIP-0010 hardened path, e.g. m/74'/0'/0'.
        path: String,
        /// The message file (default: stdin).
        file: Option<PathBuf>,
        /// JSON output (signature and public key).
        #[arg(long)]
        json: bool,
    },
    /// Check an Ed25519 signature of FILE (or stdin); no vault needed. Exit 12 if it is invalid.
    #[command(arg_required_else_help = true)]
    Verify {
        /// The public key (hex).
        public_key: String,
        /// The signature (hex).
        signature: String,
        /// The message file (default: stdin).
        file: Option<PathBuf>,
    },
    /// Encrypt FILE (or stdin) with the named transit key; binary output (armoured on a terminal).
    #[command(arg_required_else_help = true)]
    Encrypt {
        /// The key name ([A-Za-z0-9._-], up to 128).
        key: String,
        /// The plaintext file (default: stdin).
        file: Option<PathBuf>,
        /// xchacha20-poly1305 (default) or aes256-gcm.
        #[arg(long, default_value = "xchacha20-poly1305")]
        alg: String,
        /// Text output: tresor:v1:KEY:BASE64.
        #[arg(long, short = 'a')]
        armor: bool,
    },
    /// Decrypt FILE (or stdin), binary or armoured, made with the named transit key.
    #[command(arg_required_else_help = true)]
    Decrypt {
        /// The key name it was encrypted with.
        key: String,
        /// The ciphertext file (default: stdin).
        file: Option<PathBuf>,
    },
    /// BIP39 and SLIP-0010 tools, no vault needed: generate, seed, derive.
    #[command(arg_required_else_help = true)]
    Mnemonic {
        #[command(subcommand)]
        action: keys::MnemonicAction,
    },
    /// Start (or reuse) the agent, so later commands need no password.
    Unlock {
        /// Lock after this long without a request (e.g. 15m, 1h).
        #[arg(long, value_name = "DURATION")]
        idle_timeout: Option<String>,
    },
    /// Tell the agent to wipe every key and exit.
    Lock,
    /// Store a secret: the value from VALUE, --file, or stdin (exact bytes).
    #[command(arg_required_else_help = true)]
    Set {
        /// The secret's path, e.g. db/password.
        path: String,
        /// The value (visible to other processes in argv: prefer stdin or --file).
        value: Option<String>,
        /// Read the value from this file.
        #[arg(long, value_name = "FILE", conflicts_with = "value")]
        file: Option<PathBuf>,
        /// Check-and-set: write only if the secret is at version N (0: only if it does not exist);
        /// otherwise fail with exit code 6 and write nothing.
        #[arg(long, value_name = "N")]
        cas: Option<u64>,
    },
    /// Print a secret's value (exact bytes) to stdout.
    #[command(arg_required_else_help = true)]
    Get {
        /// The secret's path.
        path: String,
        /// Read this version instead of the current one.
        #[arg(long, value_name = "N")]
        version: Option<u64>,
    },
    /// List secret paths (under PREFIX).
    #[command(alias = "ls")]
    List {
        /// Only paths starting with this.
        prefix: Option<String>,
        /// Show version, size and update time.
        #[arg(short, long)]
        long: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Delete a secret (its history is kept).
    #[command(alias = "delete", arg_required_else_help = true)]
    Rm {
        /// The secret's path.
        path: String,
    },
    /// List a secret's versions.
    #[command(arg_required_else_help = true)]
    History {
        /// The secret's path.
        path: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Locked or unlocked, vault id, location, cipher, KDF, secret count.
    Status {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Change the password (rewrites only the key file).
    Passwd {
        #[command(flatten)]
        new: NewPasswordArgs,
    },
    /// Replace the root secret: new keys and recovery phrase, every version sealed again, the old
    /// key files and epochs destroyed. For a leaked password (passwd alone leaves old key files usable).
    Rekey {
        #[command(flatten)]
        new: NewPasswordArgs,
        /// Do not show the new recovery phrase now (`tresor recovery-phrase` shows it later).
        #[arg(long)]
        no_recovery_phrase: bool,
        /// Write the new recovery phrase to this new file (mode 0600) instead of the terminal.
        #[arg(long, value_name = "FILE", conflicts_with = "no_recovery_phrase")]
        recovery_phrase_file: Option<PathBuf>,
        /// Abandon a re-key that did not finish (the vault takes writes again under its root).
        #[arg(long, conflicts_with_all = ["no_recovery_phrase", "recovery_phrase_file"])]
        abort: bool,
        /// Take over (or abort) an interrupted re-key at once, even if it wrote in the last 15
        /// minutes: only when you know it is not running anywhere.
        #[arg(long)]
        force: bool,
    },
    /// Show the audit trail; `tresor audit verify` proves it whole.
    Audit {
        #[command(subcommand)]
        action: Option<AuditAction>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Write a self-contained encrypted backup (key file included).
    #[command(arg_required_else_help = true)]
    Export {
        /// The backup file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Restore a backup into an empty location, or add secrets from a .env or JSON file.
    #[command(arg_required_else_help = true)]
    Import {
        /// The file to import.
        file: PathBuf,
        /// Its format (detected by default).
        #[arg(long, value_enum)]
        format: Option<import::Format>,
    },
    /// Remove what failed writes and superseded snapshots left in the store (never anything live).
    Gc {
        /// Keep unreferenced value blobs younger than this: a writer may be about to commit them.
        #[arg(long, default_value = "1h", value_name = "DURATION")]
        grace: String,
        /// Only count what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Key epochs: list, rotate (--reencrypt), reencrypt, destroy EPOCH, policy --every.
    #[command(arg_required_else_help = true)]
    Epoch {
        #[command(subcommand)]
        action: epoch::EpochAction,
    },
    /// Which vault this machine trusts at the location: `tresor trust FINGERPRINT` pins one
    /// (before first use, or to re-trust a location); `show`, `forget`, `export`, `import`.
    #[command(args_conflicts_with_subcommands = true)]
    Trust {
        /// The vault fingerprint to pin (as `tresor init` and `tresor status` show it).
        fingerprint: Option<String>,
        #[command(subcommand)]
        action: Option<trust::TrustAction>,
    },
    /// Check the store: create-if-absent probe, what it holds, the vault's public header.
    Doctor {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Print shell completions.
    #[command(arg_required_else_help = true)]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Run the agent in the foreground (started by `tresor unlock`).
    #[command(hide = true)]
    Agent {
        /// Lock and exit after this long without a request.
        #[arg(long)]
        idle_timeout: Option<String>,
    },
}

#[derive(Subcommand)]
enum AuditAction {
    /// Prove the audit trail and the commit log whole.
    Verify,
}

#[derive(Clone, Copy, ValueEnum)]
enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Everything a command needs to reach the vault.
struct Ctx {
    location: String,
    no_agent: bool,
    max_value: usize,
    idle: Duration,
    /// The password read eagerly from stdin (`--password-stdin`), if any.
    stdin_password: Option<SecretString>,
    /// `TRESOR_VAULT_FINGERPRINT`: the vault fingerprint the user expects at the location.
    expect_fingerprint: Option<tresor::fingerprint::Fingerprint>,
}

impl Ctx {
    fn socket(&self) -> PathBuf {
        client::socket_path(&config::runtime_dir(), &self.location)
    }

    fn options(&self, via: &str) -> Options {
        let mut o = Options::new(config::state_dir().join("trust"), actor(via));
        o.max_value = self.max_value;
        o.expect_fingerprint = self.expect_fingerprint;
        o
    }

    /// Whether an agent for this vault is running and unlocked.
    fn agent_is_unlocked(&self) -> bool {
        matches!(
            client::call(&self.socket(), &tresor_wire::Ping, Duration::from_secs(5)),
            Ok(Some(Ok(tresor_wire::Pong { unlocked: true, .. })))
        )
    }

    fn password(&mut self) -> Result<SecretString, CliError> {
        match self.stdin_password.take() {
            Some(p) => Ok(p),
            None => password::current().map_err(CliError::input),
        }
    }
}

/// Who acts in this process: the local user and process, and how (`cli`, `agent`).
fn actor(via: &str) -> String {
    format!("local uid={} pid={} ({via})", rustix::process::geteuid().as_raw(), std::process::id())
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::other(e.to_string()))
}

fn main() -> ExitCode {
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
    if let Command::Completions { shell } = cli.command {
        let mut cmd = Cli::command();
        let mut out = std::io::stdout();
        match shell {
            Shell::Bash => clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "tresor", &mut out),
            Shell::Zsh => clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, "tresor", &mut out),
            Shell::Fish => clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, "tresor", &mut out),
        }
        return Ok(());
    }
    let file = config::load(cli.config.clone()).map_err(CliError::input)?;
    let location = match cli.vault.clone().or(file.vault.clone()) {
        Some(l) => l,
        None => config::default_vault()
            .ok_or_else(|| CliError::input("no vault location: use --vault or TRESOR_VAULT".into()))?
            .display()
            .to_string(),
    };
    let idle_text = match &cli.command {
        Command::Unlock { idle_timeout } | Command::Agent { idle_timeout } => idle_timeout.clone(),
        _ => None,
    }
    .or_else(|| std::env::var("TRESOR_IDLE_TIMEOUT").ok())
    .or(file.idle_timeout.clone())
    .unwrap_or_else(|| "15m".into());
    let idle = config::parse_duration(&idle_text).map_err(CliError::input)?;
    let mut stdin = std::io::stdin().lock();
    let stdin_password = if cli.password_stdin {
        Some(password::read_stdin_line(&mut stdin).map_err(CliError::input)?)
    } else {
        None
    };
    let mut ctx = Ctx {
        location: canonical_location(&location),
        no_agent: cli.no_agent,
        max_value: file.max_value_size.unwrap_or(tresor::vault::DEFAULT_MAX_VALUE),
        idle,
        stdin_password,
        expect_fingerprint: match std::env::var("TRESOR_VAULT_FINGERPRINT") {
            Ok(text) if !text.trim().is_empty() => Some(
                text.parse()
                    .map_err(|e: String| CliError::input(format!("TRESOR_VAULT_FINGERPRINT: {e}")))?,
            ),
            _ => None,
        },
    };
    match cli.command {
        Command::Init { kdf, no_recovery_phrase, recovery_phrase_file } => {
            let show = (!no_recovery_phrase).then_some(recovery_phrase_file);
            cmd_init(&mut ctx, kdf.params(), show, &mut stdin)
        }
        Command::RecoveryPhrase { file } => keys::recovery_phrase(&mut ctx, file),
        Command::Recover { keep_slots, new } => keys::recover(&mut ctx, keep_slots, &new, &mut stdin),
        Command::Keyslot { action } => keys::keyslot(&mut ctx, action, &mut stdin),
        Command::Key { action } => keys::key(&mut ctx, action),
        Command::Sign { path, file, json } => keys::sign(&mut ctx, path, file, json, &mut stdin),
        Command::Verify { public_key, signature, file } => {
            keys::verify(&public_key, &signature, file, &mut stdin)
        }
        Command::Encrypt { key, file, alg, armor } => {
            keys::encrypt(&mut ctx, key, file, alg, armor, &mut stdin)
        }
        Command::Decrypt { key, file } => keys::decrypt(&mut ctx, key, file, &mut stdin),
        Command::Mnemonic { action } => keys::mnemonic(action, &mut stdin),
        Command::Unlock { .. } => cmd_unlock(&mut ctx),
        Command::Lock => cmd_lock(&ctx),
        Command::Agent { .. } => cmd_agent(&ctx),
        Command::Set { path, value, file, cas } => {
            let value = match (value, file) {
                (Some(v), _) => zeroize::Zeroizing::new(v.into_bytes()),
                (None, Some(f)) => zeroize::Zeroizing::new(
                    std::fs::read(&f)
                        .map_err(|e| CliError::input(format!("cannot read {}: {e}", f.display())))?,
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
            let set =
                tresor_wire::Set { op: AuditOp::Set, items: vec![(path.clone(), SecretBuf(value))], cas };
            let versions = call(&mut ctx, set)?;
            eprintln!("{path}: version {}", versions.first().copied().unwrap_or(0));
            Ok(())
        }
        Command::Get { path, version } => {
            let value = call(&mut ctx, tresor_wire::Get { path, version })?;
            let mut out = std::io::stdout().lock();
            out.write_all(&value.0).and_then(|()| out.flush()).map_err(|e| CliError::other(e.to_string()))
        }
        Command::List { prefix, long, json } => {
            let entries = call(&mut ctx, tresor_wire::List { prefix: prefix.unwrap_or_default() })?;
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
        Command::Rm { path } => {
            let version = call(&mut ctx, tresor_wire::Delete { path: path.clone() })?;
            eprintln!("{path}: version {version} deleted");
            Ok(())
        }
        Command::History { path, json } => {
            let history = call(&mut ctx, tresor_wire::History { path })?;
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
        Command::Status { json } => cmd_status(&mut ctx, json),
        Command::Passwd { new } => cmd_passwd(&mut ctx, &new, &mut stdin),
        Command::Rekey { new, no_recovery_phrase, recovery_phrase_file, abort, force } => {
            let show = (!no_recovery_phrase).then_some(recovery_phrase_file);
            rekey::run(&mut ctx, &new, abort, force, show, &mut stdin)
        }
        Command::Audit { action: Some(AuditAction::Verify), .. } => {
            let r = call(&mut ctx, tresor_wire::Verify)?;
            {
                outln!(
                    "audit trail verified: {} entries in {} lane{}, {} commits, {} anchors, chains unbroken",
                    r.audit_records,
                    r.audit_lanes,
                    if r.audit_lanes == 1 { "" } else { "s" },
                    r.commits,
                    r.anchors
                );
                if r.snapshot > 0 {
                    outln!("snapshot at commit {} matches the log replayed up to it", r.snapshot);
                }
                if r.damaged.is_empty() {
                    outln!(
                        "values verified: {} versions in {} blobs, every one authentic",
                        r.values,
                        r.blobs
                    );
                    return Ok(());
                }
                for d in &r.damaged {
                    outln!("DAMAGED {} version {}: {} ({})", d.path, d.version, d.detail, d.object);
                }
                Err(CliError::from_category(
                    tresor::Category::Integrity,
                    format!(
                        "{} of {} versions have a missing or damaged value; the chains themselves are unbroken",
                        r.damaged.len(),
                        r.values
                    ),
                ))
            }
        }
        Command::Audit { action: None, json } => {
            let records = call(&mut ctx, tresor_wire::ReadAudit)?;
            {
                // Operations under their current names, also in trails written before them.
                let op_name = |op: &str| AuditOp::parse(op).map_or_else(|| op.to_string(), |o| o.to_string());
                let outcome_text = |outcome: &tresor::model::Outcome| match outcome {
                    tresor::model::Outcome::Ok => "ok".to_string(),
                    tresor::model::Outcome::Failed(m) => format!("failed: {m}"),
                    tresor::model::Outcome::Denied(m) => format!("denied: {m}"),
                };
                if json {
                    let rows: Vec<_> = records
                        .iter()
                        .map(|t| {
                            let r = &t.record;
                            serde_json::json!({
                                "lane": t.lane, "seq": t.seq, "time": format_time(r.time_ms), "time_ms": r.time_ms,
                                "actor": r.actor, "op": op_name(&r.op), "path": r.path, "detail": r.detail,
                                "outcome": outcome_text(&r.outcome),
                            })
                        })
                        .collect();
                    return print_json(&rows);
                }
                for t in records {
                    // Entries of the main lane by number; of a machine's own lane, by the first
                    // digits of its id and the number.
                    let at = match t.lane.as_str() {
                        "main" => t.seq.to_string(),
                        lane => format!("{}:{}", &lane[..lane.len().min(6)], t.seq),
                    };
                    let r = t.record;
                    let outcome = outcome_text(&r.outcome);
                    let detail = r.detail.map(|d| format!(" ({d})")).unwrap_or_default();
                    outln!(
                        "{at:>8}  {}  {}  {} {}  {outcome}{detail}",
                        format_time(r.time_ms),
                        r.actor,
                        op_name(&r.op),
                        r.path.unwrap_or_else(|| "-".into())
                    );
                }
                Ok(())
            }
        }
        Command::Export { out } => {
            let archive = call(&mut ctx, tresor_wire::Export)?;
            write_private_file(&out, &archive.0)?;
            eprintln!("exported to {} ({} bytes)", out.display(), archive.0.len());
            Ok(())
        }
        Command::Import { file, format } => cmd_import(&mut ctx, &file, format),
        Command::Doctor { json } => cmd_doctor(&ctx, json),
        Command::Trust { fingerprint, action } => trust::run(&mut ctx, fingerprint, action, &mut stdin),
        Command::Gc { grace, dry_run, json } => {
            let grace_secs = config::parse_duration_or_zero(&grace).map_err(CliError::input)?.as_secs();
            match call(&mut ctx, tresor_wire::Gc { grace_secs, dry_run })? {
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
                            "left alone: {} entries that are not tresor objects (`tresor doctor` lists them)",
                            r.foreign
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
        Command::Epoch { action } => epoch::run(&mut ctx, action),
        Command::Completions { .. } => Ok(()),
    }
}

/// A plain directory path made absolute, so that the agent socket and trust state do not depend
/// on the working directory. URLs stay as they are.
fn canonical_location(location: &str) -> String {
    // `s3://b//p/` and `s3://b/p` are one vault: one agent socket, one trust state.
    // An invalid one stays as it is: opening it says what is wrong.
    if location.starts_with("s3://") {
        return tresor_backend::s3::S3Location::parse(location)
            .map_or_else(|_| location.to_string(), |l| l.canonical());
    }
    if location.contains("://") && !location.starts_with("file://") {
        return location.to_string();
    }
    let path = Path::new(location.strip_prefix("file://").unwrap_or(location));
    match path.canonicalize() {
        Ok(p) => p.display().to_string(),
        Err(_) if path.is_absolute() => path.display().to_string(),
        Err(_) => std::env::current_dir()
            .map(|d| d.join(path).display().to_string())
            .unwrap_or(location.to_string()),
    }
}

/// Writes exact bytes to stdout (a closed pipe ends the output quietly).
fn outln_bytes(bytes: &[u8]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(|e| CliError::other(e.to_string())),
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::other(e.to_string()))?;
    outln!("{text}");
    Ok(())
}

fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("export"),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().create_new(true).write(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        CliError::other(format!("cannot write {}: {e}", path.display()))
    })
}

/// Runs `call` on the unlocked agent, or opens the vault here and runs it directly: either way
/// its answer is the call's own reply type.
fn call<C: Serve>(ctx: &mut Ctx, call: C) -> Result<C::Reply, CliError> {
    if !ctx.no_agent {
        let socket = ctx.socket();
        // Bulk work grows with the vault: the client waits as long as the agent may work.
        let wait = if call.is_bulk() { tresor_wire::BULK_DEADLINE } else { Duration::from_secs(600) };
        match client::call(&socket, &call, wait) {
            Ok(Some(Ok(reply))) => return Ok(reply),
            Ok(Some(Err(Failure::Error(e)))) => return Err(CliError::from_core(&e)),
            Ok(Some(Err(Failure::Locked))) | Ok(None) => {}
            // The agent may have run the call already: never run it a second time here.
            Err(e) => return Err(CliError::other(format!("the agent failed: {e}"))),
        }
    }
    let rt = runtime()?;
    let store = open_existing(&rt, &ctx.location)?;
    let password = ctx.password()?;
    rt.block_on(async {
        let vault =
            Vault::unlock(store, &password, ctx.options("cli")).await.map_err(|e| CliError::from_core(&e))?;
        report_unlocked(&vault);
        let reply = call.serve(&vault).await;
        if let Ok(Some(failure)) = vault.rotation_failure().await {
            eprintln!("tresor: warning: the automatic epoch rotation failed ({failure}); values stay in the current epoch");
        }
        // Dropping the vault wipes its keys; the trust state is already saved after every record.
        drop(vault);
        reply.map_err(|e| CliError::from_core(&e))
    })
}

/// What the storage backends are configured with: this process's environment (the AWS
/// settings of an S3 location), handed to `tresor-backend`, which reads none itself.
fn backend_config() -> tresor_backend::BackendConfig {
    tresor_backend::BackendConfig::from_vars(std::env::vars_os())
}

/// Opens a vault location, warning on stderr when a local vault directory is open to other users.
async fn open_store(location: &str, create: bool) -> Result<Store, CliError> {
    let store = tresor_backend::open(location, create, &backend_config())
        .await
        .map_err(|e| CliError::from_core(&e))?;
    if let Some(warning) = store.permission_warning() {
        eprintln!("tresor: warning: {warning}");
    }
    Ok(store)
}

/// Opens the store and checks that a vault is there, before anyone is asked for a password.
fn open_existing(rt: &tokio::runtime::Runtime, location: &str) -> Result<Store, CliError> {
    rt.block_on(async {
        let store = open_store(location, false).await?;
        tresor::vault::describe_locked(&store).await.map_err(|e| CliError::from_core(&e))?;
        Ok(store)
    })
}

/// What an unlock in this process has to tell: failed attempts since the last one, and the
/// first use of the vault at its location on this machine.
fn report_unlocked(vault: &Vault) {
    report_failed(vault.failed_attempts());
    if vault.first_use() {
        eprintln!(
            "tresor: {}",
            tresor_server::agent::first_use_notice(vault.store().location(), &vault.fingerprint())
        );
    }
}

fn report_failed(failed: &[u64]) {
    if let Some(first) = failed.first() {
        eprintln!(
            "tresor: {} failed unlock attempts since {} (recorded in the audit trail)",
            failed.len(),
            format_time(*first)
        );
    }
}

/// `tresor init`; `phrase`: show the recovery phrase (`Some(None)`: on the terminal,
/// `Some(Some(file))`: into a new private file), or not (`None`).
fn cmd_init(
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
    eprintln!("created vault {} at {}", hex::encode(vault.vault_id()), ctx.location);
    eprintln!(
        "fingerprint: {} (pin it on other machines with `tresor trust {}` before their first unlock)",
        vault.fingerprint(),
        vault.fingerprint()
    );
    match target.zip(shown) {
        Some((target, phrase)) => keys::show_recovery_phrase(&phrase, target)?,
        None if phrase.is_none() => {
            eprintln!("recovery phrase not shown (--no-recovery-phrase); `tresor recovery-phrase` shows it")
        }
        None => eprintln!(
            "recovery phrase not shown: stderr is not a terminal (it would end up in a log); \
             `tresor recovery-phrase` shows it on a terminal, or writes it with --file"
        ),
    }
    Ok(())
}

fn cmd_unlock(ctx: &mut Ctx) -> Result<(), CliError> {
    let socket = ctx.socket();
    if let Ok(Some(Ok(tresor_wire::Pong { unlocked: true, pid }))) =
        client::call(&socket, &tresor_wire::Ping, Duration::from_secs(5))
    {
        eprintln!("already unlocked (agent pid {pid})");
        return Ok(());
    }
    // The vault must exist before a password is asked for or an agent started.
    open_existing(&runtime()?, &ctx.location)?;
    let password = ctx.password()?;
    if client::call(&socket, &tresor_wire::Ping, Duration::from_secs(5)).ok().flatten().is_none() {
        spawn_agent(ctx, &socket)?;
    }
    let unlock =
        tresor_wire::Unlock { password: SecretBuf::new(password.expose_secret().as_bytes().to_vec()) };
    match client::call(&socket, &unlock, Duration::from_secs(120))
        .map_err(|e| CliError::other(e.to_string()))?
    {
        Some(Ok(tresor_wire::Unlocked { failed_attempts, warnings })) => {
            for w in warnings {
                eprintln!("tresor: warning: {w}");
            }
            report_failed(&failed_attempts);
            eprintln!("unlocked; the agent locks after {}s idle", ctx.idle.as_secs());
            Ok(())
        }
        Some(Err(failure)) => {
            // A failed unlock leaves no agent behind.
            let _ = client::call(&socket, &tresor_wire::Lock, Duration::from_secs(5));
            Err(match failure {
                Failure::Error(e) => CliError::from_core(&e),
                Failure::Locked => CliError::other("the agent did not unlock".into()),
            })
        }
        None => Err(CliError::other("the agent did not start".into())),
    }
}

fn spawn_agent(ctx: &Ctx, socket: &Path) -> Result<(), CliError> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()
        .map_err(|e| CliError::other(format!("cannot find the tresor binary: {e}")))?;
    std::process::Command::new(exe)
        .arg("agent")
        .arg("--vault")
        .arg(&ctx.location)
        .arg("--idle-timeout")
        .arg(format!("{}s", ctx.idle.as_secs()))
        .env_remove("TRESOR_PASSWORD")
        .env_remove("TRESOR_PASSWORD_FILE")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| CliError::other(format!("cannot start the agent: {e}")))?;
    for _ in 0..500 {
        if client::call(socket, &tresor_wire::Ping, Duration::from_secs(5)).ok().flatten().is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(CliError::other("the agent did not start within 5 s".into()))
}

fn cmd_agent(ctx: &Ctx) -> Result<(), CliError> {
    let hardening = tresor_server::harden::apply();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("TRESOR_LOG"))
        .with_writer(std::io::stderr)
        .init();
    for w in tresor_server::harden::report(&hardening) {
        tracing::warn!("{w}");
    }
    let socket = ctx.socket();
    // Clients are served concurrently on the shared vault handle, on every core.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tresor-agent")
        .build()
        .map_err(|e| CliError::other(e.to_string()))?;
    let location = ctx.location.clone();
    let max_value = ctx.max_value;
    // The fingerprint the user expects binds the agent's unlocks too (it inherits the variable).
    let expect_fingerprint = ctx.expect_fingerprint;
    let result = rt.block_on(async {
        let listener = tresor_server::bind(&socket)
            .map_err(|e| CliError::other(format!("{}: {e}", socket.display())))?;
        let config = tresor_server::AgentConfig {
            location,
            // The agent opens the store with the environment it was started with (`tresor unlock`
            // passes its own down).
            backend: backend_config(),
            options: Box::new(move || {
                let mut o = Options::new(config::state_dir().join("trust"), actor("agent"));
                o.max_value = max_value;
                o.expect_fingerprint = expect_fingerprint;
                o
            }),
            idle: ctx.idle,
        };
        let result = tresor_server::agent::serve(listener, config).await;
        let _ = std::fs::remove_file(&socket);
        result.map_err(|e| CliError::other(e.to_string()))
    });
    // A store read stuck in a blocking thread must not keep the process alive.
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

fn cmd_lock(ctx: &Ctx) -> Result<(), CliError> {
    match client::call(&ctx.socket(), &tresor_wire::Lock, Duration::from_secs(30)) {
        Ok(Some(_)) => {
            eprintln!("locked: the agent wiped its keys and stopped");
            Ok(())
        }
        Ok(None) => {
            eprintln!("no agent is running: nothing to lock");
            Ok(())
        }
        Err(e) => Err(CliError::other(e.to_string())),
    }
}

fn cmd_status(ctx: &mut Ctx, json: bool) -> Result<(), CliError> {
    let agent = if ctx.no_agent {
        None
    } else {
        client::call(&ctx.socket(), &tresor_wire::GetStatus, Duration::from_secs(60)).ok().flatten()
    };
    match agent {
        Some(Ok(s)) => {
            if json {
                let mut v = serde_json::to_value(&s).map_err(|e| CliError::other(e.to_string()))?;
                v["state"] = "unlocked".into();
                return print_json(&v);
            }
            outln!("state: unlocked (agent)");
            outln!("vault id: {}", s.vault_id);
            outln!("fingerprint: {}", s.fingerprint);
            outln!("location: {}", s.location);
            outln!("cipher: {}", s.cipher);
            outln!("kdf: {}", s.kdf);
            outln!("secrets: {}", s.secrets);
            outln!("commits: {}", s.commits);
            outln!("audit lane: {} ({} entries)", s.audit_lane, s.audit_records);
            outln!("key file generation: {}", s.keyfile_generation);
            outln!("root era: {}", s.era);
            outln!("epoch: {}", s.epoch);
            outln!(
                "snapshot: {}",
                if s.snapshot == 0 { "none".to_string() } else { format!("at commit {}", s.snapshot) }
            );
            if let Some(failure) = &s.rotation_failure {
                outln!("automatic rotation: FAILED at {failure}");
            }
            Ok(())
        }
        Some(Err(Failure::Error(e))) => Err(CliError::from_core(&e)),
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
            if json {
                let mut v = serde_json::to_value(&info).map_err(|e| CliError::other(e.to_string()))?;
                v["state"] = "locked".into();
                v["cipher"] = "XChaCha20-Poly1305".into();
                v["fingerprint"] = pinned.clone().into();
                return print_json(&v);
            }
            outln!("state: locked");
            outln!("vault id: {}", info.vault_id);
            match &pinned {
                Some(fp) => outln!("fingerprint: {fp} (pinned on this machine)"),
                None => outln!("fingerprint: (not pinned on this machine; unlock to see it)"),
            }
            outln!("location: {}", info.location);
            outln!("cipher: XChaCha20-Poly1305");
            outln!("kdf: {}", info.kdf.join(", "));
            outln!("root era: {}", info.era);
            outln!("secrets: (unlock to count)");
            outln!("key file generation: {}", info.keyfile_generation);
            Ok(())
        }
    }
}

fn cmd_passwd(ctx: &mut Ctx, new: &NewPasswordArgs, stdin: &mut impl BufRead) -> Result<(), CliError> {
    let current = ctx.password()?;
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
    eprintln!(
        "password changed: the vault's key file now opens with the new password, not the old one. \
         A copy of the old key file (a backup, a synced folder, the store itself if it keeps old \
         versions) still opens the vault with the old password, and with it every value, including \
         later ones: the root secret is unchanged. If the old password leaked, replace the root \
         secret itself: `tresor rekey`"
    );
    Ok(())
}

/// `tresor doctor`: what the store supports and holds. Needs no password.
fn cmd_doctor(ctx: &Ctx, json: bool) -> Result<(), CliError> {
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

fn cmd_import(ctx: &mut Ctx, file: &Path, format: Option<import::Format>) -> Result<(), CliError> {
    let bytes = zeroize::Zeroizing::new(
        std::fs::read(file).map_err(|e| CliError::input(format!("cannot read {}: {e}", file.display())))?,
    );
    let format = format.unwrap_or_else(|| import::detect(file, &bytes));
    if format == import::Format::Archive {
        let password = ctx.password()?;
        let rt = runtime()?;
        let vault = rt.block_on(async {
            let store = open_store(&ctx.location, true).await?;
            tresor::archive::import(store, &bytes, &password, ctx.options("cli"))
                .await
                .map_err(|e| CliError::from_core(&e))
        })?;
        eprintln!("restored vault {} at {}", hex::encode(vault.vault_id()), ctx.location);
        return Ok(());
    }
    let items = import::parse(format, &bytes).map_err(CliError::input)?;
    let count = items.len();
    call(ctx, tresor_wire::Set { op: AuditOp::Import, items, cas: None })?;
    eprintln!("imported {count} secrets");
    Ok(())
}
