//! The sled journal's second stage: the writer thread (`sled_writer`) hands each group commit,
//! written and flushed by sled, to this thread, which syncs the filesystem
//! ([`SyncedDb::sync`]) and only then runs the commit's completions, in submission order.
//! Meanwhile the writer writes the next group commit: it never waits for the device, and one
//! sync covers every commit flushed before it, so under load commits that queued up while a
//! sync ran share the next one.

use crate::persistence::sled_sync::SyncedDb;
use crate::persistence::{Completion, JournalError};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SendError, Sender};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// What the writer hands on, in its order.
pub(super) enum Stage {
    /// A group commit's completions with their results so far. `flushed`: sled flushed the
    /// commit, so an `Ok` reaches no one before a sync after it.
    Commit {
        done: Vec<(Completion, Result<(), JournalError>)>,
        flushed: bool,
    },
    /// Every stage before this one is complete: signal, and stop.
    Close(mpsc::SyncSender<()>),
}

/// How long appends may wait on the disk, none of them completing, before the journal
/// reports the disk stuck ([`InFlight::stalled_for`]): a frozen filesystem (`fsfreeze`, a
/// storage volume that stopped answering) makes sled's writes and syncs wait without end.
/// Longer than any sync of a healthy disk under load.
pub(super) const STALL: Duration = Duration::from_secs(10);

/// Appends submitted and not completed yet, and when the journal last made progress on them:
/// a completion, or the first append after it was idle.
#[derive(Default)]
pub(super) struct InFlight {
    count: AtomicUsize,
    /// Milliseconds since [`since_origin`]'s origin at the last progress.
    progress_ms: AtomicU64,
}

/// The monotonic origin of [`InFlight`]'s times.
fn since_origin() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let elapsed = ORIGIN.get_or_init(Instant::now).elapsed();
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}

impl InFlight {
    /// `n` appends submitted.
    pub(super) fn add(&self, n: usize) {
        if self.count.load(Ordering::Acquire) == 0 {
            self.progress_ms.store(since_origin(), Ordering::Release);
        }
        self.count.fetch_add(n, Ordering::AcqRel);
    }

    /// `n` appends completed (durable, or failed).
    pub(super) fn done(&self, n: usize) {
        self.progress_ms.store(since_origin(), Ordering::Release);
        self.count.fetch_sub(n, Ordering::AcqRel);
    }

    pub(super) fn is_idle(&self) -> bool {
        self.count.load(Ordering::Acquire) == 0
    }

    /// How long appends have waited with none completing; `None` when none waits.
    pub(super) fn stalled_for(&self) -> Option<Duration> {
        if self.is_idle() {
            return None;
        }
        let last = self.progress_ms.load(Ordering::Acquire);
        Some(Duration::from_millis(since_origin().saturating_sub(last)))
    }
}

/// Hands `stage` to the sync thread. If it is gone (after a close, or had it died), nothing
/// written from now on would be synced: the store is stopped (`db`) and the stage's
/// completions fail rather than wait.
pub(super) fn hand_on(to: &Sender<Stage>, stage: Stage, db: &SyncedDb, in_flight: &InFlight) {
    if let Err(SendError(stage)) = to.send(stage) {
        db.stop("the journal's sync thread is gone");
        match stage {
            Stage::Commit { done, .. } => complete(done, &Err(JournalError::Closed), in_flight),
            Stage::Close(ack) => {
                let _ = ack.send(());
            }
        }
    }
}

/// The sync thread: takes every stage waiting, syncs once if any of them was flushed, then
/// completes them in order.
pub(super) fn run_syncer(db: SyncedDb, rx: Receiver<Stage>, in_flight: Arc<InFlight>) {
    while let Ok(first) = rx.recv() {
        let mut stages = vec![first];
        stages.extend(rx.try_iter());
        let flushed = stages
            .iter()
            .any(|s| matches!(s, Stage::Commit { flushed: true, .. }));
        // A group of barriers alone needs no sync, but after a failed one it acknowledges
        // nothing either: the writer may have let them through before the failure.
        let started = std::time::Instant::now();
        let synced = match flushed {
            true => db.sync().inspect(|()| {
                metrics::histogram!("emporium_journal_sync_seconds")
                    .record(started.elapsed().as_secs_f64());
            }),
            false => db
                .failure()
                .map_or(Ok(()), |f| Err(JournalError::Storage(f.to_owned()))),
        };
        for stage in stages {
            match stage {
                Stage::Commit { done, .. } => complete(done, &synced, &in_flight),
                Stage::Close(ack) => {
                    let _ = ack.send(());
                    return;
                }
            }
        }
    }
}

