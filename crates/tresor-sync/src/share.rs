//! A sync group as one vault keeps it (ARCHITECTURE.md, "Sharing and sync through a relay",
//! **In the vault**): its record and this member's state sealed in the vault's system namespace,
//! one round of sync between the vault's prefix and the relay, and the pairing that creates a
//! member.
//!
//! - `sync/<group>/record`: the prefix, the relay, and what this vault's identity in the group
//!   derives from (a label and an installation number under `m/74'/1'`).
//! - `sync/<group>/state/<n>`: the member's saved state ([`Peer::save`]) with the vault's own
//!   bookkeeping (which version of each path was last in sync, the relay cursors), cut into parts
//!   the vault's value limit takes; every part names the generation it belongs to.
//!
//! A round saves the state — own new events included — and the changes the other members made,
//! in one commit, before anything is sent: a crash never makes this member sign two events at one
//! place. Two rounds at once on one vault are refused by the same commit (check-and-set on the
//! state), so only one of them sends.

use crate::event::{Op, borrowed_bytes};
use crate::member::{Identity, MemberId, MemberKey};
use crate::pair::{self, Creator, Invitation, Message, PairError};
use crate::peer::{Group, Peer, PeerError, Timing, Upload, Warning};
use crate::relay::{self, RelayClient, RelayError};
use crate::replica::View;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use tresor::path::SecretPath;
use tresor::vault::{Change, SystemEntry};
use tresor::{Vault, path};
use tresor_crypto::cell::Cell;
use tresor_crypto::{Key, SecretBytes, hash, random_array};
use zeroize::Zeroizing;

/// The format of the record (and of the saved state before [`STATE_FORMAT`]).
const FORMAT: u8 = 1;
/// The format of the saved state: 2 keeps, with each relay cursor, a hash of the last cell read.
const STATE_FORMAT: u8 = 2;
/// The most parts a state is cut into (1 GiB at the default value limit).
const MAX_PARTS: usize = 1024;
/// Bytes of one state part's header: generation, index, count.
const PART_HEADER: usize = 16;
/// Operations in one event at most (more go in several).
const OPS_PER_EVENT: usize = 64;
/// Value bytes in one event at most (more go in several).
const BYTES_PER_EVENT: usize = 4 << 20;
/// The most cells a pairing mailbox may hold (a welcome carries the group's snapshot, at most
/// 64 MiB).
const MAX_PAIRING_CELLS: usize = 80_000;
/// How long one group's background round may take.
const GROUP_DEADLINE: Duration = Duration::from_secs(300);
/// How often the admin starts a new epoch when no membership change did (seconds).
pub const REKEY_EVERY: u64 = 7 * 24 * 3600;
/// How often pairing looks at the relay.
const PAIRING_POLL: Duration = Duration::from_millis(300);

/// Why a group operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    /// The vault refused or failed.
    #[error(transparent)]
    Vault(#[from] tresor::Error),
    /// The relay could not be reached, refused, or lied.
    #[error(transparent)]
    Relay(#[from] RelayError),
    /// The member's own rules refused.
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// Pairing failed.
    #[error(transparent)]
    Pair(#[from] PairError),
    /// No group shares this prefix.
    #[error("no sync group shares {0}")]
    NoGroup(String),
    /// No member of the group has an id starting so.
    #[error("no member of the group is named {0} here or has an id starting with it")]
    NoMember(String),
    /// This vault's state of the group is older than what it already sent (see
    /// [`crate::peer::Peer::stale`]).
    #[error(
        "this vault's sync state for {0}/ is older than what it already sent to the group (restored from a backup, \
         or another copy of this vault syncs too): it sends nothing, so as never to sign two events at one place; \
         `tresor share leave {0}` here, then join again with a new invitation"
    )]
    Stale(String),
    /// No KOI peer of that id for that folder.
    #[error("no KOI peer {0} shares {1}/")]
    NoPeer(String, String),
    /// The operation is refused as asked (why says which rule).
    #[error("{0}")]
    Refused(String),
    /// The group's state in the vault is malformed or changed while it was read.
    #[error("the sync group's state in the vault {0}")]
    State(&'static str),
    /// Another sync of this group ran at the same time and saved first, or the vault changed
    /// under the folder during the round: nothing of this one was kept or sent.
    #[error(
        "another sync of {0} ran at the same time, or a secret there changed during it: nothing of this one was \
         kept or sent (run it again)"
    )]
    Busy(String),
    /// The pairing words were not confirmed.
    #[error(
        "the words were not confirmed: nothing was shared (if they differed, someone may be in the middle: make \
         a new invitation)"
    )]
    NotConfirmed,
    /// The other side declined: its person said the words differ, or it could not join.
    #[error(
        "the other side declined (its words differed, or it cannot join: it says why): nothing was shared; if the \
         words differed, someone may be in the middle: make a new invitation"
    )]
    Declined,
    /// Nobody answered in time.
    #[error("{0}")]
    TimedOut(String),
}

/// A group's record in the vault (see the module documentation).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    format: u8,
    /// The group id.
    pub group: [u8; 32],
    /// Where the shared prefix lands in this vault.
    pub prefix: String,
    /// The relay's URL.
    pub relay: String,
    /// What this vault's identity in the group is derived from.
    label: [u8; 32],
    installation: u32,
    /// When this vault made or joined the group (ms since the Unix epoch).
    pub since_ms: u64,
    /// Names this vault's people gave members (never sent: each vault names them itself).
    names: Vec<(MemberId, String)>,
    /// The vault's version of the record as read (a change checks it is still the current one).
    #[serde(skip)]
    version: u64,
}

impl Record {
    /// A record naming no group (for an error that concerns none).
    fn unknown() -> Record {
        Record {
            format: FORMAT,
            group: [0; 32],
            prefix: String::new(),
            relay: String::new(),
            label: [0; 32],
            installation: 0,
            since_ms: 0,
            names: Vec::new(),
            version: 0,
        }
    }

    /// The name this vault gave `member`, if any.
    pub fn name_of(&self, member: &MemberId) -> Option<&str> {
        self.names.iter().find(|(m, _)| m == member).map(|(_, n)| n.as_str())
    }
}

/// What the vault took in of one path, as of the last round.
#[derive(Clone, Serialize, Deserialize)]
struct Synced {
    /// The vault's version of the path (0: the one the last round wrote, not yet read back).
    version: u64,
    /// The hash of its value.
    hash: [u8; 32],
    /// Hashes of the concurrent versions written into its history.
    kept: Vec<[u8; 32]>,
}

/// What the vault keeps beside the member's state.
#[derive(Serialize, Deserialize)]
struct Stored<'a> {
    format: u8,
    /// Per path relative to the prefix: what the vault took in.
    synced: Vec<(String, Synced)>,
    cursors: Vec<([u8; 32], relay::Cursor)>,
    /// Versions of state parts (part, version) superseded and not yet known destroyed: tried
    /// again at the next save (a crash, or a failure, between a save and its destruction).
    pending: Vec<(u32, u64)>,
    #[serde(with = "borrowed_bytes")]
    peer: &'a [u8],
}

/// [`Stored`] as format 1 kept it: a cursor was a place alone (read as one whose last cell is
/// not known, so its first read is not checked).
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct StoredV1<'a> {
    _format: u8,
    synced: Vec<(String, Synced)>,
    cursors: Vec<([u8; 32], u64)>,
    pending: Vec<(u32, u64)>,
    #[serde(with = "borrowed_bytes")]
    peer: &'a [u8],
}

/// A group loaded from the vault: its record, the member, and the vault's bookkeeping.
pub struct Loaded {
    /// The record.
    pub record: Record,
    /// The member.
    pub peer: Peer,
    synced: BTreeMap<String, Synced>,
    cursors: BTreeMap<[u8; 32], relay::Cursor>,
    /// The version of each part as read: what the next save supersedes, part 0's its
    /// check-and-set (none for a group not saved before).
    versions: Vec<u64>,
    /// Superseded versions of parts not yet known destroyed.
    pending: Vec<(u32, u64)>,
    saved: Zeroizing<Vec<u8>>,
    /// The conflicts `sync/<group>/conflicts` holds (the state's as loaded).
    noted: Vec<Noted>,
}

