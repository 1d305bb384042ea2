//! Tokens: random, shown once, and kept only as the keyed hash that names their record in the
//! vault's system namespace (ARCHITECTURE.md, "The server").

use super::cache::Caches;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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

    /// A keyed hash of `secret` for `domain` (how AppRole secret IDs are named, as tokens are).
    pub(crate) fn hash(&self, domain: &[u8], secret: &str) -> String {
        hex::encode(tresor_crypto::mac(&self.0, &[domain, secret.as_bytes()]))
    }

    /// The system path of the record of `token`.
    fn record_path(&self, token: &str) -> Result<SecretPath, Error> {
        let name = hex::encode(tresor_crypto::mac(&self.0, &[b"tresor/v1/server/token", token.as_bytes()]));
        record_named(&name)
    }
}

/// What the server keeps about a token (never the token itself).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
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
    /// The accessor of the token that made it (revoked with it); `None`: an orphan.
    #[serde(default)]
    pub(crate) parent: Option<String>,
    /// Its lifetime at creation, in seconds (what a renewal extends it by); 0: none.
    #[serde(default)]
    pub(crate) ttl_s: u64,
    /// Whether `renew-self` may extend it.
    #[serde(default)]
    pub(crate) renewable: bool,
    /// Labels given at creation (what lookups show; policy templates read [`TokenRecord::identity`]).
    #[serde(default)]
    pub(crate) meta: BTreeMap<String, String>,
    /// The identity policy templates read (`{{identity.entity.name}}`,
    /// `{{identity.entity.metadata.KEY}}`): the meta a root token gave, or an AppRole login's,
    /// and for a child of any other token its parent's, whatever the child's meta says. `None`
    /// in a record made before it was kept apart: then only its meta's [`IDENTITY_KEYS`] count.
    #[serde(default)]
    pub(crate) identity: Option<BTreeMap<String, String>>,
    /// A periodic token's period in seconds (0: not periodic): each renewal gives it this long
    /// again, with no limit but `max_expire_ms`.
    #[serde(default)]
    pub(crate) period_s: u64,
    /// The hard end of its life (`explicit_max_ttl`), which no renewal passes; `None`: none.
    #[serde(default)]
    pub(crate) max_expire_ms: Option<u64>,
    /// Its explicit maximum lifetime at creation, in seconds (0: none), as lookups show it.
    #[serde(default)]
    pub(crate) explicit_max_ttl_s: u64,
    /// Requests it may still make (`num_uses`); `None`: any number.
    #[serde(default)]
    pub(crate) uses_left: Option<u64>,
    /// The role ID of the AppRole role whose login issued it: a renewal needs that role still
    /// there (Vault refuses one whose role is gone). `None`: not an AppRole token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) role_id: Option<String>,
    /// How many tokens are above it (0: an orphan or a root token). A record made before it was
    /// kept counts 0; [`ancestors_live`] bounds such a chain all the same.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) depth: usize,
}

/// Whether a depth is 0 (not written then).
fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl TokenRecord {
    /// Whether it grants everything.
    pub(crate) fn is_root(&self) -> bool {
        self.policies.iter().any(|p| p == "root")
    }

    /// When a renewal at `now_ms` asking for `increment` seconds makes it expire, before its
    /// parent's end is counted: a periodic token gets its period again, whatever was asked;
    /// others at most their TTL, and never past their maximum lifetime from their creation.
    fn renewed_until(&self, increment: Option<u64>, now_ms: u64) -> u64 {
        let by = match self.period_s {
            0 => increment.unwrap_or(self.ttl_s).min(self.ttl_s.max(1)),
            period => period,
        };
        let mut expire = now_ms.saturating_add(by.saturating_mul(1000));
        if let Some(max) = self.max_expire_ms {
            expire = expire.min(max);
        }
        if self.period_s == 0 {
            expire = expire.min(self.created_ms.saturating_add(MAX_TTL_S.saturating_mul(1000)));
        }
        expire
    }

    /// The identity its policies' templates are filled from (see [`TokenRecord::identity`]).
    pub(crate) fn identity(&self) -> std::borrow::Cow<'_, BTreeMap<String, String>> {
        match &self.identity {
            Some(identity) => std::borrow::Cow::Borrowed(identity),
            None => std::borrow::Cow::Owned(
                self.meta
                    .iter()
                    .filter(|(k, _)| IDENTITY_KEYS.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
        }
    }

    /// Whether it has expired at `now_ms`.
    fn expired(&self, now_ms: u64) -> bool {
        self.expire_ms.is_some_and(|t| t <= now_ms)
    }

    /// Seconds it has left (0: no expiry).
    pub(crate) fn ttl_left(&self) -> u64 {
        self.expire_ms.map_or(0, |t| t.saturating_sub(now_ms()) / 1000)
    }
}

/// A fresh token: the prefix and 32 random bytes, base64url.
pub fn new_token() -> Result<String, Error> {
    use base64ct::Encoding;
    let bytes = zeroize::Zeroizing::new(tresor_crypto::random_array::<32>()?);
    Ok(format!("{PREFIX}{}", base64ct::Base64UrlUnpadded::encode_string(&*bytes)))
}

/// The path of the token record named `name` (what an accessor index entry holds).
fn record_named(name: &str) -> Result<SecretPath, Error> {
    SecretPath::system(&format!("tokens/{name}"))
}

/// The system path of the accessor index entry of `accessor` (it holds the record's name).
fn accessor_path(accessor: &str) -> Result<SecretPath, Error> {
    if accessor.is_empty() || accessor.len() > 64 || !accessor.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::NotFound { path: "accessor".into() });
    }
    SecretPath::system(&format!("accessors/{accessor}"))
}

