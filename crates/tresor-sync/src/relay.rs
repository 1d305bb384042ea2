//! The client side of a relay — `tresor relay` (tresor_server::relay) over HTTP, or a bucket or
//! directory used as one ([`crate::bucket`]) — uploads and downloads of cells with every answer
//! checked, and one round of sync for a member.
//!
//! The relay is an adversary: an answer that is not whole cells, or more than was asked, is
//! refused; a mailbox that holds fewer cells than it showed before (a rollback) is reported, and
//! the member's own unacknowledged events go up again as the protocol does anyway. Each read
//! starts one cell early, at the last cell read before, and checks it is still that cell: a relay
//! that rolled a mailbox back and let it fill up again past the member's place (hiding the cells
//! now below it) is reported too.

use crate::peer::{Peer, Warning};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tresor_crypto::cell::{CELL_LEN, Cell};
use tresor_crypto::hash;

/// Most cells one upload carries (the relay's limit).
pub const MAX_UPLOAD_CELLS: usize = 1024;
/// Most cells one download returns (the relay's limit).
pub const MAX_FETCH_CELLS: usize = 1024;
/// The header a download names the mailbox's length in.
pub const LENGTH_HEADER: &str = "x-tresor-length";

/// Why a relay could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// No answer (down, unreachable, timed out, TLS refused).
    #[error("no answer from the relay {url}: {why}")]
    Unreachable {
        /// The relay.
        url: String,
        /// Why.
        why: String,
    },
    /// The relay refused (full, bad request).
    #[error("the relay {url} refused: HTTP {status}: {message}")]
    Refused {
        /// The relay.
        url: String,
        /// Its status.
        status: u16,
        /// What it said.
        message: String,
    },
    /// The answer breaks the relay's protocol.
    #[error("the relay {url} answered out of protocol: {why}")]
    Lying {
        /// The relay.
        url: String,
        /// What was wrong.
        why: &'static str,
    },
}

/// A relay: `tresor relay` at a base URL (`https://relay.example:8250`), or a bucket or
/// directory ([`crate::bucket::BucketRelay`]).
pub struct RelayClient(Inner);

enum Inner {
    Http(HttpRelay),
    Bucket(crate::bucket::BucketRelay),
}

/// `tresor relay` at a base URL.
struct HttpRelay {
    base: reqwest::Url,
    http: reqwest::Client,
}

/// What a download gave.
pub struct Fetched {
    /// The cells, in the relay's order.
    pub cells: Vec<Vec<u8>>,
    /// The mailbox's length in cells, as the relay says.
    pub length: u64,
}

impl RelayClient {
    /// A client of `tresor relay` at `base`, through `http`.
    pub fn new(base: reqwest::Url, http: reqwest::Client) -> RelayClient {
        RelayClient(Inner::Http(HttpRelay { base, http }))
    }

    /// The relay `relay` names: `http(s)://…` a `tresor relay` (through `http`); `s3://BUCKET[/PREFIX]`
    /// or an absolute directory path, a bucket or directory used as one (opened with `backend`).
    pub async fn connect(
        relay: &str,
        http: &reqwest::Client,
        backend: &tresor_backend::BackendConfig,
    ) -> Result<RelayClient, RelayError> {
        let bad = |why: &str| RelayError::Unreachable { url: relay.to_string(), why: why.to_string() };
        if relay.starts_with("http://") || relay.starts_with("https://") {
            let base = reqwest::Url::parse(relay).map_err(|_| bad("not a URL: give http(s)://HOST:PORT"))?;
            return Ok(RelayClient::new(base, http.clone()));
        }
        if relay.starts_with("s3://") || relay.starts_with('/') {
            let store = tresor_backend::open(relay, true, backend).await.map_err(|e| bad(&e.to_string()))?;
            return Ok(RelayClient(Inner::Bucket(crate::bucket::BucketRelay::new(store))));
        }
        Err(bad("give http(s)://HOST:PORT (a tresor relay), s3://BUCKET[/PREFIX] or an absolute directory"))
    }

    /// What the relay is called in messages.
    pub fn name(&self) -> String {
        match &self.0 {
            Inner::Http(h) => h.base.to_string(),
            Inner::Bucket(b) => b.name().to_string(),
        }
    }

    /// Uploads `cells` (a power of two of them, as [`Peer::upload`] pads) to `mailbox`.
    pub async fn upload(&self, mailbox: &[u8; 32], cells: &[Cell]) -> Result<(), RelayError> {
        match &self.0 {
            Inner::Http(h) => h.upload(mailbox, cells).await,
            Inner::Bucket(b) => b.upload(mailbox, cells).await,
        }
    }

