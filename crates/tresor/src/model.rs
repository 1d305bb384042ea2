//! What sealed commits and audit records contain (encoded with postcard inside their envelopes).

use crate::chain::Link;
use crate::error::{Error, ObjectKind, Result};
use serde::{Deserialize, Serialize};

/// Where a value lives: a slot of a blob object of an epoch. A blob object holds the envelope of
/// one value or, written by a batch, the envelopes of several (a pack), one after the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlobRef {
    /// The epoch whose key sealed it.
    pub epoch: u32,
    /// The blob object's random id (its name in the store).
    pub id: [u8; 16],
    /// The plaintext length.
    pub size: u64,
    /// Its slot in the blob object (bound into the envelope's associated data).
    pub slot: u32,
    /// Where its envelope starts in the blob object.
    pub offset: u64,
    /// The envelope's length.
    pub len: u32,
}

impl BlobRef {
    /// Where a destroyed version's value is: nowhere (epoch 0 is never an epoch).
    pub const DESTROYED: BlobRef = BlobRef { epoch: 0, id: [0; 16], size: 0, slot: 0, offset: 0, len: 0 };

    /// Whether this is [`BlobRef::DESTROYED`].
    pub fn is_destroyed(&self) -> bool {
        *self == BlobRef::DESTROYED
    }
}

/// One change in a commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// The vault was created with this epoch as its first.
    Genesis {
        /// The first epoch.
        epoch: u32,
        /// Generation of the first key file.
        keyfile_generation: u64,
    },
    /// A new version of a secret.
    Put {
        /// The secret's path.
        path: String,
        /// Its new version number.
        version: u64,
        /// Where the value is.
        blob: BlobRef,
    },
    /// The secret's latest version is deleted (history kept).
    Delete {
        /// The secret's path.
        path: String,
        /// The version that was deleted.
        version: u64,
    },
    /// A new key file generation replaced the previous one (password change).
    KeyFile {
        /// The new generation.
        generation: u64,
        /// SHA-256 of its bytes.
        hash: [u8; 32],
    },
    /// New values are sealed in a new epoch from this commit on (`EpochRotated`); its wrapped key
    /// was written before the commit.
    Rotate {
        /// The new epoch (greater than every epoch before it).
        epoch: u32,
        /// Why: `manual`, `policy`, `destroy`, `revocation: ...`.
        reason: String,
    },
    /// A version's value was sealed again, unchanged, into another blob (`BlobReencrypted`).
    Reseal {
        /// The secret's path.
        path: String,
        /// The version whose value moved.
        version: u64,
        /// Where it is now.
        blob: BlobRef,
    },
    /// An epoch was destroyed (`EpochDestroyed`): no version references it any more, and its key
    /// and blobs are deleted after this commit. No later commit may reference it.
    DestroyEpoch {
        /// The destroyed epoch.
        epoch: u32,
    },
    /// The automatic rotation policy changed.
    Policy {
        /// Rotate once the current epoch is this old (ms); `None`: never automatically.
        rotate_every_ms: Option<u64>,
    },
    /// A version carried over from the previous root era by `rekey`, with its original times.
    Restore {
        /// The secret's path.
        path: String,
        /// Its version number.
        version: u64,
        /// Where its value is now.
        blob: BlobRef,
        /// When it was written (ms).
        created_ms: u64,
        /// When it was deleted, if it was.
        deleted_ms: Option<u64>,
    },
    /// The fence of a re-key: this root era takes no more writes; era `next` is being made.
    Rekeying {
        /// The era being made.
        next: u32,
        /// The attempt (random): a re-key switches only while the fence is still its own.
        attempt: [u8; 16],
    },
    /// A re-key that did not finish was abandoned: writes are taken again.
    RekeyAborted {
        /// The era that was being made.
        next: u32,
    },
    /// Genesis of a root era made by `rekey` (beside `Genesis`): it continues era `previous`.
    RootEra {
        /// This era.
        era: u32,
        /// The era it replaces (deleted once the re-key finishes).
        previous: u32,
    },
    /// The head of the committing machine's own audit lane (a lane other than the main one,
    /// whose head is [`Commit::audit`]) when the commit was made. Changes nothing in the index.
    LaneAnchor {
        /// The lane's id.
        lane: [u8; 8],
        /// The lane's newest entry.
        anchor: AuditAnchor,
    },
    /// A deleted version is live again (KV v2's undelete); changes nothing for a destroyed one.
    Undelete {
        /// The secret's path.
        path: String,
        /// The version.
        version: u64,
    },
    /// A version's value is destroyed: the index forgets where it was ([`BlobRef::DESTROYED`]),
    /// and the objects that held it are deleted once this is committed (values sharing them
    /// having moved first).
    Destroy {
        /// The secret's path.
        path: String,
        /// The version.
        version: u64,
    },
}

