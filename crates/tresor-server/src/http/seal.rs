//! Unseal shares: the unseal key split t-of-n with Shamir's scheme (`vsss-rs`, over GF(2^8)), each
//! share carrying what it needs to be combined, and the shares submitted so far.
//!
//! A share is `version (1) | threshold | shares | x | y (32)`, given to people as hex and base64.
//! Nothing about the split is stored: a server learns t and n from the first share it is given. A
//! wrong or forged share combines into a wrong key, which the key file's unseal-key slot refuses
//! (AEAD), so the store learns nothing and the server unseals nothing.

use tresor_crypto::Key;
use zeroize::Zeroizing;

const SHARE_VERSION: u8 = 1;
const KEY_LEN: usize = 32;
/// Header bytes before the share's `x`.
const HEADER: usize = 3;

/// Why a share or a split was refused (a 400 for the client).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ShareError {
    /// Not hex or base64, or not a share of this format.
    #[error("the key is not an unseal share of this server")]
    Malformed,
    /// Shares of different splits, or the same share twice.
    #[error("{0}")]
    Mismatch(&'static str),
    /// t and n out of range.
    #[error("{0}")]
    Parameters(&'static str),
    /// The random number generator or the split failed.
    #[error("the unseal key could not be split: {0}")]
    Split(String),
}

/// Splits `key` into `n` shares of which any `t` combine into it; each is returned as bytes.
pub(crate) fn split(key: &Key, t: usize, n: usize) -> Result<Vec<Zeroizing<Vec<u8>>>, ShareError> {
    if n == 0 || n > 255 {
        return Err(ShareError::Parameters("secret_shares must be between 1 and 255"));
    }
    if t == 0 || t > n {
        return Err(ShareError::Parameters("secret_threshold must be between 1 and secret_shares"));
    }
    if t == 1 && n > 1 {
        return Err(ShareError::Parameters(
            "secret_threshold must be at least 2 when there are several shares",
        ));
    }
    let header = [SHARE_VERSION, t as u8, n as u8];
    if n == 1 {
        // One share: the key itself (x = 1), as Vault hands out a single unseal key.
        let share = [&header[..], &[1], key.expose_secret()].concat();
        return Ok(vec![Zeroizing::new(share)]);
    }
    let rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
    let shares = vsss_rs::Gf256::split_array(t, n, key.expose_secret(), rng)
        .map_err(|e| ShareError::Split(format!("{e:?}")))?;
    Ok(shares.into_iter().map(|s| Zeroizing::new([&header[..], &s[..]].concat())).collect())
}

/// A share as a client gives it: hex (as Vault prints its keys) or base64.
pub(crate) fn decode(text: &str) -> Result<Zeroizing<Vec<u8>>, ShareError> {
    use base64ct::Encoding;
    let text = text.trim();
    let bytes = hex::decode(text)
        .ok()
        .or_else(|| base64ct::Base64::decode_vec(text).ok())
        .ok_or(ShareError::Malformed)?;
    let bytes = Zeroizing::new(bytes);
    let t = usize::from(*bytes.get(1).ok_or(ShareError::Malformed)?);
    let n = usize::from(*bytes.get(2).ok_or(ShareError::Malformed)?);
    if bytes.len() != HEADER + 1 + KEY_LEN || bytes[0] != SHARE_VERSION || t == 0 || t > n || bytes[3] == 0 {
        return Err(ShareError::Malformed);
    }
    Ok(bytes)
}

/// The shares submitted since the last unseal or reset.
#[derive(Default)]
pub(crate) struct Progress {
    shares: Vec<Zeroizing<Vec<u8>>>,
    /// Names this unseal attempt (Vault's `nonce`), from its first share.
    pub(crate) nonce: String,
}

impl Progress {
    /// Threshold and number of shares of the split being combined, if a share was given.
    pub(crate) fn split(&self) -> Option<(usize, usize)> {
        self.shares.first().map(|s| (usize::from(s[1]), usize::from(s[2])))
    }

    /// Shares submitted so far.
    pub(crate) fn count(&self) -> usize {
        self.shares.len()
    }

    /// Adds `share`; the key, once the threshold is reached (the progress is then cleared).
    pub(crate) fn add(&mut self, share: Zeroizing<Vec<u8>>) -> Result<Option<Key>, ShareError> {
        if let Some(first) = self.shares.first() {
            if first[..HEADER] != share[..HEADER] {
                return Err(ShareError::Mismatch(
                    "this share belongs to another split than the ones given before",
                ));
            }
            if self.shares.iter().any(|s| s[HEADER] == share[HEADER]) {
                return Err(ShareError::Mismatch("this share was already given"));
            }
        } else {
            self.nonce = hex::encode(tresor_crypto::random_array::<16>().unwrap_or_default());
        }
        self.shares.push(share);
        let t = usize::from(self.shares[0][1]);
        if self.shares.len() < t {
            return Ok(None);
        }
        let shares = std::mem::take(&mut self.shares);
        self.nonce.clear();
        let mut key = if t == 1 {
            Zeroizing::new(shares[0][HEADER + 1..].to_vec())
        } else {
            let raw: Vec<Vec<u8>> = shares.iter().map(|s| s[HEADER..].to_vec()).collect();
            let combined = vsss_rs::Gf256::combine_array(&raw).map_err(|_| ShareError::Malformed);
            zeroize::Zeroize::zeroize(&mut raw.into_iter().flatten().collect::<Vec<u8>>());
            Zeroizing::new(combined?)
        };
        let mut bytes: [u8; KEY_LEN] = key.as_slice().try_into().map_err(|_| ShareError::Malformed)?;
        zeroize::Zeroize::zeroize(&mut *key);
        Ok(Some(Key::from_bytes(&mut bytes)))
    }

    /// Forgets the shares given so far.
    pub(crate) fn reset(&mut self) {
        self.shares.clear();
        self.nonce.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn combine(shares: &[&Zeroizing<Vec<u8>>]) -> Option<Key> {
        let mut p = Progress::default();
        let mut out = None;
        for s in shares {
            out = p.add(decode(&hex::encode(s.as_slice())).unwrap()).unwrap();
        }
        out
    }

    #[test]
    fn any_threshold_of_shares_gives_the_key_and_fewer_give_nothing() {
        let key = Key::generate().unwrap();
        let shares = split(&key, 3, 5).unwrap();
        assert_eq!(shares.len(), 5);
        for picked in [[0, 1, 2], [4, 2, 0], [1, 3, 4]] {
            let got = combine(&[&shares[picked[0]], &shares[picked[1]], &shares[picked[2]]]).unwrap();
            assert!(got.ct_eq(&key), "{picked:?}");
        }
        assert!(combine(&[&shares[0], &shares[1]]).is_none());
        // One share and one key: the share is the key.
        let one = split(&key, 1, 1).unwrap();
        assert!(combine(&[&one[0]]).unwrap().ct_eq(&key));
    }

    #[test]
    fn bad_splits_and_shares_are_refused() {
        let key = Key::generate().unwrap();
        for (t, n) in [(0, 1), (2, 1), (1, 3), (1, 0), (2, 256)] {
            assert!(matches!(split(&key, t, n), Err(ShareError::Parameters(_))), "{t}-of-{n}");
        }
        for text in [
            "",
            "zz",
            "00",
            &hex::encode([3u8; 36]),
            &hex::encode([[2, 2, 3, 1].as_slice(), &[0; 32]].concat()),
        ] {
            assert!(decode(text).is_err(), "{text}");
        }
        let a = split(&key, 2, 3).unwrap();
        let b = split(&key, 2, 4).unwrap();
        let mut p = Progress::default();
        assert!(p.add(a[0].clone()).unwrap().is_none());
        assert!(matches!(p.add(a[0].clone()), Err(ShareError::Mismatch(_))));
        assert!(matches!(p.add(b[1].clone()), Err(ShareError::Mismatch(_))));
        assert_eq!((p.count(), p.split()), (1, Some((2, 3))));
        p.reset();
        assert_eq!(p.count(), 0);
        // Base64 works as well as hex.
        use base64ct::Encoding;
        assert!(decode(&base64ct::Base64::encode_string(&a[1])).is_ok());
    }
}
