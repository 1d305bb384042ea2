//! Fault injection for tests: an `ObjectStore` that wraps another one and fails on command.
//!
//! [`FaultStore`] forwards every operation to the store it wraps unless its [`Faults`] handle (a
//! cheap, cloneable control shared with the test) says otherwise. The handle can
//!
//! - fail the n-th, every, or every operation from the n-th on, of a kind ([`OpKind`]), optionally
//!   only under a name prefix (`log/`, `audit/`): the operation is not performed;
//! - perform a write and then report an error ([`Fault::ApplyThenError`]): the classic lost
//!   acknowledgement, a timeout after the store applied the write;
//! - report an object absent without asking the wrapped store ([`Fault::Absent`], for reads): a
//!   read that ran just before a concurrent writer's create landed;
//! - delay every operation of a kind (latency);
//! - simulate a crash ([`Faults::crash_after_writes`]): the first `k` writes are applied (the k-th
//!   one loses its acknowledgement), then every operation fails, as if the process had died. A test
//!   then drops the vault and reopens the location without the wrapper. The variant
//!   [`Faults::crash_after_acked_writes`] lets the k-th write's acknowledgement through, so the
//!   process dies at its next operation instead;
//! - count operations by kind and log them, so a test can first count the writes an operation
//!   performs and then crash it at every one of them.
//!
//! Writes are puts and deletes. Operations are counted, and faults decided, when an operation
//! starts, so concurrent writes are numbered in the order the vault issues them.
//!
//! Wrap it into a vault store with `Store::from_object_store(Arc::new(fault_store), None,
//! location)`. It is meant for tests; nothing in the library uses it.

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// The kinds of operation a fault can target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// Writes of an object (`put_opts`, also multipart uploads and copies, by their target).
    Put,
    /// Reads of an object's bytes (`get_opts`, `get_ranges`).
    Get,
    /// Reads of an object's metadata only (`get_opts` with `head`).
    Head,
    /// Listings (`list`, `list_with_offset`, `list_with_delimiter`).
    List,
    /// Deletes, one per object.
    Delete,
}

impl OpKind {
    /// Every kind, in a fixed order.
    pub const ALL: [OpKind; 5] = [OpKind::Put, OpKind::Get, OpKind::Head, OpKind::List, OpKind::Delete];

    /// Whether the operation changes the store (puts and deletes).
    pub fn is_write(self) -> bool {
        matches!(self, OpKind::Put | OpKind::Delete)
    }

    fn index(self) -> usize {
        match self {
            OpKind::Put => 0,
            OpKind::Get => 1,
            OpKind::Head => 2,
            OpKind::List => 3,
            OpKind::Delete => 4,
        }
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpKind::Put => "put",
            OpKind::Get => "get",
            OpKind::Head => "head",
            OpKind::List => "list",
            OpKind::Delete => "delete",
        })
    }
}

/// When a [`Rule`] fires, counting the operations it matches since it was added (from 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    /// Only the n-th matching operation.
    Nth(u64),
    /// The n-th matching operation and every one after it.
    From(u64),
    /// Every matching operation.
    Every,
}

impl When {
    fn fires(self, seen: u64) -> bool {
        match self {
            When::Nth(n) => seen == n,
            When::From(n) => seen >= n,
            When::Every => true,
        }
    }
}

/// What a [`Rule`] does to an operation when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The operation is not performed; it fails with an injected error.
    Error,
    /// The operation is performed, then fails with an injected error: for a write, the store
    /// holds the object but the caller hears a timeout (a lost acknowledgement).
    ApplyThenError,
    /// The operation is not performed; it is refused as access denied (S3's 403): a definite
    /// refusal, as opposed to [`Fault::Error`], which stands for any failure (a timeout too).
    Denied,
    /// The operation is not performed; it reports the object not found, as a read that ran just
    /// before another writer's create landed would.
    Absent,
}

