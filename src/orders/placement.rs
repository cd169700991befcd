//! Placing an order: the order id from the user and the `Idempotency-Key` (a replay reaches the
//! same order entity, which recognises the request by its fingerprint), the lines at today's
//! catalog prices (from the request or the cart), the coupon checked against the wallet and
//! priced by `domain::pricing::totals`, and the shipping address sealed (personal data).

use crate::actors::Entities;
use crate::actors::cart::Cart;
use crate::actors::user::User;
use crate::auth::accounts::Accounts;
use crate::catalog::Catalog;
use crate::domain::cart::CartCommand;
use crate::domain::ids::{CouponId, OrderId, SkuId, UserId};
use crate::domain::order::{MAX_LINES, MAX_QTY, OrderCoupon, OrderLine, Placement};
use crate::domain::pricing::{self, Line};
use crate::domain::sealed::Sealed;
use crate::domain::time::Clock;
use crate::domain::user::UserCommand;
use crate::domain::user::wallet::CouponStatus;
use crate::orders::failure::OrderFailure;
use crate::shopping::Shopping;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Where an order goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShippingAddress {
    pub name: String,
    pub phone: String,
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
}

impl ShippingAddress {
    fn check(&self) -> Result<(), OrderFailure> {
        let fields = [
            ("name", self.name.as_str(), 100),
            ("phone", self.phone.as_str(), 30),
            ("address", self.address.as_str(), 200),
            (
                "postal_code",
                self.postal_code.as_deref().unwrap_or("-"),
                20,
            ),
        ];
        for (field, value, max) in fields {
            let n = value.trim().chars().count();
            if n == 0 || n > max || value.chars().any(char::is_control) {
                return Err(OrderFailure::Invalid(
                    "invalid_field",
                    format!("shipping_address.{field} must be 1 to {max} characters"),
                ));
            }
        }
        Ok(())
    }
}

pub struct PlaceOrder {
    pub user: UserId,
    pub idempotency_key: String,
    /// Digest of the request body.
    pub fingerprint: String,
    pub items: Option<Vec<(SkuId, u32)>>,
    pub coupon_id: Option<CouponId>,
    pub shipping_address: Option<ShippingAddress>,
}

/// A purchase in a drop, as the order it becomes.
pub struct DropOrder {
    pub user: UserId,
    pub fingerprint: String,
    pub drop_id: crate::domain::ids::DropId,
    pub sku: SkuId,
    pub quantity: u32,
    pub price: i64,
    pub shipping_address: Option<ShippingAddress>,
}

/// The order a user's idempotency key names: the same key always reaches the same order.
pub fn order_id_for(user: &UserId, key: &str) -> OrderId {
    let digest = Sha256::digest(format!("{user}\n{key}").as_bytes());
    OrderId::parse(format!("o{}", crate::auth::tokens::hex(&digest[..12])))
        .expect("hex is a valid id")
}

/// A stable digest of a JSON body (keys sorted by serde_json's map).
pub fn fingerprint(body: &serde_json::Value) -> String {
    crate::auth::tokens::hex(&Sha256::digest(body.to_string().as_bytes()))
}

/// A request body as its fingerprint reads it: parsed, with every number that has a zero
/// fraction as an integer (`1.0` and `1` are one request, as the edge's `ApiJson` reads
/// them). `Null` for bytes that are not JSON (the edge has refused those already).
pub fn canonical_body(raw: &[u8]) -> serde_json::Value {
    let mut value = serde_json::from_slice(raw).unwrap_or(serde_json::Value::Null);
    whole_numbers(&mut value);
    value
}

/// Rewrites every number of `v` that has a zero fraction (`2.0`, `1e3`) as an integer; true
/// when one was.
pub fn whole_numbers(v: &mut serde_json::Value) -> bool {
    match v {
        serde_json::Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            let whole = f.fract() == 0.0 && f.abs() < 9.0e15;
            if whole {
                // Exact: |f| < 2^53.
                *v = serde_json::Value::from(f as i64);
            }
            whole
        }
        serde_json::Value::Array(items) => items
            .iter_mut()
            .map(whole_numbers)
            .fold(false, |a, b| a | b),
        serde_json::Value::Object(map) => map
            .values_mut()
            .map(whole_numbers)
            .fold(false, |a, b| a | b),
        _ => false,
    }
}

