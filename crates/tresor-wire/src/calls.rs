//! The operations: one request type per operation, each bound to its own reply type by
//! [`Call`], so a client never meets an answer it has to reject as unexpected.
//!
//! On the wire a request is a [`Request`] (one variant per operation, in the order below) and the
//! reply to a call `C` is a [`Reply<C::Reply>`]: the agent writes exactly the reply type of the
//! request it read, and the client reads exactly the reply type of the call it sent.

use crate::frame::{Blob, SecretBuf};
use crate::share::{
    GroupRound, GroupSummary, Groups, KoiPeerSummary, KoiPeers, KoiReceipt, KoiReceive, KoiSend, KoiSent,
    ShareFailure, SyncNow,
};
use serde::{Deserialize, Serialize};
use tresor::model::{AuditOp, TrailRecord};
use tresor::vault::{
    DestroyReport, DestroyVersionsReport, EpochList, GcReport, HistoryEntry, KeySlotView, ListEntry,
    ReencryptReport, RotateReport, Status, VerifyReport,
};

/// Why a call got no reply of its type.
#[derive(Debug, Serialize, Deserialize)]
pub enum Failure {
    /// The agent holds no unlocked vault (or it was locked while the call ran).
    Locked,
    /// The operation failed: the core's error, typed (a store error without its source).
    Error(tresor::Error),
}

/// What the agent sends back for a call whose reply type is `T`.
pub type Reply<T> = Result<T, Failure>;

/// One operation: its request type, bound to its reply type.
pub trait Call: Serialize {
    /// What a successful call returns.
    type Reply: Serialize + for<'de> Deserialize<'de>;

    /// The call as one variant of [`Request`], borrowed, for the wire.
    fn wire(&self) -> RequestRef<'_>;

    /// Work whose length grows with the vault (re-encryption, epoch destruction): the agent
    /// gives it [`crate::BULK_DEADLINE`] instead of its usual deadline, and a client waits as long.
    fn is_bulk(&self) -> bool {
        false
    }
}

