//! Recovery phrase, keyslots, derived keys: `recover`, `keyslot`, `key derive`, `sign`,
//! `verify`, `encrypt`, `decrypt`, and the vault-less `mnemonic` tools.
//!
//! How phrases are read (the same for `recover` and `mnemonic seed|derive`): from stdin when it
//! is not a terminal — the phrase on the first line, an optional BIP39 passphrase on the second
//! (`recover` reads only the phrase: the vault's phrase has no passphrase) — or else from hidden
//! prompts. Words may be separated by any whitespace; the phrase and the passphrase are NFKD
//! normalised as BIP39 specifies. Private keys are printed only with `--show-private`.

use crate::password;
use crate::{CliError, Ctx, NewPasswordArgs, call, outln_bytes, print_json, runtime};
use clap::Subcommand;
use secrecy::{ExposeSecret, SecretString};
use std::io::{BufRead, IsTerminal, Read};
use std::path::{Path, PathBuf};
use tresor::{Store, Vault};
use tresor_crypto::slip10::{self, DerivationPath, Ed25519Node};
use tresor_crypto::transit;
use tresor_crypto::{Language, Phrase};
use tresor_wire::{
    Blob, Decrypt, DeriveIdentity, Encrypt, Identity, ListKeyslots, MessageKey, SecretBuf, Sign, Signature,
    StreamKey,
};
use zeroize::Zeroizing;

/// What `tresor keyslot` does.
#[derive(Subcommand)]
pub enum KeyslotAction {
    /// The key file's slots: index, kind, KDF parameters; `*` marks the one that unlocked.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Add a password (needs a current one); other slots are unchanged.
    Add {
        #[command(flatten)]
        new: NewPasswordArgs,
    },
    /// Remove slot INDEX (needs a current password); the last password slot is never removed.
    #[command(arg_required_else_help = true)]
    Remove {
        /// The slot, as `keyslot list` shows it.
        index: usize,
    },
}

/// What `tresor key` does.
#[derive(Subcommand)]
pub enum KeyAction {
    /// Derive a key from the vault's root.
    #[command(arg_required_else_help = true)]
    Derive {
        #[command(subcommand)]
        kind: DeriveKind,
    },
}