/// Builds what orders are placed with: it reads the catalog, carts, wallets and profiles and
/// seals addresses, and changes nothing.
pub struct Placements {
    pub(super) users: Entities<User>,
    pub(super) carts: Entities<Cart>,
    pub(super) catalog: Catalog,
    pub(super) shopping: Shopping,
    pub(super) accounts: Arc<Accounts>,
    /// An unpaid order expires after this.
    pub(super) ttl: Duration,
    /// The store currency.
    pub(super) currency: String,
    pub(super) clock: Arc<dyn Clock>,
}

impl Placements {
    /// The placement of `req`: its lines (from the request, or the cart) at today's catalog
    /// prices, the coupon (from the request, or the cart) priced, the address (from the
    /// request, or the profile) checked and sealed.
    pub async fn build(&self, req: &PlaceOrder) -> Result<Placement, OrderFailure> {
        let cart = match &req.items {
            None => Some(self.carts.ask(&req.user, CartCommand::Get).await?),
            Some(_) => None,
        };
        let wanted: Vec<(SkuId, u32)> = match (&req.items, &cart) {
            (Some(items), _) => merge(items)?,
            (None, Some(cart)) => cart
                .lines
                .iter()
                .map(|(sku, l)| (sku.clone(), l.quantity))
                .collect(),
            (None, None) => vec![],
        };
        if wanted.is_empty() {
            return Err(OrderFailure::Invalid(
                "empty_order",
                "the order has no items".into(),
            ));
        }
        let mut lines = Vec::with_capacity(wanted.len());
        let mut categories = Vec::with_capacity(wanted.len());
        for (sku, quantity) in wanted {
            let (product_id, summary) = self
                .catalog
                .index
                .owner_of(&sku)
                .and_then(|p| self.catalog.index.get(&p).map(|s| (p, s)))
                .ok_or(OrderFailure::NotFound("sku"))?;
            let spec = summary
                .product
                .skus
                .iter()
                .find(|s| s.sku_id == sku)
                .ok_or(OrderFailure::NotFound("sku"))?;
            categories.push(summary.product.category.clone());
            lines.push(OrderLine {
                sku_id: sku,
                product_id,
                name: summary.product.name.clone(),
                unit_price: spec.price,
                quantity,
                line_total: spec.price * i64::from(quantity),
                discount: 0,
            });
        }
        let coupon_id = req
            .coupon_id
            .clone()
            .or_else(|| cart.as_ref()?.coupon.as_ref().map(|c| c.coupon_id.clone()));
        let terms = match &coupon_id {
            Some(c) => Some(self.coupon_terms(&req.user, c).await?),
            None => None,
        };
        let priced: Vec<Line<'_>> = lines
            .iter()
            .zip(&categories)
            .map(|(l, category)| Line {
                product_id: &l.product_id,
                category,
                unit_price: l.unit_price,
                quantity: l.quantity,
            })
            .collect();
        let now = self.clock.now();
        let (totals, refusal) = pricing::totals(&priced, terms.as_ref(), now);
        if let Some(why) = refusal {
            return Err(OrderFailure::CouponNotApplicable(why.code()));
        }
        if let Some(terms) = &terms {
            let shares = pricing::line_discounts(&priced, &terms.scope, totals.discount);
            for (line, share) in lines.iter_mut().zip(shares) {
                line.discount = share;
            }
        }
        let address = match &req.shipping_address {
            Some(a) => a.clone(),
            None => self.profile_address(&req.user).await?,
        };
        address.check()?;
        Ok(Placement {
            user_id: req.user.clone(),
            fingerprint: req.fingerprint.clone(),
            coupon: coupon_id.map(|coupon_id| OrderCoupon {
                coupon_id,
                discount: totals.discount,
            }),
            lines,
            subtotal: totals.subtotal,
            discount: totals.discount,
            total: totals.total,
            currency: self.currency.clone(),
            shipping_address: self.seal_address(&req.user, &address).await?,
            from_cart: req.items.is_none(),
            drop_id: None,
            created_at: now,
            expires_at: now.plus(self.ttl),
        })
    }

