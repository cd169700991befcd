//! Stored and received bytes that do not decode: every journal event and snapshot shape of
//! every entity kind, and the envelope of a command forwarded by another node, from arbitrary
//! bytes. Decoding fails with an error, never a panic or an unbounded allocation.
#![no_main]

use emporium::actors::remote;
use emporium::domain::{
    cart, catalog, chat, coupon, email_claim, inventory, order, user, watchers,
};
use emporium::persistence::codec::{decode_event, decode_snapshot};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 20 {
        0 => drop(decode_event::<inventory::SkuEvent>(bytes)),
        1 => drop(decode_snapshot::<inventory::SkuState>(bytes)),
        2 => drop(decode_event::<order::OrderEvent>(bytes)),
        3 => drop(decode_snapshot::<order::OrderState>(bytes)),
        4 => drop(decode_event::<user::UserEvent>(bytes)),
        5 => drop(decode_snapshot::<user::UserState>(bytes)),
        6 => drop(decode_event::<chat::RoomEvent>(bytes)),
        7 => drop(decode_snapshot::<chat::RoomState>(bytes)),
        8 => drop(decode_event::<cart::CartEvent>(bytes)),
        9 => drop(decode_snapshot::<cart::CartState>(bytes)),
        10 => drop(decode_event::<coupon::CampaignEvent>(bytes)),
        11 => drop(decode_snapshot::<coupon::CampaignState>(bytes)),
        12 => drop(decode_event::<catalog::ProductEvent>(bytes)),
        13 => drop(decode_snapshot::<catalog::ProductState>(bytes)),
        14 => drop(decode_event::<email_claim::ClaimEvent>(bytes)),
        15 => drop(decode_snapshot::<watchers::Watchers>(bytes)),
        16 => drop(remote::decode::<inventory::SkuCommand>(bytes)),
        17 => drop(remote::decode::<order::OrderCommand>(bytes)),
        18 => drop(remote::decode::<user::UserCommand>(bytes)),
        _ => drop(remote::decode::<remote::Answer>(bytes)),
    }
});
