//! How a dictionary is made (run by hand, never in the suite): typical records read from data
//! dirs, their free text, ids and binary blanked, one sample per record shape, the most common
//! shapes last (zstd reaches the end of a dictionary with the shortest offsets); from
//! dictionary 2 on, zstd's entropy tables made from the records as they are (not blanked) in
//! front of that content (`ZDICT_finalizeDictionary`).
//!
//! `EMPORIUM_DICTIONARY_FROM=dir1:dir2 EMPORIUM_DICTIONARY_TO=file cargo test --release
//! making -- --ignored`, with data dirs written by a build that did not pack (or packed with an
//! earlier dictionary). See `dictionaries.md` for what dictionary 1 was made from.

use crate::persistence::packing::{LEVEL, unpack};
use crate::persistence::sled_layout::{EVENT, events_of_record};
use crate::persistence::sled_open::open_as_made;
use std::collections::HashMap;
use std::path::Path;

/// What a dictionary holds at most (zstd's own trainer defaults to 110 KB; a record reaches
/// back at most its own size plus this).
const MAX_DICTIONARY: usize = 32 * 1024;

/// Samples of one (record type, kind, shape) at most.
const PER_SHAPE: usize = 1;

/// A longer sample (a SKU's snapshot with its reservations) would crowd out the rest.
const MAX_SAMPLE: usize = 2 * 1024;

/// Records of one (record type, kind, shape) at most that the entropy tables are made from.
const STATISTICS_PER_SHAPE: usize = 256;

/// The id written in the dictionary's header (frames carry none: the packed record's own
/// byte names the dictionary). Below 32,768, zstd's range for private dictionaries.
const HEADER_ID: u32 = 2;

#[test]
#[ignore = "makes a dictionary from data dirs; run by hand"]
fn making() {
    let from = std::env::var("EMPORIUM_DICTIONARY_FROM").expect("EMPORIUM_DICTIONARY_FROM");
    let to = std::env::var("EMPORIUM_DICTIONARY_TO").expect("EMPORIUM_DICTIONARY_TO");
    // (shape) -> (records seen, samples)
    let mut shapes: HashMap<Vec<u8>, (usize, Vec<Vec<u8>>)> = HashMap::new();
    // (shape) -> records as they are
    let mut statistics: HashMap<Vec<u8>, Vec<Vec<u8>>> = HashMap::new();
    for dir in from.split(':') {
        let db = open_as_made(&Path::new(dir).join("db")).unwrap();
        let tree = db.open_tree("entities").unwrap();
        for row in tree.iter() {
            let (k, v) = row.unwrap();
            for record in records(&k, &v) {
                let Some((shape, blanked)) = blank(&record) else {
                    continue;
                };
                if blanked.len() > MAX_SAMPLE {
                    continue;
                }
                let mut group = k
                    .iter()
                    .take_while(|&&b| b != 0)
                    .copied()
                    .collect::<Vec<_>>();
                group.extend_from_slice(&shape);
                let records = statistics.entry(group.clone()).or_default();
                if records.len() < STATISTICS_PER_SHAPE {
                    records.push(record);
                }
                let (seen, samples) = shapes.entry(group).or_default();
                *seen += 1;
                if samples.len() < PER_SHAPE {
                    samples.push(blanked);
                }
            }
        }
    }
    let mut ranked: Vec<(usize, Vec<Vec<u8>>)> = shapes.into_values().collect();
    // most common first, to keep when the dictionary is full; written in reverse
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let mut kept = Vec::new();
    let mut size = 0;
    for (_, samples) in ranked {
        for s in samples {
            if size + s.len() <= MAX_DICTIONARY {
                size += s.len();
                kept.push(s);
            }
        }
    }
    let content: Vec<u8> = kept.into_iter().rev().flatten().collect();
    let mut records: Vec<Vec<u8>> = statistics.into_values().flatten().collect();
    records.sort();
    let dictionary = finalize(&content, &records);
    std::fs::write(&to, &dictionary).unwrap();
    println!(
        "{} bytes, crc32 {:#010x}",
        dictionary.len(),
        crc32fast::hash(&dictionary)
    );
}

