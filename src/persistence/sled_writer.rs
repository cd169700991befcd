//! The sled journal's writer thread and its group commit: every append queued while the last
//! flush ran goes into one atomic sled batch and one flush, then to the sync thread
//! (`sled_syncer`), which runs the appends' completions, in submission order, once the
//! filesystem is synced. Long trims are spread over group commits
//! ([`TrimBacklog`]), and a stream whose write failed takes no write that would leave a gap
//! after it ([`Unwritten`](crate::persistence::gaps::Unwritten)).

use crate::persistence::gaps::Unwritten;
use crate::persistence::sled_layout::{
    ARCHIVE, EVENT, EventRuns, Store, VIEW, due_key, key, run_bytes, set_prefix,
};
use crate::persistence::sled_snapshot::write_snapshot;
use crate::persistence::sled_syncer::{InFlight, Stage, hand_on};
use crate::persistence::{Append, Completion, JournalError, StreamId};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// Tuning of the group-commit writer.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// The most events written in one batch (one flush).
    pub max_batch_events: usize,
    /// Under sustained load (an append came while the last commit was being written), how
    /// long the writer waits for more appends after the first one before it writes. Zero
    /// writes at once what is queued: batches still grow under load while a flush is running.
    pub linger: Duration,
    /// sled's page cache size.
    pub cache_bytes: u64,
    /// zstd compression of sled's writes, for a new database (see [`SledJournal::open`]).
    pub compression: bool,
    /// sled's log segment size in bytes, for a new database (see [`SledJournal::open`]); the
    /// writer is given the one the database has.
    pub segment_bytes: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            max_batch_events: 1024,
            linger: Duration::ZERO,
            cache_bytes: 256 * 1024 * 1024,
            compression: false,
            segment_bytes: SEGMENT_BYTES,
        }
    }
}

/// sled's log segment for a new database, bytes. sled 0.34.7 reuses a segment once half of it
/// is dead, and with its default, 512 KiB, that happens so rarely that the data dir grows with
/// every rewrite even while the live data stays the same size: 10,000 record sets (12 events
/// and views each, then a snapshot) written four times over took 12.1, 21.4, 28.3 and 36.3 KB
/// a set on disk, against 6.8, 8.3, 8.8 and 9.4 KB with 128 KiB segments (2026-12-01). A value
/// over a quarter of a segment is written to a file of its own (sled's blobs), so smaller
/// segments still would cost a file per larger snapshot.
pub const SEGMENT_BYTES: usize = 128 * 1024;

/// Tests: a commit in which a stream of this kind sets its reminder fails with nothing
/// stored (sled offers no way to make `apply_batch` fail on purpose).
#[cfg(test)]
pub(super) const FAILING_KIND: &str = "failing";

/// The most event records (an event, or a run of them) one group commit's trims remove (see
/// [`TrimBacklog`]).
pub(super) const TRIM_PER_WRITE: usize = 4096;

// A job crosses the channel once; boxing the append would cost an allocation per write.
#[allow(clippy::large_enum_variant)]
pub(super) enum Job {
    Write(Append, Completion),
    /// Write everything queued before this, then stop and signal.
    Close(mpsc::SyncSender<()>),
}

/// How long a writer with a trim backlog waits for work before it trims on its own.
const TRIM_PAUSE: Duration = Duration::from_millis(20);

