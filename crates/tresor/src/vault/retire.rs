//! Deleting, undeleting and destroying chosen versions of one secret (KV v2's `delete`,
//! `undelete` and `destroy`).
//!
//! Deleting and undeleting only mark versions. Destroying takes a version's value out of the
//! store: values that share its blob object (a pack) are sealed again elsewhere first, then a
//! commit makes the version point nowhere ([`BlobRef::DESTROYED`]), then the object is deleted
//! with every old version a versioned bucket keeps of it. From then on neither the password nor
//! the store as it is can give the value back: its ciphertext is gone, and the epoch key that
//! sealed it opens nothing else of it. (A copy of the store taken before — a backup, a bucket
//! replica — still holds the ciphertext under a live epoch key; destroying that epoch,
//! `tresor epoch destroy`, is what makes such copies useless too.)

use super::Engine;
use crate::error::{Error, Result};
use crate::index::Index;
use crate::layout;
use crate::model::{AuditOp, BlobRef, Op, Outcome};
use crate::path::SecretPath;
use crate::store::Durability;
use crate::versions::Residue;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// What [`Engine::destroy_versions`] did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DestroyVersionsReport {
    /// The versions destroyed (those asked for that existed and were not destroyed already).
    pub destroyed: Vec<u64>,
    /// Values of other versions or secrets that shared a blob object with them and were sealed
    /// again elsewhere first.
    pub moved: u64,
    /// Blob objects deleted.
    pub deleted_objects: u64,
    /// Blob objects that could not be deleted (nothing references them: `gc` removes them).
    pub remaining_objects: Vec<String>,
    /// What a versioned bucket still keeps of the deleted objects.
    pub residue: Residue,
}

impl DestroyVersionsReport {
    /// Whether every destroyed value is gone from the store, old object versions included.
    pub fn complete(&self) -> bool {
        self.remaining_objects.is_empty() && !matches!(self.residue, Residue::Kept { .. })
    }
}

/// Which marking [`Engine::mark_versions`] applies.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    Delete,
    Undelete,
}

/// `versions` of `path` in `index` that exist and whose value is not destroyed, with where their
/// value is; `keep` chooses among them.
fn chosen(
    index: &Index,
    path: &str,
    versions: &[u64],
    keep: impl Fn(&crate::index::Version) -> bool,
) -> Vec<(u64, BlobRef)> {
    index.get(path).map_or_else(Vec::new, |entry| {
        entry
            .versions
            .iter()
            .filter(|v| versions.contains(&v.version) && !v.blob.is_destroyed() && keep(v))
            .map(|v| (v.version, v.blob))
            .collect()
    })
}

/// "versions 1, 2, 3" for an audit record.
fn listed(versions: &[u64]) -> String {
    let numbers: Vec<String> = versions.iter().map(u64::to_string).collect();
    format!("versions {}", numbers.join(", "))
}

impl Engine {
    /// Deletes `versions` of `path` (their values stay; [`Engine::undelete_versions`] brings them
    /// back). Versions that do not exist, are deleted already or destroyed are skipped, as Vault
    /// does; returns those deleted. A path with no version at all is [`Error::NotFound`].
    pub async fn delete_versions(&mut self, path: &SecretPath, versions: &[u64]) -> Result<Vec<u64>> {
        self.mark_versions(path, versions, Mark::Delete).await
    }

    /// Makes deleted `versions` of `path` live again; returns those undeleted (destroyed ones
    /// stay destroyed).
    pub async fn undelete_versions(&mut self, path: &SecretPath, versions: &[u64]) -> Result<Vec<u64>> {
        self.mark_versions(path, versions, Mark::Undelete).await
    }

    async fn mark_versions(&mut self, path: &SecretPath, versions: &[u64], mark: Mark) -> Result<Vec<u64>> {
        let op = match mark {
            Mark::Delete => AuditOp::Rm,
            Mark::Undelete => AuditOp::Undelete,
        };
        self.refresh().await?;
        let applies = move |v: &crate::index::Version| match mark {
            Mark::Delete => v.deleted_ms.is_none(),
            Mark::Undelete => v.deleted_ms.is_some(),
        };
        if self.view.index().get(path).is_none() {
            let e = Error::NotFound { path: path.to_string() };
            self.audit_failure(op, Some(path), &e).await;
            return Err(e);
        }
        let wanted = chosen(&self.view.index(), path, versions, applies);
        if wanted.is_empty() {
            let detail = format!("nothing to change: {}", listed(versions));
            self.audit_append(op, Some(path), Outcome::Ok, Some(detail), Durability::Relaxed).await?;
            return Ok(Vec::new());
        }
        let asked: Vec<u64> = wanted.iter().map(|(v, _)| *v).collect();
        self.audit_append(op, Some(path), Outcome::Ok, Some(listed(&asked)), Durability::Sync).await?;
        let result = self
            .commit(|index, _| {
                let ops: Vec<Op> = chosen(index, path, versions, applies)
                    .into_iter()
                    .map(|(version, _)| match mark {
                        Mark::Delete => Op::Delete { path: path.to_string(), version },
                        Mark::Undelete => Op::Undelete { path: path.to_string(), version },
                    })
                    .collect();
                if ops.is_empty() {
                    return Err(Error::Conflict(format!("another writer changed {path} first")));
                }
                Ok(ops)
            })
            .await;
        match result {
            Ok(ops) => Ok(ops
                .iter()
                .filter_map(|op| match op {
                    Op::Delete { version, .. } | Op::Undelete { version, .. } => Some(*version),
                    _ => None,
                })
                .collect()),
            Err(e) => {
                self.audit_failure(op, Some(path), &e).await;
                Err(e)
            }
        }
    }

