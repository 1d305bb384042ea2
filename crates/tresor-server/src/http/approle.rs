//! AppRole (`auth/approle/`): a machine logs in with a role ID (public, names the role) and a
//! secret ID (secret, issued per machine) and gets a token with the role's policies. Roles and
//! secret IDs live in the vault's system namespace; a secret ID only as its keyed hash.

use super::Unsealed;
use super::auth::duration_s;
use super::reply::{self, ApiError};
use super::route::{Call, Verb};
use super::tokens::{self, TokenKey, now_ms};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use tresor::Vault;
use tresor::path::SecretPath;

/// A role.
#[derive(Serialize, Deserialize)]
struct Role {
    role_id: String,
    token_policies: Vec<String>,
    /// Lifetime of the tokens it issues, in seconds (0: the default).
    token_ttl_s: u64,
    /// Lifetime of its secret IDs, in seconds (0: no expiry).
    secret_id_ttl_s: u64,
    /// The hard end of its tokens' lives from their issue, renewals included (0: the server's).
    #[serde(default)]
    token_max_ttl_s: u64,
    /// Requests each of its tokens may make (0: any number).
    #[serde(default)]
    token_num_uses: u64,
    /// Logins each of its secret IDs may make (0: any number).
    #[serde(default)]
    secret_id_num_uses: u64,
}

/// A secret ID's record (named by its keyed hash; an index by its accessor names the hash).
#[derive(Serialize, Deserialize)]
struct SecretId {
    accessor: String,
    created_ms: u64,
    expire_ms: Option<u64>,
    /// The role ID of the role it was issued for: a role deleted and made again under its name
    /// has another, and takes none of the old one's secret IDs. (A record without one predates it
    /// and is refused.)
    #[serde(default)]
    role_id: Option<String>,
    /// Logins it may still make; `None`: any number.
    #[serde(default)]
    uses_left: Option<u64>,
}

/// Role settings that would restrict what a role issues but that this server does not enforce:
/// a write asking for one (anything but its default) is refused, never silently ignored.
const UNENFORCED: [&str; 6] = [
    "secret_id_bound_cidrs",
    "token_bound_cidrs",
    "bound_cidr_list",
    "bind_secret_id",
    "token_period",
    "period",
];

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty()
        || name.len() > 128
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(ApiError::invalid(format!("invalid role name \"{name}\"")));
    }
    Ok(())
}

fn role_path(name: &str) -> Result<SecretPath, ApiError> {
    check_name(name)?;
    Ok(SecretPath::system(&format!("approle/roles/{name}"))?)
}

/// Whether the role whose role ID is `role_id` is still there (a role made again has another
/// role ID): bookkeeping, unaudited.
pub(crate) async fn role_is_there(
    vault: &Vault,
    key: &TokenKey,
    role_id: &str,
) -> Result<bool, tresor::Error> {
    Ok(role_named_by(vault, key, role_id).await?.is_some())
}

/// The name of the role whose role ID is `role_id`, if there is one (none for a role ID that is
/// not one in form): bookkeeping, unaudited.
async fn role_named_by(
    vault: &Vault,
    key: &TokenKey,
    role_id: &str,
) -> Result<Option<String>, tresor::Error> {
    let Ok([keyed, plain]) = role_id_paths(key, role_id) else { return Ok(None) };
    for path in [keyed, plain] {
        if let tresor::vault::SystemEntry::Current(_, name) = vault.system_entry(&path, None).await? {
            return Ok(Some(String::from_utf8_lossy(name.as_slice()).into_owned()));
        }
    }
    Ok(None)
}

/// Where a role ID names its role: under its keyed hash (written since review found role IDs,
/// half a credential, in the audit trail's paths), and under itself (written before; still
/// read, and removed with the role).
fn role_id_paths(key: &TokenKey, role_id: &str) -> Result<[SecretPath; 2], ApiError> {
    if role_id.is_empty()
        || role_id.len() > 128
        || !role_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(ApiError::invalid("invalid role_id or secret_id"));
    }
    let keyed = key.hash(b"tresor/v1/server/approle-role-id", role_id);
    Ok([
        SecretPath::system(&format!("approle/role-ids/{keyed}"))?,
        SecretPath::system(&format!("approle/role-ids/{role_id}"))?,
    ])
}

