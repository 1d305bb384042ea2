//! Talking to a `tresor server`: where it is, how it is trusted, which token speaks, one request
//! with the server's errors turned into the CLI's (exit codes included), and the everyday calls
//! (`get`, `set`, `list`, `rm`, `history`, `encrypt`, `decrypt`, `sign`) as the KV v2 and transit
//! requests any Vault client sends.
//!
//! - The address: `--address` (for `login`, `logout` and `unseal`), else `TRESOR_ADDR`, else
//!   `VAULT_ADDR`. The everyday commands go to a server only when `TRESOR_ADDR` is set: a
//!   `VAULT_ADDR` left in a shell for a Vault server never turns them away from the local vault.
//! - Trust: `--ca-cert`, `TRESOR_CACERT` or `VAULT_CACERT` (only that CA), else the system's roots;
//!   plain http only to this machine. No proxy, no redirect.
//! - The token: `TRESOR_TOKEN`, else the one `tresor login` saved for that address (a file of its
//!   own, 0600, in the state directory), else `VAULT_TOKEN`. It travels in `X-Vault-Token` only.
//! - `encrypt`, `decrypt` and `sign` use the server's transit keys: ciphertexts are Vault's
//!   `vault:vN:...` text, and `sign` names a transit key (Ed25519), not a derivation path.
//! - Paths are the vault's own: they start with their KV v2 mount (`secret/app/db` is `app/db`
//!   under `secret/`), which the server names, as the Vault CLI asks it, so a mount of several
//!   segments (`team/kv/`) works too. A value goes up as `value_base64` and is stored as its bytes, so
//!   `tresor get` reads back exactly what `tresor set` wrote, here or on the server's machine.

use crate::exit::CliError;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;
use tresor::vault::{HistoryEntry, ListEntry};
use tresor_wire::SecretBuf;

/// How long one request to the server may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The most metadata requests `list` keeps in flight.
const LIST_IN_FLIGHT: usize = 8;

/// Where a server is and how to trust it, as the command line gives them.
pub(crate) struct Server {
    pub(crate) address: Option<String>,
    pub(crate) ca_cert: Option<PathBuf>,
}

/// The first set, non-empty variable of `names`.
pub(crate) fn env(names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
}

/// The server's base URL, checked: http(s), and plain http only to this machine.
pub(crate) fn base_url(address: Option<String>) -> Result<reqwest::Url, CliError> {
    let text = address
        .or_else(|| env(&["TRESOR_ADDR", "VAULT_ADDR"]))
        .unwrap_or_else(|| "http://127.0.0.1:8200".into());
    let url = reqwest::Url::parse(text.trim())
        .map_err(|e| CliError::input(format!("server address {text:?}: {e}")))?;
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err(CliError::input(format!(
            "server address {url}: plain http to another machine would send secrets in the clear; use https"
        ))),
        other => Err(CliError::input(format!("server address {url}: {other} is not http or https"))),
    }
}

/// The CA certificate file (PEM) to trust, and what it holds: the file `path` names, else
/// `TRESOR_CACERT` (or `VAULT_CACERT`), else none (the system's roots). At most 1 MiB is read.
pub(crate) fn ca_pem(path: Option<PathBuf>) -> Result<Option<(PathBuf, Vec<u8>)>, CliError> {
    let Some(path) = path.or_else(|| env(&["TRESOR_CACERT", "VAULT_CACERT"]).map(PathBuf::from)) else {
        return Ok(None);
    };
    let pem = crate::input::read_limited(
        crate::input::Source::File(&path),
        std::io::empty(),
        1 << 20,
        "a CA file",
    )?;
    Ok(Some((path, pem.to_vec())))
}

