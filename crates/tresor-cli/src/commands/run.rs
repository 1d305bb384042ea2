//! `tresor run`: a command run with secrets in its environment or in in-memory files, all read
//! before it starts, and no secret on any command line.
//!
//! Where the variables come from, later ones winning: the environment tresor was given (a value
//! that is a reference `tresor://…` is resolved), `--prefix` (every secret under a prefix, named
//! after the rest of its path), `--env-file` (read as `import` reads `.env` files, without `$VAR` expansion; values that are
//! references resolved, others kept),
//! `--env NAME=REF`. `--file NAME=REF` sets NAME to `/dev/fd/N`, an in-memory file (memfd,
//! sealed read-only) that exists only while a process holds it — nothing is written to a disk.
//! tresor's own credentials (`TRESOR_PASSWORD`, `TRESOR_TOKEN`) are never passed on.
//!
//! Without `--mask`, tresor becomes the command (exec): its exit status, signals and terminal are
//! the command's own. With `--mask`, the command runs as a child whose output tresor copies with
//! every secret value masked; SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 sent to tresor are passed on
//! (SIGINT and SIGQUIT reach the child from the terminal); the exit code is the child's, or
//! 128 + N when signal N killed it. Exit 127: the command was not found; 126: it cannot run.

use crate::cli::RunFlags;
use crate::exit::CliError;
use crate::mask::Masker;
use crate::refs::{Reference, SCHEME};
use crate::resolve::Resolver;
use crate::*;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use zeroize::Zeroizing;

/// Variables tresor reads its own credentials from: never handed to a program it runs (`run`,
/// the editor of `edit`). `VAULT_TOKEN` is passed on: it is the user's Vault credential, which a
/// program run for them may be meant to use.
pub(crate) const OWN_CREDENTIALS: &[&str] = &["TRESOR_PASSWORD", "TRESOR_PASSWORD_FILE", "TRESOR_TOKEN"];

/// A value read from a file or the vault, wiped on drop.
type Value = Zeroizing<Vec<u8>>;

/// A variable's value: given, or what a reference (an index into the references) names.
enum Slot {
    Text(Zeroizing<Vec<u8>>),
    Secret(usize),
}

/// Everything the command gets, checked before anything is read.
#[derive(Default)]
struct Plan {
    references: Vec<Reference>,
    /// What each reference is for (a variable, a file), for errors.
    labels: Vec<String>,
    /// In the order they apply (a later one wins).
    env: Vec<(OsString, Slot)>,
    files: Vec<(OsString, usize)>,
}

impl Plan {
    fn secret(&mut self, name: OsString, reference: Reference) {
        self.labels.push(name.to_string_lossy().into_owned());
        self.references.push(reference);
        self.env.push((name, Slot::Secret(self.references.len() - 1)));
    }

    /// Every reference's value, in order; an error names the variable or file it was for.
    fn read(&self, resolver: &mut Resolver) -> Result<Vec<Value>, CliError> {
        let labelled = self.references.iter().zip(&self.labels);
        labelled.map(|(reference, label)| resolver.read(reference).map_err(|e| e.context(label))).collect()
    }
}

