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

use super::MAX_BATCH;
use super::fields::whole;
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
use tresor::vault::SystemEntry;
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

/// The key `name` and the version of its bookkeeping, read together (so a change checks and
/// sets against the very version it read). Not audited: the request is, in its own name.
async fn load(vault: &Vault, name: &str) -> Result<Option<(u64, KeyInfo)>, ApiError> {
    match vault.system_entry(&key_path(name)?, None).await? {
        SystemEntry::Current(version, bytes) => {
            let info =
                serde_json::from_slice(bytes.as_slice()).map_err(|e| ApiError::internal(e.to_string()))?;
            Ok(Some((version, info)))
        }
        SystemEntry::Absent => Ok(None),
        SystemEntry::Unchanged(_) => Err(ApiError::internal("the key's bookkeeping was not read")),
    }
}

fn encode(info: &KeyInfo) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(info).map_err(|e| ApiError::internal(e.to_string()))
}

/// The key `name`, made (with `kind`) if it does not exist yet.
async fn load_or_create(vault: &Vault, name: &str, kind: &str) -> Result<KeyInfo, ApiError> {
    if let Some((_, info)) = load(vault, name).await? {
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
    // Created once, whoever wins: a lost race reads the winner's.
    match vault.set_cas(&key_path(name)?, &encode(&info)?, 0).await {
        Ok(_) | Err(tresor::Error::Conflict(_)) => {}
        Err(e) => return Err(e.into()),
    }
    load(vault, name)
        .await?
        .map(|(_, info)| info)
        .ok_or_else(|| ApiError::internal("the key vanished as it was made"))
}

/// Changes the key `name` with `change`, checked and set against the version read, and read and
/// changed again when another change came first (rotations and configurations serialize; none
/// is lost or undone).
async fn update(
    vault: &Vault,
    name: &str,
    change: impl Fn(&mut KeyInfo) -> Result<(), ApiError>,
) -> Result<KeyInfo, ApiError> {
    for _ in 0..64 {
        let Some((version, mut info)) = load(vault, name).await? else { return Err(ApiError::not_found()) };
        change(&mut info)?;
        match vault.set_cas(&key_path(name)?, &encode(&info)?, version).await {
            Ok(_) => return Ok(info),
            Err(tresor::Error::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::with(
        axum::http::StatusCode::CONFLICT,
        format!("key {} kept changing while this change was made; try again", shown(name)),
    ))
}

/// Whether `field` of `body` asks for something (true, a number other than 0, text other than
/// empty, "false" or "0"), as a Vault client setting a flag would send it.
fn asks(body: &Value, field: &str) -> bool {
    match body.get(field) {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::String(t)) => !matches!(t.as_str(), "" | "false" | "0" | "0s"),
        Some(_) => true,
    }
}

/// Refuses a request that asks for a feature this mount does not have (Vault's derived and
/// convergent keys, associated data, exportable or deletable keys, automatic rotation): taken
/// silently, a derived key's contexts would not separate tenants, and associated data would
/// bind nothing.
fn unsupported(body: &Value, fields: &[&str]) -> Result<(), ApiError> {
    match fields.iter().find(|f| asks(body, f)) {
        Some(field) => {
            Err(ApiError::invalid(format!("{field} is not supported by this server's transit keys")))
        }
        None => Ok(()),
    }
}

/// What an encryption, decryption or rewrap item may not ask for.
const ITEM_UNSUPPORTED: &[&str] = &["context", "nonce", "associated_data", "convergent_encryption"];

/// What a key's creation or configuration may not ask for.
const KEY_UNSUPPORTED: &[&str] = &[
    "derived",
    "convergent_encryption",
    "exportable",
    "allow_plaintext_backup",
    "deletion_allowed",
    "auto_rotate_period",
    "min_encryption_version",
    "context",
];

/// The bookkeeping entry a write to `rest` of a transit mount creates when it does not exist
/// (`keys/<K>`, `encrypt/<K>`): asked by the policy check, since creating a key takes `create`
/// and using one `update`, as in Vault. `None` for any other path.
pub(crate) fn created_by(mount: &Mount, rest: &str) -> Option<SecretPath> {
    let (kind, name) = rest.split_once('/')?;
    if !matches!(kind, "keys" | "encrypt") || name.contains('/') {
        return None;
    }
    key_path(&qualified(mount, name).ok()?).ok()
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
        // Vault's, not tresor's: said so, rather than a 404 a client reads as "no such key".
        "hmac" | "random" | "hash" | "export" | "backup" | "restore" | "cache-config" | "wrapping_key"
        | "byok-export" | "import" => {
            return Err(ApiError::invalid(format!(
                "transit/{kind} is not supported by tresor's transit engine"
            )));
        }
        _ => return Err(ApiError::not_found()),
    };
    let name = name.as_str();
    match (kind, action, call.verb) {
        ("keys", "", Verb::Write) => {
            let body = call.json()?;
            unsupported(&body, KEY_UNSUPPORTED)?;
            let kind = body.get("type").and_then(Value::as_str).unwrap_or(DEFAULT_TYPE);
            load_or_create(vault, name, kind).await?;
            Ok(reply::no_content())
        }
        ("keys", "", Verb::Read) => match load(vault, name).await? {
            Some((_, info)) => Ok(reply::ok(describe(vault, name, &info).await?, "transit")),
            None => Err(ApiError::not_found()),
        },
        ("keys", "rotate", Verb::Write) => {
            let info = update(vault, name, |info| {
                info.latest_version = info
                    .latest_version
                    .checked_add(1)
                    .ok_or_else(|| ApiError::invalid("the key has no versions left"))?;
                info.versions.insert(info.latest_version, now_ms() / 1000);
                Ok(())
            })
            .await?;
            Ok(reply::ok(describe(vault, name, &info).await?, "transit"))
        }
        ("keys", "config", Verb::Write) => {
            let body = call.json()?;
            unsupported(&body, KEY_UNSUPPORTED)?;
            let min = whole(&body, "min_decryption_version")?;
            let info = update(vault, name, |info| {
                if let Some(min) = min {
                    // 0 is taken as 1, as Vault takes it.
                    let min = u32::try_from(min).unwrap_or(u32::MAX).max(1);
                    if min > info.latest_version {
                        return Err(ApiError::invalid(
                            "min_decryption_version must be between 1 and the latest version",
                        ));
                    }
                    info.min_decryption_version = min;
                }
                Ok(())
            })
            .await?;
            Ok(reply::ok(describe(vault, name, &info).await?, "transit"))
        }
        ("encrypt", "", Verb::Write) => {
            let body = call.json()?;
            unsupported(&body, ITEM_UNSUPPORTED)?;
            let kind = body.get("type").and_then(Value::as_str).unwrap_or(DEFAULT_TYPE);
            // A key made here encrypts: a signing type is refused before anything is made.
            if kind == SIGNING {
                return Err(ApiError::invalid("key type ed25519 does not support encryption"));
            }
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
        // `<name>/<hash_algorithm>`: an Ed25519 key signs the message itself, whatever hash is
        // named (Vault ignores it for Ed25519 too).
        ("sign", hash, Verb::Write) if hash.is_empty() || HASHES.contains(&hash) => {
            let info = existing(vault, name).await?;
            info.must(true)?;
            each(vault, name, &info, &call.json()?, Op::Sign).await
        }
        ("verify", hash, Verb::Write) if hash.is_empty() || HASHES.contains(&hash) => {
            let info = existing(vault, name).await?;
            info.must(true)?;
            each(vault, name, &info, &call.json()?, Op::Verify).await
        }
        ("datakey", shown @ ("plaintext" | "wrapped"), Verb::Write) => {
            let info = existing(vault, name).await?;
            info.must(false)?;
            datakey(vault, name, &info, &call.json()?, shown == "plaintext").await
        }
        // Keys are never deleted (`deletion_allowed` is refused): Vault's answer without it.
        ("keys", "", Verb::Delete) => match load(vault, name).await? {
            Some(_) => Err(ApiError::invalid("deletion is not allowed for this key")),
            None => Err(ApiError::not_found()),
        },
        ("keys", "trim", Verb::Write) => {
            Err(ApiError::invalid("transit/keys/<name>/trim is not supported by tresor's transit engine"))
        }
        ("sign" | "verify", hash, Verb::Write) => {
            Err(ApiError::invalid(format!("unsupported hash algorithm {hash}")))
        }
        ("keys" | "encrypt" | "decrypt" | "rewrap" | "sign" | "verify" | "datakey", _, _) => {
            Err(ApiError::method())
        }
        _ => Err(ApiError::not_found()),
    }
}

/// The key `name`, which must exist.
async fn existing(vault: &Vault, name: &str) -> Result<KeyInfo, ApiError> {
    load(vault, name)
        .await?
        .map(|(_, info)| info)
        .ok_or_else(|| ApiError::invalid(format!("key not found: {}", shown(name))))
}

/// The type of a key made without one: Vault's default.
const DEFAULT_TYPE: &str = "aes256-gcm96";

/// Standard Base64 as Go's decoder reads it (what Vault clients send): line breaks are skipped,
/// so the output of `base64` (76 columns, a newline at the end) decodes. The copy without them is
/// wiped (it may be a plaintext's Base64).
fn base64(text: &str) -> Option<zeroize::Zeroizing<Vec<u8>>> {
    let joined: zeroize::Zeroizing<String> =
        zeroize::Zeroizing::new(text.chars().filter(|c| *c != '\n' && *c != '\r').collect());
    Base64::decode_vec(&joined).ok().map(zeroize::Zeroizing::new)
}

/// The Base64 `input` of a signing request.
fn input(body: &Value) -> Result<Vec<u8>, ApiError> {
    let text = body.get("input").and_then(Value::as_str).ok_or_else(|| ApiError::invalid("missing input"))?;
    base64(text).map(|v| v.to_vec()).ok_or_else(|| ApiError::invalid("input must be Base64"))
}

/// The version `key_version` of `item` names (the latest when absent or 0), refused outside the
/// versions that may be used (`what`: "encryption", "signing").
fn chosen_version(item: &Value, info: &KeyInfo, what: &str) -> Result<u32, ApiError> {
    match whole(item, "key_version")? {
        None | Some(0) => Ok(info.latest_version),
        Some(v) => u32::try_from(v)
            .ok()
            .filter(|v| *v <= info.latest_version && *v >= info.min_decryption_version)
            .ok_or_else(|| ApiError::invalid(format!("requested version for {what} is not available"))),
    }
}

/// The hash algorithms a sign or verify path may name (`transit/sign/<name>/<hash>`).
pub(crate) const HASHES: &[&str] = &[
    "sha1", "sha2-224", "sha2-256", "sha2-384", "sha2-512", "sha3-224", "sha3-256", "sha3-384", "sha3-512",
    "none",
];

/// What a signing or verifying request may not ask of an Ed25519 key: a derived key's
/// `context`, and a message hashed by the client (Ed25519 signs the message itself).
const SIGN_UNSUPPORTED: &[&str] = &["context", "prehashed"];

/// `POST transit/sign/<name>` `{"input" | "batch_input", "key_version"?}`: an Ed25519 signature
/// of each input under the latest version (or `key_version`), in one call to the vault (one
/// audit record): one result per item.
async fn sign_all(
    vault: &Vault,
    name: &str,
    info: &KeyInfo,
    body: &Value,
    items: &[Value],
) -> Result<Vec<Result<Value, ApiError>>, ApiError> {
    unsupported(body, SIGN_UNSUPPORTED)?;
    let version = chosen_version(body, info, "signing")?;
    let inputs: Vec<Result<Vec<u8>, ApiError>> = items
        .iter()
        .map(|item| {
            unsupported(item, SIGN_UNSUPPORTED)?;
            input(item)
        })
        .collect();
    let messages: Vec<Vec<u8>> = inputs.iter().filter_map(|r| r.as_ref().ok().cloned()).collect();
    let mut signatures = if messages.is_empty() {
        Vec::new().into_iter()
    } else {
        vault.transit_sign_batch(name, version, messages).await?.0.into_iter()
    };
    Ok(inputs
        .into_iter()
        .map(|r| {
            r.and_then(|_| {
                let signature = signatures.next().ok_or_else(|| ApiError::internal("no signature"))?;
                let text = format!("vault:v{version}:{}", Base64::encode_string(&signature));
                Ok(json!({ "signature": text, "key_version": version }))
            })
        })
        .collect())
}

/// `POST transit/verify/<name>` `{"input", "signature"}` or a `batch_input` of them: whether each
/// signature is the key's over its input (a malformed signature is an error, a wrong one
/// `valid: false`).
async fn verify_all(
    vault: &Vault,
    name: &str,
    info: &KeyInfo,
    items: &[Value],
) -> Result<Vec<Result<Value, ApiError>>, ApiError> {
    let mut publics: BTreeMap<u32, [u8; 32]> = BTreeMap::new();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let checked = async {
            unsupported(item, SIGN_UNSUPPORTED)?;
            let message = input(item)?;
            let text = item
                .get("signature")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::invalid("missing signature"))?;
            let bad = || ApiError::invalid("invalid signature: not vault:v<N>:<base64 of 64 bytes>");
            let (version, data) = versioned(text, info, bad)?;
            let signature: [u8; 64] = data.try_into().map_err(|_| bad())?;
            let public = match publics.get(&version) {
                Some(public) => *public,
                None => {
                    let public = vault.transit_public_key(name, version).await?;
                    publics.insert(version, public);
                    public
                }
            };
            Ok(json!({ "valid": tresor_crypto::slip10::verify(&public, &message, &signature) }))
        };
        out.push(checked.await);
    }
    Ok(out)
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
    unsupported(body, ITEM_UNSUPPORTED)?;
    let bits = whole(body, "bits")?.unwrap_or(256);
    if ![128, 256, 512].contains(&bits) {
        return Err(ApiError::invalid("bits must be 128, 256 or 512"));
    }
    let key =
        tresor_crypto::random_bytes(usize::try_from(bits / 8).unwrap_or(32)).map_err(tresor::Error::from)?;
    let key = zeroize::Zeroizing::new(key);
    let item = json!({ "plaintext": Base64::encode_string(&key), "key_version": body.get("key_version") });
    let mut out = encrypt_all(vault, name, info, std::slice::from_ref(&item))
        .await?
        .pop()
        .unwrap_or_else(|| Err(ApiError::internal("no result")))?;
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
    Sign,
    Verify,
}

