//! Invalid input through the CLI: secret paths that break the rules and values over the configured
//! limit exit 7 and write no value; the config file's `${VAR}` substitution chooses the vault, and its
//! errors (a named file missing, a bad `[server]` table) say where without showing a password.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::{Env, run};

/// Files under the vault's `blob/` directory.
fn blobs(env: &Env) -> usize {
    env.vault_files().iter().filter(|f| f.starts_with("blob/")).count()
}

#[test]
fn fail_invalid_paths_exit_7() {
    let env = Env::new();
    env.init();
    env.set("ok", b"1");
    let long = "x".repeat(600);
    let bad = ["a//b", "/a", "a/", "..", "a/../b", "./a", long.as_str(), "a\tb", "a\nb"];
    for path in bad {
        let out = env.run_pw(&["set", path], b"value").expect(7);
        assert!(out.stderr.contains("invalid secret path"), "{path:?}: {}", out.stderr);
        env.run_pw(&["get", path], b"").expect(7);
    }
    // Several bad paths in one process each (cheaper than one unlock per check).
    for path in ["a//b", long.as_str()] {
        env.run_pw(&["rm", path], b"").expect(7);
        env.run_pw(&["history", path], b"").expect(7);
    }
    assert_eq!(blobs(&env), 1, "a value was written for an invalid path");
    assert_eq!(env.run_pw(&["list"], b"").ok().text(), "ok\n");
    // The longest valid path is fine.
    let longest = "y".repeat(512);
    env.set(&longest, b"edge");
    assert_eq!(env.get(&longest), b"edge");
    env.run_pw(&["set", &"y".repeat(513)], b"v").expect(7);
}

#[test]
fn fail_values_over_the_configured_limit_exit_7_and_write_nothing() {
    let env = Env::new();
    std::fs::create_dir_all(env.cfg.join("tresor")).unwrap();
    std::fs::write(env.cfg.join("tresor/config.toml"), "max_value_size = 100\n").unwrap();
    env.init();
    env.set("fits", &[b'a'; 100]);
    assert_eq!(env.get("fits"), [b'a'; 100]);
    let before = env.vault_files();

    // From stdin only the byte past the limit is read: no size is made up (issue 15, bug 10).
    let out = env.run_pw(&["set", "big"], &[b'b'; 101]).expect(7);
    assert!(
        out.stderr.contains("stdin holds more than the limit of 100 bytes (max_value_size)"),
        "{}",
        out.stderr
    );
    let file = env.path("big.bin");
    std::fs::write(&file, [b'c'; 150]).unwrap();
    let out = env.run_pw(&["set", "big", "--file", file.to_str().unwrap()], b"").expect(7);
    assert!(
        out.stderr.contains("big.bin is 150 bytes, more than the limit of 100 bytes (max_value_size)"),
        "{}",
        out.stderr
    );
    env.run_pw(&["set", "big", &"d".repeat(101)], b"").expect(7);
    // Far over the limit: refused without reading it all.
    env.run_pw(&["set", "big"], &vec![b'e'; 4 << 20]).expect(7);
    assert_eq!(env.vault_files(), before, "an oversize value touched the vault");
    env.run_pw(&["get", "big"], b"").expect(4);

    // An import file holding an oversize value is refused as a whole.
    let env_file = env.path("import.env");
    std::fs::write(&env_file, format!("SMALL=1\nBIG={}\n", "f".repeat(101))).unwrap();
    let out = env.run_pw(&["import", env_file.to_str().unwrap()], b"").expect(7);
    assert!(out.stderr.contains("BIG: value too large: 101 bytes"), "{}", out.stderr);
    env.run_pw(&["get", "SMALL"], b"").expect(4);
    assert_eq!(blobs(&env), 1);
}

