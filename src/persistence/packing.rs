//! Compression of encoded records (events, snapshots, views, archive records) with a frozen
//! zstd dictionary, so the field names every record repeats cost a few bits instead of a few
//! hundred bytes.
//!
//! A record is MessagePack with field names (`codec`): self-describing, which keeps old
//! journals readable as fields come and go, but a delivered order's snapshot spends about 400
//! of its 986 bytes on names, and every byte written costs sled CPU on the hot path and disk
//! at rest. A dictionary's content is encodings of typical records with their free text and ids
//! blanked; from dictionary 2 on, zstd's entropy tables made from such records come before it,
//! so a small record's frame repeats the dictionary's tables instead of building and describing
//! its own (see `packing/dictionaries.md` for how each was made). Compressing
//! against it takes a delivered order's snapshot from 986 to 433 bytes and its view from 176
//! to 79 (20,000 settled orders at level 1, README "Packing"; [`LEVEL`] -1 packs a little
//! less, for about 3.6 µs and 1.4 µs of CPU; decompressing: 0.2 µs). Records of
//! [`MIN_BYTES`] to [`MAX_BYTES`] that shrink are packed; the rest are stored as they are.
//!
//! There is no checksum in the frame: sled checks every log message it reads (CRC-32), and
//! a frame that does not decompress to exactly its stated length is an error, but damage that
//! still decodes to that length would read as other bytes (and then most likely fail to
//! decode as the record's type).
//!
//! Packed layout: `'z'`, the dictionary's id (one byte), the record's length (LEB128), then a
//! zstd frame without its 4-byte magic (put back to decompress), checksum, dictionary id or
//! content size. An encoded record is a
//! msgpack map (first byte `0x80..=0x8f` or `0xde`), so `'z'` (msgpack's fixint 122) marks a
//! packed one unambiguously, and records written before packing read as they are.
//!
//! **A dictionary never changes once released**: records packed with it must decode for as long
//! as a data dir may hold them. A better one is added under the next id and used for new
//! records; [`DICTIONARIES`] keeps every one, and a test pins each one's checksum.

use crate::persistence::JournalError;
use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::LazyLock;
use zstd::zstd_safe::{CCtx, CDict, CParameter, DCtx, DDict};

/// The first byte of a packed record.
const PACKED: u8 = b'z';

/// What every standard zstd frame starts with (RFC 8878, 3.1.1), left out of packed records.
const MAGIC: [u8; 4] = 0xFD2FB528u32.to_le_bytes();

/// Every dictionary by id (the index is the id). Id 0 is never used.
pub(super) const DICTIONARIES: [&[u8]; 3] = [
    &[],
    include_bytes!("packing/dictionary-1.bin"),
    include_bytes!("packing/dictionary-2.bin"),
];

/// The dictionary new records are packed with.
const CURRENT: u8 = 2;

/// Records shorter than this are stored as they are: a frame's few bytes of header would eat
/// most of what packing saves.
pub(super) const MIN_BYTES: usize = 48;

/// Records longer than this are stored as they are: the dictionary's help is spent after its
/// first kilobytes, and compressing a large snapshot (a drop's SKU holds a reservation per
/// buyer, megabytes) would hold its actor for milliseconds.
pub(super) const MAX_BYTES: usize = 64 * 1024;

/// The longest record `unpack` accepts, a bound on what a damaged length can make it
/// allocate. Records packed under an earlier [`MAX_BYTES`] must still read: never lower it.
const UNPACKED_MAX: usize = 1 << 20;
const _: () = assert!(MAX_BYTES <= UNPACKED_MAX);

/// zstd's level: -1, the first of its fast levels. On records of 20,000 settled orders
/// (dictionary 1, one thread): level 1 took a snapshot of 978 B to 428 B in 6.8 µs and an
/// order's placing event of 416 B to 181 B in 4.7 µs; level -1 to 424 B in 3.6 µs and 213 B
/// in 1.9 µs (a view of 176 B: 82 B in 1.4 – 1.5 µs either way). zstd's entropy tables,
/// built per frame, were 8 % of a hot-SKU sale's server CPU at level 1; dictionary 2 carries
/// tables made at this level, which a frame repeats (29.4 k instructions a record → 21.4 k).
const LEVEL: i32 = -1;

static COMPRESS_WITH: LazyLock<CDict<'static>> =
    LazyLock::new(|| CDict::create(DICTIONARIES[CURRENT as usize], LEVEL));

static DECOMPRESS_WITH: LazyLock<Vec<Option<DDict<'static>>>> = LazyLock::new(|| {
    DICTIONARIES
        .iter()
        .map(|d| (!d.is_empty()).then(|| DDict::create(d)))
        .collect()
});

