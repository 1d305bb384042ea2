//! The one router: every request under `/v1/` is read here — its verb, token, path and body —
//! checked against the seal state and the token, and handed to the operation for its path.

use super::mounts::Engine;
use super::policy::{self, Cap};
use super::reply::ApiError;
use super::tokens::{self, TokenRecord};
use super::{Server, Unsealed, approle, auth, kv, metrics, sys, transit};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// How long a request's body may take to arrive once its headers have.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The header that carries the newest commit an answer reflects, and that a request sends back to
/// be served from a view holding it (Vault Enterprise's name; its value is opaque to clients).
const INDEX_HEADER: &str = "x-vault-index";

/// What a request asks, whatever verb spelling the client used (VAULT-API.md §1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verb {
    /// GET.
    Read,
    /// HEAD (`sys/health`).
    Head,
    /// POST or PUT (Vault treats them alike).
    Write,
    /// PATCH (JSON merge patch).
    Patch,
    /// DELETE.
    Delete,
    /// The `LIST` method, or GET with `list=true` in any case.
    List,
}

/// One request, read.
pub(crate) struct Call {
    pub(crate) verb: Verb,
    /// The path after `/v1/`, without leading, trailing or doubled slashes.
    pub(crate) path: String,
    pub(crate) query: HashMap<String, String>,
    pub(crate) body: axum::body::Bytes,
    token: Option<String>,
    /// `X-Vault-Index`: the commit an earlier answer carried, which this request must see.
    index: Option<String>,
    /// The client's address.
    pub(crate) peer: SocketAddr,
}

impl Call {
    /// The request body as JSON (an empty body is an empty object).
    pub(crate) fn json(&self) -> Result<serde_json::Value, ApiError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::json!({}));
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::invalid(format!("the body is not JSON: {e}")))
    }

    /// The client's address.
    pub(crate) fn peer_ip(&self) -> std::net::IpAddr {
        self.peer.ip()
    }

    /// Who a request without a valid token is, in audit records.
    fn anonymous(&self) -> String {
        format!("anonymous from {}", self.peer)
    }
}

/// The handler of every request.
pub(crate) async fn handle(
    State(server): State<Arc<Server>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let started = std::time::Instant::now();
    let call = match read(request, peer).await {
        Ok(call) => call,
        Err(e) => return e.into_response(),
    };
    let area = metrics::Area::of(&call.path);
    let response = dispatch(&server, call).await.unwrap_or_else(IntoResponse::into_response);
    server.metrics.answered(area, response.status().as_u16(), started.elapsed());
    response
}

/// Reads the verb, path, query, token and body of `request`.
async fn read(request: Request, peer: SocketAddr) -> Result<Call, ApiError> {
    let (parts, body) = request.into_parts();
    let raw = parts.uri.path().strip_prefix("/v1/").ok_or_else(ApiError::not_found)?;
    // Clients encode a path's parts (a space, UTF-8): the path is decoded once, here, before
    // anything reads it, as Vault does (an encoded `/` separates too), so that a policy's rules
    // and the vault see the name the client meant. Not UTF-8 once decoded, or a control
    // character (`%00`, `%0A`): refused.
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| ApiError::invalid("the request path is not UTF-8 once decoded"))?;
    if decoded.chars().any(char::is_control) {
        return Err(ApiError::invalid("the request path holds a control character"));
    }
    let path = decoded.split('/').filter(|s| !s.is_empty()).collect::<Vec<_>>().join("/");
    let axum::extract::Query(query) =
        axum::extract::Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
            .map_err(|_| ApiError::invalid("the query does not parse"))?;
    let list = query.get("list").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let verb = match parts.method {
        Method::GET if list => Verb::List,
        Method::GET => Verb::Read,
        Method::HEAD => Verb::Head,
        Method::POST | Method::PUT => Verb::Write,
        Method::PATCH => Verb::Patch,
        Method::DELETE => Verb::Delete,
        ref m if m.as_str() == "LIST" => Verb::List,
        _ => return Err(ApiError::method()),
    };
    let token = token(&parts.headers);
    let index = parts.headers.get(INDEX_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
    // A body announced larger than the limit is refused before it is read, with Vault's 413;
    // one sent in chunks, once it passes the limit.
    let too_large = || {
        ApiError::with(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {} MiB", super::MAX_BODY >> 20),
        )
    };
    let announced =
        parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|n| n > super::MAX_BODY as u64) {
        return Err(too_large());
    }
    let body = tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, super::MAX_BODY))
        .await
        .map_err(|_| ApiError::invalid("the body took too long to arrive"))?
        .map_err(|e| {
            if e.into_inner().is::<http_body_util::LengthLimitError>() {
                too_large()
            } else {
                ApiError::invalid("the body was cut off")
            }
        })?;
    Ok(Call { verb, path, query, body, token, index, peer })
}

