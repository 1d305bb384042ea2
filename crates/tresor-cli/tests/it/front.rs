//! The `tresor` front: it serves `get` and `set` through an unlocked agent by itself, says exactly
//! what `tresor-cli` would say, and hands every other command line — and every line it cannot
//! serve — to `tresor-cli`, losing nothing it already read.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::{Env, Out, PASSWORD, run};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `tresor-cli`, installed beside the front.
fn full_cli() -> PathBuf {
    common::bin().with_file_name("tresor-cli")
}

/// Runs `program ARGS` in `env` with `stdin`.
fn run_program(env: &Env, program: &Path, args: &[&str], stdin: &[u8]) -> Out {
    let mut cmd = assert_cmd::Command::from_std(env.std_cmd(program));
    run(cmd.args(args).timeout(Duration::from_secs(60)), stdin)
}

/// A vault with `a` = `one`, unlocked by an agent (stopped by the returned guard).
fn unlocked(env: &Env) -> common::AgentGuard<'_> {
    env.init();
    env.set("a", b"one");
    let guard = env.agent_guard();
    env.unlock_with_file(&env.password_file(PASSWORD), &[]).ok();
    guard
}

#[test]
fn the_front_serves_get_and_set_itself_and_hands_everything_else_over() {
    let env = Env::new();
    let _guard = unlocked(&env);
    // The front alone, with no `tresor-cli` beside it: what it serves works, the rest cannot.
    std::fs::create_dir(env.path("alone")).unwrap();
    let alone = env.path("alone/tresor");
    std::fs::copy(common::bin(), &alone).unwrap();

    assert_eq!(run_program(&env, &alone, &["get", "a"], b"").ok().stdout, b"one");
    let out = run_program(&env, &alone, &["set", "b"], b"two\x00\n").ok();
    assert_eq!(out.stderr, "b: version 1\n");
    run_program(&env, &alone, &["--vault", env.vault.to_str().unwrap(), "set", "b", "three", "--cas=1"], b"")
        .ok();
    assert_eq!(run_program(&env, &alone, &["get", "--version", "1", "b"], b"").ok().stdout, b"two\x00\n");
    assert_eq!(run_program(&env, &alone, &["get", "b"], b"").ok().stdout, b"three");
    run_program(&env, &alone, &["get", "missing"], b"").expect(4);

    for args in [&["list"][..], &["get", "--help"], &["--no-agent", "get", "a"], &["set", "--file", "f", "c"]]
    {
        let out = run_program(&env, &alone, args, b"").expect(1);
        assert!(out.stderr.starts_with("tresor: error: cannot run "), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("tresor-cli"), "{}", out.stderr);
    }
    // Through the real front, the whole CLI answers them.
    assert_eq!(env.run(&["list"], b"").ok().text(), "a\nb\n");

    // Locked: the front serves nothing and hands `get` over (the CLI then asks for a password).
    env.run(&["lock"], b"").ok();
    run_program(&env, &alone, &["get", "a"], b"").expect(1);
    assert_eq!(env.run_pw(&["get", "a"], b"").ok().stdout, b"one");
}

#[test]
fn the_front_and_the_cli_say_the_same() {
    let env = Env::new();
    let _guard = unlocked(&env);
    // A small value limit from the config file, which both must read.
    std::fs::create_dir_all(env.cfg.join("tresor")).unwrap();
    std::fs::write(env.cfg.join("tresor/config.toml"), "max_value_size = 8\n").unwrap();
    let cases: [(&[&str], &[u8]); 10] = [
        (&["get", "a"], b""),
        (&["get", "missing"], b""),
        (&["get", "a//b"], b""),
        (&["get", "--version", "9", "a"], b""),
        (&["get", "--version=1", "a"], b""),
        (&["set", "c"], b"12345678"),
        (&["set", "d"], b"123456789"),
        (&["set", "--cas", "9", "a"], b"x"),
        (&["set", "a//b", "v"], b""),
        (&["--config", "/nonexistent/tresor.toml", "get", "a"], b""),
    ];
    for (args, stdin) in cases {
        let front = env.run(args, stdin);
        // The same line again, through the whole CLI (the store has moved on only where a set
        // succeeded, so a repeated set names the next version).
        let cli = run_program(&env, &full_cli(), args, stdin);
        assert_eq!(front.code, cli.code, "{args:?}\nfront: {}\ncli: {}", front.stderr, cli.stderr);
        assert_eq!(front.stdout, cli.stdout, "{args:?}");
        let next = |s: &str| s.replace("version 1", "version 2");
        assert!(
            front.stderr == cli.stderr || next(&front.stderr) == cli.stderr,
            "{args:?}: {} / {}",
            front.stderr,
            cli.stderr
        );
    }
    assert_eq!(env.run(&["get", "c"], b"").ok().stdout, b"12345678");
    env.run(&["get", "d"], b"").expect(4);
}

/// An "agent" that answers every call with "locked", for `calls` connections or until `stop`.
fn locked_agent(socket: PathBuf, calls: usize) -> std::thread::JoinHandle<usize> {
    let listener = UnixListener::bind(&socket).unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut served = 0;
        while served < calls && Instant::now() < deadline {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let _: tresor_wire::Request = tresor_wire::read_msg(&mut stream).unwrap();
                    let locked: tresor_wire::Reply<()> = Err(tresor_wire::Failure::Locked);
                    tresor_wire::write_msg(&mut stream, &locked).unwrap();
                    served += 1;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
        served
    })
}

#[test]
fn a_value_read_before_the_agent_answered_locked_is_handed_over_whole() {
    let env = Env::new();
    env.init();
    std::fs::create_dir_all(&env.run).unwrap();
    std::fs::set_permissions(&env.run, std::fs::Permissions::from_mode(0o700)).unwrap();
    let location = env.vault.canonicalize().unwrap();
    let socket = tresor_wire::client::socket_path(&env.run, location.to_str().unwrap());
    // The front reads the value, the agent says "locked", and the CLI asks the agent again before
    // it opens the vault itself with the password: two calls.
    let agent = locked_agent(socket, 2);
    let value: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let file = env.password_file(PASSWORD);
    let out = run(env.cmd().env("TRESOR_PASSWORD_FILE", &file).args(["set", "big"]), &value).ok();
    assert_eq!(out.stderr.lines().last(), Some("big: version 1"), "{}", out.stderr);
    assert_eq!(agent.join().unwrap(), 2, "the front and the CLI each asked the agent once");
    assert_eq!(env.run_pw(&["--no-agent", "get", "big"], b"").ok().stdout, value);
}
