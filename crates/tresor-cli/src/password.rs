//! Where passwords come from, in order: `--password-stdin`, `TRESOR_PASSWORD_FILE`,
//! `TRESOR_PASSWORD` (least safe: other processes of the user may read the environment), then a
//! prompt on the terminal. Never from argv. Every source is trimmed of surrounding whitespace, as
//! ZeroFS reads its passwords.

use secrecy::SecretString;
use std::io::{BufRead, IsTerminal};
use zeroize::Zeroizing;

/// Reads one line from stdin (without the newline), wiping the buffer.
pub fn read_stdin_line(stdin: &mut impl BufRead) -> Result<SecretString, String> {
    let line = crate::input::read_line_limited(stdin, 4096).map_err(|e| format!("the password: {e}"))?;
    Ok(SecretString::from(line.trim().to_string()))
}

/// `--password-stdin`'s line, read a byte at a time from the descriptor itself: std's stdin reads
/// ahead (8 KiB), and what it read past the line would be lost to a program `tresor run` starts
/// on the same stdin. Whatever follows the line stays there for the command, byte for byte.
pub fn read_password_line() -> Result<SecretString, String> {
    use std::os::fd::AsFd;
    let fd = std::io::stdin().as_fd().try_clone_to_owned().map_err(|e| format!("the password: {e}"))?;
    read_stdin_line(&mut std::io::BufReader::with_capacity(1, std::fs::File::from(fd)))
}

/// A set, non-empty environment variable.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The first line of the password file `path`, trimmed (`TRESOR_PASSWORD_FILE`, and the server's
/// `encryption_password_file`); the error names the file, never its content.
pub(crate) fn from_file(path: &str) -> Result<SecretString, String> {
    // A password file holds one line: past 64 KiB it is not one (and `/dev/zero` is not read forever).
    let source = crate::input::Source::File(std::path::Path::new(path));
    let bytes = crate::input::read_limited(source, std::io::empty(), 1 << 16, "a password file")
        .map_err(|e| format!("password file: {}", e.message()))?;
    let text = std::str::from_utf8(&bytes).map_err(|_| format!("password file {path}: not UTF-8"))?;
    Ok(SecretString::from(text.lines().next().unwrap_or("").trim().to_string()))
}

/// The current password from the environment or a prompt (`--password-stdin` is read earlier,
/// by the caller, because stdin also carries values).
pub fn current(label: &str) -> Result<SecretString, String> {
    if let Some(path) = env("TRESOR_PASSWORD_FILE") {
        return from_file(&path);
    }
    if let Some(pw) = env("TRESOR_PASSWORD") {
        return Ok(SecretString::from(pw.trim().to_string()));
    }
    prompt(label)
}

/// Whether [`current`] asks a person (no password in the environment): a wrong one is then
/// asked for again, as `sudo` does.
pub fn prompts() -> bool {
    env("TRESOR_PASSWORD_FILE").is_none() && env("TRESOR_PASSWORD").is_none()
}

/// Attempts a person gets at a prompt (a wrong password, a weak or mistyped new one).
pub const ATTEMPTS: usize = 3;

/// A new password (for `init`, `passwd`): `new_stdin`, `new_file`, or a prompt asked twice.
pub fn new(
    new_stdin: bool,
    new_file: Option<&str>,
    stdin: &mut impl BufRead,
    fallback_env: bool,
) -> Result<SecretString, String> {
    if new_stdin {
        return read_stdin_line(stdin);
    }
    if let Some(path) = new_file {
        return from_file(path);
    }
    if fallback_env {
        if let Some(path) = env("TRESOR_PASSWORD_FILE") {
            return from_file(&path);
        }
        if let Some(pw) = env("TRESOR_PASSWORD") {
            return Ok(SecretString::from(pw.trim().to_string()));
        }
    }
    // A person who mistypes or picks a password the rules refuse is asked again.
    let mut why = String::new();
    for attempt in 1..=ATTEMPTS {
        if attempt > 1 {
            errln!("tresor: {why}; try again ({attempt} of {ATTEMPTS})");
        }
        let first = prompt("New password: ")?;
        if let Err(e) = tresor::keyfile::check_password_rules(&first) {
            why = e.to_string();
            continue;
        }
        let second = prompt("Repeat new password: ")?;
        use secrecy::ExposeSecret;
        use subtle::ConstantTimeEq;
        if !bool::from(first.expose_secret().as_bytes().ct_eq(second.expose_secret().as_bytes())) {
            why = "the passwords do not match".into();
            continue;
        }
        return Ok(first);
    }
    Err(why)
}

/// A hidden line from the terminal (a recovery phrase, a passphrase), exactly as typed: a BIP39
/// passphrase is used verbatim, spaces included (a phrase's words are split by its parser).
pub fn prompt_line(label: &str) -> Result<SecretString, String> {
    let line =
        rpassword::prompt_password(label).map_err(|e| format!("cannot read from the terminal: {e}"))?;
    Ok(SecretString::from(line))
}

/// Where a password can come from, said when none came: true of every command that needs one
/// (`init`, `passwd` and `unseal` want the password itself, whatever the agent holds).
const NO_PASSWORD: &str = "no password given and no terminal to ask at: use --password-stdin, \
                           TRESOR_PASSWORD_FILE or TRESOR_PASSWORD (commands the agent serves need none once \
                           `tresor unlock` ran)";

fn prompt(label: &str) -> Result<SecretString, String> {
    if !std::io::stdin().is_terminal() && std::fs::File::open("/dev/tty").is_err() {
        return Err(NO_PASSWORD.into());
    }
    let pw = Zeroizing::new(rpassword::prompt_password(label).map_err(|_| NO_PASSWORD.to_string())?);
    Ok(SecretString::from(pw.trim().to_string()))
}