/// The head of the audit trail at the time of a commit: anchors the trail in the commit log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditAnchor {
    /// Sequence number of the newest audit record.
    pub seq: u64,
    /// Its link.
    pub link: Link,
}

/// A commit: an atomic set of changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Who wrote it.
    pub actor: String,
    /// A random nonce of the writer, so a retried write can recognise that it already landed.
    pub writer: [u8; 16],
    /// The main audit lane's head when the commit was made, if the committing machine appends to
    /// it (other lanes are anchored by an [`Op::LaneAnchor`]).
    pub audit: Option<AuditAnchor>,
    /// The changes.
    pub ops: Vec<Op>,
}

/// How an audited operation ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// It succeeded (for writes: it is about to be committed; a failure follows as its own record).
    Ok,
    /// It failed; the text says why (never a secret value).
    Failed(String),
    /// It was refused by policy before anything was done; the text says why.
    Denied(String),
}

/// What an audit record says was done: a closed set, each with one stable name (what the trail
/// stores and `tresor audit` prints). Trails written before this set existed used a few other
/// names for the same operations (`EpochRotated`, `BlobReencrypted`, `EpochDestroyed`,
/// `epoch rotate (policy)`); [`AuditOp::parse`] reads those too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuditOp {
    /// A vault was created.
    Init,
    /// Unlocked with a password.
    Unlock,
    /// Unlocked with the recovery phrase.
    UnlockRecoveryPhrase,
    /// Locked: every key wiped.
    Lock,
    /// A secret's value was read.
    Get,
    /// Secrets were written.
    Set,
    /// Secrets were written by an import.
    Import,
    /// A secret was deleted.
    Rm,
    /// Secret names were listed.
    List,
    /// A secret's versions were listed.
    History,
    /// The vault's summary was read.
    Status,
    /// The audit trail was read.
    Audit,
    /// The logs and values were verified.
    AuditVerify,
    /// The vault was exported to an archive.
    Export,
    /// A password was changed.
    Passwd,
    /// A password slot was added.
    KeyslotAdd,
    /// A password slot was removed.
    KeyslotRemove,
    /// The vault was opened with its recovery phrase and given a new password.
    Recover,
    /// A newer key file another writer made was adopted.
    KeyfileAdopt,
    /// Unreferenced objects were collected.
    Gc,
    /// The epochs were listed.
    EpochList,
    /// A new epoch was started (manually, by policy, to destroy one, on revocation).
    EpochRotate,
    /// The rotation policy was set.
    EpochPolicy,
    /// Values were sealed again into the current epoch.
    EpochReencrypt,
    /// An epoch was destroyed.
    EpochDestroy,
    /// The recovery phrase was shown.
    RecoveryPhrase,
    /// A key was derived (an identity's public half, a private half, a raw transit key).
    KeyDerive,
    /// A message was signed.
    Sign,
    /// Data was encrypted with a transit key (or a message key issued for it).
    Encrypt,
    /// Data was decrypted with a transit key (or a message key issued for it).
    Decrypt,
    /// The root secret was rotated.
    Rekey,
    /// Deleted versions of a secret were made live again.
    Undelete,
    /// Versions of a secret were destroyed: their values taken out of the store.
    Destroy,
    /// A server request refused by policy, or outside the operations above (its method and
    /// path are the record's detail).
    Request,
    /// A change a sync group's member made, taken in (its actor names the member), or the
    /// group's own state kept.
    Sync,
}

