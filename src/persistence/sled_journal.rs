//! The sled 0.34.7 journal with one group-commit writer thread and one sync thread per node
//! (the writer and its group commit are in `sled_writer`, the sync thread in `sled_syncer`,
//! the key layout in `sled_layout`).
//!
//! Every [`Journal::submit`] goes into one FIFO channel. The writer thread takes the first pending
//! append, drains whatever else is queued (up to `max_batch_events`; under sustained load it
//! lingers up to `linger` for more), writes all of it with one atomic `apply_batch`, flushes
//! once and hands the commit to the sync thread, which syncs the filesystem (`sled_sync`) and
//! only then runs the completions, in submission order. So a reply that rides on a completion
//! is never sent before its events are on stable storage, and a crash loses only a suffix of
//! writes nobody was told about.
//!
//! **Layout.** Everything lives in one tree, `entities`, so one batch is atomic without a
//! transaction across trees (after a crash a batch's events, snapshots, reminders, views and
//! index entries are all there or none is). Keys start with a record type:
//! - `e kind NUL id NUL seq_be`: an event, or a run of the stream's events written in one
//!   group commit, keyed by the last one's seq (`sled_layout::EventRuns`);
//! - `s kind NUL id NUL`: the newest snapshot, `seq_be ++ state`, or for a large one a head
//!   record and chunks under `s kind NUL id NUL i_be` (`sled_snapshot`);
//! - `d kind NUL time id`: the stream's reminder in time order ([`time_key`]), empty value. A
//!   write that moves it names the one it replaces (`Append::previous_reminder`), so nothing
//!   is read to move it; a stale entry is removed when it fires (`actors::reminders`);
//! - `r kind NUL id NUL`: the stream's reminder as earlier versions also kept it (`millis_be`),
//!   no longer written or read;
//! - `v kind NUL id NUL`: the stream's view;
//! - `x set NUL member`: an index entry, empty value;
//! - `a kind NUL id NUL key`: an archive record of the stream.
//!
//! A data dir written with one tree per record type (before this layout) is moved into it when
//! opened, before anything is read.

use crate::domain::time::Timestamp;
use crate::persistence::sled_layout::{
    ARCHIVE, DUE, EVENT, SNAPSHOT, Store, VIEW, events_of_record, key, kind_prefix,
    migrate_tree_per_type, set_prefix,
};
use crate::persistence::sled_open::{forget_unfinished_snapshots, kept, open_locked, sled_config};
#[cfg(test)]
use crate::persistence::sled_open::{stored_compression, stored_segment_bytes};
use crate::persistence::sled_snapshot::read_snapshot;
use crate::persistence::sled_sync::SyncedDb;
use crate::persistence::sled_syncer::{InFlight, STALL, run_syncer};
use crate::persistence::sled_writer::{Job, run_writer};
pub use crate::persistence::sled_writer::{SEGMENT_BYTES, WriterConfig};
use crate::persistence::{
    Append, Completion, Direction, Journal, JournalError, Recovered, StreamId, time_key,
};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

pub struct SledJournal {
    store: Store,
    /// The writer's only input. The writer thread ends when it receives `Job::Close`.
    tx: Sender<Job>,
    in_flight: Arc<InFlight>,
    closed: AtomicBool,
    /// The writer and sync threads (`sled_writer`, `sled_syncer`), joined on close.
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// The stream id in the key of a view of `kind` (after the one-byte record tag).
fn view_id<'k>(kind: &str, key: &'k [u8]) -> Result<&'k str, JournalError> {
    crate::persistence::id_of_key(kind, &key[1..])
        .ok_or_else(|| JournalError::Corrupt("key of a kind".into()))
}

/// Where a node keeps its sled database inside its data dir.
pub fn db_dir(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("db")
}

impl SledJournal {
    /// Opens (or creates) the database under `dir` and starts the writer and sync threads. A new
    /// database is made with `config.compression` and `config.segment_bytes`; an existing one
    /// keeps what it was made with (sled refuses to open it otherwise).
    pub fn open(dir: &Path, config: WriterConfig) -> Result<Arc<Self>, JournalError> {
        super::sled_compact::opening(dir, || Self::open_unlocked(dir, config))
    }