/// `tresor run`.
pub(crate) fn run(ctx: &mut Ctx, flags: RunFlags, mut stdin: impl std::io::Read) -> Result<(), CliError> {
    let Some((program, args)) = flags.command.split_first() else {
        return Err(CliError::usage("no command to run: tresor run [OPTIONS] -- COMMAND [ARGS]".into()));
    };
    // References in the environment, then env files, then --env and --file: all parsed first.
    let mut inherited = Plan::default();
    for (name, value) in std::env::vars_os() {
        if value.as_bytes().starts_with(SCHEME.as_bytes()) && !is_own_credential(&name) {
            let text = value.to_str().ok_or_else(|| bad(&name, "the reference is not UTF-8"))?;
            let reference = Reference::parse(text).map_err(|e| bad(&name, &e))?;
            inherited.secret(name, reference);
        }
    }
    let mut given = Plan::default();
    for file in &flags.env_files {
        for (name, value) in read_env_file(file, &mut stdin)? {
            if value.starts_with(SCHEME.as_bytes()) {
                let text = std::str::from_utf8(&value)
                    .map_err(|_| bad(OsStr::new(&name), "the reference is not UTF-8"))?;
                let reference = Reference::parse(text).map_err(|e| bad(OsStr::new(&name), &e))?;
                given.secret(name.into(), reference);
            } else {
                given.env.push((name.into(), Slot::Text(value)));
            }
        }
    }
    for pair in &flags.env {
        let (name, reference) = name_and_reference(pair, "--env")?;
        given.secret(name.into(), reference);
    }
    for pair in &flags.files {
        let (name, reference) = name_and_reference(pair, "--file")?;
        given.labels.push(format!("--file {name}"));
        given.references.push(reference);
        given.files.push((name.into(), given.references.len() - 1));
    }
    let prefixes: Vec<String> = flags.prefix.iter().map(|p| folder(p)).collect::<Result<_, _>>()?;

    // Then every read, through one session.
    let mut resolver = Resolver::new(ctx)?;
    let mut listed = Plan::default();
    for prefix in &prefixes {
        let mut names: std::collections::BTreeMap<String, String> = Default::default();
        for entry in resolver.list(prefix)? {
            let rest = entry.path.strip_prefix(prefix.as_str()).unwrap_or(&entry.path);
            let name = env_name(rest);
            // Whoever can write under the prefix must not steer the program (PATH, LD_PRELOAD…).
            if steers_programs(&name) {
                return Err(CliError::input(format!(
                    "--prefix {prefix}: {} would set {name}, which changes how programs run; \
                     if that is meant, name it with --env {name}={}",
                    entry.path, entry.path
                )));
            }
            if let Some(other) = names.insert(name.clone(), entry.path.clone()) {
                return Err(CliError::input(format!(
                    "--prefix {prefix}: {other} and {} would both be {name}; name one with --env",
                    entry.path
                )));
            }
            listed.secret(name.into(), Reference { path: entry.path, field: None, version: None });
        }
        if names.is_empty() {
            errln!("tresor: warning: --prefix {prefix}: no secrets there");
        }
    }
    let inherited_values = inherited.read(&mut resolver)?;
    let listed_values = listed.read(&mut resolver)?;
    let given_values = given.read(&mut resolver)?;
    resolver.finish();

    // Found on tresor's own PATH, not on one a secret may have set for the program.
    let mut command = std::process::Command::new(locate(program));
    command.args(args);
    for name in OWN_CREDENTIALS {
        command.env_remove(name);
    }
    let mut secrets: Vec<&[u8]> = Vec::new();
    for (plan, values) in
        [(&inherited, &inherited_values), (&listed, &listed_values), (&given, &given_values)]
    {
        for (name, slot) in &plan.env {
            let value: &[u8] = match slot {
                Slot::Text(text) => text,
                Slot::Secret(i) => {
                    secrets.push(&values[*i]);
                    &values[*i]
                }
            };
            if value.contains(&0) {
                return Err(bad(
                    name,
                    "the value holds a NUL byte, which no environment variable can (use --file)",
                ));
            }
            command.env(name, OsStr::from_bytes(value));
        }
    }
    // The in-memory files stay open here until the command has them.
    let mut files: Vec<OwnedFd> = Vec::new();
    for (name, i) in &given.files {
        secrets.push(&given_values[*i]);
        let fd = memory_file(name, &given_values[*i])?;
        command.env(name, format!("/dev/fd/{}", fd.as_raw_fd()));
        files.push(fd);
    }
    if flags.mask {
        let short = secrets
            .iter()
            .filter(|v| !v.is_empty() && v.trim_ascii_end().len() < crate::mask::MIN_MASKED)
            .count();
        if short > 0 {
            errln!(
                "tresor: warning: {} shorter than {} bytes not masked (they would mask ordinary text)",
                plural(short, "value"),
                crate::mask::MIN_MASKED
            );
        }
        let masker = || Masker::new(secrets.iter().copied());
        let code = run_masked(command, masker, program)?;
        drop(files);
        return match code {
            0 => Ok(()),
            code => Err(CliError::passthrough(code)),
        };
    }
    use std::os::unix::process::CommandExt;
    let e = command.exec();
    Err(cannot_run(program, &e))
}

