//! Snapshots in the sled journal's one tree, a large one stored in chunks.
//!
//! A stream's snapshot lives under `s kind NUL id NUL` as `seq_be ++ state`. sled 0.34 keeps a
//! value inside its leaf, and rewrites the whole leaf (a link every write to it, all of it
//! every few writes and at each split); a leaf past a quarter of a log segment is written to a
//! file of its own (a blob: a file made and written, never synced by sled 0.34). A hot SKU's
//! snapshot (hundreds of KB: its open reservations) shares its leaf with whatever sorts next
//! to it, such as new orders' views, so every few purchases rewrote it whole as a blob: 25 KB
//! written per purchase in a hot-SKU flash sale before chunks, 10 KB with them (2026-12-01).
//!
//! A state longer than the chunk size (`sled_layout::run_bytes`, the same bound as a run of
//! events, so a full leaf of chunks stays under the blob line) is stored as a head record
//! `seq_be ++ CHUNKED ++ count_be u32 ++ crc32_be` (the CRC-32 of the whole state) under the
//! snapshot's key and `count` chunks under `key ++ i_be u32`, `i` from 0. Ids never contain
//! NUL, so a chunk's key is no other stream's snapshot key. A state that itself starts with
//! `CHUNKED` (no encoded state does: it is a msgpack map) is stored in chunks whatever its
//! length, so a single record never reads as a head. Older data dirs hold single records only,
//! and read as before; a data dir with chunks is not readable by older builds.
//!
//! A head and its chunks are written in one batch, but read with more than one read: a read
//! that meets a write of the same stream in between sees chunks that do not match the head's
//! checksum, and reads again.

use crate::persistence::sled_layout::{SNAPSHOT, key};
use crate::persistence::{JournalError, StreamId};

/// How many times a read whose chunks do not match their head is tried before it is corrupt.
const READ_TRIES: usize = 3;

/// The byte after a head record's seq. msgpack never uses 0xC1, and an encoded state is a
/// msgpack map or a packed one starting with `z` (`codec::encode_snapshot`, `packing`).
const CHUNKED: u8 = 0xC1;

/// `s kind NUL id NUL`: the snapshot's key (its head's, when chunked).
fn head_key(stream: &StreamId) -> Vec<u8> {
    key(SNAPSHOT, &stream.prefix())
}

/// The key of chunk `i` of a snapshot whose head is at `head`.
fn chunk_key(head: &[u8], i: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(head.len() + 4);
    k.extend_from_slice(head);
    k.extend_from_slice(&i.to_be_bytes());
    k
}

/// Whether `k`, a key of the snapshot record type, is a chunk's rather than a snapshot's (or
/// head's): it goes on past `s kind NUL id NUL`.
pub(super) fn is_chunk_key(k: &[u8]) -> bool {
    k.splitn(3, |b| *b == 0)
        .nth(2)
        .is_some_and(|t| !t.is_empty())
}

/// Puts `stream`'s snapshot `(seq, state)` into `writes`: one record when `state` fits in
/// `chunk_bytes` (and does not start with `CHUNKED`), else a head and chunks of at most
/// `chunk_bytes`. The chunks of an earlier snapshot past the new one's are removed: they are
/// read from `tree`, so a batch must hold at most one snapshot of a stream. Errors: `Storage`
/// when that read fails, or for a state of more than `u32::MAX` chunks.
pub(super) fn write_snapshot(
    tree: &sled::Tree,
    stream: &StreamId,
    seq: u64,
    state: &[u8],
    chunk_bytes: usize,
    writes: &mut sled::Batch,
) -> Result<(), JournalError> {
    let head = head_key(stream);
    let chunked = state.len() > chunk_bytes || state.first() == Some(&CHUNKED);
    let chunks: Vec<&[u8]> = match chunked {
        true => state.chunks(chunk_bytes.max(1)).collect(),
        false => Vec::new(),
    };
    let count = u32::try_from(chunks.len())
        .map_err(|_| JournalError::Storage(format!("{stream}: snapshot too large to store")))?;
    // The chunks stored now past the new count (all of them for a single record).
    for k in tree.range(chunk_key(&head, count)..=chunk_key(&head, u32::MAX)) {
        let (k, _) = k?;
        writes.remove(k);
    }
    let mut value = Vec::with_capacity(8 + if chunked { 9 } else { state.len() });
    value.extend_from_slice(&seq.to_be_bytes());
    if chunked {
        value.push(CHUNKED);
        value.extend_from_slice(&count.to_be_bytes());
        value.extend_from_slice(&crc32fast::hash(state).to_be_bytes());
        for (i, chunk) in (0..count).zip(chunks) {
            writes.insert(chunk_key(&head, i), chunk);
        }
    } else {
        value.extend_from_slice(state);
    }
    writes.insert(head, value);
    Ok(())
}

