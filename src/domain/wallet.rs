//! The shopping side of a user account: the wishlist and the coupon wallet (`issued ->
//! reserved -> used`, back to `issued` when the order that held a coupon is cancelled or
//! expires). Commands and events are the user's (`domain::user`); the rules are here.

use crate::domain::ids::{CampaignId, CouponId, OrderId};
use crate::domain::time::Timestamp;
use crate::domain::user::{UserCommand, UserError, UserEvent, UserState};
use serde::{Deserialize, Serialize};

/// Products one wishlist holds at most.
pub const MAX_WISHLIST: usize = 500;

/// Where an issued coupon stands in its owner's wallet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CouponStatus {
    Issued,
    Reserved { order_id: OrderId },
    Used { order_id: OrderId },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletCoupon {
    pub campaign_id: CampaignId,
    pub status: CouponStatus,
    pub issued_at: Timestamp,
}

/// The wallet and wishlist commands of a user; any other command yields no event.
pub fn decide(
    s: &UserState,
    cmd: &UserCommand,
    now: Timestamp,
) -> Result<Vec<UserEvent>, UserError> {
    use UserCommand as C;
    use UserEvent as E;
    match cmd {
        C::AddToWishlist(product_id) => {
            if s.wishlist.contains(product_id) {
                return Ok(vec![]);
            }
            if s.wishlist.len() >= MAX_WISHLIST {
                return Err(UserError::WishlistFull);
            }
            Ok(vec![E::WishlistAdded {
                product_id: product_id.clone(),
            }])
        }
        C::RemoveFromWishlist(product_id) => Ok(if s.wishlist.contains(product_id) {
            vec![E::WishlistRemoved {
                product_id: product_id.clone(),
            }]
        } else {
            vec![]
        }),
        C::AddCoupon {
            coupon_id,
            campaign_id,
        } => Ok(if s.wallet.contains_key(coupon_id) {
            vec![]
        } else {
            vec![E::CouponAdded {
                coupon_id: coupon_id.clone(),
                campaign_id: campaign_id.clone(),
                at: now,
            }]
        }),
        C::ReserveCoupon {
            coupon_id,
            order_id,
        } => {
            let next = CouponStatus::Reserved {
                order_id: order_id.clone(),
            };
            change_coupon(s, coupon_id, next, |st| matches!(st, CouponStatus::Issued))
        }
        C::UseCoupon {
            coupon_id,
            order_id,
        } => {
            let next = CouponStatus::Used {
                order_id: order_id.clone(),
            };
            change_coupon(
                s,
                coupon_id,
                next,
                |st| matches!(st, CouponStatus::Reserved { order_id: o } if o == order_id),
            )
        }
        C::ReleaseCoupon {
            coupon_id,
            order_id,
        } => change_coupon(s, coupon_id, CouponStatus::Issued, |st| match st {
            CouponStatus::Reserved { order_id: o } | CouponStatus::Used { order_id: o } => {
                o == order_id
            }
            CouponStatus::Issued => false,
        }),
        _ => Ok(vec![]),
    }
}

/// Moves a wallet coupon to `next` when its status allows it; already there is a replay.
fn change_coupon(
    s: &UserState,
    coupon_id: &CouponId,
    next: CouponStatus,
    allowed_from: impl Fn(&CouponStatus) -> bool,
) -> Result<Vec<UserEvent>, UserError> {
    let coupon = s
        .wallet
        .get(coupon_id)
        .ok_or(UserError::CouponNotInWallet)?;
    if coupon.status == next {
        return Ok(vec![]);
    }
    if !allowed_from(&coupon.status) {
        return Err(UserError::CouponNotAvailable(match coupon.status {
            CouponStatus::Issued => "not reserved by this order",
            CouponStatus::Reserved { .. } => "reserved by another order",
            CouponStatus::Used { .. } => "already used",
        }));
    }
    Ok(vec![UserEvent::CouponStatusChanged {
        coupon_id: coupon_id.clone(),
        status: next,
    }])
}

