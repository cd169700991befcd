//! Rewriting a stopped node's sled database into a fresh one (`emporium admin compact`), and
//! finishing or undoing a rewrite a crash interrupted ([`recover`]).
//!
//! sled 0.34 keeps every page it rewrites in its log until a segment is mostly dead, and its
//! cleanup settings are fixed, so a data dir under churn (orders through their sagas, carts
//! filled and emptied) holds many times its live records: 20,000 settled orders took 575 MB
//! for 31 MB of keys and values. Copying the records, in key order, into a new database
//! keeps only what is live. It also makes crypto-shredding final: a person's data key
//! removed from the vault no longer lingers in dead pages of the old log.
//!
//! The steps, each safe to interrupt (all under the data dir, beside `db`), with the data dir
//! locked (`flock`) throughout, so no node opens it meanwhile:
//! 1. every tree is copied into `db.compact`; the copy is closed, opened again and read back
//!    from disk: the same trees, and in each the record count and a CRC-32 over every key and
//!    value the source's; then every file and folder of the copy is synced;
//! 2. the marker `db.compact.done` is written and synced, and the data dir synced: from here
//!    the copy is the database;
//! 3. `db` is renamed `db.old`, the data dir synced; `db.compact` renamed `db`, synced; the
//!    marker removed, synced;
//! 4. `db.old` is removed, unless the operator keeps it.
//!
//! [`recover`] (run by this command and, under the same lock, whenever a node opens its
//! journal) finishes step 3 after a crash past step 2, and removes a partial copy from before
//! it. sled keeps one thing outside its trees, the counter of `Db::generate_id`; a copy starts
//! it again from zero, and the engine does not use it.

use crate::persistence::JournalError;
use crate::persistence::sled_open::{
    DIR_LOCK_PATIENCE, existing_data_dir, forget_unfinished_snapshots, held_by_a_node,
    lock_data_dir, made_with, open_locked, sled_config,
};
use crate::persistence::sled_sync::sync_parent;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often a compaction reports its progress, in records copied.
pub const PROGRESS_EVERY: u64 = 1_000_000;

/// What a compaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compacted {
    /// Records copied, over every tree.
    pub records: u64,
    /// Bytes of their keys and values.
    pub bytes: u64,
    /// sled's size on disk before, in bytes.
    pub disk_before: u64,
    /// sled's size on disk after, in bytes.
    pub disk_after: u64,
    /// Whether the new database is compressed (zstd).
    pub compression: bool,
    /// Where the old database was kept (`--keep-old`), if it was.
    pub kept: Option<PathBuf>,
}

/// What the operator asked of a compaction.
#[derive(Debug, Clone, Default)]
pub struct CompactOptions {
    /// Keep the old database as `db.old` instead of removing it.
    pub keep_old: bool,
    /// Make the new database compressed (zstd, fastest level) or not; `None` keeps what the
    /// old one was made with. The node keeps using what its data dir was made with.
    pub compression: Option<bool>,
}

/// The paths of a compaction of the database at `db`: the copy, the marker, the old one.
struct Paths {
    db: PathBuf,
    copy: PathBuf,
    done: PathBuf,
    old: PathBuf,
}

impl Paths {
    fn of(db: &Path) -> Self {
        let beside = |suffix: &str| {
            let mut name = db.file_name().unwrap_or_default().to_os_string();
            name.push(suffix);
            db.with_file_name(name)
        };
        Self {
            db: db.to_path_buf(),
            copy: beside(".compact"),
            done: beside(".compact.done"),
            old: beside(".old"),
        }
    }
}

