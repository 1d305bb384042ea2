//! `tresor share koi` against a KOI-net node written in Python with the `cryptography` package:
//! the folder's changes opened by the node, the node's operations written into the folder and
//! audited under its id, and replayed, tampered, foreign and out-of-folder messages refused with
//! nothing of them written. Runs when `TRESOR_TEST_PYTHON` names a Python with `cryptography`
//! (`.ci/run` sets it); required when `TRESOR_REQUIRE_CLIENTS` is set.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common::{Env, Out};
use std::io::Write;
use std::process::{Command, Stdio};

const NODE: &str = "orn:koi-net.node:python+5b2c";

/// The Python node: `args`, with `input` on stdin; its stdout.
fn node(python: &std::ffi::OsStr, args: &[&str], input: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/koi_node.py");
    let mut child = Command::new(python)
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the node failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn receive(env: &Env, lines: &str) -> Out {
    env.run_pw(&["share", "koi", "receive", "team", "--peer", NODE], lines.as_bytes())
}

#[test]
fn a_python_koi_node_and_tresor_exchange_changes_and_forgeries_are_refused() {
    let Some(python) = std::env::var_os("TRESOR_TEST_PYTHON") else {
        assert!(std::env::var_os("TRESOR_REQUIRE_CLIENTS").is_none(), "TRESOR_TEST_PYTHON is not set");
        eprintln!("skipped: TRESOR_TEST_PYTHON is not set (bash .ci/run sets it)");
        return;
    };
    let env = Env::new();
    env.init();
    env.set("team/db", b"s3cr3t");
    env.set("team/bin", &[0xff, 0x00, 0x01]);
    env.set("private/own", b"not shared");
    let keys = node(&python, &["keygen"], "");
    let (private, public) = keys.trim().split_once(' ').unwrap();

    // Off unless configured: no peer, nothing to send to.
    let none = env.run_pw(&["share", "koi", "send", "team", "--peer", NODE], b"").expect(4);
    assert!(none.stderr.contains("no KOI peer"), "{}", none.stderr);
    let bad = env.run_pw(&["share", "koi", "add", "team", "--peer", NODE, "--key", "abcd"], b"").expect(7);
    assert!(bad.stderr.contains("64 hex digits"), "{}", bad.stderr);
    let small_order = "00".repeat(32);
    env.run_pw(&["share", "koi", "add", "team", "--peer", NODE, "--key", &small_order], b"").expect(7);
    let added = env.run_pw(&["share", "koi", "add", "team", "--peer", NODE, "--key", public], b"").ok();
    let tresor_public = added.text().trim().to_string();
    assert_eq!(tresor_public.len(), 64, "{}", added.text());
    env.run_pw(&["share", "koi", "add", "team", "--peer", NODE, "--key", public], b"").expect(7);

    // tresor → the node: the folder's secrets, nothing outside it, each once.
    let sent = env.run_pw(&["share", "koi", "send", "team", "--peer", NODE], b"").ok();
    assert_eq!(sent.text().lines().count(), 2, "{}", sent.stderr);
    let opened = node(&python, &["open", private, &tresor_public, NODE], &sent.text());
    let ops: Vec<serde_json::Value> = opened.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let from = &tresor_public;
    assert_eq!(
        ops[0],
        serde_json::json!({"op": "put", "path": "bin", "value_base64": "/wAB", "counter": 1, "from": from})
    );
    assert_eq!(
        ops[1],
        serde_json::json!({"op": "put", "path": "db", "value": "s3cr3t", "counter": 2, "from": from})
    );
    let again = env.run_pw(&["share", "koi", "send", "team", "--peer", NODE], b"").ok();
    assert!(again.text().is_empty(), "sent twice: {}", again.stderr);
    // One key serves both ways: tresor's own messages fed back to it are refused (regression:
    // they opened, and rolled values back as the node's).
    let reflected = receive(&env, &sent.text()).expect(5);
    assert_eq!(reflected.stderr.matches("fed back to it").count(), 2, "{}", reflected.stderr);
    // Messages lost on the way: --all seals every secret again, under new counters.
    let all = env.run_pw(&["share", "koi", "send", "team", "--peer", NODE, "--all"], b"").ok();
    let resent = node(&python, &["open", private, &tresor_public, NODE], &all.text());
    let counters: Vec<u64> = resent
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["counter"].as_u64().unwrap())
        .collect();
    assert_eq!(counters, [3, 4]);

    // The node → tresor: a put and a delete, audited under the node's id.
    let ops = [
        r#"{"op": "put", "path": "api", "value": "from-koi", "counter": 1, "node": "extra fields are ignored"}"#,
        r#"{"op": "delete", "path": "bin", "counter": 2}"#,
    ];
    let sealed = node(&python, &["seal", private, &tresor_public, NODE], &ops.join("\n"));
    let taken = receive(&env, &sealed).ok();
    assert!(taken.stderr.contains("team/: 2 changes from"), "{}", taken.stderr);
    assert_eq!(env.get("team/api"), b"from-koi");
    env.run_pw(&["get", "team/bin"], b"").expect(4);
    let audit = env.run_pw(&["audit", "--path", "team/api"], b"").ok().text();
    assert!(audit.contains(&format!("koi {NODE}")), "{audit}");
    // What came from the node is not sent back; the deletion is not either.
    let back = env.run_pw(&["share", "koi", "send", "team", "--peer", NODE], b"").ok();
    assert!(back.text().is_empty(), "echoed: {}", back.stderr);

    // Replayed: refused, nothing written (the value written since stays).
    env.set("team/api", b"newer-here");
    let replayed = receive(&env, &sealed).expect(5);
    assert!(replayed.stderr.contains("replayed, or moved back"), "{}", replayed.stderr);
    assert_eq!(env.get("team/api"), b"newer-here");
    // Tampered, sealed by another key, not base64, outside the folder: each refused, and a good
    // message beside them is still taken in.
    let mut tampered = base64ct_decode(sealed.lines().next().unwrap());
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let other_keys = node(&python, &["keygen"], "");
    let (other_private, _) = other_keys.trim().split_once(' ').unwrap();
    let foreign = node(
        &python,
        &["seal", other_private, &tresor_public, NODE],
        r#"{"op":"put","path":"x","value":"y","counter":9}"#,
    );
    let escaping = node(
        &python,
        &["seal", private, &tresor_public, NODE],
        &[
            r#"{"op":"put","path":"../private/own","value":"taken","counter":3}"#,
            r#"{"op":"put","path":"ok","value":"fine","counter":4}"#,
        ]
        .join("\n"),
    );
    let input = format!("{}\n{}not base64!\n{escaping}", base64ct_encode(&tampered), foreign);
    let refused = receive(&env, &input).expect(5);
    assert_eq!(refused.stderr.matches("tresor: warning: line").count(), 4, "{}", refused.stderr);
    assert!(refused.stderr.contains("does not open"), "{}", refused.stderr);
    assert!(refused.stderr.contains("path the folder's rules refuse"), "{}", refused.stderr);
    assert_eq!(env.get("team/ok"), b"fine");
    assert_eq!(env.get("private/own"), b"not shared");
    env.run_pw(&["get", "team/x"], b"").expect(4);

    let list: serde_json::Value =
        serde_json::from_slice(&env.run_pw(&["share", "koi", "list", "--json"], b"").ok().stdout).unwrap();
    assert_eq!((list[0]["peer_id"].as_str(), list[0]["received"].as_u64()), (Some(NODE), Some(4)));
    assert_eq!(list[0]["public_key"].as_str(), Some(tresor_public.as_str()));
    // Through the unlocked agent: no password asked.
    {
        let _agent = env.agent_guard();
        crate::share::unlock(&env, "0", &[]);
        env.run(&["set", "team/agent"], b"via-agent").ok();
        let sent = env.run(&["share", "koi", "send", "team", "--peer", NODE], b"").ok();
        let opened = node(&python, &["open", private, &tresor_public, NODE], &sent.text());
        let ops: Vec<serde_json::Value> = opened.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert!(ops.iter().any(|op| op["path"] == "agent" && op["value"] == "via-agent"), "{opened}");
        let sealed = node(
            &python,
            &["seal", private, &tresor_public, NODE],
            r#"{"op":"put","path":"from-node","value":"through-the-agent","counter":10}"#,
        );
        env.run(&["share", "koi", "receive", "team", "--peer", NODE], sealed.as_bytes()).ok();
        assert_eq!(env.run(&["get", "team/from-node"], b"").ok().stdout, b"through-the-agent");
        assert!(env.run(&["share", "koi", "list"], b"").ok().text().contains(NODE));
        env.run(&["lock"], b"").ok();
    }
    env.run_pw(&["share", "koi", "remove", "team", "--peer", NODE], b"").ok();
    env.run_pw(&["share", "koi", "send", "team", "--peer", NODE], b"").expect(4);
    assert_eq!(env.get("team/ok"), b"fine", "removing the peer took the secrets");
}

