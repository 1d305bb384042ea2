//! Group commit in the agent: `set` requests that arrive together are committed together, each
//! client still gets its own answer (its versions, or its own error), and nothing is lost or
//! written twice. A real agent on a Unix socket, real clients on threads, a real vault directory.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use std::path::{Path, PathBuf};
use std::time::Duration;
use tresor::{Category, KdfParams, Options, Password, Store, Vault};
use tresor_server::agent::serve;
use tresor_server::{AgentConfig, bind};
use tresor_wire::{Call, Failure, GetStatus, Lock, Reply, SecretBuf, Set, Unlock, Verify, client};

const PASSWORD: &str = "correct horse battery staple";

fn opts(trust: &Path) -> Options {
    let mut o = Options::new(trust, "test");
    o.kdf = KdfParams::MINIMUM;
    o
}

fn ask<C: Call>(socket: &Path, call: &C) -> Reply<C::Reply> {
    client::call(socket, call, Duration::from_secs(120)).unwrap().unwrap()
}

/// [`ask`] for a call that must succeed.
fn ok<C: Call>(socket: &Path, call: &C) -> C::Reply {
    match ask(socket, call) {
        Ok(reply) => reply,
        Err(Failure::Error(e)) => panic!("the call failed: {e}"),
        Err(Failure::Locked) => panic!("the agent is locked"),
    }
}

fn set(path: &str, value: &[u8]) -> Set {
    Set {
        op: tresor::model::AuditOp::Set,
        items: vec![(path.to_string(), SecretBuf::new(value.to_vec()))],
        cas: None,
    }
}

struct Agent {
    _tmp: tempfile::TempDir,
    socket: PathBuf,
    location: String,
    trust: PathBuf,
    runtime: tokio::runtime::Runtime,
}

fn start_agent() -> Agent {
    let tmp = tempfile::tempdir().unwrap();
    let location = tmp.path().join("vault").to_str().unwrap().to_string();
    let trust = tmp.path().join("trust");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let store = Store::open(&location, true).unwrap();
        Vault::init(store, &Password::from(PASSWORD.to_string()), opts(&trust)).await.unwrap();
    });
    let run = tmp.path().join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let socket = run.join("agent.sock");
    let listener = runtime.block_on(async { bind(&socket) }).unwrap();
    let config = AgentConfig {
        location: location.clone(),
        backend: tresor_backend::BackendConfig::default(),
        options: Box::new({
            let trust = trust.clone();
            move || opts(&trust)
        }),
        idle: Duration::from_secs(600),
        sync_every: None,
        relay_ca: None,
    };
    runtime.spawn(serve(listener, config));
    ok(&socket, &Unlock { password: SecretBuf::new(PASSWORD.as_bytes().to_vec()) });
    Agent { _tmp: tmp, socket, location, trust, runtime }
}

#[test]
fn concurrent_sets_share_commits_and_each_gets_its_own_answer() {
    let agent = start_agent();
    const THREADS: usize = 16;
    const PER_THREAD: usize = 25;
    let socket = agent.socket.clone();
    let answers: Vec<Vec<(String, Reply<Vec<u64>>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let socket = socket.clone();
                scope.spawn(move || {
                    let mut out = Vec::new();
                    for i in 0..PER_THREAD {
                        // Every thread also writes one shared secret, and one bad path.
                        let path = match i {
                            7 => "shared/counter".to_string(),
                            13 => format!("bad//path-{t}"),
                            _ => format!("t{t}/s{i}"),
                        };
                        let answer = ask(&socket, &set(&path, format!("{t}:{i}").as_bytes()));
                        out.push((path, answer));
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut shared_versions = Vec::new();
    for (path, answer) in answers.iter().flatten() {
        match (path.as_str(), answer) {
            (p, Err(Failure::Error(e))) if p.starts_with("bad//") => {
                assert_eq!(e.category(), Category::Invalid, "{p}")
            }
            ("shared/counter", Ok(v)) => shared_versions.extend(v.iter().copied()),
            (p, Ok(v)) => assert_eq!(v, &[1], "{p}"),
            (p, _) => panic!("unexpected answer for {p}"),
        }
    }
    // The shared secret: one version per writer, each number handed out once.
    shared_versions.sort_unstable();
    assert_eq!(shared_versions, (1..=THREADS as u64).collect::<Vec<_>>());
    let status = ok(&agent.socket, &GetStatus);
    let writes = THREADS * (PER_THREAD - 1);
    assert_eq!(status.secrets, THREADS * (PER_THREAD - 2) + 1);
    // Fewer commits than writes: requests that arrived together were committed together.
    assert!((status.commits as usize) < writes, "{} commits for {writes} writes", status.commits);
    ok(&agent.socket, &Verify);
    ok(&agent.socket, &Lock);
    // Everything is there for a fresh reader, with the value its writer sent.
    agent.runtime.block_on(async {
        let store = Store::open(&agent.location, false).unwrap();
        let v =
            Vault::unlock(store, &Password::from(PASSWORD.to_string()), opts(&agent.trust)).await.unwrap();
        for t in 0..THREADS {
            for i in (0..PER_THREAD).filter(|i| *i != 7 && *i != 13) {
                let value = v.get(&format!("t{t}/s{i}"), None).await.unwrap();
                assert_eq!(value.as_slice(), format!("{t}:{i}").as_bytes());
            }
        }
        assert_eq!(v.history("shared/counter").await.unwrap().len(), THREADS);
    });
    println!(
        "T15-agent-group: {writes} concurrent sets from {THREADS} clients in {} commits, {} invalid refused alone, 0 lost",
        status.commits - 1,
        THREADS
    );
}

/// Issue 12, item 10: `unlock` sent to an agent that is already unlocked used to answer success
/// whatever the password. It is checked, and a wrong one is remembered as a failed attempt.
#[test]
fn regression_unlock_on_an_unlocked_agent_checks_the_password() {
    let agent = start_agent();
    let unlock = |pw: &str| ask(&agent.socket, &Unlock { password: SecretBuf::new(pw.as_bytes().to_vec()) });
    match unlock("not the password at all") {
        Err(Failure::Error(e)) => assert!(matches!(e, tresor::Error::AuthFailed), "{e}"),
        _ => panic!("a wrong password was accepted by an unlocked agent"),
    }
    assert!(unlock(PASSWORD).is_ok());
    // The wrong attempt waits, on this machine, to be reported and audited at the next unlock.
    let status = ok(&agent.socket, &GetStatus);
    let mut id = [0u8; 16];
    hex::decode_to_slice(&status.vault_id, &mut id).unwrap();
    let failed = tresor::trust::TrustStore::new(&agent.trust).failed_attempts(&id, &status.location).unwrap();
    assert_eq!(failed.len(), 1);
    ok(&agent.socket, &Lock);
}
