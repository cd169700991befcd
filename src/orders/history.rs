//! Order history read models, built from the orders' durable views: each user's orders, all
//! orders and all orders of one status newest first (admin), and the orders that still owe a
//! step or await a deadline, queued by when they next need the dispatcher.

use crate::actors::order::OrderView;
use crate::domain::ids::{OrderId, UserId};
use crate::domain::order::OrderStatus;
use crate::domain::time::Timestamp;
use dashmap::DashMap;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, RwLock};

type Key = (Timestamp, OrderId);

#[derive(Default)]
pub struct History {
    by_user: DashMap<UserId, BTreeSet<Key>>,
    all: RwLock<BTreeSet<Key>>,
    by_status: RwLock<ByStatus>,
    /// When each active order (pending effects or a deadline) next needs the dispatcher (its deadline or its earliest live
    /// step), ordered by that time: a tick reads only what is due, however many orders wait.
    due: Mutex<Due>,
}

/// Visible orders by their current status: the console's "orders to ship".
#[derive(Default)]
struct ByStatus {
    of: HashMap<OrderId, OrderStatus>,
    sets: HashMap<OrderStatus, BTreeSet<Key>>,
}

impl ByStatus {
    fn set(&mut self, key: &Key, status: OrderStatus) {
        // Most view changes keep the status: no clone, no set touched.
        if self.of.get(&key.1) == Some(&status) {
            return;
        }
        let old = self.of.insert(key.1.clone(), status);
        if let Some(old) = old
            && let Some(set) = self.sets.get_mut(&old)
        {
            set.remove(key);
        }
        self.sets.entry(status).or_default().insert(key.clone());
    }
}

#[derive(Default)]
struct Due {
    at: HashMap<OrderId, Timestamp>,
    queue: BTreeSet<(Timestamp, OrderId)>,
}

impl Due {
    fn set(&mut self, id: &OrderId, next: Option<Timestamp>) {
        if let Some(old) = self.at.remove(id) {
            self.queue.remove(&(old, id.clone()));
        }
        if let Some(at) = next {
            self.at.insert(id.clone(), at);
            self.queue.insert((at, id.clone()));
        }
    }
}

/// Which orders a history page lists.
#[derive(Debug, Clone, Copy)]
pub enum Listing<'a> {
    /// One shopper's.
    User(&'a UserId),
    /// Everyone's (admin).
    All,
    /// Everyone's in one status (admin).
    Status(OrderStatus),
}

/// A page position: the creation time and id of the last order shown.
pub fn encode_cursor((at, id): &Key) -> String {
    format!("{}_{}", at.millis(), id)
}

pub fn decode_cursor(raw: &str) -> Option<Key> {
    let (ms, id) = raw.split_once('_')?;
    Some((Timestamp(ms.parse().ok()?), OrderId::parse(id).ok()?))
}

impl History {
    pub fn record(&self, id: &OrderId, view: &OrderView) {
        let key = (view.created_at, id.clone());
        if view.status.visible() {
            let mut mine = self.by_user.entry(view.user_id.clone()).or_default();
            if mine.insert(key.clone())
                && let Ok(mut all) = self.all.write()
            {
                all.insert(key.clone());
            }
            if let Ok(mut by_status) = self.by_status.write() {
                by_status.set(&key, view.status);
            }
        }
        let next_step = view
            .effects
            .iter()
            .filter(|e| !e.dead)
            .map(|e| e.not_before)
            .min();
        let next = view.deadline.into_iter().chain(next_step).min();
        if let Ok(mut due) = self.due.lock() {
            due.set(id, next);
        }
    }

    /// Every order with pending effects or a deadline.
    pub fn active(&self) -> Vec<OrderId> {
        self.due
            .lock()
            .map(|due| due.at.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The orders whose deadline or next step has come by `now`, earliest first.
    pub fn due(&self, now: Timestamp) -> Vec<OrderId> {
        let Ok(due) = self.due.lock() else {
            return vec![];
        };
        due.queue
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, id)| id.clone())
            .collect()
    }

    /// One page of the `listing`'s orders, newest first, after `cursor`.
    pub fn page(
        &self,
        listing: Listing<'_>,
        cursor: Option<&Key>,
        limit: usize,
    ) -> (Vec<OrderId>, Option<String>) {
        let take = |set: &BTreeSet<Key>| -> Vec<Key> {
            let range = match cursor {
                Some(c) => set.range(..c.clone()),
                None => set.range(..),
            };
            range.rev().take(limit + 1).cloned().collect()
        };
        let mut keys = match listing {
            Listing::User(u) => self.by_user.get(u).map(|s| take(&s)).unwrap_or_default(),
            Listing::All => self.all.read().map(|s| take(&s)).unwrap_or_default(),
            Listing::Status(status) => self
                .by_status
                .read()
                .map(|b| b.sets.get(&status).map(take).unwrap_or_default())
                .unwrap_or_default(),
        };
        let next = (keys.len() > limit).then(|| {
            keys.truncate(limit);
            keys.last().map(encode_cursor)
        });
        (keys.into_iter().map(|(_, id)| id).collect(), next.flatten())
    }
}