/// Rewrites the sled database at `db` (a stopped node's; sled locks it) into a fresh one
/// with the same records and segment size, then puts the copy in its place (see the module
/// docs). `progress` is told the records copied, every [`PROGRESS_EVERY`] and at the end
/// of each tree.
///
/// Errors: [`JournalError::Storage`] when there is no database at `db`, it is locked by a
/// running node, or the disk fails; [`JournalError::Corrupt`] when the copy does not read
/// back as the source (the copy is removed and the database left as it was).
pub fn compact(
    db: &Path,
    options: &CompactOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<Compacted, JournalError> {
    existing_data_dir(db)?;
    let _lock = lock_data_dir(db, Duration::ZERO)?;
    recover(db)?;
    let paths = Paths::of(db);
    if paths.old.exists() {
        return Err(JournalError::Storage(format!(
            "{} exists (kept by an earlier compaction): move or remove it first",
            paths.old.display()
        )));
    }
    let (compressed, segment_bytes) = made_with(db)?;
    forget_unfinished_snapshots(db)?;
    let source =
        open_locked(|| open(db, compressed, segment_bytes)).map_err(|e| held_by_a_node(db, e))?;
    let disk_before = source.size_on_disk()?;
    remove_dir(&paths.copy)?;
    let compression = options.compression.unwrap_or(compressed);
    let copied =
        copy_all(&source, &paths.copy, compression, segment_bytes, progress).and_then(|copied| {
            drop(source);
            verified(&paths.copy, compression, segment_bytes, copied)
        });
    let (records, bytes, disk_after) = match copied {
        Ok(done) => done,
        Err(e) => {
            remove_dir(&paths.copy)?;
            return Err(e);
        }
    };
    sync_tree(&paths.copy)?;
    std::fs::File::create(&paths.done)?.sync_all()?;
    sync_parent(&paths.done)?;
    swap(&paths)?;
    let kept = match options.keep_old {
        true => Some(paths.old.clone()),
        false => {
            remove_dir(&paths.old)?;
            None
        }
    };
    Ok(Compacted {
        records,
        bytes,
        disk_before,
        disk_after,
        compression,
        kept,
    })
}

/// Opens the sled database at `path` as a node's journal does.
fn open(path: &Path, compression: bool, segment_bytes: usize) -> sled::Result<sled::Db> {
    sled_config(path, compression, segment_bytes).open()
}

/// Step 1's copy: every tree of `source` into a new database at `copy`; the [`Summary`] of
/// each source tree by name.
fn copy_all(
    source: &sled::Db,
    copy: &Path,
    compression: bool,
    segment_bytes: usize,
    progress: &mut dyn FnMut(u64),
) -> Result<BTreeMap<Vec<u8>, Summary>, JournalError> {
    let target = open(copy, compression, segment_bytes)?;
    let mut copied = BTreeMap::new();
    for name in source.tree_names() {
        let from = source.open_tree(&name)?;
        let to = target.open_tree(&name)?;
        copied.insert(name.to_vec(), copy_tree(&from, &to, progress)?);
    }
    target.flush()?;
    Ok(copied)
}

/// Step 1's check: the copy at `copy`, opened again (once sled has let go of it) and read
/// from disk, holds the trees `copied` describes; returns its records, their bytes and its
/// size on disk. [`JournalError::Corrupt`] names the first tree that differs.
fn verified(
    copy: &Path,
    compression: bool,
    segment_bytes: usize,
    copied: BTreeMap<Vec<u8>, Summary>,
) -> Result<(u64, u64, u64), JournalError> {
    let reopened = open_locked(|| open(copy, compression, segment_bytes))?;
    let mut read = BTreeMap::new();
    for name in reopened.tree_names() {
        read.insert(name.to_vec(), summary(&reopened.open_tree(&name)?)?);
    }
    if let Some((name, wrote)) = copied.iter().find(|(name, s)| read.get(*name) != Some(s)) {
        return Err(JournalError::Corrupt(format!(
            "tree {}: copied {wrote:?}, read back {:?}",
            String::from_utf8_lossy(name),
            read.get(name)
        )));
    }
    let records = copied.values().map(|s| s.records).sum();
    let bytes = copied.values().map(|s| s.bytes).sum();
    Ok((records, bytes, reopened.size_on_disk()?))
}

/// Finishes a compaction of the database at `db` that a crash stopped after its copy was
/// complete (the marker is there), or removes a copy left from before that. Nothing to do
/// otherwise. The caller holds the data dir's lock ([`lock_data_dir`]).
///
/// Errors: [`JournalError::Storage`] when `db` is missing while a compaction's `db.old` is
/// there (a state no crash leaves; a new empty database must not be opened in its place),
/// or the file system fails.
fn recover(db: &Path) -> Result<(), JournalError> {
    let paths = Paths::of(db);
    if paths.done.exists() {
        tracing::warn!(db = %db.display(), "finishing an interrupted compaction");
        return swap(&paths);
    }
    if paths.copy.exists() {
        tracing::warn!(db = %db.display(), "removing the partial copy of an interrupted compaction");
        remove_dir(&paths.copy)?;
    }
    if !paths.db.exists() && paths.old.exists() {
        return Err(JournalError::Storage(format!(
            "{} is missing but {} is there: move it back by hand",
            paths.db.display(),
            paths.old.display()
        )));
    }
    Ok(())
}

/// Step 3: the complete copy takes the database's place (from wherever a crash left it),
/// each rename synced before the next step.
fn swap(paths: &Paths) -> Result<(), JournalError> {
    if paths.copy.exists() {
        if paths.db.exists() {
            remove_dir(&paths.old)?;
            std::fs::rename(&paths.db, &paths.old)?;
            sync_parent(&paths.db)?;
        }
        std::fs::rename(&paths.copy, &paths.db)?;
        sync_parent(&paths.db)?;
    }
    std::fs::remove_file(&paths.done)?;
    Ok(sync_parent(&paths.db)?)
}

/// Runs `open` (a node opening the database at `db`) after [`recover`], with the data dir
/// locked: a node never opens a store a compaction is rewriting. Waits up to 10 s for the
/// lock, then fails.
pub(super) fn opening<T>(
    db: &Path,
    open: impl FnOnce() -> Result<T, JournalError>,
) -> Result<T, JournalError> {
    let _lock = lock_data_dir(db, DIR_LOCK_PATIENCE)?;
    recover(db)?;
    open()
}

/// How many records a tree holds, their bytes, and a CRC-32 over every key and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Summary {
    records: u64,
    bytes: u64,
    crc: u32,
}

