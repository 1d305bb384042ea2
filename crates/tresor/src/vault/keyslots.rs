//! Password slots and key file changes: passwd, keyslot add and remove, recovery, adopting a newer key file.

use super::{Engine, KeySlotView, Opener, Options, load_keyfile};
use crate::error::{Error, ObjectKind, Result};
use crate::keyfile::{KeyFile, SlotKind, check_password_rules};
use crate::layout::{self, parse_seq};
use crate::model::{AuditOp, Op, Outcome};
use crate::roles::RootKey;
use crate::store::{Durability, Store};
use tresor_crypto::{KdfParams, Password};

impl Engine {
    /// Changes the password of the slot that opened this handle: writes key file generation + 1
    /// with that slot replaced (the other slots keep their passwords), records it in the commit
    /// log, removes the old key file. No value is re-encrypted.
    pub async fn passwd(&mut self, new_password: &Password, params: KdfParams) -> Result<()> {
        check_password_rules(new_password)?;
        // First: following a newer key file can renumber (or remove) this handle's slot.
        self.keyfile_fresh().await?;
        let slot = self.slot.ok_or_else(|| {
            Error::Invalid("the password slot this handle was unlocked with is gone; unlock again".into())
        })?;
        let next = self.keyfile.with_new_password(&self.keys.root, slot, new_password, params)?;
        let detail = format!("slot {slot}; key file generation {}", next.generation);
        self.change_keyfile(next, Some(slot), AuditOp::Passwd, detail).await?;
        // Shown by `status`; the pin is the weakest slot's (lower ones too: the user chose them).
        self.kdf = params;
        self.save_trust().await
    }

