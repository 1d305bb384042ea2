//! The agent under load: a load generator with 16 clients over the Unix socket (threads, one
//! request per connection as the CLI sends them), against a real agent on a real vault directory
//! under `TMPDIR`. Prints reads/s (every read audited) with p50/p99 latency, puts/s through
//! group commit, one client writing one secret at a time, and the durability mode of each figure.
//! `cargo bench -p tresor-server --bench agent_load`; `TRESOR_BENCH_OPS` sets the requests per
//! phase (default 40,000), `TRESOR_BENCH_CLIENTS` the clients (default 16).
#![allow(clippy::unwrap_used, clippy::expect_used)] // A benchmark that cannot run should stop loudly.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tresor::{KdfParams, Options, Password, Store, Vault};
use tresor_server::agent::serve;
use tresor_server::{AgentConfig, bind};
use tresor_wire::{Call, Failure, GetStatus, SecretBuf, Set, Unlock, client};

const PASSWORD: &str = "benchmark password, not a secret";
/// Secrets the read phase picks from.
const PRELOADED: usize = 1000;

fn opts(trust: &Path) -> Options {
    let mut o = Options::new(trust, "bench");
    o.kdf = KdfParams::MINIMUM;
    o
}

/// One call over the socket; its reply, or a panic naming the failure.
fn request<C: Call>(socket: &Path, call: &C) -> C::Reply {
    match client::call(socket, call, Duration::from_secs(120)).unwrap().expect("the agent answered nothing") {
        Ok(reply) => reply,
        Err(Failure::Error(e)) => panic!("the call failed: {e}"),
        Err(Failure::Locked) => panic!("the agent is locked"),
    }
}

fn put(socket: &Path, path: String) {
    let value = tresor_crypto::random_bytes(64).unwrap();
    request(
        socket,
        &Set { op: tresor::model::AuditOp::Set, items: vec![(path, SecretBuf::new(value))], cas: None },
    );
}

fn get(socket: &Path, path: String) {
    let value = request(socket, &tresor_wire::Get { path, version: None });
    assert_eq!(value.value.0.len(), 64);
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
    let config = AgentConfig {
        location,
        backend: tresor_backend::BackendConfig::default(),
        options: Box::new(move || opts(&trust)),
        idle: Duration::from_secs(3600),
        sync_every: None,
        relay_ca: None,
    };
    runtime.spawn(serve(listener, config));
    request(&socket, &Unlock { password: SecretBuf::new(PASSWORD.as_bytes().to_vec()) });
    socket
}

/// Runs `ops` requests from `clients` threads; each request's latency, sorted, the wall time, and
/// the cores kept busy meanwhile (clients and agent together: they share this process).
fn load(clients: usize, ops: usize, each: impl Fn(usize, usize) + Sync) -> (Vec<Duration>, Duration, f64) {
    let (start, cpu) = (Instant::now(), tresor_testkit::bench::cpu_seconds());
    let mut latencies: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let each = &each;
                scope.spawn(move || {
                    (0..ops / clients)
                        .map(|i| {
                            let t = Instant::now();
                            each(c, i);
                            t.elapsed()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let took = start.elapsed();
    let busy = (tresor_testkit::bench::cpu_seconds() - cpu) / took.as_secs_f64();
    latencies.sort_unstable();
    (latencies, took, busy)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e3
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let env =
        |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let ops = env("TRESOR_BENCH_OPS", 40_000);
    let clients = env("TRESOR_BENCH_CLIENTS", 16);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let socket = start(tmp.path(), &runtime);
    for i in 0..PRELOADED / 100 {
        let items = (0..100)
            .map(|j| (format!("pre/secret-{:04}", i * 100 + j), SecretBuf::new(vec![7u8; 64])))
            .collect();
        request(&socket, &Set { op: tresor::model::AuditOp::Import, items, cas: None });
    }
    let status = |socket: &Path| request(socket, &GetStatus);
    let before = status(&socket);

    let (lat, took, busy) =
        load(clients, ops, |c, i| get(&socket, format!("pre/secret-{:04}", (c * 7919 + i * 31) % PRELOADED)));
    let after = status(&socket);
    println!(
        "agent-load: reads, {clients} clients: {} gets in {:.2} s = {:.0} reads/s, p50 {:.2} ms, p99 {:.2} ms; \
         {} audit entries ({:.1} reads per entry), {busy:.1} cores busy [durability: each read's audit entry written before its \
         value is returned, fsynced with the next commit or every 64 entries]",
        lat.len(),
        took.as_secs_f64(),
        lat.len() as f64 / took.as_secs_f64(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        after.audit_records - before.audit_records,
        lat.len() as f64 / (after.audit_records - before.audit_records).max(1) as f64,
    );

    let (lat, took, busy) = load(clients, ops / 4, |c, i| put(&socket, format!("w/c{c}/secret-{i:06}")));
    let done = status(&socket);
    println!(
        "agent-load: writes, {clients} clients: {} puts in {:.2} s = {:.0} puts/s, p50 {:.2} ms, p99 {:.2} ms; \
         {} commits ({:.1} puts per commit), {busy:.1} cores busy [durability: blob, audit entry and commit fsynced before the answer]",
        lat.len(),
        took.as_secs_f64(),
        lat.len() as f64 / took.as_secs_f64(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        done.commits - after.commits,
        lat.len() as f64 / (done.commits - after.commits).max(1) as f64,
    );

    let n = (ops / 40).max(100);
    let (lat, took, busy) = load(1, n, |_, i| put(&socket, format!("one/secret-{i:06}")));
    println!(
        "agent-load: writes, 1 client: {} puts in {:.2} s = {:.0} puts/s, p50 {:.2} ms, {busy:.1} cores busy \
         [durability: as above]",
        lat.len(),
        took.as_secs_f64(),
        lat.len() as f64 / took.as_secs_f64(),
        percentile(&lat, 0.5),
    );
    let _ = client::call(&socket, &tresor_wire::Lock, Duration::from_secs(60));
}