/// Stores `record` for `token`, and its accessor index entry.
async fn store(vault: &Vault, key: &TokenKey, token: &str, record: &TokenRecord) -> Result<(), Error> {
    let path = key.record_path(token)?;
    let bytes = serde_json::to_vec(record).map_err(|e| Error::Invalid(e.to_string()))?;
    vault.set_cas(&path, &bytes, 0).await?;
    let name = path.as_str().rsplit('/').next().unwrap_or_default().to_string();
    vault.set_cas(&accessor_path(&record.accessor)?, name.as_bytes(), 0).await?;
    Ok(())
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
        parent: None,
        ..TokenRecord::default()
    };
    store(vault, key, &token, &record).await?;
    Ok(token)
}

/// What `auth/token/create` asks for.
pub(crate) struct Request {
    /// Policies (`None`: the parent's).
    pub(crate) policies: Option<Vec<String>>,
    /// Lifetime in seconds (`None`: the default, 768 hours).
    pub(crate) ttl_s: Option<u64>,
    pub(crate) display_name: Option<String>,
    pub(crate) meta: BTreeMap<String, String>,
    /// An orphan: not revoked with its parent (root tokens only).
    pub(crate) no_parent: bool,
    pub(crate) no_default_policy: bool,
    pub(crate) renewable: bool,
    /// A periodic token's period in seconds (root tokens only may make one).
    pub(crate) period_s: Option<u64>,
    /// `explicit_max_ttl`, in seconds.
    pub(crate) explicit_max_ttl_s: Option<u64>,
    /// `num_uses` (0: any number).
    pub(crate) num_uses: u64,
}

/// The meta keys that name a token's identity for policy templates (`entity`, or the AppRole
/// role a login came through): only a root token may set them on a child.
pub(crate) const IDENTITY_KEYS: [&str; 2] = ["entity", "role_name"];

/// Vault's default token lifetime.
const DEFAULT_TTL_S: u64 = 768 * 3600;

/// Most `meta` entries a token carries, and the longest key and value: a token record is read by
/// every revocation's sweep, and a holder of a token that may create tokens must not make each
/// child a megabyte (found by review: 2,300 such children took the server to 4.8 GB).
const MAX_META_ENTRIES: usize = 64;
/// See [`MAX_META_ENTRIES`].
const MAX_META_KEY: usize = 128;
/// See [`MAX_META_ENTRIES`].
const MAX_META_VALUE: usize = 512;
/// The longest `display_name`.
const MAX_DISPLAY_NAME: usize = 256;

/// Refuses a `meta` or `display_name` past the bounds above.
fn check_bounds(meta: &BTreeMap<String, String>, display_name: Option<&str>) -> Result<(), CreateError> {
    if meta.len() > MAX_META_ENTRIES {
        return Err(CreateError::Invalid(format!("meta holds more than {MAX_META_ENTRIES} entries")));
    }
    if meta.iter().any(|(k, v)| k.len() > MAX_META_KEY || v.len() > MAX_META_VALUE) {
        return Err(CreateError::Invalid(format!(
            "meta keys are at most {MAX_META_KEY} bytes and values {MAX_META_VALUE}"
        )));
    }
    if display_name.is_some_and(|d| d.len() > MAX_DISPLAY_NAME) {
        return Err(CreateError::Invalid(format!("display_name is at most {MAX_DISPLAY_NAME} bytes")));
    }
    Ok(())
}

/// The longest a token that is not periodic lives, counted from its creation, however often it
/// is renewed (Vault's default `max_lease_ttl`, 768 hours); `explicit_max_ttl` and an AppRole
/// role's `token_max_ttl` may only shorten it.
const MAX_TTL_S: u64 = 768 * 3600;

