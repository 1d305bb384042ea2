//! Tampering with the store under the real binary (no agent): a changed commit, value blob, key file
//! or audit record, swapped blobs, a restored older copy of the vault, and deleted newest objects are
//! each refused with the right exit code and a message naming what is wrong; refusals at unlock write
//! nothing on top of the tampered state.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::{Env, copy_dir, flip_byte, newest};
use std::path::PathBuf;

/// One tampering: what to do to a vault holding `a` = `alpha` and `b` = `bravo` (two versions), the
/// command that must notice, and what it must say.
struct Case {
    name: &'static str,
    tamper: fn(&Env),
    args: &'static [&'static str],
    code: i32,
    says: &'static str,
    /// Whether the refusal comes at unlock, before anything is written.
    at_unlock: bool,
}

/// The blob holding the current value of `a` or `b` (recorded by [`run_case`]).
fn blob_of(env: &Env, secret: &str) -> PathBuf {
    PathBuf::from(std::fs::read_to_string(env.path(&format!("blob-of-{secret}"))).unwrap())
}

/// Sets `path` to `value` and records which blob file holds it.
fn set_recording_blob(env: &Env, path: &str, value: &[u8]) {
    let before = common::files_under(&env.vault.join("blob"));
    env.set(path, value);
    let new: Vec<PathBuf> =
        common::files_under(&env.vault.join("blob")).into_iter().filter(|p| !before.contains(p)).collect();
    assert_eq!(new.len(), 1, "one set, one blob");
    std::fs::write(env.path(&format!("blob-of-{path}")), new[0].to_str().unwrap()).unwrap();
}

const CASES: &[Case] = &[
    Case {
        name: "flipped byte in the newest commit",
        tamper: |env| flip_byte(&newest(&env.vault, "log"), -1),
        args: &["get", "a"],
        code: 5,
        says: "commit",
        at_unlock: true,
    },
    Case {
        name: "flipped byte in a commit header",
        tamper: |env| flip_byte(&env.vault.join("log/00000000000000000002"), 20),
        args: &["list"],
        code: 5,
        says: "commit",
        at_unlock: true,
    },
    Case {
        name: "flipped byte in a value blob",
        tamper: |env| flip_byte(&blob_of(env, "b"), -3),
        args: &["get", "b"],
        code: 5,
        says: "value blob",
        at_unlock: false,
    },
    Case {
        name: "two value blobs swapped",
        tamper: |env| {
            let (x, y) = (blob_of(env, "a"), blob_of(env, "b"));
            let tmp = env.path("swap");
            std::fs::rename(&x, &tmp).unwrap();
            std::fs::rename(&y, &x).unwrap();
            std::fs::rename(&tmp, &y).unwrap();
        },
        args: &["get", "a"],
        code: 5,
        says: "value blob",
        at_unlock: false,
    },
    Case {
        name: "flipped byte in the key file",
        tamper: |env| flip_byte(&newest(&env.vault, "keyfile"), -1),
        args: &["get", "a"],
        code: 3,
        says: "authentication failed",
        at_unlock: true,
    },
    Case {
        name: "flipped byte in the wrapped epoch key",
        tamper: |env| flip_byte(&newest(&env.vault, "epoch"), -1),
        args: &["get", "a"],
        code: 5,
        says: "epoch key",
        at_unlock: false,
    },
    Case {
        name: "older copy of the whole vault restored",
        tamper: |env| {
            std::fs::remove_dir_all(&env.vault).unwrap();
            copy_dir(&env.path("snapshot"), &env.vault);
        },
        args: &["get", "a"],
        code: 5,
        says: "rollback",
        at_unlock: true,
    },
    Case {
        name: "newest commit deleted",
        tamper: |env| std::fs::remove_file(newest(&env.vault, "log")).unwrap(),
        args: &["get", "a"],
        code: 5,
        says: "rollback",
        at_unlock: true,
    },
    Case {
        name: "newest audit record deleted",
        tamper: |env| std::fs::remove_file(newest(&env.vault, "audit")).unwrap(),
        args: &["get", "a"],
        code: 5,
        says: "rollback",
        at_unlock: true,
    },
    Case {
        name: "flipped byte in an old audit record",
        tamper: |env| flip_byte(&env.vault.join("audit/00000000000000000002"), -1),
        args: &["audit", "verify"],
        code: 5,
        says: "audit record",
        at_unlock: false,
    },
    Case {
        name: "a commit from the middle deleted",
        tamper: |env| std::fs::remove_file(env.vault.join("log/00000000000000000002")).unwrap(),
        args: &["get", "a"],
        code: 5,
        says: "commit",
        at_unlock: true,
    },
];

/// Runs one case in a fresh vault; `Ok` if it was detected as expected, `Err(why)` if not.
fn run_case(case: &Case) -> Result<(), String> {
    let env = Env::new();
    env.init();
    set_recording_blob(&env, "a", b"alpha");
    copy_dir(&env.vault, &env.path("snapshot"));
    env.set("b", b"bravo-1");
    set_recording_blob(&env, "b", b"bravo-2");
    assert_eq!(env.get("b"), b"bravo-2");
    (case.tamper)(&env);
    let before = env.vault_files();
    let out = env.run_pw(case.args, b"");
    let mut problems = Vec::new();
    if out.code != case.code {
        problems.push(format!("exit {} instead of {}", out.code, case.code));
    }
    if !out.stderr.to_lowercase().contains(case.says) {
        problems.push(format!("stderr does not name {:?}", case.says));
    }
    if !out.stdout.is_empty() {
        problems.push("something was printed to stdout".into());
    }
    if case.at_unlock && env.vault_files() != before {
        problems.push("objects were written on top of the tampered state".into());
    }
    // Still refused the second time (nothing "repaired" it silently).
    if env.run_pw(case.args, b"").code != case.code {
        problems.push("not refused again".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {}; stderr: {}", case.name, problems.join(", "), out.stderr.trim()))
    }
}

#[test]
fn t01_cli_tampering_is_detected() {
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = CASES.iter().map(|c| s.spawn(move || run_case(c))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let detected = results.iter().filter(|r| r.is_ok()).count();
    println!("T01-cli: detected {detected}/{}", CASES.len());
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "undetected or misreported tampering:\n{}",
        failures.iter().map(|f| f.as_str()).collect::<Vec<_>>().join("\n")
    );
}

/// The untampered vault passes, so the cases above fail for the tampering, not for the setup.
#[test]
fn untampered_vault_passes_every_check() {
    let env = Env::new();
    env.init();
    env.set("a", b"alpha");
    env.set("b", b"bravo-1");
    env.set("b", b"bravo-2");
    assert_eq!(env.get("a"), b"alpha");
    env.run_pw(&["list"], b"").ok();
    assert!(env.run_pw(&["audit", "verify"], b"").ok().text().contains("verified"));
}