/// The token: `X-Vault-Token`, else `Authorization: Bearer`.
fn token(headers: &HeaderMap) -> Option<String> {
    if let Some(t) = headers.get("x-vault-token").and_then(|v| v.to_str().ok()) {
        return Some(t.trim().to_string()).filter(|t| !t.is_empty());
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, t) = auth.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| t.trim().to_string()).filter(|t| !t.is_empty())
}

/// Hands `call` to the operation for its path.
async fn dispatch(server: &Server, call: Call) -> Result<Response, ApiError> {
    let path = call.path.clone();
    match path.as_str() {
        "sys/seal-status" => return sys::seal_status(server).await,
        "sys/health" => return sys::health(server, call.verb).await,
        "sys/init" if call.verb == Verb::Read => return sys::init_status(server).await,
        "sys/init" if call.verb == Verb::Write => return sys::init(server, &call.json()?).await,
        "sys/unseal" if call.verb == Verb::Write => return sys::unseal(server, &call.json()?).await,
        "sys/leader" => return sys::leader(server).await,
        "sys/internal/specs/openapi" if call.verb == Verb::Read => {
            return Ok(super::reply::json(axum::http::StatusCode::OK, &super::openapi::document()));
        }
        _ => {}
    }
    // A limited address is refused what could guess a secret — the password route, an AppRole
    // login, a token that does not work — but not what it does with a token that works: clients
    // behind one NAT or CI runner must not lock one another out (found by review).
    let limited = server.failures.limited(call.peer.ip());
    if limited && matches!(path.as_str(), "tresor/unseal" | "auth/approle/login") {
        return Err(ApiError::too_many());
    }
    if path == "tresor/unseal" && call.verb == Verb::Write {
        return sys::unseal_with_password(server, &call).await;
    }
    if path == "auth/approle/login" && call.verb == Verb::Write {
        let unsealed = server.unsealed().await.ok_or_else(ApiError::sealed)?;
        // A login naming a commit (a secret ID destroyed on another server) waits for it too.
        wait_for_index(server, &unsealed, &call).await?;
        let vault = unsealed.vault.with_actor(format!("approle login from {}", call.peer));
        let login = approle::login(&unsealed, &vault, &call).await;
        if login.as_ref().is_err_and(|e| e.status == axum::http::StatusCode::BAD_REQUEST) {
            server.failed_authentication(call.peer.ip());
            // A guessed or spent secret ID leaves a trace (it read as the start of a good login).
            denied(&vault, &call, "invalid role_id or secret_id").await;
        }
        return with_index(login, &unsealed);
    }
    let (unsealed, record) = match authenticate(server, &call).await {
        Ok(found) => found,
        Err(e) if limited => {
            return Err(if e.status == axum::http::StatusCode::FORBIDDEN { ApiError::too_many() } else { e });
        }
        Err(e) => {
            if e.status == axum::http::StatusCode::FORBIDDEN {
                server.failed_authentication(call.peer.ip());
                // A replayed, revoked or guessed token leaves a trace, under the client's address
                // (the rate limit above bounds how many a client makes).
                if let Some(unsealed) = server.unsealed().await {
                    denied(&unsealed.vault.with_actor(call.anonymous()), &call, "no live token").await;
                }
            }
            return Err(e);
        }
    };
    let response = route(server, &unsealed, &record, call).await;
    with_index(response, &unsealed)
}

/// Audits `call` as denied for `why` (a failure to audit it is logged: the answer is a refusal
/// anyway).
async fn denied(vault: &tresor::Vault, call: &Call, why: &str) {
    if let Err(e) = vault.audit_denied(&format!("{:?} {}", call.verb, call.path), why).await {
        tracing::warn!("could not audit a denied request: {e}");
    }
}

/// Every answer says which commit it reflects (after the request's own).
fn with_index(response: Result<Response, ApiError>, unsealed: &Unsealed) -> Result<Response, ApiError> {
    let index = format!("tresor:{}", unsealed.vault.log_index());
    response.map(|mut r| {
        if let Ok(value) = axum::http::HeaderValue::from_str(&index) {
            r.headers_mut().insert(INDEX_HEADER, value);
        }
        r
    })
}

