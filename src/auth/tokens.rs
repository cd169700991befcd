//! Access tokens (HS256 JWT with `sub`, `jti`, `roles`, `iat`, `exp`) and opaque refresh tokens
//! (`user.family.secret`, stored only as the SHA-256 of the secret).

use crate::domain::ids::UserId;
use crate::domain::role::Role;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashmap::DashMap;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::sync::Arc;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub jti: String,
    /// The refresh family (session) the token was issued in; logout revokes it.
    #[serde(default)]
    pub sid: String,
    pub roles: Vec<String>,
    pub iat: i64,
    pub exp: i64,
}

impl Claims {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.iter().any(|r| r == role.as_str())
    }

    /// Whether these are the operator token's claims: a setting, not an issued token, so they
    /// carry no token id, no session and no account behind them.
    pub fn is_operator_token(&self) -> bool {
        self.jti.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Expired,
    Invalid,
}

#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub access_ttl_secs: i64,
    /// Tokens whose signature checked out, by their whole text, with their claims: a client
    /// sends the same token with every request for its lifetime, and decoding and checking it
    /// again was a tenth of the server's CPU on a sold-out drop. At most [`VERIFIED_CAP`].
    verified: Arc<DashMap<Box<str>, Claims>>,
}

/// The most verified tokens remembered (a token and its claims are ~400 B, so ~8 MB). When
/// full, the expired ones are forgotten, and all of them if that frees less than a quarter.
const VERIFIED_CAP: usize = 20_000;
/// Seconds a token is still taken after its `exp` (clock skew between nodes).
const LEEWAY_SECS: u64 = 5;

impl TokenKeys {
    pub fn new(secret: &[u8], access_ttl_secs: i64) -> Self {
        // Only HS256 is accepted: `alg: none` and algorithm swaps fail validation.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl_secs,
            verified: Arc::default(),
        }
    }

    /// A new access token for `user`, valid from `now_secs`.
    pub fn issue(
        &self,
        user: &UserId,
        roles: &BTreeSet<Role>,
        session: &str,
        now_secs: i64,
    ) -> anyhow::Result<(String, Claims)> {
        let claims = Claims {
            sub: user.to_string(),
            sid: session.to_string(),
            jti: URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>()),
            roles: roles.iter().map(|r| r.as_str().to_string()).collect(),
            iat: now_secs,
            exp: now_secs + self.access_ttl_secs,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, claims))
    }

    /// The claims of a token this key signed (HS256 only) that has not expired (`exp` plus
    /// [`LEEWAY_SECS`], by the system clock, as jsonwebtoken checks it). Revocation is the
    /// caller's to check. A token seen before is looked up, not decoded again; its expiry is
    /// checked every time.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        self.verify_at(token, jsonwebtoken::get_current_timestamp())
    }

    /// [`TokenKeys::verify`] with a token seen before checked against `now` (Unix seconds).
    fn verify_at(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        if let Some(claims) = self.verified.get(token) {
            return match expired(claims.exp, now) {
                true => Err(TokenError::Expired),
                false => Ok(claims.clone()),
            };
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        if self.verified.len() >= VERIFIED_CAP {
            self.verified.retain(|_, c| !expired(c.exp, now));
            // A quarter free at least, so the scan is paid once per many tokens.
            if self.verified.len() > VERIFIED_CAP / 4 * 3 {
                self.verified.clear();
            }
        }
        self.verified.insert(token.into(), claims.clone());
        Ok(claims)
    }
}

/// A refresh token as presented by the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub user: UserId,
    pub family: String,
    pub secret: String,
}

impl RefreshToken {
    pub fn new(user: &UserId, family: Option<&str>) -> Self {
        Self {
            user: user.clone(),
            family: family.map_or_else(
                || URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>()),
                str::to_string,
            ),
            secret: URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()),
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        let mut parts = raw.splitn(3, '.');
        let user = UserId::parse(parts.next()?).ok()?;
        let family = parts.next()?.to_string();
        let secret = parts.next()?.to_string();
        let b64 = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        (b64(&family) && b64(&secret)).then_some(Self {
            user,
            family,
            secret,
        })
    }

    pub fn encode(&self) -> String {
        format!("{}.{}.{}", self.user, self.family, self.secret)
    }

    /// What the account stores and compares: the SHA-256 of the secret.
    pub fn hash(&self) -> String {
        hex(&Sha256::digest(self.secret.as_bytes()))
    }
}

/// Whether a token with `exp` has expired at `now` (Unix seconds), leeway included.
fn expired(exp: i64, now: u64) -> bool {
    exp.saturating_add(LEEWAY_SECS as i64) < i64::try_from(now).unwrap_or(i64::MAX)
}

