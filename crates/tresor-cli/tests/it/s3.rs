//! The real binary on a real S3-compatible server (moto, started by `.ci/run`): `--vault s3://…`
//! works like a directory, directly and through the agent. Skipped without `TRESOR_TEST_S3`,
//! unless `TRESOR_REQUIRE_S3` is set (as in CI).
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::{Env, KDF};

#[test]
fn cli_on_s3_directly_and_through_the_agent() {
    let Some(location) = common::s3_location("cli") else { return };
    let mut env = Env::new();
    // TRESOR_VAULT for every command, the agent guard's `lock` included.
    env.vault = location.clone().into();
    let v: [&str; 0] = [];
    let out = env.run_pw(&[&v[..], &["init"], &KDF[..]].concat(), b"").ok();
    assert!(common::is_hex(out.text().trim(), 32), "{}", out.text());
    env.run_pw(&[&v[..], &["set", "db/password"]].concat(), b"s3-secret").ok();
    assert_eq!(env.run_pw(&[&v[..], &["get", "db/password"]].concat(), b"").ok().stdout, b"s3-secret");

    let guard = env.agent_guard();
    env.run_pw(&[&v[..], &["unlock"]].concat(), b"").ok();
    // Through the agent: no password needed.
    assert_eq!(env.run(&[&v[..], &["get", "db/password"]].concat(), b"").ok().stdout, b"s3-secret");
    env.run(&[&v[..], &["set", "api/token"]].concat(), b"tok").ok();
    let listed = env.run(&[&v[..], &["list"]].concat(), b"").ok().text();
    assert_eq!(listed.lines().collect::<Vec<_>>(), ["api/token", "db/password"]);
    assert!(env.run(&[&v[..], &["audit", "verify"]].concat(), b"").ok().text().contains("verified"));
    env.run(&[&v[..], &["lock"]].concat(), b"").ok();
    drop(guard);
    let doctor = env.run(&["doctor"], b"").ok().text();
    assert!(doctor.contains("backend: S3-compatible object store"), "{doctor}");
    assert!(doctor.contains("create-if-absent: ok"), "{doctor}");
    // An empty prefix of the bucket holds no vault.
    let empty = format!("{location}-empty");
    let out = env.run_pw(&["--vault", empty.as_str(), "get", "x"], b"").expect(8);
    assert!(out.stderr.contains("tresor init"), "{}", out.stderr);
}
