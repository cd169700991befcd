//! The [`Journal`] contract in memory: every append is "durable" at once. For unit tests of
//! entities and the runtime; it forgets everything when dropped.

use crate::domain::time::Timestamp;
use crate::persistence::{
    Append, Completion, Direction, Journal, JournalError, Recovered, StreamId,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Default)]
struct Store {
    journal: BTreeMap<Vec<u8>, Vec<u8>>,
    snapshots: BTreeMap<Vec<u8>, (u64, Vec<u8>)>,
    reminders: BTreeMap<Vec<u8>, Timestamp>,
    views: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Set name -> members.
    index: BTreeMap<String, BTreeSet<Vec<u8>>>,
    /// Stream prefix -> key -> value.
    archive: BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>>,
}

#[derive(Default)]
pub struct MemoryJournal {
    store: Mutex<Store>,
    closed: AtomicBool,
}

impl MemoryJournal {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Store>, JournalError> {
        self.store
            .lock()
            .map_err(|_| JournalError::Storage("poisoned".into()))
    }

    /// How many events are stored (after trims), over every stream.
    pub fn event_count(&self) -> usize {
        self.store.lock().map(|s| s.journal.len()).unwrap_or(0)
    }
}

impl Journal for MemoryJournal {
    fn submit(&self, append: Append, done: Completion) {
        if self.closed.load(Ordering::Acquire) {
            return done(Err(JournalError::Closed));
        }
        let Ok(mut store) = self.store.lock() else {
            return done(Err(JournalError::Storage("poisoned".into())));
        };
        if let Some(stream) = &append.stream {
            if let Some(snap) = append.snapshot {
                store.snapshots.insert(stream.prefix(), snap);
            }
            for (seq, bytes) in append.events {
                store.journal.insert(stream.event_key(seq), bytes);
            }
            if let Some(upto) = append.trim {
                let doomed: Vec<_> = store
                    .journal
                    .range(stream.event_key(0)..=stream.event_key(upto))
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in doomed {
                    store.journal.remove(&k);
                }
            }
            match append.reminder {
                Some(Some(at)) => {
                    store.reminders.insert(stream.prefix(), at);
                }
                Some(None) => {
                    store.reminders.remove(&stream.prefix());
                }
                None => {}
            }
            if let Some(view) = append.view {
                store.views.insert(stream.prefix(), view);
            }
            if !append.archive.is_empty() {
                let records = store.archive.entry(stream.prefix()).or_default();
                records.extend(append.archive);
            }
            for (entry, present) in append.index {
                let set = store.index.entry(entry.set).or_default();
                if present {
                    set.insert(entry.member);
                } else {
                    set.remove(&entry.member);
                }
            }
        }
        drop(store);
        done(Ok(()));
    }

    fn load(&self, stream: &StreamId) -> Result<Recovered, JournalError> {
        let store = self
            .store
            .lock()
            .map_err(|_| JournalError::Storage("poisoned".into()))?;
        let snapshot = store.snapshots.get(&stream.prefix()).cloned();
        let from = snapshot.as_ref().map_or(1, |(s, _)| s + 1);
        let events = store
            .journal
            .range(stream.event_key(from)..=stream.event_key(u64::MAX))
            .map(|(k, v)| {
                let seq = u64::from_be_bytes(k[k.len() - 8..].try_into().unwrap_or_default());
                (seq, v.clone())
            })
            .collect();
        Ok(Recovered {
            snapshot,
            events,
            term: None,
        })
    }

    fn exists(&self, stream: &StreamId) -> Result<bool, JournalError> {
        let r = self.load(stream)?;
        Ok(r.snapshot.is_some() || !r.events.is_empty())
    }

    fn reminders_due(
        &self,
        kind: &str,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<(String, Timestamp)>, JournalError> {
        let store = self.lock()?;
        let mut due: Vec<(String, Timestamp)> = of_kind(&store.reminders, kind)
            .filter(|(_, at)| **at <= until)
            .map(|(id, at)| (id, *at))
            .collect();
        due.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        due.truncate(limit);
        Ok(due)
    }

    fn views(&self, kind: &str) -> Result<Vec<(String, Vec<u8>)>, JournalError> {
        let store = self.lock()?;
        Ok(of_kind(&store.views, kind)
            .map(|(id, v)| (id, v.clone()))
            .collect())
    }

    fn local_point_reads(&self) -> bool {
        // A map in memory.
        true
    }

    fn view(&self, stream: &StreamId) -> Result<Option<Vec<u8>>, JournalError> {
        Ok(self.lock()?.views.get(&stream.prefix()).cloned())
    }

    fn index_range(
        &self,
        set: &str,
        direction: Direction,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, JournalError> {
        let store = self.lock()?;
        let Some(members) = store.index.get(set) else {
            return Ok(Vec::new());
        };
        use std::ops::Bound::{Excluded, Unbounded};
        let bound = after.map_or(Unbounded, |a| Excluded(a.to_vec()));
        Ok(match direction {
            Direction::Ascending => members
                .range((bound, Unbounded))
                .take(limit)
                .cloned()
                .collect(),
            Direction::Descending => members
                .range((Unbounded, bound))
                .rev()
                .take(limit)
                .cloned()
                .collect(),
        })
    }

    fn index_len(&self, set: &str) -> Result<usize, JournalError> {
        Ok(self.lock()?.index.get(set).map_or(0, BTreeSet::len))
    }

    fn archive_range(
        &self,
        stream: &StreamId,
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<crate::persistence::Record>, JournalError> {
        let store = self.lock()?;
        let Some(records) = store.archive.get(&stream.prefix()) else {
            return Ok(Vec::new());
        };
        use std::ops::Bound::{Excluded, Unbounded};
        let bound = before.map_or(Unbounded, |b| Excluded(b.to_vec()));
        Ok(records
            .range((Unbounded, bound))
            .rev()
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn is_idle(&self) -> bool {
        true
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }
}

fn of_kind<'a, V>(
    map: &'a BTreeMap<Vec<u8>, V>,
    kind: &'a str,
) -> impl Iterator<Item = (String, &'a V)> + 'a {
    map.iter()
        .filter_map(move |(k, v)| Some((crate::persistence::id_of_key(kind, k)?.to_string(), v)))
}
