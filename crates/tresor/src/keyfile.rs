//! The key file: slots that each wrap the vault's root secret — password slots (Argon2id) and an
//! unseal-key slot (HKDF of a random 256-bit key, which `tresor server` splits into shares).
//!
//! ```text
//! magic "TRSRKEY1" (8) | vault id (16) | generation u64 BE | slot count u8 | slots | MAC (32)
//! slot: kind u8 | kdf u8 | m_kib u32 | t u32 | p u32 | salt (32) | wrapped root (104)
//! ```
//! A password slot has kind 1 and kdf 1 (Argon2id with its parameters); an unseal-key slot has
//! kind 3 and kdf 2 (HKDF-SHA256 of the key with the salt; the parameters are zero); an empty slot
//! (kind 2, kdf 1, all zeros) is where a removed slot was, so that the slots after it keep their
//! numbers; a slot added later takes the first empty one, and empty slots at the end are dropped. Argon2 would
//! add nothing to a key with full entropy.
//! A slot's associated data is the magic, the vault id and the slot's own header, so a slot can be
//! added or removed without touching the others. Once a slot opens, the MAC (keyed by a key derived
//! from the root secret) proves the whole file — generation and slot list included — unchanged.
//! Parsing is exact (lengths, counts, known ids) and KDF parameters are checked before Argon2 runs;
//! every failure is [`Error::AuthFailed`].

use crate::error::{Error, Result};
use crate::roles::RootKey;
use tresor_crypto::derive::hkdf_sha256;
use tresor_crypto::kdf::SALT_LEN;
use tresor_crypto::wrap::{WRAPPED_LEN, unwrap_key, wrap_key};
use tresor_crypto::{KdfParams, Key, Password, Purpose, derive_kek, derive_key, mac, verify_mac};

const MAGIC: &[u8; 8] = b"TRSRKEY1";
const HEADER_LEN: usize = 8 + 16 + 8 + 1;
const SLOT_LEN: usize = 1 + 1 + 12 + SALT_LEN + WRAPPED_LEN;
const MAC_LEN: usize = 32;
/// Most slots a key file may hold (each password slot may cost one Argon2 run at unlock).
pub const MAX_SLOTS: usize = 8;
const KDF_ARGON2ID: u8 = 1;
const KDF_HKDF: u8 = 2;
/// HKDF `info` of an unseal-key slot's key-encryption key.
const UNSEAL_KEK_LABEL: &[u8] = b"tresor/v1/keyfile/unseal-key";
/// The parameters field of a slot without Argon2.
const NO_PARAMS: KdfParams = KdfParams { m_kib: 0, t: 0, p: 0 };

/// What unlocks a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlotKind {
    /// A password through Argon2id.
    Password,
    /// An empty place, where a removed slot was; skipped when unlocking. (Kind 2 was first
    /// reserved for a recovery slot, which the phrase made unneeded: it encodes the root secret
    /// itself, checked against the key file's MAC.)
    Empty,
    /// A random 256-bit unseal key through HKDF (the server's unseal shares combine into it).
    UnsealKey,
}

impl SlotKind {
    fn id(self) -> u8 {
        match self {
            SlotKind::Password => 1,
            SlotKind::Empty => 2,
            SlotKind::UnsealKey => 3,
        }
    }

    fn kdf_id(self) -> u8 {
        match self {
            SlotKind::UnsealKey => KDF_HKDF,
            SlotKind::Password | SlotKind::Empty => KDF_ARGON2ID,
        }
    }

    /// Whether a slot of this kind opens the vault.
    fn opens(self) -> bool {
        matches!(self, SlotKind::Password | SlotKind::UnsealKey)
    }
}

/// One keyslot.
#[derive(Clone, Debug)]
pub struct Slot {
    /// What unlocks it.
    pub kind: SlotKind,
    /// Argon2id parameters.
    pub params: KdfParams,
    /// Argon2id salt.
    pub salt: [u8; SALT_LEN],
    wrapped: [u8; WRAPPED_LEN],
}

impl Slot {
    fn header(&self) -> Vec<u8> {
        let mut h = Vec::with_capacity(SLOT_LEN - WRAPPED_LEN);
        h.push(self.kind.id());
        h.push(self.kind.kdf_id());
        h.extend_from_slice(&self.params.m_kib.to_be_bytes());
        h.extend_from_slice(&self.params.t.to_be_bytes());
        h.extend_from_slice(&self.params.p.to_be_bytes());
        h.extend_from_slice(&self.salt);
        h
    }

