//! Flushes of a sled database that survive the machine, not only the process, and what
//! happens when one fails.
//!
//! sled 0.34.7's `flush` on Linux ends with `sync_file_range` on the log range it wrote
//! (`pagecache/iobuf.rs`): the pages reach the device, so a process crash loses nothing
//! flushed. It commits neither the log file's metadata (its size and block allocations, when
//! the log grew) nor the files sled writes for pages too large for its log (`blobs/`:
//! `write_blob` in `pagecache/blob_io.rs` never syncs), and it does not flush a volatile drive
//! cache. An operating-system crash or a power loss could then lose acknowledged writes: the
//! log's growth until the filesystem commits its journal (ext4: every 5 s), a blob until the
//! kernel writes it back (about 30 s). [`SyncedDb::flush`] follows sled's flush with
//! `syncfs(2)` on the database's filesystem, which writes out every dirty file of it (log,
//! blobs, folders) and commits the filesystem's journal; ext4 and btrfs then flush the drive's
//! cache too (unless mounted `nobarrier`).
//!
//! A failed flush stops the database for writes: every later flush fails without trying.
//! Linux reports a writeback error to one `syncfs` caller per open file only once, and
//! marks the pages it could not write clean; a flush after it would succeed while the earlier
//! writes are lost, and a retry would be acknowledged on top of them (PostgreSQL stops on a
//! failed fsync for the same reason). The node then answers writes `503` and `/readyz` `503`
//! until it is restarted and reads what its store really holds. Kernels before 5.8 report no
//! writeback error to `syncfs` at all.
//!
//! `syncfs` also writes out what other processes left dirty on the same filesystem: a data dir
//! on a filesystem of its own keeps a node's flushes from waiting for them.

use crate::persistence::JournalError;
use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

/// A sled database whose [`flush`](Self::flush) is durable against a machine crash on Linux
/// (elsewhere it is sled's flush alone). It hands out trees, never the `sled::Db` itself, so
/// every flush of the database is followed by the sync: by [`Self::flush`] itself, or, for
/// the journal writer's [`Self::flush_unsynced`], by the sync thread's [`Self::sync`]
/// (`sled_syncer`) before anyone is told (a `sled::Tree`'s own `flush` would skip it: none
/// is called).
#[derive(Clone)]
pub struct SyncedDb {
    db: sled::Db,
    /// The database's folder, open: `syncfs` takes any descriptor on the filesystem.
    folder: Arc<File>,
    /// The first failed flush's or sync's error, once there was one: the database takes no
    /// more.
    failed: Arc<OnceLock<String>>,
    /// Held across a sync and the failure it may set: Linux reports a writeback error to one
    /// `syncfs` of the shared descriptor only, so a sync running beside the failing one must
    /// not return `Ok` before the failure is kept.
    syncing: Arc<Mutex<()>>,
}

