//! Shopping flows over several entities: the cart (prices and names come from the catalog
//! index, stock from the SKU views — no mailbox but the cart's own), coupon campaigns and
//! claims (first-come in the campaign actor, then into the user's wallet), the wallet and the
//! wishlist.

mod deliveries;

use crate::actors::campaign::CampaignEntity;
use crate::actors::cart::Cart;
use crate::actors::reminders::DueHandler;
use crate::actors::user::User;
use crate::actors::watchers::ProductWatchers;
use crate::actors::{AskError, Entities, Runtime, RuntimeError};
use crate::catalog::Catalog;
use crate::domain::cart::{
    AppliedCoupon, CartCommand, CartError, CartLine, CartState, CurrentPrice,
};
use crate::domain::coupon::{
    Campaign, CampaignCommand, CampaignView, CouponError, DELIVERY_GRACE_MS,
};
use crate::domain::ids::{CampaignId, CouponId, ProductId, SkuId, UserId};
use crate::domain::pricing::{NotApplicable, Scope};
use crate::domain::text;
use crate::domain::time::{Clock, Timestamp};
use crate::domain::user::wallet::{CouponStatus, Wallet, WalletCommand, WalletCoupon};
use crate::domain::user::wishlist::WishlistCommand;
use crate::domain::user::{UserCommand, UserError};
use crate::domain::watchers::{WatchCommand, WatchError};
use dashmap::DashMap;
use deliveries::Confirmations;
use futures_util::future::join_all;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Each SKU's options (`{"color": "navy", "size": "M"}`), by SKU.
pub type SkuOptions = BTreeMap<SkuId, BTreeMap<String, String>>;

