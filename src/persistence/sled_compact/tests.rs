//! Tests of compaction: the same records in less disk, a compression switch, and every place
//! a crash can stop it.

use super::*;
use crate::domain::time::Timestamp;
use crate::persistence::sled_journal::{SledJournal, WriterConfig};
use crate::persistence::sled_open::stored_compression;
use crate::persistence::{Append, IndexEntry, Journal, StreamId};
use std::time::Duration;

/// Every record of every tree of the stopped database at `db`: `(tree, key, value)`.
fn dump(db: &Path) -> Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let (compression, segment) = made_with(db).unwrap();
    let sled = open_locked(|| sled_config(db, compression, segment).open()).unwrap();
    let mut all = Vec::new();
    let mut names = sled.tree_names();
    names.sort();
    for name in names {
        for kv in sled.open_tree(&name).unwrap().iter() {
            let (k, v) = kv.unwrap();
            all.push((name.to_vec(), k.to_vec(), v.to_vec()));
        }
    }
    all
}

async fn submit(j: &SledJournal, a: Append) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    j.submit(a, Box::new(move |r| drop(tx.send(r))));
    rx.await.unwrap().unwrap();
}

fn order(i: u32) -> StreamId {
    StreamId::new("order", format!("o{i:04}"))
}

/// A database under churn: 200 streams written over five rounds (events, a snapshot and a
/// trim each round, the view rewritten, an index entry and a reminder moved), one large
/// snapshot (stored in chunks), and a record in a tree beside the journal.
async fn churned(db: &Path) {
    let j = SledJournal::open(db, WriterConfig::default()).unwrap();
    for round in 0..5u64 {
        for i in 0..200 {
            let seq = round * 3;
            let at = |s: u64| Timestamp(1_000 + s as i64);
            submit(
                &j,
                Append {
                    stream: Some(order(i)),
                    events: (seq + 1..=seq + 3)
                        .map(|s| (s, vec![s as u8; 300]))
                        .collect(),
                    snapshot: Some((seq + 3, vec![round as u8; 500])),
                    trim: (round > 0).then_some(seq),
                    reminder: Some(Some(at(round))),
                    previous_reminder: (round > 0).then(|| at(round - 1)),
                    view: Some(format!("view {i} round {round}").into_bytes()),
                    index: vec![(IndexEntry::new("order.user:u1", vec![i as u8]), true)],
                    ..Append::default()
                },
            )
            .await;
        }
    }
    let large = StreamId::new("sku", "hot");
    submit(
        &j,
        Append {
            stream: Some(large),
            events: vec![(1, b"one".to_vec())],
            snapshot: Some((1, vec![7; 100_000])),
            ..Append::default()
        },
    )
    .await;
    j.db()
        .open_tree("pii-keys")
        .unwrap()
        .insert(b"u1", b"key")
        .unwrap();
    j.db().flush().unwrap();
    j.close();
}

#[tokio::test]
async fn given_a_churned_database_when_compacted_then_it_holds_the_same_records_in_less_disk() {
    // Given a database rewritten over and over
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    churned(&db).await;
    let before = dump(&db);
    // When it is compacted
    let mut told = 0;
    let done = compact(&db, &CompactOptions::default(), &mut |n| told += n).unwrap();
    // Then every record of every tree is there, byte for byte, in less disk
    assert_eq!(dump(&db), before);
    assert_eq!(done.records, before.len() as u64);
    assert_eq!(told, done.records);
    assert!(
        done.disk_after < done.disk_before,
        "{} -> {}",
        done.disk_before,
        done.disk_after
    );
    assert!(!done.compression);
    // and nothing is left beside it
    assert_eq!(done.kept, None);
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, vec!["db"]);
    // and the journal reads it as before: a stream past its trims, the chunked snapshot
    let j = SledJournal::open(&db, WriterConfig::default()).unwrap();
    let recovered = j.load(&order(7)).unwrap();
    assert_eq!(recovered.snapshot, Some((15, vec![4; 500])));
    assert!(recovered.events.is_empty());
    assert_eq!(j.view(&order(7)).unwrap(), Some(b"view 7 round 4".to_vec()));
    let hot = j.load(&StreamId::new("sku", "hot")).unwrap();
    assert_eq!(hot.snapshot, Some((1, vec![7; 100_000])));
    assert_eq!(j.reminders("order").unwrap().len(), 200);
    j.close();
}

#[tokio::test]
async fn given_a_compression_switch_when_compacted_then_the_new_database_keeps_it() {
    // Given an uncompressed database
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    churned(&db).await;
    let before = dump(&db);
    // When it is compacted into a compressed one, the old one kept
    let options = CompactOptions {
        keep_old: true,
        compression: Some(true),
    };
    let done = compact(&db, &options, &mut |_| {}).unwrap();
    // Then the new one is compressed, with the same records, and the old one is as it was
    assert!(done.compression);
    assert_eq!(stored_compression(&db), Some(true));
    assert_eq!(dump(&db), before);
    let old = dir.path().join("db.old");
    assert_eq!(done.kept.as_deref(), Some(old.as_path()));
    assert_eq!(stored_compression(&old), Some(false));
    assert_eq!(dump(&old), before);
    // and the journal opens it compressed, whatever its own setting
    let j = SledJournal::open(&db, WriterConfig::default()).unwrap();
    assert_eq!(j.view(&order(3)).unwrap(), Some(b"view 3 round 4".to_vec()));
    j.close();
}

