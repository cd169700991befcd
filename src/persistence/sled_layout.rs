//! The key layout of the sled journal's one tree (see `sled_journal`): the record types, the
//! keys built from them, and the move from the earlier layout of one tree per record type.

use crate::domain::time::Timestamp;
use crate::persistence::{Append, Completion, JournalError, StreamId, time_key};
use std::collections::HashMap;
use std::time::Instant;

/// The database and its one tree.
#[derive(Clone)]
pub(super) struct Store {
    pub(super) db: sled::Db,
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

/// The most events one append's trim removes (see `write_batch`).
pub(super) const TRIM_PER_WRITE: usize = 4096;

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
                let (kind, id) = split_stream_key(&k)?;
                let at = millis_of(&v)?;
                batch.insert(due_key(kind, at, id), &[] as &[u8]);
            }
            batch.insert(key(tag, &k), v);
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

/// Writes one group commit: every append of `batch` as one atomic sled batch, then a
/// flush. Only the newest view of each stream is written, reminders move their time-ordered
/// entry, trims remove the events a snapshot covers.
pub(super) fn write_batch(
    store: &Store,
    batch: &[(Append, Completion)],
) -> Result<(), JournalError> {
    let mut writes = sled::Batch::default();
    let mut dirty = false;
    let mut event_count = 0u64;
    // Only the newest view of a stream in this batch is written: a hot entity makes dozens of
    // appends per batch, each superseding the last one's view.
    let mut newest_view = std::collections::HashSet::new();
    for (append, _) in batch.iter().rev() {
        if let (Some(stream), Some(view)) = (&append.stream, &append.view)
            && newest_view.insert(stream)
        {
            writes.insert(key(VIEW, &stream.prefix()), view.as_slice());
        }
    }
    // Each stream's reminder as this batch leaves it, so its time-ordered entry can move.
    let mut reminders: HashMap<&StreamId, Option<Timestamp>> = HashMap::new();
    for (append, _) in batch {
        let Some(stream) = &append.stream else {
            continue;
        };
        dirty |= !append.is_empty();
        for (seq, bytes) in &append.events {
            writes.insert(key(EVENT, &stream.event_key(*seq)), bytes.as_slice());
            event_count += 1;
        }
        if let Some(upto) = append.trim {
            // At most TRIM_PER_WRITE of them: a hot SKU's snapshot may cover hundreds of
            // thousands of events, and removing them all in one group would hold every other
            // write up for seconds. Events behind a durable snapshot are never read; those
            // left are removed by the stream's next trim (every trim starts from the first).
            let range = key(EVENT, &stream.event_key(0))..=key(EVENT, &stream.event_key(upto));
            for k in store.tree.range(range).keys().take(TRIM_PER_WRITE) {
                writes.remove(k?);
            }
        }
        if let Some((seq, state)) = &append.snapshot {
            let mut v = Vec::with_capacity(8 + state.len());
            v.extend_from_slice(&seq.to_be_bytes());
            v.extend_from_slice(state);
            writes.insert(key(SNAPSHOT, &stream.prefix()), v);
        }
        if let Some(next) = append.reminder {
            let previous = match reminders.get(stream) {
                Some(previous) => *previous,
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
    if !dirty {
        // Only barriers: everything before them was flushed by an earlier batch.
        return Ok(());
    }
    let started = Instant::now();
    store.tree.apply_batch(writes)?;
    store.db.flush()?;
    metrics::histogram!("emporium_journal_flush_seconds").record(started.elapsed().as_secs_f64());
    metrics::histogram!("emporium_journal_batch_events").record(event_count as f64);
    metrics::counter!("emporium_journal_events_total").increment(event_count);
    Ok(())
}