/// A path in conflict as `get` is told of it: its vault path, a hash of the value shown, and how
/// many concurrent versions are kept beside it.
type Noted = (String, [u8; 32], u64);

/// One round of the group sharing `only`, or of every group of `vault` (the background sync of
/// the agent and the server, `tresor sync`), each through its own relay (`tresor relay` with
/// `http`, a bucket opened with `backend`): each group's report or error.
pub async fn sync_groups(
    vault: &Vault,
    (http, backend): (&reqwest::Client, &tresor_backend::BackendConfig),
    only: Option<&str>,
    actor: &str,
    memo: &mut Memo,
) -> Vec<(Record, Result<Report, ShareError>)> {
    let records = match only {
        Some(prefix) => find(vault, prefix).await.map(|record| vec![record]),
        None => records(vault).await,
    };
    let records = match records {
        Ok(records) => records,
        Err(e) => return vec![(Record::unknown(), Err(e))],
    };
    let mut out = Vec::new();
    for record in records {
        let round = async {
            let relay = RelayClient::connect(&record.relay, http, backend).await?;
            sync(vault, &relay, record.clone(), actor, memo).await
        };
        // One group's relay cannot hold up the others: a round cut short leaves what a crash
        // leaves, and the next one goes on.
        let result = match tokio::time::timeout(GROUP_DEADLINE, round).await {
            Ok(result) => result,
            Err(_) => Err(ShareError::TimedOut(format!(
                "the round took longer than {} s; the next one goes on",
                GROUP_DEADLINE.as_secs()
            ))),
        };
        out.push((record, result));
    }
    out
}

/// What a syncer that runs round after round (the agent, the server, `sync --watch`) remembers
/// between them: per group, the vault's newest commit after a round that changed nothing. While
/// the vault has no newer commit, nothing under the prefix changed, and a round reads (and
/// audits) no names there.
#[derive(Default)]
pub struct Memo(BTreeMap<[u8; 32], u64>);

/// What one round did.
#[derive(Debug, Default)]
pub struct Report {
    /// Paths (in the vault) other members changed, written here.
    pub received: Vec<String>,
    /// Paths (in the vault) changed here, sent to the group.
    pub sent: Vec<String>,
    /// What the relay or a member did that an honest group and relay never do.
    pub warnings: Vec<Warning>,
    /// What went wrong after the round's work was saved (old state versions not destroyed).
    pub problems: Vec<String>,
    /// Paths (in the vault) not carried, and why (the group's limits, or this vault's).
    pub skipped: Vec<(String, &'static str)>,
    /// Paths (in the vault) with concurrent versions: the shown one, and how many others.
    pub conflicts: Vec<(String, usize)>,
    /// Own writes the other members have not all acknowledged yet.
    pub unacknowledged: usize,
    /// Whether this member was removed from the group.
    pub removed: bool,
}

/// Seconds since the Unix epoch: the clock of the group's events.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn record_path(group: &[u8; 32]) -> Result<SecretPath, ShareError> {
    Ok(SecretPath::system(&format!("sync/{}/record", hex::encode(group)))?)
}

/// Where a round notes that the relay refused its upload: the next round sends everything
/// unacknowledged again at once, not a window (`W`) later.
fn unsent_path(group: &[u8; 32]) -> Result<SecretPath, ShareError> {
    Ok(SecretPath::system(&format!("sync/{}/unsent", hex::encode(group)))?)
}

fn conflicts_path(group: &[u8; 32]) -> Result<SecretPath, ShareError> {
    Ok(SecretPath::system(&format!("sync/{}/conflicts", hex::encode(group)))?)
}

/// How many concurrent versions sync keeps beside the value `value` that `path` (a vault path)
/// shows, if it shows one of several (none once a later write settled it, here or by a member).
/// Costs no store round trip while no group of the vault has a conflict.
pub async fn conflict_of(vault: &Vault, path: &str, value: &[u8]) -> Result<Option<u64>, ShareError> {
    let notes: Vec<String> = vault
        .system_entries_seen("sync/")
        .into_iter()
        .map(|e| e.path)
        .filter(|p| p.ends_with("/conflicts"))
        .collect();
    if notes.is_empty() {
        return Ok(None);
    }
    let digest = hash(value);
    for note in notes {
        let note = SecretPath::system(note.trim_start_matches(path::SYSTEM_ROOT).trim_start_matches('/'))?;
        if let SystemEntry::Current(_, bytes) = vault.system_entry(&note, None).await? {
            let noted: Vec<Noted> = postcard::from_bytes(bytes.as_slice())
                .map_err(|_| ShareError::State("holds malformed conflicts"))?;
            if let Some((_, _, others)) = noted.iter().find(|(p, h, _)| p == path && *h == digest) {
                return Ok(Some(*others));
            }
        }
    }
    Ok(None)
}

fn part_path(group: &[u8; 32], n: usize) -> Result<SecretPath, ShareError> {
    Ok(SecretPath::system(&format!("sync/{}/state/{n}", hex::encode(group)))?)
}

/// The actor a member's changes are audited under: `peer <member id>`.
pub fn peer_actor(member: &MemberId) -> String {
    format!("peer {member}")
}

/// A prefix as groups use it: a folder, without slashes around it.
pub fn folder(prefix: &str) -> Result<String, ShareError> {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        return Err(ShareError::Refused(
            "share a folder of the vault, not all of it (give a prefix such as team)".into(),
        ));
    }
    // The path rules decide (a file under it must be a valid path), and the group's: every
    // member's folder leaves room for the group's longest path.
    SecretPath::parse(&format!("{trimmed}/x"))?;
    if trimmed.len() > crate::receive::MAX_PREFIX {
        return Err(ShareError::Refused(format!(
            "a shared folder's name is at most {} bytes (the group's paths take the rest)",
            crate::receive::MAX_PREFIX
        )));
    }
    Ok(trimmed.to_string())
}

/// Every group this vault belongs to.
pub async fn records(vault: &Vault) -> Result<Vec<Record>, ShareError> {
    let mut out = Vec::new();
    for entry in vault.system_entries("sync/").await? {
        if !entry.path.ends_with("/record") {
            continue;
        }
        let path =
            SecretPath::system(entry.path.trim_start_matches(path::SYSTEM_ROOT).trim_start_matches('/'))?;
        if let SystemEntry::Current(version, bytes) = vault.system_entry(&path, None).await? {
            let mut record: Record = postcard::from_bytes(bytes.as_slice())
                .map_err(|_| ShareError::State("holds a malformed record"))?;
            if record.format != FORMAT {
                return Err(ShareError::State("was written by another version of tresor"));
            }
            if path != record_path(&record.group)? {
                return Err(ShareError::State("holds a group's record under another group's name"));
            }
            record.version = version;
            out.push(record);
        }
    }
    out.sort_by(|a, b| a.prefix.cmp(&b.prefix));
    Ok(out)
}

/// The group that shares `prefix`.
pub async fn find(vault: &Vault, prefix: &str) -> Result<Record, ShareError> {
    let wanted = folder(prefix)?;
    records(vault).await?.into_iter().find(|r| r.prefix == wanted).ok_or(ShareError::NoGroup(wanted))
}

/// Refuses `prefix` for a sync group if a group of this vault, or a KOI peer, shares it, a folder
/// above it or one below it.
pub(crate) async fn refuse_overlap(vault: &Vault, prefix: &str) -> Result<(), ShareError> {
    refuse_group_overlap(vault, prefix).await?;
    // Nor a KOI peer's: what the peer wrote there would go to the group as this vault's own
    // writes, and the group's secrets to the peer (found by review: only `koi add` checked).
    for peer in crate::koi::list(vault).await? {
        if overlap(&peer.prefix, prefix) {
            return Err(ShareError::Refused(format!(
                "{prefix} overlaps {}, which the KOI peer {} shares: a sync group's folder is shared with no KOI peer",
                peer.prefix, peer.peer_id
            )));
        }
    }
    Ok(())
}