    fn aad(&self, vault_id: &[u8; 16]) -> Vec<u8> {
        [MAGIC.as_slice(), vault_id, &self.header()].concat()
    }
}

/// A parsed key file.
#[derive(Clone, Debug)]
pub struct KeyFile {
    /// The vault it belongs to.
    pub vault_id: [u8; 16],
    /// Its generation: each change of its slots writes generation + 1.
    pub generation: u64,
    /// Its slots.
    pub slots: Vec<Slot>,
    mac: [u8; MAC_LEN],
}

impl KeyFile {
    /// A key file with one password slot wrapping `root`.
    pub fn new(
        vault_id: [u8; 16],
        generation: u64,
        root: &RootKey,
        password: &Password,
        params: KdfParams,
    ) -> Result<KeyFile> {
        let mut kf = KeyFile { vault_id, generation, slots: Vec::new(), mac: [0; MAC_LEN] };
        kf.slots.push(password_slot(&vault_id, root, password, params)?);
        kf.seal_mac(root);
        Ok(kf)
    }

    /// The same vault and root under a new password, as generation + 1: the password slot
    /// `index` (the one that was unlocked) is replaced, every other slot kept.
    pub fn with_new_password(
        &self,
        root: &RootKey,
        index: usize,
        password: &Password,
        params: KdfParams,
    ) -> Result<KeyFile> {
        if self.slots.get(index).is_none_or(|s| s.kind != SlotKind::Password) {
            return Err(Error::Invalid(format!("there is no password slot {index}")));
        }
        let mut slots = self.slots.clone();
        slots[index] = password_slot(&self.vault_id, root, password, params)?;
        Ok(self.next(root, slots))
    }

    /// Generation + 1 with one more password slot, and its number: the first empty slot, or a
    /// new one at the end.
    pub fn with_added_password(
        &self,
        root: &RootKey,
        password: &Password,
        params: KdfParams,
    ) -> Result<(KeyFile, usize)> {
        let mut slots = self.slots.clone();
        let index = place(&mut slots, password_slot(&self.vault_id, root, password, params)?)?;
        Ok((self.next(root, slots), index))
    }

    /// Whether no slot can be added: every one of the [`MAX_SLOTS`] places is taken.
    pub fn is_full(&self) -> bool {
        self.slots.len() >= MAX_SLOTS && self.slots.iter().all(|s| s.kind != SlotKind::Empty)
    }

    /// A key file with one unseal-key slot wrapping `root` (a vault made by `tresor server`'s
    /// `sys/init`, which has no password until one is added).
    pub fn new_unsealed_by(
        vault_id: [u8; 16],
        generation: u64,
        root: &RootKey,
        key: &Key,
    ) -> Result<KeyFile> {
        let mut kf = KeyFile { vault_id, generation, slots: Vec::new(), mac: [0; MAC_LEN] };
        kf.slots.push(unseal_slot(&vault_id, root, key)?);
        kf.seal_mac(root);
        Ok(kf)
    }

    /// Generation + 1 whose unseal-key slot opens with `key`: the one there was is replaced (there
    /// is at most one), or one is added.
    pub fn with_unseal_key(&self, root: &RootKey, key: &Key) -> Result<KeyFile> {
        let mut slots = self.slots.clone();
        let slot = unseal_slot(&self.vault_id, root, key)?;
        match slots.iter().position(|s| s.kind == SlotKind::UnsealKey) {
            Some(index) => slots[index] = slot,
            None => {
                place(&mut slots, slot)?;
            }
        }
        Ok(self.next(root, slots))
    }