/// `content` behind zstd's dictionary header and the entropy tables (literals, and the
/// offset, match and literal length codes) of `records` compressed against it at [`LEVEL`].
/// With the tables in the dictionary, a small record's frame repeats them instead of building
/// and describing its own (README, "Packing").
fn finalize(content: &[u8], records: &[Vec<u8>]) -> Vec<u8> {
    use zstd::zstd_safe::zstd_sys;
    let joined = records.concat();
    let sizes: Vec<usize> = records.iter().map(Vec::len).collect();
    let mut out = vec![0u8; content.len() + 64 * 1024];
    let params = zstd_sys::ZDICT_params_t {
        compressionLevel: LEVEL,
        notificationLevel: 0,
        dictID: HEADER_ID,
    };
    // SAFETY: each pointer and length pair names one live buffer (`out` is written, the
    // others only read), and `sizes` adds up to `joined.len()`.
    let n = unsafe {
        zstd_sys::ZDICT_finalizeDictionary(
            out.as_mut_ptr().cast(),
            out.len(),
            content.as_ptr().cast(),
            content.len(),
            joined.as_ptr().cast(),
            sizes.as_ptr(),
            u32::try_from(sizes.len()).unwrap(),
            params,
        )
    };
    // SAFETY: a plain function of a number.
    assert_eq!(
        unsafe { zstd_sys::ZDICT_isError(n) },
        0,
        "ZDICT_finalizeDictionary"
    );
    out.truncate(n);
    out
}

/// The encoded records a stored value holds: an event, the events of a run, or a snapshot,
/// view or archive record (a snapshot after its 8-byte seq; a chunked one is left out).
fn records(key: &[u8], value: &[u8]) -> Vec<Vec<u8>> {
    if key.first() == Some(&EVENT) && value.first() == Some(&0xC1) {
        // (a run is stored under its last event's seq, the key's last 8 bytes)
        let last = key
            .last_chunk::<8>()
            .map_or(0, |seq| u64::from_be_bytes(*seq));
        let events = events_of_record(last, value).unwrap_or_default();
        return events
            .iter()
            .filter_map(|(_, e)| unpack(e).ok().map(|r| r.into_owned()))
            .collect();
    }
    [0, 8]
        .iter()
        .filter_map(|&at| value.get(at..))
        .filter_map(|v| unpack(v).ok().map(|r| r.into_owned()))
        .find(|r| matches!(r.first(), Some(0x80..=0x8f | 0xde)) && value_end(r, 0) == Some(r.len()))
        .into_iter()
        .collect()
}

/// The record with every string that is not a name (a field's, an enum variant's, a
/// currency's) made empty, every binary made empty; and its shape: the map keys in order.
fn blank(record: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::with_capacity(record.len());
    let mut shape = Vec::new();
    let end = walk(record, 0, false, &mut out, &mut shape)?;
    (end == record.len()).then_some((shape, out))
}

/// Where the msgpack value at `at` ends.
fn value_end(bytes: &[u8], at: usize) -> Option<usize> {
    walk(bytes, at, false, &mut Vec::new(), &mut Vec::new())
}

