//! `tresor relay` as a real process, with members of a sync group (the tresor-sync library)
//! talking to it over loopback HTTP: they converge through it, a removed member reads nothing
//! after its removal and its writes are refused, and a byte scan of everything the relay stored
//! and logged finds no path, value, hash of a value, member key, member id or group id. Bad
//! requests get clear 4xx answers and change nothing.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common::{Env, bin};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use tresor_crypto::slip10::Ed25519Node;
use tresor_crypto::{Key, SecretBytes, hash};
use tresor_sync::event::Op;
use tresor_sync::member::Identity;
use tresor_sync::peer::{Group, Peer, Timing, Warning};
use tresor_sync::relay::{Cursor, RelayClient, sync_once};
use tresor_sync::replica::View;

/// A `tresor relay` process, killed when dropped; its stderr is kept in a file.
pub(crate) struct Relay {
    child: Child,
    pub(crate) url: String,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start(env: &Env, data: &std::path::Path, log: &std::path::Path) -> Relay {
    start_with(env, data, log, &[])
}

/// [`start`] with more arguments (TLS).
pub(crate) fn start_with(env: &Env, data: &std::path::Path, log: &std::path::Path, more: &[&str]) -> Relay {
    start_at(env, data, log, "127.0.0.1:0", more)
}

/// [`start_with`] listening on `listen` (a relay started again where it was).
pub(crate) fn start_at(
    env: &Env,
    data: &std::path::Path,
    log: &std::path::Path,
    listen: &str,
    more: &[&str],
) -> Relay {
    let mut cmd = env.std_cmd(bin());
    cmd.args(["relay", "--listen", listen, "--data"]).arg(data).args(more).env("TRESOR_LOG", "debug");
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("the relay stopped before listening").unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split([' ', ',']).next().unwrap().to_string();
        }
    };
    let log = log.to_path_buf();
    std::thread::spawn(move || {
        use std::io::Write;
        let mut file = std::fs::File::create(log).unwrap();
        for line in lines.map_while(Result::ok) {
            let _ = writeln!(file, "{line}");
        }
    });
    Relay { child, url }
}

const GROUP: [u8; 32] = [0x42; 32];

fn identity(n: u8) -> Identity {
    Identity::derive(&Ed25519Node::master(&[n + 1; 32]), &GROUP, 0)
}

/// `size` members of one group (member 0 its admin), a heartbeat every round (one "second"),
/// so that acknowledgements flow at once.
fn members(size: u8) -> Vec<Peer> {
    let group = Group {
        id: GROUP,
        admin: identity(0).id(),
        epoch: 0,
        members: (0..size).map(|n| identity(n).key()).collect(),
    };
    let key = Key::from_bytes(&mut [9; 32]);
    let timing = Timing { heartbeat: 1, skew: 0, grace: 3600 };
    (0..size).map(|n| Peer::new(identity(n), group.clone(), &key, "team", timing, 0).unwrap()).collect()
}

fn client(url: &str) -> RelayClient {
    tresor_backend::install_tls_provider();
    let http =
        reqwest::Client::builder().no_proxy().timeout(std::time::Duration::from_secs(10)).build().unwrap();
    RelayClient::new(url.parse().unwrap(), http)
}

fn put(path: &str, value: &[u8]) -> Vec<Op> {
    vec![Op::Put { path: path.into(), value: SecretBytes::new(value.to_vec()) }]
}

