//! Index snapshots: the index as of one commit, sealed in parts, so that opening a big vault reads
//! one snapshot and the commits after it instead of replaying the whole log.
//!
//! A snapshot taken at commit `seq` is a set of objects `snap/{seq}-{part}-{parts}`. Each part is
//! sealed (XChaCha20-Poly1305, its own key derived from the root secret) with its name — and so
//! the commit it belongs to, its position and the number of parts — in the associated data. Its
//! plaintext is the [`Header`] (the same in every part: the commit's sequence number and link,
//! and what the skipped commits established), then a run of index entries in ascending path order;
//! the parts, in order, hold every entry exactly once. The encoding is deterministic, so two
//! writers that snapshot the same commit write interchangeable parts.
//!
//! A snapshot is only an accelerator: the commit log stays complete and authoritative
//! (`tresor audit verify` replays it and compares the snapshot), and a snapshot is used only after
//! its commit has been found in the log with the link the snapshot records.

use crate::chain::Link;
use crate::error::{Error, ObjectKind, Result};
use crate::index::{Entry, Index};
use crate::layout;
use crate::model::AuditAnchor;
use crate::roles::SnapshotKey;
use crate::store::Store;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use tresor_crypto::SecretBytes;
use tresor_crypto::envelope::Context;
use zeroize::Zeroizing;

/// Plaintext bytes of entries per part (before compression and padding); a part holding a single
/// entry larger than this is larger.
pub const PART_TARGET: usize = 4 << 20;
/// Most parts in one snapshot (names have five digits).
pub const MAX_PARTS: usize = 99_999;
/// Largest plaintext of one part; sealed, it stays within the store-side limit of 16 MiB.
pub const PART_PLAINTEXT_MAX: usize = 14 << 20;
/// Concurrent reads and writes of parts.
const CONCURRENCY: usize = 8;

/// What the commits up to the snapshot's established, besides the index. The same in every part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The commit the snapshot was taken at.
    pub seq: u64,
    /// That commit's link.
    pub link: Link,
    /// The data-key epochs.
    pub keyring: crate::keyring::Keyring,
    /// The key file generation the log records, and its hash.
    pub keyfile: (u64, Option<[u8; 32]>),
    /// The newest audit anchor in the log.
    pub anchor: Option<AuditAnchor>,
    /// Entries in all parts together.
    pub entries: u64,
}

/// A complete snapshot found in the store: `(seq, parts)`.
pub type Found = (u64, u32);

fn seal_ctx<'a>(vault_id: &'a [u8; 16], name: &'a str) -> Context<'a> {
    Context { vault_id, role: "snapshot", object: name, epoch: 0, extra: b"" }
}

/// The complete snapshots in the store, newest last. Parts of incomplete ones (a writer still at
/// work, or one that crashed) and names that are not ours are ignored.
pub async fn complete(store: &Store) -> Result<Vec<Found>> {
    let mut seen: BTreeMap<(u64, u32), BTreeSet<u32>> = BTreeMap::new();
    for name in store.list(layout::SNAPSHOT_DIR).await? {
        if let Some((seq, part, parts)) = layout::parse_snapshot(&name) {
            seen.entry((seq, parts)).or_default().insert(part);
        }
    }
    Ok(seen.into_iter().filter(|((_, parts), got)| got.len() == *parts as usize).map(|(k, _)| k).collect())
}

/// The newest complete snapshot, if any.
pub async fn newest(store: &Store) -> Result<Option<Found>> {
    Ok(complete(store).await?.pop())
}

/// Most complete-looking snapshots that do not authenticate [`newest_authentic`] skips before
/// it gives up (each costs one bounded read).
const MAX_INAUTHENTIC: usize = 8;