/// An HTTP client trusting `ca_cert` only, when given (as `VAULT_CACERT`), else the system's roots.
pub(crate) fn client(ca_cert: Option<PathBuf>) -> Result<reqwest::Client, CliError> {
    tresor_backend::install_tls_provider();
    // No proxy (it would see plain-http secrets to "this machine") and no redirect (the body
    // would follow to wherever the answer points).
    let mut builder = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(Duration::from_secs(10))
        // Below the servers' 10 s idle limit: a pooled connection is never used as it closes.
        .pool_idle_timeout(Duration::from_secs(5))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none());
    if let Some((path, pem)) = ca_pem(ca_cert)? {
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| CliError::input(format!("{}: not a PEM certificate: {e}", path.display())))?;
        builder = builder.tls_certs_only([cert]);
    }
    builder.build().map_err(|e| CliError::other(format!("cannot make an HTTP client: {e}")))
}

/// The largest answer the CLI reads from a server: far above a value at the largest
/// `max_value_size` in base64, or a list of a million names; a server cannot make it buffer more.
const MAX_ANSWER: usize = 256 << 20;

/// An answer's JSON (`Null` for an empty body), or the server's error (or why there was no
/// answer) as the CLI's: its exit code follows what the status means.
pub(crate) async fn answered(
    base: &reqwest::Url,
    sent: reqwest::Result<reqwest::Response>,
) -> Result<Value, CliError> {
    let answer = sent.map_err(|e| CliError::other(format!("no answer from {base}: {}", error_chain(&e))))?;
    let status = answer.status();
    let bytes = tresor_sync::relay::body_within(answer, MAX_ANSWER)
        .await
        .map_err(|e| CliError::other(format!("the answer from {base} was cut off: {}", error_chain(&e))))?
        .ok_or_else(|| {
            CliError::other(format!("the answer from {base} is larger than {MAX_ANSWER} bytes"))
        })?;
    let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(json);
    }
    let message = json["errors"]
        .as_array()
        .map(|e| e.iter().filter_map(|m| m.as_str()).collect::<Vec<_>>().join("; "))
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| format!("HTTP {status}"));
    use tresor::Category;
    Err(match status.as_u16() {
        400 if message.contains("does not open") || message.contains("do not open") => {
            CliError::from_core(&tresor::Error::AuthFailed)
        }
        400 if message.contains("not initialized") => CliError::from_category(
            Category::Location,
            format!("{base}: the server has no vault yet (sys/init makes one)"),
        ),
        400 if message.contains("check-and-set") => {
            CliError::from_category(Category::Conflict, format!("{base}: {message}"))
        }
        400 => CliError::from_category(Category::Invalid, format!("{base}: {message}")),
        403 => CliError::from_category(
            Category::Auth,
            format!(
                "{base}: permission denied (the token is unknown, expired, or its policies do not allow this)"
            ),
        ),
        404 => CliError::from_category(Category::NotFound, format!("{base}: not found")),
        429 => CliError::other(format!("{base}: too many failed attempts from this address; wait a minute")),
        503 if message.contains("sealed") => {
            CliError::other(format!("{base}: the server is sealed (`tresor unseal` opens it)"))
        }
        _ => CliError::other(format!("{base}: {message}")),
    })
}

/// The error and its sources, on one line (reqwest's own message says little).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Where `tresor login` keeps the token for `base`: one file per address in the state directory.
pub(crate) fn token_file(base: &reqwest::Url) -> PathBuf {
    let digest = tresor_crypto::derive::hash(base.as_str().as_bytes());
    crate::config::state_dir().join("tokens").join(hex::encode(&digest[..16]))
}

/// A server the everyday commands talk to, and the token they speak with.
pub(crate) struct Remote {
    base: reqwest::Url,
    client: reqwest::Client,
    token: SecretString,
    /// The KV mounts the server named so far (see [`Remote::locate`]).
    mounts: std::sync::Mutex<Vec<String>>,
}