#[test]
fn members_converge_through_the_real_relay_which_stores_nothing_it_could_read() {
    let env = Env::new();
    let data = env.path("relay-data");
    let log = env.path("relay.log");
    let relay = start(&env, &data, &log);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut peers = members(3);
    let mut cursors: Vec<BTreeMap<[u8; 32], Cursor>> = vec![BTreeMap::new(); 3];
    let relay_client = client(&relay.url);
    let values: [(&str, &[u8]); 4] = [
        ("db/password", b"correct horse battery staple"),
        ("api/token", b"tok_live_51Hx9sQzV2e8"),
        ("db/password", b"a concurrent edit from bob"),
        ("ssh/key", &[0xab; 3000]),
    ];
    let mut round = |peers: &mut Vec<Peer>, now: u64| {
        for (i, peer) in peers.iter_mut().enumerate() {
            let warnings = rt.block_on(sync_once(peer, &relay_client, &mut cursors[i], now)).unwrap();
            let unexpected: Vec<&Warning> = warnings
                .iter()
                .filter(|w| {
                    !matches!(
                        w,
                        Warning::Group(tresor_sync::receive::Alarm::AfterRemoval { .. }) | Warning::Removed
                    )
                })
                .collect();
            assert!(unexpected.is_empty(), "member {i}: {unexpected:?}");
        }
    };
    // Alice and bob edit the same path concurrently; carol writes a large value.
    peers[0].write(put(values[0].0, values[0].1), 1).unwrap();
    peers[0].write(put(values[1].0, values[1].1), 1).unwrap();
    peers[1].write(put(values[2].0, values[2].1), 1).unwrap();
    peers[2].write(put(values[3].0, values[3].1), 1).unwrap();
    for now in 2..6 {
        round(&mut peers, now);
    }
    let digest = peers[0].replica().digest();
    assert!(peers.iter().all(|p| p.replica().digest() == digest), "converged");
    assert!(peers.iter().all(|p| p.unacknowledged() == 0), "every write acknowledged");
    assert!(matches!(peers[2].replica().view("db/password"), View::Value(_, 1)), "the conflict is shown");
    assert!(matches!(peers[1].replica().view("ssh/key"), View::Value(v, 0) if v.ct_eq(&[0xab; 3000])));

    // Alice removes carol; carol, not yet told, writes; nobody takes it.
    let carol = peers[2].id();
    peers[0].rekey(&[carol], 6).unwrap();
    peers[2].write(put("carol/late", b"after her removal"), 6).unwrap();
    for now in 7..12 {
        round(&mut peers, now);
    }
    assert!(peers[2].is_removed(), "carol learnt it from the rekey");
    for p in &peers[..2] {
        assert!(matches!(p.replica().view("carol/late"), View::Deleted));
        assert_eq!(p.epoch(), 1);
    }
    peers[1].write(put("after/removal", b"only alice and bob read this"), 12).unwrap();
    for now in 13..16 {
        round(&mut peers, now);
    }
    assert!(matches!(peers[0].replica().view("after/removal"), View::Value(..)));
    // Carol, with every key she held, opens nothing of the new epoch on the relay's disk.
    let new_mailbox = peers[0].mailboxes().into_iter().last().unwrap();
    let stored = std::fs::read(data.join(format!("{}.cells", hex::encode(new_mailbox)))).unwrap();
    assert!(!stored.is_empty());
    assert_eq!(peers[2].readable(stored.chunks(1024)), 0);

    // What the relay kept and logged: nothing but cells; no secret, name, key or id in it.
    drop(relay);
    let mut kept = std::fs::read(&log).unwrap();
    for entry in std::fs::read_dir(&data).unwrap() {
        let entry = entry.unwrap();
        kept.extend_from_slice(entry.file_name().as_encoded_bytes());
        let bytes = std::fs::read(entry.path()).unwrap();
        assert_eq!(bytes.len() % 1024, 0, "whole cells only");
        kept.extend_from_slice(&bytes);
    }
    let mut needles: Vec<(String, Vec<u8>)> = Vec::new();
    for (path, value) in values.iter().copied().chain([
        ("carol/late", &b"after her removal"[..]),
        ("after/removal", &b"only alice and bob read this"[..]),
    ]) {
        needles.push((format!("path {path}"), path.as_bytes().to_vec()));
        needles.push((format!("value of {path}"), value[..16.min(value.len())].to_vec()));
        needles.push((format!("hash of {path}"), hash(value)[..8].to_vec()));
        needles.push((format!("hex hash of {path}"), hex::encode(hash(value)).as_bytes()[..16].to_vec()));
    }
    needles.push(("group id".into(), GROUP.to_vec()));
    needles.push(("group id in hex".into(), hex::encode(GROUP).into_bytes()));
    needles.push(("prefix".into(), b"team".to_vec()));
    for n in 0..3 {
        let key = identity(n).key();
        needles.push((format!("member {n} signing key"), key.signing[..8].to_vec()));
        needles.push((format!("member {n} x25519 key"), key.agreement[..8].to_vec()));
        needles.push((format!("member {n} id"), identity(n).id().0[..8].to_vec()));
        needles.push((format!("member {n} id as shown"), identity(n).id().to_string().into_bytes()));
    }
    for (what, needle) in &needles {
        assert!(!kept.windows(needle.len()).any(|w| w == needle.as_slice()), "the relay kept the {what}");
    }
}

