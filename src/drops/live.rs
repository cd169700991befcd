//! Live stock of drops on the EventBus: every change of a drop's remaining count or status is
//! published on `drop:{id}` as `{"type": "stock", "drop_id", "remaining", "status", "at_ms"}`
//! (`at_ms`: Unix milliseconds of the first change the message reports to its reader). Counts
//! come from durable views, so a published count never shows a purchase that could still be
//! lost.
//!
//! Changes are coalesced: a sell-out of thousands of units in a second is a handful of
//! messages, each with the latest count. The topic is staggered ([`EventBus::stagger`]): its
//! subscribers are spread over [`SLOTS`] slots, and each slot gets at most one message per
//! gap, [`INTERVAL`] (20 a second) or longer past [`FANOUT_BUDGET`] frames a second. The
//! slots take their turns spread evenly over the gap, and a slot is only sent to at its turn,
//! even after a quiet spell. Every subscriber therefore hears of a change within about one
//! gap, whatever its place among 20,000; sent to all at once, the last socket would wait the
//! gap plus the ~0.2 s it takes to write one message to all the others.

use crate::domain::drop::{DropId, DropStatus, DropView};
use crate::domain::time::{Clock, Timestamp};
use crate::events::{EventBus, SLOTS};
use dashmap::DashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// At most one message per drop and slot per interval.
pub const INTERVAL: Duration = Duration::from_millis(50);
/// Frames a second one drop's messages may cost in all, unless set otherwise
/// (`server.ws_fanout_frames_per_sec`): with more subscribers than `FANOUT_BUDGET / 20`, a
/// slot's messages are spaced further apart (19,900 sockets: one per 199 ms), so the fan-out
/// keeps up instead of queueing. Sending a frame on loopback costs ~9 µs of kernel time
/// (profiled, the receiving side's TCP included); this box (two cores, the 19,900 clients
/// beside the server) delivered ~105,000 frames a second in all.
pub const FANOUT_BUDGET: usize = 100_000;
/// How often pending changes are looked at.
const TICK: Duration = Duration::from_millis(5);

type Shown = (u32, DropStatus);

#[derive(Clone)]
pub struct LiveStock {
    bus: EventBus,
    clock: Arc<dyn Clock>,
    /// Per drop: its newest view and what each slot has heard of it.
    feeds: Arc<DashMap<DropId, Feed>>,
    /// Frames a second one drop may cost ([`FANOUT_BUDGET`] unless set).
    budget: usize,
    /// When the last flush ran (tokio's clock, so tests can pause it).
    flushed: Arc<Mutex<Option<Instant>>>,
}

struct Feed {
    topic: String,
    view: DropView,
    slots: [Slot; SLOTS],
    /// Where the turns are, in slots (see [`due`]): it moves on by the time between two
    /// flushes over the gap then, so a gap that changes with every subscriber changes how
    /// fast the turns come, never where they are.
    phase: f64,
}

#[derive(Clone, Copy, Default)]
struct Slot {
    /// The first change this slot has not been sent.
    since: Option<Timestamp>,
    /// What it was sent last.
    shown: Option<Shown>,
}

impl LiveStock {
    /// Publishes on `bus`, whose `drop:` topics it staggers from now on.
    pub fn new(bus: EventBus, clock: Arc<dyn Clock>) -> Self {
        bus.stagger("drop:");
        Self {
            bus,
            clock,
            feeds: Arc::default(),
            budget: FANOUT_BUDGET,
            flushed: Arc::default(),
        }
    }

    /// Spends at most `frames_per_sec` on one drop's messages (the setting is checked to be
    /// at least 1,000 when loaded).
    pub fn with_budget(mut self, frames_per_sec: usize) -> Self {
        self.budget = frames_per_sec;
        self
    }

    /// Notes a drop's newest durable view; each slot hears of it at its next turn. A drop no
    /// one listens to is not kept: whoever subscribes later hears of its next change, as a
    /// subscriber joining an empty slot does.
    pub fn update(&self, view: &DropView) {
        let now = self.clock.now();
        let mut feed = match self.feeds.get_mut(&view.drop_id) {
            Some(feed) => feed,
            None => {
                let topic = format!("drop:{}", view.drop_id);
                if self.bus.receivers(&topic) == 0 {
                    return;
                }
                // Another update may make the feed between the look above and this one.
                self.feeds
                    .entry(view.drop_id.clone())
                    .or_insert_with(|| Feed {
                        topic,
                        view: view.clone(),
                        slots: [Slot::default(); SLOTS],
                        phase: 0.0,
                    })
            }
        };
        feed.view = view.clone();
        for slot in &mut feed.slots {
            slot.since.get_or_insert(now);
        }
    }

