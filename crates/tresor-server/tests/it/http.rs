//! `tresor server` as real clients see it: a real server on a loopback port over a real vault
//! directory, spoken to with raw HTTP/1.1 (the transport facts of VAULT-API.md §1) and with hvac,
//! the Python client, unchanged (when `TRESOR_TEST_PYTHON` names a Python with hvac installed;
//! `.ci/run` does, and sets `TRESOR_REQUIRE_CLIENTS` so that a missing one fails).
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tresor::{KdfParams, Options, Password, Store, Vault};
use tresor_server::http::{Settings, launch, new_token};

const PASSWORD: &str = "correct horse battery staple";

/// A running server: its address, root token, and what stops it.
pub(crate) struct Running {
    pub(crate) addr: SocketAddr,
    pub(crate) token: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops the server and waits until it has sealed.
    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), &mut self.task).await.unwrap().unwrap();
    }
}

/// A new vault in `dir`, served unsealed on a free loopback port with a fresh root token.
pub(crate) async fn start(dir: &Path) -> Running {
    start_with(dir, None).await
}

/// [`start`], over TLS with `tls`.
async fn start_with(dir: &Path, tls: Option<tresor_server::http::listen::TlsFiles>) -> Running {
    let plain = tls.is_none();
    let location = dir.join("vault").display().to_string();
    let mut opts = Options::new(dir.join("trust"), "test");
    opts.kdf = KdfParams::MINIMUM;
    let password = || Password::from(PASSWORD.to_string());
    drop(Vault::init(Store::open(&location, true).unwrap(), &password(), opts).await.unwrap());
    let token = new_token().unwrap();
    let settings = Settings {
        store: Store::open(&location, false).unwrap(),
        trust_dir: dir.join("trust"),
        password: Some(password()),
        root_token: Some(token.clone()),
        tls,
        read_staleness: Duration::ZERO,
        sync: None,
    };
    serve(settings, token, plain).await
}

/// Launches a server with `settings` on a free loopback port; ready once it accepts (and, when
/// `answers`, once its health is 200).
async fn serve(settings: Settings, token: String, answers: bool) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        launch(settings, listener, async move { drop(stopped.await) }).await.unwrap();
    });
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok()
            && (!answers || request(addr, "GET", "/v1/sys/health", None, "").await.0 == 200)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Running { addr, token, stop: Some(stop), task }
}

/// One HTTP/1.1 request on its own connection, with `headers`: the status, the answer's header
/// block (names lowercase, as hyper writes them) and its body.
async fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw)).await.unwrap().unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_string(), body.to_string())
}

/// The value of header `name` (lowercase) in an answer's header block.
fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string))
}

/// A body as JSON (`Null` when empty).
fn json_of(body: &str) -> Value {
    if body.is_empty() { Value::Null } else { serde_json::from_str(body).unwrap() }
}

/// One request with an optional token: status, `Content-Type`, and the body as JSON.
pub(crate) async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String, Value) {
    let auth: Vec<(&str, &str)> = token.map(|t| ("X-Vault-Token", t)).into_iter().collect();
    let (status, head, body) = exchange(addr, method, path, &auth, body).await;
    (status, header(&head, "content-type").unwrap_or_default(), json_of(&body))
}

/// Reads the answer on `stream` to its end: Vault's 413, saying the body is too large.
async fn too_large(mut stream: tokio::net::TcpStream) {
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw)).await.unwrap().unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(json_of(body)["errors"][0].as_str().unwrap().contains("larger than"), "{body}");
}

