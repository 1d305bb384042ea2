//! The commit log: replaying it at unlock, following other writers, appending a commit (and losing races for one).

use super::{Engine, Head, MAX_RETRIES, READ_AHEAD, RETRY_FOR, backoff, exist_all, scan_head};
use crate::chain::LogKind;
use crate::error::{Error, ObjectKind, Result};
use crate::index::Index;
use crate::keyring::Keyring;
use crate::layout::{self, AuditLane, parse_seq};
use crate::model::{AuditAnchor, Commit, Op, decode, encode, now_ms};
use crate::snapshot;
use crate::store::Durability;
use crate::trust::TrustState;
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use subtle::ConstantTimeEq;

/// How many times unlock looks for the log's head again when commits keep landing past it.
const MAX_HEAD_ROUNDS: usize = 16;
impl Engine {
    pub(super) fn apply_commit(&mut self, seq: u64, bytes: &[u8]) -> Result<()> {
        let name = layout::commit(seq);
        let plain = self.keys.commit.open(seq, &self.log.link, bytes)?;
        let commit: Commit = decode(&plain, ObjectKind::Commit, &name)?;
        for op in &commit.ops {
            match op {
                Op::KeyFile { generation, hash } => {
                    self.logged_keyfile = (*generation, Some(*hash));
                    if let Some((pending, recorded)) = &mut self.pending_keyfile
                        && *pending == (*generation, *hash)
                    {
                        *recorded = true;
                    }
                }
                // Forward secrecy: a destroyed epoch's key leaves memory too.
                Op::DestroyEpoch { epoch } => self.view.remove_epoch(*epoch),
                Op::LaneAnchor { lane, anchor } => {
                    let newest = self.lane_anchors.entry(*lane).or_insert(*anchor);
                    if anchor.seq > newest.seq {
                        *newest = *anchor;
                    }
                }
                _ => {}
            }
            self.keyring.apply(op, commit.time_ms);
        }
        {
            let mut index = self.view.index_mut();
            for op in &commit.ops {
                index.apply(op, commit.time_ms);
            }
        }
        self.view.set_current_epoch(self.keyring.current);
        self.view.set_fenced(self.keyring.fence.is_some());
        if commit.audit.is_some() {
            self.last_anchor = commit.audit;
        }
        self.ops_since_snapshot += commit.ops.len() as u64;
        self.ops_after_base.push_back((seq, commit.ops.len() as u64));
        self.log = Head { seq, link: self.keys.commit.link(bytes) };
        self.view.set_log_seq(seq);
        Ok(())
    }

    /// Sequence numbers of a log's entries, sorted; names that are not ours are ignored.
    pub(super) async fn log_seqs(&self, kind: LogKind) -> Result<Vec<u64>> {
        let dir = kind.dir();
        let names = self.store.list(&dir).await?;
        let mut seqs: Vec<u64> = names.iter().filter_map(|n| parse_seq(n, &dir)).collect();
        seqs.sort_unstable();
        Ok(seqs)
    }

    /// The entries `1..=seqs.len()` of a log, in order, read ahead concurrently. A gap in `seqs`
    /// or an entry that vanishes is an integrity error naming the missing entry.
    pub(super) fn log_entries(
        &self,
        kind: LogKind,
        seqs: Vec<u64>,
    ) -> impl Stream<Item = Result<(u64, Bytes)>> + use<> {
        let store = self.store.clone();
        futures::stream::iter(seqs.into_iter().zip(1u64..))
            .map(move |(seq, expected)| {
                let store = store.clone();
                async move {
                    let name = kind.name(expected);
                    let missing = |detail| Error::integrity(kind.object_kind(), &name, detail);
                    if seq != expected {
                        return Err(missing("is missing: an entry was deleted from the log"));
                    }
                    let bytes =
                        store.get(&name).await?.ok_or_else(|| missing("vanished while being read"))?;
                    Ok((seq, bytes))
                }
            })
            .buffered(READ_AHEAD)
    }