/// Does `op` on the request itself, or on each item of its `batch_input` (each item's error is
/// its own result, as Vault reports batches); the vault is called once for all the items, and
/// audits them in one record.
async fn each(vault: &Vault, name: &str, info: &KeyInfo, body: &Value, op: Op) -> Result<Response, ApiError> {
    let field = match op {
        Op::Encrypt => "plaintext",
        Op::Decrypt | Op::Rewrap => "ciphertext",
        Op::Sign | Op::Verify => "input",
    };
    let (items, batch) = match body.get("batch_input") {
        None | Some(Value::Null) if body.get(field).is_some_and(|v| !v.is_null()) => {
            (std::slice::from_ref(body), false)
        }
        None | Some(Value::Null) => return Err(ApiError::invalid(format!("missing {field}"))),
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(ApiError::invalid("missing batch input to process"));
        }
        Some(Value::Array(items)) if items.len() > MAX_BATCH => {
            return Err(ApiError::invalid(format!("a batch takes at most {MAX_BATCH} items")));
        }
        Some(Value::Array(items)) => (items.as_slice(), true),
        Some(_) => return Err(ApiError::invalid("batch_input must be a list")),
    };
    let mut results = match op {
        Op::Sign => sign_all(vault, name, info, body, items).await?,
        Op::Verify => verify_all(vault, name, info, items).await?,
        Op::Encrypt => encrypt_all(vault, name, info, items).await?,
        Op::Decrypt => decrypt_all(vault, name, info, items)
            .await?
            .into_iter()
            .map(|r| r.map(|plain| json!({ "plaintext": Base64::encode_string(plain.as_slice()) })))
            .collect(),
        Op::Rewrap => {
            // Each item decrypted, then encrypted again (under its `key_version`, or the latest).
            let plain = decrypt_all(vault, name, info, items).await?;
            let again: Vec<Value> = plain
                .iter()
                .zip(items)
                .filter_map(|(r, item)| r.as_ref().ok().map(|p| (p, item)))
                .map(|(p, item)| {
                    json!({ "plaintext": Base64::encode_string(p.as_slice()), "key_version": item.get("key_version") })
                })
                .collect();
            let mut sealed = encrypt_all(vault, name, info, &again).await?.into_iter();
            plain
                .into_iter()
                .map(|r| {
                    r.and_then(|_| sealed.next().unwrap_or_else(|| Err(ApiError::internal("no result"))))
                })
                .collect()
        }
    };
    if !batch {
        return Ok(reply::ok(
            results.pop().unwrap_or_else(|| Err(ApiError::internal("no result")))?,
            "transit",
        ));
    }
    // As Vault answers a batch: every item's `reference` echoed; an item that failed makes the
    // whole answer a 400 (or the caller's `partial_failure_response_code` when some succeeded),
    // the results still in it.
    let failed = results.iter().filter(|r| r.is_err()).count();
    let all_failed = failed == results.len();
    // Signing and verifying answer every item (a failed verification `valid: false`) and a
    // `reference`, given or empty, with a 200 whatever failed: Vault's sign/verify batches
    // (review: hvac raised on a 400 and lost the good signatures).
    let signing = matches!(op, Op::Sign | Op::Verify);
    let results: Vec<Value> = results
        .into_iter()
        .zip(items)
        .map(|(r, item)| {
            let mut out = r.unwrap_or_else(|e| {
                let mut failed = json!({ "error": e.messages.join("; ") });
                if matches!(op, Op::Verify) {
                    failed["valid"] = Value::Bool(false);
                }
                failed
            });
            let reference = match item.get("reference") {
                Some(reference) => Some(reference.clone()),
                None if signing => Some(Value::from("")),
                None => None,
            };
            if let Some(reference) = reference
                && let Value::Object(fields) = &mut out
            {
                fields.insert("reference".into(), reference);
            }
            out
        })
        .collect();
    let answer = json!({ "batch_results": results });
    if failed == 0 || signing {
        return Ok(reply::ok(answer, "transit"));
    }
    // A status of the caller's for a partial failure: one that carries a body (review: 100 made a
    // 500 with nothing, 204 and 304 dropped the results, 600 and up were taken).
    let status = match whole(body, "partial_failure_response_code")? {
        Some(code) if !all_failed => {
            match u16::try_from(code).ok().filter(|c| (200..=599).contains(c) && ![204, 205, 304].contains(c))
            {
                Some(code) => axum::http::StatusCode::from_u16(code)
                    .map_err(|_| ApiError::invalid("partial_failure_response_code is not a status code"))?,
                None => {
                    return Err(ApiError::invalid(
                        "partial_failure_response_code must be a status from 200 to 599 that carries a body",
                    ));
                }
            }
        }
        _ => axum::http::StatusCode::BAD_REQUEST,
    };
    Ok(reply::json(status, &reply::envelope(answer, "transit")))
}

