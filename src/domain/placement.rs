//! [`Placement`]: everything fixed when an order is placed — its lines, prices, coupon and
//! sealed address. The order entity starts from it, and a drop purchase's hold on its SKU keeps
//! it until the order is written (`crate::domain::inventory`), so both use this leaf.

use crate::domain::ids::{CouponId, DropId, ProductId, SkuId, UserId};
use crate::domain::sealed::Sealed;
use crate::domain::time::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku_id: SkuId,
    pub product_id: ProductId,
    pub name: String,
    pub unit_price: i64,
    pub quantity: u32,
    pub line_total: i64,
    /// The line's share of the coupon's discount (minor units): spread by value over the
    /// lines the coupon's scope covers, none on the others
    /// ([`crate::domain::pricing::line_discounts`]); the shares sum to the placement's
    /// `discount`. What a return of the line refunds comes from it. Orders placed before it
    /// was kept have none on any line (see `crate::domain::order::returns`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub discount: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCoupon {
    pub coupon_id: CouponId,
    pub discount: i64,
}

/// Everything fixed when the order is placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub user_id: UserId,
    /// Digest of the request that placed it: a replay with another body is refused.
    pub fingerprint: String,
    pub lines: Vec<OrderLine>,
    pub coupon: Option<OrderCoupon>,
    pub subtotal: i64,
    pub discount: i64,
    pub total: i64,
    pub currency: String,
    /// The shipping address (JSON), sealed: personal data.
    pub shipping_address: Sealed,
    /// Ordered from the cart: the paid lines leave the cart.
    pub from_cart: bool,
    /// Bought in a drop: the purchase already reserved the units (in the drop's SKU) before
    /// the order was placed, so the order starts `awaiting_payment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_id: Option<DropId>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

#[cfg(test)]
impl Placement {
    /// A placement of `user` (tests): no lines, no coupon, 5,000 KRW, not from the cart nor a
    /// drop, made at `at` and expiring 10 minutes later.
    pub fn example(user: &str, fingerprint: &str, at: Timestamp) -> Self {
        Placement {
            user_id: UserId::parse(user).unwrap(),
            fingerprint: fingerprint.into(),
            lines: vec![],
            coupon: None,
            subtotal: 5000,
            discount: 0,
            total: 5000,
            currency: "KRW".into(),
            shipping_address: Sealed(vec![]),
            from_cart: false,
            drop_id: None,
            created_at: at,
            expires_at: Timestamp(at.0 + 600_000),
        }
    }
}