#[test]
fn regression_a_raised_value_limit_needed_a_new_unlock() {
    let env = Env::new();
    let config = env.cfg.join("tresor/config.toml");
    std::fs::create_dir_all(env.cfg.join("tresor")).unwrap();
    env.init();
    let _guard = env.agent_guard();
    let file = env.password_file(common::PASSWORD);
    common::run(env.cmd().env("TRESOR_PASSWORD_FILE", &file).arg("unlock"), b"").ok();
    let value = vec![b'v'; 1536 << 10];
    env.run(&["set", "big"], &value).expect(7);
    // Raised while the agent runs: the agent takes it at once.
    std::fs::write(&config, "max_value_size = 2097152\n").unwrap();
    let out = env.run(&["set", "big"], &value).ok();
    assert!(out.stderr.contains("version 1"), "{}", out.stderr);
    assert_eq!(env.run(&["get", "big"], b"").ok().stdout, value);
    // Lowered: the agent refuses what the new limit refuses, imports included.
    std::fs::write(&config, "max_value_size = 10\n").unwrap();
    env.run(&["set", "small"], b"0123456789x").expect(7);
    let env_file = env.path("i.env");
    std::fs::write(&env_file, "A=0123456789x\n").unwrap();
    env.run(&["import", env_file.to_str().unwrap()], b"").expect(7);
    env.run(&["get", "A"], b"").expect(4);
    // Out of range is refused, naming the range.
    std::fs::write(&config, "max_value_size = 0\n").unwrap();
    let out = env.run(&["get", "big"], b"").expect(7);
    assert!(out.stderr.contains("max_value_size = 0: it must be from 1 to 67108864 bytes"), "{}", out.stderr);
}

#[test]
fn config_substitutes_environment_variables() {
    let env = Env::new();
    std::fs::create_dir_all(env.cfg.join("tresor")).unwrap();
    std::fs::write(env.cfg.join("tresor/config.toml"), "vault = \"${TRESOR_TEST_BASE}/v\"\n").unwrap();
    let base = env.path("base");
    let with_base = |args: &[&str], stdin: &[u8]| {
        let mut cmd = env.cmd();
        cmd.env_remove("TRESOR_VAULT").env("TRESOR_TEST_BASE", &base);
        run(cmd.arg("--password-stdin").args(args), stdin)
    };
    let pw = format!("{}\n", common::PASSWORD);
    with_base(&[&["init"], &common::KDF[..]].concat(), pw.as_bytes()).ok();
    assert!(
        base.join("v/keyfile/00000000000000000001").is_file(),
        "the vault is not at ${{TRESOR_TEST_BASE}}/v"
    );
    assert!(!env.vault.exists());
    with_base(&["set", "k"], format!("{pw}value").as_bytes()).ok();
    assert_eq!(with_base(&["get", "k"], pw.as_bytes()).ok().stdout, b"value");
    // TRESOR_VAULT still wins over the config file.
    let out =
        run(env.cmd().env("TRESOR_TEST_BASE", &base).args(["--password-stdin", "get", "k"]), pw.as_bytes());
    assert_eq!(out.code, 8, "{}", out.stderr);

    // An unset variable is an error naming it.
    let mut cmd = env.cmd();
    cmd.env_remove("TRESOR_VAULT").env_remove("TRESOR_TEST_BASE");
    let out = run(cmd.args(["status"]), b"");
    assert_eq!(out.code, 7, "{}", out.stderr);
    assert!(out.stderr.contains("TRESOR_TEST_BASE"), "{}", out.stderr);

    // Unknown keys are refused rather than ignored.
    std::fs::write(env.cfg.join("tresor/config.toml"), "vualt = \"/tmp/x\"\n").unwrap();
    let out = env.run(&["status"], b"").expect(7);
    assert!(out.stderr.contains("config.toml"), "{}", out.stderr);
}

#[test]
fn a_named_config_file_that_is_missing_is_an_error() {
    let env = Env::new();
    let missing = env.path("nowhere.toml");
    let out = env.run(&["--config", missing.to_str().unwrap(), "status"], b"").expect(7);
    assert!(out.stderr.contains("nowhere.toml"), "{}", out.stderr);
    let mut cmd = env.cmd();
    cmd.env("TRESOR_CONFIG", &missing);
    assert_eq!(run(cmd.args(["status"]), b"").code, 7);
}

