//! A bucket (S3 with conditional writes) or a directory used as the relay: no relay process, the
//! members append and read cells themselves (ARCHITECTURE.md, "Sharing and sync through a relay",
//! **A bucket as the relay**).
//!
//! Mailbox `m`'s cells are objects `m/<start>`, `m/<start>` holding the cells from position
//! `start` on (1 to 1,024 of them); an upload is a create-if-absent write at the mailbox's current
//! end, tried again at the new end when another member got there first. Reading lists the
//! mailbox: its pieces from position 0 up to the first gap, each whole cells (else the bucket is
//! lying); other objects are not read. The bucket learns what a relay learns — cell counts,
//! times, who writes — and the members' own rules catch whatever else it does; whoever may write
//! to it can deny service (give each member its own credentials, and revoke a removed one's).

use crate::relay::{Fetched, MAX_FETCH_CELLS, MAX_UPLOAD_CELLS, RelayError};
use tresor::Store;
use tresor::store::Created;
use tresor_crypto::cell::{CELL_LEN, Cell};

/// How many times an upload tries the next end when other members keep writing there first.
const APPEND_TRIES: usize = 32;

/// A bucket or directory used as the relay.
pub struct BucketRelay {
    store: Store,
}

/// One object of a mailbox: where its cells start, and how many it holds.
struct Piece {
    name: String,
    start: u64,
    cells: u64,
}

impl BucketRelay {
    /// The relay in `store`.
    pub fn new(store: Store) -> BucketRelay {
        BucketRelay { store }
    }

    /// Its location.
    pub fn name(&self) -> &str {
        self.store.location()
    }

    fn lying(&self, why: &'static str) -> RelayError {
        RelayError::Lying { url: self.name().to_string(), why }
    }

    fn failed(&self, e: tresor::Error) -> RelayError {
        RelayError::Unreachable { url: self.name().to_string(), why: e.to_string() }
    }

    /// The mailbox's pieces in order from position 0, up to the first gap (the mailbox ends
    /// there: a piece planted further on is never read). Objects that are not pieces (other
    /// names) are not read either; a piece that is not whole cells is the bucket lying.
    async fn pieces(&self, mailbox: &[u8; 32]) -> Result<Vec<Piece>, RelayError> {
        let dir = hex::encode(mailbox);
        let mut pieces = Vec::new();
        for (name, size, _) in self.store.list_meta(&dir).await.map_err(|e| self.failed(e))? {
            let Some(start) = name
                .strip_prefix(&format!("{dir}/"))
                .filter(|n| n.len() == 20 && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if size == 0 || size % CELL_LEN as u64 != 0 || size / CELL_LEN as u64 > MAX_UPLOAD_CELLS as u64 {
                return Err(self.lying("a piece of a mailbox that is not 1 to 1,024 whole cells"));
            }
            pieces.push(Piece { name, start, cells: size / CELL_LEN as u64 });
        }
        pieces.sort_by_key(|p| p.start);
        let mut end = 0;
        let mut contiguous = Vec::new();
        for piece in pieces {
            if piece.start != end {
                break;
            }
            end += piece.cells;
            contiguous.push(piece);
        }
        Ok(contiguous)
    }

    /// Appends `cells` to `mailbox`, 1,024 at most per object.
    pub async fn upload(&self, mailbox: &[u8; 32], cells: &[Cell]) -> Result<(), RelayError> {
        let dir = hex::encode(mailbox);
        for piece in cells.chunks(MAX_UPLOAD_CELLS) {
            let body: Vec<u8> = piece.iter().flat_map(|c| c.iter().copied()).collect();
            let mut written = false;
            for _ in 0..APPEND_TRIES {
                let end: u64 = self.pieces(mailbox).await?.last().map_or(0, |p| p.start + p.cells);
                let name = format!("{dir}/{end:020}");
                match self.store.create(&name, body.clone()).await.map_err(|e| self.failed(e))? {
                    Created::Yes => {
                        written = true;
                        break;
                    }
                    Created::AlreadyExists => continue,
                }
            }
            if !written {
                return Err(RelayError::Refused {
                    url: self.name().to_string(),
                    status: 409,
                    message: format!(
                        "other writers kept taking the end of the mailbox ({APPEND_TRIES} tries)"
                    ),
                });
            }
        }
        Ok(())
    }

    /// The cells of `mailbox` from position `from` (at most [`MAX_FETCH_CELLS`]).
    pub async fn fetch(&self, mailbox: &[u8; 32], from: u64) -> Result<Fetched, RelayError> {
        let pieces = self.pieces(mailbox).await?;
        let length = pieces.last().map_or(0, |p| p.start + p.cells);
        let mut cells = Vec::new();
        for piece in pieces.iter().filter(|p| p.start + p.cells > from) {
            if cells.len() >= MAX_FETCH_CELLS {
                break;
            }
            let bytes = self
                .store
                .get(&piece.name)
                .await
                .map_err(|e| self.failed(e))?
                .ok_or_else(|| self.lying("a piece of a mailbox listed but not there"))?;
            if bytes.len() as u64 != piece.cells * CELL_LEN as u64 {
                return Err(self.lying("a piece of a mailbox whose size changed"));
            }
            let skip = usize::try_from(from.saturating_sub(piece.start)).unwrap_or(usize::MAX);
            let room = MAX_FETCH_CELLS - cells.len();
            cells.extend(bytes.chunks(CELL_LEN).skip(skip).take(room).map(<[u8]>::to_vec));
        }
        Ok(Fetched { cells, length })
    }

    /// Whether the bucket can be listed.
    pub async fn health(&self) -> Result<(), RelayError> {
        self.store.list("").await.map(drop).map_err(|e| self.failed(e))
    }
}
