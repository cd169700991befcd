//! A model of what the sled journal writes for a hot-SKU drop and for a settled order, run on
//! sled 0.34.7 and on fjall 3, to measure what the store itself costs (README, "Which store").
//!
//! `hot N`: N drop purchases in group commits of 32, as the journal writer makes them. Each
//! purchase first reads two absent keys (is the order known; was it ever written), then writes
//! the order's placing event (213 B), view (92 B), reminder and two index entries (user and
//! status), and its share of the SKU's event runs (250 B per purchase, runs of about 1,250 B);
//! each commit is one atomic batch and one durable flush (sled `flush`, fjall `persist` with
//! `SyncData`). Values are random bytes: the journal's are packed (`persistence::packing`),
//! which leaves little for a store's own compression. Reports CPU per purchase (all threads,
//! `getrusage`), purchases a second, bytes on disk and peak RSS.
//!
//! `settle N`: the same N purchases, each by a new shopper with a sealed-data key (101 B), then
//! six more events per order (150 B each, with its view rewritten and its status index entry
//! moved: paid, shipped, delivered), then a snapshot (466 B) and final view (112 B) that
//! remove the order's seven events: the records of a delivered order at rest. Reports bytes on
//! disk per order after a reopen, and for fjall after its memtables are flushed and after a
//! major compaction (sled 0.34 has no online compaction: `emporium admin compact` copies a
//! stopped node's store instead).
//!
//! The data goes to `--dir` (a fresh directory per store and mode).

use rand::{Rng, RngCore, SeedableRng};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

type Record = (Vec<u8>, Vec<u8>);

/// The store's four operations the journal uses on its hot path.
trait Store {
    /// One atomic batch of puts and removals, then a durable flush.
    fn commit(&self, puts: &[Record], removals: &[Vec<u8>]);
    fn contains(&self, key: &[u8]) -> bool;
    /// fjall: flush the memtables (`major`: then compact every level into one).
    fn rest(&self, _major: bool) {}
    fn close(&self);
}

struct Sled(sled::Db, sled::Tree);

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
    }
    fn contains(&self, key: &[u8]) -> bool {
        self.1.get(key).expect("sled get").is_some()
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
        self.1.get(key).expect("fjall get").is_some()
    }
    fn rest(&self, major: bool) {
        self.1.rotate_memtable_and_wait().expect("fjall flush");
        if major {
            self.1.major_compact().expect("fjall compaction");
        }
    }
    fn close(&self) {
        self.0
            .persist(fjall::PersistMode::SyncAll)
            .expect("fjall persist");
    }
}

fn open(store: &str, dir: &Path) -> Box<dyn Store> {
    match store {
        // As `persistence::sled_open::sled_config` opens a node's journal, compression off.
        "sled" => {
            let db = sled::Config::new()
                .path(dir)
                .segment_size(128 * 1024)
                .flush_every_ms(None)
                .open()
                .expect("sled open");
            let tree = db.open_tree("journal").expect("sled tree");
            Box::new(Sled(db, tree))
        }
        "fjall" => {
            let db = fjall::Database::builder(dir).open().expect("fjall open");
            let ks = db
                .keyspace("journal", fjall::KeyspaceCreateOptions::default)
                .expect("fjall keyspace");
            Box::new(Fjall(db, ks))
        }
        other => panic!("no store {other}: sled or fjall"),
    }
}

