//! The JSON shapes of orders: the creation answer (fixed at placement, so a replay of the
//! same Idempotency-Key returns it byte for byte) and the detail with history, payment and
//! shipment.

use crate::domain::ids::OrderId;
use crate::domain::order::{OrderState, Shipment, ShipmentStatus};
use crate::orders::OrderFailure;
use crate::orders::Orders;
use crate::orders::placement::ShippingAddress;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct OrderItem {
    pub sku_id: String,
    pub product_id: String,
    pub name: String,
    pub quantity: u32,
    pub unit_price: i64,
    pub line_total: i64,
}

#[derive(Serialize, ToSchema)]
pub struct PaymentBody {
    pub provider: String,
    /// Where the shopper pays; `null` when there is nothing to pay (a total of 0, paid at
    /// once without the gateway).
    pub checkout_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_key: Option<String>,
    /// `confirming`, `approved` or `declined` once a confirmation was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<String>,
    pub refunded: i64,
}

#[derive(Serialize, ToSchema)]
pub struct OrderCreated {
    pub order_id: String,
    pub status: &'static str,
    pub items: Vec<OrderItem>,
    pub subtotal: i64,
    pub discount: i64,
    pub total: i64,
    pub currency: String,
    pub expires_at: String,
    pub payment: PaymentBody,
}

#[derive(Serialize, ToSchema)]
pub struct StatusChange {
    pub status: &'static str,
    pub at: String,
}

#[derive(Serialize, ToSchema)]
pub struct ShipmentEvent {
    pub status: &'static str,
    pub at: String,
}

