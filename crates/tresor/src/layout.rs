//! Object names: the only structure of a vault the store can see.
//!
//! Names carry sequence numbers, generations, epochs and random ids — never a secret's name.
//! Numbers are zero-padded so that lexicographic listing is numeric order.

/// Prefix of key file generations.
pub const KEYFILE_DIR: &str = "keyfile";
/// Prefix of commits.
pub const LOG_DIR: &str = "log";
/// Prefix of audit records.
pub const AUDIT_DIR: &str = "audit";
/// Prefix of wrapped epoch keys.
pub const EPOCH_DIR: &str = "epoch";
/// Prefix of value blobs.
pub const BLOB_DIR: &str = "blob";
/// Prefix of index snapshots.
pub const SNAPSHOT_DIR: &str = "snap";

/// The key file of generation `generation`.
pub fn keyfile(generation: u64) -> String {
    format!("{KEYFILE_DIR}/{generation:020}")
}

/// The commit with sequence number `seq`.
pub fn commit(seq: u64) -> String {
    format!("{LOG_DIR}/{seq:020}")
}

/// The audit record with sequence number `seq` in the main lane.
pub fn audit(seq: u64) -> String {
    format!("{AUDIT_DIR}/{seq:020}")
}

/// One lane of the audit trail. The *main* lane (`audit/<seq>`) is written by the machine that
/// created the vault (and by every machine of a vault made before lanes existed); every other
/// machine appends to a lane of its own (`audit/<id>/<seq>`, 8 random bytes in hex), chosen at its
/// first unlock, so writers on one store never race for one head. See ARCHITECTURE.md, "Audit
/// lanes".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuditLane {
    /// `audit/<seq>`.
    Main,
    /// `audit/<id>/<seq>`.
    Named([u8; 8]),
}

impl AuditLane {
    /// The directory of the lane's entries (no trailing slash).
    pub fn dir(self) -> String {
        match self {
            AuditLane::Main => AUDIT_DIR.to_string(),
            AuditLane::Named(id) => format!("{AUDIT_DIR}/{}", hex::encode(id)),
        }
    }

    /// Entry `seq` of the lane.
    pub fn entry(self, seq: u64) -> String {
        match self {
            AuditLane::Main => audit(seq),
            AuditLane::Named(id) => format!("{AUDIT_DIR}/{}/{seq:020}", hex::encode(id)),
        }
    }

    /// The lane's id as `trust` files and `tresor audit --json` show it: `main` or 16 hex digits.
    pub fn label(self) -> String {
        match self {
            AuditLane::Main => "main".to_string(),
            AuditLane::Named(id) => hex::encode(id),
        }
    }

    /// The lane a [`AuditLane::label`] names.
    pub fn from_label(label: &str) -> Option<AuditLane> {
        if label == "main" {
            return Some(AuditLane::Main);
        }
        parse_lane_id(label).map(AuditLane::Named)
    }
}

/// A lane id: exactly 16 lowercase hex digits.
fn parse_lane_id(hex_id: &str) -> Option<[u8; 8]> {
    if hex_id.len() != 16 || !hex_id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    let mut id = [0u8; 8];
    hex::decode_to_slice(hex_id, &mut id).ok()?;
    Some(id)
}

/// `(lane, seq)` of an audit entry's name, if it is one of ours.
pub fn parse_audit(name: &str) -> Option<(AuditLane, u64)> {
    if let Some(seq) = parse_seq(name, AUDIT_DIR) {
        return Some((AuditLane::Main, seq));
    }
    let (id, _) = name.strip_prefix(AUDIT_DIR)?.strip_prefix('/')?.split_once('/')?;
    let lane = AuditLane::Named(parse_lane_id(id)?);
    Some((lane, parse_seq(name, &lane.dir())?))
}

/// The wrapped data key of `epoch`.
pub fn epoch_key(epoch: u32) -> String {
    format!("{EPOCH_DIR}/{epoch:010}")
}

