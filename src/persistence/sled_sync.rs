//! Flushes of a sled database that survive the machine, not only the process.
//!
//! sled 0.34.7's `flush` on Linux ends with `sync_file_range` on the log range it wrote
//! (`pagecache/iobuf.rs`): the pages reach the device, so a process crash loses nothing
//! flushed. It syncs neither the log file's metadata (its size, when the log grew) nor the
//! files sled writes for pages too large for its log (`blobs/`: `write_blob` in
//! `pagecache/blob_io.rs` never syncs), and it does not flush a volatile drive cache. An
//! operating-system crash or a power loss could then lose acknowledged writes until the
//! filesystem commits its own journal (ext4: every 5 s). [`SyncedDb::flush`] follows sled's
//! flush with `syncfs(2)` on the database's filesystem, which writes out every dirty file of
//! it (log, blobs, folders), commits the filesystem's journal and flushes the drive's cache.
//!
//! `syncfs` also writes out what other processes left dirty on the same filesystem: a data dir
//! on a filesystem of its own keeps a node's flushes from waiting for them.

use crate::persistence::JournalError;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

/// A sled database whose [`flush`](Self::flush) is durable against a machine crash. It
/// dereferences to the [`sled::Db`] for everything else; its own `flush` and
/// [`flush_async`](Self::flush_async) shadow sled's, so a flush through it cannot skip the sync.
#[derive(Clone)]
pub struct SyncedDb {
    db: sled::Db,
    /// The database's folder, open: `syncfs` takes any descriptor on the filesystem.
    folder: Arc<File>,
}

impl SyncedDb {
    /// `db`, which was opened at `path`. Syncs the folder `path` and its parent once, so the
    /// folder and the files sled made in it on opening are durable entries.
    ///
    /// Errors: `path` cannot be opened or synced.
    pub fn new(db: sled::Db, path: &Path) -> std::io::Result<Self> {
        let folder = File::open(path)?;
        folder.sync_all()?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            File::open(parent)?.sync_all()?;
        }
        Ok(Self {
            db,
            folder: Arc::new(folder),
        })
    }

    /// Opens (or creates) a database at `path` with sled's default settings.
    ///
    /// Errors: [`JournalError::Storage`] when sled cannot open it or `path` cannot be synced.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        Ok(Self::new(sled::open(path)?, path)?)
    }

    /// sled's flush, then the filesystem's sync: everything written to the database before the
    /// call is on stable storage when it returns `Ok` (the bytes sled flushed). Blocks.
    ///
    /// Errors: [`JournalError::Storage`] when sled's flush or the sync fails (a failed sync
    /// may leave some of the writes durable and some not).
    pub fn flush(&self) -> Result<usize, JournalError> {
        let flushed = self.db.flush()?;
        sync_filesystem(&self.folder)
            .map_err(|e| JournalError::Storage(format!("syncing the filesystem: {e}")))?;
        Ok(flushed)
    }

    /// [`Self::flush`] from async code, on tokio's blocking pool. Not sled's own
    /// `flush_async`: that runs on sled's small thread pool, where a handful of flushes waiting
    /// at once starve the pool of the thread that writes the log buffer they wait for (sled
    /// 0.34.7), and the node stops.
    pub async fn flush_async(&self) -> Result<usize, JournalError> {
        let this = self.clone();
        let flushed = tokio::task::spawn_blocking(move || this.flush()).await;
        flushed.map_err(|_| JournalError::Closed)?
    }
}

impl std::ops::Deref for SyncedDb {
    type Target = sled::Db;

    fn deref(&self) -> &sled::Db {
        &self.db
    }
}

/// `syncfs(2)` on the filesystem holding `file`.
#[cfg(target_os = "linux")]
fn sync_filesystem(file: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: syncfs only reads the descriptor, which `file` keeps open for the call.
    match unsafe { libc::syncfs(file.as_raw_fd()) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Elsewhere there is no `syncfs`: sled's own flush is all there is (it ends with `fsync` of
/// the log on other systems), and its blobs stay unsynced.
#[cfg(not(target_os = "linux"))]
fn sync_filesystem(_file: &File) -> std::io::Result<()> {
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// `(dirty, under writeback)` pages of `path` in the page cache: `cachestat(2)` (Linux 6.5,
    /// syscall 451 on every architecture).
    fn unwritten_pages(path: &Path) -> (u64, u64) {
        use std::os::fd::AsRawFd;
        let file = File::open(path).unwrap();
        let range = [0u64; 2]; // from 0, to the end
        let mut stat = [0u64; 5]; // cache, dirty, writeback, evicted, recently evicted
        // SAFETY: cachestat reads `range` and writes `stat`, both live and of the kernel's
        // layout (`struct cachestat_range`, `struct cachestat`: u64 fields).
        let ret =
            unsafe { libc::syscall(451, file.as_raw_fd(), range.as_ptr(), stat.as_mut_ptr(), 0) };
        assert_eq!(ret, 0, "cachestat: {}", std::io::Error::last_os_error());
        (stat[1], stat[2])
    }

    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut found = vec![];
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            match path.is_dir() {
                true => found.extend(files(&path)),
                false => found.push(path),
            }
        }
        found
    }

    /// The database's files with pages not yet on the device, after `value` is written under
    /// a new key and flushed by `flush`.
    fn unwritten_after(value: &[u8], flush: impl Fn(&SyncedDb)) -> Vec<PathBuf> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let db = SyncedDb::open(&path).unwrap();
        db.flush().unwrap();
        db.insert("k", value).unwrap();
        flush(&db);
        let unwritten = files(&path)
            .into_iter()
            .filter(|f| unwritten_pages(f) != (0, 0))
            .collect();
        drop(db);
        assert_eq!(
            sled::open(&path).unwrap().get("k").unwrap().as_deref(),
            Some(value),
            "the record is there on reopening"
        );
        unwritten
    }

    #[test]
    fn a_flush_leaves_no_page_of_the_database_unwritten() {
        // Given a value too large for sled's log, which sled writes to a file of its own
        let value = vec![7u8; 1 << 20];
        // When it is written and flushed by sled alone
        let sled_alone = unwritten_after(&value, |db| {
            db.db.flush().unwrap();
        });
        // Then pages are left dirty (the blob; the gap this type closes)
        assert!(
            !sled_alone.is_empty(),
            "sled's flush left every page written"
        );
        // When it is flushed through SyncedDb
        let synced = unwritten_after(&value, |db| {
            db.flush().unwrap();
        });
        // Then no page of any of the database's files is left to write
        assert_eq!(synced, Vec::<PathBuf>::new());
    }
}
