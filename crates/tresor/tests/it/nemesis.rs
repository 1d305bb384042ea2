//! T15 with a nemesis: 4 writers (each its own `Vault` handle, as separate machines would be) write
//! their own secrets, shared secrets and a check-and-set counter on one store, while a nemesis
//! injects lost acknowledgements, failed writes and reads, and latency into each writer's view of
//! the store. A writer retries an operation that failed with a store error, as a client would,
//! and settles a write whose outcome is unknown by reading it back (every value is unique).
//! Afterwards, with the faults healed: every acknowledged write is there at the version it was
//! told, with its value; every secret's versions are 1..n with no gap or duplicate; each writer's
//! writes to a shared secret are in its program order; the counter went up by exactly one per
//! acknowledged increment; both chains verify. On a local directory, and on S3 when configured.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::{Env, PASSWORD, opts, pw};
use object_store::ObjectStore;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tresor::{Error, Store, Vault};
use tresor_testkit::fault::{FaultStore, Faults, OpKind, When};

const WRITERS: usize = 4;
const SHARED: usize = 3;

/// What a writer was told: (path, version, value).
type Acked = Vec<(String, u64, Vec<u8>)>;

/// Runs `op` until it does not fail with a store error (an injected fault), or with an audit
/// error (the operation was refused because its audit record could not be written).
macro_rules! retry {
    ($op:expr) => {{
        let mut attempts = 0;
        loop {
            match $op {
                Err(Error::Store(_) | Error::Audit(_)) if attempts < 200 => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                other => break other,
            }
        }
    }};
}

/// The version of `path` holding exactly `value`, if any: how a client settles a write whose
/// outcome is unknown (`Error::Indeterminate`), since every value written here is unique.
/// A secret whose first write did not land has no history at all: that is `None` too.
async fn landed(v: &Vault, path: &str, value: &[u8]) -> Option<u64> {
    let history = match retry!(v.history(path).await) {
        Err(Error::NotFound { .. }) => return None,
        other => other.unwrap(),
    };
    for h in history.iter().rev() {
        if retry!(v.get(path, Some(h.version)).await).unwrap().as_slice() == value {
            return Some(h.version);
        }
    }
    None
}

/// Writes `value`, retrying store errors; a write whose outcome is unknown is settled by reading
/// it back, and written again only if it did not land.
async fn set_settled(v: &Vault, path: &str, value: &[u8]) -> u64 {
    loop {
        match retry!(v.set(path, value).await) {
            Ok(version) => return version,
            Err(Error::Indeterminate(_)) => {
                if let Some(version) = landed(v, path, value).await {
                    return version;
                }
            }
            Err(e) => panic!("{path}: {e}"),
        }
    }
}

/// The number a counter value starts with (`N` or `N/writer.op`).
fn counter_number(value: &[u8]) -> u64 {
    let text = std::str::from_utf8(value).unwrap();
    text.split('/').next().unwrap().parse().unwrap()
}

async fn writer(w: usize, ops: usize, v: Vault) -> (Acked, u64, u64) {
    let mut acked = Vec::new();
    let (mut increments, mut conflicts) = (0, 0);
    for i in 0..ops {
        match i % 4 {
            0 | 1 => {
                let (path, value) = (format!("w{w}/s{i}"), format!("{w}:{i}").into_bytes());
                let version = set_settled(&v, &path, &value).await;
                acked.push((path, version, value));
            }
            2 => {
                let (path, value) = (format!("shared/{}", i % SHARED), format!("{w}:{i}").into_bytes());
                let version = set_settled(&v, &path, &value).await;
                acked.push((path, version, value));
            }
            _ => loop {
                let history = retry!(v.history("counter").await).unwrap();
                let current = history.last().unwrap().version;
                let value = retry!(v.get("counter", None).await).unwrap();
                let n = counter_number(&value);
                // Unique per increment, so an increment whose outcome is unknown can be settled.
                let next = format!("{}/{w}.{i}", n + 1).into_bytes();
                match retry!(v.set_cas("counter", &next, current).await) {
                    Ok(version) => {
                        increments += 1;
                        acked.push(("counter".into(), version, next));
                        break;
                    }
                    Err(Error::Conflict(_)) => conflicts += 1,
                    Err(Error::Indeterminate(_)) => {
                        if let Some(version) = landed(&v, "counter", &next).await {
                            increments += 1;
                            acked.push(("counter".into(), version, next));
                            break;
                        }
                    }
                    Err(e) => panic!("writer {w}: counter: {e}"),
                }
            },
        }
    }
    (acked, increments, conflicts)
}

/// The nemesis: every few milliseconds, one writer's next commit or audit put lands without its
/// acknowledgement, or its next put or get fails, or its latency changes.
async fn nemesis(faults: Vec<Faults>, every: Duration, stop: Arc<std::sync::atomic::AtomicBool>) -> u64 {
    let mut injected = 0;
    let mut n: u64 = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        n += 1;
        let f = &faults[(n as usize * 7) % faults.len()];
        match n % 5 {
            0 => f.timeout_after_apply("log/", When::Nth(1)),
            1 => f.timeout_after_apply("audit/", When::Nth(1)),
            2 => f.fail(OpKind::Put, When::Nth(1)),
            3 => f.fail(OpKind::Get, When::Nth(1)),
            _ => f.latency_all(Duration::from_micros(n % 3 * 700)),
        }
        injected += 1;
        tokio::time::sleep(every).await;
    }
    injected
}

