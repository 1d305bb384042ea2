//! The vault's life through the real `tresor` binary, without an agent: init, set (stdin, argument,
//! file), get (exact bytes, old versions), list, rm, history, status, audit and its verification;
//! wrong passwords (refused, nothing written, reported and audited at the next unlock); password
//! changes.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::{Env, KDF, PASSWORD, is_hex};
use serde_json::Value;

/// The records of `tresor audit --json`.
fn audit_json(env: &Env) -> Vec<Value> {
    let out = env.run_pw(&["audit", "--json"], b"").ok();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array().unwrap().clone()
}

/// Whether some audit record has `op`, `path` and an `ok` outcome.
fn audited(records: &[Value], op: &str, path: Option<&str>) -> bool {
    records.iter().any(|r| r["op"] == op && r["path"].as_str() == path && r["outcome"] == "ok")
}

#[test]
fn lifecycle_without_agent() {
    let env = Env::new();
    let id = env.init();
    assert!(env.vault.join("keyfile").is_dir());

    // Three ways to give a value; binary values come back byte for byte.
    let out = env.run_pw(&["set", "db/password"], b"s3cr3t").ok();
    assert!(out.stderr.contains("db/password: version 1"), "{}", out.stderr);
    env.run_pw(&["set", "db/user", "admin"], b"").ok();
    let binary: &[u8] = b"\x00\x01line one\nline two\r\n\x00\xff\xfe\n";
    let file = env.path("value.bin");
    std::fs::write(&file, binary).unwrap();
    env.run_pw(&["set", "bin/file", "--file", file.to_str().unwrap()], b"").ok();
    env.set("bin/stdin", binary);
    // An empty value as the argument (an empty stdin is refused: a failed command before a pipe).
    env.run_pw(&["set", "empty", ""], b"").ok();
    env.run_pw(&["set", "empty"], b"").expect(7);
    assert_eq!(env.get("db/password"), b"s3cr3t");
    assert_eq!(env.get("db/user"), b"admin");
    assert_eq!(env.get("bin/file"), binary);
    assert_eq!(env.get("bin/stdin"), binary);
    assert_eq!(env.get("empty"), b"");
    // VALUE and --file together are a usage error.
    env.run_pw(&["set", "x", "v", "--file", file.to_str().unwrap()], b"").expect(2);

    let out = env.run_pw(&["set", "db/password"], b"v2").ok();
    assert!(out.stderr.contains("db/password: version 2"), "{}", out.stderr);

    // list, list -l, list --json, list PREFIX.
    let names = env.run_pw(&["list"], b"").ok().text();
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        ["bin/file", "bin/stdin", "db/password", "db/user", "empty"]
    );
    let long = env.run_pw(&["list", "-l"], b"").ok().text();
    let row: Vec<&str> = long.lines().find(|l| l.starts_with("db/password\t")).unwrap().split('\t').collect();
    assert_eq!(row[..3], ["db/password", "v2", "2"], "{long}");
    assert!(row[3].ends_with('Z') && row[3].len() == 20, "time column {:?}", row[3]);
    let json: Value = serde_json::from_slice(&env.run_pw(&["list", "--json"], b"").ok().stdout).unwrap();
    let entries = json.as_array().unwrap();
    assert_eq!(entries.len(), 5);
    let bin = entries.iter().find(|e| e["path"] == "bin/file").unwrap();
    assert_eq!(bin["version"], 1);
    assert_eq!(bin["size"], binary.len());
    assert_eq!(env.run_pw(&["list", "db/"], b"").ok().text(), "db/password\ndb/user\n");
    assert_eq!(env.run_pw(&["ls", "nothing/"], b"").ok().text(), "");

    // rm keeps history; get after rm is "not found".
    let out = env.run_pw(&["rm", "db/user"], b"").ok();
    assert!(out.stderr.contains("db/user: version 1 deleted"), "{}", out.stderr);
    let out = env.run_pw(&["get", "db/user"], b"").expect(4);
    assert!(out.stdout.is_empty());
    assert!(out.stderr.contains("deleted"), "{}", out.stderr);
    env.run_pw(&["rm", "db/user"], b"").expect(4);
    env.run_pw(&["get", "no/such"], b"").expect(4);
    env.run_pw(&["rm", "no/such"], b"").expect(4);
    env.run_pw(&["history", "no/such"], b"").expect(4);
    assert!(!env.run_pw(&["list"], b"").ok().text().contains("db/user"));
    assert_eq!(env.run_pw(&["get", "--version", "1", "db/user"], b"").ok().stdout, b"admin");

    // history and old versions.
    let hist = env.run_pw(&["history", "db/password"], b"").ok().text();
    let lines: Vec<&str> = hist.lines().collect();
    assert_eq!(lines.len(), 2, "{hist}");
    assert!(lines[0].starts_with("v1\t") && lines[0].contains("6 bytes") && lines[0].ends_with("superseded"));
    assert!(lines[1].starts_with("v2\t") && lines[1].contains("2 bytes") && lines[1].ends_with("current"));
    let hist = env.run_pw(&["history", "db/user"], b"").ok().text();
    assert!(hist.starts_with("v1\t") && hist.contains("deleted "), "{hist}");
    let json: Value =
        serde_json::from_slice(&env.run_pw(&["history", "--json", "db/password"], b"").ok().stdout).unwrap();
    let versions = json.as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!((versions[0]["version"].as_u64(), versions[0]["current"].as_bool()), (Some(1), Some(false)));
    assert_eq!((versions[1]["version"].as_u64(), versions[1]["current"].as_bool()), (Some(2), Some(true)));
    assert_eq!(versions[0]["size"], 6);
    assert_eq!(env.run_pw(&["get", "--version", "1", "db/password"], b"").ok().stdout, b"s3cr3t");
    assert_eq!(env.run_pw(&["get", "--version", "2", "db/password"], b"").ok().stdout, b"v2");
    env.run_pw(&["get", "--version", "3", "db/password"], b"").expect(4);

    // status while locked needs no password.
    let status = env.run(&["status"], b"").ok().text();
    assert!(status.contains("state: locked"), "{status}");
    assert!(status.contains(&format!("vault id: {id}")), "{status}");
    assert!(status.contains("kdf: argon2id m=19456 t=2 p=1"), "{status}");
    let json: Value = serde_json::from_slice(&env.run(&["status", "--json"], b"").ok().stdout).unwrap();
    assert_eq!(json["state"], "locked");
    assert_eq!(json["vault_id"], id.as_str());

    // The audit trail holds every operation with its path.
    let text = env.run_pw(&["audit"], b"").ok().text();
    assert!(text.contains("set db/password"), "{text}");
    let records = audit_json(&env);
    for (op, path) in [
        ("init", None),
        ("unlock", None),
        ("set", Some("db/password")),
        ("set", Some("bin/file")),
        ("get", Some("db/password")),
        ("rm", Some("db/user")),
        ("list", Some("db/")),
        ("history", Some("db/password")),
    ] {
        assert!(audited(&records, op, path), "no ok audit record for {op} {path:?}");
    }
    assert!(
        records.iter().any(|r| r["op"] == "get"
            && r["path"] == "db/user"
            && r["outcome"].as_str().unwrap().starts_with("failed")),
        "the failed get is audited"
    );
    assert!(records.iter().any(|r| r["op"] == "get" && r["detail"] == "version 1"));
    let seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "audit sequence numbers are 1..n");
    assert!(records.iter().all(|r| r["actor"].as_str().unwrap().contains("(cli)")));

    let out = env.run_pw(&["audit", "verify"], b"").ok();
    assert!(out.text().contains("verified"), "{}", out.text());
}

