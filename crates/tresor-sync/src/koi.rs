//! KOI-net compatibility: a peer that speaks the KOI-net vault-sync format, configured per peer
//! and per folder (off for everyone else): the folder's changes sealed to it as messages, and its
//! messages opened, checked and written into the folder (ARCHITECTURE.md, "Sharing and sync
//! through a relay", **KOI-net compatibility**).
//!
//! Each message is [`tresor_crypto::koi`]'s `nonce ‖ AES-256-GCM(JSON) ‖ tag` under the static
//! X25519 keys of both sides, with the KOI peer's id as the HKDF info. One operation per message:
//! `{"op": "put", "path": P, "value": TEXT, "counter": N}` (`value_base64` instead of `value` for
//! bytes that are not UTF-8) or `{"op": "delete", "path": P, "counter": N}`, `P` relative to the
//! folder. Each direction counts its messages from 1, and a message whose counter is not above
//! every one taken in before is refused (a replay, or one moved back: messages are taken in the
//! order they were sealed). The key is the same both ways, so tresor's messages also carry
//! `"from"`: this vault's public key; a message that names it is refused (one of its own, fed
//! back). Fields a peer adds are ignored; a message that does not open, or names a path outside
//! the folder's rules, is refused.
//! Weaker than a sync group, as documented: static keys, no associated data, sizes visible to
//! whatever carries the messages, and the last message wins (what it replaces stays in history).

use crate::receive::{MAX_SHARED_PATH, MAX_SHARED_VALUE};
use crate::share::{ShareError, folder};
use base64ct::Encoding;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use tresor::Vault;
use tresor::path::{self, SecretPath};
use tresor::vault::{Change, SystemEntry};
use tresor_crypto::agree::AgreementSecret;
use tresor_crypto::koi::KoiChannel;
use tresor_crypto::{Key, SecretBytes, hash};
use zeroize::{Zeroize, Zeroizing};

/// The layout of a peer's record.
const FORMAT: u8 = 1;
/// Longest peer id taken (KOI-net node ids are RIDs of a few dozen bytes).
pub const MAX_PEER_ID: usize = 256;

/// A KOI peer as the vault keeps it, sealed in `koi/<id>` (see [`record_path`]).
#[derive(Serialize, Deserialize)]
struct Stored {
    format: u8,
    /// The folder it shares.
    prefix: String,
    /// Its node id (the HKDF info's tail).
    peer_id: String,
    /// Its static X25519 public key.
    peer_key: [u8; 32],
    /// This vault's static X25519 secret for it.
    secret: [u8; 32],
    /// The counter of the last message sealed to it.
    sent_counter: u64,
    /// The highest counter taken in from it.
    seen_counter: u64,
    /// Per path relative to the folder, the vault version and a hash of the value both sides
    /// have (sent or taken in; version 0 until a `send` reads it back): what the next `send`
    /// leaves out.
    known: Vec<(String, u64, [u8; 16])>,
    /// When it was added (ms since the Unix epoch).
    since_ms: u64,
}

impl Drop for Stored {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

/// A KOI peer as `share koi list` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct KoiPeer {
    /// The folder it shares.
    pub prefix: String,
    /// Its node id.
    pub peer_id: String,
    /// Its public key (hex).
    pub peer_key: String,
    /// This vault's public key for it (hex): what the peer is configured with.
    pub public_key: String,
    /// Messages sealed to it.
    pub sent: u64,
    /// The highest counter taken in from it.
    pub received: u64,
    /// When it was added (ms since the Unix epoch).
    pub since_ms: u64,
}

/// What `receive` did.
#[derive(Debug, Default)]
pub struct Receipt {
    /// Paths (in the vault) written or deleted.
    pub applied: Vec<String>,
    /// Messages refused (1-based, in the order given), and why.
    pub refused: Vec<(usize, String)>,
}

/// One operation as the format's JSON carries it.
#[derive(Deserialize)]
struct Incoming {
    op: String,
    path: String,
    value: Option<String>,
    value_base64: Option<String>,
    counter: u64,
    from: Option<String>,
}

impl Drop for Incoming {
    fn drop(&mut self) {
        self.value.zeroize();
        self.value_base64.zeroize();
    }
}

/// One operation, sent.
#[derive(Serialize)]
struct Outgoing<'a> {
    op: &'static str,
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_base64: Option<&'a str>,
    counter: u64,
    from: &'a str,
}

/// Where the peer `peer_id` of `prefix` is kept: its name hides neither (the system namespace is
/// sealed like every name), but is fixed-length.
fn record_path(prefix: &str, peer_id: &str) -> Result<SecretPath, ShareError> {
    let id = hash(&[prefix.as_bytes(), &[0], peer_id.as_bytes()].concat());
    Ok(SecretPath::system(&format!("koi/{}", hex::encode(&id[..16])))?)
}