/// Whether the first part of `found` authenticates under this vault's snapshot key and belongs to
/// a snapshot at its commit (`false` also when it is gone). A store can plant names; only a part
/// sealed by a holder of the vault's keys counts as a snapshot.
pub async fn authentic(store: &Store, key: &SnapshotKey, vault_id: &[u8; 16], found: Found) -> Result<bool> {
    let name = layout::snapshot(found.0, 0, found.1);
    let bytes = match store.get(&name).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) | Err(Error::Integrity { .. }) => return Ok(false),
        Err(e) => return Err(e),
    };
    let Ok(plain) = tresor_crypto::open(key.key(), &seal_ctx(vault_id, &name), &bytes) else {
        return Ok(false);
    };
    // Sealed by a holder of the keys: what it says is no longer the store's doing.
    match decode_part(&plain) {
        Some((header, _)) if header.seq == found.0 => Ok(true),
        Some(_) => Err(Error::integrity(ObjectKind::Snapshot, &name, "belongs to another snapshot")),
        None => Err(Error::integrity(
            ObjectKind::Snapshot,
            &name,
            "authenticated but does not parse (written by another version of tresor?)",
        )),
    }
}

/// The newest complete snapshot whose first part authenticates (see [`authentic`]), skipping
/// planted ones; an error naming the newest after [`MAX_INAUTHENTIC`] of them.
pub async fn newest_authentic(
    store: &Store,
    key: &SnapshotKey,
    vault_id: &[u8; 16],
) -> Result<Option<Found>> {
    Ok(newest_authentic_skipping(store, key, vault_id).await?.0)
}

/// [`newest_authentic`], also naming the newer complete-looking snapshots it skipped.
pub async fn newest_authentic_skipping(
    store: &Store,
    key: &SnapshotKey,
    vault_id: &[u8; 16],
) -> Result<(Option<Found>, Vec<Found>)> {
    let mut skipped = Vec::new();
    let all = complete(store).await?;
    for found in all.iter().rev() {
        if authentic(store, key, vault_id, *found).await? {
            return Ok((Some(*found), skipped));
        }
        skipped.push(*found);
        let skipped = skipped.len();
        if skipped >= MAX_INAUTHENTIC {
            let newest = all.last().map_or(*found, |f| *f);
            return Err(Error::integrity(
                ObjectKind::Snapshot,
                &layout::snapshot(newest.0, 0, newest.1),
                format!(
                    "and {skipped} other snapshots in the store do not authenticate: they were not written by this vault"
                ),
            ));
        }
    }
    Ok((None, skipped))
}

/// Every name of the snapshot taken at `seq`.
pub fn names((seq, parts): Found) -> impl Iterator<Item = String> {
    (0..parts).map(move |part| layout::snapshot(seq, part, parts))
}

/// The plaintexts of a snapshot's parts: the header, the part's entry count, its entries.
pub fn encode(header: &Header, index: &Index) -> Result<Vec<Zeroizing<Vec<u8>>>> {
    let head = postcard::to_stdvec(header).map_err(|e| Error::Invalid(format!("cannot encode: {e}")))?;
    let mut parts = Vec::new();
    let mut body = Zeroizing::new(Vec::with_capacity(PART_TARGET + 4096));
    let mut count: u64 = 0;
    let close = |body: &mut Zeroizing<Vec<u8>>, count: u64| -> Result<Zeroizing<Vec<u8>>> {
        let mut part = Zeroizing::new(Vec::with_capacity(head.len() + 10 + body.len()));
        part.extend_from_slice(&head);
        part.extend_from_slice(
            &postcard::to_stdvec(&count).map_err(|e| Error::Invalid(format!("cannot encode: {e}")))?,
        );
        part.extend_from_slice(body);
        body.clear();
        // Readers refuse larger parts unread (`layout::size_limit`): one huge entry (a path with
        // hundreds of thousands of versions) makes no snapshot rather than an unreadable one.
        if part.len() > PART_PLAINTEXT_MAX {
            return Err(Error::Invalid("an index entry is too large for a snapshot part".into()));
        }
        Ok(part)
    };
    for entry in index.entries() {
        let encoded = postcard::to_extend(&entry, std::mem::take(&mut *body))
            .map_err(|e| Error::Invalid(format!("cannot encode: {e}")))?;
        *body = encoded;
        count += 1;
        if body.len() >= PART_TARGET {
            parts.push(close(&mut body, count)?);
            count = 0;
        }
    }
    if count > 0 || parts.is_empty() {
        parts.push(close(&mut body, count)?);
    }
    if parts.len() > MAX_PARTS {
        return Err(Error::Invalid("the index is too large for one snapshot".into()));
    }
    Ok(parts)
}

