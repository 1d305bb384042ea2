//! What the store sees (T22): object names carry no secret, and value blob sizes reveal only a
//! padding bucket of the value's length, with every short secret in one bucket.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::{Env, random_bytes};
use std::collections::{BTreeMap, BTreeSet};
use tresor::layout;
use tresor::vault::DEFAULT_MAX_VALUE;

/// The value length → blob file size of one fresh vault with a value of each length in `lengths`
/// (random bytes: incompressible, like tokens and keys).
async fn blob_sizes(lengths: impl IntoIterator<Item = usize>) -> BTreeMap<usize, u64> {
    let env = Env::new();
    let v = env.init().await;
    let mut seen: BTreeSet<String> = env.objects(layout::BLOB_DIR).into_iter().collect();
    let mut sizes = BTreeMap::new();
    for len in lengths {
        let value = random_bytes(len);
        v.set(&format!("len/{len}"), &value).await.unwrap();
        let added: Vec<String> =
            env.objects(layout::BLOB_DIR).into_iter().filter(|n| seen.insert(n.clone())).collect();
        assert_eq!(added.len(), 1);
        let size = std::fs::metadata(env.obj(&added[0])).unwrap().len();
        assert!(size >= len as u64);
        sizes.insert(len, size);
        assert_eq!(v.get(&format!("len/{len}"), None).await.unwrap().as_slice(), value);
    }
    sizes
}

fn buckets(sizes: &BTreeMap<usize, u64>) -> BTreeMap<u64, (usize, usize)> {
    let mut out: BTreeMap<u64, (usize, usize)> = BTreeMap::new();
    for (&len, &size) in sizes {
        let e = out.entry(size).or_insert((len, len));
        e.0 = e.0.min(len);
        e.1 = e.1.max(len);
    }
    out
}

#[tokio::test]
async fn t22_blob_sizes_are_padding_buckets() {
    let mut lengths: Vec<usize> = (1..=300).collect();
    lengths.extend([1000, 4096, 65_536, DEFAULT_MAX_VALUE]);
    let sizes = blob_sizes(lengths).await;
    let small: BTreeMap<usize, u64> = sizes.range(..=300).map(|(l, s)| (*l, *s)).collect();
    let table = buckets(&small);
    println!("T22: distinct blob sizes for lengths 1..=300: {}", table.len());
    for (size, (lo, hi)) in &table {
        println!("T22:   lengths {lo}..={hi} -> blob of {size} bytes");
    }
    for len in [1000, 4096, 65_536, DEFAULT_MAX_VALUE] {
        println!("T22:   length {len} -> blob of {} bytes", sizes[&len]);
    }
    // What the implementation promises: a 5-byte frame header, then Padmé with a 256-byte floor,
    // so every value up to 251 bytes looks the same, and longer ones at most 12 % bigger.
    let short: BTreeSet<u64> = sizes.range(..=251).map(|(_, s)| *s).collect();
    assert_eq!(short.len(), 1, "{table:?}");
    let overhead = short.first().unwrap() - 256;
    for (&len, &size) in &sizes {
        let padded = size - overhead;
        assert!(padded as f64 <= ((len + 5).max(256) as f64) * 1.12, "{len} -> {size}");
    }
    assert!(table.len() <= 5, "{table:?}");
}

#[tokio::test]
async fn t22_values_up_to_256_bytes_share_one_blob_size() {
    let sizes = blob_sizes(240..=256).await;
    let distinct: BTreeSet<u64> = sizes.values().copied().collect();
    assert_eq!(distinct.len(), 1, "{:?}", buckets(&sizes));
}

#[tokio::test]
async fn t22_object_names_and_counts() {
    let env = Env::new();
    let v = env.init().await;
    // Names with letters beyond a-f: random hex ids cannot contain them by chance.
    let names = ["mysql/password", "prod/api-token", "mail/smtp"];
    for n in names {
        v.set(n, b"value").await.unwrap();
    }
    v.set(names[0], b"value2").await.unwrap();
    v.delete(names[2]).await.unwrap();
    drop(v);
    let objects = common::files(&env.loc);
    // Only our kinds of names, made of digits and lowercase hex.
    for o in &objects {
        let (dir, rest) = o.split_once('/').unwrap();
        assert!(["keyfile", "log", "audit", "epoch", "blob"].contains(&dir), "{o}");
        assert!(rest.bytes().all(|b| b == b'/' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{o}");
        for n in names {
            for part in n.split('/') {
                assert!(!o.contains(part), "{o} contains {part}");
            }
        }
    }
    let count = |dir: &str| objects.iter().filter(|o| o.starts_with(&format!("{dir}/"))).count();
    println!(
        "T22: store sees {} objects for 3 secrets, 4 versions, 1 delete: keyfile {}, log {}, audit {}, epoch {}, blob {} \
         (blob count = versions written: reveals the write count, not the live secret count)",
        objects.len(),
        count("keyfile"),
        count("log"),
        count("audit"),
        count("epoch"),
        count("blob")
    );
    assert_eq!(count("blob"), 4);
}
