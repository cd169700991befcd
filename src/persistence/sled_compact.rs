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
//! The steps, each safe to interrupt (all under the data dir, beside `db`):
//! 1. every tree is copied into `db.compact`, flushed, and read back: record counts and a
//!    CRC-32 over every key and value must match the source's;
//! 2. the marker `db.compact.done` is written and synced: from here the copy is the database;
//! 3. `db` is renamed `db.old`, `db.compact` renamed `db`, the marker removed, the data dir
//!    synced;
//! 4. `db.old` is removed, unless the operator keeps it.
//!
//! [`recover`] (run by this command and when a node opens its journal) finishes steps 3 after
//! a crash past step 2, and removes a partial copy from before it.

use crate::persistence::JournalError;
use crate::persistence::sled_open::{open_locked, stored_compression, stored_segment_bytes};
use std::path::{Path, PathBuf};

/// How often a compaction reports its progress, in records copied.
pub const PROGRESS_EVERY: u64 = 1_000_000;

/// What a compaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compacted {
    /// Records copied, over every tree.
    pub records: u64,
    /// Bytes of their keys and values.
    pub bytes: u64,
    /// sled's size on disk before and after, in bytes.
    pub disk_before: u64,
    pub disk_after: u64,
    /// Whether the new database is compressed (zstd).
    pub compression: bool,
    /// Where the old database was kept (`--keep-old`), if it was.
    pub kept: Option<PathBuf>,
}

/// What the operator asked of a compaction.
#[derive(Debug, Clone, Default)]
pub struct CompactOptions {
    /// Keep the old database as `db.old` (an `db.old` already there is replaced) instead of
    /// removing it.
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
    recover(db)?;
    let paths = Paths::of(db);
    let (Some(compressed), Some(segment_bytes)) =
        (stored_compression(db), stored_segment_bytes(db))
    else {
        return Err(JournalError::Storage(format!(
            "no database under {}",
            db.display()
        )));
    };
    let config = |path: &Path, compression: bool| {
        sled::Config::new()
            .path(path)
            .use_compression(compression)
            .compression_factor(1)
            .segment_size(segment_bytes)
            .flush_every_ms(None)
    };
    let source = open_locked(|| config(db, compressed).open())?;
    let disk_before = source.size_on_disk()?;
    remove_dir(&paths.copy)?;
    let compression = options.compression.unwrap_or(compressed);
    let copy = config(&paths.copy, compression).open()?;
    let (mut records, mut bytes) = (0, 0);
    for name in source.tree_names() {
        let from = source.open_tree(&name)?;
        let to = copy.open_tree(&name)?;
        let copied = copy_tree(&from, &to, progress)?;
        copy.flush()?;
        let read_back = summary(&to)?;
        if read_back != copied {
            drop(copy);
            remove_dir(&paths.copy)?;
            return Err(JournalError::Corrupt(format!(
                "tree {}: copied {} records, read back {}",
                String::from_utf8_lossy(&name),
                copied.records,
                read_back.records
            )));
        }
        records += copied.records;
        bytes += copied.bytes;
    }
    copy.flush()?;
    let disk_after = copy.size_on_disk()?;
    drop((copy, source));
    std::fs::write(&paths.done, b"")?;
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

/// Finishes a compaction of the database at `db` that a crash stopped after its copy was
/// complete (the marker is there), or removes a copy left from before that. Nothing to do
/// otherwise.
pub fn recover(db: &Path) -> Result<(), JournalError> {
    let paths = Paths::of(db);
    if paths.done.exists() {
        tracing::warn!(db = %db.display(), "finishing an interrupted compaction");
        return swap(&paths);
    }
    if paths.copy.exists() {
        tracing::warn!(db = %db.display(), "removing the partial copy of an interrupted compaction");
        remove_dir(&paths.copy)?;
    }
    Ok(())
}

/// Step 3: the complete copy takes the database's place (from wherever a crash left it).
fn swap(paths: &Paths) -> Result<(), JournalError> {
    if paths.copy.exists() {
        if paths.db.exists() {
            remove_dir(&paths.old)?;
            std::fs::rename(&paths.db, &paths.old)?;
        }
        std::fs::rename(&paths.copy, &paths.db)?;
    }
    std::fs::remove_file(&paths.done)?;
    sync_parent(&paths.db)
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

fn summary(tree: &sled::Tree) -> Result<Summary, JournalError> {
    let mut folding = Folding::default();
    for kv in tree.iter() {
        let (k, v) = kv?;
        folding.add(&k, &v);
    }
    Ok(folding.done())
}

fn remove_dir(dir: &Path) -> Result<(), JournalError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Makes the renames and removals in `path`'s directory durable.
fn sync_parent(path: &Path) -> Result<(), JournalError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(parent)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests;
