//! `tresor unseal`: opens a sealed `tresor server` from a person's terminal — with the vault's
//! password (the native route `tresor/unseal`), or one unseal share at a time (`sys/unseal`, as
//! `vault operator unseal` does). The server's address comes from `--address`, `TRESOR_ADDR`,
//! `VAULT_ADDR`, else `http://127.0.0.1:8200`; its CA from `--ca-cert`, `TRESOR_CACERT` or
//! `VAULT_CACERT`. A password or share is never sent in the clear off this machine.

use crate::exit::CliError;
use crate::*;
use secrecy::ExposeSecret;
use std::time::Duration;

/// How long one request to the server may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Where the server is and how to trust it.
pub(crate) struct Server {
    pub(crate) address: Option<String>,
    pub(crate) ca_cert: Option<std::path::PathBuf>,
}

/// The first set, non-empty variable of `names`.
fn env(names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
}

/// The server's base URL, checked: http(s), and plain http only to this machine.
fn base_url(address: Option<String>) -> Result<reqwest::Url, CliError> {
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
            "server address {url}: plain http to another machine would send the password in the clear; use https"
        ))),
        other => Err(CliError::input(format!("server address {url}: {other} is not http or https"))),
    }
}

/// An HTTP client trusting `ca_cert` only, when given (as `VAULT_CACERT`), else the system's roots.
fn client(ca_cert: Option<std::path::PathBuf>) -> Result<reqwest::Client, CliError> {
    tresor_backend::install_tls_provider();
    // No proxy (it would see a plain-http password to "this machine") and no redirect (the body
    // would follow to wherever the answer points).
    let mut builder = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(Duration::from_secs(10))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none());
    let ca = ca_cert.or_else(|| env(&["TRESOR_CACERT", "VAULT_CACERT"]).map(Into::into));
    if let Some(path) = ca {
        let pem = std::fs::read(&path).map_err(|e| CliError::input(format!("{}: {e}", path.display())))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| CliError::input(format!("{}: not a PEM certificate: {e}", path.display())))?;
        builder = builder.tls_certs_only([cert]);
    }
    builder.build().map_err(|e| CliError::other(format!("cannot make an HTTP client: {e}")))
}

/// The server's seal status (`GET sys/seal-status`).
async fn seal_status(client: &reqwest::Client, base: &reqwest::Url) -> Result<serde_json::Value, CliError> {
    let url = base.join("v1/sys/seal-status").map_err(|e| CliError::input(e.to_string()))?;
    answered(base, client.get(url).send().await).await
}

/// Sends `body` to `PUT {base}/v1/{route}`; the answer's JSON, or the server's error as ours.
async fn put(
    client: &reqwest::Client,
    base: &reqwest::Url,
    route: &str,
    body: zeroize::Zeroizing<Vec<u8>>,
) -> Result<serde_json::Value, CliError> {
    let url = base.join(&format!("v1/{route}")).map_err(|e| CliError::input(e.to_string()))?;
    let sent = client.put(url).header("Content-Type", "application/json").body(body.to_vec()).send().await;
    answered(base, sent).await
}

/// An answer's JSON, or the server's error (or why there was no answer) as ours.
async fn answered(
    base: &reqwest::Url,
    sent: reqwest::Result<reqwest::Response>,
) -> Result<serde_json::Value, CliError> {
    let answer = sent.map_err(|e| CliError::other(format!("no answer from {base}: {}", error_chain(&e))))?;
    let status = answer.status();
    let bytes = answer.bytes().await.unwrap_or_default();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    if status.is_success() {
        return Ok(json);
    }
    let message = json["errors"]
        .as_array()
        .map(|e| e.iter().filter_map(|m| m.as_str()).collect::<Vec<_>>().join("; "))
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| format!("HTTP {status}"));
    Err(match status.as_u16() {
        400 if message.contains("does not open") || message.contains("do not open") => {
            CliError::from_core(&tresor::Error::AuthFailed)
        }
        400 if message.contains("not initialized") => CliError::from_category(
            tresor::Category::Location,
            format!("{base}: the server has no vault yet (sys/init makes one)"),
        ),
        429 => CliError::other(format!("{base}: too many failed attempts from this address; wait a minute")),
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

/// Prints the seal state an answer reports.
fn report(status: &serde_json::Value) {
    if status["sealed"] == serde_json::Value::Bool(false) {
        outln!("unsealed");
    } else {
        outln!(
            "sealed: {} of {} shares given",
            status["progress"].as_u64().unwrap_or(0),
            status["t"].as_u64().unwrap_or(0)
        );
    }
}

/// `tresor unseal [--share]`.
pub(crate) fn run(ctx: &mut Ctx, server: Server, share: bool) -> Result<(), CliError> {
    let base = base_url(server.address)?;
    let client = client(server.ca_cert)?;
    let rt = runtime()?;
    // Nothing to ask when there is nothing to open.
    let status = rt.block_on(seal_status(&client, &base))?;
    if status["initialized"] == serde_json::Value::Bool(false) {
        return Err(CliError::from_category(
            tresor::Category::Location,
            format!("{base}: the server has no vault yet (sys/init makes one)"),
        ));
    }
    if status["sealed"] == serde_json::Value::Bool(false) {
        report(&status);
        return Ok(());
    }
    // The bodies borrow the secret: the only copy made is the (wiped) encoded body.
    #[derive(serde::Serialize)]
    struct Share<'a> {
        key: &'a str,
    }
    #[derive(serde::Serialize)]
    struct WithPassword<'a> {
        password: &'a str,
    }
    let encode = |r: serde_json::Result<Vec<u8>>| {
        r.map(zeroize::Zeroizing::new).map_err(|e| CliError::other(e.to_string()))
    };
    let (route, body) = if share {
        let share = password::prompt_line("Unseal share: ").map_err(CliError::input)?;
        ("sys/unseal", encode(serde_json::to_vec(&Share { key: share.expose_secret().trim() }))?)
    } else {
        let password = ctx.password()?;
        ("tresor/unseal", encode(serde_json::to_vec(&WithPassword { password: password.expose_secret() }))?)
    };
    let status = rt.block_on(put(&client, &base, route, body))?;
    report(&status);
    Ok(())
}