/// Kinds of derived keys.
#[derive(Subcommand)]
pub enum DeriveKind {
    /// The Ed25519 identity at a SLIP-0010 hardened path (e.g. m/74'/0'/0'): its public key.
    #[command(arg_required_else_help = true)]
    Ed25519 {
        /// The path; every component hardened (74' or 74h).
        path: String,
        /// Also print the private key and chain code.
        #[arg(long)]
        show_private: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

/// What `tresor mnemonic` does (no vault involved).
#[derive(Subcommand)]
pub enum MnemonicAction {
    /// A new random BIP39 phrase.
    Generate {
        /// Number of words: 12, 15, 18, 21 or 24.
        #[arg(long, default_value_t = 24)]
        words: usize,
        /// Word list: english, japanese, korean, spanish, chinese-simplified,
        /// chinese-traditional, french, italian, czech, portuguese.
        #[arg(long, default_value = "english")]
        language: String,
    },
    /// The BIP39 seed (hex) of a phrase and optional passphrase (stdin: phrase, then passphrase).
    Seed,
    /// The SLIP-0010 Ed25519 node at PATH of a phrase's seed: public key and chain code.
    #[command(arg_required_else_help = true)]
    Derive {
        /// The path; every component hardened.
        path: String,
        /// Also print the private key.
        #[arg(long)]
        show_private: bool,
        /// Read a BIP39 seed (hex, first line of stdin) instead of a phrase.
        #[arg(long)]
        from_seed: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

/// Where a recovery phrase goes.
pub enum PhraseTarget {
    /// Stderr, which is a terminal.
    Terminal,
    /// A new private file.
    File(PhraseFile),
}

/// A new file (mode 0600) for a recovery phrase, created before the phrase exists: a name that is
/// taken, or a directory that cannot hold it, fails before a vault is made. Removed again if
/// nothing was written to it.
pub struct PhraseFile {
    file: Option<std::fs::File>,
    path: PathBuf,
}

impl PhraseFile {
    /// Creates `path`, which must not exist.
    pub fn create(path: &Path) -> Result<PhraseFile, CliError> {
        use std::os::unix::fs::OpenOptionsExt;
        let file =
            std::fs::OpenOptions::new().create_new(true).write(true).mode(0o600).open(path).map_err(|e| {
                let stale = if e.kind() == std::io::ErrorKind::AlreadyExists {
                    " (it is never overwritten; an interrupted run leaves an empty one: remove that)"
                } else {
                    ""
                };
                CliError::input(format!("cannot create {}: {e}{stale}", path.display()))
            })?;
        Ok(PhraseFile { file: Some(file), path: path.to_path_buf() })
    }

    /// Writes the phrase (one line) and makes it durable.
    fn write(mut self, phrase: &str) -> Result<(), CliError> {
        use std::io::Write;
        let path = self.path.clone();
        let mut file = self.file.take().ok_or_else(|| CliError::other("the phrase file is gone".into()))?;
        let written = file
            .write_all(phrase.as_bytes())
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all());
        if let Err(e) = written {
            let _ = std::fs::remove_file(&path);
            return Err(CliError::other(format!("cannot write {}: {e}", path.display())));
        }
        Ok(())
    }
}

impl Drop for PhraseFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Shows a recovery phrase: on the terminal (stderr), written straight from the phrase's own
/// buffer, or into a new private file.
pub fn show_recovery_phrase(phrase: &Phrase, target: PhraseTarget) -> Result<(), CliError> {
    let text = phrase.expose_phrase();
    let file = match target {
        PhraseTarget::File(file) => file,
        PhraseTarget::Terminal => {
            use std::io::Write;
            let mut err = std::io::stderr().lock();
            let shown = (|| -> std::io::Result<()> {
                writeln!(err)?;
                writeln!(
                    err,
                    "Recovery phrase (24 words). It alone opens this vault: write it down, keep it offline."
                )?;
                writeln!(
                    err,
                    "`tresor recover` restores access with it (paste it as shown, numbers and all)."
                )?;
                for (i, word) in text.split(' ').enumerate() {
                    let sep = if i % 6 == 0 { "\n  " } else { " " };
                    write!(err, "{sep}{:>2}. {word:<9}", i + 1)?;
                }
                writeln!(err)?;
                writeln!(err)
            })();
            return shown.map_err(|e| CliError::other(format!("cannot show the recovery phrase: {e}")));
        }
    };
    let path = file.path.clone();
    file.write(text.as_str())?;
    errln!(
        "recovery phrase written to {} (mode 0600): keep it offline, then delete the file",
        path.display()
    );
    Ok(())
}

/// `tresor recovery-phrase [--file F]`: the phrase again, with the password (an unlocked agent is
/// not enough), on a terminal or into a new file.
pub fn recovery_phrase(ctx: &mut Ctx, file: Option<PathBuf>) -> Result<(), CliError> {
    let target = match file {
        Some(path) => PhraseTarget::File(PhraseFile::create(&path)?),
        None if std::io::stderr().is_terminal() => PhraseTarget::Terminal,
        None => {
            return Err(CliError::usage(
                "stderr is not a terminal (the phrase would end up in a log): use --file FILE".into(),
            ));
        }
    };
    let phrase = with_password(ctx, async |v: &mut Vault| v.recovery_phrase().await)?;
    show_recovery_phrase(&phrase, target)
}

/// Reads a phrase (and, with `passphrase`, the optional passphrase) from stdin or prompts.
fn read_phrase(stdin: &mut impl BufRead, passphrase: bool) -> Result<(Phrase, SecretString), CliError> {
    let (line, pass) = if std::io::stdin().is_terminal() {
        let line = password::prompt_line("Recovery phrase (hidden): ").map_err(CliError::input)?;
        let pass = if passphrase {
            password::prompt_line("BIP39 passphrase (empty for none): ").map_err(CliError::input)?
        } else {
            SecretString::from(String::new())
        };
        (line, pass)
    } else {
        // Sized once: a growing String would leave copies of the phrase in freed memory.
        let mut text = Zeroizing::new(String::with_capacity((1 << 16) + 1));
        stdin
            .take(1 << 16)
            .read_to_string(&mut text)
            .map_err(|e| CliError::input(format!("cannot read stdin: {e}")))?;
        let mut lines = text.lines();
        let line = SecretString::from(lines.next().unwrap_or_default().to_string());
        let pass = SecretString::from(if passphrase {
            lines.next().unwrap_or_default().to_string()
        } else {
            String::new()
        });
        (line, pass)
    };
    let phrase =
        Phrase::parse(line.expose_secret()).map_err(|e| CliError::input(format!("recovery phrase: {e}")))?;
    Ok((phrase, pass))
}

/// Reads the recovery phrase as it was shown or written: one line of words (what scripts and
/// `--file` give), or the numbered rows `init` shows (`1. word  2. word ...`, pasted as they are,
/// numbers and line breaks included) until the 24 words are there or a blank line ends them.
/// What follows (a new password) stays unread. From a terminal each line is read hidden, so a
/// pasted block never reaches the shell.
fn read_phrase_line(stdin: &mut impl BufRead) -> Result<Phrase, CliError> {
    let terminal = std::io::stdin().is_terminal();
    let mut next_line = |first: bool, have: usize| -> Result<Option<SecretString>, CliError> {
        if terminal {
            let label = if first {
                "Recovery phrase (hidden; paste it as shown, numbers and rows are fine): ".to_string()
            } else {
                format!("  ... {have} of 24 words so far (hidden; an empty line ends it): ")
            };
            return password::prompt_line(&label).map(Some).map_err(CliError::input);
        }
        // Sized once, and bounded: a growing String would leave copies of the phrase behind.
        let mut text = Zeroizing::new(String::with_capacity(4097));
        let read = (&mut *stdin)
            .take(4096)
            .read_line(&mut text)
            .map_err(|e| CliError::input(format!("cannot read stdin: {e}")))?;
        Ok((read > 0).then(|| SecretString::from(text.trim().to_string())))
    };
    let words = collect_phrase_words(&mut next_line)?;
    Phrase::parse(&words).map_err(|e| CliError::input(format!("recovery phrase: {e}")))
}

/// Whether `token` is one of the numbers the phrase is shown with (`1.`, `12)`, `3:`, `4`).
fn is_word_number(token: &str) -> bool {
    let digits = token.trim_end_matches(['.', ')', ':']);
    !digits.is_empty() && digits.len() <= 2 && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The words of a phrase from lines `next_line` gives (`first`, words so far): one plain line, or
/// numbered rows until 24 words, a blank line, or the end; at most 32 lines.
fn collect_phrase_words(
    next_line: &mut dyn FnMut(bool, usize) -> Result<Option<SecretString>, CliError>,
) -> Result<Zeroizing<String>, CliError> {
    let mut words = Zeroizing::new(String::with_capacity(24 * 12));
    let mut count = 0;
    let mut numbered = false;
    for line_no in 0..32 {
        let Some(line) = next_line(line_no == 0, count)? else { break };
        let line = line.expose_secret();
        let tokens: Vec<&str> = line.split_whitespace().collect();
        if tokens.is_empty() {
            // Blank lines before the phrase are skipped; one after it ends it.
            if count == 0 {
                continue;
            }
            break;
        }
        numbered |= tokens.first().is_some_and(|t| is_word_number(t));
        for word in tokens.iter().filter(|t| !(numbered && is_word_number(t))) {
            if !words.is_empty() {
                words.push(' ');
            }
            words.push_str(word);
            count += 1;
        }
        // A plain line is the whole phrase; numbered rows go on until the 24 words are there.
        if !numbered || count >= 24 {
            break;
        }
    }
    Ok(words)
}

/// `tresor recover`: the phrase (first line of stdin, or a prompt), then a new password.
pub fn recover(
    ctx: &mut Ctx,
    keep_slots: bool,
    new: &NewPasswordArgs,
    stdin: &mut impl BufRead,
) -> Result<(), CliError> {
    let rt = runtime()?;
    let store = crate::open_existing(&rt, &ctx.location)?;
    let phrase = read_phrase_line(stdin)?;
    let (new, kdf) = new.read(stdin)?;
    let slots = rt.block_on(async {
        let vault = Vault::recover(store, &phrase, &new, kdf, keep_slots, ctx.options("cli"))
            .await
            .map_err(|e| CliError::from_core(&e))?;
        Ok::<_, CliError>(vault.keyslots().await.map_err(|e| CliError::from_core(&e))?.len())
    })?;
    if ctx.agent_is_unlocked() {
        errln!("tresor: note: a running agent keeps its session; `tresor lock` ends it");
    }
    let kept = if keep_slots {
        format!("{} slots in all", slots)
    } else {
        "the old passwords no longer open it".into()
    };
    errln!("recovered: the new password opens the vault ({kept}); recorded in the audit trail");
    Ok(())
}

/// Opens the vault with the current password and runs `f` (key file changes need a password,
/// never just a running agent).
fn with_password<T>(
    ctx: &mut Ctx,
    f: impl AsyncFnOnce(&mut Vault) -> tresor::Result<T>,
) -> Result<T, CliError> {
    let rt = runtime()?;
    let store: Store = crate::open_existing(&rt, &ctx.location)?;
    let mut vault = crate::unlock_here(ctx, &rt, store)?;
    crate::report_unlocked(&vault);
    rt.block_on(async { f(&mut vault).await.map_err(|e| CliError::from_core(&e)) })
}

/// Runs `tresor keyslot ACTION`.
pub fn keyslot(ctx: &mut Ctx, action: KeyslotAction, stdin: &mut impl BufRead) -> Result<(), CliError> {
    match action {
        KeyslotAction::List { json } => match call(ctx, ListKeyslots)? {
            slots if json => print_json(&slots),
            slots => {
                for s in slots {
                    let mark = if s.this_session { "*" } else { " " };
                    outln!("{mark} {}\t{}\t{}", s.index, s.kind, s.kdf);
                }
                Ok(())
            }
        },
        KeyslotAction::Add { new } => {
            let current = ctx.password_labeled("Current password: ")?;
            ctx.stdin_password = Some(current);
            let (new, params) = new.read(stdin)?;
            let index = with_password(ctx, async |v: &mut Vault| v.keyslot_add(&new, params).await)?;
            errln!("added password slot {index}");
            Ok(())
        }
        KeyslotAction::Remove { index } => {
            with_password(ctx, async |v: &mut Vault| v.keyslot_remove(index).await)?;
            errln!(
                "removed slot {index}: its password no longer opens this key file (copies of the old \
                 key file still open with it: the root secret is unchanged)"
            );
            Ok(())
        }
    }
}

fn hex_identity(
    path: &str,
    public_key: &[u8; 32],
    private: Option<&[u8]>,
    json: bool,
) -> Result<(), CliError> {
    let (private_key, chain_code) = match private {
        Some(p) if p.len() == 64 => {
            (Some(Zeroizing::new(hex::encode(&p[..32]))), Some(hex::encode(&p[32..])))
        }
        _ => (None, None),
    };
    if json {
        let mut v = serde_json::json!({ "path": path, "public_key": hex::encode(public_key) });
        if let (Some(k), Some(c)) = (&private_key, &chain_code) {
            v["private_key"] = serde_json::Value::String(k.to_string());
            v["chain_code"] = serde_json::Value::String(c.clone());
        }
        return print_json(&v);
    }
    outln!("{}", hex::encode(public_key));
    if let (Some(k), Some(c)) = (&private_key, &chain_code) {
        outln!("private_key: {}", k.as_str());
        outln!("chain_code: {c}");
    }
    Ok(())
}

/// Runs `tresor key ACTION`.
pub fn key(ctx: &mut Ctx, action: KeyAction) -> Result<(), CliError> {
    let KeyAction::Derive { kind: DeriveKind::Ed25519 { path, show_private, json } } = action;
    check_path(&path)?;
    let Identity { path, public_key, private } = call(ctx, DeriveIdentity { path, show_private })?;
    hex_identity(&path, &public_key, private.as_ref().map(|p| p.0.as_slice()), json)
}

fn check_path(path: &str) -> Result<DerivationPath, CliError> {
    path.parse::<DerivationPath>().map_err(|e| CliError::input(format!("{path}: {e}")))
}

/// Reads FILE, or stdin; at most `limit` bytes.
fn read_input(
    file: Option<&Path>,
    stdin: &mut impl BufRead,
    limit: usize,
) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let mut buf = Zeroizing::new(Vec::new());
    let read = match file {
        Some(path) => std::fs::File::open(path)
            .and_then(|f| f.take(limit as u64 + 1).read_to_end(&mut buf))
            .map_err(|e| CliError::input(format!("cannot read {}: {e}", path.display()))),
        None => stdin
            .take(limit as u64 + 1)
            .read_to_end(&mut buf)
            .map_err(|e| CliError::input(format!("cannot read stdin: {e}"))),
    };
    read?;
    if buf.len() > limit {
        return Err(CliError::input(format!("the input is larger than {limit} bytes")));
    }
    Ok(buf)
}

/// `tresor sign PATH [FILE]`: the signature (hex) on stdout.
pub fn sign(
    ctx: &mut Ctx,
    path: String,
    file: Option<PathBuf>,
    json: bool,
    stdin: &mut impl BufRead,
) -> Result<(), CliError> {
    if let Some(remote) = &ctx.remote {
        if path.starts_with("m/") {
            return Err(CliError::input(format!(
                "{path}: a server signs with its transit keys: `tresor sign KEYNAME` (unset TRESOR_ADDR to sign with an identity here)"
            )));
        }
        transit::validate_name(&path).map_err(|e| CliError::input(e.to_string()))?;
        let message = read_input(file.as_deref(), stdin, transit::MAX_PLAINTEXT)?;
        let signed = runtime()?.block_on(remote.sign(&path, &message))?;
        if json {
            return print_json(&serde_json::json!({
                "key": path, "version": signed.version,
                "public_key": hex::encode(&signed.public_key), "signature": hex::encode(&signed.signature)
            }));
        }
        outln!("{}", hex::encode(&signed.signature));
        errln!(
            "signed with {path} (version {}), public key {}",
            signed.version,
            hex::encode(&signed.public_key)
        );
        return Ok(());
    }
    check_path(&path)?;
    let message = read_input(file.as_deref(), stdin, transit::MAX_PLAINTEXT)?;
    let Signature { signature, public_key } =
        call(ctx, Sign { path: path.clone(), message: SecretBuf(message) })?;
    if json {
        return print_json(&serde_json::json!({
            "path": path, "public_key": hex::encode(public_key), "signature": hex::encode(&signature)
        }));
    }
    outln!("{}", hex::encode(&signature));
    errln!("signed with {path}, public key {}", hex::encode(public_key));
    Ok(())
}

fn hex_array<const N: usize>(what: &str, text: &str) -> Result<[u8; N], CliError> {
    let bytes = hex::decode(text.trim()).map_err(|_| CliError::input(format!("the {what} is not hex")))?;
    bytes
        .try_into()
        .map_err(|_| CliError::input(format!("the {what} must be {N} bytes ({} hex digits)", N * 2)))
}

/// `tresor verify PUBKEY SIG [FILE]` (no vault): exit 0 if valid, 12 if not.
pub fn verify(
    public_key: &str,
    signature: &str,
    file: Option<PathBuf>,
    stdin: &mut impl BufRead,
) -> Result<(), CliError> {
    let public_key: [u8; 32] = hex_array("public key", public_key)?;
    let signature: [u8; 64] = hex_array("signature", signature)?;
    // As `sign` takes it: no message larger was signed (and /dev/zero is not read for ever).
    let message = read_input(file.as_deref(), stdin, transit::MAX_PLAINTEXT)?;
    if slip10::verify(&public_key, &message, &signature) {
        errln!("signature valid");
        Ok(())
    } else {
        Err(CliError::bad_signature())
    }
}

/// `tresor encrypt KEYNAME [FILE]`: binary output, streamed (format version 2, any size, in
/// constant memory); or armoured text (version 1, at most 64 MiB) on a terminal or with `--armor`.
pub fn encrypt(
    ctx: &mut Ctx,
    key: String,
    file: Option<PathBuf>,
    alg: String,
    armor: bool,
    stdin: &mut impl BufRead,
) -> Result<(), CliError> {
    transit::validate_name(&key).map_err(|e| CliError::input(e.to_string()))?;
    let algorithm = alg.parse::<transit::Algorithm>().map_err(|_| {
        CliError::input(format!("unknown algorithm {alg:?}: use xchacha20-poly1305 or aes256-gcm"))
    })?;
    if let Some(remote) = &ctx.remote {
        let plaintext = read_input(file.as_deref(), stdin, transit::MAX_PLAINTEXT)?;
        outln!("{}", runtime()?.block_on(remote.encrypt(&key, &plaintext))?);
        return Ok(());
    }
    if !armor && !std::io::stdout().is_terminal() {
        let mut input = open_input(file.as_deref(), stdin)?;
        let (vault_id, salt, message_key) = stream_key(ctx, &key, &alg, None)?;
        let header = transit::stream::header(&key, algorithm, &salt).map_err(transit_failed)?;
        return stream_out(|out| transit::stream::encrypt(&message_key, &vault_id, &header, &mut input, out));
    }
    let plaintext = read_input(file.as_deref(), stdin, transit::MAX_PLAINTEXT)?;
    let Blob(ct) = call(ctx, Encrypt { key, alg, plaintext: SecretBuf(plaintext) })?;
    outln!("{}", transit::armor(&ct));
    Ok(())
}

/// `tresor decrypt KEYNAME [FILE]`: the plaintext (exact bytes) on stdout. A streamed ciphertext
/// is decrypted as it is read (each segment written once authenticated); any other is read whole.
pub fn decrypt(
    ctx: &mut Ctx,
    key: String,
    file: Option<PathBuf>,
    stdin: &mut impl BufRead,
) -> Result<(), CliError> {
    transit::validate_name(&key).map_err(|e| CliError::input(e.to_string()))?;
    if let Some(remote) = &ctx.remote {
        let text = read_input(file.as_deref(), stdin, transit::MAX_PLAINTEXT * 4 / 3 + 4096)?;
        let text = std::str::from_utf8(&text)
            .ok()
            .map(str::trim)
            .filter(|t| t.starts_with("vault:v"))
            .ok_or_else(|| CliError::input("a server decrypts Vault ciphertexts: vault:vN:...".into()))?;
        let plaintext = zeroize::Zeroizing::new(runtime()?.block_on(remote.decrypt(&key, text))?);
        return outln_bytes(&plaintext);
    }
    let mut input = open_input(file.as_deref(), stdin)?;
    // The first bytes say which version this is; they are read again after.
    let mut start = Vec::with_capacity(7);
    (&mut input)
        .take(7)
        .read_to_end(&mut start)
        .map_err(|e| CliError::input(format!("cannot read the ciphertext: {e}")))?;
    let stream = transit::stream::is_stream(&start);
    let mut input = std::io::Read::chain(&start[..], input);
    if stream {
        let (header, salt, raw) = transit::stream::read_header(&mut input).map_err(stream_failed)?;
        if header.name != key {
            return Err(CliError::input(format!(
                "this ciphertext was made with key {:?}, not {key:?}",
                header.name
            )));
        }
        let (vault_id, _, message_key) = stream_key(ctx, &key, header.alg.name(), Some(salt))?;
        return stream_out(|out| transit::stream::decrypt(&message_key, &vault_id, &raw, &mut input, out));
    }
    let limit = transit::MAX_PLAINTEXT * 4 / 3 + 4096;
    let mut whole = Zeroizing::new(Vec::new());
    input
        .take(limit as u64 + 1)
        .read_to_end(&mut whole)
        .map_err(|e| CliError::input(format!("cannot read the ciphertext: {e}")))?;
    if whole.len() > limit {
        return Err(CliError::input(format!("the input is larger than {limit} bytes")));
    }
    // Armour is decoded here: the agent's frames carry the binary form (a third smaller).
    let ciphertext = transit::to_binary(&whole).map_err(transit_failed)?.into_owned();
    let value = call(ctx, Decrypt { key: Some(key), ciphertext: Blob(ciphertext) })?;
    outln_bytes(&value.0)
}

/// The vault id, salt and key of one streamed message, from the agent or the vault opened here.
fn stream_key(
    ctx: &mut Ctx,
    key: &str,
    alg: &str,
    salt: Option<[u8; 32]>,
) -> Result<([u8; 16], [u8; 32], tresor_crypto::Key), CliError> {
    message_key(call(ctx, StreamKey { key: key.to_string(), alg: alg.to_string(), salt })?)
}

/// The vault id, salt and key of one streamed message, from a `StreamKey` answer.
pub(crate) fn message_key(answer: MessageKey) -> Result<([u8; 16], [u8; 32], tresor_crypto::Key), CliError> {
    let MessageKey { vault_id, salt, key } = answer;
    let mut bytes = Zeroizing::new([0u8; 32]);
    if key.0.len() != bytes.len() {
        return Err(CliError::other("the agent sent a malformed message key".into()));
    }
    bytes.copy_from_slice(&key.0);
    Ok((vault_id, salt, tresor_crypto::Key::from_bytes(&mut bytes)))
}

/// Runs a streaming transit operation into stdout (buffered).
pub(crate) fn stream_out(
    run: impl FnOnce(&mut dyn std::io::Write) -> Result<u64, transit::stream::StreamError>,
) -> Result<(), CliError> {
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(1 << 18, std::io::stdout().lock());
    let result = run(&mut out).map(drop).and_then(|()| out.flush().map_err(Into::into));
    match result {
        Err(transit::stream::StreamError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(stream_failed),
    }
}

/// The input of `encrypt`/`decrypt`: FILE, or stdin.
pub(crate) fn open_input<'a>(
    file: Option<&Path>,
    stdin: &'a mut impl BufRead,
) -> Result<Box<dyn Read + 'a>, CliError> {
    match file {
        Some(path) => std::fs::File::open(path)
            .map(|f| Box::new(std::io::BufReader::with_capacity(1 << 18, f)) as Box<dyn Read>)
            .map_err(|e| CliError::input(format!("cannot read {}: {e}", path.display()))),
        None => Ok(Box::new(stdin)),
    }
}

pub(crate) fn transit_failed(e: transit::TransitError) -> CliError {
    CliError::from_core(&tresor::Error::Invalid(e.to_string()))
}

fn stream_failed(e: transit::stream::StreamError) -> CliError {
    match e {
        transit::stream::StreamError::Transit(e) => transit_failed(e),
        transit::stream::StreamError::Io(e) => CliError::other(format!("transit stream: {e}")),
    }
}

/// Runs `tresor mnemonic ACTION`.
pub fn mnemonic(action: MnemonicAction, stdin: &mut impl BufRead) -> Result<(), CliError> {
    match action {
        MnemonicAction::Generate { words, language } => {
            let lang: Language =
                language.parse().map_err(|_| CliError::input(format!("unknown word list {language:?}")))?;
            let phrase = Phrase::generate(words, lang).map_err(|e| CliError::input(e.to_string()))?;
            outln!("{}", phrase.expose_phrase().as_str());
            Ok(())
        }
        MnemonicAction::Seed => {
            let (phrase, pass) = read_phrase(stdin, true)?;
            let seed = phrase.seed(pass.expose_secret());
            outln!("{}", Zeroizing::new(hex::encode(seed.as_slice())).as_str());
            Ok(())
        }
        MnemonicAction::Derive { path, show_private, from_seed, json } => {
            let path = check_path(&path)?;
            let seed: Zeroizing<Vec<u8>> = if from_seed {
                let line = password::read_stdin_line(stdin).map_err(CliError::input)?;
                let seed = hex::decode(line.expose_secret())
                    .map_err(|_| CliError::input("the seed is not hex".into()))?;
                if !(16..=64).contains(&seed.len()) {
                    return Err(CliError::input("a seed is 16 to 64 bytes".into()));
                }
                Zeroizing::new(seed)
            } else {
                let (phrase, pass) = read_phrase(stdin, true)?;
                Zeroizing::new(phrase.seed(pass.expose_secret()).to_vec())
            };
            let node = Ed25519Node::derive(seed.as_slice(), &path);
            if json {
                let mut v = serde_json::json!({
                    "path": path.to_string(), "public_key": hex::encode(node.public_key()),
                    "chain_code": hex::encode(node.chain_code()),
                });
                if show_private {
                    v["private_key"] = serde_json::Value::String(hex::encode(node.expose_private_key()));
                }
                return print_json(&v);
            }
            outln!("public_key: {}", hex::encode(node.public_key()));
            outln!("chain_code: {}", hex::encode(node.chain_code()));
            if show_private {
                outln!("private_key: {}", Zeroizing::new(hex::encode(node.expose_private_key())).as_str());
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collected(lines: &[&str]) -> String {
        let mut lines = lines.iter();
        let mut next = |_: bool, _: usize| Ok(lines.next().map(|l| SecretString::from(l.to_string())));
        collect_phrase_words(&mut next).ok().map(|w| w.to_string()).unwrap_or_default()
    }

    #[test]
    fn phrases_read_back_as_shown_in_numbered_rows_or_as_one_line() {
        let words: Vec<String> = (1..=24).map(|i| format!("w{i}")).collect();
        let plain = words.join(" ");
        let rows: Vec<String> = words
            .chunks(6)
            .enumerate()
            .map(|(r, c)| {
                c.iter()
                    .enumerate()
                    .map(|(i, w)| format!("{:>2}. {w:<9}", r * 6 + i + 1))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let mut shown: Vec<&str> = vec![""];
        shown.extend(rows.iter().map(String::as_str));
        shown.push("the new password, never read");
        assert_eq!(collected(&shown), plain, "the block as init shows it");
        assert_eq!(collected(&[&plain, "the new password"]), plain, "one line");
        // One plain line of 23 words: the next line (a password) is not taken as more words.
        let short = words[..23].join(" ");
        assert_eq!(collected(&[&short, "new password"]), short);
        // Numbered rows that stop early: a blank line ends them.
        assert_eq!(collected(&[" 1. a  2. b", " 3. c", "", "password"]), "a b c");
        assert!(is_word_number("12.") && is_word_number("3)") && is_word_number("7"));
        assert!(!is_word_number("abandon") && !is_word_number("123.") && !is_word_number("."));
    }
}
