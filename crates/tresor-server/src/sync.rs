//! Sync of the vault's sync groups for the agent, the server and the CLI: rounds in the
//! background (what they did and saw logged), rounds on demand (`tresor sync`, told as the wire's
//! plain reports), and the groups and conflicts as the vault last saw them.

use std::time::Duration;
use tresor::Vault;
use tresor_sync::pair::PairError;
use tresor_sync::relay::RelayError;
use tresor_sync::share::{self, Memo, Report, ShareError};
use tresor_wire::{GroupRound, GroupSummary, MemberSummary, RoundReport, RoundWarning, ShareFailure};

/// How often the agent and the server sync in the background unless told (the groups'
/// heartbeat interval).
pub const EVERY: Duration = Duration::from_secs(60);

/// How the agent or the server syncs in the background.
#[derive(Clone)]
pub struct SyncConfig {
    /// How often.
    pub every: Duration,
    /// What a bucket used as a relay is opened with (the binary's environment: AWS settings).
    pub backend: tresor_backend::BackendConfig,
    /// A PEM certificate to trust for `https` relays instead of the system's roots.
    pub ca_cert: Option<Vec<u8>>,
}

/// The HTTP client rounds reach `tresor relay`s with: no proxy, no redirect, bounded; trusting
/// only `ca_cert` (PEM) when given.
pub fn http_client(ca_cert: Option<&[u8]>) -> Result<reqwest::Client, ShareFailure> {
    tresor_backend::install_tls_provider();
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(5));
    if let Some(pem) = ca_cert {
        let cert = reqwest::Certificate::from_pem(pem)
            .map_err(|e| other(7, format!("not a PEM certificate: {e}")))?;
        builder = builder.tls_certs_only([cert]);
    }
    builder.build().map_err(|e| other(1, format!("cannot make an HTTP client: {e}")))
}

fn other(exit: u8, message: String) -> ShareFailure {
    ShareFailure::Other { exit, message, hint: None }
}

/// A sharing error as the wire carries it, with the exit code the CLI gives it (documented in
/// `tresor --help`) and what to try.
pub fn failure(e: ShareError) -> ShareFailure {
    let message = e.to_string();
    let (exit, hint) = match e {
        ShareError::Vault(e) => return ShareFailure::Vault(e),
        ShareError::Relay(RelayError::Lying { .. }) | ShareError::Pair(PairError::Attack(_)) => (5, None),
        ShareError::Relay(_) => (1, Some("is the relay running, and its URL right?")),
        ShareError::Pair(_) | ShareError::Refused(_) => (7, None),
        ShareError::NoGroup(_) => (4, Some("`tresor share list` shows the groups of this vault")),
        ShareError::NoMember(_) => (4, Some("`tresor share members FOLDER` shows their ids")),
        ShareError::NoPeer(..) => (4, Some("`tresor share koi list` shows the KOI peers")),
        ShareError::Busy(_) => (6, None),
        _ => (1, None),
    };
    ShareFailure::Other { exit, message, hint: hint.map(str::to_string) }
}

/// A sharing call's outcome as a vault call answers it: the vault's own errors as every call's
/// (a vault locked meanwhile is told as such), the others as the call's reply.
pub fn lift<T>(result: Result<T, ShareError>) -> tresor::Result<Result<T, ShareFailure>> {
    match result.map_err(failure) {
        Err(ShareFailure::Vault(e)) => Err(e),
        other => Ok(other),
    }
}

/// A round's report as the wire carries it.
pub fn round_report(report: Report) -> RoundReport {
    RoundReport {
        received: report.received,
        sent: report.sent,
        warnings: report
            .warnings
            .iter()
            .map(|w| RoundWarning { attack: w.is_attack(), text: w.to_string() })
            .collect(),
        problems: report.problems,
        skipped: report.skipped.into_iter().map(|(path, why)| (path, why.to_string())).collect(),
        conflicts: report.conflicts.into_iter().map(|(path, n)| (path, n as u64)).collect(),
        unacknowledged: report.unacknowledged as u64,
        removed: report.removed,
    }
}

