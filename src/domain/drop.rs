//! Flash-sale drops: a fixed number of a SKU's units sold from `starts_at` until `ends_at` (or
//! until gone), at most `per_user_limit` units to one shopper. A drop lives in its SKU's state
//! (`domain::inventory`), so a purchase is one message to one actor: the window, the remaining
//! count and the shopper's limit are checked and taken together, with no read-then-write.
//!
//! Units: creating a drop moves `quantity` units out of the SKU's `available` into the drop's
//! `remaining`. A purchase moves units from `remaining` to a reservation (held by the order,
//! counted in the SKU's `reserved` too); payment makes them sold; a released or expired
//! reservation gives them back to `remaining`. When the drop ends, what it has not sold goes
//! back to the shelf (`shelved`), as do reservations released after the end. So at every instant
//! `sold + reserved + remaining + shelved == quantity`, and `sold <= quantity`.

pub use crate::domain::ids::DropId;
use crate::domain::ids::UserId;
use crate::domain::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The most units one shopper may be allowed per drop, and per purchase.
pub const MAX_PER_USER: u32 = 100;

/// What an admin sets up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropSpec {
    pub quantity: u32,
    pub price: i64,
    pub starts_at: Timestamp,
    pub ends_at: Option<Timestamp>,
    pub per_user_limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropState {
    pub spec: DropSpec,
    pub remaining: u32,
    pub reserved: u32,
    pub sold: u32,
    /// Units each shopper holds or bought (released units no longer count).
    pub per_user: BTreeMap<UserId, u32>,
    /// Set by the SKU's timer when the window opened / closed (for publication; purchases
    /// check the clock themselves).
    pub opened: bool,
    pub ended: bool,
    /// Units given back to the SKU's shelf (`available`): those unsold when the drop ended and
    /// those of reservations released after it.
    #[serde(default)]
    pub shelved: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropStatus {
    Scheduled,
    Live,
    SoldOut,
    Ended,
}

impl DropStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DropStatus::Scheduled => "scheduled",
            DropStatus::Live => "live",
            DropStatus::SoldOut => "sold_out",
            DropStatus::Ended => "ended",
        }
    }
}

/// Why a drop refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum DropError {
    #[error("the drop is sold out")]
    SoldOut,
    #[error("the drop is not live")]
    NotLive(DropStatus),
    #[error("at most {limit} per customer; {held} already held")]
    LimitReached { limit: u32, held: u32 },
    #[error("no such drop")]
    NotFound,
    #[error("a drop with this id exists")]
    Exists,
    #[error("{0}")]
    Invalid(std::borrow::Cow<'static, str>),
}

impl DropState {
    pub fn new(spec: DropSpec) -> Self {
        Self {
            remaining: spec.quantity,
            spec,
            reserved: 0,
            sold: 0,
            per_user: BTreeMap::new(),
            opened: false,
            ended: false,
            shelved: 0,
        }
    }

    /// The window closed: the units left go back to the shelf. Returns how many.
    pub fn end(&mut self) -> u32 {
        self.opened = true;
        self.ended = true;
        let left = std::mem::take(&mut self.remaining);
        self.shelved += left;
        left
    }

    /// Where the drop stands at `now`.
    pub fn status(&self, now: Timestamp) -> DropStatus {
        status_at(&self.spec, self.ended, self.remaining, now)
    }

    /// The next time the drop's timer must act: its opening, then its end.
    pub fn next_transition(&self) -> Option<Timestamp> {
        if !self.opened {
            Some(self.spec.starts_at)
        } else if !self.ended {
            self.spec.ends_at
        } else {
            None
        }
    }

    /// Checks a purchase of `qty` by `user` at `now`: the window, the stock, the limit.
    pub fn check_purchase(&self, user: &UserId, qty: u32, now: Timestamp) -> Result<(), DropError> {
        if qty == 0 || qty > MAX_PER_USER {
            return Err(DropError::Invalid(
                "quantity must be between 1 and 100".into(),
            ));
        }
        match self.status(now) {
            DropStatus::Live => {}
            DropStatus::SoldOut => return Err(DropError::SoldOut),
            other => return Err(DropError::NotLive(other)),
        }
        let held = self.per_user.get(user).copied().unwrap_or(0);
        if held + qty > self.spec.per_user_limit {
            return Err(DropError::LimitReached {
                limit: self.spec.per_user_limit,
                held,
            });
        }
        if qty > self.remaining {
            return Err(DropError::SoldOut);
        }
        Ok(())
    }