impl Remote {
    /// The server `TRESOR_ADDR` names, with its token; `None` when `TRESOR_ADDR` is not set.
    pub(crate) fn from_env() -> Result<Option<Remote>, CliError> {
        let Some(address) = env(&["TRESOR_ADDR"]) else { return Ok(None) };
        let base = base_url(Some(address))?;
        let client = client(None)?;
        let saved = || {
            let file = token_file(&base);
            let source = crate::input::Source::File(&file);
            let bytes = crate::input::read_limited(source, std::io::empty(), 1 << 16, "a token file").ok()?;
            String::from_utf8(bytes.to_vec()).ok().filter(|t| !t.trim().is_empty())
        };
        let token =
            env(&["TRESOR_TOKEN"]).or_else(saved).or_else(|| env(&["VAULT_TOKEN"])).ok_or_else(|| {
                CliError::from_category(
                    tresor::Category::Auth,
                    format!("no token for {base}: run `tresor login`, or set TRESOR_TOKEN"),
                )
            })?;
        Ok(Some(Remote::new(base, client, SecretString::from(token.trim().to_string()))))
    }

    /// A server and a token given directly (`tresor login` checks the token this way).
    pub(crate) fn new(base: reqwest::Url, client: reqwest::Client, token: SecretString) -> Remote {
        Remote { base, client, token, mounts: std::sync::Mutex::default() }
    }

    /// The token it speaks with (for `tresor login` to keep).
    pub(crate) fn token(&self) -> &str {
        self.token.expose_secret()
    }

    /// `v1/` and `segments`, each one escaped as a path segment, and `query`.
    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Result<reqwest::Url, CliError> {
        let mut url = self.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| CliError::input(format!("server address {}: cannot hold a path", self.base)))?;
            path.pop_if_empty().push("v1");
            path.extend(segments.iter().flat_map(|s| s.split('/')));
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// One request with the token; the answer's JSON (`Null` when it has no body).
    async fn send(
        &self,
        method: reqwest::Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<zeroize::Zeroizing<Vec<u8>>>,
    ) -> Result<Value, CliError> {
        let url = self.url(segments, query)?;
        let mut request =
            self.client.request(method, url).header("X-Vault-Token", self.token.expose_secret());
        if let Some(body) = body {
            request = request.header("Content-Type", "application/json").body(body.to_vec());
        }
        answered(&self.base, request.send().await).await
    }

    /// `GET auth/token/lookup-self`: what the server knows of the token.
    pub(crate) async fn lookup_self(&self) -> Result<Value, CliError> {
        let answer = self.send(reqwest::Method::GET, &["auth/token/lookup-self"], &[], None).await?;
        Ok(answer["data"].clone())
    }

    /// `tresor get`: the value of a version (the newest by default), as its bytes.
    pub(crate) async fn get(&self, path: &str, version: Option<u64>) -> Result<SecretBuf, CliError> {
        let (mount, rest) = self.locate(path).await?;
        let mount = mount.as_str();
        let query: Vec<(&str, String)> = version.map(|v| ("version", v.to_string())).into_iter().collect();
        match self.send(reqwest::Method::GET, &[mount, "data", rest], &query, None).await {
            Ok(answer) => from_kv(&answer["data"]["data"]).map(|v| SecretBuf(zeroize::Zeroizing::new(v))),
            Err(e) if e.code == 4 => Err(self.why_not_found(path, version).await),
            Err(e) => Err(e),
        }
    }

