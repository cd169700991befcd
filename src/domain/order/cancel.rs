//! Who or what cancelled an order, and what the buyer and the gateway are told of it.

use serde::{Deserialize, Serialize};

/// Who or what cancelled an order; its refund's reason (shown by the gateway) and the
/// buyer's notice say it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelCause {
    #[default]
    Customer,
    /// An admin cancelled someone else's order.
    Store,
    /// The units held for a paid order were let go before its sale was booked.
    StockLost,
    /// The payment was cancelled at the gateway (its console, not the engine).
    Gateway,
}

impl CancelCause {
    /// Its name, as stored and as a notification's `reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Store => "store",
            Self::StockLost => "stock_lost",
            Self::Gateway => "gateway",
        }
    }

    /// The reason given with the refund.
    pub fn refund_reason(self) -> &'static str {
        match self {
            Self::Customer => "cancelled by the customer",
            Self::Store => "cancelled by the store",
            Self::StockLost => "cancelled: the stock held for the order was lost",
            Self::Gateway => "cancelled at the payment gateway",
        }
    }

    /// The buyer's notice.
    pub fn notice(self) -> &'static str {
        match self {
            Self::Customer => "Your order was cancelled.",
            Self::Store => "The store cancelled your order.",
            Self::StockLost => {
                "Your order was cancelled: its items could not be kept for you. \
                 Your payment is refunded in full."
            }
            Self::Gateway => {
                "Your payment was cancelled at the payment provider, so your order was cancelled."
            }
        }
    }
}
