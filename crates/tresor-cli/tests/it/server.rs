//! `tresor server` and `tresor unseal` through the real binaries: a server started sealed on a
//! vault is opened by a person with the vault's password (a wrong one is exit 3 and the server
//! stays sealed); plain http to another machine is refused before anything is sent. Two servers on
//! one vault: one killed with SIGKILL while it writes loses no acknowledged write, and the other
//! serves on. The CLI as a server's client: `tresor login`, then the everyday commands through
//! `TRESOR_ADDR`.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::{Env, PASSWORD, bin, run};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Stdio};

/// A `tresor server` process, killed when dropped.
struct Server {
    child: Child,
    url: String,
    /// The root token it printed (`--new-root-token`).
    token: Option<String>,
    /// What it wrote to stderr after it said where it listens.
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `tresor server` on a free loopback port; returns once it says where it listens.
fn serve(env: &Env) -> Server {
    serve_with(env, &[], &[])
}

/// [`serve`] with more arguments and variables.
fn serve_with(env: &Env, args: &[&str], vars: &[(&str, &std::path::Path)]) -> Server {
    let mut cmd = env.std_cmd(bin());
    cmd.args(["server", "--listen", "127.0.0.1:0"]).args(args);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("the server stopped before listening").unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    // Keep draining its stderr so that it never blocks on a full pipe.
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let kept = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let mut kept = kept.lock().unwrap();
            kept.push_str(&line);
            kept.push('\n');
        }
    });
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let token = args.contains(&"--new-root-token").then(|| {
        loop {
            let line = out.next().expect("the server printed no token").unwrap();
            if let Some(t) = line.strip_prefix("export VAULT_TOKEN='") {
                break t.trim_end_matches('\'').to_string();
            }
        }
    });
    std::thread::spawn(move || out.for_each(drop));
    Server { child, url, token, log }
}

/// One plain HTTP GET to the server: (status, body).
fn get(url: &str, path: &str) -> (u16, String) {
    call(url, "GET", path, None, "").unwrap()
}

/// One plain HTTP request: (status, body), or the I/O error of a server that went away.
fn call(
    url: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    let auth = token.map(|t| format!("X-Vault-Token: {t}\r\n")).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no HTTP answer: {text:?}")))?;
    Ok((status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()))
}