/// Seconds of CPU this process has used, all threads, and its peak RSS in KiB.
fn usage() -> (f64, i64) {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid rusage for getrusage to fill.
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

/// A 26-character id, as the engine's order and user ids.
fn id(r: &mut impl Rng) -> Vec<u8> {
    const DIGITS: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";
    (0..26).map(|_| DIGITS[r.gen_range(0..32)]).collect()
}

struct Order {
    id: Vec<u8>,
    at: [u8; 8],
}

/// The hot-SKU purchases; returns the orders.
fn purchases(store: &dyn Store, n: usize, shoppers_sealed: bool, r: &mut impl Rng) -> Vec<Order> {
    let mut orders = Vec::with_capacity(n);
    let mut sku_seq = 0u64;
    for commit in 0..n.div_ceil(32) {
        let mut puts = Vec::new();
        let mut run = Vec::new();
        for i in 0..32.min(n - commit * 32) {
            let order = id(r);
            let user = id(r);
            let at = ((commit * 32 + i) as u64).to_be_bytes();
            store.contains(&key(&[b"v", b"order\0", &order]));
            store.contains(&key(&[b"s", b"order\0", &order]));
            sku_seq += 1;
            run.extend(random(r, 250));
            if run.len() > 1_100 {
                let k = key(&[b"e", b"sku\0hot\0", &sku_seq.to_be_bytes()]);
                puts.push((k, std::mem::take(&mut run)));
            }
            let one = 1u64.to_be_bytes();
            puts.push((key(&[b"e", b"order\0", &order, &one]), random(r, 213)));
            puts.push((key(&[b"v", b"order\0", &order]), random(r, 92)));
            puts.push((key(&[b"d", b"order\0", &at, &order]), vec![]));
            puts.push((key(&[b"x", b"user:", &user, b"\0", &at, &order]), vec![]));
            puts.push((key(&[b"x", b"status:placed\0", &at, &order]), vec![]));
            if shoppers_sealed {
                puts.push((key(&[b"k", &user]), random(r, 74)));
            }
            orders.push(Order { id: order, at });
        }
        if !run.is_empty() {
            let k = key(&[b"e", b"sku\0hot\0", &sku_seq.to_be_bytes()]);
            puts.push((k, run));
        }
        store.commit(&puts, &[]);
    }
    orders
}

/// Each order's life after the purchase, 32 orders a commit, to a delivered order at rest.
fn settle(store: &dyn Store, orders: &[Order], r: &mut impl Rng) {
    let statuses: [&[u8]; 7] = [
        b"placed",
        b"paid",
        b"paid",
        b"shipped",
        b"shipped",
        b"delivered",
        b"delivered",
    ];
    for step in 1..7usize {
        for chunk in orders.chunks(32) {
            let (mut puts, mut removals) = (Vec::new(), Vec::new());
            for o in chunk {
                let seq = (step as u64 + 1).to_be_bytes();
                puts.push((key(&[b"e", b"order\0", &o.id, &seq]), random(r, 150)));
                puts.push((key(&[b"v", b"order\0", &o.id]), random(r, 100)));
                let (was, is) = (statuses[step - 1], statuses[step]);
                if was != is {
                    removals.push(key(&[b"x", b"status:", was, b"\0", &o.at, &o.id]));
                    puts.push((key(&[b"x", b"status:", is, b"\0", &o.at, &o.id]), vec![]));
                }
                if step == 1 {
                    removals.push(key(&[b"d", b"order\0", &o.at, &o.id]));
                }
            }
            store.commit(&puts, &removals);
        }
    }
    for chunk in orders.chunks(32) {
        let (mut puts, mut removals) = (Vec::new(), Vec::new());
        for o in chunk {
            puts.push((key(&[b"s", b"order\0", &o.id]), random(r, 466)));
            puts.push((key(&[b"v", b"order\0", &o.id]), random(r, 112)));
            for seq in 1..=7u64 {
                removals.push(key(&[b"e", b"order\0", &o.id, &seq.to_be_bytes()]));
            }
        }
        store.commit(&puts, &removals);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage_line = "usage: emporium-store-model sled|fjall hot|settle N [--dir DIR]";
    if args.len() < 3 || args.iter().any(|a| a == "--help") {
        println!("{usage_line}");
        return;
    }
    let (store_name, mode) = (args[0].as_str(), args[1].as_str());
    let n: usize = args[2].parse().expect("N: a number of purchases");
    let base = match args.iter().position(|a| a == "--dir") {
        Some(i) => PathBuf::from(&args[i + 1]),
        None => std::env::temp_dir(),
    };
    let dir = base.join(format!("emporium-store-model-{store_name}-{mode}"));
    let _ = std::fs::remove_dir_all(&dir);
    let mut r = rand::rngs::StdRng::seed_from_u64(7);

    let store = open(store_name, &dir);
    let ((cpu0, _), t0) = (usage(), Instant::now());
    let orders = purchases(&*store, n, mode == "settle", &mut r);
    let ((cpu1, rss), took) = (usage(), t0.elapsed());
    println!(
        "{store_name} {mode}: {n} purchases, {:.1} us of CPU each, {:.0} a second, {} B on disk each, peak RSS {} MiB",
        (cpu1 - cpu0) * 1e6 / n as f64,
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
    println!(
        "{store_name} settle: the orders' lives in {:.1} s, {:.1} us of CPU per order",
        t0.elapsed().as_secs_f64(),
        (usage().0 - cpu0) * 1e6 / n as f64
    );
    store.close();
    drop(store);
    let store = open(store_name, &dir);
    let per_order = |what: &str| {
        let journal = journal_files(&dir);
        println!(
            "{store_name} settle: {} B per delivered order {what} ({} MB of it in journal files)",
            disk(&dir) / n as u64,
            journal / 1_000_000
        )
    };
    per_order("after a reopen");
    if store_name == "fjall" {
        store.rest(false);
        std::thread::sleep(Duration::from_secs(2));
        per_order("after its memtables are flushed");
        store.rest(true);
        std::thread::sleep(Duration::from_secs(2));
        per_order("after a major compaction");
        store.close();
        drop(store);
        let store = open(store_name, &dir);
        std::thread::sleep(Duration::from_secs(2));
        per_order("after a major compaction and a reopen");
        store.close();
        return;
    }
    store.close();
}
