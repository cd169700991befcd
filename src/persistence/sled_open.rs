//! What a sled database was made with (sled's `conf`), and opening one whose file lock may
//! still be held for a moment: shared by the journal, `admin usage` and `admin compact`.

use crate::persistence::JournalError;
use std::path::Path;
use std::time::{Duration, Instant};

/// How a node's journal opens the database at `path`: made with `compression` (zstd at its
/// fastest level: most of the gain, little of the CPU) and `segment_bytes`; sled's own
/// flusher off, as the journal flushes each group commit itself.
pub(super) fn sled_config(path: &Path, compression: bool, segment_bytes: usize) -> sled::Config {
    sled::Config::new()
        .path(path)
        .flush_every_ms(None)
        .segment_size(segment_bytes)
        .use_compression(compression)
        .compression_factor(1)
}

/// `(compression, segment_bytes)` the existing database at `path` was made with.
///
/// Errors: [`JournalError::Storage`] when there is no database at `path` (none is made: a
/// new one would take the reader's settings, not the node's).
pub(super) fn made_with(path: &Path) -> Result<(bool, usize), JournalError> {
    match (stored_compression(path), stored_segment_bytes(path)) {
        (Some(compression), Some(segment_bytes)) => Ok((compression, segment_bytes)),
        _ => Err(JournalError::Storage(format!(
            "no database under {}",
            path.display()
        ))),
    }
}

/// The existing database at `path`, opened with the settings it was made with (sled refuses
/// others) and its flusher off: for readers of a stopped node's data dir.
///
/// Errors: [`JournalError::Storage`] when there is none, or sled cannot open it.
pub fn open_as_made(path: &Path) -> Result<sled::Db, JournalError> {
    existing_data_dir(path)?;
    let (compression, segment_bytes) = made_with(path)?;
    // Under the data dir's lock, as a node opens: a node starting beside this reader may be
    // writing its snapshot, which must not be taken for an unfinished one.
    let _lock = lock_data_dir(path, DIR_LOCK_PATIENCE)?;
    forget_unfinished_snapshots(path)?;
    sled_config(path, compression, segment_bytes)
        .open()
        .map_err(|e| held_by_a_node(path, e))
}

/// sled's error opening the database at `db`, saying so plainly when a running node holds it
/// (sled's lock): the offline commands need the node stopped.
pub(super) fn held_by_a_node(db: &Path, e: sled::Error) -> JournalError {
    match e {
        e if lock_held(&e) => JournalError::Storage(format!(
            "{} is in use by a running emporium: stop the node first",
            db.display()
        )),
        e => e.into(),
    }
}

/// Whether sled failed to open because another handle holds the database's file lock.
fn lock_held(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(e) if e.to_string().contains("could not acquire lock"))
}

/// How long a node waits for a data dir another process has locked, before it gives up.
pub(super) const DIR_LOCK_PATIENCE: Duration = Duration::from_secs(10);

/// An exclusive `flock` on the directory holding `db` (made if missing), released when the
/// file is dropped; retried for up to `patience`.
/// Refuses a data dir that does not exist, for what reads a stopped node's store (`admin
/// usage`, `admin compact`): a mistyped `--data-dir` must not be made, or a later `admin
/// create-user` would take it for a new node's.
///
/// Errors: [`JournalError::Storage`] naming the path.
pub(super) fn existing_data_dir(db: &Path) -> Result<(), JournalError> {
    let dir = db.parent().unwrap_or(Path::new("."));
    if dir.is_dir() {
        return Ok(());
    }
    Err(JournalError::Storage(format!(
        "no data dir at {}: check --data-dir",
        dir.display()
    )))
}

