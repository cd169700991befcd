//! The sled 0.34.7 journal with one group-commit writer thread per node (the thread and its
//! group commit are in `sled_writer`, the key layout in `sled_layout`).
//!
//! Every [`Journal::submit`] goes into one FIFO channel. The writer thread takes the first pending
//! append, drains whatever else is queued (up to `max_batch_events`; under sustained load it
//! lingers up to `linger` for more), writes all of it with one atomic `apply_batch`, flushes
//! once, and only then runs the completions, in submission order. So a reply that rides on a
//! completion is never sent before its events are on disk, and a crash loses only a suffix of
//! writes nobody was told about.
//!
//! **Layout.** Everything lives in one tree, `entities`, so one batch is atomic without a
//! transaction across trees (after a crash a batch's events, snapshots, reminders, views and
//! index entries are all there or none is). Keys start with a record type:
//! - `e kind NUL id NUL seq_be`: an event;
//! - `s kind NUL id NUL`: the newest snapshot, `seq_be ++ state`;
//! - `r kind NUL id NUL`: the stream's reminder, `millis_be`;
//! - `d kind NUL time id`: the same reminder in time order ([`time_key`]), empty value;
//! - `v kind NUL id NUL`: the stream's view;
//! - `x set NUL member`: an index entry, empty value;
//! - `a kind NUL id NUL key`: an archive record of the stream.
//!
//! A data dir written with one tree per record type (before this layout) is moved into it when
//! opened, before anything is read.

use crate::domain::time::Timestamp;
use crate::persistence::sled_layout::{
    ARCHIVE, DUE, EVENT, SNAPSHOT, Store, VIEW, key, kind_prefix, migrate_tree_per_type, set_prefix,
};
pub use crate::persistence::sled_writer::WriterConfig;
use crate::persistence::sled_writer::{Job, run_writer};
use crate::persistence::{
    Append, Completion, Direction, Journal, JournalError, Recovered, StreamId, time_key,
};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

pub struct SledJournal {
    store: Store,
    /// The writer's only input. The writer thread ends when it receives `Job::Close`.
    tx: Sender<Job>,
    in_flight: Arc<AtomicUsize>,
    closed: AtomicBool,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// Where a node keeps its sled database inside its data dir.
pub fn db_dir(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("db")
}

impl SledJournal {
    /// Opens (or creates) the database under `dir` and starts the writer thread. A new
    /// database is compressed if `config.compression` says so; an existing one keeps what it
    /// was made with (sled refuses to open it otherwise).
    pub fn open(dir: &Path, config: WriterConfig) -> Result<Arc<Self>, JournalError> {
        let compression = match stored_compression(dir) {
            Some(stored) => {
                if stored != config.compression {
                    tracing::warn!(
                        compression = stored,
                        "the data dir keeps the compression it was made with"
                    );
                }
                stored
            }
            None => config.compression,
        };
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(config.cache_bytes)
            .mode(sled::Mode::HighThroughput)
            .flush_every_ms(None)
            .use_compression(compression)
            // zstd's fastest level: most of the gain, little of the CPU.
            .compression_factor(1)
            .open()?;
        let store = Store {
            tree: db.open_tree("entities")?,
            db,
        };
        migrate_tree_per_type(&store)?;
        let (tx, rx) = mpsc::channel();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let writer = {
            let store = store.clone();
            let in_flight = in_flight.clone();
            std::thread::Builder::new()
                .name("journal-writer".into())
                .spawn(move || run_writer(store, rx, config, in_flight))
                .map_err(|e| JournalError::Storage(e.to_string()))?
        };
        Ok(Arc::new(Self {
            store,
            tx,
            in_flight,
            closed: AtomicBool::new(false),
            writer: Mutex::new(Some(writer)),
        }))
    }

    /// The underlying database, for stores that live beside the journal.
    pub fn db(&self) -> &sled::Db {
        &self.store.db
    }
}

/// Whether the sled database under `dir` was made compressed: sled's `conf` file has a
/// `use_compression: true|false` line (and a binary checksum after the lines). `None` for a
/// new database.
pub(super) fn stored_compression(dir: &Path) -> Option<bool> {
    let conf = std::fs::read(dir.join("conf")).ok()?;
    String::from_utf8_lossy(&conf)
        .lines()
        .find_map(|line| line.strip_prefix("use_compression:"))
        .and_then(|v| v.trim().parse().ok())
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
        let tree = &self.store.tree;
        let snapshot = match tree.get(key(SNAPSHOT, &stream.prefix()))? {
            Some(v) => Some(split_seq(&v)?),
            None => None,
        };
        let from = snapshot.as_ref().map_or(1, |(seq, _)| seq + 1);
        let mut events = Vec::new();
        let range = key(EVENT, &stream.event_key(from))..=key(EVENT, &stream.event_key(u64::MAX));
        for kv in tree.range(range) {
            let (k, v) = kv?;
            events.push((seq_of_key(&k)?, v.to_vec()));
        }
        Ok(Recovered {
            snapshot,
            events,
            term: None,
        })
    }

