//! Journal throughput on real sled: events/s when many single-event appends are in flight, by
//! the writer's batch limit (1 = one flush per event, the no-group-commit baseline), and the
//! latency-bound rate of one writer waiting for each flush.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use emporium::persistence::sled_journal::{SledJournal, WriterConfig};
use emporium::persistence::{Append, Journal, StreamId};
use std::sync::Arc;
use std::time::{Duration, Instant};

const IN_FLIGHT: u64 = 4096;

fn append(stream: &StreamId, seq: u64) -> Append {
    Append {
        stream: Some(stream.clone()),
        events: vec![(seq, vec![0u8; 96])],
        ..Append::default()
    }
}

/// Submits `n` appends at once (one per stream) and waits for every completion.
fn flood(journal: &Arc<SledJournal>, streams: &[StreamId], n: u64, seq: u64) {
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..n {
        let tx = tx.clone();
        let stream = &streams[(i as usize) % streams.len()];
        journal.submit(
            append(stream, seq * n + i + 1),
            Box::new(move |r| drop(tx.send(r))),
        );
    }
    for _ in 0..n {
        rx.recv().unwrap().unwrap();
    }
}

fn group_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("journal_group_commit");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(IN_FLIGHT));
    for batch in [1usize, 16, 256, 1024] {
        let dir = tempfile::tempdir().unwrap();
        let config = WriterConfig {
            max_batch_events: batch,
            ..WriterConfig::default()
        };
        let journal = SledJournal::open(dir.path(), config).unwrap();
        let streams: Vec<_> = (0..IN_FLIGHT)
            .map(|i| StreamId::new("bench", format!("s{i}")))
            .collect();
        let mut round = 0u64;
        group.bench_with_input(BenchmarkId::new("batch", batch), &batch, |b, _| {
            b.iter_custom(|iters| {
                let started = Instant::now();
                for _ in 0..iters {
                    round += 1;
                    flood(&journal, &streams, IN_FLIGHT, round);
                }
                started.elapsed()
            })
        });
        journal.close();
    }
    group.finish();
}

fn one_writer(c: &mut Criterion) {
    let mut group = c.benchmark_group("journal_one_writer");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(1));
    let dir = tempfile::tempdir().unwrap();
    let journal = SledJournal::open(dir.path(), WriterConfig::default()).unwrap();
    let stream = StreamId::new("bench", "one");
    let mut seq = 0u64;
    group.bench_function("append_and_wait_for_flush", |b| {
        b.iter(|| {
            seq += 1;
            let (tx, rx) = std::sync::mpsc::channel();
            journal.submit(append(&stream, seq), Box::new(move |r| drop(tx.send(r))));
            rx.recv().unwrap().unwrap();
        })
    });
    journal.close();
    group.finish();
}

criterion_group!(benches, group_commit, one_writer);
criterion_main!(benches);
