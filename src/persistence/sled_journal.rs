//! The sled 0.34.7 journal with one group-commit writer thread per node.
//!
//! Every [`Journal::submit`] goes into one FIFO channel. The writer thread takes the first pending
//! append, drains whatever else is queued (up to `max_batch_events`, lingering up to `linger` for
//! more when configured), writes all of it with one `apply_batch` per tree, flushes once, and
//! only then runs the completions, in submission order. So a reply that rides on a completion
//! is never sent before its events are on disk, and a crash loses only a suffix of writes nobody
//! was told about.
//!
//! Trees: `journal` (key `kind NUL id NUL seq_be`), `snapshots` (key `kind NUL id NUL`, value
//! `seq_be ++ state`), `reminders` (key `kind NUL id NUL`, value `millis_be`), `views` (key
//! `kind NUL id NUL`, value the encoded view).

use crate::domain::time::Timestamp;
use crate::persistence::{Append, Completion, Journal, JournalError, Recovered, StreamId};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Tuning of the group-commit writer.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// The most events written in one batch (one flush).
    pub max_batch_events: usize,
    /// How long the writer waits for more appends after the first one before it writes. Zero
    /// writes at once what is queued: batches still grow under load while a flush is running.
    pub linger: Duration,
    /// sled's page cache size.
    pub cache_bytes: u64,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            max_batch_events: 1024,
            linger: Duration::ZERO,
            cache_bytes: 256 * 1024 * 1024,
        }
    }
}

enum Job {
    Write(Append, Completion),
    /// Write everything queued before this, then stop and signal.
    Close(mpsc::SyncSender<()>),
}

#[derive(Clone)]
struct Trees {
    db: sled::Db,
    journal: sled::Tree,
    snapshots: sled::Tree,
    reminders: sled::Tree,
    views: sled::Tree,
}

pub struct SledJournal {
    trees: Trees,
    /// The writer's only input. The writer thread ends when it receives `Job::Close`.
    tx: Sender<Job>,
    in_flight: Arc<AtomicUsize>,
    closed: AtomicBool,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl SledJournal {
    /// Opens (or creates) the database under `dir` and starts the writer thread.
    pub fn open(dir: &Path, config: WriterConfig) -> Result<Arc<Self>, JournalError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(config.cache_bytes)
            .mode(sled::Mode::HighThroughput)
            .flush_every_ms(None)
            .open()?;
        let trees = Trees {
            journal: db.open_tree("journal")?,
            snapshots: db.open_tree("snapshots")?,
            reminders: db.open_tree("reminders")?,
            views: db.open_tree("views")?,
            db,
        };
        let (tx, rx) = mpsc::channel();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let writer = {
            let trees = trees.clone();
            let in_flight = in_flight.clone();
            std::thread::Builder::new()
                .name("journal-writer".into())
                .spawn(move || run_writer(trees, rx, config, in_flight))
                .map_err(|e| JournalError::Storage(e.to_string()))?
        };
        Ok(Arc::new(Self {
            trees,
            tx,
            in_flight,
            closed: AtomicBool::new(false),
            writer: Mutex::new(Some(writer)),
        }))
    }

    /// The underlying database, for stores that live beside the journal.
    pub fn db(&self) -> &sled::Db {
        &self.trees.db
    }
}

impl Journal for SledJournal {
    fn submit(&self, append: Append, done: Completion) {
        if self.closed.load(Ordering::Acquire) {
            done(Err(JournalError::Closed));
            return;
        }
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        if let Err(mpsc::SendError(job)) = self.tx.send(Job::Write(append, done)) {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            if let Job::Write(_, done) = job {
                done(Err(JournalError::Closed));
            }
        }
    }

    fn load(&self, stream: &StreamId) -> Result<Recovered, JournalError> {
        let prefix = stream.prefix();
        let snapshot = match self.trees.snapshots.get(&prefix)? {
            Some(v) => Some(split_seq(&v)?),
            None => None,
        };
        let from = snapshot.as_ref().map_or(1, |(seq, _)| seq + 1);
        let mut events = Vec::new();
        for kv in self
            .trees
            .journal
            .range(stream.event_key(from)..=stream.event_key(u64::MAX))
        {
            let (k, v) = kv?;
            let seq = seq_of_key(&k)?;
            events.push((seq, v.to_vec()));
        }
        Ok(Recovered {
            snapshot,
            events,
            term: None,
        })
    }

    fn exists(&self, stream: &StreamId) -> Result<bool, JournalError> {
        let prefix = stream.prefix();
        Ok(self.trees.snapshots.contains_key(&prefix)?
            || self.trees.journal.scan_prefix(&prefix).next().is_some())
    }

    fn reminders(&self, kind: &str) -> Result<Vec<(String, Timestamp)>, JournalError> {
        scan_kind(&self.trees.reminders, kind)?
            .into_iter()
            .map(|(id, v)| {
                let at: [u8; 8] = v
                    .as_slice()
                    .try_into()
                    .map_err(|_| JournalError::Corrupt("reminder value".into()))?;
                Ok((id, Timestamp(i64::from_be_bytes(at))))
            })
            .collect()
    }

