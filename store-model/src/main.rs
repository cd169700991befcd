//! A model of what the sled journal writes for a hot-SKU drop and for a delivered order, run
//! on sled 0.34.7 and on fjall 3, to measure what the store itself costs (README, "Which
//! store").
//!
//! `hot N`: N drop purchases, `--per-commit B` to a group commit (8 by default: a closed loop
//! of 64 buyers made commits of about 7 events in the engine). Each purchase first checks that
//! its order is new as the engine does (a point read of its view, then a point read of its
//! snapshot and a prefix scan of its events), then writes the order's placing event (213 B),
//! view (92 B), reminder and two index entries (user and status), and its share of the SKU's
//! event runs (250 B per purchase, runs of about 1,250 B). Each commit also writes the SKU's
//! view, and the SKU's snapshot (120 B per open reservation, in 1,365 B chunks, after a range
//! read of the chunks stored past the new count) whenever max(1,000, reservations) events have
//! passed since the last one; then its events behind the snapshot are trimmed, 4,096 records
//! per commit, each trim a range read from where the last one stopped (the engine reads from
//! the SKU's first event, which costs sled nothing more but would make an LSM store step over
//! every earlier trim's tombstones). Each commit is one atomic batch and one flush (sled
//! `flush`, which on Linux is `sync_file_range` of the range it wrote; fjall `persist` with
//! `SyncData`, an `fdatasync` of its journal, the stronger). Values are random bytes: the
//! journal's are packed (`persistence::packing`), which leaves little for a store's own
//! compression. Reports CPU per purchase (all threads, `getrusage`), counting the background
//! flushes and compactions the run left behind, purchases a second, disk and peak RSS.
//!
//! `settle N`: N shoppers' sealed-data keys (101 B, written before and not timed), the same
//! N purchases, then each order's eleven more events with its view rewritten, its reminder and
//! the index of owed steps moved each time and its status entry moved (paid, shipped,
//! delivered), then a snapshot (466 B) and final view (112 B) that remove its twelve events:
//! the records of a delivered order at rest. Reports bytes on disk per order after a reopen,
//! and for fjall after a major compaction (fjall compacts by itself, this does all of it at
//! once; sled 0.34 has no online compaction: `emporium admin compact` copies a stopped node's
//! store instead).
//!
//! Stores: `sled`; `sled-fdatasync` and `sled-syncfs` (sled with an `fdatasync` of its log
//! file, or a `syncfs` of its filesystem, after each flush); `sled-gc` (sled's own flusher on,
//! every `GC_MS` milliseconds, 200 by default: it also rewrites the live pages of segments at
//! most half live, which the journal's sled, flusher off, does only as it writes); `fjall`; `none` (no store: what
//! the model itself costs). The data goes to `--dir`
//! (default: the temp dir), a fresh directory per store and mode.

use rand::{Rng, RngCore, SeedableRng};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

type Record = (Vec<u8>, Vec<u8>);

/// What the journal asks of its store.
trait Store {
    /// One atomic batch of puts and removals, then a durable flush.
    fn commit(&self, puts: &[Record], removals: &[Vec<u8>]);
    fn contains(&self, key: &[u8]) -> bool;
    fn any_with_prefix(&self, prefix: &[u8]) -> bool;
    /// Up to `limit` keys from `from` to `to`, both included.
    fn keys(&self, from: &[u8], to: &[u8], limit: usize) -> Vec<Vec<u8>>;
    /// fjall: flush the memtables and wait for the compactions that follow.
    fn quiesce(&self) {}
    fn major_compaction(&self) {}
    fn close(&self);
}

/// sled, and what else each flush does: sled 0.34's flush on Linux is `sync_file_range` of its
/// log, which commits neither the file's size nor a drive's cache, and the files it writes for
/// large pages under `blobs/` are never synced (README, "Durability").
struct Sled(sled::Db, sled::Tree, AfterFlush);

enum AfterFlush {
    Nothing,
    /// `fdatasync` of the log file: its size and the drive's cache, not the blobs.
    SyncLog(std::fs::File),
    /// `syncfs` of the filesystem the store is on: everything, blobs and directories too.
    SyncFs(std::fs::File),
}