/// `epoch` of a wrapped epoch key's name, if it is one of ours (exactly 10 digits).
pub fn parse_epoch_key(name: &str) -> Option<u32> {
    parse_number(name.strip_prefix(EPOCH_DIR)?.strip_prefix('/')?)
}

/// A 32-bit number written with exactly 10 digits (epochs, root eras).
fn parse_number(digits: &str) -> Option<u32> {
    (digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok())?
}

/// The directory of `epoch`'s value blobs (`blob/<epoch>`, no trailing slash).
pub fn blob_dir(epoch: u32) -> String {
    format!("{BLOB_DIR}/{epoch:010}")
}

/// A value blob of `epoch` with random id `id`.
pub fn blob(epoch: u32, id: &[u8; 16]) -> String {
    format!("{}/{}", blob_dir(epoch), hex::encode(id))
}

/// `(epoch, id)` of a value blob's name, if it is one of ours.
pub fn parse_blob(name: &str) -> Option<(u32, [u8; 16])> {
    let (epoch, id) = name.strip_prefix(BLOB_DIR)?.strip_prefix('/')?.split_once('/')?;
    if epoch.len() != 10 || !epoch.bytes().all(|b| b.is_ascii_digit()) || id.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    hex::decode_to_slice(id, &mut bytes).ok()?;
    (hex::encode(bytes) == id).then_some((epoch.parse().ok()?, bytes))
}

/// Part `part` (of `parts`) of the index snapshot taken at commit `seq`.
pub fn snapshot(seq: u64, part: u32, parts: u32) -> String {
    format!("{SNAPSHOT_DIR}/{seq:020}-{part:05}-{parts:05}")
}

/// `(seq, part, parts)` of a snapshot part's name, if it is one of ours (`part < parts`).
pub fn parse_snapshot(name: &str) -> Option<(u64, u32, u32)> {
    let rest = name.strip_prefix(SNAPSHOT_DIR)?.strip_prefix('/')?;
    let digits = |s: &str, n: usize| (s.len() == n && s.bytes().all(|b| b.is_ascii_digit())).then_some(());
    let (seq, rest) = rest.split_once('-')?;
    let (part, parts) = rest.split_once('-')?;
    digits(seq, 20)?;
    digits(part, 5)?;
    digits(parts, 5)?;
    let (part, parts): (u32, u32) = (part.parse().ok()?, parts.parse().ok()?);
    (part < parts).then_some((seq.parse().ok()?, part, parts))
}

/// Prefix of root era markers (`era/<e>`, empty objects; see ARCHITECTURE.md, root rotation).
pub const ERA_DIR: &str = "era";
/// Prefix under which the objects of root eras 2 and later live (`root/<e>/...`).
pub const ROOT_DIR: &str = "root";

/// The marker of root era `era`.
pub fn era_marker(era: u32) -> String {
    format!("{ERA_DIR}/{era:010}")
}

/// `era` of a root era marker's name, if it is one of ours (exactly 10 digits).
pub fn parse_era_marker(name: &str) -> Option<u32> {
    parse_number(name.strip_prefix(ERA_DIR)?.strip_prefix('/')?)
}

/// The directory of root era `era`'s objects (`root/<era>`; era 1 is the top of the location).
pub fn era_dir(era: u32) -> String {
    format!("{ROOT_DIR}/{era:010}")
}

/// `(era, name within the era)` of an object of a root era ≥ 2.
pub fn parse_era_object(name: &str) -> Option<(u32, &str)> {
    let rest = name.strip_prefix(ROOT_DIR)?.strip_prefix('/')?;
    let (digits, inner) = rest.split_once('/')?;
    Some((parse_number(digits)?, inner))
}

/// Prefix of the create-if-absent probes of `init` and unlock.
pub const PROBE_DIR: &str = "probe";

/// A probe object with random id `id`.
pub fn probe(id: &[u8; 16]) -> String {
    format!("{PROBE_DIR}/{}", hex::encode(id))
}