#[test]
fn bad_requests_get_clear_answers_and_change_nothing() {
    let env = Env::new();
    let data = env.path("relay-data");
    let relay = start(&env, &data, &env.path("relay.log"));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    tresor_backend::install_tls_provider();
    // A connection per request: the too-large upload makes the relay close its connection.
    let http = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(0).build().unwrap();
    let mailbox = "ab".repeat(32);
    let try_ask = |method: reqwest::Method, path: &str, body: Vec<u8>| {
        rt.block_on(async {
            let answer = http.request(method, format!("{}{path}", relay.url)).body(body).send().await?;
            let status = answer.status().as_u16();
            Ok::<_, reqwest::Error>((status, answer.text().await?))
        })
    };
    let ask = |method: reqwest::Method, path: &str, body: Vec<u8>| try_ask(method, path, body).unwrap();
    use reqwest::Method;
    let cases: Vec<(Method, String, Vec<u8>, u16, &str)> = vec![
        (Method::POST, format!("/v1/relay/{mailbox}"), vec![0; 3 * 1024], 400, "power of two"),
        (Method::POST, format!("/v1/relay/{mailbox}"), vec![0; 1000], 400, "whole cells"),
        (Method::POST, format!("/v1/relay/{mailbox}"), Vec::new(), 400, "whole cells"),
        (Method::POST, "/v1/relay/not-hex".into(), vec![0; 1024], 400, "64 hex digits"),
        (Method::POST, format!("/v1/relay/{}", "ab".repeat(33)), vec![0; 1024], 400, "64 hex digits"),
        (Method::GET, "/v1/relay/..%2F..%2Fetc".into(), Vec::new(), 400, "64 hex digits"),
        (Method::GET, format!("/v1/relay/{mailbox}?from=minus"), Vec::new(), 400, "cell position"),
        (Method::GET, "/v1/sys/health".into(), Vec::new(), 404, "no such route"),
    ];
    for (method, path, body, status, says) in cases {
        let (got, text) = ask(method.clone(), &path, body);
        assert_eq!(got, status, "{method} {path}: {text}");
        assert!(text.contains(says), "{method} {path}: {text}");
    }
    // Too large: 413, or the relay closes the connection before the client finished sending.
    match try_ask(Method::POST, &format!("/v1/relay/{mailbox}"), vec![0; 2048 * 1024]) {
        Ok((status, text)) => assert_eq!(status, 413, "{text}"),
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0, "nothing was stored");
    // A good upload and a download from past the end.
    assert_eq!(ask(Method::POST, &format!("/v1/relay/{mailbox}"), vec![7; 2048]).0, 200);
    let (status, body) = ask(Method::GET, &format!("/v1/relay/{mailbox}?from=5"), Vec::new());
    assert_eq!((status, body.len()), (200, 0));
    let (status, body) = ask(Method::GET, "/v1/relay/health", Vec::new());
    assert_eq!(status, 200, "{body}");
}

