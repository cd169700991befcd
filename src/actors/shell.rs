//! The actor every entity runs in. It owns the entity's state and handles one message at a time:
//! decide -> journal -> apply -> reply. The reply rides on the journal's completion, so it is
//! sent once the events are durable while the actor already takes its next message (group
//! commit). Replies that change nothing still wait until the entity's earlier writes are durable.
//!
//! What the actor uses besides its state comes in its [`EntityContext`]; its place in the
//! registry is its [`Registration`], given up when the actor ends.

use crate::actors::context::EntityContext;
use crate::actors::entity::{AskError, Entity, Inspection};
use crate::actors::message::{EntityMsg, Passivation, Reply, Snapshotted};
use crate::actors::registry::{Registration, Registry, Slot};
use crate::domain::time::Timestamp;
pub(super) use crate::persistence::blocking as read_blocking;
use crate::persistence::{Append, IndexEntry, JournalError, StreamId, codec};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

pub struct EntityActor<E>(std::marker::PhantomData<E>);

/// Events since the last snapshot from which a stopping entity writes a new one: fewer are
/// cheaper to replay at the next activation than a snapshot is to write (and to keep on disk
/// beside them).
pub const REST_SNAPSHOT_EVENTS: u64 = 16;

/// Events ready for the journal, and the view they lead to.
pub(super) struct Recorded<E: Entity> {
    pub(super) append: Append,
    pub(super) view: Option<E::View>,
}

impl<E> EntityActor<E> {
    pub fn new() -> Self {
        Self(std::marker::PhantomData)
    }
}

/// What an actor is started with: its key, its context, and the slot it will register in once
/// its state is loaded.
pub struct Activation<E: Entity> {
    pub id: E::Id,
    pub ctx: Arc<EntityContext<E>>,
    pub registry: Arc<Registry<E>>,
    pub slot: Arc<Slot<E>>,
}

pub struct Live<E: Entity> {
    id: E::Id,
    stream: StreamId,
    state: E::State,
    seq: u64,
    snapshot_seq: u64,
    since_snapshot: u64,
    /// Bytes on disk of the stored snapshot, and of the events written since it.
    snapshot_bytes: usize,
    event_bytes: usize,
    /// This entity's writes not yet durable; a no-change reply may go out at once only at zero.
    pending: Arc<AtomicUsize>,
    /// Set when a write of this entity failed: the state is ahead of the disk, nothing read
    /// from it may be answered any more (the actor is being killed, to start over from the
    /// journal).
    lost: Arc<AtomicBool>,
    /// This actor: killed when one of its writes fails.
    me: ActorRef<EntityMsg<E>>,
    /// The sequence number of the newest recorded view (only it is published).
    view_seq: Arc<AtomicU64>,
    /// The time stored as this stream's reminder ([`Entity::reminder`]), once this entity's
    /// writes are durable.
    reminder: Option<Timestamp>,
    /// The reminder this entity's last move of it replaced: a timer that read it just before
    /// the move still fires it (see [`Live::heal_reminder`]).
    replaced_reminder: Option<Timestamp>,
    /// The index entries stored for the entity ([`Entity::index`]).
    indexed: Vec<IndexEntry>,
    /// The term the state was loaded under (cluster mode); every append carries it.
    term: Option<u64>,
    ctx: Arc<EntityContext<E>>,
    /// Dropped with this state, however the actor ends: the slot is freed.
    registration: Registration<E>,
}

