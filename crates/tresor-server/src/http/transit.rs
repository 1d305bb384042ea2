//! Transit at a mount (`transit/` by default): Vault's encryption-as-a-service, on the vault's
//! own transit keys.
//!
//! Vault's key `K` at version `v` is tresor's transit key named `K.v<v>` (derived from the root,
//! never stored); a Vault ciphertext is `vault:v<v>:` followed by the Base64 of tresor's binary
//! transit ciphertext, whose header names `K.v<v>` — so a ciphertext of another key or version
//! is refused by name, and tampering fails authentication. What is stored is each key's
//! bookkeeping (`transit/keys/<K>` in the system namespace: its type, latest and minimum
//! decryption versions, when each version was made). A key is created on first encrypt, as Vault
//! does. In a mount other than the original `transit/`, `K` is qualified by the mount's id
//! (`<id>.K`, see `mounts.rs`), so each mount's keys are its own.
//!
//! An `ed25519` key signs: its version `v` is the vault's SLIP-0010 key at
//! `DerivationPath::transit_signing` (derived from the root, never stored, in a branch the key
//! service reserves, so no agent client signs as it), and a signature is `vault:v<v>:` and the
//! Base64 of the 64-byte Ed25519 signature. A data key (`datakey/plaintext|wrapped`) is fresh random
//! bytes encrypted under the key.

use super::mounts::Mount;
use super::reply::{self, ApiError};
use super::route::{Call, Verb};
use super::tokens::now_ms;
use axum::response::Response;
use base64ct::{Base64, Encoding};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use tresor::Vault;
use tresor::path::SecretPath;
use tresor_crypto::transit::Algorithm;

/// The default mount.
pub(crate) const DEFAULT_MOUNT: &str = "transit";

/// A key's bookkeeping.
#[derive(Serialize, Deserialize)]
struct KeyInfo {
    /// Vault's type name: `chacha20-poly1305` or `aes256-gcm96`.
    kind: String,
    latest_version: u32,
    min_decryption_version: u32,
    /// When each version was made, in seconds since the epoch.
    versions: BTreeMap<u32, u64>,
}

impl KeyInfo {
    fn algorithm(&self) -> Algorithm {
        if self.kind == "aes256-gcm96" { Algorithm::Aes256Gcm } else { Algorithm::XChaCha20Poly1305 }
    }

    /// Whether it is a signing key (`ed25519`) rather than an encryption key.
    fn signs(&self) -> bool {
        self.kind == SIGNING
    }

    /// Refuses an encryption operation on a signing key, and the other way round.
    fn must(&self, sign: bool) -> Result<(), ApiError> {
        match (self.signs(), sign) {
            (true, false) => Err(ApiError::invalid("key type ed25519 does not support encryption")),
            (false, true) => {
                Err(ApiError::invalid(format!("key type {} does not support signing", self.kind)))
            }
            _ => Ok(()),
        }
    }
}

/// Vault's type name of the signing keys served.
const SIGNING: &str = "ed25519";

/// Vault's type names this mount serves, and the algorithm of each.
fn algorithm_of(kind: &str) -> Option<Algorithm> {
    match kind {
        "chacha20-poly1305" | "xchacha20-poly1305" => Some(Algorithm::XChaCha20Poly1305),
        "aes256-gcm96" => Some(Algorithm::Aes256Gcm),
        _ => None,
    }
}

/// The name a key of `mount` goes by in the vault: `name` itself in the original mount, else
/// qualified by the mount's id. `name` is checked here.
fn qualified(mount: &Mount, name: &str) -> Result<String, ApiError> {
    // Room for "<id>." and ".v<version>" within tresor's 128-byte transit names.
    if name.is_empty()
        || name.len() > 100
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
    {
        return Err(ApiError::invalid(format!(
            "invalid key name \"{name}\": 1 to 100 of A-Z, a-z, 0-9, '_' and '-'"
        )));
    }
    Ok(if mount.id.is_empty() { name.to_string() } else { format!("{}.{name}", mount.id) })
}

