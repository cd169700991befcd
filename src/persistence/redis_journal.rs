//! The cluster's journal: event streams, snapshots, reminders and views in Redis, behind the
//! same [`Journal`] trait as sled, so entity code does not know which store it runs on.
//!
//! **Fenced group commit.** One writer task drains every pending append, groups them by shard
//! and writes each shard's group with one Lua script call that first checks the shard's lease
//! (`lease:{sN}` must still be exactly `node/incarnation:epoch`, the [`Fence`](crate::cluster::leases::Fence) this process
//! holds) and then
//! applies every write of the group — atomically, so a node that lost its lease writes nothing
//! and acknowledges nothing (`JournalError::NotOwner`). The groups of one batch go out
//! pipelined on one multiplexed connection; completions run in submission order once their
//! group's answer is in. With `appendfsync always`, Redis answers a script only after its
//! writes are in the append-only file and fsynced: an `Ok` completion is durable.
//!
//! **Terms.** A stream is read under the shard's current epoch (`Recovered::term`) and its
//! entity's appends carry that epoch back (`Append::term`): if the shard changed hands since —
//! even back to this node under a newer epoch — the append is refused, the entity restarts
//! and reads the stream again. So no entity ever writes from state read in an earlier term.
//!
//! **Layout** (every key of a shard carries its hash tag `{sN}`):
//! - `ev:{sN}:kind:id` — hash: zero-padded seq -> encoded event;
//! - `sn:{sN}:kind:id` — hash: `seq`, `state` (the newest snapshot);
//! - `rm:{sN}:kind` — sorted set: id scored by its reminder (Unix ms);
//! - `vw:{sN}:kind` — hash: id -> encoded view;
//! - `ix:{sN}:set` — sorted set, every score 0 so members sort as bytes: the index entries
//!   written by the shard's streams (a set's members are spread over the shards, and a range
//!   merges them);
//! - `ak:{sN}:kind:id` — sorted set, scores 0: the stream's archive keys; `av:{sN}:kind:id` —
//!   hash: archive key -> record;
//! - `vs:{sN}` — stream of the shard's view changes (`by` fence, `kind`, `id`, `view`), capped
//!   near 100,000 entries, which every node tails to keep its read models current
//!   (`cluster::views`).
//!
//! Reads (`load`, `views`, ...) are synchronous in the trait (the runtime calls them where
//! blocking is allowed: the blocking pool, or in place via `block_in_place`); they block on
//! the async connection through the runtime handle.

use crate::cluster::leases::lease_key;
use crate::cluster::shards::Shard;
use crate::domain::time::Timestamp;
pub use crate::persistence::fences::Fences;
use crate::persistence::gaps::Unwritten;
use crate::persistence::{
    Append, Completion, Direction, Journal, JournalError, Recovered, StreamId,
};
use redis::aio::ConnectionManager;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Checks the fence, then applies a group of writes of one shard. `KEYS[1]`: the lease.
/// `ARGV[1]`: the fence (`node/incarnation:epoch`), `ARGV[2]`: the shard's tag, then records:
/// `E stream seq event`, `S stream seq state`, `T stream seq` (trim up to seq),
/// `R kind id millis` (`millis` empty: clear), `V kind id view`, `X set member 1|0` (index
/// entry added or removed), `A stream key record` (archived).
const APPEND: &str = include_str!("redis_append.lua");

type Job = (Append, Completion);
/// A Redis hash as read: `(field, value)`.
type Fields = Vec<(String, Vec<u8>)>;

pub struct RedisJournal {
    redis: ConnectionManager,
    shards: u32,
    fences: Arc<Fences>,
    /// Streams with a failed append: a later append is refused unless it continues what is
    /// stored, so nothing is acknowledged after a gap.
    unwritten: Arc<Mutex<Unwritten>>,
    queue: mpsc::UnboundedSender<Job>,
    /// Appends submitted and not yet completed.
    in_flight: Arc<AtomicUsize>,
    closed: AtomicBool,
    /// Where synchronous reads run their requests.
    runtime: tokio::runtime::Handle,
}

