//! A coupon claim cut off between the campaign's step and the wallet's is finished by the
//! campaign's reminder (`shopping::deliveries`).

use emporium::domain::coupon::{Campaign, CampaignCommand, DELIVERY_GRACE_MS};
use emporium::domain::pricing::{CouponTerms, DiscountKind, Scope};
use emporium::domain::time::{Clock, ManualClock, SystemClock};
use emporium::node::Node;
use std::sync::Arc;
use std::time::Duration;

/// Given a claim whose node stopped after the campaign issued the coupon and before the
/// wallet took it (the campaign's step alone, then a restart), when the delivery grace has
/// passed, then the campaign's reminder alone puts the coupon in the shopper's wallet and owes
/// it no more; and a claim that finished leaves nothing owed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_cut_off_before_its_wallet_is_delivered_by_the_campaigns_reminder() {
    let clock = ManualClock::starting_at(SystemClock.now());
    let dir = tempfile::tempdir().unwrap();
    let settings = crate::helpers::settings(
        dir.path(),
        &[("EMPORIUM__ENTITIES__REMINDER_POLL_MS", "20")],
    );
    let open = || Node::open(&settings, Arc::new(clock.clone()), Default::default());
    let node = open().await.unwrap();
    let terms = CouponTerms {
        kind: DiscountKind::Fixed,
        value: 1000,
        min_order: None,
        max_discount: None,
        scope: Scope::Order,
        starts_at: None,
        ends_at: None,
    };
    let campaign = Campaign {
        name: "Cut off".into(),
        code: "CUTOFF".into(),
        terms,
        total_quantity: Some(10),
        per_user_limit: 1,
    };
    let (campaign_id, _) = node.shopping.create_campaign(campaign).await.unwrap();
    let account = |email: &str| {
        let accounts = node.accounts.clone();
        let req = emporium::auth::accounts::SignUp {
            email: email.into(),
            password: "correct horse battery".to_string().into(),
            name: "Shopper".into(),
            phone: None,
        };
        async move {
            accounts
                .sign_up(req, Default::default(), true)
                .await
                .unwrap()
                .0
        }
    };
    let (cut, whole) = (
        account("cut@example.com").await,
        account("whole@example.com").await,
    );
    let claim = CampaignCommand::Claim {
        user_id: cut.clone(),
    };
    let reply = node
        .shopping
        .campaigns
        .ask(&campaign_id, claim)
        .await
        .unwrap();
    let coupon = reply.issued.unwrap();
    // And a claim cut off for a token without an account: it has no wallet to reach.
    let ghost = emporium::domain::ids::UserId::parse("u_ghost").unwrap();
    let claim = CampaignCommand::Claim { user_id: ghost };
    let ghost_coupon = node.shopping.campaigns.ask(&campaign_id, claim).await;
    let ghost_coupon = ghost_coupon.unwrap().issued.unwrap();
    let (finished, _, _) = node.shopping.claim(&whole, "cutoff").await.unwrap();
    let owed = |node: &Node| {
        let campaigns = node.shopping.campaigns.clone();
        let id = campaign_id.clone();
        async move {
            let reply = campaigns.ask(&id, CampaignCommand::ListOwed).await.unwrap();
            reply
                .owed
                .into_iter()
                .map(|(c, _, _)| c)
                .collect::<Vec<_>>()
        }
    };
    for _ in 0..100 {
        if owed(&node).await.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cut_off = {
        let mut both = vec![coupon.clone(), ghost_coupon];
        both.sort();
        both
    };
    assert_eq!(
        owed(&node).await,
        cut_off,
        "the finished claim is confirmed"
    );
    node.close().await.unwrap();
    drop(node);

    let node = open().await.unwrap();
    assert_eq!(owed(&node).await, cut_off, "still owed after the restart");
    let coupons = |wallet: emporium::domain::user::wallet::Wallet| {
        wallet.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>()
    };
    assert!(coupons(node.shopping.wallet(&cut).await.unwrap()).is_empty());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        coupons(node.shopping.wallet(&cut).await.unwrap()).is_empty(),
        "not before the grace"
    );

    clock.advance(Duration::from_millis(DELIVERY_GRACE_MS as u64 + 1));
    for _ in 0..100 {
        if owed(&node).await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        owed(&node).await.is_empty(),
        "delivered and confirmed, the ghost's with no wallet"
    );
    assert_eq!(
        coupons(node.shopping.wallet(&cut).await.unwrap()),
        vec![coupon]
    );
    assert_eq!(
        coupons(node.shopping.wallet(&whole).await.unwrap()),
        vec![finished]
    );
    node.close().await.unwrap();
}
