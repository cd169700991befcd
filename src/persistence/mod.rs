//! Durable state: the [`Journal`] (append-only event streams, one per entity) and the snapshots,
//! reminders, views and index entries kept beside it, all written in the same atomic batch as
//! the events that changed them.
//!
//! - A view is the small public face of an entity's state (a SKU's stock levels, an order's
//!   summary). Small kinds load theirs at start-up; large ones (orders) are read one at a time.
//! - A reminder is when a stream next needs to act on its own (an unpaid order's expiry, a
//!   step to retry). Reminders are kept in time order, so the node's timer reads only those
//!   due ([`Journal::reminders_due`]) however many streams wait.
//! - An archive record is a keyed record a stream keeps on disk only (a chat room's older
//!   messages): written with the events that moved it out of the entity's state, read back a
//!   page at a time ([`Journal::archive_range`]).
//! - An index entry is a member of a named, ordered set (`order.user:u1` holds that shopper's
//!   orders by creation time): read models page through sets ([`Journal::index_range`]) instead
//!   of keeping every entity's view in memory.
//!
//! Writes are asynchronous and complete through a [`Completion`] once they are durable, so an
//! actor hands its reply to the journal and goes on with its next message (group commit). Writes
//! to one journal complete in the order they were submitted, and a completion of `Ok` means every
//! write submitted before it is durable too. Reads (`load`) are synchronous.
//!
//! - [`sled_journal`]: the production journal on sled 0.34.7 with one group-commit writer thread
//!   and the thread that syncs its commits.
//! - [`redis_journal`]: the cluster's journal in Redis, each shard's writes fenced by its lease.
//! - [`memory`]: the same contract in memory, for unit tests.
//! - `sled_snapshot`: snapshots in the sled journal, a large one stored in chunks.
//! - [`sled_usage`]: what a stopped node's data dir holds, for `emporium admin usage`.
//! - [`codec`]: the versioned, self-describing envelope events and snapshots are stored in.
//! - [`packing`]: that envelope compressed against a frozen dictionary of its field names.

pub mod codec;
pub mod fences;
pub mod gaps;
pub mod memory;
pub mod packing;
pub mod redis_journal;
pub mod sled_compact;
pub mod sled_journal;
mod sled_layout;
pub mod sled_open;
mod sled_snapshot;
pub mod sled_sync;
mod sled_syncer;
pub mod sled_usage;
mod sled_writer;

use crate::domain::time::Timestamp;
use std::ops::ControlFlow;

/// Identifies one entity's stream: its kind and its key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamId {
    pub kind: &'static str,
    pub id: String,
}

impl StreamId {
    pub fn new(kind: &'static str, id: impl Into<String>) -> Self {
        Self {
            kind,
            id: id.into(),
        }
    }

    /// `kind NUL id NUL`: the prefix of every journal key of this stream. Ids never contain NUL
    /// (see `domain::ids`), so one stream's prefix is never another's.
    pub fn prefix(&self) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.kind.len() + self.id.len() + 2);
        key.extend_from_slice(self.kind.as_bytes());
        key.push(0);
        key.extend_from_slice(self.id.as_bytes());
        key.push(0);
        key
    }

    /// The journal key of event `seq`: the prefix then `seq` big-endian, so keys sort by seq.
    pub fn event_key(&self, seq: u64) -> Vec<u8> {
        let mut key = self.prefix();
        key.extend_from_slice(&seq.to_be_bytes());
        key
    }
}

impl std::fmt::Display for StreamId {
    /// `kind/id`, for messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.id)
    }
}

/// One atomic unit of work for the journal: events of one stream, and optionally a snapshot, a
/// trim of events the snapshot covers, and the stream's next reminder.
#[derive(Debug, Default)]
pub struct Append {
    pub stream: Option<StreamId>,
    /// `(seq, encoded event)`, seqs consecutive and after every earlier append of the stream.
    pub events: Vec<(u64, Vec<u8>)>,
    /// `(seq, encoded state)`: the state after event `seq`.
    pub snapshot: Option<(u64, Vec<u8>)>,
    /// Remove the stream's events with seq up to and including this one (they must be covered
    /// by a snapshot that is already durable).
    pub trim: Option<u64>,
    /// `Some(Some(t))` sets the stream's reminder to `t`, `Some(None)` clears it.
    pub reminder: Option<Option<Timestamp>>,
    /// With `reminder`: the reminder it replaces, as the writer knows it (`None` for a stream
    /// that had none, a new one among them). A journal that keeps reminders in time order
    /// under keys naming the time (sled) moves the entry from there, without reading the
    /// stored one first.
    pub previous_reminder: Option<Timestamp>,
    /// The stream's view after these events.
    pub view: Option<Vec<u8>>,
    /// Index entries this append adds (`true`) or removes (`false`).
    pub index: Vec<(IndexEntry, bool)>,
    /// Archive records of the stream: written, never changed after.
    pub archive: Vec<Record>,
    /// The term the writer's state was loaded under ([`Recovered::term`]): a journal with
    /// terms refuses the append when the stream's shard has changed hands since (the writer's
    /// state may be stale). `None` on a journal without terms (sled, memory).
    pub term: Option<u64>,
}

