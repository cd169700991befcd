//! The claim of an email address: at most one account per (normalised) address, decided by one
//! entity per address so two simultaneous sign-ups cannot both win. Keyed by the address's
//! blind index, so the address itself is not stored here.
//!
//! A sign-up claims the address, registers the user, then confirms the claim. A claim that was
//! never confirmed (the process died in between) may be taken over once it is older than
//! [`UNCONFIRMED_GRACE`].

use crate::domain::ids::UserId;
use crate::domain::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::time::Duration;

pub const UNCONFIRMED_GRACE: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailClaim {
    pub owner: Option<UserId>,
    pub confirmed: bool,
    pub claimed_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ClaimCommand {
    Claim { user_id: UserId },
    Confirm { user_id: UserId },
    Release { user_id: UserId },
    Lookup,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClaimEvent {
    Claimed { user_id: UserId, at: Timestamp },
    Confirmed,
    Released,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ClaimError {
    #[error("the email address is taken")]
    Taken,
    #[error("the claim belongs to another account")]
    NotOwner,
}

pub fn decide(
    s: &EmailClaim,
    cmd: &ClaimCommand,
    now: Timestamp,
) -> Result<Vec<ClaimEvent>, ClaimError> {
    match cmd {
        ClaimCommand::Claim { user_id } => match &s.owner {
            Some(owner) if owner == user_id => Ok(vec![]),
            Some(_) if s.confirmed || s.claimed_at.plus(UNCONFIRMED_GRACE) > now => {
                Err(ClaimError::Taken)
            }
            _ => Ok(vec![ClaimEvent::Claimed {
                user_id: user_id.clone(),
                at: now,
            }]),
        },
        ClaimCommand::Confirm { user_id } => match &s.owner {
            Some(owner) if owner == user_id => Ok(if s.confirmed {
                vec![]
            } else {
                vec![ClaimEvent::Confirmed]
            }),
            _ => Err(ClaimError::NotOwner),
        },
        ClaimCommand::Release { user_id } => match &s.owner {
            Some(owner) if owner == user_id => Ok(vec![ClaimEvent::Released]),
            None => Ok(vec![]),
            Some(_) => Err(ClaimError::NotOwner),
        },
        ClaimCommand::Lookup => Ok(vec![]),
    }
}

pub fn apply(s: &mut EmailClaim, e: &ClaimEvent) {
    match e {
        ClaimEvent::Claimed { user_id, at } => {
            *s = EmailClaim {
                owner: Some(user_id.clone()),
                confirmed: false,
                claimed_at: *at,
            }
        }
        ClaimEvent::Confirmed => s.confirmed = true,
        ClaimEvent::Released => *s = EmailClaim::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_000_000);

    fn u(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    fn given(events: &[ClaimEvent]) -> EmailClaim {
        let mut s = EmailClaim::default();
        events.iter().for_each(|e| apply(&mut s, e));
        s
    }

    #[test]
    fn the_first_claim_wins_and_the_second_is_refused() {
        let s = given(&[ClaimEvent::Claimed {
            user_id: u("a"),
            at: NOW,
        }]);
        let second = decide(&s, &ClaimCommand::Claim { user_id: u("b") }, NOW);
        assert_eq!(second, Err(ClaimError::Taken));
        let replay = decide(&s, &ClaimCommand::Claim { user_id: u("a") }, NOW);
        assert_eq!(replay, Ok(vec![]));
    }

    #[test]
    fn a_stale_unconfirmed_claim_can_be_taken_over_but_a_confirmed_one_cannot() {
        let s = given(&[ClaimEvent::Claimed {
            user_id: u("a"),
            at: NOW,
        }]);
        let later = NOW.plus(UNCONFIRMED_GRACE);
        assert!(decide(&s, &ClaimCommand::Claim { user_id: u("b") }, later).is_ok());
        let s = given(&[
            ClaimEvent::Claimed {
                user_id: u("a"),
                at: NOW,
            },
            ClaimEvent::Confirmed,
        ]);
        let much_later = NOW.plus(Duration::from_secs(86_400));
        assert_eq!(
            decide(&s, &ClaimCommand::Claim { user_id: u("b") }, much_later),
            Err(ClaimError::Taken)
        );
    }

    #[test]
    fn only_the_owner_confirms_or_releases() {
        let s = given(&[ClaimEvent::Claimed {
            user_id: u("a"),
            at: NOW,
        }]);
        assert_eq!(
            decide(&s, &ClaimCommand::Confirm { user_id: u("b") }, NOW),
            Err(ClaimError::NotOwner)
        );
        assert_eq!(
            decide(&s, &ClaimCommand::Release { user_id: u("a") }, NOW),
            Ok(vec![ClaimEvent::Released])
        );
        let released = given(&[
            ClaimEvent::Claimed {
                user_id: u("a"),
                at: NOW,
            },
            ClaimEvent::Released,
        ]);
        assert!(decide(&released, &ClaimCommand::Claim { user_id: u("b") }, NOW).is_ok());
    }
}