/// Seals the parts of a snapshot for `vault_id` (on every core): `(name, envelope)` in part order.
pub fn seal(
    key: &SnapshotKey,
    vault_id: &[u8; 16],
    seq: u64,
    plaintexts: &[Zeroizing<Vec<u8>>],
) -> Result<Vec<(String, Vec<u8>)>> {
    let parts = u32::try_from(plaintexts.len()).map_err(|_| Error::Invalid("too many parts".into()))?;
    let names: Vec<String> = (0..parts).map(|part| layout::snapshot(seq, part, parts)).collect();
    let jobs: Vec<(&String, &Zeroizing<Vec<u8>>)> = names.iter().zip(plaintexts).collect();
    let bytes = plaintexts.iter().map(|p| p.len()).sum();
    let sealed = on_every_core(&jobs, bytes, |(name, plain)| {
        Ok(tresor_crypto::seal(key.key(), &seal_ctx(vault_id, name), plain)?)
    })?;
    Ok(names.into_iter().zip(sealed).collect())
}

/// Reads every part of `found` concurrently; a part that is gone is `None` (the snapshot was
/// removed while being read).
pub async fn read(store: &Store, found: Found) -> Result<Option<Vec<Bytes>>> {
    let parts: Vec<Option<Bytes>> = futures::stream::iter(names(found))
        .map(|name| async move { store.get(&name).await })
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    Ok(parts.into_iter().collect())
}

/// Opens and decodes the parts of the snapshot `found` (on every core) into its header and index.
/// Anything wrong — a part that does not authenticate, headers that differ, entries out of order
/// or a count that does not add up — is an integrity error naming the part.
pub fn open(
    key: &SnapshotKey,
    vault_id: &[u8; 16],
    found: Found,
    envelopes: &[Bytes],
) -> Result<(Header, Index)> {
    let names: Vec<String> = names(found).collect();
    let jobs: Vec<(&String, &Bytes)> = names.iter().zip(envelopes).collect();
    let bytes = envelopes.iter().map(Bytes::len).sum();
    let decoded = on_every_core(&jobs, bytes, |(name, envelope)| {
        let bad = |detail: &str| Error::integrity(ObjectKind::Snapshot, name, detail);
        let plain: SecretBytes = tresor_crypto::open(key.key(), &seal_ctx(vault_id, name), envelope)
            .map_err(|_| bad("does not authenticate: tampered, or moved from another name"))?;
        decode_part(&plain).ok_or_else(|| bad("authenticated but does not parse"))
    })?;
    let mut header: Option<Header> = None;
    let mut entries = Vec::new();
    for ((h, part), name) in decoded.into_iter().zip(&names) {
        if h.seq != found.0 || header.as_ref().is_some_and(|first| *first != h) {
            return Err(Error::integrity(ObjectKind::Snapshot, name, "belongs to another snapshot"));
        }
        header.get_or_insert(h);
        entries.extend(part);
    }
    let first = names.first().map_or("snap/", String::as_str);
    let header = header.ok_or_else(|| Error::integrity(ObjectKind::Snapshot, first, "has no parts"))?;
    if header.entries != entries.len() as u64 {
        return Err(Error::integrity(
            ObjectKind::Snapshot,
            first,
            "holds fewer entries than its header says",
        ));
    }
    let index = Index::from_sorted(entries)
        .ok_or_else(|| Error::integrity(ObjectKind::Snapshot, first, "holds entries out of order"))?;
    Ok((header, index))
}

fn decode_part(plain: &[u8]) -> Option<(Header, Vec<(String, Entry)>)> {
    let (header, rest): (Header, &[u8]) = postcard::take_from_bytes(plain).ok()?;
    let (count, mut rest): (u64, &[u8]) = postcard::take_from_bytes(rest).ok()?;
    // The count is authenticated, but bounded by the bytes anyway (an entry takes ≥ 2 bytes).
    let mut entries = Vec::with_capacity(usize::try_from(count).ok()?.min(rest.len() / 2));
    for _ in 0..count {
        let (entry, tail): ((String, Entry), &[u8]) = postcard::take_from_bytes(rest).ok()?;
        entries.push(entry);
        rest = tail;
    }
    rest.is_empty().then_some((header, entries))
}

