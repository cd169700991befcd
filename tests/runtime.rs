//! The entity runtime against a real sled journal: activation, recovery, failure isolation,
//! passivation, deadlines and reminders. Uses a small `Counter` entity that panics on `Boom`.

use emporium::actors::{AskError, Entities, Entity, Runtime, RuntimeConfig};
use emporium::domain::ids::SkuId;
use emporium::domain::time::{Clock, ManualClock, Timestamp};
use emporium::persistence::sled_journal::{SledJournal, WriterConfig};
use emporium::persistence::{Append, Direction, IndexEntry, Journal, StreamId, barrier};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct Counter;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum Cmd {
    Add(u64),
    Get,
    Boom,
    /// Sets a deadline `after` ms from now.
    Alarm(i64),
    Ring,
}

#[derive(Serialize, Deserialize)]
enum Ev {
    Added(u64),
    AlarmSet(i64),
    Rang,
}

#[derive(Default, Serialize, Deserialize)]
struct State {
    total: u64,
    alarm: Option<i64>,
    rang: u32,
}

impl Entity for Counter {
    const KIND: &'static str = "counter";
    type Id = SkuId;
    type State = State;
    type Command = Cmd;
    type Event = Ev;
    type Rejection = String;
    type Reply = (u64, u32);
    type View = u64;

    fn decide(s: &State, c: &Cmd, now: Timestamp) -> Result<Vec<Ev>, String> {
        match c {
            Cmd::Add(0) => Err("zero".into()),
            Cmd::Add(n) => Ok(vec![Ev::Added(*n)]),
            Cmd::Get => Ok(vec![]),
            Cmd::Boom => panic!("boom"),
            Cmd::Alarm(after) => Ok(vec![Ev::AlarmSet(now.millis() + after)]),
            Cmd::Ring => Ok(match s.alarm {
                Some(at) if at <= now.millis() => vec![Ev::Rang],
                _ => vec![],
            }),
        }
    }

    fn apply(s: &mut State, e: &Ev) {
        match e {
            Ev::Added(n) => s.total += n,
            Ev::AlarmSet(at) => s.alarm = Some(*at),
            Ev::Rang => {
                s.alarm = None;
                s.rang += 1;
            }
        }
    }

    fn reply(_: &SkuId, s: &State, _: &Cmd) -> (u64, u32) {
        (s.total, s.rang)
    }

    fn next_deadline(s: &State) -> Option<Timestamp> {
        s.alarm.map(Timestamp)
    }

    fn view(s: &State) -> Option<u64> {
        Some(s.total)
    }

    fn on_deadline() -> Option<Cmd> {
        Some(Cmd::Ring)
    }
}

fn id(s: &str) -> SkuId {
    SkuId::parse(s).unwrap()
}

struct Node {
    counters: Entities<Counter>,
    journal: Arc<SledJournal>,
    clock: ManualClock,
}

async fn node(dir: &std::path::Path, config: RuntimeConfig) -> Node {
    let journal = SledJournal::open(dir, WriterConfig::default()).unwrap();
    let clock = ManualClock::starting_at(Timestamp(1_000_000));
    let rt = Runtime {
        journal: journal.clone(),
        clock: Arc::new(clock.clone()),
        config,
        shutdown: CancellationToken::new(),
        remote: None,
    };
    let counters = Entities::<Counter>::start(rt).await.unwrap();
    Node {
        counters,
        journal,
        clock,
    }
}

