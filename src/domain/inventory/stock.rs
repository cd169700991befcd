//! Stock levels and ownership of a SKU: the operator sets or adjusts the available units, and
//! a product binds the SKU to itself (a SKU belongs to at most one product).

use crate::domain::ids::ProductId;
use crate::domain::inventory::messages::{MAX_STOCK, SkuError, SkuEvent};
use crate::domain::inventory::state::SkuState;

/// Sets the available units; reserved and sold are untouched.
pub(super) fn set(state: &SkuState, available: u64) -> Result<Vec<SkuEvent>, SkuError> {
    if available > MAX_STOCK {
        return Err(SkuError::StockOutOfRange);
    }
    if available == state.available {
        return Ok(vec![]);
    }
    Ok(vec![SkuEvent::StockSet { available }])
}

/// Adds to (or, negative, takes from) the available units.
pub(super) fn adjust(state: &SkuState, delta: i64) -> Result<Vec<SkuEvent>, SkuError> {
    let after = i128::from(state.available) + i128::from(delta);
    if after < 0 {
        return Err(SkuError::InsufficientStock {
            available: state.available,
            requested: delta.unsigned_abs(),
        });
    }
    if after > i128::from(MAX_STOCK) {
        return Err(SkuError::StockOutOfRange);
    }
    if delta == 0 {
        return Ok(vec![]);
    }
    Ok(vec![SkuEvent::StockAdjusted { delta }])
}

/// Binds the SKU to `product_id`, replacing only the owner named by `replacing`.
pub(super) fn attach(
    state: &SkuState,
    product_id: &ProductId,
    replacing: Option<&ProductId>,
) -> Result<Vec<SkuEvent>, SkuError> {
    match &state.product {
        Some(owner) if owner == product_id => Ok(vec![]),
        Some(owner) if Some(owner) != replacing => Err(SkuError::AttachedElsewhere(owner.clone())),
        _ => Ok(vec![SkuEvent::Attached {
            product_id: product_id.clone(),
        }]),
    }
}

pub(super) fn set_applied(state: &mut SkuState, available: u64) {
    state.available = available;
}

pub(super) fn adjusted(state: &mut SkuState, delta: i64) {
    state.available = state.available.saturating_add_signed(delta);
}

pub(super) fn attached(state: &mut SkuState, product_id: &ProductId) {
    state.product = Some(product_id.clone());
}
