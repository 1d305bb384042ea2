//! `tresor share koi`: peers that speak the KOI-net vault-sync format, configured one by one for
//! a folder (off for everyone else; ARCHITECTURE.md, **KOI-net compatibility**). Messages travel
//! as lines of base64 on stdout and stdin: whatever carries them (the KOI node) is the transport.

use crate::exit::CliError;
use crate::{Ctx, runtime};
use base64ct::Encoding;
use std::io::{BufRead, Read};
use tresor_sync::koi;

/// Longest line `share koi receive` takes: a message with a 1 MiB value, JSON-escaped at worst
/// (six bytes per byte), in base64.
const MAX_LINE: usize = 9 << 20;
/// Messages taken in per commit, and bytes: input of any length is read a batch at a time.
const BATCH: usize = 1024;
const BATCH_BYTES: usize = 32 << 20;
/// Refused messages told one by one; past these, counted.
const TOLD: usize = 20;

/// `tresor share koi` subcommands.
#[derive(clap::Subcommand)]
pub enum KoiAction {
    /// Configure a KOI peer for FOLDER with its node id and X25519 public key; prints this
    /// vault's public key for it (configure the peer with that).
    #[command(arg_required_else_help = true)]
    Add {
        /// The folder it shares.
        prefix: String,
        /// Its node id (the RID the format binds into the key).
        #[arg(long = "peer", value_name = "ID")]
        peer: String,
        /// Its static X25519 public key, in hex.
        #[arg(long, value_name = "HEX")]
        key: String,
    },
    /// The KOI peers of this vault.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Seal the changes of FOLDER since the last send for the peer: one message per line of
    /// base64 on stdout.
    #[command(arg_required_else_help = true)]
    Send {
        /// The folder.
        prefix: String,
        /// The peer's node id.
        #[arg(long = "peer", value_name = "ID")]
        peer: String,
        /// Every secret of the folder, not only the changes (when messages were lost on the way).
        #[arg(long)]
        all: bool,
    },
    /// Take in the peer's messages (lines of base64 on stdin) and write what they carry into
    /// FOLDER; a message that does not open, replays or breaks the folder's rules is refused
    /// (exit 5 after the others are written).
    #[command(arg_required_else_help = true)]
    Receive {
        /// The folder.
        prefix: String,
        /// The peer's node id.
        #[arg(long = "peer", value_name = "ID")]
        peer: String,
    },
    /// Forget a KOI peer (its key is destroyed; the secrets stay).
    #[command(arg_required_else_help = true)]
    Remove {
        /// The folder.
        prefix: String,
        /// The peer's node id.
        #[arg(long = "peer", value_name = "ID")]
        peer: String,
    },
}

