//! The audit lane: this handle's head of the audit trail, and appends of whole batches of records.
//!
//! The lane sits behind its own async mutex, apart from the engine: a burst of reads queues its
//! records and the next append writes them all as one entry (format 2, see `model::encode_audit`)
//! with one durability round, while the engine may be busy with a commit. The engine appends
//! its own records through the same lane and anchors the lane's head in every commit.

use super::{Head, MAX_RETRIES, RETRY_FOR, backoff, create_idempotent, scan_head};
use crate::chain::{Chain, LogKind};
use crate::error::{Error, Result};
use crate::layout::AuditLane;
use crate::model::{AuditRecord, encode_audit};
use crate::store::{Durability, Store};
use crate::trust::TrustStore;

/// Audit entries appended without fsync before the lane makes them durable and pins its head
/// in the trust state. The pin runs beside later appends; a power failure loses at most twice
/// this many (see `Vault::write_read_records`), which the next unlock sees.
pub(super) const PIN_EVERY: usize = 64;

/// The head of this handle's lane of the audit trail as it knows it, and how to append to it.
pub(crate) struct Lane {
    /// Which lane: the main one until unlock reads this machine's choice from the trust state.
    pub(super) lane: AuditLane,
    /// The newest entry (its sequence number and link).
    pub(super) head: Head,
    /// Entries written without fsync, not yet made durable: never pinned, anchored or chained
    /// onto by a durable object before [`Lane::sync`].
    pub(super) unsynced: Vec<String>,
    /// The audit chain's keys, for this lane; `None` once the vault is locked (wiped).
    chain: Option<Chain>,
    store: Store,
    /// Where the lane pins its head by itself (every [`PIN_EVERY`] relaxed entries).
    trust: TrustStore,
    vault_id: [u8; 16],
}

impl Lane {
    /// The main lane of the trail `chain` belongs to, empty.
    pub(super) fn new(chain: Chain, store: Store, trust: TrustStore, vault_id: [u8; 16]) -> Lane {
        let chain = chain.lane(AuditLane::Main);
        let head = Head { seq: 0, link: chain.origin() };
        Lane { lane: AuditLane::Main, head, unsynced: Vec::new(), chain: Some(chain), store, trust, vault_id }
    }

    /// Appends to `lane` from now on, from its empty head (the caller then finds its real head).
    pub(super) fn switch_to(&mut self, lane: AuditLane) -> Result<()> {
        let chain = self.chain.as_ref().ok_or(Error::Locked)?.lane(lane);
        self.head = Head { seq: 0, link: chain.origin() };
        self.chain = Some(chain);
        self.lane = lane;
        Ok(())
    }

    /// Wipes the chain key: every later append fails with [`Error::Locked`].
    pub(super) fn close(&mut self) {
        self.chain = None;
    }