/// The key's name as clients know it (without its mount's id).
fn shown(qualified: &str) -> &str {
    qualified.rsplit('.').next().unwrap_or(qualified)
}

/// Where the bookkeeping of the (qualified) key `name` is kept.
fn key_path(name: &str) -> Result<SecretPath, ApiError> {
    Ok(SecretPath::system(&format!("transit/keys/{name}"))?)
}

/// The bookkeeping entries of every key of `mount`.
pub(crate) async fn key_entries(vault: &Vault, mount: &Mount) -> Result<Vec<SecretPath>, ApiError> {
    let mut out = Vec::new();
    for name in super::system_names(vault, "transit/keys/").await? {
        if mine(mount, &name) {
            out.push(key_path(&name)?);
        }
    }
    Ok(out)
}

/// Whether the (qualified) key `name` belongs to `mount`.
fn mine(mount: &Mount, name: &str) -> bool {
    match name.split_once('.') {
        None => mount.id.is_empty(),
        Some((id, _)) => id == mount.id,
    }
}

async fn load(vault: &Vault, name: &str) -> Result<Option<KeyInfo>, ApiError> {
    match vault.get(&key_path(name)?, None).await {
        Ok(bytes) => {
            Ok(Some(serde_json::from_slice(bytes.as_slice()).map_err(|e| ApiError::internal(e.to_string()))?))
        }
        Err(tresor::Error::NotFound { .. } | tresor::Error::Deleted { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn save(vault: &Vault, name: &str, info: &KeyInfo, previous: Option<u64>) -> Result<(), ApiError> {
    let bytes = serde_json::to_vec(info).map_err(|e| ApiError::internal(e.to_string()))?;
    match previous {
        // Created once, whoever wins: a lost race reads the winner's.
        None => match vault.set_cas(&key_path(name)?, &bytes, 0).await {
            Ok(_) | Err(tresor::Error::Conflict(_)) => Ok(()),
            Err(e) => Err(e.into()),
        },
        Some(version) => {
            vault.set_cas(&key_path(name)?, &bytes, version).await?;
            Ok(())
        }
    }
}

/// The key `name`, made (with `kind`) if it does not exist yet.
async fn load_or_create(vault: &Vault, name: &str, kind: &str) -> Result<KeyInfo, ApiError> {
    if let Some(info) = load(vault, name).await? {
        return Ok(info);
    }
    if algorithm_of(kind).is_none() && kind != SIGNING {
        return Err(ApiError::invalid(format!(
            "unsupported key type \"{kind}\": chacha20-poly1305, aes256-gcm96 or ed25519"
        )));
    }
    let info = KeyInfo {
        kind: kind.to_string(),
        latest_version: 1,
        min_decryption_version: 1,
        versions: BTreeMap::from([(1, now_ms() / 1000)]),
    };
    save(vault, name, &info, None).await?;
    load(vault, name).await?.ok_or_else(|| ApiError::internal("the key vanished as it was made"))
}

/// The version of the stored bookkeeping of `name` (for check-and-set).
async fn info_version(vault: &Vault, name: &str) -> Result<u64, ApiError> {
    Ok(vault.history(&key_path(name)?).await?.last().map_or(0, |h| h.version))
}

/// One request under the transit mount `mount`: `rest` is the path after it.
pub(crate) async fn handle(
    vault: &Vault,
    call: &Call,
    mount: &Mount,
    rest: &str,
) -> Result<Response, ApiError> {
    let (kind, rest) = rest.split_once('/').unwrap_or((rest, ""));
    let (name, action) = rest.split_once('/').unwrap_or((rest, ""));
    if kind == "keys" && name.is_empty() && call.verb == Verb::List {
        let keys: Vec<String> = super::system_names(vault, "transit/keys/")
            .await?
            .into_iter()
            .filter(|k| mine(mount, k))
            .map(|k| shown(&k).to_string())
            .collect();
        if keys.is_empty() {
            return Err(ApiError::not_found());
        }
        return Ok(reply::ok(json!({ "keys": keys }), "transit"));
    }
    // `datakey/<plaintext|wrapped>/<key>` names its key last.
    let (name, action) = match kind {
        "keys" | "encrypt" | "decrypt" | "rewrap" | "sign" | "verify" => (qualified(mount, name)?, action),
        "datakey" => (qualified(mount, action)?, name),
        _ => return Err(ApiError::not_found()),
    };
    let name = name.as_str();
    match (kind, action, call.verb) {
        ("keys", "", Verb::Write) => {
            let body = call.json()?;
            let kind = body.get("type").and_then(Value::as_str).unwrap_or("chacha20-poly1305");
            load_or_create(vault, name, kind).await?;
            Ok(reply::no_content())
        }
        ("keys", "", Verb::Read) => match load(vault, name).await? {
            Some(info) => Ok(reply::ok(describe(vault, name, &info).await?, "transit")),
            None => Err(ApiError::not_found()),
        },
        ("keys", "rotate", Verb::Write) => {
            let Some(mut info) = load(vault, name).await? else { return Err(ApiError::not_found()) };
            let version = info_version(vault, name).await?;
            info.latest_version += 1;
            info.versions.insert(info.latest_version, now_ms() / 1000);
            save(vault, name, &info, Some(version)).await?;
            Ok(reply::ok(describe(vault, name, &info).await?, "transit"))
        }
        ("keys", "config", Verb::Write) => {
            let Some(mut info) = load(vault, name).await? else { return Err(ApiError::not_found()) };
            let version = info_version(vault, name).await?;
            if let Some(min) = call.json()?.get("min_decryption_version").and_then(Value::as_u64) {
                let min = u32::try_from(min).unwrap_or(u32::MAX);
                if min == 0 || min > info.latest_version {
                    return Err(ApiError::invalid(
                        "min_decryption_version must be between 1 and the latest version",
                    ));
                }
                info.min_decryption_version = min;
            }
            save(vault, name, &info, Some(version)).await?;
            Ok(reply::ok(describe(vault, name, &info).await?, "transit"))
        }
        ("encrypt", "", Verb::Write) => {
            let body = call.json()?;
            let kind = body.get("type").and_then(Value::as_str).unwrap_or("chacha20-poly1305");
            let info = load_or_create(vault, name, kind).await?;
            info.must(false)?;
            each(vault, name, &info, &body, Op::Encrypt).await
        }
        ("decrypt", "", Verb::Write) => {
            let info = existing(vault, name).await?;
            info.must(false)?;
            each(vault, name, &info, &call.json()?, Op::Decrypt).await
        }
        ("rewrap", "", Verb::Write) => {
            let info = existing(vault, name).await?;
            info.must(false)?;
            each(vault, name, &info, &call.json()?, Op::Rewrap).await
        }
        ("sign", "", Verb::Write) => {
            let info = existing(vault, name).await?;
            info.must(true)?;
            sign(vault, name, &info, &call.json()?).await
        }
        ("verify", "", Verb::Write) => {
            let info = existing(vault, name).await?;
            info.must(true)?;
            verify(vault, name, &info, &call.json()?).await
        }
        ("datakey", shown @ ("plaintext" | "wrapped"), Verb::Write) => {
            let info = existing(vault, name).await?;
            info.must(false)?;
            datakey(vault, name, &info, &call.json()?, shown == "plaintext").await
        }
        ("keys" | "encrypt" | "decrypt" | "rewrap" | "sign" | "verify" | "datakey", _, _) => {
            Err(ApiError::method())
        }
        _ => Err(ApiError::not_found()),
    }
}

/// The key `name`, which must exist.
async fn existing(vault: &Vault, name: &str) -> Result<KeyInfo, ApiError> {
    load(vault, name).await?.ok_or_else(|| ApiError::invalid(format!("key not found: {}", shown(name))))
}

/// The Base64 `input` of a signing request.
fn input(body: &Value) -> Result<Vec<u8>, ApiError> {
    let text = body.get("input").and_then(Value::as_str).ok_or_else(|| ApiError::invalid("missing input"))?;
    Base64::decode_vec(text).map_err(|_| ApiError::invalid("input must be Base64"))
}

/// `POST transit/sign/<name>` `{"input", "key_version"?}`: an Ed25519 signature of the input.
async fn sign(vault: &Vault, name: &str, info: &KeyInfo, body: &Value) -> Result<Response, ApiError> {
    let message = input(body)?;
    let version = match body.get("key_version").and_then(Value::as_u64) {
        None | Some(0) => info.latest_version,
        Some(v) => u32::try_from(v)
            .ok()
            .filter(|v| *v <= info.latest_version && *v >= info.min_decryption_version)
            .ok_or_else(|| ApiError::invalid("requested version for signing is not available"))?,
    };
    let (signature, _) = vault.transit_sign(name, version, &message).await?;
    let text = format!("vault:v{version}:{}", Base64::encode_string(&signature));
    Ok(reply::ok(json!({ "signature": text, "key_version": version }), "transit"))
}

/// `POST transit/verify/<name>` `{"input", "signature"}`: whether the signature is the key's over
/// the input (a malformed signature is a 400, a wrong one `valid: false`).
async fn verify(vault: &Vault, name: &str, info: &KeyInfo, body: &Value) -> Result<Response, ApiError> {
    let message = input(body)?;
    let text = body
        .get("signature")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid("missing signature"))?;
    let bad = || ApiError::invalid("invalid signature: not vault:v<N>:<base64 of 64 bytes>");
    let (version, data) = versioned(text, info, bad)?;
    let signature: [u8; 64] = data.try_into().map_err(|_| bad())?;
    let public = vault.transit_public_key(name, version).await?;
    let valid = tresor_crypto::slip10::verify(&public, &message, &signature);
    Ok(reply::ok(json!({ "valid": valid }), "transit"))
}

/// `POST transit/datakey/{plaintext|wrapped}/<name>` `{"bits"?}`: a fresh random key (256 bits by
/// default; 128 or 512) encrypted under the key, and shown in the clear only for `plaintext`.
async fn datakey(
    vault: &Vault,
    name: &str,
    info: &KeyInfo,
    body: &Value,
    show: bool,
) -> Result<Response, ApiError> {
    let bits = body.get("bits").and_then(Value::as_u64).unwrap_or(256);
    if ![128, 256, 512].contains(&bits) {
        return Err(ApiError::invalid("bits must be 128, 256 or 512"));
    }
    let key =
        tresor_crypto::random_bytes(usize::try_from(bits / 8).unwrap_or(32)).map_err(tresor::Error::from)?;
    let key = zeroize::Zeroizing::new(key);
    let item = json!({ "plaintext": Base64::encode_string(&key) });
    let mut out = encrypt(vault, name, info, &item).await?;
    if show {
        out["plaintext"] = item["plaintext"].clone();
    }
    Ok(reply::ok(out, "transit"))
}

/// What a batchable request does to each item.
#[derive(Clone, Copy)]
enum Op {
    Encrypt,
    Decrypt,
    Rewrap,
}

/// Does `op` on the request itself, or on each item of its `batch_input` (each item's error is
/// its own result, as Vault reports batches).
async fn each(vault: &Vault, name: &str, info: &KeyInfo, body: &Value, op: Op) -> Result<Response, ApiError> {
    let one = |item: Value| async move {
        match op {
            Op::Encrypt => encrypt(vault, name, info, &item).await,
            Op::Decrypt => decrypt(vault, name, info, &item).await,
            Op::Rewrap => {
                let plaintext = decrypt(vault, name, info, &item).await?;
                let mut again = item.clone();
                again["plaintext"] = plaintext["plaintext"].clone();
                encrypt(vault, name, info, &again).await
            }
        }
    };
    let field = if matches!(op, Op::Encrypt) { "plaintext" } else { "ciphertext" };
    match body.get("batch_input").and_then(Value::as_array) {
        Some(items) => {
            let mut results = Vec::with_capacity(items.len());
            for item in items {
                results.push(match one(item.clone()).await {
                    Ok(v) => v,
                    Err(e) => json!({ "error": e.messages.join("; ") }),
                });
            }
            Ok(reply::ok(json!({ "batch_results": results }), "transit"))
        }
        None if body.get(field).is_some_and(|v| !v.is_null()) => {
            Ok(reply::ok(one(body.clone()).await?, "transit"))
        }
        None => Err(ApiError::invalid(format!("missing {field}"))),
    }
}

/// Encrypts the Base64 `plaintext` of `item` under the latest version (or `key_version`).
async fn encrypt(vault: &Vault, name: &str, info: &KeyInfo, item: &Value) -> Result<Value, ApiError> {
    let text = item
        .get("plaintext")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid("missing plaintext"))?;
    let plaintext = zeroize::Zeroizing::new(
        Base64::decode_vec(text).map_err(|_| ApiError::invalid("plaintext must be Base64"))?,
    );
    let version = match item.get("key_version").and_then(Value::as_u64) {
        None | Some(0) => info.latest_version,
        Some(v) => u32::try_from(v)
            .ok()
            .filter(|v| *v <= info.latest_version && *v >= info.min_decryption_version)
            .ok_or_else(|| ApiError::invalid("requested version for encryption is not available"))?,
    };
    let sealed = vault.encrypt(&format!("{name}.v{version}"), info.algorithm(), &plaintext).await?;
    Ok(
        json!({ "ciphertext": format!("vault:v{version}:{}", Base64::encode_string(&sealed)), "key_version": version }),
    )
}

/// Decrypts the `ciphertext` of `item` (`vault:v<N>:…`), refused below the minimum version.
async fn decrypt(vault: &Vault, name: &str, info: &KeyInfo, item: &Value) -> Result<Value, ApiError> {
    let text = item
        .get("ciphertext")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid("missing ciphertext"))?;
    let bad = || ApiError::invalid("invalid ciphertext: not vault:v<N>:<base64> of this key");
    let (version, sealed) = versioned(text, info, bad)?;
    let plaintext = vault.decrypt(&sealed, Some(&format!("{name}.v{version}"))).await?;
    Ok(json!({ "plaintext": Base64::encode_string(plaintext.as_slice()) }))
}

/// The key version and bytes of a `vault:v<N>:<base64>` ciphertext or signature, refused (`bad`)
/// when malformed, and refused by policy below the key's minimum version or past its latest.
fn versioned(text: &str, info: &KeyInfo, bad: impl Fn() -> ApiError) -> Result<(u32, Vec<u8>), ApiError> {
    let rest = text.trim().strip_prefix("vault:v").ok_or_else(&bad)?;
    let (version, data) = rest.split_once(':').ok_or_else(&bad)?;
    let version: u32 = version.parse().map_err(|_| bad())?;
    if version < info.min_decryption_version || version > info.latest_version {
        return Err(ApiError::invalid("this version is disallowed by policy (too old, or not made yet)"));
    }
    Ok((version, Base64::decode_vec(data).map_err(|_| bad())?))
}

/// A key as `GET transit/keys/<name>` shows it (a signing key's versions with their public keys).
async fn describe(vault: &Vault, name: &str, info: &KeyInfo) -> Result<Value, ApiError> {
    let mut keys = serde_json::Map::new();
    for (v, t) in &info.versions {
        let shown = if info.signs() {
            let public = vault.transit_public_key(name, *v).await?;
            json!({ "creation_time": t, "name": SIGNING, "public_key": Base64::encode_string(&public) })
        } else {
            json!(t)
        };
        keys.insert(v.to_string(), shown);
    }
    Ok(json!({
        "name": shown(name),
        "type": info.kind,
        "latest_version": info.latest_version,
        "min_decryption_version": info.min_decryption_version,
        "min_encryption_version": 0,
        "keys": keys,
        "deletion_allowed": false,
        "exportable": false,
        "allow_plaintext_backup": false,
        "derived": false,
        "supports_encryption": !info.signs(),
        "supports_decryption": !info.signs(),
        "supports_derivation": false,
        "supports_signing": info.signs(),
    }))
}
