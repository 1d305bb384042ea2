//! Puts per second through the agent, with and without group commit at work: one client writing
//! one secret at a time, then 4 writers with 32 connections each in flight (the agent commits
//! whatever arrived together in one commit). A real agent on a Unix socket and a real vault
//! directory under `TMPDIR`. `cargo bench -p tresor-server --bench agent_puts`; `TRESOR_BENCH_PUTS`
//! sets the number of puts per run (default 20,000).
#![allow(clippy::unwrap_used, clippy::expect_used)] // A benchmark that cannot run should stop loudly.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tresor::{KdfParams, Options, Password, Store, Vault};
use tresor_server::protocol::{Request, Response, SecretBuf};
use tresor_server::{AgentConfig, bind, client, serve};

const PASSWORD: &str = "benchmark password, not a secret";

fn opts(trust: &Path) -> Options {
    let mut o = Options::new(trust, "bench");
    o.kdf = KdfParams::MINIMUM;
    o
}

fn put(socket: &Path, path: String) {
    let value = tresor_crypto::random_bytes(64).unwrap();
    let req = Request::Set { op: "set".into(), items: vec![(path, SecretBuf::new(value))], cas: None };
    match client::request(socket, &req, Duration::from_secs(120)).unwrap() {
        Some(Response::Versions(_)) => {}
        _ => panic!("set failed"),
    }
}

fn start(root: &Path, runtime: &tokio::runtime::Runtime) -> PathBuf {
    let location = root.join("vault").to_str().unwrap().to_string();
    let trust = root.join("trust");
    runtime.block_on(async {
        let store = Store::open(&location, true).unwrap();
        Vault::init(store, &Password::from(PASSWORD.to_string()), opts(&trust)).await.unwrap();
    });
    let run = root.join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let socket = run.join("agent.sock");
    let listener = runtime.block_on(async { bind(&socket) }).unwrap();
    let config =
        AgentConfig { location, options: Box::new(move || opts(&trust)), idle: Duration::from_secs(3600) };
    runtime.spawn(serve(listener, config));
    let unlock = Request::Unlock { password: SecretBuf::new(PASSWORD.as_bytes().to_vec()) };
    client::request(&socket, &unlock, Duration::from_secs(60)).unwrap();
    socket
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let puts: usize = std::env::var("TRESOR_BENCH_PUTS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    for (writers, in_flight) in [(1usize, 1usize), (4, 32)] {
        let tmp = tempfile::tempdir().unwrap();
        let socket = start(tmp.path(), &runtime);
        let n = if writers == 1 { puts / 10 } else { puts };
        let start = Instant::now();
        std::thread::scope(|scope| {
            for w in 0..writers {
                for c in 0..in_flight {
                    let socket = socket.clone();
                    scope.spawn(move || {
                        let mine = n / writers / in_flight;
                        for i in 0..mine {
                            put(&socket, format!("w{w}/c{c}/secret-{i:06}"));
                        }
                    });
                }
            }
        });
        let took = start.elapsed();
        let status = match client::request(&socket, &Request::Status, Duration::from_secs(60)).unwrap() {
            Some(Response::Status(s)) => s,
            _ => panic!("no status"),
        };
        println!(
            "agent-puts: {writers} writer(s) x {in_flight} in flight: {n} puts in {:.2} s = {:.0} puts/s, {} commits ({:.1} puts/commit)",
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64(),
            status.commits - 1,
            n as f64 / (status.commits - 1) as f64
        );
        let _ = client::request(&socket, &Request::Lock, Duration::from_secs(60));
    }
}
