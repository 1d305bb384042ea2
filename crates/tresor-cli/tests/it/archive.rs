//! Export and import through the real binary: a private backup file that restores every secret and
//! version into an empty location; a wrong password or a non-empty target is refused without writing;
//! `.env` and JSON files add secrets to an existing vault.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::{Env, PASSWORD, rel_files};
use std::os::unix::fs::PermissionsExt;

/// A vault with two versions of `db/password`, a binary value and a deleted secret, exported to
/// `backup.tresor`; returns the backup's path.
fn exported(env: &Env) -> std::path::PathBuf {
    env.init();
    env.set("db/password", b"v1");
    env.set("db/password", b"v2");
    env.set("bin", b"\x00\xff\n\x00");
    env.set("old", b"gone");
    env.run_pw(&["rm", "old"], b"").ok();
    let backup = env.path("backup.tresor");
    let out = env.run_pw(&["export", "--out", backup.to_str().unwrap()], b"").ok();
    assert!(out.stderr.contains("exported to"), "{}", out.stderr);
    backup
}

/// `tresor --vault AT --password-stdin ARGS` with `password`.
fn at(env: &Env, location: &std::path::Path, password: &str, args: &[&str]) -> common::Out {
    let mut all = vec!["--vault", location.to_str().unwrap()];
    all.extend(args);
    env.run_pw_as(password, &all, b"")
}

#[test]
fn export_then_import_restores_everything() {
    let env = Env::new();
    let backup = exported(&env);
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the backup file is readable by others");
    assert!(std::fs::read(&backup).unwrap().starts_with(b"TRSRARC1"));
    assert_eq!(rel_files(env.tmp.path()).iter().filter(|f| f.contains(".tmp-")).count(), 0, "temp file left");

    let restored = env.path("restored");
    let out = at(&env, &restored, PASSWORD, &["import", backup.to_str().unwrap()]).ok();
    assert!(out.stderr.contains("restored vault"), "{}", out.stderr);
    assert_eq!(at(&env, &restored, PASSWORD, &["get", "db/password"]).ok().stdout, b"v2");
    assert_eq!(at(&env, &restored, PASSWORD, &["get", "--version", "1", "db/password"]).ok().stdout, b"v1");
    assert_eq!(at(&env, &restored, PASSWORD, &["get", "bin"]).ok().stdout, b"\x00\xff\n\x00");
    at(&env, &restored, PASSWORD, &["get", "old"]).expect(4);
    assert_eq!(at(&env, &restored, PASSWORD, &["get", "--version", "1", "old"]).ok().stdout, b"gone");
    assert_eq!(at(&env, &restored, PASSWORD, &["list"]).ok().text(), "bin\ndb/password\n");
    assert!(at(&env, &restored, PASSWORD, &["audit", "verify"]).ok().text().contains("verified"));
    // The same vault id, and the original keeps working independently.
    let id = |loc: &std::path::Path| {
        let out =
            common::run(env.cmd().args(["--vault", loc.to_str().unwrap(), "status", "--json"]), b"").ok();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["vault_id"].clone()
    };
    assert_eq!(id(&restored), id(&env.vault));
    env.set("db/password", b"v3");
    assert_eq!(at(&env, &restored, PASSWORD, &["get", "db/password"]).ok().stdout, b"v2");
}

