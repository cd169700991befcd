//! SKU reserve asks/s through the entity runtime on real sled, with many asks in flight: all on
//! one hot key (one actor serialises them; group commit batches their flushes) and spread over
//! many keys (many actors).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use emporium::actors::sku::Sku;
use emporium::actors::{Entities, Runtime, RuntimeConfig};
use emporium::domain::ids::{OrderId, SkuId, UserId};
use emporium::domain::inventory::SkuCommand;
use emporium::domain::time::{SystemClock, Timestamp};
use emporium::persistence::Journal;
use emporium::persistence::sled_journal::{SledJournal, WriterConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const IN_FLIGHT: u64 = 2048;

fn reserve(order: u64) -> SkuCommand {
    SkuCommand::Reserve {
        order_id: OrderId::parse(format!("o{order}")).unwrap(),
        user_id: UserId::parse("u").unwrap(),
        qty: 1,
        expires_at: Timestamp(i64::MAX / 2),
    }
}

fn bench_reserve(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("sku_reserve");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(IN_FLIGHT));
    for (name, keys) in [("one_hot_key", 1u64), ("many_keys", 1024)] {
        let dir = tempfile::tempdir().unwrap();
        let journal = SledJournal::open(dir.path(), WriterConfig::default()).unwrap();
        let skus = rt.block_on(async {
            let runtime = Runtime {
                journal: journal.clone(),
                clock: Arc::new(SystemClock),
                config: RuntimeConfig::default(),
                shutdown: CancellationToken::new(),
                remote: None,
            };
            let skus = Entities::<Sku>::start(runtime).await.unwrap();
            for k in 0..keys {
                let id = SkuId::parse(format!("sku{k}")).unwrap();
                let set = SkuCommand::SetStock {
                    available: 100_000_000,
                };
                skus.ask(&id, set).await.unwrap();
            }
            skus
        });
        let ids: Arc<Vec<SkuId>> = Arc::new(
            (0..keys)
                .map(|k| SkuId::parse(format!("sku{k}")).unwrap())
                .collect(),
        );
        let next = Arc::new(AtomicU64::new(0));
        group.bench_with_input(BenchmarkId::new(name, keys), &keys, |b, _| {
            b.to_async(&rt).iter_custom(|iters| {
                let (skus, ids, next) = (skus.clone(), ids.clone(), next.clone());
                async move {
                    let started = Instant::now();
                    for _ in 0..iters {
                        let mut set = tokio::task::JoinSet::new();
                        for i in 0..IN_FLIGHT {
                            let (skus, ids) = (skus.clone(), ids.clone());
                            let order = next.fetch_add(1, Ordering::Relaxed);
                            set.spawn(async move {
                                let id = &ids[(i as usize) % ids.len()];
                                skus.ask(id, reserve(order)).await.unwrap();
                            });
                        }
                        while set.join_next().await.is_some() {}
                    }
                    started.elapsed()
                }
            })
        });
        rt.block_on(skus.shutdown());
        journal.close();
    }
    group.finish();
}

criterion_group!(benches, bench_reserve);
criterion_main!(benches);
