//! What each order route means in terms of the saga: the command, the steps driven, and how the
//! order's resulting state answers the caller (a rejected reservation is a conflict, a
//! confirmation still unknown is "try again", a decline is a decline).

use crate::actors::AskError;
use crate::domain::ids::{OrderId, UserId};
use crate::domain::order::{
    OrderCommand, OrderError, OrderState, OrderStatus, PaymentStatus, Requester, ReturnItem,
    ReturnKind, ShipmentStatus,
};
use crate::domain::time::Timestamp;
use crate::integrations::payments::GatewayError;
use crate::orders::placement::{PlaceOrder, order_id_for};
use crate::orders::{OrderFailure, Orders};

impl Orders {
    /// Places the order (or finds the one this key placed) and reserves it.
    async fn place(&self, req: PlaceOrder) -> Result<(OrderId, OrderState), OrderFailure> {
        let id = order_id_for(&req.user, &req.idempotency_key);
        match self.ask(&id, OrderCommand::Get).await {
            Ok(existing) => {
                let p = existing.placement.as_ref();
                if p.is_some_and(|p| p.fingerprint != req.fingerprint || p.user_id != req.user) {
                    return Err(OrderError::KeyReused.into());
                }
                return Ok((id.clone(), self.drive(&id).await?));
            }
            Err(AskError::Rejected(OrderError::NotFound)) => {}
            Err(e) => return Err(e.into()),
        }
        let placement = self.placements.build(&req).await?;
        let state = self
            .command(&id, OrderCommand::Place(Box::new(placement)))
            .await?;
        Ok((id, state))
    }

    /// Places and reserves an order; a shortage or a coupon taken meanwhile refuses it.
    pub async fn place_order(
        &self,
        req: PlaceOrder,
    ) -> Result<(OrderId, OrderState), OrderFailure> {
        let (id, state) = self.place(req).await?;
        match state.status {
            Some(OrderStatus::Rejected) if state.coupon_unavailable => {
                Err(OrderFailure::CouponNotApplicable("reserved"))
            }
            Some(OrderStatus::Rejected) => Err(OrderFailure::InsufficientStock {
                skus: state.unavailable.iter().map(ToString::to_string).collect(),
            }),
            Some(OrderStatus::Pending) => Err(OrderFailure::Pending(
                "order_pending",
                "the stock is still being reserved; retry with the same Idempotency-Key",
            )),
            _ => Ok((id, state)),
        }
    }

    /// Confirms the payment with the gateway and, once approved, settles the order.
    pub async fn pay(
        &self,
        by: Requester,
        id: &OrderId,
        payment_key: String,
        amount: i64,
    ) -> Result<OrderState, OrderFailure> {
        let request = OrderCommand::RequestPayment {
            by,
            payment_key,
            amount,
        };
        match self.ask(id, request).await {
            Err(AskError::Rejected(e @ OrderError::AmountMismatch { .. })) => {
                // The order failed with the refusal: give its stock and coupon back now.
                self.drive(id).await?;
                return Err(e.into());
            }
            other => other?,
        };
        let state = self.drive(id).await?;
        match state.payment.as_ref().map(|p| (p.status, p.reason.clone())) {
            Some((PaymentStatus::Approved, _)) => Ok(state),
            Some((PaymentStatus::Declined, reason)) => Err(OrderFailure::PaymentDeclined {
                reason: reason.unwrap_or_default(),
            }),
            _ => Err(OrderFailure::Pending(
                "payment_pending",
                "the gateway has not confirmed the payment yet; the engine keeps asking",
            )),
        }
    }

    /// Cancels the order; a booked shipment is called off first, and the refund waits for
    /// that. The cancelled order.
    ///
    /// Errors: `409 order_not_cancellable` once shipped or delivered, and when the carrier
    /// refuses the call-off having picked the parcel up (the order ships after all);
    /// `409 payment_in_progress` while a confirmation is in flight.
    pub async fn cancel(&self, by: Requester, id: &OrderId) -> Result<OrderState, OrderFailure> {
        let state = self.command(id, OrderCommand::Cancel { by }).await?;
        if state.status != Some(OrderStatus::Cancelled) {
            // The carrier had picked the parcel up: the cancellation was withdrawn.
            return Err(OrderError::NotCancellable.into());
        }
        Ok(state)
    }