/// Refuses `prefix` if it is, holds or lies in a folder a sync group shares.
pub(crate) async fn refuse_group_overlap(vault: &Vault, prefix: &str) -> Result<(), ShareError> {
    for record in records(vault).await? {
        if record.prefix == prefix {
            return Err(ShareError::Refused(format!("{prefix} is shared by a sync group already")));
        }
        if overlap(&record.prefix, prefix) {
            return Err(ShareError::Refused(format!(
                "{prefix} overlaps {}, which a sync group shares already",
                record.prefix
            )));
        }
    }
    Ok(())
}

/// Whether folders `a` and `b` are one, or one lies in the other.
fn overlap(a: &str, b: &str) -> bool {
    let (a, b) = (format!("{a}/"), format!("{b}/"));
    a.starts_with(&b) || b.starts_with(&a)
}

async fn identity(vault: &Vault, record: &Record) -> Result<Identity, ShareError> {
    Ok(Identity::from_node(vault.sync_node(record.label, record.installation).await?))
}

/// Loads the group of `record`.
pub async fn load(vault: &Vault, record: Record) -> Result<Loaded, ShareError> {
    // Parts are written in one commit; read apart, they may straddle two: then read again.
    for _ in 0..3 {
        let first = match vault.system_entry(&part_path(&record.group, 0)?, None).await? {
            SystemEntry::Current(version, bytes) => (version, bytes),
            _ => return Err(ShareError::State("has no saved state for the group")),
        };
        let (base, header) = (first.0, part_header(&first.1)?);
        let (generation, index, count) = header;
        if index != 0 || count > MAX_PARTS {
            return Err(ShareError::State("holds a state whose parts are out of order or too many"));
        }
        let mut parts = vec![first.1];
        let mut versions = vec![base];
        let mut torn = false;
        for n in 1..count {
            match vault.system_entry(&part_path(&record.group, n)?, None).await? {
                SystemEntry::Current(version, bytes) if part_header(&bytes)? == (generation, n, count) => {
                    parts.push(bytes);
                    versions.push(version);
                }
                _ => {
                    torn = true;
                    break;
                }
            }
        }
        if torn {
            continue;
        }
        let size: usize = parts.iter().map(|p| p.len() - PART_HEADER).sum();
        let mut saved = Zeroizing::new(Vec::with_capacity(size));
        for part in &parts {
            saved.extend_from_slice(&part.as_slice()[PART_HEADER..]);
        }
        let stored = decode(&saved)?;
        let peer = Peer::restore(identity(vault, &record).await?, stored.peer)?;
        let synced = stored.synced.into_iter().collect();
        let cursors = stored.cursors.into_iter().collect();
        let pending = stored.pending;
        if peer.group() != record.group {
            return Err(ShareError::State("holds the state of another group under this one's name"));
        }
        let mut loaded =
            Loaded { record, peer, synced, cursors, versions, pending, saved, noted: Vec::new() };
        loaded.noted = loaded.noted();
        // The note as the store holds it, by name (no round trip): one missing — a group saved
        // before notes were kept — is written, and one left over is deleted, at the next save.
        let note = conflicts_path(&loaded.record.group)?.to_string();
        let held = vault.system_entries_seen("sync/").iter().any(|e| e.path == note);
        match (held, loaded.noted.is_empty()) {
            (false, false) => loaded.noted.clear(),
            (true, true) => loaded.noted.push((String::new(), [0; 32], 0)),
            _ => {}
        }
        return Ok(loaded);
    }
    Err(ShareError::State("kept changing while it was read"))
}

/// The saved state `saved` (format 1 or [`STATE_FORMAT`]), whole.
fn decode(saved: &[u8]) -> Result<Stored<'_>, ShareError> {
    let (stored, rest) = match saved.first() {
        Some(&FORMAT) => postcard::take_from_bytes::<StoredV1<'_>>(saved).map(|(old, rest)| {
            let cursors =
                old.cursors.into_iter().map(|(m, read)| (m, relay::Cursor { read, last: None })).collect();
            let stored = Stored {
                format: STATE_FORMAT,
                synced: old.synced,
                cursors,
                pending: old.pending,
                peer: old.peer,
            };
            (stored, rest)
        }),
        _ => postcard::take_from_bytes::<Stored<'_>>(saved),
    }
    .map_err(|_| ShareError::State("does not decode"))?;
    if !rest.is_empty() || stored.format != STATE_FORMAT {
        return Err(ShareError::State("was written by another version of tresor"));
    }
    Ok(stored)
}

fn part_header(bytes: &SecretBytes) -> Result<(u64, usize, usize), ShareError> {
    let b = bytes.as_slice();
    if b.len() < PART_HEADER {
        return Err(ShareError::State("holds a part too short to be one"));
    }
    let number = |range: std::ops::Range<usize>| -> u64 {
        b[range].iter().fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte))
    };
    let (generation, index, count) = (number(0..8), number(8..12), number(12..16));
    let index = usize::try_from(index).map_err(|_| ShareError::State("holds a part out of range"))?;
    let count = usize::try_from(count).map_err(|_| ShareError::State("holds a part out of range"))?;
    if count == 0 || index >= count {
        return Err(ShareError::State("holds a part out of range"));
    }
    Ok((generation, index, count))
}

impl Loaded {
    /// A group not saved before: `peer` as `record` names it.
    fn fresh(record: Record, peer: Peer) -> Loaded {
        Loaded {
            record,
            peer,
            synced: BTreeMap::new(),
            cursors: BTreeMap::new(),
            versions: Vec::new(),
            pending: Vec::new(),
            saved: Zeroizing::new(Vec::new()),
            noted: Vec::new(),
        }
    }

    /// The paths in conflict now, each with a hash of the value shown.
    fn noted(&self) -> Vec<Noted> {
        let replica = self.peer.replica();
        replica
            .conflicts()
            .into_iter()
            .filter_map(|(rel, _)| match replica.view(rel) {
                View::Value(value, others) if others > 0 => {
                    Some((format!("{}/{rel}", self.record.prefix), hash(value.as_slice()), others as u64))
                }
                _ => None,
            })
            .collect()
    }

    /// The state, encoded (wiped on drop), with `pending` the versions to destroy.
    fn encode(&self, pending: &[(u32, u64)]) -> Result<Zeroizing<Vec<u8>>, ShareError> {
        let peer = self.peer.save()?;
        let stored = Stored {
            format: STATE_FORMAT,
            synced: self.synced.iter().map(|(p, s)| (p.clone(), s.clone())).collect(),
            cursors: self.cursors.iter().map(|(m, c)| (*m, *c)).collect(),
            pending: pending.to_vec(),
            peer: &peer,
        };
        let size = postcard::experimental::serialized_size(&stored)
            .map_err(|_| ShareError::State("does not encode"))?;
        let mut whole = Zeroizing::new(vec![0u8; size]);
        let used =
            postcard::to_slice(&stored, &mut whole).map_err(|_| ShareError::State("does not encode"))?.len();
        whole.truncate(used);
        Ok(whole)
    }

    /// The state as parts of at most `limit` bytes each, each with its header.
    fn parts(&self, limit: usize, pending: &[(u32, u64)]) -> Result<Vec<Zeroizing<Vec<u8>>>, ShareError> {
        let whole = self.encode(pending)?;
        let body = limit.saturating_sub(PART_HEADER).max(1);
        let count = whole.len().div_ceil(body).max(1);
        if count > MAX_PARTS {
            // Refused before anything is saved or sent: the state stays loadable.
            return Err(ShareError::State(
                "has grown past what it keeps (1,024 parts): raise max_value_size, or share less",
            ));
        }
        let generation =
            u64::from_be_bytes(random_array().map_err(|_| ShareError::State("lacks a random source"))?);
        let parts = (0..count)
            .map(|n| {
                let chunk = whole.get(n * body..((n + 1) * body).min(whole.len())).unwrap_or_default();
                let mut part = Zeroizing::new(Vec::with_capacity(PART_HEADER + chunk.len()));
                part.extend_from_slice(&generation.to_be_bytes());
                part.extend_from_slice(&(n as u32).to_be_bytes());
                part.extend_from_slice(&(count as u32).to_be_bytes());
                part.extend_from_slice(chunk);
                part
            })
            .collect();
        Ok(parts)
    }

