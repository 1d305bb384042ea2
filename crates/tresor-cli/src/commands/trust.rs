//! `tresor trust`: which vault this machine pins at a location, pinning one before first use,
//! forgetting a pin, and carrying pins to another machine (export / import).

use crate::Ctx;
use crate::exit::CliError;
use std::io::Read;
use std::path::PathBuf;
use tresor::fingerprint::Fingerprint;
use tresor::trust::{LocationPin, TrustExport};

/// What `tresor trust` does besides pinning a fingerprint.
#[derive(clap::Subcommand)]
pub enum TrustAction {
    /// Show the vault and fingerprint this machine pins at the location, and the newest state seen.
    Show {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Forget which vault is at the location: the next unlock trusts what it finds (and says so).
    Forget,
    /// Write this machine's pins for the vault (fingerprint, newest commit seen) for another machine.
    Export {
        /// Write to this file (created, mode 0600) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Take another machine's pins for the vault at this location (from `tresor trust export`).
    Import {
        /// The export file (`-`: stdin).
        file: PathBuf,
    },
}

/// Runs `tresor trust [FINGERPRINT | ACTION]`.
pub fn run(
    ctx: &mut Ctx,
    fingerprint: Option<String>,
    action: Option<TrustAction>,
    stdin: &mut impl Read,
) -> Result<(), CliError> {
    let trust = tresor::trust::TrustStore::new(crate::config::state_dir().join("trust"));
    let core = |e: tresor::Error| CliError::from_core(&e);
    match (fingerprint, action) {
        (Some(text), _) => pin(ctx, &trust, &text),
        (None, None) => show(ctx, &trust, false),
        (None, Some(TrustAction::Show { json })) => show(ctx, &trust, json),
        (None, Some(TrustAction::Forget)) => {
            if trust.forget_location(&ctx.location).map_err(core)? {
                errln!(
                    "forgot which vault is at {}; the next unlock pins what it finds there (compare its fingerprint)",
                    ctx.location
                );
            } else {
                errln!("no vault was pinned at {}", ctx.location);
            }
            Ok(())
        }
        (None, Some(TrustAction::Export { out })) => {
            let export = trust.export(&ctx.location).map_err(core)?.ok_or_else(|| {
                CliError::input(format!(
                    "this machine pins no vault at {}: unlock it once, or pin it with `tresor trust FINGERPRINT`",
                    ctx.location
                ))
            })?;
            let mut json = serde_json::to_vec_pretty(&export).map_err(|e| CliError::other(e.to_string()))?;
            json.push(b'\n');
            match out {
                Some(path) => crate::write_private_file(&path, &json)?,
                None => crate::outln_bytes(&json[..json.len() - 1])?,
            }
            Ok(())
        }
        (None, Some(TrustAction::Import { file })) => {
            // A larger file is refused as such, not cut off and then misread as bad JSON.
            let source = crate::input::Source::of(Some(&file));
            let text = crate::input::read_limited(source, stdin, 1 << 20, "a trust export")?;
            let export: TrustExport = serde_json::from_slice(&text).map_err(|e| {
                CliError::input(format!("{} is not a tresor trust export: {e}", file.display()))
            })?;
            trust.import(&ctx.location, &export).map_err(core)?;
            errln!(
                "pinned vault {} (fingerprint {}) at {}, from commit {} and audit record {} on",
                export.pin.vault_id,
                export.pin.fingerprint,
                ctx.location,
                export.state.log_seq,
                export.state.audit_seq
            );
            Ok(())
        }
    }
}

/// `tresor trust FINGERPRINT`: pins the vault at the location (read from its public key file
/// header) with this fingerprint, before its first unlock here or to re-trust the location.
fn pin(ctx: &Ctx, trust: &tresor::trust::TrustStore, text: &str) -> Result<(), CliError> {
    let fingerprint: Fingerprint = text.parse().map_err(CliError::input)?;
    let rt = crate::runtime()?;
    let info = rt.block_on(async {
        let store = crate::open_store(&ctx.location, false).await?;
        tresor::vault::describe_locked(&store).await.map_err(|e| CliError::from_core(&e))
    })?;
    let previous = trust.location_pin(&ctx.location).map_err(|e| CliError::from_core(&e))?;
    let pin = LocationPin {
        vault_id: info.vault_id.clone(),
        fingerprint: fingerprint.to_string(),
        pinned_by: "tresor trust".into(),
        era: info.era.max(1),
        pending: None,
    };
    trust.pin_location(&ctx.location, &pin).map_err(|e| CliError::from_core(&e))?;
    match previous {
        Some(p) if p.vault_id == pin.vault_id && p.fingerprint == pin.fingerprint && p.era == pin.era => {
            errln!(
                "vault {} at {} was already pinned with fingerprint {fingerprint}",
                pin.vault_id,
                ctx.location
            )
        }
        Some(p) => errln!(
            "re-trusted {}: vault {} with fingerprint {fingerprint} (was vault {}, fingerprint {})",
            ctx.location,
            pin.vault_id,
            p.vault_id,
            p.fingerprint
        ),
        None => errln!(
            "pinned vault {} at {} with fingerprint {fingerprint}: an unlock whose root does not match fails",
            pin.vault_id,
            ctx.location
        ),
    }
    Ok(())
}

fn show(ctx: &Ctx, trust: &tresor::trust::TrustStore, json: bool) -> Result<(), CliError> {
    let export = trust.export(&ctx.location).map_err(|e| CliError::from_core(&e))?;
    if json {
        return crate::print_json(&export);
    }
    match export {
        None => {
            outln!("location: {}", ctx.location);
            outln!("pinned: nothing (the next unlock trusts the vault it finds, and says so)");
        }
        Some(e) => {
            outln!("location: {}", ctx.location);
            outln!("vault id: {}", e.pin.vault_id);
            outln!("fingerprint: {} (pinned by {})", e.pin.fingerprint, e.pin.pinned_by);
            outln!("root era: {}", e.pin.era);
            outln!("newest commit seen: {}", e.state.log_seq);
            outln!("newest audit record seen: {}", e.state.audit_seq);
            outln!("key file generation seen: {}", e.state.keyfile_generation);
        }
    }
    Ok(())
}
