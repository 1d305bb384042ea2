//! `tresor epoch` through the real binary, in-process and through the agent: rotate, re-encrypt,
//! destroy (objects gone from the vault directory, values still readable, audit verified),
//! policy, JSON output, and refusals with their exit codes.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::{Env, PASSWORD, run};
use serde_json::Value;

/// Vault files under `dir/` (e.g. `blob/0000000001`).
fn files_under(env: &Env, dir: &str) -> Vec<String> {
    env.vault_files().into_iter().filter(|f| f.starts_with(dir)).collect()
}

fn epochs(env: &Env) -> Value {
    serde_json::from_slice(&env.run_pw(&["epoch", "list", "--json"], b"").ok().stdout).unwrap()
}

fn epoch_state(list: &Value, epoch: u64) -> (String, u64) {
    let e = list["epochs"].as_array().unwrap().iter().find(|e| e["epoch"] == epoch).unwrap();
    (e["state"].as_str().unwrap().to_string(), e["values"].as_u64().unwrap())
}

#[test]
fn rotate_reencrypt_and_destroy_in_process() {
    let env = Env::new();
    env.init();
    env.set("db/password", b"epoch one");
    env.set("db/user", b"admin");
    env.set("db/password", b"epoch one, second version");
    let out = env.run_pw(&["epoch", "rotate"], b"").ok();
    // What was done is said on stderr, as every command's confirmation is; stdout stays empty.
    assert!(out.stderr.contains("epoch 2: new values are sealed under a new key"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
    env.set("api/token", b"epoch two");
    let list = epochs(&env);
    assert_eq!(epoch_state(&list, 1), ("active".into(), 3));
    assert_eq!(epoch_state(&list, 2), ("current".into(), 1));

    assert!(!files_under(&env, "blob/0000000001").is_empty());
    let out = env.run_pw(&["epoch", "destroy", "1"], b"").ok();
    let text = &out.stderr;
    assert!(text.contains("re-sealed 3 values"), "{text}");
    assert!(text.contains("epoch 1: deleted"), "{text}");
    assert!(text.contains("the store keeps no older versions"), "{text}");
    assert!(files_under(&env, "blob/0000000001").is_empty(), "{:?}", env.vault_files());
    assert!(files_under(&env, "epoch/0000000001").is_empty(), "{:?}", env.vault_files());

    assert_eq!(env.get("db/password"), b"epoch one, second version");
    assert_eq!(env.run_pw(&["get", "--version", "1", "db/password"], b"").ok().stdout, b"epoch one");
    assert_eq!(env.get("db/user"), b"admin");
    assert_eq!(env.get("api/token"), b"epoch two");
    let list = epochs(&env);
    assert_eq!(epoch_state(&list, 1), ("destroyed".into(), 0));
    assert_eq!(epoch_state(&list, 2), ("current".into(), 4));

    // Destroying it again is harmless; an unknown epoch is invalid input (exit 7).
    env.run_pw(&["epoch", "destroy", "1"], b"").ok();
    let out = env.run_pw(&["epoch", "destroy", "9"], b"").expect(7);
    assert!(out.stderr.contains("there is no epoch 9"), "{}", out.stderr);

    // `rotate --reencrypt` leaves every value in the new epoch.
    let out = env.run_pw(&["epoch", "rotate", "--reencrypt", "--json"], b"").ok();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["rotate"]["epoch"], 3);
    assert_eq!(json["reencrypt"]["values"], 4);
    assert_eq!(epoch_state(&epochs(&env), 2), ("active".into(), 0));
    assert_eq!(epoch_state(&epochs(&env), 3), ("current".into(), 4));

    let audit = env.run_pw(&["audit", "--json"], b"").ok();
    let records: Vec<Value> = serde_json::from_slice(&audit.stdout).unwrap();
    for op in ["epoch rotate", "epoch reencrypt", "epoch destroy"] {
        assert!(records.iter().any(|r| r["op"] == op), "no {op} record");
    }
    assert!(
        records.iter().any(|r| r["op"] == "set" && r["detail"] == "BlobWritten epoch 2"),
        "set records name the epoch their blob was written in"
    );
    let verified = env.run_pw(&["audit", "verify"], b"").ok();
    assert!(verified.text().contains("chains unbroken"), "{}", verified.text());
}

#[test]
fn epochs_through_the_agent_and_the_policy() {
    let env = Env::new();
    env.init();
    env.set("a", b"one");
    let _guard = env.agent_guard();
    let file = env.password_file(PASSWORD);
    run(env.cmd().env("TRESOR_PASSWORD_FILE", &file).arg("unlock"), b"").ok();

    // No password needed: the agent serves these.
    let out = env.run(&["epoch", "rotate", "--reencrypt"], b"").ok();
    assert!(out.stderr.contains("re-sealed 1 value ("), "{}", out.stderr);
    env.run(&["epoch", "destroy", "1"], b"").ok();
    assert!(files_under(&env, "blob/0000000001").is_empty(), "{:?}", env.vault_files());
    assert_eq!(env.run(&["get", "a"], b"").ok().stdout, b"one");

    assert!(env.run(&["epoch", "policy"], b"").ok().text().contains("automatic rotation is off"));
    env.run(&["epoch", "policy", "--every", "7d"], b"").ok();
    assert!(env.run(&["epoch", "policy"], b"").ok().text().contains("rotate every 7d"));
    let list = env.run(&["epoch", "list"], b"").ok().text();
    assert!(list.contains("rotation: every 7d, next due"), "{list}");
    assert!(list.contains("destroyed"), "{list}");
    let out = env.run(&["epoch", "policy", "--every", "0s"], b"").expect(7);
    // Regression (issue 15, bug 12): the error named the idle timeout; bare numbers were
    // seconds; compound durations were refused.
    assert!(out.stderr.contains("the rotation period (--every) must be positive"), "{}", out.stderr);
    let out = env.run(&["epoch", "policy", "--every", "30"], b"").expect(7);
    assert!(out.stderr.contains("needs a unit: 30s, 30m, 30h or 30d"), "{}", out.stderr);
    // Regression (issue 15, bug 12): a 1-second policy made every write a new epoch.
    let out = env.run(&["epoch", "policy", "--every", "59m"], b"").expect(7);
    assert!(
        out.stderr.contains("--every 59m: a rotation period must be at least 3600s (1h)"),
        "{}",
        out.stderr
    );
    // Regression (found by review): a period of 2^64 - 1 seconds was taken, and shown in other
    // units; past 100 years it is refused.
    let out = env.run(&["epoch", "policy", "--every", "36501d"], b"").expect(7);
    assert!(out.stderr.contains("must be at most 36500d (100 years)"), "{}", out.stderr);
    assert!(
        env.run(&["epoch", "policy"], b"").ok().text().contains("rotate every 7d"),
        "a refused policy changes nothing"
    );
    env.run(&["epoch", "policy", "--every", "1h30m"], b"").ok();
    assert!(env.run(&["epoch", "policy"], b"").ok().text().contains("rotate every 1h30m"));
    env.run(&["epoch", "policy", "--off"], b"").ok();
    assert!(env.run(&["epoch", "policy"], b"").ok().text().contains("automatic rotation is off"));
    env.run(&["lock"], b"").ok();
}

#[test]
fn regression_an_epoch_destroy_that_could_not_delete_exited_1_not_11() {
    let env = Env::new();
    env.init();
    env.set("a", b"one");
    env.set("b", b"two");
    env.run_pw(&["epoch", "rotate", "--reencrypt"], b"").ok();
    let blobs = files_under(&env, "blob/0000000001");
    assert!(!blobs.is_empty());
    let stuck = common::Immutable::set(env.vault.join(&blobs[0]));
    let out = env.run_pw(&["epoch", "destroy", "1"], b"").expect(11);
    assert!(out.stderr.contains("deleting them failed"), "{}", out.stderr);
    // Everything else of the epoch is gone, the values read, the audit says what happened.
    assert_eq!(files_under(&env, "blob/0000000001"), [blobs[0].clone()]);
    assert_eq!(env.get("a"), b"one");
    let audit = env.run_pw(&["audit"], b"").ok().text();
    assert!(audit.contains("could not be deleted"), "{audit}");
    // Once the store lets go, destroying again finishes the job.
    drop(stuck);
    env.run_pw(&["epoch", "destroy", "1"], b"").ok();
    assert!(files_under(&env, "blob/0000000001").is_empty());
}
