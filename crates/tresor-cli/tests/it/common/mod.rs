//! Helpers shared by the CLI integration tests: an isolated environment (vault, trust state, agent
//! socket directory and config home in one short temporary directory) and the real `tresor` binary
//! run inside it, plus a guard that stops any agent a test started.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.
#![allow(dead_code)] // Each test crate uses its own subset of these helpers.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The password of every test vault unless a test says otherwise.
pub const PASSWORD: &str = "correct horse battery staple";

/// Fast KDF parameters (the accepted minimum), so every unlock takes milliseconds.
pub const KDF: [&str; 6] = ["--kdf-memory", "19456", "--kdf-time", "2", "--kdf-parallelism", "1"];

/// Inherited variables that would change the binary's behaviour: removed unless a test sets them.
const UNSET: [&str; 11] = [
    "TRESOR_PASSWORD",
    "TRESOR_PASSWORD_FILE",
    "TRESOR_CONFIG",
    "TRESOR_IDLE_TIMEOUT",
    "TRESOR_LOG",
    "TRESOR_ADDR",
    "VAULT_ADDR",
    "TRESOR_CACERT",
    "VAULT_CACERT",
    "TRESOR_TOKEN",
    "VAULT_TOKEN",
];

/// The longest any single command may take before the test fails (no hang on a stray prompt).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// What one run of the binary produced.
#[derive(Debug)]
pub struct Out {
    /// The exit code (-1 if killed by a signal).
    pub code: i32,
    /// Raw stdout.
    pub stdout: Vec<u8>,
    /// Stderr, lossily decoded.
    pub stderr: String,
}

impl Out {
    /// Stdout as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Asserts the exit code, showing the output on failure.
    #[track_caller]
    pub fn expect(self, code: i32) -> Out {
        assert_eq!(self.code, code, "unexpected exit code\nstdout: {}\nstderr: {}", self.text(), self.stderr);
        self
    }

    /// Asserts success.
    #[track_caller]
    pub fn ok(self) -> Out {
        self.expect(0)
    }
}

/// An isolated place for one test: every path the binary might touch lives under `tmp`.
pub struct Env {
    /// Owns everything below; removed on drop.
    pub tmp: tempfile::TempDir,
    /// `TRESOR_VAULT`.
    pub vault: PathBuf,
    /// `TRESOR_STATE_DIR` (trust state).
    pub state: PathBuf,
    /// `TRESOR_RUNTIME_DIR` (agent sockets).
    pub run: PathBuf,
    /// `XDG_CONFIG_HOME`.
    pub cfg: PathBuf,
}

impl Default for Env {
    fn default() -> Self {
        Env::new()
    }
}

impl Env {
    /// A fresh environment in a short directory under /tmp (agent socket paths must stay short).
    pub fn new() -> Env {
        let tmp = tempfile::Builder::new().prefix("t").tempdir_in("/tmp").unwrap();
        let root = tmp.path().to_path_buf();
        Env {
            vault: root.join("vault"),
            state: root.join("state"),
            run: root.join("run"),
            cfg: root.join("cfg"),
            tmp,
        }
    }

    /// Another path inside the environment.
    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// The binary with this environment and nothing inherited that could change its behaviour.
    pub fn cmd(&self) -> assert_cmd::Command {
        self.cmd_via(&[])
    }

    /// [`Env::cmd`] run through `wrapper` (e.g. `setpriv --reuid=…`), which gets the binary's path
    /// as its last argument.
    pub fn cmd_via(&self, wrapper: &[String]) -> assert_cmd::Command {
        let bin = bin();
        let mut c = match wrapper.split_first() {
            None => assert_cmd::Command::new(bin),
            Some((program, args)) => {
                let mut c = assert_cmd::Command::new(program);
                c.args(args).arg(bin);
                c
            }
        };
        for (k, v) in self.vars() {
            c.env(k, v);
        }
        for k in UNSET {
            c.env_remove(k);
        }
        c.current_dir(self.tmp.path()).timeout(COMMAND_TIMEOUT);
        c
    }