/// Lower-case hexadecimal, two digits a byte.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> UserId {
        UserId::parse("u1").unwrap()
    }

    #[test]
    fn issued_tokens_verify_and_carry_roles() {
        let keys = TokenKeys::new(b"0123456789abcdef0123456789abcdef", 900);
        let now = jsonwebtoken::get_current_timestamp() as i64;
        let (token, claims) = keys
            .issue(&user(), &BTreeSet::from([Role::Admin]), "f", now)
            .unwrap();
        let back = keys.verify(&token).unwrap();
        assert_eq!(back.sub, "u1");
        assert_eq!(back.jti, claims.jti);
        assert!(back.has_role(Role::Admin) && !back.has_role(Role::Operator));
    }

    #[test]
    fn a_token_seen_before_is_still_refused_once_it_expires() {
        // Given a token that verified once (and is remembered)
        let keys = TokenKeys::new(b"0123456789abcdef0123456789abcdef", 900);
        let now = jsonwebtoken::get_current_timestamp();
        let (token, claims) = keys
            .issue(&user(), &BTreeSet::new(), "f", now as i64)
            .unwrap();
        assert_eq!(keys.verify(&token).unwrap().jti, claims.jti);
        assert_eq!(keys.verified.len(), 1);
        // When it is presented again within its lifetime and its leeway, it is taken
        let last = claims.exp as u64 + LEEWAY_SECS;
        assert_eq!(keys.verify_at(&token, last).unwrap().jti, claims.jti);
        // Then a second later it is refused as expired, remembered or not
        assert_eq!(
            keys.verify_at(&token, last + 1).unwrap_err(),
            TokenError::Expired
        );
        // And a token one character off is decoded, not taken for the one remembered
        let mut tampered = token.clone();
        tampered.insert(tampered.len() / 2, 'A');
        assert_eq!(keys.verify(&tampered).unwrap_err(), TokenError::Invalid);
    }

    #[test]
    fn the_tokens_remembered_are_bounded() {
        // Given more valid tokens than are remembered
        let keys = TokenKeys::new(b"0123456789abcdef0123456789abcdef", 900);
        let now = jsonwebtoken::get_current_timestamp() as i64;
        for _ in 0..=VERIFIED_CAP {
            let (token, _) = keys.issue(&user(), &BTreeSet::new(), "f", now).unwrap();
            // When each is verified
            keys.verify(&token).unwrap();
            // Then no more than the cap are ever held
            assert!(keys.verified.len() <= VERIFIED_CAP);
        }
        assert_eq!(
            keys.verified.len(),
            1,
            "none had expired: all were forgotten"
        );
    }

    #[test]
    fn hex_is_two_lower_case_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn tampered_foreign_expired_and_unsigned_tokens_fail() {
        let keys = TokenKeys::new(b"0123456789abcdef0123456789abcdef", 900);
        let other = TokenKeys::new(b"another secret, another server!!", 900);
        let now = jsonwebtoken::get_current_timestamp() as i64;
        let (token, _) = keys.issue(&user(), &BTreeSet::new(), "f", now).unwrap();
        let (foreign, _) = other.issue(&user(), &BTreeSet::new(), "f", now).unwrap();
        assert_eq!(keys.verify(&foreign).unwrap_err(), TokenError::Invalid);
        let mut tampered = token.clone();
        tampered.insert(tampered.len() / 2, 'A');
        assert_eq!(keys.verify(&tampered).unwrap_err(), TokenError::Invalid);
        let (old, _) = keys
            .issue(&user(), &BTreeSet::new(), "f", now - 3600)
            .unwrap();
        assert_eq!(keys.verify(&old).unwrap_err(), TokenError::Expired);
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"sub":"u1","jti":"x","roles":["admin"],"iat":{now},"exp":{}}}"#,
            now + 900
        ));
        assert_eq!(
            keys.verify(&format!("{header}.{body}.")).unwrap_err(),
            TokenError::Invalid
        );
    }

    #[test]
    fn refresh_tokens_round_trip_and_reject_junk() {
        let t = RefreshToken::new(&user(), None);
        assert_eq!(RefreshToken::parse(&t.encode()), Some(t.clone()));
        assert_ne!(t.hash(), RefreshToken::new(&user(), Some(&t.family)).hash());
        for junk in ["", "a.b", "u1..x", "bad id.f.s", "u1.f.s;rm"] {
            assert!(RefreshToken::parse(junk).is_none(), "{junk}");
        }
    }
}