impl AuditOp {
    /// Every operation, in the order above.
    pub const ALL: [AuditOp; 35] = [
        AuditOp::Init,
        AuditOp::Unlock,
        AuditOp::UnlockRecoveryPhrase,
        AuditOp::Lock,
        AuditOp::Get,
        AuditOp::Set,
        AuditOp::Import,
        AuditOp::Rm,
        AuditOp::List,
        AuditOp::History,
        AuditOp::Status,
        AuditOp::Audit,
        AuditOp::AuditVerify,
        AuditOp::Export,
        AuditOp::Passwd,
        AuditOp::KeyslotAdd,
        AuditOp::KeyslotRemove,
        AuditOp::Recover,
        AuditOp::KeyfileAdopt,
        AuditOp::Gc,
        AuditOp::EpochList,
        AuditOp::EpochRotate,
        AuditOp::EpochPolicy,
        AuditOp::EpochReencrypt,
        AuditOp::EpochDestroy,
        AuditOp::RecoveryPhrase,
        AuditOp::KeyDerive,
        AuditOp::Sign,
        AuditOp::Encrypt,
        AuditOp::Decrypt,
        AuditOp::Rekey,
        AuditOp::Undelete,
        AuditOp::Destroy,
        AuditOp::Request,
        AuditOp::Sync,
    ];

    /// Its stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOp::Init => "init",
            AuditOp::Unlock => "unlock",
            AuditOp::UnlockRecoveryPhrase => "unlock (recovery phrase)",
            AuditOp::Lock => "lock",
            AuditOp::Get => "get",
            AuditOp::Set => "set",
            AuditOp::Import => "import",
            AuditOp::Rm => "rm",
            AuditOp::List => "list",
            AuditOp::History => "history",
            AuditOp::Status => "status",
            AuditOp::Audit => "audit",
            AuditOp::AuditVerify => "audit verify",
            AuditOp::Export => "export",
            AuditOp::Passwd => "passwd",
            AuditOp::KeyslotAdd => "keyslot add",
            AuditOp::KeyslotRemove => "keyslot remove",
            AuditOp::Recover => "recover",
            AuditOp::KeyfileAdopt => "keyfile adopt",
            AuditOp::Gc => "gc",
            AuditOp::EpochList => "epoch list",
            AuditOp::EpochRotate => "epoch rotate",
            AuditOp::EpochPolicy => "epoch policy",
            AuditOp::EpochReencrypt => "epoch reencrypt",
            AuditOp::EpochDestroy => "epoch destroy",
            AuditOp::RecoveryPhrase => "recovery-phrase",
            AuditOp::KeyDerive => "key derive",
            AuditOp::Sign => "sign",
            AuditOp::Encrypt => "encrypt",
            AuditOp::Decrypt => "decrypt",
            AuditOp::Rekey => "rekey",
            AuditOp::Undelete => "undelete",
            AuditOp::Destroy => "destroy",
            AuditOp::Request => "request",
            AuditOp::Sync => "sync",
        }
    }

    /// The operation a stored name stands for, older names included.
    pub fn parse(name: &str) -> Option<AuditOp> {
        match name {
            "EpochRotated" | "epoch rotate (policy)" => Some(AuditOp::EpochRotate),
            "BlobReencrypted" => Some(AuditOp::EpochReencrypt),
            "EpochDestroyed" => Some(AuditOp::EpochDestroy),
            _ => AuditOp::ALL.into_iter().find(|op| op.as_str() == name),
        }
    }
}

impl std::fmt::Display for AuditOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One record of the audit trail as `tresor audit` shows it: where it is, and what it says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrailRecord {
    /// The lane of its entry: `main`, or a lane id in hex (see `layout::AuditLane`).
    pub lane: String,
    /// Its entry's sequence number in that lane (records written together share one).
    pub seq: u64,
    /// The record.
    pub record: AuditRecord,
}

/// Which audit records to show (`tresor audit`, the server's `tresor/audit`): every field that
/// is set must match; `limit` keeps the newest N of those.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// The record's path is this path, or lies under it.
    pub path: Option<String>,
    /// The actor contains this text.
    pub actor: Option<String>,
    /// The operation, by any of its names ([`AuditOp::parse`]).
    pub op: Option<String>,
    /// Written at or after (ms since the Unix epoch).
    pub since_ms: Option<u64>,
    /// Written at or before (ms since the Unix epoch).
    pub until_ms: Option<u64>,
    /// Only the newest N.
    pub limit: Option<usize>,
}

