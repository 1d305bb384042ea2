//! `sys/`: seal status, health, leader, sealing, which mount a path is in, and the token's own lookup — the routes
//! clients call before and around their reads (VAULT-API.md §2–3).

use super::Server;
use super::reply::{self, ApiError, json};
use super::route::{Call, Verb};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The version clients are told.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `GET sys/seal-status` (no token; a bare object, no envelope).
pub(crate) async fn seal_status(server: &Server) -> Result<Response, ApiError> {
    Ok(json(StatusCode::OK, &status_object(server).await))
}

/// What seal-status and unseal answer. t and n come from the split `sys/init` made in this process
/// or from the first share given; before either they are 0 (nothing about the split is stored).
async fn status_object(server: &Server) -> Value {
    let (initialized, sealed) = server.status().await;
    let progress = server.progress.lock().await;
    let made = *server.split.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (t, n) = progress.split().or(made).unwrap_or((0, 0));
    json!({
        "type": "shamir",
        "initialized": initialized,
        "sealed": sealed,
        "t": t,
        "n": n,
        "progress": progress.count(),
        "nonce": progress.nonce,
        "version": VERSION,
        "build_date": "",
        "migration": false,
        "recovery_seal": false,
        "storage_type": "tresor",
    })
}

/// `GET`/`HEAD sys/health`: 200 unsealed, 503 sealed, 501 uninitialized (a HEAD gets the status
/// alone).
pub(crate) async fn health(server: &Server, verb: Verb) -> Result<Response, ApiError> {
    let (initialized, sealed) = server.status().await;
    let status = match (initialized, sealed) {
        (false, _) => StatusCode::NOT_IMPLEMENTED,
        (true, true) => StatusCode::SERVICE_UNAVAILABLE,
        (true, false) => StatusCode::OK,
    };
    match verb {
        Verb::Head => Ok(status.into_response()),
        Verb::Read => Ok(json(
            status,
            &json!({
                "initialized": initialized,
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

/// `GET sys/init`: whether there is a vault.
pub(crate) async fn init_status(server: &Server) -> Result<Response, ApiError> {
    Ok(json(StatusCode::OK, &json!({ "initialized": server.status().await.0 })))
}

/// `PUT sys/init` `{"secret_shares": n, "secret_threshold": t}`: makes the vault, sealed; the
/// unseal shares (hex and base64) and a root token are shown this once.
pub(crate) async fn init(server: &Server, body: &Value) -> Result<Response, ApiError> {
    use base64ct::Encoding;
    let number = |key: &str| -> Result<usize, ApiError> {
        super::fields::whole(body, key)?
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| ApiError::invalid(format!("{key} must be given, as a number")))
    };
    for unsupported in ["pgp_keys", "root_token_pgp_key", "stored_shares", "recovery_shares"] {
        if body.get(unsupported).is_some_and(|v| !v.is_null() && v != &json!(0)) {
            return Err(ApiError::invalid(format!("{unsupported} is not supported by tresor")));
        }
    }
    let (shares, root_token) = server.init(number("secret_threshold")?, number("secret_shares")?).await?;
    let keys: Vec<String> = shares.iter().map(|s| hex::encode(s.as_slice())).collect();
    let keys_base64: Vec<String> = shares.iter().map(|s| base64ct::Base64::encode_string(s)).collect();
    Ok(json(StatusCode::OK, &json!({ "keys": keys, "keys_base64": keys_base64, "root_token": root_token })))
}

/// `PUT sys/unseal` `{"key": share}` or `{"reset": true}`: the seal status after it.
pub(crate) async fn unseal(server: &Server, body: &Value) -> Result<Response, ApiError> {
    let (initialized, sealed) = server.status().await;
    if !initialized {
        return Err(ApiError::invalid("Vault is not initialized"));
    }
    if super::fields::flag(body, "reset")? == Some(true) {
        server.progress.lock().await.reset();
    } else if sealed {
        let Some(text) = body.get("key").and_then(Value::as_str) else {
            return Err(ApiError::invalid("missing unseal key"));
        };
        let share = super::seal::decode(text).map_err(|e| ApiError::invalid(e.to_string()))?;
        let combined =
            server.progress.lock().await.add(share).map_err(|e| ApiError::invalid(e.to_string()))?;
        if let Some(key) = combined {
            match server.unseal_key(&key).await {
                Ok(_) => {}
                Err(tresor::Error::AuthFailed) => {
                    return Err(ApiError::invalid("the unseal shares given do not open this vault"));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    seal_status(server).await
}

/// `PUT tresor/unseal` `{"password": …}` (a native route, no token): unseals with the vault's
/// password, for a person (`tresor unseal`) rather than a holder of shares. A wrong password
/// counts as a failed authentication of the client address (the rate limit of 429s).
pub(crate) async fn unseal_with_password(server: &Server, call: &Call) -> Result<Response, ApiError> {
    #[derive(serde::Deserialize)]
    struct Body {
        password: String,
    }
    let (initialized, sealed) = server.status().await;
    if !initialized {
        return Err(ApiError::invalid("Vault is not initialized"));
    }
    if sealed {
        let body: Body = serde_json::from_slice(&call.body)
            .map_err(|_| ApiError::invalid("the body must be {\"password\": \"...\"}"))?;
        let password = tresor::Password::from(body.password);
        match server.unseal_password(&password).await {
            Ok(_) => {}
            Err(tresor::Error::AuthFailed) => {
                server.failed_authentication(call.peer_ip());
                return Err(ApiError::invalid("the password does not open this vault"));
            }
            Err(e) => return Err(e.into()),
        }
    }
    seal_status(server).await
}

/// `GET sys/metrics?format=prometheus`: the metrics in Prometheus's text format (the only format
/// served; a token with `read` on `sys/metrics` may scrape, as Vault asks by default).
pub(crate) async fn metrics(server: &Server, call: &Call) -> Result<Response, ApiError> {
    match call.query.get("format").map(String::as_str) {
        None | Some("prometheus") => {}
        Some(other) => {
            return Err(ApiError::invalid(format!("format {other:?} is not served: use format=prometheus")));
        }
    }
    let sealed = server.status().await.1;
    let text = server.metrics.render(sealed);
    Ok((
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        text,
    )
        .into_response())
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

/// `GET sys/internal/ui/mounts/<path>`: the mount `path` lies in (the Vault CLI and
/// consul-template ask before every KV call).
pub(crate) fn mount_of(table: &super::mounts::Table, path: &str) -> Result<Response, ApiError> {
    match table.find(path) {
        Some((at, mount, _)) => {
            Ok(reply::ok(super::mounts::show(at, mount), super::mounts::type_name(mount)))
        }
        None => Err(ApiError::not_found()),
    }
}

/// `sys/auth`: the auth methods, always `token/` and `approle/` (enabling one that is there is
/// accepted, as a no-op; any other is refused).
pub(crate) fn auth_methods(call: &super::route::Call, rest: &str) -> Result<Response, ApiError> {
    let method = |kind: &str| json!({ "type": kind, "description": "", "local": false, "seal_wrap": false, "options": null });
    match (rest.strip_prefix("auth").map(|r| r.trim_start_matches('/')), call.verb) {
        (Some(""), Verb::Read) => {
            Ok(reply::ok(json!({ "token/": method("token"), "approle/": method("approle") }), "system"))
        }
        (Some("approle" | "token"), Verb::Write) => Ok(reply::no_content()),
        (Some(_), Verb::Write) => {
            Err(ApiError::invalid("tresor serves the token and approle auth methods only"))
        }
        _ => Err(ApiError::method()),
    }
}