/// Why a token could not be made as asked: the client's fault (400/403).
#[derive(Debug)]
pub(crate) enum CreateError {
    /// 403: more than the parent has.
    Denied(String),
    /// 400.
    Invalid(String),
    /// The vault failed.
    Vault(Error),
}

impl From<Error> for CreateError {
    fn from(e: Error) -> CreateError {
        CreateError::Vault(e)
    }
}

/// Makes a child of `parent`: its policies a subset of the parent's (unless the parent is root),
/// its lifetime within the parent's. Returns the token and its record.
pub(crate) async fn create(
    vault: &Vault,
    key: &TokenKey,
    parent: &TokenRecord,
    request: Request,
) -> Result<(String, TokenRecord), CreateError> {
    check_bounds(&request.meta, request.display_name.as_deref())?;
    let mut policies = request.policies.unwrap_or_else(|| parent.policies.clone());
    for p in &policies {
        if p.is_empty()
            || p.len() > 128
            || !p.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(CreateError::Invalid(format!("invalid policy name \"{p}\"")));
        }
        if !parent.is_root() && p != "default" && !parent.policies.contains(p) {
            return Err(CreateError::Denied(format!(
                "child policies must be a subset of the parent's; \"{p}\" is not"
            )));
        }
    }
    if parent.uses_left.is_some() {
        // Its last use revokes it: a child would outlive the revocation meant to end it.
        return Err(CreateError::Denied("a token with a limited number of uses cannot create tokens".into()));
    }
    // A token with more ancestors than `ancestors_live` follows would be dead at birth (found by
    // review: the 65th token of a chain was made, and refused at its first use).
    let depth = if request.no_parent { 0 } else { depth_of(vault, parent).await? + 1 };
    if depth >= MAX_DEPTH {
        return Err(CreateError::Denied(format!("tokens nest at most {} deep", MAX_DEPTH - 1)));
    }
    if request.no_parent && !parent.is_root() {
        return Err(CreateError::Denied("only a root token may create an orphan token".into()));
    }
    if !request.no_default_policy && !policies.iter().any(|p| p == "default" || p == "root") {
        policies.push("default".into());
    }
    policies.sort();
    policies.dedup();
    let period_s = request.period_s.filter(|p| *p > 0);
    if period_s.is_some() && !parent.is_root() {
        return Err(CreateError::Denied("only a root token may create a periodic token".into()));
    }
    let ttl_s = period_s.or(request.ttl_s).unwrap_or(DEFAULT_TTL_S);
    let root_without_ttl =
        policies.iter().any(|p| p == "root") && request.ttl_s.is_none() && period_s.is_none();
    let now = now_ms();
    let mut expire_ms = (!root_without_ttl).then(|| now.saturating_add(ttl_s.saturating_mul(1000)));
    let explicit_max_ttl_s = request.explicit_max_ttl_s.unwrap_or(0);
    let max_expire_ms =
        (explicit_max_ttl_s > 0).then(|| now.saturating_add(explicit_max_ttl_s.saturating_mul(1000)));
    if let Some(max) = max_expire_ms {
        expire_ms = Some(expire_ms.map_or(max, |e| e.min(max)));
    }
    // A child lives no longer than its parent.
    if !request.no_parent
        && let Some(limit) = parent.expire_ms
    {
        expire_ms = Some(expire_ms.map_or(limit, |e| e.min(limit)));
    }
    // The identity policy templates see is the parent's, every key of it: a child cannot claim
    // another, nor add a key its parent's templates lacked (`{"team": "red"}`). Only a root
    // token gives an identity; the meta's identity keys show the one in force.
    let mut meta = request.meta;
    let identity = if parent.is_root() {
        meta.clone()
    } else {
        let identity = parent.identity().into_owned();
        for key in IDENTITY_KEYS {
            match identity.get(key) {
                Some(v) => meta.insert(key.to_string(), v.clone()),
                None => meta.remove(key),
            };
        }
        identity
    };
    let accessor = hex::encode(tresor_crypto::random_array::<12>().map_err(Error::from)?);
    let record = TokenRecord {
        accessor,
        policies,
        display_name: format!("token-{}", request.display_name.unwrap_or_default())
            .trim_end_matches('-')
            .to_string(),
        created_ms: now_ms(),
        expire_ms,
        parent: (!request.no_parent).then(|| parent.accessor.clone()),
        ttl_s: if root_without_ttl { 0 } else { ttl_s },
        renewable: (request.renewable || period_s.is_some()) && expire_ms.is_some(),
        meta,
        identity: Some(identity),
        period_s: period_s.unwrap_or(0),
        max_expire_ms,
        explicit_max_ttl_s,
        uses_left: (request.num_uses > 0).then_some(request.num_uses),
        role_id: None,
        depth,
    };
    let token = new_token()?;
    store(vault, key, &token, &record).await?;
    Ok((token, record))
}