/// Found by review: a body announced larger than the server takes (4 MiB) was answered 400, not
/// Vault's 413; it is refused on its headers, before any of it is read. A body sent in chunks
/// gets 413 once it passes the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_body_announced_too_large_is_413_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let mut stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "POST /v1/secret/data/big HTTP/1.1\r\nHost: {}\r\nX-Vault-Token: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        s.addr,
        s.token,
        tresor_server::http::MAX_BODY + 1
    );
    // Only the headers: the answer comes without the server waiting for the body.
    stream.write_all(head.as_bytes()).await.unwrap();
    too_large(stream).await;
    // Sent in chunks (no length announced): 413 too once it passes the limit (it was 400).
    let mut stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "POST /v1/secret/data/big HTTP/1.1\r\nHost: {}\r\nX-Vault-Token: {}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        s.addr, s.token
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let piece = vec![b' '; 64 << 10];
    for _ in 0..=(tresor_server::http::MAX_BODY / piece.len()) {
        let chunk = [format!("{:x}\r\n", piece.len()).as_bytes(), &piece, b"\r\n"].concat();
        if stream.write_all(&chunk).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    too_large(stream).await;
    // A body within the limit is read as before.
    let (status, _, _) =
        request(s.addr, "POST", "/v1/secret/data/small", Some(&s.token), r#"{"data":{"k":"v"}}"#).await;
    assert_eq!(status, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transport_is_vaults() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let (addr, token) = (s.addr, Some(s.token.as_str()));

    let (status, kind, body) = request(addr, "GET", "/v1/sys/seal-status", None, "").await;
    assert_eq!((status, kind.as_str(), &body["sealed"]), (200, "application/json", &Value::Bool(false)));
    // PUT and POST write alike; the envelope has every key.
    let (status, _, body) = request(addr, "PUT", "/v1/secret/data/a/b", token, r#"{"data":{"k":"v"}}"#).await;
    assert_eq!((status, &body["data"]["version"]), (200, &Value::from(1)));
    for key in [
        "request_id",
        "lease_id",
        "renewable",
        "lease_duration",
        "wrap_info",
        "warnings",
        "auth",
        "mount_type",
    ] {
        assert!(body.get(key).is_some(), "the envelope lacks {key}: {body}");
    }
    request(addr, "POST", "/v1/secret/data/a/c", token, r#"{"data":{"k":"w"}}"#).await;
    // LIST, `?list=true` in any case, with and without a trailing slash.
    for (method, path) in [
        ("LIST", "/v1/secret/metadata/a"),
        ("LIST", "/v1/secret/metadata/a/"),
        ("GET", "/v1/secret/metadata/a?list=true"),
        ("GET", "/v1/secret/metadata//a/?list=True"),
    ] {
        let (status, _, body) = request(addr, method, path, token, "").await;
        assert_eq!((status, &body["data"]["keys"]), (200, &serde_json::json!(["b", "c"])), "{method} {path}");
    }
    // Nothing there: 404 with an empty error list, as exactly application/json.
    let (status, kind, body) = request(addr, "GET", "/v1/secret/data/none", token, "").await;
    assert_eq!((status, kind.as_str(), body), (404, "application/json", serde_json::json!({"errors": []})));
    // No token, a wrong one, one in `Authorization: Bearer`: 403 (never 401), 403, 200.
    assert_eq!(request(addr, "GET", "/v1/secret/data/a/b", None, "").await.0, 403);
    assert_eq!(request(addr, "GET", "/v1/secret/data/a/b", Some("tvs.wrong"), "").await.0, 403);
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let bearer = format!(
        "GET /v1/secret/data/a/b HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        s.token
    );
    stream.write_all(bearer.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    // A body that is not JSON, a write without data, an unknown route, an unknown verb.
    assert_eq!(request(addr, "POST", "/v1/secret/data/a/b", token, "{oops").await.0, 400);
    assert_eq!(request(addr, "POST", "/v1/secret/data/a/b", token, r#"{"options":{}}"#).await.0, 400);
    assert_eq!(request(addr, "GET", "/v1/nothing/here", token, "").await.0, 404);
    assert_eq!(request(addr, "TRACE", "/v1/secret/data/a/b", token, "").await.0, 405);
    // The mount preflight of the Vault CLI and consul-template: KV version 2, as a string.
    let (_, _, body) = request(addr, "GET", "/v1/sys/internal/ui/mounts/secret/a/b", token, "").await;
    assert_eq!(
        (&body["data"]["path"], &body["data"]["options"]["version"]),
        (&Value::from("secret/"), &Value::from("2"))
    );

    // PATCH is a JSON merge patch of the newest version (what `vault kv patch` sends); a stale cas
    // and a missing secret are refused.
    let (status, _, body) =
        request(addr, "PATCH", "/v1/secret/data/a/b", token, r#"{"data":{"k":null,"n":"1"}}"#).await;
    assert_eq!((status, &body["data"]["version"]), (200, &Value::from(2)), "{body}");
    let (_, _, body) = request(addr, "GET", "/v1/secret/data/a/b", token, "").await;
    assert_eq!(body["data"]["data"], serde_json::json!({"n": "1"}));
    let stale = r#"{"data":{"n":"2"},"options":{"cas":1}}"#;
    assert_eq!(request(addr, "PATCH", "/v1/secret/data/a/b", token, stale).await.0, 400);
    assert_eq!(request(addr, "PATCH", "/v1/secret/data/a/none", token, r#"{"data":{"n":"2"}}"#).await.0, 404);

    // Sealed: 503 for whatever needs the vault, seal status and health say so.
    assert_eq!(request(addr, "PUT", "/v1/sys/seal", token, "").await.0, 204);
    let (status, _, body) = request(addr, "GET", "/v1/secret/data/a/b", token, "").await;
    assert_eq!((status, body), (503, serde_json::json!({"errors": ["Vault is sealed"]})));
    assert_eq!(request(addr, "GET", "/v1/sys/seal-status", None, "").await.2["sealed"], Value::Bool(true));
    assert_eq!(request(addr, "GET", "/v1/sys/health", None, "").await.0, 503);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_holds_no_token_and_the_audit_trail_names_accessors() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    request(s.addr, "PUT", "/v1/secret/data/x", Some(&s.token), r#"{"data":{"k":"v"}}"#).await;
    let token = s.token.clone();
    s.stop().await;
    // No file of the vault holds the token, in any encoding a reader might try.
    let secret_part = token.strip_prefix("tvs.").unwrap().to_string();
    for entry in walk(&dir.path().join("vault")) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !bytes.windows(secret_part.len()).any(|w| w == secret_part.as_bytes()),
            "{}",
            entry.display()
        );
    }
    // The trail names the token's accessor and the client's address, never the token.
    let v = reopen(dir.path()).await;
    let trail = v.audit_trail().await.unwrap();
    let set = trail.iter().find(|r| r.record.path.as_deref() == Some("secret/x")).unwrap();
    assert!(
        set.record.actor.starts_with("token ") && set.record.actor.contains(" from 127.0.0.1:"),
        "{}",
        set.record.actor
    );
    assert!(trail.iter().all(|r| !r.record.actor.contains(&secret_part)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_checks_the_store_once_however_many_bookkeeping_reads_it_makes() {
    // With no staleness allowed, a KV read looks up its token, the mount table, the secret's
    // settings and the value: one look for the next commit between them, not one each.
    use tresor_testkit::fault::{FaultStore, OpKind};
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("vault").display().to_string();
    let mut opts = Options::new(dir.path().join("trust"), "test");
    opts.kdf = KdfParams::MINIMUM;
    let password = || Password::from(PASSWORD.to_string());
    drop(Vault::init(Store::open(&location, true).unwrap(), &password(), opts).await.unwrap());
    let fault = FaultStore::new(Arc::new(tresor::local::LocalDir::open(&location).unwrap()));
    let faults = fault.faults();
    let token = new_token().unwrap();
    let settings = Settings {
        store: Store::from_object_store(Arc::new(fault), None, &location),
        trust_dir: dir.path().join("trust"),
        password: Some(password()),
        root_token: Some(token.clone()),
        tls: None,
        read_staleness: Duration::ZERO,
        sync: None,
    };
    let s = serve(settings, token, true).await;
    let (status, _, _) =
        request(s.addr, "PUT", "/v1/secret/data/db", Some(&s.token), r#"{"data":{"k":"v"}}"#).await;
    assert_eq!(status, 200);
    let next_commit = |faults: &tresor_testkit::fault::Faults| {
        let log = tresor::layout::commit(0);
        let log = &log[..=log.rfind('/').unwrap()];
        faults.events().iter().filter(|e| e.kind == OpKind::Get && e.path.starts_with(log)).count()
    };
    for _ in 0..5 {
        faults.reset_counts();
        let (status, _, body) = request(s.addr, "GET", "/v1/secret/data/db", Some(&s.token), "").await;
        assert_eq!((status, &body["data"]["data"]["k"]), (200, &Value::from("v")));
        assert_eq!(next_commit(&faults), 1, "{:?}", faults.events());
    }
    // Something that is not one of this server's tokens is refused without a store read; the
    // refusal is audited (one entry of the trail written, nothing else).
    faults.reset_counts();
    let (status, _, _) = request(s.addr, "GET", "/v1/secret/data/db", Some("hvs.not-ours"), "").await;
    assert_eq!(status, 403);
    let events = faults.events();
    assert!(events.iter().all(|e| e.kind == OpKind::Put && e.path.starts_with("audit/")), "{events:?}");
    // Another handle commits: the next request sees it (its one check finds the commit).
    let other = Vault::unlock(Store::open(&location, false).unwrap(), &password(), {
        let mut o = Options::new(dir.path().join("trust-other"), "other");
        o.kdf = KdfParams::MINIMUM;
        o
    })
    .await
    .unwrap();
    other.set("secret/db", br#"{"k":"w"}"#).await.unwrap();
    let (_, _, body) = request(s.addr, "GET", "/v1/secret/data/db", Some(&s.token), "").await;
    assert_eq!(body["data"]["data"]["k"], "w");
    s.stop().await;
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { out.extend(walk(&path)) } else { out.push(path) }
    }
    out
}

/// The Python that has hvac, or `None` (the test is skipped) outside CI.
pub(crate) fn python() -> Option<std::ffi::OsString> {
    let python = std::env::var_os("TRESOR_TEST_PYTHON");
    if python.is_none() {
        assert!(std::env::var_os("TRESOR_REQUIRE_CLIENTS").is_none(), "TRESOR_TEST_PYTHON is not set");
        eprintln!("skipped: TRESOR_TEST_PYTHON (a Python with hvac) is not set");
    }
    python
}

/// Runs `tests/clients/<script>` against the server at `addr` (with `token`, if any).
async fn run_client(python: std::ffi::OsString, script: &str, addr: SocketAddr, token: Option<&str>) {
    run_client_at(python, script, &format!("http://{addr}"), token, &[]).await;
}

/// [`run_client`] at `url`, with more environment.
async fn run_client_at(
    python: std::ffi::OsString,
    script: &str,
    url: &str,
    token: Option<&str>,
    env: &[(&str, &std::ffi::OsStr)],
) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients").join(script);
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(script).env("VAULT_ADDR", url).env_remove("VAULT_TOKEN").kill_on_drop(true);
    cmd.envs(env.iter().copied());
    if let Some(token) = token {
        cmd.env("VAULT_TOKEN", token);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output()).await.unwrap().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "{script:?} failed\nstdout: {stdout}\nstderr: {stderr}",
        script = cmd.as_std().get_args().next()
    );
    println!("{stdout}");
}

/// Runs `tests/clients/<script>` with a root token against a new vault's server, and stops it;
/// the directory, for what the test checks after (`None`: skipped without hvac).
async fn run_script(script: &str) -> Option<tempfile::TempDir> {
    let python = python()?;
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    run_client(python, script, s.addr, Some(&s.token)).await;
    s.stop().await;
    Some(dir)
}

/// The vault in `dir`, opened with its password once the server has stopped.
async fn reopen(dir: &Path) -> Vault {
    let mut opts = Options::new(dir.join("trust"), "test");
    opts.kdf = KdfParams::MINIMUM;
    let location = dir.join("vault").display().to_string();
    Vault::unlock(Store::open(&location, false).unwrap(), &Password::from(PASSWORD.to_string()), opts)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hvac_works_unchanged() {
    run_script("hvac_kv.py").await;
}

/// A server on `dir`'s location with nothing unsealed at start (an empty location: uninitialized).
async fn start_bare(dir: &Path) -> Running {
    let settings = Settings {
        store: Store::open(&dir.join("vault").display().to_string(), true).unwrap(),
        trust_dir: dir.join("trust"),
        password: None,
        root_token: None,
        tls: None,
        read_staleness: Duration::ZERO,
        sync: None,
    };
    serve(settings, String::new(), false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_makes_shares_that_unseal_and_a_restart_starts_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_bare(dir.path()).await;
    let addr = s.addr;
    assert_eq!(
        request(addr, "GET", "/v1/sys/init", None, "").await.2,
        serde_json::json!({"initialized": false})
    );
    assert_eq!(request(addr, "GET", "/v1/sys/health", None, "").await.0, 501);
    // Bad splits write nothing.
    for body in
        [r#"{"secret_shares":1,"secret_threshold":2}"#, r#"{"secret_shares":3,"secret_threshold":1}"#, "{}"]
    {
        assert_eq!(request(addr, "PUT", "/v1/sys/init", None, body).await.0, 400, "{body}");
    }
    assert!(!dir.path().join("vault/keyfile").exists());
    let (status, _, init) =
        request(addr, "PUT", "/v1/sys/init", None, r#"{"secret_shares":3,"secret_threshold":2}"#).await;
    assert_eq!(status, 200, "{init}");
    let keys: Vec<String> = serde_json::from_value(init["keys"].clone()).unwrap();
    let root = init["root_token"].as_str().unwrap().to_string();
    assert_eq!(request(addr, "GET", "/v1/secret/data/x", Some(&root), "").await.0, 503);
    let unseal = |key: &str| format!(r#"{{"key":"{key}"}}"#);
    let (_, _, status) = request(addr, "PUT", "/v1/sys/unseal", None, &unseal(&keys[2])).await;
    assert_eq!(
        (&status["sealed"], &status["progress"], &status["t"], &status["n"]),
        (&Value::Bool(true), &Value::from(1), &Value::from(2), &Value::from(3))
    );
    assert_eq!(
        request(addr, "PUT", "/v1/sys/unseal", None, &unseal(&keys[2])).await.0,
        400,
        "the same share twice"
    );
    let (_, _, status) = request(addr, "PUT", "/v1/sys/unseal", None, &unseal(&keys[0])).await;
    assert_eq!(status["sealed"], Value::Bool(false));
    assert_eq!(request(addr, "PUT", "/v1/secret/data/x", Some(&root), r#"{"data":{"a":"b"}}"#).await.0, 200);
    s.stop().await;

    // Restarted on the vault: sealed; two shares open it and the data is there.
    let s = start_bare(dir.path()).await;
    let addr = s.addr;
    let (_, _, status) = request(addr, "GET", "/v1/sys/seal-status", None, "").await;
    assert_eq!((&status["initialized"], &status["sealed"]), (&Value::Bool(true), &Value::Bool(true)));
    request(addr, "PUT", "/v1/sys/unseal", None, &unseal(&keys[1])).await;
    request(addr, "PUT", "/v1/sys/unseal", None, &unseal(&keys[2])).await;
    let (status, _, body) = request(addr, "GET", "/v1/secret/data/x", Some(&root), "").await;
    assert_eq!((status, &body["data"]["data"]["a"]), (200, &Value::from("b")));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hvac_initializes_unseals_and_seals() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let s = start_bare(dir.path()).await;
    let addr = s.addr;
    run_client(python, "hvac_init.py", addr, None).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hvac_transit() {
    run_script("hvac_transit.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hvac_mounts_enable_use_tune_and_disable() {
    let Some(dir) = run_script("hvac_mounts.py").await else { return };
    // A KV mount is a view on the vault's paths: what it held was destroyed when it was disabled,
    // for the vault's owner too (as in Vault: a mount enabled again must not bring it back).
    let v = reopen(dir.path()).await;
    let e = v.get("team/kv/app/db", Some(1)).await.err().unwrap();
    assert!(matches!(e, tresor::Error::Destroyed { .. }), "{e:?}");
    assert!(v.list("team/").await.unwrap().is_empty());
    assert_eq!(v.get("secret/x", None).await.unwrap().as_slice(), br#"{"a":"c"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hvac_approle_logins() {
    let Some(dir) = run_script("hvac_approle.py").await else { return };
    // The store sees none of it in the clear: not the role, not the system namespace's names.
    for entry in walk(&dir.path().join("vault")) {
        let text = String::from_utf8_lossy(&std::fs::read(&entry).unwrap()).into_owned();
        assert!(!text.contains("approle"), "{}", entry.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hvac_tokens_policies_and_isolation() {
    let Some(dir) = run_script("hvac_tokens.py").await else { return };
    // Every refusal is in the audit trail, under the refused token's accessor.
    let v = reopen(dir.path()).await;
    let denied: Vec<_> = v
        .audit_trail()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| matches!(r.record.outcome, tresor::model::Outcome::Denied(_)))
        .collect();
    // The four checks that a revoked token no longer works are refusals of a token that is not
    // live: audited too, under the client's address.
    let (dead, denied): (Vec<_>, Vec<_>) = denied.into_iter().partition(
        |r| matches!(&r.record.outcome, tresor::model::Outcome::Denied(why) if why == "no live token"),
    );
    assert_eq!(dead.len(), 4, "the refusals of revoked tokens are audited");
    assert!(dead.iter().all(|r| r.record.actor.starts_with("anonymous from")));
    assert_eq!(denied.len(), 9, "the nine refusals of the script are audited");
    assert!(denied.iter().all(|r| r.record.op == "request" && r.record.actor.starts_with("token ")));
    assert!(denied.iter().any(|r| r.record.detail.as_deref() == Some("Read secret/data/agents/b/key")));
    assert!(
        denied.iter().any(
            |r| matches!(&r.record.outcome, tresor::model::Outcome::Denied(why) if why.contains("subset"))
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_round_trip_with_a_generated_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    // A key file that is not one is refused at start, by name.
    let bad = tresor_server::http::listen::TlsFiles { cert: cert_path.clone(), key: cert_path.clone() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let settings = Settings {
        store: Store::open(&dir.path().join("none").display().to_string(), true).unwrap(),
        trust_dir: dir.path().join("trust"),
        password: None,
        root_token: None,
        tls: Some(bad),
        read_staleness: Duration::ZERO,
        sync: None,
    };
    let e = launch(settings, listener, std::future::pending()).await.unwrap_err();
    assert!(e.to_string().contains("cert.pem: no private key"), "{e}");

    let tls = tresor_server::http::listen::TlsFiles { cert: cert_path.clone(), key: key_path };
    let s = start_with(dir.path(), Some(tls)).await;
    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    stream.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await;
    assert!(!raw.starts_with(b"HTTP/"), "plain HTTP was answered over the TLS port");
    if let Some(python) = python() {
        let url = format!("https://localhost:{}", s.addr.port());
        run_client_at(python, "hvac_tls.py", &url, Some(&s.token), &[("TRESOR_CA", cert_path.as_os_str())])
            .await;
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentication_is_rate_limited_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    for _ in 0..tresor_server::http::limit::MAX_FAILURES {
        assert_eq!(request(s.addr, "GET", "/v1/secret/data/x", Some("tvs.guess"), "").await.0, 403);
    }
    // Then 429 for the address's guesses (a token that does not work, an AppRole login, the
    // password route)...
    let (status, kind, body) = request(s.addr, "GET", "/v1/secret/data/x", Some("tvs.guess"), "").await;
    assert_eq!((status, kind.as_str()), (429, "application/json"));
    assert!(body["errors"][0].as_str().unwrap().contains("too many failed authentications"));
    assert_eq!(request(s.addr, "GET", "/v1/secret/data/x", None, "").await.0, 429);
    let login = r#"{"role_id":"x","secret_id":"y"}"#;
    assert_eq!(request(s.addr, "POST", "/v1/auth/approle/login", None, login).await.0, 429);
    // ... but a token that works still does (clients behind one NAT must not lock one another
    // out: found by review, the valid token got 429 too).
    assert_eq!(request(s.addr, "GET", "/v1/secret/data/x", Some(&s.token), "").await.0, 404);
    // Requests that need no token still work.
    assert_eq!(request(s.addr, "GET", "/v1/sys/health", None, "").await.0, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_reports_what_the_token_could_read_and_rotates_the_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let root = Some(s.token.as_str());
    let policy = r#"{"policy": "path \"secret/data/app/*\" { capabilities = [\"read\"] }"}"#;
    assert_eq!(request(s.addr, "PUT", "/v1/sys/policies/acl/app", root, policy).await.0, 204);
    for p in ["app/x", "app/y", "other/z"] {
        request(s.addr, "PUT", &format!("/v1/secret/data/{p}"), root, r#"{"data":{"k":"v"}}"#).await;
    }
    let (_, _, created) =
        request(s.addr, "POST", "/v1/auth/token/create", root, r#"{"policies":["app"]}"#).await;
    let (token, accessor) =
        (created["auth"]["client_token"].as_str().unwrap(), created["auth"]["accessor"].as_str().unwrap());
    assert_eq!(request(s.addr, "GET", "/v1/secret/data/app/x", Some(token), "").await.0, 200);
    // The token itself may not use the native route.
    let body = format!(r#"{{"accessor":"{accessor}","rotate":true}}"#);
    assert_eq!(request(s.addr, "POST", "/v1/tresor/token/revoke", Some(token), &body).await.0, 403);
    let (status, _, report) = request(s.addr, "POST", "/v1/tresor/token/revoke", root, &body).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["data"]["readable_paths"], serde_json::json!(["secret/app/x", "secret/app/y"]));
    assert_eq!(
        (&report["data"]["revoked"], &report["data"]["rotated_to_epoch"]),
        (&Value::from(1), &Value::from(2))
    );
    assert_eq!(request(s.addr, "GET", "/v1/secret/data/app/x", Some(token), "").await.0, 403);
    s.stop().await;
}

/// A server on `dir`'s location that unseals itself with `password` (an unattended start).
async fn start_unattended(dir: &Path, password: &str) -> Running {
    let settings = Settings {
        store: Store::open(&dir.join("vault").display().to_string(), true).unwrap(),
        trust_dir: dir.join("trust"),
        password: Some(Password::from(password.to_string())),
        root_token: None,
        tls: None,
        read_staleness: Duration::ZERO,
        sync: None,
    };
    serve(settings, String::new(), false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_password_initializes_unsealed_and_restarts_unattended() {
    let dir = tempfile::tempdir().unwrap();
    // A password the vault would refuse stops the start, and writes nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let weak = Settings {
        store: Store::open(&dir.path().join("vault").display().to_string(), true).unwrap(),
        trust_dir: dir.path().join("trust"),
        password: Some(Password::from("short".to_string())),
        root_token: None,
        tls: None,
        read_staleness: Duration::ZERO,
        sync: None,
    };
    let e = launch(weak, listener, std::future::pending()).await.unwrap_err();
    assert!(e.to_string().contains("at least 8 characters"), "{e}");
    assert!(walk(&dir.path().join("vault")).is_empty());

    // On an empty location: uninitialized; sys/init makes the vault, which stays unsealed.
    let s = start_unattended(dir.path(), PASSWORD).await;
    let (_, _, status) = request(s.addr, "GET", "/v1/sys/seal-status", None, "").await;
    assert_eq!(status["initialized"], Value::Bool(false));
    let (status, _, init) =
        request(s.addr, "PUT", "/v1/sys/init", None, r#"{"secret_shares":1,"secret_threshold":1}"#).await;
    assert_eq!(status, 200, "{init}");
    let root = init["root_token"].as_str().unwrap().to_string();
    let share = init["keys"][0].as_str().unwrap().to_string();
    let (_, _, status) = request(s.addr, "GET", "/v1/sys/seal-status", None, "").await;
    assert_eq!(status["sealed"], Value::Bool(false), "{status}");
    let write = request(s.addr, "PUT", "/v1/secret/data/app/db", Some(&root), r#"{"data":{"pw":"x1"}}"#);
    assert_eq!(write.await.0, 200);
    s.stop().await;

    // Restarted with the password: unsealed at once, the data there.
    let s = start_unattended(dir.path(), PASSWORD).await;
    let (status, _, body) = request(s.addr, "GET", "/v1/secret/data/app/db", Some(&root), "").await;
    assert_eq!((status, &body["data"]["data"]["pw"]), (200, &Value::from("x1")));
    s.stop().await;

    // Without it: sealed, and the share still opens it.
    let s = start_bare(dir.path()).await;
    let (_, _, status) = request(s.addr, "GET", "/v1/sys/seal-status", None, "").await;
    assert_eq!(status["sealed"], Value::Bool(true));
    let (_, _, status) =
        request(s.addr, "PUT", "/v1/sys/unseal", None, &format!(r#"{{"key":"{share}"}}"#)).await;
    assert_eq!(status["sealed"], Value::Bool(false));
    s.stop().await;

    // A wrong password on the vault stops the start with the vault's own refusal.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let wrong = Settings {
        store: Store::open(&dir.path().join("vault").display().to_string(), false).unwrap(),
        trust_dir: dir.path().join("trust"),
        password: Some(Password::from("not the password at all".to_string())),
        root_token: None,
        tls: None,
        read_staleness: Duration::ZERO,
        sync: None,
    };
    let e = launch(wrong, listener, std::future::pending()).await.unwrap_err();
    assert!(matches!(e, tresor_server::http::ServerError::Vault(tresor::Error::AuthFailed)), "{e}");
}

/// A TLS client that trusts only `ca`; whether a handshake with `addr` succeeds.
async fn handshake_trusting(addr: SocketAddr, ca: &str) -> bool {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap()).unwrap();
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp)).await.unwrap().is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_and_a_bad_one_leaves_the_old_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let make = || rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (first, second) = (make(), make());
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, first.cert.pem()).unwrap();
    std::fs::write(&key_path, first.signing_key.serialize_pem()).unwrap();
    let tls = tresor_server::http::listen::TlsFiles { cert: cert_path.clone(), key: key_path.clone() };
    let s = start_with(dir.path(), Some(tls)).await;
    let hangup = || {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    assert!(handshake_trusting(s.addr, &first.cert.pem()).await);
    assert!(!handshake_trusting(s.addr, &second.cert.pem()).await);
    // Renewed on disk, then SIGHUP: the new certificate is served.
    std::fs::write(&cert_path, second.cert.pem()).unwrap();
    std::fs::write(&key_path, second.signing_key.serialize_pem()).unwrap();
    hangup();
    let mut served = false;
    for _ in 0..100 {
        if handshake_trusting(s.addr, &second.cert.pem()).await {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "the renewed certificate is served after SIGHUP");
    // A certificate whose key does not match: refused, the one in use stays.
    std::fs::write(&cert_path, first.cert.pem()).unwrap();
    hangup();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(handshake_trusting(s.addr, &second.cert.pem()).await);
    assert!(!handshake_trusting(s.addr, &first.cert.pem()).await);
    s.stop().await;
}

/// Several servers on one location, each as another machine (its own trust state): a policy
/// change or a revocation made through one holds at once on the others, though each keeps token
/// records and policies cached.
async fn servers_share_one_vault(location: &str, dir: &Path, servers: usize) {
    let mut opts = Options::new(dir.join("trust-0"), "test");
    opts.kdf = KdfParams::MINIMUM;
    let password = || Password::from(PASSWORD.to_string());
    drop(Vault::init(tresor_testkit::env::open(location, true).await, &password(), opts).await.unwrap());
    let root_token = new_token().unwrap();
    let mut all = Vec::new();
    for i in 0..servers {
        let settings = Settings {
            store: tresor_testkit::env::open(location, false).await,
            trust_dir: dir.join(format!("trust-{i}")),
            password: Some(password()),
            root_token: (i == 0).then(|| root_token.clone()),
            tls: None,
            read_staleness: Duration::ZERO,
            sync: None,
        };
        all.push(serve(settings, root_token.clone(), true).await);
    }
    let (a, others) = all.split_first().unwrap();
    let root = Some(root_token.as_str());
    let read_app = r#"{"policy": "path \"secret/data/app/*\" { capabilities = [\"read\"] }"}"#;
    assert_eq!(request(a.addr, "PUT", "/v1/sys/policies/acl/p", root, read_app).await.0, 204);
    for p in ["app/x", "other/y"] {
        request(a.addr, "PUT", &format!("/v1/secret/data/{p}"), root, r#"{"data":{"k":"v"}}"#).await;
    }
    let (_, _, created) =
        request(a.addr, "POST", "/v1/auth/token/create", root, r#"{"policies":["p"]}"#).await;
    let token = created["auth"]["client_token"].as_str().unwrap().to_string();
    let get = |addr, path: &'static str| {
        let token = token.clone();
        async move { request(addr, "GET", path, Some(&token), "").await.0 }
    };
    // The others read with it (and keep its record and policy parsed), again and again.
    for s in others {
        for _ in 0..3 {
            assert_eq!(get(s.addr, "/v1/secret/data/app/x").await, 200);
            assert_eq!(get(s.addr, "/v1/secret/data/other/y").await, 403);
        }
    }
    // A moves the policy to the other prefix: each other server follows at its next request.
    let read_other = r#"{"policy": "path \"secret/data/other/*\" { capabilities = [\"read\"] }"}"#;
    assert_eq!(request(a.addr, "PUT", "/v1/sys/policies/acl/p", root, read_other).await.0, 204);
    for s in others {
        assert_eq!(get(s.addr, "/v1/secret/data/app/x").await, 403);
        assert_eq!(get(s.addr, "/v1/secret/data/other/y").await, 200);
    }
    // A deletes the policy: nothing left anywhere; written again, it holds again.
    assert_eq!(request(a.addr, "DELETE", "/v1/sys/policies/acl/p", root, "").await.0, 204);
    for s in others {
        assert_eq!(get(s.addr, "/v1/secret/data/other/y").await, 403);
    }
    request(a.addr, "PUT", "/v1/sys/policies/acl/p", root, read_other).await;
    for s in others {
        assert_eq!(get(s.addr, "/v1/secret/data/other/y").await, 200);
    }
    // A write through one server is read through the next at once (read-your-writes across them).
    for (i, s) in all.iter().enumerate() {
        let body = format!(r#"{{"data":{{"n":"{i}"}}}}"#);
        assert_eq!(request(s.addr, "PUT", "/v1/secret/data/other/y", root, &body).await.0, 200);
        let next = &all[(i + 1) % all.len()];
        let (_, _, read) = request(next.addr, "GET", "/v1/secret/data/other/y", root, "").await;
        assert_eq!(read["data"]["data"]["n"], Value::from(i.to_string()));
    }
    // The last server revokes the token: every server refuses it at once.
    let revoke = format!(r#"{{"token":"{token}"}}"#);
    let last = all.last().unwrap();
    assert_eq!(request(last.addr, "POST", "/v1/auth/token/revoke", root, &revoke).await.0, 204);
    for s in &all {
        assert_eq!(get(s.addr, "/v1/secret/data/other/y").await, 403);
    }
    for s in all {
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_change_or_revocation_on_one_server_holds_at_once_on_another() {
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("vault").display().to_string();
    servers_share_one_vault(&location, dir.path(), 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_on_one_bucket_stay_coherent() {
    let Some(location) = tresor_testkit::env::s3_location("servers") else { return };
    let dir = tempfile::tempdir().unwrap();
    servers_share_one_vault(&location, dir.path(), 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_route_unseals_and_wrong_passwords_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    start(dir.path()).await.stop().await;
    let s = start_bare(dir.path()).await;
    let body = |pw: &str| serde_json::json!({ "password": pw }).to_string();
    for _ in 0..tresor_server::http::limit::MAX_FAILURES {
        let (status, _, answer) =
            request(s.addr, "PUT", "/v1/tresor/unseal", None, &body("wrong guess")).await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer["errors"][0].as_str().unwrap().contains("does not open"));
    }
    // Then 429, even with the right password, and the server stays sealed.
    assert_eq!(request(s.addr, "PUT", "/v1/tresor/unseal", None, &body(PASSWORD)).await.0, 429);
    let (_, _, status) = request(s.addr, "GET", "/v1/sys/seal-status", None, "").await;
    assert_eq!(status["sealed"], Value::Bool(true));
    s.stop().await;
    // A fresh server (a new minute, in effect): the right password opens it.
    let s = start_bare(dir.path()).await;
    assert_eq!(request(s.addr, "PUT", "/v1/tresor/unseal", None, "{}").await.0, 400);
    let (status, _, answer) = request(s.addr, "PUT", "/v1/tresor/unseal", None, &body(PASSWORD)).await;
    assert_eq!((status, &answer["sealed"]), (200, &Value::Bool(false)), "{answer}");
    s.stop().await;
}

/// A request with extra headers: (status, the `X-Vault-Index` answered, body as JSON).
async fn request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Option<String>, Value) {
    let (status, head, body) = exchange(addr, method, path, headers, body).await;
    (status, header(&head, "x-vault-index"), json_of(&body))
}

/// A new vault in `dir` served by one server per staleness bound of `bounds`, on one store; the
/// first server is given the root token returned.
async fn servers_on_one_vault(dir: &Path, bounds: &[Duration]) -> (String, Vec<Running>) {
    let location = dir.join("vault").display().to_string();
    let mut opts = Options::new(dir.join("trust-0"), "test");
    opts.kdf = KdfParams::MINIMUM;
    drop(
        Vault::init(Store::open(&location, true).unwrap(), &Password::from(PASSWORD.to_string()), opts)
            .await
            .unwrap(),
    );
    let root = new_token().unwrap();
    let mut servers = Vec::new();
    for (i, bound) in bounds.iter().enumerate() {
        let settings = Settings {
            store: Store::open(&location, false).unwrap(),
            trust_dir: dir.join(format!("trust-{i}")),
            password: Some(Password::from(PASSWORD.to_string())),
            root_token: (i == 0).then(|| root.clone()),
            tls: None,
            read_staleness: *bound,
            sync: None,
        };
        servers.push(serve(settings, root.clone(), true).await);
    }
    (root, servers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_staleness_bound_the_index_header_gives_read_your_writes_across_servers() {
    let dir = tempfile::tempdir().unwrap();
    // Far longer than the test: only the header can make B look again.
    let (root, servers) = servers_on_one_vault(dir.path(), &[Duration::from_secs(3600); 2]).await;
    let (a, b) = (&servers[0], &servers[1]);
    let token = [("X-Vault-Token", root.as_str())];
    let (status, index, _) =
        request_with(a.addr, "PUT", "/v1/secret/data/k", &token, r#"{"data":{"v":"1"}}"#).await;
    assert_eq!(status, 200);
    // B's view is as of its start, before the write; the index brings it to the write.
    let (_, _, missed) = request_with(b.addr, "GET", "/v1/secret/data/k", &token, "").await;
    assert_eq!(missed, serde_json::json!({"errors": []}), "the bound is what it says");
    let with_index = [("X-Vault-Token", root.as_str()), ("X-Vault-Index", index.as_deref().unwrap())];
    let (_, _, first) = request_with(b.addr, "GET", "/v1/secret/data/k", &with_index, "").await;
    assert_eq!(first["data"]["data"]["v"], Value::from("1"), "{first}");
    let (status, index, _) =
        request_with(a.addr, "PUT", "/v1/secret/data/k", &token, r#"{"data":{"v":"2"}}"#).await;
    assert_eq!(status, 200);
    let index = index.expect("a write answers with its index");
    // Without the header B may serve its older view; with it, B holds the write.
    let (_, _, stale) = request_with(b.addr, "GET", "/v1/secret/data/k", &token, "").await;
    assert_eq!(stale["data"]["data"]["v"], Value::from("1"), "the bound is what it says");
    let with_index = [("X-Vault-Token", root.as_str()), ("X-Vault-Index", index.as_str())];
    let (status, _, fresh) = request_with(b.addr, "GET", "/v1/secret/data/k", &with_index, "").await;
    assert_eq!((status, &fresh["data"]["data"]["v"]), (200, &Value::from("2")));
    // An index past the store's head: 412; one this server never gave: 400.
    let ahead = [("X-Vault-Token", root.as_str()), ("X-Vault-Index", "tresor:999999")];
    assert_eq!(request_with(b.addr, "GET", "/v1/secret/data/k", &ahead, "").await.0, 412);
    let foreign = [("X-Vault-Token", root.as_str()), ("X-Vault-Index", "AAAA")];
    assert_eq!(request_with(b.addr, "GET", "/v1/secret/data/k", &foreign, "").await.0, 400);
    // A revocation on A, named by its index, holds on B for that request.
    let (_, made, created) = request_with(a.addr, "POST", "/v1/auth/token/create", &token, "{}").await;
    let child = created["auth"]["client_token"].as_str().unwrap().to_string();
    let as_child = [("X-Vault-Token", child.as_str()), ("X-Vault-Index", made.as_deref().unwrap())];
    assert_eq!(request_with(b.addr, "GET", "/v1/auth/token/lookup-self", &as_child, "").await.0, 200);
    let body = format!(r#"{{"token":"{child}"}}"#);
    let (status, index, _) = request_with(a.addr, "POST", "/v1/auth/token/revoke", &token, &body).await;
    assert_eq!(status, 204);
    let index = index.unwrap();
    let revoked = [("X-Vault-Token", child.as_str()), ("X-Vault-Index", index.as_str())];
    assert_eq!(request_with(b.addr, "GET", "/v1/auth/token/lookup-self", &revoked, "").await.0, 403);
    // So does a secret ID destroyed on A, at an AppRole login on B (which has no token to look
    // up, and did not look at the index: found by review).
    let approle = r#"{"type":"approle"}"#;
    assert_eq!(request_with(a.addr, "POST", "/v1/sys/auth/approle", &token, approle).await.0, 204);
    let role = r#"{"token_policies":"default"}"#;
    assert_eq!(request_with(a.addr, "POST", "/v1/auth/approle/role/ci", &token, role).await.0, 204);
    let (_, _, id) = request_with(a.addr, "GET", "/v1/auth/approle/role/ci/role-id", &token, "").await;
    let (_, _, secret) = request_with(a.addr, "POST", "/v1/auth/approle/role/ci/secret-id", &token, "").await;
    let secret = secret["data"]["secret_id"].as_str().unwrap().to_string();
    let login = format!(r#"{{"role_id":{},"secret_id":"{secret}"}}"#, id["data"]["role_id"]);
    let (status, made, _) = request_with(a.addr, "POST", "/v1/auth/approle/login", &[], &login).await;
    assert_eq!(status, 200);
    let made = [("X-Vault-Index", made.expect("a login answers with its index"))];
    let made = [(made[0].0, made[0].1.as_str())];
    assert_eq!(request_with(b.addr, "POST", "/v1/auth/approle/login", &made, &login).await.0, 200);
    let destroy = format!(r#"{{"secret_id":"{secret}"}}"#);
    let path = "/v1/auth/approle/role/ci/secret-id/destroy";
    let (status, index, _) = request_with(a.addr, "POST", path, &token, &destroy).await;
    assert_eq!(status, 204);
    let destroyed = [("X-Vault-Index", index.unwrap())];
    let destroyed = [(destroyed[0].0, destroyed[0].1.as_str())];
    assert_eq!(request_with(b.addr, "POST", "/v1/auth/approle/login", &destroyed, &login).await.0, 400);
    for s in servers {
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_area_and_name_no_path() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let root = Some(s.token.as_str());
    request(s.addr, "PUT", "/v1/secret/data/very-private-name", root, r#"{"data":{"a":"b"}}"#).await;
    request(s.addr, "GET", "/v1/secret/data/very-private-name", root, "").await;
    request(s.addr, "GET", "/v1/secret/data/very-private-name", Some("tvs.wrong"), "").await;
    // Without a token: refused like any route.
    assert_eq!(request(s.addr, "GET", "/v1/sys/metrics?format=prometheus", None, "").await.0, 403);
    let (status, kind, text) = raw_get(s.addr, "/v1/sys/metrics?format=prometheus", &s.token).await;
    assert_eq!(status, 200);
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    assert!(text.contains(r#"tresor_requests_total{area="kv",code="200"} 2"#), "{text}");
    assert!(text.contains(r#"tresor_requests_total{area="kv",code="403"} 1"#), "{text}");
    assert!(text.contains("tresor_failed_authentications_total 2"), "{text}");
    assert!(text.contains("tresor_sealed 0"), "{text}");
    assert!(!text.contains("very-private-name") && !text.contains(&s.token), "{text}");
    assert_eq!(raw_get(s.addr, "/v1/sys/metrics?format=json", &s.token).await.0, 400);
    s.stop().await;
}

/// A GET whose answer is not JSON: (status, content type, body text).
async fn raw_get(addr: SocketAddr, path: &str, token: &str) -> (u16, String, String) {
    let (status, head, body) = exchange(addr, "GET", path, &[("X-Vault-Token", token)], "").await;
    (status, header(&head, "content-type").unwrap_or_default(), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn use_limited_periodic_and_capped_tokens_behave_as_vaults() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let root = Some(s.token.as_str());
    let create = |body: &'static str| request(s.addr, "POST", "/v1/auth/token/create", root, body);
    let token_of = |v: &Value| v["auth"]["client_token"].as_str().unwrap().to_string();

    // num_uses: two requests, then refused; the lookup shows what is left.
    let (_, _, made) = create(r#"{"num_uses": 2, "policies": ["default"]}"#).await;
    assert_eq!(made["auth"]["num_uses"], Value::from(2));
    let limited = token_of(&made);
    let (status, _, me) = request(s.addr, "GET", "/v1/auth/token/lookup-self", Some(&limited), "").await;
    assert_eq!((status, &me["data"]["num_uses"]), (200, &Value::from(1)));
    assert_eq!(request(s.addr, "GET", "/v1/auth/token/lookup-self", Some(&limited), "").await.0, 200);
    assert_eq!(request(s.addr, "GET", "/v1/auth/token/lookup-self", Some(&limited), "").await.0, 403);

    // Requests at once never spend one use twice: exactly three of eight get through.
    let (_, _, made) = create(r#"{"num_uses": 3, "policies": ["default"]}"#).await;
    let three = token_of(&made);
    let tries: Vec<_> = (0..8)
        .map(|_| {
            let (addr, t) = (s.addr, three.clone());
            tokio::spawn(
                async move { request(addr, "GET", "/v1/auth/token/lookup-self", Some(&t), "").await.0 },
            )
        })
        .collect();
    let mut ok = 0;
    for t in tries {
        if t.await.unwrap() == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 3);

    // explicit_max_ttl caps the TTL, and no renewal passes it.
    let (_, _, made) = create(r#"{"ttl": "1h", "explicit_max_ttl": "30s", "policies": ["default"]}"#).await;
    let capped = token_of(&made);
    let (_, _, me) = request(s.addr, "GET", "/v1/auth/token/lookup-self", Some(&capped), "").await;
    assert_eq!(me["data"]["explicit_max_ttl"], Value::from(30));
    assert!(me["data"]["ttl"].as_u64().unwrap() <= 30, "{me}");
    let (status, _, renewed) =
        request(s.addr, "POST", "/v1/auth/token/renew-self", Some(&capped), r#"{"increment": "1h"}"#).await;
    assert_eq!(status, 200, "{renewed}");
    assert!(renewed["auth"]["lease_duration"].as_u64().unwrap() <= 30, "{renewed}");

    // A periodic token: made by root only, renewable, each renewal gives the period again.
    let (_, _, made) = create(r#"{"period": "1h", "policies": ["default"]}"#).await;
    let periodic = token_of(&made);
    let (_, _, me) = request(s.addr, "GET", "/v1/auth/token/lookup-self", Some(&periodic), "").await;
    assert_eq!((&me["data"]["period"], &me["data"]["renewable"]), (&Value::from(3600), &Value::Bool(true)));
    let (_, _, renewed) =
        request(s.addr, "POST", "/v1/auth/token/renew-self", Some(&periodic), r#"{"increment": "10s"}"#)
            .await;
    assert!(renewed["auth"]["lease_duration"].as_u64().unwrap() > 3500, "{renewed}");
    let (status, _, refused) =
        request(s.addr, "POST", "/v1/auth/token/create", Some(&periodic), r#"{"period": "1h"}"#).await;
    assert_eq!(status, 403, "{refused}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_renewals_racing_uses_never_refill_them_and_limited_tokens_make_no_children() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let root = Some(s.token.as_str());
    let (_, _, made) =
        request(s.addr, "POST", "/v1/auth/token/create", root, r#"{"num_uses": 6, "policies": ["default"]}"#)
            .await;
    let token = made["auth"]["client_token"].as_str().unwrap().to_string();
    // Twelve requests at once, half of them renewals (which used to write back the record they
    // had read, uses and all): exactly six get past authentication (a renewal that spent the last
    // use finds its token gone: 400, not 403).
    let calls: Vec<_> = (0..12)
        .map(|i| {
            let (addr, t) = (s.addr, token.clone());
            tokio::spawn(async move {
                match i % 2 {
                    0 => request(addr, "POST", "/v1/auth/token/renew-self", Some(&t), "{}").await.0,
                    _ => request(addr, "GET", "/v1/auth/token/lookup-self", Some(&t), "").await.0,
                }
            })
        })
        .collect();
    let mut through = 0;
    for c in calls {
        if c.await.unwrap() != 403 {
            through += 1;
        }
    }
    assert_eq!(through, 6);
    assert_eq!(request(s.addr, "GET", "/v1/auth/token/lookup-self", Some(&token), "").await.0, 403);
    // A token with a number of uses makes no child (its last use revokes it, not a child).
    let (_, _, made) =
        request(s.addr, "POST", "/v1/auth/token/create", root, r#"{"num_uses": 5, "policies": ["default"]}"#)
            .await;
    let limited = made["auth"]["client_token"].as_str().unwrap().to_string();
    let (status, _, refused) = request(s.addr, "POST", "/v1/auth/token/create", Some(&limited), "{}").await;
    assert_eq!(status, 403, "{refused}");
    s.stop().await;
}

/// Found by review: fields sent as text, as `vault write path key=value` sends them, were taken
/// and silently ignored — a patch's `cas` (so it wrote over a newer version), a token's
/// `renewable: "false"`. Now text is read as Vault reads it, and what does not read is a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_settings_sent_as_text_were_taken_and_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let (addr, token) = (s.addr, Some(s.token.as_str()));
    for value in ["one", "two"] {
        let body = serde_json::json!({ "data": { "k": value } }).to_string();
        assert_eq!(request(addr, "POST", "/v1/secret/data/p", token, &body).await.0, 200);
    }
    // A patch checked against version 1 while version 2 is the newest: refused.
    let patch = r#"{"data":{"k":"three"},"options":{"cas":"1"}}"#;
    let (status, _, answer) = request(addr, "PATCH", "/v1/secret/data/p", token, patch).await;
    assert_eq!(status, 400, "{answer}");
    let (_, _, read) = request(addr, "GET", "/v1/secret/data/p", token, "").await;
    assert_eq!(read["data"]["data"]["k"], "two");
    let patch = r#"{"data":{"k":"three"},"options":{"cas":"2"}}"#;
    assert_eq!(request(addr, "PATCH", "/v1/secret/data/p", token, patch).await.0, 200);
    let bad = r#"{"data":{"k":"four"},"options":{"cas":"two"}}"#;
    assert_eq!(request(addr, "PATCH", "/v1/secret/data/p", token, bad).await.0, 400);
    // A token asked not renewable, in text, is not renewable; a flag that does not read is a 400.
    let (status, _, made) =
        request(addr, "POST", "/v1/auth/token/create", token, r#"{"renewable":"false","ttl":"1h"}"#).await;
    assert_eq!(status, 200, "{made}");
    assert_eq!(made["auth"]["renewable"], false, "{made}");
    let (status, _, _) =
        request(addr, "POST", "/v1/auth/token/create", token, r#"{"renewable":"nope"}"#).await;
    assert_eq!(status, 400);
    s.stop().await;
}

/// A write answered with the time it answered, not the time its commit recorded: a client that
/// compared the two (or waited for `created_time` to show up in the metadata) saw two times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_write_reported_another_created_time_than_a_read_of_it_shows() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let (addr, token) = (s.addr, Some(s.token.as_str()));
    for n in 1..=8 {
        let (method, body) =
            if n % 2 == 0 { ("PATCH", r#"{"data":{"n":"1"}}"#) } else { ("POST", r#"{"data":{"k":"v"}}"#) };
        let (status, _, written) = request(addr, method, "/v1/secret/data/timed", token, body).await;
        assert_eq!((status, &written["data"]["version"]), (200, &Value::from(n)), "{written}");
        let (_, _, read) = request(addr, "GET", "/v1/secret/data/timed", token, "").await;
        let created = &read["data"]["metadata"]["created_time"];
        assert_eq!(&written["data"]["created_time"], created, "version {n}: {written} / {read}");
        assert!(created.as_str().is_some_and(|t| t.len() > 10), "{read}");
    }
    s.stop().await;
}

/// Vault's KV v2: "to write to a soft deleted key, the cas parameter must match the key's current
/// version" (its newest, deleted); 0 is for a key that never had one. The server compared the
/// live version, so a client doing what Vault documents got a conflict, and `cas=0` wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_cas_on_a_soft_deleted_secret_was_not_vaults() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let (addr, token) = (s.addr, Some(s.token.as_str()));
    let write = |cas: u64| format!(r#"{{"data":{{"k":"v{cas}"}},"options":{{"cas":{cas}}}}}"#);
    assert_eq!(request(addr, "POST", "/v1/secret/data/soft", token, &write(0)).await.0, 200);
    assert_eq!(request(addr, "DELETE", "/v1/secret/data/soft", token, "").await.0, 204);
    let (_, _, meta) = request(addr, "GET", "/v1/secret/metadata/soft", token, "").await;
    assert_eq!(meta["data"]["current_version"], Value::from(1), "{meta}");
    let (status, _, body) = request(addr, "POST", "/v1/secret/data/soft", token, &write(0)).await;
    assert_eq!(status, 400, "{body}");
    let (status, _, body) = request(addr, "POST", "/v1/secret/data/soft", token, &write(1)).await;
    assert_eq!((status, &body["data"]["version"]), (200, &Value::from(2)), "{body}");
    s.stop().await;
}

/// A revocation swept the token tree it found when it began: children the revoked token made
/// meanwhile (a stolen token minting them in a loop, on this server or another) kept working.
/// Here the sweep's miss is made certain: the parent's records go, its child's stay. The child
/// must be refused all the same, and its accessor no longer looked up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_children_made_while_their_parent_was_revoked_survived_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let root = Some(s.token.as_str());
    let policy = r#"{"policy": "path \"auth/token/create\" { capabilities = [\"update\"] }"}"#;
    assert_eq!(request(s.addr, "PUT", "/v1/sys/policies/acl/minter", root, policy).await.0, 204);
    let made = |by: String| async move {
        let (status, _, body) =
            request(s.addr, "POST", "/v1/auth/token/create", Some(&by), r#"{"policies":["minter"]}"#).await;
        assert_eq!(status, 200, "{body}");
        let auth = &body["auth"];
        (auth["client_token"].as_str().unwrap().to_string(), auth["accessor"].as_str().unwrap().to_string())
    };
    let (parent, parent_accessor) = made(s.token.clone()).await;
    let (child, child_accessor) = made(parent.clone()).await;
    let (grandchild, _) = made(child.clone()).await;
    assert_eq!(request(s.addr, "GET", "/v1/auth/token/lookup-self", Some(&grandchild), "").await.0, 200);

    // The parent's record and accessor entry go; its descendants' records stay.
    let vault = reopen(dir.path()).await;
    let index = tresor::path::SecretPath::system(&format!("accessors/{parent_accessor}")).unwrap();
    let tresor::vault::SystemEntry::Current(_, name) = vault.system_entry(&index, None).await.unwrap() else {
        panic!("no accessor entry")
    };
    let name = String::from_utf8(name.as_slice().to_vec()).unwrap();
    vault.delete(tresor::path::SecretPath::system(&format!("tokens/{name}")).unwrap()).await.unwrap();
    vault.delete(index).await.unwrap();

    let lookup = format!(r#"{{"accessor":"{child_accessor}"}}"#);
    for _ in 0..100 {
        if request(s.addr, "GET", "/v1/auth/token/lookup-self", Some(&child), "").await.0 == 403 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for token in [&parent, &child, &grandchild] {
        assert_eq!(request(s.addr, "GET", "/v1/auth/token/lookup-self", Some(token), "").await.0, 403);
    }
    let body = r#"{"policies":["minter"]}"#;
    assert_eq!(request(s.addr, "POST", "/v1/auth/token/create", Some(&child), body).await.0, 403);
    let (status, _, answer) = request(s.addr, "POST", "/v1/auth/token/lookup-accessor", root, &lookup).await;
    assert_eq!(status, 400, "{answer}");
    vault.lock("test").await.unwrap();
    s.stop().await;
}

/// What real clients saw differ from Vault's KV v2 (found by review): deleting a secret that was
/// not there was a 404 (`vault kv delete` of what is gone failed); a patch ignored
/// `cas_required`; a metadata PATCH replaced `custom_metadata` instead of merging it (and refused
/// `null`, which removes a key); after its metadata was deleted a secret could never be made
/// again with `cas=0`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_kv_answers_differed_from_vaults() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let (addr, token) = (s.addr, Some(s.token.as_str()));
    assert_eq!(request(addr, "DELETE", "/v1/secret/data/never/written", token, "").await.0, 204);
    assert_eq!(request(addr, "POST", "/v1/secret/data/k", token, r#"{"data":{"a":"1"}}"#).await.0, 200);
    let meta = r#"{"cas_required":true,"custom_metadata":{"a":"1","b":"2"}}"#;
    assert_eq!(request(addr, "POST", "/v1/secret/metadata/k", token, meta).await.0, 204);
    let (status, _, body) = request(addr, "PATCH", "/v1/secret/data/k", token, r#"{"data":{"a":"2"}}"#).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0], Value::from("check-and-set parameter required for this call"));
    let with_cas = r#"{"data":{"a":"2"},"options":{"cas":1}}"#;
    assert_eq!(request(addr, "PATCH", "/v1/secret/data/k", token, with_cas).await.0, 200);
    let merge = r#"{"custom_metadata":{"b":null,"c":"3"}}"#;
    assert_eq!(request(addr, "PATCH", "/v1/secret/metadata/k", token, merge).await.0, 204);
    let (_, _, meta) = request(addr, "GET", "/v1/secret/metadata/k", token, "").await;
    assert_eq!(meta["data"]["custom_metadata"], serde_json::json!({"a": "1", "c": "3"}), "{meta}");
    // A soft-deleted secret is listed, as Vault lists every secret with metadata.
    assert_eq!(request(addr, "POST", "/v1/secret/data/d/gone", token, r#"{"data":{"a":"1"}}"#).await.0, 200);
    assert_eq!(request(addr, "POST", "/v1/secret/data/d/here", token, r#"{"data":{"a":"1"}}"#).await.0, 200);
    assert_eq!(request(addr, "DELETE", "/v1/secret/data/d/gone", token, "").await.0, 204);
    let (_, _, listed) = request(addr, "LIST", "/v1/secret/metadata/d", token, "").await;
    assert_eq!(listed["data"]["keys"], serde_json::json!(["gone", "here"]), "{listed}");
    assert_eq!(request(addr, "DELETE", "/v1/secret/metadata/k", token, "").await.0, 204);
    let create = r#"{"data":{"a":"new"},"options":{"cas":0}}"#;
    let (status, _, body) = request(addr, "POST", "/v1/secret/data/k", token, create).await;
    assert_eq!(status, 200, "{body}");
    let (_, _, read) = request(addr, "GET", "/v1/secret/data/k", token, "").await;
    assert_eq!(read["data"]["data"]["a"], Value::from("new"), "{read}");
    s.stop().await;
}

/// Found by an attacker's review of tokens and AppRole: a token's `meta` had no bound (2,300
/// children of a megabyte each took the server to 4.8 GB at the next revocation); a refused
/// token left no trace in the audit trail; an AppRole token kept renewing after its role was
/// deleted (Vault refuses: the role is gone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_unbounded_meta_unaudited_refusals_and_renewals_past_a_deleted_role() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let root = Some(s.token.as_str());
    let meta: serde_json::Map<String, Value> = (0..65).map(|i| (format!("k{i}"), Value::from("v"))).collect();
    let body = serde_json::json!({ "meta": meta }).to_string();
    let (status, _, answer) = request(s.addr, "POST", "/v1/auth/token/create", root, &body).await;
    assert_eq!(status, 400, "{answer}");
    let body = serde_json::json!({ "meta": { "k": "v".repeat(513) } }).to_string();
    assert_eq!(request(s.addr, "POST", "/v1/auth/token/create", root, &body).await.0, 400);

    assert_eq!(request(s.addr, "GET", "/v1/secret/data/x", Some("tvs.replayed"), "").await.0, 403);
    let (_, _, trail) = request(s.addr, "GET", "/v1/tresor/audit", root, "").await;
    let refused = trail["data"]["records"].as_array().unwrap().iter().any(|r| {
        r["outcome"].to_string().contains("no live token")
            && r["detail"].as_str().is_some_and(|d| d.contains("secret/data/x"))
            && r["actor"].as_str().is_some_and(|a| a.starts_with("anonymous from"))
    });
    assert!(refused, "{trail}");

    let approle = r#"{"type":"approle"}"#;
    assert_eq!(request(s.addr, "POST", "/v1/sys/auth/approle", root, approle).await.0, 204);
    assert_eq!(
        request(s.addr, "POST", "/v1/auth/approle/role/ci", root, r#"{"token_ttl":"10m"}"#).await.0,
        204
    );
    let (_, _, id) = request(s.addr, "GET", "/v1/auth/approle/role/ci/role-id", root, "").await;
    let (_, _, secret) = request(s.addr, "POST", "/v1/auth/approle/role/ci/secret-id", root, "").await;
    let login =
        format!(r#"{{"role_id":{},"secret_id":{}}}"#, id["data"]["role_id"], secret["data"]["secret_id"]);
    let (status, _, token) = request(s.addr, "POST", "/v1/auth/approle/login", None, &login).await;
    assert_eq!(status, 200, "{token}");
    let token = token["auth"]["client_token"].as_str().unwrap().to_string();
    assert_eq!(request(s.addr, "POST", "/v1/auth/token/renew-self", Some(&token), "{}").await.0, 200);
    assert_eq!(request(s.addr, "DELETE", "/v1/auth/approle/role/ci", root, "").await.0, 204);
    let (status, _, body) = request(s.addr, "POST", "/v1/auth/token/renew-self", Some(&token), "{}").await;
    assert_eq!(status, 400, "{body}");
    s.stop().await;
}

/// How many live system entries `vault` holds under `prefix`, as of the store now.
async fn system_count(vault: &Vault, prefix: &str) -> usize {
    vault.system_entries(prefix).await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_expired_tokens_and_secret_ids_stayed_in_the_vault_for_ever() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let root = Some(s.token.as_str());
    let create = |body: &'static str| async move {
        let (status, _, answer) = request(s.addr, "POST", "/v1/auth/token/create", root, body).await;
        assert_eq!(status, 200, "{answer}");
        answer["auth"]["client_token"].as_str().unwrap().to_string()
    };
    let short = create(r#"{"ttl":"1s","policies":["default"]}"#).await;
    let long = create(r#"{"ttl":"1h","policies":["default"]}"#).await;
    let approle = r#"{"type":"approle"}"#;
    assert_eq!(request(s.addr, "POST", "/v1/sys/auth/approle", root, approle).await.0, 204);
    let role = |body: &'static str, name: &'static str| async move {
        let at = format!("/v1/auth/approle/role/{name}");
        assert_eq!(request(s.addr, "POST", &at, root, body).await.0, 204);
        let (_, _, id) = request(s.addr, "GET", &format!("{at}/role-id"), root, "").await;
        let (_, _, secret) = request(s.addr, "POST", &format!("{at}/secret-id"), root, "").await;
        format!(r#"{{"role_id":{},"secret_id":{}}}"#, id["data"]["role_id"], secret["data"]["secret_id"])
    };
    let fleeting = role(r#"{"secret_id_ttl":"1s"}"#, "fleeting").await;
    let lasting = role(r#"{"secret_id_ttl":"1h"}"#, "lasting").await;

    // A second handle on the same store counts the records the server keeps.
    let mut opts = Options::new(dir.path().join("trust2"), "counter");
    opts.kdf = KdfParams::MINIMUM;
    let location = dir.path().join("vault").display().to_string();
    let counter =
        Vault::unlock(Store::open(&location, false).unwrap(), &Password::from(PASSWORD.to_string()), opts)
            .await
            .unwrap();
    let (tokens, secret_ids) =
        (system_count(&counter, "tokens/").await, system_count(&counter, "approle/secret-ids/").await);
    assert!(tokens >= 3 && secret_ids == 2, "{tokens} token records, {secret_ids} secret IDs");
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // A token without the capability may not start a tidy.
    assert_eq!(request(s.addr, "POST", "/v1/auth/token/tidy", Some(&long), "").await.0, 403);
    for route in ["/v1/auth/token/tidy", "/v1/auth/approle/tidy/secret-id"] {
        let (status, _, answer) = request(s.addr, "POST", route, root, "").await;
        assert_eq!(status, 202, "{route}: {answer}");
        assert!(answer["warnings"][0].as_str().unwrap().contains("Tidy operation"), "{answer}");
    }
    let mut tidied = false;
    for _ in 0..100 {
        if system_count(&counter, "tokens/").await == tokens - 1
            && system_count(&counter, "accessors/").await == tokens - 1
            && system_count(&counter, "approle/secret-ids/").await == 1
            && system_count(&counter, "approle/secret-id-accessors/").await == 1
        {
            tidied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(tidied, "the expired token and secret ID were not removed");
    // What is live still works; what expired still does not.
    assert_eq!(request(s.addr, "GET", "/v1/auth/token/lookup-self", Some(&long), "").await.0, 200);
    assert_eq!(request(s.addr, "GET", "/v1/auth/token/lookup-self", Some(&short), "").await.0, 403);
    assert_eq!(request(s.addr, "POST", "/v1/auth/approle/login", None, &lasting).await.0, 200);
    assert_eq!(request(s.addr, "POST", "/v1/auth/approle/login", None, &fleeting).await.0, 400);
    drop(counter);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_the_sixty_fourth_token_of_a_chain_was_made_dead() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let mut parent = s.token.clone();
    for depth in 1..=63 {
        let body = r#"{"policies":["root"],"ttl":"1h"}"#;
        let (status, _, answer) = request(s.addr, "POST", "/v1/auth/token/create", Some(&parent), body).await;
        assert_eq!(status, 200, "depth {depth}: {answer}");
        parent = answer["auth"]["client_token"].as_str().unwrap().to_string();
    }
    // The deepest token there may be works...
    assert_eq!(request(s.addr, "GET", "/v1/auth/token/lookup-self", Some(&parent), "").await.0, 200);
    // ...and one below it is refused, not made dead.
    let body = r#"{"policies":["root"],"ttl":"1h"}"#;
    let (status, _, answer) = request(s.addr, "POST", "/v1/auth/token/create", Some(&parent), body).await;
    assert_eq!(status, 403, "{answer}");
    assert!(answer.to_string().contains("nest at most 63"), "{answer}");
    // An orphan made by a root token starts a chain of its own.
    let (status, _, _) = request(s.addr, "POST", "/v1/auth/token/create-orphan", Some(&parent), body).await;
    assert_eq!(status, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_max_versions_hid_old_versions_instead_of_destroying_them() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let root = Some(s.token.as_str());
    let write = |n: u64| async move {
        let body = format!(r#"{{"data":{{"password":"old-{n}"}}}}"#);
        let (status, _, answer) = request(s.addr, "POST", "/v1/secret/data/db", root, &body).await;
        assert_eq!((status, &answer["data"]["version"]), (200, &Value::from(n)), "{answer}");
    };
    let max = |n: u64| async move {
        let body = format!(r#"{{"max_versions":{n}}}"#);
        assert_eq!(request(s.addr, "POST", "/v1/secret/metadata/db", root, &body).await.0, 204);
    };
    // Which versions are destroyed, with every version shown (max_versions 0).
    let destroyed = || async move {
        max(0).await;
        let (status, _, meta) = request(s.addr, "GET", "/v1/secret/metadata/db", root, "").await;
        assert_eq!(status, 200, "{meta}");
        let mut out: Vec<u64> = meta["data"]["versions"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, v)| v["destroyed"] == Value::Bool(true))
            .map(|(k, _)| k.parse().unwrap())
            .collect();
        out.sort();
        out
    };
    for n in 1..=5 {
        write(n).await;
    }
    // Lowering max_versions destroys nothing by itself, as in Vault (a settings write is not a
    // data write); the next write destroys every version it leaves behind.
    max(2).await;
    assert_eq!(destroyed().await, Vec::<u64>::new());
    max(2).await;
    write(6).await;
    assert_eq!(destroyed().await, vec![1, 2, 3, 4]);
    let (status, _, old) = request(s.addr, "GET", "/v1/secret/data/db?version=1", root, "").await;
    assert_eq!((status, &old["data"]["data"]), (404, &Value::Null), "{old}");
    let (status, _, kept) = request(s.addr, "GET", "/v1/secret/data/db?version=5", root, "").await;
    assert_eq!((status, &kept["data"]["data"]["password"]), (200, &Value::from("old-5")), "{kept}");
    // So does a write under the mount's setting, for a secret with none of its own.
    assert_eq!(request(s.addr, "POST", "/v1/secret/config", root, r#"{"max_versions":1}"#).await.0, 204);
    write(7).await;
    assert_eq!(request(s.addr, "POST", "/v1/secret/config", root, r#"{"max_versions":0}"#).await.0, 204);
    assert_eq!(destroyed().await, vec![1, 2, 3, 4, 5, 6]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_delete_version_after_applied_to_versions_written_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let root = Some(s.token.as_str());
    let body = r#"{"data":{"k":"v"}}"#;
    assert_eq!(request(s.addr, "POST", "/v1/secret/data/t", root, body).await.0, 200);
    let setting = r#"{"delete_version_after":"1s"}"#;
    assert_eq!(request(s.addr, "POST", "/v1/secret/metadata/t", root, setting).await.0, 204);
    let (status, _, second) = request(s.addr, "POST", "/v1/secret/data/t", root, body).await;
    assert_eq!(status, 200);
    assert!(second["data"]["deletion_time"].as_str().is_some_and(|t| !t.is_empty()), "{second}");
    // The mount's own setting binds only what is written after it, too (review: it deleted every
    // secret of the mount at once).
    let mount = r#"{"delete_version_after":"1s"}"#;
    assert_eq!(request(s.addr, "POST", "/v1/secret/config", root, mount).await.0, 204);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    // The version written under the setting is deleted now; the one before it is not.
    let (status, _, read) = request(s.addr, "GET", "/v1/secret/data/t?version=2", root, "").await;
    assert_eq!((status, &read["data"]["data"]), (404, &Value::Null), "{read}");
    let (status, _, read) = request(s.addr, "GET", "/v1/secret/data/t?version=1", root, "").await;
    assert_eq!((status, &read["data"]["data"]["k"]), (200, &Value::from("v")), "{read}");
    assert_eq!(read["data"]["metadata"]["deletion_time"], "", "{read}");
    let (_, _, meta) = request(s.addr, "GET", "/v1/secret/metadata/t", root, "").await;
    assert_eq!(meta["data"]["delete_version_after"], "1s", "{meta}");
    let (_, _, config) = request(s.addr, "GET", "/v1/secret/config", root, "").await;
    assert_eq!(config["data"]["delete_version_after"], "1s", "{config}");
    assert_eq!(request(s.addr, "POST", "/v1/secret/config", root, r#""notjson""#).await.0, 400);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subkeys_show_a_secrets_fields_to_a_token_that_may_not_read_its_values() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let root = Some(s.token.as_str());
    let body = r#"{"data":{"user":"app","password":"hunter2","tls":{"cert":"c","key":"k"}}}"#;
    assert_eq!(request(s.addr, "POST", "/v1/secret/data/db", root, body).await.0, 200);
    let policy = serde_json::json!({ "policy": r#"path "secret/subkeys/*" { capabilities = ["read"] }"# });
    assert_eq!(request(s.addr, "PUT", "/v1/sys/policies/acl/fields", root, &policy.to_string()).await.0, 204);
    let (_, _, made) =
        request(s.addr, "POST", "/v1/auth/token/create", root, r#"{"policies":["fields"]}"#).await;
    let fields = made["auth"]["client_token"].as_str().unwrap().to_string();
    let (status, _, keys) = request(s.addr, "GET", "/v1/secret/subkeys/db", Some(&fields), "").await;
    assert_eq!(status, 200, "{keys}");
    assert_eq!(
        keys["data"]["subkeys"],
        serde_json::json!({ "user": null, "password": null, "tls": { "cert": null, "key": null } })
    );
    assert_eq!(keys["data"]["metadata"]["version"], 1, "{keys}");
    assert!(!keys.to_string().contains("hunter2"), "{keys}");
    let (_, _, shallow) = request(s.addr, "GET", "/v1/secret/subkeys/db?depth=1", Some(&fields), "").await;
    assert_eq!(shallow["data"]["subkeys"]["tls"], Value::Null, "{shallow}");
    assert_eq!(request(s.addr, "GET", "/v1/secret/data/db", Some(&fields), "").await.0, 403);
    assert_eq!(request(s.addr, "GET", "/v1/secret/subkeys/db?depth=x", Some(&fields), "").await.0, 400);
    assert_eq!(request(s.addr, "GET", "/v1/secret/subkeys/nothing", Some(&fields), "").await.0, 404);
    // A deleted version answers its metadata with a 404, as a data read does.
    assert_eq!(request(s.addr, "DELETE", "/v1/secret/data/db", root, "").await.0, 204);
    let (status, _, gone) = request(s.addr, "GET", "/v1/secret/subkeys/db", Some(&fields), "").await;
    assert_eq!((status, &gone["data"]["subkeys"]), (404, &Value::Null), "{gone}");
    s.stop().await;
}

/// Starts a token tidy once none runs (a tidy answers 200, "already in progress", while one
/// does), then waits until that one has ended too.
async fn tidy_to_the_end(addr: SocketAddr, root: &str) {
    let mut started = 0;
    for _ in 0..600 {
        let (status, _, answer) = request(addr, "POST", "/v1/auth/token/tidy", Some(root), "").await;
        match status {
            202 => started += 1,
            200 => assert!(answer.to_string().contains("already in progress"), "{answer}"),
            _ => panic!("tidy: {status} {answer}"),
        }
        if started == 2 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("a tidy never ended");
}

/// Found by review: a tidy read the records, then the accessor entries, so the entry of a
/// token made between the two was taken for stale and removed (the token could no longer be
/// revoked by accessor, its children were dead at birth, and the next tidy deleted it); a
/// secret ID being made lost its accessor entry the same way; and 300 tidies at once held
/// 1.8 GB. Tokens and secret IDs made while tidies run stay whole, and one tidy runs at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_tidy_broke_tokens_and_secret_ids_made_while_it_ran() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let (addr, root) = (s.addr, s.token.clone());
    let create = move |root: String| async move {
        let (status, _, made) =
            request(addr, "POST", "/v1/auth/token/create", Some(&root), r#"{"ttl":"1h"}"#).await;
        assert_eq!(status, 200, "{made}");
        (
            made["auth"]["client_token"].as_str().unwrap().to_string(),
            made["auth"]["accessor"].as_str().unwrap().to_string(),
        )
    };
    // Enough records that a tidy takes a while.
    let mut filler = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let root = root.clone();
        filler.spawn(async move {
            for _ in 0..50 {
                create(root.clone()).await;
            }
        });
    }
    filler.join_all().await;
    assert_eq!(
        request(addr, "POST", "/v1/sys/auth/approle", Some(&root), r#"{"type":"approle"}"#).await.0,
        204
    );
    assert_eq!(request(addr, "POST", "/v1/auth/approle/role/ci", Some(&root), "{}").await.0, 204);
    // Tidies, one after another, while tokens and secret IDs are made.
    let tidies = {
        let root = root.clone();
        tokio::spawn(async move {
            let mut in_progress = 0;
            for _ in 0..40 {
                let (status, _, _) = request(addr, "POST", "/v1/auth/token/tidy", Some(&root), "").await;
                in_progress += usize::from(status == 200);
                let _ = request(addr, "POST", "/v1/auth/approle/tidy/secret-id", Some(&root), "").await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            in_progress
        })
    };
    let mut makers = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let root = root.clone();
        makers.spawn(async move {
            let mut made = Vec::new();
            for _ in 0..15 {
                made.push(create(root.clone()).await);
                let (_, _, secret) =
                    request(addr, "POST", "/v1/auth/approle/role/ci/secret-id", Some(&root), "").await;
                made.push(("".into(), secret["data"]["secret_id_accessor"].as_str().unwrap().to_string()));
            }
            made
        });
    }
    let made: Vec<(String, String)> = makers.join_all().await.into_iter().flatten().collect();
    assert!(tidies.await.unwrap() > 0, "a tidy asked for while one ran is refused, not started twice");
    tidy_to_the_end(addr, &root).await;
    tidy_to_the_end(addr, &root).await;
    for (token, accessor) in &made {
        if token.is_empty() {
            // A secret ID: still destroyable by its accessor.
            let body = serde_json::json!({ "secret_id_accessor": accessor }).to_string();
            let (status, _, answer) = request(
                addr,
                "POST",
                "/v1/auth/approle/role/ci/secret-id-accessor/destroy",
                Some(&root),
                &body,
            )
            .await;
            assert_eq!(status, 204, "secret ID {accessor}: {answer}");
            continue;
        }
        assert_eq!(request(addr, "GET", "/v1/auth/token/lookup-self", Some(token), "").await.0, 200);
        let body = serde_json::json!({ "accessor": accessor }).to_string();
        let (status, _, answer) =
            request(addr, "POST", "/v1/auth/token/lookup-accessor", Some(&root), &body).await;
        assert_eq!(status, 200, "token {accessor}: {answer}");
    }
    s.stop().await;
}

/// Found by review: a tidy on a server whose reads lag (within its staleness bound) deleted a
/// token that another server had just renewed. A tidy decides on the store as it is now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_tidy_on_a_lagging_server_deleted_a_token_renewed_on_another() {
    let dir = tempfile::tempdir().unwrap();
    // A reads the store at every request; B lags as far as its bound lets it.
    let (root, servers) =
        servers_on_one_vault(dir.path(), &[Duration::ZERO, Duration::from_secs(3600)]).await;
    let (a, b) = (&servers[0], &servers[1]);
    let as_root = [("X-Vault-Token", root.as_str())];
    let body = r#"{"ttl":"3s","renewable":true}"#;
    let (status, index, made) = request_with(a.addr, "POST", "/v1/auth/token/create", &as_root, body).await;
    assert_eq!(status, 200, "{made}");
    let token = made["auth"]["client_token"].as_str().unwrap().to_string();
    // B sees the token as made (and, with its bound, nothing after).
    let seen = [("X-Vault-Token", token.as_str()), ("X-Vault-Index", index.as_deref().unwrap())];
    assert_eq!(request_with(b.addr, "GET", "/v1/auth/token/lookup-self", &seen, "").await.0, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let as_token = [("X-Vault-Token", token.as_str())];
    let (status, _, renewed) =
        request_with(a.addr, "POST", "/v1/auth/token/renew-self", &as_token, r#"{"increment":"1h"}"#).await;
    assert_eq!(status, 200, "{renewed}");
    // Past the token's first end: B's own view has it expired.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    tidy_to_the_end(b.addr, &root).await;
    assert_eq!(request_with(a.addr, "GET", "/v1/auth/token/lookup-self", &as_token, "").await.0, 200);
    for s in servers {
        s.stop().await;
    }
}

/// Found by review: an AppRole login read the role ID's entry as an audited read, so every role
/// ID that logged in (or was tried) was in the audit trail's paths, for any token that may read
/// the trail — half of the credential. No record names a role ID now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_role_ids_were_written_into_the_audit_trail() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let root = Some(s.token.as_str());
    assert_eq!(request(s.addr, "POST", "/v1/sys/auth/approle", root, r#"{"type":"approle"}"#).await.0, 204);
    assert_eq!(request(s.addr, "POST", "/v1/auth/approle/role/ci", root, "{}").await.0, 204);
    let (_, _, id) = request(s.addr, "GET", "/v1/auth/approle/role/ci/role-id", root, "").await;
    let role_id = id["data"]["role_id"].as_str().unwrap().to_string();
    let (_, _, secret) = request(s.addr, "POST", "/v1/auth/approle/role/ci/secret-id", root, "").await;
    let login = format!(r#"{{"role_id":"{role_id}","secret_id":{}}}"#, secret["data"]["secret_id"]);
    assert_eq!(request(s.addr, "POST", "/v1/auth/approle/login", None, &login).await.0, 200);
    let wrong = format!(r#"{{"role_id":"{role_id}","secret_id":"nope"}}"#);
    assert_eq!(request(s.addr, "POST", "/v1/auth/approle/login", None, &wrong).await.0, 400);
    let (status, _, trail) = request(s.addr, "GET", "/v1/tresor/audit", root, "").await;
    assert_eq!(status, 200);
    let named: Vec<&Value> = trail["data"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r.to_string().contains(&role_id))
        .collect();
    assert!(named.is_empty(), "records naming the role ID: {named:?}");
    s.stop().await;
}