fn is_own_credential(name: &OsStr) -> bool {
    OWN_CREDENTIALS.iter().any(|own| name == *own)
}

/// An error about the variable `name`, which never shows its value.
fn bad(name: &OsStr, why: &str) -> CliError {
    CliError::input(format!("{}: {why}", name.to_string_lossy()))
}

/// Variables that change how programs run — where they are found, what they load, what a shell
/// runs first: a secret's name under `--prefix` may not set one (`--env` and env files may, named
/// on purpose).
fn steers_programs(name: &str) -> bool {
    const NAMES: &[&str] = &[
        "PATH",
        "IFS",
        "ENV",
        "BASH_ENV",
        "SHELLOPTS",
        "BASHOPTS",
        "PS4",
        "PROMPT_COMMAND",
        "CDPATH",
        "GLOBIGNORE",
        "HOME",
        "SHELL",
        "TMPDIR",
        "EDITOR",
        "VISUAL",
        "PAGER",
        "NODE_OPTIONS",
        "NODE_PATH",
        "RUBYOPT",
        "RUBYLIB",
        "PERL5OPT",
        "PERL5LIB",
        "PERLLIB",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS",
        "CLASSPATH",
        "GCONV_PATH",
        "LOCPATH",
        "NLSPATH",
        "HOSTALIASES",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "CURL_CA_BUNDLE",
        "REQUESTS_CA_BUNDLE",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "FTP_PROXY",
        // Found by review: more that run code or send a program elsewhere.
        "PS0",
        "PS1",
        "PS2",
        "LESSOPEN",
        "LESSCLOSE",
        "LESSKEY",
        "BROWSER",
        "EXINIT",
        "VIMINIT",
        "GVIMINIT",
        "VIMRC",
        "MYVIMRC",
        "ZDOTDIR",
        "INPUTRC",
        "PHPRC",
        "PHP_INI_SCAN_DIR",
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "CC",
        "CXX",
        "LD",
        "CFLAGS",
        "CXXFLAGS",
        "CPPFLAGS",
        "LDFLAGS",
        "MAKEFLAGS",
        "MAKEFILES",
        "CARGO_HOME",
        "KUBECONFIG",
        "DOCKER_HOST",
        "DOCKER_CONFIG",
        "DOCKER_CERT_PATH",
        "DOCKER_CONTEXT",
        "DOCKER_TLS_VERIFY",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CA_BUNDLE",
        "SSH_AUTH_SOCK",
        "GNUPGHOME",
        "GOFLAGS",
        "GOPROXY",
        "GOPATH",
        "GOROOT",
        "GOTOOLCHAIN",
        "GOINSECURE",
        "GONOSUMDB",
        "GONOSUMCHECK",
        "GOPRIVATE",
    ];
    const PREFIXES: &[&str] = &[
        "LD_",
        "DYLD_",
        "PYTHON",
        "GIT_",
        "LUA_",
        "MALLOC_",
        "GLIBC_",
        "TRESOR_",
        "XDG_",
        "NPM_CONFIG_",
        "PIP_",
        "CARGO_BUILD_",
        "CARGO_TARGET_",
        "AWS_ENDPOINT_URL",
    ];
    // Whole families by their ending: askpass helpers, pagers, editors, option strings.
    const SUFFIXES: &[&str] = &["ASKPASS", "ASKPASS_REQUIRE", "PAGER", "EDITOR", "_OPTS", "_OPTIONS"];
    // Lower-case spellings some tools read too (`http_proxy`, `npm_config_*`).
    let upper = name.to_ascii_uppercase();
    let name = upper.as_str();
    NAMES.contains(&name)
        || PREFIXES.iter().any(|p| name.starts_with(p))
        || SUFFIXES.iter().any(|suffix| name.ends_with(suffix))
}

