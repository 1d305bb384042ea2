//! tresor's own routes under `/v1/tresor/`, for what Vault's API has no words for: the vault's
//! status with its fingerprint, key epochs (list, rotate, re-encrypt, destroy, policy), the audit
//! trail (read with filters, verify), and SLIP-0010 identities (derive a public key, sign). Each
//! is one core call, audited there under the token's accessor; policies grant them by path like
//! any route (`tresor/epochs/*` with `update`, say).

use super::reply::{self, ApiError};
use super::route::{Call, Verb};
use serde_json::{Value, json};
use std::str::FromStr;
use tresor::Vault;
use tresor_crypto::slip10::DerivationPath;

/// One request under `tresor/` (the token routes and the password unseal are elsewhere).
pub(crate) async fn handle(
    vault: &Vault,
    call: &Call,
    rest: &str,
) -> Result<axum::response::Response, ApiError> {
    match (rest, call.verb) {
        ("status", Verb::Read) => {
            let status = vault.status().await?;
            Ok(reply::ok(to_json(&status)?, "tresor"))
        }
        ("epochs", Verb::Read | Verb::List) => Ok(reply::ok(to_json(&vault.epochs().await?)?, "tresor")),
        ("epochs/rotate", Verb::Write) => {
            let rotated = vault.rotate("manual").await?;
            let mut answer = json!({ "rotated": to_json(&rotated)? });
            if super::fields::flag(&call.json()?, "reencrypt")? == Some(true) {
                answer["reencrypted"] = to_json(&vault.reencrypt(&mut |_, _| {}).await?)?;
            }
            Ok(reply::ok(answer, "tresor"))
        }
        ("epochs/reencrypt", Verb::Write) => {
            Ok(reply::ok(to_json(&vault.reencrypt(&mut |_, _| {}).await?)?, "tresor"))
        }
        ("epochs/policy", Verb::Write) => {
            let body = call.json()?;
            let every = match body.get("rotate_every") {
                None | Some(Value::Null) => None,
                Some(v) if v.as_str() == Some("") || v.as_u64() == Some(0) => None,
                Some(v) => Some(std::time::Duration::from_secs(super::auth::duration_s(v)?)),
            };
            if let Some(every) = every {
                tresor::vault::check_rotation_period(every)?;
            }
            vault.set_rotation_policy(every).await?;
            Ok(reply::no_content())
        }
        (rest, Verb::Write) if let Some(number) = epoch_to_destroy(rest) => {
            let epoch = epoch_number(number)?;
            let report = vault.destroy_epoch(epoch, &mut |_, _| {}).await?;
            if !report.complete() {
                let body = reply::envelope(to_json(&report)?, "tresor");
                return Ok(reply::json(axum::http::StatusCode::INTERNAL_SERVER_ERROR, &body));
            }
            Ok(reply::ok(to_json(&report)?, "tresor"))
        }
        ("audit", Verb::Read) => audit(vault, call).await,
        ("audit/verify", Verb::Write) => {
            let report = vault.verify().await?;
            let body = reply::envelope(to_json(&report)?, "tresor");
            // Damaged values are reported, not thrown: the report says which.
            let status = if report.damaged.is_empty() {
                axum::http::StatusCode::OK
            } else {
                axum::http::StatusCode::CONFLICT
            };
            Ok(reply::json(status, &body))
        }
        ("keys/derive", Verb::Write) => {
            let path = derivation_path(&call.json()?)?;
            let identity = vault.derive_ed25519(&path, false).await?;
            Ok(reply::ok(
                json!({ "path": identity.path, "public_key": hex::encode(identity.public_key) }),
                "tresor",
            ))
        }
        ("keys/sign", Verb::Write) => {
            use base64ct::Encoding;
            let body = call.json()?;
            let path = derivation_path(&body)?;
            let input = body
                .get("input")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::invalid("missing input"))?;
            let message = zeroize::Zeroizing::new(
                base64ct::Base64::decode_vec(input).map_err(|_| ApiError::invalid("input must be Base64"))?,
            );
            let (signature, public_key) = vault.sign(&path, &message).await?;
            Ok(reply::ok(
                json!({ "path": path.to_string(), "signature": hex::encode(signature), "public_key": hex::encode(public_key) }),
                "tresor",
            ))
        }
        (
            "status" | "epochs" | "epochs/rotate" | "epochs/reencrypt" | "epochs/policy" | "audit"
            | "audit/verify" | "keys/derive" | "keys/sign",
            _,
        ) => Err(ApiError::method()),
        _ => Err(ApiError::not_found()),
    }
}

/// The epoch number in `epochs/<N>/destroy` (`None` for any other path). The prefix and the
/// suffix must not overlap: `epochs/destroy` names no epoch (sliced by hand, it crashed the
/// server).
fn epoch_to_destroy(rest: &str) -> Option<&str> {
    rest.strip_prefix("epochs/")?.strip_suffix("/destroy")
}

/// An epoch number as its path segment gives it ([`super::fields::decimal`]).
fn epoch_number(text: &str) -> Result<u32, ApiError> {
    super::fields::decimal(text)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| ApiError::invalid(format!("{text:?} is not an epoch number")))
}

/// A core report as JSON.
fn to_json(value: &impl serde::Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(value).map_err(|e| ApiError::internal(e.to_string()))
}

/// The body's `path`, a SLIP-0010 hardened derivation path.
fn derivation_path(body: &Value) -> Result<DerivationPath, ApiError> {
    let text = body.get("path").and_then(Value::as_str).ok_or_else(|| ApiError::invalid("no path given"))?;
    DerivationPath::from_str(text).map_err(|e| ApiError::invalid(format!("{text}: {e}")))
}

/// `GET tresor/audit`: the trail, oldest first, filtered by `path` (the path or a prefix of it),
/// `actor` (text it contains), `op`, `since` and `until` (RFC 3339 or ms since the Unix epoch),
/// and `limit` (the newest N).
async fn audit(vault: &Vault, call: &Call) -> Result<axum::response::Response, ApiError> {
    let q = |name: &str| call.query.get(name).map(String::as_str).filter(|v| !v.is_empty());
    let time = |name: &str| -> Result<Option<u64>, ApiError> {
        let Some(text) = q(name) else { return Ok(None) };
        if let Ok(ms) = text.parse::<u64>() {
            return Ok(Some(ms));
        }
        chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .and_then(|t| u64::try_from(t.timestamp_millis()).ok())
            .map(Some)
            .ok_or_else(|| ApiError::invalid(format!("{name} must be RFC 3339 or milliseconds")))
    };
    let filter = tresor::model::AuditFilter {
        path: q("path").map(str::to_string),
        actor: q("actor").map(str::to_string),
        op: q("op").map(str::to_string),
        since_ms: time("since")?,
        until_ms: time("until")?,
        limit: match q("limit") {
            None => None,
            Some(text) => Some(text.parse().map_err(|_| ApiError::invalid("limit must be a number"))?),
        },
    };
    let records = filter.apply(vault.audit_trail().await?);
    let records: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "lane": r.lane, "seq": r.seq, "time": reply::time(Some(r.record.time_ms)),
                "actor": r.record.actor, "op": r.record.op, "path": r.record.path,
                "outcome": to_json(&r.record.outcome).unwrap_or(Value::Null), "detail": r.record.detail,
            })
        })
        .collect();
    Ok(reply::ok(json!({ "records": records }), "tresor"))
}
