//! What a stopped node's sled data dir holds (`emporium admin usage`): records and their bytes
//! per record type and kind, so an operator sees where the disk goes.

use crate::persistence::JournalError;
use crate::persistence::sled_layout::{ARCHIVE, DUE, EVENT, INDEX, REMINDER, SNAPSHOT, VIEW};
use crate::persistence::sled_open::open_as_made;
use crate::persistence::sled_snapshot::is_chunk_key;
use std::collections::BTreeMap;
use std::path::Path;

/// One line of the report: the records of one type and kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageRow {
    /// `event`, `snapshot`, `reminder`, `due`, `view`, `index`, `archive`, or the name of a tree
    /// kept beside the journal (`revocations`, `pii-keys`).
    pub record: String,
    /// The entity kind (`order`), the index set's family (`order.user`), or `-`.
    pub kind: String,
    pub records: u64,
    /// Bytes of keys and of values, as sled was given them (before its own page overhead).
    pub key_bytes: u64,
    pub value_bytes: u64,
}

/// The report: rows by record type and kind, and the size sled reports on disk.
#[derive(Debug, Clone)]
pub struct Usage {
    pub rows: Vec<UsageRow>,
    /// sled's `size_on_disk`, in bytes.
    pub disk_bytes: u64,
}

/// Reads every record of the data dir at `dir`. The node must be stopped (sled locks its dir).
///
/// Errors: [`JournalError::Storage`] when there is no database under `dir` (none is made: a
/// new one would keep this reader's settings, not the node's) or sled cannot open it.
pub fn usage(dir: &Path) -> Result<Usage, JournalError> {
    let db = open_as_made(dir)?;
    let mut rows: BTreeMap<(String, String), UsageRow> = BTreeMap::new();
    for name in db.tree_names() {
        let tree = db.open_tree(&name)?;
        let tree_name = String::from_utf8_lossy(&name).into_owned();
        for kv in tree.iter() {
            let (k, v) = kv?;
            let (record, kind) = if tree_name == "entities" {
                classify(&k)
            } else {
                (tree_name.clone(), "-".to_owned())
            };
            let row = rows
                .entry((record.clone(), kind.clone()))
                .or_insert_with(|| UsageRow {
                    record,
                    kind,
                    ..UsageRow::default()
                });
            row.records += 1;
            row.key_bytes += k.len() as u64;
            row.value_bytes += v.len() as u64;
        }
    }
    Ok(Usage {
        rows: rows.into_values().collect(),
        disk_bytes: db.size_on_disk()?,
    })
}

/// `(record type, kind)` of a key of the one tree (`sled_layout`).
fn classify(k: &[u8]) -> (String, String) {
    let record = match k.first() {
        Some(&EVENT) => "event",
        Some(&SNAPSHOT) if is_chunk_key(k) => "snapshot chunk",
        Some(&SNAPSHOT) => "snapshot",
        Some(&REMINDER) => "reminder",
        Some(&DUE) => "due",
        Some(&VIEW) => "view",
        Some(&INDEX) => "index",
        Some(&ARCHIVE) => "archive",
        _ => "unknown",
    };
    let rest = k.get(1..).unwrap_or_default();
    let name = rest.split(|b| *b == 0).next().unwrap_or_default();
    let mut kind = String::from_utf8_lossy(name).into_owned();
    // An index set is named `family:key` (`order.user:u1`): one row per family.
    if let Some((family, _)) = kind.split_once(':') {
        kind = family.to_owned();
    }
    (record.to_owned(), kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_grouped_by_record_type_and_kind() {
        assert_eq!(
            classify(b"eorder\0o1\0\0\0\0\0\0\0\0\x01"),
            ("event".into(), "order".into())
        );
        assert_eq!(
            classify(b"xorder.user:u1\0member"),
            ("index".into(), "order.user".into())
        );
        assert_eq!(classify(b"ssku\0a\0"), ("snapshot".into(), "sku".into()));
        assert_eq!(
            classify(b"ssku\0a\0\0\0\0\x01"),
            ("snapshot chunk".into(), "sku".into())
        );
        assert_eq!(classify(b""), ("unknown".into(), "".into()));
    }

    #[test]
    fn a_dir_without_a_database_is_refused_and_left_as_it_was() {
        // Given an empty dir
        let dir = tempfile::tempdir().unwrap();
        // When its usage is asked for
        let Err(err) = usage(dir.path()) else {
            panic!("a dir without a database is read")
        };
        // Then it is refused, and no database was made there
        assert!(err.to_string().contains("no database"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