/// The program as tresor's own PATH finds it (a name with a `/` is taken as it is).
fn locate(program: &OsStr) -> std::ffi::OsString {
    use std::os::unix::fs::PermissionsExt;
    if program.as_bytes().contains(&b'/') {
        return program.to_owned();
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths).map(|dir| dir.join(program)).find(|candidate| {
            std::fs::metadata(candidate).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    });
    found.map_or_else(|| program.to_owned(), std::path::PathBuf::into_os_string)
}

/// `NAME=REF` of `--env` and `--file`.
fn name_and_reference(pair: &str, flag: &str) -> Result<(String, Reference), CliError> {
    let (name, reference) = pair
        .split_once('=')
        .ok_or_else(|| CliError::usage(format!("{flag} {pair}: expected NAME=PATH or NAME=tresor://…")))?;
    check_name(name)?;
    let reference =
        Reference::parse_or_path(reference).map_err(|e| CliError::input(format!("{flag} {name}: {e}")))?;
    Ok((name.to_string(), reference))
}

/// Environment variable names as shells take them: a letter or `_`, then letters, digits, `_`.
fn check_name(name: &str) -> Result<(), CliError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Ok(());
    }
    Err(CliError::input(format!(
        "`{name}` is not a variable name (a letter or _, then letters, digits or _)"
    )))
}

/// A prefix as the folder it names (`db` → `db/`).
fn folder(prefix: &str) -> Result<String, CliError> {
    let trimmed = prefix.trim_end_matches('/');
    tresor::path::SecretPath::parse(trimmed)
        .map_err(|e| CliError::input(format!("--prefix {prefix}: {e}")))?;
    Ok(format!("{trimmed}/"))
}

