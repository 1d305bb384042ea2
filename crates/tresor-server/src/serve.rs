//! What each call does on an unlocked vault: the agent's work, and the CLI's when no agent runs.

use std::future::Future;
use std::time::Duration;
use tresor::model::AuditOp;
use tresor::{Error, Result, Vault};
use tresor_crypto::transit::Algorithm;
use tresor_sync::koi;
use tresor_wire::DestroyVersions;
use tresor_wire::{
    Blob, Call, Decrypt, Delete, DeriveIdentity, DestroyEpoch, Encrypt, Export, Gc, Get, GetStatus, Got,
    GroupSummary, Groups, History, Identity, List, ListEpochs, ListKeyslots, MessageKey, ReadAudit,
    Reencrypt, RotateEpoch, Rotated, SecretBuf, Set, SetRotationPolicy, ShareFailure, Sign, Signature,
    StreamKey, UndeleteVersions, Verify,
};
use tresor_wire::{KoiPeerSummary, KoiPeers, KoiReceipt, KoiReceive, KoiSend, KoiSent};

/// A call that runs on an unlocked vault, acting for the vault handle's actor.
pub trait Serve: Call + Sized {
    /// Runs the call.
    fn serve(self, vault: &Vault) -> impl Future<Output = Result<Self::Reply>> + Send;
}

impl Serve for Get {
    async fn serve(self, vault: &Vault) -> Result<Got> {
        let value = vault.get(&self.path, self.version).await?;
        // A version asked for by number is that version: no conflict to tell of.
        let conflict = match self.version {
            Some(_) => None,
            None => crate::sync::conflict_of(vault, &self.path, value.as_slice()).await,
        };
        Ok(Got { value: SecretBuf(value.into_inner()), conflict })
    }
}

impl Serve for Groups {
    async fn serve(self, vault: &Vault) -> Result<std::result::Result<Vec<GroupSummary>, ShareFailure>> {
        match crate::sync::summaries(vault).await {
            // The vault's own errors as every call's (a vault locked meanwhile, told as such).
            Err(ShareFailure::Vault(e)) => Err(e),
            other => Ok(other),
        }
    }
}

impl Serve for KoiSend {
    async fn serve(self, vault: &Vault) -> Result<std::result::Result<KoiSent, ShareFailure>> {
        let sent = koi::send(vault, &self.prefix, &self.peer, self.all, vault.actor()).await;
        crate::sync::lift(sent.map(|(messages, paths)| KoiSent {
            messages: messages.into_iter().map(|m| m.to_vec()).collect(),
            paths,
        }))
    }
}

impl Serve for KoiReceive {
    async fn serve(self, vault: &Vault) -> Result<std::result::Result<KoiReceipt, ShareFailure>> {
        let receipt = koi::receive(vault, &self.prefix, &self.peer, &self.messages, vault.actor()).await;
        crate::sync::lift(receipt.map(|r| KoiReceipt {
            applied: r.applied,
            refused: r.refused.into_iter().map(|(n, why)| (n as u64, why)).collect(),
        }))
    }
}

impl Serve for KoiPeers {
    async fn serve(self, vault: &Vault) -> Result<std::result::Result<Vec<KoiPeerSummary>, ShareFailure>> {
        crate::sync::lift(koi::list(vault).await.map(|peers| {
            peers
                .into_iter()
                .map(|p| KoiPeerSummary {
                    prefix: p.prefix,
                    peer_id: p.peer_id,
                    peer_key: p.peer_key,
                    public_key: p.public_key,
                    sent: p.sent,
                    received: p.received,
                    since_ms: p.since_ms,
                })
                .collect()
        }))
    }
}

impl Serve for Set {
    async fn serve(self, vault: &Vault) -> Result<Vec<u64>> {
        match (self.op, self.cas) {
            (AuditOp::Set, Some(cas)) if self.items.len() == 1 => {
                let (path, value) = &self.items[0];
                vault.set_cas_newest(path, &value.0, cas).await.map(|v| vec![v])
            }
            (_, Some(_)) => Err(Error::Invalid("check-and-set takes exactly one secret".into())),
            (op @ (AuditOp::Set | AuditOp::Import), None) => {
                let borrowed: Vec<(&str, &[u8])> =
                    self.items.iter().map(|(p, v)| (p.as_str(), v.0.as_slice())).collect();
                vault.set_many(op, &borrowed).await
            }
            // A client cannot make a write look like another operation in the audit trail.
            (op, None) => Err(Error::Invalid(format!("a write cannot be audited as {op}"))),
        }
    }
}

impl Serve for Delete {
    async fn serve(self, vault: &Vault) -> Result<u64> {
        vault.delete(&self.path).await
    }
}

impl Serve for UndeleteVersions {
    async fn serve(self, vault: &Vault) -> Result<Vec<u64>> {
        let versions = match self.versions.is_empty() {
            // None named: the newest.
            true => vault.history(&self.path).await?.last().map(|h| vec![h.version]).unwrap_or_default(),
            false => self.versions,
        };
        vault.undelete_versions(&self.path, &versions).await
    }
}