    /// `tresor set`: a new version, only if the newest is `cas` when given; its number.
    pub(crate) async fn set(&self, path: &str, value: &[u8], cas: Option<u64>) -> Result<u64, CliError> {
        use base64ct::Encoding;
        let (mount, rest) = self.locate(path).await?;
        let mount = mount.as_str();
        #[derive(serde::Serialize)]
        struct Data<'a> {
            value_base64: &'a str,
        }
        #[derive(serde::Serialize)]
        struct Body<'a> {
            data: Data<'a>,
            #[serde(skip_serializing_if = "Option::is_none")]
            options: Option<Value>,
        }
        let encoded = zeroize::Zeroizing::new(base64ct::Base64::encode_string(value));
        let body =
            Body { data: Data { value_base64: &encoded }, options: cas.map(|cas| json!({ "cas": cas })) };
        let bytes =
            zeroize::Zeroizing::new(serde_json::to_vec(&body).map_err(|e| CliError::other(e.to_string()))?);
        let answer = self.send(reqwest::Method::POST, &[mount, "data", rest], &[], Some(bytes)).await?;
        answer["data"]["version"]
            .as_u64()
            .ok_or_else(|| CliError::other(format!("{}: the answer names no version", self.base)))
    }

    /// Why a read of `path` found nothing, as the vault here would say it: no such mount, no
    /// such secret or version, or a version deleted or destroyed.
    async fn why_not_found(&self, path: &str, version: Option<u64>) -> CliError {
        // A token that may read the data but not the metadata: just "not found".
        let Ok(history) = self.history(path).await else {
            return CliError::from_core(&tresor::Error::NotFound { path: path.to_string() });
        };
        let wanted = match version {
            Some(v) => history.iter().find(|h| h.version == v),
            None => history.last(),
        };
        let path = path.to_string();
        CliError::from_core(&match wanted {
            Some(h) if h.destroyed => tresor::Error::Destroyed { path, version: h.version },
            Some(h) if h.deleted_ms.is_some() => tresor::Error::Deleted { path, version: h.version },
            Some(_) | None if version.is_some() => {
                tresor::Error::NoSuchVersion { path, version: version.unwrap_or_default() }
            }
            _ => tresor::Error::NotFound { path },
        })
    }

    /// The KV v2 metadata of `path`.
    async fn metadata(&self, path: &str) -> Result<Value, CliError> {
        let (mount, rest) = self.locate(path).await?;
        let mount = mount.as_str();
        let answer = self
            .send(reqwest::Method::GET, &[mount, "metadata", rest], &[], None)
            .await
            .map_err(|e| not_found_as(e, path))?;
        Ok(answer["data"].clone())
    }

    /// `tresor history`: every version the server shows (their sizes are not part of the API).
    pub(crate) async fn history(&self, path: &str) -> Result<Vec<HistoryEntry>, CliError> {
        let meta = self.metadata(path).await?;
        let current = meta["current_version"].as_u64();
        let mut out: Vec<HistoryEntry> = meta["versions"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(number, v)| {
                let version = number.parse().ok()?;
                let deleted_ms = parse_time(&v["deletion_time"]).filter(|t| *t <= now_ms());
                let destroyed = v["destroyed"].as_bool().unwrap_or(false);
                Some(HistoryEntry {
                    version,
                    size: 0,
                    created_ms: parse_time(&v["created_time"]).unwrap_or(0),
                    deleted_ms,
                    destroyed,
                    current: Some(version) == current && deleted_ms.is_none() && !destroyed,
                })
            })
            .collect();
        out.sort_by_key(|h| h.version);
        Ok(out)
    }

    /// `tresor rm`: deletes the newest version; its number.
    pub(crate) async fn rm(&self, path: &str) -> Result<u64, CliError> {
        let history = self.history(path).await?;
        let Some(newest) = history.last().filter(|h| h.current) else {
            return Err(CliError::from_core(&tresor::Error::Deleted {
                path: path.to_string(),
                version: history.last().map_or(0, |h| h.version),
            }));
        };
        let (mount, rest) = self.locate(path).await?;
        let mount = mount.as_str();
        self.send(reqwest::Method::DELETE, &[mount, "data", rest], &[], None).await?;
        Ok(newest.version)
    }

    /// `tresor undelete` / `tresor destroy` (`action`: `undelete`, `destroy`) of `versions`.
    pub(crate) async fn mark_versions(
        &self,
        action: &str,
        path: &str,
        versions: &[u64],
    ) -> Result<(), CliError> {
        let (mount, rest) = self.locate(path).await?;
        let mount = mount.as_str();
        let body = Self::body(&json!({ "versions": versions }))?;
        self.send(reqwest::Method::POST, &[mount, action, rest], &[], Some(body)).await.map(drop)
    }

    /// `tresor list`: the live secrets under `prefix` (the `secret/` mount when none), from the
    /// mount's listing folder by folder, each with its newest version's metadata.
    pub(crate) async fn list(&self, prefix: &str) -> Result<Vec<ListEntry>, CliError> {
        use futures::StreamExt;
        let prefix = if prefix.is_empty() { "secret/" } else { prefix };
        let mount = self.mount_of(prefix).await?;
        let mount = mount.as_str();
        let rest = prefix.strip_prefix(mount).map_or("", |r| r.trim_start_matches('/'));
        // From the deepest folder the prefix names, down every folder that can still match.
        let mut names = Vec::new();
        let mut folders = vec![rest.rfind('/').map_or("", |i| &rest[..=i]).to_string()];
        while let Some(dir) = folders.pop() {
            let listed = self
                .send(reqwest::Method::GET, &[mount, "metadata", &dir], &[("list", "true".into())], None)
                .await;
            let keys = match listed {
                Ok(answer) => answer["data"]["keys"].as_array().cloned().unwrap_or_default(),
                Err(e) if e.code == 4 => Vec::new(),
                Err(e) => return Err(e),
            };
            for key in keys.iter().filter_map(Value::as_str) {
                let full = format!("{dir}{key}");
                if full.ends_with('/') && (full.starts_with(rest) || rest.starts_with(&full)) {
                    folders.push(full);
                } else if !full.ends_with('/') && full.starts_with(rest) {
                    names.push(full);
                }
            }
        }
        names.sort();
        let entries: Vec<Result<Option<ListEntry>, CliError>> = futures::stream::iter(names)
            .map(|name| async move {
                let path = format!("{mount}/{name}");
                let meta = match self.metadata(&path).await {
                    Ok(meta) => meta,
                    // Deleted (or its metadata gone) between the listing and now.
                    Err(e) if e.code == 4 => return Ok(None),
                    Err(e) => return Err(e),
                };
                let version = meta["current_version"].as_u64().unwrap_or(0);
                let newest = &meta["versions"][version.to_string()];
                let deleted = parse_time(&newest["deletion_time"]).is_some_and(|t| t <= now_ms())
                    || newest["destroyed"].as_bool().unwrap_or(false);
                Ok((!deleted).then(|| ListEntry {
                    path,
                    version,
                    size: 0,
                    updated_ms: parse_time(&newest["created_time"]).unwrap_or(0),
                }))
            })
            .buffered(LIST_IN_FLIGHT)
            .collect()
            .await;
        entries.into_iter().filter_map(Result::transpose).collect()
    }
}