/// The variable a secret under a prefix becomes: the rest of its path, upper-cased, every other
/// character `_` (`db/api-key` → `DB_API_KEY`), `_` first if it would start with a digit.
pub(crate) fn env_name(rest: &str) -> String {
    let mut name: String =
        rest.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

/// The largest `.env` file `run --env-file` reads (1 MiB: a program's whole environment must fit
/// in about 2 MiB on Linux, and a larger file only cost memory to read).
const MAX_ENV_FILE: usize = 1 << 20;

/// The variables of a `.env` file (`-`: stdin), read as `tresor import` reads one: quotes and
/// escapes, but no `$VAR` expansion — a file must not pull tresor's own environment (its
/// credentials) into a program's.
pub(crate) fn read_env_file(
    path: &std::path::Path,
    stdin: impl std::io::Read,
) -> Result<Vec<(String, Value)>, CliError> {
    let shown = path.display();
    let source = crate::input::Source::of(Some(path));
    let bytes = crate::input::read_limited(source, stdin, MAX_ENV_FILE, "the largest .env file")?;
    let text = std::str::from_utf8(&bytes).map_err(|_| CliError::input(format!("{shown}: not UTF-8")))?;
    let items = crate::import::parse_env_lines(text).map_err(|e| CliError::input(format!("{shown}: {e}")))?;
    let mut out = Vec::with_capacity(items.len());
    let mut seen = std::collections::HashSet::new();
    for (line, name, value) in items {
        // The name is not shown: a line written wrong may have put a value in it.
        check_name(&name).map_err(|_| {
            CliError::input(format!(
                "{shown}: line {line}: not a variable name (a letter or _, then letters, digits or _)"
            ))
        })?;
        // As `import` refuses it: which of two values the program would get is not for a file
        // to leave open.
        if !seen.insert(name.clone()) {
            return Err(CliError::input(format!("{shown}: {name} appears twice")));
        }
        out.push((name, value.0));
    }
    Ok(out)
}

/// An in-memory file holding `value`, sealed read-only, left open across exec.
fn memory_file(name: &OsStr, value: &[u8]) -> Result<OwnedFd, CliError> {
    use rustix::fs::{MemfdFlags, SealFlags};
    use std::io::{Seek, Write};
    let failed = |e: std::io::Error| {
        CliError::other(format!("cannot make the file for {}: {e}", name.to_string_lossy()))
    };
    let fd =
        rustix::fs::memfd_create(format!("tresor-{}", name.to_string_lossy()), MemfdFlags::ALLOW_SEALING)
            .map_err(|e| failed(e.into()))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(value).and_then(|()| file.rewind()).map_err(failed)?;
    let fd = OwnedFd::from(file);
    rustix::fs::fcntl_add_seals(
        &fd,
        SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL,
    )
    .map_err(|e| failed(e.into()))?;
    Ok(fd)
}

/// Exit 127 when the command was not found, 126 when it cannot run, as shells say.
fn cannot_run(program: &OsStr, e: &std::io::Error) -> CliError {
    let program = program.to_string_lossy();
    match e.kind() {
        std::io::ErrorKind::NotFound => CliError::with_code(127, format!("{program}: command not found")),
        _ => CliError::with_code(126, format!("cannot run {program}: {e}")),
    }
}

/// Runs the command as a child with its output masked; its exit code (128 + N for signal N).
fn run_masked(
    mut command: std::process::Command,
    masker: impl Fn() -> Masker,
    program: &OsStr,
) -> Result<u8, CliError> {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    use tokio::signal::unix::{SignalKind, signal};
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let rt = runtime()?;
    rt.block_on(async {
        // Caught before the child exists: no moment where a signal ends tresor and orphans it.
        let listen = |kind: SignalKind| signal(kind).map_err(|e| CliError::other(format!("cannot catch signals: {e}")));
        let (mut term, mut hup, mut usr1, mut usr2) = (
            listen(SignalKind::terminate())?,
            listen(SignalKind::hangup())?,
            listen(SignalKind::user_defined1())?,
            listen(SignalKind::user_defined2())?,
        );
        let (mut int, mut quit) = (listen(SignalKind::interrupt())?, listen(SignalKind::quit())?);
        // From a terminal, SIGINT and SIGQUIT reach the child on their own (it is in the
        // foreground group): passing them on would deliver them twice. Sent to tresor alone
        // (a supervisor, a CI runner), they are passed on.
        let from_terminal = in_foreground();
        let mut child = tokio::process::Command::from(command).spawn().map_err(|e| cannot_run(program, &e))?;
        let pid = child.id().and_then(|id| rustix::process::Pid::from_raw(id as i32));
        let out = child.stdout.take().map(|s| tokio::spawn(copy_masked(s, tokio::io::stdout(), masker())));
        let err = child.stderr.take().map(|s| tokio::spawn(copy_masked(s, tokio::io::stderr(), masker())));
        let forward = |sig: rustix::process::Signal| {
            if let Some(pid) = pid {
                let _ = rustix::process::kill_process(pid, sig);
            }
        };
        use rustix::process::Signal;
        let status = loop {
            tokio::select! {
                status = child.wait() => break status.map_err(|e| CliError::other(format!("waiting for the command: {e}")))?,
                _ = term.recv() => forward(Signal::TERM),
                _ = hup.recv() => forward(Signal::HUP),
                _ = usr1.recv() => forward(Signal::USR1),
                _ = usr2.recv() => forward(Signal::USR2),
                _ = int.recv() => if !from_terminal { forward(Signal::INT) },
                _ = quit.recv() => if !from_terminal { forward(Signal::QUIT) },
            }
        };
        // What the command wrote before it ended; a descendant that keeps the pipes open is not
        // waited for long.
        for copy in [out, err].into_iter().flatten() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), copy).await;
        }
        Ok(match (status.code(), status.signal()) {
            (Some(code), _) => u8::try_from(code).unwrap_or(1),
            (None, Some(sig)) => u8::try_from(128 + sig).unwrap_or(1),
            (None, None) => 1,
        })
    })
}

