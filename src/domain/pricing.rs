//! Totals of a set of lines with an optional coupon: the one pricing function carts and orders
//! share. Amounts are integer minor units; percentages round the discount down.

use crate::domain::ids::ProductId;
use crate::domain::text;
use crate::domain::time::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscountKind {
    /// `value` percent off (1 to 100).
    Percent,
    /// `value` minor units off.
    Fixed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Scope {
    Order,
    Category { category: String },
    Product { product_id: ProductId },
}

impl Scope {
    /// Whether the coupon's discount applies to `line`.
    fn covers(&self, line: &Line<'_>) -> bool {
        match self {
            Scope::Order => true,
            // A campaign created before its category was normalised may spell it otherwise.
            Scope::Category { category } => {
                line.category == category || *line.category == text::fold(category)
            }
            Scope::Product { product_id } => line.product_id == product_id,
        }
    }
}

/// What a coupon grants and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponTerms {
    pub kind: DiscountKind,
    pub value: i64,
    /// The eligible amount must reach this.
    pub min_order: Option<i64>,
    pub max_discount: Option<i64>,
    pub scope: Scope,
    pub starts_at: Option<Timestamp>,
    pub ends_at: Option<Timestamp>,
}

/// A line to price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line<'a> {
    pub product_id: &'a ProductId,
    pub category: &'a str,
    pub unit_price: i64,
    pub quantity: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub subtotal: i64,
    pub discount: i64,
    pub total: i64,
}

/// Why a coupon does not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, thiserror::Error, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotApplicable {
    #[error("the campaign has not started")]
    NotStarted,
    #[error("the coupon has expired")]
    Expired,
    #[error("no item in the cart is eligible")]
    NoEligibleItems,
    #[error("the eligible amount is below the minimum order")]
    BelowMinimum,
}

impl NotApplicable {
    pub fn code(self) -> &'static str {
        match self {
            NotApplicable::NotStarted => "not_started",
            NotApplicable::Expired => "expired",
            NotApplicable::NoEligibleItems => "no_eligible_items",
            NotApplicable::BelowMinimum => "below_minimum",
        }
    }
}

fn line_total(l: &Line<'_>) -> i64 {
    l.unit_price.saturating_mul(i64::from(l.quantity))
}