impl<E: Entity> Actor for EntityActor<E> {
    type Msg = EntityMsg<E>;
    type State = Live<E>;
    type Arguments = Activation<E>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Activation<E>,
    ) -> Result<Live<E>, ActorProcessingErr> {
        let stream = StreamId::new(E::KIND, args.id.to_string());
        let journal = args.ctx.journal.clone();
        let load_stream = stream.clone();
        let recovered = read_blocking(move || journal.load(&load_stream)).await??;
        let term = recovered.term;
        let (mut state, snapshot_seq, snapshot_bytes) = match recovered.snapshot {
            Some((seq, bytes)) => (
                codec::decode_snapshot::<E::State>(&bytes)?,
                seq,
                bytes.len(),
            ),
            None => (E::State::default(), 0, 0),
        };
        let mut seq = snapshot_seq;
        let mut event_bytes = 0;
        for (event_seq, bytes) in recovered.events {
            event_bytes += bytes.len();
            if event_seq != seq + 1 {
                return Err(format!("{stream:?}: gap in journal at {seq} -> {event_seq}").into());
            }
            let (event, _) = codec::decode_event::<E::Event>(&bytes)?;
            E::apply(&mut state, &event);
            seq = event_seq;
        }
        // What the replay brought back beyond the state's bounds is archived already, unless
        // the state was written before the kind archived: written (again) either way.
        let archived = E::evict(&mut state);
        let mut live = Live {
            reminder: E::reminder(&state),
            replaced_reminder: None,
            indexed: E::view(&state)
                .map(|v| E::index(&args.id, &v))
                .unwrap_or_default(),
            term,
            since_snapshot: seq - snapshot_seq,
            snapshot_bytes,
            event_bytes,
            registration: Registration::new(args.registry, args.id.clone(), args.slot),
            ctx: args.ctx,
            id: args.id,
            stream,
            state,
            seq,
            snapshot_seq,
            pending: Arc::new(AtomicUsize::new(0)),
            lost: Arc::new(AtomicBool::new(false)),
            me: myself.clone(),
            view_seq: Arc::new(AtomicU64::new(0)),
        };
        if !archived.is_empty() {
            let mut append = Append {
                stream: Some(live.stream.clone()),
                archive: archived,
                term: live.term,
                ..Append::default()
            };
            // With a snapshot of the state as it is now, so the next activation replays
            // nothing it would archive again.
            live.add_snapshot(&mut append);
            live.submit(append, Box::new(|_| {}));
        }
        Ok(live)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        live: &mut Live<E>,
    ) -> Result<(), ActorProcessingErr> {
        if live.lost.load(Ordering::Acquire) {
            // A write failed and the kill is on its way: the message is dropped unhandled,
            // and its sender asks a fresh activation (which reads the journal).
            myself.kill();
            return Ok(());
        }
        match msg {
            EntityMsg::Ask(command, reply) => live.ask(&myself, command, reply),
            EntityMsg::Inspect(reply) => {
                let inspection = live.inspection();
                // Not durable: the reply is dropped, and the caller asks a fresh activation.
                live.when_durable(move |durable| {
                    if durable {
                        let _ = reply.send(inspection);
                    }
                });
            }
            EntityMsg::Deadline(reply) => {
                live.deadline(&myself);
                let _ = reply.send(());
            }
            EntityMsg::Reminded(at) => live.heal_reminder(at),
            EntityMsg::Passivate(when) => {
                let resting = match when {
                    Passivation::Idle => live.registration.is_idle(),
                    Passivation::UnusedSince(mark) => live.registration.unused_since(mark),
                };
                if resting {
                    live.rest(Box::new(|_| {}));
                    live.ctx.stats.on_passivated();
                    myself.stop(Some("passivated".into()));
                }
            }
            EntityMsg::Shutdown(reply) => {
                live.rest(Box::new(move |_| drop(reply.send(()))));
                myself.stop(Some("shutdown".into()));
            }
            EntityMsg::Snapshot(reply) => {
                let due = live.since_snapshot > 0;
                live.snapshot(Box::new(move |r| {
                    let outcome = match r {
                        Err(_) => Snapshotted::Failed,
                        Ok(()) if due => Snapshotted::Written,
                        Ok(()) => Snapshotted::Current,
                    };
                    drop(reply.send(outcome))
                }));
            }
        }
        Ok(())
    }
}

/// Puts into `append` what `state` changes of the stream's reminder, index entries and view,
/// against `reminder` and `indexed` as stored (which it updates); returns the view.
fn derive<E: Entity>(
    id: &E::Id,
    state: &E::State,
    append: &mut Append,
    reminder: &mut Option<Timestamp>,
    indexed: &mut Vec<IndexEntry>,
) -> Result<Option<E::View>, JournalError> {
    let next = E::reminder(state);
    if next != *reminder {
        append.reminder = Some(next);
        append.previous_reminder = *reminder;
        *reminder = next;
    }
    let view = E::view(state);
    let entries = view.as_ref().map(|v| E::index(id, v)).unwrap_or_default();
    if entries != *indexed {
        for gone in indexed.iter().filter(|e| !entries.contains(e)) {
            append.index.push((gone.clone(), false));
        }
        for new in entries.iter().filter(|e| !indexed.contains(e)) {
            append.index.push((new.clone(), true));
        }
        *indexed = entries;
    }
    if let Some(v) = &view {
        append.view = Some(codec::encode_snapshot(v)?);
    }
    Ok(view)
}