fn refused(message: impl Into<String>) -> ShareError {
    ShareError::Refused(message.into())
}

/// A peer id as the format takes it: 1 to 256 bytes, printable, no spaces.
fn check_peer_id(peer_id: &str) -> Result<(), ShareError> {
    if peer_id.is_empty()
        || peer_id.len() > MAX_PEER_ID
        || peer_id.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(refused(format!(
            "a KOI peer id is 1 to {MAX_PEER_ID} bytes without spaces or control characters (a node RID)"
        )));
    }
    Ok(())
}

/// A public key given in hex, checked as the format needs it.
pub fn parse_key(text: &str) -> Result<[u8; 32], ShareError> {
    let bytes = hex::decode(text.trim()).map_err(|_| refused("a KOI public key is 64 hex digits"))?;
    bytes.try_into().map_err(|_| refused("a KOI public key is 32 bytes (64 hex digits)"))
}

/// The peer's channel, for `stored`.
fn channel(stored: &Stored) -> Result<KoiChannel, ShareError> {
    let mut secret = Zeroizing::new(stored.secret);
    let mine = AgreementSecret::from_key(&Key::from_bytes(&mut secret));
    KoiChannel::new(&mine, &stored.peer_key, &stored.peer_id)
        .map_err(|_| refused("that public key gives no shared secret (a small-order point): refused"))
}

/// The peer `peer_id` of `prefix` and its version, if configured.
async fn load(vault: &Vault, prefix: &str, peer_id: &str) -> Result<Option<(Stored, u64)>, ShareError> {
    let entry = vault.system_entry(&record_path(prefix, peer_id)?, None).await?;
    let SystemEntry::Current(version, bytes) = entry else { return Ok(None) };
    let stored: Stored = postcard::from_bytes(bytes.as_slice())
        .map_err(|_| ShareError::State("holds a malformed KOI peer"))?;
    if stored.format != FORMAT || stored.prefix != prefix || stored.peer_id != peer_id {
        return Err(ShareError::State("holds a KOI peer under another's name"));
    }
    Ok(Some((stored, version)))
}

/// The peer `peer_id` of `prefix`, or an error naming it.
async fn configured(vault: &Vault, prefix: &str, peer_id: &str) -> Result<(Stored, u64), ShareError> {
    load(vault, prefix, peer_id)
        .await?
        .ok_or_else(|| ShareError::NoPeer(peer_id.to_string(), prefix.to_string()))
}

/// `stored` written back, checked against `version` (0: not there before), with `changes`.
async fn save(
    vault: &Vault,
    stored: &Stored,
    version: u64,
    mut changes: Vec<Change>,
    actor: &str,
) -> Result<(), ShareError> {
    let bytes =
        Zeroizing::new(postcard::to_stdvec(stored).map_err(|_| ShareError::State("does not encode"))?);
    if bytes.len() > vault.max_value() {
        return Err(refused(format!(
            "{}/ holds more paths than one KOI peer's record keeps within this vault's value limit \
             (max_value_size): share a smaller folder with it",
            stored.prefix
        )));
    }
    changes.push(Change {
        path: record_path(&stored.prefix, &stored.peer_id)?,
        value: Some(bytes),
        actor: actor.to_string(),
        expect: Some(version),
    });
    match vault.apply(changes).await {
        Ok(_) => Ok(()),
        Err(tresor::Error::Conflict(_)) => Err(ShareError::Busy(stored.prefix.clone())),
        Err(e) => Err(e.into()),
    }
}

/// Configures the KOI peer `peer_id` (public key `peer_key`) for the folder `prefix`: this vault's
/// public key for it, to configure the peer with.
pub async fn add(
    vault: &Vault,
    prefix: &str,
    peer_id: &str,
    peer_key: [u8; 32],
    actor: &str,
) -> Result<[u8; 32], ShareError> {
    let prefix = folder(prefix)?;
    check_peer_id(peer_id)?;
    // A group's folder is not opened to a weaker format: what a KOI peer wrote there would go to
    // the group as this vault's own writes.
    crate::share::refuse_group_overlap(vault, &prefix).await?;
    if load(vault, &prefix, peer_id).await?.is_some() {
        return Err(refused(format!("the KOI peer {peer_id} shares {prefix}/ already")));
    }
    let mine = AgreementSecret::generate().map_err(|_| ShareError::State("lacks a random source"))?;
    let mut secret = [0u8; 32];
    secret.copy_from_slice(mine.to_key().expose_secret());
    let stored = Stored {
        format: FORMAT,
        prefix: prefix.clone(),
        peer_id: peer_id.to_string(),
        peer_key,
        secret,
        sent_counter: 0,
        seen_counter: 0,
        known: Vec::new(),
        since_ms: tresor::model::now_ms(),
    };
    secret.zeroize();
    // A key that gives no shared secret is refused before anything is kept.
    channel(&stored)?;
    vault.audit_sync(&prefix, &format!("added the KOI peer {peer_id} (KOI-net vault-sync format)")).await?;
    save(vault, &stored, 0, Vec::new(), actor).await?;
    Ok(mine.public())
}

