//! Index snapshots: loading the newest at unlock, checking it against the log, writing one when due.

use super::{Engine, Head, SNAPSHOT_COMMITS, SNAPSHOT_MIN_OPS, SnapshotTiming};
use crate::chain::LogKind;
use crate::error::{Error, ObjectKind, Result};
use crate::layout::{self};
use crate::snapshot;
use crate::store::{Created, Durability};
use crate::trust::TrustState;
use futures::{StreamExt, TryStreamExt};

impl Engine {
    /// Starts the index from the newest complete snapshot, if there is one. An older snapshot than
    /// this machine has seen is a rollback; a snapshot is used only once its commit is in the log
    /// with the link it records and, when this machine pinned a commit at or below it, once the
    /// log has been followed from the pinned commit up to it.
    pub(super) async fn load_snapshot(&mut self, trust: &TrustState) -> Result<()> {
        // `gc` may remove a superseded snapshot between listing and reading: look again.
        for _ in 0..3 {
            // Only snapshots sealed with this vault's keys count (planted names are skipped)...
            let (newest, skipped) =
                snapshot::newest_authentic_skipping(&self.store, &self.keys.snapshot, &self.vault_id).await?;
            let served = newest.map_or(0, |(seq, _)| seq);
            if served < trust.snapshot_seq {
                // ... but one at or above what this machine saw that fails is the snapshot this
                // machine saw, tampered: say so, not "rollback".
                if let Some(&(seq, parts)) = skipped.iter().find(|(seq, _)| *seq >= trust.snapshot_seq) {
                    return Err(Error::integrity(
                        ObjectKind::Snapshot,
                        &layout::snapshot(seq, 0, parts),
                        "does not authenticate: tampered, or moved from another name",
                    ));
                }
                return Err(Error::Rollback { kind: ObjectKind::Snapshot, seen: trust.snapshot_seq, served });
            }
            let Some(found) = newest else { return Ok(()) };
            let Some(envelopes) = snapshot::read(&self.store, found).await? else { continue };
            let (header, index) = snapshot::open(&self.keys.snapshot, &self.vault_id, found, &envelopes)?;
            drop(envelopes);
            self.check_snapshot(&header, found, trust).await?;
            *self.view.index_mut() = index;
            self.log = Head { seq: header.seq, link: header.link };
            self.view.set_log_seq(header.seq);
            self.keyring = header.keyring;
            self.view.set_current_epoch(self.keyring.current);
            self.view.set_fenced(self.keyring.fence.is_some());
            self.logged_keyfile = header.keyfile;
            self.last_anchor = header.anchor;
            self.snapshot_seq = header.seq;
            self.snapshot_base = header.seq;
            return Ok(());
        }
        Err(Error::store("snapshots kept disappearing while being read"))
    }

    pub(super) async fn check_snapshot(
        &self,
        header: &snapshot::Header,
        found: snapshot::Found,
        trust: &TrustState,
    ) -> Result<()> {
        let seq = header.seq;
        let name = layout::commit(seq);
        let Some(commit) = self.store.get(&name).await? else {
            // The newest commits are gone (a rollback, if this machine saw more than is left), or
            // this one was taken out of the middle.
            let served = self.scan_head(LogKind::Commit, 0).await?;
            if trust.log_seq > served && !self.store.exists(&layout::commit(trust.log_seq)).await? {
                return Err(Error::Rollback { kind: ObjectKind::Commit, seen: trust.log_seq, served });
            }
            let detail = "is missing, yet a snapshot was taken at it: an entry was deleted from the log";
            return Err(Error::integrity(ObjectKind::Commit, &name, detail));
        };
        if self.keys.commit.link(&commit) != header.link {
            let part = layout::snapshot(seq, 0, found.1);
            return Err(Error::integrity(
                ObjectKind::Snapshot,
                &part,
                format!("records another commit {seq} than the log holds"),
            ));
        }
        if trust.log_seq == 0 || trust.log_seq > seq {
            return Ok(());
        }
        // The commit this machine pinned must be an ancestor of the snapshot's.
        let pinned = self.store.get_required(&layout::commit(trust.log_seq), "is pinned but missing").await?;
        let mut prev = self.keys.commit.link(&pinned);
        if hex::encode(prev) != trust.log_link {
            return Err(Error::Fork { kind: ObjectKind::Commit, seq: trust.log_seq });
        }
        let mut entries = std::pin::pin!(self.log_range(LogKind::Commit, trust.log_seq + 1, seq));
        while let Some((n, bytes)) = entries.try_next().await? {
            self.keys.commit.open(n, &prev, &bytes)?;
            prev = self.keys.commit.link(&bytes);
        }
        if prev != header.link {
            return Err(Error::Fork { kind: ObjectKind::Snapshot, seq });
        }
        Ok(())
    }