    /// The changes that save the state (check-and-set on part 0 as read, or on its absence for a
    /// group not saved before), after `first`, with `pending` the versions to destroy; parts no
    /// longer used are deleted.
    fn save_changes(
        &self,
        vault: &Vault,
        actor: &str,
        mut first: Vec<Change>,
        pending: &[(u32, u64)],
    ) -> Result<Vec<Change>, ShareError> {
        let parts = self.parts(vault.max_value(), pending)?;
        let count = parts.len();
        for (n, part) in parts.into_iter().enumerate() {
            first.push(Change {
                path: part_path(&self.record.group, n)?,
                value: Some(part),
                actor: actor.to_string(),
                expect: (n == 0).then_some(self.versions.first().copied().unwrap_or(0)),
            });
        }
        for n in count..self.versions.len() {
            first.push(Change {
                path: part_path(&self.record.group, n)?,
                value: None,
                actor: actor.to_string(),
                expect: None,
            });
        }
        // What `get` is told of conflicts changes with the state that holds them.
        let noted = self.noted();
        if noted != self.noted {
            let value = match noted.is_empty() {
                true => None,
                false => Some(Zeroizing::new(
                    postcard::to_stdvec(&noted).map_err(|_| ShareError::State("does not encode"))?,
                )),
            };
            first.push(Change {
                path: conflicts_path(&self.record.group)?,
                value,
                actor: actor.to_string(),
                expect: None,
            });
        }
        Ok(first)
    }

    /// Whether the state differs from the one loaded.
    fn changed(&self) -> Result<bool, ShareError> {
        let whole = self.encode(&self.pending)?;
        Ok(whole.as_slice() != self.saved.as_slice())
    }
}

/// Saves the state in one commit with `changes` (see [`Loaded::save_changes`]), then destroys the
/// versions of the state it superseded: they hold epoch keys and one-time keys no longer in use,
/// which a recovery phrase learnt later must not open (forward secrecy). Returns what could not
/// be destroyed.
async fn save(
    vault: &Vault,
    loaded: &Loaded,
    actor: &str,
    changes: Vec<Change>,
) -> Result<Vec<String>, ShareError> {
    let group = &loaded.record.group;
    // What earlier saves left first (a crash or a failure between a save and its destruction).
    let (mut problems, still) = destroy_versions(vault, group, &loaded.pending).await;
    let superseded: Vec<(u32, u64)> =
        loaded.versions.iter().enumerate().map(|(n, v)| (u32::try_from(n).unwrap_or(u32::MAX), *v)).collect();
    // Saved as pending with the new state: destroyed right after, or at the next save.
    let pending: Vec<(u32, u64)> = still.into_iter().chain(superseded.iter().copied()).collect();
    let changes = loaded.save_changes(vault, actor, changes, &pending)?;
    match vault.apply(changes).await {
        Ok(_) => {}
        Err(tresor::Error::Conflict(_)) => return Err(ShareError::Busy(loaded.record.prefix.clone())),
        Err(e) => return Err(e.into()),
    }
    problems.extend(destroy_versions(vault, group, &superseded).await.0);
    Ok(problems)
}

/// Destroys the versions (part, version) of the state of `group`: what could not be destroyed,
/// said and listed.
async fn destroy_versions(
    vault: &Vault,
    group: &[u8; 32],
    versions: &[(u32, u64)],
) -> (Vec<String>, Vec<(u32, u64)>) {
    let mut problems = Vec::new();
    let mut failed = Vec::new();
    for (n, version) in versions {
        let Ok(path) = part_path(group, *n as usize) else { continue };
        match vault.destroy_versions(&path, &[*version]).await {
            Ok(report) if report.complete() => {}
            Ok(_) => problems.push(
                "an old version of the group's state is not wholly gone from the store (`tresor gc` removes what is left)"
                    .to_string(),
            ),
            Err(e) => {
                problems.push(format!("an old version of the group's state could not be destroyed yet: {e}"));
                failed.push((*n, *version));
            }
        }
    }
    (problems, failed)
}

/// Saves a new group (its record and its first state) in one commit; the record's version.
async fn save_new(vault: &Vault, loaded: &Loaded, actor: &str) -> Result<u64, ShareError> {
    let record = postcard::to_stdvec(&loaded.record).map_err(|_| ShareError::State("does not encode"))?;
    let first = vec![Change {
        path: record_path(&loaded.record.group)?,
        value: Some(Zeroizing::new(record)),
        actor: actor.to_string(),
        expect: Some(0),
    }];
    let changes = loaded.save_changes(vault, actor, first, &[])?;
    let versions = vault.apply(changes).await?;
    Ok(versions.first().copied().unwrap_or(1))
}

/// Makes a group that shares `prefix` of this vault through `relay`, with this vault as its
/// only member and admin. What the prefix holds goes to the group at the first sync.
pub async fn create(vault: &Vault, prefix: &str, relay: &str, actor: &str) -> Result<Record, ShareError> {
    let prefix = folder(prefix)?;
    refuse_overlap(vault, &prefix).await?;
    let random = || random_array::<32>().map_err(|_| ShareError::State("lacks a random source"));
    let group = random()?;
    let record = Record {
        format: FORMAT,
        group,
        prefix: prefix.clone(),
        relay: relay.to_string(),
        label: group,
        installation: installation()?,
        since_ms: tresor::model::now_ms(),
        names: Vec::new(),
        version: 0,
    };
    let me = identity(vault, &record).await?;
    let key = Key::generate().map_err(|_| ShareError::State("lacks a random source"))?;
    let members = vec![me.key()];
    let group_state = Group { id: group, admin: me.id(), epoch: 0, members };
    let peer = Peer::new(me, group_state, &key, &prefix, Timing::default(), now())?;
    let loaded = Loaded::fresh(record.clone(), peer);
    let detail = format!(
        "made the sync group {} through {relay}, as its admin {}",
        hex::encode(&group[..8]),
        loaded.peer.id()
    );
    vault.audit_sync(&prefix, &detail).await?;
    let mut record = record;
    record.version = save_new(vault, &loaded, actor).await?;
    Ok(record)
}

/// A random installation number (a hardened SLIP-0010 index): a vault restored from its phrase
/// elsewhere never signs at a place its first copy used.
fn installation() -> Result<u32, ShareError> {
    let bytes: [u8; 4] = random_array().map_err(|_| ShareError::State("lacks a random source"))?;
    Ok(u32::from_be_bytes(bytes) & 0x7fff_ffff)
}