    /// Whether the relay answers (before a group is made that would use it).
    pub async fn health(&self) -> Result<(), RelayError> {
        match &self.0 {
            Inner::Http(h) => h.health().await,
            Inner::Bucket(b) => b.health().await,
        }
    }

    /// The cells of `mailbox` from position `from` (at most [`MAX_FETCH_CELLS`]).
    pub async fn fetch(&self, mailbox: &[u8; 32], from: u64) -> Result<Fetched, RelayError> {
        match &self.0 {
            Inner::Http(h) => h.fetch(mailbox, from).await,
            Inner::Bucket(b) => b.fetch(mailbox, from).await,
        }
    }
}

impl HttpRelay {
    fn url(&self, mailbox: &[u8; 32]) -> Result<reqwest::Url, RelayError> {
        self.base.join(&format!("v1/relay/{}", hex::encode(mailbox))).map_err(|_| RelayError::Lying {
            url: self.base.to_string(),
            why: "the relay's address does not take a path",
        })
    }

    fn unreachable(&self, e: reqwest::Error) -> RelayError {
        // The chain says why (refused, timed out, TLS); the URL is in `url` already.
        let e = e.without_url();
        let mut why = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            why.push_str(": ");
            why.push_str(&cause.to_string());
            source = cause.source();
        }
        RelayError::Unreachable { url: self.base.to_string(), why }
    }

    async fn refused(&self, answer: reqwest::Response) -> RelayError {
        let status = answer.status().as_u16();
        // Only the start of an error answer is shown: more is not read.
        let body = body_within(answer, 64 << 10).await.ok().flatten().unwrap_or_default();
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["errors"][0].as_str().map(str::to_string))
            .unwrap_or_else(|| "no reason given".into())
            // The relay's words reach a terminal: no control characters (escape sequences).
            .chars()
            .filter(|c| !c.is_control())
            .take(300)
            .collect();
        RelayError::Refused { url: self.base.to_string(), status, message }
    }

    /// Sends the request `build` makes; once more if the connection failed before an answer (a
    /// pooled connection the relay closed while idle). An upload sent twice is harmless: members
    /// recognise cells they have read.
    async fn send(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RelayError> {
        match build().send().await {
            Ok(answer) => Ok(answer),
            Err(e) if e.is_request() || e.is_connect() => {
                build().send().await.map_err(|e| self.unreachable(e))
            }
            Err(e) => Err(self.unreachable(e)),
        }
    }

    /// Uploads `cells` to `mailbox`, in pieces the relay takes.
    async fn upload(&self, mailbox: &[u8; 32], cells: &[Cell]) -> Result<(), RelayError> {
        let url = self.url(mailbox)?;
        for piece in cells.chunks(MAX_UPLOAD_CELLS) {
            let body: Vec<u8> = piece.iter().flat_map(|c| c.iter().copied()).collect();
            let answer = self.send(|| self.http.post(url.clone()).body(body.clone())).await?;
            if !answer.status().is_success() {
                return Err(self.refused(answer).await);
            }
        }
        Ok(())
    }

    async fn health(&self) -> Result<(), RelayError> {
        let url = self.base.join("v1/relay/health").map_err(|_| RelayError::Lying {
            url: self.base.to_string(),
            why: "the relay's address does not take a path",
        })?;
        let answer = self.send(|| self.http.get(url.clone())).await?;
        if !answer.status().is_success() {
            return Err(self.refused(answer).await);
        }
        Ok(())
    }

    async fn fetch(&self, mailbox: &[u8; 32], from: u64) -> Result<Fetched, RelayError> {
        let mut url = self.url(mailbox)?;
        url.query_pairs_mut().append_pair("from", &from.to_string());
        let answer = self.send(|| self.http.get(url.clone())).await?;
        if !answer.status().is_success() {
            return Err(self.refused(answer).await);
        }
        let lying = |why| RelayError::Lying { url: self.base.to_string(), why };
        let length = answer
            .headers()
            .get(LENGTH_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| lying("no mailbox length"))?;
        if answer.content_length().is_some_and(|n| n > (MAX_FETCH_CELLS * CELL_LEN) as u64) {
            return Err(lying("more cells than a download carries"));
        }
        // Without a length (chunked), the cap holds as it arrives: a relay cannot make a member
        // buffer an endless answer.
        let body = body_within(answer, MAX_FETCH_CELLS * CELL_LEN)
            .await
            .map_err(|e| self.unreachable(e))?
            .ok_or_else(|| lying("more cells than a download carries"))?;
        if !body.len().is_multiple_of(CELL_LEN) || body.len() > MAX_FETCH_CELLS * CELL_LEN {
            return Err(lying("an answer that is not whole cells, or too many"));
        }
        let count = (body.len() / CELL_LEN) as u64;
        if count > 0 && from + count > length {
            return Err(lying("more cells than the mailbox holds"));
        }
        Ok(Fetched { cells: body.chunks(CELL_LEN).map(<[u8]>::to_vec).collect(), length })
    }
}