/// What [`summary`] folds, one record at a time; lengths go in too, so moving a byte from
/// a value to the next key changes the sum.
#[derive(Default)]
struct Folding {
    records: u64,
    bytes: u64,
    crc: crc32fast::Hasher,
}

impl Folding {
    fn add(&mut self, key: &[u8], value: &[u8]) {
        self.records += 1;
        self.bytes += (key.len() + value.len()) as u64;
        for part in [key, value] {
            self.crc.update(&(part.len() as u64).to_be_bytes());
            self.crc.update(part);
        }
    }

    fn done(self) -> Summary {
        Summary {
            records: self.records,
            bytes: self.bytes,
            crc: self.crc.finalize(),
        }
    }
}

/// Copies every record of `from` into `to` in key order; returns the source's [`Summary`].
/// One insert at a time: a fresh sled database written with batches took 45 MB where the
/// same records inserted one by one took 28 MB (sled logs a batch's pages differently).
fn copy_tree(
    from: &sled::Tree,
    to: &sled::Tree,
    progress: &mut dyn FnMut(u64),
) -> Result<Summary, JournalError> {
    let mut folding = Folding::default();
    for kv in from.iter() {
        let (k, v) = kv?;
        folding.add(&k, &v);
        to.insert(k, v)?;
        if folding.records % PROGRESS_EVERY == 0 {
            progress(PROGRESS_EVERY);
        }
    }
    progress(folding.records % PROGRESS_EVERY);
    Ok(folding.done())
}

/// The [`Summary`] of every record of `tree`.
fn summary(tree: &sled::Tree) -> Result<Summary, JournalError> {
    let mut folding = Folding::default();
    for kv in tree.iter() {
        let (k, v) = kv?;
        folding.add(&k, &v);
    }
    Ok(folding.done())
}

/// Removes `dir` and everything in it; a missing one is already removed.
fn remove_dir(dir: &Path) -> Result<(), JournalError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Syncs every file and folder under `dir`, and `dir` itself: sled's own flush pushes its
/// log's pages out (`sync_file_range`) but not its file sizes, its `conf` or the folders.
fn sync_tree(dir: &Path) -> Result<(), JournalError> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        match path.is_dir() {
            true => sync_tree(&path)?,
            false => std::fs::File::open(&path)?.sync_all()?,
        }
    }
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests;