    /// Makes every entry written without fsync durable, on a blocking thread.
    pub(super) async fn sync(&mut self) -> Result<()> {
        if self.unsynced.is_empty() {
            return Ok(());
        }
        // The names stay listed until the sync is done: if this future is dropped while it
        // waits, the next durable write syncs them again.
        let names = self.unsynced.clone();
        let count = names.len();
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.sync(&names))
            .await
            .map_err(|_| Error::store("a sync thread panicked"))??;
        // Nothing was added meanwhile (`&mut self` is held): exactly those are durable now.
        self.unsynced.drain(..count);
        Ok(())
    }

    /// [`Lane::sync`] without a runtime (on drop).
    pub(super) fn sync_blocking(&mut self) -> Result<()> {
        self.store.sync(&self.unsynced)?;
        self.unsynced.clear();
        Ok(())
    }

    /// Appends `records` as one entry. Any failure is [`Error::Audit`] (or [`Error::Locked`]):
    /// the caller must refuse the operations they describe. A durable entry first makes every
    /// earlier one durable: it must not chain onto entries a power failure could still tear.
    pub(super) async fn append(&mut self, records: &[AuditRecord], durability: Durability) -> Result<()> {
        let plain = encode_audit(records)?;
        let audit_err = |e: Error| match e {
            Error::Locked => Error::Locked,
            e => Error::Audit(Box::new(e)),
        };
        if self.chain.is_none() {
            return Err(Error::Locked);
        }
        if durability == Durability::Sync {
            self.sync().await.map_err(audit_err)?;
        }
        let started = std::time::Instant::now();
        for attempt in 0usize.. {
            if attempt >= MAX_RETRIES && started.elapsed() >= RETRY_FOR {
                break;
            }
            let seq = self.head.seq + 1;
            let chain = self.chain.as_ref().ok_or(Error::Locked)?;
            let entry = chain.seal(seq, &self.head.link, &plain).map_err(audit_err)?;
            let link = chain.link(&entry);
            let name = self.lane.entry(seq);
            if create_idempotent(&self.store, &name, &entry, durability).await.map_err(audit_err)? {
                self.head = Head { seq, link };
                if durability == Durability::Relaxed {
                    self.unsynced.push(name);
                }
                return Ok(());
            }
            // Other writers appended since we last looked: catch up to the head, chain onto it.
            // Their entries may not be durable yet either: make them so before chaining on them.
            backoff(attempt).await;
            self.head = self.scan_head(seq).await.map_err(audit_err)?;
            let lane = self.lane;
            self.unsynced.extend((seq..=self.head.seq).map(|seq| lane.entry(seq)));
            if durability == Durability::Sync {
                self.sync().await.map_err(audit_err)?;
            }
        }
        Err(Error::Audit(Box::new(Error::Conflict("too many concurrent writers".into()))))
    }

    /// The newest entry at or after `from` (which must exist, or be 0), and its link.
    pub(super) async fn scan_head(&self, from: u64) -> Result<Head> {
        let seq = scan_head(&self.store, LogKind::Audit(self.lane), from).await?;
        let chain = self.chain.as_ref().ok_or(Error::Locked)?;
        if seq == 0 {
            return Ok(Head { seq: 0, link: chain.origin() });
        }
        let bytes = self.store.get_required(&self.lane.entry(seq), "vanished while being read").await?;
        Ok(Head { seq, link: chain.link(&bytes) })
    }

    /// Whether enough entries wait for a sync that the lane should pin its head now.
    pub(super) fn pin_due(&self) -> bool {
        self.unsynced.len() >= PIN_EVERY
    }

    /// Makes the entries durable and pins the head in the trust state (the engine pins it with
    /// everything else at every commit; this is for a run of reads with no commit).
    pub(super) async fn pin(&mut self) -> Result<()> {
        let job = self.pin_job();
        let synced = job.run().await?;
        self.synced(&synced);
        Ok(())
    }

    /// What a pin of the lane as it is now needs, to run without holding the lane (appends go on
    /// meanwhile); hand what it returns to [`Lane::synced`].
    pub(super) fn pin_job(&self) -> PinJob {
        PinJob {
            names: self.unsynced.clone(),
            store: self.store.clone(),
            trust: self.trust.clone(),
            vault_id: self.vault_id,
            head: self.head,
            lane: self.lane,
        }
    }

    /// Forgets `names` as waiting for a sync: a [`PinJob`] made them durable. (A commit may have
    /// synced them, and others been written, meanwhile.)
    pub(super) fn synced(&mut self, names: &[String]) {
        let done: std::collections::HashSet<&String> = names.iter().collect();
        self.unsynced.retain(|name| !done.contains(name));
    }
}

/// A pin taken from the lane ([`Lane::pin_job`]): the entries to make durable, then the head to
/// pin in the trust state once they are.
pub(super) struct PinJob {
    names: Vec<String>,
    store: Store,
    trust: TrustStore,
    vault_id: [u8; 16],
    head: Head,
    lane: AuditLane,
}

impl PinJob {
    /// Syncs the entries, then pins the head, on a blocking thread; returns the names synced.
    pub(super) async fn run(self) -> Result<Vec<String>> {
        let PinJob { names, store, trust, vault_id, head, lane } = self;
        tokio::task::spawn_blocking(move || {
            store.sync(&names)?;
            trust.update(&vault_id, store.location(), |t| t.saw_own_audit(lane, head.seq, &head.link))?;
            Ok(names)
        })
        .await
        .map_err(|_| Error::store("a pin thread panicked"))?
    }
}
