//! `tresor share koi`: peers that speak the KOI-net vault-sync format, configured one by one for
//! a folder (off for everyone else; ARCHITECTURE.md, **KOI-net compatibility**). Messages travel
//! as lines of base64 on stdout and stdin: whatever carries them (the KOI node) is the transport.
//! `send`, `receive` and `list` go through the unlocked agent when there is one.

use crate::exit::CliError;
use crate::{Ctx, runtime};
use base64ct::Encoding;
use std::io::{BufRead, Read};
use tresor_sync::koi;
use tresor_wire::{KoiPeers, KoiReceive, KoiSend};

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

/// Runs `tresor share koi ACTION`: `list`, `send` and `receive` through the agent while it holds
/// the vault (else on the vault opened here); `add` and `remove`, which change the peer's keys, on
/// the vault opened here.
pub fn run(ctx: &mut Ctx, action: KoiAction, stdin: &mut impl BufRead) -> Result<(), CliError> {
    match action {
        KoiAction::Add { prefix, peer, key } => {
            // Input checked before the password is asked for.
            let key = koi::parse_key(&key).map_err(super::share::failed)?;
            let rt = runtime()?;
            let vault = super::share::open(ctx, &rt)?;
            let actor = vault.actor().to_string();
            let public =
                rt.block_on(koi::add(&vault, &prefix, &peer, key, &actor)).map_err(super::share::failed)?;
            outln!("{}", hex::encode(public));
            errln!(
                "KOI peer {peer} added for {}/ (KOI-net vault-sync format: static keys, weaker than a sync \
                 group). Configure it with this vault's public key above; then `tresor share koi send` \
                 and `receive` carry the changes",
                prefix.trim_matches('/')
            );
            Ok(())
        }
        KoiAction::Remove { prefix, peer } => {
            let rt = runtime()?;
            let vault = super::share::open(ctx, &rt)?;
            let actor = vault.actor().to_string();
            let problems =
                rt.block_on(koi::remove(&vault, &prefix, &peer, &actor)).map_err(super::share::failed)?;
            for problem in &problems {
                errln!("tresor: warning: {problem}");
            }
            errln!("removed the KOI peer {peer}: its key is destroyed here; the secrets stay");
            Ok(())
        }
        KoiAction::List { json } => {
            let mut session = crate::Session::new(ctx)?;
            let peers = session.call(KoiPeers)?.map_err(super::share::failure)?;
            session.finish();
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
            let mut session = crate::Session::new(ctx)?;
            let sent =
                session.call(KoiSend { prefix, peer: peer.clone(), all })?.map_err(super::share::failure)?;
            session.finish();
            for message in &sent.messages {
                outln!("{}", base64ct::Base64::encode_string(message));
            }
            for path in &sent.paths {
                errln!("  → {path}");
            }
            errln!("sealed {} for {peer}", crate::plural(sent.messages.len(), "change"));
            Ok(())
        }
        KoiAction::Receive { prefix, peer } => {
            let mut session = crate::Session::new(ctx)?;
            let result = receive(&mut session, (&prefix, &peer), stdin);
            session.finish();
            result
        }
    }
}

/// `share koi receive`: the peer's messages read from `stdin` a batch at a time, each batch one
/// call (one commit).
fn receive(
    session: &mut crate::Session<'_>,
    (prefix, peer): (&str, &str),
    stdin: &mut impl BufRead,
) -> Result<(), CliError> {
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
        let call = KoiReceive { prefix: prefix.to_string(), peer: peer.to_string(), messages };
        let receipt = session.call(call)?.map_err(super::share::failure)?;
        for path in &receipt.applied {
            errln!("  ← {path}");
        }
        applied += receipt.applied.len();
        for (i, why) in &receipt.refused {
            let at = usize::try_from(i.saturating_sub(1)).unwrap_or(usize::MAX);
            say(lines.get(at).copied().unwrap_or(0), why);
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
