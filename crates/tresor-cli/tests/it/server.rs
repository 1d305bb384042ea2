//! `tresor server` and `tresor unseal` through the real binaries: a server started sealed on a
//! vault is opened by a person with the vault's password (a wrong one is exit 3 and the server
//! stays sealed); plain http to another machine is refused before anything is sent.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::{Env, PASSWORD, bin, run};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Stdio};

/// A `tresor server` process, killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `tresor server` on a free loopback port; returns once it says where it listens.
fn serve(env: &Env) -> Server {
    let mut child = env
        .std_cmd(bin())
        .args(["server", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("the server stopped before listening").unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    // Keep draining its stderr so that it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Server { child, url }
}

/// One plain HTTP GET to the server: (status, body).
fn get(url: &str, path: &str) -> (u16, String) {
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    (status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
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
