//! Gaps a failed write would leave: an entity goes on writing until it learns that one of its
//! writes failed, so the writes it queued behind it must not be stored after the hole
//! ([`Unwritten`]). Each journal's writer keeps one.

use crate::persistence::{Append, StreamId};
use std::collections::HashMap;

/// Streams whose write failed with nothing of it stored, each with the first seq that
/// write held: the stream's next event. An entity keeps going until it learns of the failure
/// (then it is stopped and starts again from the journal), so its next writes may already be
/// queued; written, they would leave a gap that no activation could load past. A later write
/// of such a stream is refused unless it starts at that seq (the entity, or a new order's
/// creator, writing again from what is stored), which clears the mark; a snapshot past it is
/// refused too. Writes with neither events nor a snapshot (a reminder, index entries, a
/// barrier) pass. The marks are few (one per stream of a failed commit) and are kept by the
/// journal's writer, which every write of a stream passes in submission order.
#[derive(Default)]
pub struct Unwritten(HashMap<StreamId, u64>);

impl Unwritten {
    /// Whether `append` may be written; a write that starts the stream again at its next
    /// seq clears its mark.
    pub fn admit(&mut self, append: &Append) -> bool {
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
    pub fn failed<'a>(&mut self, appends: impl Iterator<Item = &'a Append>) {
        for append in appends {
            if let (Some(stream), Some((first, _))) = (&append.stream, append.events.first()) {
                let next = self.0.entry(stream.clone()).or_insert(*first);
                *next = (*next).min(*first);
            }
        }
    }

    /// The stream was read again and its next event is `next` (a journal whose failed write
    /// may still have been stored, Redis after a lost reply, learns here which it was): a
    /// marked stream now waits for `next`.
    pub fn reloaded(&mut self, stream: &StreamId, next: u64) {
        if let Some(at) = self.0.get_mut(stream) {
            *at = next;
        }
    }
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

    #[test]
    fn a_stream_read_again_waits_for_what_follows_the_stored_events() {
        // Given a failed write of seq 4 whose reply was lost: it may have been stored
        let mut unwritten = Unwritten::default();
        unwritten.failed([write("a", &[4])].iter());
        // When the stream is read again and seq 4 is there
        unwritten.reloaded(&StreamId::new("test", "a"), 5);
        // Then the write behind it (seq 5) continues what is stored, and a second seq 4 does not
        assert!(!unwritten.admit(&write("a", &[4])));
        assert!(unwritten.admit(&write("a", &[5])));
        // and reading a stream with no mark marks nothing
        unwritten.reloaded(&StreamId::new("test", "b"), 1);
        assert!(unwritten.admit(&write("b", &[7])));
    }
}
