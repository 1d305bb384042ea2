//! `tresor rekey` through the real binary (issue 12, item 4): a new root and recovery phrase, the
//! agent locked, other machines refusing the re-keyed vault until they pin its new fingerprint,
//! and a re-key killed with SIGKILL half-way that a rerun finishes.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::{Env, KDF, PASSWORD};
use std::time::Duration;

const NEW: &str = "a brand new password";

fn rekey_args() -> Vec<&'static str> {
    [&["--password-stdin", "rekey", "--new-password-stdin"], &KDF[..]].concat()
}

fn fingerprint_in(text: &str) -> String {
    text.lines().find_map(|l| l.strip_prefix("new fingerprint: ")).unwrap().trim().to_string()
}

#[test]
fn rekey_replaces_the_root_locks_the_agent_and_other_machines_must_re_trust() {
    let env = Env::new();
    env.init();
    env.set("db/password", b"v1");
    env.set("db/password", b"v2");
    let other = env.new_machine();
    assert_eq!(other.run_pw(&["get", "db/password"], b"").ok().stdout, b"v2");
    let _agent = env.agent_guard();
    env.unlock_with_file(&env.password_file(PASSWORD), &[]).ok();
    // passwd tells the truth and points at rekey.
    let out = common::run(
        env.cmd().args(rekey_args()).arg("--no-recovery-phrase"),
        format!("{PASSWORD}\n{NEW}\n").as_bytes(),
    )
    .ok();
    assert!(out.stderr.contains("locked the agent"), "{}", out.stderr);
    assert!(out.stderr.contains("root era 2 replaces era 1"), "{}", out.stderr);
    let fingerprint = fingerprint_in(&out.stderr);
    assert!(env.run(&["status"], b"").ok().text().contains("state: locked"), "the agent was locked");
    // The new password opens it, the old one does not.
    assert_eq!(env.run_pw_as(NEW, &["get", "db/password"], b"").ok().stdout, b"v2");
    let out = env.run_pw(&["get", "db/password"], b"").expect(3);
    assert!(out.stdout.is_empty());
    let status = env.run_pw_as(NEW, &["status"], b"").ok().text();
    assert!(
        status.contains(&format!("fingerprint: {fingerprint}")) && status.contains("root era: 2"),
        "{status}"
    );
    // Another machine refuses the re-keyed vault until its new fingerprint is pinned there.
    let out = other.run_pw_as(NEW, &["get", "db/password"], b"").expect(13);
    assert!(out.stderr.contains("was re-keyed since this machine last opened it"), "{}", out.stderr);
    other.run(&["trust", &fingerprint], b"").ok();
    assert_eq!(other.run_pw_as(NEW, &["get", "db/password"], b"").ok().stdout, b"v2");
    // History and audit came along.
    let history = env.run_pw_as(NEW, &["history", "db/password"], b"").ok().text();
    assert_eq!(history.lines().count(), 2, "{history}");
    let audit = env.run_pw_as(NEW, &["audit"], b"").ok().text();
    assert!(audit.contains("rekey"), "{audit}");
    env.run_pw_as(NEW, &["audit", "verify"], b"").ok();
    // passwd says what it does not do.
    let out = common::run(
        env.cmd().args(["--password-stdin", "passwd", "--new-password-stdin"]).args(KDF),
        format!("{NEW}\n{PASSWORD}\n").as_bytes(),
    )
    .ok();
    assert!(
        out.stderr.contains("still opens the vault with the old password")
            && out.stderr.contains("tresor rekey"),
        "{}",
        out.stderr
    );
}

#[test]
fn rekey_killed_half_way_leaves_one_root_and_a_rerun_finishes() {
    let env = Env::new();
    env.init();
    let dotenv = env.path("many.env");
    let lines: String = (0..4000).map(|i| format!("SECRET_{i}=value-{i}\n")).collect();
    std::fs::write(&dotenv, lines).unwrap();
    env.run_pw(&["import", dotenv.to_str().unwrap()], b"").ok();
    let marker = env.vault.join("era/0000000002");
    let mut child = env
        .std_cmd(common::bin())
        .args(rekey_args())
        .arg("--no-recovery-phrase")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), format!("{PASSWORD}\n{NEW}\n").as_bytes())
        .unwrap();
    // Past the fence (the new era's marker exists), the process dies.
    assert!(common::wait_for(Duration::from_secs(60), || marker.exists()), "the re-key never started");
    let killed_before_done = child.try_wait().unwrap().is_none();
    assert!(common::kill_hard(child.id()));
    let _ = child.wait();
    assert!(killed_before_done, "the re-key finished before it could be killed; make the vault bigger");
    let old = env.run_pw(&["get", "SECRET_7"], b"");
    let new = env.run_pw_as(NEW, &["get", "SECRET_7"], b"");
    match (old.code, new.code) {
        (0, 3) => {
            assert_eq!(old.stdout, b"value-7");
            // Fenced until the re-key runs again.
            let out = env.run_pw(&["set", "x"], b"y").expect(6);
            assert!(out.stderr.contains("being re-keyed"), "{}", out.stderr);
            // The killed attempt wrote a moment ago: without --force the lease holds.
            let out = common::run(
                env.cmd().args(rekey_args()).arg("--no-recovery-phrase"),
                format!("{PASSWORD}\n{NEW}\n").as_bytes(),
            )
            .expect(6);
            assert!(out.stderr.contains("may still be running"), "{}", out.stderr);
            assert!(out.stderr.contains("or with --force"), "the hint says how to take over: {}", out.stderr);
            common::run(
                env.cmd().args(rekey_args()).args(["--no-recovery-phrase", "--force"]),
                format!("{PASSWORD}\n{NEW}\n").as_bytes(),
            )
            .ok();
        }
        (3, 0) => {
            env.run_pw_as(NEW, &["gc"], b"").ok();
        }
        other => panic!("exactly one root must open the vault, got exit codes {other:?}"),
    }
    assert_eq!(env.run_pw_as(NEW, &["get", "SECRET_3999"], b"").ok().stdout, b"value-3999");
    env.run_pw(&["get", "SECRET_7"], b"").expect(3);
    let out = env.run_pw_as(NEW, &["audit", "verify"], b"").ok().text();
    assert!(out.contains("values verified: 4000 versions"), "{out}");
    assert!(common::rel_files(&env.vault).iter().all(|n| n.starts_with("root/") || n.starts_with("era/")));
}
