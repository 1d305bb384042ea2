//! The re-encryption benchmark (issue 4): after `rotate`, how fast `reencrypt` moves every value
//! into the new epoch on a local directory — for many small secrets and for large values — next
//! to the raw XChaCha20-Poly1305 throughput measured in the same run. Then how long destroying the
//! old epoch takes, and a root rotation (`rekey`, issue 12) of the same vaults. Each
//! re-encryption also prints how many cores it kept busy (CPU time over wall time): near the
//! core count, the cores bound it; well below, the disk or the pipeline does.
//!
//! `cargo bench -p tresor --bench reencrypt` (one `reencrypt:` line per figure).
//! `TRESOR_BENCH_SMALL` secrets of 32–256 bytes (default 100,000) and `TRESOR_BENCH_LARGE_MIB`
//! MiB of 1 MiB values (default 1,024); `TRESOR_BENCH_DIR` puts the vaults there (default: a
//! temporary directory).
#![allow(clippy::unwrap_used, clippy::expect_used)] // A benchmark that cannot run should stop loudly.

use std::path::Path;
use std::time::{Duration, Instant};
use tresor::{KdfParams, Options, Password, Store, Vault};

const PASSWORD: &str = "benchmark password, not a secret";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn mib(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

/// Raw XChaCha20-Poly1305 on one core, 1 MiB messages, about a second.
fn raw_aead_mib_s() -> f64 {
    let buf = vec![7u8; 1 << 20];
    let (key, nonce) = ([1u8; 32], [2u8; 24]);
    let start = Instant::now();
    let mut rounds = 0u64;
    while start.elapsed() < Duration::from_secs(1) {
        std::hint::black_box(
            tresor_crypto::envelope::xchacha20poly1305_raw(&key, &nonce, b"", &buf, true).unwrap(),
        );
        rounds += 1;
    }
    mib(rounds * buf.len() as u64, start.elapsed())
}

/// This disk's durable write throughput: 256 MiB of random bytes written and fsynced.
fn disk_mib_s(dir: &Path) -> f64 {
    use std::io::Write;
    let chunk = tresor_crypto::random_bytes(1 << 20).unwrap();
    let path = dir.join("disk-probe");
    let start = Instant::now();
    let mut f = std::fs::File::create(&path).unwrap();
    for _ in 0..256 {
        f.write_all(&chunk).unwrap();
    }
    f.sync_all().unwrap();
    let rate = mib(256 << 20, start.elapsed());
    std::fs::remove_file(path).unwrap();
    rate
}

async fn vault_at(dir: &Path, name: &str, max_value: usize) -> Vault {
    let location = if name.starts_with("memory") {
        "memory://".to_string()
    } else {
        dir.join(name).display().to_string()
    };
    let store = Store::open(&location, true).unwrap();
    let mut opts = Options::new(dir.join(format!("{name}-trust")), "bench");
    opts.kdf = KdfParams::MINIMUM;
    opts.max_value = max_value;
    Vault::init(store, &Password::from(PASSWORD.to_string()), opts).await.unwrap()
}

/// Writes `values` in batches, rotates, re-encrypts; returns (values, bytes, time), after checking
/// a few values read back right. Prints how many cores the re-encryption kept busy.
async fn run(v: &mut Vault, values: &[Vec<u8>], batch: usize) -> (u64, u64, Duration) {
    let names: Vec<String> = (0..values.len()).map(|i| format!("apps/{:03}/{i:07}", i % 997)).collect();
    for (names, values) in names.chunks(batch).zip(values.chunks(batch)) {
        let items: Vec<(&str, &[u8])> =
            names.iter().map(String::as_str).zip(values.iter().map(Vec::as_slice)).collect();
        v.set_many(tresor::model::AuditOp::Set, &items).await.unwrap();
    }
    v.rotate("manual").await.unwrap();
    let (start, cpu) = (Instant::now(), tresor_testkit::bench::cpu_seconds());
    let report = v.reencrypt(&mut |_, _| {}).await.unwrap();
    let took = start.elapsed();
    let busy = (tresor_testkit::bench::cpu_seconds() - cpu) / took.as_secs_f64();
    println!("reencrypt:   (cores busy during the re-encryption: {busy:.1})");
    assert_eq!(report.values as usize, values.len());
    for i in [0, values.len() / 2, values.len() - 1] {
        assert_eq!(v.get(&names[i], None).await.unwrap().as_slice(), values[i].as_slice());
    }
    (report.values, report.bytes, took)
}

async fn destroy(v: &mut Vault) -> (u64, Duration) {
    let start = Instant::now();
    let report = v.destroy_epoch(1, &mut |_, _| {}).await.unwrap();
    assert!(report.complete());
    (report.deleted_objects, start.elapsed())
}

/// Re-keys the vault (root rotation, `tresor rekey`); returns (versions carried, time).
async fn rekey(v: Vault) -> (u64, Duration) {
    let start = Instant::now();
    let (_, report) = v
        .rekey(&Password::from("another benchmark password".to_string()), KdfParams::MINIMUM, &mut |_, _| {})
        .await
        .unwrap();
    assert!(report.complete());
    (report.versions, start.elapsed())
}

fn main() {
    // `cargo bench` passes `--bench`; a filter or `--test` run of the other benches passes more.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let small = env_usize("TRESOR_BENCH_SMALL", 100_000);
    let large_mib = env_usize("TRESOR_BENCH_LARGE_MIB", 1024);
    let tmp =
        tempfile::tempdir_in(std::env::var("TRESOR_BENCH_DIR").unwrap_or_else(|_| "/tmp".into())).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let raw = raw_aead_mib_s();
    println!("reencrypt: raw XChaCha20-Poly1305, one core, 1 MiB messages: {raw:.0} MiB/s ({cores} cores)");
    let disk = disk_mib_s(tmp.path());
    println!(
        "reencrypt: this disk, 256 MiB written and fsynced: {disk:.0} MiB/s (re-encryption writes every byte durably)"
    );

    rt.block_on(async {
        let values: Vec<Vec<u8>> =
            (0..small).map(|i| tresor_crypto::random_bytes(32 + (i * 7919) % 225).unwrap()).collect();
        let mut v = vault_at(tmp.path(), "small", 1 << 20).await;
        let (n, bytes, took) = run(&mut v, &values, 1000).await;
        println!(
            "reencrypt: {n} small secrets ({bytes} bytes) in {:.0} ms: {:.0} secrets/s (goal ≥ 50,000)",
            took.as_secs_f64() * 1e3,
            n as f64 / took.as_secs_f64()
        );
        let (objects, took) = destroy(&mut v).await;
        println!("reencrypt: destroy epoch 1 of the small vault: {objects} objects deleted in {:.0} ms", took.as_secs_f64() * 1e3);
        let (versions, took) = rekey(v).await;
        println!(
            "reencrypt: rekey of the small vault (new root, every version sealed again, old era deleted): \
             {versions} versions in {:.0} ms: {:.0} versions/s",
            took.as_secs_f64() * 1e3,
            versions as f64 / took.as_secs_f64()
        );

        let values: Vec<Vec<u8>> = (0..large_mib).map(|_| tresor_crypto::random_bytes(1 << 20).unwrap()).collect();
        let mut v = vault_at(tmp.path(), "large", 1 << 20).await;
        let (n, bytes, took) = run(&mut v, &values, 32).await;
        let rate = mib(bytes, took);
        println!(
            "reencrypt: {n} values of 1 MiB ({} MiB) in {:.2} s: {rate:.0} MiB/s = {:.2} × raw AEAD (goal ≥ 0.5), \
             {:.2} × this disk's durable write rate",
            bytes >> 20,
            took.as_secs_f64(),
            rate / raw,
            rate / disk
        );
        let (objects, took) = destroy(&mut v).await;
        println!("reencrypt: destroy epoch 1 of the large vault: {objects} objects deleted in {:.0} ms", took.as_secs_f64() * 1e3);
        let (versions, took) = rekey(v).await;
        let rate = mib(bytes, took);
        println!(
            "reencrypt: rekey of the large vault: {versions} values of 1 MiB in {:.2} s: {rate:.0} MiB/s = {:.2} × raw AEAD, \
             {:.2} × this disk",
            took.as_secs_f64(),
            rate / raw,
            rate / disk
        );

        // The same in memory: what the code costs without the disk.
        let mut v = vault_at(tmp.path(), "memory-large", 1 << 20).await;
        let (_, bytes, took) = run(&mut v, &values, 32).await;
        let rate = mib(bytes, took);
        println!(
            "reencrypt: the same {} MiB in a memory store: {rate:.0} MiB/s = {:.2} × raw AEAD",
            bytes >> 20,
            rate / raw
        );
    });
}
