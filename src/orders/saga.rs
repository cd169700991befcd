//! Carrying out an order's pending steps. [`Saga::drive`] runs every due step of one order in
//! order, reporting each outcome to the order entity (`Complete`, or `Fail` with backoff); the
//! entity decides what follows. Every step is idempotent where it lands (a SKU knows the
//! orders it holds, a wallet the order holding a coupon, the gateway its payment keys and
//! cancel idempotency keys, the carrier its booking keys), so a step run twice — a retry, or
//! a re-drive after a crash — has the effect of running it once.
//!
//! A confirmation extends the order's holds on their SKUs before the gateway is asked
//! (`capture`), so a hold does not lapse on its SKU's timer while a payment for it may be
//! captured; one already let go fails the payment (`reservation_lapsed`) instead of capturing
//! it.
//!
//! Once a step that settled the order's units on its SKUs (commit, release, restock) is
//! recorded done, those SKUs are told they may forget the order (`ForgetSettled`, batched by
//! `tell`): the order never sends that step again.

use crate::actors::cart::Cart;
use crate::actors::sku::Sku;
use crate::actors::user::User;
use crate::actors::{AskError, Entities};
use crate::auth::accounts::Accounts;
use crate::domain::cart::CartCommand;
use crate::domain::ids::{OrderId, SkuId, UserId};
use crate::domain::inventory::{DropBuyer, Recall, Recorded, SkuCommand, SkuError};
use crate::domain::order::{Action, OrderCommand, OrderState, Outcome, Placement, RetryPolicy};
use crate::domain::time::{Clock, Timestamp};
use crate::domain::user::inbox::Notification;
use crate::domain::user::wallet::{WalletCommand, WalletError};
use crate::domain::user::{UserCommand, UserError, UserState};
use crate::events::EventBus;
use crate::integrations::carrier::{Booking, Carrier, CarrierError};
use crate::integrations::mailer::Mail;
use crate::integrations::payments::PaymentGateway;
use crate::orders::book::OrderBook;
use crate::orders::failure::OrderFailure;
use crate::orders::placement::Placements;
use dashmap::DashMap;
use std::sync::Arc;
use std::time::Duration;

/// The settlement on each SKU that `action`, once recorded done with `outcome`, leaves the
/// order with; `None` for a step that settles nothing on a SKU (a commit that found its stock
/// lost sold nothing).
fn recorded_on_skus(
    state: &OrderState,
    action: &Action,
    outcome: &Outcome,
) -> Option<Vec<(SkuId, Recorded)>> {
    let lines = state.placement.as_ref()?.lines.iter();
    let each = |recorded: Recorded| lines.clone().map(move |l| (l.sku_id.clone(), recorded));
    match (action, outcome) {
        (Action::CommitStock, Outcome::StockLost) => None,
        (Action::CommitStock, _) => Some(each(Recorded::Sold).collect()),
        (Action::ReleaseStock, _) => Some(each(Recorded::Released).collect()),
        (Action::Restock { items, .. }, _) => Some(
            items
                .iter()
                .map(|i| {
                    let returned = i.quantity;
                    (i.sku_id.clone(), Recorded::Returned { returned })
                })
                .collect(),
        ),
        _ => None,
    }
}

/// Where the saga's recorded settlements wait for `tell`.
pub(super) type RecordedNotes = tokio::sync::mpsc::UnboundedReceiver<(SkuId, (OrderId, Recorded))>;

/// Why a step could not be carried out now (it is retried later).
pub(super) type StepError = String;

pub(super) fn step_error<R: std::fmt::Debug>(what: &str, e: AskError<R>) -> StepError {
    format!("{what}: {e:?}")
}