/// Encrypts the Base64 `plaintext` of each item under the latest version (or its `key_version`),
/// in one call to the vault: one result per item.
async fn encrypt_all(
    vault: &Vault,
    name: &str,
    info: &KeyInfo,
    items: &[Value],
) -> Result<Vec<Result<Value, ApiError>>, ApiError> {
    let prepare = |item: &Value| -> Result<(u32, zeroize::Zeroizing<Vec<u8>>), ApiError> {
        unsupported(item, ITEM_UNSUPPORTED)?;
        let text = item
            .get("plaintext")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::invalid("missing plaintext"))?;
        let plaintext = base64(text).ok_or_else(|| ApiError::invalid("plaintext must be Base64"))?;
        Ok((chosen_version(item, info, "encryption")?, plaintext))
    };
    let prepared: Vec<_> = items.iter().map(prepare).collect();
    let mut versions = Vec::new();
    let mut work = Vec::new();
    for (version, plaintext) in prepared.iter().flatten() {
        versions.push(*version);
        work.push((format!("{name}.v{version}"), plaintext.clone()));
    }
    let mut sealed = if work.is_empty() {
        Vec::new().into_iter()
    } else {
        vault.encrypt_batch(info.algorithm(), work).await?.into_iter()
    };
    let mut versions = versions.into_iter();
    Ok(prepared
        .into_iter()
        .map(|p| {
            p?;
            let version = versions.next().ok_or_else(|| ApiError::internal("no result"))?;
            let sealed = sealed.next().ok_or_else(|| ApiError::internal("no result"))??;
            Ok(json!({
                "ciphertext": format!("vault:v{version}:{}", Base64::encode_string(&sealed)),
                "key_version": version,
            }))
        })
        .collect())
}