    /// The entries `from..=to` of a log, in order, read ahead concurrently; a missing one is an
    /// integrity error naming it.
    pub(super) fn log_range(
        &self,
        kind: LogKind,
        from: u64,
        to: u64,
    ) -> impl Stream<Item = Result<(u64, Bytes)>> + use<> {
        let store = self.store.clone();
        futures::stream::iter(from..=to)
            .map(move |seq| {
                let store = store.clone();
                async move {
                    let name = kind.name(seq);
                    let detail = "is missing: an entry was deleted from the log";
                    let bytes = store
                        .get(&name)
                        .await?
                        .ok_or_else(|| Error::integrity(kind.object_kind(), &name, detail))?;
                    Ok((seq, bytes))
                }
            })
            .buffered(READ_AHEAD)
    }

    /// Builds the index at unlock — from the newest snapshot and the commits after it, or from the
    /// whole log — and checks it against the trust state. The log is never listed: its head is found
    /// by galloping from the snapshot's commit, so opening costs the snapshot plus the commits after it.
    pub(super) async fn open_log(&mut self, trust: &TrustState) -> Result<()> {
        self.load_snapshot(trust).await?;
        let start = self.log.seq;
        let mut head = self.scan_head(LogKind::Commit, start).await?;
        if head == 0 {
            return Err(Error::integrity(
                ObjectKind::Commit,
                &layout::commit(1),
                "is missing: the log is empty",
            ));
        }
        // A log that ends early: a hole (later commits are there) or a rollback (they are not).
        let hole = |seq| {
            Error::integrity(
                ObjectKind::Commit,
                &layout::commit(seq),
                "is missing: an entry was deleted from the log",
            )
        };
        if head < trust.log_seq {
            if self.store.exists(&layout::commit(trust.log_seq)).await? {
                return Err(hole(head + 1));
            }
            return Err(Error::Rollback { kind: ObjectKind::Commit, seen: trust.log_seq, served: head });
        }
        // Entries past a gap after the head: a hole, unless the gap was a commit that another
        // writer created while the head was being found (it exists now, and a writer creates a
        // commit only once the one before it exists, so one that is still missing after later
        // ones were seen is missing for good). A log that keeps growing faster than it can be
        // found (or a store that answers so) is a conflict to retry after a few rounds.
        let mut rounds = 0;
        while self.entries_beyond(LogKind::Commit, head).await? {
            // By 2^62 (where `scan_head` stops) the store is lying: no log gets there.
            if head >= 1 << 62 || !self.store.exists(&layout::commit(head + 1)).await? {
                return Err(hole(head + 1));
            }
            rounds += 1;
            if rounds > MAX_HEAD_ROUNDS {
                return Err(Error::Conflict(
                    "the commit log kept growing while it was being opened: try again".into(),
                ));
            }
            head = self.scan_head(LogKind::Commit, head + 1).await?;
        }
        let mut entries = std::pin::pin!(self.log_range(LogKind::Commit, start + 1, head));
        while let Some((seq, bytes)) = entries.try_next().await? {
            self.apply_commit(seq, &bytes)?;
            if seq == trust.log_seq && hex::encode(self.log.link) != trust.log_link {
                return Err(Error::Fork { kind: ObjectKind::Commit, seq });
            }
        }
        Ok(())
    }

    /// Reads commits other writers appended since we last looked.
    pub async fn refresh(&mut self) -> Result<()> {
        let start = self.log.seq;
        while let Some(bytes) = self.store.get(&layout::commit(self.log.seq + 1)).await? {
            self.apply_commit(self.log.seq + 1, &bytes)?;
        }
        if self.log.seq != start {
            self.save_trust().await?;
        }
        // A re-key elsewhere fenced this era: once its new era is current, this handle (its
        // root, its keys) is done with.
        if self.keyring.fence.is_some_and(|f| f.next > self.era) {
            self.superseded().await?;
        }
        Ok(())
    }

    /// [`Error::Superseded`] if a newer root era than this handle's is current at its location
    /// (a re-key elsewhere): what a missing object or a fence means then.
    pub(super) async fn superseded(&self) -> Result<()> {
        let (current, _) = crate::era::current(&self.base).await?;
        if current > self.era {
            return Err(Error::Superseded { era: current });
        }
        Ok(())
    }

