//! Given/when/then tests of the account rules, and of how the user routes and records its
//! sub-aggregates' commands and events.

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
fn an_active_account_answers_its_own_code_again_and_refuses_any_other() {
    // Given an account verified with code 123
    let (s, _) = run(&[register(Some("123")), verify("123")], NOW);
    // When the same verification comes again (a client retrying), it changes nothing
    assert_eq!(decide(&s, &verify("123"), NOW), Ok(vec![]));
    // But any other code is wrong, as for an account still waiting
    assert_eq!(decide(&s, &verify("000"), NOW), Err(UserError::InvalidCode));
}

#[test]
fn registering_twice_is_refused() {
    let (_, r) = run(&[register(Some("1")), register(Some("1"))], NOW);
    assert_eq!(r, Err(UserError::AlreadyRegistered));
}

#[test]
fn a_sign_up_left_unverified_for_an_hour_lapses_and_no_other_account_does() {
    // Given a sign-up nobody verified, whose code was sent again later (which renews nothing)
    let (pending, _) = run(&[register(Some("123"))], NOW);
    // When a new sign-up of its address comes within the hour, then it stands
    let early = NOW.plus(PENDING_LAPSE - Duration::from_secs(1));
    assert_eq!(
        decide(&pending, &UserCommand::Lapse, early),
        Err(UserError::AlreadyRegistered)
    );
    // And after it, it is given up: deleted, so nothing more reaches it, its code neither
    let late = NOW.plus(PENDING_LAPSE);
    let events = decide(&pending, &UserCommand::Lapse, late).unwrap();
    let mut lapsed = pending.clone();
    events.iter().for_each(|e| apply(&mut lapsed, e));
    assert_eq!(lapsed.status, Some(AccountStatus::Deleted));
    assert_eq!(
        decide(&lapsed, &verify("123"), late),
        Err(UserError::NotFound)
    );
    // But a verified account never lapses, however old
    let (active, _) = run(&[register(Some("123")), verify("123")], NOW);
    let years = NOW.plus(Duration::from_secs(10 * 365 * 86_400));
    assert_eq!(
        decide(&active, &UserCommand::Lapse, years),
        Err(UserError::AlreadyRegistered)
    );
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
    let start = start_session("h", None);
    let (_, r) = run(&[register(Some("1")), start.clone()], NOW);
    assert_eq!(r, Err(UserError::NotVerified));
    let (s, r) = run(&[register(None), start], NOW);
    assert_eq!(r, Ok(()));
    assert!(s.families.contains_key("f"));
}

#[test]
fn ten_failed_logins_lock_the_account_for_the_window() {
    let mut cmds = vec![register(None)];
    cmds.extend((0..10).map(|_| UserCommand::BeginLogin));
    let (s, _) = run(&cmds, NOW);
    assert_eq!(s.locked_until(NOW), Some(NOW.plus(LOGIN_WINDOW)));
    assert_eq!(s.locked_until(NOW.plus(LOGIN_WINDOW)), None);
    let start = start_session("h", None);
    assert!(matches!(
        decide(&s, &start, NOW),
        Err(UserError::LoginLocked { .. })
    ));
}

