//! The sled journal's writer thread and its group commit: every append queued while the last
//! flush ran goes into one atomic sled batch and one flush, and only then are the appends'
//! completions run, in submission order. Long trims are spread over group commits
//! ([`TrimBacklog`]), and a stream whose write failed takes no write that would leave a gap
//! after it ([`Unwritten`]).

use crate::domain::time::Timestamp;
use crate::persistence::sled_layout::{
    ARCHIVE, EVENT, REMINDER, SNAPSHOT, Store, VIEW, due_key, key, millis_of, set_prefix,
};
use crate::persistence::{Append, Completion, JournalError, StreamId};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
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
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            max_batch_events: 1024,
            linger: Duration::ZERO,
            cache_bytes: 256 * 1024 * 1024,
            compression: false,
        }
    }
}

/// The most events one group commit's trims remove (see [`TrimBacklog`]).
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

/// The writer thread: batch, write, flush once, complete; when quiet, the trim backlog.
pub(super) fn run_writer(
    store: Store,
    rx: Receiver<Job>,
    config: WriterConfig,
    in_flight: Arc<AtomicUsize>,
) {
    let mut batch: Vec<(Append, Completion)> = Vec::new();
    let mut backlog = TrimBacklog::default();
    let mut unwritten = Unwritten::default();
    // Whether the last commit wrote appends (not only the trim backlog).
    let mut wrote_appends = false;
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
        // writes a buffer and syncs, every completion wakes a task): an open loop of 5,000
        // purchases a second made commits of 7 events, and lingering 1 ms made them 25 and took
        // 11 % off the CPU per purchase. Only a busy writer lingers: a write that finds the
        // writer idle (or only trimming) is flushed at once; one that comes while another
        // write is being flushed may wait up to the linger.
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
        let result = write_batch(&store, &batch, &admitted, &mut backlog);
        wrote_appends = !batch.is_empty();
        let result = match result {
            Ok(()) => Ok(()),
            Err(Failed { error, applied }) => {
                tracing::error!(error = %error, applied, "journal write failed; failing the batch");
                if !applied {
                    let written = batch.iter().zip(&admitted).filter(|(_, ok)| **ok);
                    unwritten.failed(written.map(|((a, _), _)| a));
                }
                Err(error)
            }
        };
        // Durable (or failed) from here on: not in flight while the completions run.
        in_flight.fetch_sub(batch.len(), Ordering::AcqRel);
        for ((append, done), admitted) in batch.drain(..).zip(admitted) {
            done(if admitted {
                result.clone()
            } else {
                Err(JournalError::AfterFailure(stream_name(&append)))
            });
        }
        if let Some(ack) = closing {
            let _ = store.db.flush();
            let _ = ack.send(());
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

/// Streams whose write failed with nothing of it stored, each with the first seq that
/// write held: the stream's next event. An entity keeps going until it learns of the failure
/// (then it is stopped and starts again from the journal), so its next writes may already be
/// queued; written, they would leave a gap that no activation could load past. A later write
/// of such a stream is refused unless it starts at that seq (the entity, or a new order's
/// creator, writing again from what is stored), which clears the mark; a snapshot past it is
/// refused too. Writes with neither events nor a snapshot pass. The marks are few (one per
/// stream of a failed commit) and live in the writer thread only: every write of a stream
/// passes through it in submission order.
#[derive(Default)]
pub(super) struct Unwritten(HashMap<StreamId, u64>);

impl Unwritten {
    /// Whether `append` may be written; a write that starts the stream again at its next
    /// seq clears its mark.
    pub(super) fn admit(&mut self, append: &Append) -> bool {
        if self.0.is_empty() {
            return true; // the usual case: no write has failed
        }
        let Some(stream) = &append.stream else {
            return true;
        };
        let Some(&next) = self.0.get(stream) else {
            return true;
        };
        match (append.events.first(), &append.snapshot) {
            (Some((first, _)), _) if *first == next => {
                self.0.remove(stream);
                true
            }
            (Some(_), _) => false,
            (None, Some((seq, _))) => *seq < next,
            (None, None) => true,
        }
    }

    /// Marks the streams of `appends`, none of which was stored.
    pub(super) fn failed<'a>(&mut self, appends: impl Iterator<Item = &'a Append>) {
        for append in appends {
            if let (Some(stream), Some((first, _))) = (&append.stream, append.events.first()) {
                let next = self.0.entry(stream.clone()).or_insert(*first);
                *next = (*next).min(*first);
            }
        }
    }
}

fn stream_name(append: &Append) -> String {
    append
        .stream
        .as_ref()
        .map_or_else(String::new, |s| format!("{}/{}", s.kind, s.id))
}

/// A failed group commit: why, and whether its batch reached sled's tree before the failure
/// (a failed flush) or nothing of it did.
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
/// flush. Only the newest view of each stream is written, reminders move their time-ordered
/// entry, and the trims of `backlog` (with those of this batch) remove their share of the
/// events snapshots cover. An empty `batch` writes only that share. `backlog` changes only
/// once the commit is durable: a failed one leaves it as it was, so no trim outlives the
/// snapshot it was made for. Appends not `admitted` are left out.
fn write_batch(
    store: &Store,
    batch: &[(Append, Completion)],
    admitted: &[bool],
    backlog: &mut TrimBacklog,
) -> Result<(), Failed> {
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
    for append in batch.iter().rev() {
        if let (Some(stream), Some(view)) = (&append.stream, &append.view)
            && newest_view.insert(stream)
        {
            writes.insert(key(VIEW, &stream.prefix()), view.as_slice());
        }
    }
    // Each stream's reminder as this batch leaves it, so its time-ordered entry can move.
    let mut reminders: HashMap<&StreamId, Option<Timestamp>> = HashMap::new();
    for append in &batch {
        let Some(stream) = &append.stream else {
            continue;
        };
        dirty |= !append.is_empty();
        for (seq, bytes) in &append.events {
            writes.insert(key(EVENT, &stream.event_key(*seq)), bytes.as_slice());
            event_count += 1;
        }
        if let Some(upto) = append.trim {
            trims.add(stream, upto);
        }
        if let Some((seq, state)) = &append.snapshot {
            let mut v = Vec::with_capacity(8 + state.len());
            v.extend_from_slice(&seq.to_be_bytes());
            v.extend_from_slice(state);
            writes.insert(key(SNAPSHOT, &stream.prefix()), v);
        }
        if let Some(next) = append.reminder {
            // A stream's first write (its events start at seq 1; streams are never deleted)
            // has no stored reminder to read: every new order is one.
            let first_write = append.events.first().is_some_and(|(seq, _)| *seq == 1);
            let previous = match reminders.get(stream) {
                Some(previous) => *previous,
                None if first_write => None,
                None => match store.tree.get(key(REMINDER, &stream.prefix()))? {
                    Some(v) => Some(millis_of(&v)?),
                    None => None,
                },
            };
            if let Some(at) = previous {
                writes.remove(due_key(stream.kind, at, &stream.id));
            }
            match next {
                Some(at) => {
                    writes.insert(key(REMINDER, &stream.prefix()), &at.millis().to_be_bytes());
                    writes.insert(due_key(stream.kind, at, &stream.id), &[] as &[u8]);
                }
                None => writes.remove(key(REMINDER, &stream.prefix())),
            }
            reminders.insert(stream, next);
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
    let (trimmed, finished) = trims.take(store, &mut writes)?;
    for stream in finished {
        trims.0.remove(&stream);
    }
    if !dirty && trimmed == 0 {
        // Only barriers: everything before them was flushed by an earlier batch.
        *backlog = trims;
        return Ok(());
    }
    let started = Instant::now();
    store.tree.apply_batch(writes)?;
    store.db.flush().map_err(|e| Failed {
        error: e.into(),
        applied: true,
    })?;
    *backlog = trims;
    metrics::histogram!("emporium_journal_flush_seconds").record(started.elapsed().as_secs_f64());
    metrics::histogram!("emporium_journal_batch_events").record(event_count as f64);
    metrics::counter!("emporium_journal_events_total").increment(event_count);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(id: &str, seqs: &[u64]) -> Append {
        Append {
            stream: Some(StreamId::new("test", id)),
            events: seqs.iter().map(|s| (*s, b"e".to_vec())).collect(),
            ..Append::default()
        }
    }

    fn snapshot(id: &str, seq: u64) -> Append {
        Append {
            stream: Some(StreamId::new("test", id)),
            snapshot: Some((seq, b"s".to_vec())),
            ..Append::default()
        }
    }

    #[test]
    fn after_a_failed_write_only_a_write_from_the_stored_state_is_admitted() {
        // Given a stream whose write of seqs 4-5 failed with nothing stored
        let mut unwritten = Unwritten::default();
        unwritten.failed([write("a", &[4, 5])].iter());
        // When the writes its entity queued behind it come
        // Then they are refused: each would leave a gap after seq 3
        assert!(!unwritten.admit(&write("a", &[6])));
        assert!(!unwritten.admit(&snapshot("a", 6)));
        assert!(
            !unwritten.admit(&snapshot("a", 4)),
            "a state with seq 4 in it"
        );
        // while other streams, barriers and a snapshot of what is stored pass
        assert!(unwritten.admit(&write("b", &[9])));
        assert!(unwritten.admit(&Append::barrier()));
        assert!(unwritten.admit(&snapshot("a", 3)));
        // When the entity, read again, writes from seq 4
        assert!(unwritten.admit(&write("a", &[4])));
        // Then the stream is whole again: its next writes pass
        assert!(unwritten.admit(&write("a", &[5, 6])));
        assert!(unwritten.0.is_empty());
    }

    #[test]
    fn a_stream_failing_twice_waits_for_its_earliest_unwritten_seq() {
        // Given two failed writes of one stream, the later one first in the batch
        let mut unwritten = Unwritten::default();
        unwritten.failed([write("a", &[7]), write("a", &[2, 3])].iter());
        unwritten.failed([write("a", &[5])].iter());
        // Then only a write from seq 2 is admitted
        assert!(!unwritten.admit(&write("a", &[5])));
        assert!(!unwritten.admit(&write("a", &[7])));
        assert!(unwritten.admit(&write("a", &[2])));
    }
}
