//! The cluster's storage against a real `redis-server` (started per test on a free port,
//! `appendfsync always`): the Redis journal behind the same `Journal` trait as sled, shard
//! leases with epochs, the fence that keeps a node that lost its lease from acknowledging
//! anything, the entity runtime running unchanged on Redis, and acknowledged writes surviving a
//! SIGKILL of Redis.

#[allow(dead_code)] // the cluster tests use only the Redis part of the helpers
mod common;

use common::RedisServer;
use emporium::actors::sku::Sku;
use emporium::actors::{Entities, Runtime, RuntimeConfig};
use emporium::cluster::handover::Handovers;
use emporium::cluster::keeper::Keeper;
use emporium::cluster::leases::Leases;
use emporium::cluster::routing::Routing;
use emporium::cluster::shards::Shard;
use emporium::domain::ids::{OrderId, SkuId, UserId};
use emporium::domain::inventory::SkuCommand;
use emporium::domain::time::{Clock, SystemClock, Timestamp};
use emporium::persistence::redis_journal::{Fences, RedisJournal};
use emporium::persistence::{Append, Journal, JournalError, StreamId};
use redis::aio::ConnectionManager;
use std::sync::Arc;
use std::time::Duration;

const SHARDS: u32 = 8;

async fn connect(redis: &RedisServer) -> ConnectionManager {
    let client = redis::Client::open(redis.url()).unwrap();
    ConnectionManager::new(client).await.unwrap()
}

/// A journal for `node` holding every shard's lease (TTL `ttl`).
async fn node_journal(
    conn: &ConnectionManager,
    node: &str,
    ttl: Duration,
) -> (Arc<RedisJournal>, Leases) {
    let leases = Leases::new(conn.clone(), node, ttl);
    let fences = Arc::new(Fences::default());
    for s in 0..SHARDS {
        let fence = leases
            .acquire(Shard(s))
            .await
            .unwrap()
            .expect("a free lease");
        fences.set(Shard(s), fence);
    }
    (RedisJournal::new(conn.clone(), SHARDS, fences), leases)
}

async fn submit(journal: &dyn Journal, append: Append) -> Result<(), JournalError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    journal.submit(append, Box::new(move |r| drop(tx.send(r))));
    rx.await.unwrap()
}

fn events(stream: &StreamId, seqs: std::ops::RangeInclusive<u64>) -> Append {
    Append {
        stream: Some(stream.clone()),
        events: seqs
            .map(|s| (s, format!("event {s}").into_bytes()))
            .collect(),
        ..Append::default()
    }
}

