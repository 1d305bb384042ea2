//! The front's `encrypt` and `decrypt`: streamed transit messages (format version 2) with the
//! message key from the unlocked agent, written as `tresor-cli` writes them, with its functions.
//! Whatever is not plainly one of these (armour, a terminal, stdin to decrypt, an older format, a
//! refusal to report) is handed over before anything is read from stdin.

use super::Outcome;
use crate::Ctx;
use crate::commands::keys;
use crate::ctx::agent_call;
use std::io::{IsTerminal, Read};
use tresor_crypto::transit;
use tresor_wire::StreamKey;

/// `encrypt KEY [FILE] [--alg ALG]` to a stdout that is not a terminal: one streamed message.
pub(super) fn encrypt(ctx: &Ctx, key: String, file: Option<String>, alg: Option<String>) -> Outcome {
    let alg = alg.unwrap_or_else(|| transit::Algorithm::default().name().to_string());
    // A bad name or algorithm is the CLI's to report; on a terminal the CLI writes armour.
    let Ok(algorithm) = alg.parse::<transit::Algorithm>() else { return Outcome::HandOver(None) };
    if transit::validate_name(&key).is_err() || std::io::stdout().is_terminal() {
        return Outcome::HandOver(None);
    }
    if file.as_deref().is_some_and(|f| !super::regular_file(f)) {
        return Outcome::HandOver(None);
    }
    let file = file.map(std::path::PathBuf::from);
    // As the CLI: the input is opened before the agent hands out a key (and audits it).
    let mut stdin = std::io::stdin().lock();
    let mut input = match keys::open_input(file.as_deref(), &mut stdin) {
        Ok(input) => input,
        Err(_) => return Outcome::HandOver(None),
    };
    // Nothing is read from stdin before this: a locked agent hands it all to the CLI.
    let (vault_id, salt, message_key) =
        match from_agent(ctx, &StreamKey { key: key.clone(), alg, salt: None }) {
            Ok(parts) => parts,
            Err(outcome) => return outcome,
        };
    // The agent has handed out (and audited) a key: a failure now is reported, not handed over.
    let header = match transit::stream::header(&key, algorithm, &salt) {
        Ok(header) => header,
        Err(e) => return Outcome::Failed(keys::transit_failed(e)),
    };
    super::done(keys::stream_out(|out| {
        transit::stream::encrypt(&message_key, &vault_id, &header, &mut input, out)
    }))
}

/// `decrypt KEY FILE` of a streamed message in a regular file. Stdin is never read here: a
/// ciphertext of another format on stdin could not be handed over whole.
pub(super) fn decrypt(ctx: &Ctx, key: String, file: String) -> Outcome {
    if transit::validate_name(&key).is_err() {
        return Outcome::HandOver(None);
    }
    // A FIFO or a device is not even opened here; what is opened is checked again.
    if !super::regular_file(&file) {
        return Outcome::HandOver(None);
    }
    let Ok(opened) = std::fs::File::open(&file) else { return Outcome::HandOver(None) };
    if !opened.metadata().is_ok_and(|m| m.is_file()) {
        return Outcome::HandOver(None);
    }
    let mut input = std::io::BufReader::with_capacity(1 << 18, opened);
    // The first bytes say which format this is.
    let mut start = Vec::with_capacity(7);
    if (&mut input).take(7).read_to_end(&mut start).is_err() || !transit::stream::is_stream(&start) {
        return Outcome::HandOver(None);
    }
    let mut input = std::io::Read::chain(&start[..], input);
    // A header that does not read, or names another key: the CLI says so.
    let Ok((header, salt, raw)) = transit::stream::read_header(&mut input) else {
        return Outcome::HandOver(None);
    };
    if header.name != key {
        return Outcome::HandOver(None);
    }
    let call = StreamKey { key, alg: header.alg.name().to_string(), salt: Some(salt) };
    let (vault_id, _, message_key) = match from_agent(ctx, &call) {
        Ok(parts) => parts,
        Err(outcome) => return outcome,
    };
    super::done(keys::stream_out(|out| {
        transit::stream::decrypt(&message_key, &vault_id, &raw, &mut input, out)
    }))
}

/// The vault id, salt and key of one message from the agent, or how serving ends without them
/// (a locked agent: hand over; a failed call: its error).
fn from_agent(ctx: &Ctx, call: &StreamKey) -> Result<([u8; 16], [u8; 32], tresor_crypto::Key), Outcome> {
    match agent_call(ctx, call) {
        Ok(Some(answer)) => keys::message_key(answer).map_err(Outcome::Failed),
        Ok(None) => Err(Outcome::HandOver(None)),
        Err(e) => Err(Outcome::Failed(e)),
    }
}