/// Runs `tresor share koi ACTION` on the vault opened here.
pub fn run(ctx: &mut Ctx, action: KoiAction, stdin: &mut impl BufRead) -> Result<(), CliError> {
    // Input checked before the password is asked for.
    let key = match &action {
        KoiAction::Add { key, .. } => Some(koi::parse_key(key).map_err(super::share::failed)?),
        _ => None,
    };
    let rt = runtime()?;
    let vault = super::share::open(ctx, &rt)?;
    let actor = vault.actor().to_string();
    let failed = super::share::failed;
    rt.block_on(async {
        match action {
            KoiAction::Add { prefix, peer, .. } => {
                let key = key.ok_or_else(|| CliError::other("no key".into()))?;
                let public = koi::add(&vault, &prefix, &peer, key, &actor).await.map_err(failed)?;
                outln!("{}", hex::encode(public));
                errln!(
                    "KOI peer {peer} added for {}/ (KOI-net vault-sync format: static keys, weaker than a sync \
                     group). Configure it with this vault's public key above; then `tresor share koi send` \
                     and `receive` carry the changes",
                    prefix.trim_matches('/')
                );
                Ok(())
            }
            KoiAction::List { json } => {
                let peers = koi::list(&vault).await.map_err(failed)?;
                if json {
                    return crate::print_json(&peers);
                }
                if peers.is_empty() {
                    errln!("no KOI peer (`tresor share koi add FOLDER --peer ID --key HEX` adds one)");
                    return Ok(());
                }
                outln!("PREFIX               SENT     RECEIVED  PEER");
                for p in peers {
                    outln!("{:<20} {:<8} {:<9} {}", format!("{}/", p.prefix), p.sent, p.received, p.peer_id);
                }
                Ok(())
            }
            KoiAction::Send { prefix, peer, all } => {
                let (messages, paths) = koi::send(&vault, &prefix, &peer, all, &actor).await.map_err(failed)?;
                for message in &messages {
                    outln!("{}", base64ct::Base64::encode_string(message.as_slice()));
                }
                for path in &paths {
                    errln!("  → {path}");
                }
                errln!("sealed {} for {peer}", crate::plural(messages.len(), "change"));
                Ok(())
            }
            KoiAction::Receive { prefix, peer } => {
                let (mut applied, mut refused, mut told) = (0usize, 0usize, 0usize);
                let mut say = |line: usize, why: &str| {
                    refused += 1;
                    if told < TOLD {
                        told += 1;
                        errln!("tresor: warning: line {line}: the message {why}");
                    }
                };
                let mut line_no = 0usize;
                let mut ended = false;
                while !ended {
                    // One batch: its messages, with their line numbers.
                    let (mut lines, mut messages, mut bytes) = (Vec::new(), Vec::new(), 0usize);
                    while messages.len() < BATCH && bytes < BATCH_BYTES {
                        let mut line = zeroize::Zeroizing::new(Vec::new());
                        let read = (&mut *stdin)
                            .take(MAX_LINE as u64 + 1)
                            .read_until(b'\n', &mut line)
                            .map_err(|e| CliError::input(format!("stdin: {e}")))?;
                        if read == 0 {
                            ended = true;
                            break;
                        }
                        line_no += 1;
                        if line.len() > MAX_LINE {
                            return Err(CliError::input(format!(
                                "line {line_no} is longer than any message ({MAX_LINE} bytes): nothing after it was read"
                            )));
                        }
                        let text = line.trim_ascii();
                        if text.is_empty() {
                            continue;
                        }
                        match base64ct::Base64::decode_vec(&String::from_utf8_lossy(text)) {
                            Ok(message) => {
                                bytes += message.len();
                                lines.push(line_no);
                                messages.push(message);
                            }
                            Err(_) => say(line_no, "is not base64"),
                        }
                    }
                    if messages.is_empty() {
                        continue;
                    }
                    let receipt = koi::receive(&vault, &prefix, &peer, &messages, &actor).await.map_err(failed)?;
                    for path in &receipt.applied {
                        errln!("  ← {path}");
                    }
                    applied += receipt.applied.len();
                    for (i, why) in &receipt.refused {
                        say(lines.get(i.saturating_sub(1)).copied().unwrap_or(0), why);
                    }
                }
                errln!("{}/: {} from {peer}", prefix.trim_matches('/'), crate::plural(applied, "change"));
                if refused > told {
                    errln!("tresor: warning: {} more refused", crate::plural(refused - told, "message"));
                }
                if refused > 0 {
                    return Err(CliError::with_code(
                        5,
                        format!(
                            "{} refused (see the warnings above); the others were taken in",
                            crate::plural(refused, "message")
                        ),
                    ));
                }
                Ok(())
            }
            KoiAction::Remove { prefix, peer } => {
                let problems = koi::remove(&vault, &prefix, &peer, &actor).await.map_err(failed)?;
                for problem in &problems {
                    errln!("tresor: warning: {problem}");
                }
                errln!("removed the KOI peer {peer}: its key is destroyed here; the secrets stay");
                Ok(())
            }
        }
    })
}