    /// Reads and opens the newest snapshot again, timing each step (for benchmarks and `doctor`);
    /// `None` without a snapshot.
    pub async fn measure_snapshot(&self) -> Result<Option<SnapshotTiming>> {
        let Some(found) = snapshot::newest(&self.store).await? else { return Ok(None) };
        let start = std::time::Instant::now();
        let Some(envelopes) = snapshot::read(&self.store, found).await? else { return Ok(None) };
        let read = start.elapsed();
        let (_, index) = snapshot::open(&self.keys.snapshot, &self.vault_id, found, &envelopes)?;
        let opened = start.elapsed();
        Ok(Some(SnapshotTiming {
            seq: found.0,
            parts: found.1,
            bytes: envelopes.iter().map(|e| e.len() as u64).sum(),
            entries: index.len() as u64,
            read,
            open: opened - read,
        }))
    }

    /// Counts commits and ops from the snapshot at `seq` on (when it is newer than the base).
    pub(super) fn advance_snapshot_base(&mut self, seq: u64) {
        if seq <= self.snapshot_base {
            return;
        }
        self.snapshot_base = seq;
        while let Some(&(n, ops)) = self.ops_after_base.front()
            && n <= seq
        {
            self.ops_since_snapshot -= ops;
            self.ops_after_base.pop_front();
        }
    }

    /// Writes a snapshot if one is due — unless another writer has written a recent enough one.
    pub(super) async fn snapshot_if_due(&mut self) -> Result<()> {
        if self.defer_snapshots || !self.snapshot_due() {
            return Ok(());
        }
        if let Some((seq, _)) =
            snapshot::newest_authentic(&self.store, &self.keys.snapshot, &self.vault_id).await?
        {
            self.advance_snapshot_base(seq.min(self.log.seq));
        }
        if self.snapshot_due() {
            self.snapshot().await?;
        }
        Ok(())
    }

    pub(super) fn snapshot_due(&self) -> bool {
        let commits = self.log.seq.saturating_sub(self.snapshot_base);
        match self.opts.snapshot_every {
            Some(every) => commits >= every.max(1),
            None => {
                commits >= SNAPSHOT_COMMITS
                    || self.ops_since_snapshot >= (self.view.index().len() as u64 / 8).max(SNAPSHOT_MIN_OPS)
            }
        }
    }

    /// Writes a snapshot of the index as of the newest commit this handle has applied, and pins it.
    /// Parts another writer already wrote for the same commit are the same bytes' equals: kept.
    pub async fn snapshot(&mut self) -> Result<u64> {
        let header = snapshot::Header {
            seq: self.log.seq,
            link: self.log.link,
            keyring: self.keyring.clone(),
            keyfile: self.logged_keyfile,
            anchor: self.last_anchor,
            entries: self.view.index().len() as u64,
        };
        let sealed = {
            let plaintexts = snapshot::encode(&header, &self.view.index())?;
            snapshot::seal(&self.keys.snapshot, &self.vault_id, header.seq, &plaintexts)?
        };
        let names: Vec<String> = sealed.iter().map(|(name, _)| name.clone()).collect();
        let store = self.store.clone();
        let created = futures::stream::iter(sealed)
            .map(|(name, envelope)| {
                let store = store.clone();
                async move { store.create_with(&name, envelope, Durability::Relaxed).await }
            })
            .buffer_unordered(8)
            .try_collect::<Vec<Created>>()
            .await?;
        // A part already there is another writer's for this commit — or one the store planted
        // (found by review: a part copied under the next commit's name was pinned unread). It is
        // pinned only once the whole snapshot opens under its names.
        if created.iter().any(|c| matches!(c, Created::AlreadyExists)) {
            let found = (
                header.seq,
                u32::try_from(names.len()).map_err(|_| Error::Invalid("too many parts".into()))?,
            );
            let envelopes = snapshot::read(&self.store, found).await?.ok_or_else(|| {
                Error::integrity(ObjectKind::Snapshot, &names[0], "vanished as it was written")
            })?;
            let (written, _) = snapshot::open(&self.keys.snapshot, &self.vault_id, found, &envelopes)?;
            if written.seq != header.seq || written.link != header.link {
                return Err(Error::integrity(
                    ObjectKind::Snapshot,
                    &names[0],
                    "records another commit than its name",
                ));
            }
        }
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.sync(&names))
            .await
            .map_err(|_| Error::store("a sync thread panicked"))??;
        self.snapshot_seq = self.snapshot_seq.max(header.seq);
        self.advance_snapshot_base(header.seq);
        self.save_trust().await?;
        Ok(header.seq)
    }
}