/// One fault: which operations it targets, when it fires, what it does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The kind of operation targeted.
    pub kind: OpKind,
    /// Only operations on names starting with this (for a listing: its prefix); `None`: all.
    pub prefix: Option<String>,
    /// When it fires.
    pub when: When,
    /// What it does.
    pub fault: Fault,
}

/// What the store decided for one operation when it started (see [`Faults::events`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Passed to the wrapped store; its result was returned (unless a crash happened meanwhile).
    Forwarded,
    /// Not performed: an injected error (a rule, or the process is dead after a crash).
    Failed,
    /// Performed, then an injected error (a lost acknowledgement, or the write at the crash point).
    AppliedThenFailed,
}

/// One operation, as logged when it started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Its kind.
    pub kind: OpKind,
    /// The object name (for a listing, its prefix; `""` for the whole store).
    pub path: String,
    /// What was decided for it.
    pub outcome: Outcome,
}

#[derive(Debug, Default)]
struct Crash {
    /// Writes applied before the process dies.
    after: u64,
    /// Writes started since the crash was armed.
    writes: u64,
    /// Whether write `after` is acknowledged before the process dies.
    acked: bool,
}

#[derive(Debug, Default)]
struct State {
    counts: [u64; 5],
    latency: [Duration; 5],
    /// Rules and how many operations each has matched.
    rules: Vec<(Rule, u64)>,
    crash: Option<Crash>,
    dead: bool,
    events: Vec<Event>,
    /// Listings under this prefix never end: what they list, again and again.
    endless_lists: Option<String>,
}

/// Why an injected error was returned.
#[derive(Clone, Copy, Debug)]
enum Why {
    Rule,
    Timeout,
    Crashed,
}

/// What happens to an operation, decided when it starts.
#[derive(Clone, Copy, Debug)]
enum Plan {
    Forward,
    /// The write at an acknowledged crash point: its answer is delivered, then the process dies.
    ForwardThenDie,
    Refuse(Why),
    ApplyThenFail(Why),
    Absent,
    Denied,
}

/// The control handle of a [`FaultStore`]: cloneable, shared with the test that drives it.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    state: Arc<Mutex<State>>,
}

