//! The command line: every command, subcommand and flag, as clap parses them.

use crate::commands::{epoch, keys, share, trust};
use crate::exit::CliError;
use crate::{import, password};
use clap::{Parser, Subcommand, ValueEnum};
use secrecy::SecretString;
use std::io::BufRead;
use std::path::PathBuf;
use tresor::KdfParams;

pub(crate) const EXAMPLES: &str = "\
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
pub(crate) struct Cli {
    /// Vault location: a directory or file:// URL.
    #[arg(long, global = true, env = "TRESOR_VAULT", value_name = "LOCATION")]
    pub(crate) vault: Option<String>,
    /// Read the password from the first line of stdin.
    #[arg(long, global = true)]
    pub(crate) password_stdin: bool,
    /// Config file (TOML).
    #[arg(long, global = true, env = "TRESOR_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Do not use the agent, even if one is unlocked.
    #[arg(long, global = true)]
    pub(crate) no_agent: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The global options, taken again (hidden) by the commands that use no vault, so that their
/// help does not list options they ignore. Given (or set in the environment, whose values clap
/// hands down to these), they are ignored, as before.
#[derive(clap::Args)]
#[allow(dead_code, reason = "parsed only to keep the global options out of these commands' help")]
pub(crate) struct NoVault {
    #[arg(long, hide = true)]
    vault: Option<String>,
    #[arg(long, hide = true)]
    password_stdin: bool,
    #[arg(long, hide = true)]
    config: Option<PathBuf>,
    #[arg(long, hide = true)]
    no_agent: bool,
}

#[derive(clap::Args, Clone, Copy)]
pub(crate) struct KdfArgs {
    /// Argon2id memory in KiB (default 65536).
    #[arg(long, value_name = "KIB")]
    pub(crate) kdf_memory: Option<u32>,
    /// Argon2id passes (default 3).
    #[arg(long, value_name = "N")]
    pub(crate) kdf_time: Option<u32>,
    /// Argon2id lanes (default 4).
    #[arg(long, value_name = "N")]
    pub(crate) kdf_parallelism: Option<u32>,
}

impl KdfArgs {
    pub(crate) fn params(&self) -> KdfParams {
        let d = KdfParams::DEFAULT;
        KdfParams {
            m_kib: self.kdf_memory.unwrap_or(d.m_kib),
            t: self.kdf_time.unwrap_or(d.t),
            p: self.kdf_parallelism.unwrap_or(d.p),
        }
    }
}

/// Where a new password comes from (`passwd`, `recover`, `keyslot add`), and its KDF cost.
/// What `cp` and `mv` take.
#[derive(clap::Args)]
pub struct CopyArgs {
    /// The secret (or prefix, with -r).
    pub from: String,
    /// The new path (ending in /: under it, with the same name).
    pub to: String,
    /// Every secret under FROM, to the same place under TO.
    #[arg(long, short = 'r')]
    pub recursive: bool,
    /// Add the versions to a destination that exists (default: refuse).
    #[arg(long, short = 'f')]
    pub force: bool,
    /// JSON output on stdout: `[{from, to, versions, version}]`.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub(crate) struct NewPasswordArgs {
    /// Read the new password from the next line of stdin (after the current password with
    /// --password-stdin, or after the recovery phrase).
    #[arg(long)]
    pub(crate) new_password_stdin: bool,
    /// Read the new password from the first line of this file.
    #[arg(long, value_name = "FILE", conflicts_with = "new_password_stdin")]
    pub(crate) new_password_file: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) kdf: KdfArgs,
}

impl NewPasswordArgs {
    /// The new password (stdin, file, or a prompt asked twice), checked against the rules, and
    /// the KDF parameters, checked against their bounds — before the store is touched.
    pub(crate) fn read(&self, stdin: &mut impl BufRead) -> Result<(SecretString, KdfParams), CliError> {
        let file = self.new_password_file.as_ref().map(|p| p.display().to_string());
        let new =
            password::new(self.new_password_stdin, file.as_deref(), stdin, false).map_err(CliError::input)?;
        tresor::keyfile::check_password_rules(&new).map_err(|e| CliError::from_core(&e))?;
        let kdf = self.kdf.params();
        kdf.check().map_err(|_| CliError::input("KDF parameters out of the accepted range".into()))?;
        Ok((new, kdf))
    }
}