/// One round of sync of the group `record` between `vault` and the relay, at `now`:
///
/// 1. changes made here under the prefix since the last round become the member's events (they
///    have seen only what the vault had taken in);
/// 2. the member reads every mailbox it holds;
/// 3. the changes the other members made are written here — each under its maker's name — in
///    the same commit as the member's new state;
/// 4. only then is anything sent.
pub async fn sync(
    vault: &Vault,
    relay: &RelayClient,
    record: Record,
    actor: &str,
    memo: &mut Memo,
) -> Result<Report, ShareError> {
    let mut loaded = load(vault, record).await?;
    let now = now();
    let mut report = Report::default();
    let prefix = loaded.record.prefix.clone();
    let group = loaded.record.group;
    // A member removed before this round takes nothing more in: its folder is its own again (an
    // edit made there is not undone by the group's last state).
    let removed_before = loaded.peer.is_removed();
    // Fresh: loading read the store.
    let index = vault.log_index();
    let listed: BTreeMap<String, u64> = if memo.0.get(&group) == Some(&index) {
        // No commit since a round that changed nothing: the prefix is as that round saw it.
        loaded.synced.iter().map(|(p, s)| (p.clone(), s.version)).collect()
    } else {
        let folder = format!("{prefix}/");
        vault
            .list(&folder)
            .await?
            .into_iter()
            .filter_map(|e| e.path.strip_prefix(&folder).map(|rel| (rel.to_string(), e.version)))
            .collect()
    };
    // Changes made here since the last round.
    let mut ops = Vec::new();
    if !loaded.peer.is_removed() {
        for (rel, version) in &listed {
            if loaded.synced.get(rel).is_some_and(|s| s.version == *version) {
                continue;
            }
            let value = vault.get(format!("{prefix}/{rel}").as_str(), Some(*version)).await?;
            let put = Op::Put { path: rel.clone(), value };
            if let Some(why) = crate::receive::op_problem(&put) {
                report.skipped.push((format!("{prefix}/{rel}"), why));
                continue;
            }
            let Op::Put { value, .. } = &put else { continue };
            let digest = hash(value.as_slice());
            let known = loaded.synced.get(rel).cloned();
            let same = known.as_ref().is_some_and(|k| k.hash == digest);
            // Written again here (not the copy the last round wrote, version 0): sent even if
            // unchanged while the path is in conflict — writing it again is how one settles it.
            let rewritten = known.as_ref().is_some_and(|k| k.version != 0);
            let kept = known.map(|k| k.kept).filter(|_| same).unwrap_or_default();
            loaded.synced.insert(rel.clone(), Synced { version: *version, hash: digest, kept });
            if !same || (rewritten && loaded.peer.replica().frontier(rel).len() > 1) {
                ops.push(put);
            }
        }
        let gone: Vec<String> = loaded.synced.keys().filter(|p| !listed.contains_key(*p)).cloned().collect();
        for rel in gone {
            loaded.synced.remove(&rel);
            ops.push(Op::Delete { path: rel });
        }
    }
    report.sent = ops.iter().map(|op| format!("{prefix}/{}", op.path())).collect();
    for batch in batches(ops) {
        loaded.peer.write(batch, now)?;
    }
    // Only now what the others sent: a change made here before this round has not seen it, and
    // its event must not claim to have (it would hide a concurrent write instead of keeping both).
    report.warnings = relay::download(&mut loaded.peer, relay, &mut loaded.cursors, now).await?;
    // Members from whom nothing new came for `W`, and events waiting that long for what they
    // cite: an offline member, or a relay hiding one (or forking the group) — told every round.
    if !loaded.peer.is_removed() {
        report.warnings.extend(loaded.peer.silence(now));
    }
    // An older copy of this member (an archive restored, or a copy of the vault syncing too):
    // nothing of this round is saved or sent, so it never signs a place a second time.
    if loaded.peer.stale().is_some() {
        // Unless another round on this vault saved since this one loaded: the event seen is that
        // round's (it signed it, then sent it), and this one has only lost the race.
        let first = part_path(&group, 0)?;
        let known = loaded.versions.first().copied();
        return match vault.system_entry(&first, known).await? {
            SystemEntry::Unchanged(_) => Err(ShareError::Stale(prefix)),
            _ => Err(ShareError::Busy(prefix)),
        };
    }
    // The other members' changes, to write here.
    let mut changes = Vec::new();
    let mut touched = Vec::new();
    // Every path is compared (a hash of each value): what the vault last took in is in `synced`.
    let paths: Vec<String> = match removed_before {
        true => Vec::new(),
        false => loaded.peer.replica().all_paths().map(str::to_string).collect(),
    };
    for rel in paths {
        let full = SecretPath::parse(&format!("{prefix}/{rel}"))?;
        let live = listed.get(&rel).copied().unwrap_or(0);
        let replica = loaded.peer.replica();
        let frontier = replica.frontier(&rel);
        match replica.view(&rel) {
            View::Value(value, _) => {
                let digest = hash(value.as_slice());
                let Some(winner) = frontier.iter().find(|v| v.value.is_some()) else { continue };
                let known = loaded.synced.get(&rel);
                // Concurrent versions go into history (those not there yet), the shown one last.
                let losers: Vec<(&crate::replica::Version, [u8; 32])> = frontier
                    .iter()
                    .filter(|v| !std::ptr::eq(**v, *winner))
                    .filter_map(|v| v.value.as_ref().map(|value| (*v, hash(value.as_slice()))))
                    .collect();
                let new: Vec<&(&crate::replica::Version, [u8; 32])> = losers
                    .iter()
                    .rev()
                    .filter(|(_, h)| known.is_none_or(|k| k.hash != *h && !k.kept.contains(h)))
                    .collect();
                if known.is_some_and(|k| k.hash == digest) && new.is_empty() {
                    continue;
                }
                if value.len() > vault.max_value() {
                    report
                        .skipped
                        .push((full.to_string(), "a value larger than this vault takes (max_value_size)"));
                    continue;
                }
                let mut expect = Some(live);
                for (version, _) in
                    new.iter().map(|(v, h)| (*v, h)).chain(std::iter::once((*winner, &digest)))
                {
                    let Some(v) = version.value.as_ref().filter(|v| v.len() <= vault.max_value()) else {
                        continue;
                    };
                    changes.push(Change {
                        path: full.clone(),
                        value: Some(Zeroizing::new(v.as_slice().to_vec())),
                        actor: peer_actor(&version.member),
                        expect: expect.take(),
                    });
                }
                let kept = losers.iter().map(|(_, h)| *h).collect();
                touched.push((rel.clone(), Some(Synced { version: 0, hash: digest, kept })));
            }
            View::Deleted => {
                if live == 0 {
                    loaded.synced.remove(&rel);
                    continue;
                }
                let by = frontier.first().map_or_else(|| "peer".to_string(), |v| peer_actor(&v.member));
                changes.push(Change { path: full, value: None, actor: by, expect: Some(live) });
                touched.push((rel.clone(), None));
            }
        }
    }
    // The admin starts a new epoch at a regular interval (forward secrecy for the group: the old
    // key goes once everyone moved on).
    if loaded.peer.is_admin() && !loaded.peer.is_removed() && loaded.peer.epoch_age(now) >= REKEY_EVERY {
        loaded.peer.rekey(&[], now)?;
    }
    let remote = changes.len();
    // The last round's upload did not reach the relay: everything unacknowledged goes again now
    // (it counts as sent since then, and would otherwise wait a window).
    let unsent = unsent_path(&group)?;
    let retry = matches!(vault.system_entry(&unsent, None).await?, SystemEntry::Current(..));
    if retry {
        loaded.peer.resend();
    }
    let uploads: Vec<Upload> = loaded.peer.upload(now)?;
    // Version 0 until the next round reads the version the commit gave (and finds the same hash).
    for (rel, synced) in &touched {
        match synced {
            Some(s) => loaded.synced.insert(rel.clone(), s.clone()),
            None => loaded.synced.remove(rel),
        };
    }
    report.received = touched.iter().map(|(rel, _)| format!("{prefix}/{rel}")).collect();
    if remote > 0 || !uploads.is_empty() || loaded.changed()? {
        memo.0.remove(&group);
        report.problems = save(vault, &loaded, actor, changes).await?;
    } else {
        memo.0.insert(group, index);
    }
    if let Err(e) = relay::send(relay, &uploads).await {
        // Saved as sent: noted, so that the next round sends it again. Best effort: the relay's
        // error is what this round reports, and without the note the events go after a window.
        if !uploads.is_empty() {
            let _ = vault.set(&unsent, b"the relay refused the last upload").await;
        }
        return Err(e.into());
    }
    if retry {
        let _ = vault.delete(&unsent).await;
    }
    // As `get`, `status` and `share list` tell them: paths showing a value with others beside it.
    report.conflicts = loaded.noted().into_iter().map(|(path, _, others)| (path, others as usize)).collect();
    report.removed = loaded.peer.is_removed();
    if report.removed {
        // Nothing of its own goes out any more, and nothing will be acknowledged.
        report.sent.clear();
    } else {
        report.unacknowledged = loaded.peer.unacknowledged();
    }
    Ok(report)
}