/// Applies a wallet or wishlist event; other events are not this module's.
pub fn apply(s: &mut UserState, event: &UserEvent) {
    use UserEvent as E;
    match event {
        E::WishlistAdded { product_id } => {
            s.wishlist.insert(product_id.clone());
        }
        E::WishlistRemoved { product_id } => {
            s.wishlist.remove(product_id);
        }
        E::CouponAdded {
            coupon_id,
            campaign_id,
            at,
        } => {
            s.wallet.insert(
                coupon_id.clone(),
                WalletCoupon {
                    campaign_id: campaign_id.clone(),
                    status: CouponStatus::Issued,
                    issued_at: *at,
                },
            );
        }
        E::CouponStatusChanged { coupon_id, status } => {
            if let Some(c) = s.wallet.get_mut(coupon_id) {
                c.status = status.clone();
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::ProductId;
    use crate::domain::role::Role;
    use crate::domain::sealed::Sealed;
    use crate::domain::user::{self, AccountStatus};
    use std::collections::BTreeSet;

    const NOW: Timestamp = Timestamp(10_000_000);

    fn register(_: Option<&str>) -> UserCommand {
        UserCommand::Register {
            email: Sealed(b"e".to_vec()),
            email_key: "k".into(),
            password_hash: "$argon2id$...".into(),
            name: Sealed(b"n".to_vec()),
            phone: None,
            roles: BTreeSet::from([Role::Customer]),
            code: None,
        }
    }

    fn run(cmds: &[UserCommand], at: Timestamp) -> (UserState, Result<(), UserError>) {
        let mut s = UserState::default();
        let mut last = Ok(());
        for c in cmds {
            match user::decide(&s, c, at) {
                Ok(events) => {
                    events.iter().for_each(|e| user::apply(&mut s, e));
                    last = Ok(());
                }
                Err(e) => last = Err(e),
            }
        }
        (s, last)
    }

    fn decide(s: &UserState, c: &UserCommand, at: Timestamp) -> Result<Vec<UserEvent>, UserError> {
        user::decide(s, c, at)
    }

    #[test]
    fn wallet_coupons_move_issued_reserved_used_and_back() {
        let c = CouponId::parse("c.1").unwrap();
        let (o1, o2) = (OrderId::parse("o1").unwrap(), OrderId::parse("o2").unwrap());
        let add = UserCommand::AddCoupon {
            coupon_id: c.clone(),
            campaign_id: CampaignId::parse("c").unwrap(),
        };
        let reserve = |o: &OrderId| UserCommand::ReserveCoupon {
            coupon_id: c.clone(),
            order_id: o.clone(),
        };
        let release = |o: &OrderId| UserCommand::ReleaseCoupon {
            coupon_id: c.clone(),
            order_id: o.clone(),
        };
        let used = |o: &OrderId| UserCommand::UseCoupon {
            coupon_id: c.clone(),
            order_id: o.clone(),
        };
        let (s, r) = run(
            &[register(None), add.clone(), add.clone(), reserve(&o1)],
            NOW,
        );
        assert_eq!(r, Ok(()));
        assert_eq!(
            s.wallet[&c].status,
            CouponStatus::Reserved {
                order_id: o1.clone()
            }
        );
        assert!(matches!(
            decide(&s, &reserve(&o2), NOW),
            Err(UserError::CouponNotAvailable(_))
        ));
        let (s, _) = run(
            &[register(None), add.clone(), reserve(&o1), release(&o1)],
            NOW,
        );
        assert_eq!(
            s.wallet[&c].status,
            CouponStatus::Issued,
            "back to issued on cancel"
        );
        let (s, r) = run(
            &[
                register(None),
                add.clone(),
                reserve(&o1),
                used(&o1),
                used(&o1),
            ],
            NOW,
        );
        assert_eq!(r, Ok(()), "use is idempotent");
        assert!(
            matches!(decide(&s, &release(&o1), NOW).as_deref(), Ok([_])),
            "a paid order cancelled gives its coupon back"
        );
        assert!(matches!(
            decide(&s, &release(&o2), NOW),
            Err(UserError::CouponNotAvailable(_))
        ));
        assert_eq!(
            decide(
                &UserState {
                    status: Some(AccountStatus::Active),
                    ..UserState::default()
                },
                &reserve(&o1),
                NOW
            ),
            Err(UserError::CouponNotInWallet)
        );
    }

    #[test]
    fn the_wishlist_is_a_set() {
        let p = ProductId::parse("p1").unwrap();
        let (s, _) = run(
            &[
                register(None),
                UserCommand::AddToWishlist(p.clone()),
                UserCommand::AddToWishlist(p.clone()),
            ],
            NOW,
        );
        assert_eq!(s.wishlist.len(), 1);
        let (s, _) = run(
            &[
                register(None),
                UserCommand::AddToWishlist(p.clone()),
                UserCommand::RemoveFromWishlist(p),
            ],
            NOW,
        );
        assert!(s.wishlist.is_empty());
    }
}