/// The discount `terms` give on `lines` at `now`.
pub fn discount(
    lines: &[Line<'_>],
    terms: &CouponTerms,
    now: Timestamp,
) -> Result<i64, NotApplicable> {
    if terms.starts_at.is_some_and(|t| now < t) {
        return Err(NotApplicable::NotStarted);
    }
    if terms.ends_at.is_some_and(|t| now >= t) {
        return Err(NotApplicable::Expired);
    }
    let eligible: i64 = lines
        .iter()
        .filter(|l| terms.scope.covers(l))
        .map(line_total)
        .sum();
    if eligible == 0 {
        return Err(NotApplicable::NoEligibleItems);
    }
    if terms.min_order.is_some_and(|min| eligible < min) {
        return Err(NotApplicable::BelowMinimum);
    }
    let raw = match terms.kind {
        DiscountKind::Percent => eligible.saturating_mul(terms.value.clamp(0, 100)) / 100,
        DiscountKind::Fixed => terms.value.max(0),
    };
    let capped = terms.max_discount.map_or(raw, |cap| raw.min(cap));
    // Never below zero nor above what is eligible, whatever the terms say (a negative cap
    // made a negative discount: found by the `text` fuzz target).
    Ok(capped.clamp(0, eligible.max(0)))
}

/// Subtotal, discount and total; the coupon's refusal is returned beside totals without it.
pub fn totals(
    lines: &[Line<'_>],
    coupon: Option<&CouponTerms>,
    now: Timestamp,
) -> (Totals, Option<NotApplicable>) {
    let subtotal: i64 = lines.iter().map(line_total).sum();
    let (discount, refusal) = match coupon.map(|t| discount(lines, t, now)) {
        None => (0, None),
        Some(Ok(d)) => (d, None),
        Some(Err(why)) => (0, Some(why)),
    };
    (
        Totals {
            subtotal,
            discount,
            total: subtotal - discount,
        },
        refusal,
    )
}

/// Each line's share of `discount` (minor units, in the order of `lines`): spread by value
/// over the lines `scope` covers and nothing on the others, each share rounded down and the
/// last covered line taking what rounding left, so the shares sum to `discount` exactly. A
/// return refunds what its line was paid, so a line the coupon did not cover gives its full
/// price back and a covered one its price less its share.
pub fn line_discounts(lines: &[Line<'_>], scope: &Scope, discount: i64) -> Vec<i64> {
    let eligible: i128 = lines
        .iter()
        .filter(|l| scope.covers(l))
        .map(|l| i128::from(line_total(l)))
        .sum();
    let mut shares = vec![0; lines.len()];
    let Some(last) = lines.iter().rposition(|l| scope.covers(l)) else {
        return shares;
    };
    if eligible <= 0 {
        return shares;
    }
    let mut given = 0;
    for (i, line) in lines.iter().enumerate().filter(|(_, l)| scope.covers(l)) {
        shares[i] = if i == last {
            discount - given
        } else {
            let share = i128::from(line_total(line)) * i128::from(discount) / eligible;
            i64::try_from(share).unwrap_or(discount)
        };
        given += shares[i];
    }
    shares
}

/// `amount` minor units of `currency` as people read it in text: the major units grouped by
/// thousands, the minor digits ISO 4217 gives the currency, and its code: `12,900 KRW`,
/// `1,234.50 USD`.
pub fn money_text(amount: i64, currency: &str) -> String {
    // ISO 4217's currencies with no minor unit, and those with three digits.
    const NONE: [&str; 17] = [
        "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
        "VUV", "XAF", "XOF", "XPF",
    ];
    const THREE: [&str; 7] = ["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
    let digits = match currency {
        c if NONE.contains(&c) => 0,
        c if THREE.contains(&c) => 3,
        _ => 2,
    };
    let scale = 10_u64.pow(digits);
    let (major, minor) = (amount.unsigned_abs() / scale, amount.unsigned_abs() % scale);
    let plain = major.to_string();
    let mut grouped = String::new();
    for (i, c) in plain.chars().enumerate() {
        if i > 0 && (plain.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if amount < 0 { "-" } else { "" };
    match digits {
        0 => format!("{sign}{grouped} {currency}"),
        d => format!(
            "{sign}{grouped}.{minor:0width$} {currency}",
            width = d as usize
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_000);

    fn pid(s: &str) -> ProductId {
        ProductId::parse(s).unwrap()
    }

    fn terms(kind: DiscountKind, value: i64) -> CouponTerms {
        CouponTerms {
            kind,
            value,
            min_order: None,
            max_discount: None,
            scope: Scope::Order,
            starts_at: None,
            ends_at: None,
        }
    }

    #[test]
    fn percent_rounds_down_and_is_capped() {
        let (a, b) = (pid("a"), pid("b"));
        let lines = [
            Line {
                product_id: &a,
                category: "tops",
                unit_price: 12_345,
                quantity: 2,
            },
            Line {
                product_id: &b,
                category: "shoes",
                unit_price: 10_000,
                quantity: 1,
            },
        ];
        let t = terms(DiscountKind::Percent, 10);
        let (totals, refusal) = super::totals(&lines, Some(&t), NOW);
        assert_eq!(refusal, None);
        assert_eq!(
            totals,
            Totals {
                subtotal: 34_690,
                discount: 3_469,
                total: 31_221
            }
        );
        let capped = CouponTerms {
            max_discount: Some(3_000),
            ..t
        };
        assert_eq!(discount(&lines, &capped, NOW), Ok(3_000));
    }

    #[test]
    fn scope_limits_the_eligible_amount() {
        let (a, b) = (pid("a"), pid("b"));
        let lines = [
            Line {
                product_id: &a,
                category: "tops",
                unit_price: 20_000,
                quantity: 1,
            },
            Line {
                product_id: &b,
                category: "shoes",
                unit_price: 50_000,
                quantity: 1,
            },
        ];
        let category = CouponTerms {
            scope: Scope::Category {
                category: "tops".into(),
            },
            ..terms(DiscountKind::Percent, 50)
        };
        assert_eq!(discount(&lines, &category, NOW), Ok(10_000));
        let product = CouponTerms {
            scope: Scope::Product {
                product_id: pid("b"),
            },
            ..terms(DiscountKind::Fixed, 7_000)
        };
        assert_eq!(discount(&lines, &product, NOW), Ok(7_000));
        let elsewhere = CouponTerms {
            scope: Scope::Category {
                category: "bags".into(),
            },
            ..terms(DiscountKind::Fixed, 1)
        };
        assert_eq!(
            discount(&lines, &elsewhere, NOW),
            Err(NotApplicable::NoEligibleItems)
        );
    }

    #[test]
    fn a_scoped_discount_is_shared_only_by_the_lines_it_covers() {
        let (a, b, c) = (pid("a"), pid("b"), pid("c"));
        let line = |product_id, category, unit_price, quantity| Line {
            product_id,
            category,
            unit_price,
            quantity,
        };
        // Given two tops and a pair of shoes
        let lines = [
            line(&a, "tops", 10_000, 1),
            line(&b, "shoes", 50_000, 1),
            line(&c, "tops", 20_000, 2),
        ];
        // When a product coupon's 7,500 is shared, then it all lands on that product
        let product = Scope::Product {
            product_id: pid("b"),
        };
        assert_eq!(line_discounts(&lines, &product, 7_500), [0, 7_500, 0]);
        // When a category coupon's 1,001 is shared, then the tops share it by value (10,000
        // to 40,000), rounding left to the last one
        let tops = Scope::Category {
            category: "tops".into(),
        };
        assert_eq!(line_discounts(&lines, &tops, 1_001), [200, 0, 801]);
        // And a campaign stored before categories were normalised ("Tops") covers them too
        let capitalised = Scope::Category {
            category: " Tops".into(),
        };
        assert_eq!(line_discounts(&lines, &capitalised, 1_001), [200, 0, 801]);
        // When an order coupon's is shared, then every line has its part and they sum up
        let shares = line_discounts(&lines, &Scope::Order, 9_999);
        assert_eq!(shares, [999, 4_999, 4_001]);
        // When no line is covered, then no line has a share
        let bags = Scope::Category {
            category: "bags".into(),
        };
        assert_eq!(line_discounts(&lines, &bags, 0), [0, 0, 0]);
    }

    #[test]
    fn minimum_order_window_and_fixed_never_exceeding_the_amount() {
        let a = pid("a");
        let lines = [Line {
            product_id: &a,
            category: "tops",
            unit_price: 9_000,
            quantity: 1,
        }];
        let min = CouponTerms {
            min_order: Some(10_000),
            ..terms(DiscountKind::Fixed, 3_000)
        };
        assert_eq!(
            discount(&lines, &min, NOW),
            Err(NotApplicable::BelowMinimum)
        );
        let huge = terms(DiscountKind::Fixed, 50_000);
        assert_eq!(discount(&lines, &huge, NOW), Ok(9_000), "never below zero");
        let negative_cap = CouponTerms {
            max_discount: Some(-5),
            ..terms(DiscountKind::Fixed, 1000)
        };
        assert_eq!(
            discount(&lines, &negative_cap, NOW),
            Ok(0),
            "never negative"
        );
        let later = CouponTerms {
            starts_at: Some(Timestamp(2_000)),
            ..huge.clone()
        };
        assert_eq!(
            discount(&lines, &later, NOW),
            Err(NotApplicable::NotStarted)
        );
        let over = CouponTerms {
            ends_at: Some(NOW),
            ..huge
        };
        assert_eq!(discount(&lines, &over, NOW), Err(NotApplicable::Expired));
        let (t, why) = totals(&lines, Some(&over), NOW);
        assert_eq!(
            (t.discount, t.total, why),
            (0, 9_000, Some(NotApplicable::Expired))
        );
    }

    #[test]
    fn amounts_read_in_their_currency_s_minor_digits() {
        assert_eq!(money_text(12_900, "KRW"), "12,900 KRW");
        assert_eq!(money_text(1_234_567, "KRW"), "1,234,567 KRW");
        assert_eq!(money_text(123_450, "USD"), "1,234.50 USD");
        assert_eq!(money_text(5, "USD"), "0.05 USD");
        assert_eq!(money_text(1_500, "KWD"), "1.500 KWD");
        assert_eq!(money_text(-900, "JPY"), "-900 JPY");
    }
}