/// What a server's transit key signed: the signature, the public key and the key version.
pub(crate) struct Signed {
    pub(crate) signature: Vec<u8>,
    pub(crate) public_key: Vec<u8>,
    pub(crate) version: u64,
}

impl Remote {
    /// A JSON body, wiped after sending (it may carry a plaintext).
    fn body(value: &Value) -> Result<zeroize::Zeroizing<Vec<u8>>, CliError> {
        serde_json::to_vec(value).map(zeroize::Zeroizing::new).map_err(|e| CliError::other(e.to_string()))
    }

    /// `tresor encrypt KEY` on the server's transit mount: Vault's `vault:vN:...` ciphertext (the
    /// key is made on first use, as Vault does).
    pub(crate) async fn encrypt(&self, key: &str, plaintext: &[u8]) -> Result<String, CliError> {
        use base64ct::Encoding;
        let encoded = zeroize::Zeroizing::new(base64ct::Base64::encode_string(plaintext));
        let body = Self::body(&json!({ "plaintext": encoded.as_str() }))?;
        let answer = self.send(reqwest::Method::POST, &["transit/encrypt", key], &[], Some(body)).await?;
        answer["data"]["ciphertext"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| CliError::other(format!("{}: the answer holds no ciphertext", self.base)))
    }

    /// `tresor decrypt KEY` of a `vault:vN:...` ciphertext on the server's transit mount.
    pub(crate) async fn decrypt(&self, key: &str, ciphertext: &str) -> Result<Vec<u8>, CliError> {
        use base64ct::Encoding;
        let body = Self::body(&json!({ "ciphertext": ciphertext }))?;
        let answer = self.send(reqwest::Method::POST, &["transit/decrypt", key], &[], Some(body)).await?;
        let encoded = answer["data"]["plaintext"]
            .as_str()
            .ok_or_else(|| CliError::other(format!("{}: the answer holds no plaintext", self.base)))?;
        base64ct::Base64::decode_vec(encoded)
            .map_err(|_| CliError::other(format!("{}: the plaintext is not Base64", self.base)))
    }