/// Copies the value at `at` to `out`, blanked (see [`blank`]), its map keys appended to
/// `shape`; returns where it ends.
fn walk(
    b: &[u8],
    at: usize,
    is_key: bool,
    out: &mut Vec<u8>,
    shape: &mut Vec<u8>,
) -> Option<usize> {
    let m = *b.get(at)?;
    let be = |from: usize, n: usize| -> Option<usize> {
        let bytes = b.get(from..from + n)?;
        Some(bytes.iter().fold(0usize, |acc, &x| (acc << 8) | x as usize))
    };
    let copy = |out: &mut Vec<u8>, end: usize| -> Option<usize> {
        out.extend_from_slice(b.get(at..end)?);
        Some(end)
    };
    let (items, header) = match m {
        0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => return copy(out, at + 1),
        0xcc | 0xd0 => return copy(out, at + 2),
        0xcd | 0xd1 => return copy(out, at + 3),
        0xca | 0xce | 0xd2 => return copy(out, at + 5),
        0xcb | 0xcf | 0xd3 => return copy(out, at + 9),
        0xd4..=0xd8 => return copy(out, at + 2 + (1 << (m - 0xd4))),
        0xc7 => return copy(out, at + 3 + be(at + 1, 1)?),
        0xc8 => return copy(out, at + 4 + be(at + 1, 2)?),
        0xc9 => return copy(out, at + 6 + be(at + 1, 4)?),
        0xc4..=0xc6 => {
            let n = 1 << (m - 0xc4);
            let end = at + 1 + n + be(at + 1, n)?;
            b.get(..end)?;
            out.extend_from_slice(&[0xc4, 0]);
            return Some(end);
        }
        0xa0..=0xbf | 0xd9..=0xdb => {
            let (len, start) = match m {
                0xa0..=0xbf => ((m & 0x1f) as usize, at + 1),
                _ => {
                    let n = 1 << (m - 0xd9);
                    (be(at + 1, n)?, at + 1 + n)
                }
            };
            let text = b.get(start..start + len)?;
            if is_key {
                // (a key that is data, a cart's SKU id, is a field of no shape)
                shape.extend_from_slice(if is_name(text) { text } else { b"*" });
                shape.push(0);
            }
            if is_name(text) {
                return copy(out, start + len);
            }
            out.push(0xa0);
            return Some(start + len);
        }
        0x90..=0x9f => ((m & 0x0f) as usize, 1),
        0x80..=0x8f => (2 * (m & 0x0f) as usize, 1),
        0xdc => (be(at + 1, 2)?, 3),
        0xdd => (be(at + 1, 4)?, 5),
        0xde => (2 * be(at + 1, 2)?, 3),
        0xdf => (2 * be(at + 1, 4)?, 5),
        0xc1 => return None,
    };
    let is_map = matches!(m, 0x80..=0x8f | 0xde | 0xdf);
    let mut pos = copy(out, at + header)?;
    for i in 0..items {
        pos = walk(b, pos, is_map && i % 2 == 0, out, shape)?;
    }
    Some(pos)
}

/// A name: an enum's variant, a status, a currency — short, and lower-case with underscores
/// or an upper-case code; free text, ids and digests are not.
fn is_name(text: &[u8]) -> bool {
    let lower = text.iter().all(|c| c.is_ascii_lowercase() || *c == b'_');
    let code = text.len() == 3 && text.iter().all(u8::is_ascii_uppercase);
    !text.is_empty() && text.len() <= 24 && (lower || code)
}

/// What each dictionary packs the records of data dirs to, and in how long (run by hand):
/// `EMPORIUM_DICTIONARY_FROM=dir1:dir2 cargo test --release comparing -- --ignored --nocapture`.
#[test]
#[ignore = "compares the dictionaries on data dirs; run by hand"]
fn comparing() {
    use crate::persistence::packing::{DICTIONARIES, MAX_BYTES, MIN_BYTES};
    // (records up to MAX_SAMPLE: what the hot path packs; a SKU's large snapshot is another matter)
    use zstd::zstd_safe::{CCtx, CDict, CParameter};
    let from = std::env::var("EMPORIUM_DICTIONARY_FROM").expect("EMPORIUM_DICTIONARY_FROM");
    let mut all = Vec::new();
    for dir in from.split(':') {
        let db = open_as_made(&Path::new(dir).join("db")).unwrap();
        let tree = db.open_tree("entities").unwrap();
        for row in tree.iter() {
            let (k, v) = row.unwrap();
            all.extend(
                records(&k, &v)
                    .into_iter()
                    .filter(|r| (MIN_BYTES..=MAX_SAMPLE).contains(&r.len())),
            );
        }
    }
    let raw: usize = all.iter().map(Vec::len).sum();
    println!("{} records, {raw} bytes", all.len());
    for (id, d) in DICTIONARIES.iter().enumerate().skip(1) {
        let cdict = CDict::create(d, LEVEL);
        let mut c = CCtx::create();
        c.set_parameter(CParameter::ContentSizeFlag(false)).unwrap();
        c.set_parameter(CParameter::ChecksumFlag(false)).unwrap();
        c.set_parameter(CParameter::DictIdFlag(false)).unwrap();
        c.ref_cdict(&cdict).unwrap();
        let mut out = vec![0u8; MAX_BYTES * 2];
        let mut best = f64::MAX;
        let mut bytes = 0;
        for _ in 0..5 {
            bytes = 0;
            let t = std::time::Instant::now();
            for r in &all {
                bytes += c.compress2(&mut out[..], r).unwrap();
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "dictionary {id}: {bytes} bytes ({:.1} %), {:.2} us a record",
            100.0 * bytes as f64 / raw as f64,
            best * 1e6 / all.len() as f64
        );
    }
}
