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
    // The front with a stand-in `tresor-cli`: what it serves works, the rest is handed over.
    let alone = front_alone(&env);

    assert_eq!(run_program(&env, &alone, &["get", "a"], b"").ok().stdout, b"one");
    let out = run_program(&env, &alone, &["set", "b"], b"two\x00\n").ok();
    assert_eq!(out.stderr, "b: version 1\n");
    run_program(&env, &alone, &["--vault", env.vault.to_str().unwrap(), "set", "b", "three", "--cas=1"], b"")
        .ok();
    assert_eq!(run_program(&env, &alone, &["get", "--version", "1", "b"], b"").ok().stdout, b"two\x00\n");
    assert_eq!(run_program(&env, &alone, &["get", "b"], b"").ok().stdout, b"three");
    run_program(&env, &alone, &["get", "missing"], b"").expect(4);
    // A value in a regular file is served too (it was handed over: the whole CLI's start-up for
    // every `set --file`); a FIFO or a device is the CLI's to read, once.
    let file = env.path("value.txt");
    std::fs::write(&file, b"from a file\n").unwrap();
    let out = run_program(&env, &alone, &["set", "--file", file.to_str().unwrap(), "f"], b"").ok();
    assert_eq!(out.stderr, "f: version 1\n");
    assert_eq!(run_program(&env, &alone, &["get", "f"], b"").ok().stdout, b"from a file\n");
    for args in [
        &["list"][..],
        &["get", "--help"],
        &["--no-agent", "get", "a"],
        &["set", "--file", "/dev/zero", "c"],
        &["set", "--file", "-", "c"],
        &["set", "--file", "/nonexistent/value", "c"],
        &["set", "--file", "value.txt", "c", "v"],
    ] {
        handed_over(run_program(&env, &alone, args, b""));
    }
    // Through the real front, the whole CLI answers them.
    assert_eq!(env.run(&["list"], b"").ok().text(), "a\nb\nf\n");

    // Without `tresor-cli` beside it, the front says so, and leaves a value on stdin unread.
    std::fs::remove_file(env.path("alone/tresor-cli")).unwrap();
    for args in [&["list"][..], &["set", "c"]] {
        let out = run_program(&env, &alone, args, b"x").expect(1);
        assert!(out.stderr.starts_with("tresor: error: cannot run "), "{}", out.stderr);
        assert!(out.stderr.contains("tresor-cli must be installed beside tresor"), "{}", out.stderr);
    }
    env.run(&["get", "c"], b"").expect(4);
    front_alone(&env);

    // Locked: the front serves nothing and hands `get` over (the CLI then asks for a password).
    env.run(&["lock"], b"").ok();
    handed_over(run_program(&env, &alone, &["get", "a"], b""));
    assert_eq!(env.run_pw(&["get", "a"], b"").ok().stdout, b"one");
}

/// What the stand-in `tresor-cli` beside [`front_alone`] exits with.
const HANDED_OVER: i32 = 99;

/// A copy of the front in `env` with a stand-in `tresor-cli` beside it that only says it was run
/// (exit [`HANDED_OVER`]): a line the front hands over shows.
fn front_alone(env: &Env) -> PathBuf {
    std::fs::create_dir_all(env.path("alone")).unwrap();
    let alone = env.path("alone/tresor");
    std::fs::copy(common::bin(), &alone).unwrap();
    let stand_in = env.path("alone/tresor-cli");
    std::fs::write(&stand_in, format!("#!/bin/sh\necho 'tresor-cli was run' >&2\nexit {HANDED_OVER}\n"))
        .unwrap();
    std::fs::set_permissions(&stand_in, std::fs::Permissions::from_mode(0o755)).unwrap();
    alone
}

/// Asserts that `out` came from the stand-in `tresor-cli`.
#[track_caller]
fn handed_over(out: Out) {
    assert_eq!((out.code, out.stderr.as_str()), (HANDED_OVER, "tresor-cli was run\n"));
}

