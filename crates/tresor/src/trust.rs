//! Machine-local trust state: what this machine has already seen of each vault.
//!
//! Per location, which vault is there (its id and fingerprint: [`LocationPin`]): another vault
//! served at a known location is refused until the user re-trusts it, and the root a password
//! unwraps must have the pinned fingerprint. Per (vault id, location), the rest below.
//!
//! Kept outside the vault (the store is untrusted), one small JSON file per (vault id, location):
//! the newest commit and audit record seen (sequence and link), the key file generation and the
//! KDF parameters of the last successful unlock. A store that serves less, or something else, is
//! refused. Updates only ever move forward, under an exclusive `flock`. Each state lives in two
//! slot files written in turn, in place ([`TrustStore::write`]): a write never touches the newest
//! slot, so a crash mid-write leaves the previous state readable, and no file is replaced (on
//! ext4 every file freed by a rename makes the next file creations in the vault slower for half
//! a minute, and a busy agent pins after every commit). Failed unlock attempts wait here, in a
//! file of their own, until the next successful unlock seals them into the audit trail.

use crate::chain::Link;
use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::layout::AuditLane;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use tresor_crypto::KdfParams;

/// What this machine has seen of one vault at one location.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrustState {
    /// Newest commit sequence seen.
    pub log_seq: u64,
    /// Its link (hex).
    pub log_link: String,
    /// Newest entry of the main audit lane seen.
    pub audit_seq: u64,
    /// Its link (hex).
    pub audit_link: String,
    /// The audit lane this machine appends to (`main`, or a lane id in hex); `None` until its
    /// first unlock chooses one. Never taken from another machine's export.
    pub lane: Option<String>,
    /// Newest entry seen of every other audit lane, by lane id (hex).
    pub lanes: std::collections::BTreeMap<String, LanePin>,
    /// Newest key file generation seen.
    pub keyfile_generation: u64,
    /// KDF parameters of the newest key file generation unlocked here: `[m_kib, t, p]`.
    pub kdf: Option<[u32; 3]>,
    /// The key file generation those parameters belong to.
    pub kdf_generation: u64,
    /// Newest complete index snapshot seen (its commit sequence number).
    pub snapshot_seq: u64,
}

impl TrustState {
    /// The pinned KDF parameters for a key file of `generation`: a key file of the generation
    /// this machine unlocked must keep its parameters (a newer one, from a password change made
    /// elsewhere, may legitimately lower them).
    pub fn pinned_kdf(&self, generation: u64) -> Option<KdfParams> {
        self.kdf.filter(|_| generation == self.kdf_generation).map(|[m_kib, t, p]| KdfParams { m_kib, t, p })
    }

    /// Records the parameters of key file `generation` (ignored for an older generation, so a
    /// long-lived handle cannot pin stale parameters after a password change).
    pub fn saw_kdf(&mut self, generation: u64, params: &KdfParams) {
        if generation >= self.kdf_generation {
            self.kdf = Some([params.m_kib, params.t, params.p]);
            self.kdf_generation = generation;
        }
    }

    /// Records a newer commit (ignored when not newer).
    pub fn saw_commit(&mut self, seq: u64, link: &Link) {
        if seq > self.log_seq {
            self.log_seq = seq;
            self.log_link = hex::encode(link);
        }
    }

    /// Records a newer complete snapshot (ignored when not newer).
    pub fn saw_snapshot(&mut self, seq: u64) {
        self.snapshot_seq = self.snapshot_seq.max(seq);
    }

    /// Records a newer entry of an audit lane (ignored when not newer).
    pub fn saw_audit(&mut self, lane: AuditLane, seq: u64, link: &Link) {
        let (pinned, pinned_link) = match lane {
            AuditLane::Main => (&mut self.audit_seq, &mut self.audit_link),
            AuditLane::Named(_) => {
                let pin = self.lanes.entry(lane.label()).or_default();
                (&mut pin.seq, &mut pin.link)
            }
        };
        if seq > *pinned {
            *pinned = seq;
            *pinned_link = hex::encode(link);
        }
    }

    /// Records a newer entry of the lane this machine appends to, and makes that lane its own
    /// if it had none.
    pub fn saw_own_audit(&mut self, lane: AuditLane, seq: u64, link: &Link) {
        self.lane.get_or_insert_with(|| lane.label());
        self.saw_audit(lane, seq, link);
    }