#[test]
fn wrong_password_is_refused_writes_nothing_and_is_reported() {
    let env = Env::new();
    env.init();
    env.set("a", b"1");
    let before = env.vault_files();

    let out = env.run_pw_as("not the password", &["get", "a"], b"").expect(3);
    assert!(out.stderr.contains("authentication failed"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
    assert_eq!(env.vault_files(), before, "a failed unlock wrote to the vault");

    let out = env.run_pw(&["get", "a"], b"").ok();
    assert_eq!(out.stdout, b"1");
    assert!(out.stderr.contains("tresor: 1 failed unlock attempt since "), "{}", out.stderr);
    assert!(out.stderr.contains("(recorded in the audit trail)"), "{}", out.stderr);
    // Reported once.
    let out = env.run_pw(&["get", "a"], b"").ok();
    assert!(!out.stderr.contains("failed unlock attempt"), "{}", out.stderr);

    // Two more, one of them a write: still nothing written, both counted.
    let before = env.vault_files();
    env.run_pw_as("not the password", &["set", "b"], b"value").expect(3);
    env.run_pw_as("also not the password", &["list"], b"").expect(3);
    assert_eq!(env.vault_files(), before, "a failed unlock wrote to the vault");
    let out = env.run_pw(&["list"], b"").ok();
    assert_eq!(out.text(), "a\n");
    assert!(out.stderr.contains("tresor: 2 failed unlock attempts since "), "{}", out.stderr);

    let records = audit_json(&env);
    let unlocks: Vec<&str> = records
        .iter()
        .filter(|r| r["op"] == "unlock")
        .filter_map(|r| r["detail"].as_str())
        .filter(|d| d.contains("failed attempt"))
        .collect();
    assert_eq!(unlocks.len(), 2, "{records:?}");
    assert!(unlocks[0].starts_with("1 failed attempt since "), "{unlocks:?}");
    assert!(unlocks[1].starts_with("2 failed attempts since "), "{unlocks:?}");
}

#[test]
fn passwd_changes_the_password_and_enforces_the_rules() {
    let env = Env::new();
    env.init();
    env.set("a", b"kept");
    let new = "a brand new passphrase";

    let input = format!("{PASSWORD}\n{new}\n");
    let out = env
        .run(&[&["--password-stdin", "passwd", "--new-password-stdin"], &KDF[..]].concat(), input.as_bytes())
        .ok();
    assert!(out.stderr.contains("password changed"), "{}", out.stderr);
    assert_eq!(
        env.vault_files().iter().filter(|f| f.starts_with("keyfile/")).collect::<Vec<_>>(),
        ["keyfile/00000000000000000002"],
        "the old key file is removed"
    );

    let out = env.run_pw(&["get", "a"], b"").expect(3);
    assert!(out.stderr.contains("authentication failed"), "{}", out.stderr);
    assert_eq!(env.run_pw_as(new, &["get", "a"], b"").ok().stdout, b"kept");

    // A wrong current password changes nothing.
    let input = "not the password\nanother new passphrase\n";
    env.run(&["--password-stdin", "passwd", "--new-password-stdin"], input.as_bytes()).expect(3);
    assert_eq!(env.run_pw_as(new, &["get", "a"], b"").ok().stdout, b"kept");

    // Rule-breaking new passwords are refused; the current one keeps working.
    for bad in ["short", "CHANGEME", ""] {
        let input = format!("{new}\n{bad}\n");
        let out =
            env.run(&["--password-stdin", "passwd", "--new-password-stdin"], input.as_bytes()).expect(7);
        assert!(out.stderr.contains("password rejected"), "{bad:?}: {}", out.stderr);
    }
    assert_eq!(env.run_pw_as(new, &["get", "a"], b"").ok().stdout, b"kept");
    assert_eq!(env.vault_files().iter().filter(|f| f.starts_with("keyfile/")).count(), 1);

    // --new-password-file works too.
    let file = env.password_file(PASSWORD);
    let mut args = vec!["--password-stdin", "passwd", "--new-password-file", file.to_str().unwrap()];
    args.extend(KDF);
    env.run(&args, format!("{new}\n").as_bytes()).ok();
    assert_eq!(env.get("a"), b"kept");
    let out = env.run_pw(&["audit", "--json"], b"").ok();
    let records: Value = serde_json::from_slice(&out.stdout).unwrap();
    let passwd: Vec<&Value> = records.as_array().unwrap().iter().filter(|r| r["op"] == "passwd").collect();
    assert_eq!(passwd.len(), 2, "both changes are audited");
    assert_eq!(passwd[1]["detail"], "slot 0; key file generation 3");
    let status: Value = serde_json::from_slice(&env.run(&["status", "--json"], b"").ok().stdout).unwrap();
    assert_eq!(status["keyfile_generation"], 3);
    assert!(is_hex(status["vault_id"].as_str().unwrap(), 32));
}

/// `undelete` and `destroy` through the binary: a deleted version comes back; a destroyed one is
/// gone for good (its value leaves the store, the history says so, reading it is exit 4), and
/// both are audited.
#[test]
fn undelete_brings_a_version_back_and_destroy_takes_one_away() {
    let env = Env::new();
    env.init();
    env.set("app/db", b"first");
    env.set("app/db", b"second");
    env.run_pw(&["rm", "app/db"], b"").ok();
    assert_eq!(env.run_pw(&["get", "app/db"], b"").code, 4);
    let out = env.run_pw(&["undelete", "app/db"], b"").ok();
    assert!(out.stderr.contains("version 2 undeleted"), "{}", out.stderr);
    assert_eq!(env.get("app/db"), b"second");
    let before: Vec<String> = env.vault_files().into_iter().filter(|f| f.starts_with("blob/")).collect();
    let out = env.run_pw(&["destroy", "app/db", "--version", "1"], b"").ok();
    assert!(out.stderr.contains("version 1 destroyed (1 object deleted"), "{}", out.stderr);
    let after: Vec<String> = env.vault_files().into_iter().filter(|f| f.starts_with("blob/")).collect();
    assert_eq!(after.len(), before.len() - 1, "the blob that held version 1 is gone");
    let out = env.run_pw(&["get", "app/db", "--version", "1"], b"");
    assert_eq!(out.code, 4);
    assert!(out.stderr.contains("destroyed"), "{}", out.stderr);
    assert_eq!(env.get("app/db"), b"second");
    let history = env.run_pw(&["history", "app/db"], b"").ok().text();
    assert!(history.lines().next().is_some_and(|l| l.ends_with("destroyed")), "{history}");
    // Again: nothing left to destroy; no version named: a usage error.
    assert!(
        env.run_pw(&["destroy", "app/db", "--version", "1"], b"").ok().stderr.contains("nothing to destroy")
    );
    assert_eq!(env.run_pw(&["destroy", "app/db"], b"").code, 2);
    assert_eq!(env.run_pw(&["undelete", "app/none"], b"").code, 4);
    let records = audit_json(&env);
    assert!(audited(&records, "undelete", Some("app/db")), "{records:?}");
    assert!(audited(&records, "destroy", Some("app/db")), "{records:?}");
    env.run_pw(&["audit", "verify"], b"").ok();
}