impl Faults {
    /// A handle with no faults armed.
    pub fn new() -> Faults {
        Faults::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not hide the state from the others.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a rule; it counts the operations it matches from now on.
    pub fn add(&self, rule: Rule) {
        self.lock().rules.push((rule, 0));
    }

    /// Fails operations of `kind` (`when` counts them from now on) with an injected error; the
    /// operation is not performed.
    pub fn fail(&self, kind: OpKind, when: When) {
        self.add(Rule { kind, prefix: None, when, fault: Fault::Error });
    }

    /// [`Faults::fail`], only for names starting with `prefix`.
    pub fn fail_under(&self, kind: OpKind, prefix: &str, when: When) {
        self.add(Rule { kind, prefix: Some(prefix.to_string()), when, fault: Fault::Error });
    }

    /// Puts of names starting with `prefix` are applied, then report an error (a timeout whose
    /// write landed).
    pub fn timeout_after_apply(&self, prefix: &str, when: When) {
        self.add(Rule {
            kind: OpKind::Put,
            prefix: Some(prefix.to_string()),
            when,
            fault: Fault::ApplyThenError,
        });
    }

    /// Delays every operation of `kind` by `delay` before it is performed (or fails).
    pub fn latency(&self, kind: OpKind, delay: Duration) {
        self.lock().latency[kind.index()] = delay;
    }

    /// Delays every operation by `delay`.
    pub fn latency_all(&self, delay: Duration) {
        self.lock().latency = [delay; 5];
    }

    /// Makes every listing under `prefix` endless: it lists what is there, then the same again,
    /// for ever (a store whose continuation tokens lead back to the first page).
    pub fn endless_listings_under(&self, prefix: &str) {
        self.lock().endless_lists = Some(prefix.to_string());
    }

    /// Arms a crash: counting from now, writes `1..k` are applied normally, write `k` is applied
    /// but its caller gets an error (the process died before hearing the acknowledgement), and
    /// every operation after it fails without being performed. `k = 0` kills the process now.
    pub fn crash_after_writes(&self, k: u64) {
        self.arm_crash(k, false);
    }

    /// Like [`Faults::crash_after_writes`], except that write `k` is acknowledged: its caller gets
    /// the store's answer, and the process dies just after, before its next operation starts.
    pub fn crash_after_acked_writes(&self, k: u64) {
        self.arm_crash(k, true);
    }

    fn arm_crash(&self, k: u64, acked: bool) {
        let mut state = self.lock();
        state.crash = Some(Crash { after: k, writes: 0, acked });
        state.dead = k == 0;
    }

    /// Whether the simulated process is dead (a crash point was reached).
    pub fn crashed(&self) -> bool {
        self.lock().dead
    }

    /// Removes every rule, latency and crash: the store works again (counts and events are kept).
    pub fn heal(&self) {
        let mut state = self.lock();
        state.rules.clear();
        state.latency = [Duration::ZERO; 5];
        state.crash = None;
        state.dead = false;
    }

    /// Operations of `kind` started since the last [`Faults::reset_counts`], failed ones included.
    pub fn count(&self, kind: OpKind) -> u64 {
        self.lock().counts[kind.index()]
    }

    /// Writes (puts and deletes) started since the last [`Faults::reset_counts`].
    pub fn writes(&self) -> u64 {
        let state = self.lock();
        state.counts[OpKind::Put.index()] + state.counts[OpKind::Delete.index()]
    }

    /// Every operation since the last [`Faults::reset_counts`], in the order they started.
    pub fn events(&self) -> Vec<Event> {
        self.lock().events.clone()
    }

    /// The writes among [`Faults::events`]: `(kind, name)` in the order they started.
    pub fn write_log(&self) -> Vec<(OpKind, String)> {
        self.lock().events.iter().filter(|e| e.kind.is_write()).map(|e| (e.kind, e.path.clone())).collect()
    }

    /// Sets every count to zero and forgets the events.
    pub fn reset_counts(&self) {
        let mut state = self.lock();
        state.counts = [0; 5];
        state.events.clear();
    }

    /// Counts the operation, and decides its fate and delay.
    fn begin(&self, kind: OpKind, path: &str) -> (Duration, Plan) {
        let mut state = self.lock();
        state.counts[kind.index()] += 1;
        let delay = state.latency[kind.index()];
        let mut plan = Plan::Forward;
        if state.dead {
            plan = Plan::Refuse(Why::Crashed);
        } else if kind.is_write()
            && let Some(crash) = state.crash.as_mut()
        {
            crash.writes += 1;
            if crash.writes == crash.after && crash.acked {
                plan = Plan::ForwardThenDie;
            } else if crash.writes == crash.after {
                plan = Plan::ApplyThenFail(Why::Crashed);
            } else if crash.writes > crash.after {
                // A write issued concurrently with the one at the crash point: the process dies
                // before it reaches the store.
                state.dead = true;
                plan = Plan::Refuse(Why::Crashed);
            }
        }
        if matches!(plan, Plan::Forward) {
            // Every matching rule counts the operation; the first that fires decides.
            for (rule, seen) in state.rules.iter_mut() {
                if rule.kind != kind || rule.prefix.as_deref().is_some_and(|p| !path.starts_with(p)) {
                    continue;
                }
                *seen += 1;
                if matches!(plan, Plan::Forward) && rule.when.fires(*seen) {
                    plan = match rule.fault {
                        Fault::Error => Plan::Refuse(Why::Rule),
                        Fault::ApplyThenError => Plan::ApplyThenFail(Why::Timeout),
                        Fault::Absent => Plan::Absent,
                        Fault::Denied => Plan::Denied,
                    };
                }
            }
        }
        let outcome = match plan {
            Plan::Forward | Plan::ForwardThenDie => Outcome::Forwarded,
            Plan::Refuse(_) | Plan::Absent | Plan::Denied => Outcome::Failed,
            Plan::ApplyThenFail(_) => Outcome::AppliedThenFailed,
        };
        state.events.push(Event { kind, path: path.to_string(), outcome });
        (delay, plan)
    }

    /// Runs `op` (lazily: it is not polled unless the plan performs it) under the faults.
    async fn run<T>(&self, kind: OpKind, path: &str, op: impl Future<Output = Result<T>>) -> Result<T> {
        let (delay, plan) = self.begin(kind, path);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match plan {
            Plan::Forward => {
                let result = op.await;
                if self.crashed() {
                    // The process died while this operation was in flight: nobody hears its result.
                    return Err(injected(kind, path, Why::Crashed));
                }
                result
            }
            Plan::ForwardThenDie => {
                let result = op.await;
                self.lock().dead = true;
                result
            }
            Plan::Refuse(why) => Err(injected(kind, path, why)),
            Plan::Absent => Err(object_store::Error::NotFound {
                path: path.to_string(),
                source: format!("injected absence: {kind} {path}").into(),
            }),
            Plan::Denied => Err(denied(kind, path)),
            Plan::ApplyThenFail(why) => {
                // Whatever the store answered is lost, as with a timeout.
                let _ = op.await;
                if matches!(why, Why::Crashed) {
                    self.lock().dead = true;
                }
                Err(injected(kind, path, why))
            }
        }
    }
}

/// The error of a [`Fault::Denied`] operation: refused as access denied.
fn denied(kind: OpKind, path: &str) -> object_store::Error {
    object_store::Error::PermissionDenied {
        path: path.to_string(),
        source: format!("injected denial: {kind} {path}").into(),
    }
}

fn injected(kind: OpKind, path: &str, why: Why) -> object_store::Error {
    let why = match why {
        Why::Rule => "injected error",
        Why::Timeout => "injected timeout (the operation was applied)",
        Why::Crashed => "injected crash (the process is dead)",
    };
    object_store::Error::Generic { store: "FaultStore", source: format!("{why}: {kind} {path}").into() }
}

/// An `ObjectStore` that forwards to another one and injects the faults its [`Faults`] handle
/// arms. See the module documentation.
#[derive(Debug)]
pub struct FaultStore {
    inner: Arc<dyn ObjectStore>,
    faults: Faults,
}

impl FaultStore {
    /// Wraps `inner` with a new handle and no faults armed.
    pub fn new(inner: Arc<dyn ObjectStore>) -> FaultStore {
        FaultStore::with_faults(inner, Faults::new())
    }

