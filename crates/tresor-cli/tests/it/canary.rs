//! Canary sweep through the real binary (T19): unique random strings serve as passwords, secret
//! names and values; the whole command set runs over them, error paths and the agent included. Then
//! no canary may appear in any file (content or name) under the vault, trust-state or runtime
//! directories or in the export archive, nor in the agent's `/proc` command line or environment.
//! Passwords and values may never appear in any command's stderr (nor passwords in stdout); a secret
//! name may appear in stderr only of a command that was itself given that name as an argument.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::{Env, KDF, Out, files_under, random_hex, run, wait_for};
use std::time::Duration;

fn canary() -> String {
    format!("canary{}", random_hex(12))
}

/// One command run: its arguments and what it printed.
struct Rec {
    args: Vec<String>,
    out: Out,
}

/// Records every command's output for the sweep.
struct Log<'a> {
    env: &'a Env,
    recs: Vec<Rec>,
}

impl Log<'_> {
    /// `tresor --password-stdin ARGS` with `password`, expecting exit `code`.
    fn pw(&mut self, password: &str, args: &[&str], rest: &[u8], code: i32) -> &Out {
        let out = self.env.run_pw_as(password, args, rest);
        self.push(args, out, code)
    }

    /// `tresor ARGS` (no password), expecting exit `code`.
    fn plain(&mut self, args: &[&str], stdin: &[u8], code: i32) -> &Out {
        let out = self.env.run(args, stdin);
        self.push(args, out, code)
    }

    fn push(&mut self, args: &[&str], out: Out, code: i32) -> &Out {
        assert_eq!(out.code, code, "`tresor {}`: {}", args.join(" "), out.stderr);
        self.recs.push(Rec { args: args.iter().map(|a| a.to_string()).collect(), out });
        &self.recs.last().unwrap().out
    }
}

/// Occurrences of any of `canaries` in `haystack`, with where they were found.
fn hits(haystack: &[u8], canaries: &[String], artifact: &str, found: &mut Vec<String>) {
    for c in canaries {
        if haystack.windows(c.len()).any(|w| w == c.as_bytes()) {
            found.push(format!("{c} in {artifact}"));
        }
    }
}