/// Loses everything not yet durable, as a crash would: the journal takes no more writes (no
/// final snapshots), then the node goes away and releases the database.
async fn crash(node: Node) {
    node.journal.close();
    node.counters.shutdown().await;
    drop(node);
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn stop(node: Node) {
    node.counters.shutdown().await;
    node.journal.close();
}

#[tokio::test]
async fn state_survives_a_restart_through_snapshot_and_tail() {
    let dir = tempfile::tempdir().unwrap();
    let config = RuntimeConfig {
        snapshot_every: 3,
        ..RuntimeConfig::default()
    };
    let n = node(dir.path(), config.clone()).await;
    for i in 1..=10 {
        n.counters.ask(&id("a"), Cmd::Add(i)).await.unwrap();
    }
    let inspected = n.counters.inspect(&id("a")).await.unwrap();
    assert_eq!(inspected.seq, 10);
    assert_eq!(inspected.snapshot_seq, 9, "a snapshot every 3 events");
    assert_eq!(n.counters.view(&id("a")), Some(55));
    crash(n).await; // no final snapshot: recovery must replay the tail
    let n = node(dir.path(), config).await;
    assert_eq!(
        n.counters.view(&id("a")),
        Some(55),
        "views load at start, no entity asked"
    );
    assert_eq!(n.counters.stats().activations(), 0);
    assert_eq!(n.counters.ask(&id("a"), Cmd::Get).await.unwrap(), (55, 0));
    assert_eq!(n.counters.stats().activations(), 1);
    stop(n).await;
}

#[tokio::test]
async fn a_rejection_changes_nothing_and_keeps_the_actor() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path(), RuntimeConfig::default()).await;
    n.counters.ask(&id("a"), Cmd::Add(2)).await.unwrap();
    let err = n.counters.ask(&id("a"), Cmd::Add(0)).await.unwrap_err();
    assert_eq!(err, AskError::Rejected("zero".to_string()));
    assert_eq!(n.counters.ask(&id("a"), Cmd::Get).await.unwrap(), (2, 0));
    assert_eq!(n.counters.stats().failures(), 0);
    stop(n).await;
}

#[tokio::test]
async fn a_panicking_entity_restarts_from_its_journal_and_siblings_keep_serving() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path(), RuntimeConfig::default()).await;
    n.counters.ask(&id("victim"), Cmd::Add(5)).await.unwrap();
    n.counters.ask(&id("sibling"), Cmd::Add(7)).await.unwrap();

    let boom = n.counters.ask(&id("victim"), Cmd::Boom).await;
    assert_eq!(boom.unwrap_err(), AskError::Unavailable);
    assert!(n.counters.stats().failures() >= 1);

    // The sibling never noticed; the victim comes back with its journaled state.
    assert_eq!(
        n.counters.ask(&id("sibling"), Cmd::Add(1)).await.unwrap(),
        (8, 0)
    );
    assert_eq!(
        n.counters.ask(&id("victim"), Cmd::Add(1)).await.unwrap(),
        (6, 0)
    );
    stop(n).await;
}

#[tokio::test]
async fn concurrent_asks_to_one_key_are_serialised_and_all_durable() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path(), RuntimeConfig::default()).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..500 {
        let c = n.counters.clone();
        tasks.spawn(async move { c.ask(&id("hot"), Cmd::Add(1)).await.unwrap() });
    }
    let mut totals = Vec::new();
    while let Some(r) = tasks.join_next().await {
        totals.push(r.unwrap().0);
    }
    totals.sort_unstable();
    assert_eq!(
        totals,
        (1..=500).collect::<Vec<_>>(),
        "each ask saw its own increment"
    );
    assert_eq!(n.counters.stats().activations(), 1, "one actor for one key");
    crash(n).await;
    let n = node(dir.path(), RuntimeConfig::default()).await;
    assert_eq!(n.counters.ask(&id("hot"), Cmd::Get).await.unwrap().0, 500);
    stop(n).await;
}

