//! The store adapter: one code path over `object_store` for every backend.
//!
//! The vault is a set of immutable objects under a prefix. Every write is create-if-absent
//! (`PutMode::Create`), which is atomic on a local filesystem (hard link) and on S3
//! (`If-None-Match: *`); nothing is ever overwritten. A [`Store::probe`] refuses stores that do
//! not honour it.

use crate::error::{Error, Result, StoreError};
use crate::local::{Foreign, LocalDir};
use crate::versions::OldVersions;
use bytes::Bytes;
use futures::StreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use std::sync::Arc;

/// Deletes in flight at once ([`Store::delete_many`]).
const DELETE_CONCURRENCY: usize = 32;

/// A vault's objects on some backend.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    /// The same backend without per-write fsync, for objects whose loss on power failure is
    /// tolerable (audit records of reads; see ARCHITECTURE.md). Same as `inner` elsewhere.
    relaxed: Arc<dyn ObjectStore>,
    /// The directory of a local store: where [`Store::sync`] has work to do, and where foreign
    /// entries can be found ([`Store::foreign`]).
    local: Option<LocalDir>,
    prefix: Option<Path>,
    location: String,
    /// The backend's way to remove old versions (an S3 bucket's versions API; see
    /// [`Store::purge_versions`]).
    versions: Option<Arc<dyn OldVersions>>,
}

/// What [`Store::create`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Created {
    /// The object was written.
    Yes,
    /// An object of that name already existed; nothing was written.
    AlreadyExists,
}

/// How durable a write must be when it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// On stable storage (local: file and directory fsynced).
    Sync,
    /// Visible to every reader and atomic, but possibly lost on power failure (local: no fsync).
    Relaxed,
}

/// A backend error as tresor reports it: any `user:password@` in a URL it quotes is removed
/// (the message reaches the terminal, agent replies and audit records).
fn store_err(e: object_store::Error) -> Error {
    match e {
        object_store::Error::Generic { source, .. } if source.is::<crate::local::ForeignEntry>() => {
            match source.downcast::<crate::local::ForeignEntry>() {
                Ok(f) => Error::Foreign { name: f.name, what: f.what },
                Err(source) => Error::store(redact(&source.to_string())),
            }
        }
        object_store::Error::Generic { source, .. } if source.is::<crate::local::Oversized>() => {
            match source.downcast::<crate::local::Oversized>() {
                Ok(o) => Error::integrity(
                    crate::layout::kind_of(&o.name),
                    &o.name,
                    format!("is {} bytes, more than any object of its kind", o.size),
                ),
                Err(source) => Error::store(source.to_string()),
            }
        }
        object_store::Error::Generic { store: "LocalDirectory", source }
            if source.is::<crate::local::FullDisk>() =>
        {
            Error::Store(StoreError::full_disk(source.to_string(), BoxedSource(source)))
        }
        object_store::Error::Generic { store: "LocalDirectory", source } => {
            Error::Store(StoreError::with_source(source.to_string(), BoxedSource(source)))
        }
        e => {
            // The store's error stays the source, unless its text or any error in its chain
            // quoted a credential: then only the cleaned text remains (a source chain is printed
            // by whoever walks it).
            let text = e.to_string();
            let cleaned = redact(&text);
            let mut chain = std::error::Error::source(&e);
            let mut chain_clean = true;
            while let Some(s) = chain {
                let t = s.to_string();
                chain_clean &= redact(&t) == t;
                chain = s.source();
            }
            if cleaned == text && chain_clean {
                Error::Store(StoreError::with_source(text, e))
            } else {
                Error::store(cleaned)
            }
        }
    }
}