/// Drives orders' steps: one driver per order at a time (a request and the dispatcher may
/// both want to), each step run against the entity or service it lands on.
pub(super) struct Saga {
    pub(super) book: OrderBook,
    pub(super) skus: Entities<Sku>,
    pub(super) users: Entities<User>,
    pub(super) carts: Entities<Cart>,
    /// Personal data (addresses to mail) and the mailers.
    pub(super) accounts: Arc<Accounts>,
    pub(super) gateway: Arc<dyn PaymentGateway>,
    pub(super) carrier: Arc<dyn Carrier>,
    /// Opens shipping addresses (the order's, or the profile's).
    pub(super) placements: Arc<Placements>,
    /// Backoff and dead-lettering of failed steps.
    pub(super) retry: RetryPolicy,
    /// How much longer a SKU holds an order's units than the order itself waits.
    pub(super) reservation_grace: Duration,
    /// Confirmation attempts (time-outs retried) before asking the gateway.
    pub(super) confirm_attempts: u32,
    pub(super) carrier_callback_url: String,
    pub(super) carrier_name: String,
    /// The lock of each order being driven; removed once nobody holds or waits for it.
    pub(super) drivers: DashMap<OrderId, Arc<tokio::sync::Mutex<()>>>,
    /// Where notifications are pushed (`user:{id}`).
    pub(super) bus: EventBus,
    /// Settlements the order has recorded, for their SKUs to forget (see the module doc).
    pub(super) recorded: tokio::sync::mpsc::UnboundedSender<(SkuId, (OrderId, Recorded))>,
    pub(super) clock: Arc<dyn Clock>,
}

impl Saga {
    pub(super) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Runs the order's due steps until none is left (or one fails), then returns its state.
    pub async fn drive(&self, id: &OrderId) -> Result<OrderState, OrderFailure> {
        let lock = self.driver_lock(id);
        let guard = lock.lock().await;
        let result = self.drive_locked(id).await;
        drop(guard);
        drop(lock);
        self.forget_driver(id);
        result
    }

    /// Drives the order unless someone else is driving it (the dispatcher's way).
    pub async fn try_drive(&self, id: &OrderId) {
        let lock = self.driver_lock(id);
        let Ok(guard) = lock.try_lock() else {
            return;
        };
        if let Err(e) = self.drive_locked(id).await {
            tracing::warn!(order_id = %id, error = %e, "re-driving the order failed");
        }
        drop(guard);
        drop(lock);
        self.forget_driver(id);
    }

    fn driver_lock(&self, id: &OrderId) -> Arc<tokio::sync::Mutex<()>> {
        self.drivers.entry(id.clone()).or_default().clone()
    }

    /// Drops the order's lock once no other driver holds or waits for it.
    fn forget_driver(&self, id: &OrderId) {
        self.drivers.remove_if(id, |_, l| Arc::strong_count(l) <= 1);
    }

    async fn drive_locked(&self, id: &OrderId) -> Result<OrderState, OrderFailure> {
        let mut state = self.book.ask(id, OrderCommand::Get).await?;
        loop {
            let now = self.now();
            let due = state
                .effects
                .iter()
                .find(|(_, e)| !e.dead && e.not_before <= now)
                .map(|(effect, e)| (*effect, e.action.clone()));
            let Some((effect, action)) = due else {
                return Ok(state);
            };
            let mut settled = None;
            let report = match self.run(id, &state, effect, &action).await {
                Ok(Step::Done(outcome)) => {
                    settled = recorded_on_skus(&state, &action, &outcome);
                    OrderCommand::Complete { effect, outcome }
                }
                Ok(Step::Payment(result)) => OrderCommand::SettlePayment {
                    payment_key: payment_key(&state),
                    result,
                },
                Ok(Step::Lapsed { captured }) => OrderCommand::PaymentLapsed {
                    payment_key: payment_key(&state),
                    captured,
                },
                Err(error) => {
                    tracing::warn!(order_id = %id, effect, action = action.name(), %error, "order step failed");
                    let fail = OrderCommand::Fail {
                        effect,
                        error,
                        policy: self.retry,
                    };
                    let before = state.effects.get(&effect).map(|e| e.attempts);
                    let after = self.book.ask(id, fail).await?;
                    let made = after.effects.get(&effect).filter(|e| e.dead);
                    // This failure made it one (another driver's does not count again).
                    if made.is_some_and(|e| Some(e.attempts) > before) {
                        // Retried as often as the policy allows: the operator's now.
                        metrics::counter!("emporium_dead_letters_total").increment(1);
                        tracing::error!(order_id = %id, effect, action = action.name(),
                            "order step is a dead letter: it is retried no more until an \
                             operator revives it (POST /api/v1/admin/dead-letters/…/retry)");
                    }
                    // The step waits for its backoff; a later one may not depend on it, but
                    // order matters in a saga: stop here and let the dispatcher retry.
                    return Ok(after);
                }
            };
            state = self.book.ask(id, report).await?;
            for (sku, recorded) in settled.into_iter().flatten() {
                let _ = self.recorded.send((sku, (id.clone(), recorded)));
            }
        }
    }

