//! Usage errors and missing vaults: every subcommand that needs an argument prints its usage when run
//! bare; no subcommand is a usage error; commands on a location without a vault exit 8 naming the
//! location and `tresor init`; `init` refuses rule-breaking passwords before touching the location,
//! and refuses a location that already holds a vault.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::{Env, KDF, PASSWORD, run};

#[test]
fn fail_bare_subcommands_print_usage() {
    let env = Env::new();
    for sub in ["set", "get", "rm", "delete", "history", "export", "import", "completions"] {
        let out = env.run(&[sub], b"");
        assert_ne!(out.code, 0, "`tresor {sub}` succeeded");
        assert!(out.stderr.contains("Usage"), "`tresor {sub}`: no usage on stderr: {}", out.stderr);
        assert!(out.stdout.is_empty(), "`tresor {sub}` printed to stdout");
    }
    // Nothing was created by any of them.
    assert!(!env.vault.exists());
}

#[test]
fn fail_no_subcommand_or_unknown_one_is_a_usage_error() {
    let env = Env::new();
    let out = env.run(&[], b"").expect(2);
    assert!(out.stderr.contains("Usage"), "{}", out.stderr);
    let out = env.run(&["frobnicate"], b"").expect(2);
    assert!(out.stderr.contains("Usage"), "{}", out.stderr);
    env.run(&["get", "a", "--version", "first"], b"").expect(2);
    env.run(&["completions", "tcsh"], b"").expect(2);
}

#[test]
fn help_version_and_completions_work() {
    let env = Env::new();
    let out = env.run(&["--help"], b"").ok();
    assert!(out.text().contains("Exit codes"), "{}", out.text());
    assert!(env.run(&["--version"], b"").ok().text().starts_with("tresor "));
    for shell in ["bash", "zsh", "fish"] {
        let out = env.run(&["completions", shell], b"").ok();
        assert!(out.text().contains("tresor") && out.text().contains("unlock"), "{shell}");
    }
    // Regression (issue 15): the global options were listed on commands that ignore them. They
    // are listed where a vault is used, and still accepted (and ignored) elsewhere.
    for command in ["verify", "mnemonic", "login", "logout", "completions", "man"] {
        let help = env.run(&[command, "--help"], b"").ok().text();
        assert!(!help.contains("--vault") && !help.contains("--no-agent"), "{command}: {help}");
    }
    assert!(env.run(&["get", "--help"], b"").ok().text().contains("--vault"));
    let out = run(env.cmd().env("TRESOR_VAULT", "/nowhere").args(["mnemonic", "generate"]), b"").ok();
    assert_eq!(out.text().split_whitespace().count(), 24);
    env.run(&["--vault", "/nowhere", "man"], b"").ok();
}

/// Runs `args` with a password in `TRESOR_PASSWORD_FILE` and checks the "no vault" error.
fn assert_no_vault(env: &Env, location: &str, args: &[&str], password: bool) {
    let mut cmd = env.cmd();
    if password {
        cmd.env("TRESOR_PASSWORD_FILE", env.password_file(PASSWORD));
    }
    let out = run(cmd.args(args), b"");
    assert_eq!(out.code, 8, "`tresor {}` at {location}: {}", args.join(" "), out.stderr);
    assert!(out.stderr.contains(location), "`tresor {}`: location not named: {}", args.join(" "), out.stderr);
    assert!(out.stderr.contains("tresor init"), "`tresor {}`: no hint: {}", args.join(" "), out.stderr);
}

const NEED_A_VAULT: [&[&str]; 7] = [
    &["list"],
    &["status"],
    &["get", "x"],
    &["audit"],
    &["audit", "verify"],
    &["history", "x"],
    &["rm", "x"],
];

#[test]
fn fail_commands_on_an_empty_location_exit_8() {
    let env = Env::new();
    // A location that does not exist, then one that exists but is empty.
    for args in NEED_A_VAULT {
        assert_no_vault(&env, env.vault.to_str().unwrap(), args, true);
    }
    assert!(!env.vault.exists(), "a read-only command created the location");
    std::fs::create_dir(&env.vault).unwrap();
    for args in NEED_A_VAULT {
        assert_no_vault(&env, env.vault.to_str().unwrap(), args, true);
    }
    // `lock` with nothing to lock is fine.
    let out = env.run(&["lock"], b"").ok();
    assert!(out.stderr.contains("nothing to lock"), "{}", out.stderr);
}

/// Without any password source the answer must still be "no vault here", not "no password given":
/// asking for the password of a vault that does not exist helps no one.
#[test]
fn fail_commands_on_an_empty_location_exit_8_without_a_password() {
    let env = Env::new();
    for args in NEED_A_VAULT {
        assert_no_vault(&env, env.vault.to_str().unwrap(), args, false);
    }
}

#[test]
fn fail_init_refuses_rule_breaking_passwords_before_touching_the_location() {
    let env = Env::new();
    for bad in ["CHANGEME", "short", ""] {
        let out = env.run_pw_as(bad, &[&["init"], &KDF[..]].concat(), b"").expect(7);
        assert!(out.stderr.contains("password rejected"), "{bad:?}: {}", out.stderr);
        assert!(out.stdout.is_empty());
        assert!(!env.vault.exists(), "{bad:?}: the location was created");
    }
    // Same when the location exists: it stays empty.
    std::fs::create_dir(&env.vault).unwrap();
    env.run_pw_as("CHANGEME", &[&["init"], &KDF[..]].concat(), b"").expect(7);
    assert_eq!(std::fs::read_dir(&env.vault).unwrap().count(), 0);
    // KDF parameters below the floor are refused too.
    env.run_pw(&["init", "--kdf-memory", "1024", "--kdf-time", "1"], b"").expect(7);
    assert_eq!(std::fs::read_dir(&env.vault).unwrap().count(), 0);
    // No password at all (no terminal, no stdin, no environment) is refused without creating anything.
    let out = env.run(&[&["init"], &KDF[..]].concat(), b"");
    assert_ne!(out.code, 0);
    assert_eq!(std::fs::read_dir(&env.vault).unwrap().count(), 0);
}

#[test]
fn fail_init_refuses_a_location_that_holds_a_vault() {
    let env = Env::new();
    let id = env.init();
    let before = env.vault_files();
    let out = env.run_pw(&[&["init"], &KDF[..]].concat(), b"").expect(8);
    assert!(out.stderr.contains("not empty"), "{}", out.stderr);
    assert_eq!(env.vault_files(), before);
    // The original vault is untouched.
    let status = env.run(&["status"], b"").ok().text();
    assert!(status.contains(&id), "{status}");
    // Foreign data is not overwritten either.
    let other = env.path("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), b"mine").unwrap();
    env.run_pw(&[&["--vault", other.to_str().unwrap(), "init"], &KDF[..]].concat(), b"").expect(8);
    assert_eq!(common::rel_files(&other), ["notes.txt"]);
}
