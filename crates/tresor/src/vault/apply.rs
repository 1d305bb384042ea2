//! Changes that arrive from elsewhere (a sync group's members): new versions and deletions of
//! several paths, each made by its own actor, with the caller's own bookkeeping in the system
//! namespace, in one commit — all of it lands or none of it does.

use super::{Engine, create_idempotent_owned};
use crate::error::{Error, Result};
use crate::model::{AuditOp, AuditRecord, Op, Outcome, now_ms};
use crate::path::SecretPath;
use crate::store::Durability;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use zeroize::Zeroizing;

/// One change of [`crate::Vault::apply`].
pub struct Change {
    /// The path.
    pub path: SecretPath,
    /// Its new value; `None` deletes its current version (nothing if it has none).
    pub value: Option<Zeroizing<Vec<u8>>>,
    /// Who made it: the actor its audit record names.
    pub actor: String,
    /// Applied only if the path's current version is this one (0: no live version); otherwise
    /// nothing of the whole commit is written ([`Error::Conflict`]). A later change of the same
    /// path in one call is checked against the earlier one's result.
    pub expect: Option<u64>,
}

/// One audit record per change, each naming its change's actor.
fn audit_records(
    op: AuditOp,
    changes: &[Change],
    what: impl Fn(&Change) -> (Outcome, Option<String>),
) -> Vec<AuditRecord> {
    changes
        .iter()
        .map(|c| {
            let (outcome, detail) = what(c);
            AuditRecord {
                time_ms: now_ms(),
                actor: c.actor.clone(),
                op: op.as_str().to_string(),
                path: Some(c.path.to_string()),
                outcome,
                detail,
            }
        })
        .collect()
}

impl Engine {
    /// Applies `changes` in one commit, audited as `op`, each record naming its change's actor.
    /// Returns each change's version (a deletion's: the version deleted; 0 if there was none).
    pub(crate) async fn apply(&mut self, op: AuditOp, changes: &[Change]) -> Result<Vec<u64>> {
        let puts: Vec<(&SecretPath, &[u8])> =
            changes.iter().filter_map(|c| c.value.as_ref().map(|v| (&c.path, v.as_slice()))).collect();
        for (_, value) in &puts {
            self.check_value(value)?;
        }
        self.refresh().await?;
        // System entries are sealed apart from secrets and from each other (a pack each):
        // destroying a caller's superseded bookkeeping never has to move another value.
        let (system, user): (Vec<usize>, Vec<usize>) =
            (0..puts.len()).partition(|at| puts[*at].0.is_system());
        let mut objects = Vec::new();
        let mut refs = vec![None; puts.len()];
        let batches = std::iter::once(user).chain(system.into_iter().map(|at| vec![at]));
        for part in batches {
            if part.is_empty() {
                continue;
            }
            let items: Vec<(&SecretPath, &[u8])> = part.iter().map(|at| puts[*at]).collect();
            let (sealed, blobs) = self.seal_values(&items).await?;
            objects.extend(sealed);
            for (at, blob) in part.iter().zip(blobs) {
                refs[*at] = Some(blob);
            }
        }
        let refs: Vec<crate::model::BlobRef> = refs.into_iter().flatten().collect();
        let epoch = refs.first().map_or(self.keyring.current, |b| b.epoch);
        let object_names: Vec<String> = objects.iter().map(|(name, _)| name.clone()).collect();
        let store = self.store.clone();
        futures::stream::iter(objects)
            .map(|(name, bytes)| {
                let store = store.clone();
                async move {
                    if create_idempotent_owned(&store, &name, Bytes::from(bytes), Durability::Sync).await? {
                        Ok(())
                    } else {
                        Err(Error::Conflict(format!("object {name} already exists")))
                    }
                }
            })
            .buffer_unordered(super::READ_AHEAD)
            .try_collect::<Vec<()>>()
            .await?;
        let records = audit_records(op, changes, |c| {
            (
                Outcome::Ok,
                Some(match c.value {
                    Some(_) => format!("BlobWritten epoch {epoch}"),
                    None => "deleted".to_string(),
                }),
            )
        });
        self.audit_append_entry(&records, Durability::Sync, false).await?;
        // Set by the build when it refuses (a check-and-set, a destroyed epoch): then nothing
        // references the objects. Any other failure may have committed (an indeterminate write),
        // and the objects stay (`gc` removes them if not).
        let refused = std::sync::atomic::AtomicBool::new(false);
        let mut versions = Vec::new();
        let result = self
            .commit(|index, keyring| {
                let refuse = |e: Error| {
                    refused.store(true, std::sync::atomic::Ordering::Relaxed);
                    Err(e)
                };
                versions.clear();
                if keyring.is_destroyed(epoch) {
                    return refuse(Error::Conflict(format!("epoch {epoch} was destroyed during the write")));
                }
                // Versions as of this commit so far (a path changed twice in one call).
                let mut current: std::collections::HashMap<&str, (u64, u64)> = Default::default();
                let mut blobs = refs.iter();
                let mut ops = Vec::new();
                for change in changes {
                    let path = change.path.as_str();
                    let (live, next) = match current.get(path) {
                        Some(found) => *found,
                        None => index
                            .get(path)
                            .map_or((0, 1), |e| (e.live().map_or(0, |v| v.version), e.next_version())),
                    };
                    if change.expect.is_some_and(|expected| expected != live) {
                        return refuse(Error::Conflict(format!(
                            "{path} changed here meanwhile (version {live}); nothing was written"
                        )));
                    }
                    match &change.value {
                        Some(_) => {
                            let Some(blob) = blobs.next() else {
                                return refuse(Error::Invalid("a value was not sealed".into()));
                            };
                            ops.push(Op::Put { path: path.to_string(), version: next, blob: *blob });
                            current.insert(path, (next, next + 1));
                            versions.push(next);
                        }
                        None if live > 0 => {
                            ops.push(Op::Delete { path: path.to_string(), version: live });
                            current.insert(path, (0, next));
                            versions.push(live);
                        }
                        None => versions.push(0),
                    }
                }
                Ok(ops)
            })
            .await;
        match result {
            Ok(_) => Ok(versions),
            Err(e) => {
                if refused.load(std::sync::atomic::Ordering::Relaxed) {
                    self.delete_objects(&object_names).await;
                }
                let failed = audit_records(op, changes, |_| (Outcome::Failed(e.to_string()), None));
                let _ = self.audit_append_entry(&failed, Durability::Relaxed, true).await;
                Err(e)
            }
        }
    }
}