    fn views(&self, kind: &str) -> Result<Vec<(String, Vec<u8>)>, JournalError> {
        scan_kind(&self.trees.views, kind)
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        if self.tx.send(Job::Close(ack_tx)).is_ok() {
            let _ = ack_rx.recv();
        }
        if let Some(handle) = self.writer.lock().ok().and_then(|mut w| w.take()) {
            let _ = handle.join();
        }
    }
}

impl Drop for SledJournal {
    fn drop(&mut self) {
        self.close();
    }
}

/// Every `(id, value)` of `kind` in a tree keyed `kind NUL id NUL`.
fn scan_kind(tree: &sled::Tree, kind: &str) -> Result<Vec<(String, Vec<u8>)>, JournalError> {
    let mut prefix = kind.as_bytes().to_vec();
    prefix.push(0);
    let mut out = Vec::new();
    for kv in tree.scan_prefix(&prefix) {
        let (k, v) = kv?;
        let id = crate::persistence::id_of_key(kind, &k)
            .ok_or_else(|| JournalError::Corrupt("key of a kind".into()))?;
        out.push((id.to_string(), v.to_vec()));
    }
    Ok(out)
}

fn split_seq(v: &[u8]) -> Result<(u64, Vec<u8>), JournalError> {
    if v.len() < 8 {
        return Err(JournalError::Corrupt("snapshot record too short".into()));
    }
    let (seq, state) = v.split_at(8);
    let seq = u64::from_be_bytes(seq.try_into().unwrap_or_default());
    Ok((seq, state.to_vec()))
}

fn seq_of_key(k: &[u8]) -> Result<u64, JournalError> {
    let tail = k
        .len()
        .checked_sub(8)
        .and_then(|at| k.get(at..))
        .ok_or_else(|| JournalError::Corrupt("journal key too short".into()))?;
    Ok(u64::from_be_bytes(tail.try_into().unwrap_or_default()))
}