impl Serve for DestroyVersions {
    async fn serve(self, vault: &Vault) -> Result<tresor::vault::DestroyVersionsReport> {
        vault.destroy_versions(&self.path, &self.versions).await
    }
}

impl Serve for List {
    async fn serve(self, vault: &Vault) -> Result<Vec<tresor::vault::ListEntry>> {
        match self.deleted {
            true => vault.list_deleted(&self.prefix).await,
            false => vault.list(&self.prefix).await,
        }
    }
}

impl Serve for History {
    async fn serve(self, vault: &Vault) -> Result<Vec<tresor::vault::HistoryEntry>> {
        vault.history(&self.path).await
    }
}

impl Serve for GetStatus {
    async fn serve(self, vault: &Vault) -> Result<tresor::vault::Status> {
        vault.status().await
    }
}

impl Serve for ReadAudit {
    async fn serve(self, vault: &Vault) -> Result<Vec<tresor::model::TrailRecord>> {
        vault.audit_trail().await
    }
}

impl Serve for Verify {
    async fn serve(self, vault: &Vault) -> Result<tresor::vault::VerifyReport> {
        vault.verify().await
    }
}

impl Serve for Export {
    async fn serve(self, vault: &Vault) -> Result<SecretBuf> {
        tresor::archive::export(vault).await.map(SecretBuf::new)
    }
}

impl Serve for Gc {
    async fn serve(self, vault: &Vault) -> Result<tresor::vault::GcReport> {
        vault.gc(Duration::from_secs(self.grace_secs), self.dry_run).await
    }
}

impl Serve for ListEpochs {
    async fn serve(self, vault: &Vault) -> Result<tresor::vault::EpochList> {
        vault.epochs().await
    }
}

impl Serve for RotateEpoch {
    async fn serve(self, vault: &Vault) -> Result<Rotated> {
        let rotation = vault.rotate("manual").await?;
        let reencrypted = match self.reencrypt {
            true => Some(vault.reencrypt(&mut |_, _| {}).await?),
            false => None,
        };
        Ok(Rotated { rotation, reencrypted })
    }
}

impl Serve for Reencrypt {
    async fn serve(self, vault: &Vault) -> Result<tresor::vault::ReencryptReport> {
        vault.reencrypt(&mut |_, _| {}).await
    }
}

impl Serve for DestroyEpoch {
    async fn serve(self, vault: &Vault) -> Result<tresor::vault::DestroyReport> {
        vault.destroy_epoch(self.epoch, &mut |_, _| {}).await
    }
}

impl Serve for SetRotationPolicy {
    async fn serve(self, vault: &Vault) -> Result<()> {
        let every = self.every_secs.map(Duration::from_secs);
        if let Some(every) = every {
            tresor::vault::check_rotation_period(every)?;
        }
        vault.set_rotation_policy(every).await
    }
}

impl Serve for ListKeyslots {
    async fn serve(self, vault: &Vault) -> Result<Vec<tresor::vault::KeySlotView>> {
        vault.keyslots().await
    }
}

impl Serve for DeriveIdentity {
    async fn serve(self, vault: &Vault) -> Result<Identity> {
        let id = vault.derive_ed25519(&derivation_path(&self.path)?, self.show_private).await?;
        Ok(Identity {
            path: id.path,
            public_key: id.public_key,
            private: id.private.map(|p| SecretBuf::new([*p.private_key, *p.chain_code].concat())),
        })
    }
}

impl Serve for Sign {
    async fn serve(self, vault: &Vault) -> Result<Signature> {
        let (signature, public_key) = vault.sign(&derivation_path(&self.path)?, &self.message.0).await?;
        Ok(Signature { signature: signature.to_vec(), public_key })
    }
}

impl Serve for Encrypt {
    async fn serve(self, vault: &Vault) -> Result<Blob> {
        vault.encrypt(&self.key, algorithm(&self.alg)?, &self.plaintext.0).await.map(Blob)
    }
}

impl Serve for StreamKey {
    async fn serve(self, vault: &Vault) -> Result<MessageKey> {
        let (salt, key) = vault.transit_stream_key(&self.key, algorithm(&self.alg)?, self.salt).await?;
        Ok(MessageKey { vault_id: vault.vault_id(), salt, key: SecretBuf::new(key.expose_secret().to_vec()) })
    }
}

impl Serve for Decrypt {
    async fn serve(self, vault: &Vault) -> Result<SecretBuf> {
        vault.decrypt(&self.ciphertext.0, self.key.as_deref()).await.map(|v| SecretBuf(v.into_inner()))
    }
}

/// A SLIP-0010 path from a request; a bad one is invalid input.
fn derivation_path(text: &str) -> Result<tresor_crypto::slip10::DerivationPath> {
    text.parse().map_err(|e: tresor_crypto::slip10::PathError| Error::Invalid(e.to_string()))
}

/// A transit algorithm from a request; an unknown one is invalid input.
fn algorithm(text: &str) -> Result<Algorithm> {
    text.parse().map_err(|_| {
        Error::Invalid(format!("unknown algorithm {text:?}: use xchacha20-poly1305 or aes256-gcm"))
    })
}