/// The lifetime and uses of a token issued to a machine (an AppRole role's `token_*` settings).
#[derive(Clone, Copy, Default)]
pub(crate) struct Limits {
    /// Its lifetime, in seconds (0: the default, 768 hours).
    pub(crate) ttl_s: u64,
    /// The hard end of its life from its creation, renewals included, in seconds (0: none
    /// beyond the server's 768 hours).
    pub(crate) max_ttl_s: u64,
    /// Requests it may make (0: any number).
    pub(crate) num_uses: u64,
}

/// Issues an orphan token for a machine that logged in (AppRole): `policies` plus `default`,
/// living as `limits` say, `meta` naming where it came from (and its identity).
pub(crate) async fn issue(
    vault: &Vault,
    key: &TokenKey,
    role_id: &str,
    policies: Vec<String>,
    limits: Limits,
    display_name: &str,
    meta: BTreeMap<String, String>,
) -> Result<(String, TokenRecord), Error> {
    let mut policies = policies;
    policies.push("default".into());
    policies.sort();
    policies.dedup();
    let ttl_s = if limits.ttl_s == 0 { DEFAULT_TTL_S } else { limits.ttl_s };
    let now = now_ms();
    let max_expire_ms =
        (limits.max_ttl_s > 0).then(|| now.saturating_add(limits.max_ttl_s.saturating_mul(1000)));
    let expire_ms = now.saturating_add(ttl_s.saturating_mul(1000));
    let record = TokenRecord {
        accessor: hex::encode(tresor_crypto::random_array::<12>()?),
        policies,
        display_name: display_name.to_string(),
        created_ms: now,
        expire_ms: Some(max_expire_ms.map_or(expire_ms, |max| expire_ms.min(max))),
        parent: None,
        ttl_s,
        max_expire_ms,
        explicit_max_ttl_s: limits.max_ttl_s,
        uses_left: (limits.num_uses > 0).then_some(limits.num_uses),
        renewable: true,
        identity: Some(meta.clone()),
        meta,
        role_id: Some(role_id.to_string()),
        ..TokenRecord::default()
    };
    let token = new_token()?;
    store(vault, key, &token, &record).await?;
    Ok((token, record))
}

/// Whether `token` has the shape of this server's tokens (anything else names none).
pub(crate) fn well_formed(token: &str) -> bool {
    token.starts_with(PREFIX) && token.len() <= 128
}

/// The record of `token`, if it names a live one.
pub(crate) async fn lookup(
    vault: &Vault,
    key: &TokenKey,
    cache: &Caches,
    token: &str,
) -> Result<Option<TokenRecord>, Error> {
    // Only our own tokens are looked up: anything else is no token, without a store read.
    if !well_formed(token) {
        return Ok(None);
    }
    let parse = |bytes: &[u8]| serde_json::from_slice::<TokenRecord>(bytes).map_err(|e| e.to_string());
    let Some(parsed) = cache.records.get(vault, &key.record_path(token)?, parse).await? else {
        return Ok(None);
    };
    let record = match &*parsed {
        Ok(record) => record.clone(),
        Err(e) => return Err(Error::Invalid(format!("a token record does not parse: {e}"))),
    };
    if record.expired(now_ms()) || !ancestors_live(vault, cache, &record).await? {
        return Ok(None);
    }
    Ok(Some(record))
}

/// The most parents a token's ancestry is followed through; a deeper one counts as revoked.
const MAX_DEPTH: usize = 64;

/// Whether every token above `record` — its parent, that one's parent, and so on — is still live.
/// A token whose ancestor was revoked (or expired) is revoked with it, even one made while the
/// revocation ran: the revocation's sweep deletes the records it finds, but a child created
/// meanwhile, on this server or another, could escape it (found by review: a stolen token
/// minting children in a loop made its own revocation useless). Read as bookkeeping, through
/// the caches: a few unaudited lookups of entries whose version is known.
async fn ancestors_live(vault: &Vault, cache: &Caches, record: &TokenRecord) -> Result<bool, Error> {
    let parse = |bytes: &[u8]| serde_json::from_slice::<TokenRecord>(bytes).map_err(|e| e.to_string());
    let name = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let now = now_ms();
    let mut parent = record.parent.clone();
    for _ in 0..MAX_DEPTH {
        let Some(accessor) = parent else { return Ok(true) };
        let Some(name) = cache.accessors.get(vault, &accessor_path(&accessor)?, name).await? else {
            return Ok(false);
        };
        let Some(parsed) = cache.records.get(vault, &record_named(&name)?, parse).await? else {
            return Ok(false);
        };
        match &*parsed {
            Ok(above) if above.accessor == accessor && !above.expired(now) => parent = above.parent.clone(),
            Ok(_) => return Ok(false),
            Err(e) => return Err(Error::Invalid(format!("a token record does not parse: {e}"))),
        }
    }
    Ok(false)
}