    async fn run(
        &self,
        id: &OrderId,
        state: &OrderState,
        effect: u32,
        action: &Action,
    ) -> Result<Step, StepError> {
        let placement = state
            .placement
            .as_ref()
            .ok_or_else(|| "the order has no placement".to_owned())?;
        let done = Ok(Step::Done(Outcome::Done));
        match action {
            Action::ReserveStock => self.reserve(id, placement).await.map(Step::Done),
            Action::ReleaseStock => {
                for line in &placement.lines {
                    let release = SkuCommand::Release {
                        order_id: id.clone(),
                    };
                    match self.skus.ask(&line.sku_id, release).await {
                        Ok(_) | Err(AskError::Rejected(_)) => {}
                        Err(e) => return Err(step_error("release stock", e)),
                    }
                }
                self.coupon(id, placement, false).await?;
                done
            }
            Action::CommitStock => {
                for line in &placement.lines {
                    let commit = SkuCommand::Commit {
                        order_id: id.clone(),
                    };
                    match self.skus.ask(&line.sku_id, commit).await {
                        Ok(_) => {}
                        // The hold lapsed before the sale was recorded (its SKU unreachable
                        // for longer than the capture's hold): the units may be another's. An
                        // order not yet on its way is cancelled and refunded; one booked or
                        // out stays a dead letter for the operator (the goods may be with the
                        // buyer).
                        Err(AskError::Rejected(SkuError::ReservationReleased(_))) => {
                            if state.paid_not_booked() {
                                return Ok(Step::Done(Outcome::StockLost));
                            }
                            return Err("commit stock: stock_lost: the hold was let go and the \
                                 order is booked or shipped"
                                .to_owned());
                        }
                        Err(e) => return Err(step_error("commit stock", e)),
                    }
                }
                self.coupon(id, placement, true).await?;
                if placement.from_cart {
                    let skus = placement.lines.iter().map(|l| l.sku_id.clone()).collect();
                    let clear = CartCommand::Clear { skus: Some(skus) };
                    self.carts
                        .ask(&placement.user_id, clear)
                        .await
                        .map_err(|e| step_error("clear the cart", e))?;
                }
                done
            }
            Action::ConfirmPayment => {
                if !self.hold(id, placement).await? {
                    return self.lapsed(id, state).await;
                }
                self.confirm(id, state).await.map(Step::Payment)
            }
            Action::RefundPayment { amount, reason } => {
                let Some(p) = &state.payment else {
                    return done;
                };
                if *amount <= 0 {
                    return done;
                }
                let key = format!("{id}-refund-{effect}");
                match self
                    .gateway
                    .cancel(&p.payment_key, reason, *amount, &key)
                    .await
                {
                    Ok(_) => done,
                    // Refused as more than the gateway holds: part of the payment was
                    // refunded at its console. What it holds goes back, no more.
                    Err(refused) if refused.more_than_held() => {
                        let held = self
                            .gateway
                            .get(&p.payment_key)
                            .await
                            .map_err(|e| format!("{refused}; reading the payment: {e}"))?;
                        match held.held_below(p.amount, *amount) {
                            Some(balance) => Ok(Step::Done(Outcome::HeldOnly { balance })),
                            None => Err(format!(
                                "{refused}; the payment reports {:?} of {} held ({})",
                                held.balance_amount, held.total_amount, held.status
                            )),
                        }
                    }
                    Err(e) => Err(format!("refund: {e}")),
                }
            }
            Action::Restock { items, before } => {
                let drop = placement.drop_id.as_ref().map(|drop_id| DropBuyer {
                    drop_id: drop_id.clone(),
                    user_id: placement.user_id.clone(),
                });
                for item in items {
                    let sold = placement
                        .lines
                        .iter()
                        .filter(|l| l.sku_id == item.sku_id)
                        .map(|l| l.quantity)
                        .sum();
                    let restock = SkuCommand::Restock {
                        order_id: id.clone(),
                        returned: item.quantity,
                        drop: drop.clone(),
                        recall: Some(Recall {
                            sold,
                            before: before.get(&item.sku_id).copied().unwrap_or(0),
                        }),
                    };
                    self.skus
                        .ask(&item.sku_id, restock)
                        .await
                        .map_err(|e| step_error("restock", e))?;
                }
                done
            }
            Action::RestoreCoupon => {
                self.coupon(id, placement, false).await?;
                done
            }
            Action::BookShipment { .. } => self.book(id, placement, effect).await.map(Step::Done),
            Action::CancelShipment { tracking_number } => {
                match self.carrier.cancel(tracking_number).await {
                    Ok(()) => done,
                    Err(CarrierError::AlreadyPickedUp) => Ok(Step::Done(Outcome::ShipmentUnderWay)),
                    Err(e) => Err(format!("cancel the shipment: {e}")),
                }
            }
            Action::Notify {
                kind,
                text,
                amount,
                reason,
            } => {
                let note = Notification {
                    id: format!("{id}-{effect}"),
                    kind: kind.as_str().to_owned(),
                    text: format!("{text} (order {id})"),
                    at: self.now(),
                    order_id: Some(id.to_string()),
                    amount: *amount,
                    currency: amount.map(|_| placement.currency.clone()),
                    reason: reason.clone(),
                    // The order's title, as its summary in the history gives it.
                    name: placement.lines.first().map(|l| l.name.clone()),
                    ..Notification::default()
                };
                let subject = note.text.clone();
                let pushed = crate::events::feeds::notification(&note);
                let account = match self
                    .users
                    .ask(&placement.user_id, UserCommand::Notify(note))
                    .await
                {
                    Ok(account) => account,
                    Err(AskError::Rejected(_)) => return done, // the account is gone
                    Err(e) => return Err(step_error("notify", e)),
                };
                self.bus
                    .announce(&format!("user:{}", placement.user_id), pushed);
                self.mail(&placement.user_id, &account.state, subject)
                    .await?;
                done
            }
        }
    }

