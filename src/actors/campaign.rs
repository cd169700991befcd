//! The coupon campaign entity: one actor per campaign decides every claim on its quantity.
//! Its view (terms and count issued) feeds the code lookup and the carts. Rules are in
//! `domain::coupon`. Its reminder delivers coupons a claim left owed (see `Shopping::start`).

use crate::actors::entity::Entity;
use crate::domain::coupon::{
    self, CampaignCommand, CampaignEvent, CampaignState, CampaignView, CouponError,
};
use crate::domain::ids::{CampaignId, CouponId, UserId};
use crate::domain::time::Timestamp;

pub struct CampaignEntity;

/// A campaign after a command; for a claim, the coupon just issued; for `ListOwed`, the
/// coupons issued and not yet confirmed in their owners' wallets, with owner and issue time.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CampaignReply {
    pub view: Option<CampaignView>,
    pub issued: Option<CouponId>,
    #[serde(default)]
    pub owed: Vec<(CouponId, UserId, Timestamp)>,
}

impl Entity for CampaignEntity {
    const KIND: &'static str = "campaign";
    type Id = CampaignId;
    type State = CampaignState;
    type Command = CampaignCommand;
    type Event = CampaignEvent;
    type Rejection = CouponError;
    type Reply = CampaignReply;
    type View = CampaignView;

    fn decide(
        s: &CampaignState,
        c: &CampaignCommand,
        now: Timestamp,
    ) -> Result<Vec<CampaignEvent>, CouponError> {
        coupon::decide(s, c, now)
    }

    fn apply(s: &mut CampaignState, e: &CampaignEvent) {
        coupon::apply(s, e);
    }

    fn reply(_: &CampaignId, s: &CampaignState, c: &CampaignCommand) -> CampaignReply {
        let issued = match c {
            CampaignCommand::Claim { user_id } => {
                s.claims.get(user_id).and_then(|v| v.last().cloned())
            }
            _ => None,
        };
        let owed = match c {
            CampaignCommand::ListOwed => s
                .owed
                .iter()
                .map(|(coupon, o)| (coupon.clone(), o.user_id.clone(), o.issued_at))
                .collect(),
            _ => Vec::new(),
        };
        CampaignReply {
            view: Self::view(s),
            issued,
            owed,
        }
    }

    fn next_deadline(s: &CampaignState) -> Option<Timestamp> {
        s.delivery_due()
    }

    fn view(s: &CampaignState) -> Option<CampaignView> {
        s.campaign.as_ref().map(|c| CampaignView {
            campaign: c.clone(),
            issued: s.issued,
        })
    }

    fn weight(s: &CampaignState) -> usize {
        s.claims.len()
    }
}
