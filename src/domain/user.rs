//! A user account: credentials, email verification, sealed personal data, roles and refresh
//! token families.
//!
//! The domain never sees plaintext personal data or secrets: names, phones, addresses and the
//! email are [`Sealed`] by the edge before they arrive; the verification code and refresh tokens
//! arrive as MACs/hashes; the password as its Argon2id PHC string. Rules only compare them.

use crate::domain::ids::{CampaignId, CouponId, OrderId, ProductId};
use crate::domain::role::Role;
use crate::domain::sealed::Sealed;
use crate::domain::time::Timestamp;
use crate::domain::wallet;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

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
/// The shortest time between two codes mailed to one account.
pub const RESEND_INTERVAL: Duration = Duration::from_secs(60);
/// Failed logins allowed per account in [`LOGIN_WINDOW`].
pub const MAX_FAILED_LOGINS: usize = 10;
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);
pub use crate::domain::inbox::{MAX_INBOX, Notification};
pub use crate::domain::wallet::{CouponStatus, MAX_WISHLIST, WalletCoupon};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub code_mac: String,
    pub expires_at: Timestamp,
    pub attempts: u8,
    pub sent_at: Timestamp,
}

/// A refresh token family: one login on one device, rotated on every refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Family {
    pub token_hash: String,
    pub expires_at: Timestamp,
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
    pub failed_logins: VecDeque<Timestamp>,
    pub families: BTreeMap<String, Family>,
    #[serde(default)]
    pub wishlist: BTreeSet<ProductId>,
    #[serde(default)]
    pub wallet: BTreeMap<CouponId, WalletCoupon>,
    #[serde(default)]
    pub inbox: VecDeque<Notification>,
}

impl UserState {
    /// Until when logins are refused after too many failures.
    pub fn locked_until(&self, now: Timestamp) -> Option<Timestamp> {
        let recent: Vec<_> = self
            .failed_logins
            .iter()
            .filter(|at| at.plus(LOGIN_WINDOW) > now)
            .collect();
        if recent.len() >= MAX_FAILED_LOGINS {
            recent.first().map(|at| at.plus(LOGIN_WINDOW))
        } else {
            None
        }
    }
}

