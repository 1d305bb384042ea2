//! Proving the vault whole: the audit trail read back, `audit verify` over both chains, every value.

use super::{Damaged, Engine, VerifyReport, open_slot, slice_of};
use crate::chain::{GENESIS, Link, LogKind};
use crate::error::{Error, ObjectKind, Result};
use crate::index::Index;
use crate::keyring::Keyring;
use crate::layout::AuditLane;
use crate::layout::{self};
use crate::model::{
    AuditAnchor, AuditOp, AuditRecord, BlobRef, Commit, Op, Outcome, TrailRecord, decode, decode_audit,
};
use crate::roles::EpochKey;
use crate::snapshot;
use crate::store::Durability;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// How many audit lanes [`Engine::read_trail_with`] reads at once.
const LANES_AT_ONCE: usize = 8;

/// The audit trail read back: every authenticated entry, and each lane's torn tail (lane, first
/// unreadable entry, how many from there to the lane's end).
#[derive(Default)]
pub(super) struct Trail {
    pub(super) entries: Vec<TrailEntry>,
    pub(super) torn: Vec<(AuditLane, u64, u64)>,
}

/// One entry of the audit trail, read back and authenticated.
pub(super) struct TrailEntry {
    /// Its lane.
    pub(super) lane: AuditLane,
    /// Its sequence number in the lane.
    pub(super) seq: u64,
    /// The records it holds.
    pub(super) records: Vec<AuditRecord>,
    /// Its link (what the next entry of the lane carries).
    pub(super) link: Link,
}

impl Engine {
    /// [`Engine::read_trail_with`], durable up to what this handle knows: the anchors of the
    /// commits it replayed, this machine's pins and its own lane's head.
    pub(super) async fn read_trail(&self) -> Result<Trail> {
        let trust = self.opts.trust.load(&self.vault_id, self.store.location())?;
        let mut durable: BTreeMap<AuditLane, u64> = BTreeMap::new();
        let mut raise = |lane: AuditLane, seq: u64| {
            let bound = durable.entry(lane).or_insert(0);
            *bound = (*bound).max(seq);
        };
        if let Some(a) = self.last_anchor {
            raise(AuditLane::Main, a.seq);
        }
        for (id, a) in &self.lane_anchors {
            raise(AuditLane::Named(*id), a.seq);
        }
        for (lane, seq, _) in trust.audit_pins() {
            raise(lane, seq);
        }
        let own = {
            let lane = self.lane.lock().await;
            (lane.lane, lane.head.seq)
        };
        raise(own.0, own.1);
        self.read_trail_with(&durable).await
    }

    /// Reads, checks and decrypts the whole audit trail, every lane, oldest record first.
    pub async fn audit_trail(&mut self) -> Result<Vec<TrailRecord>> {
        self.audit_append(AuditOp::Audit, None, Outcome::Ok, None, Durability::Relaxed).await?;
        let mut records: Vec<TrailRecord> = self
            .read_trail()
            .await?
            .entries
            .into_iter()
            .flat_map(|entry| {
                let (lane, seq) = (entry.lane.label(), entry.seq);
                entry.records.into_iter().map(move |record| TrailRecord { lane: lane.clone(), seq, record })
            })
            .collect();
        // Lanes interleave in time; within a lane the order is the chain's (a stable sort).
        records.sort_by_key(|r| r.record.time_ms);
        Ok(records)
    }

    /// The sequence numbers of every audit lane's entries, sorted (one listing of `audit/`);
    /// names that are not ours are ignored.
    pub(super) async fn audit_lanes(&self) -> Result<BTreeMap<AuditLane, Vec<u64>>> {
        let mut lanes: BTreeMap<AuditLane, Vec<u64>> = BTreeMap::new();
        for name in self.store.list(layout::AUDIT_DIR).await? {
            if let Some((lane, seq)) = layout::parse_audit(&name) {
                lanes.entry(lane).or_default().push(seq);
            }
        }
        for seqs in lanes.values_mut() {
            seqs.sort_unstable();
        }
        Ok(lanes)
    }