/// Whether tresor runs in its terminal's foreground process group (where the terminal's own
/// SIGINT and SIGQUIT go).
fn in_foreground() -> bool {
    let stdin = std::io::stdin();
    rustix::termios::tcgetpgrp(&stdin).is_ok_and(|group| group == rustix::process::getpgrp())
}

/// Copies a stream with every secret masked, to its end.
async fn copy_masked(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    mut masker: Masker,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = Zeroizing::new(vec![0u8; 16 * 1024]);
    loop {
        let (shown, end) = match from.read(&mut buf).await {
            Ok(0) | Err(_) => (masker.finish(), true),
            Ok(n) => (masker.push(&buf[..n]), false),
        };
        // Our own output closed (`| head -1`): the command's pipe is closed too, by dropping our
        // end, so that its next write fails (SIGPIPE) as it would without `--mask` — before, its
        // output was read and dropped, and `yes` ran for ever.
        if to.write_all(&shown).await.is_err() || to.flush().await.is_err() || end {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_under_a_prefix_are_shell_variables() {
        assert_eq!(env_name("db/api-key"), "DB_API_KEY");
        assert_eq!(env_name("token"), "TOKEN");
        assert_eq!(env_name("2fa.seed"), "_2FA_SEED");
    }

    #[test]
    fn names_that_steer_programs_are_recognised() {
        for steer in [
            "PATH",
            "LD_PRELOAD",
            "DYLD_INSERT_LIBRARIES",
            "PYTHONPATH",
            "NODE_OPTIONS",
            "BASH_ENV",
            "GIT_SSH",
        ] {
            assert!(steers_programs(steer), "{steer}");
        }
        for plain in ["DB_PASSWORD", "API_KEY", "PATHNAME", "TOKEN"] {
            assert!(!steers_programs(plain), "{plain}");
        }
    }

    /// Found by review: a member of a shared folder could name a secret `LESSOPEN` (or
    /// `SSH_ASKPASS`, `RUSTC_WRAPPER`, `BROWSER`...) and have it run as code by a program that a
    /// `tresor run --prefix` of that folder started. The list now covers them, lower-case
    /// spellings and whole families (askpass helpers, pagers, editors, option strings), and still
    /// lets through the credentials users keep under a prefix.
    #[test]
    fn regression_names_that_run_code_slipped_past_the_prefix_guard() {
        for steer in [
            "LESSOPEN",
            "LESSCLOSE",
            "SSH_ASKPASS",
            "SSH_ASKPASS_REQUIRE",
            "SUDO_ASKPASS",
            "BROWSER",
            "MANPAGER",
            "SYSTEMD_PAGER",
            "EXINIT",
            "VIMRC",
            "MYVIMRC",
            "ZDOTDIR",
            "XDG_CONFIG_HOME",
            "INPUTRC",
            "PHPRC",
            "NPM_CONFIG_SCRIPT_SHELL",
            "npm_config_script_shell",
            "RUSTC_WRAPPER",
            "CC",
            "MAKEFLAGS",
            "JAVA_OPTIONS",
            "MAVEN_OPTS",
            "GRADLE_OPTS",
            "KUBECONFIG",
            "AWS_CONFIG_FILE",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_S3",
            "DOCKER_HOST",
            "PIP_INDEX_URL",
            "CARGO_HOME",
            "SSH_AUTH_SOCK",
            "http_proxy",
            "PS1",
            "KUBE_EDITOR",
        ] {
            assert!(steers_programs(steer), "{steer}");
        }
        for plain in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "CARGO_REGISTRY_TOKEN",
            "DOCKER_PASSWORD",
            "GOOGLE_API_KEY",
            "NPM_TOKEN",
            "GITHUB_TOKEN",
            "DATABASE_URL",
        ] {
            assert!(!steers_programs(plain), "{plain}");
        }
    }

    #[test]
    fn variable_names_are_checked() {
        for ok in ["A", "_x", "DB_PASSWORD2"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1A", "A-B", "A B", "É"] {
            assert_eq!(check_name(bad).map_err(|e| e.code).unwrap_err(), 7, "{bad}");
        }
    }
}
