//! A coupon campaign: its terms, and the first-come claims on its limited quantity. One actor
//! per campaign decides every claim, so 10,000 simultaneous claims on 100 coupons issue exactly
//! 100 — the same no-lock path as stock.
//!
//! A coupon reaches its shopper's wallet in a second step (the wallet is the user entity's).
//! Until that step is confirmed the campaign keeps the coupon as owed, with a reminder
//! [`DELIVERY_GRACE_MS`] after its issue: a claim the node stopped between the two steps is
//! finished by the campaign's reminder (the wallet's add is idempotent), not only by the shopper
//! claiming again.

use crate::domain::catalog::MAX_CATEGORY_CHARS;
use crate::domain::ids::{CampaignId, CouponId, UserId};
use crate::domain::pricing::{CouponTerms, DiscountKind, Scope};
use crate::domain::text;
use crate::domain::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// How long after its issue a coupon not yet confirmed in its wallet is delivered by the
/// campaign's reminder: well past a claim's own two steps (an ask's timeout is 5 s).
pub const DELIVERY_GRACE_MS: i64 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Campaign {
    pub name: String,
    /// What shoppers type to claim (upper-case).
    pub code: String,
    pub terms: CouponTerms,
    /// `None`: unlimited.
    pub total_quantity: Option<u32>,
    pub per_user_limit: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignState {
    pub id: Option<CampaignId>,
    pub campaign: Option<Campaign>,
    pub issued: u32,
    pub claims: HashMap<UserId, Vec<CouponId>>,
    /// Coupons issued and not yet confirmed in their wallets, with their owner and issue time
    /// (empty in states written before deliveries were confirmed).
    #[serde(default)]
    pub owed: BTreeMap<CouponId, Owed>,
}

/// A coupon issued and not yet confirmed in its owner's wallet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owed {
    pub user_id: UserId,
    pub issued_at: Timestamp,
}

impl CampaignState {
    /// When the campaign's reminder should deliver what a claim left owed: the oldest owed
    /// coupon's issue plus [`DELIVERY_GRACE_MS`].
    pub fn delivery_due(&self) -> Option<Timestamp> {
        let oldest = self.owed.values().map(|o| o.issued_at).min()?;
        Some(Timestamp(oldest.millis() + DELIVERY_GRACE_MS))
    }
}

/// What read models and carts see of a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignView {
    pub campaign: Campaign,
    pub issued: u32,
}