/// Every KOI peer of the vault.
pub async fn list(vault: &Vault) -> Result<Vec<KoiPeer>, ShareError> {
    let mut out = Vec::new();
    for entry in vault.system_entries("koi/").await? {
        let path =
            SecretPath::system(entry.path.trim_start_matches(path::SYSTEM_ROOT).trim_start_matches('/'))?;
        let SystemEntry::Current(_, bytes) = vault.system_entry(&path, None).await? else { continue };
        let stored: Stored = postcard::from_bytes(bytes.as_slice())
            .map_err(|_| ShareError::State("holds a malformed KOI peer"))?;
        if path != record_path(&stored.prefix, &stored.peer_id)? {
            return Err(ShareError::State("holds a KOI peer under another's name"));
        }
        let public = public_of(&stored);
        out.push(KoiPeer {
            prefix: stored.prefix.clone(),
            peer_id: stored.peer_id.clone(),
            peer_key: hex::encode(stored.peer_key),
            public_key: hex::encode(public),
            sent: stored.sent_counter,
            received: stored.seen_counter,
            since_ms: stored.since_ms,
        });
    }
    out.sort_by(|a, b| (&a.prefix, &a.peer_id).cmp(&(&b.prefix, &b.peer_id)));
    Ok(out)
}

/// Forgets the KOI peer `peer_id` of `prefix`; its key is destroyed with every version of its
/// record (what could not be destroyed is returned, said).
pub async fn remove(
    vault: &Vault,
    prefix: &str,
    peer_id: &str,
    actor: &str,
) -> Result<Vec<String>, ShareError> {
    let prefix = folder(prefix)?;
    let (_, version) = configured(vault, &prefix, peer_id).await?;
    vault.audit_sync(&prefix, &format!("removed the KOI peer {peer_id}")).await?;
    let path = record_path(&prefix, peer_id)?;
    let change = Change { path: path.clone(), value: None, actor: actor.to_string(), expect: Some(version) };
    match vault.apply(vec![change]).await {
        Ok(_) => {}
        Err(tresor::Error::Conflict(_)) => return Err(ShareError::Busy(prefix)),
        Err(e) => return Err(e.into()),
    }
    // Its key must not outlive it in the history.
    let mut problems = Vec::new();
    match vault.destroy_versions(&path, &(1..=version).collect::<Vec<_>>()).await {
        Ok(report) if report.complete() => {}
        Ok(_) => problems.push(
            "old versions of the peer's record are not wholly gone from the store (`tresor gc` removes what is left)"
                .to_string(),
        ),
        Err(e) => problems.push(format!("old versions of the peer's record (its key) could not be destroyed: {e}")),
    }
    Ok(problems)
}

/// The first 16 bytes of a value's hash: what `known` compares.
fn short_hash(value: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(&hash(value)[..16]);
    out
}

/// The next counter to seal under, within the key's budget (one key both ways: the messages of
/// both directions share its nonces).
fn next_counter(stored: &mut Stored) -> Result<u64, ShareError> {
    if stored.sent_counter.saturating_add(stored.seen_counter) >= tresor_crypto::koi::MAX_MESSAGES {
        return Err(refused(
            "this peer's key has sealed as many messages as one key may: remove the peer and add it again",
        ));
    }
    stored.sent_counter += 1;
    Ok(stored.sent_counter)
}