/// `ops` cut into events of at most [`OPS_PER_EVENT`] operations and [`BYTES_PER_EVENT`] bytes.
fn batches(ops: Vec<Op>) -> Vec<Vec<Op>> {
    let mut out: Vec<Vec<Op>> = Vec::new();
    let mut bytes = 0;
    for op in ops {
        let size = match &op {
            Op::Put { value, .. } => value.len(),
            Op::Delete { .. } => 0,
        };
        if out.last().is_none_or(|b| b.len() >= OPS_PER_EVENT || bytes + size > BYTES_PER_EVENT) {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        if let Some(batch) = out.last_mut() {
            batch.push(op);
        }
    }
    out
}

/// One member as `share members` shows it.
#[derive(Debug)]
pub struct MemberView {
    /// Its id.
    pub id: MemberId,
    /// Whether it is the admin.
    pub admin: bool,
    /// Whether it is this vault.
    pub me: bool,
    /// When something new last came from it (seconds since the Unix epoch).
    pub heard: Option<u64>,
    /// The name this vault gave it.
    pub name: Option<String>,
}

/// A group as this vault last saw it (`share list`, `share members`).
#[derive(Debug)]
pub struct GroupView {
    /// The current epoch's members.
    pub members: Vec<MemberView>,
    /// The current epoch.
    pub epoch: u64,
    /// Whether the admin removed this vault.
    pub removed: bool,
    /// Paths (in the vault) with concurrent versions: the shown one, and how many others.
    pub conflicts: Vec<(String, usize)>,
    /// Own writes not yet acknowledged by every member.
    pub unacknowledged: usize,
}

/// The group of `record` as this vault last saw it.
pub async fn view(vault: &Vault, record: Record) -> Result<GroupView, ShareError> {
    let loaded = load(vault, record).await?;
    let peer = &loaded.peer;
    let me = peer.id();
    let members = peer
        .members()
        .iter()
        .map(MemberKey::id)
        .map(|id| MemberView {
            id,
            admin: id == peer.admin(),
            me: id == me,
            heard: peer.heard_from(&id),
            name: loaded.record.name_of(&id).map(str::to_string),
        })
        .collect();
    Ok(GroupView {
        members,
        epoch: peer.epoch(),
        removed: peer.is_removed(),
        conflicts: loaded.noted().into_iter().map(|(path, _, others)| (path, others as usize)).collect(),
        unacknowledged: peer.unacknowledged(),
    })
}

/// The member of the current epoch whose id starts with `member` (hex), or whose name here is
/// `member`.
fn resolve(loaded: &Loaded, member: &str) -> Result<MemberId, ShareError> {
    let wanted = member.trim().to_ascii_lowercase();
    let ids: Vec<MemberId> = loaded.peer.members().iter().map(MemberKey::id).collect();
    if let Some(named) = ids.iter().find(|id| loaded.record.name_of(id) == Some(member.trim())) {
        return Ok(*named);
    }
    let matching: Vec<MemberId> =
        ids.into_iter().filter(|id| !wanted.is_empty() && hex::encode(id.0).starts_with(&wanted)).collect();
    match matching.as_slice() {
        [one] => Ok(*one),
        [] => Err(ShareError::NoMember(member.to_string())),
        _ => Err(ShareError::Refused(format!(
            "several members have an id starting with {member}: give more of it"
        ))),
    }
}

/// Whether `name` can name a member of the group of `record`: 1 to 64 characters, no control
/// character, not only hex digits (it would read as an id), and no other member's name here.
pub fn check_name(record: &Record, name: &str) -> Result<(), ShareError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ShareError::Refused(
            "a member's name is 1 to 64 characters, none of them control characters".into(),
        ));
    }
    if name.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ShareError::Refused(format!(
            "{name} reads as a member id: give a name with a letter beyond f"
        )));
    }
    if record.names.iter().any(|(_, n)| n == name) {
        return Err(ShareError::Refused(format!("another member is named {name} already")));
    }
    Ok(())
}

/// Names the member `member` (an id or its start, or its name) `name` in this vault's record
/// of the group of `record`: what `share members` shows (names are never sent).
pub async fn rename(
    vault: &Vault,
    record: Record,
    member: &str,
    name: &str,
    actor: &str,
) -> Result<(MemberId, Record), ShareError> {
    let name = name.trim();
    let loaded = load(vault, record).await?;
    let id = resolve(&loaded, member)?;
    let mut record = loaded.record;
    // Names of members no longer in the group go (a removed member's name is free again).
    let current: Vec<MemberId> = loaded.peer.members().iter().map(MemberKey::id).collect();
    record.names.retain(|(m, _)| *m != id && current.contains(m));
    check_name(&record, name)?;
    record.names.push((id, name.to_string()));
    let bytes = postcard::to_stdvec(&record).map_err(|_| ShareError::State("does not encode"))?;
    let change = Change {
        path: record_path(&record.group)?,
        value: Some(Zeroizing::new(bytes)),
        actor: actor.to_string(),
        expect: Some(record.version),
    };
    match vault.apply(vec![change]).await {
        Ok(versions) => record.version = versions.first().copied().unwrap_or(record.version),
        Err(tresor::Error::Conflict(_)) => return Err(ShareError::Busy(record.prefix)),
        Err(e) => return Err(e.into()),
    }
    Ok((id, record))
}

/// Moves this vault's side of the group of `record` to the relay `relay` (every member moves
/// its own: the relay carries nothing the members trust): the relay's cursors start over, and
/// this member's unacknowledged events, and what others lack that it holds, go up again at the
/// next round. Returns what could not be destroyed of the superseded state.
pub async fn move_relay(
    vault: &Vault,
    record: Record,
    relay: &str,
    actor: &str,
) -> Result<Vec<String>, ShareError> {
    let mut loaded = load(vault, record).await?;
    if loaded.record.relay == relay {
        return Err(ShareError::Refused(format!(
            "the group that shares {}/ syncs through {relay} already",
            loaded.record.prefix
        )));
    }
    let before = std::mem::replace(&mut loaded.record.relay, relay.to_string());
    loaded.cursors.clear();
    loaded.peer.resend();
    let bytes = postcard::to_stdvec(&loaded.record).map_err(|_| ShareError::State("does not encode"))?;
    let change = Change {
        path: record_path(&loaded.record.group)?,
        value: Some(Zeroizing::new(bytes)),
        actor: actor.to_string(),
        expect: Some(loaded.record.version),
    };
    let detail = format!("moved the sync group from the relay {before} to {relay}");
    vault.audit_sync(&loaded.record.prefix, &detail).await?;
    save(vault, &loaded, actor, vec![change]).await
}

/// Removes the member whose id starts with `member`, or that this vault named so (the admin only): a new epoch without it,
/// saved, then sent. Returns its id, the paths (in the vault) it could read, to rotate, and what
/// could not be destroyed of the superseded state. It reads nothing from the relay: run a round
/// first ([`sync`], as `share remove` does), so that an older copy of this member learns it is
/// one before it signs the rekey.
pub async fn remove(
    vault: &Vault,
    relay: &RelayClient,
    record: Record,
    member: &str,
    actor: &str,
) -> Result<(MemberId, Vec<String>, Vec<String>), ShareError> {
    let mut loaded = load(vault, record).await?;
    if !loaded.peer.is_admin() {
        return Err(ShareError::Refused("only the group's admin removes members (it made the group)".into()));
    }
    let id = resolve(&loaded, member)?;
    if id == loaded.peer.id() {
        return Err(ShareError::Refused("the admin cannot remove itself".into()));
    }
    // No download first: what came in would be saved without the vault taking it in, and the
    // next round's local changes would claim to have seen it. The member is cut at its last event
    // accepted here; whatever it wrote after is refused everywhere.
    let now = now();
    loaded.peer.rekey(&[id], now)?;
    let prefix = loaded.record.prefix.clone();
    let readable =
        loaded.peer.replica().paths_ever_written().into_iter().map(|p| format!("{prefix}/{p}")).collect();
    let uploads = loaded.peer.upload(now)?;
    // Its name here goes with it (free for another member).
    let mut changes = Vec::new();
    if loaded.record.names.iter().any(|(m, _)| *m == id) {
        let mut record = loaded.record.clone();
        record.names.retain(|(m, _)| *m != id);
        let bytes = postcard::to_stdvec(&record).map_err(|_| ShareError::State("does not encode"))?;
        changes.push(Change {
            path: record_path(&record.group)?,
            value: Some(Zeroizing::new(bytes)),
            actor: actor.to_string(),
            expect: Some(record.version),
        });
    }
    let problems = save(vault, &loaded, actor, changes).await?;
    vault.audit_sync(&loaded.record.prefix, &format!("removed member {id} from the sync group")).await?;
    relay::send(relay, &uploads).await?;
    Ok((id, readable, problems))
}