    /// `tresor sign KEY` with the server's Ed25519 transit key `key`: the signature, and the
    /// public key of the version that signed.
    pub(crate) async fn sign(&self, key: &str, message: &[u8]) -> Result<Signed, CliError> {
        use base64ct::Encoding;
        let encoded = zeroize::Zeroizing::new(base64ct::Base64::encode_string(message));
        let body = Self::body(&json!({ "input": encoded.as_str() }))?;
        let answer = self.send(reqwest::Method::POST, &["transit/sign", key], &[], Some(body)).await?;
        let bad = || CliError::other(format!("{}: the answer holds no signature", self.base));
        let text = answer["data"]["signature"].as_str().ok_or_else(bad)?;
        // `vault:vN:BASE64`
        let mut parts = text.splitn(3, ':');
        let (Some("vault"), Some(version), Some(signature)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let version: u64 = version.strip_prefix('v').and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let signature = base64ct::Base64::decode_vec(signature).map_err(|_| bad())?;
        let keys = self.send(reqwest::Method::GET, &["transit/keys", key], &[], None).await?;
        let public_key = keys["data"]["keys"][version.to_string()]["public_key"]
            .as_str()
            .and_then(|k| base64ct::Base64::decode_vec(k).ok())
            .ok_or_else(|| CliError::other(format!("{}: key {key} shows no public key", self.base)))?;
        Ok(Signed { signature, public_key, version })
    }
}

impl Remote {
    /// The KV v2 mount `path` lies in and the path under it (`path` checked as by [`split`]).
    async fn locate<'p>(&self, path: &'p str) -> Result<(String, &'p str), CliError> {
        split(path)?;
        let mount = self.mount_of(path).await?;
        let rest = path
            .strip_prefix(mount.as_str())
            .and_then(|r| r.strip_prefix('/'))
            .filter(|r| !r.is_empty())
            .ok_or_else(|| {
                CliError::input(format!("{path}: that is the mount {mount}/ itself; name a secret under it"))
            })?;
        Ok((mount, rest))
    }

    /// The KV v2 mount `path` lies in, as the server names it (`sys/internal/ui/mounts`, which
    /// every token may ask), remembered for the rest of the command.
    async fn mount_of(&self, path: &str) -> Result<String, CliError> {
        let known = |mounts: &[String]| {
            mounts
                .iter()
                .find(|m| path.strip_prefix(m.as_str()).is_some_and(|r| r.is_empty() || r.starts_with('/')))
                .cloned()
        };
        if let Some(mount) = known(&self.lock_mounts()) {
            return Ok(mount);
        }
        let asked = path.trim_end_matches('/');
        let answer =
            match self.send(reqwest::Method::GET, &["sys/internal/ui/mounts", asked], &[], None).await {
                Ok(answer) => answer,
                // A token that may not see the mount: its first segment, and the server's answer to
                // the request itself says what the token may not do.
                Err(e) if e.code == 3 => return Ok(path.split('/').next().unwrap_or_default().to_string()),
                Err(e) if e.code == 4 => {
                    return Err(CliError::from_category(
                        tresor::Category::NotFound,
                        format!(
                            "{path}: the server has no mount there (a path starts with its mount: secret/...)"
                        ),
                    ));
                }
                Err(e) => return Err(e),
            };
        let data = &answer["data"];
        let mount = data["path"].as_str().unwrap_or_default().trim_end_matches('/').to_string();
        let kind = data["type"].as_str().unwrap_or_default();
        if kind != "kv" || mount.is_empty() || known(std::slice::from_ref(&mount)).is_none() {
            return Err(CliError::input(format!(
                "{path}: the server serves it from a {kind} mount ({mount}/), not a KV one"
            )));
        }
        self.lock_mounts().push(mount.clone());
        Ok(mount)
    }