/// The changes of the folder `prefix` since the last `send` to `peer_id` (with `all`, every
/// secret of it), sealed to it (one message per operation, in path order): the messages, and the
/// vault paths they carry. Nothing is returned unless the counters they use are saved first (a
/// counter is never sealed twice).
pub async fn send(
    vault: &Vault,
    prefix: &str,
    peer_id: &str,
    all: bool,
    actor: &str,
) -> Result<(Vec<Zeroizing<Vec<u8>>>, Vec<String>), ShareError> {
    let prefix = folder(prefix)?;
    let (mut stored, version) = configured(vault, &prefix, peer_id).await?;
    let mut channel = channel(&stored)?;
    let from = hex::encode(public_of(&stored));
    let mut known: BTreeMap<String, (u64, [u8; 16])> = match all {
        true => BTreeMap::new(),
        false => stored.known.drain(..).map(|(path, v, h)| (path, (v, h))).collect(),
    };
    let dir = format!("{prefix}/");
    let mut messages = Vec::new();
    let mut paths = Vec::new();
    let mut listed = BTreeSet::new();
    let mut read_back = false;
    for entry in vault.list(&dir).await? {
        let Some(rel) = entry.path.strip_prefix(&dir).map(str::to_string) else { continue };
        listed.insert(rel.clone());
        // The version sent or read back last: unchanged, not read again.
        if known.get(&rel).is_some_and(|(v, _)| *v == entry.version) {
            continue;
        }
        let value = vault.get(entry.path.as_str(), Some(entry.version)).await?;
        let digest = short_hash(value.as_slice());
        let same = known.get(&rel).is_some_and(|(_, h)| *h == digest);
        known.insert(rel.clone(), (entry.version, digest));
        if same {
            read_back = true;
            continue;
        }
        let counter = next_counter(&mut stored)?;
        let text = std::str::from_utf8(value.as_slice()).ok();
        let encoded = match text {
            Some(_) => None,
            None => Some(Zeroizing::new(base64ct::Base64::encode_string(value.as_slice()))),
        };
        let value_base64 = encoded.as_ref().map(|e| e.as_str());
        let message = Outgoing { op: "put", path: &rel, value: text, value_base64, counter, from: &from };
        messages.push(seal(&mut channel, &message)?);
        paths.push(entry.path);
    }
    let gone: Vec<String> = known.keys().filter(|rel| !listed.contains(*rel)).cloned().collect();
    for rel in gone {
        let counter = next_counter(&mut stored)?;
        let message =
            Outgoing { op: "delete", path: &rel, value: None, value_base64: None, counter, from: &from };
        messages.push(seal(&mut channel, &message)?);
        known.remove(&rel);
        paths.push(format!("{prefix}/{rel}"));
    }
    stored.known = known.into_iter().map(|(path, (v, h))| (path, v, h)).collect();
    if !messages.is_empty() || read_back {
        save(vault, &stored, version, Vec::new(), actor).await?;
    }
    if !messages.is_empty() {
        // Audited before anything is printed: nothing is disclosed without its record.
        let detail = format!("sealed {} for the KOI peer {peer_id}", plural(messages.len(), "change"));
        vault.audit_sync(&prefix, &detail).await?;
    }
    Ok((messages, paths))
}

/// This vault's public key for the peer of `stored`.
fn public_of(stored: &Stored) -> [u8; 32] {
    let mut secret = Zeroizing::new(stored.secret);
    AgreementSecret::from_key(&Key::from_bytes(&mut secret)).public()
}

fn plural(n: usize, what: &str) -> String {
    match n {
        1 => format!("1 {what}"),
        n => format!("{n} {what}s"),
    }
}

/// `message` as the format's JSON, sealed.
fn seal(channel: &mut KoiChannel, message: &Outgoing<'_>) -> Result<Zeroizing<Vec<u8>>, ShareError> {
    let json = Zeroizing::new(serde_json::to_vec(message).map_err(|_| ShareError::State("does not encode"))?);
    channel
        .seal(&json)
        .map(Zeroizing::new)
        .map_err(|_| ShareError::State("has sealed as many messages as one KOI key may (2^32)"))
}

