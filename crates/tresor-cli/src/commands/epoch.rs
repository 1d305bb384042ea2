//! `tresor epoch`: list, rotate, re-encrypt, destroy, policy.
//!
//! Re-encryption and destruction show a progress bar on a terminal when they run in this process;
//! through the agent they run there, and the CLI waits for the report.

use crate::config;
use crate::{CliError, Ctx, call, open_existing, print_json, runtime};
use clap::Subcommand;
use std::io::IsTerminal;
use tresor::Vault;
use tresor::vault::{DestroyReport, ReencryptReport, Residue, format_time};
use tresor_server::Serve;
use tresor_wire::{DestroyEpoch, ListEpochs, Reencrypt, RotateEpoch, Rotated, SetRotationPolicy};

/// What `tresor epoch` does.
#[derive(Subcommand)]
pub enum EpochAction {
    /// The epochs, their state and how many values each still holds.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Start a new epoch: new values are sealed under a new random key from now on.
    Rotate {
        /// Also re-seal every value of older epochs into the new one now.
        #[arg(long)]
        reencrypt: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Re-seal every value of older epochs into the current one (finishes an interrupted run).
    Reencrypt {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Re-seal what EPOCH still holds, then delete its blobs and its key for good.
    #[command(arg_required_else_help = true)]
    Destroy {
        /// The epoch to destroy.
        epoch: u32,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Show or set automatic rotation (applied by the agent, and before writes).
    Policy {
        /// Rotate once the current epoch is this old (e.g. 7d, 12h).
        #[arg(long, value_name = "DURATION", conflicts_with = "off")]
        every: Option<String>,
        /// Turn automatic rotation off.
        #[arg(long)]
        off: bool,
    },
}

/// Runs `tresor epoch ACTION`.
pub fn run(ctx: &mut Ctx, action: EpochAction) -> Result<(), CliError> {
    match action {
        EpochAction::List { json } => match call(ctx, ListEpochs)? {
            list if json => print_json(&list),
            list => {
                outln!("EPOCH  STATE      VALUES  BYTES        SINCE                 REASON");
                for e in &list.epochs {
                    let mut line = format!(
                        "{:<6} {:<10} {:<7} {:<12} {:<21} {}",
                        e.epoch,
                        e.state,
                        e.values,
                        e.bytes,
                        format_time(e.created_ms),
                        e.reason
                    );
                    if let Some(t) = e.destroyed_ms {
                        line.push_str(&format!(" (destroyed {})", format_time(t)));
                    }
                    if let Some(n) = e.leftover_objects.filter(|n| *n > 0) {
                        line.push_str(&format!(
                            " — {n} objects still in the store: run `tresor epoch destroy {}` again",
                            e.epoch
                        ));
                    }
                    outln!("{line}");
                }
                match (list.rotate_every_secs, list.next_rotation_ms) {
                    (Some(every), Some(next)) => {
                        outln!("rotation: every {}, next due {}", human_secs(every), format_time(next))
                    }
                    _ => outln!("rotation: manual (`tresor epoch policy --every 30d` to automate)"),
                }
                Ok(())
            }
        },
        EpochAction::Rotate { reencrypt, json } => {
            match with_progress(ctx, RotateEpoch { reencrypt }, "re-encrypting")? {
                Rotated { rotation: r, reencrypted: re } if json => {
                    print_json(&serde_json::json!({ "rotate": r, "reencrypt": re }))
                }
                Rotated { rotation: r, reencrypted: re } => {
                    if r.ours {
                        errln!("epoch {}: new values are sealed under a new key", r.epoch);
                    } else {
                        errln!(
                            "epoch {}: another writer rotated at the same moment; its epoch is current",
                            r.epoch
                        );
                    }
                    if let Some(re) = re {
                        print_reencrypt(&re);
                    }
                    Ok(())
                }
            }
        }
        EpochAction::Reencrypt { json } => match with_progress(ctx, Reencrypt, "re-encrypting")? {
            r if json => print_json(&r),
            r => {
                print_reencrypt(&r);
                Ok(())
            }
        },
        EpochAction::Destroy { epoch, json } => {
            let r = with_progress(ctx, DestroyEpoch { epoch }, "re-sealing")?;
            if json {
                print_json(&r)?;
            } else {
                print_destroy(&r);
            }
            if r.complete() {
                Ok(())
            } else {
                Err(CliError::incomplete(format!(
                    "epoch {epoch} is not fully destroyed: the store still holds {}",
                    residue_text(&r)
                )))
            }
        }
        EpochAction::Policy { every, off } => {
            if every.is_none() && !off {
                match call(ctx, ListEpochs)?.rotate_every_secs {
                    Some(s) => outln!("rotate every {}", human_secs(s)),
                    None => outln!("automatic rotation is off"),
                }
                return Ok(());
            }
            let every_secs = match every {
                Some(text) => {
                    let every = config::parse_duration(&text, "the rotation period (--every)")
                        .map_err(CliError::input)?;
                    tresor::vault::check_rotation_period(every)
                        .map_err(|e| CliError::input(format!("--every {text}: {e}")))?;
                    Some(every.as_secs())
                }
                None => None,
            };
            call(ctx, SetRotationPolicy { every_secs })?;
            match every_secs {
                Some(s) => errln!("epochs rotate every {}", human_secs(s)),
                None => errln!("automatic rotation is off"),
            }
            Ok(())
        }
    }
}

/// Runs a long epoch request: through the agent if one is unlocked, else here with a progress bar
/// on a terminal.
/// A progress bar on stderr for bulk work (`what`, counting `unit`), when stderr is a terminal.
pub fn progress_bar(what: &'static str, unit: &str) -> Option<indicatif::ProgressBar> {
    std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        let template = format!("{{msg}} {{bar:40}} {{pos}}/{{len}} {unit} ({{per_sec}}, {{eta}} left)");
        bar.set_style(
            indicatif::ProgressStyle::with_template(&template)
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(what);
        bar
    })
}

/// A bulk call that, run in this process, reports its progress.
trait WithProgress: Serve {
    /// Runs the call on `vault`, telling `progress` (done, total) as it goes.
    async fn run_here(
        self,
        vault: &Vault,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> tresor::Result<Self::Reply>;
}

impl WithProgress for RotateEpoch {
    async fn run_here(
        self,
        vault: &Vault,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> tresor::Result<Rotated> {
        let rotation = vault.rotate("manual").await?;
        let reencrypted = match self.reencrypt {
            true => Some(vault.reencrypt(progress).await?),
            false => None,
        };
        Ok(Rotated { rotation, reencrypted })
    }
}

impl WithProgress for Reencrypt {
    async fn run_here(
        self,
        vault: &Vault,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> tresor::Result<ReencryptReport> {
        vault.reencrypt(progress).await
    }
}

impl WithProgress for DestroyEpoch {
    async fn run_here(
        self,
        vault: &Vault,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> tresor::Result<DestroyReport> {
        vault.destroy_epoch(self.epoch, progress).await
    }
}

fn with_progress<C: WithProgress>(ctx: &mut Ctx, bulk: C, what: &'static str) -> Result<C::Reply, CliError> {
    if !ctx.no_agent && !ctx.agent_is_unlocked() {
        ctx.no_agent = true;
    }
    if !ctx.no_agent {
        return call(ctx, bulk);
    }
    let rt = runtime()?;
    let store = open_existing(&rt, &ctx.location)?;
    let password = ctx.password()?;
    let bar = progress_bar(what, "values");
    let mut progress = |done: u64, total: u64| {
        if let Some(bar) = &bar {
            bar.set_length(total);
            bar.set_position(done);
        }
    };
    let result = rt.block_on(async {
        let vault = tresor::Vault::unlock(store, &password, ctx.options("cli"))
            .await
            .map_err(|e| CliError::from_core(&e))?;
        crate::report_unlocked(&vault);
        bulk.run_here(&vault, &mut progress).await.map_err(|e| CliError::from_core(&e))
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    result
}

/// The count `n` of `noun`, in the right number.
fn count(n: u64, noun: &str) -> String {
    crate::plural(usize::try_from(n).unwrap_or(usize::MAX), noun)
}

// What was done goes to stderr, as every command's confirmation does; `--json` puts the report on
// stdout.
fn print_reencrypt(r: &ReencryptReport) {
    errln!(
        "re-sealed {} ({}) into epoch {} in {}{}",
        count(r.values, "value"),
        count(r.bytes, "byte"),
        r.epoch,
        count(r.commits, "commit"),
        if r.skipped > 0 {
            format!("; {} moved by another writer meanwhile", count(r.skipped, "value"))
        } else {
            String::new()
        }
    );
}

fn print_destroy(r: &DestroyReport) {
    if r.reencrypted.values > 0 {
        print_reencrypt(&r.reencrypted);
    }
    errln!(
        "epoch {}: deleted {} ({}): its key and every blob sealed under it",
        r.epoch,
        count(r.deleted_objects, "object"),
        count(r.deleted_bytes, "byte")
    );
    match &r.residue {
        Residue::NotKept => errln!("the store keeps no older versions of deleted objects"),
        Residue::Removed { versions } => {
            errln!("removed {versions} older versions the bucket kept of them; none remain")
        }
        Residue::Kept { .. } => {}
    }
    if r.complete() {
        errln!(
            "destroyed: with the password and the store as they are now, nothing sealed in epoch {} can be \
             decrypted (copies made before now still can be)",
            r.epoch
        );
    }
}

fn residue_text(r: &DestroyReport) -> String {
    let mut parts = Vec::new();
    if r.remaining_objects > 0 {
        parts.push(format!("{} of its objects (deleting them failed)", r.remaining_objects));
    }
    if let Residue::Kept { versions, reason } = &r.residue {
        parts.push(format!("{versions} older versions of its objects ({reason})"));
    }
    parts.join(" and ")
}

/// A whole number of seconds as it is typed back: `7d`, `1h30m`, `1m30s`.
pub(crate) fn human_secs(secs: u64) -> String {
    let mut out = String::new();
    let mut rest = secs;
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    if out.is_empty() { "0s".into() } else { out }
}