/// The cores this process may use, asked once: the answer reads cgroup files on every call,
/// which a small write must not pay for.
pub(crate) fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// Work below this many bytes runs on the calling thread: starting threads would cost more.
const PARALLEL_FROM: usize = 256 << 10;

/// Runs `f` over `jobs` (`bytes` of work in all) on every available core; results in job order,
/// the first error wins. Small work runs inline. Big work on a worker of a multi-threaded tokio
/// runtime first tells the runtime that this worker blocks (`block_in_place`), so other tasks
/// move to other workers instead of waiting behind the thread scope.
pub(crate) fn on_every_core<J: Sync, T: Send>(
    jobs: &[J],
    bytes: usize,
    f: impl Fn(&J) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    if bytes < PARALLEL_FROM {
        return jobs.iter().map(&f).collect();
    }
    let threads = cores().min(jobs.len()).max(1);
    if threads == 1 {
        return jobs.iter().map(&f).collect();
    }
    let on_worker = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if on_worker {
        tokio::task::block_in_place(|| scoped(jobs, threads, &f))
    } else {
        scoped(jobs, threads, &f)
    }
}

/// [`on_every_core`] on `threads` scoped threads.
fn scoped<J: Sync, T: Send>(
    jobs: &[J],
    threads: usize,
    f: &(impl Fn(&J) -> Result<T> + Sync),
) -> Result<Vec<T>> {
    let chunk = jobs.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|slice| scope.spawn(move || slice.iter().map(f).collect::<Result<Vec<T>>>()))
            .collect();
        let mut out = Vec::with_capacity(jobs.len());
        for handle in handles {
            let part = handle.join().map_err(|_| Error::Invalid("a snapshot worker thread failed".into()))?;
            out.extend(part?);
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BlobRef, Op};
    use proptest::prelude::*;

    fn index_of(paths: &[String]) -> Index {
        let mut index = Index::default();
        for (i, path) in paths.iter().enumerate() {
            let blob = BlobRef { epoch: 1, id: [i as u8; 16], size: i as u64, slot: 0, offset: 0, len: 300 };
            index.apply(&Op::Put { path: path.clone(), version: 1, blob }, i as u64);
        }
        index
    }

    fn header(seq: u64, entries: usize) -> Header {
        Header {
            seq,
            link: [9; 32],
            keyring: Default::default(),
            keyfile: (1, Some([3; 32])),
            anchor: None,
            entries: entries as u64,
        }
    }

    fn roundtrip(index: &Index, seq: u64) -> Result<(Header, Index)> {
        let key = SnapshotKey::generate()?;
        let id = [5u8; 16];
        let h = header(seq, index.entries().len());
        let sealed = seal(&key, &id, seq, &encode(&h, index)?)?;
        let parts = sealed.len() as u32;
        let envelopes: Vec<Bytes> = sealed.into_iter().map(|(_, e)| Bytes::from(e)).collect();
        open(&key, &id, (seq, parts), &envelopes)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn snapshots_roundtrip(paths in proptest::collection::btree_set("[a-z/]{1,24}", 0..64), seq in 1u64..1000) {
            let paths: Vec<String> = paths.into_iter().collect();
            let index = index_of(&paths);
            let (h, back) = roundtrip(&index, seq).unwrap();
            prop_assert_eq!(h, header(seq, paths.len()));
            prop_assert_eq!(back, index);
        }
    }

    #[test]
    fn big_indexes_split_into_parts_that_reassemble() {
        let paths: Vec<String> = (0..120_000).map(|i| format!("service/{i:08}/password")).collect();
        let index = index_of(&paths);
        let parts = encode(&header(7, paths.len()), &index).unwrap();
        assert!(parts.len() > 1, "{} parts", parts.len());
        let (_, back) = roundtrip(&index, 7).unwrap();
        assert_eq!(back, index);
    }

    #[test]
    fn fail_swapped_dropped_or_renamed_parts() {
        let paths: Vec<String> = (0..120_000).map(|i| format!("p/{i:08}")).collect();
        let index = index_of(&paths);
        let key = SnapshotKey::generate().unwrap();
        let id = [5u8; 16];
        let sealed = seal(&key, &id, 7, &encode(&header(7, paths.len()), &index).unwrap()).unwrap();
        let parts = sealed.len() as u32;
        let envelopes: Vec<Bytes> = sealed.into_iter().map(|(_, e)| Bytes::from(e)).collect();
        let mut swapped = envelopes.clone();
        swapped.swap(0, 1);
        assert!(matches!(open(&key, &id, (7, parts), &swapped), Err(Error::Integrity { .. })));
        // The same parts presented as another commit's snapshot, or as fewer parts.
        assert!(matches!(open(&key, &id, (8, parts), &envelopes), Err(Error::Integrity { .. })));
        assert!(matches!(
            open(&key, &id, (7, parts - 1), &envelopes[..envelopes.len() - 1]),
            Err(Error::Integrity { .. })
        ));
        // Another vault's key.
        let other = SnapshotKey::generate().unwrap();
        assert!(matches!(open(&other, &id, (7, parts), &envelopes), Err(Error::Integrity { .. })));
        let mut flipped = envelopes.clone();
        let mut last = flipped[0].to_vec();
        let n = last.len() - 1;
        last[n] ^= 1;
        flipped[0] = Bytes::from(last);
        assert!(matches!(open(&key, &id, (7, parts), &flipped), Err(Error::Integrity { .. })));
        open(&key, &id, (7, parts), &envelopes).unwrap();
    }
}

