//! What the sharing calls carry: the vault's sync groups as it last saw them, and what a sync
//! round did — plain data, so the CLI prints the agent's rounds and its own alike.

use serde::{Deserialize, Serialize};

/// The vault's sync groups as it last saw them (`share list`, `share members`, `status`).
#[derive(Serialize, Deserialize)]
pub struct Groups;

/// One sync group as this vault last saw it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GroupSummary {
    /// The shared folder of this vault.
    pub prefix: String,
    /// The relay the group syncs through.
    pub relay: String,
    /// The current epoch of the group's keys.
    pub epoch: u64,
    /// Whether the group's admin removed this vault.
    pub removed: bool,
    /// The current epoch's members.
    pub members: Vec<MemberSummary>,
    /// Paths (in the vault) with concurrent versions: the shown one, and how many others.
    pub conflicts: Vec<(String, u64)>,
    /// Own writes not yet acknowledged by every member.
    pub unacknowledged: u64,
}

/// One member of a group.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberSummary {
    /// Its id.
    pub id: [u8; 32],
    /// Whether it is the group's admin.
    pub admin: bool,
    /// Whether it is this vault.
    pub me: bool,
    /// When something new last came from it (seconds since the Unix epoch).
    pub heard: Option<u64>,
    /// The name this vault gave it.
    pub name: Option<String>,
}

/// Sync now: one round of the group sharing `prefix`, or of every group (`tresor sync` while the
/// agent holds the vault). Rounds talk to relays: a bulk call.
#[derive(Serialize, Deserialize)]
pub struct SyncNow {
    /// The folder of one group (`None`: every group).
    pub prefix: Option<String>,
    /// A PEM certificate to trust for `https` relays instead of the system's roots.
    pub ca_cert: Option<Vec<u8>>,
}

/// One group's round.
#[derive(Debug, Serialize, Deserialize)]
pub struct GroupRound {
    /// The group's folder.
    pub prefix: String,
    /// What the round did, or why it did not run.
    pub outcome: Result<RoundReport, ShareFailure>,
}

/// What one round of one group did and saw.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RoundReport {
    /// Paths (in the vault) other members changed, written here.
    pub received: Vec<String>,
    /// Paths (in the vault) changed here, sent to the group.
    pub sent: Vec<String>,
    /// What the relay or a member did that an honest group and relay never do, and lateness.
    pub warnings: Vec<RoundWarning>,
    /// What went wrong after the round's work was saved.
    pub problems: Vec<String>,
    /// Paths (in the vault) not carried, and why.
    pub skipped: Vec<(String, String)>,
    /// Paths (in the vault) with concurrent versions: the shown one, and how many others.
    pub conflicts: Vec<(String, u64)>,
    /// Own writes the other members have not all acknowledged yet.
    pub unacknowledged: u64,
    /// Whether this member was removed from the group.
    pub removed: bool,
}

/// A warning of a round, as people read it.
#[derive(Debug, Serialize, Deserialize)]
pub struct RoundWarning {
    /// Whether it shows an attack (the command exits 5).
    pub attack: bool,
    /// What happened.
    pub text: String,
}

/// Why a sharing call or a round did not run, or stopped.
#[derive(Debug, Serialize, Deserialize)]
pub enum ShareFailure {
    /// The vault refused or failed (its error, typed).
    Vault(tresor::Error),
    /// Anything else, with the exit code the CLI gives it and what to try.
    Other {
        /// The exit code (see `tresor --help`).
        exit: u8,
        /// What went wrong.
        message: String,
        /// What to try.
        hint: Option<String>,
    },
}

impl std::fmt::Display for ShareFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShareFailure::Vault(e) => e.fmt(f),
            ShareFailure::Other { message, .. } => f.write_str(message),
        }
    }
}

/// Seal the changes of a folder for a KOI-net peer (`share koi send`).
#[derive(Serialize, Deserialize)]
pub struct KoiSend {
    /// The folder.
    pub prefix: String,
    /// The peer's node id.
    pub peer: String,
    /// Every secret of the folder, not only the changes.
    pub all: bool,
}

/// What [`KoiSend`] sealed.
#[derive(Debug, Serialize, Deserialize)]
pub struct KoiSent {
    /// The messages (`nonce ‖ ciphertext ‖ tag`), in order.
    pub messages: Vec<Vec<u8>>,
    /// The vault paths they carry.
    pub paths: Vec<String>,
}

/// Take in one batch of a KOI-net peer's messages (`share koi receive`).
#[derive(Serialize, Deserialize)]
pub struct KoiReceive {
    /// The folder.
    pub prefix: String,
    /// The peer's node id.
    pub peer: String,
    /// The messages, in the order they were sealed.
    pub messages: Vec<Vec<u8>>,
}

/// What [`KoiReceive`] did.
#[derive(Debug, Serialize, Deserialize)]
pub struct KoiReceipt {
    /// Paths (in the vault) written or deleted.
    pub applied: Vec<String>,
    /// Messages refused (1-based, in the order given), and why.
    pub refused: Vec<(u64, String)>,
}

/// The KOI-net peers of the vault (`share koi list`).
#[derive(Serialize, Deserialize)]
pub struct KoiPeers;

/// One KOI-net peer.
#[derive(Debug, Serialize, Deserialize)]
pub struct KoiPeerSummary {
    /// The folder it shares.
    pub prefix: String,
    /// Its node id.
    pub peer_id: String,
    /// Its public key (hex).
    pub peer_key: String,
    /// This vault's public key for it (hex).
    pub public_key: String,
    /// The counter of the last message sealed to it.
    pub sent: u64,
    /// The highest counter taken in from it.
    pub received: u64,
    /// When it was added (ms since the Unix epoch).
    pub since_ms: u64,
}