    /// Publishes what changed to each slot whose turn it is; returns how many messages
    /// reached a subscriber.
    pub fn flush(&self) -> usize {
        let now = self.clock.now();
        let t = Instant::now();
        let before = self
            .flushed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(t);
        // Sent once the feeds are let go: a slot's wake-ups would otherwise hold up update().
        let mut due_now = Vec::new();
        // Every drop ever seen would otherwise be looked at every tick, for as long as the
        // node runs: a feed whose listeners have all left is dropped.
        self.feeds
            .retain(|_, feed| self.bus.receivers(&feed.topic) > 0);
        for mut feed in self.feeds.iter_mut() {
            let feed = &mut *feed;
            let slots = self.bus.slots(&feed.topic).min(SLOTS);
            let from = feed.phase;
            if slots > 0 {
                let gap = gap(self.bus.receivers(&feed.topic), self.budget);
                let elapsed = before.map_or(gap, |b| t.saturating_duration_since(b));
                feed.phase = from + elapsed.as_secs_f64() / gap.as_secs_f64() * slots as f64;
            }
            let to = feed.phase;
            feed.phase %= slots.max(1) as f64;
            let shown = (feed.view.remaining, feed.view.status(now));
            for (i, slot) in feed.slots.iter_mut().enumerate() {
                let Some(since) = slot.since else { continue };
                if i >= slots {
                    // No one there to tell: whoever comes hears of the next change.
                    *slot = Slot::default();
                    continue;
                }
                if slot.shown == Some(shown) {
                    slot.since = None; // nothing new to tell
                    continue;
                }
                if !due(i, slots, from, to) {
                    continue; // its turn has not come since the last flush
                }
                let message = serde_json::json!({
                    "type": "stock",
                    "drop_id": feed.view.drop_id,
                    "remaining": shown.0,
                    "status": shown.1.as_str(),
                    "at_ms": since.millis(),
                });
                due_now.push((feed.topic.clone(), i, message.to_string()));
                *slot = Slot {
                    since: None,
                    shown: Some(shown),
                };
            }
        }
        due_now
            .into_iter()
            .filter(|(topic, i, message)| {
                self.bus.publish_to_slot(topic, *i, message.as_str().into()) > 0
            })
            .count()
    }

    /// Flushes every [`TICK`] until `shutdown`.
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

/// The least time between two messages to one slot of a drop with `receivers` subscribers,
/// spending at most `budget` frames a second.
fn gap(receivers: usize, budget: usize) -> Duration {
    let spread =
        Duration::from_micros((receivers as u64).saturating_mul(1_000_000) / budget.max(1) as u64);
    spread.max(INTERVAL)
}

/// Whether slot `i` of `slots` had its turn while the phase moved from `from` to `to`. The
/// phase counts in slots, a whole gap being `slots`: slot `i`'s turns come at `i`, `i +
/// slots`, …, so the slots' messages are spread evenly over the gap.
fn due(i: usize, slots: usize, from: f64, to: f64) -> bool {
    let turn = |phase: f64| ((phase - i as f64) / slots.max(1) as f64).floor();
    turn(to) > turn(from)
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
        assert_eq!(gap(0, FANOUT_BUDGET), INTERVAL);
        assert_eq!(gap(5_000, FANOUT_BUDGET), INTERVAL);
        assert_eq!(gap(19_000, FANOUT_BUDGET), Duration::from_millis(190));
        assert_eq!(gap(19_000, 200_000), Duration::from_millis(95));
    }

    #[test]
    fn each_slot_has_one_turn_per_gap_in_order() {
        // The phase moving a tenth of a slot per flush through two whole gaps.
        let steps: Vec<(f64, f64)> = (0..SLOTS * 20)
            .map(|k| (k as f64 / 10.0, (k + 1) as f64 / 10.0))
            .collect();
        let mut order = Vec::new();
        for (from, to) in steps {
            order.extend((0..SLOTS).filter(|i| due(*i, SLOTS, from, to)));
        }
        let once: Vec<usize> = (1..SLOTS).chain([0]).collect();
        assert_eq!(order, [once.clone(), once].concat());
        assert!(
            (0..SLOTS).all(|i| due(i, SLOTS, 0.0, SLOTS as f64)),
            "a whole gap: all"
        );
        assert!(
            due(0, 1, 0.5, 1.2) && !due(0, 1, 1.2, 1.9),
            "one slot: once per gap"
        );
    }