/// The nemesis strikes one writer every `every` (a slower store gets more time between faults, so
/// that writers make progress between them).
async fn run(
    raw: Arc<dyn ObjectStore>,
    prefix: Option<object_store::path::Path>,
    location: &str,
    label: &str,
    ops: usize,
    every: Duration,
) {
    let env = Env::new();
    let store = |faults: &Faults| {
        let fs = FaultStore::with_faults(raw.clone(), faults.clone());
        Store::from_object_store(Arc::new(fs), prefix.clone(), location)
    };
    let clean = Faults::new();
    let v = Vault::init(store(&clean), &pw(PASSWORD), opts(&env.trust)).await.unwrap();
    v.set_cas("counter", b"0", 0).await.unwrap();
    drop(v);
    let faults: Vec<Faults> = (0..WRITERS).map(|_| Faults::new()).collect();
    let mut handles = Vec::new();
    for (w, f) in faults.iter().enumerate() {
        let v = Vault::unlock(store(f), &pw(PASSWORD), opts(&env.path(&format!("trust-{w}")))).await.unwrap();
        handles.push(tokio::spawn(writer(w, ops, v)));
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let chaos = tokio::spawn(nemesis(faults.clone(), every, stop.clone()));
    let mut results = Vec::new();
    for h in handles {
        results.push(h.await.unwrap());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let injected = chaos.await.unwrap();
    faults.iter().for_each(Faults::heal);

    let v = Vault::unlock(store(&clean), &pw(PASSWORD), opts(&env.path("checker"))).await.unwrap();
    let mut per_path: BTreeMap<String, Vec<(usize, u64)>> = BTreeMap::new();
    let (mut writes, mut increments, mut conflicts) = (0, 0, 0);
    for (w, (acked, inc, conf)) in results.iter().enumerate() {
        increments += inc;
        conflicts += conf;
        for (path, version, value) in acked {
            writes += 1;
            let stored = v.get(path, Some(*version)).await.unwrap();
            assert_eq!(stored.as_slice(), value.as_slice(), "{path} v{version} (writer {w})");
            per_path.entry(path.clone()).or_default().push((w, *version));
        }
    }
    for (path, acks) in &per_path {
        let history: Vec<u64> = v.history(path).await.unwrap().iter().map(|h| h.version).collect();
        assert_eq!(history, (1..=history.len() as u64).collect::<Vec<_>>(), "{path}: versions 1..n");
        let mut versions: Vec<u64> = acks.iter().map(|(_, version)| *version).collect();
        // Each writer's acknowledged versions of one secret rise in its program order.
        for w in 0..WRITERS {
            let mine: Vec<u64> = acks.iter().filter(|(x, _)| *x == w).map(|(_, v)| *v).collect();
            assert!(mine.windows(2).all(|p| p[0] < p[1]), "{path}: writer {w} out of order: {mine:?}");
        }
        versions.sort_unstable();
        versions.dedup();
        assert_eq!(versions.len(), acks.len(), "{path}: a version acknowledged twice");
        let expected = if path == "counter" { history.len() - 1 } else { history.len() };
        assert_eq!(acks.len(), expected, "{path}: every version is an acknowledged write");
    }
    // The counter: version k holds k - 1, so no increment was lost or applied twice.
    let counter = v.history("counter").await.unwrap();
    assert_eq!(counter.len() as u64, increments + 1);
    for h in &counter {
        let value = v.get("counter", Some(h.version)).await.unwrap();
        assert_eq!(counter_number(&value), h.version - 1);
    }
    v.verify().await.unwrap();
    println!(
        "T15-{label}: {WRITERS} writers x {ops} ops under a nemesis ({injected} faults injected): \
         {writes} acknowledged writes present, histories linearizable, counter +{increments} \
         ({conflicts} CAS conflicts), chains verify"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t15_writers_under_a_nemesis_on_a_local_directory() {
    let env = Env::new();
    let store = common::store(&env.loc, true);
    let location = store.location().to_string();
    let raw = object_store::local::LocalFileSystem::new_with_prefix(&location)
        .unwrap()
        .with_automatic_cleanup(true);
    run(Arc::new(raw), None, &location, "nemesis-local", 40, Duration::from_millis(15)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t15_writers_under_a_nemesis_on_s3() {
    let Some(location) = common::s3_location("nemesis") else { return };
    let rest = location.strip_prefix("s3://").unwrap();
    let (bucket, prefix) = rest.split_once('/').unwrap();
    let settings = tresor_backend::s3::S3Settings::resolve(&common::backend_config()).await.unwrap();
    let raw = settings.builder(bucket).build().unwrap();
    let prefix = Some(object_store::path::Path::from(prefix));
    run(Arc::new(raw), prefix, &location, "nemesis-s3", 24, Duration::from_millis(100)).await;
}
