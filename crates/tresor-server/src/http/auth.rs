//! `auth/token/*` and `sys/policies/acl/*`: making, looking up, renewing and revoking tokens, and
//! the policies they carry (stored as their text in the vault's system namespace).

use super::Unsealed;
use super::cache::Caches;
use super::fields::flag;
use super::policy::{self, Policy};
use super::reply::{self, ApiError, time};
use super::route::{Call, Verb};
use super::tokens::{self, CreateError, TokenRecord};
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use tresor::Vault;
use tresor::path::SecretPath;

/// The system path of the stored policy `name`.
fn policy_path(name: &str) -> Result<SecretPath, ApiError> {
    if name.is_empty()
        || name.len() > 128
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(ApiError::invalid(format!("invalid policy name \"{name}\"")));
    }
    SecretPath::system(&format!("policies/{name}")).map_err(ApiError::from)
}

/// The policies of `record`, parsed: the built-in `default`, and each stored one (a missing or
/// unparsable one grants nothing).
pub(crate) async fn policies_of(
    vault: &Vault,
    cache: &Caches,
    record: &TokenRecord,
) -> Result<Vec<Policy>, ApiError> {
    let mut out = Vec::new();
    for name in &record.policies {
        if name == "default" {
            out.push(Policy::parse(policy::DEFAULT).map_err(ApiError::internal)?);
            continue;
        }
        let parse = |text: &[u8]| Policy::parse(&String::from_utf8_lossy(text));
        match cache.policies.get(vault, &policy_path(name)?, parse).await?.as_deref() {
            Some(Ok(p)) => {
                let identity = record.identity();
                out.push(p.clone().for_identity(identity_name(&identity), &identity));
            }
            Some(Err(e)) => tracing::warn!("policy {name} does not parse, so it grants nothing: {e}"),
            None => {}
        }
    }
    Ok(out)
}

/// The identity name policy templates see: the identity's `entity`, or the AppRole role a token
/// logged in with.
fn identity_name(identity: &BTreeMap<String, String>) -> Option<&str> {
    identity.get("entity").or_else(|| identity.get("role_name")).map(String::as_str)
}

/// What lookup shows of a token (`id` only to the token itself).
fn token_data(record: &TokenRecord, id: Option<&str>) -> Value {
    json!({
        "id": id.unwrap_or_default(),
        "accessor": record.accessor,
        "policies": record.policies,
        "display_name": record.display_name,
        "creation_time": record.created_ms / 1000,
        "creation_ttl": record.ttl_s,
        "explicit_max_ttl": record.explicit_max_ttl_s,
        "period": (record.period_s > 0).then_some(record.period_s),
        "expire_time": record.expire_ms.map(|t| time(Some(t))),
        "issue_time": time(Some(record.created_ms)),
        "ttl": record.ttl_left(),
        "renewable": record.renewable,
        "type": "service",
        "orphan": record.parent.is_none(),
        "num_uses": record.uses_left.unwrap_or(0),
        "path": if record.is_root() && record.parent.is_none() { "auth/token/root" } else { "auth/token/create" },
        "meta": if record.meta.is_empty() { Value::Null } else { json!(record.meta) },
        "entity_id": "",
    })
}

/// Vault's `auth` block of a response that hands out a token.
fn auth_block(token: &str, record: &TokenRecord) -> Value {
    json!({
        "client_token": token,
        "accessor": record.accessor,
        "policies": record.policies,
        "token_policies": record.policies,
        "metadata": if record.meta.is_empty() { Value::Null } else { json!(record.meta) },
        "lease_duration": record.ttl_left(),
        "renewable": record.renewable,
        "entity_id": "",
        "token_type": "service",
        "orphan": record.parent.is_none(),
        "num_uses": record.uses_left.unwrap_or(0),
    })
}