/// Forgets the group of `record` in this vault: its record is deleted and its state destroyed
/// (the secrets under its prefix stay). Returns this member's id, for the admin to remove, and
/// what could not be destroyed.
pub async fn leave(
    vault: &Vault,
    record: Record,
    actor: &str,
) -> Result<(MemberId, Vec<String>), ShareError> {
    let loaded = load(vault, record).await?;
    vault
        .audit_sync(&loaded.record.prefix, &format!("member {} left the sync group", loaded.peer.id()))
        .await?;
    let mut changes = vec![Change {
        path: record_path(&loaded.record.group)?,
        value: None,
        actor: actor.to_string(),
        expect: None,
    }];
    if !loaded.noted.is_empty() {
        let path = conflicts_path(&loaded.record.group)?;
        changes.push(Change { path, value: None, actor: actor.to_string(), expect: None });
    }
    let unsent = unsent_path(&loaded.record.group)?;
    if matches!(vault.system_entry(&unsent, None).await?, SystemEntry::Current(..)) {
        changes.push(Change { path: unsent, value: None, actor: actor.to_string(), expect: None });
    }
    for (n, version) in loaded.versions.iter().enumerate() {
        let expect = (n == 0).then_some(*version);
        changes.push(Change {
            path: part_path(&loaded.record.group, n)?,
            value: None,
            actor: actor.to_string(),
            expect,
        });
    }
    match vault.apply(changes).await {
        // The keys and values the state held go from the store too.
        Ok(_) => {
            let mut all = loaded.pending.clone();
            all.extend(
                loaded.versions.iter().enumerate().map(|(n, v)| (u32::try_from(n).unwrap_or(u32::MAX), *v)),
            );
            Ok((loaded.peer.id(), destroy_versions(vault, &loaded.record.group, &all).await.0))
        }
        Err(tresor::Error::Conflict(_)) => Err(ShareError::Busy(loaded.record.prefix)),
        Err(e) => Err(e.into()),
    }
}

/// Messages of one side of a pairing, read from the pairing mailbox as they come.
struct Mailbox<'a> {
    invitation: &'a Invitation,
    relay: &'a RelayClient,
    cells: Vec<Vec<u8>>,
    seen: usize,
    sent: u64,
    role: u16,
}

impl Mailbox<'_> {
    async fn send(&mut self, message: &Message) -> Result<(), ShareError> {
        let cells = self.seal(message)?;
        self.upload(&cells).await
    }

    /// The cells of this side's next message (counted as sent once sealed).
    fn seal(&mut self, message: &Message) -> Result<Vec<Cell>, ShareError> {
        let cells = self.invitation.seal(self.role, self.sent + 1, message)?;
        self.sent += 1;
        Ok(cells)
    }

    /// Uploads sealed cells to the pairing mailbox.
    async fn upload(&mut self, cells: &[Cell]) -> Result<(), ShareError> {
        self.relay.upload(&self.invitation.mailbox(), cells).await?;
        Ok(())
    }

    /// The next message of the other side, waiting until `deadline`.
    async fn next(&mut self, deadline: std::time::Instant, waiting_for: &str) -> Result<Message, ShareError> {
        let other = 1 - self.role;
        let mut fresh = true;
        loop {
            let fetched = self.relay.fetch(&self.invitation.mailbox(), self.cells.len() as u64).await?;
            fresh |= !fetched.cells.is_empty();
            let more = !fetched.cells.is_empty()
                && ((self.cells.len() + fetched.cells.len()) as u64) < fetched.length;
            self.cells.extend(fetched.cells);
            if self.cells.len() > MAX_PAIRING_CELLS {
                return Err(
                    PairError::Attack("more cells in the pairing mailbox than a pairing sends").into()
                );
            }
            if more {
                continue;
            }
            if !fresh {
                if std::time::Instant::now() >= deadline {
                    return Err(ShareError::TimedOut(format!(
                        "no {waiting_for} came through the relay in time"
                    )));
                }
                tokio::time::sleep(PAIRING_POLL).await;
                continue;
            }
            fresh = false;
            let theirs: Vec<Message> = self
                .invitation
                .open(self.cells.iter().map(Vec::as_slice))
                .into_iter()
                .filter(|(role, _)| *role == other)
                .map(|(_, m)| m)
                .collect();
            if let Some(message) = theirs.into_iter().nth(self.seen) {
                self.seen += 1;
                return Ok(message);
            }
            if std::time::Instant::now() >= deadline {
                return Err(ShareError::TimedOut(format!("no {waiting_for} came through the relay in time")));
            }
            tokio::time::sleep(PAIRING_POLL).await;
        }
    }
}

/// Invites one new member into the group of `record` (its admin only): `shown` gets the
/// invitation's text to pass on; once the joiner answered, `confirm` gets the words both sides
/// show and says whether the person confirmed they match. Then the joiner is admitted (saved
/// first, then sent). Returns the new member's id, and what could not be destroyed of the
/// superseded state.
pub async fn invite(
    vault: &Vault,
    relay: &RelayClient,
    record: Record,
    actor: &str,
    wait: Duration,
    shown: impl FnOnce(&str),
    confirm: impl FnOnce(&[&str]) -> bool,
) -> Result<(MemberId, Vec<String>), ShareError> {
    let loaded = load(vault, record.clone()).await?;
    if !loaded.peer.is_admin() {
        return Err(ShareError::Refused("only the group's admin invites members (it made the group)".into()));
    }
    let peer = &loaded.peer;
    let offered = (peer.epoch(), peer.members().to_vec());
    let mut creator = Creator::new(peer.group(), peer.key(), peer.epoch(), peer.members().to_vec())?;
    let invitation = Invitation::new(&record.relay)?;
    shown(&invitation.to_text());
    let mut mailbox =
        Mailbox { invitation: &invitation, relay, cells: Vec::new(), seen: 0, sent: 0, role: 0 };
    let deadline = std::time::Instant::now() + wait;
    let (joiner, sas) = loop {
        match mailbox.next(deadline, "answer to the invitation").await? {
            Message::Commit(commitment) => {
                let offer = creator.on_commit(commitment)?;
                mailbox.send(&offer).await?;
            }
            Message::Reveal { keys, nonce } => break creator.on_reveal(keys, nonce)?,
            Message::Declined => return Err(ShareError::Declined),
            _ => return Err(PairError::Attack("a message out of turn").into()),
        }
    };
    if !confirm(&sas.words) {
        mailbox.send(&Message::Declined).await?;
        return Err(ShareError::NotConfirmed);
    }
    match mailbox.next(deadline, "confirmation of the words from the other side").await? {
        Message::Confirmed => {}
        Message::Declined => return Err(ShareError::Declined),
        _ => return Err(PairError::Attack("a message out of turn").into()),
    }
    // The state again (a sync may have run meanwhile), then the admission saved before it is sent.
    let mut loaded = load(vault, record).await?;
    if (loaded.peer.epoch(), loaded.peer.members().to_vec()) != offered {
        mailbox.send(&Message::Declined).await?;
        return Err(ShareError::Refused(
            "the group changed while the invitation waited (a member was admitted or removed): make a new invitation"
                .into(),
        ));
    }
    let now = now();
    let welcome = loaded.peer.admit(joiner, now)?;
    // Sealed before anything is kept: a welcome the pairing cannot carry (a group whose history
    // outgrew it) refuses the admission, and the joiner hears so.
    let welcome = match mailbox.seal(&welcome) {
        Ok(cells) => cells,
        Err(e) => {
            let _ = mailbox.send(&Message::Declined).await;
            return Err(ShareError::Refused(format!(
                "the welcome cannot be sent ({e}); nobody was admitted"
            )));
        }
    };
    let uploads = loaded.peer.upload(now)?;
    let problems = save(vault, &loaded, actor, Vec::new()).await?;
    let detail = format!("admitted member {} into the sync group (the words matched)", joiner.id());
    vault.audit_sync(&loaded.record.prefix, &detail).await?;
    if let Err(e) = mailbox.upload(&welcome).await {
        // The joiner stops waiting: told in the welcome's place (most refusals store nothing).
        mailbox.sent -= 1;
        let _ = mailbox.send(&Message::Declined).await;
        return Err(undo_admission(vault, relay, loaded.record, joiner.id(), actor, e).await);
    }
    relay::send(relay, &uploads).await?;
    Ok((joiner.id(), problems))
}

