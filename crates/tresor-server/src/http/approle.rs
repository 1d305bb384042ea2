//! AppRole (`auth/approle/`): a machine logs in with a role ID (public, names the role) and a
//! secret ID (secret, issued per machine) and gets a token with the role's policies. Roles and
//! secret IDs live in the vault's system namespace; a secret ID only as its keyed hash.

use super::Unsealed;
use super::auth::duration_s;
use super::reply::{self, ApiError};
use super::route::{Call, Verb};
use super::tokens::{self, now_ms};
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
}

/// A secret ID's record (named by its keyed hash).
#[derive(Serialize, Deserialize)]
struct SecretId {
    accessor: String,
    created_ms: u64,
    expire_ms: Option<u64>,
}

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

fn role_id_path(role_id: &str) -> Result<SecretPath, ApiError> {
    if role_id.is_empty()
        || role_id.len() > 128
        || !role_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(ApiError::invalid("invalid role_id or secret_id"));
    }
    Ok(SecretPath::system(&format!("approle/role-ids/{role_id}"))?)
}

fn secret_id_path(unsealed: &Unsealed, role: &str, secret_id: &str) -> Result<SecretPath, ApiError> {
    let hash = unsealed.tokens.hash(b"tresor/v1/server/approle-secret-id", secret_id);
    Ok(SecretPath::system(&format!("approle/secret-ids/{role}/{hash}"))?)
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
    let name: Option<String> = match vault.get(&role_id_path(&role_id).map_err(|_| refused())?, None).await {
        Ok(bytes) => Some(String::from_utf8_lossy(bytes.as_slice()).into_owned()),
        Err(tresor::Error::NotFound { .. } | tresor::Error::Deleted { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let Some(name) = name else { return Err(refused()) };
    let Some(role) = read::<Role>(vault, &role_path(&name)?).await? else { return Err(refused()) };
    let Some(secret) = read::<SecretId>(vault, &secret_id_path(unsealed, &name, &secret_id)?).await? else {
        return Err(refused());
    };
    if secret.expire_ms.is_some_and(|t| t <= now_ms()) {
        return Err(refused());
    }
    let meta = BTreeMap::from([("role_name".to_string(), name.clone())]);
    let (token, record) = tokens::issue(
        vault,
        &unsealed.tokens,
        role.token_policies,
        role.token_ttl_s,
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
        "num_uses": 0,
    });
    Ok(reply::json(StatusCode::OK, &out))
}

/// `auth/approle/role[/<name>[/role-id|/secret-id]]`: manage roles and issue secret IDs.
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
            let secs = |key: &str, old: u64| -> Result<u64, ApiError> {
                match body.get(key) {
                    None | Some(Value::Null) => Ok(old),
                    Some(v) => duration_s(v),
                }
            };
            let role = Role {
                role_id: match &old {
                    Some(r) => r.role_id.clone(),
                    None => random_id()?,
                },
                token_policies: policies,
                token_ttl_s: secs("token_ttl", old.as_ref().map_or(0, |r| r.token_ttl_s))?,
                secret_id_ttl_s: secs("secret_id_ttl", old.as_ref().map_or(0, |r| r.secret_id_ttl_s))?,
            };
            if old.is_none() {
                vault.set(&role_id_path(&role.role_id)?, name.as_bytes()).await?;
            }
            write(vault, &path, &role).await?;
            Ok(reply::no_content())
        }
        (name, "", Verb::Read) => match read::<Role>(vault, &role_path(name)?).await? {
            Some(r) => Ok(reply::ok(
                json!({ "token_policies": r.token_policies, "token_ttl": r.token_ttl_s, "secret_id_ttl": r.secret_id_ttl_s }),
                "approle",
            )),
            None => Err(ApiError::not_found()),
        },
        (name, "", Verb::Delete) => {
            if let Some(r) = read::<Role>(vault, &role_path(name)?).await? {
                let _ = vault.delete(&role_id_path(&r.role_id)?).await;
                vault.delete(&role_path(name)?).await?;
            }
            Ok(reply::no_content())
        }
        (name, "role-id", Verb::Read) => match read::<Role>(vault, &role_path(name)?).await? {
            Some(r) => Ok(reply::ok(json!({ "role_id": r.role_id }), "approle")),
            None => Err(ApiError::not_found()),
        },
        (name, "secret-id", Verb::Write) => {
            let Some(role) = read::<Role>(vault, &role_path(name)?).await? else {
                return Err(ApiError::not_found());
            };
            let secret_id = random_id()?;
            let record = SecretId {
                accessor: random_id()?,
                created_ms: now_ms(),
                expire_ms: (role.secret_id_ttl_s > 0)
                    .then(|| now_ms().saturating_add(role.secret_id_ttl_s.saturating_mul(1000))),
            };
            write(vault, &secret_id_path(unsealed, name, &secret_id)?, &record).await?;
            Ok(reply::ok(
                json!({ "secret_id": secret_id, "secret_id_accessor": record.accessor, "secret_id_ttl": role.secret_id_ttl_s, "secret_id_num_uses": 0 }),
                "approle",
            ))
        }
        _ => Err(ApiError::method()),
    }
}