#[test]
fn a_relay_keeps_no_more_than_its_quota_and_says_so() {
    let env = Env::new();
    let data = env.path("relay-data");
    let relay =
        start_with(&env, &data, &env.path("relay.log"), &["--max-size", "4K", "--max-mailboxes", "1"]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    tresor_backend::install_tls_provider();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let upload = |mailbox: &str, cells: usize| {
        rt.block_on(async {
            let answer = http
                .post(format!("{}/v1/relay/{mailbox}", relay.url))
                .body(vec![7u8; cells * 1024])
                .send()
                .await
                .unwrap();
            (answer.status().as_u16(), answer.text().await.unwrap())
        })
    };
    let (one, two) = ("ab".repeat(32), "cd".repeat(32));
    assert_eq!(upload(&one, 4).0, 200);
    let (status, text) = upload(&one, 1);
    assert_eq!(status, 507, "{text}");
    assert!(text.contains("the relay is full (4096 bytes)"), "{text}");
    let (status, text) = upload(&two, 1);
    assert_eq!(status, 507, "{text}");
    assert!(text.contains("as many mailboxes as it may (1)"), "{text}");
    let stored: Vec<u64> =
        std::fs::read_dir(&data).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).collect();
    assert_eq!(stored, [4096], "what was refused was not stored");
    drop(relay);
    // A size that is not one is refused before the relay starts.
    let out = env.std_cmd(bin()).args(["relay", "--max-size", "4X"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("4X: not a size"), "{err}");
}

#[test]
fn a_relay_on_another_address_needs_tls_or_says_so() {
    let env = Env::new();
    let out = env
        .std_cmd(bin())
        .args(["relay", "--listen", "0.0.0.0:0", "--data"])
        .arg(env.path("data"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs TLS"));
    let file = env.path("a-file");
    std::fs::write(&file, b"x").unwrap();
    let out =
        env.std_cmd(bin()).args(["relay", "--listen", "127.0.0.1:0", "--data"]).arg(&file).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not a directory"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two members of one group and a real relay storing in its own directory.
struct Pair {
    relay: Relay,
    rt: tokio::runtime::Runtime,
    peers: Vec<Peer>,
    cursors: Vec<BTreeMap<[u8; 32], Cursor>>,
    client: RelayClient,
}

/// [`Pair`], the relay storing in `data`.
fn pair(env: &Env, data: &std::path::Path) -> Pair {
    let relay = start(env, data, &env.path("relay.log"));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = client(&relay.url);
    Pair { relay, rt, peers: members(2), cursors: vec![BTreeMap::new(); 2], client }
}

#[test]
fn a_relay_that_loses_what_it_stored_is_reported_and_the_group_recovers() {
    // The relay's disk is rolled back under it (here: its mailbox file emptied, as a restore
    // from an old backup would): members say so, and what was not yet acknowledged goes up again.
    let env = Env::new();
    let data = env.path("relay-data");
    let Pair { relay: _relay, rt, mut peers, mut cursors, client } = pair(&env, &data);
    let round =
        |peers: &mut Vec<Peer>, cursors: &mut Vec<BTreeMap<[u8; 32], Cursor>>, now: u64| -> Vec<Warning> {
            let mut all = Vec::new();
            for (i, peer) in peers.iter_mut().enumerate() {
                all.extend(rt.block_on(sync_once(peer, &client, &mut cursors[i], now)).unwrap());
            }
            all
        };
    peers[0].write(put("before", b"one"), 1).unwrap();
    for now in 2..5 {
        assert!(round(&mut peers, &mut cursors, now).is_empty());
    }
    // Bob writes and uploads it; before alice reads it, the relay loses everything.
    peers[1].write(put("lost/then/sent/again", b"two"), 5).unwrap();
    rt.block_on(sync_once(&mut peers[1], &client, &mut cursors[1], 5)).unwrap();
    for entry in std::fs::read_dir(&data).unwrap() {
        std::fs::File::create(entry.unwrap().path()).unwrap();
    }
    let warnings = round(&mut peers, &mut cursors, 6);
    assert!(warnings.iter().any(|w| matches!(w, Warning::Rollback { .. })), "{warnings:?}");
    for now in 7..15 {
        round(&mut peers, &mut cursors, now);
    }
    for peer in &peers {
        assert!(matches!(peer.replica().view("lost/then/sent/again"), View::Value(v, 0) if v.ct_eq(b"two")));
        assert_eq!(peer.unacknowledged(), 0);
    }
}

/// The cells the relay in `data` holds, in all its mailboxes.
fn cells_held(data: &std::path::Path) -> u64 {
    std::fs::read_dir(data).unwrap().map(|e| e.unwrap().metadata().unwrap().len() / 1024).sum()
}

#[test]
fn regression_a_relay_that_rolled_a_mailbox_back_and_refilled_it_hid_the_new_cells_unseen() {
    // A member read a mailbox from its place on: a relay that rolled the mailbox back and let it
    // fill up again past that place, before the member read it, put the new cells below the
    // place, where the member never read them, and nothing was said. Now each read starts at the
    // last cell read and checks it is still there.
    let env = Env::new();
    let data = env.path("relay-data");
    let Pair { relay: _relay, rt, mut peers, mut cursors, client } = pair(&env, &data);
    let mut sync = |peers: &mut Vec<Peer>, i: usize, now: u64| -> Vec<Warning> {
        rt.block_on(sync_once(&mut peers[i], &client, &mut cursors[i], now)).unwrap()
    };
    peers[0].write(put("before", b"one"), 1).unwrap();
    for now in 2..5 {
        assert!(sync(&mut peers, 0, now).is_empty());
        assert!(sync(&mut peers, 1, now).is_empty());
    }
    // The relay's disk as an old backup would have it.
    let backup = env.path("backup");
    std::fs::create_dir(&backup).unwrap();
    for entry in std::fs::read_dir(&data).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), backup.join(entry.file_name())).unwrap();
    }
    // Bob writes; alice reads it: her place is past the backup.
    peers[1].write(put("seen", b"two"), 5).unwrap();
    assert!(sync(&mut peers, 1, 5).is_empty());
    assert!(sync(&mut peers, 0, 5).is_empty());
    let place = cells_held(&data);
    assert!(place > cells_held(&backup));
    // The backup is restored, and bob's new writes fill the mailbox up again past alice's place.
    for entry in std::fs::read_dir(&backup).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), data.join(entry.file_name())).unwrap();
    }
    let mut n = 0;
    while cells_held(&data) < place + 1 {
        n += 1;
        assert!(n < 64, "the mailbox never filled up again");
        peers[1].write(put(&format!("hidden/{n}"), b"three"), 6).unwrap();
        sync(&mut peers, 1, 6);
    }
    let warnings = sync(&mut peers, 0, 6);
    assert!(
        warnings.iter().any(|w| matches!(w, Warning::Rewritten { below } if *below == place)),
        "{warnings:?}"
    );
    assert!(warnings.iter().all(Warning::is_attack), "{warnings:?}");
    // Alice read the mailbox again from its start: she has what was hidden, and the group goes on.
    for now in 7..15 {
        sync(&mut peers, 0, now);
        sync(&mut peers, 1, now);
    }
    for peer in &peers {
        for i in 1..=n {
            let path = format!("hidden/{i}");
            assert!(matches!(peer.replica().view(&path), View::Value(v, 0) if v.ct_eq(b"three")), "{path}");
        }
        assert_eq!(peer.unacknowledged(), 0);
    }
}

