//! A user's coupon wallet: coupons claimed from campaigns, each `issued -> reserved -> used`,
//! back to `issued` when the order that held it is cancelled or expires. A sub-aggregate of the
//! user: its own rules and events, which the user records as its own.

use crate::domain::ids::{CampaignId, CouponId, OrderId};
use crate::domain::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Wallet {
    coupons: BTreeMap<CouponId, WalletCoupon>,
}

impl Wallet {
    pub fn get(&self, coupon_id: &CouponId) -> Option<&WalletCoupon> {
        self.coupons.get(coupon_id)
    }

    /// Every coupon, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&CouponId, &WalletCoupon)> {
        self.coupons.iter()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WalletCommand {
    /// Puts a claimed coupon in the wallet (idempotent).
    Add {
        coupon_id: CouponId,
        campaign_id: CampaignId,
    },
    /// An order holds the coupon (issued -> reserved).
    Reserve {
        coupon_id: CouponId,
        order_id: OrderId,
    },
    /// The order was paid (reserved -> used).
    Use {
        coupon_id: CouponId,
        order_id: OrderId,
    },
    /// The order was cancelled or expired (reserved or used by it -> issued).
    Release {
        coupon_id: CouponId,
        order_id: OrderId,
    },
}

/// Stored in the user's journal as the user's events (`{"type": "coupon_added", ...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WalletEvent {
    CouponAdded {
        coupon_id: CouponId,
        campaign_id: CampaignId,
        at: Timestamp,
    },
    CouponStatusChanged {
        coupon_id: CouponId,
        status: CouponStatus,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum WalletError {
    #[error("the coupon is not in your wallet")]
    NotInWallet,
    #[error("the coupon is {0}")]
    NotAvailable(std::borrow::Cow<'static, str>),
}

pub fn decide(
    w: &Wallet,
    cmd: &WalletCommand,
    now: Timestamp,
) -> Result<Vec<WalletEvent>, WalletError> {
    match cmd {
        WalletCommand::Add {
            coupon_id,
            campaign_id,
        } => Ok(if w.coupons.contains_key(coupon_id) {
            vec![]
        } else {
            vec![WalletEvent::CouponAdded {
                coupon_id: coupon_id.clone(),
                campaign_id: campaign_id.clone(),
                at: now,
            }]
        }),
        WalletCommand::Reserve {
            coupon_id,
            order_id,
        } => {
            let next = CouponStatus::Reserved {
                order_id: order_id.clone(),
            };
            change(w, coupon_id, next, |st| matches!(st, CouponStatus::Issued))
        }
        WalletCommand::Use {
            coupon_id,
            order_id,
        } => {
            let next = CouponStatus::Used {
                order_id: order_id.clone(),
            };
            change(
                w,
                coupon_id,
                next,
                |st| matches!(st, CouponStatus::Reserved { order_id: o } if o == order_id),
            )
        }
        WalletCommand::Release {
            coupon_id,
            order_id,
        } => change(w, coupon_id, CouponStatus::Issued, |st| match st {
            CouponStatus::Reserved { order_id: o } | CouponStatus::Used { order_id: o } => {
                o == order_id
            }
            CouponStatus::Issued => false,
        }),
    }
}

/// Moves a coupon to `next` when its status allows it; already there is a replay.
fn change(
    w: &Wallet,
    coupon_id: &CouponId,
    next: CouponStatus,
    allowed_from: impl Fn(&CouponStatus) -> bool,
) -> Result<Vec<WalletEvent>, WalletError> {
    let coupon = w.get(coupon_id).ok_or(WalletError::NotInWallet)?;
    if coupon.status == next {
        return Ok(vec![]);
    }
    if !allowed_from(&coupon.status) {
        let why = match coupon.status {
            CouponStatus::Issued => "not reserved by this order",
            CouponStatus::Reserved { .. } => "reserved by another order",
            CouponStatus::Used { .. } => "already used",
        };
        return Err(WalletError::NotAvailable(why.into()));
    }
    Ok(vec![WalletEvent::CouponStatusChanged {
        coupon_id: coupon_id.clone(),
        status: next,
    }])
}

pub fn apply(w: &mut Wallet, event: &WalletEvent) {
    match event {
        WalletEvent::CouponAdded {
            coupon_id,
            campaign_id,
            at,
        } => {
            let coupon = WalletCoupon {
                campaign_id: campaign_id.clone(),
                status: CouponStatus::Issued,
                issued_at: *at,
            };
            w.coupons.insert(coupon_id.clone(), coupon);
        }
        WalletEvent::CouponStatusChanged { coupon_id, status } => {
            if let Some(c) = w.coupons.get_mut(coupon_id) {
                c.status = status.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(10_000_000);

    fn run(cmds: &[WalletCommand]) -> (Wallet, Result<(), WalletError>) {
        let mut w = Wallet::default();
        let mut last = Ok(());
        for c in cmds {
            match decide(&w, c, NOW) {
                Ok(events) => {
                    events.iter().for_each(|e| apply(&mut w, e));
                    last = Ok(());
                }
                Err(e) => last = Err(e),
            }
        }
        (w, last)
    }

    #[test]
    fn coupons_move_issued_reserved_used_and_back() {
        let c = CouponId::parse("c.1").unwrap();
        let (o1, o2) = (OrderId::parse("o1").unwrap(), OrderId::parse("o2").unwrap());
        let add = WalletCommand::Add {
            coupon_id: c.clone(),
            campaign_id: CampaignId::parse("c").unwrap(),
        };
        let reserve = |o: &OrderId| WalletCommand::Reserve {
            coupon_id: c.clone(),
            order_id: o.clone(),
        };
        let release = |o: &OrderId| WalletCommand::Release {
            coupon_id: c.clone(),
            order_id: o.clone(),
        };
        let used = |o: &OrderId| WalletCommand::Use {
            coupon_id: c.clone(),
            order_id: o.clone(),
        };
        let (w, r) = run(&[add.clone(), add.clone(), reserve(&o1)]);
        assert_eq!(r, Ok(()));
        let reserved = CouponStatus::Reserved {
            order_id: o1.clone(),
        };
        assert_eq!(w.get(&c).map(|c| &c.status), Some(&reserved));
        assert!(matches!(
            decide(&w, &reserve(&o2), NOW),
            Err(WalletError::NotAvailable(_))
        ));
        let (w, _) = run(&[add.clone(), reserve(&o1), release(&o1)]);
        let status = w.get(&c).map(|c| &c.status);
        assert_eq!(
            status,
            Some(&CouponStatus::Issued),
            "back to issued on cancel"
        );
        let (w, r) = run(&[add.clone(), reserve(&o1), used(&o1), used(&o1)]);
        assert_eq!(r, Ok(()), "use is idempotent");
        assert!(
            matches!(decide(&w, &release(&o1), NOW).as_deref(), Ok([_])),
            "a paid order cancelled gives its coupon back"
        );
        assert!(matches!(
            decide(&w, &release(&o2), NOW),
            Err(WalletError::NotAvailable(_))
        ));
        assert_eq!(
            decide(&Wallet::default(), &reserve(&o1), NOW),
            Err(WalletError::NotInWallet)
        );
    }
}