impl Append {
    /// An append that writes nothing: it completes once every earlier write is durable.
    pub fn barrier() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.snapshot.is_none()
            && self.trim.is_none()
            && self.reminder.is_none()
            && self.view.is_none()
            && self.index.is_empty()
            && self.archive.is_empty()
    }

    pub fn event_count(&self) -> usize {
        self.events.len()
    }
}

/// An archive record: `(key, value)`.
pub type Record = (Vec<u8>, Vec<u8>);

/// One member of a named index set. Members of a set sort as bytes; a set lives beside the
/// stream that wrote the entry (in a cluster, in that stream's shard).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IndexEntry {
    /// The set's name, such as `order.user:u1`; never contains NUL.
    pub set: String,
    /// The member: its bytes are its order in the set.
    pub member: Vec<u8>,
}

impl IndexEntry {
    pub fn new(set: impl Into<String>, member: Vec<u8>) -> Self {
        Self {
            set: set.into(),
            member,
        }
    }
}

/// Which end of an index set a range starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Smallest member first.
    Ascending,
    /// Largest member first.
    Descending,
}

/// A member's sort key for a time: milliseconds big-endian, sign bit flipped so earlier times
/// sort first whatever their sign.
pub fn time_key(at: Timestamp) -> [u8; 8] {
    ((at.millis() as u64) ^ (1 << 63)).to_be_bytes()
}

/// The time [`time_key`] wrote, from the first 8 bytes of `key`.
pub fn time_of_key(key: &[u8]) -> Option<Timestamp> {
    let raw: [u8; 8] = key.get(..8)?.try_into().ok()?;
    Some(Timestamp((u64::from_be_bytes(raw) ^ (1 << 63)) as i64))
}

/// Called once an append is durable (or failed).
pub type Completion = Box<dyn FnOnce(Result<(), JournalError>) + Send + 'static>;

/// A stream as found on disk: the newest snapshot and the events after it.
#[derive(Debug, Default)]
pub struct Recovered {
    pub snapshot: Option<(u64, Vec<u8>)>,
    pub events: Vec<(u64, Vec<u8>)>,
    /// Cluster mode: the epoch of the shard's lease this node held when it read the stream.
    /// The entity's appends carry it back ([`Append::term`]).
    pub term: Option<u64>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum JournalError {
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("the journal is shut down")]
    Closed,
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// An earlier write of this stream failed and the write came after it from the same
    /// state: stored, it would leave a gap. Its writer must read the stream again.
    #[error("an earlier write of {0} failed; read it again before writing")]
    AfterFailure(String),
    /// Cluster mode: this node does not hold the lease of the stream's shard (any more), so
    /// the write was refused and nothing of it is stored.
    #[error("this node does not hold the lease of shard {shard}")]
    NotOwner { shard: u32 },
}

impl JournalError {
    /// The refusal of `append`, queued behind a failed write of its stream.
    pub fn after_failure(append: &Append) -> Self {
        let stream = append.stream.as_ref();
        JournalError::AfterFailure(stream.map_or_else(String::new, StreamId::to_string))
    }
}

impl From<std::io::Error> for JournalError {
    fn from(e: std::io::Error) -> Self {
        JournalError::Storage(e.to_string())
    }
}

impl From<sled::Error> for JournalError {
    fn from(e: sled::Error) -> Self {
        JournalError::Storage(e.to_string())
    }
}

