//! The email-claim entity: one actor per address (keyed by its blind index) decides who owns
//! it, so two simultaneous sign-ups with one address cannot both win. Rules are in
//! `domain::email_claim`.

use crate::actors::entity::Entity;
use crate::domain::email_claim::{self, ClaimCommand, ClaimError, ClaimEvent, EmailClaim};
use crate::domain::ids::EmailKey;
use crate::domain::time::Timestamp;

pub struct EmailOwner;

impl Entity for EmailOwner {
    const KIND: &'static str = "email";
    type Id = EmailKey;
    type State = EmailClaim;
    type Command = ClaimCommand;
    type Event = ClaimEvent;
    type Rejection = ClaimError;
    type Reply = EmailClaim;
    type View = ();

    fn decide(
        s: &EmailClaim,
        c: &ClaimCommand,
        now: Timestamp,
    ) -> Result<Vec<ClaimEvent>, ClaimError> {
        email_claim::decide(s, c, now)
    }

    fn apply(s: &mut EmailClaim, e: &ClaimEvent) {
        email_claim::apply(s, e);
    }

    fn reply(_: &EmailKey, s: &EmailClaim, _: &ClaimCommand) -> EmailClaim {
        s.clone()
    }
}
