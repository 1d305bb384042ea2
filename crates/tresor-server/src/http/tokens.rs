//! Tokens: random, shown once, and kept only as the keyed hash that names their record in the
//! vault's system namespace (ARCHITECTURE.md, "The server").

use serde::{Deserialize, Serialize};
use tresor::path::SecretPath;
use tresor::{Error, Vault};
use tresor_crypto::Key;

/// Where the token key lives (32 random bytes, made by the first server to unseal the vault).
const TOKEN_KEY: &str = "server/token-key";

/// What a token starts with (Vault's are `hvs.`): tells a reader what kind of secret it holds.
pub(crate) const PREFIX: &str = "tvs.";

/// The key that names token records: HMAC-SHA256 of the token under it. Held in locked memory
/// while the server is unsealed.
pub(crate) struct TokenKey(Key);

impl TokenKey {
    /// The vault's token key, made (once, whoever wins) if the vault has none yet.
    pub(crate) async fn load(vault: &Vault) -> Result<TokenKey, Error> {
        let path = SecretPath::system(TOKEN_KEY)?;
        for _ in 0..3 {
            match vault.get(&path, None).await {
                Ok(bytes) => {
                    return Key::from_secret_bytes(bytes)
                        .map(TokenKey)
                        .ok_or_else(|| Error::Invalid("the server's token key is not 32 bytes".into()));
                }
                Err(Error::NotFound { .. }) => {
                    let fresh = zeroize::Zeroizing::new(tresor_crypto::random_bytes(32)?);
                    // Another server may make it at the same time: only one key is ever kept.
                    match vault.set_cas(&path, &fresh, 0).await {
                        Ok(_) | Err(Error::Conflict(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict("the server's token key keeps changing".into()))
    }

    /// The system path of the record of `token`.
    fn record_path(&self, token: &str) -> Result<SecretPath, Error> {
        let name = hex::encode(tresor_crypto::mac(&self.0, &[b"tresor/v1/server/token", token.as_bytes()]));
        SecretPath::system(&format!("tokens/{name}"))
    }
}

/// What the server keeps about a token (never the token itself).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct TokenRecord {
    /// Public name of the token: audit records and revocation use it.
    pub(crate) accessor: String,
    /// Its policies (`root` allows everything).
    pub(crate) policies: Vec<String>,
    /// A label for people.
    pub(crate) display_name: String,
    /// When it was made, in milliseconds since the epoch.
    pub(crate) created_ms: u64,
    /// When it stops working; `None`: never.
    pub(crate) expire_ms: Option<u64>,
}

impl TokenRecord {
    /// Whether it grants everything.
    pub(crate) fn is_root(&self) -> bool {
        self.policies.iter().any(|p| p == "root")
    }

    /// Whether it has expired at `now_ms`.
    fn expired(&self, now_ms: u64) -> bool {
        self.expire_ms.is_some_and(|t| t <= now_ms)
    }
}

/// A fresh token: the prefix and 32 random bytes, base64url.
pub fn new_token() -> Result<String, Error> {
    use base64ct::Encoding;
    let bytes = zeroize::Zeroizing::new(tresor_crypto::random_array::<32>()?);
    Ok(format!("{PREFIX}{}", base64ct::Base64UrlUnpadded::encode_string(&*bytes)))
}

/// Stores a record for `token` (a root token with no expiry): how `sys/init` and dev mode give the
/// operator a first token. With `token` `None`, a fresh one is drawn; the token is returned.
pub(crate) async fn create_root(
    vault: &Vault,
    key: &TokenKey,
    token: Option<String>,
    display_name: &str,
) -> Result<String, Error> {
    let token = match token {
        Some(t) => t,
        None => new_token()?,
    };
    let record = TokenRecord {
        accessor: hex::encode(tresor_crypto::random_array::<12>()?),
        policies: vec!["root".into()],
        display_name: display_name.into(),
        created_ms: now_ms(),
        expire_ms: None,
    };
    let bytes = serde_json::to_vec(&record).map_err(|e| Error::Invalid(e.to_string()))?;
    vault.set_cas(&key.record_path(&token)?, &bytes, 0).await?;
    Ok(token)
}

/// The record of `token`, if it names a live one.
pub(crate) async fn lookup(vault: &Vault, key: &TokenKey, token: &str) -> Result<Option<TokenRecord>, Error> {
    // Only our own tokens are looked up: anything else is no token, without a store read.
    if !token.starts_with(PREFIX) || token.len() > 128 {
        return Ok(None);
    }
    let bytes = match vault.get(&key.record_path(token)?, None).await {
        Ok(bytes) => bytes,
        Err(Error::NotFound { .. } | Error::Deleted { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let record: TokenRecord = serde_json::from_slice(bytes.as_slice())
        .map_err(|e| Error::Invalid(format!("a token record does not parse: {e}")))?;
    Ok((!record.expired(now_ms())).then_some(record))
}

/// Now, in milliseconds since the epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