    /// Generation + 1 without slot `index`. The last slot that opens the vault (a password or the
    /// unseal key) is never removed: without it only the recovery phrase would.
    pub fn without_slot(&self, root: &RootKey, index: usize) -> Result<KeyFile> {
        if self.slots.get(index).is_none_or(|s| s.kind == SlotKind::Empty) {
            let taken: Vec<String> = (0..self.slots.len())
                .filter(|i| self.slots[*i].kind != SlotKind::Empty)
                .map(|i| i.to_string())
                .collect();
            return Err(Error::Invalid(format!(
                "there is no slot {index}; the slots are {}",
                taken.join(", ")
            )));
        }
        let openers = self.slots.iter().filter(|s| s.kind.opens()).count();
        if self.slots[index].kind.opens() && openers <= 1 {
            return Err(Error::Invalid(match self.slots[index].kind {
                SlotKind::UnsealKey => {
                    format!(
                        "slot {index} holds the unseal key, the last slot that opens the vault: add a password first"
                    )
                }
                _ => format!("slot {index} holds the vault's last password: add another first"),
            }));
        }
        // Emptied in place: the slots after it keep their numbers.
        let mut slots = self.slots.clone();
        slots[index] =
            Slot { kind: SlotKind::Empty, params: NO_PARAMS, salt: [0; SALT_LEN], wrapped: [0; WRAPPED_LEN] };
        while slots.last().is_some_and(|s| s.kind == SlotKind::Empty) {
            slots.pop();
        }
        Ok(self.next(root, slots))
    }

    /// Generation + 1 holding just one password slot: what a recovery with nothing kept writes.
    pub fn with_only_password(
        &self,
        root: &RootKey,
        password: &Password,
        params: KdfParams,
    ) -> Result<KeyFile> {
        KeyFile::new(self.vault_id, self.generation + 1, root, password, params)
    }

    /// Whether `root` is this key file's root secret: it keys the file's MAC. This is how a
    /// recovery phrase is checked against the vault before anything is written.
    pub fn opens_with_root(&self, root: &RootKey) -> bool {
        let mac_key = derive_key(root.key(), &self.vault_id, Purpose::KeyFileMac);
        verify_mac(&mac_key, &[&self.body()], &self.mac)
    }

    /// The weakest KDF parameters any valid password slot uses (component by component): what a
    /// machine pins, so that every slot of a key file whose MAC it checked keeps opening the vault
    /// there, while a store serving weaker parameters later is still refused. `None` without a
    /// password slot.
    pub fn kdf_floor(&self) -> Option<KdfParams> {
        let params = self
            .slots
            .iter()
            .filter(|s| s.kind == SlotKind::Password && s.params.check().is_ok())
            .map(|s| s.params);
        params.reduce(|a, b| KdfParams { m_kib: a.m_kib.min(b.m_kib), t: a.t.min(b.t), p: a.p.min(b.p) })
    }

    fn next(&self, root: &RootKey, slots: Vec<Slot>) -> KeyFile {
        let mut kf =
            KeyFile { vault_id: self.vault_id, generation: self.generation + 1, slots, mac: [0; MAC_LEN] };
        kf.seal_mac(root);
        kf
    }