    /// [`Self::open`] once the data dir is locked and any compaction finished.
    fn open_unlocked(dir: &Path, mut config: WriterConfig) -> Result<Arc<Self>, JournalError> {
        let defaults = WriterConfig::default();
        let compression = kept(
            dir,
            "use_compression",
            config.compression,
            defaults.compression,
        );
        let segment_bytes = kept(
            dir,
            "segment_size",
            config.segment_bytes,
            defaults.segment_bytes,
        );
        forget_unfinished_snapshots(dir)?;
        let db = open_locked(|| {
            sled_config(dir, compression, segment_bytes)
                .cache_capacity(config.cache_bytes)
                .mode(sled::Mode::HighThroughput)
                .open()
        })?;
        let store = Store {
            tree: db.open_tree("entities")?,
            db: SyncedDb::new(db, dir)?,
        };
        migrate_tree_per_type(&store)?;
        config.segment_bytes = segment_bytes;
        let (tx, rx) = mpsc::channel();
        let in_flight = Arc::new(InFlight::default());
        let (to_sync, synced) = mpsc::channel();
        let syncer = {
            let db = store.db.clone();
            let in_flight = in_flight.clone();
            std::thread::Builder::new()
                .name("journal-sync".into())
                .spawn(move || run_syncer(db, synced, in_flight))
                .map_err(|e| JournalError::Storage(e.to_string()))?
        };
        let writer = {
            let store = store.clone();
            let in_flight = in_flight.clone();
            std::thread::Builder::new()
                .name("journal-writer".into())
                .spawn(move || run_writer(store, rx, config, in_flight, to_sync))
                .map_err(|e| JournalError::Storage(e.to_string()))?
        };
        Ok(Arc::new(Self {
            store,
            tx,
            in_flight,
            closed: AtomicBool::new(false),
            threads: Mutex::new(vec![writer, syncer]),
        }))
    }

    /// The underlying database, for stores that live beside the journal.
    pub fn db(&self) -> &SyncedDb {
        &self.store.db
    }

    /// Runs a read; a storage failure stops the store as a failed write does. sled 0.34.7
    /// keeps an IO error (a full or failing disk, met by a read or by its own flusher) as its
    /// global error and fails every later call with it, so a node whose first sign of the
    /// fault was a read would fail every request while `/readyz` said 200. Decoding failures
    /// ([`JournalError::Corrupt`]) stop nothing: they are one record's.
    fn reading<T>(
        &self,
        read: impl FnOnce() -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        read().inspect_err(|e| {
            if let JournalError::Storage(why) = e {
                tracing::error!(error = %why, "a journal read failed; the store takes no more writes");
                self.store.db.stop_after("a read", why);
            }
        })
    }
}

impl Journal for SledJournal {
    fn submit(&self, append: Append, done: Completion) {
        if self.closed.load(Ordering::Acquire) {
            done(Err(JournalError::Closed));
            return;
        }
        self.in_flight.add(1);
        if let Err(mpsc::SendError(job)) = self.tx.send(Job::Write(append, done)) {
            self.in_flight.done(1);
            if let Job::Write(_, done) = job {
                done(Err(JournalError::Closed));
            }
        }
    }

    fn load(&self, stream: &StreamId) -> Result<Recovered, JournalError> {
        self.reading(|| {
            let tree = &self.store.tree;
            let snapshot = read_snapshot(tree, stream)?;
            let from = snapshot.as_ref().map_or(1, |(seq, _)| seq + 1);
            let mut events: Vec<(u64, Vec<u8>)> = Vec::new();
            let range =
                key(EVENT, &stream.event_key(from))..=key(EVENT, &stream.event_key(u64::MAX));
            for kv in tree.range(range) {
                let (k, v) = kv?;
                // A run's first record may begin before `from` (behind the snapshot).
                let read = events_of_record(seq_of_key(&k)?, &v)?;
                events.extend(read.into_iter().filter(|(seq, _)| *seq >= from));
            }
            // Records never overlap (a seq is written once); if two ever did, every seq is still
            // read once, in order, rather than one record hiding the start of another.
            if !events.is_sorted_by(|a, b| a.0 < b.0) {
                events.sort_by_key(|(seq, _)| *seq);
                events.dedup_by_key(|(seq, _)| *seq);
            }
            Ok(Recovered {
                snapshot,
                events,
                term: None,
            })
        })
    }