macro_rules! calls {
    ($( $(#[$doc:meta])* $name:ident => $reply:ty $(, bulk($call:ident) $bulk:expr)? ; )*) => {
        /// Any request, as the agent reads it off the socket.
        #[derive(Deserialize)]
        pub enum Request {
            $( $(#[$doc])* $name($name), )*
        }

        /// A borrowed request, as a client writes it (the same encoding as [`Request`]).
        #[derive(Serialize)]
        pub enum RequestRef<'a> {
            $( $(#[$doc])* $name(&'a $name), )*
        }

        impl Request {
            /// See [`Call::is_bulk`].
            pub fn is_bulk(&self) -> bool {
                match self {
                    $( Request::$name(call) => call.is_bulk(), )*
                }
            }
        }

        $(
            impl Call for $name {
                type Reply = $reply;

                fn wire(&self) -> RequestRef<'_> {
                    RequestRef::$name(self)
                }

                $(
                    fn is_bulk(&self) -> bool {
                        let $call = self;
                        $bulk
                    }
                )?
            }
        )*
    };
}

calls! {
    /// Is the agent there, and unlocked?
    Ping => Pong;
    /// Unlock with a password.
    Unlock => Unlocked;
    /// Wipe every key and exit.
    Lock => ();
    /// Read a secret.
    Get => Got;
    /// Write secrets in one commit.
    Set => Vec<u64>;
    /// Delete a secret's current version.
    Delete => u64;
    /// List secrets under a prefix.
    List => Vec<ListEntry>;
    /// A secret's versions.
    History => Vec<HistoryEntry>;
    /// The vault's summary.
    GetStatus => Status;
    /// The audit trail.
    ReadAudit => Vec<TrailRecord>;
    /// Prove the chains and every value whole.
    Verify => VerifyReport;
    /// A self-contained encrypted backup.
    Export => SecretBuf;
    /// Remove superseded snapshots and orphans.
    Gc => GcReport;
    /// The key epochs and what each holds.
    ListEpochs => EpochList;
    /// Start a new epoch; with `reencrypt`, re-seal every older value into it.
    RotateEpoch => Rotated, bulk(call) call.reencrypt;
    /// Re-seal every value of older epochs into the current one.
    Reencrypt => ReencryptReport, bulk(_call) true;
    /// Destroy an epoch: re-seal what it holds, delete its blobs and key.
    DestroyEpoch => DestroyReport, bulk(_call) true;
    /// Set the automatic rotation interval.
    SetRotationPolicy => ();
    /// The key file's slots.
    ListKeyslots => Vec<KeySlotView>;
    /// The Ed25519 identity at a SLIP-0010 path.
    DeriveIdentity => Identity;
    /// Sign a message with the identity at a path.
    Sign => Signature;
    /// Encrypt with a named transit key.
    Encrypt => Blob;
    /// The key of one streamed transit message.
    StreamKey => MessageKey;
    /// Decrypt a transit ciphertext.
    Decrypt => SecretBuf;
    /// Undelete chosen versions of a secret.
    UndeleteVersions => Vec<u64>;
    /// Destroy chosen versions of a secret: their values leave the store.
    DestroyVersions => DestroyVersionsReport;
    /// The vault's sync groups as it last saw them.
    Groups => Result<Vec<GroupSummary>, ShareFailure>;
    /// One sync round now, of one group or of all.
    SyncNow => Vec<GroupRound>, bulk(_call) true;
    /// Seal a folder's changes for a KOI-net peer.
    KoiSend => Result<KoiSent, ShareFailure>;
    /// Take in a batch of a KOI-net peer's messages.
    KoiReceive => Result<KoiReceipt, ShareFailure>;
    /// The KOI-net peers.
    KoiPeers => Result<Vec<KoiPeerSummary>, ShareFailure>;
}

/// Is the agent there, and unlocked? Restarts no idle timer.
#[derive(Serialize, Deserialize)]
pub struct Ping;

/// The agent's answer to [`Ping`].
#[derive(Serialize, Deserialize)]
pub struct Pong {
    /// Whether a vault is unlocked.
    pub unlocked: bool,
    /// The agent's process id.
    pub pid: u32,
}

/// Unlock with this password (UTF-8).
#[derive(Serialize, Deserialize)]
pub struct Unlock {
    /// The password.
    pub password: SecretBuf,
}

/// The agent unlocked the vault (or already held it and the password checked).
#[derive(Serialize, Deserialize)]
pub struct Unlocked {
    /// Times of the failed attempts since the last unlock (ms since the Unix epoch).
    pub failed_attempts: Vec<u64>,
    /// Hardening that did not take (mlock, core dumps, ptrace), and first-use notices.
    pub warnings: Vec<String>,
}

/// Wipe every key and exit.
#[derive(Serialize, Deserialize)]
pub struct Lock;

/// Read a secret.
#[derive(Serialize, Deserialize)]
pub struct Get {
    /// Its path.
    pub path: String,
    /// A specific version.
    pub version: Option<u64>,
}

/// A secret's value, and what sync says of it.
#[derive(Serialize, Deserialize)]
pub struct Got {
    /// The value.
    pub value: SecretBuf,
    /// When the value is one of concurrent versions a sync group kept (see `tresor history`):
    /// how many others there are.
    pub conflict: Option<u64>,
}

/// Write secrets in one commit; the reply is their new versions, in order.
#[derive(Serialize, Deserialize)]
pub struct Set {
    /// What the audit trail calls it: [`AuditOp::Set`] or [`AuditOp::Import`] (others are refused).
    pub op: AuditOp,
    /// Paths and values.
    pub items: Vec<(String, SecretBuf)>,
    /// Check-and-set: what the (single) secret's newest version must be, live, deleted or
    /// destroyed (0: it never had one), as Vault's KV v2 counts.
    pub cas: Option<u64>,
}

/// Delete a secret's current version (history is kept); the reply is the deleted version.
#[derive(Serialize, Deserialize)]
pub struct Delete {
    /// Its path.
    pub path: String,
}

/// Make deleted versions of a secret live again; the reply is the versions undeleted.
#[derive(Serialize, Deserialize)]
pub struct UndeleteVersions {
    /// Its path.
    pub path: String,
    /// The versions (none: the newest).
    pub versions: Vec<u64>,
}

/// Destroy versions of a secret (KV v2's destroy): their values are taken out of the store.
#[derive(Serialize, Deserialize)]
pub struct DestroyVersions {
    /// Its path.
    pub path: String,
    /// The versions.
    pub versions: Vec<u64>,
}

/// List the live secrets under a prefix.
#[derive(Serialize, Deserialize)]
pub struct List {
    /// The prefix (empty: all).
    pub prefix: String,
    /// The deleted secrets instead of the live ones.
    #[serde(default)]
    pub deleted: bool,
}

/// A secret's versions, oldest first.
#[derive(Serialize, Deserialize)]
pub struct History {
    /// Its path.
    pub path: String,
}

/// The vault's summary.
#[derive(Serialize, Deserialize)]
pub struct GetStatus;

/// The whole audit trail, every lane, oldest record first.
#[derive(Serialize, Deserialize)]
pub struct ReadAudit;

/// Prove the commit log, the audit trail and every value whole.
#[derive(Serialize, Deserialize)]
pub struct Verify;

/// A self-contained encrypted backup of the vault.
#[derive(Serialize, Deserialize)]
pub struct Export;

/// Remove superseded snapshots and orphans.
#[derive(Serialize, Deserialize)]
pub struct Gc {
    /// Keep unreferenced blobs younger than this (seconds).
    pub grace_secs: u64,
    /// Only count.
    pub dry_run: bool,
}

/// The key epochs and what each holds.
#[derive(Serialize, Deserialize)]
pub struct ListEpochs;

/// Start a new epoch.
#[derive(Serialize, Deserialize)]
pub struct RotateEpoch {
    /// Also re-seal every value of older epochs into it now.
    pub reencrypt: bool,
}

/// A rotation, and the re-encryption that followed it if one was asked for.
#[derive(Serialize, Deserialize)]
pub struct Rotated {
    /// The rotation.
    pub rotation: RotateReport,
    /// The re-encryption, if asked for.
    pub reencrypted: Option<ReencryptReport>,
}

/// Re-seal every value of older epochs into the current one (finishes an interrupted run).
#[derive(Serialize, Deserialize)]
pub struct Reencrypt;

/// Destroy an epoch.
#[derive(Serialize, Deserialize)]
pub struct DestroyEpoch {
    /// The epoch.
    pub epoch: u32,
}

/// Set the automatic rotation interval.
#[derive(Serialize, Deserialize)]
pub struct SetRotationPolicy {
    /// Seconds between rotations; `None`: off.
    pub every_secs: Option<u64>,
}

/// The key file's slots.
#[derive(Serialize, Deserialize)]
pub struct ListKeyslots;

/// The Ed25519 identity at a SLIP-0010 path.
#[derive(Serialize, Deserialize)]
pub struct DeriveIdentity {
    /// The path, e.g. `m/74'/0'/0'` (hardened components only).
    pub path: String,
    /// Also return the private key and chain code.
    pub show_private: bool,
}

/// A derived identity.
#[derive(Serialize, Deserialize)]
pub struct Identity {
    /// Its path.
    pub path: String,
    /// Its public key.
    pub public_key: [u8; 32],
    /// Private key then chain code (64 bytes), only when asked for.
    pub private: Option<SecretBuf>,
}

/// Sign a message with the identity at a path.
#[derive(Serialize, Deserialize)]
pub struct Sign {
    /// The path.
    pub path: String,
    /// The message.
    pub message: SecretBuf,
}

/// A signature and the public key that verifies it.
#[derive(Serialize, Deserialize)]
pub struct Signature {
    /// The Ed25519 signature (64 bytes).
    pub signature: Vec<u8>,
    /// The public key.
    pub public_key: [u8; 32],
}

/// Encrypt with a named transit key; the reply is the binary ciphertext.
#[derive(Serialize, Deserialize)]
pub struct Encrypt {
    /// The key name.
    pub key: String,
    /// The algorithm (`xchacha20-poly1305`, `aes256-gcm`).
    pub alg: String,
    /// The plaintext.
    pub plaintext: SecretBuf,
}

/// The key of one streamed transit message (format version 2).
#[derive(Serialize, Deserialize)]
pub struct StreamKey {
    /// The key name.
    pub key: String,
    /// The algorithm (`xchacha20-poly1305`, `aes256-gcm`).
    pub alg: String,
    /// `None` for a new message (the agent draws the salt), else the salt of the message to decrypt.
    pub salt: Option<[u8; 32]>,
}

/// The key of one streamed transit message, and the salt it belongs to.
#[derive(Serialize, Deserialize)]
pub struct MessageKey {
    /// The vault's id (bound into every segment).
    pub vault_id: [u8; 16],
    /// The message's salt.
    pub salt: [u8; 32],
    /// The message key (32 bytes).
    pub key: SecretBuf,
}

/// Decrypt a transit ciphertext (binary or armoured).
#[derive(Serialize, Deserialize)]
pub struct Decrypt {
    /// The key name the caller expects (a ciphertext of another key is refused).
    pub key: Option<String>,
    /// The ciphertext.
    pub ciphertext: Blob,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{decode, encode};

    #[test]
    fn a_borrowed_request_reads_back_as_the_same_request() {
        let get = Get { path: "db/pw".into(), version: Some(3) };
        let frame = encode(&get.wire()).unwrap();
        match decode::<Request>(&frame[4..]).unwrap() {
            Request::Get(back) => assert_eq!((back.path.as_str(), back.version), ("db/pw", Some(3))),
            _ => panic!("another request"),
        }
        let frame = encode(&DestroyEpoch { epoch: 4 }.wire()).unwrap();
        assert!(matches!(
            decode::<Request>(&frame[4..]).unwrap(),
            Request::DestroyEpoch(DestroyEpoch { epoch: 4 })
        ));
    }

    #[test]
    fn a_frame_of_another_protocol_version_is_refused_by_name() {
        let mut frame = encode(&Ping.wire()).unwrap();
        frame[4] = crate::PROTOCOL_VERSION.wrapping_add(1);
        let Err(e) = decode::<Request>(&frame[4..]) else { panic!("a frame of another version was read") };
        assert!(e.to_string().contains("protocol version"), "{e}");
    }

    #[test]
    fn only_work_that_grows_with_the_vault_is_bulk() {
        assert!(Reencrypt.is_bulk() && DestroyEpoch { epoch: 1 }.is_bulk());
        assert!(RotateEpoch { reencrypt: true }.is_bulk());
        assert!(!RotateEpoch { reencrypt: false }.is_bulk() && !ListEpochs.is_bulk() && !Ping.is_bulk());
        assert!(Request::Reencrypt(Reencrypt).is_bulk() && !Request::Lock(Lock).is_bulk());
        assert!(crate::BULK_DEADLINE >= std::time::Duration::from_secs(3600));
    }

    #[test]
    fn core_errors_cross_the_socket_typed() {
        let io = std::io::Error::other("disk on fire");
        let errors = [
            tresor::Error::AuthFailed,
            tresor::Error::Deleted { path: "db/pw".into(), version: 3 },
            tresor::Error::InvalidPath("the path is empty".into()),
            tresor::Error::Rollback { kind: tresor::ObjectKind::AuditRecord, seen: 9, served: 4 },
            tresor::Error::Store(tresor::StoreError::with_source("cannot write log/1", io)),
            tresor::Error::Indeterminate(Box::new(tresor::Error::store("timed out"))),
            tresor::Error::RekeyRunning { next: 2, quiet_s: 5, wait_s: 895 },
            tresor::Error::Locked,
        ];
        for e in errors {
            let reply: Reply<u64> = Err(Failure::Error(e.clone()));
            let frame = encode(&reply).unwrap();
            let Ok(Err(Failure::Error(back))) = decode::<Reply<u64>>(&frame[4..]) else {
                panic!("{e}: lost")
            };
            assert_eq!(back.to_string(), e.to_string());
            assert_eq!(back.category(), e.category());
            assert_eq!(std::mem::discriminant(&back), std::mem::discriminant(&e));
            // The store's own error stays in the process it happened in.
            if let tresor::Error::Store(inner) = &back {
                assert!(std::error::Error::source(inner).is_none());
            }
        }
    }
}