/// Opens `messages` from the peer `peer_id` of `prefix` and writes what they carry into the
/// folder, in one commit with the peer's new counter; each change audited as `sync` under
/// `koi <peer id>`. A message that does not open, is one of this vault's own, replays or moves
/// back a counter, or breaks the folder's rules or this vault's value limit is refused and
/// changes nothing; the others are applied.
pub async fn receive(
    vault: &Vault,
    prefix: &str,
    peer_id: &str,
    messages: &[Vec<u8>],
    actor: &str,
) -> Result<Receipt, ShareError> {
    let prefix = folder(prefix)?;
    let (mut stored, version) = configured(vault, &prefix, peer_id).await?;
    let channel = channel(&stored)?;
    let ours = hex::encode(public_of(&stored));
    let mut known: BTreeMap<String, (u64, [u8; 16])> =
        stored.known.drain(..).map(|(path, v, h)| (path, (v, h))).collect();
    let mut receipt = Receipt::default();
    let before = stored.seen_counter;
    // Per path, the last change (a later message of one batch replaces an earlier one).
    let mut changes: BTreeMap<String, Option<Zeroizing<Vec<u8>>>> = BTreeMap::new();
    for (n, message) in messages.iter().enumerate() {
        let n = n + 1;
        let Ok(opened) = channel.open(message) else {
            receipt
                .refused
                .push((n, "does not open: not sealed by this peer for this vault, or changed".into()));
            continue;
        };
        let Parsed { counter, path: rel, value, from } = match parse(&opened, &prefix, vault.max_value()) {
            Ok(op) => op,
            Err(why) => {
                receipt.refused.push((n, why));
                continue;
            }
        };
        if from.as_deref() == Some(ours.as_str()) {
            receipt.refused.push((n, "is one this vault sealed for the peer, fed back to it".into()));
            continue;
        }
        if counter <= stored.seen_counter {
            receipt.refused.push((
                n,
                format!(
                    "counter {counter} is not above {} taken in before: replayed, or moved back",
                    stored.seen_counter
                ),
            ));
            continue;
        }
        stored.seen_counter = counter;
        match &value {
            // Version 0: the next send reads back the version the commit gives.
            Some(value) => known.insert(rel.clone(), (0, short_hash(value.as_slice()))),
            None => known.remove(&rel),
        };
        changes.insert(rel, value);
    }
    if stored.seen_counter == before {
        return Ok(receipt);
    }
    let actor_name = format!("koi {peer_id}");
    let dir = format!("{prefix}/");
    let live: BTreeSet<String> = match changes.values().any(Option::is_none) {
        true => vault.list(&dir).await?.into_iter().map(|e| e.path).collect(),
        false => BTreeSet::new(),
    };
    let mut puts = Vec::new();
    for (rel, value) in changes {
        let full = SecretPath::parse(&format!("{prefix}/{rel}"))?;
        // A delete of a path this vault does not hold changes nothing.
        if value.is_none() && !live.contains(full.as_str()) {
            continue;
        }
        receipt.applied.push(full.to_string());
        puts.push(Change { path: full, value, actor: actor_name.clone(), expect: None });
    }
    stored.known = known.into_iter().map(|(path, (v, h))| (path, v, h)).collect();
    save(vault, &stored, version, puts, actor).await?;
    Ok(receipt)
}

/// A message's operation: its counter, its path below the folder, its value (`None`: a delete),
/// and the sender's public key if it names one (tresor's messages do).
struct Parsed {
    counter: u64,
    path: String,
    value: Option<Zeroizing<Vec<u8>>>,
    from: Option<String>,
}

/// The operation `opened` carries, or why it is refused.
fn parse(opened: &SecretBytes, prefix: &str, max_value: usize) -> Result<Parsed, String> {
    // serde's message could quote a value: a fixed one instead.
    let mut incoming: Incoming = serde_json::from_slice(opened.as_slice())
        .map_err(|_| "is not the format's JSON (op, path, counter, and a value for a put)".to_string())?;
    let value = match (incoming.op.as_str(), incoming.value.take(), incoming.value_base64.take()) {
        ("put", Some(text), None) => Some(Zeroizing::new(text.into_bytes())),
        ("put", None, Some(text)) => {
            let text = Zeroizing::new(text);
            let decoded = base64ct::Base64::decode_vec(&text)
                .map_err(|_| "carries a value_base64 that is not base64".to_string())?;
            Some(Zeroizing::new(decoded))
        }
        ("put", value, encoded) => {
            drop((value.map(Zeroizing::new), encoded.map(Zeroizing::new)));
            return Err("is a put without exactly one of value and value_base64".into());
        }
        ("delete", None, None) => None,
        ("delete", value, encoded) => {
            drop((value.map(Zeroizing::new), encoded.map(Zeroizing::new)));
            return Err("is a delete that carries a value".into());
        }
        (_, value, encoded) => {
            drop((value.map(Zeroizing::new), encoded.map(Zeroizing::new)));
            return Err("names an operation other than put and delete".into());
        }
    };
    // The folder's rules, as a sync group's: a path the vault takes below the folder, and values
    // a group carries and this vault takes.
    let path = std::mem::take(&mut incoming.path);
    if path.len() > MAX_SHARED_PATH
        || SecretPath::parse(&path).is_err()
        || SecretPath::parse(&format!("{prefix}/{path}")).is_err()
    {
        return Err("names a path the folder's rules refuse".into());
    }
    let limit = MAX_SHARED_VALUE.min(max_value);
    if value.as_ref().is_some_and(|v| v.len() > limit) {
        return Err(format!("carries a value larger than this vault takes ({limit} bytes)"));
    }
    Ok(Parsed { counter: incoming.counter, path, value, from: incoming.from.take() })
}
