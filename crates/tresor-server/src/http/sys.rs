//! `sys/`: seal status, health, leader, sealing, mounts, and the token's own lookup — the routes
//! clients call before and around their reads (VAULT-API.md §2–3).

use super::Server;
use super::reply::{self, ApiError, json};
use super::route::Verb;
use super::tokens::TokenRecord;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The version clients are told.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `GET sys/seal-status` (no token; a bare object, no envelope).
pub(crate) async fn seal_status(server: &Server) -> Result<Response, ApiError> {
    let sealed = server.unsealed().await.is_none();
    Ok(json(StatusCode::OK, &status_object(sealed)))
}

fn status_object(sealed: bool) -> Value {
    json!({
        "type": "shamir",
        "initialized": true,
        "sealed": sealed,
        "t": 1,
        "n": 1,
        "progress": 0,
        "nonce": "",
        "version": VERSION,
        "build_date": "",
        "migration": false,
        "recovery_seal": false,
        "storage_type": "tresor",
    })
}

/// `GET`/`HEAD sys/health`: 200 unsealed, 503 sealed (a HEAD gets the status alone).
pub(crate) async fn health(server: &Server, verb: Verb) -> Result<Response, ApiError> {
    let sealed = server.unsealed().await.is_none();
    let status = if sealed { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    match verb {
        Verb::Head => Ok(status.into_response()),
        Verb::Read => Ok(json(
            status,
            &json!({
                "initialized": true,
                "sealed": sealed,
                "standby": false,
                "performance_standby": false,
                "replication_performance_mode": "disabled",
                "replication_dr_mode": "disabled",
                "server_time_utc": super::tokens::now_ms() / 1000,
                "version": VERSION,
            }),
        )),
        _ => Err(ApiError::method()),
    }
}

/// `GET sys/init`: whether the vault exists (a server runs on an existing vault).
pub(crate) fn init_status() -> Result<Response, ApiError> {
    Ok(json(StatusCode::OK, &json!({ "initialized": true })))
}

/// `GET sys/leader`: one server, itself the leader (the Vault CLI's `status` reads it).
pub(crate) async fn leader(server: &Server) -> Result<Response, ApiError> {
    if server.unsealed().await.is_none() {
        return Err(ApiError::sealed());
    }
    Ok(json(
        StatusCode::OK,
        &json!({
            "ha_enabled": false,
            "is_self": true,
            "leader_address": "",
            "leader_cluster_address": "",
            "performance_standby": false,
            "performance_standby_last_remote_wal": 0,
        }),
    ))
}

/// `PUT sys/seal`: wipes every key; 204.
pub(crate) async fn seal(server: &Server) -> Result<Response, ApiError> {
    server.seal("sealed through the API").await;
    Ok(reply::no_content())
}

/// The one mount there is so far: KV v2 at `secret/`.
fn kv_mount() -> Value {
    json!({
        "type": "kv",
        "path": format!("{}/", super::kv::MOUNT),
        "description": "key/value secret storage",
        "options": { "version": "2" },
        "config": { "default_lease_ttl": 0, "max_lease_ttl": 0 },
        "local": false,
        "seal_wrap": false,
    })
}

/// `GET sys/mounts`.
pub(crate) fn mounts() -> Result<Response, ApiError> {
    Ok(reply::ok(json!({ format!("{}/", super::kv::MOUNT): kv_mount() }), ""))
}

/// `GET sys/internal/ui/mounts/<path>`: the mount `path` lies in (the Vault CLI and
/// consul-template ask before every KV call).
pub(crate) fn mount_of(path: &str) -> Result<Response, ApiError> {
    match path.split('/').next() {
        Some(super::kv::MOUNT) => Ok(reply::ok(kv_mount(), "kv")),
        _ => Err(ApiError::not_found()),
    }
}

/// `GET auth/token/lookup-self`: what Vault Agent and external-secrets read (`id`, `ttl`,
/// `renewable`, `type`, `expire_time` must all be there).
pub(crate) fn lookup_self(token: &str, record: &TokenRecord) -> Result<Response, ApiError> {
    let now = super::tokens::now_ms();
    let ttl = record.expire_ms.map_or(0, |t| t.saturating_sub(now) / 1000);
    Ok(reply::ok(
        json!({
            "id": token,
            "accessor": record.accessor,
            "policies": record.policies,
            "display_name": record.display_name,
            "creation_time": record.created_ms / 1000,
            "creation_ttl": 0,
            "explicit_max_ttl": 0,
            "expire_time": record.expire_ms.map(|t| reply::time(Some(t))),
            "issue_time": reply::time(Some(record.created_ms)),
            "ttl": ttl,
            "renewable": false,
            "type": "service",
            "orphan": true,
            "num_uses": 0,
            "path": "auth/token/root",
            "meta": null,
            "entity_id": "",
        }),
        "token",
    ))
}