    /// What a commit asks the store before its first attempt, as one future that borrows nothing
    /// of the handle, so a write can run it beside its blob and audit writes
    /// ([`Engine::commit_after`]): whether the commit this handle builds on is still there,
    /// whether a commit after it exists (another writer's), and the newest snapshot's name. On S3
    /// that takes the three requests out of the write's path (one round trip less).
    pub(super) fn first_checks(
        &self,
    ) -> impl std::future::Future<Output = Result<FirstChecks>> + Send + 'static {
        let store = self.store.clone();
        let head = self.log.seq;
        async move {
            let head_entry = async {
                if head == 0 { Ok(Some(Bytes::new())) } else { store.get(&layout::commit(head)).await }
            };
            let next = layout::commit(head + 1);
            let next_there = store.exists(&next);
            let (newest, head_entry, next_there) =
                tokio::join!(snapshot::newest(&store), head_entry, next_there);
            Ok(FirstChecks { head, head_entry: head_entry?, next_there: next_there?, newest: newest? })
        }
    }

    /// Appends one commit built from the current index; on losing the race for the next sequence
    /// number, catches up and builds again.
    pub(super) async fn commit(
        &mut self,
        build: impl FnMut(&Index, &Keyring) -> Result<Vec<Op>>,
    ) -> Result<Vec<Op>> {
        let checks = self.first_checks().await;
        self.commit_after(checks, build).await
    }

    /// [`Engine::commit`] after its [`Engine::first_checks`], run by the caller (the handle may
    /// have done nothing but write objects meanwhile).
    pub(super) async fn commit_after(
        &mut self,
        checks: Result<FirstChecks>,
        mut build: impl FnMut(&Index, &Keyring) -> Result<Vec<Op>>,
    ) -> Result<Vec<Op>> {
        let writer = tresor_crypto::random_array::<16>()?;
        let started = std::time::Instant::now();
        let mut checks = Some(checks);
        for attempt in 0usize.. {
            if attempt >= MAX_RETRIES && started.elapsed() >= RETRY_FOR {
                break;
            }
            if let Some(checks) = checks.take() {
                let FirstChecks { head, head_entry, next_there, newest } = checks?;
                // Another writer's commits since: read them (the head checked is then behind us,
                // and was there when they chained onto it). Under a fence, always: the era may
                // have been switched elsewhere without a commit here.
                if next_there || head != self.log.seq || self.keyring.fence.is_some() {
                    self.refresh().await?;
                }
                // The commit this handle builds on is gone: the era was deleted by a re-key
                // elsewhere (a write here would be lost), or the store rolled back.
                let Some(head_entry) = head_entry else {
                    self.superseded().await?;
                    let served = self.scan_head(LogKind::Commit, 0).await?;
                    return Err(Error::Rollback { kind: ObjectKind::Commit, seen: head, served });
                };
                // It is there, but is it the one this handle applied? A store that dropped it
                // and took another writer's commit under its number serves each writer its own
                // history: a commit here would chain onto a head no other reader holds, and be
                // acknowledged for ever (found by review). A refresh past it has checked it.
                if head > 0
                    && head == self.log.seq
                    && !bool::from(self.keys.commit.link(&head_entry).ct_eq(&self.log.link))
                {
                    return Err(Error::Fork { kind: ObjectKind::Commit, seq: head });
                }
                // A snapshot above our head means the store lost commits that another writer saw:
                // a commit here would land below the newest snapshot and must not be acknowledged.
                // Only a snapshot sealed by a holder of the vault's keys counts: a planted name
                // must not make every commit report a rollback.
                if let Some(found) = newest
                    && found.0 > self.log.seq
                    && snapshot::authentic(&self.store, &self.keys.snapshot, &self.vault_id, found).await?
                {
                    let seq = found.0;
                    return Err(Error::Rollback {
                        kind: ObjectKind::Commit,
                        seen: seq,
                        served: self.log.seq,
                    });
                }
            } else {
                self.refresh().await?;
            }
            let ops = build(&self.view.index(), &self.keyring)?;
            // A fenced era (a re-key is making the next one) takes nothing but the abort of that
            // re-key: a write landing here would be lost with the era.
            if let Some(next) = self.keyring.fence.map(|f| f.next)
                && !ops.iter().all(|op| matches!(op, Op::RekeyAborted { .. } | Op::Rekeying { .. }))
            {
                return Err(Error::Fenced { next });
            }
            // A key file change another writer recorded meanwhile wins: ours, no newer, is not
            // recorded (it would be a generation unlock no longer uses).
            let newer_keyfile = ops.iter().any(|op| match op {
                Op::KeyFile { generation, hash } => self.keyfile_superseded(*generation, hash),
                _ => false,
            });
            if newer_keyfile {
                return Err(Error::Conflict("the key file was changed by another writer meanwhile".into()));
            }
            // The commit anchors the head of this handle's audit lane: it must be durable first.
            let (lane, audit) = {
                let mut lane = self.lane.lock().await;
                lane.unsynced.append(&mut self.unsynced);
                lane.sync().await?;
                (lane.lane, lane.head)
            };
            let anchor = (audit.seq > 0).then_some(AuditAnchor { seq: audit.seq, link: audit.link });
            let mut commit =
                Commit { time_ms: now_ms(), actor: self.opts.actor.clone(), writer, audit: None, ops };
            match (lane, anchor) {
                (AuditLane::Main, anchor) => commit.audit = anchor,
                (AuditLane::Named(lane), Some(anchor)) => commit.ops.push(Op::LaneAnchor { lane, anchor }),
                (AuditLane::Named(_), None) => {}
            }
            let seq = self.log.seq + 1;
            let entry = Bytes::from(self.keys.commit.seal(seq, &self.log.link, &encode(&commit)?)?);
            if super::create_checked(&self.store, &layout::commit(seq), entry.clone(), Durability::Sync)
                .await?
            {
                // The commit is in the log: whatever fails from here on is reported, not returned
                // (the caller must not hear "failed" for a write that landed). A commit this
                // handle cannot apply is applied by the next refresh, or reported by it.
                if let Err(e) = self.apply_commit(seq, &entry) {
                    tracing::warn!("commit {seq} landed but this handle could not apply it yet: {e}");
                } else if let Err(e) = self.pin_after_commit().await {
                    tracing::warn!("commit {seq} landed but this machine's trust state was not updated: {e}");
                }
                // The commit is durable and acknowledged; a snapshot that cannot be written now
                // is written by a later commit.
                if let Err(e) = self.snapshot_if_due().await {
                    tracing::warn!("index snapshot not written: {e}");
                }
                let mut ops = commit.ops;
                ops.retain(|op| !matches!(op, Op::LaneAnchor { .. }));
                return Ok(ops);
            }
            backoff(attempt).await;
        }
        Err(Error::Conflict("gave up after a minute of lost races: too many concurrent writers".into()))
    }

    /// The newest entry of a log at or after `from` (which must exist, or be 0): entries appended
    /// since are found by galloping forward, then bisecting, without listing the log.
    pub(super) async fn scan_head(&self, kind: LogKind, from: u64) -> Result<u64> {
        scan_head(&self.store, kind, from).await
    }

    /// Whether entries exist past a gap after `head` (probed densely just after it, then
    /// exponentially further, in one concurrent round): a log with a hole, not one that ends.
    pub(super) async fn entries_beyond(&self, kind: LogKind, head: u64) -> Result<bool> {
        let probes: Vec<u64> =
            (2..=9).chain((4..=12).map(|k| 1 + (1 << k))).filter_map(|d| head.checked_add(d)).collect();
        Ok(exist_all(&self.store, kind, &probes).await?.into_iter().any(|here| here))
    }
}

/// What [`Engine::first_checks`] found, as of the head it checked.
pub(super) struct FirstChecks {
    /// The handle's head when the checks began.
    head: u64,
    /// Commit `head` as the store held it (`None`: gone; empty for an empty log).
    head_entry: Option<Bytes>,
    /// Whether commit `head + 1` was there: another writer's, to read before building.
    next_there: bool,
    /// The newest complete-looking snapshot, not yet authenticated.
    newest: Option<snapshot::Found>,
}