    fn lock_mounts(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.mounts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A vault path as a KV v2 mount and the path under it, checked as the vault checks paths (so
/// that no `..`, empty segment or control character reaches a URL, which would name another path).
fn split(path: &str) -> Result<(&str, &str), CliError> {
    use tresor::path::IntoSecretPath;
    path.into_secret_path().map_err(|e| CliError::from_core(&e))?;
    match path.split_once('/') {
        Some((mount, rest)) if !mount.is_empty() && !rest.is_empty() => Ok((mount, rest)),
        _ => Err(CliError::input(format!(
            "{path}: a path on a server starts with its KV mount (`secret/{path}`)"
        ))),
    }
}

/// A 404 as the core's "not found" for `path`, or deleted when the answer says so.
fn not_found_as(e: CliError, path: &str) -> CliError {
    if e.code == 4 { CliError::from_core(&tresor::Error::NotFound { path: path.to_string() }) } else { e }
}

/// KV v2 data as the value's bytes: the bytes the server stored (the mapping is one, both ways:
/// `tresor_server::http::kvdata`).
fn from_kv(data: &Value) -> Result<Vec<u8>, CliError> {
    let Some(map) = data.as_object() else {
        return Err(CliError::other("the server's answer holds no data".into()));
    };
    tresor_server::http::kvdata::encode(map)
        .map(|bytes| bytes.to_vec())
        .map_err(|e| CliError::other(format!("the server sent data that is no value: {e}")))
}

/// An RFC 3339 time as ms since the Unix epoch (`None` for "" or anything else).
fn parse_time(value: &Value) -> Option<u64> {
    let text = value.as_str().filter(|t| !t.is_empty())?;
    let t = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    u64::try_from(t.timestamp_millis()).ok()
}

/// Now, in ms since the Unix epoch.
fn now_ms() -> u64 {
    tresor::model::now_ms()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_data_reads_as_the_value_it_stands_for() {
        let bytes = |v: Value| from_kv(&v).ok();
        assert_eq!(bytes(json!({ "value": "hunter2" })).as_deref(), Some(&b"hunter2"[..]));
        assert_eq!(bytes(json!({ "value_base64": "/wBh" })).as_deref(), Some(&[0xff, 0, b'a'][..]));
        assert_eq!(bytes(json!({ "user": "u" })).as_deref(), Some(&br#"{"user":"u"}"#[..]));
        assert_eq!(bytes(json!({ "value": 5 })).as_deref(), Some(&br#"{"value":5}"#[..]));
        assert!(bytes(json!({ "value_base64": "%%" })).is_none());
        assert!(bytes(Value::Null).is_none());
    }

    #[test]
    fn paths_name_their_mount() {
        assert_eq!(split("secret/app/db").ok(), Some(("secret", "app/db")));
        for bad in ["app", "secret/", "/app", "", "secret/a/../b", "secret/a//b", "secret/a\nb"] {
            assert!(split(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_parse_as_the_server_writes_them() {
        assert_eq!(parse_time(&json!("1970-01-01T00:00:01.500000Z")), Some(1500));
        assert_eq!(parse_time(&json!("")), None);
        assert_eq!(parse_time(&json!("yesterday")), None);
    }
}