    /// Wraps `inner`, controlled by an existing handle.
    pub fn with_faults(inner: Arc<dyn ObjectStore>, faults: Faults) -> FaultStore {
        FaultStore { inner, faults }
    }

    /// The control handle (a clone sharing the same state).
    pub fn faults(&self) -> Faults {
        self.faults.clone()
    }

    /// The wrapped store: to reopen the location without faults.
    pub fn inner(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.inner)
    }

    /// A listing under the faults: counted when called, delayed and failed when first polled.
    fn list_faulted(
        &self,
        prefix: Option<&Path>,
        list: impl FnOnce(&dyn ObjectStore) -> BoxStream<'static, Result<ObjectMeta>>,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let path = prefix.map(|p| p.as_ref().to_string()).unwrap_or_default();
        let (delay, plan) = self.faults.begin(OpKind::List, &path);
        let endless = self.faults.lock().endless_lists.as_ref().is_some_and(|p| path.starts_with(p.as_str()));
        let mut listing = list(self.inner.as_ref());
        if endless {
            listing = stream::once(async move {
                let metas: Vec<ObjectMeta> = listing.try_collect().await?;
                Ok::<_, object_store::Error>(stream::iter(metas.into_iter().cycle().map(Ok)))
            })
            .try_flatten()
            .boxed();
        }
        stream::once(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            match plan {
                Plan::Forward | Plan::ForwardThenDie => Ok(listing),
                Plan::Refuse(why) | Plan::ApplyThenFail(why) => Err(injected(OpKind::List, &path, why)),
                Plan::Absent => Ok(stream::empty().boxed()),
                Plan::Denied => Err(denied(OpKind::List, &path)),
            }
        })
        .try_flatten()
        .boxed()
    }
}