impl Store for Sled {
    fn commit(&self, puts: &[Record], removals: &[Vec<u8>]) {
        let mut batch = sled::Batch::default();
        for (k, v) in puts {
            batch.insert(k.as_slice(), v.as_slice());
        }
        for k in removals {
            batch.remove(k.as_slice());
        }
        self.1.apply_batch(batch).expect("sled batch");
        self.0.flush().expect("sled flush");
        match &self.2 {
            AfterFlush::Nothing => {}
            AfterFlush::SyncLog(log) => log.sync_data().expect("fdatasync"),
            AfterFlush::SyncFs(log) => {
                // SAFETY: a valid open file descriptor.
                let synced = unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(log)) };
                assert_eq!(synced, 0, "syncfs: {}", std::io::Error::last_os_error());
            }
        }
    }
    fn contains(&self, key: &[u8]) -> bool {
        self.1.contains_key(key).expect("sled read")
    }
    fn any_with_prefix(&self, prefix: &[u8]) -> bool {
        self.1.scan_prefix(prefix).next().is_some()
    }
    fn keys(&self, from: &[u8], to: &[u8], limit: usize) -> Vec<Vec<u8>> {
        let keys = self.1.range(from..=to).keys().take(limit);
        keys.map(|k| k.expect("sled range").to_vec()).collect()
    }
    fn close(&self) {
        self.0.flush().expect("sled flush");
    }
}

struct Fjall(fjall::Database, fjall::Keyspace);

impl Store for Fjall {
    fn commit(&self, puts: &[Record], removals: &[Vec<u8>]) {
        let mut batch = self.0.batch();
        for (k, v) in puts {
            batch.insert(&self.1, k.as_slice(), v.as_slice());
        }
        for k in removals {
            batch.remove(&self.1, k.as_slice());
        }
        batch.commit().expect("fjall batch");
        self.0
            .persist(fjall::PersistMode::SyncData)
            .expect("fjall persist");
    }
    fn contains(&self, key: &[u8]) -> bool {
        self.1.contains_key(key).expect("fjall read")
    }
    fn any_with_prefix(&self, prefix: &[u8]) -> bool {
        self.1.prefix(prefix).next().is_some()
    }
    fn keys(&self, from: &[u8], to: &[u8], limit: usize) -> Vec<Vec<u8>> {
        let keys = self.1.range(from..=to).take(limit);
        keys.map(|g| g.key().expect("fjall range").to_vec())
            .collect()
    }
    fn quiesce(&self) {
        self.1.rotate_memtable_and_wait().expect("fjall flush");
        while self.0.outstanding_flushes() > 0 || self.0.active_compactions() > 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    fn major_compaction(&self) {
        self.1.major_compact().expect("fjall compaction");
        self.quiesce();
    }
    fn close(&self) {
        self.0
            .persist(fjall::PersistMode::SyncAll)
            .expect("fjall persist");
    }
}

/// No store: what the model itself costs, to subtract.
struct Nothing;

impl Store for Nothing {
    fn commit(&self, _: &[Record], _: &[Vec<u8>]) {}
    fn contains(&self, _: &[u8]) -> bool {
        false
    }
    fn any_with_prefix(&self, _: &[u8]) -> bool {
        false
    }
    fn keys(&self, _: &[u8], _: &[u8], _: usize) -> Vec<Vec<u8>> {
        Vec::new()
    }
    fn close(&self) {}
}

fn open(store: &str, dir: &Path) -> Box<dyn Store> {
    match store {
        "none" => {
            std::fs::create_dir_all(dir).expect("a directory");
            Box::new(Nothing)
        }
        // As `persistence::sled_open` and `SledJournal` open a node's journal.
        "sled" | "sled-fdatasync" | "sled-syncfs" | "sled-gc" => {
            let gc = std::env::var("GC_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(200);
            let db = sled::Config::new()
                .path(dir)
                .segment_size(128 * 1024)
                .cache_capacity(256 * 1024 * 1024)
                .flush_every_ms(if store == "sled-gc" { Some(gc) } else { None })
                .open()
                .expect("sled open");
            let tree = db.open_tree("journal").expect("sled tree");
            let log = || std::fs::File::open(dir.join("db")).expect("sled's log file");
            let after = match store {
                "sled-fdatasync" => AfterFlush::SyncLog(log()),
                "sled-syncfs" => AfterFlush::SyncFs(log()),
                _ => AfterFlush::Nothing,
            };
            Box::new(Sled(db, tree, after))
        }
        "fjall" => {
            let db = fjall::Database::builder(dir).open().expect("fjall open");
            let ks = db
                .keyspace("journal", fjall::KeyspaceCreateOptions::default)
                .expect("fjall keyspace");
            Box::new(Fjall(db, ks))
        }
        other => {
            panic!("no store {other}: sled, sled-fdatasync, sled-syncfs, sled-gc, fjall or none")
        }
    }
}

/// Seconds of CPU this process has used, all threads, and its peak RSS in KiB.
fn usage() -> (f64, i64) {
    // SAFETY: rusage is plain integers, for which all zeroes is a valid value; getrusage
    // fills the one it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(u.ru_utime) + secs(u.ru_stime), u.ru_maxrss)
}

fn disk(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .expect("read dir")
        .map(|e| {
            let e = e.expect("dir entry");
            let m = e.metadata().expect("metadata");
            if m.is_dir() { disk(&e.path()) } else { m.len() }
        })
        .sum()
}

/// fjall's journal files (`*.jnl`): bounded by its `max_journaling_size` (512 MiB by default)
/// whatever the data's size, and dropped once their memtables are flushed.
fn journal_files(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "jnl"))
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum()
}