impl SyncedDb {
    /// `db`, which was opened at `path` (the folder holding sled's `conf` and `db` files).
    /// Syncs the folder and its parent once; what sled wrote on opening becomes durable with
    /// the first flush.
    ///
    /// Errors: `path` cannot be opened or synced.
    pub fn new(db: sled::Db, path: &Path) -> std::io::Result<Self> {
        let folder = File::open(path)?;
        folder.sync_all()?;
        sync_parent(path)?;
        Ok(Self {
            db,
            folder: Arc::new(folder),
            failed: Arc::default(),
            syncing: Arc::default(),
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
    /// Errors: [`JournalError::Storage`] when sled's flush or the sync fails (some of the
    /// writes may be durable, some not), and from then on for every later flush, untried
    /// (see the module doc).
    pub fn flush(&self) -> Result<usize, JournalError> {
        let flushed = self.flush_unsynced()?;
        self.sync()?;
        Ok(flushed)
    }

    /// sled's flush alone: durable against a process crash, and against a machine crash only
    /// once a later [`Self::sync`] returns (the journal writer syncs one group commit while
    /// it writes the next). Errors: as [`Self::flush`].
    pub(super) fn flush_unsynced(&self) -> Result<usize, JournalError> {
        self.failing_from_now(|| self.db.flush().map_err(|e| e.to_string()))
    }

    /// The filesystem's sync: what sled flushed before the call is on stable storage when it
    /// returns `Ok`. Errors: as [`Self::flush`].
    pub(super) fn sync(&self) -> Result<(), JournalError> {
        let _one_at_a_time = self.syncing.lock().unwrap_or_else(|e| e.into_inner());
        self.failing_from_now(|| {
            sync_filesystem(&self.folder).map_err(|e| format!("syncing the filesystem: {e}"))
        })
    }

    /// Runs `step` unless a flush failed before; a failure of `step` becomes the store's.
    fn failing_from_now<T>(
        &self,
        step: impl FnOnce() -> Result<T, String>,
    ) -> Result<T, JournalError> {
        if let Some(failure) = self.failure() {
            return Err(JournalError::Storage(failure.to_owned()));
        }
        step().map_err(|error| {
            let failure = format!(
                "a flush failed, so the store takes no more writes until the node restarts: {error}"
            );
            tracing::error!(%error, "{failure}");
            JournalError::Storage(self.failed.get_or_init(|| failure).clone())
        })
    }

    /// [`Self::flush`] from async code, on tokio's blocking pool. Not sled's own
    /// `flush_async`: that runs on sled's small thread pool, where a handful of flushes waiting
    /// at once starve the pool of the thread that writes the log buffer they wait for (sled
    /// 0.34.7), and the node stops.
    ///
    /// Errors: those of [`Self::flush`]; [`JournalError::Closed`] when the blocking task
    /// could not run (the runtime is shutting down).
    pub async fn flush_async(&self) -> Result<usize, JournalError> {
        let this = self.clone();
        let flushed = tokio::task::spawn_blocking(move || this.flush()).await;
        flushed.map_err(|_| JournalError::Closed)?
    }

    /// Why the database takes no more writes: the first failed flush's error, if any.
    pub fn failure(&self) -> Option<&str> {
        self.failed.get().map(String::as_str)
    }

    /// The tree `name`, made if missing.
    pub fn open_tree(&self, name: &str) -> sled::Result<sled::Tree> {
        self.db.open_tree(name)
    }

    /// The names of the database's trees.
    pub fn tree_names(&self) -> Vec<sled::IVec> {
        self.db.tree_names()
    }

    /// Removes the tree `name`; whether there was one.
    pub fn drop_tree(&self, name: &str) -> sled::Result<bool> {
        self.db.drop_tree(name)
    }

    /// Stops the database for writes as a failed flush would, with `why` (the first failure
    /// stays): for the journal's threads when one of them is gone, and for tests.
    pub(crate) fn stop(&self, why: &str) {
        let _ = self.failed.set(why.to_owned());
    }

    /// Stops the database for writes because `what` (a write, a read) met `error`: sled
    /// 0.34.7 keeps an IO error for every later call, so nothing more would be written.
    pub(crate) fn stop_after(&self, what: &str, error: &dyn std::fmt::Display) {
        self.stop(&format!(
            "{what} failed, so the store takes no more writes until the node restarts: {error}"
        ));
    }
}

/// Makes the entry of `path` in its folder durable, and the renames and removals there.
pub(super) fn sync_parent(path: &Path) -> std::io::Result<()> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    File::open(parent.unwrap_or(Path::new(".")))?.sync_all()
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

/// Elsewhere there is no `syncfs`, and sled's flush (an `fsync` of its log) is all there is.
#[cfg(not(target_os = "linux"))]
fn sync_filesystem(_file: &File) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_a_failed_flush_no_flush_succeeds() {
        // Given a database whose flush failed
        let dir = tempfile::tempdir().unwrap();
        let db = SyncedDb::open(dir.path()).unwrap();
        db.stop("EIO");
        // When it is written and flushed again
        db.open_tree("t").unwrap().insert("k", "v").unwrap();
        let flushed = db.flush();
        // Then the flush fails with the first failure, through every clone
        assert!(matches!(flushed, Err(JournalError::Storage(ref e)) if e == "EIO"));
        assert_eq!(db.clone().failure(), Some("EIO"));
    }

    /// `cachestat(2)` (Linux 6.5) where the kernel's syscall table has it at 451.
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    mod page_cache {
        use super::*;
        use std::path::PathBuf;

        /// `(dirty, under writeback)` pages of `path` in the page cache, or `None` where the
        /// kernel has no `cachestat`.
        fn unwritten_pages(path: &Path) -> Option<(u64, u64)> {
            use std::os::fd::AsRawFd;
            let file = File::open(path).unwrap();
            let range = [0u64; 2]; // from 0 to the end
            let mut stat = [0u64; 5]; // cache, dirty, writeback, evicted, recently evicted
            // SAFETY: cachestat reads `range` and writes `stat`, both live and of the kernel's
            // layout (`struct cachestat_range`, `struct cachestat`: u64 fields).
            let ret = unsafe {
                libc::syscall(451, file.as_raw_fd(), range.as_ptr(), stat.as_mut_ptr(), 0)
            };
            (ret == 0).then_some((stat[1], stat[2]))
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

        /// Whether the page cache of files under `dir` counts dirty pages: not on tmpfs (its
        /// pages are never written back) nor overlayfs (the cache is the lower file's).
        fn counts_dirty_pages(dir: &Path) -> bool {
            use std::os::unix::ffi::OsStrExt;
            const TMPFS: i64 = 0x0102_1994;
            const OVERLAYFS: i64 = 0x794c_7630;
            let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
            // SAFETY: statfs reads the NUL-terminated path and writes the zeroed struct.
            let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
            let ret = unsafe { libc::statfs(path.as_ptr(), &mut fs) };
            ret == 0 && ![TMPFS, OVERLAYFS].contains(&(fs.f_type as i64))
        }

        #[test]
        fn a_flush_leaves_no_page_of_the_database_unwritten() {
            // Given a database on a disk-backed filesystem, and a value too large for sled's
            // log, which sled writes to a file of its own and never syncs (a blob)
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("db");
            let db = SyncedDb::open(&path).unwrap();
            let value = vec![7u8; 1 << 20];
            let Some(_) = unwritten_pages(&path.join("conf")) else {
                eprintln!("skipped: this kernel has no cachestat");
                return;
            };
            if !counts_dirty_pages(dir.path()) {
                eprintln!("skipped: {} is on tmpfs or overlayfs", dir.path().display());
                return;
            }
            // When it is written and flushed
            db.open_tree("t")
                .unwrap()
                .insert("k", value.as_slice())
                .unwrap();
            db.flush().unwrap();
            // Then no page of any of the database's files is left to write (sled's flush
            // alone leaves the blob's pages dirty)
            let unwritten: Vec<_> = files(&path)
                .into_iter()
                .filter(|f| unwritten_pages(f) != Some((0, 0)))
                .collect();
            assert_eq!(unwritten, Vec::<PathBuf>::new());
            // And the value is there when the database is opened again
            drop(db);
            let reopened = crate::persistence::sled_open::open_waiting(&path).unwrap();
            let stored = reopened.open_tree("t").unwrap().get("k").unwrap();
            assert_eq!(stored.as_deref(), Some(value.as_slice()));
        }
    }
}