/// The marks of failed appends (a panic while they were held leaves them as they were).
fn lock(unwritten: &Mutex<Unwritten>) -> MutexGuard<'_, Unwritten> {
    unwritten.lock().unwrap_or_else(|e| e.into_inner())
}

/// How many appends one writer round takes at most.
const MAX_BATCH: usize = 4096;

impl RedisJournal {
    /// A journal over `redis` for a cluster of `shards` shards, writing under `fences`. Must be
    /// called inside the tokio runtime (its writer is a task of it).
    pub fn new(redis: ConnectionManager, shards: u32, fences: Arc<Fences>) -> Arc<Self> {
        let (queue, jobs) = mpsc::unbounded_channel();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let unwritten = Arc::default();
        let writer = Writer {
            redis: redis.clone(),
            shards,
            fences: fences.clone(),
            unwritten: Arc::clone(&unwritten),
            script: redis::Script::new(APPEND),
            in_flight: in_flight.clone(),
        };
        tokio::spawn(writer.run(jobs));
        Arc::new(Self {
            redis,
            shards,
            fences,
            unwritten,
            queue,
            in_flight,
            closed: AtomicBool::new(false),
            runtime: tokio::runtime::Handle::current(),
        })
    }

    pub fn fences(&self) -> &Arc<Fences> {
        &self.fences
    }

    fn shard(&self, kind: &str, id: &str) -> Shard {
        Shard::of(kind, id, self.shards)
    }

    /// One command per shard, pipelined in one round trip: `command(tag)` builds each; the
    /// answers in shard order.
    fn each_shard<T: redis::FromRedisValue>(
        &self,
        command: impl Fn(&str) -> redis::Cmd,
    ) -> Result<Vec<T>, JournalError> {
        let mut pipe = redis::pipe();
        for s in 0..self.shards {
            pipe.add_command(command(&Shard(s).tag()));
        }
        self.read(async { pipe.query_async(&mut self.redis.clone()).await })
    }

    /// Runs a read on the runtime from a blocking thread.
    fn read<T>(
        &self,
        f: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, JournalError> {
        self.runtime.block_on(f).map_err(storage)
    }
}

fn storage(e: redis::RedisError) -> JournalError {
    JournalError::Storage(e.to_string())
}

/// The seq as a hash field: zero-padded, so fields sort as numbers.
fn seq_field(seq: u64) -> String {
    format!("{seq:020}")
}

fn stream_part(stream: &StreamId) -> String {
    format!("{}:{}", stream.kind, stream.id)
}

impl Journal for RedisJournal {
    fn submit(&self, append: Append, done: Completion) {
        if self.closed.load(Ordering::Acquire) {
            return done(Err(JournalError::Closed));
        }
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        if let Err(mpsc::error::SendError((_, done))) = self.queue.send((append, done)) {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            done(Err(JournalError::Closed));
        }
    }