impl AuditFilter {
    /// The records that match, oldest first.
    pub fn apply(&self, mut records: Vec<TrailRecord>) -> Vec<TrailRecord> {
        let op =
            self.op.as_deref().map(|o| AuditOp::parse(o).map_or_else(|| o.to_string(), |o| o.to_string()));
        records.retain(|t| {
            let r = &t.record;
            let record_op = AuditOp::parse(&r.op).map_or_else(|| r.op.clone(), |o| o.to_string());
            self.path.as_deref().is_none_or(|p| {
                let p = p.trim_end_matches('/');
                r.path.as_deref().is_some_and(|have| have == p || have.starts_with(&format!("{p}/")))
            }) && self.actor.as_deref().is_none_or(|a| r.actor.contains(a))
                && op.as_deref().is_none_or(|o| record_op == o)
                && self.since_ms.is_none_or(|t| r.time_ms >= t)
                && self.until_ms.is_none_or(|t| r.time_ms <= t)
        });
        records.sort_by_key(|t| t.record.time_ms);
        let skip = records.len().saturating_sub(self.limit.unwrap_or(usize::MAX));
        records.split_off(skip)
    }
}

/// An audit record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Who did it.
    pub actor: String,
    /// The operation: the name of an [`AuditOp`] (or, in trails written before that set, an
    /// older name [`AuditOp::parse`] reads).
    pub op: String,
    /// The secret path or prefix it concerned, if any.
    pub path: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// Extra facts (a version, a count, failed unlock attempts).
    pub detail: Option<String>,
}

/// The format of audit entries this version writes: a version byte, then the postcard list of
/// the entry's records (a batch: reads that arrived together share one entry). Format 1 — an
/// entry that is one postcard record, with no version byte — is what earlier versions wrote; its
/// first byte is that of a varint millisecond time, so 0 or at least 0x80, never 1 to 127.
/// Later formats add fields by taking the next version number: old trails keep reading.
pub const AUDIT_FORMAT: u8 = 2;

/// Encodes the records of one audit entry (format [`AUDIT_FORMAT`]).
pub fn encode_audit(records: &[AuditRecord]) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let body = encode(&records)?;
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(body.len() + 1));
    out.push(AUDIT_FORMAT);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes an opened audit entry of any known format: its records, oldest first.
pub fn decode_audit(bytes: &[u8], object: &str) -> Result<Vec<AuditRecord>> {
    match bytes.first() {
        Some(&AUDIT_FORMAT) => decode(&bytes[1..], ObjectKind::AuditRecord, object),
        Some(0 | 0x80..) => Ok(vec![decode(bytes, ObjectKind::AuditRecord, object)?]),
        Some(other) => Err(Error::integrity(
            ObjectKind::AuditRecord,
            object,
            format!("is in audit format {other}, which this version of tresor does not know: upgrade it"),
        )),
        None => Err(Error::integrity(ObjectKind::AuditRecord, object, "authenticated but is empty")),
    }
}

/// Encodes a model value for sealing.
pub fn encode<T: Serialize>(value: &T) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    postcard::to_stdvec(value)
        .map(zeroize::Zeroizing::new)
        .map_err(|e| Error::Invalid(format!("cannot encode: {e}")))
}