    fn body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.slots.len() * SLOT_LEN + MAC_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.vault_id);
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.push(self.slots.len() as u8);
        for slot in &self.slots {
            out.extend_from_slice(&slot.header());
            out.extend_from_slice(&slot.wrapped);
        }
        out
    }

    fn seal_mac(&mut self, root: &RootKey) {
        let key = derive_key(root.key(), &self.vault_id, Purpose::KeyFileMac);
        self.mac = mac(&key, &[&self.body()]);
    }

    /// The bytes stored in the key file object.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.body();
        out.extend_from_slice(&self.mac);
        out
    }

    /// Parses a key file exactly; anything malformed is [`Error::AuthFailed`].
    pub fn parse(bytes: &[u8]) -> Result<KeyFile> {
        let bad = || Error::AuthFailed;
        if bytes.len() < HEADER_LEN + SLOT_LEN + MAC_LEN || &bytes[..8] != MAGIC {
            return Err(bad());
        }
        let vault_id: [u8; 16] = bytes[8..24].try_into().map_err(|_| bad())?;
        let generation = u64::from_be_bytes(bytes[24..32].try_into().map_err(|_| bad())?);
        let count = bytes[32] as usize;
        if count == 0 || count > MAX_SLOTS || bytes.len() != HEADER_LEN + count * SLOT_LEN + MAC_LEN {
            return Err(bad());
        }
        let mut slots = Vec::with_capacity(count);
        for raw in bytes[HEADER_LEN..HEADER_LEN + count * SLOT_LEN].chunks_exact(SLOT_LEN) {
            let kind = match raw[0] {
                1 => SlotKind::Password,
                2 => SlotKind::Empty,
                3 => SlotKind::UnsealKey,
                _ => return Err(bad()),
            };
            if raw[1] != kind.kdf_id() {
                return Err(bad());
            }
            let u32_at = |i: usize| -> Result<u32> {
                Ok(u32::from_be_bytes(raw[i..i + 4].try_into().map_err(|_| bad())?))
            };
            let params = KdfParams { m_kib: u32_at(2)?, t: u32_at(6)?, p: u32_at(10)? };
            if kind == SlotKind::UnsealKey && params != NO_PARAMS {
                return Err(bad());
            }
            let salt = raw[14..14 + SALT_LEN].try_into().map_err(|_| bad())?;
            let wrapped = raw[14 + SALT_LEN..].try_into().map_err(|_| bad())?;
            slots.push(Slot { kind, params, salt, wrapped });
        }
        let mac = bytes[bytes.len() - MAC_LEN..].try_into().map_err(|_| bad())?;
        Ok(KeyFile { vault_id, generation, slots, mac })
    }

    /// Opens the root secret with `password`.
    ///
    /// Slot parameters are checked against the floor and ceiling, and against `pinned` (the
    /// parameters of this machine's last successful unlock), before Argon2 runs.
    pub fn unlock(&self, password: &Password, pinned: Option<&KdfParams>) -> Result<(RootKey, KdfParams)> {
        self.unlock_slot(password, pinned).map(|(root, params, _)| (root, params))
    }

    /// [`KeyFile::unlock`], also naming the slot that opened.
    pub fn unlock_slot(
        &self,
        password: &Password,
        pinned: Option<&KdfParams>,
    ) -> Result<(RootKey, KdfParams, usize)> {
        match self.open_slot(password, pinned, &|_| true) {
            SlotOpen::Opened(root, params, index) => Ok((root, params, index)),
            SlotOpen::WrongPassword | SlotOpen::Refused => Err(Error::AuthFailed),
        }
    }

    /// Tries `password` on every password slot whose parameters are acceptable (floor,
    /// ceiling, `pinned`). A root that unwraps counts only if the file's MAC verifies under it
    /// *and* `accept` takes it (the fingerprint this machine pinned); otherwise the remaining
    /// slots are tried as if this one had not opened, so a forged slot that a guessed password
    /// opens costs the same work and ends the same way as a wrong password.
    pub fn open_slot(
        &self,
        password: &Password,
        pinned: Option<&KdfParams>,
        accept: &dyn Fn(&RootKey) -> bool,
    ) -> SlotOpen {
        let mut tried = false;
        for (index, slot) in self.slots.iter().enumerate().filter(|(_, s)| s.kind == SlotKind::Password) {
            if slot.params.check().is_err() || pinned.is_some_and(|p| !slot.params.at_least(p)) {
                continue;
            }
            tried = true;
            let Ok(kek) = derive_kek(password, &slot.salt, &slot.params) else { continue };
            let Ok(root) = unwrap_key(&kek, &slot.aad(&self.vault_id), &slot.wrapped) else {
                continue;
            };
            let root = RootKey::from_key(root);
            if self.opens_with_root(&root) && accept(&root) {
                return SlotOpen::Opened(root, slot.params, index);
            }
        }
        if tried { SlotOpen::WrongPassword } else { SlotOpen::Refused }
    }
}

impl KeyFile {
    /// Tries `key` on the unseal-key slot, as [`KeyFile::open_slot`] tries a password: the root
    /// counts only if the file's MAC verifies under it and `accept` takes it.
    pub fn open_with_unseal_key(&self, key: &Key, accept: &dyn Fn(&RootKey) -> bool) -> SlotOpen {
        let mut tried = false;
        for (index, slot) in self.slots.iter().enumerate().filter(|(_, s)| s.kind == SlotKind::UnsealKey) {
            tried = true;
            let kek = hkdf_sha256(key.expose_secret(), &slot.salt, UNSEAL_KEK_LABEL);
            let Ok(root) = unwrap_key(&kek, &slot.aad(&self.vault_id), &slot.wrapped) else { continue };
            let root = RootKey::from_key(root);
            if self.opens_with_root(&root) && accept(&root) {
                return SlotOpen::Opened(root, NO_PARAMS, index);
            }
        }
        if tried { SlotOpen::WrongPassword } else { SlotOpen::Refused }
    }
}

/// What [`KeyFile::open_slot`] found. Callers show [`Error::AuthFailed`] for both failures; only
/// [`SlotOpen::WrongPassword`] (a password was actually tried) counts as a failed attempt.
pub enum SlotOpen {
    /// The root, the slot's parameters and its index.
    Opened(RootKey, KdfParams, usize),
    /// The password opened no acceptable slot.
    WrongPassword,
    /// No slot could be tried: every one has parameters below the floor or this machine's pin
    /// (the store's doing, not a password guess).
    Refused,
}