    /// The whole audit trail, every lane checked link by link from its origin: lane by lane,
    /// oldest entry first, and each lane's torn tail. A lane may end in a few entries that do not
    /// authenticate: what a power failure leaves of entries written without fsync by a machine
    /// that has not unlocked since (only a lane's own machine repairs it). Such a tail, at most
    /// [`super::MAX_TORN_RECORDS`] entries, is reported rather than fatal only past `durable`
    /// (per lane: the newest entry anchored in the log, pinned here or appended by this handle)
    /// and past entry 1 (a lane's first entry, an unlock record, is always written durably).
    pub(super) async fn read_trail_with(&self, durable: &BTreeMap<AuditLane, u64>) -> Result<Trail> {
        let mut out = Trail::default();
        // Lanes are read several at a time (each with its own read-ahead): a bucket shared by
        // many short-lived machines has many short lanes.
        let lanes = self.audit_lanes().await?;
        let mut read = futures::stream::iter(lanes)
            .map(|(lane, seqs)| self.read_lane(lane, seqs, durable.get(&lane).copied().unwrap_or(0)))
            .buffered(LANES_AT_ONCE);
        while let Some((entries, torn)) = read.try_next().await? {
            out.entries.extend(entries);
            out.torn.extend(torn);
        }
        Ok(out)
    }

    /// One lane of [`Engine::read_trail_with`]: its entries, and its torn tail if it has one.
    async fn read_lane(
        &self,
        lane: AuditLane,
        seqs: Vec<u64>,
        durable: u64,
    ) -> Result<(Vec<TrailEntry>, Option<(AuditLane, u64, u64)>)> {
        let chain = self.keys.audit.lane(lane);
        let mut prev = chain.origin();
        let total = seqs.len() as u64;
        let mut out = Vec::with_capacity(seqs.len());
        let mut entries = std::pin::pin!(self.log_entries(LogKind::Audit(lane), seqs));
        while let Some((seq, bytes)) = entries.try_next().await? {
            let opened =
                chain.open(seq, &prev, &bytes).and_then(|plain| decode_audit(&plain, &lane.entry(seq)));
            match opened {
                Ok(records) => {
                    prev = chain.link(&bytes);
                    out.push(TrailEntry { lane, seq, records, link: prev });
                }
                Err(_) if seq > durable.max(1) && total - seq < super::MAX_TORN_RECORDS => {
                    return Ok((out, Some((lane, seq, total - seq + 1))));
                }
                Err(e) => return Err(e),
            }
        }
        Ok((out, None))
    }

