//! The entity runtime against a real sled journal: activation, recovery, failure isolation,
//! passivation, deadlines and reminders. Uses a small `Counter` entity that panics on `Boom`.

use emporium::actors::{AskError, Entities, Entity, Runtime, RuntimeConfig};
use emporium::domain::ids::SkuId;
use emporium::domain::time::{ManualClock, Timestamp};
use emporium::persistence::Journal;
use emporium::persistence::sled_journal::{SledJournal, WriterConfig};
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
    assert_eq!(inspected.snapshot_seq, 1, "passivation snapshotted");
    assert_eq!(n.counters.ask(&id("a"), Cmd::Add(1)).await.unwrap(), (4, 0));
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
    // the entity from its reminder without anybody asking for it. (An alarm due at once could
    // ring, and clear its reminder, before the check below: its timer waits 1 ms.)
    n.counters.ask(&id("b"), Cmd::Alarm(60_000)).await.unwrap();
    assert_eq!(n.journal.reminders("counter").unwrap().len(), 1);
    crash(n).await;
    let n = node(dir.path(), RuntimeConfig::default()).await;
    // The wall time before the crash (61 s), then the minute of the alarm.
    n.clock.advance(Duration::from_secs(61 + 60));
    n.counters.wake_reminders();
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
