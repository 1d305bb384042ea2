//! The state a new member starts from: the admin's view of the group when it admitted it —
//! every member's key, each chain's newest event (a checkpoint), removals and exclusions, and
//! the shared prefix's current versions with their values — signed by the admin and sealed
//! under the new epoch's key, which only the members of that epoch (the joiner included) hold.

use crate::member::{Identity, MemberId, MemberKey};
use serde::{Deserialize, Serialize};
use tresor_crypto::derive::hkdf_sha256;
use tresor_crypto::envelope::{self, Context};
use tresor_crypto::{Key, SecretBytes};
use zeroize::Zeroizing;

/// What a snapshot's signature is made over, before the encoding.
const SIGNATURE_CONTEXT: &[u8] = b"tresor-sync snapshot v1";

/// Why a snapshot was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    /// It does not open under the new epoch's key, or is not the admin's, or does not decode.
    #[error("the group's snapshot does not open, is not the admin's, or is malformed")]
    Refused,
}

/// One current version of a path, as the admin holds it.
#[derive(Serialize, Deserialize)]
pub struct VersionState<'a> {
    /// The path, relative to the shared prefix.
    pub path: &'a str,
    /// Its writer.
    pub member: MemberId,
    /// The writer's event.
    pub seq: u64,
    /// The event's clock.
    pub lamport: u64,
    /// Its place among the event's operations.
    pub op: u64,
    /// What the event had seen of each other member.
    pub clock: Vec<(MemberId, u64)>,
    /// Whether it is a delete (then `value` is empty).
    pub deleted: bool,
    /// The value.
    #[serde(with = "crate::event::borrowed_bytes")]
    pub value: &'a [u8],
}

/// The group as the admin saw it when it admitted a member (see the module documentation).
#[derive(Serialize, Deserialize)]
pub struct Snapshot<'a> {
    /// The group.
    pub group: [u8; 32],
    /// The epoch the joiner enters.
    pub epoch: u64,
    /// The hash of the rekey that admitted it.
    pub rekey: [u8; 32],
    /// Every member key the admin knows (removed ones too: old heads name them).
    pub members: Vec<MemberKey>,
    /// Each chain's newest event: (member, seq, hash, clock).
    pub chains: Vec<(MemberId, u64, [u8; 32], u64)>,
    /// Removed members and their cuts: (member, seq, hash).
    pub cutoffs: Vec<(MemberId, u64, [u8; 32])>,
    /// Excluded members.
    pub excluded: Vec<MemberId>,
    /// Every version of every path.
    #[serde(borrow)]
    pub versions: Vec<VersionState<'a>>,
}

fn key(epoch_key: &Key) -> Key {
    hkdf_sha256(epoch_key.expose_secret(), b"", b"tresor-sync snapshot")
}

fn context<'a>(group: &'a [u8; 32], object: &'a str, epoch: u64) -> Context<'a> {
    let vault_id: &[u8; 16] = group[..16].try_into().unwrap_or(&[0; 16]);
    Context {
        vault_id,
        role: "sync-snapshot",
        object,
        epoch: u32::try_from(epoch).unwrap_or(u32::MAX),
        extra: group,
    }
}

impl Snapshot<'_> {
    /// Signed by `admin` and sealed under `epoch_key` for `joiner`.
    pub fn seal(
        &self,
        admin: &Identity,
        epoch_key: &Key,
        joiner: &MemberId,
    ) -> Result<Vec<u8>, SnapshotError> {
        let mut signed = Zeroizing::new(postcard::to_stdvec(self).map_err(|_| SnapshotError::Refused)?);
        let signature = admin.sign(&[SIGNATURE_CONTEXT, &signed].concat());
        signed.extend_from_slice(&signature);
        let object = hex::encode(joiner.0);
        envelope::seal(&key(epoch_key), &context(&self.group, &object, self.epoch), &signed)
            .map_err(|_| SnapshotError::Refused)
    }
}

/// The signed snapshot in `sealed`, opened under `epoch_key` for `joiner` of `group` and
/// checked to be `admin`'s. Decode it with [`Snapshot::decode`].
pub fn open(
    sealed: &[u8],
    epoch_key: &Key,
    group: &[u8; 32],
    epoch: u64,
    joiner: &MemberId,
    admin: &MemberKey,
) -> Result<SecretBytes, SnapshotError> {
    let object = hex::encode(joiner.0);
    let signed = envelope::open(&key(epoch_key), &context(group, &object, epoch), sealed)
        .map_err(|_| SnapshotError::Refused)?;
    let split = signed.len().checked_sub(64).ok_or(SnapshotError::Refused)?;
    let (encoding, signature) = signed.as_slice().split_at(split);
    let signature: &[u8; 64] = signature.try_into().map_err(|_| SnapshotError::Refused)?;
    if !admin.verifies(&[SIGNATURE_CONTEXT, encoding].concat(), signature) {
        return Err(SnapshotError::Refused);
    }
    Ok(SecretBytes::new(encoding.to_vec()))
}

impl<'a> Snapshot<'a> {
    /// The snapshot in the bytes [`open`] gave.
    pub fn decode(bytes: &'a SecretBytes) -> Result<Snapshot<'a>, SnapshotError> {
        let (snapshot, rest) = postcard::take_from_bytes::<Snapshot<'a>>(bytes.as_slice())
            .map_err(|_| SnapshotError::Refused)?;
        if !rest.is_empty() {
            return Err(SnapshotError::Refused);
        }
        Ok(snapshot)
    }
}