thread_local! {
    /// A compression context per thread (its tables are made at first use, then kept), set
    /// up once with the current dictionary, or none if that failed (then nothing is packed).
    static COMPRESSOR: RefCell<Option<CCtx<'static>>> = RefCell::new(compressor().ok());
    /// A decompression context per thread, with the dictionary it last used, and the frame
    /// being decompressed (its magic put back).
    static DECOMPRESSOR: RefCell<(DCtx<'static>, u8, Vec<u8>)> =
        RefCell::new((DCtx::create(), 0, Vec::new()));
}

/// The dictionary and frame options stay with the context: each `compress2` starts a new
/// frame with them, whatever the last one ended in (an error included).
fn compressor() -> Result<CCtx<'static>, usize> {
    let mut c = CCtx::create();
    c.set_parameter(CParameter::ContentSizeFlag(false))?;
    c.set_parameter(CParameter::ChecksumFlag(false))?;
    c.set_parameter(CParameter::DictIdFlag(false))?;
    c.ref_cdict(&COMPRESS_WITH)?;
    Ok(c)
}

/// `encoded`, packed when that makes it smaller, else as it is.
pub fn pack(encoded: Vec<u8>) -> Vec<u8> {
    if !(MIN_BYTES..=MAX_BYTES).contains(&encoded.len()) {
        return encoded;
    }
    // A frame longer than the record is of no use: compressing into no more room fails.
    let mut frame = vec![0; encoded.len()];
    let compressed = COMPRESSOR.with(|c| match &mut *c.borrow_mut() {
        Some(c) => c.compress2(&mut frame[..], &encoded).ok(),
        None => None,
    });
    let Some(body) = compressed.and_then(|n| frame[..n].strip_prefix(&MAGIC)) else {
        return encoded;
    };
    let mut out = Vec::with_capacity(8 + body.len());
    out.push(PACKED);
    out.push(CURRENT);
    push_len(&mut out, encoded.len());
    out.extend_from_slice(body);
    if out.len() < encoded.len() {
        out
    } else {
        encoded
    }
}

/// The encoded record `stored` holds: itself, or unpacked.
///
/// Errors: [`JournalError::Corrupt`] for an unknown dictionary, a length past
/// [`UNPACKED_MAX`], a frame not shorter than its length, or one that does not decompress to
/// exactly its length.
pub fn unpack(stored: &[u8]) -> Result<Cow<'_, [u8]>, JournalError> {
    let Some(rest) = stored.strip_prefix(&[PACKED]) else {
        return Ok(Cow::Borrowed(stored));
    };
    let bad = |why: &str| JournalError::Corrupt(format!("packed record: {why}"));
    let (&id, rest) = rest.split_first().ok_or_else(|| bad("no dictionary id"))?;
    let dictionary = DECOMPRESS_WITH
        .get(id as usize)
        .and_then(Option::as_ref)
        .ok_or_else(|| bad("unknown dictionary (written by a newer build?)"))?;
    let (len, frame) = read_len(rest).ok_or_else(|| bad("length"))?;
    if len > UNPACKED_MAX {
        return Err(bad("length past the packed maximum"));
    }
    // (`pack` keeps a frame only when it is shorter than its record)
    if frame.len() >= len {
        return Err(bad("frame as long as its record"));
    }
    let mut out = Vec::with_capacity(len);
    let n = DECOMPRESSOR.with(|d| {
        let (d, loaded, whole) = &mut *d.borrow_mut();
        if *loaded != id {
            d.ref_ddict(dictionary).map_err(|_| bad("dictionary"))?;
            *loaded = id;
        }
        whole.clear();
        whole.extend_from_slice(&MAGIC);
        whole.extend_from_slice(frame);
        d.decompress(&mut out, whole).map_err(|_| {
            // (the next record starts clean, its dictionary set again)
            let _ = d.reset();
            *loaded = 0;
            bad("frame")
        })
    })?;
    if n != len {
        return Err(bad("length does not match"));
    }
    Ok(Cow::Owned(out))
}

/// LEB128: seven bits a byte, low first, the high bit set on all but the last.
fn push_len(out: &mut Vec<u8>, mut len: usize) {
    while len >= 0x80 {
        out.push((len as u8 & 0x7f) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
}

fn read_len(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let mut len = 0usize;
    for (i, &b) in bytes.iter().enumerate().take(4) {
        len |= ((b & 0x7f) as usize) << (7 * i);
        if b & 0x80 == 0 {
            return Some((len, &bytes[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests;