    /// A plain `std` command for `program` with this environment (for children run concurrently).
    pub fn std_cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
        let mut c = std::process::Command::new(program);
        c.envs(self.vars()).current_dir(self.tmp.path());
        for k in UNSET {
            c.env_remove(k);
        }
        c
    }

    /// The variables every command of this environment gets.
    fn vars(&self) -> [(&'static str, PathBuf); 7] {
        [
            ("TRESOR_VAULT", self.vault.clone()),
            ("TRESOR_STATE_DIR", self.state.clone()),
            ("TRESOR_RUNTIME_DIR", self.run.clone()),
            ("XDG_CONFIG_HOME", self.cfg.clone()),
            ("XDG_DATA_HOME", self.path("data")),
            ("XDG_STATE_HOME", self.path("xstate")),
            ("XDG_RUNTIME_DIR", self.path("xrun")),
        ]
    }

    /// Runs `tresor ARGS` with `stdin`.
    pub fn run(&self, args: &[&str], stdin: &[u8]) -> Out {
        run(self.cmd().args(args), stdin)
    }

    /// Runs `tresor --password-stdin ARGS` with [`PASSWORD`] on the first line and `rest` after it.
    pub fn run_pw(&self, args: &[&str], rest: &[u8]) -> Out {
        self.run_pw_as(PASSWORD, args, rest)
    }

    /// Runs `tresor --password-stdin ARGS` with `password` on the first line and `rest` after it.
    pub fn run_pw_as(&self, password: &str, args: &[&str], rest: &[u8]) -> Out {
        let mut input = format!("{password}\n").into_bytes();
        input.extend_from_slice(rest);
        run(self.cmd().arg("--password-stdin").args(args), &input)
    }

    /// `tresor init` with [`PASSWORD`] and fast KDF parameters; returns the vault id.
    pub fn init(&self) -> String {
        let out = self.run_pw(&[&["init"], &KDF[..]].concat(), b"").ok();
        let id = out.text().trim().to_string();
        assert!(is_hex(&id, 32), "init printed {id:?}, not a 32-hex vault id");
        id
    }

    /// `tresor set PATH` with the value on stdin.
    pub fn set(&self, path: &str, value: &[u8]) {
        self.run_pw(&["set", path], value).ok();
    }

    /// `tresor get PATH`: the value.
    pub fn get(&self, path: &str) -> Vec<u8> {
        self.run_pw(&["get", path], b"").ok().stdout
    }

    /// Writes `password` to a file (mode 0600) and returns its path, for `TRESOR_PASSWORD_FILE`.
    pub fn password_file(&self, password: &str) -> PathBuf {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.path(&format!("pw-{}", random_hex(4)));
        let mut f = std::fs::OpenOptions::new().create_new(true).write(true).mode(0o600).open(&path).unwrap();
        std::io::Write::write_all(&mut f, format!("{password}\n").as_bytes()).unwrap();
        path
    }

    /// Files (not directories) under the vault directory, as `/`-separated relative names, sorted.
    pub fn vault_files(&self) -> Vec<String> {
        rel_files(&self.vault)
    }

    /// The agent socket for this environment's vault, if there is exactly one socket.
    pub fn socket(&self) -> Option<PathBuf> {
        let entries: Vec<PathBuf> = std::fs::read_dir(&self.run)
            .ok()?
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "sock"))
            .collect();
        (entries.len() == 1).then(|| entries[0].clone())
    }

    /// Pids of live agents serving this environment's vault.
    pub fn agent_pids(&self) -> Vec<u32> {
        agent_pids(&self.vault)
    }

    /// A guard that locks (stops) this environment's agent when dropped.
    pub fn agent_guard(&self) -> AgentGuard<'_> {
        AgentGuard { env: self, wrapper: Vec::new() }
    }

    /// [`Env::agent_guard`] for an agent started through `wrapper` (see [`Env::cmd_via`]).
    pub fn agent_guard_via(&self, wrapper: &[String]) -> AgentGuard<'_> {
        AgentGuard { env: self, wrapper: wrapper.to_vec() }
    }

    /// Another process of the same user on the same machine: the same vault, trust state and
    /// config, but its own agent socket directory, so `tresor unlock` there starts its own agent.
    pub fn sibling(&self) -> Env {
        let mut other = Env::new();
        other.vault = self.vault.clone();
        other.state = self.state.clone();
        other.cfg = self.cfg.clone();
        other
    }

    /// Another machine: the same vault location, but its own trust state, config and sockets.
    pub fn new_machine(&self) -> Env {
        let mut other = Env::new();
        other.vault = self.vault.clone();
        other
    }

    /// `tresor unlock ARGS` with the password in `TRESOR_PASSWORD_FILE` (`password_file`).
    pub fn unlock_with_file(&self, password_file: &Path, args: &[&str]) -> Out {
        run(self.cmd().env("TRESOR_PASSWORD_FILE", password_file).arg("unlock").args(args), b"")
    }
}