    /// 20,000 subscribers (a gap of 200 ms) and a change every `every` for two seconds, on
    /// tokio's paused clock: the longest any slot waited for a change (ms), and when (ms on
    /// the clock) each slot heard.
    ///
    /// With `joining`, the node has been up an hour and a subscriber joins every `joining`
    /// ms: each join changes the gap by 10 µs, which must not move the slots' turns.
    async fn fan_out(every: u64, joining: Option<u64>) -> (i64, Vec<(usize, i64)>) {
        let bus = EventBus::default();
        let clock = Arc::new(ManualClock::starting_at(Timestamp(1_000)));
        let live = LiveStock::new(bus.clone(), clock.clone());
        if joining.is_some() {
            tokio::time::advance(Duration::from_secs(3_600)).await;
        }
        let mut joined = Vec::new();
        // Each subscriber joins the emptiest slot: the first SLOTS are one per slot.
        let mut subs: Vec<_> = (0..20_000).map(|_| bus.subscribe("drop:d1")).collect();
        assert_eq!(
            gap(bus.receivers("drop:d1"), FANOUT_BUDGET),
            Duration::from_millis(200)
        );
        let shutdown = CancellationToken::new();
        let runner = tokio::spawn(live.clone().run(shutdown.clone()));
        let (mut worst, mut heard) = (0i64, Vec::new());
        for ms in 0..2_000u32 {
            if u64::from(ms) % every == 0 {
                live.update(&view(2_000 - ms));
            }
            if joining.is_some_and(|j| u64::from(ms) % j == 0) {
                joined.push(bus.subscribe("drop:d1"));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            clock.advance(Duration::from_millis(1));
            let now = clock.now().millis();
            for (slot, sub) in subs[..SLOTS].iter_mut().enumerate() {
                while let Ok(m) = sub.try_recv() {
                    let m: serde_json::Value = serde_json::from_str(&m).unwrap();
                    worst = worst.max(now - m["at_ms"].as_i64().unwrap());
                    heard.push((slot, now));
                }
            }
        }
        shutdown.cancel();
        runner.await.unwrap();
        (worst, heard)
    }

    /// After the first flush (every slot at once), at most two slots in any 5 ms.
    fn assert_spread(heard: &[(usize, i64)]) {
        let later: Vec<i64> = heard
            .iter()
            .map(|(_, at)| *at)
            .filter(|at| *at > 1_010)
            .collect();
        for at in &later {
            let near = later.iter().filter(|b| (*b - at).abs() < 5).count();
            assert!(near <= 2, "{near} slots were sent to within 5 ms of {at}");
        }
    }

    /// A change every millisecond: every slot hears of each change within one gap (and a
    /// tick), once per gap, and the slots' messages are spread over the gap instead of all
    /// going out at once.
    #[tokio::test(start_paused = true)]
    async fn with_many_subscribers_every_slot_hears_within_a_gap_and_the_turns_are_spread() {
        let (worst, heard) = fan_out(1, None).await;
        assert_steady(worst, &heard);
    }

    /// The same an hour after start, with a subscriber joining every 15 ms (a hot drop's
    /// sockets arriving): the turns stay one per gap per slot.
    #[tokio::test(start_paused = true)]
    async fn subscribers_joining_late_in_the_day_do_not_move_the_turns() {
        let (worst, heard) = fan_out(1, Some(15)).await;
        assert_steady(worst, &heard);
    }

    /// Every slot waited about one gap for the first change it was sent (its `at_ms` is that
    /// change, not the send), heard once per gap, and the slots were spread.
    fn assert_steady(worst: i64, heard: &[(usize, i64)]) {
        assert!(
            (190..=200 + 2 * 5 + 1).contains(&worst),
            "a slot waited {worst} ms for a change"
        );
        for slot in 0..SLOTS {
            let n = heard.iter().filter(|(s, _)| *s == slot).count();
            assert!(
                (10..=12).contains(&n),
                "slot {slot} heard {n} messages in 2 s"
            );
        }
        assert_spread(heard);
    }

    /// A change now and then (every 130 ms, less than a gap): each slot still waits for its
    /// turn, so a lone change does not go out to 20,000 sockets at once.
    #[tokio::test(start_paused = true)]
    async fn with_many_subscribers_a_lone_change_waits_for_each_slot_s_turn() {
        let (worst, heard) = fan_out(130, None).await;
        assert!(
            worst <= 200 + 2 * 5 + 1,
            "a slot waited {worst} ms for a change"
        );
        assert!(heard.len() > SLOTS * 5, "{} messages", heard.len());
        assert_spread(&heard);
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

    #[tokio::test]
    async fn a_drop_no_one_listens_to_is_not_kept() {
        // Given a drop no one listens to
        let (live, bus) = live();
        live.update(&view(5));
        assert_eq!(live.feeds.len(), 0);
        // When someone subscribes and the drop changes, they hear of it
        let mut sub = bus.subscribe("drop:d1");
        live.update(&view(4));
        assert_eq!(live.flush(), 1);
        let message: serde_json::Value = serde_json::from_str(&sub.recv().await.unwrap()).unwrap();
        assert_eq!(message["remaining"], 4);
        // When the listener leaves
        drop(sub);
        live.flush();
        // Then the feed is let go, and later changes no one hears keep nothing
        assert_eq!(live.feeds.len(), 0);
        live.update(&view(3));
        assert_eq!(live.feeds.len(), 0);
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
        // One per INTERVAL (50 ms) over the second, and the last change after it (the one
        // subscriber is in slot 0).
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
