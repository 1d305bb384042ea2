//! Argon2id password derivation with bounded parameters.
//!
//! Parameters come from the key file, which the store controls. They are checked against a floor
//! (an attacker must not be able to make a guess cheap) and a ceiling (nor make unlock hang) before
//! Argon2 runs at all.

use crate::secret::{KEY_LEN, Key, Password};
use crate::{CryptoError, Result};
use argon2::{Algorithm, Argon2, Params, ParamsBuilder, Version};
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

/// Salt length of password slots.
pub const SALT_LEN: usize = 32;

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes over memory.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl KdfParams {
    /// RFC 9106 §4, second recommended option: 64 MiB, 3 passes, 4 lanes.
    pub const DEFAULT: KdfParams = KdfParams { m_kib: 64 * 1024, t: 3, p: 4 };
    /// The cheapest parameters accepted: OWASP's minimum (19 MiB, t = 2, p = 1).
    pub const MINIMUM: KdfParams = KdfParams { m_kib: 19 * 1024, t: 2, p: 1 };
    /// Least memory accepted in KiB, whatever the passes (OWASP's t = 5 row).
    pub const FLOOR_M_KIB: u32 = 7 * 1024;
    /// Least total work accepted: memory × passes, in KiB (OWASP's 19 MiB × 2).
    pub const FLOOR_WORK: u64 = 19 * 1024 * 2;
    /// Most memory accepted in KiB (4 GiB).
    pub const CEIL_M_KIB: u32 = 4 * 1024 * 1024;
    /// Most passes accepted.
    pub const CEIL_T: u32 = 16;
    /// Most lanes accepted.
    pub const CEIL_P: u32 = 16;

    /// Refuses parameters below the floor or above the ceiling.
    pub fn check(&self) -> Result<()> {
        let work = u64::from(self.m_kib) * u64::from(self.t);
        let ok = self.m_kib >= Self::FLOOR_M_KIB
            && self.m_kib <= Self::CEIL_M_KIB
            && (1..=Self::CEIL_T).contains(&self.t)
            && (1..=Self::CEIL_P).contains(&self.p)
            && self.m_kib >= 8 * self.p
            && work >= Self::FLOOR_WORK;
        if ok { Ok(()) } else { Err(CryptoError::KdfParams) }
    }

    /// True when `self` costs at least as much as `other` in every dimension that matters to an
    /// attacker (memory and passes); used to refuse a key file that lowers pinned parameters.
    pub fn at_least(&self, other: &KdfParams) -> bool {
        self.m_kib >= other.m_kib && self.t >= other.t
    }
}

/// Derives the key-encryption key of a password slot. Checks `params` first.
pub fn derive_kek(password: &Password, salt: &[u8; SALT_LEN], params: &KdfParams) -> Result<Key> {
    params.check()?;
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    argon2id(password.expose_secret().as_bytes(), salt, params, &[], &[], out.as_mut())?;
    Ok(Key::from_bytes(&mut out))
}

/// Argon2id version 0x13 with optional secret and associated data, without bounds checks: for
/// known-answer tests (RFC 9106 §5.3). Use [`derive_kek`] for passwords.
pub fn argon2id(
    password: &[u8],
    salt: &[u8],
    params: &KdfParams,
    secret: &[u8],
    ad: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let mut builder = ParamsBuilder::new();
    builder.m_cost(params.m_kib).t_cost(params.t).p_cost(params.p).output_len(out.len());
    if !ad.is_empty() {
        builder.data(argon2::AssociatedData::new(ad).map_err(|_| CryptoError::KdfParams)?);
    }
    let built: Params = builder.build().map_err(|_| CryptoError::KdfParams)?;
    let argon = if secret.is_empty() {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, built)
    } else {
        Argon2::new_with_secret(secret, Algorithm::Argon2id, Version::V0x13, built)
            .map_err(|_| CryptoError::KdfParams)?
    };
    argon.hash_password_into(password, salt, out).map_err(|_| CryptoError::KdfParams)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_minimum_pass_the_check() {
        KdfParams::DEFAULT.check().unwrap();
        KdfParams::MINIMUM.check().unwrap();
    }

    #[test]
    fn fail_params_outside_bounds() {
        let bad = [
            KdfParams { m_kib: 8, t: 1, p: 1 },
            KdfParams { m_kib: 19 * 1024, t: 1, p: 1 },
            KdfParams { m_kib: 6 * 1024, t: 10, p: 1 },
            KdfParams { m_kib: 64 * 1024 * 1024, t: 3, p: 4 },
            KdfParams { m_kib: 64 * 1024, t: 1_000_000, p: 4 },
            KdfParams { m_kib: 64 * 1024, t: 3, p: 0 },
            KdfParams { m_kib: 64 * 1024, t: 3, p: 255 },
            KdfParams { m_kib: 64 * 1024, t: 0, p: 4 },
        ];
        for params in bad {
            assert!(matches!(params.check(), Err(CryptoError::KdfParams)), "{params:?}");
            let pw = Password::from("correct horse".to_string());
            assert_eq!(derive_kek(&pw, &[0; SALT_LEN], &params).err(), Some(CryptoError::KdfParams));
        }
    }

    #[test]
    fn kek_depends_on_password_and_salt() {
        let p = KdfParams::MINIMUM;
        let a = derive_kek(&Password::from("password-a".to_string()), &[1; 32], &p).unwrap();
        let b = derive_kek(&Password::from("password-b".to_string()), &[1; 32], &p).unwrap();
        let c = derive_kek(&Password::from("password-a".to_string()), &[2; 32], &p).unwrap();
        let a2 = derive_kek(&Password::from("password-a".to_string()), &[1; 32], &p).unwrap();
        assert!(!a.ct_eq(&b));
        assert!(!a.ct_eq(&c));
        assert!(a.ct_eq(&a2));
    }
}