    /// Destroys `versions` of `path` (see the module doc). Versions that do not exist or are
    /// destroyed already are skipped. The commit comes before any deletion: a failure after it
    /// leaves unreferenced objects, which the report names and `gc` removes.
    pub async fn destroy_versions(
        &mut self,
        path: &SecretPath,
        versions: &[u64],
    ) -> Result<DestroyVersionsReport> {
        self.refresh().await?;
        if self.view.index().get(path).is_none() {
            let e = Error::NotFound { path: path.to_string() };
            self.audit_failure(AuditOp::Destroy, Some(path), &e).await;
            return Err(e);
        }
        let mut report = DestroyVersionsReport {
            destroyed: Vec::new(),
            moved: 0,
            deleted_objects: 0,
            remaining_objects: Vec::new(),
            residue: Residue::NotKept,
        };
        let mut attempts = 0;
        let gone = loop {
            let targets = chosen(&self.view.index(), path, versions, |_| true);
            if targets.is_empty() {
                let detail = format!("nothing to destroy: {}", listed(versions));
                self.audit_append(
                    AuditOp::Destroy,
                    Some(path),
                    Outcome::Ok,
                    Some(detail),
                    Durability::Relaxed,
                )
                .await?;
                return Ok(report);
            }
            // Values of other versions in the same objects move out first.
            let sharing = sharers(&self.view.index(), path, &targets);
            if !sharing.is_empty() {
                report.moved += self.reseal(sharing, "destroy", &mut |_, _| {}).await?.values;
            }
            let numbers: Vec<u64> = targets.iter().map(|(v, _)| *v).collect();
            self.audit_append(
                AuditOp::Destroy,
                Some(path),
                Outcome::Ok,
                Some(listed(&numbers)),
                Durability::Sync,
            )
            .await?;
            let shared = std::sync::atomic::AtomicBool::new(false);
            let gone = std::sync::Mutex::new(Vec::new());
            let result = self
                .commit(|index, _| {
                    let targets = chosen(index, path, versions, |_| true);
                    if targets.is_empty() {
                        return Err(Error::Conflict(format!("another writer destroyed them first: {path}")));
                    }
                    if !sharers(index, path, &targets).is_empty() {
                        shared.store(true, std::sync::atomic::Ordering::Relaxed);
                        return Err(Error::Conflict(format!("a value shares an object with {path}")));
                    }
                    let ops = targets
                        .iter()
                        .map(|(version, _)| Op::Destroy { path: path.to_string(), version: *version })
                        .collect();
                    *gone.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = targets;
                    Ok(ops)
                })
                .await;
            match result {
                Ok(_) => break gone.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner),
                // Another writer packed a value into one of the objects meanwhile (a re-seal of
                // its own): move it out too, and commit again.
                Err(_) if shared.load(std::sync::atomic::Ordering::Relaxed) && attempts < 4 => attempts += 1,
                Err(e) => {
                    self.audit_failure(AuditOp::Destroy, Some(path), &e).await;
                    return Err(e);
                }
            }
        };
        report.destroyed = gone.iter().map(|(v, _)| *v).collect();
        // The log now says the values are gone: delete the objects that held them.
        let objects: BTreeSet<String> = gone.iter().map(|(_, b)| layout::blob(b.epoch, &b.id)).collect();
        for (_, blob) in &gone {
            self.view.uncache(blob);
        }
        for name in &objects {
            match self.store.delete(name).await {
                Ok(()) => report.deleted_objects += 1,
                Err(e) => {
                    tracing::warn!("could not delete {name} (gc will): {e}");
                    report.remaining_objects.push(name.clone());
                }
            }
        }
        // Each object's full name is the prefix of its own old versions (names have one length).
        let names: Vec<String> = objects.into_iter().collect();
        report.residue = match self.store.purge_versions(&names).await {
            Ok(residue) => residue,
            Err(e) => Residue::Kept { versions: 0, reason: e.to_string() },
        };
        let detail = match (&report.residue, report.remaining_objects.len()) {
            (_, n) if n > 0 => format!("{}: {n} objects could not be deleted", listed(&report.destroyed)),
            (Residue::Kept { versions, reason }, _) => format!(
                "{}: deleted, but the store keeps {versions} old object versions ({reason})",
                listed(&report.destroyed)
            ),
            _ => format!("{}: {} objects deleted", listed(&report.destroyed), report.deleted_objects),
        };
        let outcome = if report.complete() { Outcome::Ok } else { Outcome::Failed(detail.clone()) };
        self.audit_append(AuditOp::Destroy, Some(path), outcome, Some(detail), Durability::Sync).await?;
        Ok(report)
    }
}

/// Versions other than `targets` of `path` whose value lives in one of the targets' objects.
fn sharers(index: &Index, path: &str, targets: &[(u64, BlobRef)]) -> Vec<(String, u64, BlobRef)> {
    let objects: BTreeSet<(u32, [u8; 16])> = targets.iter().map(|(_, b)| (b.epoch, b.id)).collect();
    let target = |p: &str, v: u64| p == path && targets.iter().any(|(t, _)| *t == v);
    index
        .entries()
        .flat_map(|(p, e)| e.versions.iter().map(move |v| (p, v)))
        .filter(|(p, v)| {
            !v.blob.is_destroyed() && objects.contains(&(v.blob.epoch, v.blob.id)) && !target(p, v.version)
        })
        .map(|(p, v)| (p.clone(), v.version, v.blob))
        .collect()
}