/// A Vault duration, in whole seconds: a number of seconds (as a number or text), or Go's
/// notation — one or more numbers with units, `90s`, `15m`, `1h30m`, `7d`, `250ms` (parts of a
/// second round down).
pub(crate) fn duration_s(value: &Value) -> Result<u64, ApiError> {
    let bad = || ApiError::invalid(format!("{value} is not a duration"));
    if let Some(n) = value.as_u64() {
        return Ok(n);
    }
    let text = value.as_str().ok_or_else(bad)?.trim();
    if let Ok(n) = text.parse::<u64>() {
        return Ok(n);
    }
    let mut rest = text;
    let mut millis: u64 = 0;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail.find(|c: char| c.is_ascii_digit()).unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let n: u64 = number.parse().map_err(|_| bad())?;
        let scale: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        millis = millis.saturating_add(n.saturating_mul(scale));
        rest = tail;
    }
    Ok(millis / 1_000)
}

/// Whole seconds in Go's notation, as Vault shows durations: `0s`, `45s`, `30m0s`, `3h0m0s`.
pub(crate) fn go_duration(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// A duration field that may be absent, null or empty.
fn optional_duration(value: Option<&Value>) -> Result<Option<u64>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) if v.as_str() == Some("") => Ok(None),
        Some(v) => duration_s(v).map(Some),
    }
}

/// One request under `auth/token/` from the token `token` with record `me` (at `my_path`).
pub(crate) async fn token_route(
    unsealed: &Unsealed,
    vault: &Vault,
    call: &Call,
    rest: &str,
    token: &str,
    me: &TokenRecord,
) -> Result<Response, ApiError> {
    let body = call.json()?;
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_string);
    match (rest, call.verb) {
        ("lookup-self", Verb::Read | Verb::Write) => Ok(reply::ok(token_data(me, Some(token)), "token")),
        ("create" | "create-orphan", Verb::Write) => {
            let request = tokens::Request {
                policies: match body.get("policies") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(
                        serde_json::from_value(v.clone())
                            .map_err(|_| ApiError::invalid("policies must be a list of names"))?,
                    ),
                },
                ttl_s: optional_duration(body.get("ttl"))?,
                display_name: text("display_name"),
                meta: match body.get("meta") {
                    None | Some(Value::Null) => BTreeMap::new(),
                    Some(v) => serde_json::from_value(v.clone())
                        .map_err(|_| ApiError::invalid("meta must map names to strings"))?,
                },
                no_parent: rest == "create-orphan" || flag(&body, "no_parent")? == Some(true),
                no_default_policy: flag(&body, "no_default_policy")? == Some(true),
                renewable: flag(&body, "renewable")? != Some(false),
                period_s: optional_duration(body.get("period"))?,
                explicit_max_ttl_s: optional_duration(body.get("explicit_max_ttl"))?,
                num_uses: super::fields::whole(&body, "num_uses")?.unwrap_or(0),
            };
            match tokens::create(vault, &unsealed.tokens, me, request).await {
                Ok((token, record)) => {
                    let mut body = reply::envelope(Value::Null, "token");
                    body["auth"] = auth_block(&token, &record);
                    Ok(reply::json(axum::http::StatusCode::OK, &body))
                }
                Err(CreateError::Denied(why)) => {
                    if let Err(e) = vault.audit_denied(&format!("{:?} {}", call.verb, call.path), &why).await
                    {
                        tracing::warn!("could not audit a denied request: {e}");
                    }
                    Err(ApiError { status: axum::http::StatusCode::FORBIDDEN, messages: vec![why] })
                }
                Err(CreateError::Invalid(why)) => Err(ApiError::invalid(why)),
                Err(CreateError::Vault(e)) => Err(e.into()),
            }
        }
        ("lookup", Verb::Write | Verb::Read) => {
            let other = text("token").ok_or_else(|| ApiError::invalid("missing token"))?;
            match tokens::lookup(vault, &unsealed.tokens, &unsealed.cache, &other).await? {
                Some(record) => Ok(reply::ok(token_data(&record, Some(&other)), "token")),
                None => Err(ApiError::invalid("bad token")),
            }
        }
        ("lookup-accessor", Verb::Write) => {
            let accessor = text("accessor").ok_or_else(|| ApiError::invalid("missing accessor"))?;
            match tokens::by_accessor(vault, &unsealed.cache, &accessor).await {
                Ok(Some((_, record))) => Ok(reply::ok(token_data(&record, None), "token")),
                Ok(None) | Err(tresor::Error::NotFound { .. }) => Err(ApiError::invalid("invalid accessor")),
                Err(e) => Err(e.into()),
            }
        }
        ("renew-self", Verb::Write) => {
            let increment = body.get("increment").filter(|v| !v.is_null()).map(duration_s).transpose()?;
            let path = tokens::path_of(&unsealed.tokens, token)?;
            match tokens::renew(vault, &unsealed.tokens, &unsealed.cache, &path, increment).await? {
                Some(renewed) => {
                    let mut body = reply::envelope(Value::Null, "token");
                    body["auth"] = auth_block(token, &renewed);
                    Ok(reply::json(axum::http::StatusCode::OK, &body))
                }
                None => Err(ApiError::invalid("this token is not renewable")),
            }
        }
        ("revoke-self", Verb::Write) => {
            tokens::revoke(vault, &tokens::path_of(&unsealed.tokens, token)?, me).await?;
            Ok(reply::no_content())
        }
        ("revoke", Verb::Write) => {
            let other = text("token").ok_or_else(|| ApiError::invalid("missing token"))?;
            if let Some(record) = tokens::lookup(vault, &unsealed.tokens, &unsealed.cache, &other).await? {
                tokens::revoke(vault, &tokens::path_of(&unsealed.tokens, &other)?, &record).await?;
            }
            Ok(reply::no_content())
        }
        ("tidy", Verb::Write) => Ok(super::start_tidy(
            unsealed,
            super::Tidy::Tokens,
            format!("token {} from {}", me.accessor, call.peer),
        )),
        ("revoke-accessor", Verb::Write) => {
            let accessor = text("accessor").ok_or_else(|| ApiError::invalid("missing accessor"))?;
            match tokens::by_accessor(vault, &unsealed.cache, &accessor).await {
                Ok(Some((path, record))) => {
                    tokens::revoke(vault, &path, &record).await?;
                    Ok(reply::no_content())
                }
                Ok(None) | Err(tresor::Error::NotFound { .. }) => Err(ApiError::invalid("invalid accessor")),
                Err(e) => Err(e.into()),
            }
        }
        _ => Err(ApiError::method()),
    }
}