#[cfg(test)]
mod timing {
    use super::*;
    use crate::model::{BlobRef, Op};

    #[test]
    #[ignore = "a measurement, run by hand with --release --ignored --nocapture"]
    fn phases_for_a_million_entries() {
        let mut index = Index::default();
        for i in 0..1_000_000u64 {
            let blob = BlobRef {
                epoch: 1,
                id: tresor_crypto::random_array().unwrap(),
                size: 100,
                slot: 0,
                offset: 0,
                len: 300,
            };
            index.apply(
                &Op::Put {
                    path: format!("apps/{}/{:04}/{:03}-db-password", i % 4, i / 4000, (i / 4) % 1000),
                    version: 1,
                    blob,
                },
                1_795_000_000_000 + i,
            );
        }
        let key = SnapshotKey::generate().unwrap();
        let id = [5u8; 16];
        let h = Header {
            seq: 9,
            link: [1; 32],
            keyring: Default::default(),
            keyfile: (1, None),
            anchor: None,
            entries: 1_000_000,
        };
        let t = std::time::Instant::now();
        let plain = encode(&h, &index).unwrap();
        eprintln!("encode {:?} ({} parts)", t.elapsed(), plain.len());
        let t = std::time::Instant::now();
        let sealed = seal(&key, &id, 9, &plain).unwrap();
        eprintln!("seal {:?}", t.elapsed());
        let envelopes: Vec<Bytes> = sealed.into_iter().map(|(_, e)| Bytes::from(e)).collect();
        let names: Vec<String> = names((9, envelopes.len() as u32)).collect();
        let t = std::time::Instant::now();
        let opened: Vec<SecretBytes> = names
            .iter()
            .zip(&envelopes)
            .map(|(n, e)| tresor_crypto::open(key.key(), &seal_ctx(&id, n), e).unwrap())
            .collect();
        eprintln!("open (aead+zstd, one core) {:?}", t.elapsed());
        let t = std::time::Instant::now();
        let decoded: Vec<_> = opened.iter().map(|p| decode_part(p).unwrap()).collect();
        eprintln!("decode (one core) {:?}", t.elapsed());
        let t = std::time::Instant::now();
        let entries: Vec<(String, Entry)> = decoded.into_iter().flat_map(|(_, e)| e).collect();
        eprintln!("concat {:?}", t.elapsed());
        let t = std::time::Instant::now();
        let back = Index::from_sorted(entries).unwrap();
        eprintln!("from_sorted {:?}", t.elapsed());
        let t = std::time::Instant::now();
        let (_, again) = open(&key, &id, (9, envelopes.len() as u32), &envelopes).unwrap();
        eprintln!("open() total {:?}", t.elapsed());
        assert_eq!(again.len(), back.len());
    }
}