    /// Every line on its SKU (all are tried, to name every one short), then the coupon.
    async fn reserve(&self, id: &OrderId, p: &Placement) -> Result<Outcome, StepError> {
        let grace = self.reservation_grace;
        let mut short = Vec::new();
        for line in &p.lines {
            let reserve = SkuCommand::Reserve {
                order_id: id.clone(),
                user_id: p.user_id.clone(),
                qty: line.quantity,
                expires_at: p.expires_at.plus(grace),
            };
            match self.skus.ask(&line.sku_id, reserve).await {
                Ok(_) => {}
                Err(AskError::Rejected(
                    SkuError::InsufficientStock { .. }
                    | SkuError::ReservationReleased(_)
                    | SkuError::InvalidQuantity,
                )) => short.push(line.sku_id.clone()),
                Err(e) => return Err(step_error("reserve stock", e)),
            }
        }
        if !short.is_empty() {
            return Ok(Outcome::OutOfStock { skus: short });
        }
        if let Some(c) = &p.coupon {
            let hold = UserCommand::Wallet(WalletCommand::Reserve {
                coupon_id: c.coupon_id.clone(),
                order_id: id.clone(),
            });
            match self.users.ask(&p.user_id, hold).await {
                Ok(_) => {}
                Err(AskError::Rejected(_)) => return Ok(Outcome::CouponUnavailable),
                Err(e) => return Err(step_error("reserve the coupon", e)),
            }
            // The cart shows no discount its next order would be refused (whether this order
            // was of the cart or of listed items). Best effort: a cart that keeps it shows it
            // as applying until a reorder is refused.
            let taken = CartCommand::CouponTaken {
                coupon_id: c.coupon_id.clone(),
            };
            if let Err(e) = self.carts.ask(&p.user_id, taken).await {
                tracing::warn!(order_id = %id, error = %e, "the cart keeps a taken coupon");
            }
        }
        Ok(Outcome::Reserved)
    }