/// The welcome of a member just admitted was not sent (`failed`): the member never learnt the
/// group's keys, and must not stay in it — a member that never answers holds back every write
/// of the group for ever (found by review: a relay refusing one upload left such a member). It is
/// removed again at once, by a rekey of its own; what the failure was is the answer.
async fn undo_admission(
    vault: &Vault,
    relay: &RelayClient,
    record: Record,
    joiner: MemberId,
    actor: &str,
    failed: ShareError,
) -> ShareError {
    let now = now();
    let undone = async {
        // As saved with the admission.
        let mut loaded = load(vault, record).await?;
        loaded.peer.rekey(&[joiner], now)?;
        let uploads = loaded.peer.upload(now)?;
        save(vault, &loaded, actor, Vec::new()).await?;
        let detail = format!("removed member {joiner} again: its welcome could not be sent");
        vault.audit_sync(&loaded.record.prefix, &detail).await?;
        // The relay just failed: what it does not take now goes with the next sync.
        let _ = relay::send(relay, &uploads).await;
        Ok::<_, ShareError>(())
    };
    match undone.await {
        Ok(()) => {
            ShareError::Refused(format!("the welcome could not be sent ({failed}); nobody was admitted"))
        }
        Err(e) => ShareError::Refused(format!(
            "the welcome could not be sent ({failed}), and member {joiner} could not be removed again ({e}): \
             remove it with `tresor share remove`"
        )),
    }
}

/// Checks that this vault can join a group into `prefix` (a folder overlapping no group's, and
/// empty) before anything is sent; the folder as groups name it.
pub async fn joinable(vault: &Vault, prefix: &str) -> Result<String, ShareError> {
    let prefix = folder(prefix)?;
    refuse_overlap(vault, &prefix).await?;
    if !vault.list(&format!("{prefix}/")).await?.is_empty() {
        return Err(ShareError::Refused(format!(
            "{prefix} holds secrets already: join into an empty folder (--as FOLDER)"
        )));
    }
    Ok(prefix)
}

/// Joins the group of `invitation` with this vault's `prefix` (which must hold nothing):
/// `confirm` gets the words both sides show and says whether the person confirmed they match;
/// nothing is taken in before. The group's current secrets are written at the first sync.
pub async fn join(
    vault: &Vault,
    relay: &RelayClient,
    invitation: &Invitation,
    prefix: &str,
    actor: &str,
    wait: Duration,
    confirm: impl FnOnce(&[&str]) -> bool,
) -> Result<Record, ShareError> {
    let prefix = joinable(vault, prefix).await?;
    let label = random_array::<32>().map_err(|_| ShareError::State("lacks a random source"))?;
    let mut record = Record {
        format: FORMAT,
        group: [0; 32],
        prefix: prefix.clone(),
        relay: invitation.relay.clone(),
        label,
        installation: installation()?,
        since_ms: tresor::model::now_ms(),
        names: Vec::new(),
        version: 0,
    };
    // An invitation serves once: a pairing mailbox that holds anything was used (or is in use).
    if relay.fetch(&invitation.mailbox(), 0).await?.length > 0 {
        return Err(ShareError::Refused(
            "this invitation was used already (it serves once): ask for a new one".into(),
        ));
    }
    let me = identity(vault, &record).await?;
    let (mut joiner, commit) = pair::Joiner::new(me.key())?;
    let mut mailbox = Mailbox { invitation, relay, cells: Vec::new(), seen: 0, sent: 0, role: 1 };
    mailbox.send(&commit).await?;
    let deadline = std::time::Instant::now() + wait;
    let Message::Offer(offer) = mailbox.next(deadline, "offer from the group's admin").await? else {
        return Err(PairError::Attack("a message out of turn").into());
    };
    let (reveal, offer, sas) = joiner.on_offer(offer)?;
    if let Some(mine) = records(vault).await?.into_iter().find(|r| r.group == offer.group) {
        mailbox.send(&Message::Declined).await?;
        return Err(ShareError::Refused(format!(
            "this vault is in that group already: its secrets land in {}/",
            mine.prefix
        )));
    }
    mailbox.send(&reveal).await?;
    if !confirm(&sas.words) {
        mailbox.send(&Message::Declined).await?;
        return Err(ShareError::NotConfirmed);
    }
    mailbox.send(&Message::Confirmed).await?;
    let (rekey, snapshot) = match mailbox.next(deadline, "welcome from the group's admin").await? {
        Message::Welcome { rekey, snapshot } => (rekey, snapshot),
        Message::Declined => return Err(ShareError::Declined),
        _ => return Err(PairError::Attack("a message out of turn").into()),
    };
    let peer = Peer::join(me, &offer, &rekey, &snapshot, &prefix, Timing::default(), now())?;
    record.group = offer.group;
    let loaded = Loaded::fresh(record.clone(), peer);
    let detail = format!(
        "joined the sync group {} of admin {} as member {} (the words matched)",
        hex::encode(&offer.group[..8]),
        offer.admin.id(),
        loaded.peer.id()
    );
    vault.audit_sync(&prefix, &detail).await?;
    record.version = save_new(vault, &loaded, actor).await?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synced() -> Vec<(String, Synced)> {
        vec![("a/b".into(), Synced { version: 3, hash: [1; 32], kept: vec![[2; 32]] })]
    }

    #[test]
    fn a_state_saved_before_cursors_kept_their_last_cell_loads_with_its_places() {
        let peer = [7u8; 5];
        let old = StoredV1 {
            _format: FORMAT,
            synced: synced(),
            cursors: vec![([9; 32], 12)],
            pending: vec![(1, 2)],
            peer: &peer,
        };
        let bytes = postcard::to_stdvec(&old).unwrap();
        let stored = decode(&bytes).unwrap();
        assert_eq!(stored.cursors, vec![([9; 32], relay::Cursor { read: 12, last: None })]);
        assert_eq!(stored.pending, vec![(1, 2)]);
        assert_eq!(stored.peer, &peer);
        assert_eq!(stored.synced[0].0, "a/b");
        assert_eq!(stored.synced[0].1.kept, vec![[2; 32]]);
    }

    #[test]
    fn the_saved_state_round_trips_and_anything_else_is_refused() {
        let peer = [7u8; 5];
        let cursors = vec![([9; 32], relay::Cursor { read: 12, last: Some([3; 32]) })];
        let now = Stored { format: STATE_FORMAT, synced: synced(), cursors, pending: vec![], peer: &peer };
        let bytes = postcard::to_stdvec(&now).unwrap();
        assert_eq!(decode(&bytes).unwrap().cursors, now.cursors);
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(decode(&longer), Err(ShareError::State(_))));
        let mut other = bytes.clone();
        other[0] = STATE_FORMAT + 1;
        assert!(matches!(decode(&other), Err(ShareError::State(_))));
        assert!(matches!(decode(&bytes[..bytes.len() - 1]), Err(ShareError::State(_))));
        assert!(matches!(decode(&[]), Err(ShareError::State(_))));
    }
}
