//! Returns and exchanges of a delivered order: which units may still come back, and what a
//! return refunds.
//!
//! - A request's quantities are summed per SKU before any check, so listing a SKU twice
//!   cannot pass a per-item check twice.
//! - Several requests over an order are allowed until every unit is returned; an exchange
//!   takes units the shopper still holds. While an exchange waits for its replacement to be
//!   delivered, no other return or exchange is taken: the units it sends back are the
//!   shopper's no more, and two requests decided before its shipment was booked would
//!   otherwise both count the same unit (a refund and a replacement for one unit).
//! - A line refunds its share of what was paid: its price less its share of the coupon's
//!   discount, which the placement spread over the lines the coupon's scope covers
//!   ([`OrderLine::discount`]), so a line a product coupon made free refunds nothing and a
//!   line it did not cover refunds its full price. Orders placed before the shares were kept
//!   have none on any line while their placement has a discount: for them the discount is
//!   spread over every line by value, as it was then. The refund is counted over every
//!   return of the line, so no refund exceeds what was paid for the line and not yet
//!   refunded. The return that brings the last unit back refunds the rest of the payment
//!   exactly (no rounding left behind).

use super::*;
use crate::domain::time::Timestamp;

/// Units of each SKU returned so far (returns, not exchanges: an exchanged unit is replaced).
pub fn returned_units(s: &OrderState) -> BTreeMap<SkuId, u32> {
    let mut units = BTreeMap::new();
    for r in s.returns.iter().filter(|r| r.kind == ReturnKind::Return) {
        for item in &r.items {
            *units.entry(item.sku_id.clone()).or_default() += item.quantity;
        }
    }
    units
}

/// Whether an exchange waits for its replacement: more exchanges requested than replacement
/// shipments delivered.
fn exchange_under_way(s: &OrderState) -> bool {
    let exchanges = s
        .returns
        .iter()
        .filter(|r| r.kind == ReturnKind::Exchange)
        .count();
    let replaced = s
        .shipments
        .iter()
        .filter(|sh| sh.exchange && sh.status == ShipmentStatus::Delivered)
        .count();
    exchanges > replaced
}

/// What `units` of `line` were paid, rounded down: `(line_total − discount) × units /
/// quantity` with the line's own share of the discount; for an order placed before the shares
/// were kept, `unit_price × units × total / subtotal`.
fn share(p: &Placement, line: &OrderLine, units: u32) -> i64 {
    let shares_kept = p.lines.iter().map(|l| l.discount).sum::<i64>() == p.discount;
    let (value, of) = if shares_kept {
        let paid = i128::from(line.line_total - line.discount).max(0);
        (paid * i128::from(units), i128::from(line.quantity))
    } else {
        let value = i128::from(line.unit_price) * i128::from(units);
        (value * i128::from(p.total), i128::from(p.subtotal))
    };
    if of <= 0 {
        return 0;
    }
    i64::try_from(value / of).unwrap_or(p.total)
}

/// A return as asked: what, why, and the request's Idempotency-Key.
pub(super) struct Asked<'a> {
    pub kind: ReturnKind,
    pub reason: &'a str,
    pub items: &'a [ReturnItem],
    pub key: Option<&'a str>,
    pub fingerprint: Option<&'a str>,
}