/// `stream`'s snapshot `(seq, state)`, if it has one. Errors: `Corrupt` for chunks that do
/// not make up their head's state (missing, or another checksum) three reads running, or a
/// record too short to hold a seq; `Storage` when a read fails.
pub(super) fn read_snapshot(
    tree: &sled::Tree,
    stream: &StreamId,
) -> Result<Option<(u64, Vec<u8>)>, JournalError> {
    let head = head_key(stream);
    for _ in 0..READ_TRIES {
        let Some(value) = tree.get(&head)? else {
            return Ok(None);
        };
        let (seq, rest) = value
            .split_first_chunk::<8>()
            .ok_or_else(|| JournalError::Corrupt(format!("{stream}: snapshot record too short")))?;
        let seq = u64::from_be_bytes(*seq);
        let Some((count, crc)) = head_of(rest) else {
            return Ok(Some((seq, rest.to_vec())));
        };
        if let Some(state) = read_chunks(tree, &head, count)?
            && crc32fast::hash(&state) == crc
        {
            return Ok(Some((seq, state)));
        }
    }
    Err(JournalError::Corrupt(format!(
        "{stream}: snapshot chunks do not match their head"
    )))
}

/// The state the `count` chunks after `head` make up, or `None` if one is missing.
fn read_chunks(
    tree: &sled::Tree,
    head: &[u8],
    count: u32,
) -> Result<Option<Vec<u8>>, JournalError> {
    let mut state = Vec::new();
    let mut next = 0u32;
    for kv in tree.range(chunk_key(head, 0)..chunk_key(head, count)) {
        let (k, chunk) = kv?;
        let i = k.strip_prefix(head).and_then(|i| i.try_into().ok());
        if i.map(u32::from_be_bytes) != Some(next) {
            return Ok(None);
        }
        state.extend_from_slice(&chunk);
        next += 1;
    }
    Ok((next == count).then_some(state))
}