#[test]
fn given_no_database_when_compacted_then_it_is_an_error_and_nothing_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    assert!(matches!(
        compact(&db, &CompactOptions::default(), &mut |_| {}),
        Err(JournalError::Storage(_))
    ));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn given_a_kept_old_database_when_compacted_again_then_it_is_refused_and_nothing_changes() {
    // Given a compaction that kept the old database
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    churned(&db).await;
    let keep = CompactOptions {
        keep_old: true,
        compression: None,
    };
    compact(&db, &keep, &mut |_| {}).unwrap();
    let (now, old) = (dump(&db), dump(&dir.path().join("db.old")));
    // When another compaction runs, Then it refuses: `db.old` may be the operator's backup
    let refused = compact(&db, &CompactOptions::default(), &mut |_| {});
    assert!(
        matches!(&refused, Err(JournalError::Storage(m)) if m.contains("db.old")),
        "{refused:?}"
    );
    assert_eq!(dump(&db), now);
    assert_eq!(dump(&dir.path().join("db.old")), old);
    assert!(!dir.path().join("db.compact").exists());
}

#[test]
fn given_a_locked_data_dir_when_a_compaction_or_a_node_comes_then_it_is_refused() {
    // Given a data dir locked (a compaction under way)
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    database(&db, "original");
    let held = lock_data_dir(&db, Duration::ZERO).unwrap();
    // When another compaction starts, or a node opens it, Then each is refused
    let again = compact(&db, &CompactOptions::default(), &mut |_| {});
    assert!(
        matches!(&again, Err(JournalError::Storage(m)) if m.contains("locked")),
        "{again:?}"
    );
    let node = lock_data_dir(&db, Duration::from_millis(50));
    assert!(
        matches!(&node, Err(JournalError::Storage(m)) if m.contains("locked")),
        "{node:?}"
    );
    // and once it is let go, a node opens it
    drop(held);
    opening(&db, || Ok(())).unwrap();
    assert_eq!(which(&db), "original");
}

#[test]
fn given_only_the_old_database_without_a_marker_when_opened_then_it_is_an_error() {
    // Given `db.old` and no `db` (no crash leaves this; an operator's move might)
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::of(&dir.path().join("db"));
    database(&paths.old, "original");
    // When a node opens it, Then it refuses rather than make an empty database
    assert!(matches!(recover(&paths.db), Err(JournalError::Storage(_))));
    assert!(!paths.db.exists());
    assert_eq!(which(&paths.old), "original");
}

/// A sled database at `path` with one record, `name`.
fn database(path: &Path, name: &str) {
    let db = sled::Config::new()
        .path(path)
        .segment_size(crate::persistence::sled_journal::SEGMENT_BYTES)
        .open()
        .unwrap();
    db.insert(name, b"").unwrap();
    db.flush().unwrap();
}

/// The one record of the database at `path`.
fn which(path: &Path) -> String {
    let all = dump(path);
    assert_eq!(all.len(), 1, "{all:?}");
    String::from_utf8(all[0].1.clone()).unwrap()
}

#[test]
fn given_a_crash_before_the_copy_was_complete_when_opened_then_the_partial_copy_goes() {
    // Given the database and a copy without the marker
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::of(&dir.path().join("db"));
    database(&paths.db, "original");
    database(&paths.copy, "partial");
    // When the node opens it
    recover(&paths.db).unwrap();
    // Then the database is the original and the copy is gone
    assert_eq!(which(&paths.db), "original");
    assert!(!paths.copy.exists() && !paths.old.exists() && !paths.done.exists());
}

#[test]
fn given_a_crash_after_the_marker_when_opened_then_the_copy_takes_the_place_wherever_it_stopped() {
    for stopped_after in ["marker", "first rename", "second rename"] {
        // Given a complete copy, its marker, and the renames done up to `stopped_after`
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::of(&dir.path().join("db"));
        database(&paths.db, "original");
        database(&paths.copy, "compacted");
        std::fs::write(&paths.done, b"").unwrap();
        if stopped_after != "marker" {
            std::fs::rename(&paths.db, &paths.old).unwrap();
        }
        if stopped_after == "second rename" {
            std::fs::rename(&paths.copy, &paths.db).unwrap();
        }
        // When the node opens it (twice: a crash during recovery is recovered too)
        recover(&paths.db).unwrap();
        recover(&paths.db).unwrap();
        // Then the copy is the database, the original is `db.old`, the marker is gone
        assert_eq!(
            which(&paths.db),
            "compacted",
            "stopped after the {stopped_after}"
        );
        assert_eq!(
            which(&paths.old),
            "original",
            "stopped after the {stopped_after}"
        );
        assert!(!paths.copy.exists() && !paths.done.exists());
    }
}