    /// The newest entry of `lane` seen here: its sequence number (0: none) and link (hex).
    pub fn audit_pin(&self, lane: AuditLane) -> (u64, &str) {
        match lane {
            AuditLane::Main => (self.audit_seq, &self.audit_link),
            AuditLane::Named(_) => {
                self.lanes.get(&lane.label()).map_or((0, ""), |pin| (pin.seq, pin.link.as_str()))
            }
        }
    }

    /// Every lane with a pin, and its pin.
    pub fn audit_pins(&self) -> Vec<(AuditLane, u64, &str)> {
        let main =
            (self.audit_seq > 0).then_some((AuditLane::Main, self.audit_seq, self.audit_link.as_str()));
        let named = self
            .lanes
            .iter()
            .filter_map(|(label, pin)| Some((AuditLane::from_label(label)?, pin.seq, pin.link.as_str())));
        main.into_iter().chain(named).collect()
    }

    /// The lane this machine appends to, if it has chosen one.
    pub fn own_lane(&self) -> Option<AuditLane> {
        self.lane.as_deref().and_then(AuditLane::from_label)
    }
}

/// The newest entry of an audit lane seen.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LanePin {
    /// Its sequence number.
    pub seq: u64,
    /// Its link (hex).
    pub link: String,
}

/// The vault this machine knows at one location: pinned at first use (trust on first use, said
/// once), by `tresor trust FINGERPRINT` before it, or by `tresor trust import`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocationPin {
    /// The vault id (hex).
    pub vault_id: String,
    /// The vault fingerprint ([`Fingerprint`]'s text form).
    pub fingerprint: String,
    /// How it was pinned: `first use`, `tresor trust`, `import`, `rekey`.
    pub pinned_by: String,
    /// The root era this fingerprint belongs to (1 until the vault is re-keyed).
    #[serde(default = "first_era")]
    pub era: u32,
    /// A re-key this machine started (era and fingerprint of its new root): accepted once that
    /// era is the current one, ignored while it is not (the re-key did not finish).
    #[serde(default)]
    pub pending: Option<PendingEra>,
}

fn first_era() -> u32 {
    1
}

/// A root era a re-key on this machine is about to make current.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingEra {
    /// The new era.
    pub era: u32,
    /// Its root's fingerprint.
    pub fingerprint: String,
}

impl LocationPin {
    /// The pinned fingerprint; `None` if the file holds something unparsable (treated as a
    /// mismatch by the caller, never as "no pin").
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        self.fingerprint.parse().ok()
    }
}

/// What `tresor trust export` writes and `tresor trust import` reads: one vault's pins, so a new
/// machine starts from what a trusted one saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustExport {
    /// Always [`TrustExport::FORMAT`].
    pub format: String,
    /// Where the exporting machine opens the vault (informational: import applies to the
    /// location it is run for).
    pub location: String,
    /// The vault and its fingerprint.
    pub pin: LocationPin,
    /// The newest commit, audit record, key file and snapshot the exporting machine saw.
    pub state: TrustState,
}

impl TrustExport {
    /// The format name.
    pub const FORMAT: &'static str = "tresor-trust-1";
}

/// Where the trust state of root era `era` at `location` is kept: each era's own location (its
/// log starts from nothing), as [`crate::Store::sub`] names it.
pub fn era_location(location: &str, era: u32) -> String {
    if era <= 1 { location.to_string() } else { format!("{location}/{}", crate::layout::era_dir(era)) }
}

/// The most root eras of one vault whose state [`TrustStore::forget_location`] looks for.
const MAX_FORGOTTEN_ERA: u32 = 1 << 16;

/// The first word of a trust-state slot's header line.
const SLOT_MAGIC: &str = "tresor-trust-slot";

/// `O_NONBLOCK` for the state files opened to write: no effect on a regular file, and a FIFO put
/// in one's place fails instead of blocking.
const NONBLOCK: i32 = rustix::fs::OFlags::NONBLOCK.bits() as i32;

/// The largest state file read: a trust state (pins, checkpoints) is a few KiB, the failed
/// attempts a line each.
pub const MAX_STATE_FILE: u64 = 1 << 20;