#[test]
fn t19_cli_canary_sweep() {
    let env = Env::new();
    let (password, new_password, wrong) = (canary(), canary(), canary());
    let names: Vec<String> = (0..8).map(|_| canary()).collect();
    let values: Vec<String> = (0..8).map(|_| canary()).collect();
    let nested = format!("{}/{}", names[3], names[4]);
    let mut log = Log { env: &env, recs: Vec::new() };

    log.pw(&password, &[&["init"], &KDF[..]].concat(), b"", 0);
    log.pw(&password, &["set", &names[0]], values[0].as_bytes(), 0);
    let value_file = env.path("value-input");
    std::fs::write(&value_file, format!("\x00{}\n", values[1])).unwrap();
    log.pw(&password, &["set", &names[1], "--file", value_file.to_str().unwrap()], b"", 0);
    log.pw(&password, &["set", &names[2], &values[2]], b"", 0);
    log.pw(&password, &["set", &nested], values[3].as_bytes(), 0);
    assert_eq!(log.pw(&password, &["get", &names[0]], b"", 0).stdout, values[0].as_bytes());
    log.pw(&password, &["get", &names[1]], b"", 0);
    log.pw(&password, &["get", &nested], b"", 0);
    log.pw(&password, &["set", &names[0]], values[4].as_bytes(), 0);
    assert_eq!(log.pw(&password, &["get", "--version", "1", &names[0]], b"", 0).stdout, values[0].as_bytes());
    log.pw(&password, &["list"], b"", 0);
    log.pw(&password, &["list", "-l", "--json"], b"", 0);
    log.pw(&password, &["list", &names[3]], b"", 0);
    log.pw(&password, &["history", &names[0]], b"", 0);
    log.pw(&password, &["rm", &names[2]], b"", 0);

    // Error paths.
    log.pw(&password, &["get", &names[2]], b"", 4);
    log.pw(&password, &["get", &names[5]], b"", 4);
    log.pw(&password, &["get", "--version", "9", &names[0]], b"", 4);
    log.pw(&password, &["set", &format!("{}//x", names[6])], values[5].as_bytes(), 7);
    log.pw(&password, &["set", &format!("/{}", names[6]), &values[5]], b"", 7);
    log.pw(&wrong, &["get", &names[0]], b"", 3);
    log.pw(&wrong, &["set", &names[6]], values[6].as_bytes(), 3);
    log.pw(&password, &["get", &names[0]], b"", 0);
    let dotenv = env.path("input.env");
    std::fs::write(&dotenv, format!("{}={}\n", names[7], values[7])).unwrap();
    log.pw(&password, &["import", dotenv.to_str().unwrap()], b"", 0);
    log.plain(&["status"], b"", 0);
    log.plain(&["status", "--json"], b"", 0);
    log.pw(&password, &["audit"], b"", 0);
    log.pw(&password, &["audit", "--json"], b"", 0);
    log.pw(&password, &["audit", "verify"], b"", 0);
    let archive = env.path("backup.tresor");
    log.pw(&password, &["export", "--out", archive.to_str().unwrap()], b"", 0);
    let input = format!("{password}\n{new_password}\n");
    let out = env
        .run(&[&["--password-stdin", "passwd", "--new-password-stdin"], &KDF[..]].concat(), input.as_bytes());
    log.push(&["passwd"], out, 0);
    log.pw(&password, &["get", &names[0]], b"", 3);

    // The agent, unlocked from the least safe source: TRESOR_PASSWORD, which it must not keep.
    let mut proc_artifacts: Vec<(String, Vec<u8>)> = Vec::new();
    {
        let _guard = env.agent_guard();
        let out = run(env.cmd().env("TRESOR_PASSWORD", &wrong).arg("unlock"), b"");
        log.push(&["unlock"], out, 3);
        let out = run(env.cmd().env("TRESOR_PASSWORD", &new_password).arg("unlock"), b"");
        log.push(&["unlock"], out, 0);
        let pids = env.agent_pids();
        assert_eq!(pids.len(), 1);
        let pid = pids[0];
        assert_eq!(log.plain(&["get", &names[0]], b"", 0).stdout, values[4].as_bytes());
        log.plain(&["set", &names[5]], values[5].as_bytes(), 0);
        log.plain(&["get", &names[6]], b"", 4);
        log.plain(&["get", &format!("{}/../x", names[6])], b"", 7);
        log.plain(&["list", "-l"], b"", 0);
        log.plain(&["history", &nested], b"", 0);
        log.plain(&["status"], b"", 0);
        log.plain(&["audit", "verify"], b"", 0);
        for what in ["cmdline", "environ"] {
            let bytes = std::fs::read(format!("/proc/{pid}/{what}")).unwrap();
            assert!(!bytes.is_empty(), "/proc/{pid}/{what} is empty");
            proc_artifacts.push((format!("/proc/<agent>/{what}"), bytes));
        }
        let environ = &proc_artifacts[1].1;
        assert!(
            !environ.split(|&b| b == 0).any(|v| v.starts_with(b"TRESOR_PASSWORD=")),
            "the agent kept TRESOR_PASSWORD in its environment"
        );
        log.plain(&["lock"], b"", 0);
        assert!(wait_for(Duration::from_secs(5), || env.agent_pids().is_empty()));
    }
    log.pw(&new_password, &["get", &names[5]], b"", 0);

    // The sweep.
    let passwords = [password.clone(), new_password.clone(), wrong.clone()];
    let mut name_canaries = names.clone();
    name_canaries.push(nested.clone());
    let all: Vec<String> = passwords.iter().chain(&names).chain(&values).cloned().collect();
    let never_in_stderr: Vec<String> = passwords.iter().chain(&values).cloned().collect();
    let mut found = Vec::new();
    let mut artifacts = 0;
    let mut swept_files = 0;
    for dir in [&env.vault, &env.state, &env.run] {
        for file in files_under(dir) {
            let name = file.strip_prefix(env.tmp.path()).unwrap().display().to_string();
            hits(name.as_bytes(), &all, &format!("file name {name}"), &mut found);
            hits(&std::fs::read(&file).unwrap(), &all, &name, &mut found);
            artifacts += 2;
            swept_files += 1;
        }
    }
    assert!(swept_files > 40, "only {swept_files} files swept: the sweep looked in the wrong places");
    hits(&std::fs::read(&archive).unwrap(), &all, "the export archive", &mut found);
    artifacts += 1;
    for (what, bytes) in &proc_artifacts {
        hits(bytes, &all, what, &mut found);
        artifacts += 1;
    }
    for rec in &log.recs {
        let cmd = format!("`tresor {}`", rec.args.join(" "));
        hits(rec.out.stderr.as_bytes(), &never_in_stderr, &format!("stderr of {cmd}"), &mut found);
        let foreign: Vec<String> = name_canaries
            .iter()
            .filter(|n| !rec.args.iter().any(|a| a.contains(n.as_str())))
            .cloned()
            .collect();
        hits(rec.out.stderr.as_bytes(), &foreign, &format!("stderr of {cmd}"), &mut found);
        hits(&rec.out.stdout, &passwords, &format!("stdout of {cmd}"), &mut found);
        artifacts += 2;
    }
    // The sweep can see a canary where one is: a name the user asked about is echoed in errors.
    assert!(
        log.recs.iter().any(|r| r.out.stderr.contains(&names[5])),
        "the sweep cannot see names in stderr"
    );

    println!("T19-cli: canary hits {} across {artifacts} artifacts", found.len());
    assert!(found.is_empty(), "canaries leaked:\n{}", found.join("\n"));
}