#[tokio::test]
async fn idle_entities_passivate_and_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let config = RuntimeConfig {
        idle_after: Duration::from_millis(100),
        ..RuntimeConfig::default()
    };
    let n = node(dir.path(), config).await;
    n.counters.ask(&id("a"), Cmd::Add(3)).await.unwrap();
    assert_eq!(n.counters.stats().active(), 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(n.counters.stats().active(), 0, "idle entity passivated");
    assert_eq!(n.counters.stats().passivations(), 1);
    let inspected = n.counters.inspect(&id("a")).await.unwrap();
    assert_eq!(
        inspected.snapshot_seq, 0,
        "one event is cheaper to replay than a snapshot is to write"
    );
    assert_eq!(n.counters.ask(&id("a"), Cmd::Add(1)).await.unwrap(), (4, 0));
    // Sixteen events since the last snapshot: passivation writes one.
    for _ in 0..14 {
        n.counters.ask(&id("a"), Cmd::Add(1)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(n.counters.stats().active(), 0);
    let inspected = n.counters.inspect(&id("a")).await.unwrap();
    assert_eq!(inspected.snapshot_seq, 16, "passivation snapshotted");
    assert_eq!(n.counters.ask(&id("a"), Cmd::Get).await.unwrap(), (18, 0));
    stop(n).await;
}

#[tokio::test]
async fn a_stream_at_rest_is_compacted_to_one_snapshot_when_that_is_smaller() {
    // Given an entity whose three events take more bytes than a snapshot of its state
    let dir = tempfile::tempdir().unwrap();
    let config = RuntimeConfig {
        idle_after: Duration::from_millis(100),
        ..RuntimeConfig::default()
    };
    let n = node(dir.path(), config.clone()).await;
    for k in [1, 2, 3] {
        n.counters.ask(&id("a"), Cmd::Add(k)).await.unwrap();
    }
    // When it passivates
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(n.counters.stats().active(), 0);
    // Then one snapshot replaces its events on disk, and the state is whole
    let stream = StreamId::new("counter", "a");
    let stored = n.journal.load(&stream).unwrap();
    assert_eq!(stored.snapshot.map(|(seq, _)| seq), Some(3));
    assert!(
        stored.events.is_empty(),
        "the events went with the compaction"
    );
    assert_eq!(
        n.counters.ask(&id("a"), Cmd::Add(4)).await.unwrap(),
        (10, 0)
    );
    // and the stream goes on from there, across a restart
    stop(n).await;
    let n = node(dir.path(), config).await;
    assert_eq!(n.counters.ask(&id("a"), Cmd::Get).await.unwrap(), (10, 0));
    assert_eq!(n.counters.inspect(&id("a")).await.unwrap().seq, 4);
    stop(n).await;
}

/// Given one active entity, when a batch of new ones is created without activation, then
/// only the active one (and the one whose command the empty state refuses) is asked, and the
/// new ones read back — views, reminders, state across a restart — as if their actors had
/// written them. An item its caller vouches is new (`b`; the journal is not read for it) is
/// written the same way, and an active one is asked even when vouched for (`a`).
#[tokio::test]
async fn new_entities_are_written_without_activation_as_their_actors_would() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path(), RuntimeConfig::default()).await;
    n.counters.ask(&id("a"), Cmd::Add(5)).await.unwrap();
    let created = n
        .counters
        .create(
            vec![
                (id("b"), Cmd::Alarm(1000)),
                (id("c"), Cmd::Add(2)),
                (id("a"), Cmd::Add(1)),
                (id("d"), Cmd::Add(0)),
            ],
            &[true, false, true],
        )
        .await;
    assert_eq!(
        created,
        vec![
            Ok(()),
            Ok(()),
            Ok(()),
            Err(AskError::Rejected("zero".into()))
        ]
    );
    assert_eq!(n.counters.stats().activations(), 2, "a, and d to refuse");
    assert_eq!(n.counters.view(&id("c")), Some(2));
    assert_eq!(
        n.journal.reminders("counter").unwrap(),
        vec![("b".to_string(), Timestamp(1_001_000))]
    );
    stop(n).await;
    let n = node(dir.path(), RuntimeConfig::default()).await;
    assert_eq!(n.counters.ask(&id("a"), Cmd::Get).await.unwrap(), (6, 0));
    assert_eq!(n.counters.ask(&id("c"), Cmd::Add(1)).await.unwrap(), (3, 0));
    assert_eq!(n.counters.inspect(&id("c")).await.unwrap().seq, 2);
    let b = n.counters.inspect(&id("b")).await.unwrap();
    assert_eq!((b.seq, b.state["alarm"].as_i64()), (1, Some(1_001_000)));
    stop(n).await;
}

#[tokio::test]
async fn inspecting_an_unknown_entity_is_not_found_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path(), RuntimeConfig::default()).await;
    assert_eq!(
        n.counters.inspect(&id("ghost")).await.unwrap_err(),
        AskError::NotFound
    );
    assert_eq!(n.counters.stats().activations(), 0);
    stop(n).await;
}

/// A stored reminder the entity does not hold (left by an earlier version's rule for it)
/// fires once: the woken entity removes it and keeps its own, instead of being woken for it
/// every 30 s for ever.
#[tokio::test]
async fn a_stale_reminder_is_removed_when_it_fires() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path(), RuntimeConfig::default()).await;
    // Given an entity with an alarm an hour away, and beside it a stale reminder due now
    n.counters
        .ask(&id("s"), Cmd::Alarm(3_600_000))
        .await
        .unwrap();
    let own = n.journal.reminders("counter").unwrap();
    let stale = Append {
        stream: Some(StreamId::new("counter", "s")),
        reminder: Some(Some(Timestamp(n.clock.now().millis() - 1_000))),
        ..Append::default()
    };
    n.journal.submit(stale, Box::new(|_| ()));
    barrier(n.journal.as_ref()).await.unwrap();
    assert_eq!(n.journal.reminders("counter").unwrap().len(), 2);
    // When the reminder timer runs
    n.counters
        .keep_reminders(Some(Duration::from_millis(10)), None);
    // Then the stale one is gone, the entity's own alarm stays, and it did not ring
    let mut healed = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if n.journal.reminders("counter").unwrap() == own {
            healed = true;
            break;
        }
    }
    assert!(healed, "{:?}", n.journal.reminders("counter").unwrap());
    assert_eq!(n.counters.ask(&id("s"), Cmd::Get).await.unwrap().1, 0);
    stop(n).await;
}

