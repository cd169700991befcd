//! A shopper's cart: lines with the price seen when they were added (a snapshot), at most
//! [`MAX_QTY`] per line and [`MAX_LINES`] lines, and at most one applied coupon. Totals come from
//! `domain::pricing`, the function orders use too.

use crate::domain::ids::{CouponId, ProductId, SkuId};
use crate::domain::pricing::{self, CouponTerms, Line, NotApplicable, Totals};
use crate::domain::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const MAX_QTY: u32 = 99;
pub const MAX_LINES: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    pub product_id: ProductId,
    pub name: String,
    pub category: String,
    pub unit_price: i64,
    pub quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedCoupon {
    pub coupon_id: CouponId,
    pub terms: CouponTerms,
}

/// A SKU's price (minor units) and category in the catalog now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentPrice {
    pub unit_price: i64,
    pub category: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartState {
    pub lines: BTreeMap<SkuId, CartLine>,
    pub coupon: Option<AppliedCoupon>,
}

impl CartState {
    /// Totals at `now`, and why the applied coupon gives nothing, if it does not apply.
    pub fn totals(&self, now: Timestamp) -> (Totals, Option<NotApplicable>) {
        let lines: Vec<Line<'_>> = self
            .lines
            .values()
            .map(|l| Line {
                product_id: &l.product_id,
                category: &l.category,
                unit_price: l.unit_price,
                quantity: l.quantity,
            })
            .collect();
        pricing::totals(&lines, self.coupon.as_ref().map(|c| &c.terms), now)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CartCommand {
    /// Sets a line's quantity (0 removes it); `available` is the SKU's stock right now.
    SetLine {
        sku_id: SkuId,
        line: CartLine,
        available: u64,
    },
    RemoveLine {
        sku_id: SkuId,
    },
    /// Applies `coupon` if it gives something to the cart at `prices`: today's catalog price and
    /// category of its lines (what an order would charge, `Placements::build`); a line not in
    /// `prices` counts at the price it was added with.
    ApplyCoupon {
        coupon: AppliedCoupon,
        prices: BTreeMap<SkuId, CurrentPrice>,
    },
    RemoveCoupon,
    /// An order of the cart holds `coupon_id` now: the cart lets it go (if it still has it),
    /// so it never shows a discount that ordering again would refuse.
    CouponTaken {
        coupon_id: CouponId,
    },
    /// Removes the given lines (those an order bought), or every line.
    Clear {
        skus: Option<Vec<SkuId>>,
    },
    Get,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CartEvent {
    LineSet { sku_id: SkuId, line: CartLine },
    LineRemoved { sku_id: SkuId },
    CouponApplied { coupon: AppliedCoupon },
    CouponRemoved,
    Cleared { skus: Option<Vec<SkuId>> },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum CartError {
    #[error("a line holds 0 to {MAX_QTY} units")]
    InvalidQuantity,
    #[error("a cart holds at most {MAX_LINES} lines")]
    TooManyLines,
    #[error("only {available} units of {sku_id} are available")]
    InsufficientStock { sku_id: SkuId, available: u64 },
    #[error("the coupon does not apply: {0}")]
    CouponNotApplicable(NotApplicable),
}

pub fn decide(
    s: &CartState,
    cmd: &CartCommand,
    now: Timestamp,
) -> Result<Vec<CartEvent>, CartError> {
    match cmd {
        CartCommand::SetLine {
            sku_id,
            line,
            available,
        } => {
            if line.quantity > MAX_QTY {
                return Err(CartError::InvalidQuantity);
            }
            if line.quantity == 0 {
                return Ok(remove(s, sku_id));
            }
            if !s.lines.contains_key(sku_id) && s.lines.len() >= MAX_LINES {
                return Err(CartError::TooManyLines);
            }
            if u64::from(line.quantity) > *available {
                return Err(CartError::InsufficientStock {
                    sku_id: sku_id.clone(),
                    available: *available,
                });
            }
            if s.lines.get(sku_id) == Some(line) {
                return Ok(vec![]);
            }
            Ok(vec![CartEvent::LineSet {
                sku_id: sku_id.clone(),
                line: line.clone(),
            }])
        }
        CartCommand::RemoveLine { sku_id } => Ok(remove(s, sku_id)),
        CartCommand::ApplyCoupon { coupon, prices } => {
            let mut with = s.clone();
            for (sku, line) in with.lines.iter_mut() {
                if let Some(now) = prices.get(sku) {
                    line.unit_price = now.unit_price;
                    line.category.clone_from(&now.category);
                }
            }
            with.coupon = Some(coupon.clone());
            if let (_, Some(why)) = with.totals(now) {
                return Err(CartError::CouponNotApplicable(why));
            }
            Ok(vec![CartEvent::CouponApplied {
                coupon: coupon.clone(),
            }])
        }
        CartCommand::RemoveCoupon => Ok(if s.coupon.is_some() {
            vec![CartEvent::CouponRemoved]
        } else {
            vec![]
        }),
        CartCommand::CouponTaken { coupon_id } => {
            let held = s.coupon.as_ref().is_some_and(|c| &c.coupon_id == coupon_id);
            Ok(if held {
                vec![CartEvent::CouponRemoved]
            } else {
                vec![]
            })
        }
        CartCommand::Clear { skus } => Ok(vec![CartEvent::Cleared { skus: skus.clone() }]),
        CartCommand::Get => Ok(vec![]),
    }
}

fn remove(s: &CartState, sku_id: &SkuId) -> Vec<CartEvent> {
    if s.lines.contains_key(sku_id) {
        vec![CartEvent::LineRemoved {
            sku_id: sku_id.clone(),
        }]
    } else {
        vec![]
    }
}

pub fn apply(s: &mut CartState, e: &CartEvent) {
    match e {
        CartEvent::LineSet { sku_id, line } => {
            s.lines.insert(sku_id.clone(), line.clone());
        }
        CartEvent::LineRemoved { sku_id } => {
            s.lines.remove(sku_id);
        }
        CartEvent::CouponApplied { coupon } => s.coupon = Some(coupon.clone()),
        CartEvent::CouponRemoved => s.coupon = None,
        CartEvent::Cleared { skus: None } => *s = CartState::default(),
        CartEvent::Cleared { skus: Some(skus) } => {
            for sku in skus {
                s.lines.remove(sku);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::pricing::{DiscountKind, Scope};

    const NOW: Timestamp = Timestamp(1_000);

    fn sku(s: &str) -> SkuId {
        SkuId::parse(s).unwrap()
    }

    fn set(s: &str, qty: u32, price: i64, available: u64) -> CartCommand {
        CartCommand::SetLine {
            sku_id: sku(s),
            line: CartLine {
                product_id: ProductId::parse("p").unwrap(),
                name: "Tee".into(),
                category: "tops".into(),
                unit_price: price,
                quantity: qty,
            },
            available,
        }
    }

    fn run(cmds: &[CartCommand]) -> (CartState, Result<(), CartError>) {
        let mut s = CartState::default();
        let mut last = Ok(());
        for c in cmds {
            match decide(&s, c, NOW) {
                Ok(events) => {
                    events.iter().for_each(|e| apply(&mut s, e));
                    last = Ok(());
                }
                Err(e) => last = Err(e),
            }
        }
        (s, last)
    }

    #[test]
    fn lines_are_set_replaced_and_removed_with_zero() {
        let (s, _) = run(&[
            set("a", 2, 1_000, 10),
            set("b", 1, 500, 10),
            set("a", 3, 1_000, 10),
        ]);
        assert_eq!(s.lines[&sku("a")].quantity, 3);
        assert_eq!(s.totals(NOW).0.subtotal, 3_500);
        let (s, _) = run(&[set("a", 2, 1_000, 10), set("a", 0, 1_000, 10)]);
        assert!(s.lines.is_empty());
    }

    #[test]
    fn limits_and_stock_are_checked() {
        assert_eq!(
            run(&[set("a", 100, 1, 1000)]).1,
            Err(CartError::InvalidQuantity)
        );
        assert_eq!(
            run(&[set("a", 3, 1, 2)]).1,
            Err(CartError::InsufficientStock {
                sku_id: sku("a"),
                available: 2
            })
        );
        let mut cmds: Vec<_> = (0..MAX_LINES)
            .map(|i| set(&format!("s{i}"), 1, 1, 5))
            .collect();
        cmds.push(set("one-more", 1, 1, 5));
        assert_eq!(run(&cmds).1, Err(CartError::TooManyLines));
        cmds.push(set("s0", 2, 1, 5));
        assert_eq!(run(&cmds).1, Ok(()), "an existing line may still change");
    }

    #[test]
    fn a_coupon_applies_only_when_it_gives_something() {
        let coupon = |min: Option<i64>| coupon_at(min, &[]);
        let (s, r) = run(&[set("a", 2, 1_000, 10), coupon(Some(1_500))]);
        assert_eq!(r, Ok(()));
        assert_eq!(s.totals(NOW).0.total, 1_700);
        let (_, r) = run(&[set("a", 1, 1_000, 10), coupon(Some(1_500))]);
        assert_eq!(
            r,
            Err(CartError::CouponNotApplicable(NotApplicable::BelowMinimum))
        );
        // Falling below the minimum later keeps the coupon but it gives nothing until it applies.
        let (s, _) = run(&[
            set("a", 2, 1_000, 10),
            coupon(Some(1_500)),
            set("a", 1, 1_000, 10),
        ]);
        let (t, why) = s.totals(NOW);
        assert_eq!((t.discount, why), (0, Some(NotApplicable::BelowMinimum)));
    }

    /// A coupon worth 300 off an order of at least `min`, with `prices` as the catalog's now.
    fn coupon_at(min: Option<i64>, prices: &[(&str, i64)]) -> CartCommand {
        CartCommand::ApplyCoupon {
            coupon: AppliedCoupon {
                coupon_id: CouponId::parse("c.1").unwrap(),
                terms: CouponTerms {
                    kind: DiscountKind::Fixed,
                    value: 300,
                    min_order: min,
                    max_discount: None,
                    scope: Scope::Order,
                    starts_at: None,
                    ends_at: None,
                },
            },
            prices: prices
                .iter()
                .map(|(s, p)| {
                    let now = CurrentPrice {
                        unit_price: *p,
                        category: "tops".into(),
                    };
                    (sku(s), now)
                })
                .collect(),
        }
    }

    #[test]
    fn a_coupon_minimum_is_checked_at_todays_prices() {
        // Given two units added at 1,000 each and a coupon for orders of at least 1,500
        // When the catalog's price has fallen to 700 since
        let (_, r) = run(&[
            set("a", 2, 1_000, 10),
            coupon_at(Some(1_500), &[("a", 700)]),
        ]);
        // Then the cart an order would charge (1,400) is below the minimum
        assert_eq!(
            r,
            Err(CartError::CouponNotApplicable(NotApplicable::BelowMinimum))
        );
        // And when the price has risen from 700 to 800, the minimum is met
        let (_, r) = run(&[set("a", 2, 700, 10), coupon_at(Some(1_500), &[("a", 800)])]);
        assert_eq!(r, Ok(()));
    }

    #[test]
    fn a_coupon_an_order_took_leaves_the_cart_but_another_stays() {
        // Given a cart with coupon c.1
        let (s, _) = run(&[set("a", 2, 1_000, 10), coupon_at(None, &[])]);
        let taken = |id: &str| CartCommand::CouponTaken {
            coupon_id: CouponId::parse(id).unwrap(),
        };
        // When an order takes another coupon, the cart keeps its own
        assert_eq!(decide(&s, &taken("c.2"), NOW), Ok(vec![]));
        // And when an order takes c.1, the cart lets it go
        let (s, _) = run(&[set("a", 2, 1_000, 10), coupon_at(None, &[]), taken("c.1")]);
        assert_eq!(s.coupon, None);
    }

    #[test]
    fn clearing_bought_lines_keeps_the_rest() {
        let (s, _) = run(&[
            set("a", 1, 1, 5),
            set("b", 1, 1, 5),
            CartCommand::Clear {
                skus: Some(vec![sku("a")]),
            },
        ]);
        assert_eq!(s.lines.keys().collect::<Vec<_>>(), vec![&sku("b")]);
    }
}