/// Read-your-writes across servers: a request naming a commit (`X-Vault-Index`) waits for this
/// server's view to hold it. A bad or unreachable index costs the server a refresh: it counts
/// toward the client's rate limit (checked before this), like a failed authentication.
async fn wait_for_index(server: &Server, unsealed: &Unsealed, call: &Call) -> Result<(), ApiError> {
    let Some(index) = &call.index else { return Ok(()) };
    let Some(wanted) = index.strip_prefix("tresor:").and_then(|n| n.parse::<u64>().ok()) else {
        server.failures.record(call.peer.ip());
        return Err(ApiError::invalid("X-Vault-Index is not one this server gave"));
    };
    if !unsealed.vault.fresh_to(wanted).await? {
        server.failures.record(call.peer.ip());
        return Err(ApiError {
            status: axum::http::StatusCode::PRECONDITION_FAILED,
            messages: vec!["the store does not hold the commit X-Vault-Index names yet".into()],
        });
    }
    Ok(())
}

/// Runs an authenticated, permitted request.
async fn route(
    server: &Server,
    unsealed: &Unsealed,
    record: &TokenRecord,
    call: Call,
) -> Result<Response, ApiError> {
    let path = call.path.clone();
    let token = call.token.clone().unwrap_or_default();
    let vault = unsealed.vault.with_actor(format!("token {} from {}", record.accessor, call.peer));
    let table = super::mounts::table(&vault, &unsealed.cache).await?;
    if !record.is_root() && !permitted(&vault, &unsealed.cache, &table, record, &call).await? {
        denied(&vault, &call, "permission denied").await;
        return Err(ApiError::denied());
    }
    match path.split_once('/').unwrap_or((path.as_str(), "")) {
        ("sys", "seal") if call.verb == Verb::Write => sys::seal(server).await,
        ("sys", "mounts") if call.verb == Verb::Read => Ok(super::mounts::list(&table)),
        ("sys", "mounts") => Err(ApiError::method()),
        ("sys", rest) if rest.starts_with("mounts/") => {
            super::mounts::route(&vault, &table, &call, &rest["mounts/".len()..]).await
        }
        ("sys", "metrics") if call.verb == Verb::Read => sys::metrics(server, &call).await,
        ("sys", rest) if rest.starts_with("internal/ui/mounts/") => {
            sys::mount_of(&table, &rest["internal/ui/mounts/".len()..])
        }
        ("sys", "policies/acl") => auth::policy_route(&vault, &call, "").await,
        ("sys", rest) if rest.starts_with("policies/acl/") => {
            auth::policy_route(&vault, &call, &rest["policies/acl/".len()..]).await
        }
        ("sys", "policy") => auth::legacy_policy_route(&vault, &call, "").await,
        ("sys", rest) if rest.starts_with("policy/") => {
            auth::legacy_policy_route(&vault, &call, &rest["policy/".len()..]).await
        }
        ("auth", rest) if rest == "approle/role" || rest.starts_with("approle/role/") => {
            let rest = rest["approle/role".len()..].trim_start_matches('/');
            approle::role_route(unsealed, &vault, &call, rest).await
        }
        ("auth", "approle/tidy/secret-id") if call.verb == Verb::Write => Ok(super::start_tidy(
            unsealed,
            super::Tidy::SecretIds,
            format!("token {} from {}", record.accessor, call.peer),
        )),
        ("sys", rest) if rest == "auth" || rest.starts_with("auth/") => sys::auth_methods(&call, rest),
        ("auth", rest) if rest.starts_with("token/") => {
            auth::token_route(unsealed, &vault, &call, &rest["token/".len()..], &token, record).await
        }
        ("tresor", "token/revoke") if call.verb == Verb::Write => {
            auth::revoke_and_report(&vault, &unsealed.cache, &table, &call).await
        }
        ("tresor", rest) => super::native::handle(&vault, &call, rest).await,
        _ => match table.find(&path) {
            Some((at, mount, rest)) => match mount.engine {
                Engine::Kv => kv::handle(&vault, &call, at, &mount.kv, rest).await,
                Engine::Transit => transit::handle(&vault, &call, mount, rest).await,
            },
            None => Err(ApiError {
                status: axum::http::StatusCode::NOT_FOUND,
                messages: vec![format!("no handler for route \"{path}\"")],
            }),
        },
    }
}

/// The unsealed vault and the record of the request's live token: 503 while sealed, 403 without
/// one.
async fn authenticate(server: &Server, call: &Call) -> Result<(Unsealed, TokenRecord), ApiError> {
    let mut unsealed = server.unsealed().await.ok_or_else(ApiError::sealed)?;
    // Before its token is looked up, so a revocation the index names is seen too.
    wait_for_index(server, &unsealed, call).await?;
    let Some(token) = call.token.as_deref() else { return Err(ApiError::denied()) };
    // Something that is not one of our tokens is refused without a store read.
    if !tokens::well_formed(token) {
        return Err(ApiError::denied());
    }
    // One freshness check for the whole request: its token, policies, mounts, settings and value
    // are read from the view as of now or newer (a revocation committed before this is seen,
    // within the read staleness bound).
    unsealed.vault = unsealed.vault.checked().await?;
    let lookup = unsealed.vault.with_actor(call.anonymous());
    match tokens::lookup(&lookup, &unsealed.tokens, &unsealed.cache, token).await? {
        // A token with a number of uses spends one on every request it makes.
        Some(record) if record.uses_left.is_some() => {
            let path = tokens::path_of(&unsealed.tokens, token)?;
            match tokens::spend_use(&lookup, &path).await? {
                Some(spent) => Ok((unsealed, spent)),
                None => Err(ApiError::denied()),
            }
        }
        Some(record) => Ok((unsealed, record)),
        None => Err(ApiError::denied()),
    }
}