#[tokio::test]
async fn deadlines_fire_on_tick_and_reminders_wake_entities_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path(), RuntimeConfig::default()).await;
    n.counters.ask(&id("a"), Cmd::Alarm(60_000)).await.unwrap();
    n.clock.advance(Duration::from_secs(61));
    n.counters.tick(&id("a")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(n.counters.ask(&id("a"), Cmd::Get).await.unwrap().1, 1);

    // An alarm a minute away, then a crash: the restarted node, once the alarm is due, wakes
    // the entity from its reminder without anybody asking for it.
    n.counters.ask(&id("b"), Cmd::Alarm(60_000)).await.unwrap();
    assert_eq!(n.journal.reminders("counter").unwrap().len(), 1);
    crash(n).await;
    let n = node(dir.path(), RuntimeConfig::default()).await;
    n.counters
        .keep_reminders(Some(Duration::from_millis(10)), None);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        n.counters.stats().activations(),
        0,
        "nothing is woken before it is due"
    );
    // The wall time before the crash (61 s), then the minute of the alarm.
    n.clock.advance(Duration::from_secs(61 + 60));
    let mut rang = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if n.journal.reminders("counter").unwrap().is_empty() {
            rang = true;
            break;
        }
    }
    assert!(rang, "the reminder woke the entity and it acted");
    assert_eq!(n.counters.ask(&id("b"), Cmd::Get).await.unwrap().1, 1);
    stop(n).await;
}

/// An entity waiting for its deadline passivates like any other, and the kind's reminder timer
/// wakes it when the deadline comes, then lets it go again at once; many at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entities_with_deadlines_passivate_and_the_timer_wakes_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = RuntimeConfig {
        idle_after: Duration::from_millis(100),
        ..RuntimeConfig::default()
    };
    let n = node(dir.path(), config).await;
    n.counters
        .keep_reminders(Some(Duration::from_millis(10)), None);
    const N: usize = 2_000;
    for i in 0..N {
        // Alarms 60..80 s away, spread so they come due over the test.
        let after = 60_000 + (i as i64 % 20) * 1000;
        n.counters
            .ask(&id(&format!("w{i}")), Cmd::Alarm(after))
            .await
            .unwrap();
    }
    let mut rested = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if n.counters.stats().active() == 0 {
            rested = true;
            break;
        }
    }
    assert!(rested, "entities waiting for a deadline passivated");
    assert_eq!(n.journal.reminders("counter").unwrap().len(), N);
    n.clock.advance(Duration::from_secs(90));
    let mut left = N;
    // Up to 20 s, within REFIRE (30 s): a wake that was lost would not be covered by a refire.
    for _ in 0..1000 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        left = n.journal.reminders("counter").unwrap().len();
        if left == 0 {
            break;
        }
    }
    assert_eq!(left, 0, "every reminder rang");
    for i in (0..N).step_by(97) {
        let rang = n
            .counters
            .ask(&id(&format!("w{i}")), Cmd::Get)
            .await
            .unwrap()
            .1;
        assert_eq!(rang, 1, "w{i} rang exactly once");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        n.counters.stats().active() < 50,
        "woken entities were let go again: {} active",
        n.counters.stats().active()
    );
    stop(n).await;
}

// The journal's reminders in time order, its index sets, and the move of older data dirs.

fn submit_ok(j: &SledJournal, a: Append) {
    j.submit(a, Box::new(|r| r.unwrap()));
}

/// A reminder set to `at`, replacing `was` (as the stream's writer knows it).
fn reminder_at(id: &str, at: Option<i64>, was: Option<i64>) -> Append {
    Append {
        stream: Some(StreamId::new("k", id)),
        reminder: Some(at.map(Timestamp)),
        previous_reminder: was.map(Timestamp),
        ..Append::default()
    }
}