pub(super) fn request_return(
    s: &OrderState,
    by: &Requester,
    asked: Asked<'_>,
    now: Timestamp,
) -> Result<Vec<OrderEvent>, OrderError> {
    let Asked {
        kind,
        reason,
        items,
        key,
        fingerprint,
    } = asked;
    let refuse = |why: &'static str| Err(OrderError::NotReturnable(why.into()));
    s.owned_by(by)?;
    // The same key again is the same return, whatever became of its first answer; with
    // another request it is refused, as a remembered answer's key is.
    if let Some(made) = s
        .returns
        .iter()
        .find(|r| key.is_some() && r.key.as_deref() == key)
    {
        return match (made.fingerprint.as_deref(), fingerprint) {
            (Some(made), Some(asked)) if made != asked => Err(OrderError::KeyReused),
            _ => Ok(vec![]),
        };
    }
    if items.iter().any(|item| item.quantity == 0) {
        return Err(OrderError::InvalidQuantity);
    }
    let placement = s.placement.as_ref().ok_or(OrderError::NotFound)?;
    let delivered = s
        .shipments
        .last()
        .is_some_and(|sh| sh.status == ShipmentStatus::Delivered);
    let after_delivery = matches!(
        s.status,
        Some(
            OrderStatus::Delivered
                | OrderStatus::ReturnRequested
                | OrderStatus::Returned
                | OrderStatus::Refunded
        )
    );
    if !(delivered && after_delivery) {
        return refuse("the order has not been delivered");
    }
    if exchange_under_way(s) {
        return refuse("an exchange is under way: its replacement has not been delivered");
    }
    let before = returned_units(s);
    let left = |line: &OrderLine| {
        let back = before.get(&line.sku_id).copied().unwrap_or(0);
        line.quantity.saturating_sub(back)
    };
    // Summed per SKU (by SKU id).
    let mut wanted: BTreeMap<&SkuId, u32> = BTreeMap::new();
    if items.is_empty() {
        for line in &placement.lines {
            wanted.insert(&line.sku_id, left(line));
        }
        wanted.retain(|_, q| *q > 0);
        if wanted.is_empty() {
            return refuse("every unit was returned already");
        }
    }
    for item in items {
        let q = wanted.entry(&item.sku_id).or_default();
        *q = q.saturating_add(item.quantity);
    }
    let mut lines = Vec::new();
    for (sku_id, qty) in &wanted {
        let Some(line) = placement.lines.iter().find(|l| &l.sku_id == *sku_id) else {
            return refuse("an item is not in the order");
        };
        if *qty > left(line) {
            return refuse("a quantity exceeds what was ordered and not yet returned");
        }
        lines.push((line, *qty));
    }
    let refund_amount = match kind {
        ReturnKind::Exchange => 0,
        ReturnKind::Return => refund(s, placement, &before, &lines),
    };
    let items = lines
        .iter()
        .map(|(line, quantity)| ReturnItem {
            sku_id: line.sku_id.clone(),
            quantity: *quantity,
        })
        .collect();
    Ok(vec![OrderEvent::ReturnRequested(ReturnRequest {
        kind,
        reason: reason.chars().take(500).collect(),
        items,
        refund_amount,
        at: now,
        key: key.map(str::to_owned),
        fingerprint: key.and(fingerprint).map(str::to_owned),
    })])
}

/// What returning `lines` (each with its quantity) refunds, given the units `before` returned.
fn refund(
    s: &OrderState,
    p: &Placement,
    before: &BTreeMap<SkuId, u32>,
    lines: &[(&OrderLine, u32)],
) -> i64 {
    let paid = s
        .payment
        .as_ref()
        .filter(|pay| pay.status == PaymentStatus::Approved)
        .map_or(0, |pay| pay.amount);
    let promised: i64 = s
        .returns
        .iter()
        .filter(|r| r.kind == ReturnKind::Return)
        .map(|r| r.refund_amount)
        .sum();
    let open = (paid - promised).max(0);
    let all_back = p.lines.iter().all(|line| {
        let now = lines
            .iter()
            .find(|(l, _)| l.sku_id == line.sku_id)
            .map_or(0, |(_, q)| *q);
        before.get(&line.sku_id).copied().unwrap_or(0) + now == line.quantity
    });
    if all_back {
        return open;
    }
    let amount: i64 = lines
        .iter()
        .map(|(line, qty)| {
            let had = before.get(&line.sku_id).copied().unwrap_or(0);
            share(p, line, had + qty) - share(p, line, had)
        })
        .sum();
    amount.min(open)
}

/// The restock a return calls for: per SKU, the units back once it is done (counted over
/// every return of the order, as [`crate::domain::inventory::SkuCommand::Restock`] takes).
pub(super) fn restock_after(s: &OrderState, r: &ReturnRequest) -> Vec<ReturnItem> {
    let before = returned_units(s);
    r.items
        .iter()
        .map(|item| ReturnItem {
            sku_id: item.sku_id.clone(),
            quantity: before.get(&item.sku_id).copied().unwrap_or(0) + item.quantity,
        })
        .collect()
}
