//! The key layout of the sled journal's one tree (see `sled_journal`): the record types, the
//! keys built from them, runs of events stored as one record ([`EventRuns`]), and the move
//! from the earlier layout of one tree per record type.

use crate::domain::time::Timestamp;
use crate::persistence::sled_sync::SyncedDb;
use crate::persistence::{JournalError, StreamId, time_key};
use std::collections::HashMap;

/// The database and its one tree.
#[derive(Clone)]
pub(super) struct Store {
    pub(super) db: SyncedDb,
    pub(super) tree: sled::Tree,
}

/// The record types: the first byte of every key.
pub(super) const EVENT: u8 = b'e';
pub(super) const SNAPSHOT: u8 = b's';
pub(super) const REMINDER: u8 = b'r';
pub(super) const DUE: u8 = b'd';
pub(super) const VIEW: u8 = b'v';
pub(super) const INDEX: u8 = b'x';
pub(super) const ARCHIVE: u8 = b'a';

/// `tag ++ rest`.
pub(super) fn key(tag: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + rest.len());
    k.push(tag);
    k.extend_from_slice(rest);
    k
}

/// `tag kind NUL`: where a kind's records of one type start.
pub(super) fn kind_prefix(tag: u8, kind: &str) -> Vec<u8> {
    let mut k = key(tag, kind.as_bytes());
    k.push(0);
    k
}

/// `d kind NUL time id`: a reminder in time order.
pub(super) fn due_key(kind: &str, at: Timestamp, id: &str) -> Vec<u8> {
    let mut k = kind_prefix(DUE, kind);
    k.extend_from_slice(&time_key(at));
    k.extend_from_slice(id.as_bytes());
    k
}

/// The first byte of a record holding a run of events. msgpack never uses 0xC1, and an
/// event's value is a msgpack map or a packed one starting with `z` (`codec::encode_event`,
/// `packing`), so no single event starts with it.
const RUN: u8 = 0xC1;

/// The most bytes of events one run record holds, for a database with `segment_bytes` log
/// segments. A sled 0.34 leaf holds up to 17 records before it splits and is rewritten whole
/// every few writes to it; a rewrite larger than a quarter of a segment goes to a file of its
/// own (a blob: a file made and written, which sled 0.34 never syncs). A full leaf of 2 KiB
/// runs with their keys passes that line at the default 128 KiB segments
/// (17 x ~2.1 KB > 32 KiB); a full leaf of runs of this size stays under it at any segment
/// size: 1,365 B at 128 KiB.
pub(super) fn run_bytes(segment_bytes: usize) -> usize {
    segment_bytes / 4 / 24
}

/// The events of one group commit as records: consecutive events of a stream go into one
/// record, keyed by the last one's seq, up to [`run_bytes`]; a run of one is stored as the
/// event itself. A hot stream (a drop's SKU takes dozens of purchases per group commit) then
/// costs sled a few inserts per commit instead of one per event, and its trims as few
/// removals: sled's cost is per record (it copies the leaf on every insert). A reader takes
/// a record's events with [`events_of_record`]; the range of keys from `seq` on still holds
/// every record with an event at or after `seq`, and a trim up to `seq` still removes only
/// records whose events are all at or before it.
pub(super) struct EventRuns<'a> {
    open: HashMap<&'a StreamId, Run<'a>>,
    /// [`run_bytes`].
    max_bytes: usize,
}

struct Run<'a> {
    first: u64,
    events: Vec<&'a [u8]>,
    bytes: usize,
}

impl<'a> EventRuns<'a> {
    /// Runs of at most `max_bytes` of events (see [`run_bytes`]).
    pub(super) fn new(max_bytes: usize) -> Self {
        Self {
            open: HashMap::new(),
            max_bytes,
        }
    }

    /// Adds `stream`'s event `seq`; a run it does not continue (a gap, or the run is full) is
    /// written to `writes` first.
    pub(super) fn push(
        &mut self,
        stream: &'a StreamId,
        seq: u64,
        event: &'a [u8],
        writes: &mut sled::Batch,
    ) {
        if let Some(run) = self.open.get_mut(stream) {
            debug_assert!(
                seq >= run.first + run.events.len() as u64,
                "{stream}: seq {seq} again"
            );
            let continues = run.first + run.events.len() as u64 == seq;
            if continues && run.bytes + event.len() <= self.max_bytes {
                run.events.push(event);
                run.bytes += event.len();
                return;
            }
            std::mem::replace(run, Run::new(seq, event)).write(stream, writes);
            return;
        }
        self.open.insert(stream, Run::new(seq, event));
    }