pub(super) fn lock_data_dir(db: &Path, patience: Duration) -> Result<std::fs::File, JournalError> {
    let dir = db.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let handle = std::fs::File::open(dir)?;
    let give_up = Instant::now() + patience;
    loop {
        match handle.try_lock() {
            Ok(()) => return Ok(handle),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < give_up => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(JournalError::Storage(format!(
                    "{} is locked by another emporium (a node starting, or a compaction)",
                    dir.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
    }
}

/// Removes the snapshot files under `dir` that sled began and never finished, before sled
/// opens the database.
///
/// sled 0.34.7 writes its page-table snapshot to `snap.<lsn>.generating`, syncs it, renames it
/// to `snap.<lsn>` and only then deletes older snapshots (`pagecache/snapshot.rs`,
/// `write_snapshot`). Its reader, though, takes the last `snap.*` name in sort order and skips
/// only an older suffix (`.in___motion`, `Config::get_snapshot_files`), so a `.generating`
/// file left by a crash or a full disk sorts last, reads as corrupt and fails every later
/// start ("Read corrupted data"). Such a file was never renamed, so it is never the only
/// snapshot sled relies on: the finished one before it (or none, and sled scans the log) is
/// what the database was last opened with. A dir that does not exist yet has nothing to
/// remove. Call it only under the data dir's lock ([`lock_data_dir`]): sled writes a
/// `.generating` file while it opens, so a start in another process must not be under way.
///
/// Errors: [`JournalError::Storage`] when the dir cannot be listed or a file removed.
pub(super) fn forget_unfinished_snapshots(dir: &Path) -> Result<(), JournalError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(JournalError::Storage(format!("{}: {e}", dir.display()))),
    };
    for entry in entries {
        let path = entry
            .map_err(|e| JournalError::Storage(format!("{}: {e}", dir.display())))?
            .path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::warn!(file = %path.display(), "removing a snapshot sled never finished");
            std::fs::remove_file(&path)
                .map_err(|e| JournalError::Storage(format!("{}: {e}", path.display())))?;
        }
    }
    Ok(())
}

/// Whether the sled database under `dir` was made compressed; `None` for a new database.
pub(super) fn stored_compression(dir: &Path) -> Option<bool> {
    stored(dir, "use_compression")
}

/// The log segment size the sled database under `dir` was made with; `None` for a new one.
pub(super) fn stored_segment_bytes(dir: &Path) -> Option<usize> {
    stored(dir, "segment_size")
}

/// A setting the sled database under `dir` was made with: sled's `conf` file has a
/// `name: value` line for each (and a binary checksum after the lines). `None` for a new
/// database.
fn stored<T: std::str::FromStr>(dir: &Path, name: &str) -> Option<T> {
    let conf = std::fs::read(dir.join("conf")).ok()?;
    String::from_utf8_lossy(&conf)
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}

/// The stored setting `name`, or `wanted` for a new database. A stored one wins (sled opens
/// a database only with what it was made with); when it differs from a `wanted` that is not
/// the `default` (the operator asked for it), that is a warning.
pub(super) fn kept<T>(dir: &Path, name: &str, wanted: T, default: T) -> T
where
    T: std::str::FromStr + PartialEq + std::fmt::Display,
{
    match stored::<T>(dir, name) {
        Some(stored) => {
            if stored != wanted && wanted != default {
                tracing::warn!(
                    setting = name,
                    kept = %stored,
                    wanted = %wanted,
                    "the data dir keeps the sled setting it was made with"
                );
            }
            stored
        }
        None => wanted,
    }
}

/// How long opening waits for the data dir's file lock.
const LOCK_PATIENCE: Duration = Duration::from_secs(10);

/// Opens the database, waiting up to [`LOCK_PATIENCE`] while its file lock is held: a
/// database closed in this process a moment ago may still be held by one of sled's IO
/// threads (shared by the process, so maybe behind other databases' work), which lets go of
/// its handle only after it has answered the flush that was waiting on it (sled 0.34.7's
/// `threadpool::spawn`; sled's own test builds block on the lock for this reason,
/// `Config::try_lock`). Another process holding the dir still gets the lock error, after the
/// wait.
pub(super) fn open_locked(open: impl Fn() -> sled::Result<sled::Db>) -> sled::Result<sled::Db> {
    let give_up = Instant::now() + LOCK_PATIENCE;
    let mut told = false;
    loop {
        match open() {
            Err(e) if lock_held(&e) && Instant::now() < give_up => {
                if !std::mem::replace(&mut told, true) {
                    tracing::info!(patience = ?LOCK_PATIENCE, "the data dir is locked: waiting");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            opened => return opened,
        }
    }
}

/// `sled::open(path)`, waiting like [`open_locked`] while a database this process closed a
/// moment ago still holds the lock (tests that reopen a store beside the journal).
pub fn open_waiting(path: &Path) -> sled::Result<sled::Db> {
    open_locked(|| sled::open(path))
}