/// A boxed backend error as a source of its own (`Box<dyn Error>` is not an `Error` itself).
#[derive(Debug)]
struct BoxedSource(Box<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for BoxedSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BoxedSource {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Query parameters whose values are credentials or signatures (presigned S3 URLs, temporary
/// credentials' session tokens); matched without regard to case.
const SECRET_PARAMS: &[&str] =
    &["x-amz-security-token=", "x-amz-signature=", "x-amz-credential=", "awsaccesskeyid=", "signature="];

/// `text` with the user information of every URL in it (`scheme://user:password@host`) and the
/// values of credential query parameters (`X-Amz-Security-Token=…`) replaced by `…`: what any
/// message quoting a URL shows.
pub fn redact(text: &str) -> String {
    redact_params(&redact_userinfo(text))
}

/// [`redact`]'s query-parameter half.
fn redact_params(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some((start, param)) = SECRET_PARAMS
        .iter()
        .filter_map(|p| lower[at..].find(p).map(|i| (at + i, p.len())))
        .min_by_key(|(i, _)| *i)
    {
        let value = start + param;
        let end = text[value..]
            .find(|c: char| matches!(c, '&' | '#' | '"' | '\'' | ')' | '>' | ',' | ';') || c.is_whitespace())
            .map_or(text.len(), |i| value + i);
        out.push_str(&text[at..value]);
        out.push('…');
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// [`redact`]'s user-information half.
fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let authority_end =
            after.find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace()).unwrap_or(after.len());
        let (authority, tail) = after.split_at(authority_end);
        match authority.rsplit_once('@') {
            Some((_, host)) => {
                out.push_str("…@");
                out.push_str(host);
            }
            None => out.push_str(authority),
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// The most objects one listing may hold: far above any vault (a million secrets with their
/// history is a few million objects), yet a store cannot make a listing grow without end.
const MAX_LISTED: usize = 64 << 20;

/// The body of `r`, read chunk by chunk and never past the size its metadata announced (itself
/// within the kind's limit): a store that sends more than it said is refused, not buffered.
async fn read_bounded(name: &str, r: object_store::GetResult) -> Result<Bytes> {
    // A range answer carries the range asked for; a whole object, its size.
    let announced = r.range.end.saturating_sub(r.range.start);
    let mut body = r.into_stream();
    let first = match body.next().await {
        None => return Ok(Bytes::new()),
        Some(chunk) => chunk.map_err(store_err)?,
    };
    let mut buf = None::<bytes::BytesMut>;
    let mut single = Some(first);
    let mut total = single.as_ref().map_or(0, |b| b.len() as u64);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(store_err)?;
        total += chunk.len() as u64;
        if total > announced {
            break;
        }
        let b = buf.get_or_insert_with(|| {
            let mut b = bytes::BytesMut::with_capacity(usize::try_from(announced).unwrap_or(0));
            b.extend_from_slice(&single.take().unwrap_or_default());
            b
        });
        b.extend_from_slice(&chunk);
    }
    if total > announced {
        return Err(Error::integrity(
            crate::layout::kind_of(name),
            name,
            format!("the store sent more than the {announced} bytes it announced"),
        ));
    }
    Ok(buf.map(bytes::BytesMut::freeze).or(single).unwrap_or_default())
}

impl Store {
    /// Opens a location: a directory path, a `file://` URL, or `memory://` (a fresh, private
    /// in-memory store). With `create`, a missing directory is made (mode 0700).
    ///
    /// Stores that need configuration from outside (S3: credentials, region, endpoint) are not
    /// opened here: `tresor-backend` opens every kind of location with the configuration its
    /// caller passes in, and hands this crate an `object_store` backend
    /// ([`Store::from_object_store`]). An `s3://` location here is refused, saying so.
    pub fn open(location: &str, create: bool) -> Result<Store> {
        if location == "memory://" {
            return Ok(Store::from_object_store(Arc::new(InMemory::new()), None, "memory://"));
        }
        if location.starts_with("s3://") {
            return Err(Error::Invalid(format!(
                "{}: S3 locations are opened by tresor-backend (tresor_backend::open), which takes the \
                 AWS configuration from its caller; the core reads no environment",
                redact(location)
            )));
        }
        let path = location.strip_prefix("file://").unwrap_or(location);
        if path.is_empty() || location.contains("://") && !location.starts_with("file://") {
            return Err(Error::Invalid(format!("unsupported vault location: {location}")));
        }
        let dir = std::path::Path::new(path);
        if create && !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::store(format!("cannot create {}: {e}", dir.display())))?;
        }
        if dir.exists() && !dir.is_dir() {
            // Not "no vault here, create one": creating one here cannot work either.
            return Err(Error::Invalid(format!(
                "{} is not a directory: a vault location is a directory (or a URL)",
                dir.display()
            )));
        }
        if !dir.is_dir() {
            return Err(Error::NoVault { location: dir.display().to_string() });
        }
        let canonical =
            dir.canonicalize().map_err(|e| Error::store(format!("cannot resolve {}: {e}", dir.display())))?;
        // Nothing inside the directory is ever followed: see `local.rs`.
        let local = LocalDir::open(&canonical)
            .map_err(|e| Error::store(format!("cannot open {}: {e}", canonical.display())))?;
        let mut store =
            Store::from_object_store(Arc::new(local.clone()), None, &canonical.display().to_string());
        store.relaxed = Arc::new(local.with_fsync(false));
        store.local = Some(local);
        Ok(store)
    }

    /// Wraps any `object_store` backend; `prefix` scopes the vault inside it.
    pub fn from_object_store(inner: Arc<dyn ObjectStore>, prefix: Option<Path>, location: &str) -> Store {
        Store {
            relaxed: inner.clone(),
            inner,
            local: None,
            prefix,
            location: location.to_string(),
            versions: None,
        }
    }

    /// This store with `versions` as the way to remove the old versions of its objects
    /// ([`Store::purge_versions`]): what the backend that opened a versioned bucket attaches.
    pub fn with_old_versions(mut self, versions: Arc<dyn OldVersions>) -> Store {
        self.versions = Some(versions);
        self
    }

    /// The store of the objects under `dir` (a root era, `root/<e>`), named relative to it;
    /// `None` when a local directory has no such subdirectory and `create` is not set. Its
    /// location is this one's with `/dir` appended.
    pub fn sub(&self, dir: &str, create: bool) -> Result<Option<Store>> {
        let location = format!("{}/{dir}", self.location);
        if let Some(local) = &self.local {
            let Some(sub) = local.sub(dir, create).map_err(store_err)? else { return Ok(None) };
            let mut store = Store::from_object_store(Arc::new(sub.clone()), None, &location);
            store.relaxed = Arc::new(sub.with_fsync(false));
            store.local = Some(sub);
            return Ok(Some(store));
        }
        let prefix = match &self.prefix {
            Some(p) => Path::from(format!("{}/{dir}", p.as_ref())),
            None => Path::from(dir),
        };
        let mut store = Store::from_object_store(self.inner.clone(), Some(prefix), &location);
        store.relaxed = self.relaxed.clone();
        store.versions = self.versions.clone();
        Ok(Some(store))
    }

    /// Whether a write that failed with `e` may still be applied by the store later, although
    /// a read right after the failure found nothing: over a network (S3), a request that timed
    /// out or lost its connection can still be in flight — and the backend retries internally,
    /// so even a final refusal (denied, say, once a session token expired) may follow an attempt
    /// that is still on its way. Only a failure before anything was sent (an unsupported
    /// operation, an invalid path) is known not to land. A local directory's (and memory's)
    /// failures are final when they are reported.
    pub fn may_land_later(&self, e: &Error) -> bool {
        let networked = self.local.is_none()
            && self.location.contains("://")
            && !self.location.starts_with("memory://")
            && !self.location.starts_with("file://");
        let Error::Store(e) = e else { return false };
        let source = e.cause().and_then(|s| s.downcast_ref::<object_store::Error>());
        networked
            && !matches!(
                source,
                Some(
                    object_store::Error::NotImplemented { .. }
                        | object_store::Error::InvalidPath { .. }
                        | object_store::Error::NotSupported { .. }
                )
            )
    }

    /// The canonical location string (used to key machine-local state).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The backend path of object `name`. Only names of tresor's shapes are ever sent: no empty,
    /// `.` or `..` segment (URL parsing would collapse those onto other keys), nothing but ASCII
    /// letters, digits, `-`, `_` and `.`.
    fn path(&self, name: &str) -> Result<Path> {
        let name = name.trim_end_matches('/');
        if !name.split('/').all(crate::local::valid_component) {
            return Err(Error::Invalid(format!(
                "refusing the object name {:?}: not a tresor object name",
                name
            )));
        }
        Ok(match &self.prefix {
            // `Path::from` splits on '/': `join` would make "a/b" one percent-encoded part.
            Some(p) => Path::from(format!("{}/{name}", p.as_ref())),
            None => Path::from(name),
        })
    }

    /// Writes `bytes` under `name` only if no object has that name, durably (fsync on a local
    /// directory) before returning.
    pub async fn create(&self, name: &str, bytes: Vec<u8>) -> Result<Created> {
        self.create_with(name, bytes, Durability::Sync).await
    }

    /// [`Store::create`] with a choice of durability.
    pub async fn create_with(
        &self,
        name: &str,
        bytes: impl Into<Bytes>,
        durability: Durability,
    ) -> Result<Created> {
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        let backend = match durability {
            Durability::Sync => &self.inner,
            Durability::Relaxed => &self.relaxed,
        };
        match backend.put_opts(&self.path(name)?, PutPayload::from(bytes.into()), opts).await {
            Ok(_) => Ok(Created::Yes),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(Created::AlreadyExists),
            Err(object_store::Error::NotImplemented { .. }) => {
                Err(Error::Unsupported("the store does not support create-if-absent writes".into()))
            }
            Err(e) => Err(store_err(e)),
        }
    }

    /// Makes objects written with [`Durability::Relaxed`] durable. Local directory: a few files
    /// are fsynced one by one (and their directories); many at once, the whole filesystem is
    /// synced with one `syncfs`. Other backends are durable when a write returns: nothing to do.
    pub fn sync(&self, names: &[String]) -> Result<()> {
        let Some(local) = &self.local else { return Ok(()) };
        if names.is_empty() {
            return Ok(());
        }
        if names.len() > 4 { local.sync_all() } else { local.sync_files(names) }.map_err(store_err)
    }

    /// Entries of a local vault directory that are not objects tresor writes (symbolic links,
    /// FIFOs, sockets, devices, unexpected names): reported by `tresor doctor`, never acted on.
    /// Empty for other stores, whose listings hold objects only.
    pub fn foreign(&self) -> Result<Vec<Foreign>> {
        match &self.local {
            Some(local) => local.foreign().map_err(store_err),
            None => Ok(Vec::new()),
        }
    }

    /// Whether the location holds objects of a vault's layout ([`crate::layout::is_vault_object`]).
    pub async fn holds_vault_objects(&self) -> Result<bool> {
        Ok(self.list_all().await?.iter().any(|n| crate::layout::is_vault_object(n)))
    }

    /// Whether the location holds anything but probe leftovers: objects, or foreign entries of
    /// a local directory (a location with someone else's files is not a place to create a vault).
    pub async fn holds_data(&self) -> Result<bool> {
        Ok(self.list_all().await?.iter().any(|n| !crate::layout::is_probe(n)) || !self.foreign()?.is_empty())
    }

    /// Staging files of local writes a crash interrupted: `(name, size, last modified)`.
    pub fn staging_files(&self) -> Result<Vec<(String, u64, std::time::SystemTime)>> {
        let Some(local) = &self.local else { return Ok(Vec::new()) };
        let temps = local.temps().map_err(store_err)?;
        Ok(temps.into_iter().map(|m| (m.location.to_string(), m.size, m.last_modified.into())).collect())
    }

    /// Removes a staging file of [`Store::staging_files`].
    pub fn remove_staging_file(&self, name: &str) -> Result<()> {
        match &self.local {
            Some(local) => local.remove_temp(name).map_err(store_err),
            None => Ok(()),
        }
    }

    /// A warning when the local vault directory is open to other users (`None` elsewhere).
    pub fn permission_warning(&self) -> Option<String> {
        self.local.as_ref().and_then(LocalDir::permission_warning)
    }

    /// Whether a local vault directory was removed, or moved away from its path, while it was
    /// open (never for a bucket).
    pub fn removed(&self) -> bool {
        self.local.as_ref().is_some_and(LocalDir::removed)
    }

    /// Reads an object; `None` if it does not exist. An object larger than its kind's limit
    /// ([`crate::layout::size_limit`]) is refused before it is read.
    pub async fn get(&self, name: &str) -> Result<Option<Bytes>> {
        match self.inner.get(&self.path(name)?).await {
            Ok(r) if r.meta.size > crate::layout::size_limit(name) => Err(Error::integrity(
                crate::layout::kind_of(name),
                name,
                format!("is {} bytes, more than any object of its kind", r.meta.size),
            )),
            Ok(r) => Ok(Some(read_bounded(name, r).await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_err(e)),
        }
    }

    /// Reads bytes `range` of an object (`None`: there is no such object). A range past the end
    /// yields fewer bytes than asked for, or none: the caller checks the length.
    pub async fn get_range(&self, name: &str, range: std::ops::Range<u64>) -> Result<Option<Bytes>> {
        if range.end > crate::layout::size_limit(name) {
            return Err(Error::integrity(
                crate::layout::kind_of(name),
                name,
                "is referenced past the size any object of its kind may have",
            ));
        }
        // Read as `get` reads: the body is cut at the range's length, however much the store sends.
        let options = object_store::GetOptions { range: Some(range.into()), ..Default::default() };
        match self.inner.get_opts(&self.path(name)?, options).await {
            Ok(r) => Ok(Some(read_bounded(name, r).await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            // Asked past the end of a shorter object (the store truncated it).
            Err(object_store::Error::Generic { .. }) if self.exists(name).await? => Ok(Some(Bytes::new())),
            Err(e) => Err(store_err(e)),
        }
    }

    /// Reads an object the vault knows must be there; a missing one is an integrity error naming
    /// its kind, with `detail` saying how it went missing.
    pub async fn get_required(&self, name: &str, detail: &str) -> Result<Bytes> {
        self.get(name).await?.ok_or_else(|| Error::integrity(crate::layout::kind_of(name), name, detail))
    }

    /// Whether an object exists.
    pub async fn exists(&self, name: &str) -> Result<bool> {
        match self.inner.head(&self.path(name)?).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(store_err(e)),
        }
    }

    /// Everything a listing under `prefix` gives, refused when it gives a name twice (a store
    /// whose pages lead back to earlier ones would be listed for ever) or more than
    /// [`MAX_LISTED`] names: a listing always ends.
    async fn listed(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> Result<Vec<object_store::ObjectMeta>> {
        let mut listing = self.inner.list(prefix);
        let mut seen = std::collections::HashSet::new();
        let mut metas = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(store_err)?;
            if !seen.insert(meta.location.clone()) {
                return Err(Error::store(format!(
                    "the store listed {} twice in one listing: a listing that would never end",
                    meta.location
                )));
            }
            if metas.len() >= MAX_LISTED {
                return Err(Error::store(format!(
                    "the store listed more than {MAX_LISTED} objects in one listing"
                )));
            }
            metas.push(meta);
        }
        Ok(metas)
    }

    /// Names (relative to the vault prefix) of every object under `dir`, sorted.
    pub async fn list(&self, dir: &str) -> Result<Vec<String>> {
        let prefix = if dir.is_empty() { self.prefix.clone() } else { Some(self.path(dir)?) };
        let metas = self.listed(prefix.as_ref()).await?;
        let strip = self.prefix.as_ref().map(|p| format!("{}/", p.as_ref())).unwrap_or_default();
        let mut names: Vec<String> = metas
            .into_iter()
            .filter_map(|m| m.location.as_ref().strip_prefix(strip.as_str()).map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// `(name, size, last modified)` of every object under `dir`, sorted by name (for `gc`).
    pub async fn list_meta(&self, dir: &str) -> Result<Vec<(String, u64, std::time::SystemTime)>> {
        let prefix = if dir.is_empty() { self.prefix.clone() } else { Some(self.path(dir)?) };
        let metas = self.listed(prefix.as_ref()).await?;
        let strip = self.prefix.as_ref().map(|p| format!("{}/", p.as_ref())).unwrap_or_default();
        let mut out: Vec<(String, u64, std::time::SystemTime)> = metas
            .into_iter()
            .filter_map(|m| {
                let name = m.location.as_ref().strip_prefix(strip.as_str())?.to_string();
                Some((name, m.size, m.last_modified.into()))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Every object name of the vault (for export, and the "what the store sees" check).
    pub async fn list_all(&self) -> Result<Vec<String>> {
        self.list("").await
    }

    /// Deletes an object; deleting a missing one is not an error.
    pub async fn delete(&self, name: &str) -> Result<()> {
        match self.inner.delete(&self.path(name)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_err(e)),
        }
    }

    /// Deletes `names`, several at a time; a name already gone is fine. Every name is tried; the
    /// first failure is returned.
    pub async fn delete_many(&self, names: impl IntoIterator<Item = String>) -> Result<()> {
        match self.delete_each(names).await.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    /// Deletes every one of `names` it can, concurrently; the ones it could not, each with why.
    pub async fn delete_each(&self, names: impl IntoIterator<Item = String>) -> Vec<(String, Error)> {
        futures::stream::iter(names)
            .map(|name| async move {
                let result = self.delete(&name).await;
                result.err().map(|e| (name, e))
            })
            .buffer_unordered(DELETE_CONCURRENCY)
            .filter_map(std::future::ready)
            .collect()
            .await
    }

    /// After the caller deleted the objects under `prefixes` (names relative to the vault, e.g.
    /// "blob/0000000001/" or "epoch/0000000001"), removes every remaining version and delete
    /// marker of any object whose name starts with one of them (see [`crate::versions`]). No I/O
    /// on a local directory or in memory, which keep nothing: [`Residue::NotKept`]. An empty
    /// prefix (the whole vault) is refused.
    ///
    /// [`Residue::NotKept`]: crate::versions::Residue::NotKept
    pub async fn purge_versions(&self, prefixes: &[String]) -> Result<crate::versions::Residue> {
        if prefixes.iter().any(String::is_empty) {
            return Err(Error::Invalid(
                "an empty name prefix would purge the versions of the whole vault".into(),
            ));
        }
        let Some(versions) = &self.versions else {
            return Ok(crate::versions::residue_without_versions_api(&*self.inner, self.local.is_some()));
        };
        let keys: Vec<String> = prefixes
            .iter()
            .map(|name| match &self.prefix {
                Some(p) => format!("{}/{name}", p.as_ref()),
                None => name.clone(),
            })
            .collect();
        versions.purge(&keys).await
    }

    /// Checks that the store honours create-if-absent: a second create of the same name must be
    /// refused and must not change the object.
    pub async fn probe(&self) -> Result<()> {
        let name = crate::layout::probe(&tresor_crypto::random_array::<16>()?);
        // Nothing of the probe needs to survive a power failure: no fsync.
        let first = self.create_with(&name, b"first".to_vec(), Durability::Relaxed).await?;
        let second = self.create_with(&name, b"second".to_vec(), Durability::Relaxed).await;
        let read = self.get(&name).await;
        self.delete(&name).await?;
        match (first, second?, read?) {
            (Created::Yes, Created::AlreadyExists, Some(b)) if b.as_ref() == b"first" => Ok(()),
            _ => Err(Error::Unsupported(
                "the store overwrote an existing object on a create-if-absent write".into(),
            )),
        }
    }
}

use std::os::unix::fs::DirBuilderExt;

#[cfg(test)]
mod tests {
    use super::*;

    // The conformance story, run against every backend, is `tresor-testkit`'s, run by `tests/it/store_conformance.rs`.

    #[test]
    fn fail_missing_directory_and_unknown_scheme() {
        assert!(matches!(Store::open("/nonexistent/tresor/x", false), Err(Error::NoVault { .. })));
        // Regression (issue 15, bug 11): a regular file is not "no vault, create one".
        let file = tempfile::NamedTempFile::new().unwrap();
        for create in [false, true] {
            let e = Store::open(file.path().to_str().unwrap(), create).map(|_| ()).unwrap_err();
            assert!(matches!(&e, Error::Invalid(m) if m.contains("is not a directory")), "{e}");
        }
        assert!(matches!(Store::open("ftp://x", false), Err(Error::Invalid(_))));
        let e = Store::open("s3://user:hunter2@bucket/p", false).unwrap_err().to_string();
        assert!(e.contains("tresor-backend") && !e.contains("hunter2"), "{e}");
    }

    #[test]
    fn fail_credentials_in_urls_never_reach_a_message() {
        assert_eq!(
            redact("error sending request for url (https://AKIA:s3cr3t@host:9000/b/k?x=1): refused"),
            "error sending request for url (https://…@host:9000/b/k?x=1): refused"
        );
        assert_eq!(redact("s3://bucket/p and http://u@h"), "s3://bucket/p and http://…@h");
        assert_eq!(
            redact(
                "GET https://h/b/k?X-Amz-Security-Token=FwoG%2Bz&x-amz-signature=abc12 (\"X-Amz-Credential=AKIA/x\")"
            ),
            "GET https://h/b/k?X-Amz-Security-Token=…&x-amz-signature=… (\"X-Amz-Credential=…\")"
        );
        assert_eq!(redact("no secrets here"), "no secrets here");
        assert_eq!(redact("Signature="), "Signature=…");
    }

    /// An error whose own text is clean but whose cause quotes a credential keeps no source.
    #[test]
    fn fail_a_credential_deep_in_the_source_chain_drops_the_chain() {
        #[derive(Debug)]
        struct Leaky;
        impl std::fmt::Display for Leaky {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("url https://h/k?X-Amz-Security-Token=SECRET")
            }
        }
        impl std::error::Error for Leaky {}
        let e = store_err(object_store::Error::Generic { store: "S3", source: Box::new(Leaky) });
        let Error::Store(inner) = &e else { panic!("{e:?}") };
        assert!(inner.cause().is_none(), "{e:?}");
        assert!(!format!("{e:?}").contains("SECRET"), "{e:?}");
    }
}
