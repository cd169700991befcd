//! Tests of the sled journal: durability across reopen, snapshots and trims, reminders,
//! group commit and its failures.

use super::*;
use crate::persistence::barrier;
use crate::persistence::sled_layout::run_bytes;
use crate::persistence::sled_writer::{FAILING_KIND, SEGMENT_BYTES, TRIM_PER_WRITE};
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

/// The seqs of `events`, in order.
fn seqs(events: &[(u64, Vec<u8>)]) -> Vec<u64> {
    events.iter().map(|(s, _)| *s).collect()
}

async fn submit(j: &SledJournal, a: Append) -> Result<(), JournalError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    j.submit(a, Box::new(move |r| drop(tx.send(r))));
    rx.await.unwrap()
}

#[tokio::test]
async fn a_data_dir_keeps_the_compression_and_segment_size_it_was_made_with() {
    // Given a compressed database with events in it
    let dir = tempfile::tempdir().unwrap();
    let compressed = WriterConfig {
        compression: true,
        segment_bytes: 512 * 1024,
        ..WriterConfig::default()
    };
    {
        let j = SledJournal::open(dir.path(), compressed).unwrap();
        submit(&j, append(&[(1, b"one")])).await.unwrap();
        j.close();
    }
    assert_eq!(stored_compression(dir.path()), Some(true));
    assert_eq!(stored_segment_bytes(dir.path()), Some(512 * 1024));
    // When it is opened with the defaults (no compression, smaller segments), it opens as it
    // was made, whole
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
    assert_eq!(stored_segment_bytes(fresh.path()), Some(SEGMENT_BYTES));
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

/// A flush that failed stops the journal: a later write, or a barrier that would acknowledge
/// an earlier one, is refused and nothing more reaches the store.
#[tokio::test]
async fn after_a_failed_flush_nothing_is_written_or_acknowledged() {
    // Given a journal with one event stored, whose store's flush then failed
    let dir = tempfile::tempdir().unwrap();
    let j = SledJournal::open(dir.path(), WriterConfig::default()).unwrap();
    let stream = StreamId::new("test", "a");
    let write = |seq: u64| Append {
        stream: Some(stream.clone()),
        events: vec![(seq, b"event".to_vec())],
        ..Append::default()
    };
    submit(&j, write(1)).await.unwrap();
    j.store.db.stop("EIO");
    // When the stream is written again, and a barrier asked for
    let written = submit(&j, write(2)).await;
    let barrier = barrier(j.as_ref()).await;
    // Then both fail, the journal says why, and the store holds the first event only
    assert!(
        matches!(written, Err(JournalError::Storage(_))),
        "{written:?}"
    );
    assert!(
        matches!(barrier, Err(JournalError::Storage(_))),
        "{barrier:?}"
    );
    assert_eq!(j.failure().as_deref(), Some("EIO"));
    let seqs: Vec<u64> = j
        .load(&stream)
        .unwrap()
        .events
        .iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(seqs, [1]);
    j.close();
}

/// An entity goes on writing until it learns that a write failed: the write it queued
/// behind the failed one must not be stored after a gap.
#[tokio::test]
async fn a_write_queued_behind_a_failed_one_is_refused_instead_of_leaving_a_gap() {
    // Given a stream with one event, of a kind whose writes of a reminder fail
    let dir = tempfile::tempdir().unwrap();
    let j = SledJournal::open(dir.path(), WriterConfig::default()).unwrap();
    let stream = StreamId::new(FAILING_KIND, "a");
    let write = |seq: u64| Append {
        stream: Some(stream.clone()),
        events: vec![(seq, b"event".to_vec())],
        ..Append::default()
    };
    submit(&j, write(1)).await.unwrap();
    // When a write that sets the reminder fails with nothing stored
    let mut moving = write(2);
    moving.reminder = Some(Some(Timestamp(5)));
    assert!(matches!(
        submit(&j, moving).await,
        Err(JournalError::Storage(_))
    ));
    // and the write its entity made after it comes
    let behind = submit(&j, write(3)).await;
    // Then that one is refused, and the stream still loads as stored
    assert!(
        matches!(behind, Err(JournalError::AfterFailure(_))),
        "{behind:?}"
    );
    let seqs = |j: &SledJournal| -> Vec<u64> {
        j.load(&stream)
            .unwrap()
            .events
            .iter()
            .map(|e| e.0)
            .collect()
    };
    assert_eq!(seqs(&j), [1]);
    // When the entity, read again, writes from seq 2
    submit(&j, write(2)).await.unwrap();
    submit(&j, write(3)).await.unwrap();
    // Then the stream goes on whole
    assert_eq!(seqs(&j), [1, 2, 3]);
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
    // Reopened at once: sled's IO pool may still hold the closed database's file lock, which
    // open waits for.
    let j = SledJournal::open(dir.path(), WriterConfig::default()).unwrap();
    let r = j.load(&stream()).unwrap();
    assert_eq!(r.events, vec![(1, b"one".to_vec()), (2, b"two".to_vec())]);
    assert!(j.exists(&stream()).unwrap());
    assert!(!j.exists(&StreamId::new("test", "b")).unwrap());
}

#[tokio::test]
async fn a_snapshot_file_sled_never_finished_does_not_stop_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        let j = SledJournal::open(dir.path(), WriterConfig::default()).unwrap();
        submit(&j, append(&[(1, b"one")])).await.unwrap();
        j.close();
    }
    // Given what a start on a full disk leaves: sled's snapshot begun and never renamed,
    // which sorts after every finished one.
    let unfinished = dir.path().join("snap.FFFFFFFFFFFFFFFF.generating");
    std::fs::write(&unfinished, b"").unwrap();
    // When the node starts again, then it opens with every acknowledged event.
    let j = SledJournal::open(dir.path(), WriterConfig::default()).unwrap();
    assert_eq!(
        j.load(&stream()).unwrap().events,
        vec![(1, b"one".to_vec())]
    );
    assert!(!unfinished.exists());
    j.close();
}

