//! The login limit and refresh-token families of an account: how many failed logins lock it
//! and for how long (counted from before each password is checked: the user's `BeginLogin`),
//! and what a family remembers of the tokens it replaced so that only a replay of one of them
//! revokes it.

use crate::domain::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::Duration;

/// Failed logins allowed per account in [`LOGIN_WINDOW`].
pub const MAX_FAILED_LOGINS: usize = 10;
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);

/// A refresh token family: one login on one device, rotated on every refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Family {
    pub token_hash: String,
    pub expires_at: Timestamp,
    /// The family's last [`ROTATED_KEPT`] replaced tokens, as prefixes of their hashes: one
    /// presented again is a replay (the family is revoked); a token the family never had
    /// is merely invalid, so a made-up cookie naming a user and a session (both readable in
    /// any access token) cannot end that session.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rotated: Vec<String>,
}

/// Replaced refresh tokens a family recognises as replays (see [`Family::rotated`]).
pub const ROTATED_KEPT: usize = 32;

/// Hex digits of a replaced token's hash that [`Family::rotated`] keeps (64 bits).
const ROTATED_DIGITS: usize = 16;

fn rotated_prefix(hash: &str) -> &str {
    hash.get(..ROTATED_DIGITS).unwrap_or(hash)
}

impl Family {
    /// Whether `presented` (a token's hash) is one of the family's replaced tokens.
    pub fn replaced(&self, presented: &str) -> bool {
        self.rotated.iter().any(|r| r == rotated_prefix(presented))
    }

    /// [`Family::rotated`] once the current token is replaced: it joins the list, the
    /// oldest beyond [`ROTATED_KEPT`] leave.
    pub fn rotated_out(self) -> Vec<String> {
        let mut rotated = self.rotated;
        rotated.push(rotated_prefix(&self.token_hash).to_owned());
        let over = rotated.len().saturating_sub(ROTATED_KEPT);
        rotated.drain(..over);
        rotated
    }
}

/// Until when logins are refused after `failed` (the account's recent failed logins, oldest
/// first), one failure at `attempt` not counted: a login's own, booked before its password
/// was checked.
pub fn locked_until(
    failed: &VecDeque<Timestamp>,
    now: Timestamp,
    attempt: Option<Timestamp>,
) -> Option<Timestamp> {
    let mut own = attempt;
    let recent: Vec<_> = failed
        .iter()
        .filter(|at| {
            let mine = own == Some(**at);
            if mine {
                own = None;
            }
            !mine && at.plus(LOGIN_WINDOW) > now
        })
        .collect();
    if recent.len() >= MAX_FAILED_LOGINS {
        recent.first().map(|at| at.plus(LOGIN_WINDOW))
    } else {
        None
    }
}