/// Decodes a model value from an opened envelope; failures name the object.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8], kind: ObjectKind, object: &str) -> Result<T> {
    postcard::from_bytes(bytes)
        .map_err(|_| Error::integrity(kind, object, "authenticated but does not parse"))
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn blob_ref() -> impl Strategy<Value = BlobRef> {
        (any::<u32>(), any::<[u8; 16]>(), any::<u64>(), any::<u32>(), any::<u64>(), any::<u32>())
            .prop_map(|(epoch, id, size, slot, offset, len)| BlobRef { epoch, id, size, slot, offset, len })
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (any::<u32>(), any::<u64>())
                .prop_map(|(epoch, keyfile_generation)| Op::Genesis { epoch, keyfile_generation }),
            ("[ -~]{1,64}", any::<u64>(), blob_ref()).prop_map(|(path, version, blob)| Op::Put {
                path,
                version,
                blob
            }),
            ("[ -~]{1,64}", any::<u64>(), blob_ref()).prop_map(|(path, version, blob)| Op::Reseal {
                path,
                version,
                blob
            }),
            (any::<u32>(), "\\PC{0,20}").prop_map(|(epoch, reason)| Op::Rotate { epoch, reason }),
            any::<u32>().prop_map(|epoch| Op::DestroyEpoch { epoch }),
            proptest::option::of(any::<u64>()).prop_map(|rotate_every_ms| Op::Policy { rotate_every_ms }),
            ("[ -~]{1,64}", any::<u64>()).prop_map(|(path, version)| Op::Delete { path, version }),
            (any::<u64>(), any::<[u8; 32]>()).prop_map(|(generation, hash)| Op::KeyFile { generation, hash }),
        ]
    }

    proptest! {
        #[test]
        fn commit_roundtrip(time_ms in any::<u64>(), actor in "\\PC{0,20}", writer in any::<[u8; 16]>(),
                            anchor in proptest::option::of((any::<u64>(), any::<[u8; 32]>())),
                            ops in proptest::collection::vec(op(), 0..8)) {
            let c = Commit { time_ms, actor, writer, audit: anchor.map(|(seq, link)| AuditAnchor { seq, link }), ops };
            let bytes = encode(&c).unwrap();
            prop_assert_eq!(decode::<Commit>(&bytes, ObjectKind::Commit, "x").unwrap(), c);
        }

        #[test]
        fn audit_record_roundtrip(time_ms in any::<u64>(), actor in "\\PC{0,20}", op in "[a-z]{1,10}",
                                  path in proptest::option::of("\\PC{1,40}"), failed in proptest::option::of("\\PC{0,40}"),
                                  detail in proptest::option::of("\\PC{0,40}")) {
            let r = AuditRecord { time_ms, actor, op, path, outcome: failed.map_or(Outcome::Ok, Outcome::Failed), detail };
            let bytes = encode(&r).unwrap();
            prop_assert_eq!(decode::<AuditRecord>(&bytes, ObjectKind::AuditRecord, "x").unwrap(), r);
        }
    }

    proptest! {
        #[test]
        fn audit_entry_roundtrip(times in proptest::collection::vec(any::<u64>(), 0..6), actor in "\\PC{0,20}") {
            let records: Vec<AuditRecord> = times.iter().map(|t| AuditRecord {
                time_ms: *t, actor: actor.clone(), op: "get".into(), path: Some("a/b".into()),
                outcome: Outcome::Ok, detail: None,
            }).collect();
            let bytes = encode_audit(&records).unwrap();
            prop_assert_eq!(decode_audit(&bytes, "x").unwrap(), records);
        }

        #[test]
        fn audit_format_1_entries_still_read(time_ms in 128u64.., actor in "\\PC{0,20}") {
            let record = AuditRecord { time_ms, actor, op: "get".into(), path: None, outcome: Outcome::Ok, detail: None };
            let bytes = encode(&record).unwrap();
            prop_assert!(bytes[0] >= 0x80);
            prop_assert_eq!(decode_audit(&bytes, "x").unwrap(), vec![record]);
        }
    }

    #[test]
    fn audit_op_names_are_distinct_and_parse_back() {
        let names: std::collections::HashSet<&str> = AuditOp::ALL.iter().map(|op| op.as_str()).collect();
        assert_eq!(names.len(), AuditOp::ALL.len());
        for op in AuditOp::ALL {
            assert_eq!(AuditOp::parse(op.as_str()), Some(op));
        }
        assert_eq!(AuditOp::parse("BlobReencrypted"), Some(AuditOp::EpochReencrypt));
        assert_eq!(AuditOp::parse("no such op"), None);
    }

    #[test]
    fn fail_unknown_audit_format_says_upgrade() {
        let err = decode_audit(&[9, 0], "audit/3").unwrap_err();
        assert!(err.to_string().contains("audit format 9"), "{err}");
    }

    #[test]
    fn fail_garbage_names_the_object() {
        let err = decode::<Commit>(&[0xff; 3], ObjectKind::Commit, "log/7").unwrap_err();
        assert!(err.to_string().contains("commit log/7"), "{err}");
    }
}
