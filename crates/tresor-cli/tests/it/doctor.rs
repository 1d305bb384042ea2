//! `tresor doctor`: the store probe and what the store holds, without a password.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

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

#[test]
fn gc_removes_orphans_keeps_everything_live_and_says_what_it_did() {
    let env = Env::new();
    env.init();
    for i in 0..5 {
        env.set(&format!("svc/{i}"), format!("value {i}").as_bytes());
    }
    // A value blob no commit references, as a write that failed before its commit leaves, old
    // enough to be past the grace period.
    let blobs: Vec<String> =
        common::rel_files(&env.vault).into_iter().filter(|f| f.starts_with("blob/")).collect();
    let epoch_dir = blobs[0].rsplit_once('/').unwrap().0;
    let orphan = env.vault.join(format!("{epoch_dir}/00112233445566778899aabbccddeeff"));
    std::fs::copy(env.vault.join(&blobs[0]), &orphan).unwrap();
    let f = std::fs::File::options().write(true).open(&orphan).unwrap();
    f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(7200)).unwrap();
    drop(f);

    let out = env.run_pw(&["gc", "--dry-run"], b"").ok().text();
    assert!(out.contains("would remove: 0 snapshot parts, 1 orphan blobs"), "{out}");
    assert!(orphan.exists());
    let out = env.run_pw(&["gc", "--json"], b"").ok().text();
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["orphan_blobs"], 1, "{out}");
    assert!(report["snapshot"].as_u64().unwrap() > 0, "gc snapshots the head: {out}");
    assert!(!orphan.exists());
    for i in 0..5 {
        assert_eq!(env.get(&format!("svc/{i}")), format!("value {i}").as_bytes());
    }
    let out = env.run_pw(&["audit", "verify"], b"").ok().text();
    assert!(out.contains("snapshot at commit"), "{out}");
    // A grace period that does not parse is refused before anything runs.
    let out = env.run_pw(&["gc", "--grace", "soon"], b"").expect(7);
    assert!(out.stderr.contains("invalid duration"), "{}", out.stderr);
    let out = env.run_pw(&["audit"], b"").ok().text();
    assert!(out.contains("gc"), "gc is audited: {out}");
}