fn base64ct_decode(text: &str) -> Vec<u8> {
    use base64ct::Encoding;
    base64ct::Base64::decode_vec(text.trim()).unwrap()
}

fn base64ct_encode(bytes: &[u8]) -> String {
    use base64ct::Encoding;
    base64ct::Base64::encode_string(bytes)
}

/// A sync group could be made on a KOI peer's folder (or its parent or child): only `koi add`
/// checked the overlap, so the peer's writes went to the group as this vault's own, and the
/// group's secrets to the peer (found by review). Both orders are refused, nothing kept.
#[test]
fn regression_a_sync_group_could_share_a_koi_peers_folder() {
    let env = Env::new();
    env.init();
    // The X25519 base point: a valid public key for the peer.
    let key = format!("09{}", "00".repeat(31));
    env.run_pw(&["share", "koi", "add", "a/kf", "--peer", NODE, "--key", &key], b"").ok();
    let relay = env.tmp.path().join("relay");
    std::fs::create_dir_all(&relay).unwrap();
    for folder in ["a/kf", "a/kf/inner", "a"] {
        let args = ["share", "create", folder, "--relay", relay.to_str().unwrap(), "--wait", "1s"];
        let out = env.run_pw(&args, b"").expect(7);
        assert!(out.stderr.contains("which the KOI peer"), "{folder}: {}", out.stderr);
    }
    let groups = env.run_pw(&["share", "list"], b"").ok().text();
    assert!(!groups.contains("a/"), "no group was kept: {groups}");
}