impl fmt::Display for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.faults.run(OpKind::Put, location.as_ref(), self.inner.put_opts(location, payload, opts)).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.faults.run(OpKind::Put, location.as_ref(), self.inner.put_multipart_opts(location, opts)).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let kind = if options.head { OpKind::Head } else { OpKind::Get };
        self.faults.run(kind, location.as_ref(), self.inner.get_opts(location, options)).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.faults.run(OpKind::Get, location.as_ref(), self.inner.get_ranges(location, ranges)).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        let inner = Arc::clone(&self.inner);
        let faults = self.faults.clone();
        locations
            .then(move |location| {
                let inner = Arc::clone(&inner);
                let faults = faults.clone();
                async move {
                    let location = location?;
                    faults.run(OpKind::Delete, location.as_ref(), inner.delete(&location)).await?;
                    Ok(location)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.list_faulted(prefix, |inner| inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.list_faulted(prefix, |inner| inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let path = prefix.map(|p| p.as_ref().to_string()).unwrap_or_default();
        self.faults.run(OpKind::List, &path, self.inner.list_with_delimiter(prefix)).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.faults.run(OpKind::Put, to.as_ref(), self.inner.copy_opts(from, to, options)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::PutMode;
    use object_store::memory::InMemory;
    use std::time::Instant;

    fn setup() -> (FaultStore, Faults, Arc<dyn ObjectStore>) {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let store = FaultStore::new(Arc::clone(&inner));
        let faults = store.faults();
        (store, faults, inner)
    }

    async fn create(store: &dyn ObjectStore, name: &str) -> Result<PutResult> {
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        store.put_opts(&Path::from(name), PutPayload::from_static(b"x"), opts).await
    }

    async fn exists(store: &dyn ObjectStore, name: &str) -> bool {
        store.head(&Path::from(name)).await.is_ok()
    }

    async fn names(store: &dyn ObjectStore) -> Vec<String> {
        let metas: Vec<ObjectMeta> = store.list(None).try_collect().await.unwrap();
        metas.into_iter().map(|m| m.location.to_string()).collect()
    }

    fn is_injected(e: &object_store::Error, what: &str) -> bool {
        matches!(e, object_store::Error::Generic { store: "FaultStore", .. }) && e.to_string().contains(what)
    }

    #[tokio::test]
    async fn forwards_and_counts_every_kind() {
        let (store, faults, inner) = setup();
        create(&store, "a/1").await.unwrap();
        create(&store, "a/2").await.unwrap();
        assert_eq!(store.get(&Path::from("a/1")).await.unwrap().bytes().await.unwrap().as_ref(), b"x");
        assert!(exists(&store, "a/2").await);
        assert_eq!(names(&store).await, ["a/1", "a/2"]);
        assert_eq!(store.list_with_delimiter(Some(&Path::from("a"))).await.unwrap().objects.len(), 2);
        store.delete(&Path::from("a/1")).await.unwrap();
        assert_eq!(names(inner.as_ref()).await, ["a/2"]);
        let counts: Vec<u64> = OpKind::ALL.iter().map(|k| faults.count(*k)).collect();
        assert_eq!(counts, [2, 1, 1, 2, 1], "put, get, head, list, delete");
        assert_eq!(faults.writes(), 3);
        assert_eq!(
            faults.write_log(),
            [(OpKind::Put, "a/1".into()), (OpKind::Put, "a/2".into()), (OpKind::Delete, "a/1".into())]
        );
        assert!(faults.events().iter().all(|e| e.outcome == Outcome::Forwarded));
        faults.reset_counts();
        assert_eq!(faults.writes(), 0);
        assert!(faults.events().is_empty());
    }

    #[tokio::test]
    async fn fail_nth_put_is_not_applied() {
        let (store, faults, inner) = setup();
        faults.fail(OpKind::Put, When::Nth(2));
        create(&store, "1").await.unwrap();
        let e = create(&store, "2").await.unwrap_err();
        assert!(is_injected(&e, "injected error: put 2"), "{e}");
        create(&store, "3").await.unwrap();
        assert_eq!(names(inner.as_ref()).await, ["1", "3"]);
        let outcomes: Vec<Outcome> = faults.events().iter().map(|e| e.outcome).collect();
        assert_eq!(outcomes, [Outcome::Forwarded, Outcome::Failed, Outcome::Forwarded]);
    }

    #[tokio::test]
    async fn fail_every_and_from_nth_of_each_read_kind() {
        let (store, faults, _inner) = setup();
        create(&store, "a").await.unwrap();
        faults.fail(OpKind::Get, When::Every);
        faults.fail(OpKind::Head, When::From(2));
        faults.fail(OpKind::List, When::Nth(1));
        for _ in 0..3 {
            assert!(is_injected(&store.get(&Path::from("a")).await.unwrap_err(), "get a"));
        }
        assert!(exists(&store, "a").await);
        assert!(!exists(&store, "a").await);
        assert!(!exists(&store, "a").await);
        let listed: Result<Vec<ObjectMeta>> = store.list(None).try_collect().await;
        assert!(is_injected(&listed.unwrap_err(), "list"));
        assert_eq!(names(&store).await, ["a"], "only the first listing fails");
        faults.heal();
        assert!(store.get(&Path::from("a")).await.is_ok());
    }

    #[tokio::test]
    async fn fail_delete_and_prefix_rules() {
        let (store, faults, inner) = setup();
        for name in ["log/1", "audit/1", "audit/2"] {
            create(&store, name).await.unwrap();
        }
        faults.fail_under(OpKind::Delete, "audit/", When::Every);
        assert!(is_injected(&store.delete(&Path::from("audit/1")).await.unwrap_err(), "delete audit/1"));
        store.delete(&Path::from("log/1")).await.unwrap();
        assert_eq!(names(inner.as_ref()).await, ["audit/1", "audit/2"]);
        // A prefix rule counts only the operations it matches.
        faults.fail_under(OpKind::Put, "log/", When::Nth(2));
        create(&store, "audit/3").await.unwrap();
        create(&store, "log/2").await.unwrap();
        create(&store, "audit/4").await.unwrap();
        assert!(create(&store, "log/3").await.is_err());
        create(&store, "log/4").await.unwrap();
        assert!(!exists(inner.as_ref(), "log/3").await);
    }

    #[tokio::test]
    async fn absent_hides_an_existing_object_from_the_reads_it_fires_on() {
        let (store, faults, inner) = setup();
        create(&store, "log/1").await.unwrap();
        faults.add(Rule {
            kind: OpKind::Head,
            prefix: Some("log/1".into()),
            when: When::Nth(1),
            fault: Fault::Absent,
        });
        assert!(matches!(store.head(&Path::from("log/1")).await, Err(object_store::Error::NotFound { .. })));
        assert!(exists(inner.as_ref(), "log/1").await, "nothing was deleted");
        store.head(&Path::from("log/1")).await.unwrap();
        assert_eq!(
            faults.events().iter().map(|e| e.outcome).collect::<Vec<_>>(),
            [Outcome::Forwarded, Outcome::Failed, Outcome::Forwarded]
        );
    }

    #[tokio::test]
    async fn timeout_after_apply_writes_then_fails() {
        let (store, faults, inner) = setup();
        faults.timeout_after_apply("log/", When::Nth(1));
        let e = create(&store, "log/1").await.unwrap_err();
        assert!(is_injected(&e, "injected timeout (the operation was applied): put log/1"), "{e}");
        assert!(exists(inner.as_ref(), "log/1").await, "the write landed");
        // A retry sees the landed write; a later put is not affected.
        assert!(matches!(create(&store, "log/1").await, Err(object_store::Error::AlreadyExists { .. })));
        create(&store, "log/2").await.unwrap();
        assert_eq!(faults.events()[0].outcome, Outcome::AppliedThenFailed);
    }

    #[tokio::test]
    async fn latency_delays_operations() {
        let (store, faults, _inner) = setup();
        faults.latency(OpKind::Put, Duration::from_millis(30));
        let start = Instant::now();
        create(&store, "a").await.unwrap();
        assert!(start.elapsed() >= Duration::from_millis(30));
        faults.latency_all(Duration::from_millis(20));
        let start = Instant::now();
        assert!(exists(&store, "a").await);
        let _ = names(&store).await;
        store.delete(&Path::from("a")).await.unwrap();
        assert!(start.elapsed() >= Duration::from_millis(60));
        faults.heal();
        let start = Instant::now();
        create(&store, "b").await.unwrap();
        assert!(start.elapsed() < Duration::from_millis(20));
    }

    #[tokio::test]
    async fn crash_after_k_writes_applies_k_then_everything_fails() {
        let (store, faults, inner) = setup();
        create(&store, "before").await.unwrap();
        faults.crash_after_writes(3);
        create(&store, "1").await.unwrap();
        // Reads between writes still work while the process is alive.
        assert!(exists(&store, "1").await);
        store.delete(&Path::from("before")).await.unwrap();
        assert!(!faults.crashed());
        let e = create(&store, "3").await.unwrap_err();
        assert!(is_injected(&e, "injected crash"), "{e}");
        assert!(faults.crashed());
        assert!(create(&store, "4").await.is_err());
        assert!(store.get(&Path::from("1")).await.is_err());
        assert!(store.head(&Path::from("1")).await.is_err());
        assert!(store.delete(&Path::from("1")).await.is_err());
        let listed: Result<Vec<ObjectMeta>> = store.list(None).try_collect().await;
        assert!(listed.is_err());
        assert_eq!(names(inner.as_ref()).await, ["1", "3"], "writes 1..=3 applied, nothing after");
        // The whole story is in the log.
        let log: Vec<(OpKind, String, Outcome)> =
            faults.events().into_iter().map(|e| (e.kind, e.path, e.outcome)).collect();
        assert_eq!(log[4], (OpKind::Put, "3".into(), Outcome::AppliedThenFailed));
        assert_eq!(log[5], (OpKind::Put, "4".into(), Outcome::Failed));
        faults.heal();
        assert!(!faults.crashed());
        create(&store, "5").await.unwrap();
    }

    #[tokio::test]
    async fn acked_crash_acknowledges_the_k_th_write_then_everything_fails() {
        let (store, faults, inner) = setup();
        faults.crash_after_acked_writes(2);
        create(&store, "1").await.unwrap();
        create(&store, "2").await.unwrap();
        assert!(faults.crashed());
        assert!(store.head(&Path::from("1")).await.is_err());
        assert!(create(&store, "3").await.is_err());
        assert_eq!(names(inner.as_ref()).await, ["1", "2"]);
        let outcomes: Vec<Outcome> = faults.events().iter().map(|e| e.outcome).collect();
        assert_eq!(outcomes, [Outcome::Forwarded, Outcome::Forwarded, Outcome::Failed, Outcome::Failed]);
    }

    #[tokio::test]
    async fn crash_refuses_writes_issued_concurrently_after_the_crash_point() {
        let (store, faults, inner) = setup();
        faults.crash_after_writes(2);
        let results =
            futures::future::join_all(["1", "2", "3", "4"].into_iter().map(|n| create(&store, n))).await;
        let ok: Vec<bool> = results.iter().map(Result::is_ok).collect();
        assert_eq!(ok, [true, false, false, false]);
        assert_eq!(names(inner.as_ref()).await, ["1", "2"]);
        let fresh = FaultStore::new(Arc::clone(&inner));
        create(&fresh, "5").await.unwrap();
    }

    #[tokio::test]
    async fn crash_at_zero_kills_at_once() {
        let (store, faults, inner) = setup();
        faults.crash_after_writes(0);
        assert!(faults.crashed());
        assert!(create(&store, "a").await.is_err());
        assert!(names(inner.as_ref()).await.is_empty());
        assert_eq!(format!("{store}"), format!("FaultStore({inner})"));
    }
}
