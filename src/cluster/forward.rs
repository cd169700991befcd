//! [`Forwarder`]: carries an ask for an entity of another node's shard to that node's region
//! (`cluster::region`) over ractor_cluster, and brings the answer back.
//!
//! The shard's holder comes from [`Routing`]. When the answer is `NotOwner`, or the holder's
//! region cannot be reached (no session yet, or the node just died), the holder is read again
//! from Redis and the ask retried, the pause doubling from 20 ms up to 200 ms, until
//! the budget ([`RETRY_BUDGET`] at least) is spent: then the ask is `Unavailable` (503 with `Retry-After`). Only
//! answers that prove the owner never ran the command are retried; a timeout or a session
//! lost while waiting may have run it, and is answered as such.

use crate::actors::remote::{self, Admission, Answer, Forward, Op};
use crate::cluster::leases::Leases;
use crate::cluster::region::{self, ENVELOPE_VERSION, Envelope, RegionMsg};
use crate::cluster::routing::Routing;
use crate::cluster::shards::Shard;
use crate::persistence::redis_journal::Fences;
use futures_util::future::BoxFuture;
use ractor::ActorRef;
use ractor::rpc::CallResult;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long an ask keeps looking for its shard's owner before it answers `Unavailable`, at
/// least: longer than a hand-over takes with the default lease TTL (3 s; see `budget`).
pub const RETRY_BUDGET: Duration = Duration::from_secs(3);
const FIRST_PAUSE: Duration = Duration::from_millis(20);
/// The longest pause between two tries: a shard that changed hands is found soon after.
const MAX_PAUSE: Duration = Duration::from_millis(200);

pub struct Forwarder {
    pub routing: Arc<Routing>,
    /// Reads a shard's holder again after a stale answer.
    pub leases: Leases,
    /// This node's own leases: `Local` only while the fence is good.
    pub fences: Arc<Fences>,
    pub shards: u32,
    /// How long one forwarded ask waits for its answer (the runtime's ask timeout).
    pub timeout: Duration,
}

/// What one attempt came to.
enum Attempt {
    Answered(Answer),
    /// The owner surely did not run it: ask again after a refresh.
    Retry(&'static str),
}

impl Forwarder {
    /// [`RETRY_BUDGET`], or the lease TTL and a half if longer: a hand-over (its steps within
    /// half the TTL, then the next owner's round within a third) is waited out, not failed.
    fn budget(&self) -> Duration {
        RETRY_BUDGET.max(self.leases.ttl() * 3 / 2)
    }

    async fn forward_op(&self, kind: &'static str, key: String, op: Op) -> Answer {
        let shard = Shard::of(kind, &key, self.shards);
        let envelope = Envelope {
            v: ENVELOPE_VERSION,
            kind: kind.to_owned(),
            key,
            op,
        };
        let bytes = match remote::encode(&envelope) {
            Ok(bytes) => bytes,
            Err(why) => return Answer::Malformed(format!("envelope: {why}")),
        };
        let started = Instant::now();
        let mut pause = FIRST_PAUSE;
        loop {
            // Redis lost this node's cluster: its holders are another cluster's (nodes started
            // since), which must not take this node's asks, nor a write of what it promised.
            if self.fences.is_halted() {
                return Answer::Unavailable;
            }
            let attempt = match self.routing.holder(shard) {
                Some(h) if h.holder == self.leases.holder_id() => {
                    if self.fences.admits(shard) {
                        return Answer::Local;
                    }
                    // Leaving, handed over or lapsing here: the map is a round behind.
                    Attempt::Retry("the map names this node")
                }
                Some(h) => self.send(&h.node, bytes.clone()).await,
                None => Attempt::Retry("the shard is free"),
            };
            let why = match attempt {
                Attempt::Answered(Answer::NotOwner) => "not_owner",
                Attempt::Answered(answer) => {
                    metrics::counter!("emporium_forwards_total", "outcome" => "answered")
                        .increment(1);
                    metrics::histogram!("emporium_forward_seconds")
                        .record(started.elapsed().as_secs_f64());
                    return answer;
                }
                Attempt::Retry(why) => why,
            };
            metrics::counter!("emporium_forward_retries_total", "reason" => why).increment(1);
            if started.elapsed() + pause > self.budget() {
                tracing::debug!(shard = shard.0, kind, why, "no owner answered in time");
                metrics::counter!("emporium_forwards_total", "outcome" => "unavailable")
                    .increment(1);
                return Answer::Unavailable;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_PAUSE);
            match self.leases.holder(shard).await {
                Ok(holder) => self.routing.set_holder(shard, holder),
                Err(_) => return Answer::Unavailable,
            }
        }
    }

    /// One try at `node`'s region.
    async fn send(&self, node: &str, bytes: Vec<u8>) -> Attempt {
        let Some(cell) = ractor::pg::get_members(&region::group(node))
            .into_iter()
            .next()
        else {
            return Attempt::Retry("no session with the owner");
        };
        let region: ActorRef<RegionMsg> = cell.into();
        match region
            .call(|port| RegionMsg::Forward(bytes, port), Some(self.timeout))
            .await
        {
            Ok(CallResult::Success(bytes)) => match remote::decode::<region::Reply>(&bytes) {
                Ok(reply) if reply.v == ENVELOPE_VERSION => Attempt::Answered(reply.answer),
                Ok(reply) => {
                    Attempt::Answered(Answer::Malformed(format!("reply v{} from {node}", reply.v)))
                }
                Err(why) => Attempt::Answered(Answer::Malformed(format!("reply: {why}"))),
            },
            Ok(CallResult::Timeout) => Attempt::Answered(Answer::Timeout),
            // The session ended while the ask was out: it may have run.
            Ok(CallResult::SenderError) => Attempt::Answered(Answer::Timeout),
            // Never sent (the region's cell is gone).
            Err(_) => Attempt::Retry("the owner's session ended"),
        }
    }
}

impl Forward for Forwarder {
    fn forward(&self, kind: &'static str, key: String, op: Op) -> BoxFuture<'_, Answer> {
        Box::pin(self.forward_op(kind, key, op))
    }

    fn enter(&self, kind: &'static str, key: &str) -> Option<Admission> {
        self.fences.enter(Shard::of(kind, key, self.shards))
    }
}