/// Given reminders set, moved and cleared (twice for one stream in one batch), when the due
/// ones are read, then they come earliest first, only up to the time asked, each once.
#[tokio::test]
async fn reminders_are_read_in_time_order_and_move_with_their_stream() {
    let dir = tempfile::tempdir().unwrap();
    let j = SledJournal::open(dir.path(), WriterConfig::default()).unwrap();
    submit_ok(&j, reminder_at("late", Some(300), None));
    submit_ok(&j, reminder_at("early", Some(100), None));
    submit_ok(&j, reminder_at("moved", Some(50), None));
    submit_ok(&j, reminder_at("moved", Some(200), Some(50)));
    submit_ok(&j, reminder_at("gone", Some(10), None));
    submit_ok(&j, reminder_at("gone", None, Some(10)));
    submit_ok(&j, reminder_at("negative", Some(-5), None));
    barrier(j.as_ref()).await.unwrap();
    let due = j.reminders_due("k", Timestamp(200), 10).unwrap();
    let ids: Vec<&str> = due.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["negative", "early", "moved"]);
    assert_eq!(due[2].1, Timestamp(200));
    assert_eq!(j.reminders_due("k", Timestamp(1000), 2).unwrap().len(), 2);
    assert!(
        j.reminders_due("other", Timestamp(1000), 10)
            .unwrap()
            .is_empty()
    );
}

/// Given index entries added and removed, when a set is ranged, then members come in byte
/// order either way, after the cursor, and sets never mix.
#[tokio::test]
async fn index_sets_range_both_ways_from_a_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let j = SledJournal::open(dir.path(), WriterConfig::default()).unwrap();
    let entry = |set: &str, m: &str| (IndexEntry::new(set, m.as_bytes().to_vec()), true);
    let mut a = Append {
        stream: Some(StreamId::new("k", "a")),
        index: vec![
            entry("s", "b"),
            entry("s", "a"),
            entry("s", "c"),
            entry("s2", "z"),
        ],
        ..Append::default()
    };
    submit_ok(&j, a);
    a = Append {
        stream: Some(StreamId::new("k", "a")),
        index: vec![(IndexEntry::new("s", b"c".to_vec()), false)],
        ..Append::default()
    };
    submit_ok(&j, a);
    barrier(j.as_ref()).await.unwrap();
    let range = |d, after: Option<&[u8]>| j.index_range("s", d, after, 10).unwrap();
    assert_eq!(range(Direction::Ascending, None), [b"a", b"b"]);
    assert_eq!(range(Direction::Descending, None), [b"b", b"a"]);
    assert_eq!(range(Direction::Descending, Some(b"b")), [b"a"]);
    assert_eq!(range(Direction::Ascending, Some(b"a")), [b"b"]);
    assert!(range(Direction::Ascending, Some(b"b")).is_empty());
    assert_eq!(j.index_len("s").unwrap(), 2);
    assert_eq!(j.index_len("s2").unwrap(), 1);
}

/// Given a data dir in the tree-per-type layout, when it is opened, then its events,
/// snapshots, views and reminders read as before, and the old trees are gone.
#[tokio::test]
async fn a_tree_per_type_data_dir_is_moved_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let stream = StreamId::new("k", "a");
    {
        let db = sled::open(dir.path()).unwrap();
        let t = |name: &str| db.open_tree(name).unwrap();
        t("journal").insert(stream.event_key(1), b"e1").unwrap();
        t("journal").insert(stream.event_key(2), b"e2").unwrap();
        let snapshot = [1u64.to_be_bytes().as_slice(), b"s1"].concat();
        t("snapshots").insert(stream.prefix(), snapshot).unwrap();
        t("views").insert(stream.prefix(), b"v").unwrap();
        t("reminders")
            .insert(stream.prefix(), &77i64.to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    let j = SledJournal::open(dir.path(), WriterConfig::default()).unwrap();
    let r = j.load(&stream).unwrap();
    assert_eq!(r.snapshot, Some((1, b"s1".to_vec())));
    assert_eq!(r.events, vec![(2, b"e2".to_vec())]);
    assert_eq!(j.view(&stream).unwrap(), Some(b"v".to_vec()));
    assert_eq!(
        j.reminders_due("k", Timestamp(100), 10).unwrap(),
        vec![("a".to_string(), Timestamp(77))]
    );
    let names = j.db().tree_names();
    assert!(!names.iter().any(|n| n.as_ref() == b"journal"));
}
