//! `tresor doctor`: the store probe and what the store holds, without a password.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

mod common;

use common::Env;

#[test]
fn doctor_reports_the_probe_the_objects_and_the_vault() {
    let env = Env::new();
    std::fs::create_dir_all(&env.vault).unwrap();
    let out = env.run(&["doctor"], b"").ok().text();
    assert!(out.contains("create-if-absent: ok"), "{out}");
    assert!(out.contains("objects: none"), "{out}");
    assert!(out.contains("vault: none"), "{out}");
    let id = env.init();
    let out = env.run(&["doctor", "--json"], b"").ok().text();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["create_if_absent"], true);
    assert_eq!(v["vault"]["vault_id"], id.as_str());
    assert_eq!(v["objects"]["keyfile"], 1);
    // The probe leaves nothing behind.
    assert!(common::rel_files(&env.vault).iter().all(|f| !f.starts_with("probe")));
}
