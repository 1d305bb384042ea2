//! What the store sees (T22, and the table in SECURITY.md): after a normal session through the real
//! binary, the vault directory holds only the six documented prefixes, and every object name has
//! the documented shape (sequence numbers, generations, epochs and random ids, never a secret's
//! name); SECURITY.md documents each prefix in its table.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::{Env, KDF, PASSWORD, run};

/// The documented prefixes and the shape of the names under each: `d` a decimal digit, `h` a
/// lowercase hex digit, `/` a separator.
const SHAPES: [(&str, &str); 6] = [
    ("keyfile", "dddddddddddddddddddd"),
    ("log", "dddddddddddddddddddd"),
    ("audit", "dddddddddddddddddddd"),
    ("epoch", "dddddddddd"),
    ("blob", "dddddddddd/hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh"),
    ("snap", "dddddddddddddddddddd-ddddd-ddddd"),
];

/// Whether `rest` has exactly the shape `shape`.
fn fits(rest: &str, shape: &str) -> bool {
    rest.len() == shape.len()
        && rest.bytes().zip(shape.bytes()).all(|(c, s)| match s {
            b'd' => c.is_ascii_digit(),
            b'h' => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
            _ => c == s,
        })
}

/// A session touching every kind of object: values, versions, deletes, an import, a password
/// change, a failed unlock, the agent, a `gc` (which snapshots the index).
fn session(env: &Env) {
    env.init();
    env.set("db/password", b"one");
    env.set("db/password", b"two");
    env.set("api/token", b"tok");
    env.run_pw(&["rm", "api/token"], b"").ok();
    env.run_pw_as("not the password", &["get", "db/password"], b"").expect(3);
    env.run_pw(&["get", "nothing/here"], b"").expect(4);
    let dotenv = env.path("in.env");
    std::fs::write(&dotenv, "A=1\nB=2\n").unwrap();
    env.run_pw(&["import", dotenv.to_str().unwrap()], b"").ok();
    let new = "the second password";
    let input = format!("{PASSWORD}\n{new}\n");
    env.run(&[&["--password-stdin", "passwd", "--new-password-stdin"], &KDF[..]].concat(), input.as_bytes())
        .ok();
    {
        let _guard = env.agent_guard();
        run(env.cmd().env("TRESOR_PASSWORD", new).arg("unlock"), b"").ok();
        env.run(&["set", "via/agent"], b"x").ok();
        env.run(&["audit", "verify"], b"").ok();
        env.run(&["gc"], b"").ok();
        env.run(&["lock"], b"").ok();
    }
    env.run_pw_as(new, &["export", "--out", env.path("b.tresor").to_str().unwrap()], b"").ok();
}

#[test]
fn t22_object_names_have_the_documented_shapes() {
    let env = Env::new();
    session(&env);
    let files = env.vault_files();
    let mut per_prefix = [0usize; 6];
    for name in &files {
        let matched = SHAPES.iter().position(|(prefix, shape)| {
            name.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')).is_some_and(|rest| fits(rest, shape))
        });
        match matched {
            Some(i) => per_prefix[i] += 1,
            None => panic!("object {name:?} has no documented shape"),
        }
    }
    // Every prefix is in use, and nothing a user named shows up in an object name (words with a
    // character outside the hex alphabet, which random ids could not spell by chance).
    assert!(per_prefix.iter().all(|&n| n > 0), "{per_prefix:?}");
    assert_eq!(per_prefix[0], 1, "one key file after a password change");
    for word in ["db/", "password", "api", "token", "via", "agent"] {
        assert!(!files.iter().any(|f| f.contains(word)), "{word:?} in an object name");
    }
    println!(
        "T22-cli: {} objects, all of documented shape: keyfile {}, log {}, audit {}, epoch {}, blob {}, snap {}",
        files.len(),
        per_prefix[0],
        per_prefix[1],
        per_prefix[2],
        per_prefix[3],
        per_prefix[4],
        per_prefix[5]
    );
}

#[test]
fn no_directories_besides_the_documented_prefixes() {
    let env = Env::new();
    session(&env);
    let mut top: Vec<String> = std::fs::read_dir(&env.vault)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().to_string())
        .collect();
    top.sort();
    assert_eq!(
        top,
        ["audit", "blob", "epoch", "keyfile", "log", "snap"],
        "top-level entries of the vault directory"
    );
    // And no empty directories below them either.
    for (prefix, _) in SHAPES {
        for e in std::fs::read_dir(env.vault.join(prefix)).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                assert!(std::fs::read_dir(&p).unwrap().next().is_some(), "empty directory {}", p.display());
            }
        }
    }
}

#[test]
fn security_md_documents_every_prefix() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../SECURITY.md");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    for (prefix, _) in SHAPES {
        let row = format!("| `{prefix}/");
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(&row)),
            "SECURITY.md has no table row starting with {row:?}"
        );
    }
}
