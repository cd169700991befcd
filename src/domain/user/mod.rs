//! A user account: credentials, email verification, sealed personal data, roles and refresh
//! token families — and four sub-aggregates with rules of their own: the [`wishlist`], the
//! coupon [`wallet`], the notification [`inbox`] and the idempotency [`keys`]. Each is a leaf (it knows nothing of the
//! user); the user routes their commands to them and records their events as its own, in the
//! same journal and with the same stored shapes as before they were split out.
//!
//! The domain never sees plaintext personal data or secrets: names, phones, addresses and the
//! email are [`Sealed`] by the edge before they arrive; the verification code and refresh tokens
//! arrive as MACs/hashes; the password as its Argon2id PHC string. Rules only compare them.

pub mod inbox;
pub mod keys;
mod logins;
#[cfg(test)]
mod tests;
pub mod wallet;
pub mod wishlist;

use crate::domain::role::Role;
use crate::domain::sealed::Sealed;
use crate::domain::time::Timestamp;
use inbox::{Inbox, InboxEvent, Notification};
use keys::{KeyCommand, KeyError, KeyEvent, Keys};
pub use logins::{Family, LOGIN_WINDOW, MAX_FAILED_LOGINS, ROTATED_KEPT};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;
use wallet::{Wallet, WalletCommand, WalletError, WalletEvent};
use wishlist::{Wishlist, WishlistCommand, WishlistError, WishlistEvent};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    PendingVerification,
    Active,
    Deleted,
}

/// How long a verification code is valid.
pub const CODE_TTL: Duration = Duration::from_secs(600);
/// Wrong codes before the code is locked.
pub const MAX_CODE_ATTEMPTS: u8 = 5;
/// How long a sign-up may stay unverified before a new sign-up of its address replaces it,
/// counted from the sign-up (a resend does not renew it): one who signs up with an address
/// that is not theirs holds it no longer than this, and its owner has every code's whole life
/// and more to verify. Replacing at once instead would let anyone replace the owner's
/// sign-up while the owner reads the mail (and mail a code with each try).
pub const PENDING_LAPSE: Duration = Duration::from_secs(3600);
/// The shortest time between two codes mailed to one account.
pub const RESEND_INTERVAL: Duration = Duration::from_secs(60);
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub code_mac: String,
    pub expires_at: Timestamp,
    pub attempts: u8,
    pub sent_at: Timestamp,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub name: Option<Sealed>,
    pub phone: Option<Sealed>,
    pub address: Option<Sealed>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserState {
    pub status: Option<AccountStatus>,
    pub email: Option<Sealed>,
    /// The blind index of the email: the key of its claim.
    pub email_key: String,
    pub password_hash: String,
    pub profile: Profile,
    pub roles: BTreeSet<Role>,
    pub created_at: Timestamp,
    pub verification: Option<Verification>,
    /// The MAC of the code that verified the email, so that the same request sent again
    /// answers as the first did, while any other code is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_with: Option<String>,
    pub failed_logins: VecDeque<Timestamp>,
    pub families: BTreeMap<String, Family>,
    #[serde(default)]
    pub wishlist: Wishlist,
    #[serde(default)]
    pub wallet: Wallet,
    #[serde(default)]
    pub inbox: Inbox,
    #[serde(default, skip_serializing_if = "Keys::is_empty")]
    pub keys: Keys,
}

impl UserState {
    /// Until when logins are refused after too many failures.
    pub fn locked_until(&self, now: Timestamp) -> Option<Timestamp> {
        logins::locked_until(&self.failed_logins, now, None)
    }
}