#[test]
fn fail_import_with_the_wrong_password_or_into_a_vault() {
    let env = Env::new();
    let backup = exported(&env);

    let target = env.path("target");
    let out = at(&env, &target, "not the password", &["import", backup.to_str().unwrap()]).expect(3);
    assert!(out.stderr.contains("authentication failed"), "{}", out.stderr);
    assert!(rel_files(&target).is_empty(), "a refused import wrote {:?}", rel_files(&target));

    let before = env.vault_files();
    let out = env.run_pw(&["import", backup.to_str().unwrap()], b"").expect(8);
    assert!(out.stderr.contains("not empty"), "{}", out.stderr);
    assert_eq!(env.vault_files(), before);

    // A changed byte in the backup is refused, and writes nothing.
    let original = std::fs::read(&backup).unwrap();
    for (i, pos) in [original.len() - 1, original.len() / 2].into_iter().enumerate() {
        let mut bytes = original.clone();
        bytes[pos] ^= 1;
        let bad = env.path(&format!("bad{i}.tresor"));
        std::fs::write(&bad, bytes).unwrap();
        let target = env.path(&format!("bad-target{i}"));
        let out = at(&env, &target, PASSWORD, &["import", bad.to_str().unwrap()]);
        if pos == original.len() - 1 {
            // The archive's MAC.
            assert_eq!(out.code, 5, "{}", out.stderr);
            assert!(out.stderr.contains("archive"), "{}", out.stderr);
        } else {
            // Somewhere inside: an object (integrity) or the key file (authentication).
            assert!(out.code == 5 || out.code == 3, "exit {}: {}", out.code, out.stderr);
        }
        assert!(rel_files(&target).is_empty(), "a refused import wrote {:?}", rel_files(&target));
    }

    // A missing file is invalid input.
    at(&env, &env.path("target3"), PASSWORD, &["import", env.path("nope").to_str().unwrap()]).expect(7);
}