/// S3 locations on the test server, as every crate's tests take them.
pub use tresor_testkit::env::s3_location;

/// Sends SIGKILL to `pid` (no cleanup, no lock record: as a crash or an OOM kill) and waits until
/// it is gone; whether it went within 10 s.
pub fn kill_hard(pid: u32) -> bool {
    let Some(target) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) else { return false };
    let _ = rustix::process::kill_process(target, rustix::process::Signal::KILL);
    wait_for(Duration::from_secs(10), || !alive(pid))
}

/// The `tresor` binary under test.
pub fn bin() -> &'static Path {
    assert_cmd::cargo::cargo_bin!("tresor")
}

/// Runs a prepared command with `stdin`.
pub fn run(cmd: &mut assert_cmd::Command, stdin: &[u8]) -> Out {
    let out = cmd.write_stdin(stdin.to_vec()).output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Whether `s` is exactly `len` lowercase hex digits.
pub fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `n` random bytes as lowercase hex.
pub use tresor_testkit::env::random_hex;

/// Every file under `dir`, recursively (absolute paths), sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries {
            let e = e.unwrap();
            let ty = e.file_type().unwrap();
            if ty.is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Files under `dir` as `/`-separated names relative to it, sorted.
pub fn rel_files(dir: &Path) -> Vec<String> {
    files_under(dir).iter().map(|p| p.strip_prefix(dir).unwrap().to_str().unwrap().to_string()).collect()
}

/// The newest (lexicographically last, i.e. highest sequence) file under `vault/dir`.
pub fn newest(vault: &Path, dir: &str) -> PathBuf {
    files_under(&vault.join(dir)).pop().unwrap_or_else(|| panic!("no files under {dir}"))
}

/// Flips one bit of the byte at `pos` (negative: from the end) of `file`.
pub fn flip_byte(file: &Path, pos: isize) {
    let mut bytes = std::fs::read(file).unwrap();
    let i = if pos < 0 { bytes.len() - pos.unsigned_abs() } else { pos.unsigned_abs() };
    bytes[i] ^= 0x01;
    std::fs::write(file, bytes).unwrap();
}

/// Copies a directory tree.
pub use tresor_testkit::env::copy_dir;

/// The arguments of process `pid` (empty if it is gone or unreadable).
pub fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `pid` is running (exists and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(status) => !status.lines().any(|l| l.starts_with("State:") && l.contains('Z')),
        Err(_) => false,
    }
}

/// Pids of live `tresor agent` processes whose command line names `vault`.
pub fn agent_pids(vault: &Path) -> Vec<u32> {
    let canonical = vault.canonicalize().unwrap_or_else(|_| vault.to_path_buf());
    let wanted = [vault.to_str().unwrap().to_string(), canonical.to_str().unwrap().to_string()];
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap() {
        let Ok(e) = e else { continue };
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let args = cmdline(pid);
        if args.iter().any(|a| a == "agent") && args.iter().any(|a| wanted.contains(a)) && alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// Waits until `cond` holds or `limit` passes; whether it held.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops the environment's agent on drop, even when the test failed: `tresor lock`, then, should
/// an agent this test started still run, SIGTERM by its pid.
pub struct AgentGuard<'a> {
    env: &'a Env,
    wrapper: Vec<String>,
}

impl Drop for AgentGuard<'_> {
    fn drop(&mut self) {
        let _ = self
            .env
            .cmd_via(&self.wrapper)
            .arg("lock")
            .timeout(Duration::from_secs(30))
            .write_stdin(Vec::new())
            .output();
        if !wait_for(Duration::from_secs(5), || self.env.agent_pids().is_empty()) {
            for pid in self.env.agent_pids() {
                let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
            }
            wait_for(Duration::from_secs(5), || self.env.agent_pids().is_empty());
        }
    }
}

/// Makes a file or directory unchangeable, even by root (tests run as root in CI, so permissions
/// cannot make a write fail), while it lives: `chattr +i`, undone on drop.
pub struct Immutable(std::path::PathBuf);

impl Immutable {
    /// `chattr +i PATH`; the test fails if the file system cannot do it.
    pub fn set(path: std::path::PathBuf) -> Immutable {
        let status = std::process::Command::new("chattr").arg("+i").arg(&path).status().unwrap();
        assert!(status.success(), "chattr +i {} failed (e2fsprogs, an ext4 or xfs /tmp)", path.display());
        Immutable(path)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}