/// The body of `answer`, read as it arrives; `None` once it passes `cap` bytes (at most one
/// chunk past the cap is read): a relay or a server cannot make a client buffer without limit,
/// with a length header or without one (chunked).
pub async fn body_within(mut answer: reqwest::Response, cap: usize) -> reqwest::Result<Option<Vec<u8>>> {
    let mut body = Vec::new();
    while let Some(chunk) = answer.chunk().await? {
        if body.len() + chunk.len() > cap {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// Where a member is in one mailbox: how many cells it has read, and a hash of the last of
/// them (none before the first read, and for a place kept by a version of tresor that did not
/// note it). The caller keeps one per mailbox, between rounds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Cells read.
    pub read: u64,
    /// The hash of the last cell read.
    pub last: Option<[u8; 32]>,
}

/// The most cells one round reads from one mailbox (64 MiB).
pub const MAX_ROUND_CELLS: usize = 65_536;
/// The most downloads one round makes from one mailbox.
pub const MAX_ROUND_REQUESTS: usize = 256;

/// One round of sync for `peer` at `now`: its uploads go up, then every mailbox it holds is
/// read from its cursor to the end. `cursors` (one per mailbox) is the caller's to keep.
pub async fn sync_once(
    peer: &mut Peer,
    relay: &RelayClient,
    cursors: &mut BTreeMap<[u8; 32], Cursor>,
    now: u64,
) -> Result<Vec<Warning>, RelayError> {
    let uploads = peer
        .upload(now)
        .map_err(|_| RelayError::Lying { url: relay.name(), why: "this member could not seal its events" })?;
    send(relay, &uploads).await?;
    download(peer, relay, cursors, now).await
}

/// Sends `uploads` ([`Peer::upload`]) to the relay.
pub async fn send(relay: &RelayClient, uploads: &[crate::peer::Upload]) -> Result<(), RelayError> {
    for (mailbox, cells) in uploads {
        relay.upload(mailbox, cells).await?;
    }
    Ok(())
}

/// Reads every mailbox `peer` holds from its cursor in `cursors` to the end, into `peer`.
pub async fn download(
    peer: &mut Peer,
    relay: &RelayClient,
    cursors: &mut BTreeMap<[u8; 32], Cursor>,
    now: u64,
) -> Result<Vec<Warning>, RelayError> {
    let mut warnings = Vec::new();
    let mut done = Vec::new();
    while let Some(mailbox) = peer.mailboxes().into_iter().find(|m| !done.contains(m)) {
        done.push(mailbox);
        let (mut read, mut requests) = (0, 0);
        // A round reads a bounded number of cells, in a bounded number of requests, per mailbox
        // (a relay that claims a mailbox without end, or answers a cell at a time, cannot keep it
        // going): the rest waits for the next round.
        while read < MAX_ROUND_CELLS && requests < MAX_ROUND_REQUESTS {
            requests += 1;
            let cursor = cursors.entry(mailbox).or_default();
            // From the last cell read, to see it is still there.
            let again = u64::from(cursor.read > 0 && cursor.last.is_some());
            let fetched = relay.fetch(&mailbox, cursor.read - again).await?;
            // Read it all again at the next round (not at once: a relay that keeps shrinking or
            // rewriting would keep this round going): what it holds now may be new, and what
            // was read before is recognised and skipped.
            if fetched.length < cursor.read {
                warnings.push(Warning::Rollback { had: cursor.read, now: fetched.length });
                *cursor = Cursor::default();
                break;
            }
            let mut cells = fetched.cells.as_slice();
            if again == 1 {
                match cells.split_first() {
                    Some((first, rest)) if Some(hash(first)) == cursor.last => cells = rest,
                    _ => {
                        warnings.push(Warning::Rewritten { below: cursor.read });
                        *cursor = Cursor::default();
                        break;
                    }
                }
            }
            cursor.read += cells.len() as u64;
            if let Some(last) = cells.last() {
                cursor.last = Some(hash(last));
            }
            read += cells.len();
            let finished = cells.is_empty() || cursor.read >= fetched.length;
            warnings.extend(peer.download(&mailbox, cells.iter().map(Vec::as_slice), now));
            if finished {
                break;
            }
        }
    }
    cursors.retain(|m, _| peer.mailboxes().contains(m));
    Ok(warnings)
}