/// Runs a blocking journal read off the async workers, as the runtime does.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_contract_holds_on_redis() {
    let redis = RedisServer::start();
    let conn = connect(&redis).await;
    let (journal, _) = node_journal(&conn, "n1", Duration::from_secs(30)).await;
    let stream = StreamId::new("sku", "tee-red-M");

    let mut first = events(&stream, 1..=3);
    first.view = Some(b"view 3".to_vec());
    first.reminder = Some(Some(Timestamp(1_700_000_000_123)));
    submit(journal.as_ref(), first).await.unwrap();
    let mut second = events(&stream, 4..=4);
    second.snapshot = Some((4, b"state 4".to_vec()));
    submit(journal.as_ref(), second).await.unwrap();
    submit(journal.as_ref(), events(&stream, 5..=6))
        .await
        .unwrap();
    let mut third = events(&stream, 7..=7);
    third.snapshot = Some((7, b"state 7".to_vec()));
    third.trim = Some(4);
    third.reminder = Some(None);
    submit(journal.as_ref(), third).await.unwrap();

    let (j, s) = (journal.clone(), stream.clone());
    let recovered = blocking(move || j.load(&s).unwrap()).await;
    assert_eq!(recovered.snapshot, Some((7, b"state 7".to_vec())));
    assert!(
        recovered.events.is_empty(),
        "every event is behind the snapshot"
    );
    let j = journal.clone();
    let (views, reminders) =
        blocking(move || (j.views("sku").unwrap(), j.reminders("sku").unwrap())).await;
    assert_eq!(views, vec![("tee-red-M".to_string(), b"view 3".to_vec())]);
    assert!(reminders.is_empty(), "the reminder was cleared");

    // The trim removed the events the earlier snapshot covered; 5..7 stay until the next one.
    let shard = Shard::of("sku", "tee-red-M", SHARDS);
    let fields: Vec<String> = redis::cmd("HKEYS")
        .arg(format!("ev:{}:sku:tee-red-M", shard.tag()))
        .query_async(&mut conn.clone())
        .await
        .unwrap();
    let seqs: Vec<u64> = fields
        .iter()
        .map(|f| f.parse().unwrap())
        .collect::<Vec<_>>();
    let mut seqs = seqs;
    seqs.sort();
    assert_eq!(seqs, vec![5, 6, 7]);

    // A stream with events after its snapshot reads back in order; unknown streams are absent.
    let other = StreamId::new("order", "o1");
    let mut a = events(&other, 1..=2);
    a.reminder = Some(Some(Timestamp(42)));
    submit(journal.as_ref(), a).await.unwrap();
    submit(journal.as_ref(), events(&other, 3..=12))
        .await
        .unwrap();
    let j = journal.clone();
    let (recovered, exists, missing, reminders) = blocking(move || {
        (
            j.load(&other).unwrap(),
            j.exists(&other).unwrap(),
            j.exists(&StreamId::new("order", "nobody")).unwrap(),
            j.reminders("order").unwrap(),
        )
    })
    .await;
    let seqs: Vec<u64> = recovered.events.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (1..=12).collect::<Vec<_>>());
    assert_eq!(recovered.events[9].1, b"event 10".to_vec());
    assert!(exists && !missing);
    assert_eq!(reminders, vec![("o1".to_string(), Timestamp(42))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_lost_its_lease_acknowledges_nothing() {
    let redis = RedisServer::start();
    let conn = connect(&redis).await;
    let ttl = Duration::from_millis(300);
    let (old, old_leases) = node_journal(&conn, "n1", ttl).await;
    let stream = StreamId::new("sku", "hot");
    let shard = Shard::of("sku", "hot", SHARDS);
    submit(old.as_ref(), events(&stream, 1..=1)).await.unwrap();
    let first = old_leases.holder(shard).await.unwrap().unwrap();

    // n1 stops renewing (a pause, a partition); its lease expires and n2 takes the shard.
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let new_leases = Leases::new(conn.clone(), "n2", ttl);
    let fence = new_leases
        .acquire(shard)
        .await
        .unwrap()
        .expect("the lease expired");
    assert_eq!(fence.epoch, first.epoch + 1, "a new owner, a new epoch");
    assert_eq!(
        old_leases.acquire(shard).await.unwrap(),
        None,
        "n1 cannot take it back while n2 holds it"
    );

    // n1 wakes up and writes under its old epoch: refused, nothing stored.
    let late = submit(old.as_ref(), events(&stream, 2..=2)).await;
    assert!(
        matches!(late, Err(JournalError::NotOwner { .. })),
        "{late:?}"
    );
    let new_fences = Arc::new(Fences::default());
    new_fences.set(shard, fence);
    let new = RedisJournal::new(conn.clone(), SHARDS, new_fences);
    let (j, s) = (new.clone(), stream.clone());
    let seqs: Vec<u64> = blocking(move || j.load(&s).unwrap())
        .await
        .events
        .iter()
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(seqs, vec![1], "the refused append left nothing behind");
    // The new owner writes; the old one keeps being refused, also after the refusal (its
    // seq 3 follows the seq 2 it failed to write).
    submit(new.as_ref(), events(&stream, 2..=2)).await.unwrap();
    let again = submit(old.as_ref(), events(&stream, 3..=3)).await;
    assert!(
        matches!(
            again,
            Err(JournalError::NotOwner { .. } | JournalError::AfterFailure(_))
        ),
        "{again:?}"
    );
}

fn reserve(order: &str) -> SkuCommand {
    SkuCommand::Reserve {
        order_id: OrderId::parse(order).unwrap(),
        user_id: UserId::parse("u1").unwrap(),
        qty: 1,
        expires_at: SystemClock.now().plus(Duration::from_secs(600)),
    }
}

fn runtime(journal: Arc<RedisJournal>) -> Runtime {
    Runtime {
        journal,
        clock: Arc::new(SystemClock),
        config: RuntimeConfig::default(),
        shutdown: tokio_util::sync::CancellationToken::new(),
        remote: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entities_run_unchanged_on_redis_and_recover_from_it() {
    let redis = RedisServer::start();
    let conn = connect(&redis).await;
    let (journal, _) = node_journal(&conn, "n1", Duration::from_secs(30)).await;
    let skus = Entities::<Sku>::start(runtime(journal.clone()))
        .await
        .unwrap();
    let id = SkuId::parse("tee").unwrap();
    skus.ask(&id, SkuCommand::SetStock { available: 10 })
        .await
        .unwrap();
    let mut set = tokio::task::JoinSet::new();
    for n in 0..6 {
        let (skus, id) = (skus.clone(), id.clone());
        set.spawn(async move { skus.ask(&id, reserve(&format!("o{n}"))).await });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap().unwrap();
    }
    skus.shutdown().await; // a snapshot of every active entity

    // Another node's runtime (another journal instance) finds the same SKU.
    let journal = RedisJournal::new(conn.clone(), SHARDS, journal.fences().clone());
    let skus = Entities::<Sku>::start(runtime(journal)).await.unwrap();
    let levels = skus.ask(&id, SkuCommand::Get).await.unwrap();
    assert_eq!((levels.available, levels.reserved), (4, 6));
    let view = skus
        .view(&id)
        .expect("the durable view was loaded at start");
    assert_eq!((view.available, view.reserved), (4, 6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_sigkill_of_redis() {
    let mut redis = RedisServer::start();
    let conn = connect(&redis).await;
    let (journal, _) = node_journal(&conn, "n1", Duration::from_secs(60)).await;
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..16 {
        let (journal, acknowledged) = (journal.clone(), acknowledged.clone());
        writers.spawn(async move {
            for seq in 1..=400u64 {
                let stream = StreamId::new("order", format!("o{w}"));
                match submit(journal.as_ref(), events(&stream, seq..=seq)).await {
                    Ok(()) => acknowledged.lock().unwrap().push((w, seq)),
                    Err(_) => return,
                }
            }
        });
    }
    // Kill Redis while the writers write.
    while acknowledged.lock().unwrap().len() < 1_000 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    redis.kill_and_restart();
    while writers.join_next().await.is_some() {}
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 1_000);

    let conn = connect(&redis).await;
    let journal = RedisJournal::new(conn, SHARDS, journal.fences().clone());
    let mut missing: Vec<(i32, u64)> = Vec::new();
    for w in 0..16 {
        let j = journal.clone();
        let stream = StreamId::new("order", format!("o{w}"));
        let stored = loop {
            let (j, s) = (j.clone(), stream.clone());
            match blocking(move || j.load(&s)).await {
                Ok(r) => break r,
                // Redis answers LOADING while it reads its append-only file back.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let seqs: std::collections::HashSet<u64> = stored.events.iter().map(|(s, _)| *s).collect();
        missing.extend(
            acknowledged
                .iter()
                .filter(|(writer, seq)| *writer == w && !seqs.contains(seq)),
        );
    }
    assert!(missing.is_empty(), "acknowledged and lost: {missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entity_loaded_in_an_earlier_term_writes_nothing_and_reloads() {
    let redis = RedisServer::start();
    let conn = connect(&redis).await;
    let ttl = Duration::from_millis(300);
    let (journal, leases) = node_journal(&conn, "n1", ttl).await;
    let skus = Entities::<Sku>::start(runtime(journal.clone()))
        .await
        .unwrap();
    let id = SkuId::parse("tee").unwrap();
    let shard = Shard::of("sku", "tee", SHARDS);
    skus.ask(&id, SkuCommand::SetStock { available: 5 })
        .await
        .unwrap();

    // The lease lapses, n2 takes the shard and sells a unit, then n1 gets the shard back.
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let (other, other_leases) = node_journal(&conn, "n2", ttl).await;
    let other_skus = Entities::<Sku>::start(runtime(other.clone()))
        .await
        .unwrap();
    other_skus.ask(&id, reserve("o-n2")).await.unwrap();
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let fence = leases.acquire(shard).await.unwrap().expect("free again");
    assert!(fence.epoch >= 3, "a third term: {fence:?}");
    journal.fences().set(shard, fence);
    drop(other_leases);

    // n1's actor still holds the state of its first term (5 available): its write is refused.
    let refused = skus.ask(&id, reserve("o-n1")).await;
    assert!(refused.is_err(), "{refused:?}");
    // The next ask reloads under the new term and sees n2's sale.
    let levels = skus.ask(&id, reserve("o-n1")).await.unwrap();
    assert_eq!((levels.available, levels.reserved), (3, 2));
}

fn keeper(conn: &ConnectionManager, node: &str, ttl: Duration) -> (Arc<Fences>, Keeper) {
    let fences = Arc::new(Fences::default());
    let leases = Leases::new(conn.clone(), node, ttl);
    let keeper = Keeper {
        handovers: Handovers::new(leases.clone(), fences.clone(), SHARDS, Arc::default()),
        leases,
        fences: fences.clone(),
        nodes: vec!["n1".into(), "n2".into()],
        http: format!("http://{node}"),
        shards: SHARDS,
        taken: Arc::default(),
        routing: Arc::new(Routing::new(SHARDS)),
        wake: Arc::default(),
        cluster_id: Default::default(),
    };
    (fences, keeper)
}

/// Polls until `check` holds (5 s at most).
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !check() {
        assert!(started.elapsed() < Duration::from_secs(5), "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepers_share_the_shards_and_take_over_a_dead_node_s() {
    let redis = RedisServer::start();
    let conn = connect(&redis).await;
    let ttl = Duration::from_millis(600);
    let (f1, k1) = keeper(&conn, "n1", ttl);
    let (f2, k2) = keeper(&conn, "n2", ttl);
    let (stop1, stop2) = (
        tokio_util::sync::CancellationToken::new(),
        tokio_util::sync::CancellationToken::new(),
    );
    tokio::spawn(k1.run(stop1.clone()));
    let n2 = tokio::spawn(k2.run(stop2.clone()));

    // Each shard ends up with exactly its preferred node, and only there.
    let both: Vec<String> = vec!["n1".into(), "n2".into()];
    let settled = || {
        (0..SHARDS).all(|s| {
            let (a, b) = (f1.get(Shard(s)).is_some(), f2.get(Shard(s)).is_some());
            let want_n1 = Shard(s).preferred(&both).map(String::as_str) == Some("n1");
            a == want_n1 && b != want_n1
        })
    };
    eventually("the shards split by preference", settled).await;
    assert!(!f1.shards().is_empty() && !f2.shards().is_empty());

    // n2 stops (a graceful stop gives its leases up): n1 takes every shard.
    stop2.cancel();
    n2.await.unwrap();
    eventually("n1 holds every shard", || {
        (0..SHARDS).all(|s| f1.get(Shard(s)).is_some())
    })
    .await;
    stop1.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_gracefully_has_its_shards_taken_before_its_membership_would_expire() {
    let redis = RedisServer::start();
    let conn = connect(&redis).await;
    // A TTL long enough that a membership left to expire (renewed every 2 s, kept 6 s) is
    // told from a node that said it left (the other's next round, 2 s at most)
    let ttl = Duration::from_secs(6);
    let (f1, k1) = keeper(&conn, "n1", ttl);
    let (f2, k2) = keeper(&conn, "n2", ttl);
    // Given n2 holding every shard, and n1 joining
    let stop2 = tokio_util::sync::CancellationToken::new();
    let n2 = tokio::spawn(k2.run(stop2.clone()));
    eventually("n2 holds every shard", || {
        (0..SHARDS).all(|s| f2.get(Shard(s)).is_some())
    })
    .await;
    let stop1 = tokio_util::sync::CancellationToken::new();
    tokio::spawn(k1.run(stop1.clone()));
    // When n2 stops gracefully
    stop2.cancel();
    n2.await.unwrap();
    let stopped = std::time::Instant::now();
    // Then n1 holds every shard by its next round, not once n2's membership has expired
    eventually("n1 holds every shard", || {
        (0..SHARDS).all(|s| f1.get(Shard(s)).is_some())
    })
    .await;
    let took = stopped.elapsed();
    assert!(took < Duration::from_millis(3500), "taken after {took:?}");
    stop1.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_node_s_shards_are_taken_after_their_lease_expires() {
    let redis = RedisServer::start();
    let conn = connect(&redis).await;
    let ttl = Duration::from_millis(600);
    let (f2, k2) = keeper(&conn, "n2", ttl);
    // n2 takes every shard once, then goes silent (no renewal, no release: a crash).
    let mut free = std::collections::HashMap::new();
    k2.round(&mut free).await.unwrap();
    tokio::time::sleep(ttl).await;
    k2.round(&mut free).await.unwrap();
    assert_eq!(
        f2.shards().len(),
        SHARDS as usize,
        "orphans taken after the grace"
    );
    let taken_at = std::time::Instant::now();
    let (f1, k1) = keeper(&conn, "n1", ttl);
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(k1.run(stop.clone()));
    eventually("n1 holds every shard", || {
        (0..SHARDS).all(|s| f1.get(Shard(s)).is_some())
    })
    .await;
    assert!(
        taken_at.elapsed() >= ttl / 2,
        "not before the leases could expire"
    );
    // n2's fences lapse locally too: it stops writing without hearing from Redis.
    eventually("n2's fences lapsed", || {
        (0..SHARDS).all(|s| f2.get(Shard(s)).is_none())
    })
    .await;
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_left_without_a_taker_is_withdrawn_and_the_node_serves_every_shard() {
    let redis = RedisServer::start();
    let conn = connect(&redis).await;
    let ttl = Duration::from_millis(600);
    let (f1, k1) = keeper(&conn, "n1", ttl);
    let n1_process = k1.leases.holder_id().to_owned();
    let leases = k1.leases.clone();
    let stop1 = tokio_util::sync::CancellationToken::new();
    tokio::spawn(k1.run(stop1.clone()));
    let holds_all = || (0..SHARDS).all(|s| f1.get(Shard(s)).is_some());
    let drain_left = || async {
        let leases = leases.clone();
        leases.drains(&["n1".into()]).await.unwrap()[0].clone()
    };
    for round in ["killed right after the drain", "killed once n1 was drained"] {
        let (f2, k2) = keeper(&conn, "n2", ttl);
        let n2 = tokio::spawn(k2.run(tokio_util::sync::CancellationToken::new()));
        eventually("n2 holds its share", || !f2.shards().is_empty()).await;
        leases.request_drain("n1", &n1_process).await.unwrap();
        if round == "killed once n1 was drained" {
            eventually("n1 drained", || f1.shards().is_empty()).await;
        }
        // Given n2 killed (no release: its membership and leases live on for a TTL)
        n2.abort();
        // Then n1 withdraws its drain once n2 is down, and takes every shard
        let started = std::time::Instant::now();
        eventually(round, holds_all).await;
        assert!(
            started.elapsed() >= ttl / 2,
            "{round}: not before n2 expired"
        );
        assert_eq!(drain_left().await, None, "{round}: the drain is withdrawn");
    }
    stop1.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_written_on_one_node_reach_the_read_models_of_another() {
    let redis = RedisServer::start();
    let conn = connect(&redis).await;
    let (journal, _) = node_journal(&conn, "n1", Duration::from_secs(30)).await;
    let writer = Entities::<Sku>::start(runtime(journal)).await.unwrap();
    let id = SkuId::parse("tee").unwrap();
    writer
        .ask(&id, SkuCommand::SetStock { available: 9 })
        .await
        .unwrap();

    // n2 holds no shard: it joins (positions first, then the stored views), then tails.
    let from = emporium::cluster::views::positions(&conn, SHARDS)
        .await
        .unwrap();
    let reader_journal = RedisJournal::new(conn.clone(), SHARDS, Arc::new(Fences::default()));
    let reader = Entities::<Sku>::start(runtime(reader_journal))
        .await
        .unwrap();
    assert_eq!(
        reader.view(&id).map(|v| v.available),
        Some(9),
        "stored views load"
    );
    let heard = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let h = heard.clone();
    reader.on_view(move |_, v| h.store(v.reserved, std::sync::atomic::Ordering::Relaxed));
    let receivers: Vec<Arc<dyn emporium::actors::EntityKind>> = vec![Arc::new(reader.clone())];
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(emporium::cluster::views::tail(
        connect(&redis).await,
        from,
        "n2/test".into(),
        receivers,
        Arc::default(),
        stop.clone(),
    ));

    for n in 0..3 {
        writer.ask(&id, reserve(&format!("o{n}"))).await.unwrap();
    }
    eventually("n2's view shows n1's reservations", || {
        reader
            .view(&id)
            .is_some_and(|v| (v.available, v.reserved) == (6, 3))
    })
    .await;
    assert_eq!(
        heard.load(std::sync::atomic::Ordering::Relaxed),
        3,
        "listeners hear them"
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_acknowledged_after_a_gap_or_over_a_stored_event() {
    let redis = RedisServer::start();
    let conn = connect(&redis).await;
    let (journal, _) = node_journal(&conn, "n1", Duration::from_secs(30)).await;
    let stream = StreamId::new("sku", "gap");
    let shard = Shard::of("sku", "gap", SHARDS);
    let fence = journal.fences().get(shard).unwrap();
    let load = |j: Arc<RedisJournal>, s: StreamId| blocking(move || j.load(&s));
    let term = load(journal.clone(), stream.clone()).await.unwrap().term;
    let with_term = |mut a: Append| {
        a.term = term;
        a
    };
    submit(journal.as_ref(), with_term(events(&stream, 1..=1)))
        .await
        .unwrap();

    // The fence lapses for a moment (Redis unreachable, say): event 2 is refused...
    journal.fences().clear(shard);
    let refused = submit(journal.as_ref(), with_term(events(&stream, 2..=2))).await;
    assert!(refused.is_err());
    // ...and, the fence back under the same term, event 3 too: it would follow a gap.
    journal.fences().set(shard, fence.clone());
    let after_gap = submit(journal.as_ref(), with_term(events(&stream, 3..=3))).await;
    assert!(after_gap.is_err(), "acknowledged after a gap");
    // The entity reads its stream again and goes on from what is stored.
    let reread = load(journal.clone(), stream.clone()).await.unwrap();
    assert_eq!(
        reread.events.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![1]
    );
    submit(journal.as_ref(), with_term(events(&stream, 2..=2)))
        .await
        .unwrap();

    // A second writer of an event already stored is refused, and the stored one stays.
    let mut twice = events(&stream, 2..=2);
    twice.events[0].1 = b"another event 2".to_vec();
    assert!(submit(journal.as_ref(), with_term(twice)).await.is_err());
    let stored = load(journal.clone(), stream.clone()).await.unwrap();
    assert_eq!(stored.events[1].1, b"event 2".to_vec());

    // A fence that is not the lease's (another term took over) reads nothing.
    journal.fences().set(
        shard,
        emporium::cluster::leases::Fence {
            epoch: fence.epoch + 7,
            ..fence
        },
    );
    let r = load(journal.clone(), stream.clone()).await;
    assert!(matches!(r, Err(JournalError::NotOwner { .. })), "{r:?}");
}
