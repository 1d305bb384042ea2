//! `tresor set --cas N` through the real binary: exit code 6 on a lost race, nothing written.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::Env;

#[test]
fn set_cas_refuses_a_stale_version_with_exit_code_6() {
    let env = Env::new();
    env.init();
    env.run_pw(&["set", "--cas", "0", "api/token"], b"first").ok();
    let out = env.run_pw(&["set", "--cas", "0", "api/token"], b"second").expect(6);
    assert!(out.stderr.contains("check-and-set failed"), "{}", out.stderr);
    // Regression (issue 15): the hint said "run the command again", which would fail the same way.
    assert!(out.stderr.contains("`tresor history api/token` shows what changed"), "{}", out.stderr);
    assert!(!out.stderr.contains("run the command again"), "{}", out.stderr);
    env.run_pw(&["set", "--cas", "1", "api/token"], b"second").ok();
    let out = env.run_pw(&["set", "--cas", "1", "api/token"], b"third").expect(6);
    assert!(out.stderr.contains("is at version 2, not 1"), "{}", out.stderr);
    assert_eq!(env.get("api/token"), b"second");
}