#[derive(Serialize, ToSchema)]
pub struct ShipmentBody {
    pub carrier: String,
    pub tracking_number: String,
    pub status: &'static str,
    pub events: Vec<ShipmentEvent>,
    /// A replacement sent for an exchange.
    pub exchange: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ReturnBody {
    pub kind: &'static str,
    pub reason: String,
    pub items: Vec<ReturnLine>,
    pub refund_amount: i64,
    pub requested_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct ReturnLine {
    pub sku_id: String,
    pub quantity: u32,
}

#[derive(Serialize, ToSchema)]
pub struct OrderDetail {
    pub order_id: String,
    pub status: &'static str,
    pub items: Vec<OrderItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coupon_id: Option<String>,
    pub subtotal: i64,
    pub discount: i64,
    pub total: i64,
    pub currency: String,
    pub created_at: String,
    /// While the order waits for its payment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// `null` once the person was erased (the order is kept, anonymised).
    #[schema(value_type = Option<crate::http::schemas::AddressBody>)]
    pub shipping_address: Option<ShippingAddress>,
    pub status_history: Vec<StatusChange>,
    pub payment: PaymentBody,
    pub shipment: Option<ShipmentBody>,
    pub returns: Vec<ReturnBody>,
}

fn shipment_status(s: ShipmentStatus) -> &'static str {
    match s {
        ShipmentStatus::Ready => "ready",
        ShipmentStatus::Shipping => "shipping",
        ShipmentStatus::Delivered => "delivered",
    }
}

pub fn shipment_body(s: &Shipment) -> ShipmentBody {
    ShipmentBody {
        carrier: s.carrier.clone(),
        tracking_number: s.tracking_number.clone(),
        status: shipment_status(s.status),
        events: s
            .events
            .iter()
            .map(|(st, at)| ShipmentEvent {
                status: shipment_status(*st),
                at: at.to_rfc3339(),
            })
            .collect(),
        exchange: s.exchange,
    }
}

fn items(state: &OrderState) -> Vec<OrderItem> {
    state
        .placement
        .iter()
        .flat_map(|p| &p.lines)
        .map(|l| OrderItem {
            sku_id: l.sku_id.to_string(),
            product_id: l.product_id.to_string(),
            name: l.name.clone(),
            quantity: l.quantity,
            unit_price: l.unit_price,
            line_total: l.line_total,
        })
        .collect()
}

fn payment(orders: &Orders, id: &OrderId, state: &OrderState, at_creation: bool) -> PaymentBody {
    let total = state.placement.as_ref().map_or(0, |p| p.total);
    let p = state.payment.as_ref().filter(|_| !at_creation);
    PaymentBody {
        provider: orders.endpoints().provider.clone(),
        checkout_url: (total > 0).then(|| {
            format!(
                "{}?order_id={id}&amount={total}",
                orders.endpoints().checkout_base
            )
        }),
        payment_key: p.map(|p| p.payment_key.clone()),
        status: p.map(|p| match p.status {
            crate::domain::order::PaymentStatus::Confirming => "confirming",
            crate::domain::order::PaymentStatus::Approved => "approved",
            crate::domain::order::PaymentStatus::Declined => "declined",
        }),
        reason: p.and_then(|p| p.reason.clone()),
        approved_at: p.and_then(|p| p.approved_at).map(|t| t.to_rfc3339()),
        refunded: p.map_or(0, |p| p.refunded),
    }
}

/// The answer to `POST /orders`: what the placement fixed, nothing that changes later.
pub fn created(orders: &Orders, id: &OrderId, state: &OrderState) -> OrderCreated {
    let p = state.placement.as_ref();
    OrderCreated {
        order_id: id.to_string(),
        // A total of 0 is paid when the placement is answered.
        status: match p.map_or(0, |p| p.total) {
            0 => "paid",
            _ => "awaiting_payment",
        },
        items: items(state),
        subtotal: p.map_or(0, |p| p.subtotal),
        discount: p.map_or(0, |p| p.discount),
        total: p.map_or(0, |p| p.total),
        currency: p.map(|p| p.currency.clone()).unwrap_or_default(),
        expires_at: p.map(|p| p.expires_at.to_rfc3339()).unwrap_or_default(),
        payment: payment(orders, id, state, true),
    }
}

/// The detail of an order, its shipping address opened (`null` once its person is erased).
pub async fn detail(
    orders: &Orders,
    id: &OrderId,
    state: &OrderState,
) -> Result<OrderDetail, OrderFailure> {
    let p = state.placement.as_ref();
    let shipping_address = match p {
        Some(p) => orders.address_of(p).await?,
        None => None,
    };
    Ok(OrderDetail {
        order_id: id.to_string(),
        status: state.status.map_or("pending", |s| s.as_str()),
        items: items(state),
        coupon_id: p
            .and_then(|p| p.coupon.as_ref())
            .map(|c| c.coupon_id.to_string()),
        subtotal: p.map_or(0, |p| p.subtotal),
        discount: p.map_or(0, |p| p.discount),
        total: p.map_or(0, |p| p.total),
        currency: p.map(|p| p.currency.clone()).unwrap_or_default(),
        created_at: p.map(|p| p.created_at.to_rfc3339()).unwrap_or_default(),
        expires_at: state.expiry().map(|t| t.to_rfc3339()),
        shipping_address,
        status_history: state
            .history
            .iter()
            .filter(|(s, _)| s.visible())
            .map(|(s, at)| StatusChange {
                status: s.as_str(),
                at: at.to_rfc3339(),
            })
            .collect(),
        payment: payment(orders, id, state, false),
        shipment: state.shipments.last().map(shipment_body),
        returns: state
            .returns
            .iter()
            .map(|r| ReturnBody {
                kind: match r.kind {
                    crate::domain::order::ReturnKind::Return => "return",
                    crate::domain::order::ReturnKind::Exchange => "exchange",
                },
                reason: r.reason.clone(),
                items: r
                    .items
                    .iter()
                    .map(|i| ReturnLine {
                        sku_id: i.sku_id.to_string(),
                        quantity: i.quantity,
                    })
                    .collect(),
                refund_amount: r.refund_amount,
                requested_at: r.at.to_rfc3339(),
            })
            .collect(),
    })
}
