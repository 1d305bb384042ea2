//! The big-vault benchmark (issue 3): builds a vault of `TRESOR_BENCH_SECRETS` secrets (default
//! 1,000,000; names 20–40 bytes, values 32–256 random bytes) with 4 concurrent writers, each its
//! own `Vault` handle committing batches (group commit: one commit per batch), then measures, in a
//! fresh child process: open-to-first-get, `list` of a 1,000-entry prefix, resident memory after
//! open, and the time to read and decrypt the snapshot alone next to the raw AEAD and file read
//! throughput measured in the same run. Also bytes stored per secret.
//!
//! `cargo bench -p tresor --bench million` (figures on stdout, one `million:` line each).
//! `TRESOR_BENCH_SECRETS=20000` for a quick run; `TRESOR_BENCH_DIR` to keep the vault; with
//! `TRESOR_BENCH_S3=s3://BUCKET/PREFIX` the finished vault is also copied to that bucket and
//! opened from it (set the `AWS_*` variables as for any S3 location); `TRESOR_BENCH_WITHOUT_BLOBS=1`
//! copies everything but the value blobs (which opening never reads) and times the open alone.
#![allow(clippy::unwrap_used, clippy::expect_used)] // A benchmark that cannot run should stop loudly.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tresor::{KdfParams, Options, Password, Store, Vault};

const WRITERS: usize = 4;
const PASSWORD: &str = "benchmark password, not a secret";

fn opts(trust: &Path) -> Options {
    let mut o = Options::new(trust, "bench");
    o.kdf = KdfParams::MINIMUM;
    o
}

fn pw() -> Password {
    Password::from(PASSWORD.to_string())
}