#[test]
fn server_config_errors_say_where_and_never_show_the_password() {
    let env = Env::new();
    let cfg = env.path("server.toml");
    let cases: [(&str, &str); 6] = [
        ("[server]\nencryption_password = 73917391\n", "line 2: a password must be a quoted string"),
        ("[server]\nencryption_password = 73917391x\n", "line 2"),
        (
            "[server]\nencryption_password = \"73917391${TRESOR_SURELY_UNSET}\"\n",
            "line 2: encryption_password",
        ),
        ("[server]\nencryption_password = \"73917391${unterminated\"\n", "line 2: encryption_password"),
        ("[server]\nencryption_password = \"73917391\"\nencryption_password_file = \"/x\"\n", "keep one"),
        ("[server]\nlisten = \"0.0.0.0:8200\"\n", "needs TLS"),
    ];
    for (text, expected) in cases {
        std::fs::write(&cfg, text).unwrap();
        let out = env.run(&["--config", cfg.to_str().unwrap(), "server"], b"").expect(7);
        assert!(out.stderr.contains(expected), "{text}: {}", out.stderr);
        assert!(!out.stderr.contains("73917391"), "{text}: the password shows: {}", out.stderr);
    }
    // A password the new vault would refuse: refused before the server listens.
    std::fs::write(&cfg, "[server]\nlisten = \"127.0.0.1:0\"\nencryption_password = \"short\"\n").unwrap();
    let out = env.run(&["--config", cfg.to_str().unwrap(), "server"], b"").expect(7);
    assert!(out.stderr.contains("at least 8 characters"), "{}", out.stderr);
    assert!(!out.stderr.contains("listening"), "{}", out.stderr);
}

/// Runs the binary with `args`, reads `keep` bytes of its stdout, then closes the pipe (as
/// `| head -c` does): its exit code and stderr.
fn read_then_close(env: &Env, args: &[&str], stdin: &[u8], keep: usize) -> (Option<i32>, String) {
    use std::io::{Read, Write};
    let mut child = env
        .std_cmd(common::bin())
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = vec![0u8; keep];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (child.wait().unwrap().code(), stderr)
}

/// Regression (issue 15, bug 7): output into a pipe its reader closed early — `tresor completions
/// bash | head`, `tresor get BIG | head -c 10` — panicked or failed; it now ends quietly.
#[test]
fn regression_a_reader_that_stops_early_ends_the_output_quietly() {
    let env = Env::new();
    env.init();
    let (code, stderr) = read_then_close(&env, &["completions", "bash"], b"", 10);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let big = vec![b'x'; 1 << 20];
    env.run_pw(&["set", "big"], &big).ok();
    let (code, stderr) = read_then_close(
        &env,
        &["--password-stdin", "get", "big"],
        format!("{}\n", common::PASSWORD).as_bytes(),
        10,
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.trim().is_empty(), "{stderr}");
}

/// Regression (issue 15, bug 2): an empty `TRESOR_VAULT` or `--vault ''` meant the working
/// directory, and tresor then advised removing it. It is now refused, naming the cause.
#[test]
fn regression_an_empty_vault_location_is_refused() {
    let env = Env::new();
    std::fs::write(env.path("precious.txt"), b"not a vault").unwrap();
    for out in [
        run(env.cmd().env("TRESOR_VAULT", "").arg("status"), b""),
        run(env.cmd().args(["--vault", "", "status"]), b""),
        run(env.cmd().args(["--vault", " ", "get", "x"]), b""),
    ] {
        assert_eq!(out.code, 7, "{}", out.stderr);
        assert!(out.stderr.contains("vault location is empty"), "{}", out.stderr);
        assert!(!out.stderr.contains("remove"), "{}", out.stderr);
    }
    assert!(env.path("precious.txt").exists());
}

#[test]
fn regression_a_closed_stderr_aborted_the_command() {
    // A message written to a stderr nobody reads (`tresor ... 2>&1 | head -1`, the reader gone)
    // panicked in std's `eprintln!`, and the panic's own message aborted the process (SIGABRT):
    // the command's exit code was lost. Both binaries: the front and the whole command line.
    let env = Env::new();
    for bin in [common::bin().to_path_buf(), common::bin().with_file_name("tresor-cli")] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let status = env
            .std_cmd(&bin)
            .args(["--vault", env.path("no-vault-here").to_str().unwrap(), "list"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(writer)
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(8), "{}: {status:?}", bin.display());
    }
}