    /// Cancels every order of `user` not yet handed to the carrier (awaiting payment, paid,
    /// preparing), as `user`: a paid one is refunded. For an account about to be erased,
    /// whose orders could not ship once its address no longer opens; an order the carrier
    /// has is delivered. Drop orders promised to `user` are written first, so they are listed.
    /// How many were cancelled.
    ///
    /// Errors: `409 payment_in_progress` when an order's payment is being confirmed (every
    /// other order is cancelled all the same; a retry finishes that one); the store's and the
    /// runtime's.
    pub async fn cancel_unshipped(&self, user: &UserId) -> Result<usize, OrderFailure> {
        self.write_promised_of(user).await?;
        let by = Requester {
            user_id: user.clone(),
            admin: false,
        };
        let mut open = Vec::new();
        let mut cursor = None;
        loop {
            let listing = crate::orders::history::Listing::User(user);
            let (page, next) = self.list(listing, cursor.as_deref(), 100).await?;
            open.extend(page.into_iter().filter_map(|(id, view)| {
                matches!(
                    view.status,
                    OrderStatus::AwaitingPayment | OrderStatus::Paid | OrderStatus::Preparing
                )
                .then_some(id)
            }));
            match next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        let mut cancelled = 0;
        let mut confirming = None;
        for id in open {
            match self.cancel(by.clone(), &id).await {
                Ok(_) => cancelled += 1,
                // Shipped, expired or failed meanwhile: nothing to cancel.
                Err(OrderFailure::Order(OrderError::NotCancellable | OrderError::NotFound)) => {}
                Err(e @ OrderFailure::Order(OrderError::PaymentInProgress)) => confirming = Some(e),
                Err(e) => return Err(e),
            }
        }
        match confirming {
            Some(e) => Err(e),
            None => Ok(cancelled),
        }
    }

    /// Books the carrier; the order with its shipment.
    ///
    /// Errors: `409 shipping_address_required` when the order has no address of its own (a
    /// drop purchase without one) and its buyer's profile has none, or the buyer was erased;
    /// `409 order_not_shippable` when the order is not paid, or was cancelled while the
    /// booking was asked; `503 carrier_unavailable` while the booking is retried.
    pub async fn ship(&self, id: &OrderId) -> Result<OrderState, OrderFailure> {
        let before = self.ask(id, OrderCommand::Get).await?;
        if before.status == Some(OrderStatus::Paid)
            && let Some(p) = &before.placement
            && self.placements.address_of(p).await?.is_none()
            && let Err(why) = self.placements.profile_address(&p.user_id).await
        {
            return Err(match why {
                OrderFailure::Invalid(code, detail) => OrderFailure::Conflict(code, detail),
                OrderFailure::NotFound("account") => OrderFailure::Conflict(
                    "shipping_address_required",
                    "the order has no shipping address and its buyer's account is erased".into(),
                ),
                other => other,
            });
        }
        let state = self.command(id, OrderCommand::Ship).await?;
        if state.shipments.is_empty() {
            if !matches!(
                state.status,
                Some(OrderStatus::Paid | OrderStatus::Preparing)
            ) {
                return Err(OrderError::NotShippable.into());
            }
            return Err(OrderFailure::Pending(
                "carrier_unavailable",
                "the carrier could not be reached; the booking is retried",
            ));
        }
        Ok(state)
    }

    pub async fn request_return(
        &self,
        by: Requester,
        id: &OrderId,
        kind: ReturnKind,
        reason: String,
        items: Vec<ReturnItem>,
        key: Option<(String, String)>,
    ) -> Result<OrderState, OrderFailure> {
        let (key, fingerprint) = key.unzip();
        let request = OrderCommand::RequestReturn {
            by,
            kind,
            reason,
            items,
            key,
            fingerprint,
        };
        self.command(id, request).await
    }

    /// The carrier says where a shipment is.
    pub async fn track(
        &self,
        id: &OrderId,
        tracking_number: String,
        status: ShipmentStatus,
        at: Timestamp,
    ) -> Result<OrderState, OrderFailure> {
        let track = OrderCommand::TrackShipment {
            tracking_number,
            status,
            at,
        };
        self.command(id, track).await
    }

    /// The gateway's webhook: a payment's status changed. The body only names the payment: its
    /// status (and amount, for a capture) is read from the gateway itself, so a webhook that
    /// did not come from it (a leaked or default secret) or a stale one settles nothing the
    /// gateway does not say. The webhook's failure reason is taken when the gateway agrees on
    /// the status.
    ///
    /// Errors: `404` for an order the engine does not have; `503 gateway_unavailable` when the
    /// gateway cannot be asked (it sends the webhook again); the order's, as for any command.
    pub async fn payment_event(
        &self,
        id: &OrderId,
        payment_key: String,
        status: &str,
        failure: Option<String>,
    ) -> Result<(), OrderFailure> {
        let state = self.book.ask(id, OrderCommand::Get).await?;
        let paid = match self.saga.gateway.get(&payment_key).await {
            Ok(paid) if paid.order_id == id.as_str() => paid,
            // Not a payment of this order, or none at all: nothing to settle.
            Ok(_) | Err(GatewayError::NotFound) => return Ok(()),
            Err(e) => {
                tracing::warn!(order_id = %id, error = %e, "the gateway could not be asked about a webhook's payment");
                return Err(OrderFailure::Pending(
                    "gateway_unavailable",
                    "the gateway could not be asked about the payment; send the webhook again",
                ));
            }
        };
        let failure = failure.filter(|_| paid.status == status);
        let result = match paid.status.as_str() {
            "DONE" => {
                let Some(amount) = state.payment.as_ref().map(|p| p.amount) else {
                    return Ok(()); // no payment the engine requested
                };
                self.saga.verify(&paid, id.as_str(), amount)
            }
            // The gateway's reason, as its confirmation answer gives it.
            "ABORTED" | "EXPIRED" => Err(failure.unwrap_or_else(|| paid.status.to_lowercase())),
            // Ours change nothing; one made at the gateway cancels or refunds the order.
            "CANCELED" => {
                let cancelled = OrderCommand::CancelledAtGateway { payment_key };
                self.command(id, cancelled).await?;
                return Ok(());
            }
            _ => return Ok(()), // not final (READY), or partial cancellations: our refunds
        };
        let settle = OrderCommand::SettlePayment {
            payment_key,
            result,
        };
        match self.command(id, settle).await {
            Ok(_) | Err(OrderFailure::Order(OrderError::NotPayable)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Sends a dead letter back to the outbox and drives it.
    pub async fn retry_dead_letter(
        &self,
        id: &OrderId,
        effect: u32,
    ) -> Result<OrderState, OrderFailure> {
        self.command(id, OrderCommand::Revive { effect }).await
    }
}