impl CampaignView {
    pub fn remaining(&self) -> Option<u32> {
        self.campaign
            .total_quantity
            .map(|q| q.saturating_sub(self.issued))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CampaignCommand {
    Create {
        id: CampaignId,
        campaign: Campaign,
    },
    Claim {
        user_id: UserId,
    },
    /// The coupons are in their wallets: they are owed no more (idempotent).
    ConfirmDelivery {
        coupon_ids: Vec<CouponId>,
    },
    /// The coupons owed (its reply's `owed`), for the campaign's reminder to deliver.
    ListOwed,
    Get,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CampaignEvent {
    Created {
        id: CampaignId,
        campaign: Campaign,
    },
    Issued {
        user_id: UserId,
        coupon_id: CouponId,
        /// When; absent in events written before deliveries were confirmed (those coupons are
        /// not kept as owed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<Timestamp>,
    },
    Delivered {
        coupon_ids: Vec<CouponId>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum CouponError {
    #[error("no such coupon campaign")]
    NotFound,
    #[error("the campaign already exists")]
    AlreadyExists,
    #[error("{0}")]
    Invalid(String),
    #[error("all coupons of this campaign are claimed")]
    Exhausted,
    #[error("you already claimed this coupon")]
    AlreadyClaimed { coupons: Vec<CouponId> },
    #[error("the campaign is not running")]
    NotActive,
}

pub const MAX_PER_USER: u32 = 100;
/// The most coupons one campaign issues.
pub const MAX_TOTAL_QUANTITY: u32 = 10_000_000;

/// Every rule a campaign must satisfy.
pub fn validate(c: &Campaign) -> Result<(), CouponError> {
    let bad = |m: &str| Err(CouponError::Invalid(m.to_string()));
    if !text::is_line(&c.name, 1, 100) {
        return bad("name must be 1 to 100 characters, none of them a control character");
    }
    if let Scope::Category { category } = &c.terms.scope
        && !text::is_line(category, 1, MAX_CATEGORY_CHARS)
    {
        return Err(CouponError::Invalid(format!(
            "a category is 1 to {MAX_CATEGORY_CHARS} characters, none of them a control \
             character"
        )));
    }
    let code_ok = (3..=32).contains(&c.code.len())
        && c.code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !code_ok {
        return bad("code must be 3 to 32 letters, digits, '-' or '_'");
    }
    match c.terms.kind {
        DiscountKind::Percent if !(1..=100).contains(&c.terms.value) => {
            return bad("a percent coupon takes 1 to 100");
        }
        DiscountKind::Fixed if c.terms.value <= 0 => {
            return bad("a fixed coupon takes a positive amount");
        }
        _ => {}
    }
    if c.terms.min_order.is_some_and(|m| m < 0) || c.terms.max_discount.is_some_and(|m| m <= 0) {
        return bad("min_order must not be negative and max_discount must be positive");
    }
    if let (Some(s), Some(e)) = (c.terms.starts_at, c.terms.ends_at)
        && e <= s
    {
        return bad("ends_at must be after starts_at");
    }
    if c.per_user_limit == 0 || c.per_user_limit > MAX_PER_USER {
        return bad("per_user_limit must be 1 to 100");
    }
    if c.total_quantity
        .is_some_and(|q| q == 0 || q > MAX_TOTAL_QUANTITY)
    {
        return bad("total_quantity must be 1 to 10000000");
    }
    Ok(())
}

pub fn decide(
    s: &CampaignState,
    cmd: &CampaignCommand,
    now: Timestamp,
) -> Result<Vec<CampaignEvent>, CouponError> {
    let (id, campaign) = match (cmd, &s.id, &s.campaign) {
        (CampaignCommand::Create { .. }, _, Some(_)) => return Err(CouponError::AlreadyExists),
        (CampaignCommand::Create { id, campaign }, _, None) => {
            validate(campaign)?;
            return Ok(vec![CampaignEvent::Created {
                id: id.clone(),
                campaign: campaign.clone(),
            }]);
        }
        (_, Some(id), Some(c)) => (id, c),
        _ => return Err(CouponError::NotFound),
    };
    match cmd {
        CampaignCommand::Create { .. } => unreachable!("handled above"),
        CampaignCommand::Get | CampaignCommand::ListOwed => Ok(vec![]),
        CampaignCommand::ConfirmDelivery { coupon_ids } => {
            let owed: Vec<CouponId> = coupon_ids
                .iter()
                .filter(|c| s.owed.contains_key(*c))
                .cloned()
                .collect();
            Ok(if owed.is_empty() {
                vec![]
            } else {
                vec![CampaignEvent::Delivered { coupon_ids: owed }]
            })
        }
        CampaignCommand::Claim { user_id } => {
            let t = &campaign.terms;
            if t.starts_at.is_some_and(|s| now < s) || t.ends_at.is_some_and(|e| now >= e) {
                return Err(CouponError::NotActive);
            }
            let mine = s.claims.get(user_id).map(Vec::as_slice).unwrap_or_default();
            if mine.len() as u32 >= campaign.per_user_limit {
                return Err(CouponError::AlreadyClaimed {
                    coupons: mine.to_vec(),
                });
            }
            if campaign.total_quantity.is_some_and(|q| s.issued >= q) {
                return Err(CouponError::Exhausted);
            }
            let coupon_id = CouponId::parse(format!("{id}.{}", s.issued + 1))
                .map_err(|e| CouponError::Invalid(e.to_string()))?;
            Ok(vec![CampaignEvent::Issued {
                user_id: user_id.clone(),
                coupon_id,
                at: Some(now),
            }])
        }
    }
}

pub fn apply(s: &mut CampaignState, e: &CampaignEvent) {
    match e {
        CampaignEvent::Created { id, campaign } => {
            s.id = Some(id.clone());
            s.campaign = Some(campaign.clone());
        }
        CampaignEvent::Issued {
            user_id,
            coupon_id,
            at,
        } => {
            s.issued += 1;
            s.claims
                .entry(user_id.clone())
                .or_default()
                .push(coupon_id.clone());
            if let Some(at) = at {
                let owed = Owed {
                    user_id: user_id.clone(),
                    issued_at: *at,
                };
                s.owed.insert(coupon_id.clone(), owed);
            }
        }
        CampaignEvent::Delivered { coupon_ids } => {
            for c in coupon_ids {
                s.owed.remove(c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(10_000);

    fn campaign(total: Option<u32>, per_user: u32) -> Campaign {
        Campaign {
            name: "Welcome".into(),
            code: "WELCOME10".into(),
            terms: CouponTerms {
                kind: DiscountKind::Percent,
                value: 10,
                min_order: None,
                max_discount: None,
                scope: Scope::Order,
                starts_at: Some(Timestamp(5_000)),
                ends_at: Some(Timestamp(20_000)),
            },
            total_quantity: total,
            per_user_limit: per_user,
        }
    }

    fn cid() -> CampaignId {
        CampaignId::parse("c1").unwrap()
    }

    fn run(s: &mut CampaignState, cmd: CampaignCommand, at: Timestamp) -> Result<(), CouponError> {
        for e in decide(s, &cmd, at)? {
            apply(s, &e);
        }
        Ok(())
    }

    fn claim(u: &str) -> CampaignCommand {
        CampaignCommand::Claim {
            user_id: UserId::parse(u).unwrap(),
        }
    }

    #[test]
    fn claims_stop_at_the_total_and_the_per_user_limit() {
        let mut s = CampaignState::default();
        run(
            &mut s,
            CampaignCommand::Create {
                id: cid(),
                campaign: campaign(Some(2), 1),
            },
            NOW,
        )
        .unwrap();
        run(&mut s, claim("a"), NOW).unwrap();
        assert_eq!(
            run(&mut s, claim("a"), NOW),
            Err(CouponError::AlreadyClaimed {
                coupons: vec![CouponId::parse("c1.1").unwrap()]
            })
        );
        run(&mut s, claim("b"), NOW).unwrap();
        assert_eq!(run(&mut s, claim("c"), NOW), Err(CouponError::Exhausted));
        assert_eq!(s.issued, 2);
    }

    #[test]
    fn claims_only_inside_the_window() {
        let mut s = CampaignState::default();
        run(
            &mut s,
            CampaignCommand::Create {
                id: cid(),
                campaign: campaign(None, 3),
            },
            NOW,
        )
        .unwrap();
        assert_eq!(
            run(&mut s, claim("a"), Timestamp(4_999)),
            Err(CouponError::NotActive)
        );
        assert_eq!(
            run(&mut s, claim("a"), Timestamp(20_000)),
            Err(CouponError::NotActive)
        );
        run(&mut s, claim("a"), NOW).unwrap();
        run(&mut s, claim("a"), NOW).unwrap();
        assert_eq!(s.claims.values().map(Vec::len).sum::<usize>(), 2);
    }

    #[test]
    fn an_issued_coupon_is_owed_until_its_wallet_confirms_it() {
        // Given a campaign and two claims, the second a little later
        let mut s = CampaignState::default();
        let create = CampaignCommand::Create {
            id: cid(),
            campaign: campaign(None, 1),
        };
        run(&mut s, create, NOW).unwrap();
        run(&mut s, claim("a"), NOW).unwrap();
        run(&mut s, claim("b"), Timestamp(NOW.millis() + 500)).unwrap();
        // Then both are owed, and the delivery is due a grace after the first
        assert_eq!(s.owed.len(), 2);
        assert_eq!(
            s.delivery_due(),
            Some(Timestamp(NOW.millis() + DELIVERY_GRACE_MS))
        );
        // When the first is confirmed (twice: a claim's confirmation and the reminder's)
        let first = vec![CouponId::parse("c1.1").unwrap()];
        let delivered = CampaignCommand::ConfirmDelivery { coupon_ids: first };
        run(&mut s, delivered.clone(), NOW).unwrap();
        // Then only the second is owed, due a grace after its issue, and a repeat is no event
        assert_eq!(
            s.delivery_due(),
            Some(Timestamp(NOW.millis() + 500 + DELIVERY_GRACE_MS))
        );
        assert_eq!(decide(&s, &delivered, NOW), Ok(vec![]));
        // And an event of an older build, without its time, owes nothing
        let legacy = CampaignEvent::Issued {
            user_id: UserId::parse("c").unwrap(),
            coupon_id: CouponId::parse("c1.3").unwrap(),
            at: None,
        };
        apply(&mut s, &legacy);
        assert_eq!(s.owed.len(), 1);
    }

    #[test]
    fn invalid_campaigns_are_refused() {
        let mut bad_code = campaign(None, 1);
        bad_code.code = "no spaces!".into();
        let mut bad_percent = campaign(None, 1);
        bad_percent.terms.value = 150;
        let mut bad_window = campaign(None, 1);
        bad_window.terms.ends_at = Some(Timestamp(1));
        let mut bell = campaign(None, 1);
        bell.name = "\u{7}bell \u{1b}[31mred".into();
        let category = |name: &str| {
            let mut c = campaign(None, 1);
            c.terms.scope = Scope::Category {
                category: name.into(),
            };
            c
        };
        let (empty, long) = (category(" "), category(&"x".repeat(51)));
        assert!(validate(&category("tops")).is_ok());
        for c in [bad_code, bad_percent, bad_window, bell, empty, long] {
            assert!(matches!(validate(&c), Err(CouponError::Invalid(_))));
        }
        let mut s = CampaignState::default();
        assert_eq!(run(&mut s, claim("a"), NOW), Err(CouponError::NotFound));
    }
}
