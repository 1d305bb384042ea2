//! `tresor login` and `tresor logout`: a token for a `tresor server`, checked against the server
//! and kept for its address (a file of its own, 0600, in the state directory), as the Vault CLI
//! keeps `~/.vault-token`.

use crate::exit::CliError;
use crate::remote::{Remote, Server, base_url, client, token_file};
use crate::*;
use secrecy::ExposeSecret;
use std::io::{BufRead, IsTerminal};

/// `tresor login`: reads the token (stdin, or a hidden prompt on a terminal), checks it with
/// `auth/token/lookup-self`, and keeps it.
pub(crate) fn login(server: Server, stdin: &mut impl BufRead) -> Result<(), CliError> {
    let base = base_url(server.address)?;
    let client = client(server.ca_cert)?;
    let token = if std::io::stdin().is_terminal() {
        password::prompt_line("Token: ")
    } else {
        password::read_stdin_line(stdin)
    }
    .map_err(CliError::input)?;
    let token = secrecy::SecretString::from(token.expose_secret().trim().to_string());
    if token.expose_secret().is_empty() {
        return Err(CliError::input("no token given".into()));
    }
    let remote = Remote::new(base.clone(), client, token);
    let me = runtime()?.block_on(remote.lookup_self())?;
    let file = token_file(&base);
    if let Some(dir) = file.parent() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| CliError::other(format!("cannot make {}: {e}", dir.display())))?;
    }
    let token = zeroize::Zeroizing::new(format!("{}\n", remote.token()));
    write_private_file(&file, token.as_bytes())?;
    let policies: Vec<&str> =
        me["policies"].as_array().into_iter().flatten().filter_map(serde_json::Value::as_str).collect();
    let ttl = match me["ttl"].as_u64() {
        Some(0) | None => "no expiry".to_string(),
        Some(s) => format!("expires in {}", super::epoch::human_secs(s)),
    };
    outln!("logged in to {base} (policies: {}; {ttl})", policies.join(", "));
    if remote::env(&["TRESOR_ADDR"]).and_then(|a| base_url(Some(a)).ok()).as_ref() != Some(&base) {
        errln!(
            "tresor: set TRESOR_ADDR={base} for get, set, list, rm, history, encrypt, decrypt and sign to use this server"
        );
    }
    Ok(())
}

/// `tresor logout`: forgets the kept token (the server still honours it until it expires or is
/// revoked).
pub(crate) fn logout(address: Option<String>) -> Result<(), CliError> {
    let base = base_url(address)?;
    match std::fs::remove_file(token_file(&base)) {
        Ok(()) => outln!("forgot the token for {base}"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => outln!("no token was kept for {base}"),
        Err(e) => return Err(CliError::other(format!("cannot remove the token for {base}: {e}"))),
    }
    Ok(())
}