/// The record at `path`, if it is there and live.
async fn read_record(vault: &Vault, path: &SecretPath) -> Result<Option<TokenRecord>, Error> {
    let bytes = match vault.get(path, None).await {
        Ok(bytes) => bytes,
        Err(Error::NotFound { .. } | Error::Deleted { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let record: TokenRecord = serde_json::from_slice(bytes.as_slice())
        .map_err(|e| Error::Invalid(format!("a token record does not parse: {e}")))?;
    Ok((!record.expired(now_ms())).then_some(record))
}

/// The record path and record of the token with `accessor`, if it is live (and so is every token
/// above it).
pub(crate) async fn by_accessor(
    vault: &Vault,
    cache: &Caches,
    accessor: &str,
) -> Result<Option<(SecretPath, TokenRecord)>, Error> {
    let name = match vault.get(&accessor_path(accessor)?, None).await {
        Ok(name) => String::from_utf8_lossy(name.as_slice()).into_owned(),
        Err(Error::NotFound { .. } | Error::Deleted { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let path = record_named(&name)?;
    match read_record(vault, &path).await? {
        Some(record) if ancestors_live(vault, cache, &record).await? => Ok(Some((path, record))),
        _ => Ok(None),
    }
}

/// The record path of `token`.
pub(crate) fn path_of(key: &TokenKey, token: &str) -> Result<SecretPath, Error> {
    key.record_path(token)
}

/// Revokes the token whose record is at `path`, and every token it made, recursively; returns how
/// many were revoked. The sweep reads every record once (the accessor index, then each record it
/// names, as bookkeeping) and deletes the tree; a token made while it runs is not in it, but is
/// revoked all the same ([`ancestors_live`]), and its record goes with the next revocation above
/// it.
/// The sweep runs in a task of its own: a client that goes away (a timeout) does not stop it
/// half-way (found by review: a client's 2 s timeout left most of a tree's records).
pub(crate) async fn revoke(vault: &Vault, path: &SecretPath, record: &TokenRecord) -> Result<usize, Error> {
    let (vault, path, record) = (vault.clone(), path.clone(), record.clone());
    tokio::spawn(async move { sweep(&vault, &path, &record).await })
        .await
        .map_err(|_| Error::store("a revocation task ended without an answer"))?
}

/// [`revoke`], in the caller's task.
pub(crate) async fn sweep(vault: &Vault, path: &SecretPath, record: &TokenRecord) -> Result<usize, Error> {
    // Only what the tree needs of each record (its path, accessor and parent), not the records.
    #[derive(Deserialize)]
    struct Link {
        accessor: String,
        parent: Option<String>,
    }
    let mut children: BTreeMap<String, Vec<(SecretPath, String)>> = BTreeMap::new();
    for entry in vault.system_entries("accessors/").await? {
        let Ok(index) = accessor_path(entry.path.rsplit('/').next().unwrap_or_default()) else { continue };
        let name = match vault.system_entry(&index, None).await? {
            tresor::vault::SystemEntry::Current(_, name) => name,
            _ => continue,
        };
        let Some(path) = std::str::from_utf8(name.as_slice()).ok().and_then(|name| record_named(name).ok())
        else {
            continue;
        };
        let child = match vault.system_entry(&path, None).await? {
            tresor::vault::SystemEntry::Current(_, bytes) => serde_json::from_slice::<Link>(bytes.as_slice()),
            _ => continue,
        };
        if let Ok(Link { accessor, parent: Some(parent) }) = child {
            children.entry(parent).or_default().push((path, accessor));
        }
    }
    let mut revoked = 0;
    let mut pending = vec![(path.clone(), record.accessor.clone())];
    while let Some((path, accessor)) = pending.pop() {
        pending.extend(children.remove(&accessor).unwrap_or_default());
        gone(vault.delete(&path).await)?;
        gone(vault.delete(&accessor_path(&accessor)?).await)?;
        revoked += 1;
    }
    Ok(revoked)
}

/// A deletion's outcome, with "it was not there" as fine (a revocation or tidy meeting another's).
fn gone(deleted: Result<u64, Error>) -> Result<(), Error> {
    match deleted {
        Ok(_) | Err(Error::NotFound { .. } | Error::Deleted { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The record name the accessor entry of `accessor` holds, and that record's bytes, as the store
/// holds them now (bookkeeping, unaudited): `None` if either is gone.
async fn entry_and_record(
    vault: &Vault,
    accessor: &str,
) -> Result<Option<(String, tresor::SecretBytes)>, Error> {
    let Some(name) = current(vault, &accessor_path(accessor)?).await? else { return Ok(None) };
    let name = String::from_utf8_lossy(name.as_slice()).into_owned();
    Ok(current(vault, &record_named(&name)?).await?.map(|record| (name, record)))
}

/// How many tokens are above `record`: its kept depth, or, for a record made before depths were
/// kept (0 with a parent), counted along its parents (bookkeeping reads, at most [`MAX_DEPTH`]):
/// found by review, a child of such a record 63 deep was still made dead.
async fn depth_of(vault: &Vault, record: &TokenRecord) -> Result<usize, Error> {
    if record.depth > 0 || record.parent.is_none() {
        return Ok(record.depth);
    }
    let (mut depth, mut parent) = (0, record.parent.clone());
    while let Some(accessor) = parent {
        depth += 1;
        if depth >= MAX_DEPTH {
            break;
        }
        let Some((_, bytes)) = entry_and_record(vault, &accessor).await? else { break };
        parent = serde_json::from_slice::<Life>(bytes.as_slice()).ok().and_then(|l| l.parent);
    }
    Ok(depth)
}

/// What tidying needs of a token record.
#[derive(Deserialize)]
struct Life {
    accessor: String,
    parent: Option<String>,
    expire_ms: Option<u64>,
}

impl Life {
    fn expired(&self, now_ms: u64) -> bool {
        self.expire_ms.is_some_and(|t| t <= now_ms)
    }
}

/// The entry at `path` as bookkeeping (unaudited): `None` if there is none.
async fn current(vault: &Vault, path: &SecretPath) -> Result<Option<tresor::SecretBytes>, Error> {
    Ok(match vault.system_entry(path, None).await? {
        tresor::vault::SystemEntry::Current(_, bytes) => Some(bytes),
        _ => None,
    })
}

/// Whether the token whose record is named `name` is dead as the store holds it now: its record
/// gone or another token's, expired, or below a token that is gone or expired — the states no
/// write undoes (an expired token is never renewed, a deleted record never comes back).
/// `Ok(None)`: unknown (a record that does not parse, or a chain deeper than [`MAX_DEPTH`]).
async fn dead_now(vault: &Vault, accessor: &str, name: &str, now: u64) -> Result<Option<bool>, Error> {
    // The token itself by the record name listed, those above it by their accessor entries.
    let mut found = current(vault, &record_named(name)?).await?;
    let mut accessor = accessor.to_string();
    for _ in 0..=MAX_DEPTH {
        let Some(bytes) = found.take() else { return Ok(Some(true)) };
        let Ok(life) = serde_json::from_slice::<Life>(bytes.as_slice()) else { return Ok(None) };
        if life.accessor != accessor || life.expired(now) {
            return Ok(Some(true));
        }
        match life.parent {
            None => return Ok(Some(false)),
            Some(parent) => {
                found = entry_and_record(vault, &parent).await?.map(|(_, record)| record);
                accessor = parent;
            }
        }
    }
    Ok(None)
}

/// Removes what no longer names a usable token: records that expired or whose ancestry is gone
/// (a parent revoked or expired: [`ancestors_live`] refuses them already), accessor entries
/// whose record is gone, and expired records that never got their accessor entry. Returns how
/// many token records it removed. What `auth/token/tidy` starts and the server runs every hour:
/// without it, every token that ever expired kept its record, and every revocation read them.
///
/// Never stricter than a lookup (found by review): the accessor entries are listed before the
/// records, so a token made meanwhile — record first, then entry — is either in both or has
/// no entry listed and is left alone; the decisions are made on a view refreshed from the store
/// (never one within the read-staleness bound), and each is checked again, fresh, right before
/// its deletion, on states no write undoes. A record that does not parse is left alone, and so
/// is everything below it. `vault` must be a handle of its own (not a request's, whose reads
/// skip the freshness check).
pub(crate) async fn tidy(vault: &Vault) -> Result<usize, Error> {
    vault.refresh().await?;
    let now = now_ms();
    // Accessor entries first (see above), then the records.
    let mut entries: Vec<(String, String)> = Vec::new();
    for entry in vault.system_entries("accessors/").await? {
        let Some(accessor) = entry.path.rsplit('/').next().map(str::to_string) else { continue };
        let Ok(index) = accessor_path(&accessor) else { continue };
        if let Some(name) = current(vault, &index).await? {
            entries.push((accessor, String::from_utf8_lossy(name.as_slice()).into_owned()));
        }
    }
    let mut records: BTreeMap<String, Option<Life>> = BTreeMap::new();
    for entry in vault.system_entries("tokens/").await? {
        let Some(name) = entry.path.rsplit('/').next().map(str::to_string) else { continue };
        let Ok(path) = record_named(&name) else { continue };
        if let Some(bytes) = current(vault, &path).await? {
            records.insert(name, serde_json::from_slice::<Life>(bytes.as_slice()).ok());
        }
    }
    /// A token as listed: its parent and whether it expired; `None`: its record is unreadable.
    type Listed<'a> = Option<(Option<&'a str>, bool)>;
    // The tokens as listed, by accessor, with their record's name.
    let mut tokens: BTreeMap<&str, (&str, Listed<'_>)> = BTreeMap::new();
    let mut stale_entries = Vec::new();
    for (accessor, name) in &entries {
        match records.get(name) {
            Some(Some(life)) if life.accessor == *accessor => {
                tokens.insert(accessor, (name, Some((life.parent.as_deref(), life.expired(now)))));
            }
            Some(None) => {
                tokens.insert(accessor, (name, None));
            }
            // No record (the entry was listed first, so its record was written before it and is
            // gone since), or another token's.
            _ => stale_entries.push(accessor.clone()),
        }
    }
    let dead_as_listed = |accessor: &str| -> bool {
        let mut at = accessor;
        for _ in 0..=MAX_DEPTH {
            match tokens.get(at) {
                None => return true,
                Some((_, None)) => return false,
                Some((_, Some((_, true)))) => return true,
                Some((_, Some((None, false)))) => return false,
                Some((_, Some((Some(parent), false)))) => at = parent,
            }
        }
        false
    };
    let doomed: Vec<(String, String)> = tokens
        .iter()
        .filter(|(accessor, _)| dead_as_listed(accessor))
        .map(|(accessor, (name, _))| (accessor.to_string(), name.to_string()))
        .collect();
    let indexed: std::collections::BTreeSet<&str> = entries.iter().map(|(_, name)| name.as_str()).collect();
    let unindexed: Vec<String> = records
        .iter()
        .filter(|(name, life)| {
            !indexed.contains(name.as_str()) && life.as_ref().is_some_and(|l| l.expired(now))
        })
        .map(|(name, _)| name.clone())
        .collect();
    // Checked again against the store as it is now, each right before its deletion.
    vault.refresh().await?;
    let now = now_ms();
    let mut removed = 0;
    for (accessor, name) in &doomed {
        if dead_now(vault, accessor, name, now).await? == Some(true) {
            gone(vault.delete(&record_named(name)?).await)?;
            gone(vault.delete(&accessor_path(accessor)?).await)?;
            removed += 1;
        }
    }
    for name in &unindexed {
        let Some(bytes) = current(vault, &record_named(name)?).await? else { continue };
        let Ok(life) = serde_json::from_slice::<Life>(bytes.as_slice()) else { continue };
        let entry = current(vault, &accessor_path(&life.accessor)?).await?;
        if life.expired(now) && entry.is_none_or(|n| n.as_slice() != name.as_bytes()) {
            gone(vault.delete(&record_named(name)?).await)?;
            removed += 1;
        }
    }
    for accessor in &stale_entries {
        let index = accessor_path(accessor)?;
        // Gone (the entry too, then the deletion finds nothing), or another token's; a record
        // that does not parse is left alone.
        let stale = match entry_and_record(vault, accessor).await? {
            None => true,
            Some((_, bytes)) => {
                serde_json::from_slice::<Life>(bytes.as_slice()).is_ok_and(|l| l.accessor != *accessor)
            }
        };
        if stale {
            gone(vault.delete(&index).await)?;
        }
    }
    Ok(removed)
}

/// Renews the token whose record is at `path` by `increment` seconds (its TTL when not given; a
/// periodic token by its period), never past its `explicit_max_ttl` or its parent's end: the
/// renewed record, or `None` if it is not renewable, gone or expired. The record is read and
/// written back with check-and-set, so a renewal racing a revocation or a use never revives the
/// token or refills its uses.
pub(crate) async fn renew(
    vault: &Vault,
    key: &TokenKey,
    cache: &Caches,
    path: &SecretPath,
    increment: Option<u64>,
) -> Result<Option<TokenRecord>, Error> {
    for _ in 0..16 {
        let (version, bytes) = match vault.system_entry(path, None).await? {
            tresor::vault::SystemEntry::Current(version, bytes) => (version, bytes),
            _ => return Ok(None),
        };
        let record: TokenRecord = serde_json::from_slice(bytes.as_slice())
            .map_err(|e| Error::Invalid(format!("a token record does not parse: {e}")))?;
        if !record.renewable || record.expire_ms.is_none() || record.expired(now_ms()) {
            return Ok(None);
        }
        // An AppRole token is renewed only while its role is there, as Vault renews it: a role
        // deleted (or made again, with another role ID) ends its tokens' renewals (found by review).
        if let Some(role_id) = &record.role_id
            && !super::approle::role_is_there(vault, key, role_id).await?
        {
            return Ok(None);
        }
        let mut renewed = record.clone();
        let mut expire = record.renewed_until(increment, now_ms());
        if let Some(parent) = &record.parent
            && let Some((_, p)) = by_accessor(vault, cache, parent).await?
            && let Some(limit) = p.expire_ms
        {
            expire = expire.min(limit);
        }
        renewed.expire_ms = Some(expire);
        let next = serde_json::to_vec(&renewed).map_err(|e| Error::Invalid(e.to_string()))?;
        match vault.set_cas(path, &next, version).await {
            Ok(_) => return Ok(Some(renewed)),
            Err(Error::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::Conflict("the token kept changing while it was renewed; try again".into()))
}

/// Spends one of the uses of the token whose record is at `path` (a token made with `num_uses`):
/// its record after that, or `None` when none was left. The count is written with check-and-set,
/// so two requests at once never spend one use twice; the token that spent its last use is revoked.
pub(crate) async fn spend_use(vault: &Vault, path: &SecretPath) -> Result<Option<TokenRecord>, Error> {
    for _ in 0..16 {
        let (version, bytes) = match vault.system_entry(path, None).await? {
            tresor::vault::SystemEntry::Current(version, bytes) => (version, bytes),
            _ => return Ok(None),
        };
        let mut record: TokenRecord = serde_json::from_slice(bytes.as_slice())
            .map_err(|e| Error::Invalid(format!("a token record does not parse: {e}")))?;
        if record.expired(now_ms()) {
            return Ok(None);
        }
        let left = match record.uses_left {
            None => return Ok(Some(record)),
            Some(0) => return Ok(None),
            Some(n) => n - 1,
        };
        record.uses_left = Some(left);
        let next = serde_json::to_vec(&record).map_err(|e| Error::Invalid(e.to_string()))?;
        match vault.set_cas(path, &next, version).await {
            Ok(_) if left == 0 => {
                // The last use: this request goes on; the token is gone after it.
                revoke(vault, path, &record).await?;
                return Ok(Some(record));
            }
            Ok(_) => return Ok(Some(record)),
            Err(Error::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::Conflict("a token's uses kept changing while one was spent; try again".into()))
}

/// Now, in milliseconds since the epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by review: a renewable token that was not periodic could be renewed for ever (only
    /// `explicit_max_ttl` and its parent's end capped a renewal), so an AppRole token outlived any
    /// maximum. Renewals now stop at its maximum lifetime from its creation.
    #[test]
    fn regression_a_token_could_be_renewed_past_any_maximum_lifetime() {
        let hour = 3600 * 1000;
        let created_ms = 1_000 * hour;
        let token = TokenRecord { created_ms, ttl_s: 3600, renewable: true, ..TokenRecord::default() };
        let end = created_ms + MAX_TTL_S * 1000;
        // Early in its life a renewal gives it its TTL (or less, if asked), never more.
        assert_eq!(token.renewed_until(None, created_ms + hour), created_ms + 2 * hour);
        assert_eq!(token.renewed_until(Some(60), created_ms + hour), created_ms + hour + 60_000);
        assert_eq!(token.renewed_until(Some(100 * 3600), created_ms + hour), created_ms + 2 * hour);
        // Near its end, only up to it; past it, nothing more.
        assert_eq!(token.renewed_until(None, end - 60_000), end);
        assert_eq!(token.renewed_until(None, end + 10 * hour), end);
        // An explicit maximum (an AppRole role's token_max_ttl) ends it sooner.
        let capped = TokenRecord { max_expire_ms: Some(created_ms + 2 * hour), ..token.clone() };
        assert_eq!(capped.renewed_until(None, created_ms + 90 * 60 * 1000), created_ms + 2 * hour);
        // A periodic token gets its period again at every renewal, past 768 hours too.
        let periodic = TokenRecord { period_s: 3600, ..token };
        assert_eq!(periodic.renewed_until(Some(60), end + 10 * hour), end + 11 * hour);
    }
}
