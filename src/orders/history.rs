//! Order history read models, built from the orders' durable views: each user's orders and all
//! orders newest first (admin), and the set of orders that still owe a step or await a
//! deadline (what the dispatcher scans instead of every order).

use crate::actors::order::OrderView;
use crate::domain::ids::{OrderId, UserId};
use crate::domain::time::Timestamp;
use dashmap::{DashMap, DashSet};
use std::collections::BTreeSet;
use std::sync::RwLock;

type Key = (Timestamp, OrderId);

#[derive(Default)]
pub struct History {
    by_user: DashMap<UserId, BTreeSet<Key>>,
    all: RwLock<BTreeSet<Key>>,
    /// Orders with pending effects or a deadline.
    pub active: DashSet<OrderId>,
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
                all.insert(key);
            }
        }
        let owes = view.deadline.is_some() || view.effects.iter().any(|e| !e.dead);
        if owes {
            self.active.insert(id.clone());
        } else {
            self.active.remove(id);
        }
    }

    /// One page of `user`'s orders (all orders without a user), newest first, after `cursor`.
    pub fn page(
        &self,
        user: Option<&UserId>,
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
        let mut keys = match user {
            Some(u) => self.by_user.get(u).map(|s| take(&s)).unwrap_or_default(),
            None => self.all.read().map(|s| take(&s)).unwrap_or_default(),
        };
        let next = (keys.len() > limit).then(|| {
            keys.truncate(limit);
            keys.last().map(encode_cursor)
        });
        (keys.into_iter().map(|(_, id)| id).collect(), next.flatten())
    }
}
