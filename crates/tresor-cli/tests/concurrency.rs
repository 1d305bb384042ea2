//! Concurrent writers through the real binary: two processes, each running 100 `tresor set` commands
//! of its own (no agent, each command unlocking with `TRESOR_PASSWORD_FILE`), started together. Every
//! one of the 200 secrets must be there afterwards with its value, each exactly once (version 1),
//! and the audit trail and commit log must verify.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

mod common;

use common::{Env, PASSWORD, bin, run};
use serde_json::Value;

const PER_WRITER: usize = 100;

/// Sets `<prefix>/<i>` = `value-<prefix>-<i>` for i in 1..=100, stopping at the first failure.
const SCRIPT: &str = r#"
for i in $(seq 1 "$COUNT"); do
    printf 'value-%s-%s' "$PREFIX" "$i" | "$TRESOR_BIN" set "$PREFIX/$i" 2>>"$LOG" \
        || { code=$?; echo "set $PREFIX/$i failed with exit $code" >&2; exit 1; }
done
"#;

#[test]
fn t15_cli_two_processes_setting_100_secrets_each() {
    let env = Env::new();
    env.init();
    let password_file = env.password_file(PASSWORD);
    let writers = ["alpha", "bravo"];
    let children: Vec<_> = writers
        .iter()
        .map(|prefix| {
            env.std_cmd("bash")
                .args(["-c", SCRIPT])
                .env("TRESOR_BIN", bin())
                .env("TRESOR_PASSWORD_FILE", &password_file)
                .env("PREFIX", prefix)
                .env("COUNT", PER_WRITER.to_string())
                .env("LOG", env.path(&format!("{prefix}.log")))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (prefix, child) in writers.iter().zip(children) {
        let out = child.wait_with_output().unwrap();
        let log = std::fs::read_to_string(env.path(&format!("{prefix}.log"))).unwrap_or_default();
        assert!(
            out.status.success(),
            "writer {prefix}: {}\nlast messages: {}",
            String::from_utf8_lossy(&out.stderr),
            log.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
        );
    }

    // Read everything back through an agent (one unlock instead of 200).
    let _guard = env.agent_guard();
    run(env.cmd().env("TRESOR_PASSWORD_FILE", &password_file).arg("unlock"), b"").ok();
    let listed: Value = serde_json::from_slice(&env.run(&["list", "--json"], b"").ok().stdout).unwrap();
    let listed = listed.as_array().unwrap();
    let mut present = 0;
    for prefix in writers {
        for i in 1..=PER_WRITER {
            let path = format!("{prefix}/{i}");
            let entry = listed.iter().find(|e| e["path"] == path.as_str());
            let value = env.run(&["get", &path], b"");
            if entry.is_some_and(|e| e["version"] == 1)
                && value.code == 0
                && value.stdout == format!("value-{prefix}-{i}").as_bytes()
            {
                present += 1;
            }
        }
    }
    let total = writers.len() * PER_WRITER;
    println!("T15-cli: 2 processes x {PER_WRITER} sets: {present}/{total} present");
    assert_eq!(present, total);
    assert_eq!(listed.len(), total, "unexpected secrets listed");

    let out = env.run(&["audit", "verify"], b"").ok();
    assert!(out.text().contains("verified"), "{}", out.text());
    let audit: Value = serde_json::from_slice(&env.run(&["audit", "--json"], b"").ok().stdout).unwrap();
    let writers_in_order: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["op"] == "set" && r["outcome"] == "ok")
        .map(|r| r["path"].as_str().unwrap().split('/').next().unwrap())
        .collect();
    assert_eq!(writers_in_order.len(), total, "one audit record per set");
    let switches = writers_in_order.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(switches > 10, "the writers barely overlapped ({switches} switches): the test proves little");
}