#[test]
fn regression_an_upload_whose_body_never_arrived_held_its_connection_for_ever() {
    // The relay read an upload's body with no time limit: a client announcing 2 KiB and sending
    // 100 bytes held its connection (one of 1,024) for as long as it liked. Now it gets 408 once
    // the body is 30 s late, and nothing is stored.
    use std::io::{Read, Write};
    let env = Env::new();
    let data = env.path("relay-data");
    let relay = start(&env, &data, &env.path("relay.log"));
    let address = relay.url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(60))).unwrap();
    let head = format!(
        "POST /v1/relay/{} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 2048\r\n\r\n",
        "ab".repeat(32)
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&[0; 100]).unwrap();
    let started = std::time::Instant::now();
    let mut answer = [0u8; 64];
    let n = stream.read(&mut answer).expect("the relay answered within a minute");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(25), "answered before the body was late");
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0, "nothing was stored");
}

#[test]
fn regression_a_client_that_never_read_its_answers_held_its_connection_for_ever() {
    // A client could ask for answers and never read them: the relay's write waited for ever,
    // holding one of its 1,024 connections. Now a write that waits 30 s for the client fails and
    // the connection closes. Here 64 downloads of 1 MiB are asked for in one go and nothing is
    // read for 45 s: what can be read afterwards ends early (the relay hung up), where a relay
    // still waiting would send all 64 MiB and keep the connection open.
    use std::io::{ErrorKind, Read, Write};
    let env = Env::new();
    let relay = start(&env, &env.path("relay-data"), &env.path("relay.log"));
    let address = relay.url.trim_start_matches("http://").trim_end_matches('/').to_string();
    let mailbox = "cd".repeat(32);
    let mut upload = std::net::TcpStream::connect(&address).unwrap();
    upload.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let head = format!(
        "POST /v1/relay/{mailbox} HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        1 << 20
    );
    upload.write_all(head.as_bytes()).unwrap();
    upload.write_all(&vec![9u8; 1 << 20]).unwrap();
    let mut answer = String::new();
    upload.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    let ask = format!("GET /v1/relay/{mailbox}?from=0 HTTP/1.1\r\nHost: {address}\r\n\r\n");
    stream.write_all(ask.repeat(64).as_bytes()).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(45));
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let mut total = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let ended = loop {
        match stream.read(&mut buf) {
            Ok(0) => break "closed",
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break "reset",
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break "still open",
            Err(e) => panic!("{e}"),
        }
    };
    assert_ne!(ended, "still open", "the relay kept the connection after {total} bytes");
    assert!(total < 64 << 20, "all {total} bytes were sent: the relay never gave up");
}
