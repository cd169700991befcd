//! What arrives as text: WebSocket frames and topics, every id, email addresses, times, the
//! comparison form of text, and money — the totals of arbitrary lines and coupon terms within
//! the limits the API accepts. No panic; totals add up.
#![no_main]

use emporium::domain::ids::{DropId, Email, OrderId, ProductId, RoomId, SkuId, UserId};
use emporium::domain::pricing::{self, CouponTerms, DiscountKind, Line, Scope};
use emporium::domain::text;
use emporium::domain::time::Timestamp;
use emporium::http::ws::protocol::{ClientFrame, Topic};
use libfuzzer_sys::fuzz_target;

/// Little-endian integers from the input, or 0 once it runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u64(&mut self) -> u64 {
        let n = self.0.len().min(8);
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        u64::from_le_bytes(b)
    }
}

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let _ = ClientFrame::parse(&s);
    let _ = Topic::parse(&s);
    let _ = (SkuId::parse(&*s), OrderId::parse(&*s), UserId::parse(&*s));
    let _ = (
        ProductId::parse(&*s),
        DropId::parse(&*s),
        RoomId::parse(&*s),
    );
    let _ = Email::parse(&s);
    let _ = Timestamp::parse_rfc3339(&s);
    let folded = text::fold(&s);
    assert_eq!(text::fold(&folded), folded, "folding is idempotent");
    let _ = text::code(&s);

    // Money: prices up to 10^12 minor units, quantities up to 99, up to 100 lines (the API's
    // limits), any coupon terms.
    let mut b = Bytes(data);
    let product = ProductId::parse("p").unwrap();
    let count = (b.u64() % 101) as usize;
    let lines: Vec<Line<'_>> = (0..count)
        .map(|_| Line {
            product_id: &product,
            category: "c",
            unit_price: (b.u64() % 1_000_000_000_001) as i64,
            quantity: (b.u64() % 100) as u32,
        })
        .collect();
    let terms = CouponTerms {
        kind: if b.u64() % 2 == 0 {
            DiscountKind::Percent
        } else {
            DiscountKind::Fixed
        },
        value: b.u64() as i64,
        min_order: Some(b.u64() as i64).filter(|v| v % 3 != 0),
        max_discount: Some(b.u64() as i64).filter(|v| v % 3 != 0),
        scope: Scope::Order,
        starts_at: None,
        ends_at: None,
    };
    let (t, _) = pricing::totals(&lines, Some(&terms), Timestamp(0));
    assert!(t.discount >= 0 && t.discount <= t.subtotal, "{t:?}");
    assert_eq!(t.total, t.subtotal - t.discount);
});