/// Decrypts the `ciphertext` (`vault:v<N>:…`) of each item, refused below the minimum version, in
/// one call to the vault: one result per item.
async fn decrypt_all(
    vault: &Vault,
    name: &str,
    info: &KeyInfo,
    items: &[Value],
) -> Result<Vec<Result<tresor_crypto::SecretBytes, ApiError>>, ApiError> {
    let prepare = |item: &Value| -> Result<(Vec<u8>, String), ApiError> {
        unsupported(item, ITEM_UNSUPPORTED)?;
        let text = item
            .get("ciphertext")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::invalid("missing ciphertext"))?;
        let bad = || ApiError::invalid("invalid ciphertext: not vault:v<N>:<base64> of this key");
        let (version, sealed) = versioned(text, info, bad)?;
        Ok((sealed, format!("{name}.v{version}")))
    };
    let prepared: Vec<_> = items.iter().map(prepare).collect();
    let work: Vec<(Vec<u8>, String)> = prepared.iter().flatten().cloned().collect();
    let mut opened =
        if work.is_empty() { Vec::new().into_iter() } else { vault.decrypt_batch(work).await?.into_iter() };
    Ok(prepared
        .into_iter()
        .map(|p| {
            p?;
            Ok(opened.next().ok_or_else(|| ApiError::internal("no result"))??)
        })
        .collect())
}

/// The key version and bytes of a `vault:v<N>:<base64>` ciphertext or signature, refused (`bad`)
/// when malformed (N in plain decimal: no sign, no leading zero), and refused by policy below the
/// key's minimum version or past its latest.
fn versioned(text: &str, info: &KeyInfo, bad: impl Fn() -> ApiError) -> Result<(u32, Vec<u8>), ApiError> {
    let rest = text.trim().strip_prefix("vault:v").ok_or_else(&bad)?;
    let (version, data) = rest.split_once(':').ok_or_else(&bad)?;
    let version = super::fields::decimal(version).and_then(|v| u32::try_from(v).ok()).ok_or_else(&bad)?;
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
