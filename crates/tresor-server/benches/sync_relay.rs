//! Sync through a real relay on loopback (the relay in this process, on a real directory; the
//! members are tresor-sync's, talking HTTP to it): the time from a write on one member to its
//! visibility on another (median, p99), the cells and bytes the relay stores per synced secret,
//! and the initial sync of many secrets by a new reader. The physical floor in the same run: one
//! HTTP round trip to the relay, and one durable append of a single cell.
//! `cargo bench -p tresor-server --bench sync_relay`; `TRESOR_BENCH_SYNC_SECRETS` sets the
//! secrets of the initial sync (default 10,000), `TRESOR_BENCH_SYNC_ROUNDS` the latency samples
//! (default 300).
#![allow(clippy::unwrap_used, clippy::expect_used)] // A benchmark that cannot run should stop loudly.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use tresor_crypto::slip10::Ed25519Node;
use tresor_crypto::{Key, SecretBytes};
use tresor_server::relay::{RelaySettings, launch};
use tresor_sync::event::Op;
use tresor_sync::member::Identity;
use tresor_sync::peer::{Group, Peer, Timing};
use tresor_sync::relay::{RelayClient, sync_once};
use tresor_sync::replica::View;

const GROUP: [u8; 32] = [0x17; 32];

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn identity(n: u8) -> Identity {
    Identity::derive(&Ed25519Node::master(&[n + 1; 32]), &GROUP, 0)
}

/// Two members of one group (alice writes, bob reads), every round a heartbeat.
fn pair() -> (Peer, Peer) {
    let group = Group {
        id: GROUP,
        admin: identity(0).id(),
        epoch: 0,
        members: vec![identity(0).key(), identity(1).key()],
    };
    let key = Key::generate().unwrap();
    let timing = Timing { heartbeat: 1, skew: 0, grace: 3600 };
    let alice = Peer::new(identity(0), group.clone(), &key, "team", timing, 0).unwrap();
    let bob = Peer::new(identity(1), group, &key, "team", timing, 0).unwrap();
    (alice, bob)
}

fn stored(dir: &Path) -> (u64, u64) {
    let bytes: u64 = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    (bytes / 1024, bytes)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn main() {
    tresor_backend::install_tls_provider();
    let rounds = env("TRESOR_BENCH_SYNC_ROUNDS", 300);
    let secrets = env("TRESOR_BENCH_SYNC_SECRETS", 10_000);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay");
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(launch(
        RelaySettings { data: data.clone(), tls: None, quota: Default::default() },
        listener,
        async {
            let _ = stopped.await;
        },
    ));
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let relay = RelayClient::new(url.parse().unwrap(), http.clone());

    // The floor: one HTTP round trip, and one durable append of one cell.
    let health = format!("{url}v1/relay/health");
    let mut trips: Vec<Duration> = (0..200)
        .map(|_| {
            let start = Instant::now();
            rt.block_on(http.get(&health).send()).unwrap();
            start.elapsed()
        })
        .collect();
    trips.sort();
    let cell = vec![0u8; 1024];
    let mut appends: Vec<Duration> = (0..100)
        .map(|_| {
            let start = Instant::now();
            rt.block_on(http.post(format!("{url}v1/relay/{}", "ee".repeat(32))).body(cell.clone()).send())
                .unwrap();
            start.elapsed()
        })
        .collect();
    appends.sort();
    std::fs::remove_file(data.join(format!("{}.cells", "ee".repeat(32)))).unwrap();

    // Write-to-visible latency: alice writes one secret and syncs; bob syncs until he sees it.
    let (mut alice, mut bob) = pair();
    let (mut ca, mut cb) = (BTreeMap::new(), BTreeMap::new());
    let mut now = 1;
    rt.block_on(sync_once(&mut alice, &relay, &mut ca, now)).unwrap();
    rt.block_on(sync_once(&mut bob, &relay, &mut cb, now)).unwrap();
    let before = stored(&data);
    let mut latencies = Vec::with_capacity(rounds);
    for i in 0..rounds {
        now += 1;
        let path = format!("service/{i}/password");
        let start = Instant::now();
        alice.write(vec![Op::Put { path: path.clone(), value: SecretBytes::new(vec![7; 32]) }], now).unwrap();
        rt.block_on(sync_once(&mut alice, &relay, &mut ca, now)).unwrap();
        loop {
            rt.block_on(sync_once(&mut bob, &relay, &mut cb, now)).unwrap();
            if matches!(bob.replica().view(&path), View::Value(..)) {
                break;
            }
        }
        latencies.push(start.elapsed());
    }
    latencies.sort();
    let after = stored(&data);
    let per_secret_cells = (after.0 - before.0) as f64 / rounds as f64;
    let per_secret_bytes = (after.1 - before.1) as f64 / rounds as f64;

    // Initial sync: alice writes `secrets` secrets (100 per event) and syncs; a new reader, bob,
    // gets them all from the relay.
    let (mut alice, mut bob) = pair();
    let (mut ca, mut cb) = (BTreeMap::new(), BTreeMap::new());
    let ops: Vec<Op> = (0..secrets)
        .map(|i| Op::Put {
            path: format!("bulk/{:05}/key", i),
            value: SecretBytes::new(vec![(i % 251) as u8; 48]),
        })
        .collect();
    let mut ops = ops.into_iter().peekable();
    while ops.peek().is_some() {
        alice.write(ops.by_ref().take(100).collect(), 1).unwrap();
    }
    let start = Instant::now();
    rt.block_on(sync_once(&mut alice, &relay, &mut ca, 1)).unwrap();
    let uploaded = start.elapsed();
    let start = Instant::now();
    rt.block_on(sync_once(&mut bob, &relay, &mut cb, 1)).unwrap();
    let downloaded = start.elapsed();
    let last = format!("bulk/{:05}/key", secrets - 1);
    assert!(matches!(bob.replica().view(&last), View::Value(..)), "bob has every secret");

    println!("sync through a loopback relay (fsync per upload), same run:");
    println!(
        "  floor: HTTP round trip p50 {:.2} ms, p99 {:.2} ms; durable append of one cell p50 {:.2} ms, p99 {:.2} ms",
        percentile(&trips, 0.5).as_secs_f64() * 1e3,
        percentile(&trips, 0.99).as_secs_f64() * 1e3,
        percentile(&appends, 0.5).as_secs_f64() * 1e3,
        percentile(&appends, 0.99).as_secs_f64() * 1e3,
    );
    println!(
        "  write on alice to visible on bob ({rounds} secrets, one per event): p50 {:.2} ms, p99 {:.2} ms ({:.1}x the floor's append p50)",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        percentile(&latencies, 0.5).as_secs_f64() / percentile(&appends, 0.5).as_secs_f64(),
    );
    println!(
        "  relay storage per synced secret (its event, acknowledgements and heartbeats, padded): {per_secret_cells:.1} cells, {per_secret_bytes:.0} bytes"
    );
    println!(
        "  initial sync of {secrets} secrets: upload {:.2} s, a new member's download and apply {:.2} s (goal <= 10 s)",
        uploaded.as_secs_f64(),
        downloaded.as_secs_f64()
    );
    let _ = stop.send(());
    rt.block_on(server).unwrap().unwrap();
}