    fn exists(&self, stream: &StreamId) -> Result<bool, JournalError> {
        self.reading(|| {
            let prefix = stream.prefix();
            let tree = &self.store.tree;
            Ok(tree.contains_key(key(SNAPSHOT, &prefix))?
                || tree.scan_prefix(key(EVENT, &prefix)).next().is_some())
        })
    }

    fn reminders_due(
        &self,
        kind: &str,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<(String, Timestamp)>, JournalError> {
        self.reading(|| {
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
        })
    }

    fn views(&self, kind: &str) -> Result<Vec<(String, Vec<u8>)>, JournalError> {
        self.reading(|| {
            let prefix = kind_prefix(VIEW, kind);
            let mut out = Vec::new();
            for kv in self.store.tree.scan_prefix(&prefix) {
                let (k, v) = kv?;
                out.push((view_id(kind, &k)?.to_string(), v.to_vec()));
            }
            Ok(out)
        })
    }

    fn each_view_id(
        &self,
        kind: &str,
        visit: &mut dyn FnMut(&str) -> std::ops::ControlFlow<()>,
    ) -> Result<(), JournalError> {
        self.reading(|| {
            let prefix = kind_prefix(VIEW, kind);
            for k in self.store.tree.scan_prefix(&prefix).keys() {
                if visit(view_id(kind, &k?)?).is_break() {
                    break;
                }
            }
            Ok(())
        })
    }

    fn local_point_reads(&self) -> bool {
        // sled serves a point read from its page cache; a miss is one page read.
        true
    }

    fn view(&self, stream: &StreamId) -> Result<Option<Vec<u8>>, JournalError> {
        self.reading(|| {
            Ok(self
                .store
                .tree
                .get(key(VIEW, &stream.prefix()))?
                .map(|v| v.to_vec()))
        })
    }

    fn index_range(
        &self,
        set: &str,
        direction: Direction,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, JournalError> {
        self.reading(|| {
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
        })
    }

    fn index_len(&self, set: &str) -> Result<usize, JournalError> {
        self.reading(|| {
            let mut n = 0;
            for k in self.store.tree.scan_prefix(set_prefix(set)).keys() {
                k?;
                n += 1;
            }
            Ok(n)
        })
    }

    fn archive_range(
        &self,
        stream: &StreamId,
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<crate::persistence::Record>, JournalError> {
        self.reading(|| {
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
        })
    }

    fn is_idle(&self) -> bool {
        self.in_flight.is_idle()
    }

    /// A failed flush or write (the store takes no more writes until a restart), or appends
    /// waiting on the disk for [`STALL`] with none completing (a frozen filesystem: this
    /// clears once the disk answers again).
    fn failure(&self) -> Option<String> {
        if let Some(failure) = self.store.db.failure() {
            return Some(failure.to_owned());
        }
        let stalled = self.in_flight.stalled_for().filter(|d| *d >= STALL)?;
        Some(format!(
            "the disk has completed no write for {} s; writes wait",
            stalled.as_secs()
        ))
    }

    fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        if self.tx.send(Job::Close(ack_tx)).is_ok() {
            let _ = ack_rx.recv();
        }
        let threads = self.threads.lock().map(|mut t| std::mem::take(&mut *t));
        for thread in threads.unwrap_or_default() {
            let _ = thread.join();
        }
    }
}

impl Drop for SledJournal {
    fn drop(&mut self) {
        self.close();
    }
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
mod tests;