    /// Reads the stream under the shard's current term; a shard this node does not hold is
    /// `NotOwner` (its entities are served by the owner). The lease is read in the same
    /// transaction as the data: the state returned is exactly what the term it names saw.
    fn load(&self, stream: &StreamId) -> Result<Recovered, JournalError> {
        let shard = self.shard(stream.kind, &stream.id);
        let fence = self
            .fences
            .get(shard)
            .ok_or(JournalError::NotOwner { shard: shard.0 })?;
        let tag = shard.tag();
        let part = stream_part(stream);
        let (lease, events, snapshot): (Option<String>, Fields, Fields) = self.read(async {
            redis::pipe()
                .atomic()
                .cmd("GET")
                .arg(lease_key(shard))
                .cmd("HGETALL")
                .arg(format!("ev:{tag}:{part}"))
                .cmd("HGETALL")
                .arg(format!("sn:{tag}:{part}"))
                .query_async(&mut self.redis.clone())
                .await
        })?;
        if lease.as_deref() != Some(fence.token().as_str()) {
            return Err(JournalError::NotOwner { shard: shard.0 });
        }
        let mut recovered = Recovered {
            term: Some(fence.epoch),
            ..Recovered::default()
        };
        let seq_of = |raw: &[u8]| -> Result<u64, JournalError> {
            std::str::from_utf8(raw)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| JournalError::Corrupt(format!("{stream:?}: a bad seq")))
        };
        let field = |name: &str| snapshot.iter().find(|(f, _)| f == name).map(|(_, v)| v);
        if let (Some(seq), Some(state)) = (field("seq"), field("state")) {
            recovered.snapshot = Some((seq_of(seq)?, state.clone()));
        }
        let after = recovered.snapshot.as_ref().map_or(0, |(seq, _)| *seq);
        for (f, bytes) in events {
            let seq = seq_of(f.as_bytes())?;
            if seq > after {
                recovered.events.push((seq, bytes));
            }
        }
        recovered.events.sort_by_key(|(seq, _)| *seq);
        // After a failed append whose reply was lost, what is stored says whether it was
        // written: the entity starts from here, and so must the stream's next append.
        let last = recovered.events.last().map_or(after, |(seq, _)| *seq);
        lock(&self.unwritten).reloaded(stream, last + 1);
        Ok(recovered)
    }

    fn exists(&self, stream: &StreamId) -> Result<bool, JournalError> {
        let tag = self.shard(stream.kind, &stream.id).tag();
        let part = stream_part(stream);
        let n: u64 = self.read(async {
            redis::cmd("EXISTS")
                .arg(format!("ev:{tag}:{part}"))
                .arg(format!("sn:{tag}:{part}"))
                .query_async(&mut self.redis.clone())
                .await
        })?;
        Ok(n > 0)
    }

    fn reminders_due(
        &self,
        kind: &str,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<(String, Timestamp)>, JournalError> {
        let take = i64::try_from(limit).unwrap_or(i64::MAX);
        let per_shard: Vec<Vec<(String, f64)>> = self.each_shard(|tag| {
            let mut c = redis::cmd("ZRANGE");
            c.arg(format!("rm:{tag}:{kind}"))
                .arg("-inf")
                .arg(until.millis());
            c.arg("BYSCORE")
                .arg("LIMIT")
                .arg(0)
                .arg(take)
                .arg("WITHSCORES");
            c
        })?;
        let mut due: Vec<(String, Timestamp)> = per_shard
            .into_iter()
            .flatten()
            .map(|(id, at)| (id, Timestamp(at as i64)))
            .collect();
        due.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        due.truncate(limit);
        Ok(due)
    }

    fn view(&self, stream: &StreamId) -> Result<Option<Vec<u8>>, JournalError> {
        let tag = self.shard(stream.kind, &stream.id).tag();
        self.read(async {
            redis::cmd("HGET")
                .arg(format!("vw:{tag}:{}", stream.kind))
                .arg(&stream.id)
                .query_async(&mut self.redis.clone())
                .await
        })
    }

    /// One pipelined round trip for every id.
    fn views_of(
        &self,
        kind: &'static str,
        ids: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, JournalError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            let tag = self.shard(kind, id).tag();
            pipe.cmd("HGET").arg(format!("vw:{tag}:{kind}")).arg(id);
        }
        self.read(async { pipe.query_async(&mut self.redis.clone()).await })
    }