#[test]
fn logins_sent_together_are_booked_before_their_passwords_are_checked() {
    // Given a verified account and eleven logins arriving at once, each booked first
    let (s, _) = run(&[register(None)], NOW);
    let mut s = s;
    let mut booked = 0;
    let mut refused = 0;
    for _ in 0..11 {
        match decide(&s, &UserCommand::BeginLogin, NOW) {
            Ok(events) => {
                booked += 1;
                events.iter().for_each(|e| apply(&mut s, e));
            }
            Err(UserError::LoginLocked { .. }) => refused += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    // Then only ten of them may check a password; the eleventh is refused whatever it holds
    assert_eq!((booked, refused), (10, 1));
    // And the one of the ten with the right password starts its session: its own booking is
    // not counted, the other nine are not enough to lock
    let start = |attempt| UserCommand::StartSession {
        family: "f".into(),
        token_hash: "h".into(),
        expires_at: NOW.plus(Duration::from_secs(100)),
        attempt,
    };
    let own = s.failed_logins.back().copied();
    assert!(decide(&s, &start(own), NOW).is_ok());
    // While a session that booked nothing is refused
    assert!(matches!(
        decide(&s, &start(None), NOW),
        Err(UserError::LoginLocked { .. })
    ));
}

#[test]
fn a_right_password_on_an_unverified_account_does_not_count_as_a_failure() {
    // Given an account still waiting for its code, and eleven logins with the right password
    let (mut s, _) = run(&[register(Some("1"))], NOW);
    for _ in 0..11 {
        let booked = decide(&s, &UserCommand::BeginLogin, NOW).expect("not locked");
        booked.iter().for_each(|e| apply(&mut s, e));
        let start = start_session("h", s.failed_logins.back().copied());
        // When each is refused for the unverified address
        let refused = decide(&s, &start, NOW).unwrap_err();
        assert_eq!(refused, UserError::NotVerified);
        // Then its booking is taken back
        on_rejection(&s, &start, &refused)
            .iter()
            .for_each(|e| apply(&mut s, e));
    }
    assert!(s.failed_logins.is_empty(), "{:?}", s.failed_logins);
}

#[test]
fn a_refresh_keeps_the_failed_logins_a_login_clears_them() {
    // Given a session and three failed logins since
    let mut cmds = vec![register(None), start_session("h1", None)];
    cmds.extend((0..3).map(|_| UserCommand::BeginLogin));
    // When the session refreshes, Then the failures still count
    cmds.push(rotate("h1", "h2"));
    let (s, _) = run(&cmds, NOW);
    assert_eq!(s.failed_logins.len(), 3);
    // And when a login with the right password succeeds, they start again
    cmds.push(start_session("h3", None));
    let (s, _) = run(&cmds, NOW);
    assert!(s.failed_logins.is_empty());
}

#[test]
fn a_wrong_code_for_an_active_account_records_nothing() {
    let (s, _) = run(&[register(Some("1")), verify("1")], NOW);
    let wrong = verify("2");
    assert!(on_rejection(&s, &wrong, &UserError::InvalidCode).is_empty());
}

#[test]
fn a_refresh_token_the_family_never_had_is_invalid_and_revokes_nothing() {
    let start = start_session("h1", None);
    // Given a family rotated once, from h1 to h2
    let (s, _) = run(&[register(None), start, rotate("h1", "h2")], NOW);
    // When a made-up token is presented for it
    assert_eq!(
        decide(&s, &rotate("made-up", "h3"), NOW),
        Err(UserError::InvalidRefresh)
    );
    // Then nothing is recorded, and the family's current token still rotates
    assert!(on_rejection(&s, &rotate("made-up", "h3"), &UserError::InvalidRefresh).is_empty());
    assert!(decide(&s, &rotate("h2", "h3"), NOW).is_ok());
    // While the replaced h1 presented again is a replay
    assert_eq!(
        decide(&s, &rotate("h1", "h3"), NOW),
        Err(UserError::RefreshReused)
    );
}

/// A session of family `f` started with refresh token hash `hash`, for the login booked at
/// `attempt`.
fn start_session(hash: &str, attempt: Option<Timestamp>) -> UserCommand {
    UserCommand::StartSession {
        family: "f".into(),
        token_hash: hash.into(),
        expires_at: NOW.plus(Duration::from_secs(100)),
        attempt,
    }
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
    let start = start_session("h1", None);
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
    let start = start_session("h1", None);
    let (s, _) = run(&[register(None), start, UserCommand::Delete], NOW);
    assert_eq!(s.status, Some(AccountStatus::Deleted));
    assert_eq!(s.profile, Profile::default());
    assert!(s.email.is_none() && s.password_hash.is_empty() && s.families.is_empty());
    assert_eq!(decide(&s, &UserCommand::Get, NOW), Err(UserError::NotFound));
}

#[test]
fn wallet_wishlist_and_inbox_commands_are_recorded_as_the_users_events() {
    use crate::domain::ids::{CampaignId, CouponId, ProductId};
    let coupon_id = CouponId::parse("c.1").unwrap();
    let add = UserCommand::Wallet(wallet::WalletCommand::Add {
        coupon_id: coupon_id.clone(),
        campaign_id: CampaignId::parse("c").unwrap(),
    });
    let wish = UserCommand::Wishlist(wishlist::WishlistCommand::Add(
        ProductId::parse("p1").unwrap(),
    ));
    let note = UserCommand::Notify(inbox::Notification {
        id: "n1".into(),
        kind: "order_paid".into(),
        text: "paid".into(),
        at: NOW,
        ..inbox::Notification::default()
    });
    let (s, r) = run(&[register(None), add, wish, note.clone(), note], NOW);
    assert_eq!(r, Ok(()));
    assert!(s.wallet.get(&coupon_id).is_some());
    assert_eq!((s.wishlist.len(), s.inbox.len()), (1, 1));
    let reserve = UserCommand::Wallet(wallet::WalletCommand::Reserve {
        coupon_id: CouponId::parse("c.2").unwrap(),
        order_id: crate::domain::ids::OrderId::parse("o1").unwrap(),
    });
    assert_eq!(
        decide(&s, &reserve, NOW),
        Err(UserError::Wallet(wallet::WalletError::NotInWallet))
    );
    let (_, r) = run(&[reserve], NOW);
    assert_eq!(r, Err(UserError::NotFound), "no account, no wallet");
}

/// The sub-aggregates' events are stored exactly as the user's own were before the split:
/// `{"type": "coupon_added", ...}`, no wrapper, and they read back as the same variant.
#[test]
fn sub_aggregate_events_keep_their_stored_shape() {
    use crate::domain::ids::{CampaignId, CouponId, ProductId};
    let stored = [
        (
            serde_json::json!({"type": "wishlist_added", "product_id": "p1"}),
            UserEvent::Wishlist(wishlist::WishlistEvent::WishlistAdded {
                product_id: ProductId::parse("p1").unwrap(),
            }),
        ),
        (
            serde_json::json!({"type": "coupon_status_changed", "coupon_id": "c.1",
                "status": {"status": "reserved", "order_id": "o1"}}),
            UserEvent::Wallet(wallet::WalletEvent::CouponStatusChanged {
                coupon_id: CouponId::parse("c.1").unwrap(),
                status: wallet::CouponStatus::Reserved {
                    order_id: crate::domain::ids::OrderId::parse("o1").unwrap(),
                },
            }),
        ),
        (
            serde_json::json!({"type": "coupon_added", "coupon_id": "c.1", "campaign_id": "c",
                "at": 5}),
            UserEvent::Wallet(wallet::WalletEvent::CouponAdded {
                coupon_id: CouponId::parse("c.1").unwrap(),
                campaign_id: CampaignId::parse("c").unwrap(),
                at: Timestamp(5),
            }),
        ),
        (
            serde_json::json!({"type": "notified", "id": "n", "kind": "k", "text": "t", "at": 5}),
            UserEvent::Inbox(inbox::InboxEvent::Notified(inbox::Notification {
                id: "n".into(),
                kind: "k".into(),
                text: "t".into(),
                at: Timestamp(5),
                ..inbox::Notification::default()
            })),
        ),
        (serde_json::json!({"type": "deleted"}), UserEvent::Deleted),
    ];
    for (json, event) in stored {
        assert_eq!(serde_json::to_value(&event).unwrap(), json);
        assert_eq!(serde_json::from_value::<UserEvent>(json).unwrap(), event);
        let bytes = crate::persistence::codec::encode_event(&event, Timestamp(1)).unwrap();
        let (back, _) = crate::persistence::codec::decode_event::<UserEvent>(&bytes).unwrap();
        assert_eq!(back, event);
    }
    let unknown = serde_json::json!({"type": "no_such_event"});
    assert!(serde_json::from_value::<UserEvent>(unknown).is_err());
}
