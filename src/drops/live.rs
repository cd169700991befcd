//! Live stock of drops on the EventBus: every change of a drop's remaining count or status is
//! published on `drop:{id}` as `{"type": "stock", "drop_id", "remaining", "status", "at_ms"}`
//! (`at_ms`: Unix milliseconds of the first change in the message), coalesced
//! to at most one message per drop per [`INTERVAL`] (20 a second; fewer past [`FANOUT_BUDGET`]
//! frames a second, with tens of thousands of subscribers): a sell-out of thousands of
//! units in a second is a handful of messages, each with the latest count. Counts come from
//! durable views, so a published count never shows a purchase that could still be lost.

use crate::domain::drop::{DropId, DropStatus, DropView};
use crate::domain::time::{Clock, Timestamp};
use crate::events::EventBus;
use dashmap::DashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// At most one message per drop per interval.
pub const INTERVAL: Duration = Duration::from_millis(50);
/// Frames a second one drop's messages may cost in all: with more subscribers than
/// `FANOUT_BUDGET / 20`, a drop's messages are spaced further apart (19,000 sockets: one per
/// 190 ms), so the fan-out keeps up instead of queueing. Sending a frame on loopback costs
/// ~4 µs of kernel time (profiled); this box (two cores, the 19,000 clients beside the server)
/// delivered ~126,000 frames a second in all.
pub const FANOUT_BUDGET: usize = 100_000;
/// How often pending changes are looked at.
const TICK: Duration = Duration::from_millis(10);

type Shown = (u32, DropStatus);

#[derive(Clone)]
pub struct LiveStock {
    bus: EventBus,
    clock: Arc<dyn Clock>,
    /// The newest view of each drop that changed since the last flush, and when it first
    /// changed since then (the message's `at`: what delivery latency is measured from).
    pending: Arc<DashMap<DropId, (DropView, Timestamp)>>,
    /// What was published last, per drop, and when.
    shown: Arc<DashMap<DropId, Shown>>,
    /// When each drop's last message went out (tokio's clock, so tests can pause it).
    sent: Arc<DashMap<DropId, Instant>>,
}

impl LiveStock {
    pub fn new(bus: EventBus, clock: Arc<dyn Clock>) -> Self {
        Self {
            bus,
            clock,
            pending: Arc::default(),
            shown: Arc::default(),
            sent: Arc::default(),
        }
    }

    /// Notes a drop's newest durable view; published at the next flush.
    pub fn update(&self, view: &DropView) {
        let now = self.clock.now();
        self.pending
            .entry(view.drop_id.clone())
            .and_modify(|(v, _)| *v = view.clone())
            .or_insert_with(|| (view.clone(), now));
    }

    /// Publishes what changed since the last flush; returns how many drops were published.
    pub fn flush(&self) -> usize {
        let now = self.clock.now();
        let changed: Vec<(DropView, Timestamp)> = {
            let ids: Vec<DropId> = self.pending.iter().map(|e| e.key().clone()).collect();
            ids.into_iter()
                .filter_map(|id| self.pending.remove(&id).map(|(_, v)| v))
                .collect()
        };
        let mut published = 0;
        for (view, at) in changed {
            let now_shown = (view.remaining, view.status(now));
            if self
                .shown
                .get(&view.drop_id)
                .is_some_and(|s| *s == now_shown)
            {
                continue;
            }
            let topic = format!("drop:{}", view.drop_id);
            if self
                .sent
                .get(&view.drop_id)
                .is_some_and(|t| t.elapsed() < gap(self.bus.receivers(&topic)))
            {
                // Too soon for this drop: wait, keeping the first change's time.
                self.pending
                    .entry(view.drop_id.clone())
                    .and_modify(|(_, first)| *first = (*first).min(at))
                    .or_insert((view, at));
                continue;
            }
            self.sent.insert(view.drop_id.clone(), Instant::now());
            self.shown.insert(view.drop_id.clone(), now_shown);
            let message = serde_json::json!({
                "type": "stock",
                "drop_id": view.drop_id,
                "remaining": view.remaining,
                "status": now_shown.1.as_str(),
                "at_ms": at.millis(),
            });
            self.bus.publish(&topic, message.to_string().into());
            published += 1;
        }
        published
    }

    /// Flushes until `shutdown`: each drop at most every [`INTERVAL`] (longer with many
    /// subscribers, see [`FANOUT_BUDGET`]).
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => { self.flush(); }
            }
        }
    }
}

/// The least time between two messages of a drop with `receivers` subscribers.
fn gap(receivers: usize) -> Duration {
    let spread =
        Duration::from_micros((receivers as u64).saturating_mul(1_000_000) / FANOUT_BUDGET as u64);
    spread.max(INTERVAL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::drop::{DropSpec, DropState};
    use crate::domain::time::{ManualClock, Timestamp};

    fn view(remaining: u32) -> DropView {
        let spec = DropSpec {
            quantity: 1000,
            price: 1,
            starts_at: Timestamp(0),
            ends_at: None,
            per_user_limit: 1,
        };
        let mut d = DropState::new(spec);
        d.remaining = remaining;
        DropView::of(&DropId::parse("d1").unwrap(), &d)
    }

    fn live() -> (LiveStock, EventBus) {
        let bus = EventBus::default();
        let clock = Arc::new(ManualClock::starting_at(Timestamp(1_000)));
        (LiveStock::new(bus.clone(), clock), bus)
    }

    #[test]
    fn many_subscribers_space_a_drop_s_messages_out() {
        assert_eq!(gap(0), INTERVAL);
        assert_eq!(gap(5_000), INTERVAL);
        assert_eq!(gap(19_000), Duration::from_millis(190));
    }

    #[tokio::test]
    async fn many_changes_between_flushes_publish_once_with_the_latest_count() {
        let (live, bus) = live();
        let mut sub = bus.subscribe("drop:d1");
        for remaining in (0..1000).rev() {
            live.update(&view(remaining));
        }
        assert_eq!(live.flush(), 1);
        let message: serde_json::Value = serde_json::from_str(&sub.recv().await.unwrap()).unwrap();
        assert_eq!(
            message,
            serde_json::json!({"type": "stock", "drop_id": "d1", "remaining": 0, "status": "sold_out",
                "at_ms": 1_000})
        );
        live.update(&view(0));
        assert_eq!(live.flush(), 0, "an unchanged count is not sent again");
        assert!(sub.try_recv().is_err());
    }

    /// On tokio's paused clock: the second passes in virtual time, so the count does not
    /// depend on how busy the machine is.
    #[tokio::test(start_paused = true)]
    async fn a_sell_out_lasting_a_second_is_about_twenty_messages() {
        let (live, bus) = live();
        let mut sub = bus.subscribe("drop:d1");
        let shutdown = CancellationToken::new();
        let runner = tokio::spawn(live.clone().run(shutdown.clone()));
        let started = Instant::now();
        let mut remaining = 100_000u32;
        while started.elapsed() < Duration::from_secs(1) {
            remaining -= 1;
            live.update(&view(remaining));
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        tokio::time::sleep(INTERVAL * 2).await;
        shutdown.cancel();
        runner.await.unwrap();
        let mut messages = Vec::new();
        while let Ok(m) = sub.try_recv() {
            messages.push(serde_json::from_str::<serde_json::Value>(&m).unwrap());
        }
        // One per INTERVAL (50 ms) over the second, and the last change after it.
        assert!(
            (20..=22).contains(&messages.len()),
            "{} messages in a second",
            messages.len()
        );
        assert_eq!(
            messages.last().unwrap()["remaining"],
            remaining,
            "the last one is current"
        );
    }
}