/// The writer thread: batch, write, flush once, hand the commit to the sync thread
/// (`sled_syncer`, which completes it); when quiet, the trim backlog.
pub(super) fn run_writer(
    store: Store,
    rx: Receiver<Job>,
    config: WriterConfig,
    in_flight: Arc<InFlight>,
    synced: Sender<Stage>,
) {
    let mut batch: Vec<(Append, Completion)> = Vec::new();
    let mut backlog = TrimBacklog::default();
    let mut unwritten = Unwritten::default();
    // Whether the last commit wrote appends (not only the trim backlog).
    let mut wrote_appends = false;
    let run_limit = run_bytes(config.segment_bytes);
    loop {
        let mut events = 0usize;
        // Busy: an append came while the last commit of appends was being written.
        let (first, busy) = match rx.try_recv() {
            Ok(job) => (Ok(job), wrote_appends),
            Err(_) if backlog.is_empty() => {
                (rx.recv().map_err(|_| RecvTimeoutError::Disconnected), false)
            }
            Err(_) => (rx.recv_timeout(TRIM_PAUSE), false),
        };
        let mut closing = match first {
            Ok(job) => take(job, &mut batch, &mut events),
            // Quiet: a group commit of the trim backlog alone.
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        while closing.is_none() && events < config.max_batch_events {
            match rx.try_recv() {
                Ok(job) => closing = take(job, &mut batch, &mut events),
                Err(_) => break,
            }
        }
        // A commit costs about 140 µs of CPU however few events it carries (sled seals and
        // writes a buffer and syncs; then the sync thread's completions wake tasks): an open
        // loop of 5,000 purchases a second made commits of 7 events, and lingering 1 ms made
        // them 25 and took 11 % off the CPU per purchase. Only a busy writer lingers: a write
        // that finds the writer idle (or only trimming) is flushed at once; one that comes
        // while another write is being flushed may wait up to the linger.
        if busy && !config.linger.is_zero() {
            let deadline = Instant::now() + config.linger;
            while closing.is_none() && events < config.max_batch_events {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(job) => closing = take(job, &mut batch, &mut events),
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                }
            }
        }
        let admitted: Vec<bool> = batch.iter().map(|(a, _)| unwritten.admit(a)).collect();
        let result = write_batch(&store, &batch, &admitted, run_limit, &mut backlog);
        wrote_appends = !batch.is_empty();
        let (result, flushed) = match result {
            Ok(flushed) => (Ok(()), flushed),
            Err(Failed { error, applied }) => {
                tracing::error!(error = %error, applied, "journal write failed; failing the batch");
                if !applied {
                    let written = batch.iter().zip(&admitted).filter(|(_, ok)| **ok);
                    unwritten.failed(written.map(|((a, _), _)| a));
                }
                (Err(error), false)
            }
        };
        let done = batch
            .drain(..)
            .zip(admitted)
            .map(|((append, done), admitted)| {
                let result = match admitted {
                    true => result.clone(),
                    false => Err(JournalError::after_failure(&append)),
                };
                (done, result)
            });
        let commit = Stage::Commit {
            done: done.collect(),
            flushed,
        };
        hand_on(&synced, commit, &store.db, &in_flight);
        if let Some(ack) = closing {
            hand_on(&synced, Stage::Close(ack), &store.db, &in_flight);
            return;
        }
    }
}

/// Adds a job to the batch; returns the close signal when the job is a close.
fn take(
    job: Job,
    batch: &mut Vec<(Append, Completion)>,
    events: &mut usize,
) -> Option<mpsc::SyncSender<()>> {
    match job {
        Job::Write(append, done) => {
            *events += append.event_count().max(1);
            batch.push((append, done));
            None
        }
        Job::Close(ack) => Some(ack),
    }
}

/// Trims the writer has not finished: each stream's events up to a seq that a durable
/// snapshot covers. A hot SKU's snapshot may cover hundreds of thousands of events; removing
/// them all in one group commit would hold every other write up for seconds, so each group
/// commit removes at most [`TRIM_PER_WRITE`] of them, oldest first, and the writer goes on
/// by itself while the backlog is not empty (see [`run_writer`]). Events behind a
/// durable snapshot are never read, so a backlog lost in a crash only leaves them on disk
/// until the stream's next trim, which starts again from its first event.
#[derive(Default, Clone)]
pub(super) struct TrimBacklog(HashMap<StreamId, u64>);

impl TrimBacklog {
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds a trim of `stream`'s events up to `upto`.
    fn add(&mut self, stream: &StreamId, upto: u64) {
        let at = self.0.entry(stream.clone()).or_insert(upto);
        *at = (*at).max(upto);
    }

    /// Puts the removal of at most [`TRIM_PER_WRITE`] backlogged events into `writes`;
    /// returns how many, and the streams whose trims they finish.
    fn take(
        &self,
        store: &Store,
        writes: &mut sled::Batch,
    ) -> Result<(usize, Vec<StreamId>), JournalError> {
        let (mut removed, mut finished) = (0, Vec::new());
        for (stream, upto) in &self.0 {
            let budget = TRIM_PER_WRITE - removed;
            if budget == 0 {
                break;
            }
            let range = key(EVENT, &stream.event_key(0))..=key(EVENT, &stream.event_key(*upto));
            let mut n = 0;
            for k in store.tree.range(range).keys().take(budget) {
                writes.remove(k?);
                n += 1;
            }
            removed += n;
            if n < budget {
                finished.push(stream.clone());
            }
        }
        Ok((removed, finished))
    }
}