#[tokio::test]
async fn snapshot_hides_older_events_and_trim_removes_them() {
    let dir = tempfile::tempdir().unwrap();
    let j = SledJournal::open(dir.path(), WriterConfig::default()).unwrap();
    // (one group commit each: each is a record of its own)
    for (seq, event) in [(1, b"1"), (2, b"2"), (3, b"3")] {
        submit(&j, append(&[(seq, event)])).await.unwrap();
    }
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
async fn a_large_snapshot_is_stored_in_chunks_and_a_later_smaller_one_leaves_none_behind() {
    let dir = tempfile::tempdir().unwrap();
    let limit = run_bytes(SEGMENT_BYTES);
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    {
        // Given a snapshot of 100 KB, far over the chunk size
        let j = SledJournal::open(dir.path(), WriterConfig::default()).unwrap();
        let mut a = append(&[(1, b"1")]);
        a.snapshot = Some((1, big.clone()));
        submit(&j, a).await.unwrap();
        // Then no record holds more than a chunk (and a seq), and it reads back whole
        let tree = &j.store.tree;
        assert!(tree.iter().all(|kv| kv.unwrap().1.len() <= limit + 8));
        assert_eq!(
            tree.scan_prefix([SNAPSHOT]).count(),
            1 + big.len().div_ceil(limit)
        );
        assert_eq!(j.load(&stream()).unwrap().snapshot, Some((1, big.clone())));
        j.close();
    }
    // and the same after a reopen
    let j = SledJournal::open(dir.path(), WriterConfig::default()).unwrap();
    assert_eq!(j.load(&stream()).unwrap().snapshot, Some((1, big.clone())));
    // When a larger one and then a small one are submitted together (one group commit, or two)
    let (mut larger, mut small) = (append(&[(2, b"2")]), append(&[(3, b"3")]));
    larger.snapshot = Some((2, [big.as_slice(), &big].concat()));
    small.snapshot = Some((3, b"small".to_vec()));
    let (first, second) = tokio::join!(submit(&j, larger), submit(&j, small));
    first.unwrap();
    second.unwrap();
    // Then the small one is the stream's one snapshot record, nothing of the others left
    assert_eq!(
        j.load(&stream()).unwrap().snapshot,
        Some((3, b"small".to_vec()))
    );
    assert_eq!(j.store.tree.scan_prefix([SNAPSHOT]).count(), 1);
}

#[tokio::test]
async fn a_group_commits_events_of_a_stream_are_one_record_and_read_back_one_by_one() {
    // Given a stream whose events 1-5 come in one group commit, then 6 alone
    let dir = tempfile::tempdir().unwrap();
    let j = SledJournal::open(dir.path(), WriterConfig::default()).unwrap();
    let five: Vec<(u64, &[u8])> = vec![(1, b"1"), (2, b"22"), (3, b""), (4, b"4"), (5, b"5")];
    submit(&j, append(&five)).await.unwrap();
    submit(&j, append(&[(6, b"6")])).await.unwrap();
    // Then they take two records, and read back whole, in order
    assert_eq!(j.store.tree.scan_prefix([EVENT]).count(), 2);
    let all: Vec<(u64, Vec<u8>)> = five
        .iter()
        .chain(&[(6, b"6" as &[u8])])
        .map(|(s, e)| (*s, e.to_vec()))
        .collect();
    assert_eq!(j.load(&stream()).unwrap().events, all);
    // When a snapshot at 3 (inside the run) trims up to 3
    let mut a = append(&[(7, b"7")]);
    a.snapshot = Some((3, b"state3".to_vec()));
    a.trim = Some(3);
    submit(&j, a).await.unwrap();
    // Then the run stays (4 and 5 are in it) and only what follows the snapshot is read
    assert_eq!(j.store.tree.scan_prefix([EVENT]).count(), 3);
    let read = j.load(&stream()).unwrap().events;
    assert_eq!(seqs(&read), [4, 5, 6, 7]);
    // and after reopening, the same
    j.close();
    drop(j);
    let j = SledJournal::open(dir.path(), WriterConfig::default()).unwrap();
    assert_eq!(j.load(&stream()).unwrap().events, read);
    // When a snapshot at 5 trims up to 5, the run goes
    let mut a = append(&[(8, b"8")]);
    a.snapshot = Some((5, b"state5".to_vec()));
    a.trim = Some(5);
    submit(&j, a).await.unwrap();
    assert_eq!(j.store.tree.scan_prefix([EVENT]).count(), 3, "6, 7 and 8");
    let read = j.load(&stream()).unwrap().events;
    assert_eq!(seqs(&read), [6, 7, 8]);
    j.close();
}

#[tokio::test]
async fn overlapping_records_still_read_every_event_once_in_order() {
    // Given a run of events 1-5, and (as no write makes it) event 4 stored again on its own
    let dir = tempfile::tempdir().unwrap();
    let j = SledJournal::open(dir.path(), WriterConfig::default()).unwrap();
    let five: Vec<(u64, &[u8])> = vec![(1, b"1"), (2, b"2"), (3, b"3"), (4, b"4"), (5, b"5")];
    submit(&j, append(&five)).await.unwrap();
    j.store
        .tree
        .insert(key(EVENT, &stream().event_key(4)), b"4" as &[u8])
        .unwrap();
    // Then a load reads 1 to 5, once each: the lower record does not hide the start of the run
    let read = j.load(&stream()).unwrap().events;
    assert_eq!(seqs(&read), [1, 2, 3, 4, 5]);
    j.close();
}

#[tokio::test]
async fn a_long_trim_is_spread_over_group_commits_and_never_hides_the_tail() {
    // Given more events behind a snapshot than one group commit trims
    let dir = tempfile::tempdir().unwrap();
    let j = SledJournal::open(dir.path(), WriterConfig::default()).unwrap();
    let n = 2 * TRIM_PER_WRITE as u64 + 100;
    // (each too big to share a record with the next: one record each)
    let events: Vec<(u64, Vec<u8>)> = (1..=n)
        .map(|s| (s, vec![1; run_bytes(SEGMENT_BYTES) / 2 + 1]))
        .collect();
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
    a.previous_reminder = Some(Timestamp(42));
    submit(&j, a).await.unwrap();
    assert!(j.reminders("test").unwrap().is_empty());
}

#[tokio::test]
async fn a_reminder_moves_from_the_one_its_writer_names_without_a_read() {
    let dir = tempfile::tempdir().unwrap();
    let j = SledJournal::open(dir.path(), WriterConfig::default()).unwrap();
    let with_reminder = |events: &[(u64, &[u8])], at: i64, previous: Option<i64>| {
        let mut a = append(events);
        a.reminder = Some(Some(Timestamp(at)));
        a.previous_reminder = previous.map(Timestamp);
        a
    };
    // Given a stream whose first write (seq 1) sets a reminder
    submit(&j, with_reminder(&[(1, b"one")], 10, None))
        .await
        .unwrap();
    // When later writes move it, one alone and two submitted together (mostly one group
    // commit), each naming the one before
    submit(&j, with_reminder(&[(2, b"two")], 20, Some(10)))
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    j.submit(
        with_reminder(&[(3, b"three")], 30, Some(20)),
        Box::new(|_| ()),
    );
    j.submit(
        with_reminder(&[(4, b"four")], 40, Some(30)),
        Box::new(move |r| drop(tx.send(r))),
    );
    rx.await.unwrap().unwrap();
    // Then only the newest is due: each move removed the one before
    assert_eq!(
        j.reminders("test").unwrap(),
        vec![("a".to_string(), Timestamp(40))]
    );
    // When a write names a reminder that is not the stored one (a stale entry being removed)
    let mut heal = Append::barrier();
    heal.stream = Some(stream());
    heal.reminder = Some(Some(Timestamp(40)));
    heal.previous_reminder = Some(Timestamp(7));
    submit(&j, heal).await.unwrap();
    // Then the stored one stays
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
    // (appends of one stream that met in a group commit share a record: read back one by one)
    let read = j.load(&stream()).unwrap().events;
    assert_eq!(seqs(&read), seen);
}

#[tokio::test]
async fn writes_after_close_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let j = SledJournal::open(dir.path(), WriterConfig::default()).unwrap();
    j.close();
    let r = submit(&j, append(&[(1, b"1")])).await;
    assert!(matches!(r, Err(JournalError::Closed)));
}