pub(crate) const RUN_EXAMPLES: &str = "\
Examples:
  tresor run --env DB_PASSWORD=db/password -- ./server
  tresor run --env-file app.env -- npm start      (app.env: DB_URL=tresor://db/url)
  tresor run --prefix app/prod -- env             (app/prod/api-key becomes API_KEY)
  tresor run --file TLS_KEY=tls/key.pem -- nginx  (TLS_KEY=/dev/fd/N, an in-memory file)
  tresor run --mask --env TOKEN=ci/token -- ./deploy.sh

Without --mask tresor becomes the command (its signals and exit status are the command's own).
Exit 127: the command was not found; 126: it cannot be run; with --mask, 128+N: signal N ended it.";

/// What `tresor run` gives the command (see `commands/run.rs`).
#[derive(clap::Args)]
pub(crate) struct RunFlags {
    /// Set NAME to a secret: a path or a reference (repeat for several).
    #[arg(long = "env", value_name = "NAME=REF")]
    pub(crate) env: Vec<String>,
    /// Variables from a .env file (`-`: stdin); values that are references are resolved.
    #[arg(long = "env-file", value_name = "FILE")]
    pub(crate) env_files: Vec<PathBuf>,
    /// Every secret under PREFIX as a variable named after the rest of its path
    /// (api-key → API_KEY).
    #[arg(long, value_name = "PREFIX")]
    pub(crate) prefix: Vec<String>,
    /// Set NAME to the path of an in-memory file holding a secret (gone when the command ends).
    #[arg(long = "file", value_name = "NAME=REF")]
    pub(crate) files: Vec<String>,
    /// Mask secret values (4 bytes or more) in the command's output, which then goes through a
    /// pipe.
    #[arg(long)]
    pub(crate) mask: bool,
    /// The command and its arguments (after --).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "COMMAND")]
    pub(crate) command: Vec<std::ffi::OsString>,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
        #[command(flatten)]
        no_vault: NoVault,
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
        #[command(flatten)]
        no_vault: NoVault,
    },
    /// Start (or reuse) the agent, so later commands need no password.
    Unlock {
        /// Lock after this long without a request (e.g. 15m, 1h).
        #[arg(long, value_name = "DURATION")]
        idle_timeout: Option<String>,
    },
    /// Tell the agent to wipe every key and exit.
    Lock,
    /// Serve HashiCorp Vault's HTTP API (KV v2 at secret/) on this vault to programs with a token.
    /// Every flag also has a key in the config file's [server] table; a flag given wins.
    Server {
        #[command(flatten)]
        flags: ServerFlags,
    },
    /// Serve a relay for sync groups: it stores and forwards fixed-size encrypted cells under
    /// random mailbox ids and learns nothing else — no names, values, sizes, members or groups.
    /// It holds no vault and no key.
    Relay {
        #[command(flatten)]
        flags: RelayFlags,
        #[command(flatten)]
        no_vault: NoVault,
    },
    /// Sync groups: share a folder with other vaults through a relay that learns nothing
    /// (create, invite, join, list, members, name, remove, relay, leave; koi for KOI-net peers).
    #[command(arg_required_else_help = true)]
    Share {
        #[command(subcommand)]
        action: share::ShareAction,
    },
    /// Send this vault's changes to its sync groups and take in theirs (once, or --watch).
    Sync {
        #[command(flatten)]
        args: share::SyncArgs,
    },
    /// Unseal a running `tresor server` with the vault's password (or, with --share, one unseal
    /// share at a time, as `vault operator unseal`).
    Unseal {
        /// The server (default: TRESOR_ADDR, VAULT_ADDR, else http://127.0.0.1:8200); plain http
        /// only to this machine.
        #[arg(long, value_name = "URL")]
        address: Option<String>,
        /// Trust only this CA certificate (PEM) for the server's TLS (default: TRESOR_CACERT,
        /// VAULT_CACERT, else the system's roots).
        #[arg(long, value_name = "FILE")]
        ca_cert: Option<PathBuf>,
        /// Give one unseal share (prompted, hidden) instead of the password.
        #[arg(long)]
        share: bool,
    },
    /// Log in to a `tresor server` with a token (read from stdin, or prompted, hidden): it is
    /// checked, then kept for that address, and the everyday commands use it when TRESOR_ADDR
    /// names the server.
    Login {
        /// The server (default: TRESOR_ADDR, VAULT_ADDR, else http://127.0.0.1:8200); plain http
        /// only to this machine.
        #[arg(long, value_name = "URL")]
        address: Option<String>,
        /// Trust only this CA certificate (PEM) for the server's TLS (default: TRESOR_CACERT,
        /// VAULT_CACERT, else the system's roots).
        #[arg(long, value_name = "FILE")]
        ca_cert: Option<PathBuf>,
        #[command(flatten)]
        no_vault: NoVault,
    },
    /// Forget the token `tresor login` kept for a server (it stays valid on the server until it
    /// expires or is revoked).
    Logout {
        /// The server (default: TRESOR_ADDR, VAULT_ADDR, else http://127.0.0.1:8200).
        #[arg(long, value_name = "URL")]
        address: Option<String>,
        #[command(flatten)]
        no_vault: NoVault,
    },
    /// Store a secret: the value from VALUE, --file, or stdin (exact bytes); on a terminal, asked
    /// twice.
    #[command(arg_required_else_help = true, visible_alias = "insert")]
    Set {
        /// The secret's path, e.g. db/password.
        path: String,
        /// The value (visible to other processes in argv: prefer stdin or --file).
        value: Option<String>,
        /// Read the value from this file (`-`: stdin).
        #[arg(long, value_name = "FILE", conflicts_with = "value")]
        file: Option<PathBuf>,
        /// Check-and-set: write only if the secret's newest version is N, as `tresor history`
        /// shows it (a deleted one counts, as in Vault's KV v2; 0: only if it never had a
        /// version); otherwise fail with exit code 6 and write nothing.
        #[arg(long, value_name = "N")]
        cas: Option<u64>,
        /// JSON output on stdout (the human line stays on stderr).
        #[arg(long)]
        json: bool,
    },
    /// Run a command with secrets in its environment (references tresor://PATH[#FIELD][?version=N]
    /// in its environment and env files are resolved); its exit code is passed through.
    #[command(arg_required_else_help = true, after_help = RUN_EXAMPLES)]
    Run {
        #[command(flatten)]
        flags: RunFlags,
    },
    /// Fill in a template: every {{ tresor://PATH[#FIELD][?version=N] }} replaced by its value.
    Inject {
        /// The template (default, or `-`: stdin).
        #[arg(short = 'i', long = "in-file", value_name = "FILE")]
        input: Option<PathBuf>,
        /// Write the result to this new file (mode 0600) instead of stdout.
        #[arg(short = 'o', long = "out-file", value_name = "FILE")]
        output: Option<PathBuf>,
        /// Replace the output file if it exists.
        #[arg(long, requires = "output")]
        force: bool,
    },
    /// Print what a reference names (exact bytes): tresor://PATH[#FIELD][?version=N], or a path.
    #[command(arg_required_else_help = true)]
    Read {
        /// The reference.
        reference: String,
        /// JSON output on stdout: `{path, field, version, value}` (`value_base64` for bytes
        /// that are not UTF-8).
        #[arg(long)]
        json: bool,
    },
    /// Store a new random password (or passphrase, --words); shown only with --print.
    #[command(arg_required_else_help = true)]
    Generate {
        /// The secret's path.
        path: String,
        /// Characters (default 24).
        #[arg(long, short = 'l', value_name = "N")]
        length: Option<usize>,
        /// Which characters (default ascii: letters, digits, punctuation).
        #[arg(long, value_enum, conflicts_with = "chars")]
        charset: Option<crate::commands::generate::Charset>,
        /// Exactly these characters instead.
        #[arg(long, value_name = "CHARS")]
        chars: Option<String>,
        /// A passphrase of N words (BIP39 English list, joined by -) instead of characters.
        #[arg(long, value_name = "N")]
        words: Option<usize>,
        /// Store a new version if the secret exists (default: refuse).
        #[arg(long, short = 'f')]
        force: bool,
        /// Print the new secret to stdout.
        #[arg(long, short = 'p')]
        print: bool,
        /// Copy the new secret to the clipboard (cleared after 45 s, TRESOR_CLIP_TIME).
        #[arg(long, short = 'c')]
        clip: bool,
        /// JSON output on stdout (the human line stays on stderr).
        #[arg(long)]
        json: bool,
    },
    /// Copy a secret, with its versions, to a new path (-r: everything under a prefix).
    #[command(arg_required_else_help = true)]
    Cp {
        #[command(flatten)]
        args: CopyArgs,
    },
    /// Move a secret, with its versions, to a new path (its old path keeps its history, deleted).
    #[command(arg_required_else_help = true)]
    Mv {
        #[command(flatten)]
        args: CopyArgs,
    },
    /// Change a secret in $VISUAL or $EDITOR (a private file in memory, wiped afterwards).
    #[command(arg_required_else_help = true)]
    Edit {
        /// The secret's path (a new one starts empty).
        path: String,
    },
    /// Print a secret's value (exact bytes) to stdout; also a reference (tresor://PATH#FIELD).
    #[command(arg_required_else_help = true, visible_alias = "show")]
    Get {
        /// The secret's path (several: each value printed, each ending in a newline).
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<String>,
        /// Read this version instead of the current one (one path only).
        #[arg(long, value_name = "N")]
        version: Option<u64>,
        /// Copy it to the clipboard instead of printing it (cleared after 45 s, TRESOR_CLIP_TIME).
        #[arg(long, short = 'c')]
        clip: bool,
        /// JSON output on stdout: `[{path, field, version, value}]` (`value_base64` for bytes
        /// that are not UTF-8).
        #[arg(long)]
        json: bool,
    },
    /// List the secrets whose path contains PATTERN (any case).
    #[command(arg_required_else_help = true)]
    Find {
        /// A part of a path.
        pattern: String,
        /// JSON output on stdout (the human line stays on stderr).
        #[arg(long)]
        json: bool,
    },
    /// List secret paths (under PREFIX).
    #[command(alias = "ls")]
    List {
        /// Only paths starting with this.
        prefix: Option<String>,
        /// Show version, size and update time.
        #[arg(short, long, conflicts_with = "tree")]
        long: bool,
        /// Show the paths as a tree.
        #[arg(short, long)]
        tree: bool,
        /// The deleted secrets instead (`tresor undelete PATH` brings one back).
        #[arg(long)]
        deleted: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Delete a secret (its history is kept).
    #[command(alias = "delete", arg_required_else_help = true)]
    Rm {
        /// The secret's path (several allowed).
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<String>,
        /// Delete every secret under each PATH taken as a prefix (`db` → everything in db/).
        #[arg(long, short = 'r')]
        recursive: bool,
        /// JSON output on stdout (the human line stays on stderr).
        #[arg(long)]
        json: bool,
    },
    /// Make deleted versions of a secret live again (the newest version by default).
    #[command(arg_required_else_help = true)]
    Undelete {
        /// The secret's path.
        path: String,
        /// A version to undelete (repeat for several).
        #[arg(long = "version", value_name = "N", conflicts_with = "recursive")]
        versions: Vec<u64>,
        /// Every deleted secret under PATH taken as a prefix (what `rm -r` deleted).
        #[arg(long, short = 'r')]
        recursive: bool,
        /// JSON output on stdout (the human line stays on stderr).
        #[arg(long)]
        json: bool,
    },
    /// Destroy versions of a secret: their values are taken out of the store for good (the
    /// versions stay in the history as destroyed).
    #[command(arg_required_else_help = true)]
    Destroy {
        /// The secret's path.
        path: String,
        /// A version to destroy (repeat for several; at least one).
        #[arg(long = "version", value_name = "N", required = true)]
        versions: Vec<u64>,
        /// JSON output on stdout (the human line stays on stderr).
        #[arg(long)]
        json: bool,
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
        #[command(flatten)]
        filter: AuditFilterArgs,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Write a self-contained encrypted backup (key file included), or — with --format env or
    /// json — the secrets in PLAINTEXT, for another tool.
    #[command(arg_required_else_help = true)]
    Export {
        /// The file to write (`-`: stdout; plaintext never to a terminal without --force).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// archive (encrypted, the default), env (KEY=VALUE lines) or json (nested objects).
        #[arg(long, value_enum, default_value = "archive")]
        format: crate::commands::plain::ExportFormat,
        /// Only the secrets under this prefix (plaintext formats).
        #[arg(long, value_name = "PREFIX")]
        prefix: Option<String>,
        /// Replace an existing backup file; write plaintext to a terminal after all.
        #[arg(long)]
        force: bool,
    },
    /// Restore a backup into an empty location, or add secrets from a .env or JSON file.
    #[command(arg_required_else_help = true)]
    Import {
        /// The file to import (`-`: stdin).
        file: PathBuf,
        /// Its format (detected by default).
        #[arg(long, value_enum)]
        format: Option<import::Format>,
        /// Put every imported secret under this prefix (.env and JSON files).
        #[arg(long, value_name = "PREFIX")]
        prefix: Option<String>,
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
    /// Print shell completions (secret paths too, from an unlocked agent):
    /// `source <(tresor completions bash)`.
    #[command(arg_required_else_help = true)]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
        #[command(flatten)]
        no_vault: NoVault,
    },
    /// Print the man page (roff): `tresor man | man -l -`; `tresor man run` for a command's.
    Man {
        /// A command (its page is tresor-COMMAND(1)).
        command: Option<String>,
        #[command(flatten)]
        no_vault: NoVault,
    },
    /// Empties the clipboard after a while if it still holds the value whose SHA-256 is on stdin.
    #[command(name = "__clip-clear", hide = true)]
    ClipClear {
        /// Seconds to wait.
        #[arg(long)]
        after: u64,
    },
    /// The secret paths starting with PREFIX, for shell completion: from an unlocked agent only,
    /// never asking for a password.
    #[command(name = "__complete-paths", hide = true)]
    CompletePaths {
        /// What was typed so far.
        #[arg(default_value = "")]
        prefix: String,
    },
    /// Run the agent in the foreground (started by `tresor unlock`).
    #[command(hide = true)]
    Agent {
        /// Lock and exit after this long without a request.
        #[arg(long)]
        idle_timeout: Option<String>,
    },
}

/// Which audit records `tresor audit` shows.
#[derive(clap::Args)]
pub(crate) struct AuditFilterArgs {
    /// Only records about this path or what is under it.
    #[arg(long, value_name = "PATH")]
    pub(crate) path: Option<String>,
    /// Only records whose actor contains this (e.g. `pid=4242`, a token accessor).
    #[arg(long, value_name = "TEXT")]
    pub(crate) actor: Option<String>,
    /// Only this operation (as shown: `get`, `set`, `epoch rotate`, ...).
    #[arg(long, value_name = "OP")]
    pub(crate) op: Option<String>,
    /// Only records from then on: RFC 3339, a date (2026-12-01), or a time ago (2h, 7d).
    #[arg(long, value_name = "WHEN")]
    pub(crate) since: Option<String>,
    /// Only records until then (same forms as --since).
    #[arg(long, value_name = "WHEN")]
    pub(crate) until: Option<String>,
    /// Only the newest N.
    #[arg(long, short = 'n', value_name = "N")]
    pub(crate) limit: Option<usize>,
}

impl AuditFilterArgs {
    /// Whether any filter was given.
    pub(crate) fn is_set(&self) -> bool {
        self.path.is_some()
            || self.actor.is_some()
            || self.op.is_some()
            || self.since.is_some()
            || self.until.is_some()
            || self.limit.is_some()
    }
}

#[derive(Subcommand)]
pub(crate) enum AuditAction {
    /// Prove the audit trail and the commit log whole.
    Verify {
        /// JSON output (the report; exit 5 still when a value is damaged).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// The flags of `tresor relay`.
#[derive(clap::Args)]
pub(crate) struct RelayFlags {
    /// Address and port to listen on (anything but loopback needs TLS, or --tls-disable).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8250")]
    pub(crate) listen: String,
    /// The directory the cells are kept in (made if missing); default: relay/ in tresor's state
    /// directory.
    #[arg(long, value_name = "DIR")]
    pub(crate) data: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM); SIGHUP reads it again.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback address: the cells stay sealed, but the network then
    /// sees which mailboxes each address uses.
    #[arg(long, conflicts_with = "tls_cert")]
    pub(crate) tls_disable: bool,
    /// The most the relay keeps in all mailboxes together, in bytes or with a suffix (K, M, G,
    /// T: powers of 1,024); uploads past it get 507.
    #[arg(long, value_name = "SIZE", default_value = "16G", value_parser = parse_size)]
    pub(crate) max_size: u64,
    /// The most mailboxes the relay keeps; uploads to a new one past it get 507.
    #[arg(long, value_name = "N", default_value_t = 1 << 20)]
    pub(crate) max_mailboxes: u64,
}

/// A size in bytes: digits, then optionally K, M, G or T (powers of 1,024; "KiB", "k" and "KB"
/// read the same).
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, suffix) = text.split_at(split);
    let number: u64 =
        digits.parse().map_err(|_| format!("{text}: not a size (digits, then K, M, G or T)"))?;
    let unit = suffix.trim().to_ascii_lowercase();
    let unit = unit.strip_suffix("ib").or_else(|| unit.strip_suffix('b')).unwrap_or(&unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(format!("{text}: not a size (digits, then K, M, G or T)")),
    };
    number.checked_mul(1 << shift).ok_or_else(|| format!("{text}: too large"))
}

/// The flags of `tresor server` (each also a key of the config file's `[server]` table).
#[derive(clap::Args)]
pub(crate) struct ServerFlags {
    /// Address and port to listen on (anything but loopback needs TLS, or --tls-disable);
    /// default 127.0.0.1:8200.
    #[arg(long, value_name = "ADDR:PORT")]
    pub(crate) listen: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM); SIGHUP reads it again.
    #[arg(long, value_name = "FILE")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback address (Vault's tls_disable): tokens and secrets then
    /// cross the network in the clear.
    #[arg(long)]
    pub(crate) tls_disable: bool,
    /// A temporary vault, unsealed, with a root token printed: for trying it (like `vault
    /// server -dev`); removed when the server stops.
    #[arg(long)]
    pub(crate) dev: bool,
    /// Unseal at start with the vault's password (the config's encryption_password or
    /// encryption_password_file, TRESOR_PASSWORD_FILE, --password-stdin or a prompt); otherwise
    /// the server starts sealed (sys/unseal takes the unseal shares), or uninitialized on an
    /// empty location (sys/init makes the vault).
    #[arg(long)]
    pub(crate) unseal: bool,
    /// How old the view a request may be served from (default 100ms): another process's
    /// writes to the vault show within it, or at once to a request sending the X-Vault-Index
    /// an answer carried; "0s" checks the store at every request.
    #[arg(long, value_name = "DURATION")]
    pub(crate) read_staleness: Option<String>,
    /// How often the vault's sync groups (`tresor share`) are synced while unsealed (default:
    /// TRESOR_SYNC_INTERVAL, else 60s; "0" never).
    #[arg(long, value_name = "DURATION")]
    pub(crate) sync_interval: Option<String>,
    /// Create a root token at start and print it once (with --unseal, or a configured
    /// password). A flag only: a config key would make a new root token at every start.
    #[arg(long)]
    pub(crate) new_root_token: bool,
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_read_as_bytes_or_powers_of_1024_and_anything_else_is_refused() {
        for (text, bytes) in [
            ("0", 0),
            ("4096", 4096),
            ("4K", 4096),
            ("4k", 4096),
            ("4KiB", 4096),
            ("4KB", 4096),
            ("16G", 16 << 30),
            ("2T", 2 << 40),
            ("512M", 512 << 20),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
        for bad in
            ["", "G", "-1", "1.5G", "4X", "4 Gigs", "4kbbb", "4KiBB", "99999999999999999999", "20000000T"]
        {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