/// Puts `slot` in the first empty place of `slots`, or at the end; its number.
fn place(slots: &mut Vec<Slot>, slot: Slot) -> Result<usize> {
    if let Some(index) = slots.iter().position(|s| s.kind == SlotKind::Empty) {
        slots[index] = slot;
        return Ok(index);
    }
    if slots.len() >= MAX_SLOTS {
        return Err(Error::Invalid(format!(
            "the key file already holds {MAX_SLOTS} slots, the most it may; remove one first"
        )));
    }
    slots.push(slot);
    Ok(slots.len() - 1)
}

fn password_slot(
    vault_id: &[u8; 16],
    root: &RootKey,
    password: &Password,
    params: KdfParams,
) -> Result<Slot> {
    params.check().map_err(|_| Error::Invalid("KDF parameters out of the accepted range".into()))?;
    let salt = tresor_crypto::random_array::<SALT_LEN>()?;
    let mut slot = Slot { kind: SlotKind::Password, params, salt, wrapped: [0; WRAPPED_LEN] };
    let kek = derive_kek(password, &salt, &params)?;
    slot.wrapped = wrap_key(&kek, &slot.aad(vault_id), root.key())?;
    Ok(slot)
}

fn unseal_slot(vault_id: &[u8; 16], root: &RootKey, key: &Key) -> Result<Slot> {
    let salt = tresor_crypto::random_array::<SALT_LEN>()?;
    let mut slot = Slot { kind: SlotKind::UnsealKey, params: NO_PARAMS, salt, wrapped: [0; WRAPPED_LEN] };
    let kek = hkdf_sha256(key.expose_secret(), &salt, UNSEAL_KEK_LABEL);
    slot.wrapped = wrap_key(&kek, &slot.aad(vault_id), root.key())?;
    Ok(slot)
}