/// The writer thread: batch, write, flush once, complete.
fn run_writer(trees: Trees, rx: Receiver<Job>, config: WriterConfig, in_flight: Arc<AtomicUsize>) {
    let mut batch: Vec<(Append, Completion)> = Vec::new();
    loop {
        let mut events = 0usize;
        let mut closing = match rx.recv() {
            Ok(job) => take(job, &mut batch, &mut events),
            Err(_) => return,
        };
        while closing.is_none() && events < config.max_batch_events {
            match rx.try_recv() {
                Ok(job) => closing = take(job, &mut batch, &mut events),
                Err(_) => break,
            }
        }
        if !config.linger.is_zero() {
            let deadline = Instant::now() + config.linger;
            while closing.is_none() && events < config.max_batch_events {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(job) => closing = take(job, &mut batch, &mut events),
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                }
            }
        }
        let result = write_batch(&trees, &batch);
        if let Err(e) = &result {
            tracing::error!(error = %e, "journal write failed; failing the batch");
        }
        // Durable (or failed) from here on: not in flight while the completions run.
        in_flight.fetch_sub(batch.len(), Ordering::AcqRel);
        for (_, done) in batch.drain(..) {
            done(result.clone());
        }
        if let Some(ack) = closing {
            let _ = trees.db.flush();
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

fn write_batch(trees: &Trees, batch: &[(Append, Completion)]) -> Result<(), JournalError> {
    let mut journal = sled::Batch::default();
    let mut snapshots = sled::Batch::default();
    let mut reminders = sled::Batch::default();
    let mut views = sled::Batch::default();
    let mut dirty = false;
    let mut event_count = 0u64;
    // Only the newest view of a stream in this batch is written: a hot entity makes dozens of
    // appends per batch, each superseding the last one's view.
    let mut newest_view = std::collections::HashSet::new();
    for (append, _) in batch.iter().rev() {
        if let (Some(stream), Some(view)) = (&append.stream, &append.view)
            && newest_view.insert(stream)
        {
            views.insert(stream.prefix(), view.as_slice());
        }
    }
    for (append, _) in batch {
        let Some(stream) = &append.stream else {
            continue;
        };
        dirty |= !append.is_empty();
        for (seq, bytes) in &append.events {
            journal.insert(stream.event_key(*seq), bytes.as_slice());
            event_count += 1;
        }
        if let Some(upto) = append.trim {
            for kv in trees
                .journal
                .range(stream.event_key(0)..=stream.event_key(upto))
            {
                journal.remove(kv?.0);
            }
        }
        if let Some((seq, state)) = &append.snapshot {
            let mut v = Vec::with_capacity(8 + state.len());
            v.extend_from_slice(&seq.to_be_bytes());
            v.extend_from_slice(state);
            snapshots.insert(stream.prefix(), v);
        }
        match append.reminder {
            Some(Some(at)) => reminders.insert(stream.prefix(), &at.millis().to_be_bytes()),
            Some(None) => reminders.remove(stream.prefix()),
            None => {}
        }
    }
    if !dirty {
        // Only barriers: everything before them was flushed by an earlier batch.
        return Ok(());
    }
    let started = Instant::now();
    // One transaction over the four trees: after a crash the journal, snapshots, reminders
    // and views of a batch are all there or none is (separate batches could leave a view
    // older than its journal, and a read model would believe it).
    (
        &trees.snapshots,
        &trees.journal,
        &trees.reminders,
        &trees.views,
    )
        .transaction(|(s, j, r, v)| {
            s.apply_batch(&snapshots)?;
            j.apply_batch(&journal)?;
            r.apply_batch(&reminders)?;
            v.apply_batch(&views)?;
            Ok::<(), ConflictableTransactionError<()>>(())
        })
        .map_err(|e| match e {
            TransactionError::Storage(e) => JournalError::from(e),
            TransactionError::Abort(()) => JournalError::Storage("transaction aborted".into()),
        })?;
    trees.db.flush()?;
    metrics::histogram!("emporium_journal_flush_seconds").record(started.elapsed().as_secs_f64());
    metrics::histogram!("emporium_journal_batch_events").record(event_count as f64);
    metrics::counter!("emporium_journal_events_total").increment(event_count);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persistence::barrier;

    fn stream() -> StreamId {
        StreamId::new("test", "a")
    }

    fn append(events: &[(u64, &[u8])]) -> Append {
        Append {
            stream: Some(stream()),
            events: events.iter().map(|(s, b)| (*s, b.to_vec())).collect(),
            ..Append::default()
        }
    }

    async fn submit(j: &SledJournal, a: Append) -> Result<(), JournalError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        j.submit(a, Box::new(move |r| drop(tx.send(r))));
        rx.await.unwrap()
    }

    #[tokio::test]
    async fn appended_events_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let j = SledJournal::open(dir.path(), WriterConfig::default()).unwrap();
            submit(&j, append(&[(1, b"one"), (2, b"two")]))
                .await
                .unwrap();
            j.close();
        }
        let j = SledJournal::open(dir.path(), WriterConfig::default()).unwrap();
        let r = j.load(&stream()).unwrap();
        assert_eq!(r.events, vec![(1, b"one".to_vec()), (2, b"two".to_vec())]);
        assert!(j.exists(&stream()).unwrap());
        assert!(!j.exists(&StreamId::new("test", "b")).unwrap());
    }

    #[tokio::test]
    async fn snapshot_hides_older_events_and_trim_removes_them() {
        let dir = tempfile::tempdir().unwrap();
        let j = SledJournal::open(dir.path(), WriterConfig::default()).unwrap();
        submit(&j, append(&[(1, b"1"), (2, b"2"), (3, b"3")]))
            .await
            .unwrap();
        let mut a = append(&[(4, b"4")]);
        a.snapshot = Some((3, b"state3".to_vec()));
        a.trim = Some(2);
        submit(&j, a).await.unwrap();
        let r = j.load(&stream()).unwrap();
        assert_eq!(r.snapshot, Some((3, b"state3".to_vec())));
        assert_eq!(r.events, vec![(4, b"4".to_vec())]);
        assert_eq!(j.trees.journal.len(), 2, "events 1 and 2 were trimmed");
    }

    #[tokio::test]
    async fn reminders_are_listed_by_kind_and_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let j = SledJournal::open(dir.path(), WriterConfig::default()).unwrap();
        let mut a = Append::barrier();
        a.stream = Some(stream());
        a.reminder = Some(Some(Timestamp(42)));
        submit(&j, a).await.unwrap();
        assert_eq!(
            j.reminders("test").unwrap(),
            vec![("a".to_string(), Timestamp(42))]
        );
        assert!(j.reminders("other").unwrap().is_empty());
        let mut a = Append::barrier();
        a.stream = Some(stream());
        a.reminder = Some(None);
        submit(&j, a).await.unwrap();
        assert!(j.reminders("test").unwrap().is_empty());
    }

    #[tokio::test]
    async fn many_concurrent_appends_complete_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let j = SledJournal::open(dir.path(), WriterConfig::default()).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for seq in 1..=500u64 {
            let order = order.clone();
            let tx = tx.clone();
            j.submit(
                append(&[(seq, b"x")]),
                Box::new(move |r| {
                    order.lock().unwrap().push(seq);
                    let _ = tx.send(r);
                }),
            );
        }
        for _ in 0..500 {
            rx.recv().await.unwrap().unwrap();
        }
        barrier(j.as_ref()).await.unwrap();
        assert!(j.is_idle());
        let seen = order.lock().unwrap().clone();
        assert_eq!(seen, (1..=500).collect::<Vec<_>>());
        assert_eq!(j.load(&stream()).unwrap().events.len(), 500);
    }

    #[tokio::test]
    async fn writes_after_close_fail_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let j = SledJournal::open(dir.path(), WriterConfig::default()).unwrap();
        j.close();
        let r = submit(&j, append(&[(1, b"1")])).await;
        assert!(matches!(r, Err(JournalError::Closed)));
    }
}
