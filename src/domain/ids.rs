//! Validated identifiers. Raw strings stop at the HTTP layer: past it every id is one of these
//! newtypes, parsed once with [`Id::parse`]-style constructors.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidId {
    #[error("an id must not be empty")]
    Empty,
    #[error("an id is at most {max} characters")]
    TooLong { max: usize },
    #[error("an id may contain only letters, digits, '-', '_', '.' and ':'")]
    BadCharacter,
}

/// The longest id the engine accepts. Ids become sled keys, so they are kept short.
pub const MAX_ID_LEN: usize = 64;

fn validate(raw: &str) -> Result<(), InvalidId> {
    if raw.is_empty() {
        return Err(InvalidId::Empty);
    }
    if raw.len() > MAX_ID_LEN {
        return Err(InvalidId::TooLong { max: MAX_ID_LEN });
    }
    let ok = raw
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(InvalidId::BadCharacter)
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses and validates an id received from outside.
            pub fn parse(raw: impl Into<String>) -> Result<Self, InvalidId> {
                let raw = raw.into();
                validate(&raw)?;
                Ok(Self(raw))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(raw: String) -> Result<Self, Self::Error> {
                Self::parse(raw)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A stock-keeping unit: the unit of stock (one colour/size combination of a product).
    SkuId
);
id_type!(
    /// An order; also the key a stock reservation is held under.
    OrderId
);
id_type!(
    /// A user account.
    UserId
);
id_type!(
    /// The blind index of a normalised email address: the key of its claim.
    EmailKey
);
id_type!(
    /// A product of the catalog (a set of SKUs).
    ProductId
);
id_type!(
    /// A coupon campaign.
    CampaignId
);
id_type!(
    /// One issued coupon (in a user's wallet).
    CouponId
);
id_type!(
    /// A flash-sale drop (of one SKU).
    DropId
);
id_type!(
    /// A chat room (a support room's id is `s` and its order's id).
    RoomId
);

/// A normalised email address: its comparison form ([`crate::domain::text::fold`]). Personal
/// data: seal it before storing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

/// The longest email address accepted (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// The characters of an address's local part besides letters and digits (RFC 5322 `atext`
/// and the dot).
const LOCAL_PUNCTUATION: &[u8] = b"!#$%&'*+/=?^_`{|}~.-";

impl Email {
    /// `local@domain.tld` in ASCII once folded (so full-width input is taken; internationalised
    /// addresses are not): a local part of letters, digits and [`LOCAL_PUNCTUATION`]; two or
    /// more dot-separated domain labels of letters, digits, `-` and `_`; at most
    /// [`MAX_EMAIL_LEN`] characters. Surrounding spaces are ignored (phone keyboards add them).
    /// The OpenAPI document states the rule for ASCII input as a pattern (`http::auth`).
    pub fn parse(raw: &str) -> Result<Email, String> {
        let bad = |why: &str| Err(format!("not a valid email address: {why}"));
        let email = crate::domain::text::fold(raw);
        if email.chars().count() > MAX_EMAIL_LEN {
            return bad("too long");
        }
        let Some((local, domain)) = email.split_once('@') else {
            return bad("missing @");
        };
        let local_ok = !local.is_empty()
            && local
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || LOCAL_PUNCTUATION.contains(&b));
        if !local_ok {
            return bad("the part before @ takes letters, digits and !#$%&'*+/=?^_`{|}~.-");
        }
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if domain.split('.').count() < 2 || !domain.split('.').all(label_ok) {
            return bad("expected name@domain.tld");
        }
        Ok(Email(email))
    }

    /// The comparison form of whatever was typed, unchecked: for looking up an account (at
    /// login), so that addresses taken under earlier rules still find theirs.
    pub fn lookup(raw: &str) -> Email {
        Email(crate::domain::text::fold(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_ids() {
        assert_eq!(SkuId::parse("tee-red-M").unwrap().as_str(), "tee-red-M");
        assert!(OrderId::parse("ord_01J:2.x").is_ok());
    }

    #[test]
    fn rejects_empty_long_and_odd_ids() {
        assert_eq!(SkuId::parse(""), Err(InvalidId::Empty));
        assert_eq!(
            SkuId::parse("a".repeat(65)),
            Err(InvalidId::TooLong { max: 64 })
        );
        assert_eq!(SkuId::parse("a/b"), Err(InvalidId::BadCharacter));
        assert_eq!(SkuId::parse("a\0b"), Err(InvalidId::BadCharacter));
        assert_eq!(SkuId::parse("상품"), Err(InvalidId::BadCharacter));
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse("  Kim@Example.COM ").unwrap().as_str(),
            "kim@example.com"
        );
        for bad in [
            "", "no-at", "a@b", "@b.c", "a@@b.c", "a b@c.d", "a@.b.c", "a@b..c",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails_are_ascii_once_folded() {
        // Full-width input folds to ASCII and is taken; underscores in a host are taken.
        let wide = Email::parse("ｋｉｍ＠ｅｘａｍｐｌｅ．ｃｏｍ").unwrap();
        assert_eq!(wide.as_str(), "kim@example.com");
        assert!(Email::parse("a.b+tag@mail_relay.example.co.kr").is_ok());
        // What the OpenAPI pattern refuses, the parser refuses: non-ASCII, a compatibility
        // character that folds to a space, control characters.
        for bad in [
            "김@example.com",
            "a\u{a8}b@example.com",
            "a\u{1c}@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        // An address longer than 254 characters, counted as characters.
        let long = format!("{}@example.com", "a".repeat(243));
        assert!(Email::parse(&long).is_err());
        assert!(Email::parse(&long[1..]).is_ok());
        // Looking up takes anything, in the same comparison form.
        assert_eq!(
            Email::lookup(" Kim@Example.COM").as_str(),
            "kim@example.com"
        );
    }

    #[test]
    fn deserialising_validates() {
        let bad: Result<SkuId, _> = serde_json::from_str("\"a b\"");
        assert!(bad.is_err());
        let good: SkuId = serde_json::from_str("\"ab\"").unwrap();
        assert_eq!(good.as_str(), "ab");
    }
}