    /// The key file's slots.
    pub async fn keyslots(&mut self) -> Result<Vec<KeySlotView>> {
        self.keyfile_fresh().await?;
        Ok(self
            .keyfile
            .slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.kind != SlotKind::Empty)
            .map(|(index, slot)| KeySlotView {
                index,
                kind: match slot.kind {
                    SlotKind::Password => "password".into(),
                    SlotKind::UnsealKey => "unseal-key".into(),
                    _ => "empty".into(),
                },
                kdf: match slot.kind {
                    SlotKind::UnsealKey => "hkdf-sha256".into(),
                    _ => format!(
                        "argon2id m={} KiB t={} p={}",
                        slot.params.m_kib, slot.params.t, slot.params.p
                    ),
                },
                this_session: self.slot == Some(index),
            })
            .collect())
    }

    /// Adds a password slot (LUKS2's `luksAddKey`); returns its index. Other slots are unchanged.
    pub async fn keyslot_add(&mut self, password: &Password, params: KdfParams) -> Result<usize> {
        check_password_rules(password)?;
        self.keyfile_fresh().await?;
        let (next, index) = self.keyfile.with_added_password(&self.keys.root, password, params)?;
        let detail = format!("slot {index} added; key file generation {}", next.generation);
        self.change_keyfile(next, self.slot, AuditOp::KeyslotAdd, detail).await?;
        Ok(index)
    }

    /// Removes slot `index`; never the last slot that opens the vault (a password or the unseal
    /// key). Removing the slot this handle was opened with is allowed (another password
    /// remains); the other slots keep their numbers.
    pub async fn keyslot_remove(&mut self, index: usize) -> Result<()> {
        self.keyfile_fresh().await?;
        let next = self.keyfile.without_slot(&self.keys.root, index)?;
        let detail = format!("slot {index} removed; key file generation {}", next.generation);
        let slot_after = self.slot.filter(|s| *s != index);
        self.change_keyfile(next, slot_after, AuditOp::KeyslotRemove, detail).await
    }

    /// Opens the vault at `store` with its recovery phrase and gives it `new_password` in a new
    /// slot; with `keep_slots` false the other slots are dropped (the key file then holds only
    /// the new password). A phrase of another vault is refused ([`Error::WrongPhrase`]) and a
    /// bad new password ([`Error::PasswordRule`]) before anything is written. The audit trail
    /// records the recovery.
    pub async fn recover(
        store: Store,
        phrase: &tresor_crypto::Phrase,
        new_password: &Password,
        params: KdfParams,
        keep_slots: bool,
        opts: Options,
    ) -> Result<Engine> {
        check_password_rules(new_password)?;
        params.check().map_err(|_| Error::Invalid("KDF parameters out of the accepted range".into()))?;
        let root = phrase.to_key().map(RootKey::from_key).ok_or_else(|| {
            Error::Invalid(format!(
                "a vault's recovery phrase has 24 words; this one has {}",
                phrase.word_count()
            ))
        })?;
        if keep_slots && load_keyfile(&store).await?.0.is_full() {
            return Err(Error::Invalid(format!(
                "the key file already holds {} slots, the most it may: recover without --keep-slots \
                 (the new password replaces them all)",
                crate::keyfile::MAX_SLOTS
            )));
        }
        let mut vault = Engine::open(store, Opener::Root(root), opts).await?;
        let (next, index) = if keep_slots {
            vault.keyfile.with_added_password(&vault.keys.root, new_password, params)?
        } else {
            (vault.keyfile.with_only_password(&vault.keys.root, new_password, params)?, 0)
        };
        let kept = if keep_slots { "the other slots kept" } else { "every other slot dropped" };
        let detail = format!(
            "recovery phrase; new password in slot {index}, {kept}; key file generation {}",
            next.generation
        );
        vault.change_keyfile(next, Some(index), AuditOp::Recover, detail).await?;
        vault.kdf = params;
        vault.save_trust().await?;
        Ok(vault)
    }

    /// Whether the commit log records a key file change other than key file `generation` with
    /// `hash` at that generation or later: another writer's change won.
    pub(super) fn keyfile_superseded(&self, generation: u64, hash: &[u8; 32]) -> bool {
        let (logged, logged_hash) = self.logged_keyfile;
        generation < logged || generation == logged && logged_hash.is_some_and(|h| h != *hash)
    }

    /// Brings this handle to the key file generation the commit log records as newest: a
    /// long-lived handle (the agent's) follows slot changes made elsewhere. The newer key file
    /// must hash to what the log records and carry a MAC under this vault's root; the slot this
    /// handle was opened with is found again by its salt (`None` if it was removed).
    pub(super) async fn keyfile_fresh(&mut self) -> Result<()> {
        self.refresh().await?;
        let (logged, hash) = self.logged_keyfile;
        if logged <= self.keyfile.generation {
            return Ok(());
        }
        let name = layout::keyfile(logged);
        let changed = || Error::Conflict("the key file was changed by another writer meanwhile".into());
        // Superseded again meanwhile (its older generations are removed): the caller retries.
        let bytes = self.store.get(&name).await?.ok_or_else(changed)?;
        let digest = tresor_crypto::hash(&bytes);
        let next = KeyFile::parse(&bytes)?;
        if hash.is_some_and(|h| h != digest)
            || next.generation != logged
            || next.vault_id != self.vault_id
            || !next.opens_with_root(&self.keys.root)
        {
            return Err(Error::integrity(
                ObjectKind::KeyFile,
                &name,
                "differs from the one the commit log records",
            ));
        }
        let salt = self.slot.and_then(|i| self.keyfile.slots.get(i)).map(|slot| slot.salt);
        self.slot = salt.and_then(|salt| next.slots.iter().position(|slot| slot.salt == salt));
        if let Some(slot) = self.slot.and_then(|i| next.slots.get(i)) {
            self.kdf = slot.params;
        }
        self.keyfile = next;
        self.keyfile_hash = digest;
        self.save_trust().await
    }

    /// Writes `next` (generation + 1) after an audit record `op`, records it in the commit log,
    /// and removes the older generations. `slot_after` is this handle's slot in `next`.
    pub(super) async fn change_keyfile(
        &mut self,
        next: KeyFile,
        slot_after: Option<usize>,
        op: AuditOp,
        detail: String,
    ) -> Result<()> {
        let bytes = next.encode();
        let hash = tresor_crypto::hash(&bytes);
        self.audit_append(op, None, Outcome::Ok, Some(detail), Durability::Sync).await?;
        let name = layout::keyfile(next.generation);
        let created = match self.create_idempotent(&name, &bytes, Durability::Sync).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                Err(Error::Conflict("the key file was changed by another writer; unlock again".into()))
            }
            Err(e) => Err(e),
        };
        if let Err(e) = created {
            self.audit_failure(op, None, &e).await;
            return Err(e);
        }
        let generation = next.generation;
        self.pending_keyfile = Some(((generation, hash), false));
        let committed = self.commit(|_, _| Ok(vec![Op::KeyFile { generation, hash }])).await;
        let recorded = self.pending_keyfile.take().is_some_and(|(_, recorded)| recorded);
        if let Err(e) = committed {
            if recorded {
                // Another writer recorded our key file (and may have changed it since): the
                // change is in force. This handle takes it, then follows to the newest.
                self.keyfile = next;
                self.keyfile_hash = hash;
                self.slot = slot_after;
                return self.keyfile_fresh().await;
            }
            self.audit_failure(op, None, &e).await;
            if self.keyfile_superseded(generation, &hash) {
                // Another writer's change is the one in force: ours is superseded debris.
                self.delete_objects(std::slice::from_ref(&name)).await;
                return Err(e);
            }
            // The new key file is in the store and, being the newest, is the one unlock uses.
            // Removing it could race a commit still landing; the next unlock records it instead.
            let in_force = match op {
                AuditOp::Passwd | AuditOp::Recover => "the NEW password now opens the vault",
                _ => "the change is in force",
            };
            return Err(Error::store(format!(
                "the key file change ({op}) could not be recorded ({e}); its new key file was written, so \
                 {in_force}, and the next unlock records the change"
            )));
        }
        let old = self.keyfile.generation;
        self.keyfile = next;
        self.keyfile_hash = hash;
        self.slot = slot_after;
        self.save_trust().await?;
        // The change is complete; removing the old generation is clean-up, which `gc` and the
        // next change retry.
        if let Err(e) = self.remove_keyfiles_up_to(old).await {
            tracing::warn!("the old key file could not be removed yet: {e}");
        }
        Ok(())
    }

    pub(super) async fn remove_keyfiles_up_to(&self, generation: u64) -> Result<()> {
        for name in self.store.list(layout::KEYFILE_DIR).await? {
            if parse_seq(&name, layout::KEYFILE_DIR).is_some_and(|g| g <= generation) {
                self.store.delete(&name).await?;
            }
        }
        Ok(())
    }

    /// Records in the commit log a key file generation that an interrupted `passwd` wrote but
    /// could not record (the key file this unlock used is newer than the log says).
    pub(super) async fn adopt_keyfile(&mut self) -> Result<()> {
        if self.keyfile.generation <= self.logged_keyfile.0 {
            return Ok(());
        }
        let (generation, hash) = (self.keyfile.generation, self.keyfile_hash);
        let detail = format!(
            "recorded key file generation {generation} left by an interrupted key file change \
             (passwd, keyslot add or remove, recover)"
        );
        self.audit_append(AuditOp::KeyfileAdopt, None, Outcome::Ok, Some(detail), Durability::Sync).await?;
        self.commit(|_, _| Ok(vec![Op::KeyFile { generation, hash }])).await?;
        if let Err(e) = self.remove_keyfiles_up_to(generation - 1).await {
            tracing::warn!("the old key file could not be removed yet: {e}");
        }
        Ok(())
    }

    pub(super) fn check_keyfile(&self) -> Result<()> {
        let (logged, hash) = self.logged_keyfile;
        let name = layout::keyfile(self.keyfile.generation);
        if self.keyfile.generation < logged {
            return Err(Error::Rollback {
                kind: ObjectKind::KeyFile,
                seen: logged,
                served: self.keyfile.generation,
            });
        }
        if self.keyfile.generation == logged && hash.is_some_and(|h| h != self.keyfile_hash) {
            return Err(Error::integrity(
                ObjectKind::KeyFile,
                &name,
                "differs from the one the commit log records",
            ));
        }
        Ok(())
    }
}