    /// Marks the order's coupon used, or gives it back; a coupon the order no longer holds
    /// is someone else's business and left alone.
    async fn coupon(&self, id: &OrderId, p: &Placement, used: bool) -> Result<(), StepError> {
        let Some(c) = &p.coupon else {
            return Ok(());
        };
        let (coupon_id, order_id) = (c.coupon_id.clone(), id.clone());
        let command = if used {
            WalletCommand::Use {
                coupon_id,
                order_id,
            }
        } else {
            WalletCommand::Release {
                coupon_id,
                order_id,
            }
        };
        match self
            .users
            .ask(&p.user_id, UserCommand::Wallet(command))
            .await
        {
            Ok(_) => Ok(()),
            Err(AskError::Rejected(UserError::Wallet(
                WalletError::NotAvailable(_) | WalletError::NotInWallet,
            ))) => Ok(()),
            // The account was deleted, its wallet with it: nothing is left to use or restore.
            Err(AskError::Rejected(UserError::NotFound)) => Ok(()),
            Err(e) => Err(step_error("coupon", e)),
        }
    }

    /// Mails a notification to the account's address (erased accounts have none). Part of the
    /// notification step, so a failed send is retried with it: at least once, and twice only
    /// when a crash falls between the send and the step's report.
    async fn mail(
        &self,
        person: &UserId,
        account: &UserState,
        subject: String,
    ) -> Result<(), StepError> {
        let opened = self.accounts.vault.open_field(person, &account.email).await;
        let Some(to) = opened.map_err(|e| format!("open the address: {e}"))? else {
            return Ok(());
        };
        let body = format!("{subject}\n\nSee your orders in the shop.");
        let mail = Mail { to, subject, body };
        for mailer in &self.accounts.mail.0 {
            mailer.send(&mail).await.map_err(|e| format!("mail: {e}"))?;
        }
        Ok(())
    }

    async fn book(&self, id: &OrderId, p: &Placement, effect: u32) -> Result<Outcome, StepError> {
        let opened = self.placements.address_of(p).await;
        let address = match opened.map_err(|e| format!("open the address: {e}"))? {
            Some(a) => a,
            // A drop purchase without an address ships to the profile's.
            None => self
                .placements
                .profile_address(&p.user_id)
                .await
                .map_err(|e| format!("no shipping address: {e}"))?,
        };
        let label = format!(
            "{} / {} / {}{}",
            address.name,
            address.phone,
            address.address,
            address
                .postal_code
                .map(|c| format!(" ({c})"))
                .unwrap_or_default()
        );
        let key = format!("{id}-ship-{effect}");
        let tracking_number = self
            .carrier
            .book(Booking {
                order_id: id.as_str(),
                label: &label,
                callback_url: &self.carrier_callback_url,
                idempotency_key: &key,
            })
            .await
            .map_err(|e| format!("book a shipment: {e}"))?;
        Ok(Outcome::ShipmentBooked {
            carrier: self.carrier_name.clone(),
            tracking_number,
        })
    }
}

/// What a step produced.
pub(super) enum Step {
    Done(Outcome),
    /// The gateway's verdict on the payment.
    Payment(Result<crate::domain::time::Timestamp, String>),
    /// The order's hold was let go before its payment was captured: the payment fails, and
    /// `captured` (when an earlier attempt captured it) is refunded.
    Lapsed {
        captured: Option<crate::domain::time::Timestamp>,
    },
}

/// The key of the order's payment (empty when it has none: the order then refuses the report).
fn payment_key(state: &OrderState) -> String {
    state
        .payment
        .as_ref()
        .map(|p| p.payment_key.clone())
        .unwrap_or_default()
}