fn secret_id_hash(unsealed: &Unsealed, secret_id: &str) -> String {
    unsealed.tokens.hash(b"tresor/v1/server/approle-secret-id", secret_id)
}

fn secret_id_path(role: &str, hash: &str) -> Result<SecretPath, ApiError> {
    Ok(SecretPath::system(&format!("approle/secret-ids/{role}/{hash}"))?)
}

/// Where a secret ID's accessor names its hash.
fn accessor_path(role: &str, accessor: &str) -> Result<SecretPath, ApiError> {
    if accessor.is_empty()
        || accessor.len() > 64
        || !accessor.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
    {
        return Err(ApiError::invalid("invalid secret_id_accessor"));
    }
    Ok(SecretPath::system(&format!("approle/secret-id-accessors/{role}/{accessor}"))?)
}

/// Removes the secret ID whose hash is `hash` (and its accessor's entry); whether there was one.
async fn destroy_secret_id(vault: &Vault, role: &str, hash: &str) -> Result<bool, ApiError> {
    let path = secret_id_path(role, hash)?;
    let Some(record) = read::<SecretId>(vault, &path).await? else { return Ok(false) };
    vault.delete(&path).await?;
    if let Ok(index) = accessor_path(role, &record.accessor) {
        let _ = vault.delete(&index).await;
    }
    Ok(true)
}

/// Removes the secret IDs that can no longer log in — expired, used up, or issued for a role ID
/// no role has any more — and accessor entries whose secret ID is gone; returns how many secret
/// IDs it removed. A record that does not parse is left alone. What `auth/approle/tidy/secret-id`
/// starts and the server runs every hour: before, an expired secret ID stayed for ever.
pub(crate) async fn tidy(vault: &Vault) -> Result<usize, ApiError> {
    // Decisions on the store as it is now, not within the read-staleness bound.
    vault.refresh().await?;
    let now = now_ms();
    // Bookkeeping, read unaudited: the deletions are audited, in the tidier's name.
    let under = |prefix: &'static str| async move {
        let entries = vault.system_entries(prefix).await?;
        Ok::<_, ApiError>(
            entries
                .into_iter()
                .filter_map(|e| {
                    let (_, rest) = e.path.split_once(prefix)?;
                    let (role, name) = rest.split_once('/')?;
                    Some((role.to_string(), name.to_string(), e.updated_ms))
                })
                .collect::<Vec<_>>(),
        )
    };
    let mut removed = 0;
    // Each role's role ID: `Some(None)` when the role is gone, `None` when it does not parse
    // (its secret IDs are then left alone).
    let mut role_ids: std::collections::BTreeMap<String, Option<Option<String>>> = Default::default();
    for (role, hash, _) in under("approle/secret-ids/").await? {
        let Ok(path) = secret_id_path(&role, &hash) else { continue };
        let Some(Ok(record)) = bookkeeping::<SecretId>(vault, &path).await? else { continue };
        if !role_ids.contains_key(&role) {
            let role_id = match role_path(&role) {
                Ok(at) => match bookkeeping::<Role>(vault, &at).await? {
                    None => Some(None),
                    Some(Ok(r)) => Some(Some(r.role_id)),
                    Some(Err(())) => None,
                },
                Err(_) => Some(None),
            };
            role_ids.insert(role.clone(), role_id);
        }
        let usable = match role_ids.get(&role) {
            // A role that does not parse: nothing of it is touched.
            None | Some(None) => continue,
            // The role is gone: its secret IDs can never log in again.
            Some(Some(None)) => false,
            Some(Some(Some(role_id))) => {
                record.expire_ms.is_none_or(|t| t > now)
                    && record.uses_left != Some(0)
                    && record.role_id.as_ref() == Some(role_id)
            }
        };
        if !usable && destroy_secret_id(vault, &role, &hash).await? {
            removed += 1;
        }
    }
    // Accessor entries left by a removal that stopped half-way. A new secret ID's entry is
    // written before its record (it is never live without a way to destroy it): an entry
    // younger than the grace may be one being made (found by review), and stays.
    for (role, accessor, written_ms) in under("approle/secret-id-accessors/").await? {
        if written_ms.saturating_add(ACCESSOR_GRACE_MS) > now {
            continue;
        }
        let Ok(index) = accessor_path(&role, &accessor) else { continue };
        let hash = match vault.system_entry(&index, None).await? {
            tresor::vault::SystemEntry::Current(_, hash) => {
                String::from_utf8_lossy(hash.as_slice()).into_owned()
            }
            _ => continue,
        };
        let Ok(path) = secret_id_path(&role, &hash) else { continue };
        if bookkeeping::<SecretId>(vault, &path).await?.is_none() {
            let _ = vault.delete(&index).await;
        }
    }
    Ok(removed)
}