/// Secret `i`: 1,000 per directory, so `apps/<w>/<dir>/` is a 1,000-entry prefix.
fn name(i: usize) -> String {
    format!("apps/{}/{:04}/{:03}-db-password", i % WRITERS, i / 1000 / WRITERS, (i / WRITERS) % 1000)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn mib_s(bytes: u64, d: Duration) -> String {
    format!("{:.0} MiB/s", bytes as f64 / (1 << 20) as f64 / d.as_secs_f64())
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Opens a location as the binaries do (an S3 target with this process's AWS settings).
async fn open(location: &str, create: bool) -> Store {
    let config = tresor_backend::BackendConfig::from_vars(std::env::vars_os());
    tresor_backend::open(location, create, &config).await.unwrap()
}

async fn build(location: &str, trust_root: &Path, secrets: usize, batch: usize) {
    let store = open(location, true).await;
    drop(Vault::init(store, &pw(), opts(&trust_root.join("init"))).await.unwrap());
    let start = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let location = location.to_string();
            let trust = trust_root.join(format!("writer-{w}"));
            tokio::spawn(async move {
                let store = open(&location, false).await;
                let v = Vault::unlock(store, &pw(), opts(&trust)).await.unwrap();
                let mine: Vec<usize> = (w..secrets).step_by(WRITERS).collect();
                for chunk in mine.chunks(batch) {
                    let names: Vec<String> = chunk.iter().map(|i| name(*i)).collect();
                    let values: Vec<Vec<u8>> = chunk
                        .iter()
                        .map(|i| tresor_crypto::random_bytes(32 + (i * 7919) % 225).unwrap())
                        .collect();
                    let items: Vec<(&str, &[u8])> =
                        names.iter().map(String::as_str).zip(values.iter().map(Vec::as_slice)).collect();
                    v.set_many(tresor::model::AuditOp::Set, &items).await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let took = start.elapsed();
    println!(
        "million: build {secrets} secrets, {WRITERS} writers, batches of {batch}: {:.1} s, {:.0} puts/s",
        took.as_secs_f64(),
        secrets as f64 / took.as_secs_f64()
    );
}

/// Run in a fresh process, so that its memory is the opened vault's alone.
async fn open_child(location: &str, trust: &Path, secrets: usize) {
    let start = Instant::now();
    let store = open(location, false).await;
    let v = Vault::unlock(store, &pw(), opts(trust)).await.unwrap();
    let opened = start.elapsed();
    let first = name(secrets / 2);
    let first_get = if std::env::var_os("TRESOR_BENCH_WITHOUT_BLOBS").is_some() {
        opened
    } else {
        let value = v.get(&first, None).await.unwrap();
        assert!(value.len() >= 32);
        start.elapsed()
    };
    let rss = status_kib("VmRSS:");
    let peak = status_kib("VmHWM:");
    let prefix = format!("apps/1/{:04}/", secrets / 1000 / WRITERS / 2);
    let t = Instant::now();
    let listed = v.list(&prefix).await.unwrap();
    let list = t.elapsed();
    let status = v.status().await.unwrap();
    println!(
        "million: [{location}] open-to-first-get {} (unlock incl. Argon2id at the minimum parameters {}), \
         {} secrets, snapshot at commit {} of {}",
        ms(first_get),
        ms(opened),
        status.secrets,
        status.snapshot,
        status.commits
    );
    println!("million: [{location}] list of a {}-entry prefix: {}", listed.len(), ms(list));
    println!(
        "million: [{location}] resident memory after open {} MiB (peak {} MiB)",
        rss / 1024,
        peak / 1024
    );
    if let Some(s) = v.measure_snapshot().await.unwrap() {
        println!(
            "million: [{location}] snapshot alone: {} parts, {:.1} MiB, {} entries: read {} ({}), \
             decrypt+decode {} ({})",
            s.parts,
            s.bytes as f64 / (1 << 20) as f64,
            s.entries,
            ms(s.read),
            mib_s(s.bytes, s.read),
            ms(s.open),
            mib_s(s.bytes, s.open)
        );
    }
}

/// The raw XChaCha20-Poly1305 throughput of this machine (one core), for comparison.
fn aead_limit() -> String {
    let buf = vec![7u8; 4 << 20];
    let key = [1u8; 32];
    let nonce = [2u8; 24];
    let start = Instant::now();
    let mut rounds = 0u64;
    while start.elapsed() < Duration::from_millis(500) {
        std::hint::black_box(
            tresor_crypto::envelope::xchacha20poly1305_raw(&key, &nonce, b"", &buf, true).unwrap(),
        );
        rounds += 1;
    }
    mib_s(rounds * buf.len() as u64, start.elapsed())
}

fn read_limit(dir: &Path) -> String {
    let start = Instant::now();
    let mut bytes = 0u64;
    for entry in std::fs::read_dir(dir.join("snap")).into_iter().flatten().flatten() {
        bytes += std::fs::read(entry.path()).map(|b| b.len() as u64).unwrap_or(0);
    }
    mib_s(bytes, start.elapsed())
}

fn du(dir: &Path) -> (u64, u64) {
    fn walk(dir: &Path, acc: &mut (u64, u64)) {
        use std::os::unix::fs::MetadataExt;
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                walk(&entry.path(), acc);
            } else {
                acc.0 += meta.len();
                acc.1 += meta.blocks() * 512;
            }
        }
    }
    let mut acc = (0, 0);
    walk(dir, &mut acc);
    acc
}

async fn copy_to_s3(dir: &Path, target: &str) {
    let from = open(dir.to_str().unwrap(), false).await;
    let to = open(target, false).await;
    if !to.list("keyfile").await.unwrap().is_empty() {
        println!("million: {target} already holds the vault (copied by an earlier run)");
        return;
    }
    let mut names = from.list_all().await.unwrap();
    // Opening never lists or reads value blobs: with TRESOR_BENCH_WITHOUT_BLOBS the bucket gets
    // everything but them (and superseded snapshots), for a vault too big to copy to a slow server.
    if std::env::var_os("TRESOR_BENCH_WITHOUT_BLOBS").is_some() {
        let newest = tresor::snapshot::newest(&from).await.unwrap().map_or(0, |(seq, _)| seq);
        names.retain(|n| {
            !n.starts_with("blob/")
                && tresor::layout::parse_snapshot(n).is_none_or(|(seq, _, _)| seq == newest)
        });
    }
    let start = Instant::now();
    use futures::StreamExt;
    futures::stream::iter(names.iter())
        .map(|n| {
            let (from, to) = (from.clone(), to.clone());
            async move {
                let bytes = from.get(n).await.unwrap().unwrap();
                to.create(n, bytes.to_vec()).await.unwrap();
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
    println!("million: copied {} objects to {target} in {:.1} s", names.len(), start.elapsed().as_secs_f64());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let secrets: usize =
        std::env::var("TRESOR_BENCH_SECRETS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    if args.get(1).map(String::as_str) == Some("--open-child") {
        rt.block_on(open_child(&args[2], Path::new(&args[3]), secrets));
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return; // `cargo bench -- --list`: nothing to list.
    }
    let batch: usize = std::env::var("TRESOR_BENCH_BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let _tmp;
    let root: PathBuf = match std::env::var_os("TRESOR_BENCH_DIR") {
        Some(d) => d.into(),
        None => {
            _tmp = tempfile::tempdir().unwrap();
            _tmp.path().to_path_buf()
        }
    };
    let dir = root.join("vault");
    let trust = root.join("trust");
    if !dir.join("keyfile").exists() {
        rt.block_on(build(dir.to_str().unwrap(), &trust, secrets, batch));
    }
    let (bytes, disk) = du(&dir);
    println!(
        "million: stored {:.0} bytes/secret ({:.0} bytes/secret of disk blocks)",
        bytes as f64 / secrets as f64,
        disk as f64 / secrets as f64
    );
    println!(
        "million: raw XChaCha20-Poly1305 {} (one core); snapshot files read at {}",
        aead_limit(),
        read_limit(&dir)
    );
    let exe = std::env::current_exe().unwrap();
    let child = |location: &str, trust: &Path| {
        let status = std::process::Command::new(&exe)
            .args(["--open-child", location, trust.to_str().unwrap()])
            .env("TRESOR_BENCH_SECRETS", secrets.to_string())
            .status()
            .unwrap();
        assert!(status.success());
    };
    // A machine that has seen the vault before, then one that never has.
    child(dir.to_str().unwrap(), &trust.join("writer-0"));
    child(dir.to_str().unwrap(), &root.join("fresh-trust"));
    if let Ok(target) = std::env::var("TRESOR_BENCH_S3") {
        rt.block_on(copy_to_s3(&dir, &target));
        child(&target, &root.join("s3-trust"));
    }
}