/// Runs a commit's completions with their results, each `Ok` replaced by `synced`.
fn complete(
    done: Vec<(Completion, Result<(), JournalError>)>,
    synced: &Result<(), JournalError>,
    in_flight: &InFlight,
) {
    // Durable (or failed) from here on: not in flight while the completions run.
    in_flight.done(done.len());
    for (completion, result) in done {
        // A completion is a caller's code (view listeners among them): one that panics must
        // not take the thread, and every later reply, with it.
        let run = std::panic::AssertUnwindSafe(|| completion(result.and_then(|()| synced.clone())));
        if std::panic::catch_unwind(run).is_err() {
            tracing::error!("a journal completion panicked; the journal goes on");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    type Seen = Arc<Mutex<Vec<(u32, Result<(), JournalError>)>>>;

    /// A completion that records its number and result.
    fn noting(seen: &Seen, n: u32) -> Completion {
        let seen = seen.clone();
        Box::new(move |r| seen.lock().unwrap().push((n, r)))
    }

    /// Runs the sync thread over `stages` to the end; what each completion got, in order.
    fn synced(db: SyncedDb, stages: impl FnOnce(&Seen) -> Vec<Stage>) -> Seen {
        let seen: Seen = Arc::default();
        let in_flight = Arc::new(InFlight::default());
        let (tx, rx) = mpsc::channel();
        let (ack, acked) = mpsc::sync_channel(1);
        for stage in stages(&seen) {
            if let Stage::Commit { done, .. } = &stage {
                in_flight.add(done.len());
            }
            tx.send(stage).unwrap();
        }
        tx.send(Stage::Close(ack)).unwrap();
        run_syncer(db, rx, in_flight.clone());
        acked.recv().unwrap();
        assert!(in_flight.is_idle(), "every completion ran");
        seen
    }

    #[test]
    fn commits_complete_in_order_with_their_own_failures_kept() {
        // Given a healthy store and two commits, the first with a write that failed
        let dir = tempfile::tempdir().unwrap();
        let db = SyncedDb::open(dir.path()).unwrap();
        let refused = JournalError::Storage("refused".into());
        // When the sync thread takes them
        let seen = synced(db, |seen| {
            vec![
                Stage::Commit {
                    done: vec![
                        (noting(seen, 1), Ok(())),
                        (noting(seen, 2), Err(refused.clone())),
                    ],
                    flushed: true,
                },
                Stage::Commit {
                    done: vec![(noting(seen, 3), Ok(()))],
                    flushed: false,
                },
            ]
        });
        // Then each completion runs once, in order, with its own result
        let seen = seen.lock().unwrap();
        let got: Vec<(u32, bool)> = seen.iter().map(|(n, r)| (*n, r.is_ok())).collect();
        assert_eq!(got, [(1, true), (2, false), (3, true)]);
    }

    #[test]
    fn after_a_failed_sync_nothing_is_acknowledged_not_even_a_barrier() {
        // Given a store whose sync failed
        let dir = tempfile::tempdir().unwrap();
        let db = SyncedDb::open(dir.path()).unwrap();
        db.stop("EIO");
        // When a commit of barriers alone (nothing to sync) reaches the sync thread
        let seen = synced(db, |seen| {
            vec![Stage::Commit {
                done: vec![(noting(seen, 1), Ok(()))],
                flushed: false,
            }]
        });
        // Then it fails with the store's failure
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        for (n, result) in seen.iter() {
            assert!(
                matches!(result, Err(JournalError::Storage(e)) if e == "EIO"),
                "{n}: {result:?}"
            );
        }
    }
}