/// Owed coupons the reminder delivers at once, and per confirmation (the reminder fires again
/// while a long run is under way, so a run confirms as it goes).
const AT_ONCE: usize = 16;
const CHUNK: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum ShoppingError {
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error(transparent)]
    Cart(#[from] CartError),
    #[error(transparent)]
    Coupon(#[from] CouponError),
    #[error(transparent)]
    User(#[from] UserError),
    #[error("the coupon does not apply: {0}")]
    NotApplicable(&'static str),
    #[error("a campaign already uses this code")]
    CodeTaken,
    #[error(transparent)]
    Watch(#[from] WatchError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

impl<R: Into<ShoppingError>> From<AskError<R>> for ShoppingError {
    fn from(e: AskError<R>) -> Self {
        e.into_failure()
    }
}

/// A coupon in a wallet as its owner sees it.
#[derive(Debug, Clone)]
pub struct OwnedCoupon {
    pub coupon_id: CouponId,
    pub coupon: WalletCoupon,
    pub campaign: Option<CampaignView>,
    /// `issued`, `reserved`, `used` or `expired`.
    pub status: &'static str,
}

#[derive(Clone)]
pub struct Shopping {
    pub carts: Entities<Cart>,
    pub campaigns: Entities<CampaignEntity>,
    /// Who wishlisted each product (for "drop starting" notifications).
    pub watchers: Entities<ProductWatchers>,
    /// Claim code -> campaign of the campaigns created before a code decided its campaign's
    /// id (see [`campaign_of`]), from their views: the earliest of each code.
    legacy_codes: Arc<DashMap<String, CampaignId>>,
    catalog: Catalog,
    users: Entities<User>,
    clock: Arc<dyn Clock>,
    confirmations: Confirmations,
}

impl Shopping {
    pub async fn start(
        rt: Runtime,
        catalog: Catalog,
        users: Entities<User>,
    ) -> anyhow::Result<Self> {
        let clock = rt.clock.clone();
        let shutdown = rt.shutdown.clone();
        let carts = Entities::<Cart>::start(rt.clone()).await?;
        let campaigns = Entities::<CampaignEntity>::start(rt.clone()).await?;
        let confirmations = Confirmations::start(campaigns.clone(), shutdown);
        let watchers = Entities::<ProductWatchers>::start(rt).await?;
        let legacy_codes = Arc::new(DashMap::new());
        let remember = |codes: &DashMap<String, CampaignId>, id: &CampaignId, code: &str| {
            let code = text::code(code);
            if campaign_of(&code) != *id {
                let mut earliest = codes.entry(code).or_insert_with(|| id.clone());
                if *id < *earliest {
                    *earliest = id.clone();
                }
            }
        };
        for (id, view) in campaigns.views() {
            remember(&legacy_codes, &id, &view.campaign.code);
        }
        let c = legacy_codes.clone();
        campaigns.on_view(move |id, view| remember(&c, id, &view.campaign.code));
        let shopping = Self {
            carts,
            campaigns,
            watchers,
            legacy_codes,
            catalog,
            users,
            clock,
            confirmations,
        };
        let owner = shopping.clone();
        let deliver: DueHandler<CampaignEntity> = Arc::new(move |id| {
            let shopping = owner.clone();
            Box::pin(async move { shopping.deliver_owed(&id).await })
        });
        shopping.campaigns.keep_reminders(None, Some(deliver));
        Ok(shopping)
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub async fn cart(&self, user: &UserId) -> Result<CartState, ShoppingError> {
        Ok(self.carts.ask(user, CartCommand::Get).await?)
    }

    /// Sets a line at today's catalog price, checked against the SKU's available stock.
    pub async fn set_item(
        &self,
        user: &UserId,
        sku: &SkuId,
        quantity: u32,
    ) -> Result<CartState, ShoppingError> {
        let product_id = self
            .catalog
            .index
            .owner_of(sku)
            .ok_or(ShoppingError::NotFound("sku"))?;
        let product = self
            .catalog
            .index
            .get(&product_id)
            .ok_or(ShoppingError::NotFound("sku"))?
            .product;
        let spec = product
            .skus
            .iter()
            .find(|s| &s.sku_id == sku)
            .ok_or(ShoppingError::NotFound("sku"))?;
        let available = self.catalog.skus.view(sku).map_or(0, |v| v.available);
        let line = CartLine {
            product_id,
            name: product.name.clone(),
            category: product.category.clone(),
            unit_price: spec.price,
            quantity,
        };
        let set = CartCommand::SetLine {
            sku_id: sku.clone(),
            line,
            available,
        };
        Ok(self.carts.ask(user, set).await?)
    }

    /// `cart` at today's catalog prices and names: what ordering it charges (orders are priced
    /// from the catalog, `Placements::build`), so the cart never shows one total and the
    /// order another. A line whose SKU left the catalog keeps what it had.
    pub fn at_current_prices(&self, cart: CartState) -> CartState {
        self.priced(cart).0
    }

    /// [`Self::at_current_prices`], with the options (`{"color": "navy", "size": "M"}`) that
    /// tell each line's SKU from its product's others, from the same catalog read; a SKU no
    /// longer in the catalog has none.
    pub fn priced(&self, mut cart: CartState) -> (CartState, SkuOptions) {
        let mut options = BTreeMap::new();
        for (sku, line) in cart.lines.iter_mut() {
            let Some(summary) = self.catalog.index.get(&line.product_id) else {
                continue;
            };
            if let Some(spec) = summary.product.skus.iter().find(|s| &s.sku_id == sku) {
                line.unit_price = spec.price;
                line.name = summary.product.name.clone();
                line.category = summary.product.category.clone();
                options.insert(sku.clone(), spec.options.clone());
            }
        }
        (cart, options)
    }

    pub async fn remove_item(
        &self,
        user: &UserId,
        sku: &SkuId,
    ) -> Result<CartState, ShoppingError> {
        Ok(self
            .carts
            .ask(
                user,
                CartCommand::RemoveLine {
                    sku_id: sku.clone(),
                },
            )
            .await?)
    }

    /// Applies a coupon from the user's wallet; it must be issued (not held by an order).
    pub async fn apply_coupon(
        &self,
        user: &UserId,
        coupon_id: &CouponId,
    ) -> Result<CartState, ShoppingError> {
        let account = self.users.ask(user, UserCommand::Get).await?;
        let owned = account
            .state
            .wallet
            .get(coupon_id)
            .ok_or(ShoppingError::NotApplicable("not_in_wallet"))?;
        match owned.status {
            CouponStatus::Issued => {}
            CouponStatus::Reserved { .. } => return Err(ShoppingError::NotApplicable("reserved")),
            CouponStatus::Used { .. } => return Err(ShoppingError::NotApplicable("used")),
        }
        let view = self
            .campaigns
            .view(&owned.campaign_id)
            .ok_or(ShoppingError::NotFound("coupon campaign"))?;
        // Checked at the prices an order would charge, not those the lines were added at.
        let cart = self.carts.ask(user, CartCommand::Get).await?;
        let prices = self
            .at_current_prices(cart)
            .lines
            .into_iter()
            .map(|(sku, line)| {
                let now = CurrentPrice {
                    unit_price: line.unit_price,
                    category: line.category,
                };
                (sku, now)
            })
            .collect();
        let apply = CartCommand::ApplyCoupon {
            coupon: AppliedCoupon {
                coupon_id: coupon_id.clone(),
                terms: view.campaign.terms,
            },
            prices,
        };
        match self.carts.ask(user, apply).await {
            Err(AskError::Rejected(CartError::CouponNotApplicable(why))) => {
                Err(ShoppingError::NotApplicable(why.code()))
            }
            other => Ok(other?),
        }
    }

    pub async fn remove_coupon(&self, user: &UserId) -> Result<CartState, ShoppingError> {
        Ok(self.carts.ask(user, CartCommand::RemoveCoupon).await?)
    }

    pub async fn create_campaign(
        &self,
        campaign: Campaign,
    ) -> Result<(CampaignId, CampaignView), ShoppingError> {
        let mut campaign = campaign;
        campaign.code = text::code(&campaign.code);
        // Compared with products' categories, which are kept in their comparison form.
        if let Scope::Category { category } = &mut campaign.terms.scope {
            *category = crate::domain::catalog::normalise_category(category);
        }
        // A coupon for a product the catalog does not have could never apply.
        if let Scope::Product { product_id } = &campaign.terms.scope
            && self.catalog.index.get(product_id).is_none()
        {
            return Err(ShoppingError::NotFound("product"));
        }
        // The code's own campaign decides: of simultaneous creations with one code, one wins.
        // (A campaign from before code-derived ids never changes its code, so the index of
        // those is only read.)
        if self.legacy_codes.contains_key(&campaign.code) {
            return Err(ShoppingError::CodeTaken);
        }
        let id = campaign_of(&campaign.code);
        let create = CampaignCommand::Create {
            id: id.clone(),
            campaign,
        };
        let reply = match self.campaigns.ask(&id, create).await {
            Err(AskError::Rejected(CouponError::AlreadyExists)) => {
                return Err(ShoppingError::CodeTaken);
            }
            other => other?,
        };
        let view = reply
            .view
            .ok_or(ShoppingError::NotFound("coupon campaign"))?;
        Ok((id, view))
    }

    /// Claims a coupon by code: first come, first served, then into the wallet.
    pub async fn claim(
        &self,
        user: &UserId,
        code: &str,
    ) -> Result<(CouponId, CampaignId, CampaignView), ShoppingError> {
        let code = text::code(code);
        let claim = CampaignCommand::Claim {
            user_id: user.clone(),
        };
        let mut campaign_id = campaign_of(&code);
        let mut asked = self.campaigns.ask(&campaign_id, claim.clone()).await;
        if let Err(AskError::Rejected(CouponError::NotFound)) = asked {
            let legacy = self.legacy_codes.get(&code).map(|c| c.clone());
            campaign_id = legacy.ok_or(ShoppingError::NotFound("coupon code"))?;
            asked = self.campaigns.ask(&campaign_id, claim).await;
        }
        let reply = match asked {
            Ok(reply) => reply,
            Err(AskError::Rejected(CouponError::AlreadyClaimed { coupons })) => {
                // A claim whose wallet step was lost (crash) heals here.
                for coupon_id in &coupons {
                    self.add_to_wallet(user, coupon_id, &campaign_id).await?;
                    self.confirmations.push(&campaign_id, coupon_id.clone());
                }
                return Err(CouponError::AlreadyClaimed { coupons }.into());
            }
            Err(e) => return Err(e.into()),
        };
        let coupon_id = reply.issued.ok_or(ShoppingError::NotFound("coupon"))?;
        self.add_to_wallet(user, &coupon_id, &campaign_id).await?;
        self.confirmations.push(&campaign_id, coupon_id.clone());
        let view = reply
            .view
            .ok_or(ShoppingError::NotFound("coupon campaign"))?;
        Ok((coupon_id, campaign_id, view))
    }

    /// Puts into their wallets the coupons a campaign issued at least [`DELIVERY_GRACE_MS`]
    /// ago and never saw confirmed there (a claim cut off between its two steps), then confirms
    /// them, [`CHUNK`] at a time: the campaign's reminder. A coupon whose owner has no account
    /// (erased, or a token without one) has no wallet and is confirmed as it is; a wallet that
    /// cannot be reached now is tried again at the reminder's next firing.
    #[tracing::instrument(skip(self))]
    async fn deliver_owed(&self, campaign_id: &CampaignId) {
        let owed = match self
            .campaigns
            .ask(campaign_id, CampaignCommand::ListOwed)
            .await
        {
            Ok(reply) => reply.owed,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the coupons owed");
                return;
            }
        };
        let due = self.now().millis() - DELIVERY_GRACE_MS;
        let owed: Vec<_> = owed.into_iter().filter(|o| o.2.millis() <= due).collect();
        for chunk in owed.chunks(CHUNK) {
            let mut delivered = Vec::with_capacity(chunk.len());
            for group in chunk.chunks(AT_ONCE) {
                let adds = group
                    .iter()
                    .map(|(coupon_id, user, _)| self.deliver_one(campaign_id, coupon_id, user));
                delivered.extend(join_all(adds).await.into_iter().flatten());
            }
            if delivered.is_empty() {
                continue;
            }
            tracing::info!(coupons = delivered.len(), "owed coupons delivered");
            let confirm = CampaignCommand::ConfirmDelivery {
                coupon_ids: delivered,
            };
            match self.campaigns.ask(campaign_id, confirm).await {
                Ok(_) => {}
                Err(AskError::Rejected(e)) => tracing::warn!(error = %e, "deliveries refused"),
                Err(e) => tracing::warn!(error = %e, "cannot confirm delivered coupons"),
            }
        }
    }

    /// One owed coupon into its wallet; the coupon when it is delivered or has no wallet.
    async fn deliver_one(
        &self,
        campaign_id: &CampaignId,
        coupon_id: &CouponId,
        user: &UserId,
    ) -> Option<CouponId> {
        match self.add_to_wallet(user, coupon_id, campaign_id).await {
            Ok(()) => Some(coupon_id.clone()),
            Err(ShoppingError::User(UserError::NotFound)) => {
                tracing::info!(%coupon_id, "an owed coupon has no wallet");
                Some(coupon_id.clone())
            }
            Err(e) => {
                tracing::warn!(%coupon_id, error = %e, "cannot deliver an owed coupon");
                None
            }
        }
    }

    async fn add_to_wallet(
        &self,
        user: &UserId,
        coupon_id: &CouponId,
        campaign_id: &CampaignId,
    ) -> Result<(), ShoppingError> {
        let add = UserCommand::Wallet(WalletCommand::Add {
            coupon_id: coupon_id.clone(),
            campaign_id: campaign_id.clone(),
        });
        self.users.ask(user, add).await?;
        Ok(())
    }

    /// The user's wallet, by coupon id; [`Shopping::owned`] tells how each coupon stands.
    pub async fn wallet(&self, user: &UserId) -> Result<Wallet, ShoppingError> {
        Ok(self.users.ask(user, UserCommand::Get).await?.state.wallet)
    }

    /// A coupon of a wallet as its owner sees it now: with its campaign, and `expired` once
    /// the campaign has ended.
    pub fn owned(&self, coupon_id: &CouponId, coupon: &WalletCoupon) -> OwnedCoupon {
        let campaign = self.campaigns.view(&coupon.campaign_id);
        let ended = campaign
            .as_ref()
            .and_then(|c| c.campaign.terms.ends_at)
            .is_some_and(|end| self.now() >= end);
        let status = match coupon.status {
            CouponStatus::Issued if ended => "expired",
            CouponStatus::Issued => "issued",
            CouponStatus::Reserved { .. } => "reserved",
            CouponStatus::Used { .. } => "used",
        };
        OwnedCoupon {
            coupon_id: coupon_id.clone(),
            coupon: coupon.clone(),
            campaign,
            status,
        }
    }

    pub async fn wishlist(&self, user: &UserId) -> Result<Vec<ProductId>, ShoppingError> {
        let account = self.users.ask(user, UserCommand::Get).await?;
        Ok(account.state.wishlist.products().cloned().collect())
    }

    pub async fn wish(
        &self,
        user: &UserId,
        product: &ProductId,
        add: bool,
    ) -> Result<Vec<ProductId>, ShoppingError> {
        let (command, watch) = if add {
            if self.catalog.index.get(product).is_none() {
                return Err(ShoppingError::NotFound("product"));
            }
            (
                WishlistCommand::Add(product.clone()),
                WatchCommand::Watch(user.clone()),
            )
        } else {
            (
                WishlistCommand::Remove(product.clone()),
                WatchCommand::Unwatch(user.clone()),
            )
        };
        let account = self.users.ask(user, UserCommand::Wishlist(command)).await?;
        // Then the product's watchers (both idempotent: a failed second step is repaired by
        // the client's retry).
        self.watchers.ask(product, watch).await?;
        Ok(account.state.wishlist.products().cloned().collect())
    }
}

/// The refusal reason of a cart coupon that no longer gives anything.
/// The campaign of a claim code (in its [`text::code`] form): its id is derived from the code,
/// so the campaign entity of that id decides whether the code is taken.
pub fn campaign_of(code: &str) -> CampaignId {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(code.as_bytes());
    CampaignId::parse(format!("k{}", crate::auth::tokens::hex(&digest[..16])))
        .expect("hex is a valid id")
}

pub fn refusal_code(why: Option<NotApplicable>) -> Option<&'static str> {
    why.map(NotApplicable::code)
}