/// A freshly issued verification code (as its MAC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeIssue {
    pub code_mac: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
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
    RecordFailedLogin,
    /// A login succeeded: start a refresh family.
    StartSession {
        family: String,
        token_hash: String,
        expires_at: Timestamp,
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
    AddToWishlist(ProductId),
    RemoveFromWishlist(ProductId),
    /// Puts a claimed coupon in the wallet (idempotent).
    AddCoupon {
        coupon_id: CouponId,
        campaign_id: CampaignId,
    },
    /// An order holds the coupon (issued -> reserved).
    ReserveCoupon {
        coupon_id: CouponId,
        order_id: OrderId,
    },
    /// The order was paid (reserved -> used).
    UseCoupon {
        coupon_id: CouponId,
        order_id: OrderId,
    },
    /// The order was cancelled or expired (reserved or used by it -> issued).
    ReleaseCoupon {
        coupon_id: CouponId,
        order_id: OrderId,
    },
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
    WishlistAdded {
        product_id: ProductId,
    },
    WishlistRemoved {
        product_id: ProductId,
    },
    CouponAdded {
        coupon_id: CouponId,
        campaign_id: CampaignId,
        at: Timestamp,
    },
    CouponStatusChanged {
        coupon_id: CouponId,
        status: CouponStatus,
    },
    Notified(Notification),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    #[error("a wishlist holds at most {MAX_WISHLIST} products")]
    WishlistFull,
    #[error("the coupon is not in your wallet")]
    CouponNotInWallet,
    #[error("the coupon is {0}")]
    CouponNotAvailable(&'static str),
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
                return Ok(vec![]);
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
        C::RecordFailedLogin => Ok(vec![E::LoginFailed { at: now }]),
        C::StartSession {
            family,
            token_hash,
            expires_at,
        } => {
            if !active {
                return Err(UserError::NotVerified);
            }
            if let Some(until) = s.locked_until(now) {
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
                return Err(UserError::RefreshReused);
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
        C::AddToWishlist(_)
        | C::RemoveFromWishlist(_)
        | C::AddCoupon { .. }
        | C::ReserveCoupon { .. }
        | C::UseCoupon { .. }
        | C::ReleaseCoupon { .. } => wallet::decide(s, cmd, now),
        C::Notify(n) => Ok(crate::domain::inbox::decide(s, n)),
        C::Get => Ok(vec![]),
    }
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
        (UserCommand::Verify { .. }, UserError::InvalidCode) => vec![UserEvent::CodeAttemptFailed],
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
            s.verification = None;
        }
        E::LoginFailed { at } => {
            s.failed_logins.push_back(*at);
            while s.failed_logins.len() > MAX_FAILED_LOGINS {
                s.failed_logins.pop_front();
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
            s.failed_logins.clear();
            s.families.retain(|_, f| f.expires_at > *at);
            s.families.insert(
                family.clone(),
                Family {
                    token_hash: token_hash.clone(),
                    expires_at: *expires_at,
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
        E::WishlistAdded { .. }
        | E::WishlistRemoved { .. }
        | E::CouponAdded { .. }
        | E::CouponStatusChanged { .. } => wallet::apply(s, event),
        E::Notified(n) => crate::domain::inbox::apply(s, n),
        E::Deleted => {
            *s = UserState {
                status: Some(AccountStatus::Deleted),
                created_at: s.created_at,
                ..UserState::default()
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(10_000_000);

    fn sealed(s: &str) -> Sealed {
        Sealed(s.as_bytes().to_vec())
    }

    fn register(code: Option<&str>) -> UserCommand {
        UserCommand::Register {
            email: sealed("e"),
            email_key: "k".into(),
            password_hash: "$argon2id$...".into(),
            name: sealed("n"),
            phone: None,
            roles: BTreeSet::from([Role::Customer]),
            code: code.map(|c| CodeIssue { code_mac: c.into() }),
        }
    }

    /// Runs commands from an empty account at `NOW`, like the actor would (rejections still
    /// record their events); returns the state and the last outcome.
    fn run(cmds: &[UserCommand], at: Timestamp) -> (UserState, Result<(), UserError>) {
        let mut s = UserState::default();
        let mut last = Ok(());
        for c in cmds {
            let events = match decide(&s, c, at) {
                Ok(ev) => {
                    last = Ok(());
                    ev
                }
                Err(e) => {
                    let ev = on_rejection(&s, c, &e);
                    last = Err(e);
                    ev
                }
            };
            for e in &events {
                apply(&mut s, e);
            }
        }
        (s, last)
    }

    fn verify(code: &str) -> UserCommand {
        UserCommand::Verify {
            code_mac: code.into(),
        }
    }

    #[test]
    fn sign_up_then_verify_activates() {
        let (s, r) = run(&[register(Some("123")), verify("123")], NOW);
        assert_eq!(r, Ok(()));
        assert_eq!(s.status, Some(AccountStatus::Active));
        assert!(s.verification.is_none());
    }

    #[test]
    fn registering_twice_is_refused() {
        let (_, r) = run(&[register(Some("1")), register(Some("1"))], NOW);
        assert_eq!(r, Err(UserError::AlreadyRegistered));
    }

    #[test]
    fn five_wrong_codes_lock_the_code() {
        let mut cmds = vec![register(Some("123"))];
        cmds.extend((0..5).map(|_| verify("999")));
        let (s, r) = run(&cmds, NOW);
        assert_eq!(r, Err(UserError::InvalidCode));
        assert_eq!(s.verification.as_ref().unwrap().attempts, 5);
        cmds.push(verify("123"));
        let (_, r) = run(&cmds, NOW);
        assert_eq!(r, Err(UserError::TooManyAttempts), "even the right code");
    }

    #[test]
    fn an_old_code_has_expired() {
        let (s, _) = run(&[register(Some("123"))], NOW);
        let later = NOW.plus(CODE_TTL);
        assert_eq!(
            decide(&s, &verify("123"), later),
            Err(UserError::CodeExpired)
        );
    }

    #[test]
    fn resend_is_rate_limited_and_resets_attempts() {
        let (s, _) = run(&[register(Some("1")), verify("x")], NOW);
        let resend = UserCommand::ResendCode(CodeIssue {
            code_mac: "2".into(),
        });
        assert!(matches!(
            decide(&s, &resend, NOW.plus(Duration::from_secs(10))),
            Err(UserError::ResendTooSoon {
                retry_after_secs: 50
            })
        ));
        let later = NOW.plus(RESEND_INTERVAL);
        let events = decide(&s, &resend, later).unwrap();
        let mut s2 = s.clone();
        for e in &events {
            apply(&mut s2, e);
        }
        assert_eq!(s2.verification.as_ref().unwrap().attempts, 0);
        assert_eq!(
            decide(&s2, &verify("2"), later),
            Ok(vec![UserEvent::EmailVerified])
        );
    }

    #[test]
    fn sessions_need_a_verified_account() {
        let start = UserCommand::StartSession {
            family: "f".into(),
            token_hash: "h".into(),
            expires_at: NOW.plus(Duration::from_secs(100)),
        };
        let (_, r) = run(&[register(Some("1")), start.clone()], NOW);
        assert_eq!(r, Err(UserError::NotVerified));
        let (s, r) = run(&[register(None), start], NOW);
        assert_eq!(r, Ok(()));
        assert!(s.families.contains_key("f"));
    }

    #[test]
    fn ten_failed_logins_lock_the_account_for_the_window() {
        let mut cmds = vec![register(None)];
        cmds.extend((0..10).map(|_| UserCommand::RecordFailedLogin));
        let (s, _) = run(&cmds, NOW);
        assert_eq!(s.locked_until(NOW), Some(NOW.plus(LOGIN_WINDOW)));
        assert_eq!(s.locked_until(NOW.plus(LOGIN_WINDOW)), None);
        let start = UserCommand::StartSession {
            family: "f".into(),
            token_hash: "h".into(),
            expires_at: NOW.plus(Duration::from_secs(100)),
        };
        assert!(matches!(
            decide(&s, &start, NOW),
            Err(UserError::LoginLocked { .. })
        ));
    }

    fn rotate(presented: &str, new: &str) -> UserCommand {
        UserCommand::Rotate {
            family: "f".into(),
            presented_hash: presented.into(),
            new_hash: new.into(),
            expires_at: NOW.plus(Duration::from_secs(100)),
        }
    }

    #[test]
    fn refresh_rotates_and_reuse_revokes_the_family() {
        let start = UserCommand::StartSession {
            family: "f".into(),
            token_hash: "h1".into(),
            expires_at: NOW.plus(Duration::from_secs(100)),
        };
        let (s, r) = run(&[register(None), start.clone(), rotate("h1", "h2")], NOW);
        assert_eq!(r, Ok(()));
        assert_eq!(s.families["f"].token_hash, "h2");
        let (s, r) = run(
            &[
                register(None),
                start,
                rotate("h1", "h2"),
                rotate("h1", "h3"),
            ],
            NOW,
        );
        assert_eq!(r, Err(UserError::RefreshReused));
        assert!(s.families.is_empty(), "the whole family is revoked");
        assert_eq!(
            decide(&s, &rotate("h2", "h4"), NOW),
            Err(UserError::InvalidRefresh)
        );
    }

    #[test]
    fn deletion_erases_personal_data_and_sessions() {
        let start = UserCommand::StartSession {
            family: "f".into(),
            token_hash: "h1".into(),
            expires_at: NOW.plus(Duration::from_secs(100)),
        };
        let (s, _) = run(&[register(None), start, UserCommand::Delete], NOW);
        assert_eq!(s.status, Some(AccountStatus::Deleted));
        assert_eq!(s.profile, Profile::default());
        assert!(s.email.is_none() && s.password_hash.is_empty() && s.families.is_empty());
        assert_eq!(decide(&s, &UserCommand::Get, NOW), Err(UserError::NotFound));
    }
}