/// The first write of an entity never written before, made without activating it: `events`
/// (decided on the empty state) with the view, reminder and index entries they lead to —
/// what [`Live::record`] writes for them. `None` when they would call for a snapshot or move
/// anything to the archive at once (the caller asks the entity instead).
pub(super) fn first_write<E: Entity>(
    id: &E::Id,
    events: &[E::Event],
    now: Timestamp,
    snapshot_every: u64,
) -> Result<Option<Recorded<E>>, JournalError> {
    let mut state = E::State::default();
    let mut encoded = Vec::with_capacity(events.len());
    for (seq, event) in (1u64..).zip(events) {
        encoded.push((seq, codec::encode_event(event, now)?));
        E::apply(&mut state, event);
    }
    let count = encoded.len() as u64;
    if count >= snapshot_every.max(E::weight(&state) as u64) || !E::evict(&mut state).is_empty() {
        return Ok(None);
    }
    let mut append = Append {
        stream: Some(StreamId::new(E::KIND, id.to_string())),
        events: encoded,
        ..Append::default()
    };
    let view = derive::<E>(id, &state, &mut append, &mut None, &mut Vec::new())?;
    Ok(Some(Recorded { append, view }))
}

impl<E: Entity> Live<E> {
    fn ask(&mut self, myself: &ActorRef<EntityMsg<E>>, command: E::Command, reply: Reply<E>) {
        let now = self.ctx.clock.now();
        let events = match E::decide(&self.state, &command, now) {
            Ok(events) => events,
            Err(rejection) => return self.reject(myself, &command, rejection, now, reply),
        };
        if events.is_empty() {
            // Nothing to write, but the answer may rest on writes still on their way.
            let value = E::reply(&self.id, &self.state, &command);
            self.when_durable(move |durable| {
                let _ = reply.send(if durable {
                    Ok(value)
                } else {
                    Err(AskError::Unavailable)
                });
            });
            return;
        }
        self.persist_then_reply(myself, events, now, reply, |id, state| {
            Ok(E::reply(id, state, &command))
        });
    }

    /// Replies with the rejection, after persisting what the entity records about it.
    fn reject(
        &mut self,
        myself: &ActorRef<EntityMsg<E>>,
        command: &E::Command,
        rejection: E::Rejection,
        now: Timestamp,
        reply: Reply<E>,
    ) {
        let events = E::on_rejection(&self.state, command, &rejection, now);
        if events.is_empty() {
            // At once, even with writes on their way (a refusal acknowledges nothing) — but
            // not from a state a failed write left ahead of the disk.
            let _ = reply.send(if self.lost.load(Ordering::Acquire) {
                Err(AskError::Unavailable)
            } else {
                Err(AskError::Rejected(rejection))
            });
            return;
        }
        self.persist_then_reply(myself, events, now, reply, |_, _| {
            Err(AskError::Rejected(rejection))
        });
    }

    /// Records `events`, then replies with `outcome` (computed from the state after them) once
    /// they are durable; if the write fails, replies `Unavailable` and restarts from the journal.
    fn persist_then_reply(
        &mut self,
        myself: &ActorRef<EntityMsg<E>>,
        events: Vec<E::Event>,
        now: Timestamp,
        reply: Reply<E>,
        outcome: impl FnOnce(&E::Id, &E::State) -> Result<E::Reply, AskError<E::Rejection>>,
    ) {
        let recorded = match self.record(events, now) {
            Ok(recorded) => recorded,
            Err(e) => {
                tracing::error!(kind = E::KIND, id = %self.id, error = %e, "cannot encode events");
                let _ = reply.send(Err(AskError::Unavailable));
                return;
            }
        };
        let value = outcome(&self.id, &self.state);
        let me = myself.clone();
        self.submit_recorded(recorded, move |result| match result {
            Ok(()) => drop(reply.send(value)),
            Err(_) => {
                let _ = reply.send(Err(AskError::Unavailable));
                // The state is ahead of the disk: start over from the journal.
                me.kill();
            }
        });
    }

