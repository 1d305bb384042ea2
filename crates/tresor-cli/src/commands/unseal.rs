//! `tresor unseal`: opens a sealed `tresor server` from a person's terminal — with the vault's
//! password (the native route `tresor/unseal`), or one unseal share at a time (`sys/unseal`, as
//! `vault operator unseal` does). The server's address comes from `--address`, `TRESOR_ADDR`,
//! `VAULT_ADDR`, else `http://127.0.0.1:8200`; its CA from `--ca-cert`, `TRESOR_CACERT` or
//! `VAULT_CACERT`. A password or share is never sent in the clear off this machine.

use crate::exit::CliError;
use crate::*;
use secrecy::ExposeSecret;
use std::io::IsTerminal;

use crate::remote::{Server, answered, base_url, client};

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
pub(crate) fn run(
    ctx: &mut Ctx,
    server: Server,
    share: bool,
    stdin: &mut impl std::io::BufRead,
) -> Result<(), CliError> {
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
        // From a terminal, hidden; from a pipe, its first line (`... | tresor unseal --share`,
        // as `vault operator unseal -`): never from argv, which other users' `ps` shows.
        let share = if std::io::stdin().is_terminal() {
            password::prompt_line("Unseal share: ").map_err(CliError::input)?
        } else {
            password::read_stdin_line(stdin)
                .map_err(|e| CliError::input(e.replace("the password", "the unseal share")))?
        };
        if share.expose_secret().trim().is_empty() {
            return Err(CliError::input("no unseal share given".into()));
        }
        ("sys/unseal", encode(serde_json::to_vec(&Share { key: share.expose_secret().trim() }))?)
    } else {
        let password = ctx.password()?;
        ("tresor/unseal", encode(serde_json::to_vec(&WithPassword { password: password.expose_secret() }))?)
    };
    let status = rt.block_on(put(&client, &base, route, body))?;
    report(&status);
    Ok(())
}