    /// Proves the commit log and the audit trail whole: both chains unbroken from the first entry,
    /// every audit anchor in the commit log matching the trail, nothing shorter than this machine
    /// has already seen.
    pub async fn verify(&mut self) -> Result<VerifyReport> {
        self.refresh().await?;
        let trust = self.opts.trust.load(&self.vault_id, self.store.location())?;
        // The newest snapshot, compared with the log replayed up to it.
        let snap = snapshot::newest_authentic(&self.store, &self.keys.snapshot, &self.vault_id).await?;
        let snap_seq = snap.map_or(0, |(seq, _)| seq);
        if snap_seq < trust.snapshot_seq.max(self.snapshot_seq) {
            let seen = trust.snapshot_seq.max(self.snapshot_seq);
            return Err(Error::Rollback { kind: ObjectKind::Snapshot, seen, served: snap_seq });
        }
        let mut replayed = (Index::default(), Keyring::default(), (0u64, None), None);
        // The commit log, read afresh.
        let mut anchors: Vec<(AuditLane, AuditAnchor)> = Vec::new();
        let mut prev = GENESIS;
        let mut commits = 0;
        let mut entries =
            std::pin::pin!(self.log_entries(LogKind::Commit, self.log_seqs(LogKind::Commit).await?));
        while let Some((seq, bytes)) = entries.try_next().await? {
            let commit: Commit = decode(
                &self.keys.commit.open(seq, &prev, &bytes)?,
                ObjectKind::Commit,
                &layout::commit(seq),
            )?;
            anchors.extend(commit.audit.map(|a| (AuditLane::Main, a)));
            anchors.extend(commit.ops.iter().filter_map(|op| match op {
                Op::LaneAnchor { lane, anchor } => Some((AuditLane::Named(*lane), *anchor)),
                _ => None,
            }));
            prev = self.keys.commit.link(&bytes);
            commits = seq;
            if seq <= snap_seq {
                let (index, keyring, keyfile, anchor) = &mut replayed;
                for op in &commit.ops {
                    if let Op::KeyFile { generation, hash } = op {
                        *keyfile = (*generation, Some(*hash));
                    }
                    keyring.apply(op, commit.time_ms);
                    index.apply(op, commit.time_ms);
                }
                if commit.audit.is_some() {
                    *anchor = commit.audit;
                }
            }
            if let Some(found) = snap
                && seq == snap_seq
                && let Some(envelopes) = snapshot::read(&self.store, found).await?
            {
                let (header, index) = snapshot::open(&self.keys.snapshot, &self.vault_id, found, &envelopes)?;
                let (r_index, r_keyring, r_keyfile, r_anchor) = &replayed;
                let expected = (seq, prev, r_keyring, *r_keyfile, *r_anchor);
                if (header.seq, header.link, &header.keyring, header.keyfile, header.anchor) != expected
                    || index != *r_index
                {
                    let part = layout::snapshot(seq, 0, found.1);
                    return Err(Error::integrity(
                        ObjectKind::Snapshot,
                        &part,
                        format!("differs from the commit log replayed up to commit {seq}"),
                    ));
                }
                replayed = (Index::default(), Keyring::default(), (0, None), None);
            }
        }
        let seen = self.log.seq.max(trust.log_seq);
        if commits < seen {
            return Err(Error::Rollback { kind: ObjectKind::Commit, seen, served: commits });
        }
        // The audit trail, every lane, and its anchors.
        // Entries up to every anchor, pin and this handle's own head must authenticate.
        let mut durable: BTreeMap<AuditLane, u64> = BTreeMap::new();
        let own = {
            let lane = self.lane.lock().await;
            (lane.lane, lane.head.seq)
        };
        let pinned = trust.audit_pins().into_iter().map(|(lane, seq, _)| (lane, seq));
        let anchored = anchors.iter().map(|(lane, a)| (*lane, a.seq));
        for (lane, seq) in pinned.chain(anchored).chain([own]) {
            let bound = durable.entry(lane).or_insert(0);
            *bound = (*bound).max(seq);
        }
        let Trail { entries: trail, torn } = self.read_trail_with(&durable).await?;
        let served = trail.len() as u64;
        let mut links: BTreeMap<AuditLane, Vec<Link>> = BTreeMap::new();
        for entry in &trail {
            links.entry(entry.lane).or_default().push(entry.link);
        }
        let link_at = |lane: AuditLane, seq: u64| {
            links.get(&lane).and_then(|l| l.get(seq.checked_sub(1)? as usize)).copied()
        };
        // Nothing shorter than this handle appended or this machine pinned, lane by lane.
        let own = {
            let lane = self.lane.lock().await;
            (lane.lane, lane.head.seq, hex::encode(lane.head.link))
        };
        let pins = trust.audit_pins().into_iter().map(|(lane, seq, link)| (lane, seq, link.to_string()));
        for (lane, seen, pinned_link) in pins.chain([own]) {
            let lane_served = links.get(&lane).map_or(0, |l| l.len() as u64);
            if lane_served < seen {
                return Err(Error::Rollback { kind: ObjectKind::AuditRecord, seen, served: lane_served });
            }
            if seen > 0 && link_at(lane, seen).map(hex::encode) != Some(pinned_link) {
                return Err(Error::Fork { kind: ObjectKind::AuditRecord, seq: seen });
            }
        }
        for (lane, anchor) in &anchors {
            let detail = match link_at(*lane, anchor.seq) {
                Some(link) if link == anchor.link => continue,
                Some(_) => "differs from the one the commit log anchors",
                None => "is anchored in the commit log but missing",
            };
            return Err(Error::integrity(ObjectKind::AuditRecord, &lane.entry(anchor.seq), detail));
        }
        // Every lane's newest anchor is pinned here from now on: a store that later serves less
        // of any lane is caught by this machine too. Only anchored entries: they are durable
        // (a commit makes its lane durable first), where a lane's newer entries may still be
        // lost to a power failure, which must not turn into a false alarm.
        let mut heads: BTreeMap<AuditLane, (u64, Link)> = BTreeMap::new();
        for (lane, anchor) in &anchors {
            let head = heads.entry(*lane).or_insert((anchor.seq, anchor.link));
            if anchor.seq > head.0 {
                *head = (anchor.seq, anchor.link);
            }
        }
        let torn_entries = torn.iter().map(|(_, _, n)| n).sum();
        let (trust_store, vault_id) = (self.opts.trust.clone(), self.vault_id);
        let location = self.store.location().to_string();
        tokio::task::spawn_blocking(move || {
            trust_store
                .update(&vault_id, &location, |t| {
                    for (lane, (seq, link)) in &heads {
                        t.saw_audit(*lane, *seq, link);
                    }
                })
                .map(drop)
        })
        .await
        .map_err(|_| Error::store("a trust-state thread panicked"))??;
        let (values, blobs, damaged) = self.check_values().await?;
        let outcome = match damaged.len() {
            0 => Outcome::Ok,
            n => Outcome::Failed(format!("{n} of {values} values damaged")),
        };
        self.audit_append(AuditOp::AuditVerify, None, outcome, None, Durability::Relaxed).await?;
        Ok(VerifyReport {
            commits,
            audit_records: served,
            audit_lanes: links.len() as u64,
            torn_audit_entries: torn_entries,
            anchors: anchors.len() as u64,
            snapshot: snap_seq,
            values,
            blobs,
            damaged,
        })
    }

