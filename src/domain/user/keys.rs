//! The `Idempotency-Key`s a user has sent to routes that act on an existing order (payment
//! confirmation, cancellation), each with the order it named. A sub-aggregate of the user.
//!
//! The answer a key replays is kept in the order it acted on; this keeps the key itself, so
//! that the same key sent for another order, or to another route, is `422
//! idempotency_key_reused` (API.md, "Idempotency") instead of a second action. A key is kept for [`KEY_RETENTION`] after its
//! use, and a user keeps at most [`MAX_KEYS`] (the oldest go first); a key forgotten after
//! that acts again, as Stripe's keys do after their 24 hours.
//!
//! A key is also *in flight* from its first use until its request has an answer
//! ([`KeyCommand::Answered`]): another request with the key meanwhile is refused
//! ([`KeyError::InUse`], `409 idempotency_key_in_use`) instead of acting beside it, as the
//! IETF's Idempotency-Key draft asks (draft-ietf-httpapi-idempotency-key-header, "Error
//! Scenarios": a retry while the original request is still processing is a 409). Two
//! requests with one key and different bodies could otherwise both run, and the one that
//! lost the race could have its refusal kept as the key's answer. A request that died
//! without answering (its node crashed) holds the key for [`IN_FLIGHT`] at most.

use crate::domain::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a used key is kept.
pub const KEY_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);
/// The most keys one user keeps.
pub const MAX_KEYS: usize = 256;
/// How long a request may hold its key unanswered before another request with the key may
/// act. A request lets its key go on every way out (`http::idempotency`), so this counts only
/// when its node died mid-request or its account could not be reached as it answered. It
/// must be longer than any route takes: a payment confirmation at the default settings takes
/// at most about 35 s (three 5 s attempts at the gateway with their backoff, a 5 s read of
/// the payment, and the orders' asks).
pub const IN_FLIGHT: Duration = Duration::from_secs(60);

/// Keys by slot (`route:key`), with the order each named and when it was first used.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Keys {
    used: BTreeMap<String, KeyUse>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyUse {
    pub order_id: String,
    pub at: Timestamp,
    /// The request that took the key (a random token): only it may give the key back.
    pub taken_by: String,
    /// Whether that request has answered (records from before this was kept have).
    #[serde(default = "answered_before")]
    pub answered: bool,
}

fn answered_before() -> bool {
    true
}

impl Keys {
    /// The order `slot` names, unless it was never used or has expired at `now`.
    pub fn order_of(&self, slot: &str, now: Timestamp) -> Option<&str> {
        self.used
            .get(slot)
            .filter(|u| u.at.plus(KEY_RETENTION) > now)
            .map(|u| u.order_id.as_str())
    }

    /// Whether the key of `slot` (`route:key`) was used on another route, unexpired at `now`:
    /// one key is one request, so confirming with a key and cancelling with it are two
    /// requests under one key (API.md, "Idempotency"; Stripe keys are per account, not per
    /// route).
    fn on_another_route(&self, slot: &str, now: Timestamp) -> bool {
        let key = key_of(slot);
        self.used
            .iter()
            .any(|(s, u)| s != slot && key_of(s) == key && u.at.plus(KEY_RETENTION) > now)
    }

    pub fn len(&self) -> usize {
        self.used.len()
    }

    pub fn is_empty(&self) -> bool {
        self.used.is_empty()
    }
}