/// Whether `name` lies in a folder of a vault's layout (its key files, commits, audit trail,
/// epoch keys, blobs, snapshots, eras): what tells an interrupted `init` from other files.
pub fn is_vault_object(name: &str) -> bool {
    matches!(
        name.split('/').next(),
        Some(KEYFILE_DIR | LOG_DIR | AUDIT_DIR | EPOCH_DIR | BLOB_DIR | SNAPSHOT_DIR | ERA_DIR | ROOT_DIR)
    )
}

/// Whether `name` is a probe object's name (`probe/<32 lowercase hex>`).
pub fn is_probe(name: &str) -> bool {
    name.strip_prefix(PROBE_DIR).and_then(|r| r.strip_prefix('/')).is_some_and(|id| {
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Whether `name` has the shape of an object tresor writes (anything else in a store is foreign:
/// reported by `tresor doctor`, never read, counted or deleted).
pub fn is_object_name(name: &str) -> bool {
    if let Some((_, inner)) = parse_era_object(name) {
        return parse_era_object(inner).is_none()
            && parse_era_marker(inner).is_none()
            && is_object_name(inner);
    }
    parse_era_marker(name).is_some()
        || parse_seq(name, KEYFILE_DIR).is_some()
        || parse_seq(name, LOG_DIR).is_some()
        || parse_audit(name).is_some()
        || parse_epoch_key(name).is_some()
        || parse_blob(name).is_some()
        || parse_snapshot(name).is_some()
        || is_probe(name)
}

/// Whether `dir` is a directory tresor writes objects into (`log`, `blob/<epoch>`, `era`, and
/// the same under `root/<era>/`).
pub fn is_object_dir(dir: &str) -> bool {
    let dir = match dir.strip_prefix(ROOT_DIR).and_then(|r| r.strip_prefix('/')) {
        Some(_) => match parse_era_object(dir) {
            Some((_, inner)) => inner,
            None => return false,
        },
        None => dir,
    };
    match dir.split_once('/') {
        Some((BLOB_DIR, epoch)) => parse_number(epoch).is_some(),
        Some((AUDIT_DIR, lane)) => parse_lane_id(lane).is_some(),
        Some(_) => false,
        None => {
            matches!(dir, KEYFILE_DIR | LOG_DIR | AUDIT_DIR | EPOCH_DIR | SNAPSHOT_DIR | PROBE_DIR | ERA_DIR)
        }
    }
}

/// The largest object of each kind tresor reads; the store cannot make a reader allocate more.
pub fn size_limit(name: &str) -> u64 {
    let name = parse_era_object(name).map_or(name, |(_, inner)| inner);
    match name.split('/').next() {
        Some(KEYFILE_DIR) | Some(EPOCH_DIR) => 64 << 10,
        Some(AUDIT_DIR) => 1 << 20,
        // Parts are ~4 MiB of entries; `snapshot::encode` refuses one whose plaintext passes
        // 14 MiB, which sealed (padding ≤ 12 %) stays below this.
        Some(SNAPSHOT_DIR) => 16 << 20,
        // Commits (a large import) and blobs: the envelope limit plus headers and padding slack.
        _ => (tresor_crypto::payload::MAX_PLAINTEXT as u64) * 9 / 8 + (1 << 20),
    }
}

/// The kind of object a name holds.
pub fn kind_of(name: &str) -> crate::ObjectKind {
    use crate::ObjectKind;
    let name = parse_era_object(name).map_or(name, |(_, inner)| inner);
    match name.split('/').next() {
        Some(KEYFILE_DIR) => ObjectKind::KeyFile,
        Some(EPOCH_DIR) => ObjectKind::EpochKey,
        Some(LOG_DIR) => ObjectKind::Commit,
        Some(AUDIT_DIR) => ObjectKind::AuditRecord,
        Some(SNAPSHOT_DIR) => ObjectKind::Snapshot,
        _ => ObjectKind::ValueBlob,
    }
}

/// The number at the end of a sequenced name (`log/000…42` → 42), if it is one of ours.
pub fn parse_seq(name: &str, dir: &str) -> Option<u64> {
    let digits = name.strip_prefix(dir)?.strip_prefix('/')?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn seq_names_roundtrip_and_sort_numerically(a in any::<u64>(), b in any::<u64>()) {
            prop_assert_eq!(parse_seq(&commit(a), LOG_DIR), Some(a));
            prop_assert_eq!(parse_seq(&audit(a), AUDIT_DIR), Some(a));
            prop_assert_eq!(a.cmp(&b), commit(a).cmp(&commit(b)));
        }

        #[test]
        fn audit_entry_names_roundtrip(id in any::<[u8; 8]>(), seq in any::<u64>()) {
            for lane in [AuditLane::Main, AuditLane::Named(id)] {
                prop_assert_eq!(parse_audit(&lane.entry(seq)), Some((lane, seq)));
                prop_assert!(is_object_name(&lane.entry(seq)));
                prop_assert_eq!(AuditLane::from_label(&lane.label()), Some(lane));
            }
            prop_assert!(is_object_dir(&AuditLane::Named(id).dir()));
        }

        #[test]
        fn snapshot_names_roundtrip(seq in any::<u64>(), parts in 1u32..100_000, part in any::<u32>()) {
            let part = part % parts;
            prop_assert_eq!(parse_snapshot(&snapshot(seq, part, parts)), Some((seq, part, parts)));
        }

        #[test]
        fn epoch_key_names_roundtrip(epoch in any::<u32>()) {
            prop_assert_eq!(parse_epoch_key(&epoch_key(epoch)), Some(epoch));
            let dir = format!("{}/", blob_dir(epoch));
            prop_assert!(blob(epoch, &[0; 16]).starts_with(&dir));
        }

        #[test]
        fn blob_names_roundtrip(epoch in any::<u32>(), id in any::<[u8; 16]>()) {
            prop_assert_eq!(parse_blob(&blob(epoch, &id)), Some((epoch, id)));
        }
    }

    #[test]
    fn fail_foreign_names() {
        assert_eq!(parse_seq("log/1", LOG_DIR), None);
        assert_eq!(parse_seq("audit/00000000000000000001", LOG_DIR), None);
        assert_eq!(parse_seq("log/0000000000000000000x", LOG_DIR), None);
        assert_eq!(parse_snapshot(&snapshot(7, 0, 1)), Some((7, 0, 1)));
        assert_eq!(parse_blob("blob/0000000001/00112233445566778899AABBCCDDEEFF"), None);
        assert_eq!(parse_blob("blob/1/00112233445566778899aabbccddeeff"), None);
        assert!(is_probe(&probe(&[0xab; 16])) && is_object_name(&probe(&[1; 16])));
        for bad in ["probe", "probe/x", "probe/../x", "log/1", "blob/0000000001", "snap", "keyfile/1/2"] {
            assert!(!is_object_name(bad), "{bad}");
        }
        for good in [commit(1), audit(2), keyfile(3), epoch_key(4), blob(5, &[6; 16]), snapshot(7, 0, 1)] {
            assert!(is_object_name(&good), "{good}");
            let in_era = format!("{}/{good}", era_dir(2));
            assert!(is_object_name(&in_era), "{in_era}");
            assert_eq!(parse_era_object(&in_era), Some((2, good.as_str())));
        }
        assert_eq!(parse_era_marker(&era_marker(7)), Some(7));
        for bad in [
            "root/2/log/00000000000000000001",
            "root/0000000002/root/0000000003/keyfile/00000000000000000001",
            "era/7",
        ] {
            assert!(!is_object_name(bad), "{bad}");
        }
        for bad in ["epoch/5", "epoch/000000000x", "epoch/00000000001", "blob/0000000001"] {
            assert_eq!(parse_epoch_key(bad), None, "{bad}");
        }
        for bad in
            ["snap/7-0-1", "snap/00000000000000000007-00001-00001", "log/00000000000000000007-00000-00001"]
        {
            assert_eq!(parse_snapshot(bad), None, "{bad}");
        }
    }
}
