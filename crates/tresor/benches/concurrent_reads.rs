//! Concurrent reads on one shared handle: reads/s with 1, 2, 4 and 16 tasks on a runtime with one
//! worker per core, every read audited, on a real vault directory under `TMPDIR`. Prints each
//! figure and its ratio to one task (on a 2-core machine, 2 tasks should reach ≥ 1.8×); then two
//! handles on the one store (two servers on one bucket), sharing one audit lane and with a lane
//! each.
//! `cargo bench -p tresor --bench concurrent_reads`; `TRESOR_BENCH_READS` sets the reads per run
//! (default 40,000).
#![allow(clippy::unwrap_used, clippy::expect_used)] // A benchmark that cannot run should stop loudly.

use std::time::Instant;
use tresor::{KdfParams, Options, Password, Store, Vault};

const SECRETS: usize = 1000;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let reads: usize =
        std::env::var("TRESOR_BENCH_READS").ok().and_then(|v| v.parse().ok()).unwrap_or(40_000);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(cores).enable_all().build().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let location = tmp.path().join("vault").to_str().unwrap().to_string();
    let mut opts = Options::new(tmp.path().join("trust"), "bench");
    opts.kdf = KdfParams::MINIMUM;
    let vault = runtime.block_on(async {
        let store = Store::open(&location, true).unwrap();
        let v = Vault::init(store, &Password::from("benchmark password, not a secret".to_string()), opts)
            .await
            .unwrap();
        let items: Vec<(String, Vec<u8>)> =
            (0..SECRETS).map(|i| (format!("app/secret-{i:04}"), vec![i as u8; 64])).collect();
        let borrowed: Vec<(&str, &[u8])> = items.iter().map(|(p, v)| (p.as_str(), v.as_slice())).collect();
        v.set_many(tresor::model::AuditOp::Import, &borrowed).await.unwrap();
        v
    });
    // Warm-up: page cache, epoch key, the first audit pins.
    runtime.block_on(async {
        for i in 0..2000 {
            vault.get(&format!("app/secret-{:04}", i % SECRETS), None).await.unwrap();
        }
    });
    let mut single = 0.0;
    for tasks in [1usize, 2, 4, 16] {
        let before = runtime.block_on(vault.status()).unwrap().audit_records;
        let (start, cpu) = (Instant::now(), tresor_testkit::bench::cpu_seconds());
        runtime.block_on(async {
            let handles: Vec<_> = (0..tasks)
                .map(|t| {
                    let v = vault.with_actor(format!("bench task {t}"));
                    tokio::spawn(async move {
                        for i in 0..reads / tasks {
                            let path = format!("app/secret-{:04}", (t * 7919 + i * 31) % SECRETS);
                            assert_eq!(v.get(&path, None).await.unwrap().len(), 64);
                        }
                    })
                })
                .collect();
            for h in handles {
                h.await.unwrap();
            }
        });
        let took = start.elapsed().as_secs_f64();
        let busy = (tresor_testkit::bench::cpu_seconds() - cpu) / took;
        let rate = (reads / tasks * tasks) as f64 / took;
        if tasks == 1 {
            single = rate;
        }
        let entries = runtime.block_on(vault.status()).unwrap().audit_records - before - 1;
        println!(
            "concurrent-reads: {tasks:>2} task(s) on {cores} workers: {rate:.0} reads/s ({:.2}x one task), \
             {:.1} reads per audit entry, {busy:.1} cores busy [durability: entries written before each \
             value is returned, fsynced every 64]",
            rate / single,
            (reads / tasks * tasks) as f64 / entries.max(1) as f64,
        );
    }
    // Two handles on one store, as two servers on one bucket, 8 readers each: appending to one
    // audit lane (the same machine's trust state) and each to its own lane (two machines).
    let password = Password::from("benchmark password, not a secret".to_string());
    for (label, trust) in
        [("one shared lane", tmp.path().join("trust")), ("a lane each", tmp.path().join("trust-b"))]
    {
        let mut opts = Options::new(&trust, "bench");
        opts.kdf = KdfParams::MINIMUM;
        let second =
            runtime.block_on(Vault::unlock(Store::open(&location, false).unwrap(), &password, opts)).unwrap();
        let start = Instant::now();
        runtime.block_on(async {
            let handles: Vec<_> = (0..16usize)
                .map(|t| {
                    let v = if t % 2 == 0 { vault.clone() } else { second.clone() };
                    tokio::spawn(async move {
                        for i in 0..reads / 16 {
                            let path = format!("app/secret-{:04}", (t * 7919 + i * 31) % SECRETS);
                            assert_eq!(v.get(&path, None).await.unwrap().len(), 64);
                        }
                    })
                })
                .collect();
            for h in handles {
                h.await.unwrap();
            }
        });
        let rate = (reads / 16 * 16) as f64 / start.elapsed().as_secs_f64();
        println!(
            "concurrent-reads: two handles on one store, 8 tasks each, {label}: {rate:.0} reads/s ({:.2}x one task)",
            rate / single
        );
        runtime.block_on(second.lock("benchmark done")).unwrap();
    }
    runtime.block_on(vault.lock("benchmark done")).unwrap();
}
