use super::*;
use serde::Serialize;

#[derive(Serialize)]
struct Payment {
    payment_key: String,
    amount: u64,
    status: &'static str,
    approved_at: u64,
}

#[derive(Serialize)]
struct Order {
    user_id: String,
    status: &'static str,
    currency: &'static str,
    total: u64,
    payment: Payment,
    history: Vec<(&'static str, u64)>,
}

fn an_order(n: u64) -> Vec<u8> {
    rmp_serde::to_vec_named(&Order {
        user_id: format!("u_{n:020}"),
        status: "delivered",
        currency: "KRW",
        total: 39_000 + n,
        payment: Payment {
            payment_key: format!("pk_{n:032x}"),
            amount: 39_000 + n,
            status: "approved",
            approved_at: 1_796_000_000_000 + n,
        },
        history: vec![("awaiting_payment", 1), ("paid", 2), ("delivered", 3)],
    })
    .unwrap()
}

#[test]
fn a_record_packs_smaller_and_unpacks_to_itself() {
    // Given a typical record, named msgpack
    let record = an_order(7);
    // When it is packed
    let packed = pack(record.clone());
    // Then it is marked, smaller, and reads back byte for byte
    assert_eq!(packed[..2], [PACKED, CURRENT]);
    assert!(
        packed.len() < record.len(),
        "{} >= {}",
        packed.len(),
        record.len()
    );
    assert_eq!(&*unpack(&packed).unwrap(), &record[..]);
}

#[test]
fn the_dictionary_takes_the_field_names_back() {
    // Given the same record packed against the dictionary and compressed without one
    let record = an_order(7);
    let packed = pack(record.clone());
    let plain = zstd::block::compress(&record, LEVEL).unwrap();
    // Then the dictionary's frame is the smaller one
    assert!(
        packed.len() < plain.len(),
        "{} vs {}",
        packed.len(),
        plain.len()
    );
}

#[test]
fn small_large_and_incompressible_records_are_stored_as_they_are() {
    let small = rmp_serde::to_vec_named(&("a", 1u8)).unwrap();
    assert!(small.len() < MIN_BYTES);
    assert!(pack(small.clone()) == small, "a small record was packed");
    // one byte either side of the bounds
    let mut just_under = rmp_serde::to_vec_named(&vec!["paid"; MIN_BYTES / 5]).unwrap();
    just_under.resize(MIN_BYTES - 1, 0xc0);
    assert!(
        pack(just_under.clone()) == just_under,
        "{} B were packed",
        MIN_BYTES - 1
    );
    let mut just_over = rmp_serde::to_vec_named(&vec!["paid"; MAX_BYTES / 5]).unwrap();
    just_over.resize(MAX_BYTES + 1, 0xc0);
    assert!(
        pack(just_over.clone()) == just_over,
        "{} B were packed",
        MAX_BYTES + 1
    );

    let large = rmp_serde::to_vec_named(&vec!["delivered"; MAX_BYTES / 8]).unwrap();
    assert!(large.len() > MAX_BYTES);
    assert!(pack(large.clone()) == large, "a large record was packed");

    // (random bytes, xorshift: no frame is smaller than they are)
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..2_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let noise = rmp_serde::to_vec_named(&serde_bytes::ByteBuf::from(noise)).unwrap();
    assert!(pack(noise.clone()) == noise, "noise was packed");
}

#[test]
fn a_record_that_did_not_pack_leaves_the_next_one_packing() {
    // Given records that fail to pack on this thread: too little room for their frame
    let mut x = 7u64;
    for len in [60, 600, 6_000] {
        let noise: Vec<u8> = (0..len)
            .map(|_| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                (x >> 33) as u8
            })
            .collect();
        let noise = rmp_serde::to_vec_named(&serde_bytes::ByteBuf::from(noise)).unwrap();
        assert!(pack(noise.clone()) == noise, "noise was packed");
        // When a typical record follows, then it packs, and reads back
        let packed = pack(an_order(len));
        assert_eq!(packed[0], PACKED, "after {len} bytes of noise");
        assert_eq!(&*unpack(&packed).unwrap(), &an_order(len)[..]);
    }
    // And a damaged record read on this thread leaves the next one reading
    let packed = pack(an_order(1));
    assert!(unpack(&packed[..packed.len() - 3]).is_err());
    assert_eq!(&*unpack(&pack(an_order(2))).unwrap(), &an_order(2)[..]);
}