fn random(r: &mut impl RngCore, n: usize) -> Vec<u8> {
    let mut v = vec![0; n];
    r.fill_bytes(&mut v);
    v
}

fn key(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn seq(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// A 26-character id, as the engine's order and user ids.
fn id(r: &mut impl Rng) -> Vec<u8> {
    const DIGITS: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";
    (0..26).map(|_| DIGITS[r.gen_range(0..32)]).collect()
}

/// The bytes of one chunk of a large snapshot, as `sled_layout::run_bytes` gives them for the
/// journal's default 128 KiB segments.
const CHUNK_BYTES: usize = 1_365;
/// Records a commit may remove behind a snapshot (`sled_writer`'s `TRIM_PER_WRITE`).
const TRIM_PER_COMMIT: usize = 4_096;
/// Orders, or shoppers' sealed-data keys, to a commit in `settle`.
const ORDERS_PER_COMMIT: usize = 32;

struct Order {
    id: Vec<u8>,
    at: [u8; 8],
}

/// The hot SKU's stream: its event runs, snapshots and trims.
struct Sku {
    seq: u64,
    snapshot_seq: u64,
    /// Events up to here are behind a snapshot and still stored.
    trim_upto: Option<u64>,
    /// No event before this is stored: a trim reads from here, not from the first seq, so an
    /// LSM store does not step over the tombstones of every earlier trim.
    trimmed_before: u64,
}

impl Sku {
    const EVENT: &[u8] = b"e\x00sku\x00hot\x00";
    const SNAPSHOT: &[u8] = b"s\x00sku\x00hot\x00";

    /// A snapshot when due, then a slice of the trim behind it.
    fn snapshot_and_trim(
        &mut self,
        store: &dyn Store,
        puts: &mut Vec<Record>,
        removals: &mut Vec<Vec<u8>>,
        r: &mut impl RngCore,
    ) {
        let reservations = self.seq;
        if self.seq - self.snapshot_seq >= reservations.max(1_000) {
            let state = random(r, 120 * reservations as usize);
            let count = state.len().div_ceil(CHUNK_BYTES) as u32;
            let stale = store.keys(
                &key(&[Self::SNAPSHOT, &count.to_be_bytes()]),
                &key(&[Self::SNAPSHOT, &u32::MAX.to_be_bytes()]),
                usize::MAX,
            );
            removals.extend(stale);
            for (i, chunk) in (0u32..).zip(state.chunks(CHUNK_BYTES)) {
                puts.push((key(&[Self::SNAPSHOT, &i.to_be_bytes()]), chunk.to_vec()));
            }
            puts.push((Self::SNAPSHOT.to_vec(), random(r, 20)));
            self.snapshot_seq = self.seq;
            self.trim_upto = Some(self.seq);
        }
        if let Some(upto) = self.trim_upto {
            let from = key(&[Self::EVENT, &seq(self.trimmed_before)]);
            let behind = store.keys(&from, &key(&[Self::EVENT, &seq(upto)]), TRIM_PER_COMMIT);
            if behind.len() < TRIM_PER_COMMIT {
                self.trim_upto = None;
                self.trimmed_before = upto + 1;
            } else if let Some(last) = behind.last() {
                let tail: [u8; 8] = last[last.len() - 8..].try_into().expect("a seq");
                self.trimmed_before = u64::from_be_bytes(tail) + 1;
            }
            removals.extend(behind);
        }
        puts.push((b"v\x00sku\x00hot".to_vec(), random(r, 60)));
    }
}

/// The hot-SKU purchases, `per_commit` to a group commit; returns the orders.
fn purchases(
    store: &dyn Store,
    users: &[Vec<u8>],
    per_commit: usize,
    r: &mut impl Rng,
) -> Vec<Order> {
    let mut orders = Vec::with_capacity(users.len());
    let mut sku = Sku {
        seq: 0,
        snapshot_seq: 0,
        trim_upto: None,
        trimmed_before: 0,
    };
    for commit in users.chunks(per_commit) {
        let (mut puts, mut removals, mut run) = (Vec::new(), Vec::new(), Vec::new());
        for user in commit {
            let order = id(r);
            let at = seq(orders.len() as u64);
            // Is it known (its view); was it ever written (`SledJournal::exists`).
            store.contains(&key(&[b"v", b"order\0", &order]));
            store.contains(&key(&[b"s", b"order\0", &order]));
            store.any_with_prefix(&key(&[b"e", b"order\0", &order]));
            sku.seq += 1;
            run.extend(random(r, 250));
            if run.len() > 1_100 {
                puts.push((key(&[Sku::EVENT, &seq(sku.seq)]), std::mem::take(&mut run)));
            }
            puts.push((key(&[b"e", b"order\0", &order, &seq(1)]), random(r, 213)));
            puts.push((key(&[b"v", b"order\0", &order]), random(r, 92)));
            puts.push((key(&[b"d", b"order\0", &at, &seq(0), &order]), vec![]));
            puts.push((
                key(&[b"x", b"order.user:", user, b"\0", &at, &order]),
                vec![],
            ));
            puts.push((key(&[b"x", b"order.status:placed\0", &at, &order]), vec![]));
            orders.push(Order { id: order, at });
        }
        if !run.is_empty() {
            puts.push((key(&[Sku::EVENT, &seq(sku.seq)]), run));
        }
        sku.snapshot_and_trim(store, &mut puts, &mut removals, r);
        store.commit(&puts, &removals);
    }
    orders
}

/// Each order's life after the purchase, [`ORDERS_PER_COMMIT`] to a commit, to a delivered
/// order at rest.
fn settle(store: &dyn Store, orders: &[Order], r: &mut impl Rng) {
    const STATUSES: [&[u8]; 12] = [
        b"placed",
        b"paid",
        b"paid",
        b"paid",
        b"shipped",
        b"shipped",
        b"shipped",
        b"shipped",
        b"delivered",
        b"delivered",
        b"delivered",
        b"delivered",
    ];
    for step in 1..STATUSES.len() {
        for chunk in orders.chunks(ORDERS_PER_COMMIT) {
            let (mut puts, mut removals) = (Vec::new(), Vec::new());
            for o in chunk {
                let (was, is) = (STATUSES[step - 1], STATUSES[step]);
                let (then, now) = (seq(step as u64 - 1), seq(step as u64));
                puts.push((
                    key(&[b"e", b"order\0", &o.id, &seq(step as u64 + 1)]),
                    random(r, 150),
                ));
                puts.push((key(&[b"v", b"order\0", &o.id]), random(r, 100)));
                removals.push(key(&[b"d", b"order\0", &o.at, &then, &o.id]));
                removals.push(key(&[b"x", b"order.owing\0", &then, &o.id]));
                if step + 1 < STATUSES.len() {
                    puts.push((key(&[b"d", b"order\0", &o.at, &now, &o.id]), vec![]));
                    puts.push((key(&[b"x", b"order.owing\0", &now, &o.id]), vec![]));
                }
                if was != is {
                    removals.push(key(&[b"x", b"order.status:", was, b"\0", &o.at, &o.id]));
                    puts.push((
                        key(&[b"x", b"order.status:", is, b"\0", &o.at, &o.id]),
                        vec![],
                    ));
                }
            }
            store.commit(&puts, &removals);
        }
    }
    for chunk in orders.chunks(ORDERS_PER_COMMIT) {
        let (mut puts, mut removals) = (Vec::new(), Vec::new());
        for o in chunk {
            puts.push((key(&[b"s", b"order\0", &o.id]), random(r, 466)));
            puts.push((key(&[b"v", b"order\0", &o.id]), random(r, 112)));
            for s in 1..=STATUSES.len() as u64 {
                removals.push(key(&[b"e", b"order\0", &o.id, &seq(s)]));
            }
        }
        store.commit(&puts, &removals);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage_line = "usage: emporium-store-model sled|sled-fdatasync|sled-syncfs|fjall|none hot|settle N [--per-commit B] [--dir DIR]";
    if args.len() < 3 || args.iter().any(|a| a == "--help") {
        println!("{usage_line}");
        return;
    }
    let option = |name: &str| {
        let i = args.iter().position(|a| a == name)?;
        Some(args.get(i + 1).expect(usage_line).clone())
    };
    let (store_name, mode) = (args[0].as_str(), args[1].as_str());
    let n: usize = args[2].parse().expect(usage_line);
    let per_commit: usize = option("--per-commit").map_or(8, |b| b.parse().expect(usage_line));
    let base = option("--dir").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = base.join(format!("emporium-store-model-{store_name}-{mode}"));
    let _ = std::fs::remove_dir_all(&dir);
    let mut r = rand::rngs::StdRng::seed_from_u64(7);

    let store = open(store_name, &dir);
    let users: Vec<Vec<u8>> = (0..n).map(|_| id(&mut r)).collect();
    if mode == "settle" {
        for chunk in users.chunks(ORDERS_PER_COMMIT) {
            let keys: Vec<Record> = chunk
                .iter()
                .map(|u| (key(&[b"k", u]), random(&mut r, 74)))
                .collect();
            store.commit(&keys, &[]);
        }
    }
    let ((cpu0, _), t0) = (usage(), Instant::now());
    let orders = purchases(&*store, &users, per_commit, &mut r);
    let took = t0.elapsed();
    let cpu_run = usage().0;
    store.quiesce();
    let (cpu1, rss) = usage();
    println!(
        "{store_name} {mode}: {n} purchases, {per_commit} a commit: {:.1} us of CPU each ({:.1} during the run), {:.0} a second, {} B on disk each, peak RSS {} MiB",
        (cpu1 - cpu0) * 1e6 / n as f64,
        (cpu_run - cpu0) * 1e6 / n as f64,
        n as f64 / took.as_secs_f64(),
        disk(&dir) / n as u64,
        rss / 1024,
    );
    if mode != "settle" {
        store.close();
        return;
    }
    let (cpu0, t0) = (usage().0, Instant::now());
    settle(&*store, &orders, &mut r);
    store.quiesce();
    println!(
        "{store_name} settle: the orders' lives in {:.1} s, {:.1} us of CPU per order",
        t0.elapsed().as_secs_f64(),
        (usage().0 - cpu0) * 1e6 / n as f64
    );
    let per_order = |what: &str| {
        println!(
            "{store_name} settle: {} B per delivered order {what} ({} B of it in journal files)",
            disk(&dir) / n as u64,
            journal_files(&dir) / n as u64
        )
    };
    store.close();
    drop(store);
    let store = open(store_name, &dir);
    per_order("after a reopen");
    store.major_compaction();
    store.close();
    drop(store);
    if store_name == "fjall" {
        let store = open(store_name, &dir);
        std::thread::sleep(Duration::from_secs(1));
        per_order("after a major compaction and a reopen");
        store.close();
    }
}