/// Whether a write to `path` changes or destroys the vault's keys: the epoch routes that rotate,
/// re-encrypt, set the rotation policy or destroy an epoch.
fn rekeys(path: &str) -> bool {
    match path.strip_prefix("tresor/epochs/") {
        Some("rotate" | "reencrypt" | "policy") => true,
        Some(rest) => rest.ends_with("/destroy"),
        None => false,
    }
}

/// Whether the policies of `record` allow `call`: the capability its verb needs on its path (a
/// KV write needs `create` for a new secret and `update` for an existing one, and so does a
/// transit write that makes a key; a list is checked
/// on the path with a trailing slash, as Vault does).
async fn permitted(
    vault: &tresor::Vault,
    cache: &super::cache::Caches,
    table: &super::mounts::Table,
    record: &TokenRecord,
    call: &Call,
) -> Result<bool, ApiError> {
    let path = call.path.as_str();
    let policies = auth::policies_of(vault, cache, record).await?;
    // Which mount a path is in (the Vault CLI's preflight): shown to a token that may reach
    // something under that mount, as Vault does, so that mounts cannot be enumerated.
    if let Some(asked) = path.strip_prefix("sys/internal/ui/mounts/") {
        return Ok(table
            .find(asked)
            .is_some_and(|(at, _, _)| policy::reaches_under(&policies, &format!("{at}/"))));
    }
    // A write that makes what is not there needs create, one that changes what is, update: KV
    // data, and a transit key (made by `keys/<K>`, or by a first `encrypt/<K>`, as in Vault).
    let creatable: Option<Option<tresor::path::SecretPath>> = match table.find(path) {
        Some((at, mount, rest)) if mount.engine == Engine::Kv => rest
            .strip_prefix("data/")
            .map(|p| kv::secret(at, p).ok().and_then(|s| tresor::path::SecretPath::parse(&s).ok())),
        Some((_, mount, rest)) if mount.engine == Engine::Transit => {
            super::transit::created_by(mount, rest).map(Some)
        }
        _ => None,
    };
    // What changes or destroys the vault's keys is root-protected, as Vault's `sys/rotate` is:
    // `update` and `sudo` both (before, `update` alone let a token destroy an epoch's values).
    if call.verb == Verb::Write && rekeys(path) {
        return Ok(policy::allows(&policies, path, Cap::Update) && policy::allows(&policies, path, Cap::Sudo));
    }
    let cap = match (path, call.verb) {
        ("sys/seal", _) => Cap::Sudo,
        ("auth/token/lookup-self", _) => Cap::Read,
        (p, Verb::Write) if p.starts_with("auth/") => Cap::Update,
        (_, Verb::Write) if creatable.is_some() => {
            // Whether the secret exists matters only to a token with one of the two: asked after
            // the policies, and without an audit record of its own (the write, or its refusal, is
            // audited in the token's name).
            let (create, update) =
                (policy::allows(&policies, path, Cap::Create), policy::allows(&policies, path, Cap::Update));
            if create == update {
                return Ok(create);
            }
            match creatable.flatten() {
                Some(entry) if vault.has_entry(&entry).await.map_err(ApiError::from)? => Cap::Update,
                _ => Cap::Create,
            }
        }
        (_, Verb::Read | Verb::Head) => Cap::Read,
        (_, Verb::Write) => Cap::Update,
        (_, Verb::Patch) => Cap::Patch,
        (_, Verb::Delete) => Cap::Delete,
        (_, Verb::List) => return Ok(policy::allows(&policies, &format!("{path}/"), Cap::List)),
    };
    Ok(policy::allows(&policies, path, cap))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_token_comes_from_either_header() {
        let mut h = HeaderMap::new();
        assert_eq!(token(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer tvs.abc"));
        assert_eq!(token(&h).as_deref(), Some("tvs.abc"));
        h.insert("x-vault-token", HeaderValue::from_static("tvs.def"));
        assert_eq!(token(&h).as_deref(), Some("tvs.def"));
        let mut basic = HeaderMap::new();
        basic.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic dXNlcg=="));
        assert_eq!(token(&basic), None);
    }
}