    /// Reads the range from every shard's part of the set and merges them.
    fn index_range(
        &self,
        set: &str,
        direction: Direction,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, JournalError> {
        let bound = |open: &[u8]| [b"(".as_slice(), open].concat();
        let (command, from, to) = match direction {
            Direction::Ascending => (
                "ZRANGEBYLEX",
                after.map_or(b"-".to_vec(), bound),
                b"+".to_vec(),
            ),
            Direction::Descending => (
                "ZREVRANGEBYLEX",
                after.map_or(b"+".to_vec(), bound),
                b"-".to_vec(),
            ),
        };
        let take = i64::try_from(limit).unwrap_or(i64::MAX);
        let per_shard: Vec<Vec<Vec<u8>>> = self.each_shard(|tag| {
            let mut c = redis::cmd(command);
            c.arg(format!("ix:{tag}:{set}")).arg(&from).arg(&to);
            c.arg("LIMIT").arg(0).arg(take);
            c
        })?;
        let mut members: Vec<Vec<u8>> = per_shard.into_iter().flatten().collect();
        members.sort();
        if direction == Direction::Descending {
            members.reverse();
        }
        members.truncate(limit);
        Ok(members)
    }

    fn index_len(&self, set: &str) -> Result<usize, JournalError> {
        let per_shard: Vec<usize> = self.each_shard(|tag| {
            let mut c = redis::cmd("ZCARD");
            c.arg(format!("ix:{tag}:{set}"));
            c
        })?;
        Ok(per_shard.into_iter().sum())
    }

    fn views(&self, kind: &str) -> Result<Vec<(String, Vec<u8>)>, JournalError> {
        let per_shard: Vec<Fields> = self.each_shard(|tag| {
            let mut c = redis::cmd("HGETALL");
            c.arg(format!("vw:{tag}:{kind}"));
            c
        })?;
        Ok(per_shard.into_iter().flatten().collect())
    }

    fn archive_range(
        &self,
        stream: &StreamId,
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<crate::persistence::Record>, JournalError> {
        let tag = self.shard(stream.kind, &stream.id).tag();
        let part = stream_part(stream);
        let from = before.map_or(b"+".to_vec(), |b| [b"(".as_slice(), b].concat());
        let take = i64::try_from(limit).unwrap_or(i64::MAX);
        let keys: Vec<Vec<u8>> = self.read(async {
            redis::cmd("ZREVRANGEBYLEX")
                .arg(format!("ak:{tag}:{part}"))
                .arg(&from)
                .arg("-")
                .arg("LIMIT")
                .arg(0)
                .arg(take)
                .query_async(&mut self.redis.clone())
                .await
        })?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let records: Vec<Option<Vec<u8>>> = self.read(async {
            redis::cmd("HMGET")
                .arg(format!("av:{tag}:{part}"))
                .arg(&keys)
                .query_async(&mut self.redis.clone())
                .await
        })?;
        Ok(keys
            .into_iter()
            .zip(records)
            .filter_map(|(k, v)| Some((k, v?)))
            .collect())
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    fn owns(&self, stream: &StreamId) -> bool {
        self.fences.admits(self.shard(stream.kind, &stream.id))
    }

    /// Not a failure that stays: Redis has not answered the lease keeper for longer than a
    /// lease lasts (down, hung, or cut off from this node). Ready again at its next round.
    fn failure(&self) -> Option<String> {
        self.fences.halted().or_else(|| {
            self.fences.out_of_touch().then(|| {
                "Redis has not answered this node for longer than a lease lasts".to_owned()
            })
        })
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.is_idle() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// The writer task: batches, groups by shard, one fenced script call per shard.
struct Writer {
    redis: ConnectionManager,
    shards: u32,
    fences: Arc<Fences>,
    unwritten: Arc<Mutex<Unwritten>>,
    script: redis::Script,
    in_flight: Arc<AtomicUsize>,
}

impl Writer {
    async fn run(self, mut jobs: mpsc::UnboundedReceiver<Job>) {
        while let Some(first) = jobs.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let (appends, dones): (Vec<Append>, Vec<Completion>) = batch.into_iter().unzip();
            let results = self.write(&appends).await;
            let n = dones.len();
            for (done, result) in dones.into_iter().zip(results) {
                done(result);
            }
            self.in_flight.fetch_sub(n, Ordering::AcqRel);
        }
    }

    /// Writes a batch; the outcome of each append, in order.
    async fn write(&self, batch: &[Append]) -> Vec<Result<(), JournalError>> {
        let mut groups: Vec<(Shard, Vec<usize>)> = Vec::new();
        for (i, append) in batch.iter().enumerate() {
            let Some(stream) = &append.stream else {
                continue; // a barrier: done once the batch is
            };
            if append.is_empty() {
                continue;
            }
            let shard = Shard::of(stream.kind, &stream.id, self.shards);
            match groups.iter_mut().find(|(s, _)| *s == shard) {
                Some((_, members)) => members.push(i),
                None => groups.push((shard, vec![i])),
            }
        }
        let mut results: Vec<Result<(), JournalError>> = vec![Ok(()); batch.len()];
        // Refused on its own: an append whose writer loaded its state under an earlier term of
        // the shard (that state may be stale), or one behind a failed append of its stream
        // that does not continue what is stored (it would leave a gap).
        {
            let mut unwritten = lock(&self.unwritten);
            for (shard, members) in &mut groups {
                let fence = self.fences.get(*shard);
                members.retain(|&i| {
                    let current = fence.as_ref().map(|f| f.epoch);
                    if batch[i].term.is_some() && batch[i].term != current {
                        results[i] = Err(JournalError::NotOwner { shard: shard.0 });
                        false
                    } else if !unwritten.admit(&batch[i]) {
                        results[i] = Err(JournalError::after_failure(&batch[i]));
                        false
                    } else {
                        true
                    }
                });
            }
        }
        groups.retain(|(_, members)| !members.is_empty());
        let calls = groups.iter().map(|(shard, members)| async move {
            let outcome = self.write_group(*shard, members, batch).await;
            (members, outcome)
        });
        for (members, outcome) in futures_util::future::join_all(calls).await {
            for &i in members {
                results[i] = outcome.clone();
            }
        }
        let failed = batch.iter().zip(&results).filter(|(_, r)| r.is_err());
        lock(&self.unwritten).failed(failed.map(|(append, _)| append));
        results
    }

    async fn write_group(
        &self,
        shard: Shard,
        members: &[usize],
        batch: &[Append],
    ) -> Result<(), JournalError> {
        let fence = self
            .fences
            .get(shard)
            .ok_or(JournalError::NotOwner { shard: shard.0 })?;
        let mut call = self.script.key(lease_key(shard));
        call.arg(fence.token()).arg(shard.tag());
        for &i in members {
            let append = &batch[i];
            let Some(stream) = &append.stream else {
                continue;
            };
            let part = stream_part(stream);
            for (seq, event) in &append.events {
                call.arg("E").arg(&part).arg(seq_field(*seq)).arg(event);
            }
            if let Some((seq, state)) = &append.snapshot {
                call.arg("S").arg(&part).arg(seq.to_string()).arg(state);
            }
            if let Some(upto) = append.trim {
                call.arg("T").arg(&part).arg(upto.to_string());
            }
            if let Some(reminder) = append.reminder {
                let at = reminder.map(|t| t.millis().to_string()).unwrap_or_default();
                call.arg("R").arg(stream.kind).arg(&stream.id).arg(at);
            }
            if let Some(view) = &append.view {
                call.arg("V").arg(stream.kind).arg(&stream.id).arg(view);
            }
            for (key, record) in &append.archive {
                call.arg("A").arg(&part).arg(key).arg(record);
            }
            for (entry, present) in &append.index {
                let present = if *present { "1" } else { "0" };
                call.arg("X")
                    .arg(&entry.set)
                    .arg(&entry.member)
                    .arg(present);
            }
        }
        let started = Instant::now();
        let written: redis::RedisResult<i64> = call.invoke_async(&mut self.redis.clone()).await;
        metrics::histogram!("emporium_redis_command_seconds", "op" => "append")
            .record(started.elapsed().as_secs_f64());
        metrics::histogram!("emporium_journal_batch_events").record(members.len() as f64);
        match written {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("NOT_OWNER") => {
                // The lease moved on: stop writing this shard until it is ours again.
                self.fences.clear_if(shard, &fence);
                Err(JournalError::NotOwner { shard: shard.0 })
            }
            Err(e) => Err(storage(e)),
        }
    }
}