/// The key of a slot `route:key` (routes have no colon; a key may).
fn key_of(slot: &str) -> &str {
    slot.split_once(':').map_or(slot, |(_, key)| key)
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum KeyCommand {
    /// The key `slot` is sent for `order_id` by the request `taken_by`: taken if new, a replay
    /// if it named that order.
    Use {
        slot: String,
        order_id: String,
        taken_by: String,
    },
    /// The request `taken_by` ended knowing it acted on nothing (404, 429): the key it took
    /// may name another order. A key another request took stays.
    Release { slot: String, taken_by: String },
    /// The request `taken_by` has its answer (kept in the order, or a `503` that may have
    /// acted): the key is no longer in flight. A key another request took stays as it is.
    Answered { slot: String, taken_by: String },
}

/// Stored in the user's journal as the user's events (`{"type": "idempotency_key_used", ...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum KeyEvent {
    IdempotencyKeyUsed {
        slot: String,
        order_id: String,
        taken_by: String,
        at: Timestamp,
    },
    IdempotencyKeyReleased {
        slot: String,
    },
    IdempotencyKeyAnswered {
        slot: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum KeyError {
    #[error("the idempotency key was used with a different request")]
    Reused,
    #[error("another request with this idempotency key is still being processed")]
    InUse,
}

pub fn decide(k: &Keys, cmd: &KeyCommand, now: Timestamp) -> Result<Vec<KeyEvent>, KeyError> {
    match cmd {
        KeyCommand::Use {
            slot,
            order_id,
            taken_by,
        } => match k.order_of(slot, now) {
            _ if k.on_another_route(slot, now) => Err(KeyError::Reused),
            Some(named) if named != order_id => Err(KeyError::Reused),
            Some(_) => match &k.used[slot] {
                u if !u.answered && &u.taken_by != taken_by && now < u.at.plus(IN_FLIGHT) => {
                    Err(KeyError::InUse)
                }
                _ => Ok(vec![]),
            },
            None => Ok(vec![KeyEvent::IdempotencyKeyUsed {
                slot: slot.clone(),
                order_id: order_id.clone(),
                taken_by: taken_by.clone(),
                at: now,
            }]),
        },
        KeyCommand::Release { slot, taken_by } => Ok(match k.used.get(slot) {
            Some(u) if &u.taken_by == taken_by => {
                vec![KeyEvent::IdempotencyKeyReleased { slot: slot.clone() }]
            }
            _ => vec![],
        }),
        KeyCommand::Answered { slot, taken_by } => Ok(match k.used.get(slot) {
            Some(u) if &u.taken_by == taken_by && !u.answered => {
                vec![KeyEvent::IdempotencyKeyAnswered { slot: slot.clone() }]
            }
            _ => vec![],
        }),
    }
}

pub fn apply(k: &mut Keys, event: &KeyEvent) {
    match event {
        KeyEvent::IdempotencyKeyUsed {
            slot,
            order_id,
            taken_by,
            at,
        } => {
            k.used.retain(|_, u| u.at.plus(KEY_RETENTION) > *at);
            while k.used.len() >= MAX_KEYS {
                // The oldest key goes, but not one whose request is still in flight (another
                // request with it would then act beside it), unless every kept key is.
                let in_flight = |u: &KeyUse| !u.answered && *at < u.at.plus(IN_FLIGHT);
                let oldest = k
                    .used
                    .iter()
                    .min_by_key(|(_, u)| (in_flight(u), u.at))
                    .map(|(slot, _)| slot.clone());
                match oldest {
                    Some(slot) => k.used.remove(&slot),
                    None => break,
                };
            }
            k.used.insert(
                slot.clone(),
                KeyUse {
                    order_id: order_id.clone(),
                    at: *at,
                    taken_by: taken_by.clone(),
                    answered: false,
                },
            );
        }
        KeyEvent::IdempotencyKeyReleased { slot } => {
            k.used.remove(slot);
        }
        KeyEvent::IdempotencyKeyAnswered { slot } => {
            if let Some(u) = k.used.get_mut(slot) {
                u.answered = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp(1_000_000);

    fn run(k: &mut Keys, cmd: KeyCommand, now: Timestamp) -> Result<usize, KeyError> {
        let events = decide(k, &cmd, now)?;
        events.iter().for_each(|e| apply(k, e));
        Ok(events.len())
    }

    fn use_for(slot: &str, order: &str) -> KeyCommand {
        use_by(slot, order, "r1")
    }

    fn use_by(slot: &str, order: &str, request: &str) -> KeyCommand {
        KeyCommand::Use {
            slot: slot.into(),
            order_id: order.into(),
            taken_by: request.into(),
        }
    }

    #[test]
    fn a_key_names_one_order_until_it_expires() {
        // Given a key used for order a
        let mut k = Keys::default();
        assert_eq!(run(&mut k, use_for("confirm:K", "a"), T0), Ok(1));
        // When it is sent again for a, then for b
        // Then the first is a replay (nothing recorded) and the second is refused
        assert_eq!(run(&mut k, use_for("confirm:K", "a"), T0), Ok(0));
        assert_eq!(
            run(&mut k, use_for("confirm:K", "b"), T0),
            Err(KeyError::Reused)
        );
        // And the same key on another route is refused too, for either order: one key is one
        // request
        assert_eq!(
            run(&mut k, use_for("cancel:K", "b"), T0),
            Err(KeyError::Reused)
        );
        assert_eq!(
            run(&mut k, use_for("cancel:K", "a"), T0),
            Err(KeyError::Reused)
        );
        // And once kept for its retention, it may name another order
        let later = T0.plus(KEY_RETENTION);
        assert_eq!(run(&mut k, use_for("confirm:K", "b"), later), Ok(1));
        assert_eq!(k.order_of("confirm:K", later), Some("b"));
    }

    #[test]
    fn only_the_request_that_took_a_key_gives_it_back() {
        // Given a key taken for order a by request r1, answered, then sent again for a by r2
        let mut k = Keys::default();
        run(&mut k, use_by("confirm:K", "a", "r1"), T0).unwrap();
        run(&mut k, answered("r1"), T0).unwrap();
        assert_eq!(run(&mut k, use_by("confirm:K", "a", "r2"), T0), Ok(0));
        // When r2 gives it back (it found nothing to act on), then r1
        let back = |request: &str| KeyCommand::Release {
            slot: "confirm:K".into(),
            taken_by: request.into(),
        };
        // Then only r1's release frees it, and it may then name another order
        assert_eq!(run(&mut k, back("r2"), T0), Ok(0));
        assert_eq!(k.order_of("confirm:K", T0), Some("a"));
        assert_eq!(run(&mut k, back("r1"), T0), Ok(1));
        assert_eq!(run(&mut k, use_for("confirm:K", "b"), T0), Ok(1));
    }

    fn answered(request: &str) -> KeyCommand {
        KeyCommand::Answered {
            slot: "confirm:K".into(),
            taken_by: request.into(),
        }
    }

    #[test]
    fn a_key_in_flight_refuses_another_request_until_its_answer_or_a_time_out() {
        // Given a key r1 took for order a and has not answered yet
        let mut k = Keys::default();
        run(&mut k, use_by("confirm:K", "a", "r1"), T0).unwrap();
        // When r2 sends it for a, then it is refused as in use (and for b as reused)
        let r2 = use_by("confirm:K", "a", "r2");
        assert_eq!(run(&mut k, r2.clone(), T0), Err(KeyError::InUse));
        let b = use_by("confirm:K", "b", "r2");
        assert_eq!(run(&mut k, b, T0), Err(KeyError::Reused));
        // And an answer from r2 changes nothing; once r1 answers, r2 may replay
        assert_eq!(run(&mut k, answered("r2"), T0), Ok(0));
        assert_eq!(run(&mut k, r2.clone(), T0), Err(KeyError::InUse));
        assert_eq!(run(&mut k, answered("r1"), T0), Ok(1));
        assert_eq!(run(&mut k, r2, T0), Ok(0));
        // And a key whose request never answered (its node died) frees after IN_FLIGHT
        run(&mut k, use_by("confirm:L", "a", "r3"), T0).unwrap();
        let r4 = use_by("confirm:L", "a", "r4");
        assert_eq!(run(&mut k, r4.clone(), T0), Err(KeyError::InUse));
        assert_eq!(run(&mut k, r4, T0.plus(IN_FLIGHT)), Ok(0));
    }

    #[test]
    fn a_user_keeps_at_most_the_newest_keys() {
        // Given a user who used one key more than are kept, one a millisecond
        let mut k = Keys::default();
        for i in 0..=MAX_KEYS as i64 {
            let at = Timestamp(T0.0 + i);
            run(&mut k, use_for(&format!("confirm:{i}"), "a"), at).unwrap();
        }
        // Then the oldest is forgotten and the newest kept
        assert_eq!(k.len(), MAX_KEYS);
        let now = Timestamp(T0.0 + MAX_KEYS as i64);
        assert_eq!(k.order_of("confirm:0", now), None);
        assert_eq!(k.order_of(&format!("confirm:{MAX_KEYS}"), now), Some("a"));
    }

    #[test]
    fn a_key_in_flight_is_not_forgotten_to_make_room() {
        // Given a user at the most keys kept, the oldest still in flight and the rest answered
        let mut k = Keys::default();
        for i in 0..MAX_KEYS as i64 {
            let at = Timestamp(T0.0 + i);
            let request = format!("r{i}");
            run(&mut k, use_by(&format!("confirm:{i}"), "a", &request), at).unwrap();
            if i > 0 {
                let done = KeyCommand::Answered {
                    slot: format!("confirm:{i}"),
                    taken_by: request,
                };
                run(&mut k, done, at).unwrap();
            }
        }
        // When one more key is used
        let now = Timestamp(T0.0 + MAX_KEYS as i64);
        run(&mut k, use_for("confirm:new", "a"), now).unwrap();
        // Then the oldest answered key made room, and the one in flight still refuses others
        assert_eq!(k.len(), MAX_KEYS);
        assert_eq!(k.order_of("confirm:1", now), None);
        assert_eq!(
            run(&mut k, use_by("confirm:0", "a", "other"), now),
            Err(KeyError::InUse)
        );
    }
}