#[test]
fn an_unpacked_record_reads_as_it_is() {
    // Given a record as builds before packing wrote it
    let record = an_order(1);
    // Then unpacking borrows it unchanged
    assert!(matches!(unpack(&record).unwrap(), Cow::Borrowed(r) if r == &record[..]));
}

#[test]
fn every_size_between_the_bounds_round_trips() {
    for n in [
        MIN_BYTES, 127, 128, 129, 1_000, 16_383, 16_384, 16_385, MAX_BYTES,
    ] {
        // a msgpack array of enum-like strings, `n` bytes long
        let mut record = rmp_serde::to_vec_named(&vec!["paid"; n / 5]).unwrap();
        record.resize(n, 0xc0);
        let packed = pack(record.clone());
        assert_eq!(packed[0], PACKED, "{n} bytes were not packed");
        assert_eq!(&*unpack(&packed).unwrap(), &record[..], "{n} bytes");
    }
}

#[test]
fn a_damaged_packed_record_is_an_error_not_a_panic() {
    let packed = pack(an_order(3));
    let corrupt = |bytes: &[u8]| matches!(unpack(bytes), Err(JournalError::Corrupt(_)));
    // an unknown dictionary (a newer build's)
    let mut newer = packed.clone();
    newer[1] = 200;
    assert!(corrupt(&newer));
    // id 0 is never a dictionary
    let mut zero = packed.clone();
    zero[1] = 0;
    assert!(corrupt(&zero));
    // cut anywhere
    for cut in 1..packed.len() {
        assert!(corrupt(&packed[..cut]), "cut at {cut}");
    }
    // a length that does not match what the frame holds
    let mut longer = packed.clone();
    longer[2] += 1;
    assert!(corrupt(&longer));
    // a length past the maximum, one that never ends, and one no longer than its frame
    assert!(corrupt(&[PACKED, CURRENT, 0xff, 0xff, 0x7f, 1, 2, 3]));
    assert!(corrupt(&[PACKED, CURRENT, 3, 1, 2, 3]));
    assert!(corrupt(&[PACKED, CURRENT, 0xff, 0xff, 0xff, 0xff, 0xff]));
    // garbage in the frame
    let mut garbage = packed.clone();
    for b in garbage.iter_mut().skip(4) {
        *b ^= 0x5a;
    }
    assert!(unpack(&garbage).is_err());
}

#[test]
fn lengths_round_trip() {
    for len in [0, 1, 0x7f, 0x80, 0x3fff, 0x4000, MAX_BYTES] {
        let mut out = Vec::new();
        push_len(&mut out, len);
        out.push(9);
        assert_eq!(read_len(&out), Some((len, &[9u8][..])), "{len}");
    }
}

/// A released dictionary must never change: records packed with it would no longer read.
#[test]
fn released_dictionaries_are_unchanged() {
    let sums: Vec<(usize, u32)> = DICTIONARIES
        .iter()
        .map(|d| (d.len(), crc32fast::hash(d)))
        .collect();
    assert_eq!(sums, [(0, 0), RELEASED_1, RELEASED_2]);
}

/// Dictionary 1's length and CRC-32, as released.
const RELEASED_1: (usize, u32) = (10_159, 0x9837_a715);

/// Dictionary 2's length and CRC-32, as released.
const RELEASED_2: (usize, u32) = (10_018, 0xdace_1e42);

mod making;

/// `pack(an_order(7))` as each dictionary was released (1: 2026-12-01; 2: 2026-12-02): what
/// data dirs and Redis hold must read for as long as they may hold it, whatever changes in
/// `pack`.
const RELEASED_PACKED: [&str; 2] = [
    "7a01df010000650200c886b6755f3037a5985f84d923706b37985f29f1280793\
     010203110035844648c8c3b1903df321132957cc01206c242438e72c166802fca611080ad1c019f45852b1e3a1\
     c82eced35b44be02",
    "7a02df0100001d0200c086b6755f3037985f84d923706b37985f29f128079301020310fc79905a83f1e710d00a\
     712bf7d8d9187c9b989f0306604f5bb1a81035281208e0b62fb61d48934982",
];

#[test]
fn a_record_packed_by_an_earlier_build_still_reads() {
    for released in RELEASED_PACKED {
        let stored: Vec<u8> = (0..released.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&released[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(&*unpack(&stored).unwrap(), &an_order(7)[..]);
    }
}