    /// The order a drop purchase becomes: one line at the drop's price. Without an address in
    /// the request, the order ships to the profile's address (read when the carrier is booked,
    /// so buying in a drop needs no address lookup).
    pub async fn for_drop(&self, req: DropOrder) -> Result<Placement, OrderFailure> {
        let (product_id, summary) = self
            .catalog
            .index
            .owner_of(&req.sku)
            .and_then(|p| self.catalog.index.get(&p).map(|s| (p, s)))
            .ok_or(OrderFailure::NotFound("sku"))?;
        // Sealed for its person; without one, nothing (empty) is kept.
        let shipping_address = match &req.shipping_address {
            Some(a) => {
                a.check()?;
                self.seal_address(&req.user, a).await?
            }
            None => Sealed(Vec::new()),
        };
        let total = req.price * i64::from(req.quantity);
        let now = self.clock.now();
        Ok(Placement {
            user_id: req.user,
            fingerprint: req.fingerprint,
            lines: vec![OrderLine {
                sku_id: req.sku,
                product_id,
                name: summary.product.name.clone(),
                unit_price: req.price,
                quantity: req.quantity,
                line_total: total,
                discount: 0,
            }],
            coupon: None,
            subtotal: total,
            discount: 0,
            total,
            currency: self.currency.clone(),
            shipping_address,
            from_cart: false,
            drop_id: Some(req.drop_id),
            created_at: now,
            expires_at: now.plus(self.ttl),
        })
    }

    /// The terms of a coupon the user holds, unused.
    async fn coupon_terms(
        &self,
        user: &UserId,
        coupon_id: &CouponId,
    ) -> Result<crate::domain::pricing::CouponTerms, OrderFailure> {
        let account = self.users.ask(user, UserCommand::Get).await?;
        let owned = account
            .state
            .wallet
            .get(coupon_id)
            .ok_or(OrderFailure::CouponNotApplicable("not_in_wallet"))?;
        match owned.status {
            CouponStatus::Issued => {}
            CouponStatus::Reserved { .. } => {
                return Err(OrderFailure::CouponNotApplicable("reserved"));
            }
            CouponStatus::Used { .. } => return Err(OrderFailure::CouponNotApplicable("used")),
        }
        let view = self
            .shopping
            .campaigns
            .view(&owned.campaign_id)
            .ok_or(OrderFailure::NotFound("coupon campaign"))?;
        Ok(view.campaign.terms)
    }

    /// The profile's name, phone and address, when the order gives none.
    pub async fn profile_address(&self, user: &UserId) -> Result<ShippingAddress, OrderFailure> {
        let account = self.users.ask(user, UserCommand::Get).await?;
        let profile = &account.state.profile;
        let open = |field| self.accounts.vault.open_field(user, field);
        match (
            open(&profile.name).await?,
            open(&profile.phone).await?,
            open(&profile.address).await?,
        ) {
            (Some(name), Some(phone), Some(address)) => Ok(ShippingAddress {
                name,
                phone,
                address,
                postal_code: None,
            }),
            _ => Err(OrderFailure::Invalid(
                "shipping_address_required",
                "shipping_address is required: the profile has no name, phone and address".into(),
            )),
        }
    }

    /// The shipping address of a placed order, opened; `None` when it has none or its
    /// person was erased.
    pub async fn address_of(
        &self,
        placement: &Placement,
    ) -> Result<Option<ShippingAddress>, OrderFailure> {
        let (person, sealed) = (&placement.user_id, &placement.shipping_address);
        let text = self.accounts.vault.open(person, sealed).await?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// An address sealed for its person.
    async fn seal_address(
        &self,
        person: &UserId,
        address: &ShippingAddress,
    ) -> Result<Sealed, OrderFailure> {
        let text = serde_json::to_string(address).unwrap_or_default();
        Ok(self.accounts.vault.seal(person, &text).await?)
    }
}

/// Lines of a request, one per SKU (quantities of a repeated SKU add up), within the limits.
fn merge(items: &[(SkuId, u32)]) -> Result<Vec<(SkuId, u32)>, OrderFailure> {
    let mut merged: BTreeMap<SkuId, u32> = BTreeMap::new();
    for (sku, qty) in items {
        let q = merged.entry(sku.clone()).or_default();
        *q = q.saturating_add(*qty);
    }
    if merged.len() > MAX_LINES {
        return Err(OrderFailure::Invalid(
            "too_many_lines",
            format!("an order holds at most {MAX_LINES} lines"),
        ));
    }
    if merged.values().any(|q| *q == 0 || *q > MAX_QTY) {
        return Err(OrderFailure::Invalid(
            "invalid_quantity",
            format!("a line holds 1 to {MAX_QTY} units"),
        ));
    }
    Ok(merged.into_iter().collect())
}
