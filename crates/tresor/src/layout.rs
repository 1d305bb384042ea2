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

/// The key file of generation `generation`.
pub fn keyfile(generation: u64) -> String {
    format!("{KEYFILE_DIR}/{generation:020}")
}

/// The commit with sequence number `seq`.
pub fn commit(seq: u64) -> String {
    format!("{LOG_DIR}/{seq:020}")
}

/// The audit record with sequence number `seq`.
pub fn audit(seq: u64) -> String {
    format!("{AUDIT_DIR}/{seq:020}")
}

/// The wrapped data key of `epoch`.
pub fn epoch_key(epoch: u32) -> String {
    format!("{EPOCH_DIR}/{epoch:010}")
}

/// A value blob of `epoch` with random id `id`.
pub fn blob(epoch: u32, id: &[u8; 16]) -> String {
    format!("{BLOB_DIR}/{epoch:010}/{}", hex::encode(id))
}

/// The largest object of each kind tresor reads; the store cannot make a reader allocate more.
pub fn size_limit(name: &str) -> u64 {
    match name.split('/').next() {
        Some(KEYFILE_DIR) | Some(EPOCH_DIR) => 64 << 10,
        Some(AUDIT_DIR) => 1 << 20,
        // Commits (a large import) and blobs: the envelope limit plus headers and padding slack.
        _ => (tresor_crypto::payload::MAX_PLAINTEXT as u64) * 9 / 8 + (1 << 20),
    }
}

/// The kind of object a name holds.
pub fn kind_of(name: &str) -> crate::ObjectKind {
    use crate::ObjectKind;
    match name.split('/').next() {
        Some(KEYFILE_DIR) => ObjectKind::KeyFile,
        Some(EPOCH_DIR) => ObjectKind::EpochKey,
        Some(LOG_DIR) => ObjectKind::Commit,
        Some(AUDIT_DIR) => ObjectKind::AuditRecord,
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
    }

    #[test]
    fn fail_foreign_names() {
        assert_eq!(parse_seq("log/1", LOG_DIR), None);
        assert_eq!(parse_seq("audit/00000000000000000001", LOG_DIR), None);
        assert_eq!(parse_seq("log/0000000000000000000x", LOG_DIR), None);
    }
}