/// One round now of the group sharing `prefix` (or of every group), each through its own relay
/// (`tresor relay`s with `http`, buckets opened with `backend`): what each did, or why it did
/// not (no group sharing `prefix` is one failed round).
pub async fn sync_now(
    vault: &Vault,
    relays: (&reqwest::Client, &tresor_backend::BackendConfig),
    prefix: Option<&str>,
    memo: &mut Memo,
) -> Vec<GroupRound> {
    share::sync_groups(vault, relays, prefix, vault.actor(), memo)
        .await
        .into_iter()
        .map(|(record, result)| GroupRound {
            prefix: match record.prefix.is_empty() {
                true => prefix.unwrap_or_default().to_string(),
                false => record.prefix,
            },
            outcome: result.map(round_report).map_err(failure),
        })
        .collect()
}

/// Every group of `vault` as it last saw it.
pub async fn summaries(vault: &Vault) -> Result<Vec<GroupSummary>, ShareFailure> {
    let mut out = Vec::new();
    for record in share::records(vault).await.map_err(failure)? {
        let view = share::view(vault, record.clone()).await.map_err(failure)?;
        out.push(GroupSummary {
            prefix: record.prefix,
            relay: record.relay,
            epoch: view.epoch,
            removed: view.removed,
            members: view
                .members
                .into_iter()
                .map(|m| MemberSummary { id: m.id.0, admin: m.admin, me: m.me, heard: m.heard, name: m.name })
                .collect(),
            conflicts: view.conflicts.into_iter().map(|(path, n)| (path, n as u64)).collect(),
            unacknowledged: view.unacknowledged as u64,
        });
    }
    Ok(out)
}

/// How many concurrent versions a sync group keeps beside `value`, the value `path` shows (see
/// [`share::conflict_of`]); a note that cannot be read is left out (it must not fail the read).
pub async fn conflict_of(vault: &Vault, path: &str, value: &[u8]) -> Option<u64> {
    share::conflict_of(vault, path, value).await.unwrap_or_else(|e| {
        tracing::debug!("the conflicts of sync could not be read: {e}");
        None
    })
}

/// One round of every sync group of `vault`; `memo` is kept by the caller between rounds.
pub async fn groups(vault: &Vault, config: &SyncConfig, memo: &mut Memo) {
    let http = match http_client(config.ca_cert.as_deref()) {
        Ok(http) => http,
        Err(e) => {
            tracing::warn!("background sync: {e}");
            return;
        }
    };
    for (record, result) in
        share::sync_groups(vault, (&http, &config.backend), None, vault.actor(), memo).await
    {
        let prefix = &record.prefix;
        match result {
            Ok(report) => {
                if !report.received.is_empty() || !report.sent.is_empty() {
                    tracing::info!(
                        "sync {prefix}/: {} received, {} sent",
                        report.received.len(),
                        report.sent.len()
                    );
                }
                for (path, others) in &report.conflicts {
                    tracing::warn!(
                        "sync {prefix}/: {path} was written concurrently ({others} other versions)"
                    );
                }
                for warning in &report.warnings {
                    tracing::warn!("sync {prefix}/: {warning}");
                }
                for problem in &report.problems {
                    tracing::warn!("sync {prefix}/: {problem}");
                }
                for (path, why) in &report.skipped {
                    tracing::warn!("sync {prefix}/: {path} is not carried: {why}");
                }
            }
            // Another round ran at the same time (a `tresor sync`): it did the work.
            Err(ShareError::Busy(_)) => {}
            Err(e) => tracing::warn!("sync {prefix}/: {e}"),
        }
    }
}

/// The agent's rounds, one at a time (in the background and asked for), with what they remember.
pub(crate) type Rounds = std::sync::Arc<tokio::sync::Mutex<Memo>>;

/// Syncs as `config` says while `slot` holds an unlocked vault, as `actor`, until aborted (a
/// round cut short leaves what a crash leaves: the next round finishes it); one round at a time
/// with the others of `rounds`.
pub(crate) async fn every_round(
    slot: crate::agent::Slot,
    actor: &'static str,
    config: SyncConfig,
    rounds: Rounds,
) {
    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + config.every, config.every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        every.tick().await;
        let vault = slot.lock().await.clone();
        if let Some(vault) = vault {
            let mut memo = rounds.lock().await;
            groups(&vault.with_actor(actor), &config, &mut memo).await;
        }
    }
}