/// The bytes of the state file at `path` (`None` if there is none). Only a regular file of at
/// most [`MAX_STATE_FILE`] bytes is read: a FIFO or a device put in the state directory would
/// block or never end, a huge file would fill memory.
fn read_state_file(path: &Path) -> Result<Option<Vec<u8>>> {
    match crate::named_file::read_regular(path, MAX_STATE_FILE) {
        // State files hold nothing secret: the bytes leave the wiping buffer as they are.
        Ok(mut bytes) => Ok(Some(std::mem::take(&mut *bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => {
            Err(local_err(path, format!("{e}: not a state file tresor wrote")))
        }
        Err(e) => Err(local_err(path, e)),
    }
}

/// What a slot file holds.
enum Slot {
    /// No such file.
    Absent,
    /// A header or hash that does not check: a write a crash interrupted (or a file changed by
    /// hand).
    Torn,
    /// A state and its generation.
    State(u64, TrustState),
}

/// Reads a slot file: the header line (magic, generation, hash of the JSON after it), then the
/// JSON. Only a header or hash that does not check is [`Slot::Torn`]; a file that cannot be read,
/// or JSON that its own hash vouches for and that does not parse, is an error.
fn read_slot(path: &Path) -> Result<Slot> {
    let Some(bytes) = read_state_file(path)? else { return Ok(Slot::Absent) };
    let Some(newline) = bytes.iter().position(|b| *b == b'\n') else { return Ok(Slot::Torn) };
    let (Ok(header), json) = (std::str::from_utf8(&bytes[..newline]), &bytes[newline + 1..]) else {
        return Ok(Slot::Torn);
    };
    let mut words = header.split(' ');
    let (Some(SLOT_MAGIC), Some(generation), Some(hash), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Ok(Slot::Torn);
    };
    let Ok(generation) = generation.parse::<u64>() else { return Ok(Slot::Torn) };
    // A checksum, not a secret: an ordinary comparison.
    if hash != hex::encode(tresor_crypto::hash(json)) {
        return Ok(Slot::Torn);
    }
    serde_json::from_slice(json).map(|s| Slot::State(generation, s)).map_err(|e| local_err(path, e))
}

/// Reads the state file written before slots (plain JSON, replaced by rename), if there is one.
fn read_legacy(path: &Path) -> Result<Option<TrustState>> {
    match read_state_file(path)? {
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| local_err(path, e)),
        None => Ok(None),
    }
}

/// The directory of trust state files.
#[derive(Clone, Debug)]
pub struct TrustStore {
    dir: PathBuf,
}

fn local_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::LocalState { path: path.to_path_buf(), detail: e.to_string() }
}

impl TrustStore {
    /// Trust state kept in `dir` (created with mode 0700 on first write).
    pub fn new(dir: impl Into<PathBuf>) -> TrustStore {
        TrustStore { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, vault_id: &[u8; 16], location: &str, ext: &str) -> PathBuf {
        let key = tresor_crypto::hash(&[vault_id.as_slice(), location.as_bytes()].concat());
        self.dir.join(format!("{}-{}.{ext}", hex::encode(vault_id), &hex::encode(key)[..16]))
    }

    fn ensure_dir(&self) -> Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| local_err(&self.dir, e))
    }

    fn location_file(&self, location: &str, ext: &str) -> PathBuf {
        let key = tresor_crypto::hash(location.as_bytes());
        self.dir.join(format!("location-{}.{ext}", &hex::encode(key)[..32]))
    }

    /// The vault pinned at `location`, if any.
    pub fn location_pin(&self, location: &str) -> Result<Option<LocationPin>> {
        let path = self.location_file(location, "json");
        match read_state_file(&path)? {
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| local_err(&path, e)),
            None => Ok(None),
        }
    }

    /// Pins `pin` at `location`, replacing any earlier pin.
    pub fn pin_location(&self, location: &str, pin: &LocationPin) -> Result<()> {
        let _lock = self.lock_file(&self.location_file(location, "lock"))?;
        let bytes = serde_json::to_vec_pretty(pin).map_err(|e| local_err(&self.dir, e))?;
        self.write_file(
            &self.location_file(location, "json"),
            &self.location_file(location, "json.tmp"),
            &bytes,
        )
    }

    /// Pins `pin` at `location` unless a pin is already there (first use); returns the pin in
    /// force afterwards and whether it was this one.
    pub fn pin_location_if_absent(&self, location: &str, pin: &LocationPin) -> Result<(LocationPin, bool)> {
        let _lock = self.lock_file(&self.location_file(location, "lock"))?;
        if let Some(existing) = self.location_pin(location)? {
            return Ok((existing, false));
        }
        let bytes = serde_json::to_vec_pretty(pin).map_err(|e| local_err(&self.dir, e))?;
        self.write_file(
            &self.location_file(location, "json"),
            &self.location_file(location, "json.tmp"),
            &bytes,
        )?;
        Ok((pin.clone(), true))
    }

    /// Forgets which vault is at `location` (the next unlock trusts what it finds, and says so);
    /// whether there was a pin.
    pub fn forget_location(&self, location: &str) -> Result<bool> {
        let _lock = self.lock_file(&self.location_file(location, "lock"))?;
        // What this machine saw of the vaults that were here goes with the pin: the location holds
        // another vault now, and their history is not its. Every vault's, not only the pinned
        // one's: a vault made here over an older one left the older one's state, which then
        // named the location as the older vault's once the pin was gone (found by review).
        let mut vaults: Vec<([u8; 16], u32)> = Vec::new();
        if let Some(pin) = self.location_pin(location)? {
            let mut id = [0u8; 16];
            if hex::decode_to_slice(&pin.vault_id, &mut id).is_ok() {
                vaults.push((id, pin.era));
            }
        }
        for id in self.vaults_seen_at(location)? {
            if !vaults.iter().any(|(seen, _)| *seen == id) {
                vaults.push((id, 1));
            }
        }
        for (id, pinned_era) in vaults {
            // Every era up to the pinned one, and on while state files are found past it.
            for era in 1..=MAX_FORGOTTEN_ERA {
                let mut found = false;
                for ext in ["s1", "s0", "json", "failed"] {
                    let path = self.file(&id, &era_location(location, era), ext);
                    match fs::remove_file(&path) {
                        Ok(()) => found = true,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(local_err(&path, e)),
                    }
                }
                if !found && era >= pinned_era {
                    break;
                }
            }
        }
        let path = self.location_file(location, "json");
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(local_err(&path, e)),
        }
    }

    /// The vaults this machine has trust state for at `location` (any root era), from the names
    /// of its state files: how a machine that predates location pins recognises a swapped vault.
    pub fn vaults_seen_at(&self, location: &str) -> Result<Vec<[u8; 16]>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(local_err(&self.dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let name = entry.map_err(|e| local_err(&self.dir, e))?.file_name();
            // A state file of either kind: a slot, or the file from before slots.
            let Some((stem, ext)) = name.to_str().and_then(|n| n.rsplit_once('.')) else { continue };
            if !matches!(ext, "s0" | "s1" | "json") {
                continue;
            }
            let Some((id_hex, _)) = stem.split_once('-') else { continue };
            let mut id = [0u8; 16];
            if hex::decode_to_slice(id_hex, &mut id).is_err() {
                continue;
            }
            if self.file(&id, location, ext).file_name() == Some(name.as_os_str()) && !out.contains(&id) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// This machine's pins for the vault at `location`, for `tresor trust export`.
    pub fn export(&self, location: &str) -> Result<Option<TrustExport>> {
        let Some(pin) = self.location_pin(location)? else { return Ok(None) };
        let mut id = [0u8; 16];
        hex::decode_to_slice(&pin.vault_id, &mut id).map_err(|e| local_err(&self.dir, e))?;
        let mut state = self.load(&id, &era_location(location, pin.era))?;
        // Which lane this machine appends to is its own business.
        state.lane = None;
        Ok(Some(TrustExport { format: TrustExport::FORMAT.into(), location: location.into(), pin, state }))
    }

    /// Takes another machine's pins for the vault at `location`. A different vault or
    /// fingerprint already pinned there is refused (forget it first); a commit or audit record
    /// this machine saw with another link at the same position is a fork. Otherwise every pin
    /// moves forward to the newer of the two.
    pub fn import(&self, location: &str, export: &TrustExport) -> Result<()> {
        if export.format != TrustExport::FORMAT {
            return Err(Error::Invalid(format!("not a tresor trust export (format {:?})", export.format)));
        }
        let fingerprint: Fingerprint = export.pin.fingerprint.parse().map_err(Error::Invalid)?;
        let mut id = [0u8; 16];
        hex::decode_to_slice(&export.pin.vault_id, &mut id)
            .map_err(|_| Error::Invalid("the trust export names no valid vault id".into()))?;
        let theirs = &export.state;
        let lane_links = theirs.lanes.values().map(|pin| &pin.link);
        for link in [&theirs.log_link, &theirs.audit_link].into_iter().chain(lane_links) {
            if !link.is_empty() && (link.len() != 64 || hex::decode(link).is_err()) {
                return Err(Error::Invalid("the trust export holds a malformed link".into()));
            }
        }
        if let Some(pin) = self.location_pin(location)?
            && (pin.vault_id != export.pin.vault_id
                || pin.fingerprint() != Some(fingerprint)
                || pin.era != export.pin.era)
        {
            return Err(Error::Invalid(format!(
                "this machine already pins vault {} (fingerprint {}) at {location}, not the exported one; \
                 `tresor trust forget` first if the location really holds another vault now",
                pin.vault_id, pin.fingerprint
            )));
        }
        let state_location = era_location(location, export.pin.era);
        let ours = self.load(&id, &state_location)?;
        let same_seq_other_link = |a: u64, al: &str, b: u64, bl: &str| a == b && a > 0 && al != bl;
        if same_seq_other_link(ours.log_seq, &ours.log_link, theirs.log_seq, &theirs.log_link) {
            return Err(Error::Fork { kind: crate::ObjectKind::Commit, seq: ours.log_seq });
        }
        for (lane, seq, link) in ours.audit_pins() {
            let (their_seq, their_link) = theirs.audit_pin(lane);
            if same_seq_other_link(seq, link, their_seq, their_link) {
                return Err(Error::Fork { kind: crate::ObjectKind::AuditRecord, seq });
            }
        }
        let pin = LocationPin {
            vault_id: export.pin.vault_id.clone(),
            fingerprint: fingerprint.to_string(),
            pinned_by: "import".into(),
            era: export.pin.era,
            pending: None,
        };
        self.pin_location_if_absent(location, &pin)?;
        let theirs = theirs.clone();
        self.update(&id, &state_location, move |t| {
            if theirs.log_seq > t.log_seq {
                t.log_seq = theirs.log_seq;
                t.log_link = theirs.log_link.clone();
            }
            // Their pins of every lane; never their own lane as ours.
            for (lane, seq, link) in theirs.audit_pins() {
                let mut bytes = [0u8; 32];
                if hex::decode_to_slice(link, &mut bytes).is_ok() {
                    t.saw_audit(lane, seq, &bytes);
                }
            }
            t.keyfile_generation = t.keyfile_generation.max(theirs.keyfile_generation);
            if let Some([m_kib, t_cost, p]) = theirs.kdf {
                t.saw_kdf(theirs.kdf_generation, &KdfParams { m_kib, t: t_cost, p });
            }
            t.saw_snapshot(theirs.snapshot_seq);
        })
        .map(drop)
    }

    fn lock(&self, vault_id: &[u8; 16], location: &str) -> Result<File> {
        self.lock_as(vault_id, location, rustix::fs::FlockOperation::LockExclusive)
    }

    fn lock_as(&self, vault_id: &[u8; 16], location: &str, how: rustix::fs::FlockOperation) -> Result<File> {
        self.lock_file_as(&self.file(vault_id, location, "lock"), how)
    }

    fn lock_file(&self, path: &Path) -> Result<File> {
        self.lock_file_as(path, rustix::fs::FlockOperation::LockExclusive)
    }

    fn lock_file_as(&self, path: &Path, how: rustix::fs::FlockOperation) -> Result<File> {
        self.ensure_dir()?;
        let path = path.to_path_buf();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            // A FIFO in its place fails at once instead of waiting for a reader.
            .custom_flags(NONBLOCK)
            .open(&path)
            .map_err(|e| local_err(&path, e))?;
        rustix::fs::flock(&file, how).map_err(|e| local_err(&path, e))?;
        Ok(file)
    }

    /// The two slot files of a vault's state at a location. Names of their own: the file of
    /// the state written before slots (`…json`) is only ever read, so an older tresor still
    /// running (an agent started before an upgrade) never meets a slot it cannot parse.
    fn slots(&self, vault_id: &[u8; 16], location: &str) -> [PathBuf; 2] {
        [self.file(vault_id, location, "s0"), self.file(vault_id, location, "s1")]
    }

    /// The newest state, read under the caller's lock: the slot holding it (`None`: the state
    /// from before slots, or nothing yet), its generation (0 for those), and the state.
    fn newest(&self, vault_id: &[u8; 16], location: &str) -> Result<(Option<usize>, u64, TrustState)> {
        let mut best: Option<(usize, u64, TrustState)> = None;
        let mut torn = None;
        for (i, path) in self.slots(vault_id, location).iter().enumerate() {
            match read_slot(path)? {
                Slot::State(generation, state) => {
                    if best.as_ref().is_none_or(|(_, g, _)| generation > *g) {
                        best = Some((i, generation, state));
                    }
                }
                Slot::Absent => {}
                Slot::Torn => torn = Some(path.clone()),
            }
        }
        if let Some((slot, generation, state)) = best {
            // One torn slot is a write that a crash interrupted: the other holds the state
            // before it.
            return Ok((Some(slot), generation, state));
        }
        if let Some(path) = torn {
            return Err(local_err(&path, "unreadable: a write was interrupted, or the file was changed"));
        }
        let legacy = read_legacy(&self.file(vault_id, location, "json"))?;
        Ok((None, 0, legacy.unwrap_or_default()))
    }

    /// The state for a vault at a location (default when this machine never saw it). Read under
    /// a shared lock: slots are written in place, so a reader must not meet a write half-way.
    pub fn load(&self, vault_id: &[u8; 16], location: &str) -> Result<TrustState> {
        let _lock = self.lock_as(vault_id, location, rustix::fs::FlockOperation::LockShared)?;
        Ok(self.newest(vault_id, location)?.2)
    }

    /// Updates the state under the lock; `f` sees the current state and changes it.
    pub fn update(
        &self,
        vault_id: &[u8; 16],
        location: &str,
        f: impl FnOnce(&mut TrustState),
    ) -> Result<TrustState> {
        let _lock = self.lock(vault_id, location)?;
        let (slot, generation, mut state) = self.newest(vault_id, location)?;
        let before = state.clone();
        f(&mut state);
        if state != before {
            self.write(vault_id, location, &state, (slot, generation))?;
        }
        Ok(state)
    }

    /// Replaces the state outright (after an explicit `import`, which the user asked for).
    pub fn reset(&self, vault_id: &[u8; 16], location: &str, state: &TrustState) -> Result<()> {
        let _lock = self.lock(vault_id, location)?;
        // Replacing the state outright: a damaged one is replaced too.
        let newest =
            self.newest(vault_id, location).map_or((None, 0), |(slot, generation, _)| (slot, generation));
        self.write(vault_id, location, state, newest)
    }

    /// Writes `state` (the caller holds the lock) into the slot that does not hold the newest
    /// state (`newest`: that slot and its generation, as the caller read them), in place, under
    /// the next generation: its header line carries the generation and a hash of the JSON below
    /// it, so a slot torn by a crash reads as torn, never as a state. The data is fsynced before
    /// the lock is released; the directory is not (losing a slot's creation leaves an older
    /// state, which only weakens detection).
    fn write(
        &self,
        vault_id: &[u8; 16],
        location: &str,
        state: &TrustState,
        (newest, generation): (Option<usize>, u64),
    ) -> Result<()> {
        self.ensure_dir()?;
        let (target, generation) = (newest.map_or(0, |slot| 1 - slot), generation + 1);
        let path = &self.slots(vault_id, location)[target];
        let json = serde_json::to_vec_pretty(state).map_err(|e| local_err(path, e))?;
        let mut bytes =
            format!("{SLOT_MAGIC} {generation} {}\n", hex::encode(tresor_crypto::hash(&json))).into_bytes();
        bytes.extend_from_slice(&json);
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| local_err(path, e))?;
        rustix::io::pwrite(&f, &bytes, 0)
            .map_err(std::io::Error::from)
            .and_then(|n| if n == bytes.len() { Ok(()) } else { Err(std::io::ErrorKind::WriteZero.into()) })
            .and_then(|()| f.set_len(bytes.len() as u64))
            .and_then(|()| f.sync_data())
            .map_err(|e| local_err(path, e))
    }

    fn write_file(&self, path: &Path, tmp: &Path, bytes: &[u8]) -> Result<()> {
        self.ensure_dir()?;
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(tmp)
            .map_err(|e| local_err(tmp, e))?;
        f.write_all(bytes).map_err(|e| local_err(tmp, e))?;
        // The new contents reach the disk before the rename can: after a crash the file is the old
        // state or the new one, never a torn one. The directory is not fsynced: losing the rename
        // leaves an older state, which only ever weakens detection, never raises a false alarm.
        f.sync_data().map_err(|e| local_err(tmp, e))?;
        fs::rename(tmp, path).map_err(|e| local_err(path, e))
    }

    /// Remembers a failed unlock attempt (its time) until the next successful unlock.
    pub fn record_failed_attempt(&self, vault_id: &[u8; 16], location: &str, time_ms: u64) -> Result<()> {
        let _lock = self.lock(vault_id, location)?;
        let path = self.file(vault_id, location, "failed");
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(NONBLOCK)
            .open(&path)
            .map_err(|e| local_err(&path, e))?;
        writeln!(f, "{time_ms}").and_then(|()| f.sync_all()).map_err(|e| local_err(&path, e))
    }

    /// The pending failed attempts (times), without removing them.
    pub fn failed_attempts(&self, vault_id: &[u8; 16], location: &str) -> Result<Vec<u64>> {
        let path = self.file(vault_id, location, "failed");
        let Some(bytes) = read_state_file(&path)? else { return Ok(Vec::new()) };
        Ok(String::from_utf8_lossy(&bytes).lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    /// Forgets the pending failed attempts (once they are sealed into the audit trail).
    pub fn clear_failed_attempts(&self, vault_id: &[u8; 16], location: &str) -> Result<()> {
        let _lock = self.lock(vault_id, location)?;
        let path = self.file(vault_id, location, "failed");
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(local_err(&path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_a_fifo_or_a_huge_file_in_the_state_directory_hung_or_filled_memory() {
        let dir = tempfile::tempdir().unwrap();
        let store = TrustStore::new(dir.path());
        let id = [7u8; 16];
        // A FIFO where the failed attempts are kept: reading and appending fail at once.
        let failed = store.file(&id, "loc", "failed");
        let fifo = |path: &Path| {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                path,
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o600),
                0,
            )
            .unwrap()
        };
        fifo(&failed);
        let e = store.failed_attempts(&id, "loc").unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        assert!(store.record_failed_attempt(&id, "loc", 1).is_err());
        fs::remove_file(&failed).unwrap();
        // A huge file: refused unread past the limit, and named.
        let big = File::create(&failed).unwrap();
        big.set_len(MAX_STATE_FILE + 1).unwrap();
        let e = store.failed_attempts(&id, "loc").unwrap_err().to_string();
        assert!(e.contains("larger than 1048576 bytes"), "{e}");
        assert!(e.contains(&failed.display().to_string()), "{e}");
        // A FIFO as a location pin.
        let pin = store.location_file("loc", "json");
        fifo(&pin);
        let e = store.location_pin("loc").unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        // The lock file: a FIFO there fails instead of waiting for a reader.
        let lock = store.file(&id, "loc", "lock");
        let _ = fs::remove_file(&lock);
        fifo(&lock);
        assert!(store.record_failed_attempt(&id, "loc", 1).is_err());
    }

    #[test]
    fn updates_only_move_forward_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let ts = TrustStore::new(dir.path().join("trust"));
        let id = [4u8; 16];
        assert_eq!(ts.load(&id, "loc").unwrap(), TrustState::default());
        ts.update(&id, "loc", |s| s.saw_commit(5, &[1; 32])).unwrap();
        ts.update(&id, "loc", |s| s.saw_commit(3, &[2; 32])).unwrap();
        let s = ts.load(&id, "loc").unwrap();
        assert_eq!((s.log_seq, s.log_link.clone()), (5, hex::encode([1u8; 32])));
        assert_eq!(ts.load(&id, "other").unwrap().log_seq, 0, "locations are kept apart");
    }

    /// Updates alternate between the two slots, in place: the files keep their inodes (no
    /// file is freed per pin), and only the slots and the lock exist.
    #[test]
    fn updates_write_the_two_slots_in_turn_in_place() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let ts = TrustStore::new(dir.path());
        let id = [4u8; 16];
        ts.update(&id, "l", |s| s.saw_commit(1, &[1; 32])).unwrap();
        ts.update(&id, "l", |s| s.saw_commit(2, &[2; 32])).unwrap();
        let [a, b] = ts.slots(&id, "l");
        let inodes = (fs::metadata(&a).unwrap().ino(), fs::metadata(&b).unwrap().ino());
        for seq in 3..20 {
            ts.update(&id, "l", |s| s.saw_commit(seq, &[seq as u8; 32])).unwrap();
        }
        assert_eq!((fs::metadata(&a).unwrap().ino(), fs::metadata(&b).unwrap().ino()), inodes);
        assert_eq!(ts.load(&id, "l").unwrap().log_seq, 19);
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(
            names.iter().all(|n| n.ends_with(".s0") || n.ends_with(".s1") || n.ends_with(".lock")),
            "{names:?}"
        );
        assert_eq!(ts.vaults_seen_at("l").unwrap(), vec![id]);
    }

    /// A write torn by a crash damages only the slot it was writing: the other one, the state
    /// before it, is what loads. Both torn is an error, not a fresh start; so is a slot whose
    /// hash checks but whose JSON does not parse.
    #[test]
    fn fail_a_torn_slot_leaves_the_state_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let ts = TrustStore::new(dir.path());
        let id = [4u8; 16];
        for seq in 1..=3 {
            ts.update(&id, "l", |s| s.saw_commit(seq, &[seq as u8; 32])).unwrap();
        }
        // Generation 3 went to the first slot; tear it (a crash after part of its write).
        let [a, b] = ts.slots(&id, "l");
        let newest = fs::read(&a).unwrap();
        fs::write(&a, &newest[..newest.len() / 2]).unwrap();
        assert_eq!(ts.load(&id, "l").unwrap().log_seq, 2);
        // The next write goes to the torn slot, not over the good one.
        ts.update(&id, "l", |s| s.saw_commit(4, &[4; 32])).unwrap();
        assert_eq!(ts.load(&id, "l").unwrap().log_seq, 4);
        assert!(fs::read(&b).unwrap().starts_with(SLOT_MAGIC.as_bytes()));
        // One changed byte in the JSON: the hash no longer matches.
        let mut bytes = fs::read(&a).unwrap();
        let at = bytes.len() - 3;
        bytes[at] ^= 1;
        fs::write(&a, &bytes).unwrap();
        assert_eq!(ts.load(&id, "l").unwrap().log_seq, 2, "the other slot holds generation 2");
        fs::write(&b, b"garbage").unwrap();
        assert!(matches!(ts.load(&id, "l"), Err(Error::LocalState { .. })));
        // A header and hash that check over JSON that is not a state: an error, not "torn".
        let json = b"[1, 2]";
        let header = format!("{SLOT_MAGIC} 9 {}\n", hex::encode(tresor_crypto::hash(json)));
        fs::write(&b, [header.as_bytes(), json].concat()).unwrap();
        assert!(matches!(ts.load(&id, "l"), Err(Error::LocalState { .. })));
    }

    /// A state file written before slots (plain JSON, replaced by rename) is read, never written:
    /// the next write goes to a slot, and an older tresor still reads its own file.
    #[test]
    fn a_state_file_from_before_slots_is_read_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let ts = TrustStore::new(dir.path());
        let id = [4u8; 16];
        let mut old = TrustState::default();
        old.saw_commit(7, &[7; 32]);
        let legacy = ts.file(&id, "l", "json");
        fs::write(&legacy, serde_json::to_vec_pretty(&old).unwrap()).unwrap();
        assert_eq!(ts.load(&id, "l").unwrap(), old);
        assert_eq!(ts.vaults_seen_at("l").unwrap(), vec![id]);
        ts.update(&id, "l", |s| s.saw_commit(8, &[8; 32])).unwrap();
        assert_eq!(serde_json::from_slice::<TrustState>(&fs::read(&legacy).unwrap()).unwrap(), old);
        let [a, _] = ts.slots(&id, "l");
        assert!(fs::read(&a).unwrap().starts_with(SLOT_MAGIC.as_bytes()));
        assert_eq!(ts.load(&id, "l").unwrap().log_seq, 8);
        assert!(ts.forget_location("l").is_ok());
    }

    #[test]
    fn failed_attempts_accumulate_and_clear() {
        let dir = tempfile::tempdir().unwrap();
        let ts = TrustStore::new(dir.path());
        let id = [4u8; 16];
        ts.record_failed_attempt(&id, "l", 10).unwrap();
        ts.record_failed_attempt(&id, "l", 20).unwrap();
        assert_eq!(ts.failed_attempts(&id, "l").unwrap(), vec![10, 20]);
        ts.clear_failed_attempts(&id, "l").unwrap();
        assert!(ts.failed_attempts(&id, "l").unwrap().is_empty());
    }
}