/// Checks the password rules before anything touches the store.
pub fn check_password_rules(password: &Password) -> Result<()> {
    use secrecy::ExposeSecret;
    let pw = password.expose_secret();
    if pw.is_empty() {
        return Err(Error::PasswordRule("the password is empty".into()));
    }
    if pw.chars().count() < 8 {
        return Err(Error::PasswordRule("the password must be at least 8 characters".into()));
    }
    if pw.trim() == "CHANGEME" {
        return Err(Error::PasswordRule("CHANGEME is a placeholder, not a password".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pw(s: &str) -> Password {
        Password::from(s.to_string())
    }

    fn sample() -> (KeyFile, RootKey) {
        let root = RootKey::generate().unwrap();
        let kf = KeyFile::new([3; 16], 1, &root, &pw("correct horse"), KdfParams::MINIMUM).unwrap();
        (kf, root)
    }

    #[test]
    fn an_unseal_key_opens_its_slot_and_nothing_else_does() {
        let root = RootKey::generate().unwrap();
        let key = Key::generate().unwrap();
        let kf = KeyFile::new_unsealed_by([4; 16], 1, &root, &key).unwrap();
        let kf = KeyFile::parse(&kf.encode()).unwrap();
        assert_eq!(kf.slots[0].kind, SlotKind::UnsealKey);
        let opened = |kf: &KeyFile, key: &Key| match kf.open_with_unseal_key(key, &|_| true) {
            SlotOpen::Opened(r, _, index) => Some((r.key().ct_eq(root.key()), index)),
            _ => None,
        };
        assert_eq!(opened(&kf, &key), Some((true, 0)));
        assert!(matches!(
            kf.open_with_unseal_key(&Key::generate().unwrap(), &|_| true),
            SlotOpen::WrongPassword
        ));
        // A root the caller does not accept (another fingerprint pinned) opens nothing.
        assert!(matches!(kf.open_with_unseal_key(&key, &|_| false), SlotOpen::WrongPassword));
        // No password opens it, and a key opens no password slot.
        assert!(matches!(kf.open_slot(&pw("correct horse"), None, &|_| true), SlotOpen::Refused));
        let (with_pw, pw_root) = sample();
        assert!(matches!(with_pw.open_with_unseal_key(&key, &|_| true), SlotOpen::Refused));
        // Added beside a password, replaced by a new key; the last opener is never removed.
        let both = with_pw.with_unseal_key(&pw_root, &key).unwrap();
        assert_eq!((both.generation, both.slots.len()), (2, 2));
        assert!(both.unlock(&pw("correct horse"), None).is_ok());
        let other = Key::generate().unwrap();
        let replaced = both.with_unseal_key(&pw_root, &other).unwrap();
        assert_eq!(replaced.slots.len(), 2);
        assert!(matches!(replaced.open_with_unseal_key(&key, &|_| true), SlotOpen::WrongPassword));
        assert!(matches!(replaced.open_with_unseal_key(&other, &|_| true), SlotOpen::Opened(..)));
        let key_only = replaced.without_slot(&pw_root, 0).unwrap();
        assert!(matches!(key_only.without_slot(&pw_root, 0), Err(Error::Invalid(_))));
        assert!(kf.without_slot(&root, 0).is_err());
    }

    #[test]
    fn unseal_slots_with_argon2_or_parameters_do_not_parse() {
        let root = RootKey::generate().unwrap();
        let bytes = KeyFile::new_unsealed_by([4; 16], 1, &root, &Key::generate().unwrap()).unwrap().encode();
        let slot = HEADER_LEN;
        let mut argon = bytes.clone();
        argon[slot + 1] = KDF_ARGON2ID;
        assert!(matches!(KeyFile::parse(&argon), Err(Error::AuthFailed)));
        let mut params = bytes.clone();
        params[slot + 5] = 1;
        assert!(matches!(KeyFile::parse(&params), Err(Error::AuthFailed)));
        let mut password_kind = bytes;
        password_kind[slot] = 1;
        assert!(matches!(KeyFile::parse(&password_kind), Err(Error::AuthFailed)));
    }

    #[test]
    fn slots_added_replaced_and_removed() {
        let (kf, root) = sample();
        let (two, index) = kf.with_added_password(&root, &pw("second password"), KdfParams::MINIMUM).unwrap();
        assert_eq!((two.generation, two.slots.len(), index), (2, 2, 1));
        let two = KeyFile::parse(&two.encode()).unwrap();
        assert_eq!(two.unlock_slot(&pw("correct horse"), None).unwrap().2, 0);
        let (opened, _, index) = two.unlock_slot(&pw("second password"), None).unwrap();
        assert!(opened.key().ct_eq(root.key()));
        assert_eq!(index, 1);
        // passwd on slot 1 keeps slot 0.
        let changed = two.with_new_password(&root, 1, &pw("third password"), KdfParams::MINIMUM).unwrap();
        assert!(changed.unlock(&pw("correct horse"), None).is_ok());
        assert!(changed.unlock(&pw("third password"), None).is_ok());
        assert!(matches!(changed.unlock(&pw("second password"), None), Err(Error::AuthFailed)));
        // Removing slot 0 empties it: slot 1 keeps its number; the last password slot is refused.
        let one = KeyFile::parse(&changed.without_slot(&root, 0).unwrap().encode()).unwrap();
        assert_eq!((one.generation, one.slots.len()), (4, 2));
        assert_eq!(one.slots[0].kind, SlotKind::Empty);
        assert!(matches!(one.unlock(&pw("correct horse"), None), Err(Error::AuthFailed)));
        assert_eq!(one.unlock_slot(&pw("third password"), None).unwrap().2, 1);
        assert!(matches!(one.without_slot(&root, 1), Err(Error::Invalid(m)) if m.contains("last password")));
        assert!(
            matches!(one.without_slot(&root, 0), Err(Error::Invalid(m)) if m.contains("no slot 0; the slots are 1"))
        );
        assert!(matches!(one.without_slot(&root, 2), Err(Error::Invalid(_))));
        assert!(one.with_new_password(&root, 3, &pw("x password"), KdfParams::MINIMUM).is_err());
        // A slot added takes the empty place; removing the last one drops the places left empty.
        let (again, index) =
            one.with_added_password(&root, &pw("fourth password"), KdfParams::MINIMUM).unwrap();
        assert_eq!((index, again.slots.len()), (0, 2));
        let last = again.without_slot(&root, 1).unwrap();
        assert_eq!(last.slots.len(), 1);
        let (three, index) =
            one.with_added_password(&root, &pw("fourth password"), KdfParams::MINIMUM).unwrap();
        let (three, index2) =
            three.with_added_password(&root, &pw("fifth password"), KdfParams::MINIMUM).unwrap();
        assert_eq!((index, index2), (0, 2));
        let trimmed = three.without_slot(&root, 2).unwrap().without_slot(&root, 1).unwrap();
        assert_eq!(trimmed.slots.len(), 1, "empty places at the end are dropped");
        assert!(trimmed.unlock(&pw("fourth password"), None).is_ok());
    }

    #[test]
    fn at_most_max_slots() {
        let (mut kf, root) = sample();
        for i in 1..MAX_SLOTS {
            kf = kf.with_added_password(&root, &pw(&format!("password {i}")), KdfParams::MINIMUM).unwrap().0;
        }
        assert_eq!(KeyFile::parse(&kf.encode()).unwrap().slots.len(), MAX_SLOTS);
        assert!(kf.is_full());
        assert!(matches!(
            kf.with_added_password(&root, &pw("one too many"), KdfParams::MINIMUM),
            Err(Error::Invalid(_))
        ));
        // An emptied place can be taken again.
        let emptied = kf.without_slot(&root, 3).unwrap();
        assert!(!emptied.is_full());
        assert_eq!(emptied.with_added_password(&root, &pw("in place 3"), KdfParams::MINIMUM).unwrap().1, 3);
    }

    #[test]
    fn only_its_own_root_opens_the_mac() {
        let (kf, root) = sample();
        assert!(kf.opens_with_root(&root));
        assert!(!kf.opens_with_root(&RootKey::generate().unwrap()));
        let mut bytes = kf.encode();
        bytes[30] ^= 1;
        assert!(!KeyFile::parse(&bytes).unwrap().opens_with_root(&root));
    }

    #[test]
    fn encode_parse_unlock_roundtrip() {
        let (kf, root) = sample();
        let parsed = KeyFile::parse(&kf.encode()).unwrap();
        assert_eq!(parsed.encode(), kf.encode());
        let (opened, params) = parsed.unlock(&pw("correct horse"), None).unwrap();
        assert!(opened.key().ct_eq(root.key()));
        assert_eq!(params, KdfParams::MINIMUM);
    }

    #[test]
    fn fail_wrong_password_and_tampering_give_one_error() {
        let (kf, _) = sample();
        assert!(matches!(kf.unlock(&pw("wrong horse"), None), Err(Error::AuthFailed)));
        let bytes = kf.encode();
        // Generation (covered by the MAC only), salt, wrapped key, MAC.
        for i in [30, HEADER_LEN + 20, bytes.len() - 40, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            let res = KeyFile::parse(&bad).and_then(|k| k.unlock(&pw("correct horse"), None).map(|_| ()));
            assert!(matches!(res, Err(Error::AuthFailed)), "byte {i}");
        }
    }

    #[test]
    fn fail_params_below_pin_or_floor_without_running_argon2() {
        let (kf, _) = sample();
        let pin = KdfParams::DEFAULT;
        assert!(matches!(kf.unlock(&pw("correct horse"), Some(&pin)), Err(Error::AuthFailed)));
        // A store lowering the parameters to 8 KiB, t = 1: refused by the floor.
        let mut bytes = kf.encode();
        bytes[HEADER_LEN + 2..HEADER_LEN + 6].copy_from_slice(&8u32.to_be_bytes());
        bytes[HEADER_LEN + 6..HEADER_LEN + 10].copy_from_slice(&1u32.to_be_bytes());
        let parsed = KeyFile::parse(&bytes).unwrap();
        assert!(matches!(parsed.unlock(&pw("correct horse"), None), Err(Error::AuthFailed)));
    }

    #[test]
    fn fail_password_rules() {
        assert!(check_password_rules(&pw("")).is_err());
        assert!(check_password_rules(&pw("short")).is_err());
        assert!(check_password_rules(&pw("CHANGEME")).is_err());
        assert!(check_password_rules(&pw("long enough")).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn fail_parse_of_any_truncation_or_extension(cut in 1usize..200, extra in proptest::collection::vec(any::<u8>(), 1..20)) {
            let (kf, _) = sample();
            let bytes = kf.encode();
            let cut = cut.min(bytes.len());
            prop_assert!(KeyFile::parse(&bytes[..bytes.len() - cut]).is_err());
            let mut longer = bytes.clone();
            longer.extend_from_slice(&extra);
            prop_assert!(KeyFile::parse(&longer).is_err());
        }
    }
}