    pub fn take(&mut self, user: &UserId, qty: u32) {
        self.remaining -= qty;
        self.reserved += qty;
        *self.per_user.entry(user.clone()).or_default() += qty;
    }

    pub fn sell(&mut self, qty: u32) {
        self.reserved -= qty;
        self.sold += qty;
    }

    /// Sold units that came back (a paid order cancelled, a return): they are the drop's to
    /// sell again and the shopper's allowance is given back, while it runs; once it ended
    /// they go to the shelf, as its unsold units did. Returns the units for the shelf.
    pub fn take_back(&mut self, user: &UserId, qty: u32) -> u32 {
        self.sold -= qty;
        self.forget(user, qty);
        if self.ended {
            self.shelved += qty;
            qty
        } else {
            self.remaining += qty;
            0
        }
    }

    /// A released or expired reservation: the shopper may buy again, and its units return to
    /// the drop while it runs, to the shelf once it ended. Returns the units for the shelf.
    pub fn give_back(&mut self, user: &UserId, qty: u32) -> u32 {
        self.reserved -= qty;
        self.forget(user, qty);
        if self.ended {
            self.shelved += qty;
            qty
        } else {
            self.remaining += qty;
            0
        }
    }

    fn forget(&mut self, user: &UserId, qty: u32) {
        if let Some(held) = self.per_user.get_mut(user) {
            *held = held.saturating_sub(qty);
            if *held == 0 {
                self.per_user.remove(user);
            }
        }
    }
}

/// Checks an admin's drop before the SKU takes its units.
pub fn validate(spec: &DropSpec) -> Result<(), DropError> {
    if spec.quantity == 0 || spec.quantity > 10_000_000 {
        return Err(DropError::Invalid(
            "quantity must be between 1 and 10000000".into(),
        ));
    }
    if spec.price <= 0 || spec.price > 1_000_000_000_000 {
        return Err(DropError::Invalid("price must be positive".into()));
    }
    if spec.per_user_limit == 0 || spec.per_user_limit > MAX_PER_USER {
        return Err(DropError::Invalid(
            "per_user_limit must be between 1 and 100".into(),
        ));
    }
    if spec.ends_at.is_some_and(|end| end <= spec.starts_at) {
        return Err(DropError::Invalid("ends_at must be after starts_at".into()));
    }
    Ok(())
}

/// Refuses a new drop whose window ended before `now`: it could sell nothing, and its units
/// would go back to the shelf the moment they were set aside.
pub fn check_not_over(spec: &DropSpec, now: Timestamp) -> Result<(), DropError> {
    if spec.ends_at.is_some_and(|end| end <= now) {
        return Err(DropError::Invalid(
            "ends_at is in the past: the drop could sell nothing".into(),
        ));
    }
    Ok(())
}

/// A drop as read models and the public API see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropView {
    pub drop_id: DropId,
    pub quantity: u32,
    pub remaining: u32,
    pub reserved: u32,
    pub sold: u32,
    /// See [`DropState::shelved`].
    #[serde(default)]
    pub shelved: u32,
    pub price: i64,
    pub starts_at: Timestamp,
    pub ends_at: Option<Timestamp>,
    pub per_user_limit: u32,
    /// Set once the window closed (the status otherwise follows the clock).
    pub ended: bool,
}

impl DropView {
    pub fn of(drop_id: &DropId, d: &DropState) -> Self {
        Self {
            drop_id: drop_id.clone(),
            quantity: d.spec.quantity,
            remaining: d.remaining,
            reserved: d.reserved,
            sold: d.sold,
            shelved: d.shelved,
            price: d.spec.price,
            starts_at: d.spec.starts_at,
            ends_at: d.spec.ends_at,
            per_user_limit: d.spec.per_user_limit,
            ended: d.ended,
        }
    }

    pub fn status(&self, now: Timestamp) -> DropStatus {
        let window = (self.starts_at, self.ends_at);
        status_in(window, self.ended, self.remaining, now)
    }
}

fn status_at(spec: &DropSpec, ended: bool, remaining: u32, now: Timestamp) -> DropStatus {
    status_in((spec.starts_at, spec.ends_at), ended, remaining, now)
}

/// The status rule, shared by the state and its view.
fn status_in(
    (starts_at, ends_at): (Timestamp, Option<Timestamp>),
    ended: bool,
    remaining: u32,
    now: Timestamp,
) -> DropStatus {
    if ended || ends_at.is_some_and(|end| now >= end) {
        DropStatus::Ended
    } else if now < starts_at {
        DropStatus::Scheduled
    } else if remaining == 0 {
        DropStatus::SoldOut
    } else {
        DropStatus::Live
    }
}