/// A failed group commit: why, and whether its batch reached sled's tree before the failure
/// (a failed flush) or nothing of it did.
#[derive(Debug)]
struct Failed {
    error: JournalError,
    applied: bool,
}

impl From<JournalError> for Failed {
    fn from(error: JournalError) -> Self {
        Self {
            error,
            applied: false,
        }
    }
}

impl From<sled::Error> for Failed {
    fn from(e: sled::Error) -> Self {
        JournalError::from(e).into()
    }
}

/// Writes one group commit: every append of `batch` as one atomic sled batch, then a
/// flush. A stream's consecutive events go in runs of up to `run_bytes` (`EventRuns`), and a
/// snapshot longer than that in chunks of it (`sled_snapshot`). Only the newest view and
/// snapshot of each stream are written, reminders move their time-ordered
/// entry, and the trims of `backlog` (with those of this batch) remove their share of the
/// events snapshots cover. An empty `batch` writes only that share. `backlog` changes only
/// once the commit is flushed: a failed one leaves it as it was, so no trim outlives the
/// snapshot it was made for (a failed sync after it stops the store). Appends not `admitted`
/// are left out. Returns whether it flushed (a batch of barriers alone writes nothing).
fn write_batch(
    store: &Store,
    batch: &[(Append, Completion)],
    admitted: &[bool],
    run_bytes: usize,
    backlog: &mut TrimBacklog,
) -> Result<bool, Failed> {
    // After a failed flush nothing more is written, nor acknowledged, barriers included: an
    // acknowledgment now could stand on writes the failure lost (`sled_sync`).
    if let Some(failure) = store.db.failure() {
        return Err(JournalError::Storage(failure.to_owned()).into());
    }
    let batch: Vec<&Append> = batch
        .iter()
        .zip(admitted)
        .filter_map(|((a, _), ok)| ok.then_some(a))
        .collect();
    let mut writes = sled::Batch::default();
    let mut trims = backlog.clone();
    let mut dirty = false;
    let mut event_count = 0u64;
    // Only the newest view of a stream in this batch is written: a hot entity makes dozens of
    // appends per batch, each superseding the last one's view.
    let mut newest_view = std::collections::HashSet::new();
    // The same for snapshots, which must be one per stream in a batch (`write_snapshot`).
    let mut newest_snapshot = std::collections::HashSet::new();
    for append in batch.iter().rev() {
        let Some(stream) = &append.stream else {
            continue;
        };
        if let Some(view) = &append.view
            && newest_view.insert(stream)
        {
            writes.insert(key(VIEW, &stream.prefix()), view.as_slice());
        }
        if let Some((seq, state)) = &append.snapshot
            && newest_snapshot.insert(stream)
        {
            write_snapshot(&store.tree, stream, *seq, state, run_bytes, &mut writes)?;
        }
    }
    let mut runs = EventRuns::new(run_bytes);
    for append in &batch {
        let Some(stream) = &append.stream else {
            continue;
        };
        dirty |= !append.is_empty();
        for (seq, bytes) in &append.events {
            runs.push(stream, *seq, bytes, &mut writes);
            event_count += 1;
        }
        if let Some(upto) = append.trim {
            trims.add(stream, upto);
        }
        if let Some(next) = append.reminder {
            // The writer names the reminder it replaces: nothing is read here.
            if let Some(at) = append.previous_reminder {
                writes.remove(due_key(stream.kind, at, &stream.id));
            }
            if let Some(at) = next {
                writes.insert(due_key(stream.kind, at, &stream.id), &[] as &[u8]);
            }
        }
        for (k, v) in &append.archive {
            let mut at = key(ARCHIVE, &stream.prefix());
            at.extend_from_slice(k);
            writes.insert(at, v.as_slice());
        }
        for (entry, present) in &append.index {
            let mut k = set_prefix(&entry.set);
            k.extend_from_slice(&entry.member);
            if *present {
                writes.insert(k, &[] as &[u8]);
            } else {
                writes.remove(k);
            }
        }
    }
    runs.finish(&mut writes);
    let (trimmed, finished) = trims.take(store, &mut writes)?;
    for stream in finished {
        trims.0.remove(&stream);
    }
    if !dirty && trimmed == 0 {
        // Only barriers: everything before them was flushed by an earlier batch (and is
        // synced before the sync thread completes them).
        *backlog = trims;
        return Ok(false);
    }
    #[cfg(test)]
    if batch
        .iter()
        .any(|a| a.reminder.is_some() && a.stream.as_ref().is_some_and(|s| s.kind == FAILING_KIND))
    {
        return Err(JournalError::Storage("a failure made by a test".into()).into());
    }
    let started = Instant::now();
    // sled takes no more writes after one failed in its log (it keeps the IO error for every
    // later call, sled 0.34.7 `Config::global_error`): the store stops as after a failed
    // flush, so the node says it is not ready instead of failing each write.
    store.tree.apply_batch(writes).map_err(|e| {
        let error = JournalError::from(e);
        store.db.stop_after("a write", &error);
        Failed::from(error)
    })?;
    store.db.flush_unsynced().map_err(|error| Failed {
        error,
        applied: true,
    })?;
    *backlog = trims;
    // sled's apply and flush; the sync after them is `emporium_journal_sync_seconds`.
    metrics::histogram!("emporium_journal_flush_seconds").record(started.elapsed().as_secs_f64());
    metrics::histogram!("emporium_journal_batch_events").record(event_count as f64);
    metrics::counter!("emporium_journal_events_total").increment(event_count);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persistence::sled_layout::SNAPSHOT;
    use crate::persistence::sled_snapshot::read_snapshot;
    use crate::persistence::sled_sync::SyncedDb;

    /// A store in a database sled removes when it is dropped.
    fn store() -> Store {
        let path = tempfile::Builder::new().tempdir().unwrap().keep();
        let db = sled::Config::new()
            .temporary(true)
            .path(&path)
            .open()
            .unwrap();
        let tree = db.open_tree("entities").unwrap();
        let db = SyncedDb::new(db, &path).unwrap();
        Store { db, tree }
    }

    /// An append of event `seq` with a snapshot at `seq` of `state`, trimming up to `trim`.
    fn snapshot(seq: u64, state: Vec<u8>, trim: u64) -> (Append, Completion) {
        let append = Append {
            stream: Some(StreamId::new("sku", "a")),
            events: vec![(seq, b"event".to_vec())],
            snapshot: Some((seq, state)),
            trim: Some(trim),
            ..Append::default()
        };
        (append, Box::new(|_| ()))
    }

    #[test]
    fn of_two_snapshots_of_a_stream_in_one_group_commit_the_later_one_is_stored_whole() {
        let large = vec![1u8; 5_000];
        for (first, second) in [
            (large.clone(), b"small".to_vec()),
            (b"small".to_vec(), large),
        ] {
            // Given a stream with events 1 and 2 (in a group commit of their own), and a group
            // commit of two more snapshots trimming them
            let s = store();
            let two = [snapshot(1, b"1".to_vec(), 0), snapshot(2, b"2".to_vec(), 0)];
            write_batch(&s, &two, &[true, true], 64, &mut TrimBacklog::default()).unwrap();
            let batch = [snapshot(3, first, 1), snapshot(4, second.clone(), 2)];
            // When it is written (chunks of 64 B)
            let mut backlog = TrimBacklog::default();
            write_batch(&s, &batch, &[true, true], 64, &mut backlog).unwrap();
            // Then the later snapshot is the stream's, with exactly its own chunks
            let stream = StreamId::new("sku", "a");
            assert_eq!(
                read_snapshot(&s.tree, &stream).unwrap(),
                Some((4, second.clone()))
            );
            let chunks = if second.len() > 64 {
                second.len().div_ceil(64)
            } else {
                0
            };
            assert_eq!(s.tree.scan_prefix([SNAPSHOT]).count(), 1 + chunks);
            // and the events both trims cover are gone, the later one's too: only the run of
            // events 3 and 4 is left
            assert!(backlog.is_empty());
            assert_eq!(s.tree.scan_prefix([EVENT]).count(), 1);
        }
    }
}
