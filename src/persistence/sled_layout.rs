//! The key layout of the sled journal's one tree (see `sled_journal`): the record types, the
//! keys built from them, and the move from the earlier layout of one tree per record type.

use crate::domain::time::Timestamp;
use crate::persistence::{JournalError, time_key};

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