#[test]
fn regression_a_named_input_that_never_ends_was_read_until_memory_ran_out() {
    // `set --file /dev/zero` never returned: every file a command was given was read whole.
    // Now each is read to one byte past its limit, refused with exit 7, and nothing is written.
    let env = Env::new();
    env.init();
    let before = env.vault_files();
    // (`import` reads through the same bound, at 1 GiB: too slow a case for every CI run.)
    let cases: [(&[&str], &str); 3] = [
        (
            &["set", "big", "--file", "/dev/zero"],
            "/dev/zero holds more than the limit of 1048576 bytes (max_value_size)",
        ),
        (&["inject", "-i", "/dev/zero"], "/dev/zero holds more than the limit of 67108864 bytes"),
        (
            &["run", "--env-file", "/dev/zero", "--", "true"],
            "/dev/zero holds more than the limit of 1048576 bytes",
        ),
    ];
    for (args, said) in cases {
        let out = env.run_pw(args, b"").expect(7);
        assert!(out.stderr.contains(said), "{args:?}: {}", out.stderr);
    }
    assert_eq!(env.vault_files(), before, "a refused input touched the vault");
    // The password file too: one line is all it holds.
    let out = common::run(env.cmd().env("TRESOR_PASSWORD_FILE", "/dev/zero").args(["get", "x"]), b"");
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("/dev/zero holds more than the limit of 65536 bytes"), "{}", out.stderr);
    // A password line that never ends, and a config file that never ends.
    let out = env.run(&["--password-stdin", "get", "x"], &[b'p'; 8192]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("the line on stdin is longer than 4096 bytes"), "{}", out.stderr);
    let out = env.run(&["--config", "/dev/zero", "list"], b"");
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("the config file /dev/zero is larger than 1048576 bytes"), "{}", out.stderr);
    assert_eq!(env.vault_files(), before, "a refused input touched the vault");
}

/// Found by review: `--force` replaced whatever had the output's name with a file of plaintext —
/// a FIFO, a socket, a device (as root, `inject -o /dev/null --force` replaced the system's
/// /dev/null). It replaces a regular file or a link, and refuses anything else (exit 7), which
/// stays as it was.
#[test]
fn regression_force_replaced_a_device_or_a_fifo_with_a_file_of_secrets() {
    use std::os::unix::fs::FileTypeExt;
    let env = Env::new();
    env.init();
    env.set("app/key", b"canary-force-7f3a");
    let template = env.path("t.tpl");
    std::fs::write(&template, "KEY={{ tresor://app/key }}\n").unwrap();
    let fifo = env.path("out.fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let device = env.path("out.null");
    // As root (CI): a character device like /dev/null (1, 3).
    let dev = rustix::fs::makedev(1, 3);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &device,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        dev,
    )
    .expect("mknod: the tests run as root in CI");
    let dir = env.path("out.dir");
    std::fs::create_dir(&dir).unwrap();
    for target in [&fifo, &device, &dir] {
        let t = target.to_str().unwrap();
        for args in [
            vec!["inject", "-i", template.to_str().unwrap(), "-o", t, "--force"],
            vec!["export", "--out", t, "--force"],
        ] {
            let out = env.run_pw(&args, b"").expect(7);
            assert!(
                out.stderr.contains("only a regular file or a link is replaced"),
                "{args:?}: {}",
                out.stderr
            );
        }
    }
    let kind = |p: &std::path::Path| std::fs::symlink_metadata(p).unwrap().file_type();
    assert!(kind(&fifo).is_fifo() && kind(&device).is_char_device() && kind(&dir).is_dir());
    // A regular file and a link are replaced (the link itself, never what it points to).
    let file = env.path("out.txt");
    std::fs::write(&file, "old").unwrap();
    let pointed = env.path("pointed");
    std::fs::write(&pointed, "untouched").unwrap();
    let link = env.path("out.link");
    std::os::unix::fs::symlink(&pointed, &link).unwrap();
    for target in [&file, &link] {
        env.run_pw(
            &["inject", "-i", template.to_str().unwrap(), "-o", target.to_str().unwrap(), "--force"],
            b"",
        )
        .ok();
        assert_eq!(std::fs::read_to_string(target).unwrap(), "KEY=canary-force-7f3a\n");
        assert!(kind(target).is_file());
    }
    assert_eq!(std::fs::read_to_string(&pointed).unwrap(), "untouched");
    let staged: Vec<_> = std::fs::read_dir(env.tmp.path())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(staged.is_empty(), "staging files left: {staged:?}");
}