/// The durable store of event streams.
pub trait Journal: Send + Sync + 'static {
    /// Queues `append`; `done` runs once it (and everything submitted before it) is durable.
    fn submit(&self, append: Append, done: Completion);
    /// Reads a stream's newest snapshot and the events after it.
    fn load(&self, stream: &StreamId) -> Result<Recovered, JournalError>;
    /// Whether the stream has any event or snapshot.
    fn exists(&self, stream: &StreamId) -> Result<bool, JournalError>;
    /// Up to `limit` streams of `kind` whose reminder is due by `until`, earliest first (ties
    /// by id): `(id, due)`. Reads at most `limit` per shard, however many reminders wait.
    fn reminders_due(
        &self,
        kind: &str,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<(String, Timestamp)>, JournalError>;
    /// Every stream of `kind` with a reminder, and when it is due.
    fn reminders(&self, kind: &str) -> Result<Vec<(String, Timestamp)>, JournalError> {
        self.reminders_due(kind, Timestamp(i64::MAX), usize::MAX)
    }
    /// Every stored view of `kind`: `(id, encoded view)`.
    fn views(&self, kind: &str) -> Result<Vec<(String, Vec<u8>)>, JournalError>;
    /// Calls `visit` with the id of every stream of `kind` that has a stored view, in no
    /// given order, until it breaks; stops at the first error. A store that can reads the
    /// keys only.
    fn each_view_id(
        &self,
        kind: &str,
        visit: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<(), JournalError> {
        for (id, _) in self.views(kind)? {
            if visit(&id).is_break() {
                break;
            }
        }
        Ok(())
    }
    /// The stored view of one stream.
    fn view(&self, stream: &StreamId) -> Result<Option<Vec<u8>>, JournalError>;
    /// Whether point reads ([`Journal::view`], [`Journal::exists`]) are served from this
    /// process's memory or local disk in microseconds, so async code may make a few in place
    /// rather than hand them to a blocking thread (which costs more than the reads). False
    /// for a store across the network.
    fn local_point_reads(&self) -> bool {
        false
    }
    /// The stored views of streams `ids` of `kind`, in their order: one read where the store
    /// allows (a recovery checks hundreds at once).
    fn views_of(
        &self,
        kind: &'static str,
        ids: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, JournalError> {
        ids.iter()
            .map(|id| self.view(&StreamId::new(kind, id.clone())))
            .collect()
    }
    /// Up to `limit` members of index set `set` in `direction`, starting after `after`
    /// (exclusive; from the end the direction starts at when `None`).
    fn index_range(
        &self,
        set: &str,
        direction: Direction,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, JournalError>;
    /// How many members index set `set` has.
    fn index_len(&self, set: &str) -> Result<usize, JournalError>;
    /// Up to `limit` archive records of the stream with keys below `before` (all, without it),
    /// largest key first.
    fn archive_range(
        &self,
        stream: &StreamId,
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Record>, JournalError>;
    /// True when no submitted write is still waiting to become durable.
    fn is_idle(&self) -> bool;
    /// Whether this node may write the stream now (cluster mode: it holds the stream's shard);
    /// always true for a node's own store.
    fn owns(&self, _stream: &StreamId) -> bool {
        true
    }
    /// Makes everything submitted so far durable and stops taking writes. Blocks.
    fn close(&self);
    /// Why the journal takes no writes now, which makes the node not ready (`/readyz` 503): a
    /// failure that stopped it until the node restarts (a flush that failed: `sled_sync`), or a
    /// store it cannot reach, until it answers again (Redis: `redis_journal`).
    fn failure(&self) -> Option<String> {
        None
    }
}

/// Awaits a barrier: returns once every write submitted before the call is durable.
pub async fn barrier(journal: &dyn Journal) -> Result<(), JournalError> {
    durable(journal, Append::barrier()).await
}

/// Submits `append` now (so appends submitted one after another keep their order) and
/// returns a future that resolves once it is durable, or with its failure.
pub fn durable(
    journal: &dyn Journal,
    append: Append,
) -> impl std::future::Future<Output = Result<(), JournalError>> + use<> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    journal.submit(
        append,
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    async move { rx.await.map_err(|_| JournalError::Closed)? }
}

/// Runs a journal read in place when `in_place` (a few point reads of a journal that serves
/// them locally, [`Journal::local_point_reads`]: cheaper than any hand-off), else through
/// [`blocking`].
pub async fn read<T: Send + 'static>(
    in_place: bool,
    read: impl FnOnce() -> Result<T, JournalError> + Send + 'static,
) -> Result<T, JournalError> {
    if in_place {
        return read();
    }
    blocking(read).await.map_err(|_| JournalError::Closed)?
}

/// Runs a journal read that may block: in place on a multi-threaded runtime (tokio moves this
/// worker's other tasks elsewhere meanwhile), which spares the hand-off to the blocking pool and
/// back that every activation otherwise pays; on the blocking pool elsewhere.
pub async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    match tokio::runtime::Handle::current().runtime_flavor() {
        tokio::runtime::RuntimeFlavor::MultiThread => Ok(tokio::task::block_in_place(read)),
        _ => tokio::task::spawn_blocking(read).await,
    }
}

/// The id part of a `kind NUL id NUL` key, when the key belongs to `kind`.
pub fn id_of_key<'k>(kind: &str, key: &'k [u8]) -> Option<&'k str> {
    let rest = key.strip_prefix(kind.as_bytes())?.strip_prefix(&[0u8])?;
    std::str::from_utf8(rest.strip_suffix(&[0u8])?).ok()
}