#[test]
fn import_env_and_json_files_into_a_vault() {
    let env = Env::new();
    env.init();
    env.set("existing", b"stays");

    let dotenv = env.path("app.env");
    let text = "# comment\nexport A=1\nB = 'two words'\nC=\"line\\nnext\"\n\nD=\n";
    std::fs::write(&dotenv, text).unwrap();
    let out = env.run_pw(&["import", dotenv.to_str().unwrap()], b"").ok();
    assert!(out.stderr.contains("imported 4 secrets\n"), "{}", out.stderr);
    assert_eq!(env.get("A"), b"1");
    assert_eq!(env.get("B"), b"two words");
    assert_eq!(env.get("C"), b"line\nnext");
    assert_eq!(env.get("D"), b"");

    let json = env.path("secrets.json");
    std::fs::write(&json, r#"{"db": {"user": "u", "port": 5432}, "k": "v", "A": "2"}"#).unwrap();
    let out = env.run_pw(&["import", json.to_str().unwrap()], b"").ok();
    // Found by review: an import over an existing name said only "imported": it says so now.
    assert!(
        out.stderr.contains("imported 4 secrets: 1 of them new versions of secrets already there"),
        "{}",
        out.stderr
    );
    assert_eq!(env.get("db/user"), b"u");
    assert_eq!(env.get("db/port"), b"5432");
    assert_eq!(env.get("k"), b"v");
    assert_eq!(env.get("A"), b"2", "an import adds a version");
    assert_eq!(env.run_pw(&["get", "--version", "1", "A"], b"").ok().stdout, b"1");
    assert_eq!(env.get("existing"), b"stays");

    // Malformed files are invalid input and add nothing.
    let bad = env.path("bad.env");
    std::fs::write(&bad, "GOOD=1\nno equals sign\n").unwrap();
    env.run_pw(&["import", bad.to_str().unwrap()], b"").expect(7);
    let bad_json = env.path("bad.json");
    std::fs::write(&bad_json, r#"{"x": null}"#).unwrap();
    env.run_pw(&["import", bad_json.to_str().unwrap()], b"").expect(7);
    std::fs::write(&bad_json, r#"{"ok": "1", "bad//path": "2"}"#).unwrap();
    env.run_pw(&["import", bad_json.to_str().unwrap()], b"").expect(7);
    env.run_pw(&["get", "GOOD"], b"").expect(4);
    env.run_pw(&["get", "ok"], b"").expect(4);

    let records: serde_json::Value =
        serde_json::from_slice(&env.run_pw(&["audit", "--json"], b"").ok().stdout).unwrap();
    let imports = records.as_array().unwrap().iter().filter(|r| r["op"] == "import" && r["outcome"] == "ok");
    assert_eq!(imports.count(), 8, "one import record per imported secret");
}

#[test]
fn regression_import_env_took_a_byte_order_mark_into_the_first_name_and_stored_an_open_quote() {
    let env = Env::new();
    env.init();
    let dotenv = env.path("bom.env");
    std::fs::write(&dotenv, "\u{feff}FIRST=1\n").unwrap();
    env.run_pw(&["import", dotenv.to_str().unwrap()], b"").ok();
    assert_eq!(env.get("FIRST"), b"1");
    let open = env.path("open.env");
    std::fs::write(&open, "A=ok\nB=\"never closed\nC=3\n").unwrap();
    let out = env.run_pw(&["import", open.to_str().unwrap()], b"").expect(7);
    assert!(out.stderr.contains("line 2") && out.stderr.contains("not closed"), "{}", out.stderr);
    assert!(!out.stderr.contains("never closed"), "the value must not show: {}", out.stderr);
    env.run_pw(&["get", "A"], b"").expect(4);
}

#[test]
fn regression_dash_was_a_file_name_not_stdout_or_stdin() {
    let env = Env::new();
    exported(&env);
    // `export --out -` writes the backup to stdout (a pipe here), and no file named `-`.
    let out =
        common::run(env.cmd().env("TRESOR_PASSWORD", PASSWORD).args(["export", "--out", "-"]), b"").ok();
    assert!(out.stdout.starts_with(b"TRSRARC1"), "{}", out.stderr);
    assert!(!env.path("-").exists());
    // `import -` reads it from stdin.
    let restored = env.path("restored");
    let mut cmd = env.cmd();
    cmd.env("TRESOR_PASSWORD", PASSWORD).args(["--vault", restored.to_str().unwrap(), "import", "-"]);
    common::run(&mut cmd, &out.stdout).ok();
    assert_eq!(at(&env, &restored, PASSWORD, &["get", "db/password"]).ok().stdout, b"v2");
    // `set --file -` reads the value from stdin.
    common::run(env.cmd().env("TRESOR_PASSWORD", PASSWORD).args(["set", "dash", "--file", "-"]), b"piped")
        .ok();
    assert_eq!(env.get("dash"), b"piped");
}

#[test]
fn regression_a_truncated_backup_blamed_the_store() {
    let env = Env::new();
    let backup = exported(&env);
    let bytes = std::fs::read(&backup).unwrap();
    let cut = env.path("cut.tresor");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let restored = env.path("restored");
    let out = at(&env, &restored, PASSWORD, &["import", cut.to_str().unwrap()]).expect(5);
    assert!(out.stderr.contains("archive file: is truncated"), "{}", out.stderr);
    assert!(out.stderr.contains("the backup file is damaged or incomplete"), "{}", out.stderr);
    assert!(!out.stderr.contains("store was changed"), "{}", out.stderr);
    assert!(common::files_under(&restored).is_empty(), "a refused restore wrote into the location");
}

#[test]
fn regression_init_on_a_regular_file_said_no_vault_and_suggested_init() {
    let env = Env::new();
    let file = env.path("plain-file");
    std::fs::write(&file, "not a vault").unwrap();
    let out = at(&env, &file, PASSWORD, &["init", "--kdf-memory", "19456", "--kdf-time", "2"]).expect(7);
    assert!(out.stderr.contains("is not a directory"), "{}", out.stderr);
    assert!(!out.stderr.contains("tresor init"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a vault");
}

#[test]
fn plaintext_exports_are_marked_private_and_import_back_under_a_prefix() {
    let env = Env::new();
    env.init();
    env.set("db/password", b"it's \"quoted\"\nand $HOME");
    env.set("db/user", b"admin");
    env.set("web/token", b"t0k3n");
    let pw = |args: &[&str]| common::run(env.cmd().env("TRESOR_PASSWORD", PASSWORD).args(args), b"");
    let out = pw(&["export", "--format", "env", "--out", "plain.env"]).ok();
    assert!(out.stderr.contains("wrote 3 secrets in PLAINTEXT to plain.env"), "{}", out.stderr);
    let file = env.path("plain.env");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(&file).unwrap().starts_with("# PLAINTEXT"));
    // Never over an existing file.
    pw(&["export", "--format", "json", "--out", "plain.env"]).expect(7);
    pw(&["import", "--prefix", "copy", "plain.env"]).ok();
    assert_eq!(env.get("copy/DB_PASSWORD"), b"it's \"quoted\"\nand $HOME");
    assert_eq!(env.get("copy/WEB_TOKEN"), b"t0k3n");
    // JSON keeps the paths (under --prefix: relative to it).
    let out = pw(&["export", "--format", "json", "--prefix", "db", "--out", "-"]).ok();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json, serde_json::json!({"password": "it's \"quoted\"\nand $HOME", "user": "admin"}));
    std::fs::write(env.path("db.json"), &out.stdout).unwrap();
    pw(&["import", "--prefix", "restored/db", "db.json"]).ok();
    assert_eq!(env.get("restored/db/user"), b"admin");
}

/// Found by review: the agent protocol took frames of at most 64 MiB (one value's limit), so an
/// import past that (it reads up to 1 GiB) failed through the agent with "message too large", and
/// so did the backup of a vault whose audit trail had grown: both worked only with `--no-agent`.
#[test]
fn regression_an_import_or_a_backup_past_64_mib_failed_through_the_agent() {
    let env = Env::new();
    env.init();
    let file = env.password_file(common::PASSWORD);
    let _guard = env.agent_guard();
    common::run(env.cmd().env("TRESOR_PASSWORD_FILE", &file).arg("unlock"), b"").ok();
    // 17,000 lines of 4 KiB: 68 MiB.
    let value = "x".repeat(4096);
    let text: String = (0..17_000).map(|n| format!("K{n}={value}\n")).collect();
    assert!(text.len() > 64 << 20);
    let dotenv = env.path("big.env");
    std::fs::write(&dotenv, &text).unwrap();
    let out = env.run(&["import", "--prefix", "big", dotenv.to_str().unwrap()], b"").ok();
    assert!(out.stderr.contains("imported 17000 secrets"), "{}", out.stderr);
    assert_eq!(env.run(&["get", "big/K16999"], b"").ok().stdout, value.as_bytes());
    // And its backup, through the agent too.
    let backup = env.path("big.tresor");
    let out = env.run(&["export", "--out", backup.to_str().unwrap()], b"").ok();
    assert!(out.stderr.contains("exported to"), "{}", out.stderr);
}

/// Found by review: `import` refused a `.env` file naming a variable twice, but took the last of
/// two equal keys in a JSON object silently, and `run --env-file` (documented as reading `.env`
/// files as `import` does) took the last of two variables. All three refuse now (exit 7), and
/// nothing is imported or run.
#[test]
fn regression_a_name_given_twice_was_refused_by_one_reader_and_taken_by_the_others() {
    let env = Env::new();
    env.init();
    let dup_env = env.path("dup.env");
    std::fs::write(&dup_env, "A=1\nA=2\n").unwrap();
    let out = env.run_pw(&["import", dup_env.to_str().unwrap()], b"").expect(7);
    assert!(out.stderr.contains("twice"), "{}", out.stderr);
    let marker = env.path("ran");
    let touch = format!("touch {}", marker.display());
    let out = env
        .run_pw(&["run", "--env-file", dup_env.to_str().unwrap(), "--", "sh", "-c", &touch], b"")
        .expect(7);
    assert!(out.stderr.contains("A appears twice"), "{}", out.stderr);
    assert!(!marker.exists(), "the program ran");
    for json in [r#"{"a": "1", "a": "2"}"#, r#"{"db": {"user": "u", "user": "v"}}"#] {
        let file = env.path("dup.json");
        std::fs::write(&file, json).unwrap();
        let out = env.run_pw(&["import", "--prefix", "j", file.to_str().unwrap()], b"").expect(7);
        assert!(out.stderr.contains("appears twice"), "{json}: {}", out.stderr);
    }
    assert!(env.run_pw(&["list"], b"").ok().text().trim().is_empty(), "something was imported");
    // One of each is still fine.
    std::fs::write(env.path("ok.json"), r#"{"a": "1", "db": {"user": "u", "port": 5432}}"#).unwrap();
    env.run_pw(&["import", "--prefix", "j", env.path("ok.json").to_str().unwrap()], b"").ok();
    assert_eq!(env.get("j/a"), b"1");
    assert_eq!(env.get("j/db/user"), b"u");
    assert_eq!(env.get("j/db/port"), b"5432");
}
