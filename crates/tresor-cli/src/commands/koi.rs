//! `tresor share koi`: peers that speak the KOI-net vault-sync format, configured one by one for
//! a folder (off for everyone else; ARCHITECTURE.md, **KOI-net compatibility**). Messages travel
//! as lines of base64 on stdout and stdin: whatever carries them (the KOI node) is the transport.

use crate::exit::CliError;
use crate::{Ctx, runtime};
use base64ct::Encoding;
use std::io::{BufRead, Read};
use tresor_sync::koi;

/// Most bytes `share koi receive` reads from stdin (a message carries at most a 1 MiB value).
const MAX_INPUT: u64 = 256 << 20;

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
                eprintln!(
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
                    eprintln!("no KOI peer (`tresor share koi add FOLDER --peer ID --key HEX` adds one)");
                    return Ok(());
                }
                outln!("PREFIX               SENT     RECEIVED  PEER");
                for p in peers {
                    outln!("{:<20} {:<8} {:<9} {}", format!("{}/", p.prefix), p.sent, p.received, p.peer_id);
                }
                Ok(())
            }
            KoiAction::Send { prefix, peer } => {
                let (messages, paths) = koi::send(&vault, &prefix, &peer, &actor).await.map_err(failed)?;
                for message in &messages {
                    outln!("{}", base64ct::Base64::encode_string(message));
                }
                for path in &paths {
                    eprintln!("  → {path}");
                }
                eprintln!("sealed {} for {peer}", crate::plural(messages.len(), "change"));
                Ok(())
            }
            KoiAction::Receive { prefix, peer } => {
                let mut text = String::new();
                stdin
                    .take(MAX_INPUT)
                    .read_to_string(&mut text)
                    .map_err(|e| CliError::input(format!("stdin: {e}")))?;
                let text = zeroize::Zeroizing::new(text);
                // Each message keeps its line number for what is said of it.
                let mut lines = Vec::new();
                let mut messages = Vec::new();
                let mut refused = Vec::new();
                for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                    match base64ct::Base64::decode_vec(line.trim()) {
                        Ok(message) => {
                            lines.push(n + 1);
                            messages.push(message);
                        }
                        Err(_) => refused.push((n + 1, "is not base64".to_string())),
                    }
                }
                let receipt = koi::receive(&vault, &prefix, &peer, &messages, &actor).await.map_err(failed)?;
                for path in &receipt.applied {
                    eprintln!("  ← {path}");
                }
                refused.extend(receipt.refused.into_iter().map(|(i, why)| (lines[i - 1], why)));
                refused.sort();
                eprintln!(
                    "{}/: {} from {peer}",
                    prefix.trim_matches('/'),
                    crate::plural(receipt.applied.len(), "change")
                );
                for (line, why) in &refused {
                    eprintln!("tresor: warning: line {line}: the message {why}");
                }
                if !refused.is_empty() {
                    return Err(CliError::with_code(
                        5,
                        format!(
                            "{} refused (see the warnings above); the others were taken in",
                            crate::plural(refused.len(), "message")
                        ),
                    ));
                }
                Ok(())
            }
            KoiAction::Remove { prefix, peer } => {
                koi::remove(&vault, &prefix, &peer, &actor).await.map_err(failed)?;
                eprintln!("removed the KOI peer {peer}: its key is destroyed here; the secrets stay");
                Ok(())
            }
        }
    })
}