    fn deadline(&mut self, myself: &ActorRef<EntityMsg<E>>) {
        let Some(command) = E::on_deadline() else {
            return;
        };
        let now = self.ctx.clock.now();
        let events = match E::decide(&self.state, &command, now) {
            Ok(events) if !events.is_empty() => events,
            Ok(_) => return,
            Err(rejection) => {
                tracing::warn!(kind = E::KIND, id = %self.id, ?rejection, "deadline command refused");
                return;
            }
        };
        match self.record(events, now) {
            Ok(recorded) => {
                let me = myself.clone();
                self.submit_recorded(recorded, move |result| {
                    if result.is_err() {
                        me.kill();
                    }
                });
            }
            Err(e) => tracing::error!(kind = E::KIND, id = %self.id, error = %e, "cannot encode"),
        }
    }

    /// Encodes events with their sequence numbers, applies them, and adds the snapshot,
    /// reminder and view that are due. Nothing changes when encoding fails.
    fn record(
        &mut self,
        events: Vec<E::Event>,
        now: Timestamp,
    ) -> Result<Recorded<E>, JournalError> {
        let mut encoded = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            encoded.push((self.seq + 1 + i as u64, codec::encode_event(event, now)?));
        }
        for event in &events {
            E::apply(&mut self.state, event);
        }
        let archived = E::evict(&mut self.state);
        self.seq += encoded.len() as u64;
        self.since_snapshot += encoded.len() as u64;
        self.event_bytes += encoded.iter().map(|(_, bytes)| bytes.len()).sum::<usize>();
        let mut append = Append {
            stream: Some(self.stream.clone()),
            events: encoded,
            archive: archived,
            term: self.term,
            ..Append::default()
        };
        let every = self.ctx.snapshots.every;
        if self.since_snapshot >= every.max(E::weight(&self.state) as u64) {
            self.add_snapshot(&mut append);
        }
        let view = derive::<E>(
            &self.id,
            &self.state,
            &mut append,
            &mut self.reminder,
            &mut self.indexed,
        )?;
        if append.reminder.is_some() {
            self.replaced_reminder = append.previous_reminder;
        }
        Ok(Recorded { append, view })
    }

    /// Submits recorded events; once durable, publishes the view if no later write of this
    /// entity carries a newer one (completions run in order, so the newest is published
    /// last and never skipped), then runs `done`.
    fn submit_recorded(
        &self,
        recorded: Recorded<E>,
        done: impl FnOnce(Result<(), JournalError>) + Send + 'static,
    ) {
        let Recorded { append, view } = recorded;
        let (views, id) = (self.ctx.views.clone(), self.id.clone());
        let seq = self.seq;
        if view.is_some() {
            self.view_seq.store(seq, Ordering::Release);
        }
        let latest = self.view_seq.clone();
        self.submit(append, move |result| {
            if let (Ok(()), Some(view)) = (&result, view)
                && latest.load(Ordering::Acquire) == seq
            {
                views.publish(&id, view);
            }
            done(result);
        });
    }

    /// Puts a snapshot of the current state into `append`, trimming the events the previous
    /// (already durable) snapshot covers.
    fn add_snapshot(&mut self, append: &mut Append) {
        match codec::encode_snapshot(&self.state) {
            Ok(bytes) => {
                let trim = (self.snapshot_seq > 0).then_some(self.snapshot_seq);
                self.put_snapshot(append, bytes, trim);
            }
            Err(e) => tracing::error!(kind = E::KIND, id = %self.id, error = %e, "snapshot failed"),
        }
    }

    /// Puts `bytes`, the snapshot of the current state, into `append` with a trim of the
    /// events up to `trim`.
    fn put_snapshot(&mut self, append: &mut Append, bytes: Vec<u8>, trim: Option<u64>) {
        self.snapshot_bytes = bytes.len();
        self.event_bytes = 0;
        append.snapshot = Some((self.seq, bytes));
        append.trim = trim;
        self.snapshot_seq = self.seq;
        self.since_snapshot = 0;
    }

    /// The compacted form of a stream at rest: a snapshot of the state as it is now, replacing
    /// the stored snapshot and every event (all of them trimmed in the same atomic write), if
    /// it takes fewer bytes than they do. A settled order's dozen saga events become one
    /// snapshot; a new order's one event stays as it is.
    fn compacted(&mut self) -> Option<Append> {
        if self.since_snapshot == 0 {
            return None;
        }
        let bytes = codec::encode_snapshot(&self.state).ok()?;
        if bytes.len() >= self.snapshot_bytes + self.event_bytes {
            return None;
        }
        let mut append = Append {
            stream: Some(self.stream.clone()),
            term: self.term,
            ..Append::default()
        };
        let upto = self.seq;
        self.put_snapshot(&mut append, bytes, Some(upto));
        Some(append)
    }

    /// What an entity writes as it stops: a snapshot when replaying the events since the last
    /// one would cost more than writing one now ([`REST_SNAPSHOT_EVENTS`]), or its compacted
    /// form when that is smaller on disk ([`Self::compacted`]), or else only a barrier; `done`
    /// runs once everything the entity wrote is durable. So stopping many entities (a
    /// shutdown, a wave of passivations) writes little, the next activation replays at most
    /// that many events, and a stream at rest takes its smallest form on disk.
    fn rest(&mut self, done: crate::persistence::Completion) {
        if let Some(append) = self.compacted() {
            self.submit(append, done);
        } else if self.since_snapshot >= REST_SNAPSHOT_EVENTS {
            self.snapshot(done);
        } else {
            self.submit(Append::barrier(), done);
        }
    }

    /// The reminder timer fired the reminder stored for `at`. When this entity's reminder is
    /// another, that entry is stale (left by an earlier version's rule for the reminder) and
    /// would fire every [`REFIRE`](crate::actors::reminders::REFIRE) for ever: it is removed,
    /// and the entity's own reminder written again. Not while a write of this entity is on its
    /// way (its reminder may not be the stored one yet: were that write to fail, the entry
    /// removed could be the only one left), nor for the reminder its last move replaced (the
    /// timer read it before the move, which removes it): such a firing comes again after
    /// `REFIRE` if the entry really is stale.
    fn heal_reminder(&mut self, at: Timestamp) {
        if self.reminder == Some(at)
            || self.replaced_reminder == Some(at)
            || self.pending.load(Ordering::Acquire) > 0
        {
            return;
        }
        tracing::info!(kind = E::KIND, id = %self.id, stale = at.millis(), "a stale reminder is removed");
        let append = Append {
            stream: Some(self.stream.clone()),
            reminder: Some(self.reminder),
            previous_reminder: Some(at),
            term: self.term,
            ..Append::default()
        };
        self.submit(append, Box::new(|_| {}));
    }

    /// Writes a snapshot if events came since the last one; `done` runs once it is durable.
    fn snapshot(&mut self, done: crate::persistence::Completion) {
        let mut append = Append {
            stream: Some(self.stream.clone()),
            term: self.term,
            ..Append::default()
        };
        if self.since_snapshot > 0 {
            self.add_snapshot(&mut append);
        }
        self.submit(append, done);
    }

    fn submit(&self, append: Append, done: impl FnOnce(Result<(), JournalError>) + Send + 'static) {
        let (pending, lost, me) = (self.pending.clone(), self.lost.clone(), self.me.clone());
        pending.fetch_add(1, Ordering::AcqRel);
        self.ctx.journal.submit(
            append,
            Box::new(move |result| {
                if result.is_err() {
                    // Whatever the write was (events, a snapshot, a barrier), the state can no
                    // longer be trusted to match the disk: start over from the journal.
                    lost.store(true, Ordering::Release);
                    me.kill();
                }
                pending.fetch_sub(1, Ordering::AcqRel);
                done(result);
            }),
        );
    }

    /// Runs `f` once every write of this entity so far is settled: at once when none is
    /// pending. `f` is told whether they all became durable — if one failed, the state it
    /// would answer from is ahead of the disk.
    fn when_durable(&self, f: impl FnOnce(bool) + Send + 'static) {
        let lost = self.lost.clone();
        if self.pending.load(Ordering::Acquire) == 0 {
            f(!lost.load(Ordering::Acquire));
        } else {
            self.submit(Append::barrier(), move |_| f(!lost.load(Ordering::Acquire)));
        }
    }

    fn inspection(&self) -> Inspection {
        Inspection {
            kind: E::KIND,
            id: self.id.to_string(),
            seq: self.seq,
            snapshot_seq: self.snapshot_seq,
            state: serde_json::to_value(&self.state).unwrap_or_default(),
        }
    }
}