/// Found by review: `--password-stdin` read its line through std's buffered stdin, which reads
/// ahead up to 8 KiB: what it took past the line was lost to the program `tresor run` starts on
/// the same stdin (a file arrived cut, a pipe's first lines vanished). The line is now read a
/// byte at a time; everything after it reaches the program byte for byte.
#[test]
fn regression_password_stdin_swallowed_the_start_of_a_run_programs_stdin() {
    let env = Env::new();
    env.init();
    env.set("app/key", b"v");
    let rest: Vec<u8> = (1..=30_000).flat_map(|n| format!("{n}\n").into_bytes()).collect();
    let mut input = format!("{}\n", common::PASSWORD).into_bytes();
    input.extend_from_slice(&rest);
    // From a pipe (the test harness feeds stdin through one).
    let out = run(
        env.cmd().args(["run", "--no-agent", "--password-stdin", "--env", "A=app/key", "--", "cat"]),
        &input,
    )
    .ok();
    assert_eq!(out.stdout.len(), rest.len(), "the program's stdin arrived cut");
    assert!(out.stdout == rest, "the program's stdin arrived changed");
    // From a regular file.
    let file = env.path("stdin.txt");
    std::fs::write(&file, &input).unwrap();
    let child = env
        .std_cmd(common::bin())
        .args(["run", "--no-agent", "--password-stdin", "--env", "A=app/key", "--", "cat"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    assert!(child.status.success(), "{}", String::from_utf8_lossy(&child.stderr));
    assert!(child.stdout == rest, "from a file: {} of {} bytes", child.stdout.len(), rest.len());
}

/// Found by review: a plaintext file tresor writes (`inject -o`, `export`) was written under a
/// hidden temporary name first, which a kill (or Ctrl-C) in the middle left behind, full of
/// plaintext. It is now written with no name (`O_TMPFILE`) and linked to its name once complete:
/// traced (strace), no file is ever created under a name in the output's directory.
#[test]
fn regression_a_write_cut_short_left_a_hidden_plaintext_file_behind() {
    let env = Env::new();
    env.init();
    env.set("app/key", b"canary-cut-short");
    let tpl = env.path("t.tpl");
    std::fs::write(&tpl, "KEY={{ tresor://app/key }}\n").unwrap();
    let dir = env.path("out");
    std::fs::create_dir(&dir).unwrap();
    let trace = env.path("trace");
    for (args, name) in [
        (vec!["inject", "-i", tpl.to_str().unwrap(), "-o"], "rendered.conf"),
        (vec!["inject", "--force", "-i", tpl.to_str().unwrap(), "-o"], "rendered.conf"),
        (vec!["export", "--out"], "backup.tresor"),
    ] {
        let out = dir.join(name);
        let wrapper: Vec<String> =
            ["strace", "-f", "-qq", "-e", "trace=openat,open,creat,linkat,renameat,renameat2", "-o"]
                .iter()
                .map(|s| s.to_string())
                .chain([trace.to_str().unwrap().to_string()])
                .collect();
        let mut cmd = env.cmd_via(&wrapper);
        cmd.arg("--password-stdin").args(&args).arg(&out);
        common::run(&mut cmd, format!("{}\n", common::PASSWORD).as_bytes()).ok();
        assert!(std::fs::metadata(&out).unwrap().len() > 0);
        let calls = std::fs::read_to_string(&trace).unwrap();
        let in_dir: Vec<&str> = calls.lines().filter(|l| l.contains(dir.to_str().unwrap())).collect();
        assert!(in_dir.iter().any(|l| l.contains("O_TMPFILE")), "{args:?}: no unnamed file: {in_dir:#?}");
        let named = in_dir.iter().filter(|l| l.contains("O_CREAT") && !l.contains("O_TMPFILE"));
        assert_eq!(named.count(), 0, "{args:?}: a file created under a name: {in_dir:#?}");
    }
}

/// `failing_command | tresor set db/password` replaced the password with an empty value and
/// exited 0 (found by review). An empty stdin stores nothing, through the front and the CLI; an
/// empty value given as the argument is still stored.
#[test]
fn regression_an_empty_pipe_replaced_a_secret_with_nothing() {
    let env = Env::new();
    env.init();
    env.set("db/password", b"hunter2");
    let out = env.run_pw(&["set", "db/password"], b"").expect(7);
    assert!(out.stderr.contains("stdin was empty: nothing stored"), "{}", out.stderr);
    assert_eq!(env.get("db/password"), b"hunter2");
    // Through the agent (the front serves `set`) alike.
    let _agent = env.agent_guard();
    env.run_pw(&["unlock"], b"").ok();
    let out = env.run(&["set", "db/password"], b"").expect(7);
    assert!(out.stderr.contains("stdin was empty: nothing stored"), "{}", out.stderr);
    assert_eq!(env.get("db/password"), b"hunter2");
    env.run(&["set", "db/empty", ""], b"").ok();
    assert_eq!(env.get("db/empty"), b"");
}
