//! Secrets in use through the real binary: `tresor run` (environment, env files, prefixes,
//! in-memory files, masking, exit codes, signals), `tresor inject` and `tresor read`.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common::{self, Env, Out, PASSWORD};
use std::time::Duration;

/// A vault with a plain secret, a JSON one with fields, and two under a prefix.
fn vault() -> Env {
    let env = Env::new();
    env.init();
    env.set("db/password", b"hunter2-pw");
    env.set("db/creds", br#"{"user": "app", "password": "json-pw-9"}"#);
    env.set("app/prod/api-key", b"key-one-1");
    env.set("app/prod/db/url", b"postgres://x");
    env
}

/// `tresor ARGS` with the password in `TRESOR_PASSWORD` (which the command must never see).
fn tresor(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> Out {
    let mut cmd = env.cmd();
    cmd.env("TRESOR_PASSWORD", PASSWORD).args(args);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    common::run(&mut cmd, b"")
}

#[test]
fn run_gives_the_command_its_secrets_from_every_source_and_passes_its_exit_code_on() {
    let env = vault();
    std::fs::write(
        env.path("app.env"),
        "\u{feff}# settings\nDB_USER=tresor://db/creds#user\nMODE=\"production\"\nexport API_KEY=override\n",
    )
    .unwrap();
    let script = r#"printf '%s|' "$PW" "$FROM_ENV" "$DB_USER" "$MODE" "$API_KEY" "$DB_URL" "${TRESOR_PASSWORD-unset}"; exit 3"#;
    let out = tresor(
        &env,
        &[
            "run",
            "--env",
            "PW=db/password",
            "--env-file",
            "app.env",
            "--prefix",
            "app/prod/",
            "--",
            "sh",
            "-c",
            script,
        ],
        &[("FROM_ENV", "tresor://db/creds?version=1#password"), ("API_KEY", "from-the-environment")],
    )
    .expect(3);
    // --env-file wins over --prefix, which wins over the environment; tresor's password stays home.
    assert_eq!(out.text(), "hunter2-pw|json-pw-9|app|production|override|postgres://x|unset|");
}

#[test]
fn run_without_mask_is_the_command_itself_and_a_signal_that_kills_it_shows_as_such() {
    let env = vault();
    let out = tresor(&env, &["run", "--env", "PW=db/password", "--", "sh", "-c", "kill -KILL $$"], &[]);
    // Killed by a signal: no exit code at all, as for the command run alone.
    assert_eq!(out.code, -1, "{}", out.stderr);
    let out =
        tresor(&env, &["run", "--mask", "--env", "PW=db/password", "--", "sh", "-c", "kill -KILL $$"], &[]);
    assert_eq!(out.code, 128 + 9, "{}", out.stderr);
}

#[test]
fn run_file_is_an_in_memory_file_that_no_directory_ever_holds() {
    let env = vault();
    let out = tresor(
        &env,
        &[
            "run",
            "--file",
            "CREDS=tresor://db/creds#password",
            "--",
            "sh",
            "-c",
            r#"readlink "$CREDS"; cat "$CREDS""#,
        ],
        &[],
    )
    .ok();
    let text = out.text();
    let (link, value) = text.split_once('\n').unwrap();
    assert!(link.starts_with("/memfd:tresor-CREDS"), "{link}");
    assert_eq!(value, "json-pw-9");
    // Sealed: the command reads it but cannot change it.
    let out = tresor(&env, &["run", "--file", "F=db/password", "--", "sh", "-c", r#"echo x > "$F""#], &[]);
    assert_ne!(out.code, 0);
    // Nothing holding the value was left anywhere under the test's directory (vault included).
    for file in common::files_under(env.tmp.path()) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(!bytes.windows(9).any(|w| w == b"json-pw-9"), "{} holds the value", file.display());
    }
}

#[test]
fn run_mask_conceals_values_in_output_and_errors_and_passes_the_exit_code_on() {
    let env = vault();
    let script = r#"echo "out $PW"; echo "err $PW" >&2; printf '%s' "$PW" | cut -c1-4; printf 'x%s\n' "$API_KEY"; exit 4"#;
    let out = tresor(
        &env,
        &["run", "--mask", "--env", "PW=db/password", "--prefix", "app/prod", "--", "sh", "-c", script],
        &[],
    )
    .expect(4);
    let text = out.text();
    assert!(!text.contains("hunter2-pw") && !text.contains("key-one-1"), "{text}");
    assert!(text.starts_with("out <concealed by tresor>\n"), "{text}");
    assert!(text.contains("x<concealed by tresor>\n"), "{text}");
    // A part of a value is not the value.
    assert!(text.contains("hunt\n"), "{text}");
    assert!(
        out.stderr.contains("err <concealed by tresor>") && !out.stderr.contains("hunter2-pw"),
        "{}",
        out.stderr
    );
}

#[test]
fn run_mask_passes_sigterm_on_and_no_secret_is_in_any_argv() {
    let env = vault();
    let mut cmd = env.std_cmd(common::bin());
    cmd.env("TRESOR_PASSWORD", PASSWORD)
        .args(["run", "--mask", "--env", "PW=db/password", "--", "sh", "-c"])
        .arg(r#"trap 'echo "got TERM $PW"; exit 5' TERM; echo ready; while :; do sleep 0.05; done"#)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line, "ready\n");
    // tresor's own command line and its children's hold no value.
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    let pids: Vec<u32> =
        std::iter::once(pid).chain(children.split_whitespace().map(|p| p.parse().unwrap())).collect();
    assert!(pids.len() >= 2, "the command runs as tresor's child");
    for p in &pids {
        let args = common::cmdline(*p).join(" ");
        assert!(!args.contains("hunter2-pw"), "argv of {p}: {args}");
    }
    std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    let status = wait_with_timeout(&mut child, Duration::from_secs(20));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert_eq!(status, Some(5), "{rest}");
    assert_eq!(rest, "got TERM <concealed by tresor>\n");
}

/// Found by review: with `--mask`, once tresor's own stdout was closed (`| head -1`) it went on
/// reading the command's output and dropping it, so `yes` never got its SIGPIPE and ran for ever
/// (without `--mask` it ends at once, 141). Closing its end closes the command's pipe too.
#[test]
fn regression_mask_kept_a_command_writing_after_its_reader_had_gone() {
    let env = vault();
    let mut cmd = env.std_cmd(common::bin());
    cmd.env("TRESOR_PASSWORD", PASSWORD)
        .args(["run", "--mask", "--env", "PW=db/password", "--", "yes", "line"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line, "line\n");
    drop(stdout);
    let status = common::wait_for(Duration::from_secs(20), || child.try_wait().unwrap().is_some());
    if !status {
        let _ = child.kill();
    }
    assert!(status, "the command went on writing after the reader had gone");
    assert_eq!(child.wait().unwrap().code(), Some(141), "the command's own end: SIGPIPE (128 + 13)");
}

fn wait_with_timeout(child: &mut std::process::Child, limit: Duration) -> Option<i32> {
    let found = common::wait_for(limit, || child.try_wait().unwrap().is_some());
    if !found {
        let _ = child.kill();
    }
    child.wait().unwrap().code()
}

#[test]
fn run_refuses_what_it_cannot_do_before_the_command_starts() {
    let env = vault();
    env.set("bin/nul", b"a\0b");
    let marker = env.path("ran");
    let touch = format!("touch {}", marker.display());
    let cases: [(&[&str], i32, &str); 8] = [
        (&["--env", "1X=db/password"], 7, "not a variable name"),
        (&["--env", "X"], 2, "expected NAME=PATH"),
        (&["--env", "X=db//password"], 7, "empty segment"),
        (&["--env", "X=tresor://db/password?v=2"], 7, "?version=N"),
        (&["--env", "X=db/nope"], 4, "no secret at db/nope"),
        (
            &["--env", "X=tresor://db/creds#host"],
            4,
            "has no field `host` (`tresor get db/creds` shows it whole)",
        ),
        (&["--env", "X=bin/nul"], 7, "NUL byte"),
        (&["--env-file", "missing.env"], 7, "cannot read missing.env"),
    ];
    for (flags, code, message) in cases {
        let args: Vec<&str> =
            ["run"].iter().chain(flags).chain(&["--", "sh", "-c", &touch]).copied().collect();
        let out = tresor(&env, &args, &[]).expect(code);
        assert!(out.stderr.contains(message), "{flags:?}: {}", out.stderr);
        assert!(!out.stderr.contains("hunter2") && !out.stderr.contains("json-pw"), "{}", out.stderr);
        // Regression: a missing field's error listed the value's other field names, which are
        // part of the secret.
        assert!(!out.stderr.contains("user"), "{}", out.stderr);
        assert!(!marker.exists(), "{flags:?}: the command ran");
    }
    std::fs::write(env.path("bad.env"), "A=\"unclosed\nB=2\n").unwrap();
    let out = tresor(&env, &["run", "--env-file", "bad.env", "--", "true"], &[]).expect(7);
    assert!(out.stderr.contains("bad.env"), "{}", out.stderr);
    let out = tresor(&env, &["run", "--env", "X=db/password", "--", "no-such-command-here"], &[]).expect(127);
    assert!(out.stderr.contains("no-such-command-here: command not found"), "{}", out.stderr);
    tresor(&env, &["run", "--env", "X=db/password", "--", env.vault.to_str().unwrap()], &[]).expect(126);
    tresor(&env, &["run", "--env", "X=db/password"], &[]).expect(2);
}

#[test]
fn inject_fills_a_template_into_a_new_private_file_and_replaces_one_only_when_forced() {
    use std::os::unix::fs::PermissionsExt;
    let env = vault();
    let template =
        "url=postgres://{{ tresor://db/creds#user }}:{{tresor://db/password}}@db\nhelm={{ .Values.x }}\n";
    std::fs::write(env.path("t.tpl"), template).unwrap();
    let expected = "url=postgres://app:hunter2-pw@db\nhelm={{ .Values.x }}\n";
    // To stdout, from a file or from stdin.
    assert_eq!(tresor(&env, &["inject", "-i", "t.tpl"], &[]).ok().text(), expected);
    let out =
        common::run(env.cmd().env("TRESOR_PASSWORD", PASSWORD).args(["inject"]), template.as_bytes()).ok();
    assert_eq!(out.text(), expected);
    // To a new file, mode 0600.
    tresor(&env, &["inject", "-i", "t.tpl", "-o", "out.conf"], &[]).ok();
    let out_file = env.path("out.conf");
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), expected);
    assert_eq!(std::fs::metadata(&out_file).unwrap().permissions().mode() & 0o777, 0o600);
    // Never over an existing file without --force.
    std::fs::write(&out_file, "mine").unwrap();
    let out = tresor(&env, &["inject", "-i", "t.tpl", "-o", "out.conf"], &[]).expect(7);
    assert!(out.stderr.contains("give --force"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), "mine");
    tresor(&env, &["inject", "-i", "t.tpl", "-o", "out.conf", "--force"], &[]).ok();
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), expected);
    // A bad placeholder names its line; a missing secret writes nothing.
    std::fs::write(env.path("bad.tpl"), "a\nb={{ tresor://db//x }}\n").unwrap();
    let out = tresor(&env, &["inject", "-i", "bad.tpl", "-o", "new.conf"], &[]).expect(7);
    assert!(out.stderr.contains("bad.tpl: line 2:"), "{}", out.stderr);
    std::fs::write(env.path("gone.tpl"), "a={{ tresor://db/nope }}\n").unwrap();
    tresor(&env, &["inject", "-i", "gone.tpl", "-o", "new.conf"], &[]).expect(4);
    assert!(!env.path("new.conf").exists());
}

/// Found by review: `inject` read (and audited) a secret once per placeholder, and counted each
/// placeholder's line from the template's start, so a template of many placeholders took
/// quadratic time (100,000 did not finish in two minutes). A reference is read once however often
/// it appears, and lines are counted as the placeholders come.
#[test]
fn regression_inject_read_a_secret_once_per_placeholder() {
    let env = vault();
    let audited = |env: &Env| -> usize {
        let records: serde_json::Value = serde_json::from_slice(
            &tresor(env, &["audit", "--json", "--path", "db/password"], &[]).ok().stdout,
        )
        .unwrap();
        records.as_array().unwrap().len()
    };
    let before = audited(&env);
    let line = "pw={{ tresor://db/password }} user={{ tresor://db/creds#user }}\n";
    std::fs::write(env.path("many.tpl"), line.repeat(20_000)).unwrap();
    let out = tresor(&env, &["inject", "-i", "many.tpl"], &[]).ok().text();
    assert_eq!(out, "pw=hunter2-pw user=app\n".repeat(20_000));
    assert_eq!(audited(&env), before + 1, "one read of db/password for 20,000 placeholders");
    // A placeholder's line is still the right one, far down.
    let bad = format!("{}x={{{{ tresor://db/nope }}}}\n", line.repeat(15_000));
    std::fs::write(env.path("bad.tpl"), bad).unwrap();
    let out = tresor(&env, &["inject", "-i", "bad.tpl"], &[]).expect(4);
    assert!(out.stderr.contains("bad.tpl: line 15001"), "{}", out.stderr);
    std::fs::write(env.path("open.tpl"), format!("{}x={{{{ tresor://db/x\n", line.repeat(9_000))).unwrap();
    let out = tresor(&env, &["inject", "-i", "open.tpl"], &[]).expect(7);
    assert!(out.stderr.contains("line 9001"), "{}", out.stderr);
}

/// Found by review: every placeholder held its own copy of its value, and the whole output was
/// built with no bound: a 24 KB template naming a 1 MB value 1,500 times took 3 GB. Values are
/// held once, and an output past 256 MiB is refused before it is built.
#[test]
fn regression_a_small_template_naming_a_large_value_often_took_gigabytes() {
    let env = vault();
    let big = vec![b'v'; 1 << 20];
    std::fs::write(env.path("big.val"), &big).unwrap();
    tresor(&env, &["set", "big", "--file", "big.val"], &[]).ok();
    std::fs::write(env.path("t.tpl"), "{{tresor://big}}".repeat(300)).unwrap();
    let out = tresor(&env, &["inject", "-i", "t.tpl", "-o", "out.txt"], &[]).expect(7);
    assert!(out.stderr.contains("would be 300 MiB, more than inject writes (256 MiB)"), "{}", out.stderr);
    assert!(!env.path("out.txt").exists(), "a file was written");
    // Within the bound, every placeholder gets the value.
    std::fs::write(env.path("t.tpl"), "{{tresor://big}}|".repeat(3)).unwrap();
    tresor(&env, &["inject", "-i", "t.tpl", "-o", "out.txt"], &[]).ok();
    let written = std::fs::read(env.path("out.txt")).unwrap();
    assert_eq!(written, [big.as_slice(), b"|"].concat().repeat(3));
}

#[test]
fn read_prints_what_a_reference_names() {
    let env = vault();
    env.set("db/password", b"second");
    assert_eq!(tresor(&env, &["read", "tresor://db/password"], &[]).ok().stdout, b"second");
    assert_eq!(tresor(&env, &["read", "tresor://db/password?version=1"], &[]).ok().stdout, b"hunter2-pw");
    assert_eq!(
        tresor(&env, &["read", "db/creds"], &[]).ok().stdout,
        br#"{"user": "app", "password": "json-pw-9"}"#
    );
    assert_eq!(tresor(&env, &["read", "tresor://db/creds#user"], &[]).ok().stdout, b"app");
    tresor(&env, &["read", "tresor://db/creds#nope"], &[]).expect(4);
    tresor(&env, &["read", "tresor://db/password?version=9"], &[]).expect(4);
    tresor(&env, &["read", "tresor://db/password#a#b"], &[]).expect(7);
}

#[test]
fn regression_env_files_expanded_variables_and_leaked_tresors_own_credentials() {
    let env = vault();
    std::fs::write(env.path("leak.env"), "LEAK=${TRESOR_PASSWORD}\nLEAK2=\"$TRESOR_PASSWORD\"\n").unwrap();
    let script = r#"printf '%s|%s|%s' "$LEAK" "$LEAK2" "${TRESOR_PASSWORD_FILE-unset}""#;
    let file = env.password_file(PASSWORD);
    let mut cmd = env.cmd();
    cmd.env("TRESOR_PASSWORD_FILE", &file).args(["run", "--env-file", "leak.env", "--", "sh", "-c", script]);
    let out = common::run(&mut cmd, b"").ok();
    assert_eq!(out.text(), "${TRESOR_PASSWORD}|$TRESOR_PASSWORD|unset");
}

#[test]
fn regression_a_secret_under_a_prefix_could_set_path_and_choose_the_program() {
    let env = vault();
    let evil = env.path("evil");
    std::fs::create_dir(&evil).unwrap();
    std::fs::write(evil.join("env"), "#!/bin/sh\necho hijacked\n").unwrap();
    std::fs::set_permissions(evil.join("env"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    env.set("app/path", evil.to_str().unwrap().as_bytes());
    env.set("app/ld_preload", b"/tmp/x.so");
    let out = tresor(&env, &["run", "--prefix", "app", "--", "env"], &[]).expect(7);
    assert!(
        out.stderr.contains("would set LD_PRELOAD") || out.stderr.contains("would set PATH"),
        "{}",
        out.stderr
    );
    assert!(!out.text().contains("hijacked"));
    // Named on purpose, PATH is the program's; the program is still found on tresor's own PATH.
    let out = tresor(&env, &["run", "--env", "PATH=app/path", "--", "env"], &[]).ok();
    assert!(!out.text().contains("hijacked"), "{}", out.text());
    assert!(out.text().contains(&format!("PATH={}", evil.display())), "{}", out.text());
}

#[test]
fn regression_mask_swallowed_sigint_sent_to_tresor_alone() {
    let env = vault();
    let mut cmd = env.std_cmd(common::bin());
    cmd.env("TRESOR_PASSWORD", PASSWORD)
        .args(["run", "--mask", "--env", "PW=db/password", "--", "sh", "-c"])
        .arg(r#"trap 'echo "got INT"; exit 6' INT; echo ready; while :; do sleep 0.05; done"#)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line, "ready\n");
    std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let status = wait_with_timeout(&mut child, Duration::from_secs(20));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert_eq!((status, rest.as_str()), (Some(6), "got INT\n"));
}