    fn exists(&self, stream: &StreamId) -> Result<bool, JournalError> {
        let prefix = stream.prefix();
        let tree = &self.store.tree;
        Ok(tree.contains_key(key(SNAPSHOT, &prefix))?
            || tree.scan_prefix(key(EVENT, &prefix)).next().is_some())
    }

    fn reminders_due(
        &self,
        kind: &str,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<(String, Timestamp)>, JournalError> {
        let start = kind_prefix(DUE, kind);
        let mut end = start.clone();
        end.extend_from_slice(&time_key(until));
        // Ids are UTF-8, which never has the byte 0xFF: every id at `until` sorts below this.
        end.push(0xFF);
        let mut due = Vec::new();
        for kv in self.store.tree.range(start.clone()..end).take(limit) {
            let (k, _) = kv?;
            let rest = &k[start.len()..];
            let at = crate::persistence::time_of_key(rest)
                .ok_or_else(|| JournalError::Corrupt("reminder key too short".into()))?;
            let id = std::str::from_utf8(&rest[8..])
                .map_err(|_| JournalError::Corrupt("reminder id".into()))?;
            due.push((id.to_owned(), at));
        }
        Ok(due)
    }

    fn views(&self, kind: &str) -> Result<Vec<(String, Vec<u8>)>, JournalError> {
        let prefix = kind_prefix(VIEW, kind);
        let mut out = Vec::new();
        for kv in self.store.tree.scan_prefix(&prefix) {
            let (k, v) = kv?;
            let id = crate::persistence::id_of_key(kind, &k[1..])
                .ok_or_else(|| JournalError::Corrupt("key of a kind".into()))?;
            out.push((id.to_string(), v.to_vec()));
        }
        Ok(out)
    }

    fn local_point_reads(&self) -> bool {
        // sled serves a point read from its page cache; a miss is one page read.
        true
    }

    fn view(&self, stream: &StreamId) -> Result<Option<Vec<u8>>, JournalError> {
        Ok(self
            .store
            .tree
            .get(key(VIEW, &stream.prefix()))?
            .map(|v| v.to_vec()))
    }

    fn index_range(
        &self,
        set: &str,
        direction: Direction,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, JournalError> {
        let prefix = set_prefix(set);
        let member = |k: sled::IVec| k[prefix.len()..].to_vec();
        let tree = &self.store.tree;
        let keys: Vec<sled::IVec> = match (direction, after) {
            (Direction::Ascending, None) => tree
                .scan_prefix(&prefix)
                .keys()
                .take(limit)
                .collect::<Result<_, _>>()?,
            (Direction::Ascending, Some(after)) => {
                let from = [prefix.as_slice(), after].concat();
                tree.range((std::ops::Bound::Excluded(from), std::ops::Bound::Unbounded))
                    .keys()
                    .take_while(|k| k.as_ref().map_or(true, |k| k.starts_with(&prefix)))
                    .take(limit)
                    .collect::<Result<_, _>>()?
            }
            (Direction::Descending, None) => tree
                .scan_prefix(&prefix)
                .keys()
                .rev()
                .take(limit)
                .collect::<Result<_, _>>()?,
            (Direction::Descending, Some(before)) => {
                let to = [prefix.as_slice(), before].concat();
                tree.range(prefix.clone()..to)
                    .keys()
                    .rev()
                    .take(limit)
                    .collect::<Result<_, _>>()?
            }
        };
        Ok(keys.into_iter().map(member).collect())
    }

    fn index_len(&self, set: &str) -> Result<usize, JournalError> {
        let mut n = 0;
        for k in self.store.tree.scan_prefix(set_prefix(set)).keys() {
            k?;
            n += 1;
        }
        Ok(n)
    }

    fn archive_range(
        &self,
        stream: &StreamId,
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<crate::persistence::Record>, JournalError> {
        let prefix = key(ARCHIVE, &stream.prefix());
        let tree = &self.store.tree;
        let rows: Vec<(sled::IVec, sled::IVec)> = match before {
            None => tree
                .scan_prefix(&prefix)
                .rev()
                .take(limit)
                .collect::<Result<_, _>>()?,
            Some(before) => tree
                .range(prefix.clone()..[prefix.as_slice(), before].concat())
                .rev()
                .take(limit)
                .collect::<Result<_, _>>()?,
        };
        Ok(rows
            .into_iter()
            .map(|(k, v)| (k[prefix.len()..].to_vec(), v.to_vec()))
            .collect())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persistence::barrier;
    use crate::persistence::sled_writer::TRIM_PER_WRITE;
    use std::time::{Duration, Instant};

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
    async fn a_data_dir_keeps_the_compression_it_was_made_with() {
        // Given a compressed database with events in it
        let dir = tempfile::tempdir().unwrap();
        let compressed = WriterConfig {
            compression: true,
            ..WriterConfig::default()
        };
        {
            let j = SledJournal::open(dir.path(), compressed).unwrap();
            submit(&j, append(&[(1, b"one")])).await.unwrap();
            j.close();
        }
        assert_eq!(stored_compression(dir.path()), Some(true));
        // When it is opened with compression off (the default), it opens, compressed, whole
        let j = SledJournal::open(dir.path(), WriterConfig::default()).unwrap();
        assert_eq!(
            j.load(&stream()).unwrap().events,
            vec![(1, b"one".to_vec())]
        );
        j.close();
        // and a new one follows the setting
        let fresh = tempfile::tempdir().unwrap();
        let j = SledJournal::open(fresh.path(), WriterConfig::default()).unwrap();
        j.close();
        assert_eq!(stored_compression(fresh.path()), Some(false));
    }

    #[tokio::test]
    async fn a_long_linger_never_holds_back_a_write_to_a_quiet_journal() {
        // Given a writer that may linger 30 s for company under load
        let dir = tempfile::tempdir().unwrap();
        let lingering = WriterConfig {
            linger: Duration::from_secs(30),
            ..WriterConfig::default()
        };
        let j = SledJournal::open(dir.path(), lingering).unwrap();
        // When a lone write comes to a quiet journal, and another long after it
        let started = Instant::now();
        submit(&j, append(&[(1, b"one")])).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        submit(&j, append(&[(2, b"two")])).await.unwrap();
        // Then neither waited for the linger
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(j.load(&stream()).unwrap().events.len(), 2);
        j.close();
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
        // sled lets its file lock go once its own pool's work for the closed database is
        // done, which may wait behind an earlier test's.
        let deadline = Instant::now() + Duration::from_secs(10);
        let j = loop {
            match SledJournal::open(dir.path(), WriterConfig::default()) {
                Ok(j) => break j,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(error = %e, "the closed database is still locked");
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("reopening: {e}"),
            }
        };
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
        assert_eq!(
            j.store.tree.scan_prefix([EVENT]).count(),
            2,
            "events 1 and 2 were trimmed"
        );
    }

    #[tokio::test]
    async fn a_long_trim_is_spread_over_group_commits_and_never_hides_the_tail() {
        // Given more events behind a snapshot than one group commit trims
        let dir = tempfile::tempdir().unwrap();
        let j = SledJournal::open(dir.path(), WriterConfig::default()).unwrap();
        let n = 2 * TRIM_PER_WRITE as u64 + 100;
        let events: Vec<(u64, Vec<u8>)> = (1..=n).map(|s| (s, vec![1])).collect();
        let bulk = Append {
            stream: Some(stream()),
            events,
            ..Append::default()
        };
        submit(&j, bulk).await.unwrap();
        // When a snapshot at n trims them all
        let mut a = append(&[(n + 1, b"tail")]);
        a.snapshot = Some((n, b"state".to_vec()));
        a.trim = Some(n);
        submit(&j, a).await.unwrap();
        // Then that write removed its share at least, and the state reads the same
        let left = j.store.tree.scan_prefix([EVENT]).count();
        assert!(
            left as u64 <= n + 1 - TRIM_PER_WRITE as u64,
            "{left} events left"
        );
        assert_eq!(
            j.load(&stream()).unwrap().events,
            vec![(n + 1, b"tail".to_vec())]
        );
        // and the writer removes the rest by itself, with no further write of the stream
        let deadline = Instant::now() + Duration::from_secs(10);
        while j.store.tree.scan_prefix([EVENT]).count() > 1 {
            assert!(
                Instant::now() < deadline,
                "the trim backlog was never finished"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            j.load(&stream()).unwrap().events,
            vec![(n + 1, b"tail".to_vec())]
        );
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
    async fn a_reminder_set_by_the_first_write_moves_with_the_later_ones() {
        let dir = tempfile::tempdir().unwrap();
        let j = SledJournal::open(dir.path(), WriterConfig::default()).unwrap();
        let with_reminder = |events: &[(u64, &[u8])], at: i64| {
            let mut a = append(events);
            a.reminder = Some(Some(Timestamp(at)));
            a
        };
        // Given a stream whose first write (seq 1) sets a reminder
        submit(&j, with_reminder(&[(1, b"one")], 10)).await.unwrap();
        // When later writes move it, one alone and two submitted together (mostly one group
        // commit)
        submit(&j, with_reminder(&[(2, b"two")], 20)).await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        j.submit(with_reminder(&[(3, b"three")], 30), Box::new(|_| ()));
        j.submit(
            with_reminder(&[(4, b"four")], 40),
            Box::new(move |r| drop(tx.send(r))),
        );
        rx.await.unwrap().unwrap();
        // Then only the newest is due: each move removed the one before
        assert_eq!(
            j.reminders("test").unwrap(),
            vec![("a".to_string(), Timestamp(40))]
        );
        assert_eq!(
            j.reminders_due("test", Timestamp(100), 10).unwrap(),
            vec![("a".to_string(), Timestamp(40))]
        );
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