/// How old an accessor entry with no secret ID must be before [`tidy`] removes it.
const ACCESSOR_GRACE_MS: u64 = 10 * 60 * 1000;

/// The entry at `path` parsed, read as bookkeeping (unaudited): `None` if there is none,
/// `Some(Err(()))` if it does not parse.
async fn bookkeeping<T: for<'de> Deserialize<'de>>(
    vault: &Vault,
    path: &SecretPath,
) -> Result<Option<Result<T, ()>>, ApiError> {
    Ok(match vault.system_entry(path, None).await? {
        tresor::vault::SystemEntry::Current(_, bytes) => {
            Some(serde_json::from_slice(bytes.as_slice()).map_err(drop))
        }
        _ => None,
    })
}

/// Takes one login from the secret ID at `path` (with check-and-set, so two logins at once never
/// spend one use twice): whether it could still log in. The last use removes it.
async fn spend_secret_id(vault: &Vault, role: &str, hash: &str, role_id: &str) -> Result<bool, ApiError> {
    let path = secret_id_path(role, hash)?;
    for _ in 0..16 {
        let (version, bytes) = match vault.system_entry(&path, None).await? {
            tresor::vault::SystemEntry::Current(version, bytes) => (version, bytes),
            _ => return Ok(false),
        };
        let mut record: SecretId =
            serde_json::from_slice(bytes.as_slice()).map_err(|e| ApiError::internal(e.to_string()))?;
        if record.role_id.as_deref() != Some(role_id) || record.expire_ms.is_some_and(|t| t <= now_ms()) {
            return Ok(false);
        }
        let left = match record.uses_left {
            None => return Ok(true),
            Some(0) => return Ok(false),
            Some(n) => n - 1,
        };
        record.uses_left = Some(left);
        let next = serde_json::to_vec(&record).map_err(|e| ApiError::internal(e.to_string()))?;
        match vault.set_cas(&path, &next, version).await {
            Ok(_) => {
                // Spent: gone (a failure here leaves a record with no use left, refused).
                if left == 0 {
                    let _ = destroy_secret_id(vault, role, hash).await;
                }
                return Ok(true);
            }
            Err(tresor::Error::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::from(tresor::Error::Conflict(
        "the secret ID kept changing during the login; try again".into(),
    )))
}

async fn read<T: for<'de> Deserialize<'de>>(vault: &Vault, path: &SecretPath) -> Result<Option<T>, ApiError> {
    match vault.get(path, None).await {
        Ok(bytes) => {
            Ok(Some(serde_json::from_slice(bytes.as_slice()).map_err(|e| ApiError::internal(e.to_string()))?))
        }
        Err(tresor::Error::NotFound { .. } | tresor::Error::Deleted { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn write<T: Serialize>(vault: &Vault, path: &SecretPath, value: &T) -> Result<(), ApiError> {
    let bytes = serde_json::to_vec(value).map_err(|e| ApiError::internal(e.to_string()))?;
    vault.set(path, &bytes).await?;
    Ok(())
}

fn random_id() -> Result<String, ApiError> {
    let b = tresor_crypto::random_array::<16>().map_err(|e| ApiError::internal(e.to_string()))?;
    let h = hex::encode(b);
    Ok(format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]))
}

/// `POST auth/approle/login` `{"role_id", "secret_id"}` (no token): a token with the role's
/// policies. Every failure is the same 400, whichever part was wrong.
pub(crate) async fn login(unsealed: &Unsealed, vault: &Vault, call: &Call) -> Result<Response, ApiError> {
    let body = call.json()?;
    let field = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let (role_id, secret_id) = (field("role_id"), field("secret_id"));
    let refused = || ApiError::invalid("invalid role_id or secret_id");
    // Looked up as bookkeeping, unaudited: the role ID is half a credential, and an audited read
    // put it in the trail's paths, for every token that may read the trail (found by review).
    // The login is audited all the same: the token it issues, or its refusal.
    let name = role_named_by(vault, &unsealed.tokens, &role_id).await?;
    let Some(name) = name else { return Err(refused()) };
    let Some(role) = read::<Role>(vault, &role_path(&name)?).await? else { return Err(refused()) };
    if secret_id.is_empty()
        || !spend_secret_id(vault, &name, &secret_id_hash(unsealed, &secret_id), &role.role_id).await?
    {
        return Err(refused());
    }
    let meta = BTreeMap::from([("role_name".to_string(), name.clone())]);
    let limits = tokens::Limits {
        ttl_s: role.token_ttl_s,
        max_ttl_s: role.token_max_ttl_s,
        num_uses: role.token_num_uses,
    };
    let (token, record) = tokens::issue(
        vault,
        &unsealed.tokens,
        &role.role_id,
        role.token_policies,
        limits,
        &format!("approle-{name}"),
        meta,
    )
    .await?;
    let mut out = reply::envelope(Value::Null, "approle");
    out["auth"] = json!({
        "client_token": token,
        "accessor": record.accessor,
        "policies": record.policies,
        "token_policies": record.policies,
        "metadata": record.meta,
        "lease_duration": record.ttl_left(),
        "renewable": record.renewable,
        "entity_id": "",
        "token_type": "service",
        "orphan": true,
        "num_uses": record.uses_left.unwrap_or(0),
    });
    Ok(reply::json(StatusCode::OK, &out))
}

/// A role write asking for a setting this server does not enforce (anything but its default):
/// refused with 400, so an operator never believes a role restricted that is not.
fn refuse_unenforced(body: &Value) -> Result<(), ApiError> {
    for key in UNENFORCED {
        let default = match body.get(key) {
            None | Some(Value::Null) => true,
            Some(Value::Array(list)) => list.is_empty(),
            Some(Value::String(text)) => match (key, text.trim()) {
                ("bind_secret_id", text) => text.eq_ignore_ascii_case("true"),
                (_, text) => text.is_empty() || text == "0" || text == "0s",
            },
            Some(Value::Bool(b)) => key == "bind_secret_id" && *b,
            Some(Value::Number(n)) => key != "bind_secret_id" && n.as_u64() == Some(0),
            Some(Value::Object(_)) => false,
        };
        if !default {
            return Err(ApiError::invalid(format!(
                "{key} is not supported by this server: the role was not changed"
            )));
        }
    }
    if let Some(kind) = body.get("token_type").and_then(Value::as_str)
        && !matches!(kind, "" | "default" | "service")
    {
        return Err(ApiError::invalid(format!(
            "token_type {kind} is not supported (only service tokens): the role was not changed"
        )));
    }
    Ok(())
}

/// `auth/approle/role[/<name>[/role-id|/secret-id[/destroy]|/secret-id-accessor/destroy]]`:
/// manage roles, issue, list and revoke secret IDs.
pub(crate) async fn role_route(
    unsealed: &Unsealed,
    vault: &Vault,
    call: &Call,
    rest: &str,
) -> Result<Response, ApiError> {
    let (name, what) = rest.split_once('/').unwrap_or((rest, ""));
    match (name, what, call.verb) {
        ("", "", Verb::List) => {
            let keys: Vec<String> = super::system_names(vault, "approle/roles/").await?;
            if keys.is_empty() {
                return Err(ApiError::not_found());
            }
            Ok(reply::ok(json!({ "keys": keys }), "approle"))
        }
        (name, "", Verb::Write) => {
            let body = call.json()?;
            let path = role_path(name)?;
            let old: Option<Role> = read(vault, &path).await?;
            let policies = match body.get("token_policies").or_else(|| body.get("policies")) {
                None | Some(Value::Null) => {
                    old.as_ref().map(|r| r.token_policies.clone()).unwrap_or_default()
                }
                Some(Value::String(list)) => {
                    list.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect()
                }
                Some(v) => serde_json::from_value(v.clone())
                    .map_err(|_| ApiError::invalid("token_policies must be a list of names"))?,
            };
            if policies.iter().any(|p| p == "root") {
                return Err(ApiError::invalid("a role cannot issue root tokens"));
            }
            refuse_unenforced(&body)?;
            let secs = |key: &str, old: u64| -> Result<u64, ApiError> {
                match body.get(key) {
                    None | Some(Value::Null) => Ok(old),
                    Some(v) => duration_s(v),
                }
            };
            let count = |key: &str, old: u64| -> Result<u64, ApiError> {
                match body.get(key) {
                    None | Some(Value::Null) => Ok(old),
                    Some(v) => v
                        .as_u64()
                        .or_else(|| v.as_str().and_then(|t| t.trim().parse().ok()))
                        .ok_or_else(|| ApiError::invalid(format!("{key} must be a number of uses"))),
                }
            };
            let was = |f: fn(&Role) -> u64| old.as_ref().map_or(0, f);
            // `token_explicit_max_ttl` caps a token's life as `token_max_ttl` does here: the
            // shorter of the two holds.
            let max_ttl = secs("token_max_ttl", was(|r| r.token_max_ttl_s))?;
            let explicit = secs("token_explicit_max_ttl", 0)?;
            let token_max_ttl_s = match (max_ttl, explicit) {
                (0, e) | (e, 0) => e,
                (m, e) => m.min(e),
            };
            let role = Role {
                role_id: match &old {
                    Some(r) => r.role_id.clone(),
                    None => random_id()?,
                },
                token_policies: policies,
                token_ttl_s: secs("token_ttl", was(|r| r.token_ttl_s))?,
                secret_id_ttl_s: secs("secret_id_ttl", was(|r| r.secret_id_ttl_s))?,
                token_max_ttl_s,
                token_num_uses: count("token_num_uses", was(|r| r.token_num_uses))?,
                secret_id_num_uses: count("secret_id_num_uses", was(|r| r.secret_id_num_uses))?,
            };
            if role.token_max_ttl_s > 0 && role.token_ttl_s > role.token_max_ttl_s {
                return Err(ApiError::invalid("token_ttl cannot be longer than token_max_ttl"));
            }
            if old.is_none() {
                let [keyed, _] = role_id_paths(&unsealed.tokens, &role.role_id)?;
                vault.set(&keyed, name.as_bytes()).await?;
            }
            write(vault, &path, &role).await?;
            Ok(reply::no_content())
        }
        (name, "", Verb::Read) => match read::<Role>(vault, &role_path(name)?).await? {
            Some(r) => Ok(reply::ok(
                json!({
                    "token_policies": r.token_policies, "token_ttl": r.token_ttl_s,
                    "token_max_ttl": r.token_max_ttl_s, "token_num_uses": r.token_num_uses,
                    "secret_id_ttl": r.secret_id_ttl_s, "secret_id_num_uses": r.secret_id_num_uses,
                    "bind_secret_id": true, "token_bound_cidrs": [], "secret_id_bound_cidrs": [],
                    "token_period": 0, "token_type": "service",
                }),
                "approle",
            )),
            None => Err(ApiError::not_found()),
        },
        (name, "", Verb::Delete) => {
            if let Some(r) = read::<Role>(vault, &role_path(name)?).await? {
                for path in role_id_paths(&unsealed.tokens, &r.role_id)? {
                    let _ = vault.delete(&path).await;
                }
                vault.delete(&role_path(name)?).await?;
            }
            // Its secret IDs go with it (a role made again under the name would refuse them
            // anyway: they name the old role ID).
            for hash in super::system_names(vault, &format!("approle/secret-ids/{name}/")).await? {
                destroy_secret_id(vault, name, &hash).await?;
            }
            for accessor in
                super::system_names(vault, &format!("approle/secret-id-accessors/{name}/")).await?
            {
                vault.delete(&accessor_path(name, &accessor)?).await?;
            }
            Ok(reply::no_content())
        }
        (name, "role-id", Verb::Read) => match read::<Role>(vault, &role_path(name)?).await? {
            Some(r) => Ok(reply::ok(json!({ "role_id": r.role_id }), "approle")),
            None => Err(ApiError::not_found()),
        },
        (name, "secret-id", Verb::Write) => {
            // Bounds on where a secret ID may be used from are not enforced here: refused.
            let body = call.json()?;
            for key in ["cidr_list", "token_bound_cidrs"] {
                if body.get(key).is_some_and(|v| !v.is_null() && v.as_array().is_none_or(|l| !l.is_empty())) {
                    return Err(ApiError::invalid(format!(
                        "{key} is not supported by this server: no secret ID was issued"
                    )));
                }
            }
            let Some(role) = read::<Role>(vault, &role_path(name)?).await? else {
                return Err(ApiError::not_found());
            };
            let secret_id = random_id()?;
            let record = SecretId {
                accessor: random_id()?,
                created_ms: now_ms(),
                expire_ms: (role.secret_id_ttl_s > 0)
                    .then(|| now_ms().saturating_add(role.secret_id_ttl_s.saturating_mul(1000))),
                role_id: Some(role.role_id.clone()),
                uses_left: (role.secret_id_num_uses > 0).then_some(role.secret_id_num_uses),
            };
            let hash = secret_id_hash(unsealed, &secret_id);
            // The accessor's entry first: a secret ID is never live without a way to destroy it.
            vault.set(&accessor_path(name, &record.accessor)?, hash.as_bytes()).await?;
            write(vault, &secret_id_path(name, &hash)?, &record).await?;
            Ok(reply::ok(
                json!({
                    "secret_id": secret_id, "secret_id_accessor": record.accessor,
                    "secret_id_ttl": role.secret_id_ttl_s, "secret_id_num_uses": role.secret_id_num_uses,
                }),
                "approle",
            ))
        }
        // The accessors of the role's live secret IDs.
        (name, "secret-id", Verb::List) => {
            role_path(name)?;
            let keys = super::system_names(vault, &format!("approle/secret-id-accessors/{name}/")).await?;
            if keys.is_empty() {
                return Err(ApiError::not_found());
            }
            Ok(reply::ok(json!({ "keys": keys }), "approle"))
        }
        // Revoking one: by the secret ID itself, or by its accessor.
        (name, "secret-id/destroy", Verb::Write | Verb::Delete) => {
            role_path(name)?;
            let body = call.json()?;
            let secret_id = body.get("secret_id").and_then(Value::as_str).unwrap_or_default();
            if secret_id.is_empty() {
                return Err(ApiError::invalid("missing secret_id"));
            }
            destroy_secret_id(vault, name, &secret_id_hash(unsealed, secret_id)).await?;
            Ok(reply::no_content())
        }
        (name, "secret-id-accessor/destroy", Verb::Write | Verb::Delete) => {
            role_path(name)?;
            let body = call.json()?;
            let accessor = body.get("secret_id_accessor").and_then(Value::as_str).unwrap_or_default();
            let index = accessor_path(name, accessor)?;
            let hash = match vault.get(&index, None).await {
                Ok(bytes) => String::from_utf8_lossy(bytes.as_slice()).into_owned(),
                Err(tresor::Error::NotFound { .. } | tresor::Error::Deleted { .. }) => {
                    return Err(ApiError::invalid("no secret ID has this accessor"));
                }
                Err(e) => return Err(e.into()),
            };
            destroy_secret_id(vault, name, &hash).await?;
            let _ = vault.delete(&index).await;
            Ok(reply::no_content())
        }
        _ => Err(ApiError::method()),
    }
}
