//! Background sync of the vault's sync groups, for the agent and the server: one round of every
//! group each time it is called (`tresor sync` runs the same round in the foreground), with what
//! it did and saw logged.

use std::time::Duration;
use tresor::Vault;
use tresor_sync::share::{self, Memo, ShareError};

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
}

/// One round of every sync group of `vault`; `memo` is kept by the caller between rounds.
pub async fn groups(vault: &Vault, backend: &tresor_backend::BackendConfig, memo: &mut Memo) {
    tresor_backend::install_tls_provider();
    let Ok(http) = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
    else {
        tracing::warn!("background sync: no HTTP client");
        return;
    };
    for (record, result) in share::sync_all(vault, &http, backend, vault.actor(), memo).await {
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
                    tracing::warn!("sync {prefix}/: {warning:?}");
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

/// Syncs as `config` says while `slot` holds an unlocked vault, as `actor`, until aborted (a
/// round cut short leaves what a crash leaves: the next round finishes it).
pub(crate) async fn every_round(slot: crate::agent::Slot, actor: &'static str, config: SyncConfig) {
    let mut memo = Memo::default();
    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + config.every, config.every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        every.tick().await;
        let vault = slot.lock().await.clone();
        if let Some(vault) = vault {
            groups(&vault.with_actor(actor), &config.backend, &mut memo).await;
        }
    }
}