    /// Writes every open run to `writes`.
    pub(super) fn finish(self, writes: &mut sled::Batch) {
        for (stream, run) in self.open {
            run.write(stream, writes);
        }
    }
}

impl<'a> Run<'a> {
    fn new(first: u64, event: &'a [u8]) -> Self {
        Self {
            first,
            events: vec![event],
            bytes: event.len(),
        }
    }

    fn write(self, stream: &StreamId, writes: &mut sled::Batch) {
        let last = self.first + self.events.len() as u64 - 1;
        let at = key(EVENT, &stream.event_key(last));
        // (an event that starts with the marker, which no encoded event does, is stored as a
        // run of one so that it reads back as itself)
        if let [event] = self.events[..]
            && event.first() != Some(&RUN)
        {
            writes.insert(at, event);
            return;
        }
        // RUN ++ first_be ++ (len_be u32 ++ event)*
        let mut value = Vec::with_capacity(9 + 4 * self.events.len() + self.bytes);
        value.push(RUN);
        value.extend_from_slice(&self.first.to_be_bytes());
        for event in &self.events {
            value.extend_from_slice(&(event.len() as u32).to_be_bytes());
            value.extend_from_slice(event);
        }
        writes.insert(at, value);
    }
}

/// The events of the record stored under seq `last`, with their seqs, in order: the event
/// itself, or every event of a run (see [`EventRuns`]).
pub(super) fn events_of_record(
    last: u64,
    value: &[u8],
) -> Result<Vec<(u64, Vec<u8>)>, JournalError> {
    let Some(rest) = value.strip_prefix(&[RUN]) else {
        return Ok(vec![(last, value.to_vec())]);
    };
    let bad = || JournalError::Corrupt("event run record".into());
    let (first, mut rest) = rest.split_first_chunk::<8>().ok_or_else(bad)?;
    let first = u64::from_be_bytes(*first);
    let mut events = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest.split_first_chunk::<4>().ok_or_else(bad)?;
        let len = u32::from_be_bytes(*len) as usize;
        let event = tail.get(..len).ok_or_else(bad)?;
        events.push(event.to_vec());
        rest = &tail[len..];
    }
    // The run ends at the seq it is stored under (no wrapping past u64::MAX).
    let ends = (events.len() as u64)
        .checked_sub(1)
        .and_then(|n| first.checked_add(n));
    if ends != Some(last) {
        return Err(bad());
    }
    let seqs = events.into_iter().enumerate();
    Ok(seqs.map(|(i, e)| (first + i as u64, e)).collect())
}

/// `x set NUL`: where an index set's members start.
pub(super) fn set_prefix(set: &str) -> Vec<u8> {
    kind_prefix(INDEX, set)
}

/// Moves a data dir written with one tree per record type (`journal`, `snapshots`,
/// `reminders`, `views`) into the one tree, then drops the old trees. Each old tree is copied
/// and flushed before it is dropped, and copying again is harmless, so a crash in the middle
/// is finished at the next open.
pub(super) fn migrate_tree_per_type(store: &Store) -> Result<(), JournalError> {
    let names = store.db.tree_names();
    for (name, tag) in [
        ("journal", EVENT),
        ("snapshots", SNAPSHOT),
        ("reminders", REMINDER),
        ("views", VIEW),
    ] {
        if !names.iter().any(|n| n.as_ref() == name.as_bytes()) {
            continue;
        }
        let old = store.db.open_tree(name)?;
        let mut moved = 0usize;
        let mut batch = sled::Batch::default();
        for kv in old.iter() {
            let (k, v) = kv?;
            if tag == REMINDER {
                // Kept in time order only (the per-stream record is no longer read).
                let (kind, id) = split_stream_key(&k)?;
                let at = millis_of(&v)?;
                batch.insert(due_key(kind, at, id), &[] as &[u8]);
            } else {
                batch.insert(key(tag, &k), v);
            }
            moved += 1;
            if moved.is_multiple_of(10_000) {
                store.tree.apply_batch(std::mem::take(&mut batch))?;
            }
        }
        store.tree.apply_batch(batch)?;
        store.db.flush()?;
        store.db.drop_tree(name)?;
        tracing::info!(
            tree = name,
            records = moved,
            "moved into the one-tree layout"
        );
    }
    Ok(())
}

/// `(kind, id)` of a `kind NUL id NUL` key.
fn split_stream_key(k: &[u8]) -> Result<(&str, &str), JournalError> {
    let bad = || JournalError::Corrupt("stream key".into());
    let text = std::str::from_utf8(k).map_err(|_| bad())?;
    let (kind, rest) = text.split_once('\0').ok_or_else(bad)?;
    Ok((kind, rest.strip_suffix('\0').ok_or_else(bad)?))
}