/// `sys/policies/acl[/<name>]`: list, read, write (HCL or JSON, checked before it is stored) and
/// delete policies. `root` and `default` are built in.
pub(crate) async fn policy_route(vault: &Vault, call: &Call, name: &str) -> Result<Response, ApiError> {
    policies(vault, call, name, false).await
}

/// The older `sys/policy/<name>` routes, which clients such as vaultrs still use: a plain GET of
/// `sys/policy` lists, a policy reads as `rules` too, and a write may send `rules`.
pub(crate) async fn legacy_policy_route(
    vault: &Vault,
    call: &Call,
    name: &str,
) -> Result<Response, ApiError> {
    policies(vault, call, name, true).await
}

async fn policies(vault: &Vault, call: &Call, name: &str, legacy: bool) -> Result<Response, ApiError> {
    let verb = match call.verb {
        Verb::Read if legacy && name.is_empty() => Verb::List,
        verb => verb,
    };
    match (name, verb) {
        ("", Verb::List) => {
            let mut keys: Vec<String> = super::system_names(vault, "policies/").await?;
            keys.extend(["default".to_string(), "root".to_string()]);
            keys.sort();
            keys.dedup();
            Ok(reply::ok(json!({ "keys": keys, "policies": keys }), "system"))
        }
        ("root" | "default", Verb::Write | Verb::Delete) => {
            Err(ApiError::invalid(format!("the \"{name}\" policy is built in and cannot be changed")))
        }
        (_, Verb::Read) => {
            let text = match name {
                "default" => policy::DEFAULT.trim().to_string(),
                "root" => String::new(),
                _ => String::from_utf8_lossy(vault.get(&policy_path(name)?, None).await?.as_slice())
                    .into_owned(),
            };
            let body = match legacy {
                true => json!({ "name": name, "rules": text, "policy": text }),
                false => json!({ "name": name, "policy": text }),
            };
            Ok(reply::ok(body, "system"))
        }
        (_, Verb::Write) => {
            let body = call.json()?;
            let text = body
                .get("policy")
                .or_else(|| body.get("rules").filter(|_| legacy))
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::invalid("missing policy"))?;
            Policy::parse(text).map_err(ApiError::invalid)?;
            vault.set(&policy_path(name)?, text.as_bytes()).await?;
            Ok(reply::no_content())
        }
        (_, Verb::Delete) => {
            match vault.delete(&policy_path(name)?).await {
                Ok(_) | Err(tresor::Error::NotFound { .. } | tresor::Error::Deleted { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            Ok(reply::no_content())
        }
        _ => Err(ApiError::method()),
    }
}

/// `POST tresor/token/revoke` `{"accessor": …, "rotate": bool}` (a native route): revokes the
/// token and its children, reports every secret path it could read, and with `rotate` starts a
/// new key epoch, so that values written from now on are sealed under a key that token's holder
/// never had a chance to use (the values it could read stay readable to it only if it kept
/// them; re-encrypt and destroy the old epoch to take them out of the store's old ciphertexts).
pub(crate) async fn revoke_and_report(
    vault: &Vault,
    cache: &Caches,
    table: &super::mounts::Table,
    call: &Call,
) -> Result<Response, ApiError> {
    let body = call.json()?;
    let accessor =
        body.get("accessor").and_then(Value::as_str).ok_or_else(|| ApiError::invalid("missing accessor"))?;
    let rotate = flag(&body, "rotate")?.unwrap_or(false);
    let (path, record) = match tokens::by_accessor(vault, cache, accessor).await {
        Ok(Some(found)) => found,
        Ok(None) | Err(tresor::Error::NotFound { .. }) => return Err(ApiError::invalid("invalid accessor")),
        Err(e) => return Err(e.into()),
    };
    let policies = policies_of(vault, cache, &record).await?;
    let mut readable: Vec<String> = Vec::new();
    for mount in table.kv_mounts() {
        let prefix = format!("{mount}/");
        readable.extend(
            vault
                .list(&prefix)
                .await?
                .into_iter()
                .filter(|e| {
                    record.is_root()
                        || policy::allows(
                            &policies,
                            &format!("{prefix}data/{}", &e.path[prefix.len()..]),
                            policy::Cap::Read,
                        )
                })
                .map(|e| e.path),
        );
    }
    // The revocation and the rotation run to their end in a task of their own, whether or not
    // the client waits for the answer (found by review: a client's timeout skipped the rotation).
    let work = {
        let (vault, accessor) = (vault.clone(), accessor.to_string());
        tokio::spawn(async move {
            let revoked = tokens::sweep(&vault, &path, &record).await?;
            let epoch = match rotate {
                true => Some(vault.rotate_on_revocation(&format!("token {accessor}")).await?.epoch),
                false => None,
            };
            Ok::<_, tresor::Error>((revoked, epoch))
        })
    };
    let (revoked, epoch) =
        work.await.map_err(|_| ApiError::internal("the revocation task ended without an answer"))??;
    Ok(reply::ok(
        json!({ "revoked": revoked, "readable_paths": readable, "rotated_to_epoch": epoch }),
        "tresor",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_vault_writes_them_and_show_as_go_does() {
        let secs = |v: Value| duration_s(&v).ok();
        assert_eq!(secs(json!(90)), Some(90));
        assert_eq!(secs(json!("90")), Some(90));
        assert_eq!(secs(json!("90s")), Some(90));
        assert_eq!(secs(json!("15m")), Some(900));
        assert_eq!(secs(json!("1h30m")), Some(5400));
        assert_eq!(secs(json!("3h25m19s")), Some(12_319));
        assert_eq!(secs(json!("7d")), Some(604_800));
        assert_eq!(secs(json!("1500ms")), Some(1), "parts of a second round down");
        for bad in [json!("soon"), json!(""), json!("5x"), json!("h"), json!(-3), json!(true)] {
            assert_eq!(secs(bad.clone()), None, "{bad}");
        }
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(45), "45s");
        assert_eq!(go_duration(1800), "30m0s");
        assert_eq!(go_duration(5400), "1h30m0s");
        assert_eq!(go_duration(12_319), "3h25m19s");
    }
}