/// A freshly issued verification code (as its MAC).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CodeIssue {
    pub code_mac: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum UserCommand {
    Register {
        email: Sealed,
        email_key: String,
        password_hash: String,
        name: Sealed,
        phone: Option<Sealed>,
        roles: BTreeSet<Role>,
        /// `None` registers an already verified account (admin-created).
        code: Option<CodeIssue>,
    },
    ResendCode(CodeIssue),
    Verify {
        code_mac: String,
    },
    /// A login is about to check a password: refused while the account is locked, else
    /// counted as a failure at once (the reply's newest `failed_logins` entry), so that
    /// guesses sent together are checked no more than the limit allows, whatever their
    /// order. A login that succeeds names it in `StartSession`, which does not count it.
    BeginLogin,
    /// A login succeeded: start a refresh family. `attempt`: the login's own
    /// [`UserCommand::BeginLogin`] entry.
    StartSession {
        family: String,
        token_hash: String,
        expires_at: Timestamp,
        #[serde(default)]
        attempt: Option<Timestamp>,
    },
    /// Swap the family's current refresh token for a new one.
    Rotate {
        family: String,
        presented_hash: String,
        new_hash: String,
        expires_at: Timestamp,
    },
    EndSession {
        family: String,
    },
    UpdateProfile {
        name: Option<Sealed>,
        phone: Option<Sealed>,
        address: Option<Sealed>,
    },
    Delete,
    /// A sign-up left unverified for [`PENDING_LAPSE`] is given up (as deleted), so that a new
    /// sign-up may take its address; refused (`AlreadyRegistered`) for any other account. The
    /// account's own serialisation makes this and a verification exclusive.
    Lapse,
    Wishlist(WishlistCommand),
    Wallet(WalletCommand),
    Keys(KeyCommand),
    /// Into the inbox (idempotent by notification id).
    Notify(Notification),
    Get,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum UserEvent {
    Registered {
        email: Sealed,
        email_key: String,
        password_hash: String,
        name: Sealed,
        phone: Option<Sealed>,
        roles: BTreeSet<Role>,
        verified: bool,
        at: Timestamp,
    },
    CodeIssued {
        code_mac: String,
        expires_at: Timestamp,
        at: Timestamp,
    },
    CodeAttemptFailed,
    EmailVerified,
    LoginFailed {
        at: Timestamp,
    },
    /// The login booked at `at` was not a failure (its password was right, the account not yet
    /// verified): its booking no longer counts.
    LoginAttemptCleared {
        at: Timestamp,
    },
    SessionStarted {
        family: String,
        token_hash: String,
        expires_at: Timestamp,
        at: Timestamp,
    },
    TokenRotated {
        family: String,
        token_hash: String,
        expires_at: Timestamp,
        at: Timestamp,
    },
    FamilyRevoked {
        family: String,
    },
    ProfileUpdated {
        name: Option<Sealed>,
        phone: Option<Sealed>,
        address: Option<Sealed>,
    },
    Deleted,
    // The sub-aggregates' events, stored as they always were: `{"type": "wishlist_added",
    // ...}` and so on, without a wrapper (untagged variants come last and are tried after
    // every tag above).
    #[serde(untagged)]
    Wishlist(WishlistEvent),
    #[serde(untagged)]
    Wallet(WalletEvent),
    #[serde(untagged)]
    Inbox(InboxEvent),
    #[serde(untagged)]
    Keys(KeyEvent),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum UserError {
    #[error("no such account")]
    NotFound,
    #[error("the account already exists")]
    AlreadyRegistered,
    #[error("the code is not valid")]
    InvalidCode,
    #[error("the code expired; ask for a new one")]
    CodeExpired,
    #[error("too many wrong codes; ask for a new one")]
    TooManyAttempts,
    #[error("a code was sent moments ago; retry in {retry_after_secs} s")]
    ResendTooSoon { retry_after_secs: u64 },
    #[error("the email address is already verified")]
    AlreadyVerified,
    #[error("the email address is not verified")]
    NotVerified,
    #[error("too many failed logins; retry in {retry_after_secs} s")]
    LoginLocked { retry_after_secs: u64 },
    #[error("this refresh token was already used; the session is revoked")]
    RefreshReused,
    #[error("the refresh token is not valid")]
    InvalidRefresh,
    #[error(transparent)]
    Wishlist(#[from] WishlistError),
    #[error(transparent)]
    Wallet(#[from] WalletError),
    #[error(transparent)]
    Keys(#[from] KeyError),
}

pub fn decide(
    s: &UserState,
    cmd: &UserCommand,
    now: Timestamp,
) -> Result<Vec<UserEvent>, UserError> {
    use UserCommand as C;
    use UserEvent as E;
    if let C::Register {
        email,
        email_key,
        password_hash,
        name,
        phone,
        roles,
        code,
    } = cmd
    {
        if s.status.is_some() {
            return Err(UserError::AlreadyRegistered);
        }
        let mut events = vec![E::Registered {
            email: email.clone(),
            email_key: email_key.clone(),
            password_hash: password_hash.clone(),
            name: name.clone(),
            phone: phone.clone(),
            roles: roles.clone(),
            verified: code.is_none(),
            at: now,
        }];
        if let Some(code) = code {
            events.push(code_issued(code, now));
        }
        return Ok(events);
    }
    match s.status {
        None | Some(AccountStatus::Deleted) => return Err(UserError::NotFound),
        Some(_) => {}
    }
    let active = s.status == Some(AccountStatus::Active);
    match cmd {
        C::Register { .. } => unreachable!("handled above"),
        C::ResendCode(code) => {
            if active {
                return Err(UserError::AlreadyVerified);
            }
            if let Some(v) = &s.verification {
                let next = v.sent_at.plus(RESEND_INTERVAL);
                if next > now {
                    let retry_after_secs = now.until(next).as_secs().max(1);
                    return Err(UserError::ResendTooSoon { retry_after_secs });
                }
            }
            Ok(vec![code_issued(code, now)])
        }
        C::Verify { code_mac } => {
            if active {
                return if s.verified_with.as_ref() == Some(code_mac) {
                    Ok(vec![])
                } else {
                    Err(UserError::InvalidCode)
                };
            }
            let v = s.verification.as_ref().ok_or(UserError::CodeExpired)?;
            if v.attempts >= MAX_CODE_ATTEMPTS {
                return Err(UserError::TooManyAttempts);
            }
            if v.expires_at <= now {
                return Err(UserError::CodeExpired);
            }
            if &v.code_mac != code_mac {
                return Err(UserError::InvalidCode);
            }
            Ok(vec![E::EmailVerified])
        }
        C::BeginLogin => {
            if let Some(until) = s.locked_until(now) {
                let retry_after_secs = now.until(until).as_secs().max(1);
                return Err(UserError::LoginLocked { retry_after_secs });
            }
            Ok(vec![E::LoginFailed { at: now }])
        }
        C::StartSession {
            family,
            token_hash,
            expires_at,
            attempt,
        } => {
            if !active {
                return Err(UserError::NotVerified);
            }
            if let Some(until) = logins::locked_until(&s.failed_logins, now, *attempt) {
                let retry_after_secs = now.until(until).as_secs().max(1);
                return Err(UserError::LoginLocked { retry_after_secs });
            }
            Ok(vec![E::SessionStarted {
                family: family.clone(),
                token_hash: token_hash.clone(),
                expires_at: *expires_at,
                at: now,
            }])
        }
        C::Rotate {
            family,
            presented_hash,
            new_hash,
            expires_at,
        } => {
            let f = s.families.get(family).ok_or(UserError::InvalidRefresh)?;
            if f.expires_at <= now {
                return Err(UserError::InvalidRefresh);
            }
            if &f.token_hash != presented_hash {
                return Err(if f.replaced(presented_hash) {
                    UserError::RefreshReused
                } else {
                    UserError::InvalidRefresh
                });
            }
            Ok(vec![E::TokenRotated {
                family: family.clone(),
                token_hash: new_hash.clone(),
                expires_at: *expires_at,
                at: now,
            }])
        }
        C::EndSession { family } => Ok(if s.families.contains_key(family) {
            vec![E::FamilyRevoked {
                family: family.clone(),
            }]
        } else {
            vec![]
        }),
        C::UpdateProfile {
            name,
            phone,
            address,
        } => Ok(vec![E::ProfileUpdated {
            name: name.clone(),
            phone: phone.clone(),
            address: address.clone(),
        }]),
        C::Delete => Ok(vec![E::Deleted]),
        C::Lapse => {
            let pending = s.status == Some(AccountStatus::PendingVerification);
            if !pending || s.created_at.plus(PENDING_LAPSE) > now {
                return Err(UserError::AlreadyRegistered);
            }
            Ok(vec![E::Deleted])
        }
        C::Wishlist(c) => Ok(recorded(wishlist::decide(&s.wishlist, c)?, E::Wishlist)),
        C::Wallet(c) => Ok(recorded(wallet::decide(&s.wallet, c, now)?, E::Wallet)),
        C::Notify(n) => Ok(recorded(inbox::decide(&s.inbox, n), E::Inbox)),
        C::Keys(c) => Ok(recorded(keys::decide(&s.keys, c, now)?, E::Keys)),
        C::Get => Ok(vec![]),
    }
}

/// A sub-aggregate's events as the user's.
fn recorded<T>(events: Vec<T>, wrap: fn(T) -> UserEvent) -> Vec<UserEvent> {
    events.into_iter().map(wrap).collect()
}

fn code_issued(code: &CodeIssue, now: Timestamp) -> UserEvent {
    UserEvent::CodeIssued {
        code_mac: code.code_mac.clone(),
        expires_at: now.plus(CODE_TTL),
        at: now,
    }
}

/// What a refusal still records: a wrong code counts, a reused refresh token revokes its family.
pub fn on_rejection(s: &UserState, cmd: &UserCommand, e: &UserError) -> Vec<UserEvent> {
    match (cmd, e) {
        // A wrong code counts against a code waiting to be entered; an active account has none
        // (and a wrong code for one writes nothing).
        (UserCommand::Verify { .. }, UserError::InvalidCode) if s.verification.is_some() => {
            vec![UserEvent::CodeAttemptFailed]
        }
        (
            UserCommand::StartSession {
                attempt: Some(at), ..
            },
            UserError::NotVerified,
        ) => vec![UserEvent::LoginAttemptCleared { at: *at }],
        (UserCommand::Rotate { family, .. }, UserError::RefreshReused)
            if s.families.contains_key(family) =>
        {
            vec![UserEvent::FamilyRevoked {
                family: family.clone(),
            }]
        }
        _ => vec![],
    }
}

pub fn apply(s: &mut UserState, event: &UserEvent) {
    use UserEvent as E;
    match event {
        E::Registered {
            email,
            email_key,
            password_hash,
            name,
            phone,
            roles,
            verified,
            at,
        } => {
            s.status = Some(if *verified {
                AccountStatus::Active
            } else {
                AccountStatus::PendingVerification
            });
            s.email = Some(email.clone());
            s.email_key = email_key.clone();
            s.password_hash = password_hash.clone();
            s.profile.name = Some(name.clone());
            s.profile.phone = phone.clone();
            s.roles = roles.clone();
            s.created_at = *at;
        }
        E::CodeIssued {
            code_mac,
            expires_at,
            at,
        } => {
            s.verification = Some(Verification {
                code_mac: code_mac.clone(),
                expires_at: *expires_at,
                attempts: 0,
                sent_at: *at,
            });
        }
        E::CodeAttemptFailed => {
            if let Some(v) = s.verification.as_mut() {
                v.attempts = v.attempts.saturating_add(1);
            }
        }
        E::EmailVerified => {
            s.status = Some(AccountStatus::Active);
            s.verified_with = s.verification.take().map(|v| v.code_mac);
        }
        E::LoginFailed { at } => {
            s.failed_logins.push_back(*at);
            while s.failed_logins.len() > MAX_FAILED_LOGINS {
                s.failed_logins.pop_front();
            }
        }
        E::LoginAttemptCleared { at } => {
            if let Some(i) = s.failed_logins.iter().position(|f| f == at) {
                s.failed_logins.remove(i);
            }
        }
        E::SessionStarted {
            family,
            token_hash,
            expires_at,
            at,
        }
        | E::TokenRotated {
            family,
            token_hash,
            expires_at,
            at,
        } => {
            // A login with the right password starts the count again; a refresh proves no
            // password, so the failures (and the bookings of guesses under way) stay.
            if matches!(event, E::SessionStarted { .. }) {
                s.failed_logins.clear();
            }
            s.families.retain(|_, f| f.expires_at > *at);
            // A rotation remembers the token it replaces; a new session starts afresh.
            let rotated = match (event, s.families.remove(family)) {
                (E::TokenRotated { .. }, Some(before)) => before.rotated_out(),
                _ => Vec::new(),
            };
            s.families.insert(
                family.clone(),
                Family {
                    token_hash: token_hash.clone(),
                    expires_at: *expires_at,
                    rotated,
                },
            );
        }
        E::FamilyRevoked { family } => {
            s.families.remove(family);
        }
        E::ProfileUpdated {
            name,
            phone,
            address,
        } => {
            if let Some(n) = name {
                s.profile.name = Some(n.clone());
            }
            if let Some(p) = phone {
                s.profile.phone = Some(p.clone());
            }
            if let Some(a) = address {
                s.profile.address = Some(a.clone());
            }
        }
        E::Wishlist(e) => wishlist::apply(&mut s.wishlist, e),
        E::Wallet(e) => wallet::apply(&mut s.wallet, e),
        E::Inbox(e) => inbox::apply(&mut s.inbox, e),
        E::Keys(e) => keys::apply(&mut s.keys, e),
        E::Deleted => {
            *s = UserState {
                status: Some(AccountStatus::Deleted),
                created_at: s.created_at,
                ..UserState::default()
            };
        }
    }
}