    /// Reads and authenticates every value blob the index references, each version at its own
    /// place: `(versions checked, blob objects read, damaged versions)`. A missing or changed
    /// blob, or a missing epoch key, damages exactly the versions sealed there.
    pub(super) async fn check_values(&mut self) -> Result<(u64, u64, Vec<Damaged>)> {
        // (epoch, blob id) -> the versions sealed in that object.
        type Versions = Vec<(String, u64, BlobRef)>;
        let mut objects: std::collections::BTreeMap<(u32, [u8; 16]), Versions> = Default::default();
        let versions = self.view.index().versions_in(|_| true);
        let values = versions.len() as u64;
        for (path, version, blob) in versions {
            objects.entry((blob.epoch, blob.id)).or_default().push((path, version, blob));
        }
        let mut damaged = Vec::new();
        let mut keys: HashMap<u32, Option<Arc<EpochKey>>> = HashMap::new();
        for epoch in objects.keys().map(|(epoch, _)| *epoch) {
            if let std::collections::hash_map::Entry::Vacant(slot) = keys.entry(epoch) {
                let key = match self.epoch_key(epoch).await {
                    Ok(_) => self.view.epoch(epoch),
                    Err(Error::Integrity { .. } | Error::AuthFailed) => None,
                    Err(e) => return Err(e),
                };
                slot.insert(key);
            }
        }
        let blobs = objects.len() as u64;
        let store = self.store.clone();
        let mut reads = futures::stream::iter(objects.into_iter().map(|((epoch, id), refs)| {
            let store = store.clone();
            async move {
                let name = layout::blob(epoch, &id);
                let bytes = store.get(&name).await;
                (epoch, name, refs, bytes)
            }
        }))
        .buffered(8);
        let vault_id = self.vault_id;
        while let Some((epoch, name, refs, bytes)) = reads.next().await {
            let mut fail = |refs: &[(String, u64, BlobRef)], detail: &str| {
                damaged.extend(refs.iter().map(|(path, version, _)| Damaged {
                    path: path.clone(),
                    version: *version,
                    object: name.clone(),
                    detail: detail.to_string(),
                }))
            };
            let bytes = match bytes {
                Ok(Some(bytes)) => bytes,
                Ok(None) => {
                    fail(&refs, "its value blob is missing");
                    continue;
                }
                Err(Error::Store(e)) => return Err(Error::Store(e)),
                Err(e) => {
                    fail(&refs, &e.to_string());
                    continue;
                }
            };
            let Some(Some(key)) = keys.get(&epoch) else {
                fail(&refs, &format!("the key of epoch {epoch} is missing or damaged"));
                continue;
            };
            for r in &refs {
                // A slot past the end of a cut object is an empty slice, which never opens.
                if open_slot(key, &vault_id, &name, &r.2, slice_of(&bytes, &r.2)).is_err() {
                    fail(std::slice::from_ref(r), "its sealed value does not authenticate (changed or cut)");
                }
            }
        }
        damaged.sort_by(|a, b| (&a.path, a.version).cmp(&(&b.path, b.version)));
        Ok((values, blobs, damaged))
    }