#[test]
fn a_person_unseals_a_server_with_the_vault_password() {
    let env = Env::new();
    env.init();
    let server = serve(&env);
    assert!(get(&server.url, "/v1/sys/seal-status").1.contains(r#""sealed":true"#));

    let unseal = |password: &str| {
        let mut cmd = env.cmd();
        cmd.env("TRESOR_ADDR", &server.url).args(["--password-stdin", "unseal"]);
        // A proxy in the environment is not used: it would see the password in the clear.
        for proxy in ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
            cmd.env(proxy, "http://127.0.0.1:9");
        }
        run(&mut cmd, format!("{password}\n").as_bytes())
    };
    let out = unseal("not the password");
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(get(&server.url, "/v1/sys/seal-status").1.contains(r#""sealed":true"#));
    let out = unseal(PASSWORD).ok();
    assert_eq!(out.text(), "unsealed\n");
    assert!(get(&server.url, "/v1/sys/seal-status").1.contains(r#""sealed":false"#));
    assert_eq!(get(&server.url, "/v1/sys/health").0, 200);
    // Again: already open, nothing to do.
    assert_eq!(unseal(PASSWORD).ok().text(), "unsealed\n");
}

/// A server that found the store rolled back answered 500 "look at the server's log", and wrote
/// nothing to any log (found by review): the operator never learnt what it had found.
#[test]
fn regression_a_detected_rollback_reached_no_log() {
    let env = Env::new();
    env.init();
    let password = env.password_file(PASSWORD);
    let server =
        serve_with(&env, &["--unseal", "--new-root-token"], &[("TRESOR_PASSWORD_FILE", password.as_path())]);
    let token = server.token.as_deref().unwrap();
    let write =
        || call(&server.url, "POST", "/v1/secret/data/k", Some(token), r#"{"data":{"v":"1"}}"#).unwrap();
    assert_eq!(write().0, 200);
    // The store drops its newest commit: the next write finds its head gone.
    let newest = std::fs::read_dir(env.vault.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().bytes().all(|b| b.is_ascii_digit()))
        .max()
        .unwrap();
    std::fs::remove_file(newest).unwrap();
    let (status, body) = write();
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("look at the server's log"), "{body}");
    let mut log = String::new();
    for _ in 0..100 {
        log = server.log.lock().unwrap().clone();
        if log.contains("rollback") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(log.contains("integrity check") && log.contains("rollback"), "{log}");
    assert!(!log.contains(token), "the log holds no token: {log}");
}

#[test]
fn unseal_refuses_plain_http_to_another_machine_and_bad_addresses() {
    let env = Env::new();
    for (address, expected) in [
        ("http://192.0.2.1:8200", "in the clear"),
        ("ftp://127.0.0.1:8200", "not http or https"),
        ("not a url", "server address"),
    ] {
        let mut cmd = env.cmd();
        cmd.args(["--password-stdin", "unseal", "--address", address]);
        let out = run(&mut cmd, format!("{PASSWORD}\n").as_bytes());
        assert_eq!(out.code, 7, "{address}: {}", out.stderr);
        assert!(out.stderr.contains(expected), "{address}: {}", out.stderr);
        assert!(!out.stderr.contains(PASSWORD));
    }
    // Nobody listening: a clear error, exit 1.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cmd = env.cmd();
    cmd.args(["--password-stdin", "unseal", "--address", &format!("http://127.0.0.1:{port}")]);
    let out = run(&mut cmd, format!("{PASSWORD}\n").as_bytes());
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("no answer from"), "{}", out.stderr);
}

#[test]
fn a_server_killed_mid_write_loses_no_acknowledged_write_and_another_serves_on() {
    let env = Env::new();
    env.init();
    let password = env.password_file(PASSWORD);
    let vars = [("TRESOR_PASSWORD_FILE", password.as_path())];
    let token = common::random_hex(16);
    // Two servers on one vault; the root token A makes is in the vault, so B honours it too.
    let a = serve_with(&env, &["--unseal", "--new-root-token"], &vars);
    let root = a.token.clone().unwrap();
    let b = serve_with(&env, &["--unseal"], &vars);
    // Four writers against A at once (so that the kill lands in group commits); A is killed with
    // SIGKILL while they write.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (url, root, token) = (a.url.clone(), root.clone(), token.clone());
            std::thread::spawn(move || {
                let mut acknowledged = Vec::new();
                for i in 0..2000 {
                    let name = format!("{w}-{i}");
                    let body = format!(r#"{{"data":{{"v":"{token}-{name}"}}}}"#);
                    match call(&url, "PUT", &format!("/v1/secret/data/kill/{name}"), Some(&root), &body) {
                        Ok((200, _)) => acknowledged.push(name),
                        _ => break,
                    }
                }
                acknowledged
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(common::kill_hard(a.child.id()), "the server did not die");
    let acknowledged: Vec<String> = writers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    assert!(!acknowledged.is_empty(), "no write was acknowledged before the kill");
    // B serves on: every acknowledged write is there, with its value.
    for i in &acknowledged {
        let (status, body) =
            call(&b.url, "GET", &format!("/v1/secret/data/kill/{i}"), Some(&root), "").unwrap();
        assert_eq!(status, 200, "write {i} was acknowledged and is lost: {body}");
        assert!(body.contains(&format!("{token}-{i}")), "{body}");
    }
    assert_eq!(
        call(&b.url, "PUT", "/v1/secret/data/after", Some(&root), r#"{"data":{"a":"b"}}"#).unwrap().0,
        200
    );
    drop(b);
    drop(a);
    // The vault proves whole afterwards: the commit log, every lane of the audit trail.
    env.run_pw(&["audit", "verify"], b"").ok();
    assert!(env.run_pw(&["list", "secret/kill/"], b"").ok().text().lines().count() >= acknowledged.len());
}

/// The CLI as a server's client: `tresor login` keeps a token it checked; `get`, `set`, `list`,
/// `rm`, `history`, `encrypt`, `decrypt` and `sign` then work on the server as on a vault here
/// (exit codes included; transit in Vault's ciphertext format), and a
/// value set through the server is the very bytes `tresor get` reads from the vault itself. A
/// token without the capability is refused (exit 3); commands about a vault opened here are
/// refused while `TRESOR_ADDR` names a server; a bad token is never kept.
#[test]
fn the_everyday_commands_work_against_a_server() {
    let env = Env::new();
    env.init();
    let password = env.password_file(PASSWORD);
    let server =
        serve_with(&env, &["--unseal", "--new-root-token"], &[("TRESOR_PASSWORD_FILE", password.as_path())]);
    let root = server.token.clone().unwrap();
    let remote = |token: Option<&str>, args: &[&str], stdin: &[u8]| {
        let mut cmd = env.cmd();
        cmd.env("TRESOR_ADDR", &server.url).args(args);
        if let Some(token) = token {
            cmd.env("TRESOR_TOKEN", token);
        }
        run(&mut cmd, stdin)
    };
    // Logging in: a token the server does not know is refused and not kept.
    let login = |token: &str| {
        let mut cmd = env.cmd();
        cmd.args(["login", "--address", &server.url]);
        run(&mut cmd, format!("{token}\n").as_bytes())
    };
    assert_eq!(login("tvs.not-a-token").code, 3);
    assert_eq!(remote(None, &["get", "secret/app/db"], b"").code, 3, "no token kept");
    let out = login(&root).ok();
    assert!(out.text().contains("policies: root"), "{}", out.text());

    // Values are bytes, whatever they hold.
    let binary = [0u8, 0xff, b'\n', 0x80, b'x'];
    remote(None, &["set", "secret/app/db"], b"hunter2").ok();
    remote(None, &["set", "secret/app/db"], b"second").ok();
    remote(None, &["set", "secret/app/bin"], &binary).ok();
    remote(None, &["set", "secret/top", "plain"], b"").ok();
    assert_eq!(remote(None, &["get", "secret/app/db"], b"").ok().stdout, b"second");
    assert_eq!(remote(None, &["get", "secret/app/db", "--version", "1"], b"").ok().stdout, b"hunter2");
    assert_eq!(remote(None, &["get", "secret/app/bin"], b"").ok().stdout, binary);
    assert_eq!(remote(None, &["list"], b"").ok().text(), "secret/app/bin\nsecret/app/db\nsecret/top\n");
    assert_eq!(remote(None, &["list", "secret/app/d"], b"").ok().text(), "secret/app/db\n");
    let out = remote(None, &["set", "secret/app/db", "stale", "--cas", "1"], b"");
    assert_eq!(out.code, 6, "a stale cas is a conflict: {}", out.stderr);
    let history = remote(None, &["history", "secret/app/db", "--json"], b"").ok();
    let history: serde_json::Value = serde_json::from_slice(&history.stdout).unwrap();
    assert_eq!(history.as_array().map(Vec::len), Some(2));
    assert_eq!(history[1]["current"], true);
    assert!(remote(None, &["rm", "secret/app/db"], b"").ok().stderr.contains("version 2 deleted"));
    let out = remote(None, &["get", "secret/app/db"], b"");
    assert_eq!(out.code, 4);
    assert!(out.stderr.contains("deleted (version 2)"), "{}", out.stderr);
    remote(None, &["undelete", "secret/app/db"], b"").ok();
    assert_eq!(remote(None, &["get", "secret/app/db"], b"").ok().stdout, b"second");
    remote(None, &["destroy", "secret/app/db", "--version", "1"], b"").ok();
    let out = remote(None, &["get", "secret/app/db", "--version", "1"], b"");
    assert_eq!(out.code, 4);
    assert!(out.stderr.contains("destroyed"), "{}", out.stderr);
    remote(None, &["rm", "secret/app/db"], b"").ok();
    assert_eq!(remote(None, &["get", "secret/none"], b"").code, 4);
    let out = remote(None, &["get", "app/db"], b"");
    assert_eq!(out.code, 4);
    assert!(out.stderr.contains("app/db: the server has no mount there"), "{}", out.stderr);
    // A mount of two segments, which the server names (the client asks, as the Vault CLI does).
    let mount = r#"{"type": "kv", "options": {"version": "2"}}"#;
    assert_eq!(call(&server.url, "POST", "/v1/sys/mounts/team/kv", Some(&root), mount).unwrap().0, 204);
    remote(None, &["set", "team/kv/db"], b"nested").ok();
    assert_eq!(remote(None, &["get", "team/kv/db"], b"").ok().stdout, b"nested");
    assert_eq!(remote(None, &["list", "team/kv/"], b"").ok().text(), "team/kv/db\n");
    assert_eq!(remote(None, &["history", "team/kv/db"], b"").code, 0);
    let out = remote(None, &["get", "transit/keys"], b"");
    assert_eq!(out.code, 7, "{}", out.stderr);
    assert!(out.stderr.contains("transit mount (transit/), not a KV one"), "{}", out.stderr);
    let out = remote(None, &["get", "team/kv"], b"");
    assert_eq!(out.code, 7, "{}", out.stderr);

    // A token whose policy reaches one folder only.
    let policy =
        r#"{"policy": "path \"secret/data/team/*\" { capabilities = [\"create\", \"read\", \"update\"] }"}"#;
    assert_eq!(call(&server.url, "PUT", "/v1/sys/policies/acl/team", Some(&root), policy).unwrap().0, 204);
    let (status, body) =
        call(&server.url, "POST", "/v1/auth/token/create", Some(&root), r#"{"policies": ["team"]}"#).unwrap();
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let team = answer["auth"]["client_token"].as_str().unwrap().to_string();
    remote(Some(&team), &["set", "secret/team/a"], b"ours").ok();
    assert_eq!(remote(Some(&team), &["get", "secret/team/a"], b"").ok().stdout, b"ours");
    assert_eq!(remote(Some(&team), &["get", "secret/top"], b"").code, 3);
    assert_eq!(remote(Some(&team), &["set", "secret/top"], b"theirs").code, 3);

    // Transit: Vault's ciphertexts, and signatures by an Ed25519 transit key that verify here.
    let sealed = remote(None, &["encrypt", "orders"], b"attack at dawn").ok().text();
    assert!(sealed.starts_with("vault:v1:"), "{sealed}");
    assert_eq!(remote(None, &["decrypt", "orders"], sealed.as_bytes()).ok().stdout, b"attack at dawn");
    // One base64 character changed (it was compared with the last one, not the one replaced: when
    // the replaced one was already `A`, nothing changed and this test failed, one run in 64).
    let mut forged = sealed.trim().to_string();
    let at = forged.len() - 6;
    let other = if forged.as_bytes()[at] == b'A' { "B" } else { "A" };
    forged.replace_range(at..at + 1, other);
    assert_ne!(forged, sealed.trim());
    assert_ne!(remote(None, &["decrypt", "orders"], forged.as_bytes()).code, 0, "a tampered ciphertext");
    let (status, _) =
        call(&server.url, "POST", "/v1/transit/keys/signer", Some(&root), r#"{"type":"ed25519"}"#).unwrap();
    assert!(status == 200 || status == 204, "{status}");
    let signed = remote(None, &["sign", "signer", "--json"], b"a message").ok();
    let signed: serde_json::Value = serde_json::from_slice(&signed.stdout).unwrap();
    let (key, signature) = (signed["public_key"].as_str().unwrap(), signed["signature"].as_str().unwrap());
    env.run(&["verify", key, signature], b"a message").ok();
    assert_eq!(env.run(&["verify", key, signature], b"another message").code, 12);
    assert_eq!(remote(None, &["sign", "m/74'/0'/0'"], b"x").code, 7, "a derivation path is the vault's here");

    assert_eq!(remote(None, &["status"], b"").code, 2, "status is about a vault opened here");
    // Logging out forgets the token.
    assert!(env.run(&["logout", "--address", &server.url], b"").ok().text().starts_with("forgot the token"));
    assert_eq!(remote(None, &["get", "secret/top"], b"").code, 3);

    // The vault itself holds the bytes the server was given, as `tresor get` reads them here.
    drop(server);
    assert_eq!(env.get("secret/app/bin"), binary);
    assert_eq!(env.get("secret/top"), b"plain");
    assert_eq!(env.get("secret/team/a"), b"ours");
    assert_eq!(env.get("team/kv/db"), b"nested");
}

/// `echo $KEY | tresor unseal --share` failed with a raw "No such device or address" (it read the
/// share from the terminal only; found by review). A pipe's first line is the share, as `vault
/// operator unseal -` takes it; it never goes through argv.
#[test]
fn regression_an_unseal_share_could_not_come_from_a_pipe() {
    let env = Env::new();
    let server = serve(&env);
    let (status, body) =
        call(&server.url, "PUT", "/v1/sys/init", None, r#"{"secret_shares":3,"secret_threshold":2}"#)
            .unwrap();
    assert_eq!(status, 200, "{body}");
    let init: serde_json::Value = serde_json::from_str(&body).unwrap();
    let root = init["root_token"].as_str().unwrap();
    if !get(&server.url, "/v1/sys/seal-status").1.contains(r#""sealed":true"#) {
        assert_eq!(call(&server.url, "PUT", "/v1/sys/seal", Some(root), "").unwrap().0, 204);
    }
    let unseal = |share: &str| {
        let mut cmd = env.cmd();
        cmd.env("TRESOR_ADDR", &server.url).args(["unseal", "--share"]);
        run(&mut cmd, format!("{share}\n").as_bytes())
    };
    let out = unseal(init["keys"][0].as_str().unwrap()).ok();
    assert!(out.text().contains("1 of 2 shares given"), "{}", out.text());
    assert!(get(&server.url, "/v1/sys/seal-status").1.contains(r#""sealed":true"#));
    let out = unseal(init["keys_base64"][2].as_str().unwrap()).ok();
    assert_eq!(out.text(), "unsealed\n");
    assert!(get(&server.url, "/v1/sys/seal-status").1.contains(r#""sealed":false"#));
}
