//! Concurrent writers on one vault directory (a local taste of T15): two `Vault` handles, unlocked
//! separately, write at the same time; the store's create-if-absent linearizes them, so nothing is
//! lost, nothing is duplicated, and both chains stay whole.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

mod common;

use common::{Env, PASSWORD};
use std::time::Instant;
use tresor::{Result, Vault};

/// Sets `count` secrets `{tag}/{i}` = `{tag}-value-{i}`.
async fn write_many(v: Vault, tag: &'static str, count: usize) -> Result<Vault> {
    for i in 0..count {
        v.set(&format!("{tag}/{i}"), format!("{tag}-value-{i}").as_bytes()).await?;
    }
    Ok(v)
}

/// Sets `path` `count` times to `{tag}-{i}`; returns the versions it got.
async fn write_same(v: Vault, path: &'static str, tag: &'static str, count: usize) -> Result<Vec<u64>> {
    let mut versions = Vec::with_capacity(count);
    for i in 0..count {
        versions.push(v.set(path, format!("{tag}-{i}").as_bytes()).await?);
    }
    Ok(versions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_write_200_different_secrets_concurrently() {
    let env = Env::new();
    drop(env.init().await);
    // Two handles, one trust directory (two processes of one user).
    let a = env.unlock().await.unwrap();
    let b = env.unlock().await.unwrap();
    let start = Instant::now();
    let (ra, rb) = tokio::join!(tokio::spawn(write_many(a, "a", 100)), tokio::spawn(write_many(b, "b", 100)));
    let elapsed = start.elapsed();
    let (a, b) = (ra.unwrap().unwrap(), rb.unwrap().unwrap());
    drop(b);
    // The writers' own view and a fresh one agree.
    assert_eq!(a.list("").await.unwrap().len(), 200);
    drop(a);
    let v = env.unlock().await.unwrap();
    let listed = v.list("").await.unwrap();
    assert_eq!(listed.len(), 200);
    assert!(listed.iter().all(|e| e.version == 1), "every secret written once");
    for tag in ["a", "b"] {
        for i in 0..100 {
            let value = v.get(&format!("{tag}/{i}"), None).await.unwrap();
            assert_eq!(value.as_slice(), format!("{tag}-value-{i}").as_bytes());
        }
    }
    let report = v.verify().await.unwrap();
    assert!(report.commits >= 201, "{report:?}");
    assert_eq!(report.commits, 201, "genesis + one commit per set: {report:?}");
    assert!(report.audit_records >= 203, "init, 3 unlocks, 200 sets: {report:?}");
    assert_eq!(report.anchors, 201, "every commit anchors the audit trail: {report:?}");
    // Another machine (no trust state) agrees too.
    let w = env.unlock_with(&env.path("other-trust"), PASSWORD).await.unwrap();
    assert_eq!(w.verify().await.unwrap().commits, 201);
    println!(
        "T15-local: 2 handles x 100 concurrent sets in {:.1} s: {} commits, {} audit records, chains whole",
        elapsed.as_secs_f64(),
        report.commits,
        report.audit_records
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_update_the_same_secret_concurrently() {
    let env = Env::new();
    drop(env.init().await);
    // Two handles with separate trust directories (two machines sharing a directory).
    let a = env.unlock().await.unwrap();
    let b = env.unlock_with(&env.path("trust-b"), PASSWORD).await.unwrap();
    let (ra, rb) = tokio::join!(
        tokio::spawn(write_same(a, "shared/key", "a", 50)),
        tokio::spawn(write_same(b, "shared/key", "b", 50))
    );
    let (va, vb) = (ra.unwrap().unwrap(), rb.unwrap().unwrap());
    // Each writer saw its own versions strictly increase; together they are 1..=100.
    assert!(va.windows(2).all(|w| w[0] < w[1]) && vb.windows(2).all(|w| w[0] < w[1]));
    let mut all: Vec<u64> = va.iter().chain(&vb).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (1..=100).collect::<Vec<u64>>(), "no gap, no duplicate");

    let v = env.unlock().await.unwrap();
    let history = v.history("shared/key").await.unwrap();
    let versions: Vec<u64> = history.iter().map(|h| h.version).collect();
    assert_eq!(versions, (1..=100).collect::<Vec<u64>>());
    assert_eq!(history.iter().filter(|h| h.current).count(), 1);
    assert!(history.last().unwrap().current);
    // Each version holds what the writer that got that number wrote.
    for (i, n) in va.iter().enumerate() {
        assert_eq!(v.get("shared/key", Some(*n)).await.unwrap().as_slice(), format!("a-{i}").as_bytes());
    }
    for (i, n) in vb.iter().enumerate() {
        assert_eq!(v.get("shared/key", Some(*n)).await.unwrap().as_slice(), format!("b-{i}").as_bytes());
    }
    assert_eq!(v.verify().await.unwrap().commits, 101);
    let switches = (1..100u64).filter(|n| va.contains(n) != va.contains(&(n + 1))).count();
    println!(
        "T15-local: 2 handles x 50 sets of one secret: versions 1..=100, writer switched {switches} times"
    );
}

#[tokio::test]
async fn stale_handle_reads_and_writes_after_many_writes_by_another() {
    // An agent keeps a vault open while the CLI, in other processes, writes 100 secrets.
    let env = Env::new();
    drop(env.init().await);
    let idle = env.unlock().await.unwrap();
    let busy = env.unlock().await.unwrap();
    drop(write_many(busy, "busy", 100).await.unwrap());
    assert_eq!(idle.get("busy/99", None).await.unwrap().as_slice(), b"busy-value-99");
    idle.set("idle/1", b"x").await.unwrap();
    idle.verify().await.unwrap();
}