pub(super) fn millis_of(v: &[u8]) -> Result<Timestamp, JournalError> {
    let at: [u8; 8] = v
        .try_into()
        .map_err(|_| JournalError::Corrupt("reminder value".into()))?;
    Ok(Timestamp(i64::from_be_bytes(at)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(writes: sled::Batch) -> Vec<(Vec<u8>, Vec<u8>)> {
        let db = sled::Config::new().temporary(true).open().unwrap();
        db.apply_batch(writes).unwrap();
        db.iter()
            .map(|kv| kv.unwrap())
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect()
    }

    fn seqs(records: &[(Vec<u8>, Vec<u8>)]) -> Vec<Vec<u64>> {
        records
            .iter()
            .map(|(k, v)| {
                let last = u64::from_be_bytes(k[k.len() - 8..].try_into().unwrap());
                events_of_record(last, v)
                    .unwrap()
                    .into_iter()
                    .map(|(s, _)| s)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_full_leaf_of_runs_stays_under_sleds_blob_line() {
        // sled writes a page over a quarter of a segment (less its header) to a file of its
        // own; a leaf holds 17 records before it splits, each run with its ~60 B key and
        // 4 B a length per event.
        for segment in [32 * 1024, 128 * 1024, 512 * 1024] {
            let leaf = 17 * (run_bytes(segment) + 60 + 4 * 8);
            assert!(leaf < segment / 4 - 64, "{segment}: {leaf}");
        }
    }

    #[test]
    fn consecutive_events_make_one_record_and_a_gap_or_a_full_run_starts_another() {
        // Given events 1-3, then 5 (a gap), then 6 too big to join 5
        let a = StreamId::new("k", "a");
        let mut runs = EventRuns::new(64);
        let big = vec![9u8; 64];
        let mut writes = sled::Batch::default();
        // When they are pushed
        for seq in 1..=3 {
            runs.push(&a, seq, b"x", &mut writes);
        }
        runs.push(&a, 5, b"y", &mut writes);
        runs.push(&a, 6, &big, &mut writes);
        runs.finish(&mut writes);
        // Then there are three records, each read back with its seqs
        let recs = records(writes);
        assert_eq!(seqs(&recs), vec![vec![1, 2, 3], vec![5], vec![6]]);
        // and a run of one is the event itself
        assert_eq!(recs[1].1, b"y");
        assert_eq!(recs[2].1, big);
    }

    #[test]
    fn streams_runs_do_not_mix() {
        // Given two streams' events interleaved
        let (a, b) = (StreamId::new("k", "a"), StreamId::new("k", "b"));
        let mut runs = EventRuns::new(64);
        let mut writes = sled::Batch::default();
        for seq in 1..=3 {
            runs.push(&a, seq, b"a", &mut writes);
            runs.push(&b, seq + 10, b"b", &mut writes);
        }
        runs.finish(&mut writes);
        // Then each stream has one run of its own
        let recs = records(writes);
        assert_eq!(seqs(&recs), vec![vec![1, 2, 3], vec![11, 12, 13]]);
        assert!(recs[0].0.ends_with(&3u64.to_be_bytes()));
    }

    #[test]
    fn a_damaged_run_is_refused_not_misread() {
        // Given a run of two events
        let a = StreamId::new("k", "a");
        let mut runs = EventRuns::new(64);
        let mut writes = sled::Batch::default();
        runs.push(&a, 1, b"one", &mut writes);
        runs.push(&a, 2, b"two", &mut writes);
        runs.finish(&mut writes);
        let (_, value) = records(writes).remove(0);
        assert_eq!(
            events_of_record(2, &value).unwrap(),
            vec![(1, b"one".to_vec()), (2, b"two".to_vec())]
        );
        // When it is cut short, or stored under another seq, it is corrupt
        assert!(events_of_record(2, &value[..value.len() - 1]).is_err());
        assert!(events_of_record(3, &value).is_err());
        assert!(events_of_record(2, &value[..5]).is_err());
        // and an event that starts with the marker reads back as itself
        let mut runs = EventRuns::new(64);
        let mut writes = sled::Batch::default();
        runs.push(&a, 7, &[RUN, 1, 2], &mut writes);
        runs.finish(&mut writes);
        let (_, odd) = records(writes).remove(0);
        assert_eq!(
            events_of_record(7, &odd).unwrap(),
            vec![(7, vec![RUN, 1, 2])]
        );
        // and a run that would pass the largest seq is refused
        let mut past = value.clone();
        past[1..9].copy_from_slice(&u64::MAX.to_be_bytes());
        assert!(events_of_record(u64::MAX, &past).is_err());
    }
}
