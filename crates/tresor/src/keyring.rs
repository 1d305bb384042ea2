//! The vault's data-key epochs as the commit log establishes them: which epoch seals new values,
//! which were destroyed, and when the next automatic rotation is due.
//!
//! The keys themselves are random (never derived from the root secret) and stored wrapped under
//! the shielding key in `epoch/<epoch>`; this is only their bookkeeping, replayed from commits
//! and carried in index snapshots.

use crate::model::Op;
use serde::{Deserialize, Serialize};

/// One epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochInfo {
    /// Its number.
    pub epoch: u32,
    /// When it became the current epoch (ms since the Unix epoch).
    pub created_ms: u64,
    /// Why it was started: `init`, `manual`, `policy`, `destroy`, `revocation: ...`.
    pub reason: String,
    /// When it was destroyed, if it was.
    pub destroyed_ms: Option<u64>,
}

/// A re-key's fence in this root era (`Op::Rekeying`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fence {
    /// The root era the re-key is making.
    pub next: u32,
    /// The attempt holding the fence: a re-key switches only while it is its own.
    pub attempt: [u8; 16],
    /// When the fence was committed (ms).
    pub since_ms: u64,
}

/// Every epoch of the vault, oldest first, and the rotation policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keyring {
    /// The epochs, in the order their commits started them (ascending numbers).
    pub epochs: Vec<EpochInfo>,
    /// The epoch new values are sealed in (0 before the genesis commit).
    pub current: u32,
    /// Rotate automatically once the current epoch is this old (ms).
    pub rotate_every_ms: Option<u64>,
    /// The fence of a re-key in progress: this era takes no more writes (see `tresor rekey`).
    pub fence: Option<Fence>,
    /// This root era and the one it replaced, if a re-key made it.
    pub root_era: Option<(u32, u32)>,
}

impl Keyring {
    /// Applies one committed op (ops that are not about epochs are ignored).
    pub fn apply(&mut self, op: &Op, time_ms: u64) {
        match op {
            Op::Genesis { epoch, .. } => self.start(*epoch, time_ms, "init"),
            Op::Rotate { epoch, reason } => self.start(*epoch, time_ms, reason),
            Op::DestroyEpoch { epoch } => {
                if let Some(info) = self.epochs.iter_mut().find(|e| e.epoch == *epoch) {
                    info.destroyed_ms.get_or_insert(time_ms);
                }
            }
            Op::Policy { rotate_every_ms } => self.rotate_every_ms = *rotate_every_ms,
            Op::Rekeying { next, attempt } => {
                self.fence = Some(Fence { next: *next, attempt: *attempt, since_ms: time_ms })
            }
            Op::RekeyAborted { next } if self.fence.is_some_and(|f| f.next == *next) => self.fence = None,
            Op::RootEra { era, previous } => self.root_era = Some((*era, *previous)),
            Op::Put { .. }
            | Op::Delete { .. }
            | Op::Undelete { .. }
            | Op::Destroy { .. }
            | Op::KeyFile { .. }
            | Op::Reseal { .. }
            | Op::Restore { .. }
            | Op::RekeyAborted { .. }
            | Op::LaneAnchor { .. } => {}
        }
    }

    fn start(&mut self, epoch: u32, time_ms: u64, reason: &str) {
        self.epochs.push(EpochInfo {
            epoch,
            created_ms: time_ms,
            reason: reason.to_string(),
            destroyed_ms: None,
        });
        self.current = epoch;
    }

    /// The epoch `epoch`, if the log started it.
    pub fn get(&self, epoch: u32) -> Option<&EpochInfo> {
        self.epochs.iter().find(|e| e.epoch == epoch)
    }

    /// Whether `epoch` was destroyed: nothing may reference it any more.
    pub fn is_destroyed(&self, epoch: u32) -> bool {
        self.get(epoch).is_some_and(|e| e.destroyed_ms.is_some())
    }

    /// The highest epoch number the log has started (0: none).
    pub fn max_epoch(&self) -> u32 {
        self.epochs.iter().map(|e| e.epoch).max().unwrap_or(0)
    }

    /// When the current epoch was started (ms), if it is known.
    pub fn current_since(&self) -> Option<u64> {
        self.get(self.current).map(|e| e.created_ms)
    }

    /// Whether the policy asks for a rotation at `now_ms`.
    pub fn rotation_due(&self, now_ms: u64) -> bool {
        match (self.rotate_every_ms, self.current_since()) {
            (Some(every), Some(since)) => now_ms.saturating_sub(since) >= every,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_rotation_destruction_and_policy() {
        let mut k = Keyring::default();
        k.apply(&Op::Genesis { epoch: 1, keyfile_generation: 1 }, 10);
        k.apply(&Op::Rotate { epoch: 2, reason: "manual".into() }, 20);
        k.apply(&Op::Rotate { epoch: 4, reason: "policy".into() }, 30);
        k.apply(&Op::DestroyEpoch { epoch: 2 }, 40);
        k.apply(&Op::DestroyEpoch { epoch: 2 }, 50);
        assert_eq!(k.current, 4);
        assert_eq!(k.max_epoch(), 4);
        assert!(k.is_destroyed(2) && !k.is_destroyed(1) && !k.is_destroyed(3));
        assert_eq!(k.get(2).and_then(|e| e.destroyed_ms), Some(40), "the first destruction counts");
        assert!(!k.rotation_due(u64::MAX), "no policy: never due");
        k.apply(&Op::Policy { rotate_every_ms: Some(100) }, 60);
        assert!(!k.rotation_due(129));
        assert!(k.rotation_due(130));
        k.apply(&Op::Policy { rotate_every_ms: None }, 70);
        assert!(!k.rotation_due(1_000));
    }
}