/// `(count, crc)` of a head record's value after its seq, or `None` for a single record.
fn head_of(rest: &[u8]) -> Option<(u32, u32)> {
    let rest: &[u8; 8] = rest.strip_prefix(&[CHUNKED])?.try_into().ok()?;
    let (count, crc) = rest.split_at(4);
    Some((
        u32::from_be_bytes(count.try_into().ok()?),
        u32::from_be_bytes(crc.try_into().ok()?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> sled::Tree {
        let db = sled::Config::new().temporary(true).open().unwrap();
        db.open_tree("t").unwrap()
    }

    fn put(tree: &sled::Tree, stream: &StreamId, seq: u64, state: &[u8], chunk: usize) {
        let mut writes = sled::Batch::default();
        write_snapshot(tree, stream, seq, state, chunk, &mut writes).unwrap();
        tree.apply_batch(writes).unwrap();
    }

    fn keys(tree: &sled::Tree) -> usize {
        tree.iter().count()
    }

    #[test]
    fn a_small_snapshot_is_one_record_and_a_large_one_chunks_of_the_limit() {
        // Given a stream
        let (t, a) = (tree(), StreamId::new("sku", "a"));
        // When a state of 10 B is stored with chunks of 16 B
        put(&t, &a, 3, b"0123456789", 16);
        // Then it is one record, read back as it was
        assert_eq!(keys(&t), 1);
        assert_eq!(
            read_snapshot(&t, &a).unwrap(),
            Some((3, b"0123456789".to_vec()))
        );
        // When a state of 40 B replaces it
        let big: Vec<u8> = (0..40).collect();
        put(&t, &a, 9, &big, 16);
        // Then it is a head and three chunks, no value over 16 B but the head's
        assert_eq!(keys(&t), 4);
        assert!(t.iter().skip(1).all(|kv| kv.unwrap().1.len() <= 16));
        assert_eq!(read_snapshot(&t, &a).unwrap(), Some((9, big)));
    }

    #[test]
    fn a_smaller_snapshot_removes_the_chunks_it_no_longer_needs() {
        // Given a snapshot of five chunks
        let (t, a) = (tree(), StreamId::new("sku", "a"));
        put(&t, &a, 1, &[7u8; 80], 16);
        assert_eq!(keys(&t), 6);
        // When one of two chunks replaces it, then a single record
        put(&t, &a, 2, &[8u8; 20], 16);
        assert_eq!(keys(&t), 3);
        assert_eq!(read_snapshot(&t, &a).unwrap(), Some((2, vec![8u8; 20])));
        put(&t, &a, 3, b"small", 16);
        // Then nothing of the earlier ones is left
        assert_eq!(keys(&t), 1);
        assert_eq!(read_snapshot(&t, &a).unwrap(), Some((3, b"small".to_vec())));
    }

    #[test]
    fn streams_whose_ids_share_a_start_keep_their_own_snapshots() {
        // Given streams "a" and "a1" (a's chunk keys continue "s sku NUL a NUL")
        let t = tree();
        let (a, a1) = (StreamId::new("sku", "a"), StreamId::new("sku", "a1"));
        put(&t, &a, 1, &[1u8; 50], 16);
        put(&t, &a1, 1, &[2u8; 50], 16);
        // When a's snapshot shrinks to one record
        put(&t, &a, 2, b"x", 16);
        // Then a1's chunks are all there
        assert_eq!(read_snapshot(&t, &a1).unwrap(), Some((1, vec![2u8; 50])));
        assert_eq!(read_snapshot(&t, &a).unwrap(), Some((2, b"x".to_vec())));
    }

    #[test]
    fn a_state_that_starts_with_the_marker_reads_back_as_itself() {
        // Given a short state whose first byte is the head's marker
        let (t, a) = (tree(), StreamId::new("sku", "a"));
        let odd = [CHUNKED, 0, 0, 0, 1];
        // When it is stored and read
        put(&t, &a, 4, &odd, 16);
        // Then it is the same state, not a head naming one chunk
        assert_eq!(read_snapshot(&t, &a).unwrap(), Some((4, odd.to_vec())));
        // and so is a state shaped like a whole head
        let head_like = [CHUNKED, 0, 0, 0, 1, 0, 0, 0, 0];
        put(&t, &a, 5, &head_like, 16);
        assert_eq!(
            read_snapshot(&t, &a).unwrap(),
            Some((5, head_like.to_vec()))
        );
    }

    #[test]
    fn a_head_without_its_chunks_is_corrupt_not_a_shorter_state() {
        // Given a snapshot of three chunks, the middle one lost
        let (t, a) = (tree(), StreamId::new("sku", "a"));
        put(&t, &a, 1, &[5u8; 40], 16);
        t.remove(chunk_key(&head_key(&a), 1)).unwrap();
        // When it is read, then it is refused
        assert!(matches!(
            read_snapshot(&t, &a),
            Err(JournalError::Corrupt(_))
        ));
        // and so is one missing its last chunk
        put(&t, &a, 2, &[5u8; 40], 16);
        t.remove(chunk_key(&head_key(&a), 2)).unwrap();
        assert!(matches!(
            read_snapshot(&t, &a),
            Err(JournalError::Corrupt(_))
        ));
        // and one whose chunk holds other bytes than the head's checksum says
        put(&t, &a, 3, &[5u8; 40], 16);
        t.insert(chunk_key(&head_key(&a), 1), &[6u8; 16][..])
            .unwrap();
        assert!(matches!(
            read_snapshot(&t, &a),
            Err(JournalError::Corrupt(_))
        ));
        // and a record too short for a seq
        t.insert(head_key(&a), &[1u8, 2][..]).unwrap();
        assert!(matches!(
            read_snapshot(&t, &a),
            Err(JournalError::Corrupt(_))
        ));
    }

    #[test]
    fn no_snapshot_reads_as_none() {
        assert_eq!(
            read_snapshot(&tree(), &StreamId::new("sku", "a")).unwrap(),
            None
        );
    }
}