    /// Every object of the vault, each read afresh and authenticated, in restore order: value
    /// blobs, epoch keys, audit records and commits in sequence, the key file last. Nothing the
    /// vault does not know (stray files, links planted by the store) is included.
    pub(crate) async fn authenticated_objects(&mut self) -> Result<Vec<(String, Bytes)>> {
        let mut out = Vec::new();
        let mut objects: std::collections::BTreeMap<(u32, [u8; 16]), Vec<BlobRef>> = Default::default();
        for blob in self.view.index().blobs() {
            objects.entry((blob.epoch, blob.id)).or_default().push(*blob);
        }
        let mut epochs: Vec<u32> =
            objects.keys().map(|(epoch, _)| *epoch).chain([self.keyring.current]).collect();
        epochs.sort_unstable();
        epochs.dedup();
        let vault_id = self.vault_id;
        for ((epoch, id), slots) in objects {
            let name = layout::blob(epoch, &id);
            let bytes = self.store.get_required(&name, "is missing: the store lost or removed it").await?;
            let key = self.epoch_key(epoch).await?;
            for blob in &slots {
                open_slot(&key, &vault_id, &name, blob, slice_of(&bytes, blob))?;
            }
            out.push((name, bytes));
        }
        for epoch in epochs {
            let (wrapped, _) = self.load_epoch_key(epoch).await?;
            out.push((layout::epoch_key(epoch), wrapped));
        }
        let lanes = self.audit_lanes().await?.into_iter().map(|(lane, seqs)| (LogKind::Audit(lane), seqs));
        let commits = [(LogKind::Commit, self.log_seqs(LogKind::Commit).await?)];
        for (kind, seqs) in lanes.chain(commits) {
            let lane_chain;
            let chain = match kind {
                LogKind::Audit(lane) => {
                    lane_chain = self.keys.audit.lane(lane);
                    &lane_chain
                }
                LogKind::Commit => &self.keys.commit,
            };
            let mut prev = chain.origin();
            let mut entries = std::pin::pin!(self.log_entries(kind, seqs));
            while let Some((seq, bytes)) = entries.try_next().await? {
                chain.open(seq, &prev, &bytes)?;
                prev = chain.link(&bytes);
                out.push((kind.name(seq), bytes));
            }
        }
        self.keyfile_fresh().await?;
        let name = layout::keyfile(self.keyfile.generation);
        let keyfile = self.store.get_required(&name, "is missing").await?;
        if tresor_crypto::hash(&keyfile) != self.keyfile_hash {
            return Err(Error::integrity(ObjectKind::KeyFile, &name, "changed while the vault was open"));
        }
        out.push((name, keyfile));
        Ok(out)
    }
}