#[test]
fn the_front_and_the_cli_say_the_same() {
    let env = Env::new();
    let _guard = unlocked(&env);
    // The front alone: every line below must be served by the front itself.
    let alone = front_alone(&env);
    // A small value limit from the config file, which both must read.
    std::fs::create_dir_all(env.cfg.join("tresor")).unwrap();
    std::fs::write(env.cfg.join("tresor/config.toml"), "max_value_size = 8\n").unwrap();
    let fits = env.path("fits.txt");
    std::fs::write(&fits, b"1234").unwrap();
    let over = env.path("over.txt");
    std::fs::write(&over, b"123456789").unwrap();
    let (fits, over) = (fits.to_str().unwrap(), over.to_str().unwrap());
    let cases: [(&[&str], &[u8]); 11] = [
        (&["get", "a"], b""),
        (&["get", "missing"], b""),
        (&["get", "a//b"], b""),
        (&["get", "--version", "9", "a"], b""),
        (&["get", "--version=1", "a"], b""),
        (&["set", "c"], b"12345678"),
        (&["set", "d"], b"123456789"),
        (&["set", "--cas", "9", "a"], b"x"),
        (&["set", "a//b", "v"], b""),
        (&["set", "--file", fits, "e"], b""),
        (&["set", "--file", over, "e"], b""),
    ];
    for (args, stdin) in cases {
        let front = run_program(&env, &alone, args, stdin);
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

/// An "agent" that answers every call with "locked" (or, with `hang_up`, reads the call and closes
/// the connection without an answer), for `calls` connections.
fn locked_agent(socket: PathBuf, calls: usize) -> std::thread::JoinHandle<usize> {
    fake_agent(socket, calls, false)
}

fn fake_agent(socket: PathBuf, calls: usize, hang_up: bool) -> std::thread::JoinHandle<usize> {
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
                    if !hang_up {
                        let locked: tresor_wire::Reply<()> = Err(tresor_wire::Failure::Locked);
                        tresor_wire::write_msg(&mut stream, &locked).unwrap();
                    }
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

/// The agent socket of `env`'s vault, in a runtime directory made ready for it.
fn agent_socket(env: &Env) -> PathBuf {
    std::fs::create_dir_all(&env.run).unwrap();
    std::fs::set_permissions(&env.run, std::fs::Permissions::from_mode(0o700)).unwrap();
    let location = env.vault.canonicalize().unwrap();
    tresor_wire::client::socket_path(&env.run, location.to_str().unwrap())
}

#[test]
fn an_agent_that_fails_mid_set_is_reported_and_the_set_is_not_run_again() {
    let env = Env::new();
    env.init();
    let agent = fake_agent(agent_socket(&env), 1, true);
    let alone = front_alone(&env);
    let file = env.password_file(PASSWORD);
    let mut cmd = assert_cmd::Command::from_std(env.std_cmd(&alone));
    let out =
        run(cmd.env("TRESOR_PASSWORD_FILE", &file).args(["set", "s"]).timeout(Duration::from_secs(60)), b"v")
            .expect(1);
    assert!(out.stderr.starts_with("tresor: error: the agent failed: "), "{}", out.stderr);
    assert_eq!(agent.join().unwrap(), 1);
    // Nothing was written, by the front or by a CLI it might have handed the line to.
    env.run_pw(&["--no-agent", "get", "s"], b"").expect(4);
}

#[test]
fn a_stale_socket_leaves_stdin_to_the_cli() {
    let env = Env::new();
    env.init();
    // An agent killed without cleanup leaves its socket: connecting is refused.
    drop(UnixListener::bind(agent_socket(&env)).unwrap());
    let file = env.password_file(PASSWORD);
    let out = run(env.cmd().env("TRESOR_PASSWORD_FILE", &file).args(["set", "s"]), b"from stdin").ok();
    assert_eq!(out.stderr.lines().last(), Some("s: version 1"), "{}", out.stderr);
    assert_eq!(env.run_pw(&["--no-agent", "get", "s"], b"").ok().stdout, b"from stdin");
}

#[test]
fn a_value_read_before_the_agent_answered_locked_is_handed_over_whole() {
    let env = Env::new();
    env.init();
    let socket = agent_socket(&env);
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

#[test]
fn the_front_serves_streamed_encrypt_and_decrypt_and_hands_the_rest_over() {
    let env = Env::new();
    let _guard = unlocked(&env);
    let alone = front_alone(&env);
    let plain = b"transit through the front\x00\xff\n";
    let write = |name: &str, bytes: &[u8]| {
        let path = env.path(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_string()
    };
    let plain_file = write("plain.bin", plain);

    // Served by the front alone, both algorithms, from stdin and from a file; the whole CLI reads
    // what the front wrote, and the front what the CLI wrote.
    for alg in ["xchacha20-poly1305", "aes256-gcm"] {
        let from_stdin = run_program(&env, &alone, &["encrypt", "k", "--alg", alg], plain).ok().stdout;
        let from_file =
            run_program(&env, &alone, &["encrypt", "k", &plain_file, "--alg", alg], b"").ok().stdout;
        assert_ne!(from_stdin, from_file, "a new message key each time");
        let by_cli = run_program(&env, &full_cli(), &["encrypt", "k", "--alg", alg], plain).ok().stdout;
        for (name, ct) in [("s.ct", &from_stdin), ("f.ct", &from_file), ("c.ct", &by_cli)] {
            let ct_file = write(name, ct);
            assert_eq!(
                run_program(&env, &alone, &["decrypt", "k", &ct_file], b"").ok().stdout,
                plain,
                "{alg} {name}"
            );
            assert_eq!(run_program(&env, &full_cli(), &["decrypt", "k", &ct_file], b"").ok().stdout, plain);
        }
    }

    // A tampered message fails in the front as in the CLI, with nothing but the failure.
    let mut ct = run_program(&env, &alone, &["encrypt", "k"], plain).ok().stdout;
    let last = ct.len() - 1;
    ct[last] ^= 1;
    let tampered = write("tampered.ct", &ct);
    let front = run_program(&env, &alone, &["decrypt", "k", &tampered], b"");
    let cli = run_program(&env, &full_cli(), &["decrypt", "k", &tampered], b"");
    assert_eq!((front.code, &front.stderr), (cli.code, &cli.stderr));
    assert_eq!(front.code, 7, "{}", front.stderr);

    // Armour, stdin to decrypt, another format, another key, a bad algorithm or name, a missing
    // file: the CLI's, before anything is read.
    let armored = run_program(&env, &full_cli(), &["encrypt", "k", "--armor"], plain).ok().stdout;
    let armored = write("armored.txt", &armored);
    let s_ct = env.path("s.ct").to_str().unwrap().to_string();
    for args in [
        &["encrypt", "k", "--armor"][..],
        &["encrypt", "-a", "k"],
        &["decrypt", "k"],
        &["decrypt", "k", &armored],
        &["decrypt", "other", &s_ct],
        &["encrypt", "k", "--alg", "rot13"],
        &["encrypt", "no spaces", &plain_file],
        &["encrypt", "k", "/nonexistent/plain"],
        &["encrypt", "k", "/dev/null"],
        &["decrypt", "k", "/nonexistent/ct"],
    ] {
        handed_over(run_program(&env, &alone, args, plain));
    }

    // Locked: handed over before a byte of stdin is read.
    env.run(&["lock"], b"").ok();
    handed_over(run_program(&env, &alone, &["encrypt", "k"], plain));
    handed_over(run_program(&env, &alone, &["decrypt", "k", &s_ct], b""));
}

#[test]
fn regression_a_fifo_to_decrypt_was_opened_by_the_front_and_its_writer_cut_off() {
    // The front opened FILE before checking what it was, closed it unread and handed over: the
    // writer died of SIGPIPE and the CLI then waited for ever on the empty FIFO.
    let env = Env::new();
    let _guard = unlocked(&env);
    let alone = front_alone(&env);
    let plain = b"through a FIFO\n";
    let ct = run_program(&env, &alone, &["encrypt", "k"], plain).ok().stdout;
    let fifo = env.path("ct.fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::write(&fifo, ct).is_ok())
    };
    let out = run_program(&env, common::bin(), &["decrypt", "k", fifo.to_str().unwrap()], b"");
    assert_eq!(out.ok().stdout, plain);
    assert!(writer.join().unwrap(), "the CLI read the FIFO whole");
    // The front alone hands it over without opening it (it would wait for a writer).
    handed_over(run_program(&env, &alone, &["decrypt", "k", fifo.to_str().unwrap()], b""));
}
